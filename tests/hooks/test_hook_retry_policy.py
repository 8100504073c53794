"""The retry policy's decisions, without a network or a clock."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from ntropy_provider.hooks.retry_policy import Attempts, RetryPolicy, is_retryable, parse_retry_after


def _always(value: float):
    return lambda: value


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 423])
def test_client_errors_are_never_retried(status: int) -> None:
    assert RetryPolicy().delay(attempt=1, elapsed=0, status=status) is None
    assert not is_retryable(status)


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_transient_failures_are_retried(status: int | None) -> None:
    assert RetryPolicy().delay(attempt=1, elapsed=0, status=status) is not None
    assert is_retryable(status)


def test_429_waits_exactly_retry_after() -> None:
    policy = RetryPolicy()
    assert policy.delay(attempt=1, elapsed=0, status=429, retry_after="7") == 7.0
    assert policy.delay(attempt=3, elapsed=0, status=429, retry_after="0.25") == 0.25


def test_429_retry_after_is_capped() -> None:
    policy = RetryPolicy(retry_after_cap=5)
    assert policy.delay(attempt=1, elapsed=0, status=429, retry_after="3600") == 5.0


def test_429_without_retry_after_backs_off() -> None:
    policy = RetryPolicy(backoff_base=2, backoff_min=0)
    assert policy.delay(attempt=1, elapsed=0, status=429, retry_after=None, rand=_always(0.5)) == 1.0
    assert policy.delay(attempt=1, elapsed=0, status=429, retry_after="soon", rand=_always(0.5)) == 1.0


def test_backoff_doubles_with_full_jitter_and_is_bounded() -> None:
    policy = RetryPolicy(backoff_base=1, backoff_min=0.1, backoff_max=10)
    ceilings = [policy.backoff(retry, rand=_always(0.999999)) for retry in range(1, 8)]
    assert ceilings == pytest.approx([1, 2, 4, 8, 10, 10, 10], rel=1e-5)
    assert policy.backoff(3, rand=_always(0.0)) == 0.1  # never below backoff_min
    assert policy.backoff(3, rand=_always(0.5)) == 2.0


def test_backoff_stays_bounded_after_very_many_retries() -> None:
    # A large attempt budget with a short backoff_max is legitimate; 2 ** 1100 must not overflow.
    policy = RetryPolicy(max_attempts=5000, backoff_min=0, backoff_max=0.01)
    assert policy.backoff(1100, rand=_always(0.5)) == 0.005
    assert policy.delay(attempt=4000, elapsed=0, status=503, rand=_always(0.5)) == 0.005


def test_jitter_spreads_waits() -> None:
    policy = RetryPolicy(backoff_base=1, backoff_max=60)
    waits = {policy.delay(attempt=4, elapsed=0, status=503) for _ in range(50)}
    assert len(waits) > 10
    assert all(0.1 <= w <= 8 for w in waits)


def test_attempt_budget_is_spent() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.delay(attempt=2, elapsed=0, status=503) is not None
    assert policy.delay(attempt=3, elapsed=0, status=503) is None
    assert RetryPolicy(max_attempts=1).delay(attempt=1, elapsed=0, status=None) is None


def test_time_budget_is_spent_before_a_wait_that_would_overrun_it() -> None:
    policy = RetryPolicy(max_elapsed=10)
    assert policy.delay(attempt=1, elapsed=2, status=429, retry_after="8") == 8
    assert policy.delay(attempt=1, elapsed=2.5, status=429, retry_after="8") is None


def test_retry_after_as_http_date() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("-3") == 0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_policy_from_settings_later_sources_win_and_bad_values_are_named() -> None:
    policy = RetryPolicy.from_settings(
        {"max_attempts": "4", "retry_after_cap": 30, "unrelated": "x"},
        {"max_attempts": 6, "max_elapsed": None},
    )
    assert (policy.max_attempts, policy.retry_after_cap, policy.max_elapsed) == (6, 30.0, 600.0)
    with pytest.raises(ValueError, match="max_elapsed: expected a number, got 'soon'"):
        RetryPolicy.from_settings({"max_elapsed": "soon"})
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


def test_attempts_give_a_fresh_request_id_each_time_and_report_the_wait() -> None:
    ids = iter(f"{n:032x}" for n in itertools.count(1))
    clock = iter([0.0, 1.0, 2.0, 3.0]).__next__
    attempts = Attempts(
        "POST", "/v3/batches", RetryPolicy(max_attempts=2), new_request_id=lambda: next(ids), clock=clock
    )
    first = attempts.begin()
    event = attempts.failed(status=429, retry_after="3", reason="HTTP 429")
    assert event is not None
    assert (event.attempt, event.wait, event.status, event.request_id) == (1, 3.0, 429, first)
    second = attempts.begin()
    assert second != first and len(second) == 32
    # The 429 spent no budget: of max_attempts=2, two 503s still get one retry, not none.
    assert attempts.failed(status=503, retry_after=None, reason="HTTP 503") is not None
    attempts.begin()
    assert attempts.failed(status=503, retry_after=None, reason="HTTP 503") is None  # budget: 2 failures


def test_backoff_min_never_lifts_a_wait_above_the_ceiling() -> None:
    policy = RetryPolicy(backoff_base=0.02, backoff_min=0.1)
    assert policy.backoff(1, rand=_always(0.0)) == 0.02
    assert policy.backoff(4, rand=_always(0.0)) == 0.1


def test_a_post_is_repeated_only_when_the_server_certainly_did_not_act() -> None:
    from ntropy_provider.hooks.retry_policy import may_repeat

    assert may_repeat("POST", 429, reached_server=True)
    assert may_repeat("POST", 503, reached_server=True)
    assert may_repeat("POST", None, reached_server=False)  # could not connect
    assert not may_repeat("POST", None, reached_server=True)  # dropped, or read timeout
    for status in (500, 502, 504):
        assert not may_repeat("post", status, reached_server=True)
    assert may_repeat("GET", None, reached_server=True) and may_repeat("PATCH", 504, reached_server=True)
    attempts = Attempts("POST", "/v3/batches", RetryPolicy(), new_request_id=lambda: "0" * 32)
    attempts.begin()
    assert attempts.failed(status=None, retry_after=None, reason="ReadTimeout") is None
    assert attempts.unsafe_to_repeat
    assert attempts.failed(status=503, retry_after=None, reason="HTTP 503") is not None
    assert not attempts.unsafe_to_repeat
