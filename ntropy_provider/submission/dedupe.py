"""Repeated transaction ids inside one input: each id is sent (and paid) once.

Bank feeds repeat transactions (re-deliveries, a pending then a posted copy); sent twice, a
transaction is charged twice and its results hold it twice. While the input is scanned, the first
valid row with an id wins; a later valid row with the same id is a duplicate: it goes to the rejects
with the reason ``duplicate_id`` naming the first row (``on_duplicate="reject"``), or the task fails
before anything is sent (``"fail"``). Invalid rows are left to the validator's verdict and never count
as the first of an id.

Ids are held as 8-byte hashes with their first row (:class:`~ntropy_provider.utils.id_hashes.FirstRowIndex`,
12 bytes per distinct id), so millions of ids fit in bounded memory; two different ids sharing a hash
(about one chance in 37 million for a million distinct ids) would make the later one a reported
duplicate, not a silent loss. Rows are looked at in blocks so that hashing and lookups run in bulk.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

from ntropy_provider.api.transaction_input import FieldError
from ntropy_provider.exceptions import DuplicateIdError
from ntropy_provider.io.source_rows import SourceRow, json_safe

if TYPE_CHECKING:
    from ntropy_provider.io.rejects import RejectsWriter

#: The reason a repeated id's row is rejected with.
DUPLICATE_ID_REASON = "duplicate_id"
#: ``on_duplicate`` values.
ON_DUPLICATE_MODES: tuple[str, ...] = ("reject", "fail")
#: Rows hashed and looked up at once.
BLOCK_ROWS = 4096
#: Duplicates a failure or a log line spells out (the rest are only counted).
SHOWN_DUPLICATES = 10


def duplicate_row(source_row: SourceRow, first_row: int) -> SourceRow:
    """The reject of a row whose id an earlier row already holds.

    :param source_row: the repeated row (valid on its own).
    :param first_row: the row that holds the id first, and is sent.
    """
    transaction = source_row.transaction or {}
    error = FieldError(
        "id",
        f"{DUPLICATE_ID_REASON}: the same id as input row {first_row}, which is sent once",
        repr(transaction.get("id"))[:40],
    )
    return SourceRow(source_row.row, transaction, errors=[error], raw=json_safe(transaction))


class DuplicateIdFilter:
    """Pass every row but the repeats of an id seen in an earlier valid row, while scanning.

    :param on_duplicate: ``reject`` (left out, written to ``rejects`` when given) or ``fail``
        (:class:`~ntropy_provider.exceptions.DuplicateIdError` once the input is read, naming the
        first duplicates).
    :param rejects: an open writer the duplicates go to; ``None`` only counts them (a re-read, or no
        rejects file).
    :param block_rows: rows hashed and looked up at once.
    """

    def __init__(
        self,
        *,
        on_duplicate: str = "reject",
        rejects: RejectsWriter | None = None,
        block_rows: int = BLOCK_ROWS,
    ) -> None:
        if on_duplicate not in ON_DUPLICATE_MODES:
            raise ValueError(f"on_duplicate: expected one of {ON_DUPLICATE_MODES}, got {on_duplicate!r}")
        self.on_duplicate = on_duplicate
        self.rejects = rejects
        self.block_rows = block_rows
        #: Duplicate rows found.
        self.count = 0
        #: The first :data:`SHOWN_DUPLICATES` duplicates, as ``(row, first_row)``.
        self.shown: list[tuple[int, int]] = []
        #: Bytes the id index holds at the end (for the log and the benchmark).
        self.index_bytes = 0

    def apply(self, rows: Iterable[SourceRow]) -> Iterator[SourceRow]:
        """The rows without the repeats, in input order.

        :param rows: the input rows as :func:`~ntropy_provider.io.transactions_source.iter_rows` yields.
        :raises DuplicateIdError: with ``on_duplicate="fail"``, after the last row, when any id repeats.
        """
        import numpy as np

        from ntropy_provider.utils.id_hashes import FirstRowIndex, hash_ids

        index = FirstRowIndex()
        iterator = iter(rows)
        while block := list(islice(iterator, self.block_rows)):
            valid = [r for r in block if not r.errors]
            if not valid:
                yield from block
                continue
            hashes = hash_ids([r.transaction["id"] for r in valid])  # type: ignore[index]
            row_numbers = np.fromiter((r.row for r in valid), np.int64, len(valid))
            # Earlier blocks first, then the block itself: its first row of each hash wins.
            seen_before = index.first_rows(hashes)
            unique, first_position, inverse = np.unique(hashes, return_index=True, return_inverse=True)
            in_block_first = row_numbers[first_position][inverse]
            firsts = np.where(
                seen_before > 0, seen_before, np.where(in_block_first < row_numbers, in_block_first, 0)
            )
            # A hash is new when its first position in the block was not seen before (one lookup).
            new = seen_before[first_position] == 0
            index.add(unique[new], row_numbers[first_position][new])
            repeated = np.flatnonzero(firsts)
            if not repeated.size:
                yield from block
                continue
            for position in repeated.tolist():
                self._found(valid[position], int(firsts[position]))
            dropped = set(row_numbers[repeated].tolist())
            for source_row in block:
                if source_row.row not in dropped:
                    yield source_row
        self.index_bytes = index.nbytes
        if self.count and self.on_duplicate == "fail":
            raise DuplicateIdError(
                f"{self.count} input row(s) repeat the transaction id of an earlier row; nothing was sent "
                f"(on_duplicate='fail'). First ones: {self.describe()}. "
                "Remove them, or use on_duplicate='reject' to send each id once."
            )

    def _found(self, source_row: SourceRow, first_row: int) -> None:
        self.count += 1
        if len(self.shown) < SHOWN_DUPLICATES:
            self.shown.append((source_row.row, first_row))
        if self.rejects is not None and self.on_duplicate == "reject":
            self.rejects.write(duplicate_row(source_row, first_row))

    def describe(self) -> str:
        """The first duplicates, as ``row 7 (id of row 2), ...``."""
        shown = ", ".join(f"row {row} (id of row {first})" for row, first in self.shown)
        more = f", and {self.count - len(self.shown)} more" if self.count > len(self.shown) else ""
        return shown + more
