"""Carry the earlier enriched rows of an output into its new ``ok/`` dataset: a re-run loses nothing.

A day re-run with ``skip_enriched`` pointing at its own output sends only what is not enriched yet, so
its batches hold only the new rows. Writing them alone would replace the day's ``ok/`` file with a
fraction of it. With carry-over, the new ``ok/`` file holds the new rows first, then every row of the
earlier ``ok/`` file whose transaction id the new rows do not hold (a re-sent id's new result replaces
its old one), in their earlier order. It is written under a temporary name and moved into place like
any results file, so the final path holds the earlier file or the complete new one, never a mix.

The earlier file is read one row group at a time and each group is written as it is: when nothing new
came, the new file has the same row groups and schema as the earlier one, hence the same bytes. The
``errors/`` dataset is not carried: earlier errored rows are not skipped, so they are sent again and
their new outcome is in this run's results.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from ntropy_provider.results.layout import DATA_FILE_NAME, OK_DATASET

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from ntropy_provider.results.atomic_write import AtomicParquetWriter
    from ntropy_provider.utils.id_hashes import IdHashSet

log = logging.getLogger(__name__)


class CarryOverError(ValueError):
    """The earlier ``ok/`` file cannot be carried into the new one (a column it has would be lost)."""


def earlier_ok_file(source: ObjectStoragePath) -> ObjectStoragePath | None:
    """The earlier ``ok/`` file under an output directory (or its ``ok/`` directory), ``None`` if none.

    :param source: an output directory as ResultsToParquetOperator writes it, or its ``ok/``.
    """
    for candidate in (source / OK_DATASET / DATA_FILE_NAME, source / DATA_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


def _conform(table: pa.Table, schema: pa.Schema, where: ObjectStoragePath) -> pa.Table:
    """``table`` with ``schema``'s columns, in its order: absent columns null, the rest cast."""
    extra = [name for name in table.schema.names if name not in schema.names]
    if extra:
        raise CarryOverError(
            f"carry_over: {where} has column(s) {extra} that the new output does not: carrying its rows "
            "would drop them (was it written with another input_path?)"
        )
    names = table.schema.names
    columns = [
        table.column(f.name).cast(f.type) if f.name in names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def carry_over(source_file: ObjectStoragePath, writer: AtomicParquetWriter, replaced: IdHashSet) -> int:
    """Write the rows of ``source_file`` whose id is not in ``replaced`` into ``writer``.

    :param source_file: the earlier ``ok/`` file.
    :param writer: the open writer of the new ``ok/`` file (its schema wins).
    :param replaced: hashes of the ids the new rows hold.
    :return: rows carried.
    :raises CarryOverError: when a column of the earlier file has no place in the new one.
    """
    from ntropy_provider.utils.id_hashes import hash_ids

    carried = 0
    with source_file.open("rb") as handle:
        parquet = pq.ParquetFile(handle)
        for group in range(parquet.metadata.num_row_groups):
            table = parquet.read_row_group(group)
            if not table.schema.equals(writer.schema, check_metadata=False):
                table = _conform(table, writer.schema, source_file)
            if len(replaced):
                keep = ~replaced.contains(hash_ids(table.column("transaction_id")))
                if not keep.all():
                    table = table.filter(pa.array(keep))
            writer.write(table.combine_chunks())
            carried += table.num_rows
    log.info("Carried %d earlier enriched row(s) over from %s", carried, source_file)
    return carried
