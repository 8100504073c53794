"""BatchTrigger against the emulator: many batches, faults, deadline, adaptive polling, no blocking."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from typing import Any

import pytest
import requests

from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.progress import ProgressTracker, format_duration, next_poll_interval
from ntropy_provider.triggers.batch import BatchTrigger
from ntropy_provider.utils.gc_pause import gc_paused

GET_BATCH = "GET /v3/batches/{batch_id}"


def _rows(count: int, prefix: str = "t") -> list[dict[str, Any]]:
    return [
        {
            "id": f"{prefix}{i}",
            "description": "AMAZON MKTP",
            "date": "2024-01-02",
            "amount": 10.0,
            "entry_type": "outgoing",
            "currency": "USD",
        }
        for i in range(count)
    ]


@pytest.fixture
def fragile_connection(ntropy_connection: str, ntropy_emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    """A connection whose hook does not retry, so that every injected fault reaches the trigger."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_NTROPY_FRAGILE",
        json.dumps(
            {
                "conn_type": "ntropy",
                "host": ntropy_emulator.url,
                "password": ntropy_emulator.api_key,
                "extra": {"max_attempts": 1},
            }
        ),
    )
    return "ntropy_fragile"


def _create(count: int, size: int) -> list[str]:
    hook = NtropyHook()
    return [hook.create_batch(_rows(size, prefix=f"b{n}-")).id for n in range(count)]


async def _first_event(trigger: BatchTrigger, timeout: float = 60) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(first(), timeout)


