"""Fetch the results of completed Ntropy batches and write them as Parquet: ``ok/`` and ``errors/``."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias, BaseOperator, ObjectStoragePath

from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import BATCHES_PATH, DEFAULT_REGION, REGION_BASE_URLS, BatchStatus
from ntropy_provider.exceptions import NtropyError
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.results.layout import DATA_FILE_NAME, dataset_paths, dataset_uri
from ntropy_provider.utils.batch_ids import known_terminal_batches, resolve_batch_ids
from ntropy_provider.utils.storage import as_storage_path

# pyarrow (through ntropy_provider.results' writer, reader and schema) is imported at execute time only:
# every process that parses a DAG file using this operator would otherwise load it.
if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from ntropy_provider.results.datasets import ResultsSummary

log = logging.getLogger(__name__)


class BatchesNotCompletedError(NtropyError):
    """Some batches have no results to write: they are still processing or ended in ``error``."""


def _known_at_parse_time(path: Any) -> bool:
    """Whether the output path is fixed when the DAG is parsed (not a template, not an XComArg)."""
    if isinstance(path, ObjectStoragePath):
        text = path.serialize()["path"]
    elif isinstance(path, str):
        text = path
    else:
        return False
    return "{{" not in text and "{%" not in text


class ResultsToParquetOperator(BaseOperator):
    """Write the enriched results of completed batches as two Parquet datasets, atomically.

    Under ``output_path``, ``ok/part-0.parquet`` holds the rows without an item error and
    ``errors/part-0.parquet`` the rows with one (``error_code``, ``error_message``); both always exist,
    with the full schema (``ntropy_provider.results.schema.RESULTS_ARROW_SCHEMA``), even with zero rows; a
    field of the results that the schema has no column for is kept in the row's ``extra_json``. Rows
    follow the order of ``batch_ids``, then submission order. Batches stream through: while one is split
    and written, the next is fetched and parsed in a background thread, so memory holds about three
    batches whatever their number. The files are written under temporary names and moved into place
    only when every row is written and the row count equals the sum of the batches' totals; a rerun for
    the same batches writes byte-identical files.

    All batches are checked before anything is written: a batch that is not ``completed`` fails the task
    with a message naming the batch and its status.

    Outlets: unless ``outlets`` is given, the two datasets are declared as Assets (``<output_path>/ok``
    and ``<output_path>/errors``); when ``output_path`` is templated or an XComArg (its URI is only
    known at run time), an ``AssetAlias`` named ``ntropy-results:<dag_id>.<task_id>`` is declared
    instead and the two Assets are emitted through it. Every event's ``extra`` holds the row counts.
    Given ``outlets`` are honoured: Assets whose URI is one of the two datasets and every ``AssetAlias``
    get the events.

    Returns (XCom) ``{"ok_rows", "error_rows", "carried_rows", "ok_path", "errors_path", "batch_ids"}``
    (the paths are the dataset directories, as URIs; ``carried_rows`` of ``ok_rows`` come from the
    earlier output, see ``carry_over``).

    **A re-run loses nothing** (``carry_over``): when a day is re-run with SubmitBatchOperator's
    ``skip_enriched`` pointing at its own output, its batches hold only what was not enriched yet; with
    ``carry_over=True`` the new ``ok/`` file holds those rows and then every earlier ``ok/`` row whose
    id they do not hold, written atomically as always (same bytes when nothing new came).

    :param batch_ids: the batches: a list of ids, one id, the XCom of ``SubmitBatchOperator`` or
        ``BatchSensor`` (their ``batch_ids``), or an XComArg of those. Templated.
    :param output_path: the directory that receives ``ok/`` and ``errors/``: ``file:///...``,
        ``s3://conn_id@bucket/prefix``, any scheme Airflow's object storage knows, a local path, or an
        ``ObjectStoragePath``; e.g. ``s3://aws@lake/ntropy/date={{ ds }}``. Templated.
    :param ntropy_conn_id: the ``ntropy`` connection. Templated.
    :param input_path: optional: the file that was submitted (Parquet or CSV, by suffix). Its columns are
        carried into both datasets as ``input_<column>``, joined on transaction id. Templated.
    :param input_id_column: the input file's transaction id column.
    :param compression: Parquet compression codec (``zstd``, ``snappy``, ``gzip``, ``lz4``, ``none``).
    :param output_conn_id: connection for ``output_path`` when its URI names none. Templated.
    :param input_conn_id: connection for ``input_path`` when its URI names none. Templated.
    :param carry_over: keep the earlier enriched rows: ``True`` for those of ``output_path`` itself, or
        another output directory (or ``ok/`` directory) to take them from; ``False`` replaces the
        datasets with this run's rows only. Nothing to carry (a first run) is fine. Templated.
    """

    template_fields: Sequence[str] = (
        "batch_ids",
        "output_path",
        "input_path",
        "ntropy_conn_id",
        "output_conn_id",
        "input_conn_id",
        "carry_over",
    )
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        batch_ids: Any,
        output_path: str | ObjectStoragePath,
        ntropy_conn_id: str = NtropyHook.default_conn_name,
        input_path: str | ObjectStoragePath | None = None,
        input_id_column: str = "id",
        compression: str = "zstd",
        output_conn_id: str | None = None,
        input_conn_id: str | None = None,
        carry_over: bool | str | ObjectStoragePath = False,
        **kwargs: Any,
    ) -> None:
        outlets_given = kwargs.get("outlets") is not None
        super().__init__(**kwargs)
        self.batch_ids = batch_ids
        self.output_path = output_path
        self.ntropy_conn_id = ntropy_conn_id
        self.input_path = input_path
        self.input_id_column = input_id_column
        self.compression = compression
        self.output_conn_id = output_conn_id
        self.input_conn_id = input_conn_id
        self.carry_over = carry_over
        if not outlets_given:
            self.outlets = self.default_outlets()
        # Filled by execute() for lineage.
        self._summary: ResultsSummary | None = None
        self._batch_ids: list[str] = []
        self._api_url: str | None = None

    # ---------------------------------------------------------------- outlets
    def default_outlets(self) -> list[Asset | AssetAlias]:
        """The outlets declared when none are given: the two dataset Assets, or an alias when templated."""
        if not (_known_at_parse_time(self.output_path) and _known_at_parse_time(self.output_conn_id or "")):
            return [AssetAlias(name=f"ntropy-results:{self.dag_id}.{self.task_id}")]
        ok_dir, errors_dir = dataset_paths(as_storage_path(self.output_path, self.output_conn_id))
        return [Asset(uri=dataset_uri(ok_dir)), Asset(uri=dataset_uri(errors_dir))]

    def _emit_asset_events(self, context: Context, summary: ResultsSummary, batch_ids: list[str]) -> None:
        from ntropy_provider.results.schema import RESULTS_SCHEMA_VERSION

        counts = {
            "ok_rows": summary.ok_rows,
            "error_rows": summary.error_rows,
            "carried_rows": summary.carried_rows,
        }
        common = {**counts, "batch_count": len(batch_ids), "schema_version": RESULTS_SCHEMA_VERSION}
        datasets = {
            dataset_uri(summary.ok_path): {"dataset": "ok", "rows": summary.ok_rows, **common},
            dataset_uri(summary.errors_path): {"dataset": "errors", "rows": summary.error_rows, **common},
        }
        outlet_events = context["outlet_events"]
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                for uri, extra in datasets.items():
                    outlet_events[outlet].add(Asset(uri=uri), extra=extra)
            elif isinstance(outlet, Asset) and outlet.uri in datasets:
                outlet_events[outlet].extra = datasets[outlet.uri]

    # ---------------------------------------------------------------- execution
    @cached_property
    def hook(self) -> NtropyHook:
        """The Ntropy hook of ``ntropy_conn_id``."""
        return NtropyHook(ntropy_conn_id=self.ntropy_conn_id)

    def _completed_batches(self, batch_ids: list[str], known: dict[str, Batch]) -> list[Batch]:
        # A terminal Batch handed over by the sensor or a webhook is final: no need to ask again.
        batches = [known.get(batch_id) or self.hook.get_batch(batch_id) for batch_id in batch_ids]
        not_completed = [batch for batch in batches if batch.status is not BatchStatus.COMPLETED]
        if not_completed:
            listed = "; ".join(
                f"batch {batch.id} is {batch.status.value} ({batch.progress}/{batch.total} processed)"
                + (
                    " and has no results: resubmit its transactions"
                    if batch.status is BatchStatus.ERROR
                    else ""
                )
                for batch in not_completed
            )
            raise BatchesNotCompletedError(
                f"{len(not_completed)} of {len(batches)} batch(es) are not completed, nothing was written: "
                + listed
            )
        return batches

    def _carry_over_file(self, output: ObjectStoragePath) -> ObjectStoragePath | None:
        """The earlier ``ok/`` file to carry rows from, ``None`` when carry-over is off or finds none."""
        from ntropy_provider.results.carry_over import earlier_ok_file

        value = self.carry_over
        text = str(value).strip().lower() if not isinstance(value, ObjectStoragePath) else None
        if value is False or value is None or text in ("false", "0", "no", "", "none"):
            return None
        source = output if value is True or text in ("true", "1", "yes") else as_storage_path(value)
        found = earlier_ok_file(source)
        if found is None:
            self.log.info("carry_over: no earlier ok/ file under %s (a first run): nothing carried", source)
        return found

    def _fetch(self, batches: list[Batch]) -> Iterator[tuple[str, bytes]]:
        for batch in batches:
            yield batch.id, self.hook.get_batch_results_raw(batch.id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Check every batch, then fetch, convert and write their results; emit the assets.

        :param context: the task's context.
        :raises BatchesNotCompletedError: naming each batch that is not ``completed``, before any write.
        :raises RowCountMismatchError: when the rows written differ from the batches' totals.
        """
        from ntropy_provider.results.datasets import write_results_datasets
        from ntropy_provider.results.input_join import InputColumns

        batch_ids = resolve_batch_ids(self.batch_ids)
        self._batch_ids = batch_ids
        batches = self._completed_batches(batch_ids, known_terminal_batches(self.batch_ids))
        self._api_url = self.hook.settings.base_url
        output = as_storage_path(self.output_path, self.output_conn_id)
        input_columns = None
        if self.input_path not in (None, ""):  # a template may render to "" for "no input"
            input_columns = InputColumns(
                as_storage_path(self.input_path, self.input_conn_id), id_column=self.input_id_column
            )
        self.log.info(
            "Writing the results of %d batch(es), %d transactions, to %s",
            len(batches),
            sum(batch.total for batch in batches),
            output,
        )
        try:
            summary = write_results_datasets(
                self._fetch(batches),
                output,
                compression=self.compression,
                input_columns=input_columns,
                expected_rows={batch.id: batch.total for batch in batches},
                carry_over_from=self._carry_over_file(output),
            )
        finally:
            if input_columns is not None:
                input_columns.close()
        self._summary = summary
        self.log.info(
            "Wrote %d ok rows (%d carried over from the earlier output) to %s and %d errored rows to %s",
            summary.ok_rows,
            summary.carried_rows,
            summary.ok_path / DATA_FILE_NAME,
            summary.error_rows,
            summary.errors_path / DATA_FILE_NAME,
        )
        self._emit_asset_events(context, summary, batch_ids)
        return {
            "ok_rows": summary.ok_rows,
            "error_rows": summary.error_rows,
            "carried_rows": summary.carried_rows,
            "ok_path": dataset_uri(summary.ok_path),
            "errors_path": dataset_uri(summary.errors_path),
            "batch_ids": batch_ids,
        }

    # ---------------------------------------------------------------- lineage
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage | None:
        """OpenLineage: the Ntropy API's batches as input, the ``ok`` and ``errors`` datasets as outputs.

        Returns ``None`` when the OpenLineage provider is not installed (nothing to report to).

        :param task_instance: the finished task instance (unused).
        """
        try:
            from airflow.providers.common.compat.openlineage.facet import (
                Dataset,
                OutputDataset,
                OutputStatisticsOutputDatasetFacet,
            )
            from airflow.providers.openlineage.extractors import OperatorLineage
        except ImportError:
            return None
        if self._summary is None:
            return None
        namespace = (self._api_url or "").rstrip("/") or REGION_BASE_URLS[DEFAULT_REGION]
        inputs = [Dataset(namespace=namespace, name=BATCHES_PATH)]
        outputs = []
        for path, rows in (
            (self._summary.ok_path, self._summary.ok_rows),
            (self._summary.errors_path, self._summary.error_rows),
        ):
            uri = dataset_uri(path)
            scheme, _, rest = uri.partition("://")
            authority, _, name = rest.partition("/")
            outputs.append(
                OutputDataset(
                    namespace=f"{scheme}://{authority}" if authority else scheme,
                    name=f"/{name}" if scheme == "file" else name,
                    outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=rows)},
                )
            )
        return OperatorLineage(inputs=inputs, outputs=outputs)
