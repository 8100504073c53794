"""``skip_enriched``: transaction ids already enriched by an earlier run are not sent (nor paid) again.

The earlier runs' outputs are ResultsToParquetOperator's: ``<output>/ok/part-0.parquet``. Only their
``transaction_id`` column is read (Parquet column projection, one row group at a time) and every id
kept as an 8-byte hash (:class:`~ntropy_provider.utils.id_hashes.IdHashSet`), so ten million earlier
ids cost about 80 MB and a few seconds (``python -m bench skip_enriched``).

Only ``ok/`` counts: rows that ended with an item error (``errors/``) are worth retrying, so they are
sent again. An input row whose id is in the set is *skipped*: neither sent nor rejected, and counted
(``ok + errored + rejected + skipped = input rows``). Two ids sharing a hash (about ``n * m / 2**64``)
would skip a row that was never enriched: one chance in about two million for a million rows against
ten million earlier ids.

What a location may be:

* a results output directory (holding ``ok/part-0.parquet``), its ``ok/`` directory, or a Parquet file;
* a glob of those (``s3://lake/enriched/date=2024-0*``), or a list of any of the above;
* a location that does not exist yet, or a directory without ``ok/`` (a first run, or one that failed
  before writing results): nothing is skipped from it, and the log says so.

A file that exists but is not Parquet, has no ``transaction_id`` column, or holds ids that are not
strings fails the task before anything is sent, naming the file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

from ntropy_provider.exceptions import EnrichedOutputError
from ntropy_provider.io.source_rows import SourceRow
from ntropy_provider.results.layout import DATA_FILE_NAME, OK_DATASET
from ntropy_provider.utils.storage import as_storage_path

if TYPE_CHECKING:
    from ntropy_provider.utils.id_hashes import HashBuffer, IdHashSet

log = logging.getLogger(__name__)

#: The id column of the results datasets (``ntropy_provider.results.schema``).
ENRICHED_ID_COLUMN = "transaction_id"
#: Rows looked up at once.
BLOCK_ROWS = 4096


def as_locations(value: Any) -> list[Any]:
    """``skip_enriched`` as a list of locations (``None`` and ``""`` mean none).

    :param value: a path, URI, ObjectStoragePath, or a list of them.
    """
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [item for item in value if item not in (None, "")]
    return [value]


def _data_files(location: Any) -> list[Any]:
    """The ``ok`` Parquet files a location names; empty when there are none yet."""
    path = as_storage_path(location)
    text = str(location)
    if any(char in text for char in "*?["):
        # Matches are re-joined onto the part before the pattern, so they keep its connection.
        pattern = str(path.path)
        first_wild = min(pattern.index(char) for char in "*?[" if char in pattern)
        base_text = pattern[:first_wild].rsplit("/", 1)[0].rstrip("/")
        base = path
        while str(base.path).rstrip("/") != base_text and base.parent != base:
            base = base.parent
        files: list[Any] = []
        for match in sorted(path.fs.glob(pattern)):
            files.extend(_data_files(base / str(match)[len(base_text) :].lstrip("/")))
        return files
    if path.is_file():
        return [path]
    for candidate in (path / OK_DATASET / DATA_FILE_NAME, path / DATA_FILE_NAME):
        if candidate.is_file():
            return [candidate]
    return []


def _read_hashes(data_file: Any, column: str, into: HashBuffer) -> int:
    """Append the hashes of one file's ids, a batch at a time, reading that column only; how many."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ntropy_provider.utils.id_hashes import hash_ids

    try:
        with data_file.open("rb") as handle:
            parquet = pq.ParquetFile(handle)
            schema = parquet.schema_arrow
            if column not in schema.names:
                raise EnrichedOutputError(
                    f"skip_enriched: {data_file} has no {column!r} column (it has {schema.names[:12]}): "
                    "is it a ResultsToParquetOperator ok/ dataset?"
                )
            kind = schema.field(column).type
            if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
                raise EnrichedOutputError(
                    f"skip_enriched: {data_file} holds {column!r} as {kind}, not strings: transaction ids "
                    "are strings, so none of them could match"
                )
            into.reserve(parquet.metadata.num_rows)
            before = into.size
            for batch in parquet.iter_batches(columns=[column], batch_size=65_536):
                ids = batch.column(0)
                if ids.null_count:
                    ids = ids.drop_null()
                into.append(hash_ids(ids))
            return into.size - before
    except EnrichedOutputError:
        raise
    except (OSError, pa.ArrowException) as err:
        raise EnrichedOutputError(f"skip_enriched: cannot read {data_file} as Parquet: {err}") from err


def load_enriched_ids(locations: Sequence[Any], *, column: str = ENRICHED_ID_COLUMN) -> IdHashSet:
    """The set of transaction ids the ``ok/`` datasets at ``locations`` hold.

    :param locations: see the module's docstring.
    :param column: the id column.
    :raises EnrichedOutputError: naming a file that cannot be read as transaction ids.
    """
    from ntropy_provider.utils.id_hashes import HashBuffer

    buffer = HashBuffer()
    for location in locations:
        files = _data_files(location)
        if not files:
            log.info(
                "skip_enriched: nothing enriched at %s yet (no ok/%s: a first run?): nothing skipped from it",
                location,
                DATA_FILE_NAME,
            )
        for data_file in files:
            found = _read_hashes(data_file, column, buffer)
            log.info("skip_enriched: %d transaction id(s) already enriched in %s", found, data_file)
    return buffer.to_set()


class SkipEnrichedFilter:
    """Leave out the valid rows whose id was already enriched; invalid rows pass (to be rejected).

    :param enriched: the ids already enriched.
    :param block_rows: rows looked up at once.
    """

    def __init__(self, enriched: IdHashSet, *, block_rows: int = BLOCK_ROWS) -> None:
        self.enriched = enriched
        self.block_rows = block_rows
        #: Rows skipped.
        self.count = 0

    def apply(self, rows: Iterable[SourceRow]) -> Iterator[SourceRow]:
        """The rows still to enrich, in input order.

        :param rows: the input rows.
        """
        if not len(self.enriched):
            yield from rows
            return
        from ntropy_provider.utils.id_hashes import hash_ids

        iterator = iter(rows)
        while block := list(islice(iterator, self.block_rows)):
            valid = [r for r in block if not r.errors]
            known = self.enriched.contains(hash_ids([r.transaction["id"] for r in valid]))  # type: ignore[index]
            if not known.any():
                yield from block
                continue
            skipped = {valid[position].row for position in known.nonzero()[0].tolist()}
            self.count += len(skipped)
            for source_row in block:
                if source_row.row not in skipped:
                    yield source_row
