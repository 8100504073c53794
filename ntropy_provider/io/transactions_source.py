"""Read transactions lazily from a list, a DataFrame, or a Parquet, CSV or JSON Lines file; check every row.

Rows become TransactionInput dicts typed the way the API wants them: a Parquet ``date`` column becomes
``'YYYY-MM-DD'``, CSV amounts become numbers, empty or null optional values are left out, and a flat
``location_raw_address`` / ``location_country`` pair becomes a ``location`` object. A row that cannot
even be decoded (non-UTF-8 bytes in a CSV, a broken JSON line) is not an exception: it comes out as a
row with problems, like a row that breaks the API's rules, so that the caller can fail or quarantine it.

Files are read in row groups / blocks, so memory stays flat whatever the input size. Row numbers are
1-based: the n-th transaction of the input (for JSON Lines, the line number).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, BinaryIO

import orjson

from ntropy_provider.api.transaction_input import FieldError
from ntropy_provider.io import arrow_check, dataframe_source
from ntropy_provider.io.source_rows import (
    DEFAULT_READ_BATCH_ROWS,
    SourceRow,
    check_row,
    json_safe,
    to_transaction,
)
from ntropy_provider.utils.storage import as_storage_path, local_path

#: Formats this module reads, by name.
INPUT_FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
_SUFFIX_FORMATS: dict[str, str] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


# A 1 MB description must become a reject, not a csv.Error that ends the read; the rule on length is
# the validator's job. csv's limit is process-wide, so it is only ever raised, never lowered.
_CSV_FIELD_LIMIT = 2**31 - 1


# --------------------------------------------------------------------------------------------------
# Locating and opening the input
# --------------------------------------------------------------------------------------------------
def describe_source(items: Any) -> str:
    """A short description of the input for logs and messages (never the rows themselves).

    :param items: the input as given to :func:`iter_rows`.
    """
    if isinstance(items, (list, tuple)):
        return f"a list of {len(items)} rows"
    if dataframe_source.is_dataframe(items):
        return dataframe_source.describe_dataframe(items)
    return str(items)


def detect_format(items: Any, input_format: str | None = None) -> str:
    """The format of a path-like input: ``input_format`` when given, else from the file suffix.

    :param items: the path, URI or ObjectStoragePath.
    :param input_format: ``parquet``, ``csv`` or ``jsonl``, to override the suffix.
    :raises ValueError: when the format is unknown.
    """
    if input_format:
        if input_format not in INPUT_FORMATS:
            raise ValueError(f"input_format: expected one of {INPUT_FORMATS}, got {input_format!r}")
        return input_format
    name = str(items).split("?", 1)[0].lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for suffix, fmt in _SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise ValueError(
        f"cannot tell the format of {str(items)!r} from its name: pass input_format= one of {INPUT_FORMATS}"
    )


@contextmanager
def open_binary(location: Any) -> Iterator[BinaryIO]:
    """Open a local path, ``file://`` URI, other URI or ObjectStoragePath for reading bytes.

    ``.gz`` files are decompressed on the fly.

    :param location: where the file is.
    """
    name = str(location)
    local = local_path(location)
    # Local files are opened directly; the rest through Airflow's ObjectStoragePath (fsspec).
    handle = open(local, "rb") if local is not None else as_storage_path(location).open("rb")  # noqa: SIM115
    try:
        if name.split("?", 1)[0].lower().endswith(".gz"):
            with gzip.GzipFile(fileobj=handle) as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield handle
    finally:
        handle.close()


# --------------------------------------------------------------------------------------------------
# Readers, one per kind of input; each yields checked rows in input order
# --------------------------------------------------------------------------------------------------
def _iter_list(items: Sequence[Any], start_row: int) -> Iterator[SourceRow]:
    for position, item in enumerate(items[start_row - 1 :], start=start_row):
        transaction = to_transaction(item) if isinstance(item, Mapping) else item
        yield check_row(position, transaction, raw=item)


def _iter_parquet(location: Any, read_batch_rows: int, start_row: int) -> Iterator[SourceRow]:
    import pyarrow.parquet as pq

    with open_binary(location) as handle:
        parquet = pq.ParquetFile(handle)
        # Row groups wholly before start_row are not read at all (the footer says their sizes); the rows
        # before it in its own group are decoded once in Arrow but not typed, checked or yielded.
        row, first_group = 0, 0
        metadata = parquet.metadata
        while first_group < metadata.num_row_groups:
            group_rows = metadata.row_group(first_group).num_rows
            if row + group_rows >= start_row:
                break
            row += group_rows
            first_group += 1
        groups = list(range(first_group, metadata.num_row_groups))
        if not groups:
            return
        fast = arrow_check.supported(parquet.schema_arrow)
        for record_batch in parquet.iter_batches(batch_size=read_batch_rows, row_groups=groups):
            skip = min(record_batch.num_rows, max(0, start_row - 1 - row))
            row += skip
            batch = record_batch.slice(skip)
            if fast:
                # Whole columns checked at once; only the rows that fail a rule are typed and checked one
                # by one (which names their problems).
                clean = arrow_check.clean_rows(batch)
                if clean.true_count == batch.num_rows:
                    for transaction in arrow_check.clean_transactions(batch):
                        row += 1
                        yield SourceRow(row=row, transaction=transaction)
                    continue
                yield from _mixed_rows(batch, clean, row)
                row += batch.num_rows
                continue
            for record in batch.to_pylist():
                row += 1
                yield check_row(row, to_transaction(record), raw=record)


def _mixed_rows(batch: Any, clean: Any, row: int) -> Iterator[SourceRow]:
    """The rows of a batch some of whose rows fail a rule: the clean ones from the columns, the others
    typed and checked row by row."""
    transactions = iter(arrow_check.clean_transactions(batch.filter(clean)))
    for is_clean, record in zip(clean.to_pylist(), batch.to_pylist(), strict=True):
        row += 1
        if is_clean:
            yield SourceRow(row=row, transaction=next(transactions))
        else:
            yield check_row(row, to_transaction(record), raw=record)


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in text)


def _iter_csv(location: Any, start_row: int) -> Iterator[SourceRow]:
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    with open_binary(location) as handle:
        # surrogateescape keeps undecodable bytes in the text without losing the row boundaries,
        # so one bad byte rejects one row instead of ending the read.
        text = io.TextIOWrapper(handle, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        columns = [name.strip() for name in header]
        for row, values in enumerate(reader, start=1):
            if not values or row < start_row:  # before start_row: one sequential skip, nothing typed
                continue
            problems = [
                FieldError(
                    columns[i] if i < len(columns) else f"column {i + 1}",
                    "not valid UTF-8",
                    json_safe(value)[:40],
                )
                for i, value in enumerate(values)
                if _has_surrogates(value)
            ]
            if len(values) > len(columns):
                problems.append(
                    FieldError("(row)", f"{len(values)} fields, but the header names {len(columns)}")
                )
            record = dict(zip(columns, values, strict=False))
            if problems:
                yield check_row(row, None, raw=record, problems=problems)
            else:
                yield check_row(row, to_transaction(record, from_text=True), raw=record)


def _iter_jsonl(location: Any, start_row: int) -> Iterator[SourceRow]:
    with open_binary(location) as handle:
        for line_number, line in enumerate(handle, start=1):
            if line_number < start_row or not line.strip():  # before start_row: lines skipped unparsed
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                yield check_row(
                    line_number,
                    None,
                    raw=line.rstrip(b"\r\n"),
                    problems=[FieldError("(row)", f"not a valid UTF-8 JSON object: {err}")],
                )
                continue
            transaction = to_transaction(item) if isinstance(item, Mapping) else item
            yield check_row(line_number, transaction, raw=item)


def iter_rows(
    items: Any,
    *,
    input_format: str | None = None,
    read_batch_rows: int = DEFAULT_READ_BATCH_ROWS,
    start_row: int = 1,
) -> Iterator[SourceRow]:
    """Yield every input row, typed and checked, in input order, reading files lazily.

    :param items: a list of transaction dicts, a pandas DataFrame (read through Arrow, see
        :mod:`~ntropy_provider.io.dataframe_source`), or a path, URI or ObjectStoragePath of a Parquet,
        CSV or JSON Lines file (optionally ``.gz`` for CSV and JSON Lines).
    :param input_format: ``parquet``, ``csv`` or ``jsonl``; by default taken from the file suffix.
    :param read_batch_rows: rows decoded at a time from Parquet or a DataFrame.
    :param start_row: the first row to yield (1-based, numbered as from the start): a resumed reader
        skips what it already sent. Parquet skips whole row groups by their footer; CSV and JSON Lines
        skip the rows before it in one sequential pass, without typing or checking them.
    :raises TypeError: when ``items`` is none of the above.
    """
    start_row = max(1, start_row)
    if isinstance(items, (list, tuple)):
        yield from _iter_list(items, start_row)
        return
    if dataframe_source.is_dataframe(items):
        yield from dataframe_source.iter_dataframe_rows(
            items, read_batch_rows=read_batch_rows, start_row=start_row
        )
        return
    if isinstance(items, Mapping) or items is None or isinstance(items, (bytes, int, float)):
        raise TypeError(
            "items: expected a list of transaction dicts, a pandas DataFrame or the path/URI of a Parquet, "
            f"CSV or JSON Lines file, got {type(items).__name__}"
        )
    fmt = detect_format(items, input_format)
    if fmt == "parquet":
        yield from _iter_parquet(items, read_batch_rows, start_row)
    elif fmt == "csv":
        yield from _iter_csv(items, start_row)
    else:
        yield from _iter_jsonl(items, start_row)
