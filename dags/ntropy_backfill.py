"""Backfill: enrich a range of landed days in one run, one mapped task per day, within the API's limits."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import DAG, ObjectStoragePath, Param, task

from ntropy_provider.api.limits import DEFAULT_MAX_OPEN_BATCHES
from ntropy_provider.landing import count_rows, ensure_account_holders_from_file, find_day_file
from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator

DATA_ROOT = os.environ.get("NTROPY_DATA_ROOT", "/tmp/ntropy")
NTROPY_CONN_ID = "ntropy_default"
#: Days submitted or waited on at once (deferred tasks count too) ...
DAYS_IN_FLIGHT = 5
#: ... and the most batches of one day in progress at once (its rolling window): together at most
#: DAYS_IN_FLIGHT x WINDOW_PER_DAY batches in progress, the key's cap (10 unless Ntropy raised it).
WINDOW_PER_DAY = DEFAULT_MAX_OPEN_BATCHES // DAYS_IN_FLIGHT
#: ... and the part of the key's credits (refill, and the bucket it starts from) one day counts as its
#: own: the days in flight split the credits as they split the batches in progress.
CREDIT_SHARE_PER_DAY = 1 / DAYS_IN_FLIGHT
#: Days whose results are written at once (CPU and memory bound: one batch in memory per task).
DAYS_WRITING = 2
log = logging.getLogger(__name__)

DOC_MD = """
### Backfill a history with Ntropy

Enriches every landed day from `start_date` to `end_date` (inclusive) in **one DAG run**: `plan`
lists the days that have a `transactions.parquet|csv` (reading only file metadata) and maps one
`submit_and_wait` task and one `write_results` task per day; `ensure_account_holders` first creates
the holders of `<landing_path>/account_holders.parquet|csv` that Ntropy does not know yet. Each day
lands exactly where `ntropy_nightly_enrichment` would put it
(`<output_path>/date=YYYY-MM-DD/ok|errors`, `rejects.jsonl`), and `report` checks that
*ok + errored + rejected + skipped = landed* over the whole range.

**A backfill over days already enriched pays only for what is missing.** Each day skips the ids its
`ok/` already holds (`skip_enriched`, by the nightly DAG or an earlier backfill) and carries those rows
into its new `ok/` (`carry_over`): a range half done sends only the other half, a range done sends
nothing (0 credits); rows that ended with an item error are sent again. `{"dry_run": true}` reports,
per day and in total, the rows, batches and credits a real run would spend, and sends nothing.

**Why a range DAG with dynamic task mapping, and not `airflow backfill create` of the nightly DAG?**
Both work: the nightly DAG is idempotent per day, so `airflow backfill create --dag-id
ntropy_nightly_enrichment --from-date ... --to-date ... --max-active-runs 5` re-runs past days too.
But a history is usually a one-off load of months of files with its own knobs (a date range typed in
the trigger form, `priority="low"` so that it never slows the nightly job, its own concurrency) and one
place to watch it: one run whose grid shows every day, and whose `report` gives the totals. That is
this DAG. Per day (not per row or per batch) keeps XCom small (a few ids and counts per day) and no
task giant: a 2-million-row history over 3 months is ~90 mapped tasks of ~22,000 rows each.

**Limits it respects, and how to size it for your key.** Ntropy limits each API key to 10 batches in
progress and a bucket of 100,000 credits refilled at 1,000 per second (one credit per transaction;
keys can have raised limits: set them as the connection's `max_open_batches`, `credit_capacity` and
`credit_refill_per_second` extras). Each day's `submit_and_wait` keeps at most `WINDOW_PER_DAY` (2) of
its batches in progress, submits the next chunk when one ends, and defers to the triggerer whenever
it has to wait; at most `DAYS_IN_FLIGHT` (5) days run or wait at once (`max_active_tis_per_dag` counts
deferred tasks). Size them so that **`DAYS_IN_FLIGHT x WINDOW_PER_DAY <= max_open_batches`** of the key,
minus what other DAGs using the key need: days of one batch (up to 24,960 rows) are best served by 10
days x 1; big days by fewer days with a larger window (2 x 5). Credits are split the same way: each
day counts `CREDIT_SHARE_PER_DAY` (1 / `DAYS_IN_FLIGHT`) of the key's refill as its own and starts
from that part of a full bucket (`credit_share`), so that the days' first bursts fit the bucket
together instead of five full-bucket bursts drawing 429s. When the server still answers 429 (another
client spends credits, or took a batch slot) the day only waits: its estimate is emptied (its share
stays `CREDIT_SHARE_PER_DAY`: a halved share made the day that lost the first race the backfill's
straggler), or its window shrinks to what the server accepted and grows back as its batches end. A
429 never fails a task. The credit refill bounds the whole range: 1M rows need ~15 minutes of credits
at 1,000/s, whatever the sizing.

