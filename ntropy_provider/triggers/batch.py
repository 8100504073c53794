"""BatchTrigger: wait, in the triggerer, for any number of Ntropy batches to end."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
from airflow.triggers.base import BaseTrigger, TriggerEvent

from ntropy_provider.api.models import Batch
from ntropy_provider.exceptions import TRANSIENT_ERRORS, NtropyError
from ntropy_provider.hooks.connection import DEFAULT_CONN_ID
from ntropy_provider.progress import ProgressTracker, check_poll_intervals, next_poll_interval

#: Errors the deferred wait absorbs: the provider's transient errors, plus the async transport's own
#: exceptions should one escape the async hook's translation.
ASYNC_TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    *TRANSIENT_ERRORS,
    aiohttp.ClientError,
    asyncio.TimeoutError,
)

#: From this many batches still pending on, a poll reads them from one list request of the key's newest
#: batches (a GET each only for those not among them): a GET per batch would spend the per-batch
#: endpoint's 20 requests per second per key, shared by every task on the key, in 2 s for 40 batches.
LIST_FROM_PENDING = 3

#: Relative random spread of each wait between polls.
POLL_JITTER = 0.1

#: ``termination_reason`` values of the event.
REASON_COMPLETED = "completed"
REASON_BATCH_ERROR = "batch_error"
REASON_TIMEOUT = "timeout"
REASON_API_ERROR = "api_error"


class BatchTrigger(BaseTrigger):
    """Wait for every batch in ``batch_ids`` to end (``completed`` or ``error``), then fire one event.

    One trigger waits for any number of batches (a backfill of 80 batches is one trigger, not 80),
    entirely with asyncio and the async hook: nothing in :meth:`run` blocks the triggerer's loop.

    Polling adapts: the first check is immediate, then the interval grows from ``poll_interval``
    toward ``max_poll_interval`` and, once progress is observed, follows the ETA (the next check is
    just after the expected end, at most ``max_poll_interval`` away; up to 10% random delay spreads
    triggers deferred together). Transient failures (5xx, 429, connection errors) are logged and
    retried at the next poll with a doubled interval; they never end the wait. Progress is logged once
    per poll, overall and per pending batch, as ``done/total (pct) rate/s ETA``.

    The event's payload: ``status`` (``success`` when every batch completed, ``error`` when any ended
    in ``error`` or the API refused the wait, ``timeout`` at the deadline), ``termination_reason``
    (``completed``, ``batch_error``, ``api_error``, ``timeout``), ``message``, ``batch_ids``,
    ``errored_batch_ids`` and ``batches`` (per batch ``id``, ``status``, ``progress``, ``total``).

    :param batch_ids: the batches to wait for.
    :param ntropy_conn_id: the Airflow connection of the Ntropy API (only its id is stored).
    :param poll_interval: shortest interval between polls, in seconds.
    :param max_poll_interval: longest interval between polls, in seconds.
    :param deadline: absolute end of the wait (Unix time, seconds): survives triggerer restarts
        because it is stored with the trigger; ``None`` waits without limit.
    :param max_concurrent_requests: most GET requests in flight at once for this trigger (from
        ``LIST_FROM_PENDING`` pending batches on, a poll first reads them from one list request).
    """

    def __init__(
        self,
        batch_ids: Sequence[str],
        ntropy_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        deadline: float | None = None,
        max_concurrent_requests: int = 10,
    ) -> None:
        super().__init__()
        if not batch_ids:
            raise ValueError("batch_ids: expected at least one batch id")
        check_poll_intervals(poll_interval, max_poll_interval)
        if max_concurrent_requests < 1:
            # asyncio.Semaphore(0) would never let a poll through: the wait would hang, deadline or not.
            raise ValueError(f"max_concurrent_requests: expected >= 1, got {max_concurrent_requests}")
        self.batch_ids = list(batch_ids)
        self.ntropy_conn_id = ntropy_conn_id
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.deadline = deadline
        self.max_concurrent_requests = max_concurrent_requests

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and exactly the constructor's arguments (no secret: a conn id only)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_ids": list(self.batch_ids),
                "ntropy_conn_id": self.ntropy_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "deadline": self.deadline,
                "max_concurrent_requests": self.max_concurrent_requests,
            },
        )

    def _make_hook(self) -> Any:
        from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook

        return NtropyAsyncHook(ntropy_conn_id=self.ntropy_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until every batch has ended, the deadline passes or the API refuses; yield one event."""
        tracker = ProgressTracker(self.batch_ids)
        interval = self.poll_interval
        # One HTTP session for the whole wait: no TLS handshake per poll.
        async with self._make_hook() as hook:
            while True:
                transient, fatal = await self._poll(hook, tracker)
                if fatal is not None:
                    yield self._event(tracker, "error", REASON_API_ERROR, fatal)
                    return
                if tracker.all_terminal:
                    yield self._final_event(tracker)
                    return
                if self.deadline is not None and time.time() >= self.deadline:
                    yield self._event(tracker, "timeout", REASON_TIMEOUT, self._timeout_message(tracker))
                    return
                self._log_progress(tracker)
                interval = next_poll_interval(
                    interval, tracker.eta, minimum=self.poll_interval, maximum=self.max_poll_interval
                )
                if transient:
                    # Back off while the API struggles; the wait itself goes on.
                    interval = min(self.max_poll_interval, interval * 2)
                    self.log.warning(
                        "%d transient error(s) while polling (%s); next poll in %.0f s",
                        len(transient),
                        "; ".join(sorted(set(transient))[:3]),
                        interval,
                    )
                # Up to 10% later: triggers deferred together (a backfill) drift apart instead of
                # hitting the API and the event loop in lockstep; never earlier than the ETA.
                sleep_for = interval * random.uniform(1, 1 + POLL_JITTER)
                if self.deadline is not None:
                    sleep_for = min(sleep_for, max(0.0, self.deadline - time.time()))
                await asyncio.sleep(sleep_for)

    async def _poll(self, hook: Any, tracker: ProgressTracker) -> tuple[list[str], str | None]:
        """Read every pending batch: many from one list request of the key's newest batches, the rest
        (or a few) by a GET each, at most ``max_concurrent_requests`` at a time.

        :return: descriptions of transient errors, and the message of a fatal one (or ``None``).
        """
        pending = tracker.pending
        if len(pending) >= LIST_FROM_PENDING:
            try:
                listed = await hook.find_among_newest(pending)
            except ASYNC_TRANSIENT_ERRORS as err:
                return [f"{type(err).__name__}: {err}"], None
            except NtropyError as err:
                return [], f"Cannot list the batches to wait for: {type(err).__name__}: {err}"
            now = time.monotonic()
            for batch in listed.values():
                tracker.update(batch, now)
            pending = [batch_id for batch_id in pending if batch_id not in listed]
        semaphore = asyncio.Semaphore(self.max_concurrent_requests)

        async def fetch(batch_id: str) -> Batch | BaseException:
            async with semaphore:
                try:
                    return await hook.get_batch(batch_id)
                except Exception as err:  # sorted into transient and fatal below
                    return err

        answers = await asyncio.gather(*(fetch(batch_id) for batch_id in pending))
        now = time.monotonic()
        transient: list[str] = []
        for batch_id, answer in zip(pending, answers, strict=True):
            if isinstance(answer, Batch):
                tracker.update(answer, now)
            elif isinstance(answer, ASYNC_TRANSIENT_ERRORS):
                transient.append(f"{type(answer).__name__}: {answer}")
            elif isinstance(answer, NtropyError):
                return transient, f"Cannot wait for batch {batch_id}: {type(answer).__name__}: {answer}"
            else:
                return transient, f"Unexpected error while polling batch {batch_id}: {answer!r}"
        return transient, None

    def _log_progress(self, tracker: ProgressTracker) -> None:
        self.log.info("Ntropy batches: %s", tracker.summary())
        if len(self.batch_ids) > 1:
            for line in tracker.lines():
                self.log.info("  %s", line)

    @staticmethod
    def _timeout_message(tracker: ProgressTracker) -> str:
        return (
            f"Deadline reached with {len(tracker.pending)} of {len(tracker.batches)} batch(es) not ended: "
            f"{', '.join(tracker.pending)}. Ntropy keeps processing them; wait again to collect them."
        )

    def _final_event(self, tracker: ProgressTracker) -> TriggerEvent:
        errored = tracker.errored
        if errored:
            message = (
                f"{len(errored)} of {len(tracker.batches)} batch(es) ended in error: {', '.join(errored)}. "
                "Resubmitting a batch that ended in error often succeeds."
            )
            return self._event(tracker, "error", REASON_BATCH_ERROR, message)
        message = f"All {len(tracker.batches)} batch(es) completed: {tracker.summary()}"
        return self._event(tracker, "success", REASON_COMPLETED, message)

    def _event(self, tracker: ProgressTracker, status: str, reason: str, message: str) -> TriggerEvent:
        self.log.info("%s", message)
        return TriggerEvent(
            {
                "status": status,
                "termination_reason": reason,
                "message": message,
                "batch_ids": list(self.batch_ids),
                "errored_batch_ids": tracker.errored,
                "batches": tracker.to_event(),
            }
        )

    async def on_kill(self) -> None:
        """Called when a user marks the waiting task failed or successful: batches cannot be cancelled."""
        self.log.warning(
            "Ntropy batches cannot be cancelled: %d batch(es) keep processing (and are charged) on "
            "Ntropy's side: %s",
            len(self.batch_ids),
            ", ".join(self.batch_ids),
        )
