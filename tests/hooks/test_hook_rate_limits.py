"""Rate limits and credits in the hooks' retry policy, against the emulator over loopback.

A 429 means "not yet": it waits (``Retry-After``, capped) without spending ``max_attempts``, bounded by
``max_elapsed``; a 429 without ``Retry-After`` backs off; a 423 (out of prepaid credits) fails at once.
The key's limits and the credit ceiling are read from the connection's extras. Waits are small settings
and are checked by recording them, never by the clock.
"""

from __future__ import annotations

import asyncio

import pytest

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.wire import TRANSACTIONS_OPERATION
from ntropy_provider.exceptions import (
    NtropyOutOfCreditsError,
    NtropyQuotaError,
    NtropyRateLimitError,
    NtropyServerError,
)
from ntropy_provider.hooks.calls import create_batch_body
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook
from ntropy_provider.hooks.retry_policy import Attempts, RetryEvent, RetryPolicy
from ntropy_provider.submission.chunks import iter_chunks


# ------------------------------------------------------------------ the policy's decisions
def test_a_429_never_spends_the_failure_budget_only_time() -> None:
    policy = RetryPolicy(max_attempts=1, max_elapsed=10)
    assert policy.delay(attempt=500, elapsed=0, status=429, retry_after="2") == 2.0
    assert policy.delay(attempt=500, elapsed=9, status=429, retry_after="2") is None  # past max_elapsed
    assert policy.delay(attempt=1, elapsed=0, status=503) is None  # a real failure keeps its budget


def test_429s_without_retry_after_back_off_bounded_and_do_not_hide_real_failures() -> None:
    ids = iter(str(n).zfill(32) for n in range(100))
    policy = RetryPolicy(max_attempts=2, backoff_base=1, backoff_min=0, backoff_max=4, max_elapsed=1e9)
    attempts = Attempts("POST", "/v3/batches", policy, new_request_id=lambda: next(ids), clock=lambda: 0.0)
    waits = []
    for _ in range(6):
        attempts.begin()
        event = attempts.failed(status=429, retry_after=None, reason="HTTP 429")
        assert event is not None and event.rate_limited
        waits.append(event.wait)
    assert all(0 <= wait <= 4 for wait in waits)  # the normal backoff, never above backoff_max
    assert attempts.failures == 0 and not attempts.unsafe_to_repeat  # a 429 to a POST: nothing created
    attempts.begin()
    assert attempts.failed(status=503, retry_after=None, reason="HTTP 503") is not None
    attempts.begin()
    assert attempts.failed(status=503, retry_after=None, reason="HTTP 503") is None  # 2 real failures


