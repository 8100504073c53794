"""The chunk plan of an input: one validation pass fixes every chunk's boundaries and fingerprint.

Chunks are cut from the valid rows only, in input order, ``chunk_size`` rows each, so the same input
gives the same chunks on every task try. The plan is the one source of the boundaries: the rows are
cut for sending at the plan's sizes (:func:`iter_planned_chunks`), and the ledger records each chunk by
its plan entry. A chunk's fingerprint (a hash of its transaction ids) is what lets a later try
recognise it, and what catches an input that changed between the scan and the send. Nothing here
sends anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.exceptions import InputChangedError
from ntropy_provider.io.rejects import RejectsWriter
from ntropy_provider.io.source_rows import SourceRow
from ntropy_provider.submission.chunks import Chunk, cut_chunks
from ntropy_provider.utils.gc_pause import gc_paused

#: Invalid rows a scan keeps to show when they are not quarantined (the rest are only counted).
SHOWN_INVALID_ROWS = 10


class Fingerprint:
    """Incremental fingerprint of a chunk: a hash of its transaction ids, in order."""

    __slots__ = ("_digest", "size")

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.size = 0

    def add(self, transaction_id: Any) -> None:
        """Add the next transaction id.

        :param transaction_id: the id (anything else is hashed by its repr).
        """
        self.add_many([transaction_id])

    def add_many(self, transaction_ids: list[Any]) -> None:
        """Add the next transaction ids at once (the same fingerprint as adding them one by one).

        :param transaction_ids: the ids, in order (anything but a string is hashed by its repr).
        """
        if not transaction_ids:
            return
        texts = (t if isinstance(t, str) else repr(t) for t in transaction_ids)
        self._digest.update(b"\x1f".join(t.encode("utf-8", "surrogateescape") for t in texts) + b"\x1f")
        self.size += len(transaction_ids)

    def hexdigest(self) -> str:
        """The fingerprint, 32 hex characters."""
        return self._digest.hexdigest()[:32]


@dataclass(slots=True)
class ChunkPlan:
    """One chunk of valid rows: its place, size and the fingerprint of its transaction ids.

    :param index: the chunk's position, from 0.
    :param size: rows in the chunk.
    :param fingerprint: hash of its transaction ids, in order.
    :param first_row: the 1-based input row number of its first row (where a resumed read may start).
    """

    index: int
    size: int
    fingerprint: str
    first_row: int = 0


@dataclass(slots=True)
class ScanResult:
    """What a validation pass over the whole input found: the plan of its chunks.

    :param rows: input rows read.
    :param valid: rows that can be sent.
    :param rejected: rows that cannot; ``valid + rejected == rows``.
    :param chunks: the chunks the valid rows make, in order.
    :param first_invalid: the first :data:`SHOWN_INVALID_ROWS` invalid rows, when not quarantined.
    """

    rows: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: list[ChunkPlan] = field(default_factory=list)
    first_invalid: list[SourceRow] = field(default_factory=list)


def plan_to_json(plan: ScanResult) -> dict[str, Any]:
    """The plan as a small JSON value (per chunk: size, fingerprint, first row), kept across deferrals.

    :param plan: the plan.
    """
    return {
        "rows": plan.rows,
        "valid": plan.valid,
        "rejected": plan.rejected,
        "chunks": [[c.size, c.fingerprint, c.first_row] for c in plan.chunks],
    }


def plan_from_json(value: dict[str, Any]) -> ScanResult:
    """Read back what :func:`plan_to_json` stored.

    :param value: the stored value.
    """
    chunks = [
        ChunkPlan(i, int(size), str(fp), int(first)) for i, (size, fp, first) in enumerate(value["chunks"])
    ]
    return ScanResult(
        rows=int(value["rows"]), valid=int(value["valid"]), rejected=int(value["rejected"]), chunks=chunks
    )


def scan(rows: Iterable[SourceRow], *, chunk_size: int, rejects: RejectsWriter | None = None) -> ScanResult:
    """Read every row once: count, quarantine or keep the invalid ones, and plan the valid ones' chunks.

    :param rows: the input rows, as :func:`~ntropy_provider.io.transactions_source.iter_rows` yields them.
    :param chunk_size: most rows per chunk.
    :param rejects: an open writer that every invalid row goes to; ``None`` keeps the first ones in
        :attr:`ScanResult.first_invalid` instead.
    """
    result = ScanResult()
    ids: list[Any] = []  # the current chunk's transaction ids, fingerprinted at once when it closes
    first_row = 0

    def close_chunk() -> None:
        fingerprint = Fingerprint()
        fingerprint.add_many(ids)
        result.chunks.append(
            ChunkPlan(len(result.chunks), fingerprint.size, fingerprint.hexdigest(), first_row)
        )
        ids.clear()

    # The rows (and the pay-once filters' blocks of them) are read inside this loop: see gc_pause.
    with gc_paused():
        for source_row in rows:
            result.rows += 1
            if not source_row.valid:
                result.rejected += 1
                if rejects is not None:
                    rejects.write(source_row)
                elif len(result.first_invalid) < SHOWN_INVALID_ROWS:
                    result.first_invalid.append(source_row)
                continue
            result.valid += 1
            if not ids:
                first_row = source_row.row
            ids.append(source_row.transaction["id"])  # type: ignore[index]
            if len(ids) == chunk_size:
                close_chunk()
    if ids:
        close_chunk()
    return result


def _valid_transactions(rows: Iterable[SourceRow]) -> Iterator[dict[str, Any]]:
    for source_row in rows:
        if source_row.valid:
            yield source_row.transaction  # type: ignore[misc]


def iter_planned_chunks(
    rows: Iterable[SourceRow],
    plan: ScanResult,
    *,
    priority: str,
    skip: frozenset[int] | set[int],
    first_chunk: int = 0,
) -> Iterator[Chunk]:
    """The valid rows read again, cut at the plan's boundaries, each chunk checked against its plan.

    A chunk whose rows differ from the plan's (the input was modified during the run) stops the cut
    before that chunk is yielded, so it is never sent.

    :param rows: the input rows, read again from the start, or from ``first_chunk``'s first row.
    :param plan: the plan of the same input.
    :param priority: the batches' priority.
    :param skip: chunk indexes to consume (and check) but not serialize.
    :param first_chunk: the chunk ``rows`` start with (a resumed submission skips what was sent).
    :raises InputChangedError: naming the chunk that differs from the plan.
    """
    fingerprints: dict[int, Fingerprint] = {}
    checked = first_chunk

    def check(index: int, group: list[Any] | None) -> None:
        nonlocal checked
        current = fingerprints.setdefault(index, Fingerprint())
        if group is not None:
            current.add_many([transaction["id"] for transaction in group])
            return
        planned = plan.chunks[index] if index < len(plan.chunks) else None
        if planned is None or current.size != planned.size or current.hexdigest() != planned.fingerprint:
            raise InputChangedError(
                f"Chunk {index} changed while the task was reading it ({current.size} rows, planned "
                f"{planned.size if planned else 0}): the input was modified during the run. Nothing more "
                "is sent."
            )
        del fingerprints[index]
        checked += 1

    valid = _valid_transactions(rows)
    sizes = [chunk.size for chunk in plan.chunks[first_chunk:]]
    first_start = sum(chunk.size for chunk in plan.chunks[:first_chunk])
    yield from cut_chunks(
        valid,
        sizes,
        priority=priority,
        skip=skip,
        check=check,
        first_index=first_chunk,
        first_start=first_start,
    )
    if checked < len(plan.chunks) or next(valid, None) is not None:
        raise InputChangedError(
            f"The input no longer holds the {plan.valid} valid rows planned: it was modified during the run. "
            "Nothing more is sent."
        )
