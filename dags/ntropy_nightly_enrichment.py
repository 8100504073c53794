"""Nightly enrichment: the day's landed transactions -> Ntropy -> enriched Parquet, no row lost."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Metadata, ObjectStoragePath, Param, chain, task
from airflow.sdk.exceptions import AirflowFailException

from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.sensors.batch import BatchSensor

#: Where the example reads and writes by default; every path is also a DAG param you can override.
DATA_ROOT = os.environ.get("NTROPY_DATA_ROOT", "/tmp/ntropy")
NTROPY_CONN_ID = "ntropy_default"
log = logging.getLogger(__name__)

#: Asset events carry the day's paths and counts in ``extra``; downstream DAGs (ntropy_spend_summary)
#: schedule on these names.
ENRICHED_OK = Asset(name="ntropy_enriched_ok", uri="ntropy://enriched/ok", group="ntropy")
ENRICHED_ERRORS = Asset(name="ntropy_enriched_errors", uri="ntropy://enriched/errors", group="ntropy")

#: Files looked for in a day's landing partition, in order.
TRANSACTION_FILES = ("transactions.parquet", "transactions.csv")
HOLDER_FILES = ("account_holders.parquet", "account_holders.csv")

DOC_MD = """
### Nightly enrichment with Ntropy

Every night, the transactions that landed for the day (`{{ ds }}`) are enriched by Ntropy and written
as Parquet, beside the rows Ntropy could not enrich and the rows that were never sent because they are
invalid. No row is lost: the last task checks that *ok + errored + rejected = landed*.

```
<landing_path>/date=YYYY-MM-DD/transactions.parquet|csv      input (one file per day)
<landing_path>/account_holders.parquet|csv                   id, type, name of your account holders
<output_path>/date=YYYY-MM-DD/ok/part-0.parquet              enriched rows
<output_path>/date=YYYY-MM-DD/errors/part-0.parquet          rows with a per-item error
<output_path>/date=YYYY-MM-DD/rejects.jsonl                  invalid rows, with the field and reason
```

Tasks: `locate_input` finds the day's file -> `ensure_account_holders` creates, in Ntropy, the
holders that the day's rows name and that your holders file lists (rows naming other holders come
back with `account_holder_not_found`) -> `submit` validates, quarantines invalid rows and submits
batches of at most 24,960 rows (a retry never submits a batch twice) -> `wait` defers to the
triggerer until every batch ends -> `write_results` writes `ok/` and `errors/` atomically, with the
input columns carried as `input_*` -> `publish` checks the counts and emits the `ntropy_enriched_ok`
and `ntropy_enriched_errors` asset events (their `extra` holds the paths and counts).

**To use it on your data**
* Set the params `landing_path` and `output_path` (any `ObjectStoragePath`: `s3://bucket/x`,
  `gs://...`, `file:///...`; add `conn_id@` for a non-default connection), or set `NTROPY_DATA_ROOT`.
* Your columns: `id, description, date, amount, entry_type, currency` and optionally
  `account_holder_id` (without it, or when null, Ntropy does not categorize the row),
  `location_raw_address`, `location_country` (CSV) or a `location` struct (Parquet).
* The schedule is a *data interval* cron: the run that starts after midnight processes the day that
  just ended, and `{{ ds }}` is that day. Runs for past days: `airflow backfill create
  --dag-id ntropy_nightly_enrichment --from-date 2024-01-01 --to-date 2024-01-31` (or ntropy_backfill).

**To use the real API** create the connection `ntropy_default`, e.g.
`AIRFLOW_CONN_NTROPY_DEFAULT='{"conn_type": "ntropy", "password": "<your API key>"}'`
(host defaults to `https://api.ntropy.com`; `https://api.eu.ntropy.com` for the EU region).
Retries: 3 per task, waiting `[core] default_task_retry_delay` between tries.
"""


def _first_existing(folder: ObjectStoragePath, names: tuple[str, ...]) -> ObjectStoragePath | None:
    for name in names:
        candidate = folder / name
        if candidate.exists():
            return candidate
    return None


def _read_column(path: ObjectStoragePath, column: str) -> list[Any]:
    """One column of a Parquet or CSV file, as strings (Parquet reads only that column).

    A file without the column gives no values: optional columns (``account_holder_id``) may be absent.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        if path.name.endswith(".parquet"):
            parquet = pq.ParquetFile(handle)
            if column not in parquet.schema_arrow.names:
                return []
            return parquet.read(columns=[column]).column(column).cast(pa.string()).to_pylist()
        # Typed as string: type inference would turn ids like "1001" into integers.
        options = pa_csv.ConvertOptions(
            include_columns=[column],
            include_missing_columns=True,
            column_types={column: pa.string()},
            strings_can_be_null=True,
        )
        return pa_csv.read_csv(handle, convert_options=options).column(column).to_pylist()


