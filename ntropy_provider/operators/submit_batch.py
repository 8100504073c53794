"""SubmitBatchOperator: validate transactions, submit them as Ntropy batches, never twice."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator

from ntropy_provider.io.rejects import RejectsWriter
from ntropy_provider.io.transactions_source import Fingerprint, SourceRow, describe_source, iter_rows
from ntropy_provider.schema import (
    MAX_BATCH_SIZE,
    OPERATIONS,
    PRIORITIES,
    TRANSACTIONS_OPERATION,
    Batch,
    format_datetime,
    parse_datetime,
)
from ntropy_provider.triggers.batch import BatchTrigger
from ntropy_provider.triggers.progress import ProgressTracker, next_poll_interval

if TYPE_CHECKING:
    from airflow.sdk import Context

#: ``on_invalid`` values.
ON_INVALID_MODES: tuple[str, ...] = ("fail", "quarantine")
#: ``on_input_change`` values.
ON_INPUT_CHANGE_MODES: tuple[str, ...] = ("fail", "resubmit")
#: task_state_store keys; renaming them breaks the recovery of tries already in flight.
STATE_PLAN_KEY = "ntropy_submit_plan"
STATE_CHUNK_KEY = "ntropy_submit_chunk_{index}"
STATE_WAIT_KEY = "ntropy_submit_wait"
#: How far before a recorded intent a batch's server-side ``created_at`` may lie (clock skew).
CLOCK_SKEW = dt.timedelta(minutes=5)
#: Invalid rows listed in the failure message of ``on_invalid="fail"``.
SHOWN_INVALID_ROWS = 10


class NtropySubmitError(Exception):
    """Base of the operator's own failures (bad input, changed input, batches in error)."""


class InvalidInputError(NtropySubmitError, ValueError):
    """Rows break the API's rules and ``on_invalid="fail"``: nothing was sent."""


class InputChangedError(NtropySubmitError):
    """The input differs from what an earlier try of this task instance submitted."""


class BatchesInErrorError(NtropySubmitError):
    """Batches ended in ``error`` and the resubmission budget is spent."""


@dataclass(slots=True)
class ChunkPlan:
    """One chunk of valid rows: its size and the fingerprint of its transaction ids."""

    index: int
    size: int
    fingerprint: str


@dataclass(slots=True)
class ScanResult:
    """What a validation pass over the whole input found."""

    rows: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: list[ChunkPlan] = field(default_factory=list)
    first_invalid: list[SourceRow] = field(default_factory=list)