# ------------------------------------------------------------------ against the emulator
def test_sync_429s_wait_past_max_attempts_and_the_call_succeeds(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    hook = NtropyHook(
        ntropy_connection, max_attempts=1, retry_after_cap=0.05, max_elapsed=30, on_retry=retries.append
    )
    batch = hook.create_batch(make_rows(2))
    ntropy_emulator.configure(rate_limit=1)  # one request per second, Retry-After: 1 (capped to 0.05)
    for _ in range(2):  # the second waits for the bucket
        assert hook.get_batch(batch.id).id == batch.id
    assert len(retries) > 1  # more retries than max_attempts=1 would allow for a real failure
    assert {e.status for e in retries} == {429} and {e.wait for e in retries} == {0.05}
    assert ntropy_emulator.stats()["faults"]["rate_limited"] == len(retries)


def test_a_429_to_a_post_is_repeated_and_creates_one_batch(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    hook = NtropyHook(ntropy_connection, max_attempts=1, backoff_base=0.01, on_retry=retries.append)
    ntropy_emulator.configure(fail_rate=0.7, fail_status=429, seed=3)  # 429s without Retry-After
    batch = hook.create_batch(make_rows(4))
    assert batch.total == 4
    assert ntropy_emulator.stats()["batches_created"] == 1
    assert retries and all(e.status == 429 for e in retries)


def test_429_without_retry_after_backs_off_until_max_elapsed(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent]
) -> None:
    hook = NtropyHook(
        ntropy_connection,
        max_attempts=1,
        backoff_base=0.01,
        backoff_max=0.02,
        max_elapsed=0.3,
        on_retry=retries.append,
    )
    ntropy_emulator.configure(fail_rate=1.0, fail_status=429)
    with pytest.raises(NtropyRateLimitError, match=r"max_elapsed \(0.3 s\)") as info:
        hook.get_batch("x")
    assert info.value.status == 429
    assert len(retries) > 1 and all(e.wait <= 0.02 for e in retries)


def test_5xx_still_spend_the_attempt_budget(ntropy_connection, ntropy_emulator) -> None:
    hook = NtropyHook(ntropy_connection, max_attempts=2, backoff_base=0.01)
    ntropy_emulator.configure(fail_rate=1.0, fail_status=503)
    with pytest.raises(NtropyServerError, match="after 2 attempts"):
        hook.get_batch("x")


async def test_async_429s_wait_past_max_attempts_and_the_call_succeeds(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    hook = NtropyAsyncHook(
        ntropy_connection, max_attempts=1, retry_after_cap=0.05, max_elapsed=30, on_retry=retries.append
    )
    async with hook:
        batch = await hook.create_batch(make_rows(2))
        ntropy_emulator.configure(rate_limit=1)
        for _ in range(2):  # the second waits for the bucket
            assert (await hook.get_batch(batch.id)).id == batch.id
    assert len(retries) > 1 and {e.status for e in retries} == {429}
    assert {e.wait for e in retries} == {0.05}


def test_out_of_credits_fails_at_once_sync_and_async(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    ntropy_emulator.configure(credits=5)
    hook = NtropyHook(ntropy_connection, on_retry=retries.append)
    with pytest.raises(NtropyOutOfCreditsError, match="out of prepaid credits") as info:
        hook.create_batch(make_rows(10))
    assert isinstance(info.value, NtropyQuotaError) and info.value.status == 423
    assert "not retried" in str(info.value)

    async def create() -> None:
        await NtropyAsyncHook(ntropy_connection, on_retry=retries.append).create_batch(make_rows(10))

    with pytest.raises(NtropyOutOfCreditsError, match="out of prepaid credits"):
        asyncio.run(create())
    assert retries == []
    assert ntropy_emulator.stats()["requests"]["POST /v3/batches"] == 2  # one request each, no retry


# ------------------------------------------------------------------ limits from the connection
def test_api_limits_and_max_credits_come_from_the_connection(conn_factory, ntropy_emulator) -> None:
    default = NtropyHook(conn_factory(host=ntropy_emulator.url, password="k-1"))
    assert default.api_limits == ApiLimits() and default.max_credits is None
    extras = {
        "max_open_batches": 25,
        "credit_capacity": "500000",
        "extra__ntropy__credit_refill_per_second": "2500.5",
        "max_credits": "1000000",
    }
    conn_id = conn_factory(host=ntropy_emulator.url, password="k-1", extra=extras)
    expected = ApiLimits(max_open_batches=25, credit_capacity=500_000, credit_refill_per_second=2500.5)
    hook = NtropyHook(conn_id)
    assert hook.api_limits == expected and hook.max_credits == 1_000_000

    async def read() -> tuple[ApiLimits, int | None]:
        async_hook = NtropyAsyncHook(conn_id)
        with pytest.raises(RuntimeError, match="not read yet"):
            async_hook.api_limits  # noqa: B018 - reading it is the test
        async with async_hook:
            return async_hook.api_limits, async_hook.max_credits

    assert asyncio.run(read()) == (expected, 1_000_000)


@pytest.mark.parametrize(
    ("extra", "value"),
    [
        ("max_open_batches", 0),
        ("credit_capacity", "lots"),
        ("credit_refill_per_second", -1),
        ("max_credits", 0),
        ("max_credits", "1.5"),
    ],
)
def test_a_bad_limit_extra_is_refused_naming_the_connection_and_the_extra(
    conn_factory, ntropy_emulator, extra: str, value: object
) -> None:
    conn_id = conn_factory(host=ntropy_emulator.url, password="k-1", extra={extra: value})
    with pytest.raises(ValueError, match=rf"Connection '{conn_id}': extra {extra}: expected"):
        _ = NtropyHook(conn_id).settings

    async def read() -> None:
        await NtropyAsyncHook(conn_id).get_settings()

    with pytest.raises(ValueError, match=rf"Connection '{conn_id}': extra {extra}"):
        asyncio.run(read())


# ------------------------------------------------------------------ one body builder
def test_create_batch_and_submit_batches_build_the_same_body(make_rows) -> None:
    rows = list(make_rows(600))
    [chunk] = iter_chunks(rows, 1000, priority="low")
    assert chunk.body == create_batch_body(rows, TRANSACTIONS_OPERATION, "low")