def _count_rows(path: ObjectStoragePath) -> int:
    """Rows in a Parquet file (from its footer) or a CSV file (streamed, one column parsed)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        if path.name.endswith(".parquet"):
            return int(pq.read_metadata(handle).num_rows)
        options = pa_csv.ConvertOptions(include_columns=["id"], column_types={"id": pa.string()})
        return sum(batch.num_rows for batch in pa_csv.open_csv(handle, convert_options=options))


with DAG(
    dag_id="ntropy_nightly_enrichment",
    description="Enrich the day's landed transactions with Ntropy and write them as Parquet",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 3},
    params={
        "landing_path": Param(
            f"{DATA_ROOT}/landing", type="string", description="Folder of date=YYYY-MM-DD partitions"
        ),
        "output_path": Param(
            f"{DATA_ROOT}/enriched", type="string", description="Receives date=YYYY-MM-DD/ok|errors"
        ),
    },
    doc_md=DOC_MD,
    tags=["ntropy", "example"],
) as dag:

    @task
    def locate_input(ds: str, params: dict[str, Any]) -> str:
        """The day's transactions file; fails naming what was looked for when nothing landed."""
        partition = ObjectStoragePath(params["landing_path"]) / f"date={ds}"
        found = _first_existing(partition, TRANSACTION_FILES)
        if found is None:
            # No retry: a missing file does not appear by waiting; clear the task once it has landed.
            raise AirflowFailException(
                f"no transactions landed for {ds}: looked for {', '.join(TRANSACTION_FILES)} in {partition}"
            )
        return str(found)

    @task
    def ensure_account_holders(transactions_path: str, params: dict[str, Any]) -> dict[str, int]:
        """Create in Ntropy the listed holders that today's rows name (idempotent: existing ones are kept)."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        named = {h for h in _read_column(ObjectStoragePath(transactions_path), "account_holder_id") if h}
        holders_file = _first_existing(ObjectStoragePath(params["landing_path"]), HOLDER_FILES)
        listed: dict[str, dict[str, Any]] = {}
        if holders_file is not None:
            import pyarrow as pa
            import pyarrow.csv as pa_csv
            import pyarrow.parquet as pq

            ids_as_text = pa_csv.ConvertOptions(column_types={"id": pa.string()})
            with holders_file.open("rb") as handle:
                if holders_file.name.endswith(".parquet"):
                    table = pq.read_table(handle)
                else:
                    table = pa_csv.read_csv(handle, convert_options=ids_as_text)
            listed = {str(row["id"]): row for row in table.to_pylist()}
        hook = NtropyHook(ntropy_conn_id=NTROPY_CONN_ID)
        ensured = 0
        for holder_id in sorted(named & listed.keys()):
            row = listed[holder_id]
            hook.ensure_account_holder(holder_id, row.get("type") or "consumer", name=row.get("name"))
            ensured += 1
        unknown = len(named - listed.keys())
        if unknown:
            # Not an error: their rows come back from Ntropy with account_holder_not_found.
            log.warning("%d account holder id(s) named by today's rows are not in the holders file", unknown)
        return {"ensured": ensured, "not_listed": unknown}

    located = locate_input()
    holders = ensure_account_holders(located)

    submit = SubmitBatchOperator(
        task_id="submit",
        items=located,
        ntropy_conn_id=NTROPY_CONN_ID,
        on_invalid="quarantine",
        rejects_path="{{ params.output_path }}/date={{ ds }}/rejects.jsonl",
    )
    wait = BatchSensor(
        task_id="wait",
        batch_ids=submit.output,
        ntropy_conn_id=NTROPY_CONN_ID,
        deferrable=True,
        poke_interval=5,
        max_poll_interval=60,
        timeout=dt.timedelta(hours=6).total_seconds(),
    )
    write_results = ResultsToParquetOperator(
        task_id="write_results",
        batch_ids=wait.output,
        ntropy_conn_id=NTROPY_CONN_ID,
        output_path="{{ params.output_path }}/date={{ ds }}",
        input_path=located,
    )

    @task(outlets=[ENRICHED_OK, ENRICHED_ERRORS])
    def publish(transactions_path: str, submitted: dict[str, Any], written: dict[str, Any], ds: str):
        """Check that every landed row is ok, errored or rejected, then emit the asset events."""
        landed = _count_rows(ObjectStoragePath(transactions_path))
        ok_rows, error_rows = int(written["ok_rows"]), int(written["error_rows"])
        rejected = int(submitted["rejected"])
        if ok_rows + error_rows + rejected != landed:
            raise ValueError(
                f"{ds}: {landed} rows landed but {ok_rows} ok + {error_rows} errored + {rejected} rejected "
                "were accounted for"
            )
        counts = {
            "ok_rows": ok_rows,
            "error_rows": error_rows,
            "rejected_rows": rejected,
            "input_rows": landed,
        }
        log.info("%s: %s", ds, counts)
        yield Metadata(ENRICHED_OK, extra={"date": ds, "path": str(written["ok_path"]), **counts})
        yield Metadata(ENRICHED_ERRORS, extra={"date": ds, "path": str(written["errors_path"]), **counts})

    chain(holders, submit)
    publish(located, submit.output, write_results.output)
