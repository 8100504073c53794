"""Write many batches' results as the two Parquet datasets ``ok/`` and ``errors/``, batch by batch.

Layout under the output path (one file per dataset, so that a rerun replaces the whole dataset with
one move and no file of an earlier run can linger)::

    <output_path>/ok/part-0.parquet       rows without an item error
    <output_path>/errors/part-0.parquet   rows with an item error (error_code, error_message)

Rows are in the order of the batches given, then in submission order within each batch; nothing
from the run itself (time, host, temporary names) goes into the files, so the same batches give the
same bytes. Batches stream through: while one is split and written, the next one is fetched and parsed
in a background thread, and none is kept after it is written, so memory holds about three batches
(plus one Parquet row group per dataset), whatever the batch count.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa
from airflow.sdk import ObjectStoragePath

from ntropy_provider.api.wire import MAX_BATCH_SIZE
from ntropy_provider.results.atomic_write import AtomicParquetWriter, remove_stale_temporaries
from ntropy_provider.results.flatten import convert_results, split_ok_errors
from ntropy_provider.results.input_join import InputColumns, append_columns, joined_schema
from ntropy_provider.results.layout import DATA_FILE_NAME, dataset_paths
from ntropy_provider.results.prefetch import Prefetcher
from ntropy_provider.results.schema import RESULTS_ARROW_SCHEMA, RESULTS_SCHEMA_VERSION_KEY

log = logging.getLogger(__name__)


class RowCountMismatchError(RuntimeError):
    """The rows written differ from the rows the batches hold: something would be lost or doubled."""


@dataclass
class ResultsSummary:
    """What :func:`write_results_datasets` wrote.

    :param ok_path: the ``ok/`` dataset directory.
    :param errors_path: the ``errors/`` dataset directory.
    :param ok_rows: rows in ``ok/``.
    :param error_rows: rows in ``errors/``.
    :param batch_rows: rows per batch id, in the order written.
    :param carried_rows: rows of ``ok_rows`` carried over from the earlier ``ok/`` file (``carry_over``).
    """

    ok_path: ObjectStoragePath
    errors_path: ObjectStoragePath
    ok_rows: int = 0
    error_rows: int = 0
    batch_rows: dict[str, int] = field(default_factory=dict)
    carried_rows: int = 0


def write_results_datasets(
    results: Iterable[tuple[str, bytes]],
    output_path: ObjectStoragePath,
    *,
    compression: str = "zstd",
    input_columns: InputColumns | None = None,
    expected_rows: Mapping[str, int] | None = None,
    row_group_rows: int = MAX_BATCH_SIZE,
    carry_over_from: ObjectStoragePath | None = None,
) -> ResultsSummary:
    """Convert each batch's results body and write the ``ok/`` and ``errors/`` datasets atomically.

    Both files are written under temporary names and moved into place only after the last batch and
    the row count check; on any error both temporary files are removed and the final paths keep what
    they held before. Temporary files left by crashed runs are removed after a successful run.

    :param results: ``(batch_id, body)`` pairs; a lazy iterator (consumed in a background thread) keeps
        few bodies in memory.
    :param output_path: the directory that receives ``ok/`` and ``errors/``.
    :param compression: Parquet compression codec.
    :param input_columns: input columns to carry into every row, joined on transaction id.
    :param expected_rows: rows each batch must hold (the batches' ``total``); checked per batch and in sum.
    :param row_group_rows: rows per Parquet row group (errors gather across batches up to this).
    :param carry_over_from: an earlier ``ok/`` file whose rows the new ``ok/`` keeps after the new ones
        (those whose id the new ``ok/`` rows do not hold): see :mod:`~ntropy_provider.results.carry_over`.
    :raises RowCountMismatchError: when a batch or the sum does not hold the expected rows.
    :raises ResultsFormatError: when a body is not a valid results body.
    """
    ok_dir, errors_dir = dataset_paths(output_path)
    schema = joined_schema(RESULTS_ARROW_SCHEMA, input_columns.schema if input_columns else None)
    summary = ResultsSummary(ok_path=ok_dir, errors_path=errors_dir)
    writers = [
        AtomicParquetWriter(
            directory / DATA_FILE_NAME, schema, compression=compression, row_group_rows=row_group_rows
        )
        for directory in (ok_dir, errors_dir)
    ]
    ok_writer, errors_writer = writers
    # The next batch is fetched and parsed in a thread while this one is joined, split and written.
    prefetched = Prefetcher(results, _convert)
    new_ok_ids: list = []  # hashes of the new ok rows' ids, only with carry_over_from
    try:
        for writer in writers:
            writer.open()
        for batch_id, batch in prefetched:
            if expected_rows is not None and batch.num_rows != expected_rows.get(batch_id):
                raise RowCountMismatchError(
                    f"batch {batch_id}: the results hold {batch.num_rows} rows but the batch's total is "
                    f"{expected_rows.get(batch_id)}"
                )
            if input_columns is not None:
                carried = input_columns.take(batch.column("transaction_id"), batch_id=batch_id)
                batch = append_columns(batch, carried, schema)
            ok, errors = split_ok_errors(batch)
            ok_writer.write(ok)
            if carry_over_from is not None:
                from ntropy_provider.utils.id_hashes import hash_ids

                new_ok_ids.append(hash_ids(ok.column("transaction_id")))
            errors_writer.write(errors)
            summary.batch_rows[batch_id] = batch.num_rows
            log.info(
                "Batch %s: %d rows (%d ok, %d errored)",
                batch_id,
                batch.num_rows,
                ok.num_rows,
                errors.num_rows,
            )
        summary.ok_rows, summary.error_rows = ok_writer.rows, errors_writer.rows
        _check_counts(summary, expected_rows)
        if carry_over_from is not None:
            from ntropy_provider.results.carry_over import carry_over
            from ntropy_provider.utils.id_hashes import IdHashSet

            summary.carried_rows = carry_over(carry_over_from, ok_writer, IdHashSet.from_parts(new_ok_ids))
            summary.ok_rows += summary.carried_rows
        for writer in writers:
            writer.close()
        # ok/ last: whenever ok/ holds this run's rows, errors/ already holds this run's errors (a crash
        # between the two moves leaves the new errors/ beside the previous ok/; a rerun repairs both).
        errors_writer.publish()
        ok_writer.publish()
    except BaseException:
        prefetched.close()
        for writer in writers:
            writer.abort()
        raise
    prefetched.close()
    for directory in (ok_dir, errors_dir):
        remove_stale_temporaries(directory, DATA_FILE_NAME)
    return summary


def _convert(item: tuple[str, bytes]) -> tuple[str, pa.RecordBatch]:
    batch_id, body = item
    return batch_id, convert_results(body, batch_id=batch_id)


def _check_counts(summary: ResultsSummary, expected_rows: Mapping[str, int] | None) -> None:
    written = summary.ok_rows + summary.error_rows
    if written != sum(summary.batch_rows.values()):
        raise RowCountMismatchError(
            f"wrote {written} rows ({summary.ok_rows} ok + {summary.error_rows} errored) but the batches "
            f"held {sum(summary.batch_rows.values())}"
        )
    if expected_rows is None:
        return
    missing = [batch_id for batch_id in expected_rows if batch_id not in summary.batch_rows]
    if missing or written != sum(expected_rows.values()):
        raise RowCountMismatchError(
            f"wrote {written} rows ({summary.ok_rows} ok + {summary.error_rows} errored) but the batches' "
            f"totals add up to {sum(expected_rows.values())}"
            + (f"; batches not written: {missing}" if missing else "")
        )


def read_schema_version(table_or_schema: pa.Table | pa.Schema) -> str | None:
    """The results schema version stored in a Parquet file's metadata, or ``None``.

    :param table_or_schema: a table read back from the file, or its schema.
    """
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    value = (schema.metadata or {}).get(RESULTS_SCHEMA_VERSION_KEY)
    return value.decode() if value is not None else None
