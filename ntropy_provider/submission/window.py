"""The rolling window: submit chunks as the API's limits allow, never more than a window in progress.

The driver behind ``NtropyHook.submit_batches`` and ``SubmitBatchOperator``. It keeps at most a
window of this task's batches in progress (``max_open_batches``, adaptive, see
:mod:`~ntropy_provider.submission.pacing`), paces POSTs to a client-side estimate of the key's credit
bucket, and sends the next chunk as soon as a batch of the window ends and the credits suffice. A 429
("not yet") is never a failure: the chunk waits and goes again, as long as the deadline allows.

The calling thread reads the input, builds each chunk's body, runs the callbacks and polls the open
batches (one ``GET /v3/batches?status=processing`` per poll, however many are open); worker threads only
send POSTs, at most ``max_concurrency`` at once. When anything fails for good (a chunk refused, the input
unreadable, a callback raising) nothing more is sent, the POSTs in flight are settled (their
``on_submitted`` still runs) and the first error is raised.

A caller that can wait elsewhere (the deferrable operator, in the triggerer) passes ``pause``: when the
next chunk cannot go for a while, the driver settles what is in flight and returns instead of sleeping,
saying which chunk is next and why it waits.
"""

from __future__ import annotations

import collections
import contextlib
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import MAX_CONCURRENT_OPERATIONS, BatchStatus
from ntropy_provider.exceptions import (
    TRANSIENT_ERRORS,
    ItemError,
    NtropyError,
    NtropyRateLimitError,
    NtropyTimeoutError,
    NtropyValidationError,
)
from ntropy_provider.progress import BatchProgress, format_duration
from ntropy_provider.submission.chunks import Chunk
from ntropy_provider.submission.pacing import (
    DEFAULT_RATE_LIMIT_PAUSE,
    AdaptiveWindow,
    CreditEstimate,
    rate_limit_cause,
)

#: Shortest and longest pause between two polls of the open batches while a slot is awaited. The next
#: poll is placed just after the earliest expected end, within these bounds.
WINDOW_POLL_MIN = 0.2
WINDOW_POLL_MAX = 5.0
#: While waiting, a progress line is logged at least this often (seconds).
PROGRESS_LOG_EVERY = 30.0
#: Why the next chunk waits.
WAIT_SLOT = "a slot (a batch of the window to end)"
WAIT_CREDITS = "credits"
WAIT_RATE = "the request rate (a 429)"
WAIT_POSTS = "POSTs in flight"


def in_input_terms(error: NtropyError, chunk: Chunk) -> NtropyError:
    """Restate a chunk's error in the caller's terms: a 422 names the input row, not the item index.

    :param error: the error of the chunk's request.
    :param chunk: the chunk.
    """
    rows = f"input rows {chunk.start} to {chunk.start + chunk.size - 1}"
    if isinstance(error, NtropyValidationError) and any(e.index is not None for e in error.errors):
        shifted = [
            ItemError(None if e.index is None else e.index + chunk.start, e.field, e.message)
            for e in error.errors
        ]
        listed = "; ".join(
            f"input row {e.index}, field {e.field}: {e.message}" if e.index is not None else str(e)
            for e in shifted[:20]
        )
        more = f"; and {len(shifted) - 20} more" if len(shifted) > 20 else ""
        return NtropyValidationError(
            f"Ntropy API refused chunk {chunk.index} ({rows}) with {error.status}: {listed}{more} "
            f"(X-Request-ID {error.request_id})",
            status=error.status,
            detail=error.detail,
            request_id=error.request_id,
            errors=shifted,
        )
    error.add_note(f"while submitting chunk {chunk.index} ({rows})")
    return error


