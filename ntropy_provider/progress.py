"""Progress of batches being waited for: rates, ETAs, the next poll interval and readable log lines.

Pure bookkeeping, no I/O: the trigger (async), the sensor and the operator (sync polling) share it, so
all three poll at the same adaptive pace and log progress the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import BatchStatus

#: How much the interval grows per poll while there is no progress to estimate from.
POLL_GROWTH = 1.5
#: Most the interval may grow per poll when it follows an ETA.
ETA_MAX_GROWTH = 4.0
#: Weight of the newest observed rate in the smoothed rate.
RATE_SMOOTHING = 0.5


def check_poll_intervals(poll_interval: float, max_poll_interval: float) -> None:
    """Refuse interval bounds that :func:`next_poll_interval` cannot work with.

    :param poll_interval: the shortest interval, in seconds.
    :param max_poll_interval: the longest interval, in seconds.
    :raises ValueError: unless ``0 < poll_interval <= max_poll_interval``.
    """
    if not 0 < poll_interval <= max_poll_interval:
        raise ValueError(
            f"expected 0 < poll_interval <= max_poll_interval, got {poll_interval} and {max_poll_interval}"
        )


def next_poll_interval(
    previous: float, eta: float | None, *, minimum: float, maximum: float, growth: float = POLL_GROWTH
) -> float:
    """The wait before the next poll.

    Without an ETA (nothing has progressed yet) the interval grows geometrically (``growth``) from
    ``minimum`` toward ``maximum``. With one, the next poll is placed just after the expected end (ETA
    plus half the minimum interval), but at most ``ETA_MAX_GROWTH`` times the previous interval: an
    early ETA rests on little progress and can be far off, so the interval earns its length as the
    estimate firms up. A batch that needs 20 minutes is soon polled every ``maximum`` seconds; a steady
    one is seen ending with one or two polls; one that slowed down is re-estimated at each poll.

    :param previous: the last interval, in seconds.
    :param eta: seconds until every batch is expected to end, ``None`` when unknown.
    :param minimum: the shortest interval, in seconds.
    :param maximum: the longest interval, in seconds.
    :param growth: factor applied per poll while no ETA is known.
    """
    candidate = previous * growth if eta is None else min(eta + minimum / 2, previous * ETA_MAX_GROWTH)
    return max(minimum, min(maximum, candidate))


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s`` or ``42s``; ``?`` when unknown.

    :param seconds: the duration.
    """
    if seconds is None:
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


@dataclass(slots=True)
class BatchProgress:
    """What is known about one batch: its last state and its observed processing rate.

    :param batch_id: the batch id.
    """

    batch_id: str
    status: str = "unknown"
    progress: int = 0
    total: int = 0
    rate: float | None = None
    _seen_at: float | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the batch has ended."""
        return self.status in (BatchStatus.COMPLETED, BatchStatus.ERROR)

    @property
    def eta(self) -> float | None:
        """Seconds until the batch is expected to end (0 when it has), ``None`` when unknown."""
        if self.is_terminal:
            return 0.0
        if not self.rate:
            return None
        return max(0.0, (self.total - self.progress) / self.rate)

    def update(self, batch: Batch, now: float) -> None:
        """Record a fresh observation of the batch.

        The rate is the smoothed progress per second between observations; before a second
        observation it is estimated from the server's own timestamps (progress since creation).

        :param batch: the batch as the API reports it.
        :param now: the observation time (seconds, monotonic).
        """
        if self._seen_at is not None and now > self._seen_at and batch.progress > self.progress:
            observed = (batch.progress - self.progress) / (now - self._seen_at)
            self.rate = (
                observed
                if self.rate is None
                else (RATE_SMOOTHING * observed + (1 - RATE_SMOOTHING) * self.rate)
            )
        elif self.rate is None and batch.progress > 0:
            elapsed = (batch.updated_at - batch.created_at).total_seconds()
            if elapsed > 0:
                self.rate = batch.progress / elapsed
        self.status = batch.status.value
        self.progress = batch.progress
        self.total = batch.total
        self._seen_at = now

    def to_event(self) -> dict[str, object]:
        """The batch's entry in a trigger event: ``id``, ``status``, ``progress``, ``total``."""
        return {"id": self.batch_id, "status": self.status, "progress": self.progress, "total": self.total}

    def describe(self) -> str:
        """``done/total (pct) rate/s ETA``, as a person wants to read it."""
        return _describe(self.progress, self.total, self.rate, self.eta, self.status)


def _describe(done: int, total: int, rate: float | None, eta: float | None, status: str) -> str:
    pct = f"{100 * done / total:.1f}%" if total else "?%"
    shown_rate = f"{rate:,.0f}/s" if rate is not None else "?/s"
    return f"{done:,}/{total:,} ({pct}) {shown_rate} ETA {format_duration(eta)} [{status}]"


class ProgressTracker:
    """The progress of a set of batches, in the order given.

    :param batch_ids: the batches waited for.
    """

    def __init__(self, batch_ids: Iterable[str]) -> None:
        self.batches: dict[str, BatchProgress] = {i: BatchProgress(i) for i in batch_ids}

    def update(self, batch: Batch, now: float) -> None:
        """Record a fresh observation of one batch.

        :param batch: the batch as the API reports it.
        :param now: the observation time (seconds, monotonic).
        """
        self.batches[batch.id].update(batch, now)

    @property
    def pending(self) -> list[str]:
        """Ids of batches that have not ended (or not been seen yet)."""
        return [i for i, b in self.batches.items() if not b.is_terminal]

    @property
    def errored(self) -> list[str]:
        """Ids of batches that ended in ``error``."""
        return [i for i, b in self.batches.items() if b.status == BatchStatus.ERROR]

    @property
    def all_terminal(self) -> bool:
        """Whether every batch has ended."""
        return not self.pending

    @property
    def eta(self) -> float | None:
        """Seconds until every batch is expected to end; ``None`` while any pending one has no rate."""
        etas = [b.eta for b in self.batches.values()]
        if any(e is None for e in etas):
            return None
        return max(etas, default=0.0)  # type: ignore[type-var]

    def summary(self) -> str:
        """The overall line: ``done/total (pct) rate/s ETA`` over every batch."""
        done = sum(b.progress for b in self.batches.values())
        total = sum(b.total for b in self.batches.values())
        rates = [b.rate for b in self.batches.values() if not b.is_terminal and b.rate is not None]
        finished = len(self.batches) - len(self.pending)
        status = f"{finished}/{len(self.batches)} batches ended"
        return _describe(done, total, sum(rates) if rates else None, self.eta, status)

    def lines(self, limit: int = 20) -> list[str]:
        """Per-batch lines for the batches still pending (at most ``limit``, then a count).

        :param limit: most lines.
        """
        pending = [self.batches[i] for i in self.pending]
        shown = [f"batch {b.batch_id}: {b.describe()}" for b in pending[:limit]]
        if len(pending) > limit:
            shown.append(f"... and {len(pending) - limit} more pending batches")
        return shown

    def to_event(self) -> list[dict[str, object]]:
        """Every batch's entry for a trigger event, in the order given."""
        return [b.to_event() for b in self.batches.values()]