*Sizing, step by step.* (1) The per-day window: a day of `R` valid rows makes `ceil(R / 24,960)`
batches, and a batch is enriched in seconds (about 10 s for a full one), while the refill needs 25 s
for its credits: with the documented limits a day is **credit-bound**, and its window rarely holds more
than one or two batches; `WINDOW_PER_DAY = 2` is enough, more only helps keys whose refill was raised
well above 1,000/s. (2) Days in flight: enough to keep the bucket busy while days start, read their
input and write their results; 5 do it, and `DAYS_IN_FLIGHT x WINDOW_PER_DAY` must stay within the
key's `max_open_batches` (minus what other DAGs keep in progress), or the days only trade 429s for the
cap. (3) The deferral threshold (`min_defer_wait`, 30 s): waits shorter than it are slept in the
worker, longer ones free the worker slot, so a day holds a worker mostly while it reads and POSTs.
Measured (bench `rolling_window`, strategy `backfill`: ~1M rows as 5 days sharing one key, time-scaled
20x, 2-core machine): every day succeeded on its first try, and the range took 1.4x the time the
key's limits allow with 1 POST in 41 answered 429 (with each day pacing to the whole key instead of its
fifth: 1.2-1.5x, and a quarter to a third of the POSTs answered 429). The stack tests run 5 days x
100,000 rows on a real Airflow the same way, every day on its first try.

Batches that end in `error` are resubmitted (`max_batch_error_retries`), and a retried task never
submits a day twice. `[core] max_map_length` (1024 by default) bounds the number of days per run.