class HookBatches:
    """What the window needs from the API, through a sync hook: POST a body, see which batches are open.

    :param hook: an :class:`~ntropy_provider.hooks.ntropy.NtropyHook` (or anything with its methods).
    """

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def post(self, body: bytes) -> Batch:
        """Create one batch (called from worker threads).

        :param body: the ``POST /v3/batches`` body.
        """
        return self.hook.post_batch_body(body)

    def poll(self, batch_ids: Collection[str], fresh: Collection[str]) -> dict[str, Batch | None]:
        """The current state of ``batch_ids``: one list request of the key's batches in progress.

        A batch missing from the list has ended. For the ``fresh`` ones (created by this run, which a
        list might not show yet) one GET confirms it; the others are answered ``None`` (ended).

        :param batch_ids: the batches to look at.
        :param fresh: those created by this run.
        """
        processing = {
            batch.id: batch for batch in self.hook.list_batches(status=BatchStatus.PROCESSING.value)
        }
        seen: dict[str, Batch | None] = {}
        for batch_id in batch_ids:
            batch = processing.get(batch_id)
            if batch is None and batch_id in fresh:
                try:
                    batch = self.hook.get_batch(batch_id)
                except TRANSIENT_ERRORS:
                    continue  # not seen this time: it stays open until a later poll
            seen[batch_id] = batch
        return seen


@dataclass(slots=True)
class WindowStats:
    """What a submission did, for its log and benchmarks.

    :param posts: POST requests answered (created, refused or failed), 429s included.
    :param rate_limited: POSTs answered 429.
    :param created: batches created.
    :param rows_sent: rows in the batches created.
    :param polls: polls of the open batches.
    :param waited: seconds spent waiting for a slot, credits or the request rate.
    """

    posts: int = 0
    rate_limited: int = 0
    created: int = 0
    rows_sent: int = 0
    polls: int = 0
    waited: float = 0.0


@dataclass(slots=True)
class WindowOutcome:
    """The end of a :meth:`SubmissionWindow.run`: everything sent, or paused.

    :param batches: the batch of each chunk sent in this run, by chunk index.
    :param paused_at: the index of the next chunk to send, when the run paused; ``None`` when done.
    :param waiting_for: why it paused (one of the ``WAIT_*`` texts).
    :param wake_in: seconds until the next chunk is expected to be able to go.
    :param open_batch_ids: the batches of the window still in progress.
    :param credit_wait: seconds until the credit estimate holds the next chunk's rows.
    """

    batches: dict[int, Batch] = field(default_factory=dict)
    paused_at: int | None = None
    waiting_for: str | None = None
    wake_in: float = 0.0
    open_batch_ids: list[str] = field(default_factory=list)
    credit_wait: float = 0.0


@dataclass(slots=True)
class _Run:
    """The state of one :meth:`SubmissionWindow.run`."""

    outcome: WindowOutcome
    on_submitted: Callable[[int, Batch], None] | None
    in_flight: dict[Future[Batch], Chunk] = field(default_factory=dict)
    requeued: list[Chunk] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


