"""Nightly enrichment: the day's landed transactions -> Ntropy -> enriched Parquet, no row lost."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.sdk import DAG, Asset, Metadata, Param, chain, task

from ntropy_provider.compat import CronDataIntervalTimetable
from ntropy_provider.landing import (
    count_rows,
    ensure_account_holders_from_file,
    read_column,
    require_day_file,
)
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

DOC_MD = """
### Nightly enrichment with Ntropy

Every night, the transactions that landed for the day (`{{ ds }}`) are enriched by Ntropy and written
as Parquet, beside the rows Ntropy could not enrich and the rows that were never sent because they are
invalid. No row is lost: the last task checks that *ok + errored + rejected + skipped = landed*.

**Each transaction is paid once.** `submit` skips the ids already enriched in the day's own `ok/`
(`skip_enriched`), sends a repeated id once (its repeats go to `rejects.jsonl` as `duplicate_id`), and
`write_results` carries the earlier enriched rows into the new `ok/` (`carry_over`): **re-running a day
whose input did not change costs 0 credits** and leaves `ok/` as it was, byte for byte; a changed day
pays only for its new ids. Rows that ended with an item error are sent again (they may succeed now), so
they are paid again. Trigger with `{"dry_run": true}` to see what a run would send and cost (rows,
batches, credits, time at the key's limits, in `submit`'s log and XCom) without sending anything. The
credits spent are in `submit`'s log and XCom and in the asset events' `extra` (`credits`).

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
        "dry_run": Param(False, type="boolean", description="Report what would be sent; send nothing"),
    },
    doc_md=DOC_MD,
    tags=["ntropy", "example"],
) as dag:

    @task
    def locate_input(ds: str, params: dict[str, Any]) -> str:
        """The day's transactions file; fails at once (no retries), naming what it looked for, if none."""
        return str(require_day_file(params["landing_path"], ds))

    @task
    def ensure_account_holders(transactions_path: str, params: dict[str, Any]) -> dict[str, int]:
        """Create in Ntropy the listed holders that today's rows name (idempotent: existing ones are kept)."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        named = read_column(transactions_path, "account_holder_id")
        hook = NtropyHook(ntropy_conn_id=NTROPY_CONN_ID)
        return ensure_account_holders_from_file(hook, params["landing_path"], holder_ids=named)

    located = locate_input()
    holders = ensure_account_holders(located)

    # --8<-- [start:submit]
    submit = SubmitBatchOperator(
        task_id="submit",
        items=located,
        ntropy_conn_id=NTROPY_CONN_ID,
        on_invalid="quarantine",
        rejects_path="{{ params.output_path }}/date={{ ds }}/rejects.jsonl",
        # Pay once: what the day's ok/ already holds is not sent again (nothing there yet: all is sent).
        skip_enriched="{{ params.output_path }}/date={{ ds }}",
        dry_run="{{ params.dry_run }}",
    )
    # --8<-- [end:submit]

    @task.short_circuit
    def sends(submitted: dict[str, Any]) -> bool:
        """A dry run stops here: nothing was sent, so nothing is written or published."""
        if submitted.get("dry_run"):
            log.info("Dry run: %s", submitted)
            return False
        return True

    # --8<-- [start:wait]
    wait = BatchSensor(
        task_id="wait",
        batch_ids=submit.output,
        ntropy_conn_id=NTROPY_CONN_ID,
        deferrable=True,
        poke_interval=5,
        max_poll_interval=60,
        timeout=dt.timedelta(hours=6).total_seconds(),
    )
    # --8<-- [end:wait]
    # --8<-- [start:write_results]
    write_results = ResultsToParquetOperator(
        task_id="write_results",
        batch_ids=wait.output,
        ntropy_conn_id=NTROPY_CONN_ID,
        output_path="{{ params.output_path }}/date={{ ds }}",
        input_path=located,
        carry_over=True,  # the rows skipped above stay in the day's ok/
    )
    # --8<-- [end:write_results]

    @task(outlets=[ENRICHED_OK, ENRICHED_ERRORS])
    def publish(transactions_path: str, submitted: dict[str, Any], written: dict[str, Any], ds: str):
        """Check that every landed row is ok, errored, rejected or skipped, then emit the asset events."""
        landed = count_rows(transactions_path)
        ok_rows, error_rows = int(written["ok_rows"]), int(written["error_rows"])
        carried = int(written.get("carried_rows", 0))
        rejected, skipped = int(submitted["rejected"]), int(submitted.get("skipped", 0))
        # This run's rows: the ok ones it enriched (not those carried over), errored, rejected, skipped.
        if (ok_rows - carried) + error_rows + rejected + skipped != landed:
            raise ValueError(
                f"{ds}: {landed} rows landed but {ok_rows - carried} ok + {error_rows} errored + "
                f"{rejected} rejected + {skipped} skipped (already enriched) were accounted for"
            )
        counts = {
            "ok_rows": ok_rows,
            "error_rows": error_rows,
            "rejected_rows": rejected,
            "skipped_rows": skipped,
            "carried_rows": carried,
            "input_rows": landed,
            "credits": int(submitted.get("credits", 0)),
        }
        log.info("%s: %s", ds, counts)
        yield Metadata(ENRICHED_OK, extra={"date": ds, "path": str(written["ok_path"]), **counts})
        yield Metadata(ENRICHED_ERRORS, extra={"date": ds, "path": str(written["errors_path"]), **counts})

    chain(holders, submit, sends(submit.output), wait)
    publish(located, submit.output, write_results.output)
