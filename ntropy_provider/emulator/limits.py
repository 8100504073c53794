"""The API's per-key limits, as the emulator enforces them: token buckets over a monotonic clock.

What is enforced, and which parts are documented or inferred, is written in ``docs/ntropy-api.md``
("Limits"). Three kinds of bucket, all per API key:

- **credits**: one credit per transaction, at most ``credit_capacity`` held, refilled at
  ``credit_refill_per_second`` (documented: 100,000 and 1,000/s);
- **endpoint rates**: one bucket per ``"METHOD /route"`` with the documented operations per second, a
  burst of one second's worth;
- the legacy single ``rate_limit`` (all requests of a key), kept for fault-injection tests.

The cap on batches in progress is not a bucket: :mod:`ntropy_provider.emulator.core` counts the key's
running batches. Nothing here sleeps: a refused take returns the seconds to wait, which the HTTP layer
sends as ``Retry-After``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable


def retry_after_seconds(wait: float) -> int:
    """A ``Retry-After`` value: whole seconds, rounded up, at least 1 (0 would invite a tight loop).

    :param wait: the seconds until the request can succeed.
    """
    return max(1, math.ceil(wait - 1e-9))


class TokenBuckets:
    """Token buckets by key, refilled lazily from the clock (no task per bucket).

    :param clock: the monotonic clock.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[Hashable, tuple[float, float]] = {}

    def reset(self, keep: Callable[[Hashable], bool] | None = None) -> None:
        """Forget buckets (they start full again).

        :param keep: keep the buckets whose key this accepts (forget all when omitted).
        """
        if keep is None:
            self._buckets.clear()
        else:
            self._buckets = {k: v for k, v in self._buckets.items() if keep(k)}

    def level(self, key: Hashable, rate: float, capacity: float) -> float:
        """The tokens the bucket holds now.

        :param key: the bucket.
        :param rate: tokens added per second.
        :param capacity: the most the bucket holds (a new bucket starts full).
        """
        now = self._clock()
        tokens, last = self._buckets.get(key, (capacity, now))
        return min(capacity, tokens + max(0.0, now - last) * rate)

    def take(self, key: Hashable, amount: float, rate: float, capacity: float) -> float:
        """Take ``amount`` tokens if the bucket holds them.

        :param key: the bucket.
        :param amount: the tokens wanted (at most ``capacity``).
        :param rate: tokens added per second (> 0).
        :param capacity: the most the bucket holds.
        :return: 0 when taken, else the seconds until the bucket holds ``amount`` (nothing taken).
        """
        tokens = self.level(key, rate, capacity)
        now = self._clock()
        if tokens >= amount:
            self._buckets[key] = (tokens - amount, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (amount - tokens) / rate


class RateLimiter:
    """The legacy ``rate_limit`` setting: ``rate`` requests per second per key, bursts up to ``rate``.

    :param clock: the monotonic clock.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._buckets = TokenBuckets(clock)

    def reset(self) -> None:
        """Forget every bucket."""
        self._buckets.reset()

    def acquire(self, key: str, rate: float) -> int:
        """Take one token for ``key``.

        :param key: the API key.
        :param rate: allowed requests per second (0 = unlimited).
        :return: 0 when allowed, else whole seconds to wait (>= 1) before the next request.
        """
        if rate <= 0:
            return 0
        # The bucket holds at least one token: capped at a rate below 1/s it could never fill to the
        # one token a request takes, and every request would be refused for ever.
        wait = self._buckets.take(key, 1.0, rate, max(rate, 1.0))
        return retry_after_seconds(wait) if wait > 0 else 0


class ApiLimiter:
    """The documented per-key limits: credit buckets and per-endpoint request rates.

    :param clock: the monotonic clock.
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self._buckets = TokenBuckets(clock)

    def reset(self) -> None:
        """Forget every bucket (all start full)."""
        self._buckets.reset()

    def reset_endpoint_rates(self) -> None:
        """Refill the endpoint buckets, e.g. after their rates changed (the credit buckets stay)."""
        self._buckets.reset(keep=lambda key: key[0] == "credits")  # type: ignore[index]

    def take_request(self, api_key: str, endpoint: str, rate: float) -> float:
        """Count one request to ``endpoint``.

        :param api_key: the caller's key.
        :param endpoint: ``"METHOD /route/{template}"``.
        :param rate: its operations per second.
        :return: 0 when allowed, else the seconds until the next request to it is.
        """
        return self._buckets.take(("endpoint", api_key, endpoint), 1.0, rate, max(rate, 1.0))

    def credits_available(self, api_key: str, refill_per_second: float, capacity: int) -> float:
        """The credits the key's bucket holds now.

        :param api_key: the key.
        :param refill_per_second: credits added per second.
        :param capacity: the most the bucket holds.
        """
        return self._buckets.level(("credits", api_key), refill_per_second, capacity)

    def take_credits(self, api_key: str, count: int, refill_per_second: float, capacity: int) -> float:
        """Take ``count`` credits (one per transaction) if the key's bucket holds them.

        :param api_key: the key.
        :param count: the credits wanted (at most ``capacity``).
        :param refill_per_second: credits added per second.
        :param capacity: the most the bucket holds.
        :return: 0 when taken, else the seconds until the bucket holds ``count``.
        """
        return self._buckets.take(("credits", api_key), float(count), refill_per_second, capacity)
