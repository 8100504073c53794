"""The crash-safe submission ledger: what every chunk became, kept across task tries.

One small record per chunk lives in Airflow's task state store: before a chunk's POST an *intent*
(size, fingerprint, time), after the answer its batch id. A later try reads the records back to
re-attach to batches already paid for, and reconciles intents whose outcome was never recorded
(the worker died between the POST and the record) by matching candidate batches' results against
the chunks' fingerprints. The operator decides when to submit; this module only remembers and
recognises.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ntropy_provider.api.models import Batch, format_datetime, parse_datetime
from ntropy_provider.exceptions import InputChangedError
from ntropy_provider.submission.plan import Fingerprint, ScanResult, plan_from_json, plan_to_json

if TYPE_CHECKING:
    from airflow.sdk.types import Logger

#: task_state_store keys; renaming them breaks the recovery of tries already in flight.
STATE_PLAN_KEY = "ntropy_submit_plan"
STATE_CHUNK_KEY = "ntropy_submit_chunk_{index}"
STATE_WAIT_KEY = "ntropy_submit_wait"
STATE_SUBMISSION_KEY = "ntropy_submit_submission"
#: How far before a recorded intent a batch's server-side ``created_at`` may lie (clock skew).
CLOCK_SKEW = dt.timedelta(minutes=5)
#: ``on_input_change`` values.
ON_INPUT_CHANGE_MODES: tuple[str, ...] = ("fail", "resubmit")


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


class StateStore:
    """The task state store, or a dict when there is none (crash recovery is then off).

    :param accessor: ``context["task_state_store"]`` (get/set), or ``None`` to keep values in memory.
    :param retention: how long the store keeps a value (``None``: Airflow's default retention).
    """

    def __init__(self, accessor: Any, retention: dt.timedelta | None) -> None:
        self._accessor = accessor
        self._retention = retention
        self._memory: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        """The value stored under ``key``, or ``None``.

        :param key: the key.
        """
        if self._accessor is None:
            return self._memory.get(key)
        return self._accessor.get(key)

    def set(self, key: str, value: Any) -> None:
        """Store a JSON value.

        :param key: the key.
        :param value: the value.
        """
        if self._accessor is None:
            self._memory[key] = value
        elif self._retention is None:
            self._accessor.set(key, value)
        else:
            self._accessor.set(key, value, retention=self._retention)

    def delete(self, key: str) -> None:
        """Forget ``key``.

        :param key: the key.
        """
        if self._accessor is None:
            self._memory.pop(key, None)
        else:
            self._accessor.delete(key)


class SubmissionLedger:
    """The chunk records of one task instance, and the reconciliation of unrecorded POSTs.

    :param store: where the records live.
    :param operation: the batch operation the chunks are submitted with (candidates must match it).
    :param log: the logger to report to (the operator's, so that messages land in the task log).
    """

    def __init__(self, store: StateStore, *, operation: str, log: Logger) -> None:
        self.store = store
        self.operation = operation
        self.log = log

    # ----------------------------------------------------------------------------------------------
    # Reading and writing chunk records
    # ----------------------------------------------------------------------------------------------
    def load(self, plan: ScanResult, *, chunk_size: int, on_input_change: str) -> dict[int, ChunkState]:
        """The state of every planned chunk: its record from an earlier try, or a fresh one.

        :param plan: the chunks of this try's input.
        :param chunk_size: the chunk size the plan was made with (recorded with the plan).
        :param on_input_change: ``fail`` or ``resubmit`` when a record's chunk differs from the plan's.
        :raises InputChangedError: a chunk differs and ``on_input_change="fail"``.
        """
        states: dict[int, ChunkState] = {}
        for chunk in plan.chunks:
            stored = self.store.get(STATE_CHUNK_KEY.format(index=chunk.index))
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
                if on_input_change == "fail":
                    raise InputChangedError(
                        message + " Restore the input, or set on_input_change='resubmit' to submit the "
                        "new content (the earlier batches stay on Ntropy and were charged)."
                    )
                self.log.warning("%s Submitting the new content (on_input_change='resubmit').", message)
                states[chunk.index] = fresh
                continue
            states[chunk.index] = state
        self.store.set(
            STATE_PLAN_KEY,
            {"chunks": len(plan.chunks), "chunk_size": chunk_size, "valid": plan.valid},
        )
        return states

    def recorded(self) -> dict[int, ChunkState]:
        """The records of the chunks of the last plan :meth:`load` stored, without reading the input."""
        plan = self.store.get(STATE_PLAN_KEY) or {"chunks": 0}
        return {
            i: ChunkState.from_json(self.store.get(STATE_CHUNK_KEY.format(index=i)))
            for i in range(plan["chunks"])
        }

    def save(self, index: int, state: ChunkState) -> None:
        """Store the record of chunk ``index``.

        :param index: the chunk's position.
        :param state: its state.
        """
        self.store.set(STATE_CHUNK_KEY.format(index=index), state.to_json())

    def record_intent(self, index: int, state: ChunkState) -> None:
        """Record, before its POST, that chunk ``index`` is about to be sent.

        :param index: the chunk's position.
        :param state: its state, updated in place.
        """
        state.intent_at = format_datetime(dt.datetime.now(dt.UTC))
        self.save(index, state)

    def record_submitted(self, index: int, state: ChunkState, batch: Batch) -> None:
        """Record, right after the POST was answered, the batch that holds chunk ``index``.

        :param index: the chunk's position.
        :param state: its state, updated in place.
        :param batch: the batch the API created for it.
        """
        state.batch_id = batch.id
        state.intent_at = None
        self.save(index, state)

    def record_replaced(self, index: int, state: ChunkState) -> None:
        """Record that chunk ``index``'s batch ended in ``error`` and the chunk is to be sent again.

        :param index: the chunk's position.
        :param state: its state, updated in place (its batch moves to ``replaced``).
        """
        state.replaced.append(state.batch_id)  # type: ignore[arg-type]
        state.batch_id = None
        state.attempt += 1
        self.save(index, state)

    def states_of(self, plan: ScanResult) -> dict[int, ChunkState]:
        """Every planned chunk's record, fresh for chunks never recorded (a resumed submission).

        :param plan: the plan the records were made for (:meth:`load_submission`).
        """
        states: dict[int, ChunkState] = {}
        for chunk in plan.chunks:
            stored = self.store.get(STATE_CHUNK_KEY.format(index=chunk.index))
            fresh = ChunkState(size=chunk.size, fingerprint=chunk.fingerprint)
            states[chunk.index] = ChunkState.from_json(stored) if stored else fresh
        return states

    def save_submission(
        self,
        plan: ScanResult,
        *,
        deadline: float | None,
        summary: dict[str, Any],
        window: dict[str, Any] | None = None,
    ) -> None:
        """Keep what a resumed submission needs without reading the input again: the plan (per chunk
        its size, fingerprint and first row), the deadline, the counts and the window's state.

        :param plan: the input's plan.
        :param deadline: the absolute deadline of submission and wait (Unix time), or ``None``.
        :param summary: the counts of the submission.
        :param window: what the window knew when it paused (open batches, its size, credit estimate).
        """
        self.store.set(
            STATE_SUBMISSION_KEY,
            {"plan": plan_to_json(plan), "deadline": deadline, "summary": summary, "window": window or {}},
        )

    def load_submission(self) -> tuple[ScanResult, float | None, dict[str, Any], dict[str, Any]]:
        """The ``(plan, deadline, summary, window)`` :meth:`save_submission` kept.

        :raises KeyError: when nothing was kept (the store lost it, or another operator wrote it).
        """
        stored = self.store.get(STATE_SUBMISSION_KEY)
        if not stored:
            raise KeyError(f"no {STATE_SUBMISSION_KEY} record to resume the submission from")
        return (
            plan_from_json(stored["plan"]),
            stored.get("deadline"),
            stored.get("summary") or {},
            stored.get("window") or {},
        )

    def save_wait(self, deadline: float | None, summary: dict[str, Any]) -> None:
        """Keep the wait's deadline and counts across a deferral (dag.test() drops method kwargs).

        :param deadline: the absolute deadline of the wait (Unix time), or ``None``.
        :param summary: the counts of the submission.
        """
        self.store.set(STATE_WAIT_KEY, {"deadline": deadline, "summary": summary})

    def load_wait(self) -> tuple[dict[str, Any], float | None]:
        """The ``(summary, deadline)`` :meth:`save_wait` kept (empty and ``None`` when nothing was)."""
        stored = self.store.get(STATE_WAIT_KEY) or {}
        return stored.get("summary") or {}, stored.get("deadline")

    def forget(self) -> int:
        """Delete every record of this task instance (the chunks of every plan, the plan, the kept
        submission, the wait).

        Chunk records are contiguous from 0, so the chunks of an earlier, longer plan are found by
        reading on until one is missing.

        :return: how many chunk records were deleted.
        """
        planned = (self.store.get(STATE_PLAN_KEY) or {}).get("chunks", 0)
        index = 0
        while index < planned or self.store.get(STATE_CHUNK_KEY.format(index=index)):
            self.store.delete(STATE_CHUNK_KEY.format(index=index))
            index += 1
        self.store.delete(STATE_WAIT_KEY)
        self.store.delete(STATE_SUBMISSION_KEY)
        self.store.delete(STATE_PLAN_KEY)
        return index

    # ----------------------------------------------------------------------------------------------
    # Reconciling intents whose outcome was never recorded
    # ----------------------------------------------------------------------------------------------
    def reconcile(
        self, hook: Any, states: dict[int, ChunkState], wait: Callable[[list[str]], list[Batch]]
    ) -> None:
        """Decide, for every chunk with an intent but no batch id, whether its batch exists.

        Candidates are batches created since the earliest such intent (less ``CLOCK_SKEW``), not known
        to this task, with the chunk's size. They are waited for, and the results of completed ones are
        matched against the chunks' fingerprints. Matched chunks get their batch id; the others get
        their intent cleared, so they are sent.

        :param hook: the sync Ntropy hook (lists batches and fetches results).
        :param states: every chunk's state, updated in place and saved.
        :param wait: polls the given batch ids until each has ended; the batches, in the order given.
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
            matched = self._match_by_results(hook, unresolved, wait([b.id for b in candidates]))
        for index, state in unresolved.items():
            if index in matched:
                state.batch_id = matched[index]
                self.log.info("Chunk %d: re-attached to batch %s", index, state.batch_id)
            else:
                self.log.info("Chunk %d: no batch holds it; it will be sent", index)
            state.intent_at = None
            self.save(index, state)

    def _match_by_results(
        self, hook: Any, unresolved: dict[int, ChunkState], ended: list[Batch]
    ) -> dict[int, str]:
        """Which unresolved chunk each ended candidate holds, by the fingerprint of its results' ids."""
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
