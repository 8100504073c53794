"""SubmitBatchOperator: validate transactions, submit them as Ntropy batches, never twice.

The operator orchestrates; the submission itself lives in :mod:`ntropy_provider.submission` (the
input's chunk plan, the crash-safe ledger of what each chunk became, the rolling window that sends and
its state across deferrals), the wait for completion in :mod:`ntropy_provider.operators._completion`,
and its failures in :mod:`ntropy_provider.exceptions`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import (
    MAX_BATCH_SIZE,
    OPERATIONS,
    PRIORITIES,
    TRANSACTIONS_OPERATION,
)
from ntropy_provider.compat import add_callback, forgets_after_success, task_state_store
from ntropy_provider.exceptions import (
    InvalidInputError,
    NtropySubmitError,
    NtropyTimeoutError,
)
from ntropy_provider.hooks.connection import DEFAULT_CONN_ID
from ntropy_provider.io.dataframe_source import is_dataframe, pandas_needed_for
from ntropy_provider.io.rejects import RejectsWriter
from ntropy_provider.io.source_rows import SourceRow
from ntropy_provider.io.transactions_source import describe_source, iter_rows
from ntropy_provider.operators._completion import CompletionWaitMixin
from ntropy_provider.progress import check_poll_intervals
from ntropy_provider.submission.credit_guard import (
    check_credits,
    check_max_credits_value,
    effective_limit,
    estimate_cost,
)
from ntropy_provider.submission.dedupe import ON_DUPLICATE_MODES
from ntropy_provider.submission.engine import check_chunk_fits
from ntropy_provider.submission.ledger import (
    ON_INPUT_CHANGE_MODES,
    ChunkState,
    StateStore,
    SubmissionLedger,
)
from ntropy_provider.submission.pacing import check_credit_share
from ntropy_provider.submission.pay_once import PayOnce
from ntropy_provider.submission.plan import ScanResult, iter_planned_chunks, scan
from ntropy_provider.submission.window import WAIT_CREDITS, hearing_429s
from ntropy_provider.submission.window_state import deferral_burst, resume_window, save_window, without_ended
from ntropy_provider.triggers.window import SubmissionWindowTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

#: ``on_invalid`` values.
ON_INVALID_MODES: tuple[str, ...] = ("fail", "quarantine")


class SubmitBatchOperator(CompletionWaitMixin, BaseOperator):
    """Validate transactions, cut them into batches and submit them to Ntropy, never twice.

    The input (``items``) is read lazily (a list, a pandas DataFrame, or a Parquet / CSV / JSON Lines
    file on any storage Airflow's ObjectStoragePath reaches) and every row is checked with the API's
    rules before anything is sent. Invalid rows either fail the task (``on_invalid="fail"``, listing the
    first ones by row number and field) or are written, with their reason, to ``rejects_path`` and
    left out (``"quarantine"``). Valid rows are cut into chunks of ``chunk_size`` in input order,
    the same way on every try, and each chunk becomes one batch.

    Returns (XCom) ``{"batch_ids": [...], "total": <rows submitted>, "rejected": <rows rejected>,
    "skipped": <rows already enriched>, "duplicates": <repeated ids, among the rejected>,
    "input_rows": <rows read>, "credits": <credits spent: rows sent, resubmissions included>,
    "rejects_path": <path or None>, "replaced_batch_ids": {<errored id>: <its replacement>}}``;
    ``total + rejected + skipped == input_rows``.

    **Pay once.** Each transaction id is paid once: an id repeated in the input is sent once (the
    first valid row) and its repeats are rejected with the reason ``duplicate_id`` naming that row
    (``on_duplicate="fail"`` fails instead, before sending); ids already enriched in earlier
    ResultsToParquetOperator outputs (``skip_enriched``) are skipped. Before any POST, a run that
    would cost more than ``max_credits`` (or the connection's ``max_credits`` extra) fails without
    retries, and ``dry_run=True`` stops there: it reports the rows, batches, credits and the time the
    key's limits need to send them (XCom ``dry_run``, ``batches``, ``estimated_seconds``), sending
    nothing.

    **At the API's pace.** Chunks are not submitted up front: a rolling window keeps at most
    ``max_open_batches`` of the task's batches in progress, sends the next chunk when one ends, and paces
    POSTs to an estimate of the key's credit bucket (:mod:`ntropy_provider.submission.window`). A 429
    only makes a chunk wait and go again (never a failure while ``timeout`` allows). Deferrable, the
    task defers to :class:`~ntropy_provider.triggers.window.SubmissionWindowTrigger` whenever the next
    chunk must wait at least ``min_defer_wait``, and resumes from the next unsent chunk without reading
    the whole input again.

    **No duplicate batches across task tries.** Ntropy charges per transaction, so a retried task
    must not submit again what an earlier try submitted. XCom is cleared between tries, so the
    operator keeps its bookkeeping in the task state store (``context["task_state_store"]`` on
    Airflow 3.3+, Airflow Variables on 3.1 and 3.2: see :mod:`ntropy_provider.compat`; one key per
    chunk, scoped to this dag run, task and map index): before each POST it records an
    *intent* (chunk size, fingerprint = hash of the chunk's transaction ids, time), after the answer
    the batch id. A new try then:

    * re-attaches to the batch of every chunk whose id was recorded (no request sent);
    * for every chunk with an intent but no id (the process died between the POST and the record),
      lists the batches created since the intent (minus ``CLOCK_SKEW``) that this task does not know
      and whose ``total`` equals the chunk's size. Because another task with the same API key may
      create batches of the same size at the same time (every full chunk has 24,960 rows), a
      candidate is never trusted on its size alone: the operator waits (``reconcile_timeout``) for the
      candidates to end, fetches the results of the completed ones and matches their transaction ids
      against the chunk fingerprints. A chunk matched this way is re-attached; a chunk that no
      candidate matches was never created and is sent;
    * sends only the chunks never submitted.

    Limits of the guarantee: the input must be the same on every try (a changed chunk is
    detected by its fingerprint and fails the task, or is resubmitted with
    ``on_input_change="resubmit"``); a candidate that ended in ``error`` cannot be identified (it
    has no results), so a chunk whose only candidates errored is sent again, which is what one does
    with an errored batch anyway; and the hook must not blindly retry a POST whose answer was lost.
    On Airflow 3.3+ the state persists after success, so clearing a successful task re-attaches to
    its batches instead of paying again for the same input, unless ``[state_store] clear_on_success``
    is set or the state outlived its retention (``state_retention``), in which case the input is sent
    again. On 3.1 and 3.2 the Variables are deleted once the task succeeded (they never expire), so
    clearing a successful task sends the input again.

    With ``wait_for_completion``, the operator waits for its batches (deferred to the triggerer
    with :class:`~ntropy_provider.triggers.batch.BatchTrigger`, or polling), resubmits chunks whose
    batch ended in ``error`` up to ``max_batch_error_retries`` times (recorded in the state store too,
    so a retry does not resubmit again), and fails naming every batch still in ``error``.

    :param items: the transactions: a list of dicts, a pandas DataFrame (``[pandas]`` extra; read
        through Arrow, row numbers are its positions from 1), an XComArg resolving to either, or the
        path / URI (str or ObjectStoragePath) of a Parquet, CSV or JSON Lines file. Templated.
    :param ntropy_conn_id: the Airflow connection of the Ntropy API. Templated.
    :param operation: the batch operation; only ``POST /v3/transactions`` exists.
    :param chunk_size: most transactions per batch (1 to 24,960).
    :param priority: ``default`` or ``low``. Templated.
    :param input_format: ``parquet``, ``csv`` or ``jsonl`` when the file name does not tell. Templated.
    :param on_invalid: ``fail`` (nothing is sent when any row is invalid) or ``quarantine``.
    :param rejects_path: where ``quarantine`` writes rejected rows (JSON Lines). Templated.
    :param max_concurrency: most batch POSTs in flight at once.
    :param max_open_batches: the most of this task's batches in progress at once: the rolling window
        (default: the connection's ``max_open_batches`` extra, the key's cap, 10 unless raised). Lower
        it when several tasks share the key (e.g. backfill days). At least 1.
    :param credit_share: the most of the key's credit refill this task counts as its own, and the part
        of a full bucket it starts from (``0 < credit_share <= 1``; default 1: alone on the key). Tasks
        that share a key at once split it, as they split ``max_open_batches``: five backfill days each
        take ``0.2``, so that their first bursts fit the bucket together. Below 1, a 429 for credits
        empties the task's estimate but keeps its share (alone on the key, a 429 halves the share, which
        accepted POSTs grow back). Checked when the DAG is parsed.
    :param api_limits: the key's limits (an :class:`~ntropy_provider.api.limits.ApiLimits`, or a dict
        of its fields), instead of the connection's extras; checked when the DAG is parsed.
    :param min_defer_wait: a deferrable task defers to the triggerer between windows only when the
        next chunk must wait at least this long (seconds), and for completion only when its batches are
        not expected to end sooner; shorter waits are slept in the worker, since a deferral costs a few
        seconds of scheduling (and a trigger firing seconds after its deferral races the scheduler).
    :param wait_for_completion: wait for every batch to end before succeeding.
    :param deferrable: wait in the triggerer instead of a worker slot (default ``True``: a wait of
        minutes to hours should not hold a worker; pass ``False`` where no triggerer runs). Not read
        from ``[operators] default_deferrable``, whose Airflow default (``False``) would make every
        wait hold a worker slot.
    :param poll_interval: shortest interval between status checks, in seconds.
    :param max_poll_interval: longest interval between status checks, in seconds.
    :param timeout: longest time for submission and the wait for completion, in seconds or as a
        timedelta (``None``: no limit). A 429 or a full window only makes the task wait within it.
    :param max_batch_error_retries: how often a chunk whose batch ended in ``error`` is resubmitted
        (only with ``wait_for_completion``).
    :param reconcile_timeout: longest wait, in seconds, for candidate batches to end when an earlier
        try crashed between a POST and its record (see above).
    :param on_input_change: ``fail`` or ``resubmit`` when a chunk differs from what an earlier try
        submitted for the same position.
    :param state_retention: how long the state store keeps this task's bookkeeping (``None``: the
        ``[state_store] default_retention_days`` setting). Airflow 3.3+ only; before, the bookkeeping
        is kept until the task succeeds.
    :param max_credits: the most credits (transactions sent) this task may spend; above it, the task
        fails before sending anything, without retries (``None``: no limit but the connection's
        ``max_credits`` extra; with both, the lower holds). Templated.
    :param dry_run: validate, quarantine, deduplicate, skip and plan, report what would be sent, and
        send nothing (a bool, or a template rendering to ``true``/``false``). Templated.
    :param skip_enriched: earlier ResultsToParquetOperator output(s): a path/URI (an output directory,
        its ``ok/`` directory or a Parquet file, globs allowed) or a list; ids already enriched there
        (``ok/`` only: errored rows are sent again) are not sent. A location that does not exist yet
        skips nothing. Templated.
    :param on_duplicate: ``reject`` (repeats of an id go to the rejects as ``duplicate_id``, the
        first row is sent) or ``fail`` (nothing is sent when an id repeats).
    """

    template_fields: Sequence[str] = (
        "items",
        "ntropy_conn_id",
        "priority",
        "input_format",
        "rejects_path",
        "max_credits",
        "dry_run",
        "skip_enriched",
    )
    ui_color = "#2e7d6b"

    def __init__(
        self,
        *,
        items: Any,
        ntropy_conn_id: str = DEFAULT_CONN_ID,
        operation: str = TRANSACTIONS_OPERATION,
        chunk_size: int = MAX_BATCH_SIZE,
        priority: str = "default",
        input_format: str | None = None,
        on_invalid: str = "fail",
        rejects_path: Any = None,
        max_concurrency: int = 4,
        max_open_batches: int | None = None,
        credit_share: float = 1.0,
        api_limits: ApiLimits | dict[str, Any] | None = None,
        min_defer_wait: float = 30.0,
        wait_for_completion: bool = False,
        deferrable: bool = True,
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        timeout: float | dt.timedelta | None = None,
        max_batch_error_retries: int = 2,
        reconcile_timeout: float = 3600.0,
        on_input_change: str = "fail",
        state_retention: dt.timedelta | None = None,
        max_credits: int | str | None = None,
        dry_run: bool | str = False,
        skip_enriched: Any = None,
        on_duplicate: str = "reject",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if operation not in OPERATIONS:
            raise ValueError(f"operation: expected one of {sorted(OPERATIONS)}, got {operation!r}")
        if not 1 <= chunk_size <= MAX_BATCH_SIZE:
            raise ValueError(f"chunk_size: expected 1 to {MAX_BATCH_SIZE}, got {chunk_size}")
        if on_invalid not in ON_INVALID_MODES:
            raise ValueError(f"on_invalid: expected one of {ON_INVALID_MODES}, got {on_invalid!r}")
        if on_invalid == "quarantine" and not rejects_path:
            raise ValueError("on_invalid='quarantine' needs rejects_path: where rejected rows are written")
        if on_input_change not in ON_INPUT_CHANGE_MODES:
            raise ValueError(
                f"on_input_change: expected one of {ON_INPUT_CHANGE_MODES}, got {on_input_change!r}"
            )
        # Checked here, not only by the trigger: at defer time the batches are already paid for.
        check_poll_intervals(poll_interval, max_poll_interval)
        if max_open_batches is not None and (
            isinstance(max_open_batches, bool)
            or not isinstance(max_open_batches, int)
            or max_open_batches < 1
        ):
            raise ValueError(f"max_open_batches: expected an integer >= 1, got {max_open_batches!r}")
        check_credit_share(credit_share)
        if isinstance(api_limits, dict):
            api_limits = ApiLimits.from_extras(api_limits, where="api_limits")
        if api_limits is not None:
            check_chunk_fits(chunk_size, api_limits)
        if not min_defer_wait >= 0:
            raise ValueError(f"min_defer_wait: expected a number of seconds >= 0, got {min_defer_wait!r}")
        if max_batch_error_retries < 0:
            raise ValueError(f"max_batch_error_retries: expected >= 0, got {max_batch_error_retries}")
        if on_duplicate not in ON_DUPLICATE_MODES:
            raise ValueError(f"on_duplicate: expected one of {ON_DUPLICATE_MODES}, got {on_duplicate!r}")
        if not _is_template(max_credits):
            check_max_credits_value(max_credits)
        self.items = items
        self.ntropy_conn_id = ntropy_conn_id
        self.operation = operation
        self.chunk_size = chunk_size
        self.priority = priority
        self.input_format = input_format
        self.on_invalid = on_invalid
        self.rejects_path = rejects_path
        self.max_concurrency = max_concurrency
        self.max_open_batches = max_open_batches
        self.credit_share = credit_share
        self.api_limits = api_limits
        self.min_defer_wait = min_defer_wait
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
        self.max_batch_error_retries = max_batch_error_retries
        self.reconcile_timeout = reconcile_timeout
        self.on_input_change = on_input_change
        self.state_retention = state_retention
        self.max_credits = max_credits
        self.dry_run = dry_run
        self.skip_enriched = skip_enriched
        self.on_duplicate = on_duplicate
        self._pay_once: PayOnce | None = None
        # Where the store keeps records for ever (Airflow < 3.3), they are deleted once the task's
        # success is recorded: a callback runs after that, so a crash cannot lose them before it.
        self.on_success_callback = add_callback(self.on_success_callback, _forget_submission_records)
        self._memory_ledger: SubmissionLedger | None = None
        #: Seconds until the last window's batches are expected to end, as the submission left them.
        self._expected_end: float | None = None

    # ----------------------------------------------------------------------------------------------
    # Airflow plumbing
    # ----------------------------------------------------------------------------------------------
    def render_template(self, content: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        """Render templates, except inside a literal list of rows or a DataFrame: rows are data.

        A bank description may well contain ``{{``; Jinja must not touch it.
        """
        if content is not self.items:
            return super().render_template(content, context, *args, **kwargs)
        if isinstance(content, (list, tuple)) or is_dataframe(content):
            return content
        with pandas_needed_for("items"):  # a DataFrame XCom, pulled on a worker without pandas
            return super().render_template(content, context, *args, **kwargs)

    def get_hook(self) -> Any:
        """The sync Ntropy hook for this operator's connection."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        return NtropyHook(ntropy_conn_id=self.ntropy_conn_id)

    def _ledger(self, context: Context) -> SubmissionLedger:
        accessor = task_state_store(context)
        if accessor is not None:
            return SubmissionLedger(
                StateStore(accessor, self.state_retention), operation=self.operation, log=self.log
            )
        # Without a state store the bookkeeping lives in this object: enough for one try, not for a retry.
        if self._memory_ledger is None:
            self.log.warning(
                "No task state store (not run as a task instance): a retry of this task cannot recognise "
                "batches that an earlier try submitted, and may submit them again"
            )
            self._memory_ledger = SubmissionLedger(
                StateStore(None, self.state_retention), operation=self.operation, log=self.log
            )
        return self._memory_ledger

    def forget_submission_records(self, context: Context) -> None:
        """Delete this task instance's records, where the store would otherwise keep them for ever.

        :param context: the task's context.
        """
        store = task_state_store(context)
        if store is None or not forgets_after_success(store):
            return
        deleted = self._ledger(context).forget()
        self.log.info("Deleted the submission records of %d chunk(s): the task succeeded", deleted)

    # ----------------------------------------------------------------------------------------------
    # Reading and validating
    # ----------------------------------------------------------------------------------------------
    def _rows(self, start_row: int = 1) -> Iterator[SourceRow]:
        return iter_rows(self.items, input_format=self.input_format, start_row=start_row)

    def scan(self) -> ScanResult:
        """Read the whole input once: validate every row, quarantine or list the invalid ones, and
        plan the chunks (sizes and fingerprints) of the valid ones. Nothing is sent.

        :raises InvalidInputError: with ``on_invalid="fail"``, naming the first invalid rows.
        """
        # --- pay once (submission/pay_once.py): duplicates and already-enriched ids never reach the plan
        pay_once = self._pay_once = PayOnce(skip_enriched=self.skip_enriched, on_duplicate=self.on_duplicate)
        if self.on_invalid == "quarantine":
            with RejectsWriter(self.rejects_path) as writer:
                result = scan(
                    pay_once.scan_rows(self._rows(), writer), chunk_size=self.chunk_size, rejects=writer
                )
        else:
            result = scan(pay_once.scan_rows(self._rows(), None), chunk_size=self.chunk_size)
        counts = pay_once.counts()
        self.log.info(
            "Read %d row(s) from %s: %d valid in %d chunk(s), %d rejected, %d duplicate id(s), "
            "%d already enriched (skipped)",
            result.rows + counts["duplicates"] + counts["skipped"],
            describe_source(self.items),
            result.valid,
            len(result.chunks),
            result.rejected,
            counts["duplicates"],
            counts["skipped"],
        )
        if counts["duplicates"]:
            self.log.warning(
                "%d row(s) repeat an earlier row's transaction id: each id is sent once, the repeats are "
                "rejected as duplicate_id%s: %s",
                counts["duplicates"],
                "" if self.on_invalid == "quarantine" else " (counted, no rejects file)",
                pay_once.duplicates.describe() if pay_once.duplicates else "",
            )
        if pay_once.locations:
            self.log.info(
                "skip_enriched: %d row(s) already enriched in %s are not sent; rows that ended with an "
                "item error there are sent again",
                counts["skipped"],
                ", ".join(str(location) for location in pay_once.locations),
            )
        if result.rejected and self.on_invalid != "quarantine":
            shown = "\n".join(
                f"  row {r.row}: " + "; ".join(str(e) for e in r.errors) for r in result.first_invalid
            )
            raise InvalidInputError(
                f"{result.rejected} of {result.rows} input row(s) break the API's rules; nothing was sent. "
                f"First invalid rows:\n{shown}\n"
                "Fix them, or use on_invalid='quarantine' with rejects_path to leave them out."
            )
        return result

    def _planned_rows(self, start_row: int, summary: dict[str, Any]) -> Iterator[SourceRow]:
        """The rows the plan was made of, read again from ``start_row``, through the same filters."""
        if self._pay_once is None:  # a resumed task: a new operator instance
            self._pay_once = PayOnce(skip_enriched=self.skip_enriched, on_duplicate=self.on_duplicate)
        # The scan of this process knows best; a resumed one has the count the plan was saved with.
        scanned = self._pay_once.duplicates
        duplicates = scanned.count if scanned is not None else int(summary.get("duplicates") or 0)
        return self._pay_once.reread_rows(
            lambda row: self._rows(start_row=row), start_row=start_row, duplicates=duplicates
        )

    def _dry_run_result(self, hook: Any, plan: ScanResult, summary: dict[str, Any]) -> dict[str, Any]:
        """What a real run would send, reported and returned; nothing is sent."""
        estimate = estimate_cost(plan.valid, len(plan.chunks), self._limits(hook))
        self.log.info(
            "Dry run, nothing sent: %d row(s) read; would send %d transaction(s) in %d batch(es) for %d "
            "credit(s), about %.0f s at the key's credit limits (%s); %d rejected, %d already enriched",
            summary["input_rows"],
            estimate.rows,
            estimate.batches,
            estimate.rows,
            estimate.seconds,
            self._limits(hook),
            summary["rejected"],
            summary["skipped"],
        )
        return {
            "batch_ids": [],
            **summary,
            "dry_run": True,
            "credits": estimate.rows,
            "batches": estimate.batches,
            "estimated_seconds": estimate.seconds,
            "replaced_batch_ids": {},
        }

    def _load_states(self, ledger: SubmissionLedger, plan: ScanResult) -> dict[int, ChunkState]:
        return ledger.load(plan, chunk_size=self.chunk_size, on_input_change=self.on_input_change)

    def _reconcile(self, hook: Any, ledger: SubmissionLedger, states: dict[int, ChunkState]) -> None:
        # Candidates are identified by their results, so they must end first: wait as long as allowed.
        wait = partial(self._wait, hook, timeout=self.reconcile_timeout, purpose="identify candidates")
        ledger.reconcile(hook, states, wait)

    # ----------------------------------------------------------------------------------------------
    # Submitting
    # ----------------------------------------------------------------------------------------------
    # record_intent / record_submitted stay on the operator (not only on the ledger) so that a subclass
    # can observe or interrupt the two moments a crash matters: the tests simulate worker deaths there.
    def record_intent(self, ledger: SubmissionLedger, index: int, state: ChunkState) -> None:
        """Record, before its POST, that chunk ``index`` is about to be sent.

        :param ledger: the task instance's submission records.
        :param index: the chunk's position.
        :param state: its state, updated in place.
        """
        ledger.record_intent(index, state)

    def record_submitted(self, ledger: SubmissionLedger, index: int, state: ChunkState, batch: Batch) -> None:
        """Record, right after the POST was answered, the batch that holds chunk ``index``.

        :param ledger: the task instance's submission records.
        :param index: the chunk's position.
        :param state: its state, updated in place.
        :param batch: the batch the API created for it.
        """
        ledger.record_submitted(index, state, batch)

    def _limits(self, hook: Any) -> ApiLimits:
        return self.api_limits if isinstance(self.api_limits, ApiLimits) else hook.api_limits

    def _send(
        self,
        hook: Any,
        ledger: SubmissionLedger,
        plan: ScanResult,
        states: dict[int, ChunkState],
        send: set[int],
        *,
        deadline: float | None,
        summary: dict[str, Any],
        pausable: bool = True,
        window_state: dict[str, Any] | None = None,
    ) -> None:
        """Send the chunks in ``send`` through the rolling window, reading the input from the first.

        A deferrable task whose next chunk must wait at least ``min_defer_wait`` defers (the method
        does not return): :meth:`resume_submission` goes on from the next unsent chunk.
        """
        if not send:
            return
        limits = self._limits(hook)
        check_chunk_fits(self.chunk_size, limits)
        first = min(send)
        skip = frozenset(i for i in range(first, len(plan.chunks)) if i not in send)
        deferring = pausable and self.deferrable
        window = resume_window(
            hook,
            states,
            window_state,
            limits=limits,
            max_open_batches=self.max_open_batches,
            max_concurrency=self.max_concurrency,
            log=self.log,
            deadline=None if deadline is None else time.monotonic() + (deadline - time.time()),
            total_rows=plan.valid,
            total_chunks=len(plan.chunks),
            credit_share=self.credit_share,
            burst_credits=deferral_burst(
                limits,
                credit_share=self.credit_share,
                min_defer_wait=self.min_defer_wait,
                chunk_size=self.chunk_size,
            )
            if deferring
            else None,
        )

        def before_submit(index: int, size: int) -> None:
            self.record_intent(ledger, index, states[index])

        def on_submitted(index: int, batch: Batch) -> None:
            self.record_submitted(ledger, index, states[index], batch)

        def pause(seconds: float, waiting_for: str) -> bool:
            return deferring and seconds >= self.min_defer_wait

        self.log.info(
            "Submitting %d chunk(s) of %d (%d already sent), from input row %d; at most %d batch(es) in "
            "progress, credits paced to %s",
            len(send),
            len(plan.chunks),
            len(plan.chunks) - len(send),
            plan.chunks[first].first_row,
            window.window.ceiling if window.window else 0,
            f"{limits.credit_capacity:,} held, {limits.credit_refill_per_second:,.0f}/s",
        )
        hook.get_conn()  # read the connection once, in this thread, before the workers start
        chunks = iter_planned_chunks(
            self._planned_rows(plan.chunks[first].first_row, summary),
            plan,
            priority=self.priority,
            skip=skip,
            first_chunk=first,
        )
        with hearing_429s(hook, window):
            outcome = window.run(chunks, before_submit=before_submit, on_submitted=on_submitted, pause=pause)
        self._expected_end = window.expected_end()
        missing = [i for i in sorted(send) if not states[i].batch_id]
        if outcome.paused_at is None:
            if missing:
                raise NtropySubmitError(f"Chunk(s) {missing} got no batch id from the hook")
            return
        wake_at = time.time() + outcome.credit_wait if outcome.waiting_for == WAIT_CREDITS else None
        ledger.save_submission(
            plan,
            deadline=deadline,
            summary=summary,
            window=save_window(window, outcome),
        )
        self.log.info(
            "Deferring until %s (about %.0f s): %d chunk(s) left to send",
            "the credits suffice" if wake_at else "a batch of the window ends",
            outcome.wake_in,
            len(missing),
        )
        self.defer(
            trigger=SubmissionWindowTrigger(
                # Waiting for credits, a batch ending frees a slot that is not what the chunk waits for.
                batch_ids=[] if wake_at else outcome.open_batch_ids,
                ntropy_conn_id=self.ntropy_conn_id,
                wake_at=wake_at,
                deadline=deadline,
                poll_interval=min(self.poll_interval, 1.0),
                max_poll_interval=max(min(self.max_poll_interval, 60.0), min(self.poll_interval, 1.0)),
            ),
            method_name="resume_submission",
        )

    def submit(self, context: Context, deadline: float | None = None) -> dict[str, Any]:
        """Validate, reconcile and submit; the XCom summary of the batches.

        :param context: the task context.
        :param deadline: the absolute deadline (Unix time) of submission and wait, or ``None``.
        """
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority: expected one of {PRIORITIES}, got {self.priority!r}")
        plan = self.scan()
        counts = self._pay_once.counts() if self._pay_once else {"skipped": 0, "duplicates": 0}
        summary: dict[str, Any] = {
            "total": plan.valid,
            "rejected": plan.rejected + counts["duplicates"],
            "skipped": counts["skipped"],
            "duplicates": counts["duplicates"],
            "input_rows": plan.rows + counts["duplicates"] + counts["skipped"],
            "rejects_path": str(self.rejects_path) if self.on_invalid == "quarantine" else None,
        }
        # --- credit guard and dry run (submission/credit_guard.py): decided before any POST
        dry_run = _as_bool(self.dry_run, "dry_run")
        if not plan.chunks and not dry_run:
            return {"batch_ids": [], **summary, "credits": 0, "replaced_batch_ids": {}}
        hook = self.get_hook()
        limit, source = effective_limit(check_max_credits_value(self.max_credits), hook.max_credits)
        check_credits(plan.valid, limit, source=source, input_description=describe_source(self.items))
        if dry_run:
            return self._dry_run_result(hook, plan, summary)
        ledger = self._ledger(context)
        states = self._load_states(ledger, plan)
        self._reconcile(hook, ledger, states)
        known = [i for i, s in states.items() if s.batch_id]
        if known:
            self.log.info(
                "Re-attached to %d batch(es) submitted by an earlier try: chunks %s", len(known), known
            )
        send = {i for i, s in states.items() if not s.batch_id}
        self._send(hook, ledger, plan, states, send, deadline=deadline, summary=summary)
        return self._result(states, summary)

    def resume_submission(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the window's trigger fired: send the next chunks (deferring again if needed),
        then wait for completion as :meth:`execute` does.

        The input is not scanned again: the plan was kept, and reading starts at the first row of the
        next unsent chunk (Parquet: its row group; CSV/JSON Lines: one sequential skip).

        :param context: the task context.
        :param event: the SubmissionWindowTrigger's event payload.
        """
        event = event or {}
        ledger = self._ledger(context)
        plan, deadline, summary, window_state = ledger.load_submission()
        self.log.info("%s", event.get("message") or "Resuming the submission")
        if event.get("status") == "timeout":
            raise NtropyTimeoutError(f"Timed out waiting to submit the next chunks: {event.get('message')}")
        if event.get("status") == "error":
            raise NtropySubmitError(event.get("message"))
        states = ledger.states_of(plan)
        hook = self.get_hook()
        self._reconcile(hook, ledger, states)  # nothing to do unless a POST's outcome went unrecorded
        window_state = without_ended(window_state, set(event.get("ended_batch_ids") or []))
        send = {i for i, s in states.items() if not s.batch_id}
        self._send(
            hook,
            ledger,
            plan,
            states,
            send,
            deadline=deadline,
            summary=summary,
            window_state=window_state,
        )
        return self._after_submit(context, self._result(states, summary), deadline)

    @staticmethod
    def _result(states: dict[int, ChunkState], summary: dict[str, Any]) -> dict[str, Any]:
        ordered = [states[i] for i in sorted(states)]
        replaced = {
            s.replaced[k]: [*s.replaced, s.batch_id][k + 1] for s in ordered for k in range(len(s.replaced))
        }
        # One credit per transaction of every batch created: resubmitted chunks are paid again.
        credits = sum(s.size * (len(s.replaced) + bool(s.batch_id)) for s in ordered)
        return {
            "batch_ids": [s.batch_id for s in ordered],
            **summary,
            "credits": credits,
            "replaced_batch_ids": replaced,
        }

    def execute(self, context: Context) -> dict[str, Any]:
        """Submit through the rolling window (deferring between windows when deferrable); with
        ``wait_for_completion``, wait (deferred or polling) and resubmit errored batches."""
        deadline = None if self.timeout is None else time.time() + self.timeout
        result = self.submit(context, deadline)
        return self._after_submit(context, result, deadline)


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _as_bool(value: Any, name: str) -> bool:
    """A flag given as a bool or as a rendered template (``"True"``, ``"false"``, ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no", "", "none"):
        return False
    raise ValueError(f"{name}: expected true or false, got {value!r}")


def _forget_submission_records(context: Context) -> None:
    """``on_success_callback`` of every SubmitBatchOperator (see ``forget_submission_records``)."""
    context["task"].forget_submission_records(context)  # type: ignore[attr-defined]
