"""Carry the columns of the submitted input file into the results, joined on transaction id.

The input file is read as a stream of chunks, never whole: for each batch of results the reader moves
forward from where the previous batch's rows were found, collecting the input rows whose ``id`` is in
the batch. Batches are submitted in input order, so one pass over the input serves all batches; when
the order differs (a shuffled file, batches passed in another order), the scan wraps around to the
start, which is slower but still exact and still holds only one chunk at a time.

Every input column ``c`` is carried as ``input_c`` (so it can never collide with a result column, and
stripping the prefix gives back a row that can be resubmitted as it was). CSV columns are read as
strings, exactly as written (empty cells are null); Parquet columns keep their types.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

from ntropy_provider.api.wire import MAX_BATCH_SIZE

INPUT_COLUMN_PREFIX = "input_"
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv",)


class InputJoinError(ValueError):
    """The input file cannot be joined to the results (unknown format, no id column, missing rows)."""


def input_format(path: ObjectStoragePath) -> str:
    """``parquet`` or ``csv``, from the file name's suffix.

    :param path: the input file.
    :raises InputJoinError: for any other suffix.
    """
    name = path.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise InputJoinError(
        f"input_path {path}: unknown format, expected a name ending in "
        f"{', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)}"
    )


class InputColumns:
    """The input file's columns, looked up batch by batch for the transaction ids of each batch.

    :param path: the input file (Parquet or CSV, by suffix), on any store ``ObjectStoragePath`` reaches.
    :param id_column: the column holding the transaction id.
    :param chunk_rows: rows read at a time (bounds memory).
    """

    def __init__(self, path: ObjectStoragePath, *, id_column: str = "id", chunk_rows: int = MAX_BATCH_SIZE):
        self.path = path
        self.id_column = id_column
        self.chunk_rows = chunk_rows
        self.format = input_format(path)
        self._handles: list[IO[bytes]] = []
        self.input_schema = self._read_schema()
        if id_column not in self.input_schema.names:
            raise InputJoinError(
                f"input_path {path}: no {id_column!r} column to join on (columns: {self.input_schema.names})"
            )
        self.schema = pa.schema(
            [field.with_name(INPUT_COLUMN_PREFIX + field.name) for field in self.input_schema]
        )
        # The scan position: chunks already passed, and the chunk where the last batch ended.
        self._chunks: Iterator[pa.RecordBatch] | None = None
        self._index = -1
        self._current: pa.RecordBatch | None = None

    # -- reading -----------------------------------------------------------------------------------
    def _open(self) -> IO[bytes]:
        handle = self.path.open("rb")
        self._handles.append(handle)
        return handle

    def _csv_header(self) -> list[str]:
        with self.path.open("rb") as handle:
            first = handle.readline().decode("utf-8-sig")
        return next(csv.reader(io.StringIO(first)), [])

    def _read_schema(self) -> pa.Schema:
        if self.format == "parquet":
            return pq.ParquetFile(self._open()).schema_arrow.remove_metadata()
        names = self._csv_header()
        if not names:
            raise InputJoinError(f"input_path {self.path}: the CSV file has no header row")
        return pa.schema([pa.field(name, pa.string()) for name in names])

    def _iter_chunks(self) -> Iterator[pa.RecordBatch]:
        if self.format == "parquet":
            yield from pq.ParquetFile(self._open()).iter_batches(batch_size=self.chunk_rows)
            return
        # Read as bytes, then decode: a row with non-UTF-8 bytes (quarantined by SubmitBatchOperator, so
        # never in the results) must not make Arrow's CSV reader refuse the whole file. Likewise a row
        # with more fields than the header (also quarantined) is skipped, and quoted values may hold
        # newlines, as Python's csv module (which read the file for submission) allows.
        reader = pa_csv.open_csv(
            self._open(),
            read_options=pa_csv.ReadOptions(block_size=1 << 22, use_threads=False),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=_skip_row),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.binary() for name in self.input_schema.names},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        for chunk in reader:
            yield pa.RecordBatch.from_arrays(
                [_decode_utf8(column) for column in chunk.columns], schema=self.input_schema
            )

    def _advance(self) -> pa.RecordBatch | None:
        """The chunk after the current one (it becomes current), or ``None`` at the end of the input."""
        if self._chunks is None:
            self._chunks = self._iter_chunks()
            self._index = -1
        chunk = next(self._chunks, None)
        if chunk is None:  # an exhausted generator keeps answering None: the position stays at the end
            return None
        if not chunk.schema.equals(self.input_schema):
            chunk = chunk.cast(self.input_schema)
        self._index += 1
        self._current = chunk
        return chunk

    def _restart(self) -> None:
        self.close()

    # -- joining -----------------------------------------------------------------------------------
    def take(self, transaction_ids: pa.Array, *, batch_id: str = "") -> pa.Table:
        """The input columns (prefixed) of the given transactions, in their order.

        :param transaction_ids: the ids of one batch's results.
        :param batch_id: named in errors.
        :raises InputJoinError: naming the ids (first few) that the input file does not hold.
        """
        remaining = pc.unique(transaction_ids)
        found: list[pa.RecordBatch] = []

        def scan(chunk: pa.RecordBatch) -> pa.Array:
            ids = pc.cast(chunk.column(self.id_column), pa.string())
            mask = pc.is_in(ids, value_set=remaining)
            if not pc.any(mask).as_py():
                return remaining
            matched = chunk.filter(mask)
            found.append(matched)
            matched_ids = pc.cast(matched.column(self.id_column), pa.string())
            return remaining.filter(pc.invert(pc.is_in(remaining, value_set=matched_ids)))

        start = self._index if self._current is not None else -1
        # The chunk where the previous batch ended may hold this batch's first rows.
        if self._current is not None:
            remaining = scan(self._current)
        while len(remaining) and (chunk := self._advance()) is not None:
            remaining = scan(chunk)
        if len(remaining) and start > 0:
            # Not found after the cursor: wrap around and scan the chunks before where this batch began.
            self._restart()
            while len(remaining) and (chunk := self._advance()) is not None and self._index < start:
                remaining = scan(chunk)
        if len(remaining):
            shown = ", ".join(repr(v) for v in remaining.slice(0, 5).to_pylist())
            raise InputJoinError(
                f"input_path {self.path}: {len(remaining)} transaction(s) of batch {batch_id} are not in the "
                f"input file (its {self.id_column!r} column), e.g. {shown}"
            )
        table = (
            pa.Table.from_batches(found, schema=self.input_schema)
            if found
            else self.input_schema.empty_table()
        )
        table_ids = pc.cast(table.column(self.id_column), pa.string())
        # index_in gives the first occurrence: a duplicated input id takes its first row after the cursor.
        positions = pc.index_in(transaction_ids, value_set=table_ids)
        joined = table.take(positions)
        return pa.Table.from_arrays(joined.columns, schema=self.schema)

    def close(self) -> None:
        """Close the files opened to read the input."""
        for handle in self._handles:
            handle.close()
        self._handles.clear()
        self._chunks = None
        self._current = None
        self._index = -1


def _skip_row(row: pa_csv.InvalidRow) -> str:
    """Skip a CSV row whose field count differs from the header's (submission rejected it)."""
    return "skip"


def _decode_utf8(column: pa.Array) -> pa.Array:
    """A binary CSV column as strings; invalid UTF-8 bytes are shown as ``\\xNN`` (as in the rejects file).

    :param column: the column as read.
    """
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [
                None if value is None else value.decode("utf-8", "backslashreplace")
                for value in column.to_pylist()
            ],
            type=pa.string(),
        )


def joined_schema(results_schema: pa.Schema, input_schema: pa.Schema | None) -> pa.Schema:
    """The results schema followed by the prefixed input columns, keeping the results' metadata.

    :param results_schema: ``RESULTS_ARROW_SCHEMA``.
    :param input_schema: the prefixed input columns, or ``None`` when no input is carried.
    """
    if input_schema is None:
        return results_schema
    return pa.schema([*results_schema, *input_schema], metadata=results_schema.metadata)


def append_columns(batch: pa.RecordBatch, columns: pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """Add the input columns to a batch of results, row for row.

    :param batch: results rows.
    :param columns: input columns for the same rows, in the same order.
    :param schema: the joined schema.
    """
    arrays = [*batch.columns, *(column.combine_chunks() for column in columns.columns)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
