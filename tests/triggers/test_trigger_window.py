"""SubmissionWindowTrigger against the emulator: fires on a batch's end, at wake_at, or at the deadline."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.triggers.window import SubmissionWindowTrigger


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"w{i}",
            "description": "AMAZON MKTP",
            "date": "2024-01-02",
            "amount": 10.0,
            "entry_type": "outgoing",
            "currency": "USD",
        }
        for i in range(count)
    ]


async def _event(trigger: SubmissionWindowTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    return await asyncio.wait_for(first(), 30)


def test_serializes_ids_times_and_the_conn_id_only() -> None:
    trigger = SubmissionWindowTrigger(["b1"], "ntropy_default", wake_at=10.0, deadline=20.0)
    path, kwargs = trigger.serialize()
    assert path == "ntropy_provider.triggers.window.SubmissionWindowTrigger"
    assert SubmissionWindowTrigger(**kwargs).serialize() == (path, kwargs)


def test_nothing_to_wait_for_is_refused() -> None:
    with pytest.raises(ValueError, match="nothing would ever fire"):
        SubmissionWindowTrigger([], "ntropy_default")


def test_fires_when_a_batch_of_the_window_ends(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=50)
    hook = NtropyHook(ntropy_connection)
    quick, slow = hook.create_batch(_rows(5)), hook.create_batch(_rows(500))
    trigger = SubmissionWindowTrigger([quick.id, slow.id], ntropy_connection, poll_interval=0.05)
    event = asyncio.run(_event(trigger))
    assert (event["status"], event["reason"], event["ended_batch_ids"]) == ("ready", "slot", [quick.id])


def test_fires_at_wake_at_for_credits(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=1)
    slow = NtropyHook(ntropy_connection).create_batch(_rows(100))
    trigger = SubmissionWindowTrigger(
        [slow.id], ntropy_connection, wake_at=time.time() + 0.3, poll_interval=0.05
    )
    event = asyncio.run(_event(trigger))
    assert (event["status"], event["reason"]) == ("ready", "credits")


def test_fires_a_timeout_at_the_deadline(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=1)
    slow = NtropyHook(ntropy_connection).create_batch(_rows(100))
    trigger = SubmissionWindowTrigger(
        [slow.id], ntropy_connection, deadline=time.time() + 0.3, poll_interval=0.05
    )
    assert asyncio.run(_event(trigger))["status"] == "timeout"


def test_one_list_request_per_poll_however_many_batches_are_watched(
    ntropy_connection: str, ntropy_emulator
) -> None:
    ntropy_emulator.configure(items_per_second=20)
    hook = NtropyHook(ntropy_connection)
    quick = hook.create_batch(_rows(10))
    slow = [hook.create_batch(_rows(400)) for _ in range(4)]
    before = ntropy_emulator.stats()["requests"]
    trigger = SubmissionWindowTrigger([b.id for b in [*slow, quick]], ntropy_connection, poll_interval=0.05)
    event = asyncio.run(_event(trigger))
    after = ntropy_emulator.stats()["requests"]
    assert event["ended_batch_ids"] == [quick.id]
    lists = after.get("GET /v3/batches", 0) - before.get("GET /v3/batches", 0)
    gets = after.get("GET /v3/batches/{batch_id}", 0) - before.get("GET /v3/batches/{batch_id}", 0)
    assert lists >= 1
    assert gets == 1, "only the batch missing from the list is fetched, to confirm it ended"
