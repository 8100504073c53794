"""Batch calls of the sync hook against the emulator: happy paths, paging, unknown ids, 409 and 422."""

from __future__ import annotations

import asyncio
import datetime as dt

import orjson
import pytest

from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.exceptions import (
    NtropyError,
    NtropyNotFoundError,
    NtropyNotReadyError,
    NtropyTimeoutError,
    NtropyValidationError,
)
from ntropy_provider.hooks import calls
from ntropy_provider.hooks.ntropy import NtropyHook


def test_create_get_wait_and_fetch_results(hook: NtropyHook, ntropy_emulator, make_rows) -> None:
    created = hook.create_batch(list(make_rows(25)), priority="low")
    assert (created.total, created.priority, created.operation) == (25, "low", "POST /v3/transactions")
    assert hook.get_batch(created.id).id == created.id
    [final] = hook.wait_for_batches([created.id], poll_interval=0.05, timeout=30)
    assert final.status is BatchStatus.COMPLETED and final.progress == 25
    results = hook.get_batch_results(created.id)
    assert (results.id, results.total, results.status) == (created.id, 25, BatchStatus.COMPLETED)
    assert [r["id"] for r in results.results] == [f"t{i}" for i in range(25)]
    raw = hook.get_batch_results_raw(created.id)
    assert isinstance(raw, bytes) and orjson.loads(raw)["results"] == results.results


def test_create_batch_accepts_any_iterable_and_checks_size_and_priority(hook: NtropyHook, make_rows) -> None:
    assert hook.create_batch(make_rows(3)).total == 3
    with pytest.raises(ValueError, match="data: expected 1 to 24960 transactions, got 0"):
        hook.create_batch([])
    with pytest.raises(ValueError, match="priority: expected one of default, low, got 'urgent'"):
        hook.create_batch(make_rows(1), priority="urgent")


def test_list_batches_walks_every_page_with_filters(hook: NtropyHook, ntropy_emulator, make_rows) -> None:
    created = [hook.create_batch(make_rows(2, start=10 * i)) for i in range(23)]
    before = ntropy_emulator.stats()["requests"].get("GET /v3/batches", 0)
    listed = list(hook.list_batches(page_size=4))
    assert sorted(b.id for b in listed) == sorted(b.id for b in created)
    assert len({b.id for b in listed}) == 23  # no page repeated or skipped
    assert ntropy_emulator.stats()["requests"]["GET /v3/batches"] - before == 6  # ceil(23 / 4) pages
    hook.wait_for_batches([b.id for b in created], poll_interval=0.05, timeout=30)
    assert len(list(hook.list_batches(status="completed", page_size=5))) == 23
    assert list(hook.list_batches(status=BatchStatus.PROCESSING)) == []
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    assert list(hook.list_batches(created_after=future)) == []
    assert len(list(hook.list_batches(created_before=future, page_size=1000))) == 23


def test_list_batches_rejects_a_bad_page_size(hook: NtropyHook) -> None:
    with pytest.raises(ValueError, match="page_size: expected 1 to 1000"):
        list(hook.list_batches(page_size=0))


def test_unknown_ids_raise_not_found_with_status_detail_and_request_id(hook: NtropyHook) -> None:
    with pytest.raises(NtropyNotFoundError) as info:
        hook.get_batch("00000000-0000-0000-0000-000000000000")
    error = info.value
    assert error.status == 404
    assert error.detail
    assert len(error.request_id) == 32 and int(error.request_id, 16) >= 0
    assert error.request_id in str(error)
    with pytest.raises(NtropyNotFoundError):
        hook.get_batch_results("no-such-batch")


def test_results_of_a_processing_batch_are_not_ready(hook: NtropyHook, ntropy_emulator, make_rows) -> None:
    ntropy_emulator.configure(items_per_second=1)
    batch = hook.create_batch(make_rows(50))
    with pytest.raises(NtropyNotReadyError) as info:
        hook.get_batch_results(batch.id)
    assert info.value.status == 409


def test_422_names_the_item_index_and_field(hook: NtropyHook, make_rows) -> None:
    rows = list(make_rows(6))
    rows[4]["amount"] = "twelve"
    with pytest.raises(NtropyValidationError) as info:
        hook.create_batch(rows)
    error = info.value
    assert error.status == 422
    assert [(e.index, e.field) for e in error.errors] == [(4, "amount")]
    assert "item 4, field amount" in str(error)


def test_wait_for_batches_reports_errored_batches_and_times_out(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    batch = hook.create_batch(make_rows(4))
    [final] = hook.wait_for_batches([batch.id], poll_interval=0.05, timeout=30)
    assert final.status is BatchStatus.ERROR
    ntropy_emulator.configure(batch_error_rate=0.0, items_per_second=1)
    slow = hook.create_batch(make_rows(100))
    with pytest.raises(NtropyTimeoutError, match=slow.id):
        hook.wait_for_batches([slow.id], poll_interval=0.05, timeout=0.2)


def test_wait_for_batches_looks_once_more_at_the_deadline(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    # A timeout shorter than the poll interval must not give up after the first look: the hook sleeps
    # until the deadline, looks again, and only then gives up.
    ntropy_emulator.configure(items_per_second=1)
    slow = hook.create_batch(make_rows(100))
    with pytest.raises(NtropyTimeoutError, match=slow.id):
        hook.wait_for_batches([slow.id], poll_interval=3600, timeout=0.2)
    assert ntropy_emulator.stats()["requests"]["GET /v3/batches/{batch_id}"] == 2


def test_a_cursor_that_repeats_ends_the_walk_instead_of_looping(
    hook: NtropyHook, async_hook, make_rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server (or proxy) that hands back the same next_cursor would make list_batches loop for ever.
    hook.create_batch(make_rows(1))
    real_parse_page = calls.parse_page
    monkeypatch.setattr(calls, "parse_page", lambda body: (real_parse_page(body)[0], "1"))
    with pytest.raises(NtropyError, match="paging cursor '1' of /v3/batches a second time"):
        list(hook.list_batches())

    async def walk() -> list:
        return [batch async for batch in async_hook.list_batches()]

    with pytest.raises(NtropyError, match="a second time"):
        asyncio.run(walk())


def test_wait_for_batches_answers_one_batch_per_id_given(
    hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    first, second = hook.create_batch(make_rows(2)), hook.create_batch(make_rows(3))
    ids = [first.id, second.id, first.id]  # a repeated id must not shift the answers against the ids
    finals = hook.wait_for_batches(ids, poll_interval=0.05, timeout=30)
    assert [batch.id for batch in finals] == ids and [batch.total for batch in finals] == [2, 3, 2]
