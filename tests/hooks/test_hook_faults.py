"""The retry policy at work against the emulator's faults: 429 storms, 5xx bursts, dropped connections.

Waits are measured by recording them (``on_retry`` events and the sleeps actually made), never by the clock.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from ntropy_provider.exceptions import (
    NtropyAuthError,
    NtropyConnectionError,
    NtropyError,
    NtropyQuotaError,
    NtropyRateLimitError,
    NtropyServerError,
)
from ntropy_provider.hooks.calls import Call, parse_batch
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.retry_policy import RetryEvent


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """Every ``time.sleep`` made by the hook's threads (the sleeps still happen), as (thread, seconds)."""
    recorded: list[tuple[str, float]] = []
    real_sleep = time.sleep

    def recording_sleep(seconds: float) -> None:
        name = threading.current_thread().name
        if name == "MainThread" or name.startswith("ntropy-submit"):
            recorded.append((name, seconds))
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", recording_sleep)
    return recorded


def _slept(sleeps: list[tuple[str, float]]) -> list[float]:
    return sorted(seconds for _, seconds in sleeps)


def test_429_storm_waits_exactly_retry_after(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent], sleeps, make_rows
) -> None:
    ntropy_emulator.configure(rate_limit=2)  # bursts of 2, then Retry-After: 1
    batch = hook.create_batch(make_rows(3))
    for _ in range(6):
        assert hook.get_batch(batch.id).id == batch.id
    limited = [e for e in retries if e.status == 429]
    assert limited, "the storm produced no 429"
    assert ntropy_emulator.stats()["faults"]["rate_limited"] == len(limited)  # every 429 was retried
    assert all(e.wait == 1.0 for e in limited)  # the emulator's Retry-After, to the unit
    assert _slept(sleeps) == sorted(e.wait for e in limited)  # and those waits were really slept


def test_retry_after_is_capped_and_the_budget_ends_in_a_rate_limit_error(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent], sleeps
) -> None:
    # A 429 spends no attempt of the budget (max_attempts=3), only time: the call ends when the next
    # wait would pass max_elapsed, well before the emulator's bucket refills (1 s).
    hook = NtropyHook(
        ntropy_connection, retry_after_cap=0.05, max_attempts=3, max_elapsed=0.4, on_retry=retries.append
    )
    ntropy_emulator.configure(rate_limit=1)
    hook.test_connection()  # spends the only token
    with pytest.raises(NtropyRateLimitError) as info:
        hook.get_batch("anything")
    assert info.value.status == 429 and "max_elapsed (0.4 s)" in str(info.value)
    assert len(retries) > 3 and {e.wait for e in retries} == {0.05}
    assert _slept(sleeps) == [0.05] * len(retries)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_bursts_are_retried_with_bounded_jittered_backoff(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent], sleeps, status: int, make_rows
) -> None:
    batch = hook.create_batch(make_rows(2))
    ntropy_emulator.configure(fail_rate=0.5, fail_status=status, seed=7)
    for _ in range(10):
        assert hook.get_batch(batch.id).id == batch.id
    assert len(list(hook.list_batches(page_size=1))) == 1
    failed = ntropy_emulator.stats()["faults"]["failed"]
    assert failed > 0 and [e.status for e in retries] == [status] * failed
    policy = hook.settings.retry
    for event in retries:
        ceiling = policy.backoff_base * 2 ** (event.attempt - 1)
        assert min(policy.backoff_min, ceiling) <= event.wait <= ceiling
    assert _slept(sleeps) == sorted(e.wait for e in retries)


def test_a_post_is_repeated_after_429_and_503_answers(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    ntropy_emulator.configure(fail_rate=0.5, fail_status=503, seed=7)
    batches = hook.submit_batches(make_rows(80), chunk_size=10, max_concurrency=3)
    assert [b.total for b in batches] == [10] * 8
    stats = ntropy_emulator.stats()
    assert stats["faults"]["failed"] == len(retries) > 0  # every 503 was retried
    assert stats["batches_created"] == 8  # and none twice


@pytest.mark.parametrize("status", [500, 502, 504])
def test_a_post_is_not_repeated_after_a_5xx_that_may_have_been_processed(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent], status: int, make_rows
) -> None:
    ntropy_emulator.configure(fail_rate=1.0, fail_status=status)
    with pytest.raises(NtropyServerError, match="not repeated") as info:
        hook.create_batch(make_rows(3))
    assert info.value.status == status and retries == []
    assert ntropy_emulator.stats()["requests"]["POST /v3/batches"] == 1


def test_a_post_whose_answer_is_lost_is_not_repeated(
    ntropy_connection, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    # The server stores the batch, then answers too late: a repeat would create a second, paid batch.
    ntropy_emulator.configure(create_batch_delay_ms=1500)
    hook = NtropyHook(ntropy_connection, timeout=0.3, backoff_base=0.01, on_retry=retries.append)
    with pytest.raises(NtropyConnectionError, match="not repeated") as info:
        hook.create_batch(make_rows(3))
    assert info.value.status is None and retries == []
    assert ntropy_emulator.stats()["batches_created"] == 1
    ntropy_emulator.configure(create_batch_delay_ms=0, drop_connection_rate=1.0)
    with pytest.raises(NtropyConnectionError, match="after 1 attempt"):
        hook.create_batch(make_rows(3))
    assert ntropy_emulator.stats()["requests"]["POST /v3/batches"] == 2  # one each, no repeat


def test_a_post_that_could_not_connect_is_repeated(
    conn_factory, retries: list[RetryEvent], make_rows
) -> None:
    with socket.socket() as probe:  # a loopback port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = NtropyHook(
        conn_factory(host=f"http://127.0.0.1:{port}", password="k-123456"),
        max_attempts=3,
        backoff_base=0.01,
        on_retry=retries.append,
    )
    with pytest.raises(NtropyConnectionError, match="after 3 attempts") as info:
        hook.create_batch(make_rows(1))
    assert "not repeated" not in str(info.value)
    assert [e.status for e in retries] == [None, None]


