"""The retry policy of the Ntropy hooks: one set of decisions shared by the sync and the async hook.

What is retried, and how long to wait:

* ``429`` means "not yet" (a rate limit or the credit bucket, nothing was processed): wait the
  ``Retry-After`` the server sent (capped by ``retry_after_cap``), or, when the header is missing or
  unreadable (older docs: the quota is used up), the normal backoff, counted over the 429s in a row.
  A 429 never spends the failure budget (``max_attempts``); only ``max_elapsed`` bounds it.
* ``500``, ``502``, ``503``, ``504`` and connection errors/timeouts: exponential backoff with full jitter,
  ``uniform(0, ceiling)`` with ``ceiling = min(backoff_max, backoff_base * 2 ** (retry - 1))``, never
  below ``min(backoff_min, ceiling)``; each spends one of ``max_attempts``.
* anything else: never (a 4xx will not get better by asking again; ``423``, out of credits, is a billing
  state that only a person can change).

A ``POST`` creates something (a batch, a holder, a webhook): repeating one that the server may have
processed would create it twice (a paid duplicate batch the caller never hears of). So a ``POST`` is
retried only when the server certainly did not act on it: after a ``429`` or ``503`` answer, or a
failure to connect. A dropped connection, a read timeout or another 5xx ends the call at once
(:func:`may_repeat`); the SubmitBatchOperator reconciles such a chunk on its next try.

The budget is spent when ``max_attempts`` requests failed (429s not counted) or when the next wait would
end more than ``max_elapsed`` seconds after the first request started, so that a call never waits for
ever. The policy only decides; the hooks sleep (``time.sleep`` or ``asyncio.sleep``), which keeps the
decisions testable without a clock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

#: Statuses worth another attempt with backoff (429 is handled apart: it says how long to wait).
RETRYABLE_SERVER_STATUSES: frozenset[int] = frozenset({500, 502, 503, 504})
RATE_LIMITED_STATUS = 429
#: Answers after which even a POST may be repeated: the server says it did not process the request.
POST_REPEATABLE_STATUSES: frozenset[int] = frozenset({429, 503})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry a request and how long to wait first.

    :param max_attempts: most requests made for one call, the first included (>= 1).
    :param max_elapsed: most seconds from the first request's start to the start of the last retry.
    :param backoff_base: the first backoff's upper bound, in seconds; doubles on every retry.
    :param backoff_min: the shortest backoff, in seconds (jitter never goes below it, nor it above the
        current ceiling).
    :param backoff_max: the longest backoff, in seconds.
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds; a larger value is cut to it.
    """

    max_attempts: int = 10
    max_elapsed: float = 600.0
    backoff_base: float = 1.0
    backoff_min: float = 0.1
    backoff_max: float = 60.0
    retry_after_cap: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts: expected an integer >= 1, got {self.max_attempts!r}")
        for name in ("max_elapsed", "backoff_base", "backoff_min", "backoff_max", "retry_after_cap"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")

    @classmethod
    def from_settings(cls, *sources: Mapping[str, Any] | None) -> RetryPolicy:
        """Build a policy from connection extras and arguments; later sources win, ``None`` values skip.

        :param sources: mappings holding any of :data:`POLICY_EXTRAS` (other keys are ignored).
        :raises ValueError: naming the setting whose value is not a number.
        """
        values: dict[str, Any] = {}
        for source in sources:
            for name, type_ in POLICY_EXTRAS.items():
                if source is None or source.get(name) is None:
                    continue
                raw = source[name]
                try:
                    values[name] = type_(raw)
                except (TypeError, ValueError):
                    raise ValueError(f"{name}: expected a number, got {raw!r}") from None
        return cls(**values)

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy of this policy with some settings changed.

        :param changes: settings to change.
        """
        return dataclasses.replace(self, **changes)

    def backoff(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """The jittered exponential backoff before the ``retry``-th retry (1 for the first).

        :param retry: which retry this is, from 1.
        :param rand: a source of uniform numbers in [0, 1) (injectable for tests).
        """
        # The exponent is capped: past ~1024 retries 2 ** n no longer fits a float (OverflowError), and
        # a budget of that many attempts with a small backoff_max is a legitimate setting.
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(max(retry - 1, 0), 64))
        return max(min(self.backoff_min, ceiling), ceiling * rand())

    def delay(
        self,
        *,
        attempt: int,
        elapsed: float,
        status: int | None,
        retry_after: str | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """How long to wait before the next attempt, or ``None`` to give up.

        :param attempt: for a 429, how many 429s came in a row (it only sizes the backoff when no
            ``Retry-After`` came: a 429 spends no budget); otherwise how many requests of this call failed
            (1 after the first).
        :param elapsed: seconds since the first request started.
        :param status: the HTTP status of the last answer, ``None`` for a connection error or timeout.
        :param retry_after: the ``Retry-After`` header of the last answer, if any.
        :param rand: a source of uniform numbers in [0, 1) (injectable for tests).
        """
        if not is_retryable(status):
            return None
        if status != RATE_LIMITED_STATUS and attempt >= self.max_attempts:
            return None
        wait: float | None = None
        if status == RATE_LIMITED_STATUS:
            wait = parse_retry_after(retry_after)
            if wait is not None:
                wait = min(wait, self.retry_after_cap)
        if wait is None:
            wait = self.backoff(attempt, rand)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait


#: Connection extras that tune the policy (its fields), with the type each expects (its default's).
POLICY_EXTRAS: dict[str, type] = {spec.name: type(spec.default) for spec in dataclasses.fields(RetryPolicy)}


def is_retryable(status: int | None) -> bool:
    """Whether an answer with this status (``None``: no answer) may succeed when asked again.

    :param status: the HTTP status, or ``None`` for a connection error or timeout.
    """
    return status is None or status == RATE_LIMITED_STATUS or status in RETRYABLE_SERVER_STATUSES


def may_repeat(method: str, status: int | None, *, reached_server: bool) -> bool:
    """Whether repeating a failed request cannot create anything twice.

    :param method: the HTTP method; only ``POST`` is not idempotent in this API.
    :param status: the failed answer's status, ``None`` when no answer came.
    :param reached_server: for ``status=None``: whether the request may have reached the server (``False``
        only when the connection could not even be made).
    """
    if method.upper() != "POST":
        return True
    if status is None:
        return not reached_server
    return status in POST_REPEATABLE_STATUSES


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header (delta-seconds or an HTTP date).

    :param value: the header's value.
    :param now: the current time, for an HTTP date (defaults to now, UTC).
    :return: seconds (>= 0), or ``None`` when the header is missing or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What a hook reports (to ``on_retry`` and its log) before it waits and asks again.

    :param method: the HTTP method.
    :param path: the API path, e.g. ``/v3/batches``.
    :param attempt: how many requests were made so far for this call.
    :param status: the status of the failed answer, ``None`` for a connection error or timeout.
        A ``429`` spends no budget: see :attr:`rate_limited`.
    :param wait: seconds the hook waits before the next attempt.
    :param request_id: the ``X-Request-ID`` of the failed request.
    :param reason: a short description of the failure.
    """

    method: str
    path: str
    attempt: int
    status: int | None
    wait: float
    request_id: str
    reason: str

    @property
    def rate_limited(self) -> bool:
        """Whether the API said "not yet" (429): a wait that spends no failure budget."""
        return self.status == RATE_LIMITED_STATUS


class Attempts:
    """One logical call across its attempts: a fresh request id per attempt, the budget, the verdicts.

    The sync and the async hook both drive their request loop with it, so that they decide alike.

    :param method: the HTTP method.
    :param path: the API path.
    :param policy: the retry policy.
    :param clock: a monotonic clock (injectable for tests).
    :param new_request_id: makes a fresh ``X-Request-ID``.
    """

    def __init__(
        self,
        method: str,
        path: str,
        policy: RetryPolicy,
        *,
        new_request_id: Callable[[], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.method = method
        self.path = path
        self.policy = policy
        self.count = 0
        #: Failed requests that spend the budget (everything but 429).
        self.failures = 0
        #: 429 answers in a row (sizes the backoff of a 429 without ``Retry-After``).
        self.rate_limited_in_a_row = 0
        self.request_id = ""
        #: Whether the last failure ended the call because repeating it might create something twice.
        self.unsafe_to_repeat = False
        self._clock = clock
        self._new_request_id = new_request_id
        self._started = clock()

    @property
    def elapsed(self) -> float:
        """Seconds since the call's first request started."""
        return self._clock() - self._started

    def begin(self) -> str:
        """Start an attempt.

        :return: the attempt's fresh ``X-Request-ID``.
        """
        self.count += 1
        self.request_id = self._new_request_id()
        return self.request_id

    def failed(
        self, *, status: int | None, retry_after: str | None, reason: str, reached_server: bool = True
    ) -> RetryEvent | None:
        """Decide after a failed attempt.

        :param status: the answer's status, ``None`` when no answer came.
        :param retry_after: the answer's ``Retry-After`` header.
        :param reason: a short description of the failure (for the log and ``on_retry``).
        :param reached_server: for ``status=None``: whether the request may have reached the server.
        :return: the retry to make (with its wait), or ``None`` when the call has failed for good.
        """
        self.unsafe_to_repeat = not may_repeat(self.method, status, reached_server=reached_server)
        if self.unsafe_to_repeat:
            return None
        if status == RATE_LIMITED_STATUS:
            self.rate_limited_in_a_row += 1
            counted = self.rate_limited_in_a_row
        else:
            self.rate_limited_in_a_row = 0
            self.failures += 1
            counted = self.failures
        wait = self.policy.delay(
            attempt=counted, elapsed=self.elapsed, status=status, retry_after=retry_after
        )
        if wait is None:
            return None
        return RetryEvent(
            method=self.method,
            path=self.path,
            attempt=self.count,
            status=status,
            wait=wait,
            request_id=self.request_id,
            reason=reason,
        )
