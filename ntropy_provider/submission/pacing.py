"""The client's side of the API's per-key limits: a credit estimate and an adaptive window.

Pure bookkeeping over a monotonic clock, no I/O: the submission driver asks "may this chunk go now,
and if not, how long until it may?" and reports what happened (a batch created, a batch ended, a 429).

**Why an estimate and an adaptive window, not a shared counter.** The API enforces its limits per key
(a credit bucket, a cap on batches in progress), and several tasks may share one key: the days of a
backfill, other DAGs, other programs. A shared counter (an Airflow pool, a database row) would only see
the tasks that use it, and would have to be released by tasks that may die; the server's 429 sees every
client. So each task keeps a local estimate that avoids most 429s when it is alone, and treats a 429 as
the truth when it is not:

* credits: a token bucket with the key's capacity and refill (``ApiLimits``), taken at each POST; a 429
  that names credits empties it, since someone else spent them, and halves the share of the refill the
  task counts as its own, which grows back a little with each POST accepted (the same additive
  increase, multiplicative decrease as the window: tasks sharing a key settle on shares of the refill
  instead of each pacing itself to all of it). A task given its share (``credit_share`` below 1: it
  knows it splits the key, e.g. a backfill day) keeps it on a 429: the siblings' first POSTs race for
  a full bucket, and a halved share made the task that lost the race the group's straggler;
* batches in progress: the window starts at ``max_open_batches`` and shrinks, on a 429 that names the
  cap, to what the server accepted (the batches this task has open, at least one); it grows back by one
  each time a batch of the task ends, up to the ceiling. Tasks sharing a key thus settle on shares that
  add up to about the cap (additive increase, multiplicative decrease, as TCP shares a link), and
  none ever fails for it: a 429 only makes a task wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ntropy_provider.api.limits import ApiLimits

#: The smallest share of the key's refill a task counts as its own after 429s for credits ...
MIN_REFILL_SHARE = 0.1
#: ... and what each accepted POST adds back to it, up to the whole refill.
REFILL_SHARE_STEP = 0.05
#: A 429 whose reason names neither limit (e.g. the per-endpoint request rate) makes the submitter
#: wait this long before the next POST.
DEFAULT_RATE_LIMIT_PAUSE = 1.0


def check_credit_share(share: float) -> None:
    """Refuse a share of the key's credits that pacing cannot work with.

    :param share: the fraction of the key's bucket and refill a task counts as its own.
    :raises ValueError: unless ``0 < share <= 1``.
    """
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError(f"credit_share: expected a number > 0 and <= 1, got {share!r}")


class CreditEstimate:
    """A client-side estimate of the key's credit bucket (one credit per transaction).

    :param limits: the key's capacity and refill rate.
    :param clock: the monotonic clock.
    :param share: the most of the key's refill this task counts as its own, and of the bucket it starts
        from (1: alone on the key; tasks that know they share it, e.g. the days of a backfill, split it).
    """

    def __init__(
        self, limits: ApiLimits, clock: Callable[[], float] = time.monotonic, share: float = 1.0
    ) -> None:
        check_credit_share(share)
        self.capacity = float(limits.credit_capacity)
        self.refill = float(limits.credit_refill_per_second)
        #: The most of the refill this task may count as its own (additive increase stops there).
        self.max_share = float(share)
        #: The share of the refill this task counts as its own now (halved by a 429 for credits).
        self.share = self.max_share
        self._clock = clock
        # A task that shares the key starts from its part of a full bucket, not the whole of it: five
        # backfill days each starting from 100,000 credits would send five bursts the bucket cannot hold.
        self._level = self.capacity * self.max_share
        self._at = clock()

    @property
    def _min_share(self) -> float:
        return min(MIN_REFILL_SHARE, self.max_share)

    def level(self) -> float:
        """The credits the bucket is estimated to hold now."""
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.refill * self.share)
        self._at = now
        return self._level

    def seconds_until(self, credits: int) -> float:
        """Seconds until the bucket is estimated to hold ``credits`` (0 when it does now).

        :param credits: the credits wanted (at most the capacity).
        """
        return max(0.0, (min(credits, self.capacity) - self.level()) / (self.refill * self.share))

    def take(self, credits: int) -> float:
        """Count credits spent by a POST (the level may go below zero: it is an estimate).

        :param credits: the transactions sent.
        :return: the level before, for :meth:`charged`.
        """
        before = self.level()
        self._level = before - credits
        return before

    def charged(self, level_before: float, seconds_in_flight: float) -> None:
        """A POST was answered: the server charged it somewhere during its flight, not when it was sent.

        A bucket that was nearly full when the POST left kept overflowing (losing refill) until the
        server charged it, while this estimate, charged at sending, counted that refill: take it back,
        assuming the latest charge (the answer's time), so that the estimate errs on the safe side.

        :param level_before: what :meth:`take` returned.
        :param seconds_in_flight: seconds from sending to the answer.
        """
        lost = level_before + seconds_in_flight * self.refill * self.share - self.capacity
        if lost > 0:
            self._level = self.level() - lost

    def accepted(self) -> None:
        """A POST was accepted: the task's share of the refill grows back a little."""
        self.level()
        self.share = min(self.max_share, self.share + REFILL_SHARE_STEP)

    def snapshot(self) -> list[float]:
        """The estimate as ``[level, unix_time, share]``, to be kept across a deferral (a new process's
        monotonic clock means nothing to this one)."""
        return [self.level(), time.time(), self.share]

    def restore(self, snapshot: list[float] | tuple[float, ...], now: float | None = None) -> None:
        """Go on from what :meth:`snapshot` kept: its level plus the refill since, not a full bucket.

        A resumed task that assumed a full bucket would send a burst the server refuses (429s).

        :param snapshot: ``[level, unix_time, share]`` (``share`` absent in older records: kept).
        :param now: the Unix time now (default: ``time.time()``).
        """
        level, at = float(snapshot[0]), float(snapshot[1])
        if len(snapshot) > 2:
            self.share = min(self.max_share, max(self._min_share, float(snapshot[2])))
        elapsed = max(0.0, (time.time() if now is None else now) - at)
        self._level = min(self.capacity, level + elapsed * self.refill * self.share)
        self._at = self._clock()

    def drain(self, owed: int = 0) -> None:
        """The server said the credits are short: someone else spends them; start from empty.

        :param owed: credits of POSTs still in flight, which the server has yet to charge (the refused
            one included: the hook sends it again).
        """
        self.level()
        self._level = min(self._level, -float(owed))
        if self.max_share < 1:
            # Its share was set to split the key with the tasks it runs beside (e.g. the days of a
            # backfill), whose first POSTs race for a full bucket: halving it would only make this task
            # the straggler of the group. Emptied, the estimate still makes it wait.
            return
        self.share = max(self._min_share, self.share / 2)


class AdaptiveWindow:
    """How many batches this task may keep in progress: shrinks on a 429, grows back as batches end.

    :param ceiling: the most (the key's ``max_open_batches``, or less by choice).
    """

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError(f"max_open_batches: expected an integer >= 1, got {ceiling!r}")
        self.ceiling = ceiling
        self.size = ceiling

    def refused(self, open_batches: int) -> None:
        """The server refused a batch for the cap: it holds no more than what we have open now.

        :param open_batches: the batches this task has in progress.
        """
        self.size = max(1, min(self.size, open_batches))

    def ended(self) -> None:
        """A batch of this task ended: one more may go, up to the ceiling."""
        self.size = min(self.ceiling, self.size + 1)


def rate_limit_cause(reason: str) -> str:
    """Which limit a 429 names: ``credits``, ``batches`` (the cap on batches in progress), ``rate`` (a
    request rate) or ``unknown`` (then the submitter assumes both credits and the cap).

    :param reason: the answer's detail or the hook's description of it.
    """
    text = reason.lower()
    if "credit" in text:
        return "credits"
    if "in progress" in text or "open batches" in text or "batches may be" in text:
        return "batches"
    if "per second" in text or "request rate" in text or "endpoint" in text:
        return "rate"
    return "unknown"