@dataclass(slots=True)
class ChunkState:
    """What the task state store knows about one chunk (survives task tries).

    :param size: rows in the chunk.
    :param fingerprint: hash of its transaction ids, in order.
    :param intent_at: when a POST of the chunk was last about to be sent (ISO 8601), else ``None``.
    :param batch_id: the batch that holds it, once known.
    :param replaced: earlier batches of this chunk that ended in ``error`` and were resubmitted.
    :param attempt: 0 for the first submission, n for the n-th resubmission.
    """

    size: int
    fingerprint: str
    intent_at: str | None = None
    batch_id: str | None = None
    replaced: list[str] = field(default_factory=list)
    attempt: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON value stored."""
        return {
            "size": self.size,
            "fingerprint": self.fingerprint,
            "intent_at": self.intent_at,
            "batch_id": self.batch_id,
            "replaced": list(self.replaced),
            "attempt": self.attempt,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ChunkState:
        """Read a stored value.

        :param value: what :meth:`to_json` stored.
        """
        return cls(
            size=int(value["size"]),
            fingerprint=str(value["fingerprint"]),
            intent_at=value.get("intent_at"),
            batch_id=value.get("batch_id"),
            replaced=list(value.get("replaced") or []),
            attempt=int(value.get("attempt") or 0),
        )


class _StateStore:
    """The task state store, or a dict when there is none (crash recovery is then off)."""

    def __init__(self, accessor: Any, retention: dt.timedelta | None) -> None:
        self._accessor = accessor
        self._retention = retention
        self._memory: dict[str, Any] = {}

    @property
    def durable(self) -> bool:
        return self._accessor is not None

    def get(self, key: str) -> Any:
        if self._accessor is None:
            return self._memory.get(key)
        return self._accessor.get(key)

    def set(self, key: str, value: Any) -> None:
        if self._accessor is None:
            self._memory[key] = value
        elif self._retention is None:
            self._accessor.set(key, value)
        else:
            self._accessor.set(key, value, retention=self._retention)


class SubmitBatchOperator(BaseOperator):
    """Validate transactions, cut them into batches and submit them to Ntropy, never twice.

    The input (``items``) is read lazily (a list, or a Parquet / CSV / JSON Lines file on any
    storage Airflow's ObjectStoragePath reaches) and every row is checked with the API's rules
    before anything is sent. Invalid rows either fail the task (``on_invalid="fail"``, listing the
    first ones by row number and field) or are written, with their reason, to ``rejects_path`` and
    left out (``"quarantine"``). Valid rows are cut into chunks of ``chunk_size`` in input order,
    the same way on every try, and each chunk becomes one batch.

    Returns (XCom) ``{"batch_ids": [...], "total": <rows submitted>, "rejected": <rows rejected>,
    "rejects_path": <path or None>, "replaced_batch_ids": {<errored id>: <its replacement>}}``;
    ``total + rejected`` is the number of input rows.

    **No duplicate batches across task tries.** Ntropy charges per transaction, so a retried task
    must not submit again what an earlier try submitted. XCom is cleared between tries, so the
    operator keeps its bookkeeping in the task state store (``context["task_state_store"]``, one
    key per chunk, scoped to this dag run, task and map index): before each POST it records an
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

    Limits of the guarantee: it needs ``task_state_store`` (Airflow 3.3+; without it a warning is
    logged and a retry may resubmit); the input must be the same on every try (a changed chunk is
    detected by its fingerprint and fails the task, or is resubmitted with
    ``on_input_change="resubmit"``); a candidate that ended in ``error`` cannot be identified (it
    has no results), so a chunk whose only candidates errored is sent again, which is what one does
    with an errored batch anyway; and the hook must not blindly retry a POST whose answer was lost.
    The state persists after success, so clearing a successful task re-attaches to its batches
    instead of paying again for the same input.

    With ``wait_for_completion``, the operator waits for its batches (deferred to the triggerer
    with :class:`~ntropy_provider.triggers.batch.BatchTrigger`, or polling), resubmits chunks whose
    batch ended in ``error`` up to ``max_batch_error_retries`` times (recorded in the state store too,
    so a retry does not resubmit again), and fails naming every batch still in ``error``.

    :param items: the transactions: a list of dicts, an XComArg resolving to one, or the path / URI
        (str or ObjectStoragePath) of a Parquet, CSV or JSON Lines file. Templated.
    :param ntropy_conn_id: the Airflow connection of the Ntropy API.
    :param operation: the batch operation; only ``POST /v3/transactions`` exists.
    :param chunk_size: most transactions per batch (1 to 24,960).
    :param priority: ``default`` or ``low``. Templated.
    :param input_format: ``parquet``, ``csv`` or ``jsonl`` when the file name does not tell. Templated.
    :param on_invalid: ``fail`` (nothing is sent when any row is invalid) or ``quarantine``.
    :param rejects_path: where ``quarantine`` writes rejected rows (JSON Lines). Templated.
    :param max_concurrency: most batch POSTs in flight at once.
    :param wait_for_completion: wait for every batch to end before succeeding.
    :param deferrable: wait in the triggerer instead of a worker slot (default: the
        ``[operators] default_deferrable`` setting).
    :param poll_interval: shortest interval between status checks, in seconds.
    :param max_poll_interval: longest interval between status checks, in seconds.
    :param timeout: longest wait for completion, in seconds or as a timedelta (``None``: no limit).
    :param max_batch_error_retries: how often a chunk whose batch ended in ``error`` is resubmitted
        (only with ``wait_for_completion``).
    :param reconcile_timeout: longest wait, in seconds, for candidate batches to end when an earlier
        try crashed between a POST and its record (see above).
    :param on_input_change: ``fail`` or ``resubmit`` when a chunk differs from what an earlier try
        submitted for the same position.
    :param state_retention: how long the state store keeps this task's bookkeeping (``None``: the
        ``[state_store] default_retention_days`` setting).
    """

    template_fields: Sequence[str] = ("items", "priority", "input_format", "rejects_path")
    ui_color = "#2e7d6b"

    def __init__(
        self,
        *,
        items: Any,
        ntropy_conn_id: str = "ntropy_default",
        operation: str = TRANSACTIONS_OPERATION,
        chunk_size: int = MAX_BATCH_SIZE,
        priority: str = "default",
        input_format: str | None = None,
        on_invalid: str = "fail",
        rejects_path: Any = None,
        max_concurrency: int = 4,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        max_poll_interval: float = 300.0,
        timeout: float | dt.timedelta | None = None,
        max_batch_error_retries: int = 2,
        reconcile_timeout: float = 3600.0,
        on_input_change: str = "fail",
        state_retention: dt.timedelta | None = None,
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
        if max_batch_error_retries < 0:
            raise ValueError(f"max_batch_error_retries: expected >= 0, got {max_batch_error_retries}")
        self.items = items
        self.ntropy_conn_id = ntropy_conn_id
        self.operation = operation
        self.chunk_size = chunk_size
        self.priority = priority
        self.input_format = input_format
        self.on_invalid = on_invalid
        self.rejects_path = rejects_path
        self.max_concurrency = max_concurrency
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout
        self.max_batch_error_retries = max_batch_error_retries
        self.reconcile_timeout = reconcile_timeout
        self.on_input_change = on_input_change
        self.state_retention = state_retention
        self._memory_state: _StateStore | None = None

    # ----------------------------------------------------------------------------------------------
    # Airflow plumbing
    # ----------------------------------------------------------------------------------------------
    def render_template(self, content: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        """Render templates, except inside a literal list of rows: rows are data, not templates.

        A bank description may well contain ``{{``; Jinja must not touch it.
        """
        if content is self.items and isinstance(content, (list, tuple)):
            return content
        return super().render_template(content, context, *args, **kwargs)

    def get_hook(self) -> Any:
        """The sync Ntropy hook for this operator's connection."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        return NtropyHook(ntropy_conn_id=self.ntropy_conn_id)

    def _state(self, context: Context) -> _StateStore:
        accessor = context.get("task_state_store")  # type: ignore[call-overload]
        if accessor is not None:
            return _StateStore(accessor, self.state_retention)
        # Without a state store the bookkeeping lives in this object: enough for one try, not for a retry.
        if self._memory_state is None:
            self.log.warning(
                "task_state_store is not available (Airflow < 3.3?): a retry of this task cannot recognise "
                "batches that an earlier try submitted, and may submit them again"
            )
            self._memory_state = _StateStore(None, self.state_retention)
        return self._memory_state

    # ----------------------------------------------------------------------------------------------
    # Reading and validating
    # ----------------------------------------------------------------------------------------------
    def _rows(self) -> Iterator[SourceRow]:
        return iter_rows(self.items, input_format=self.input_format)

    def scan(self) -> ScanResult:
        """Read the whole input once: validate every row, quarantine or list the invalid ones, and
        plan the chunks (sizes and fingerprints) of the valid ones. Nothing is sent.

        :raises InvalidInputError: with ``on_invalid="fail"``, naming the first invalid rows.
        """
        result = ScanResult()
        current = Fingerprint()
        writer = RejectsWriter(self.rejects_path) if self.on_invalid == "quarantine" else None

        def close_chunk() -> None:
            nonlocal current
            result.chunks.append(ChunkPlan(len(result.chunks), current.size, current.hexdigest()))
            current = Fingerprint()

        def consume(rows: Iterator[SourceRow]) -> None:
            for source_row in rows:
                result.rows += 1
                if not source_row.valid:
                    result.rejected += 1
                    if writer is not None:
                        writer.write(source_row)
                    elif len(result.first_invalid) < SHOWN_INVALID_ROWS:
                        result.first_invalid.append(source_row)
                    continue
                result.valid += 1
                current.add(source_row.transaction["id"])  # type: ignore[index]
                if current.size == self.chunk_size:
                    close_chunk()

        if writer is not None:
            with writer:
                consume(self._rows())
        else:
            consume(self._rows())
        if current.size:
            close_chunk()
        self.log.info(
            "Read %d row(s) from %s: %d valid in %d chunk(s), %d rejected",
            result.rows,
            describe_source(self.items),
            result.valid,
            len(result.chunks),
            result.rejected,
        )
        if result.rejected and writer is None:
            shown = "\n".join(
                f"  row {r.row}: " + "; ".join(str(e) for e in r.errors) for r in result.first_invalid
            )
            raise InvalidInputError(
                f"{result.rejected} of {result.rows} input row(s) break the API's rules; nothing was sent. "
                f"First invalid rows:\n{shown}\n"
                "Fix them, or use on_invalid='quarantine' with rejects_path to leave them out."
            )
        return result

    def _valid_transactions(self, fingerprints: dict[int, Fingerprint]) -> Iterator[dict[str, Any]]:
        """The valid rows again, in the same order, fingerprinting each chunk as it streams past."""
        index, current = 0, Fingerprint()
        fingerprints[0] = current
        for source_row in self._rows():
            if not source_row.valid:
                continue
            transaction = source_row.transaction
            current.add(transaction["id"])  # type: ignore[index]
            yield transaction  # type: ignore[misc]
            if current.size == self.chunk_size:
                index, current = index + 1, Fingerprint()
                fingerprints[index] = current

    # ----------------------------------------------------------------------------------------------
    # The state of each chunk across tries
    # ----------------------------------------------------------------------------------------------
    def _load_states(self, store: _StateStore, plan: ScanResult) -> dict[int, ChunkState]:
        states: dict[int, ChunkState] = {}
        for chunk in plan.chunks:
            stored = store.get(STATE_CHUNK_KEY.format(index=chunk.index))
            fresh = ChunkState(size=chunk.size, fingerprint=chunk.fingerprint)
            if not stored:
                states[chunk.index] = fresh
                continue
            state = ChunkState.from_json(stored)
            if state.fingerprint != chunk.fingerprint or state.size != chunk.size:
                where = f"batch {state.batch_id}" if state.batch_id else "a batch whose id was not recorded"
                message = (
                    f"Chunk {chunk.index} differs from what an earlier try of this task submitted as {where} "
                    f"({state.size} rows, fingerprint {state.fingerprint}; now {chunk.size} rows, "
                    f"fingerprint {chunk.fingerprint}): the input or chunk_size changed between tries."
                )
                if self.on_input_change == "fail":
                    raise InputChangedError(
                        message + " Restore the input, or set on_input_change='resubmit' to submit the "
                        "new content (the earlier batches stay on Ntropy and were charged)."
                    )
                self.log.warning("%s Submitting the new content (on_input_change='resubmit').", message)
                states[chunk.index] = fresh
                continue
            states[chunk.index] = state
        store.set(
            STATE_PLAN_KEY,
            {"chunks": len(plan.chunks), "chunk_size": self.chunk_size, "valid": plan.valid},
        )
        return states

    def _save(self, store: _StateStore, index: int, state: ChunkState) -> None:
        store.set(STATE_CHUNK_KEY.format(index=index), state.to_json())

    # ----------------------------------------------------------------------------------------------
    # Reconciling intents whose outcome was never recorded
    # ----------------------------------------------------------------------------------------------
    def reconcile(self, hook: Any, store: _StateStore, states: dict[int, ChunkState]) -> None:
        """Decide, for every chunk with an intent but no batch id, whether its batch exists.

        Candidates are batches created since the earliest such intent (less ``CLOCK_SKEW``), not known
        to this task, with the chunk's size. They are waited for, and the results of completed ones are
        matched against the chunks' fingerprints. Matched chunks get their batch id; the others get
        their intent cleared, so they are sent.
        """
        unresolved = {i: s for i, s in states.items() if s.intent_at and not s.batch_id}
        if not unresolved:
            return
        known = {s.batch_id for s in states.values() if s.batch_id}
        known.update(old for s in states.values() for old in s.replaced)
        since = min(parse_datetime(s.intent_at) for s in unresolved.values()) - CLOCK_SKEW  # type: ignore[arg-type]
        sizes = {s.size for s in unresolved.values()}
        candidates = [
            b
            for b in hook.list_batches(created_after=since)
            if b.id not in known and b.total in sizes and b.operation == self.operation
        ]
        self.log.warning(
            "An earlier try crashed while submitting chunk(s) %s: %d candidate batch(es) created since %s "
            "have a matching size: %s",
            sorted(unresolved),
            len(candidates),
            format_datetime(since),
            ", ".join(b.id for b in candidates) or "none",
        )
        matched: dict[int, str] = {}
        if candidates:
            matched = self._match_by_results(hook, unresolved, candidates)
        for index, state in unresolved.items():
            if index in matched:
                state.batch_id = matched[index]
                self.log.info("Chunk %d: re-attached to batch %s", index, state.batch_id)
            else:
                self.log.info("Chunk %d: no batch holds it; it will be sent", index)
            state.intent_at = None
            self._save(store, index, state)

    def _match_by_results(
        self, hook: Any, unresolved: dict[int, ChunkState], candidates: list[Batch]
    ) -> dict[int, str]:
        ended = self._wait(
            hook, [b.id for b in candidates], timeout=self.reconcile_timeout, purpose="identify candidates"
        )
        by_fingerprint = {s.fingerprint: i for i, s in unresolved.items()}
        matched: dict[int, str] = {}
        for batch in ended:
            if batch.status != "completed":
                self.log.warning(
                    "Candidate batch %s ended in %s: it cannot be identified", batch.id, batch.status
                )
                continue
            results = hook.get_batch_results(batch.id)
            fingerprint = Fingerprint()
            for item in results.results:
                fingerprint.add(item.get("id"))
            index = by_fingerprint.get(fingerprint.hexdigest())
            if index is not None and index not in matched:
                matched[index] = batch.id
        return matched

    # ----------------------------------------------------------------------------------------------
    # Submitting
    # ----------------------------------------------------------------------------------------------
    def record_intent(self, store: _StateStore, index: int, state: ChunkState) -> None:
        """Record, before its POST, that chunk ``index`` is about to be sent."""
        state.intent_at = format_datetime(dt.datetime.now(dt.UTC))
        self._save(store, index, state)

    def record_submitted(self, store: _StateStore, index: int, state: ChunkState, batch: Batch) -> None:
        """Record, right after the POST was answered, the batch that holds chunk ``index``."""
        state.batch_id = batch.id
        state.intent_at = None
        self._save(store, index, state)

    def _submit(
        self, hook: Any, store: _StateStore, plan: ScanResult, states: dict[int, ChunkState], send: set[int]
    ) -> None:
        """Send the chunks in ``send`` (every other chunk is consumed from the input but not sent)."""
        if not send:
            return
        fingerprints: dict[int, Fingerprint] = {}

        def before_submit(index: int, size: int) -> None:
            planned = plan.chunks[index]
            streamed = fingerprints.get(index)
            if size != planned.size or streamed is None or streamed.hexdigest() != planned.fingerprint:
                raise InputChangedError(
                    f"Chunk {index} changed while the task was reading it ({size} rows, planned "
                    f"{planned.size}): the input was modified during the run. Nothing more is sent."
                )
            self.record_intent(store, index, states[index])

        def on_submitted(index: int, batch: Batch) -> None:
            self.record_submitted(store, index, states[index], batch)
            self.log.info("Chunk %d (%d rows): batch %s", index, batch.total, batch.id)

        skip = frozenset(i for i in range(len(plan.chunks)) if i not in send)
        self.log.info(
            "Submitting %d chunk(s) of %d (%d already known)", len(send), len(plan.chunks), len(skip)
        )
        hook.submit_batches(
            self._valid_transactions(fingerprints),
            chunk_size=self.chunk_size,
            priority=self.priority,
            max_concurrency=self.max_concurrency,
            skip_chunks=skip,
            before_submit=before_submit,
            on_submitted=on_submitted,
        )
        missing = [i for i in send if not states[i].batch_id]
        if missing:
            raise NtropySubmitError(f"Chunk(s) {missing} got no batch id from the hook")

    def submit(self, context: Context) -> dict[str, Any]:
        """Validate, reconcile and submit; the XCom summary of the batches."""
        if self.priority not in PRIORITIES:
            raise ValueError(f"priority: expected one of {PRIORITIES}, got {self.priority!r}")
        plan = self.scan()
        summary: dict[str, Any] = {
            "total": plan.valid,
            "rejected": plan.rejected,
            "rejects_path": str(self.rejects_path) if self.on_invalid == "quarantine" else None,
        }
        if not plan.chunks:
            return {"batch_ids": [], **summary, "replaced_batch_ids": {}}
        store = self._state(context)
        states = self._load_states(store, plan)
        hook = self.get_hook()
        self.reconcile(hook, store, states)
        known = [i for i, s in states.items() if s.batch_id]
        if known:
            self.log.info(
                "Re-attached to %d batch(es) submitted by an earlier try: chunks %s", len(known), known
            )
        self._submit(hook, store, plan, states, {i for i, s in states.items() if not s.batch_id})
        return self._result(states, summary)

    @staticmethod
    def _result(states: dict[int, ChunkState], summary: dict[str, Any]) -> dict[str, Any]:
        ordered = [states[i] for i in sorted(states)]
        replaced = {
            s.replaced[k]: [*s.replaced, s.batch_id][k + 1] for s in ordered for k in range(len(s.replaced))
        }
        return {"batch_ids": [s.batch_id for s in ordered], **summary, "replaced_batch_ids": replaced}

    # ----------------------------------------------------------------------------------------------
    # Waiting and resubmitting errored batches
    # ----------------------------------------------------------------------------------------------
    def _wait(self, hook: Any, batch_ids: list[str], *, timeout: float | None, purpose: str) -> list[Batch]:
        """Poll (sync) until every batch ended; the batches in the order given."""
        tracker = ProgressTracker(batch_ids)
        latest: dict[str, Batch] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = self.poll_interval
        while True:
            for batch_id in tracker.pending:
                batch = hook.get_batch(batch_id)
                latest[batch_id] = batch
                tracker.update(batch, time.monotonic())
            if tracker.all_terminal:
                return [latest[i] for i in batch_ids]
            self.log.info("Waiting to %s: %s", purpose, tracker.summary())
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Timed out waiting to {purpose}: batch(es) {', '.join(tracker.pending)} still processing"
                )
            interval = next_poll_interval(
                interval, tracker.eta, minimum=self.poll_interval, maximum=self.max_poll_interval
            )
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    def _resubmit_errored(self, context: Context, errored: list[str]) -> bool:
        """Resubmit the chunks whose batch is in ``errored``, within the budget.

        :return: whether anything was resubmitted.
        :raises BatchesInErrorError: naming every batch that stays in error when the budget is spent.
        """
        plan = self.scan()
        store = self._state(context)
        states = self._load_states(store, plan)
        hook = self.get_hook()
        self.reconcile(hook, store, states)
        by_batch = {s.batch_id: i for i, s in states.items()}
        retry: set[int] = set()
        stuck: list[str] = []
        for batch_id in errored:
            index = by_batch.get(batch_id)
            if index is None:
                continue  # already replaced by an earlier try
            if states[index].attempt < self.max_batch_error_retries:
                retry.add(index)
            else:
                stuck.append(batch_id)
        if stuck:
            raise BatchesInErrorError(
                f"{len(stuck)} batch(es) ended in error after {self.max_batch_error_retries} "
                f"resubmission(s): {', '.join(stuck)}"
            )
        for index in sorted(retry):
            state = states[index]
            self.log.warning(
                "Chunk %d: batch %s ended in error; resubmitting (attempt %d of %d)",
                index,
                state.batch_id,
                state.attempt + 1,
                self.max_batch_error_retries,
            )
            state.replaced.append(state.batch_id)  # type: ignore[arg-type]
            state.batch_id = None
            state.attempt += 1
            self._save(store, index, state)
        self._submit(hook, store, plan, states, retry)
        return bool(retry)

    def _current_result(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        store = self._state(context)
        plan = store.get(STATE_PLAN_KEY) or {"chunks": 0}
        states = {
            i: ChunkState.from_json(store.get(STATE_CHUNK_KEY.format(index=i))) for i in range(plan["chunks"])
        }
        return self._result(states, summary)

    def execute(self, context: Context) -> dict[str, Any]:
        """Submit; with ``wait_for_completion``, wait (deferred or polling) and resubmit errored batches."""
        result = self.submit(context)
        if not self.wait_for_completion or not result["batch_ids"]:
            return result
        deadline = None if self.timeout is None else time.time() + self.timeout
        summary = {k: result[k] for k in ("total", "rejected", "rejects_path")}
        if self.deferrable:
            return self._defer_or_finish(context, result, deadline, summary)
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.time())
            batches = self._wait(self.get_hook(), result["batch_ids"], timeout=remaining, purpose="complete")
            errored = [b.id for b in batches if b.status == "error"]
            if not errored:
                return result
            self._resubmit_errored(context, errored)
            result = self._current_result(context, summary)

    def _defer_or_finish(
        self, context: Context, result: dict[str, Any], deadline: float | None, summary: dict[str, Any]
    ) -> dict[str, Any]:
        # One check before deferring: batches that already ended need no triggerer round trip.
        hook = self.get_hook()
        batches = [hook.get_batch(i) for i in result["batch_ids"]]
        if all(b.is_terminal for b in batches):
            errored = [b.id for b in batches if b.status == "error"]
            if not errored:
                return result
            self._resubmit_errored(context, errored)
            result = self._current_result(context, summary)
        # The deadline and counts travel both as method kwargs (the triggerer keeps them) and in the
        # state store (dag.test() drops method kwargs on resume).
        self._state(context).set(STATE_WAIT_KEY, {"deadline": deadline, "summary": summary})
        self.defer(
            trigger=BatchTrigger(
                batch_ids=result["batch_ids"],
                ntropy_conn_id=self.ntropy_conn_id,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                deadline=deadline,
            ),
            method_name="execute_complete",
            kwargs={"deadline": deadline, "summary": summary},
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        deadline: float | None = None,
        summary: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger fired: succeed, resubmit errored batches and wait again, or fail.

        :param context: the task context.
        :param event: the BatchTrigger's event payload.
        :param deadline: the absolute deadline of the wait (Unix time), carried across deferrals.
        :param summary: the counts of the submission, carried across deferrals.
        """
        if summary is None:
            stored = self._state(context).get(STATE_WAIT_KEY) or {}
            summary, deadline = stored.get("summary") or {}, stored.get("deadline")
        status = event.get("status")
        self.log.info("%s", event.get("message"))
        if status == "success":
            return self._current_result(context, summary)
        if status == "timeout":
            raise TimeoutError(event.get("message"))
        if event.get("termination_reason") != "batch_error":
            raise NtropySubmitError(event.get("message"))
        self._resubmit_errored(context, list(event.get("errored_batch_ids") or []))
        result = self._current_result(context, summary)
        return self._defer_or_finish(context, result, deadline, summary)