**To use it on your data**: trigger it with `{"start_date": "2024-01-01", "end_date": "2024-03-31",
"landing_path": "s3://bucket/landing", "output_path": "s3://bucket/enriched"}` (or set
`NTROPY_DATA_ROOT`). The real API: the `ntropy_default` connection, as for the nightly DAG.
"""


def _days(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    if last < first:
        raise AirflowFailException(f"end_date {last} is before start_date {first}")
    return [(first + dt.timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


with DAG(
    dag_id="ntropy_backfill",
    description="Enrich a range of landed days with Ntropy, one mapped task per day",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3},
    params={
        "start_date": Param("2024-03-01", type="string", format="date", description="First day"),
        "end_date": Param("2024-03-31", type="string", format="date", description="Last day (inclusive)"),
        "landing_path": Param(f"{DATA_ROOT}/landing", type="string", description="date=... partitions"),
        "output_path": Param(
            f"{DATA_ROOT}/enriched", type="string", description="Receives date=.../ok|errors"
        ),
        "priority": Param("low", enum=["default", "low"], description="Ntropy batch priority"),
        "dry_run": Param(False, type="boolean", description="Report what would be sent; send nothing"),
    },
    doc_md=DOC_MD,
    tags=["ntropy", "example"],
) as dag:

    @task
    def plan(params: dict[str, Any]) -> list[dict[str, Any]]:
        """One entry per landed day of the range: its file and row count (read from metadata only)."""
        landing = ObjectStoragePath(params["landing_path"])
        days = []
        for day in _days(params["start_date"], params["end_date"]):
            found = find_day_file(landing, day)
            if found is None:
                log.warning("No transactions landed for %s: skipped", day)
                continue
            days.append({"date": day, "items": str(found), "rows": count_rows(found)})
        if not days:
            raise AirflowFailException(
                f"no transactions landed in {landing} from {params['start_date']} to {params['end_date']}"
            )
        log.info("%d day(s), %d row(s) to enrich", len(days), sum(d["rows"] for d in days))
        return days

    @task
    def submit_arguments(days: list[dict[str, Any]], params: dict[str, Any]) -> list[dict[str, Any]]:
        """The mapped arguments of submit_and_wait: one dict per day."""
        return [
            {
                "items": d["items"],
                "rejects_path": f"{params['output_path']}/date={d['date']}/rejects.jsonl",
                # Pay once: what the day's ok/ already holds (the nightly DAG's too) is not sent again.
                "skip_enriched": f"{params['output_path']}/date={d['date']}",
            }
            for d in days
        ]

    @task
    def ensure_account_holders(params: dict[str, Any]) -> int:
        """Create in Ntropy every holder of the holders file that does not exist yet (idempotent)."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        hook = NtropyHook(ntropy_conn_id=NTROPY_CONN_ID)
        return ensure_account_holders_from_file(hook, params["landing_path"])["ensured"]

    days = plan()
    holders = ensure_account_holders()
    submit_kwargs = submit_arguments(days)
    holders >> submit_kwargs
    # --8<-- [start:submit_and_wait]
    submitted = SubmitBatchOperator.partial(
        task_id="submit_and_wait",
        ntropy_conn_id=NTROPY_CONN_ID,
        on_invalid="quarantine",
        priority="{{ params.priority }}",
        max_concurrency=1,
        max_open_batches=WINDOW_PER_DAY,
        credit_share=CREDIT_SHARE_PER_DAY,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=5,
        max_poll_interval=60,
        max_active_tis_per_dag=DAYS_IN_FLIGHT,
        dry_run="{{ params.dry_run }}",
    ).expand_kwargs(submit_kwargs)
    # --8<-- [end:submit_and_wait]

    @task
    def results_arguments(days: list[dict[str, Any]], submits: list[dict[str, Any]], params: dict[str, Any]):
        """The mapped arguments of write_results: each day's batches, output folder and input file.

        A dry run sent nothing: its per-day and total costs are logged here, and nothing is written."""
        if any(s.get("dry_run") for s in submits):
            for d, s in zip(days, submits, strict=True):
                log.info("Dry run %s: %s", d["date"], s)
            keys = ("input_rows", "total", "rejected", "skipped", "credits", "batches", "estimated_seconds")
            log.info("Dry run totals: %s", {k: sum(s.get(k, 0) for s in submits) for k in keys})
            return []
        return [
            {
                "batch_ids": s["batch_ids"],
                "output_path": f"{params['output_path']}/date={d['date']}",
                "input_path": d["items"],
            }
            for d, s in zip(days, submits, strict=True)
        ]

    written = ResultsToParquetOperator.partial(
        task_id="write_results",
        ntropy_conn_id=NTROPY_CONN_ID,
        max_active_tis_per_dag=DAYS_WRITING,
        carry_over=True,  # the rows a day skipped stay in its ok/
    ).expand_kwargs(results_arguments(days, submitted.output))

    @task
    def report(
        days: list[dict[str, Any]], submits: list[dict[str, Any]], results: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Totals over the range; fails if any day's rows do not add up."""
        totals = dict.fromkeys(
            ("days", "input_rows", "ok_rows", "error_rows", "rejected_rows", "skipped_rows", "credits"), 0
        )
        for day, sub, res in zip(days, submits, results, strict=True):
            # This run's ok rows are those not carried over from the day's earlier output.
            ok = int(res["ok_rows"]) - int(res.get("carried_rows", 0))
            errors, rejected = int(res["error_rows"]), int(sub["rejected"])
            skipped = int(sub.get("skipped", 0))
            if ok + errors + rejected + skipped != day["rows"]:
                raise ValueError(
                    f"{day['date']}: {day['rows']} rows landed but {ok} ok + {errors} errored + "
                    f"{rejected} rejected + {skipped} skipped (already enriched) were accounted for"
                )
            totals["days"] += 1
            totals["input_rows"] += day["rows"]
            totals["ok_rows"] += ok
            totals["error_rows"] += errors
            totals["rejected_rows"] += rejected
            totals["skipped_rows"] += skipped
            totals["credits"] += int(sub.get("credits", 0))
        log.info("Backfill totals: %s", totals)
        return totals

    report(days, submitted.output, written.output)
