"""NtropyAsyncHook against the emulator: every method, paging, errors, faults, a loop that keeps going."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest

from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.exceptions import (
    NtropyAuthError,
    NtropyConnectionError,
    NtropyNotFoundError,
    NtropyNotReadyError,
    NtropyValidationError,
)
from ntropy_provider.hooks import ntropy_async
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook
from ntropy_provider.hooks.retry_policy import RetryEvent


@pytest.fixture
async def async_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every ``asyncio.sleep`` made on this test's loop (the sleeps still happen)."""
    recorded: list[float] = []
    real_sleep = asyncio.sleep
    test_loop = asyncio.get_running_loop()

    async def recording_sleep(seconds: float, *args, **kwargs):
        if asyncio.get_running_loop() is test_loop:
            recorded.append(seconds)
        return await real_sleep(seconds, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    return recorded


async def _until_ended(hook: NtropyAsyncHook, batch_id: str) -> None:
    for _ in range(600):
        if (await hook.get_batch(batch_id)).is_terminal:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not end")


async def test_create_get_results_and_raw(async_hook: NtropyAsyncHook, make_rows) -> None:
    async with async_hook as hook:
        batch = await hook.create_batch(list(make_rows(12)), priority="low")
        assert (batch.total, batch.priority) == (12, "low")
        assert (await hook.get_batch(batch.id)).id == batch.id
        await _until_ended(hook, batch.id)
        results = await hook.get_batch_results(batch.id)
        assert results.status is BatchStatus.COMPLETED
        assert [r["id"] for r in results.results] == [f"t{i}" for i in range(12)]
        raw = await hook.get_batch_results_raw(batch.id)
        assert orjson.loads(raw)["results"] == results.results


async def test_calls_without_async_with_open_their_own_session(
    async_hook: NtropyAsyncHook, make_rows
) -> None:
    batch = await async_hook.create_batch(make_rows(2))
    assert (await async_hook.get_batch(batch.id)).total == 2
    assert async_hook._session is None  # nothing left open


async def test_nested_async_with_shares_one_session_and_leaks_none(async_hook: NtropyAsyncHook) -> None:
    async with async_hook as outer:
        session = outer._session
        async with async_hook as inner:
            assert inner._session is session  # not a second session that would orphan the first
        assert outer._session is session and not session.closed  # still usable by the outer block
        assert [batch async for batch in outer.list_batches()] == []  # the shared session still works
    assert session.closed and async_hook._session is None


async def test_list_batches_iterates_every_page(
    async_hook: NtropyAsyncHook, hook: NtropyHook, ntropy_emulator, make_rows
) -> None:
    created = {hook.create_batch(make_rows(1, start=i)).id for i in range(11)}
    before = ntropy_emulator.stats()["requests"].get("GET /v3/batches", 0)
    listed = [b.id async for b in async_hook.list_batches(page_size=3)]
    assert sorted(listed) == sorted(created) and len(listed) == 11
    assert ntropy_emulator.stats()["requests"]["GET /v3/batches"] - before == 4
    assert [b async for b in async_hook.list_batches(status="error")] == []


async def test_errors_are_typed(async_hook: NtropyAsyncHook, ntropy_emulator, make_rows) -> None:
    with pytest.raises(NtropyNotFoundError) as info:
        await async_hook.get_batch("no-such-batch")
    assert info.value.status == 404 and len(info.value.request_id) == 32
    ntropy_emulator.configure(items_per_second=1)
    slow = await async_hook.create_batch(make_rows(30))
    with pytest.raises(NtropyNotReadyError):
        await async_hook.get_batch_results(slow.id)
    rows = list(make_rows(3))
    rows[2]["currency"] = "DOLLARS"
    with pytest.raises(NtropyValidationError, match="item 2, field currency"):
        await async_hook.create_batch(rows)


async def test_429_storm_waits_retry_after_on_the_loop(
    async_hook: NtropyAsyncHook, ntropy_emulator, retries: list[RetryEvent], async_sleeps, make_rows
) -> None:
    ntropy_emulator.configure(rate_limit=2)
    async with async_hook as hook:
        batch = await hook.create_batch(make_rows(2))
        for _ in range(5):
            await hook.get_batch(batch.id)
    limited = [e for e in retries if e.status == 429]
    assert limited and all(e.wait == 1.0 for e in limited)
    assert ntropy_emulator.stats()["faults"]["rate_limited"] == len(limited)
    assert sorted(async_sleeps) == sorted(e.wait for e in limited)


async def test_503_bursts_and_dropped_connections_are_retried(
    async_hook: NtropyAsyncHook, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    batch = await async_hook.create_batch(make_rows(2))
    ntropy_emulator.configure(fail_rate=0.3, drop_connection_rate=0.3, seed=11)
    for _ in range(10):
        assert (await async_hook.get_batch(batch.id)).id == batch.id
    faults = ntropy_emulator.stats()["faults"]
    assert sum(1 for e in retries if e.status == 503) == faults["failed"] > 0
    # aiohttp itself repeats an idempotent request once when a reused connection was closed, so some
    # drops never reach the hook; the others are retried by it.
    assert 0 < sum(1 for e in retries if e.status is None) <= faults["dropped_connection"]


async def test_a_post_is_repeated_after_503_but_not_after_a_lost_answer(
    async_hook: NtropyAsyncHook, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    ntropy_emulator.configure(fail_rate=0.5, seed=11)
    ids = {(await async_hook.create_batch(make_rows(2, start=5 * i))).id for i in range(6)}
    assert len(ids) == 6 and ntropy_emulator.stats()["batches_created"] == 6
    assert len(retries) == ntropy_emulator.stats()["faults"]["failed"] > 0
    ntropy_emulator.configure(fail_rate=0.0, drop_connection_rate=1.0)
    with pytest.raises(NtropyConnectionError, match="not repeated"):
        await async_hook.create_batch(make_rows(2))
    assert ntropy_emulator.stats()["requests"]["POST /v3/batches"] == len(retries) + 7


async def test_budget_spent_and_bad_key(ntropy_connection, ntropy_emulator, conn_factory) -> None:
    ntropy_emulator.configure(drop_connection_rate=1.0)
    with pytest.raises(NtropyConnectionError, match="after 2 attempts"):
        await NtropyAsyncHook(ntropy_connection, max_attempts=2, backoff_base=0.01).get_batch("x")
    ntropy_emulator.configure(drop_connection_rate=0.0)
    bad = NtropyAsyncHook(conn_factory(host=ntropy_emulator.url, password="wrong-key-456"))
    with pytest.raises(NtropyAuthError) as info:
        await bad.get_batch("x")
    assert info.value.status == 401 and "wrong-key-456" not in str(info.value)


async def test_the_event_loop_keeps_running_while_a_request_waits(
    async_hook: NtropyAsyncHook, ntropy_emulator
) -> None:
    ntropy_emulator.configure(latency_ms=300)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    with pytest.raises(NtropyNotFoundError):
        await async_hook.get_batch("slow")
    stop.set()
    await task
    assert ticks > before  # other coroutines ran during the 300 ms request


async def test_results_are_decoded_off_the_event_loop(
    async_hook: NtropyAsyncHook, make_rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A full batch's results are tens of MB of JSON: decoding them on the loop would stall every trigger.
    decoded_in: list[threading.Thread] = []
    real_parse = ntropy_async.parse_batch_result

    def recording_parse(body: bytes):
        decoded_in.append(threading.current_thread())
        return real_parse(body)

    monkeypatch.setattr(ntropy_async, "parse_batch_result", recording_parse)
    async with async_hook as hook:
        batch = await hook.create_batch(make_rows(3))
        await _until_ended(hook, batch.id)
        results = await hook.get_batch_results(batch.id)
    assert [r["id"] for r in results.results] == ["t0", "t1", "t2"]
    assert len(decoded_in) == 1 and decoded_in[0] is not threading.current_thread()
