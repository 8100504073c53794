"""SubmissionWindowTrigger: wait, in the triggerer, until the next chunk of a submission can go.

A deferrable SubmitBatchOperator whose next chunk must wait (for a batch of its window to end, or for
the key's credits to refill) defers with this trigger instead of sleeping in a worker slot. The
trigger fires as soon as one of the window's batches has ended or the credit estimate says the chunk
fits, whichever comes first; the task then resumes and submits the next chunks.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.exceptions import NtropyError
from ntropy_provider.progress import BatchProgress, check_poll_intervals, format_duration
from ntropy_provider.triggers.batch import ASYNC_TRANSIENT_ERRORS, POLL_JITTER

#: ``reason`` values of a ``ready`` event.
READY_SLOT = "slot"
READY_CREDITS = "credits"


class SubmissionWindowTrigger(BaseTrigger):
    """Fire when a batch of ``batch_ids`` has ended, or at ``wake_at``, or at the deadline.

    Entirely asyncio and the async hook: nothing in :meth:`run` blocks the triggerer's loop. Each poll
    is one list request of the key's batches in progress, however many are watched; the next poll is
    placed just after the earliest expected end (from the batches' progress), between ``poll_interval``
    and ``max_poll_interval``, never after ``wake_at``. Transient API errors only delay the next poll.

    The event's payload: ``status`` (``ready``, ``timeout`` or ``error``), ``reason`` (``slot``: a batch
    ended, ``credits``: ``wake_at`` passed), ``ended_batch_ids`` and ``message``.

    :param batch_ids: the window's batches in progress (may be empty when only credits are awaited).
    :param ntropy_conn_id: the Airflow connection of the Ntropy API (only its id is stored).
    :param wake_at: when the credits are expected to suffice (Unix time, seconds); ``None``: never.
    :param deadline: absolute end of the wait (Unix time, seconds); ``None``: no limit.
    :param poll_interval: shortest interval between polls, in seconds.
    :param max_poll_interval: longest interval between polls, in seconds.
    """

    def __init__(
        self,
        batch_ids: Sequence[str],
        ntropy_conn_id: str = "ntropy_default",
        wake_at: float | None = None,
        deadline: float | None = None,
        poll_interval: float = 1.0,
        max_poll_interval: float = 30.0,
    ) -> None:
        super().__init__()
        if not batch_ids and wake_at is None:
            raise ValueError("expected batch_ids to watch or a wake_at time: nothing would ever fire")
        check_poll_intervals(poll_interval, max_poll_interval)
        self.batch_ids = list(batch_ids)
        self.ntropy_conn_id = ntropy_conn_id
        self.wake_at = wake_at
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and exactly the constructor's arguments (ids and times; no secret)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_ids": list(self.batch_ids),
                "ntropy_conn_id": self.ntropy_conn_id,
                "wake_at": self.wake_at,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
            },
        )

    def _make_hook(self) -> Any:
        from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook

        return NtropyAsyncHook(ntropy_conn_id=self.ntropy_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until a batch ends, ``wake_at`` or the deadline passes; yield one event."""
        progress = {batch_id: BatchProgress(batch_id) for batch_id in self.batch_ids}
        interval = self.poll_interval
        async with self._make_hook() as hook:
            while True:
                if self.wake_at is not None and time.time() >= self.wake_at:
                    yield self._event("ready", READY_CREDITS, [], "The credits are expected to suffice")
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event("timeout", "timeout", [], "Deadline reached while waiting to submit")
                    return
                if progress:
                    fatal, transient = await self._poll(hook, progress)
                    if fatal is not None:
                        yield self._event("error", "api_error", [], fatal)
                        return
                    ended = [i for i, p in progress.items() if p.is_terminal]
                    if ended:
                        message = f"{len(ended)} batch(es) of the window ended: a slot is free"
                        yield self._event("ready", READY_SLOT, ended, message)
                        return
                    interval = self._next_interval(progress, interval, transient)
                else:
                    interval = self.max_poll_interval
                sleep_for = self._sleep_for(interval)
                self.log.info(
                    "Waiting to submit: %s; next look in %.1f s", self._waiting_for(progress), sleep_for
                )
                await asyncio.sleep(sleep_for)

    def _waiting_for(self, progress: dict[str, BatchProgress]) -> str:
        """What the submission waits for, in words: credits (until when) or a slot (the earliest ETA)."""
        if self.wake_at is not None and not progress:
            return f"credits, expected to suffice in {format_duration(max(0.0, self.wake_at - time.time()))}"
        etas = [p.eta for p in progress.values() if p.eta is not None]
        soonest = f", the first expected to end in {format_duration(min(etas))}" if etas else ""
        done = sum(p.progress for p in progress.values())
        total = sum(p.total for p in progress.values())
        rows = f" ({done:,}/{total:,} rows enriched)" if total else ""
        return f"a slot: {len(progress)} batch(es) of the window in progress{rows}{soonest}"

    def _next_interval(self, progress: dict[str, BatchProgress], previous: float, transient: bool) -> float:
        if transient:
            return min(self.max_poll_interval, previous * 2)
        etas = [p.eta for p in progress.values() if p.eta is not None]
        if not etas:
            return min(self.max_poll_interval, previous * 1.5)
        return max(self.poll_interval, min(self.max_poll_interval, min(etas) + self.poll_interval / 2))

    def _sleep_for(self, interval: float) -> float:
        # Up to 10% later: windows deferred together (a backfill) drift apart; never past wake_at or
        # the deadline.
        sleep_for = interval * random.uniform(1, 1 + POLL_JITTER)
        for limit in (self.wake_at, self.deadline):
            if limit is not None:
                sleep_for = min(sleep_for, max(0.0, limit - time.time()))
        return sleep_for

    async def _poll(self, hook: Any, progress: dict[str, BatchProgress]) -> tuple[str | None, bool]:
        """One list request of the key's batches in progress, however many are watched; a watched batch
        missing from it has ended, which one GET confirms (the list may lag a batch just created).

        :return: the message of a fatal error, and whether an error was transient.
        """
        try:
            processing = {
                batch.id: batch async for batch in hook.list_batches(status=BatchStatus.PROCESSING.value)
            }
        except Exception as err:  # sorted into transient and fatal below
            return self._sort_error("the batches in progress", err)
        now = time.monotonic()
        transient = False
        for batch_id, batch_progress in progress.items():
            batch = processing.get(batch_id)
            if batch is None:
                try:
                    batch = await hook.get_batch(batch_id)
                except Exception as err:
                    fatal, transient_error = self._sort_error(f"batch {batch_id}", err)
                    if fatal is not None:
                        return fatal, transient
                    transient = transient or transient_error
                    continue
            batch_progress.update(batch, now)
        return None, transient

    def _sort_error(self, what: str, err: BaseException) -> tuple[str | None, bool]:
        if isinstance(err, ASYNC_TRANSIENT_ERRORS):
            self.log.warning("Transient error polling %s (%s)", what, err)
            return None, True
        if isinstance(err, NtropyError):
            return f"Cannot watch {what}: {type(err).__name__}: {err}", False
        return f"Unexpected error while polling {what}: {err!r}", False

    def _event(self, status: str, reason: str, ended: list[str], message: str) -> TriggerEvent:
        self.log.info("%s", message)
        return TriggerEvent(
            {"status": status, "reason": reason, "ended_batch_ids": ended, "message": message}
        )