class SubmissionWindow:
    """A rolling window of batches in progress, paced to the key's credits, for one task.

    :param batches: the API (see :class:`HookBatches`).
    :param limits: the key's limits; ``None`` sends without pacing or window (e.g. a stand-in API).
    :param max_open_batches: the most batches of this task in progress (default: the key's cap).
    :param max_concurrency: most POSTs in flight (1 to 10).
    :param log: where to log progress.
    :param deadline: ``time.monotonic()`` after which waiting fails with ``NtropyTimeoutError``.
    :param total_rows: rows the whole input holds, for the progress line (``None``: unknown).
    :param total_chunks: chunks the whole input makes, for the progress line (``None``: unknown).
    :param rows_done_before: rows in batches sent earlier (earlier tries or windows) and already ended.
    :param clock: the monotonic clock.
    :param credit_share: the most of the key's credit refill (and of its bucket, to start from) this
        submission counts as its own (see :class:`~ntropy_provider.submission.pacing.CreditEstimate`).
    """

    def __init__(
        self,
        batches: HookBatches | Any,
        *,
        limits: ApiLimits | None,
        max_open_batches: int | None = None,
        max_concurrency: int = 4,
        log: Any,
        deadline: float | None = None,
        total_rows: int | None = None,
        total_chunks: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        credit_share: float = 1.0,
    ) -> None:
        if not 1 <= max_concurrency <= MAX_CONCURRENT_OPERATIONS:
            raise ValueError(
                f"max_concurrency: expected 1 to {MAX_CONCURRENT_OPERATIONS}, got {max_concurrency!r}"
            )
        self.api = batches
        self.limits = limits
        self.max_concurrency = max_concurrency
        self.log = log
        self.deadline = deadline
        self.total_rows = total_rows
        self.total_chunks = total_chunks
        self.clock = clock
        ceiling = max_open_batches or (limits.max_open_batches if limits else None)
        self.window = AdaptiveWindow(ceiling) if ceiling is not None and limits is not None else None
        self.credits = CreditEstimate(limits, clock, credit_share) if limits is not None else None
        self.open: dict[str, BatchProgress] = {}
        self.stats = WindowStats()
        self.rows_done = 0
        self.chunks_sent = 0
        #: One more than the highest chunk index the run has read (sent or passed over).
        self.chunks_seen = 0
        self._retry_events: collections.deque[Any] = collections.deque()
        self._not_before = 0.0
        self._next_poll = 0.0
        self._poll_interval = WINDOW_POLL_MIN
        self._last_log = -math.inf
        self._rates: collections.deque[float] = collections.deque(maxlen=8)
        self._fresh: set[str] = set()
        self._in_flight_rows = 0
        self._sent: dict[int, tuple[float, float]] = {}
        self._unexplained_429s = 0
        #: Credits a caller that defers while credits refill waits for (``None``: the next chunk's).
        self.burst_credits: int | None = None

    # ------------------------------------------------------------------------------------------
    # What the caller tells the window
    # ------------------------------------------------------------------------------------------
    def adopt(self, batches: Mapping[str, int]) -> None:
        """Count batches sent earlier (an earlier try or window) in the window until they are seen ending.

        :param batches: their ids and sizes.
        """
        for batch_id, size in batches.items():
            if batch_id not in self.open:
                self.open[batch_id] = BatchProgress(batch_id, total=size)
        self._next_poll = 0.0

    def on_retry(self, event: Any) -> None:
        """The hook's ``on_retry`` callback: learn of a 429 while the hook waits to repeat a POST.

        Called from worker threads; the events are read in the calling thread.

        :param event: the hook's RetryEvent.
        """
        self._retry_events.append(event)

    # ------------------------------------------------------------------------------------------
    # The loop
    # ------------------------------------------------------------------------------------------
    def run(
        self,
        chunks: Iterable[Chunk],
        *,
        before_submit: Callable[[int, int], None] | None = None,
        on_submitted: Callable[[int, Batch], None] | None = None,
        pause: Callable[[float, str], bool] | None = None,
    ) -> WindowOutcome:
        """Send every chunk with a body (skipped chunks are passed over), as the window allows.

        :param chunks: the chunks in order, cut lazily.
        :param before_submit: ``before_submit(chunk_index, size)``, in this thread, before a POST.
        :param on_submitted: ``on_submitted(chunk_index, batch)``, in this thread, once a chunk was created.
        :param pause: ``pause(seconds, waiting_for)``: whether to stop instead of waiting that long for
            the next chunk (only asked when no POST is in flight).
        :return: the batches created, and where the run paused (if it did).
        """
        run = _Run(WindowOutcome(), on_submitted)
        outcome, in_flight, requeued, errors = run.outcome, run.in_flight, run.requeued, run.errors
        source: Iterator[Chunk] = iter(chunks)
        upcoming: Chunk | None = None
        exhausted = False
        executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="ntropy-submit")
        try:
            if self.open:
                self._poll()
            while True:
                self._settle([f for f in in_flight if f.done()], run)
                self._read_retry_events()
                if errors:
                    break
                if upcoming is None and requeued:
                    requeued.sort(key=lambda c: c.index)
                    upcoming = requeued.pop(0)
                if upcoming is None and not exhausted:
                    try:
                        upcoming = next(source)
                    except StopIteration:
                        exhausted = True
                    except Exception as err:  # the input or its serialization failed
                        errors.append(err)
                        break
                    if upcoming is not None:
                        self.chunks_seen = max(self.chunks_seen, upcoming.index + 1)
                    if upcoming is not None and upcoming.body is None:
                        upcoming = None  # a chunk sent earlier: read past, not sent
                        continue
                if upcoming is None:
                    if not in_flight:
                        break
                    self._settle(wait(in_flight, return_when=FIRST_COMPLETED).done, run)
                    continue
                pause_for, waiting_for = self._gate(upcoming.size, len(in_flight))
                if pause_for <= 0:
                    try:
                        if before_submit is not None:
                            before_submit(upcoming.index, upcoming.size)
                    except Exception as err:
                        errors.append(err)
                        break
                    if self.credits is not None:
                        self._sent[upcoming.index] = (self.credits.take(upcoming.size), self.clock())
                    in_flight[executor.submit(self.api.post, upcoming.body)] = upcoming
                    self._in_flight_rows = sum(c.size for c in in_flight.values())
                    upcoming = None
                    continue
                expected = self._expected_wait(pause_for, waiting_for)
                if (
                    pause is not None
                    and not in_flight
                    and expected is not None
                    and pause(expected, waiting_for)
                ):
                    outcome.paused_at = upcoming.index
                    outcome.waiting_for = waiting_for
                    outcome.wake_in = expected
                    outcome.credit_wait = (
                        expected if waiting_for == WAIT_CREDITS else self._credit_wait(upcoming.size)
                    )
                    self._log_progress(waiting_for, force=True)
                    break
                self._check_deadline(upcoming, waiting_for)
                self._log_progress(waiting_for)
                self._wait(pause_for, in_flight)
                if waiting_for == WAIT_SLOT or self.clock() >= self._next_poll:
                    self._poll_when_due()
            while in_flight:  # settle what was sent, whatever happened
                self._settle(wait(in_flight, return_when=FIRST_COMPLETED).done, run)
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if errors:
            raise errors[0]
        if requeued and outcome.paused_at is None:  # refused (429) while stopping: say where to go on
            outcome.paused_at = min(c.index for c in requeued)
        outcome.open_batch_ids = [i for i, b in self.open.items() if not b.is_terminal]
        if outcome.paused_at is None:
            self._log_progress("nothing: every chunk is sent", force=True)
        return outcome

    # ------------------------------------------------------------------------------------------
    # Deciding and waiting
    # ------------------------------------------------------------------------------------------
    def _expected_wait(self, pause_for: float, waiting_for: str) -> float | None:
        """Seconds the next chunk is expected to wait; ``None`` while a slot's wait cannot be told yet.

        Waiting for credits, a deferring caller waits for a burst (:attr:`burst_credits`): sending one
        chunk per refill would wake it for every chunk; a burst loses no throughput as long as it is
        sent before the bucket is full.
        """
        if waiting_for == WAIT_CREDITS and self.burst_credits:
            return max(pause_for, self._credit_wait(self.burst_credits))
        if waiting_for != WAIT_SLOT:
            return pause_for
        rate = sorted(self._rates)[len(self._rates) // 2] if self._rates else None
        etas = []
        for batch in self.open.values():
            if batch.is_terminal:
                return 0.0
            if batch.eta is not None:
                etas.append(batch.eta)
            elif rate:
                etas.append((batch.total - batch.progress) / rate)
        return min(etas) if etas else None

    def expected_end(self) -> float | None:
        """Seconds until every batch of the window is expected to have ended; ``None`` while unknown."""
        rate = sorted(self._rates)[len(self._rates) // 2] if self._rates else None
        ends = []
        for batch in self.open.values():
            if batch.is_terminal:
                continue
            if batch.eta is not None:
                ends.append(batch.eta)
            elif rate:
                ends.append((batch.total - batch.progress) / rate)
            else:
                return None
        return max(ends, default=0.0)

    def _credit_wait(self, size: int) -> float:
        return self.credits.seconds_until(size) if self.credits is not None else 0.0

    def _open_count(self) -> int:
        return sum(1 for b in self.open.values() if not b.is_terminal)

    def _gate(self, size: int, in_flight: int) -> tuple[float, str]:
        """Seconds until the next chunk may go (0: now), and what it waits for."""
        if in_flight >= self.max_concurrency:
            return WINDOW_POLL_MAX, WAIT_POSTS
        now = self.clock()
        if now < self._not_before:
            return self._not_before - now, WAIT_RATE
        if self.window is not None and self._open_count() + in_flight >= self.window.size:
            if in_flight:
                return WINDOW_POLL_MAX, WAIT_POSTS  # a POST's answer changes the picture first
            return max(0.0, self._next_poll - now) or WINDOW_POLL_MIN, WAIT_SLOT
        credit_wait = self._credit_wait(size)
        if credit_wait > 0:
            return credit_wait, WAIT_CREDITS
        return 0.0, ""

    def _wait(self, seconds: float, in_flight: dict[Future[Batch], Chunk]) -> None:
        started = self.clock()
        if self.deadline is not None:
            seconds = min(seconds, max(0.0, self.deadline - started))
        seconds = max(seconds, 0.01)
        if in_flight:
            wait(in_flight, timeout=seconds, return_when=FIRST_COMPLETED)
        else:
            time.sleep(seconds)
        self.stats.waited += self.clock() - started

    def _check_deadline(self, upcoming: Chunk, waiting_for: str) -> None:
        if self.deadline is not None and self.clock() >= self.deadline:
            raise NtropyTimeoutError(
                f"Timed out submitting: chunk {upcoming.index} and the ones after it were not sent, "
                f"waiting for {waiting_for}; {self.progress_line()}. The chunks sent are recorded: a "
                "retry of the task sends the rest."
            )

    # ------------------------------------------------------------------------------------------
    # Answers and observations
    # ------------------------------------------------------------------------------------------
    def _settle(self, done: Iterable[Future[Batch]], run: _Run) -> None:
        for future in list(done):
            chunk = run.in_flight.pop(future)
            self._in_flight_rows = sum(c.size for c in run.in_flight.values())
            sent = self._sent.pop(chunk.index, None)
            if sent is not None and self.credits is not None:
                self.credits.charged(sent[0], self.clock() - sent[1])
            self.stats.posts += 1
            try:
                batch = future.result()
            except NtropyRateLimitError as err:
                # The API said "not yet" (even after the hook's own waits): the chunk goes again.
                self.stats.rate_limited += 1
                self._rate_limited(str(err.detail or err))
                self.log.info("Chunk %d: the API said not yet (429); it will go again", chunk.index)
                run.requeued.append(chunk)
                continue
            except NtropyError as err:
                run.errors.append(in_input_terms(err, chunk))
                continue
            except Exception as err:
                run.errors.append(err)
                continue
            run.outcome.batches[chunk.index] = batch
            self._unexplained_429s = 0
            if self.credits is not None:
                self.credits.accepted()
            self.stats.created += 1
            self.stats.rows_sent += chunk.size
            self.chunks_sent += 1
            progress = BatchProgress(batch.id)
            progress.update(batch, self.clock())
            self.open[batch.id] = progress
            self._fresh.add(batch.id)
            self.log.info("Chunk %d (%d rows) accepted as batch %s", chunk.index, chunk.size, batch.id)
            if run.on_submitted is not None:
                try:
                    run.on_submitted(chunk.index, batch)
                except Exception as err:
                    run.errors.append(err)

    def _read_retry_events(self) -> None:
        while self._retry_events:
            event = self._retry_events.popleft()
            if getattr(event, "status", None) == 429 and getattr(event, "method", "") == "POST":
                self.stats.posts += 1
                self.stats.rate_limited += 1
                self._rate_limited(str(getattr(event, "reason", "")))

    def _rate_limited(self, reason: str) -> None:
        cause = rate_limit_cause(reason)
        if cause == "unknown":
            # Credits first (waiting for them is short); a second unexplained 429 before any POST is
            # accepted means the credits were not it: the cap on batches in progress is full.
            self._unexplained_429s += 1
            cause = "credits" if self._unexplained_429s < 2 else "batches"
        if cause == "credits" and self.credits is not None:
            self.credits.drain(owed=self._in_flight_rows)
        if cause == "batches" and self.window is not None:
            self.window.refused(self._open_count())
        if cause == "rate":
            self._not_before = max(self._not_before, self.clock() + DEFAULT_RATE_LIMIT_PAUSE)
        self.log.info(
            "429 from the API (%s): window now %s, credit estimate %s",
            cause,
            self.window.size if self.window else "-",
            f"{self.credits.level():,.0f}" if self.credits else "-",
        )

    def _poll_when_due(self) -> None:
        if self.open and self.clock() >= self._next_poll:
            self._poll()

    def _poll(self) -> None:
        ids = [i for i, b in self.open.items() if not b.is_terminal]
        if not ids:
            return
        self.stats.polls += 1
        try:
            seen = self.api.poll(ids, self._fresh)
        except TRANSIENT_ERRORS as err:
            self.log.warning("Transient error polling the open batches (%s: %s)", type(err).__name__, err)
            self._schedule_poll(None)  # look again soon, backing off while the errors last
            return
        now = self.clock()
        ended = 0
        for batch_id, batch in seen.items():
            progress = self.open.get(batch_id)
            if progress is None:
                continue
            if batch is not None:
                progress.update(batch, now)
                if progress.rate:
                    self._rates.append(progress.rate)
            if batch is None or progress.is_terminal:
                ended += 1
                self.rows_done += progress.total
                del self.open[batch_id]
                self._fresh.discard(batch_id)
                if self.window is not None:
                    self.window.ended()
        etas = [b.eta for b in self.open.values() if b.eta is not None]
        soonest = min(etas) if etas else None
        if ended:
            self._log_progress("", force=True)
            self._poll_interval = WINDOW_POLL_MIN  # things move: no backing off
        self._schedule_poll(None if soonest is None else soonest + WINDOW_POLL_MIN / 2)

    def _schedule_poll(self, after: float | None) -> None:
        if after is None:  # no estimate yet: look again soon, a little later each time
            after = self._poll_interval
            self._poll_interval = min(WINDOW_POLL_MAX, self._poll_interval * 1.5)
        else:
            self._poll_interval = WINDOW_POLL_MIN
        self._next_poll = self.clock() + max(WINDOW_POLL_MIN, min(WINDOW_POLL_MAX, after))

    # ------------------------------------------------------------------------------------------
    # Progress a person can read
    # ------------------------------------------------------------------------------------------
    def eta(self) -> float | None:
        """Seconds until every row is expected to be enriched, ``None`` while unknown."""
        if self.total_rows is None or not self._rates or self.limits is None or self.window is None:
            return None
        rate = sorted(self._rates)[len(self._rates) // 2]  # rows per second of one batch
        unsent = max(0, self.total_rows - self.stats.rows_sent)
        chunk_rows = self.stats.rows_sent / self.stats.created if self.stats.created else unsent
        chunks_left = math.ceil(unsent / chunk_rows) if chunk_rows else 0
        level = self.credits.level() if self.credits else 0.0
        credit_bound = max(0.0, unsent - level) / self.limits.credit_refill_per_second
        slot_bound = chunks_left / self.window.size * (chunk_rows / rate)
        open_left = [b.eta for b in self.open.values() if b.eta is not None]
        last = chunk_rows / rate if chunks_left else max(open_left, default=0.0)
        return max(credit_bound, slot_bound) + last

    def progress_line(self) -> str:
        """``rows submitted / in progress / done``, the window and the ETA, in one line."""
        open_rows = sum(b.total for b in self.open.values() if not b.is_terminal)
        total = f"/{self.total_rows:,}" if self.total_rows is not None else ""
        chunks = f"/{self.total_chunks}" if self.total_chunks is not None else ""
        window = f"{self._open_count()}/{self.window.size}" if self.window else str(self._open_count())
        return (
            f"{self.stats.rows_sent:,}{total} rows submitted ({self.chunks_sent}{chunks} chunks), "
            f"{open_rows:,} in progress, {self.rows_done:,} done; window {window}; "
            f"429s {self.stats.rate_limited}/{self.stats.posts} POSTs; ETA {format_duration(self.eta())}"
        )

    def _log_progress(self, waiting_for: str, *, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_log < PROGRESS_LOG_EVERY:
            return
        self._last_log = now
        waiting = f"; waiting for {waiting_for}" if waiting_for else ""
        self.log.info("Submission: %s%s", self.progress_line(), waiting)


def as_results(outcome: WindowOutcome, chunk_count: int) -> list[Batch | None]:
    """One Batch per chunk in input order (``None`` for chunks not sent in this run).

    :param outcome: what :meth:`SubmissionWindow.run` returned.
    :param chunk_count: how many chunks the input made.
    """
    return [outcome.batches.get(index) for index in range(chunk_count)]


@contextlib.contextmanager
def hearing_429s(hook: Any, window: SubmissionWindow) -> Iterator[None]:
    """Let ``window`` hear of the 429s the hook waits out on its own, while the block runs.

    :param hook: the sync hook, whose ``on_retry`` callback is chained (and restored after).
    :param window: the window to tell.
    """
    previous = getattr(hook, "on_retry", None)

    def both(event: Any) -> None:
        window.on_retry(event)
        if previous is not None:
            previous(event)

    hook.on_retry = both
    try:
        yield
    finally:
        hook.on_retry = previous
