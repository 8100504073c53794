"""Plan the chunks of an input: one validation pass that fixes every chunk's size and fingerprint.

Chunks are cut from the valid rows only, in input order, ``chunk_size`` rows each, so the same input
gives the same chunks on every task try; a chunk's fingerprint (a hash of its transaction ids) is
what lets a later try recognise it. Nothing here sends anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.io.rejects import RejectsWriter
from ntropy_provider.io.transactions_source import Fingerprint, SourceRow

#: Invalid rows a scan keeps to show when they are not quarantined (the rest are only counted).
SHOWN_INVALID_ROWS = 10


@dataclass(slots=True)
class ChunkPlan:
    """One chunk of valid rows: its size and the fingerprint of its transaction ids.

    :param index: the chunk's position, from 0.
    :param size: rows in the chunk.
    :param fingerprint: hash of its transaction ids, in order.
    """

    index: int
    size: int
    fingerprint: str


@dataclass(slots=True)
class ScanResult:
    """What a validation pass over the whole input found.

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


def scan(rows: Iterable[SourceRow], *, chunk_size: int, rejects: RejectsWriter | None = None) -> ScanResult:
    """Read every row once: count, quarantine or keep the invalid ones, and plan the valid ones' chunks.

    :param rows: the input rows, as :func:`~ntropy_provider.io.transactions_source.iter_rows` yields them.
    :param chunk_size: most rows per chunk.
    :param rejects: an open writer that every invalid row goes to; ``None`` keeps the first ones in
        :attr:`ScanResult.first_invalid` instead.
    """
    result = ScanResult()
    current = Fingerprint()

    def close_chunk() -> None:
        nonlocal current
        result.chunks.append(ChunkPlan(len(result.chunks), current.size, current.hexdigest()))
        current = Fingerprint()

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
        current.add(source_row.transaction["id"])  # type: ignore[index]
        if current.size == chunk_size:
            close_chunk()
    if current.size:
        close_chunk()
    return result


def iter_valid_transactions(
    rows: Iterable[SourceRow], *, chunk_size: int, fingerprints: dict[int, Fingerprint]
) -> Iterator[dict[str, Any]]:
    """The valid rows again, in the same order, fingerprinting each chunk as it streams past.

    The caller compares ``fingerprints[i]`` with the plan before sending chunk ``i``: an input that
    changed between the scan and the send is caught before it is paid for.

    :param rows: the input rows, read again from the start.
    :param chunk_size: the chunk size the plan was made with.
    :param fingerprints: filled with one fingerprint per chunk index, growing as rows stream.
    """
    index, current = 0, Fingerprint()
    fingerprints[0] = current
    for source_row in rows:
        if not source_row.valid:
            continue
        transaction = source_row.transaction
        current.add(transaction["id"])  # type: ignore[index]
        yield transaction  # type: ignore[misc]
        if current.size == chunk_size:
            index, current = index + 1, Fingerprint()
            fingerprints[index] = current