def test_5xx_beyond_the_budget_raise_a_server_error(ntropy_connection, ntropy_emulator) -> None:
    hook = NtropyHook(ntropy_connection, max_attempts=4, backoff_base=0.01)
    ntropy_emulator.configure(fail_rate=1.0)
    with pytest.raises(NtropyServerError) as info:
        hook.get_batch("x")
    assert info.value.status == 503 and len(info.value.request_id) == 32
    assert ntropy_emulator.stats()["requests"]["GET /v3/batches/{batch_id}"] == 4


def test_dropped_connections_are_retried(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent], make_rows
) -> None:
    batch = hook.create_batch(make_rows(2))
    ntropy_emulator.configure(drop_connection_rate=0.4, seed=3)
    for _ in range(10):
        assert hook.get_batch(batch.id).total == 2
    dropped = ntropy_emulator.stats()["faults"]["dropped_connection"]
    assert dropped > 0 and sum(1 for e in retries if e.status is None) == dropped


def test_a_server_that_always_drops_ends_in_a_connection_error(ntropy_connection, ntropy_emulator) -> None:
    hook = NtropyHook(ntropy_connection, max_attempts=3, backoff_base=0.01)
    ntropy_emulator.configure(drop_connection_rate=1.0)
    with pytest.raises(NtropyConnectionError) as info:
        hook.get_batch("x")
    assert info.value.status is None and "after 3 attempts" in str(info.value)
    assert ntropy_emulator.stats()["faults"]["dropped_connection"] == 3


def test_submit_batches_rides_out_a_429_storm(
    hook: NtropyHook, ntropy_emulator, retries: list[RetryEvent], sleeps, make_rows
) -> None:
    ntropy_emulator.configure(rate_limit=4)
    batches = hook.submit_batches(make_rows(120), chunk_size=10, max_concurrency=10)
    assert [b.total for b in batches] == [10] * 12
    limited = [e for e in retries if e.status == 429]
    assert limited and all(e.wait == 1.0 for e in limited)
    assert ntropy_emulator.stats()["batches_created"] == 12
    # POSTs wait in the submitting threads; the window's polls of its open batches (GET, in the calling
    # thread) are limited too and wait there.
    posted = [e for e in limited if e.method == "POST"]
    in_workers = sorted(s for name, s in sleeps if name.startswith("ntropy-submit"))
    assert in_workers == sorted(e.wait for e in posted)


def test_bad_key_fails_at_once_and_test_connection_says_why(
    conn_factory, ntropy_emulator, retries: list[RetryEvent]
) -> None:
    hook = NtropyHook(
        conn_factory(host=ntropy_emulator.url, password="wrong-key-123"), on_retry=retries.append
    )
    with pytest.raises(NtropyAuthError) as info:
        hook.get_batch("x")
    assert info.value.status == 401 and retries == []
    ok, message = hook.test_connection()
    assert not ok and "API key was refused" in message and "401" in message
    assert "wrong-key-123" not in message


def test_forbidden_key_and_out_of_credits(hook: NtropyHook, ntropy_emulator, make_rows) -> None:
    ntropy_emulator.configure(credits=5)
    with pytest.raises(NtropyQuotaError) as info:
        hook.create_batch(make_rows(10))
    assert info.value.status == 423
    ntropy_emulator.configure(forbidden_keys=[ntropy_emulator.api_key])
    with pytest.raises(NtropyAuthError) as forbidden:
        hook.get_batch("x")
    assert forbidden.value.status == 403


def test_test_connection_happy_and_unreachable(hook: NtropyHook, conn_factory) -> None:
    ok, message = hook.test_connection()
    assert ok and "accepted" in message
    with socket.socket() as probe:  # a loopback port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ok, message = NtropyHook(
        conn_factory(host=f"http://127.0.0.1:{port}", password="k-123456")
    ).test_connection()
    assert not ok and f"127.0.0.1:{port}" in message and "connection refused" in message


def test_a_redirect_is_an_error_not_a_success(
    hook: NtropyHook, async_hook, retries: list[RetryEvent]
) -> None:
    # The emulator (Starlette) redirects "/v3/batches/" to "/v3/batches" with a 307; a wrong scheme in
    # front of the real API gives the same kind of answer. Redirects are not followed (the API key
    # would be resent elsewhere), and a 3xx has no API body: the call fails naming the status, at once.
    with pytest.raises(NtropyError) as info:
        hook._request("GET", "/v3/batches/")
    assert info.value.status == 307 and "redirects are not followed" in str(info.value)
    with pytest.raises(NtropyError) as async_info:
        asyncio.run(async_hook._request("GET", "/v3/batches/"))
    assert async_info.value.status == 307
    assert retries == []


def test_a_2xx_body_that_cannot_be_read_is_an_error_naming_the_request(hook: NtropyHook, async_hook) -> None:
    # A 200 whose body is not the API's document (here: the emulator's stats, not a Batch; in real life
    # a proxy's page or a changed schema) ends in an NtropyError with the request id, not a KeyError.
    not_a_batch = Call("GET", "/_emulator/stats", parse_batch)
    with pytest.raises(
        NtropyError, match=r"cannot read: KeyError: 'id' \(X-Request-ID [0-9a-f]{32}\)"
    ) as info:
        hook._call(not_a_batch)
    assert info.value.request_id
    with pytest.raises(NtropyError, match="cannot read: KeyError"):
        asyncio.run(async_hook._call(not_a_batch))
