"""Write a Parquet file so that its final path only ever holds a complete file.

The file is written under a hidden temporary name in the same directory (``.<name>.tmp-<token>``:
Arrow, pandas, Spark and DuckDB skip names starting with ``.`` when they read a directory), then moved
onto the final name. On a local disk the move is a rename (atomic); on an object store it is the
store's copy of a complete object (an object appears whole or not at all) followed by deleting the
temporary one. Works with any fsspec filesystem through Airflow's ``ObjectStoragePath``.
"""

from __future__ import annotations

import logging
import uuid
from types import TracebackType
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from airflow.sdk import ObjectStoragePath

log = logging.getLogger(__name__)

TEMPORARY_MARKER = ".tmp-"


def temporary_name(final_name: str) -> str:
    """A fresh hidden temporary name for a file that will be moved onto ``final_name``.

    :param final_name: the file's final name (no directory).
    """
    return f".{final_name}{TEMPORARY_MARKER}{uuid.uuid4().hex}"


def is_temporary_of(name: str, final_name: str) -> bool:
    """Whether ``name`` is a temporary file made for ``final_name`` (by this run or a crashed one).

    :param name: a file name found in the directory.
    :param final_name: the final file name.
    """
    return name.startswith(f".{final_name}{TEMPORARY_MARKER}")


class AtomicParquetWriter:
    """Stream record batches into one Parquet file that appears at ``final_path`` only when complete.

    Batches are buffered until ``row_group_rows`` rows are pending, then written as one row group, so
    memory holds at most about one row group. Use as a context manager: leaving the block normally
    closes the file (``publish()`` moves it into place); leaving it with an exception removes the
    temporary file.

    :param final_path: where the complete file must appear.
    :param schema: the file's Arrow schema (its metadata is stored in the file).
    :param compression: Parquet compression codec (``zstd``, ``snappy``, ``gzip``, ``none``, ...).
    :param row_group_rows: rows to gather before writing a row group.
    """

    def __init__(
        self,
        final_path: ObjectStoragePath,
        schema: pa.Schema,
        *,
        compression: str = "zstd",
        row_group_rows: int = 65_536,
    ) -> None:
        self.final_path = final_path
        self.schema = schema
        self.compression = compression
        self.row_group_rows = row_group_rows
        self.rows = 0
        self.temporary_path = final_path.parent / temporary_name(final_path.name)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._handle: IO[bytes] | None = None
        self._writer: pq.ParquetWriter | None = None
        self._closed = False

    def open(self) -> AtomicParquetWriter:
        """Create the directory and the temporary file."""
        fs = self.final_path.fs
        fs.makedirs(self.final_path.parent.path, exist_ok=True)
        self._handle = self.temporary_path.open("wb")
        self._writer = pq.ParquetWriter(
            self._handle,
            self.schema,
            compression=None if self.compression in ("none", "uncompressed") else self.compression,
            # Same rows in, same bytes out: nothing from the run (time, host) goes into the file.
            store_schema=True,
        )
        return self

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Add rows (they must have the writer's schema; a mismatch raises ``ValueError``).

        :param batch: the rows to add.
        """
        if self._writer is None:
            raise RuntimeError("write() before open()")
        if not batch.schema.equals(self.schema, check_metadata=False):
            raise ValueError(f"rows for {self.final_path} do not have the file's schema: {batch.schema}")
        if batch.num_rows == 0:
            return
        batches = batch.to_batches() if isinstance(batch, pa.Table) else [batch]
        self._pending.extend(batches)
        self._pending_rows += batch.num_rows
        self.rows += batch.num_rows
        if self._pending_rows >= self.row_group_rows:
            self._flush()

    def _flush(self) -> None:
        if not self._pending or self._writer is None:
            return
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._pending = []
        self._pending_rows = 0

    def close(self) -> None:
        """Write what is pending and finish the temporary file (the final path is not touched yet)."""
        if self._closed:
            return
        self._flush()
        if self._writer is not None:
            self._writer.close()
        if self._handle is not None:
            self._handle.close()
        self._closed = True

    def publish(self) -> ObjectStoragePath:
        """Close the file if needed and move it onto the final path, replacing what was there.

        :return: the final path.
        """
        self.close()
        move(self.temporary_path, self.final_path)
        return self.final_path

    def abort(self) -> None:
        """Drop the temporary file (best effort: a failure here must not hide the original error)."""
        try:
            if self._writer is not None and not self._closed:
                self._writer.close()
            if self._handle is not None and not self._closed:
                self._handle.close()
        except Exception:  # cleaning up after another error: never hide it
            log.debug("closing %s after an error failed", self.temporary_path, exc_info=True)
        self._closed = True
        try:
            if self.temporary_path.exists():
                self.temporary_path.unlink()
        except Exception:  # cleaning up after another error: never hide it
            log.warning("could not remove the temporary file %s", self.temporary_path, exc_info=True)

    def __enter__(self) -> AtomicParquetWriter:
        return self.open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def move(source: ObjectStoragePath, target: ObjectStoragePath) -> None:
    """Move a complete file onto ``target`` within one store, replacing ``target`` if it exists.

    :param source: the complete temporary file.
    :param target: the final path.
    """
    fs: Any = target.fs
    # LocalFileSystem.mv is os.rename (atomic on one disk); object stores copy then delete.
    fs.mv(source.path, target.path)


def remove_stale_temporaries(directory: ObjectStoragePath, final_name: str) -> list[str]:
    """Remove temporary files left in ``directory`` by crashed runs writing ``final_name``.

    :param directory: the dataset directory.
    :param final_name: the final file name whose temporaries are removed.
    :return: the names removed.
    """
    removed: list[str] = []
    if not directory.exists():
        return removed
    for child in directory.iterdir():
        if is_temporary_of(child.name, final_name):
            child.unlink()
            removed.append(child.name)
    if removed:
        log.info("Removed %d temporary file(s) of earlier runs in %s: %s", len(removed), directory, removed)
    return removed