def test_serialize_round_trips_exactly_and_holds_no_secret(ntropy_connection: str, ntropy_emulator) -> None:
    trigger = BatchTrigger(
        batch_ids=["a", "b"],
        ntropy_conn_id=ntropy_connection,
        poll_interval=2.5,
        max_poll_interval=60.0,
        deadline=1_900_000_000.25,
        max_concurrent_requests=3,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "ntropy_provider.triggers.batch.BatchTrigger"
    try:
        from airflow.sdk.serde import deserialize, serialize
    except ImportError:  # Airflow 3.1: the serde the triggerer uses lived in airflow.serialization
        from airflow.serialization.serde import deserialize, serialize

    rebuilt_kwargs = deserialize(serialize(kwargs))
    rebuilt = BatchTrigger(**rebuilt_kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "batch_ids": ["a", "b"],
        "ntropy_conn_id": ntropy_connection,
        "poll_interval": 2.5,
        "max_poll_interval": 60.0,
        "deadline": 1_900_000_000.25,
        "max_concurrent_requests": 3,
    }
    assert ntropy_emulator.api_key not in json.dumps(kwargs)


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_ids"):
        BatchTrigger(batch_ids=[])
    with pytest.raises(ValueError, match="poll_interval"):
        BatchTrigger(batch_ids=["a"], poll_interval=10, max_poll_interval=5)
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        BatchTrigger(batch_ids=["a"], max_concurrent_requests=0)


async def test_many_batches_in_one_trigger(ntropy_connection: str, ntropy_emulator) -> None:
    ids = _create(40, 50)
    event = await _first_event(
        BatchTrigger(ids, ntropy_connection, poll_interval=0.05, max_poll_interval=0.5)
    )
    assert event["status"] == "success"
    assert event["termination_reason"] == "completed"
    assert event["batch_ids"] == ids
    assert [b["id"] for b in event["batches"]] == ids
    assert all(b["status"] == "completed" and b["progress"] == b["total"] == 50 for b in event["batches"])
    assert "40 batch(es) completed" in event["message"]
    requests = ntropy_emulator.stats()["requests"]
    assert requests.get(GET_BATCH, 0) == 0, "read from the key's newest batches, not by a GET each"
    assert requests["GET /v3/batches"] >= 1


async def test_a_batch_not_among_the_newest_is_fetched_by_itself(
    ntropy_connection: str, ntropy_emulator
) -> None:
    ids = [*_create(3, 5), "no-such-batch"]
    event = await _first_event(BatchTrigger(ids, ntropy_connection, poll_interval=0.05))
    assert event["termination_reason"] == "api_error"
    assert "no-such-batch" in event["message"]
    assert ntropy_emulator.stats()["requests"][GET_BATCH] >= 1


@pytest.mark.parametrize(
    ("settings", "fault"),
    [
        pytest.param({"fail_rate": 0.4, "fail_status": 503}, "failed", id="503"),
        pytest.param({"rate_limit": 2}, "rate_limited", id="429"),
        pytest.param({"drop_connection_rate": 0.4}, "dropped", id="connection-dropped"),
    ],
)
async def test_transient_errors_are_absorbed(
    fragile_connection: str, ntropy_emulator, settings: dict[str, Any], fault: str
) -> None:
    ntropy_emulator.configure(items_per_second=3000)
    ids = _create(5, 1000)
    ntropy_emulator.configure(seed=7, **settings)
    trigger = BatchTrigger(ids, fragile_connection, poll_interval=0.02, max_poll_interval=0.1)
    event = await _first_event(trigger)
    assert event["status"] == "success", event["message"]
    faults = ntropy_emulator.stats()["faults"]
    assert any(fault in name and count > 0 for name, count in faults.items()), faults


async def test_deadline_ends_the_wait_with_timeout(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=50)
    ids = _create(2, 1000)
    trigger = BatchTrigger(ids, ntropy_connection, poll_interval=0.05, deadline=time.time() + 0.4)
    event = await _first_event(trigger)
    assert event["status"] == "timeout"
    assert event["termination_reason"] == "timeout"
    assert all(b["status"] == "processing" and b["progress"] < b["total"] for b in event["batches"])
    assert ids[0] in event["message"]


async def test_past_deadline_after_restart_still_checks_once(ntropy_connection: str, ntropy_emulator) -> None:
    ids = _create(1, 10)
    NtropyHook().wait_for_batches(ids, poll_interval=0.05, timeout=10)
    event = await _first_event(BatchTrigger(ids, ntropy_connection, deadline=time.time() - 5))
    assert event["status"] == "success", "a batch that ended must not be reported as timed out"


async def test_batches_in_error_are_named(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    ids = _create(3, 10)
    event = await _first_event(BatchTrigger(ids, ntropy_connection, poll_interval=0.05))
    assert event["status"] == "error"
    assert event["termination_reason"] == "batch_error"
    assert event["errored_batch_ids"] == ids
    assert all(i in event["message"] for i in ids)
    assert "Resubmitting" in event["message"]


async def test_unknown_batch_is_an_api_error_event(ntropy_connection: str, ntropy_emulator) -> None:
    event = await _first_event(BatchTrigger(["no-such-batch"], ntropy_connection, poll_interval=0.05))
    assert event["status"] == "error"
    assert event["termination_reason"] == "api_error"
    assert "no-such-batch" in event["message"]


def test_poll_interval_grows_then_follows_the_eta() -> None:
    assert next_poll_interval(10, None, minimum=10, maximum=300) == 15
    assert next_poll_interval(250, None, minimum=10, maximum=300) == 300
    assert next_poll_interval(10, 1200, minimum=10, maximum=300) == 40  # an early ETA is trusted gradually
    assert next_poll_interval(100, 1200, minimum=10, maximum=300) == 300  # 20 min left: poll rarely
    assert next_poll_interval(300, 60, minimum=10, maximum=300) == 65  # just after the expected end
    assert next_poll_interval(30, 4, minimum=10, maximum=300) == 10


def test_progress_tracker_rates_and_lines() -> None:
    import datetime as dt

    from ntropy_provider.api.models import Batch
    from ntropy_provider.api.wire import BatchStatus

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)

    def batch(progress: int, status: BatchStatus = BatchStatus.PROCESSING) -> Batch:
        return Batch("b1", "POST /v3/transactions", status, "default", start, start, progress, 1000)

    tracker = ProgressTracker(["b1"])
    tracker.update(batch(100), now=0.0)
    tracker.update(batch(300), now=2.0)
    assert tracker.batches["b1"].rate == pytest.approx(100)
    assert tracker.eta == pytest.approx(7.0)
    assert tracker.lines() == ["batch b1: 300/1,000 (30.0%) 100/s ETA 7s [processing]"]
    assert format_duration(3725) == "1h02m"
    tracker.update(batch(1000, BatchStatus.COMPLETED), now=3.0)
    assert tracker.all_terminal and tracker.eta == 0


async def test_polling_adapts_to_the_batch_duration(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=1000)
    ids = _create(1, 1500)  # about 1.5 s of processing
    event = await _first_event(BatchTrigger(ids, ntropy_connection, poll_interval=0.02, max_poll_interval=5))
    assert event["status"] == "success"
    gets = ntropy_emulator.stats()["requests"].get(GET_BATCH, 0)
    # A fixed 0.02 s interval would poll ~75 times; following the ETA needs a handful.
    assert 2 <= gets <= 12, gets


async def test_run_makes_no_blocking_call(
    ntropy_connection: str, ntropy_emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("blocking call inside the trigger's event loop")

    ntropy_emulator.configure(items_per_second=2000)
    ids = _create(3, 600)
    # Every answer takes 300 ms: a synchronous HTTP call would hold the loop at least that long.
    ntropy_emulator.configure(latency_ms=300)
    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(time, "sleep", refuse)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.2
    caplog.set_level(logging.WARNING, logger="asyncio")
    # A full garbage collection of this long test session's heap can itself hold a callback for most of
    # a second (seen once in CI): it is not a blocking call of the trigger, so it is kept out of the run.
    gc.collect()
    try:
        with gc_paused():
            event = await _first_event(
                BatchTrigger(ids, ntropy_connection, poll_interval=0.05, max_poll_interval=0.2)
            )
    finally:
        loop.set_debug(False)
    assert event["status"] == "success"
    slow = [r.getMessage() for r in caplog.records if r.name == "asyncio" and "took" in r.getMessage()]
    assert not slow, slow


async def test_on_kill_says_batches_cannot_be_cancelled(ntropy_connection: str, capsys) -> None:
    trigger = BatchTrigger(["b-1", "b-2"], ntropy_connection)
    await trigger.on_kill()
    logged = capsys.readouterr().out  # Airflow's structlog writes task and trigger logs to stdout here
    assert "cannot be cancelled" in logged and "b-1, b-2" in logged
