"""Pay once: the filters between validation and chunking that keep a transaction from being paid twice.

Applied to the validated rows, before the plan cuts chunks: repeated ids of the input
(:mod:`~ntropy_provider.submission.dedupe`), then ids already enriched by earlier runs
(:mod:`~ntropy_provider.submission.skip_enriched`). Invalid rows pass through untouched, for the scan
to reject. The same filters run when the rows are read again for sending, so the chunks cut then are
the ones planned; that second read may start at a later row (a resumed submission): a skip needs only
the row's own id, a duplicate needs the rows before it, so when the scan found duplicates the re-read
starts at the first row again (without writing the rejects twice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ntropy_provider.io.source_rows import SourceRow
from ntropy_provider.submission.dedupe import DuplicateIdFilter
from ntropy_provider.submission.skip_enriched import SkipEnrichedFilter, as_locations, load_enriched_ids

if TYPE_CHECKING:
    from ntropy_provider.io.rejects import RejectsWriter
    from ntropy_provider.utils.id_hashes import IdHashSet


class PayOnce:
    """The filters of one operator's input.

    :param skip_enriched: earlier ResultsToParquet outputs (see
        :mod:`~ntropy_provider.submission.skip_enriched`), ``None`` for none.
    :param on_duplicate: ``reject`` or ``fail``.
    """

    def __init__(self, *, skip_enriched: Any, on_duplicate: str) -> None:
        self.locations = as_locations(skip_enriched)
        self.on_duplicate = on_duplicate
        self._enriched: IdHashSet | None = None
        #: The scan's filters, once :meth:`scan_rows` ran.
        self.duplicates: DuplicateIdFilter | None = None
        self.skipped: SkipEnrichedFilter | None = None

    @property
    def enriched(self) -> IdHashSet:
        """The ids already enriched (read once per operator instance)."""
        if self._enriched is None:
            self._enriched = load_enriched_ids(self.locations)
        return self._enriched

    def scan_rows(self, rows: Iterable[SourceRow], rejects: RejectsWriter | None) -> Iterator[SourceRow]:
        """The rows the scan plans, counting (and rejecting) what is left out.

        :param rows: the input rows from the first.
        :param rejects: where duplicates are written (``None``: only counted).
        """
        self.duplicates = DuplicateIdFilter(on_duplicate=self.on_duplicate, rejects=rejects)
        self.skipped = SkipEnrichedFilter(self.enriched)
        return self.skipped.apply(self.duplicates.apply(rows))

    def counts(self) -> dict[str, int]:
        """``{"skipped", "duplicates"}`` of the last scan."""
        return {
            "skipped": self.skipped.count if self.skipped else 0,
            "duplicates": self.duplicates.count if self.duplicates else 0,
        }

    def reread_rows(
        self, read: Callable[[int], Iterator[SourceRow]], *, start_row: int, duplicates: int
    ) -> Iterator[SourceRow]:
        """The same rows the scan planned, from ``start_row`` on.

        :param read: reads the input from a 1-based row.
        :param start_row: the first row wanted.
        :param duplicates: duplicates the scan found (0: the re-read needs no history).
        """
        rows: Iterable[SourceRow]
        if duplicates:
            rows = DuplicateIdFilter(on_duplicate="reject").apply(read(1))
            if start_row > 1:
                rows = (row for row in rows if row.row >= start_row)
        else:
            rows = read(start_row)
        return SkipEnrichedFilter(self.enriched).apply(rows)
