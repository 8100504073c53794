"""Write the results of the batches Ntropy reports through its webhook: event-driven, no polling.

Scheduled on the asset that the webhook receiver records Ntropy's batch events on. The first half of
the pair is ``ntropy_submit_only``.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import DAG, task

from ntropy_provider.api.models import check_batch_id
from ntropy_provider.compat import partitioned_asset_timetable
from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.webhooks.assets import batches_asset
from ntropy_provider.webhooks.events import plan_batch_events

DATA_ROOT = os.environ.get("NTROPY_DATA_ROOT", "/tmp/ntropy")
NTROPY_CONN_ID = "ntropy_default"
OUTPUT_PATH = f"{DATA_ROOT}/webhook_results"
#: ``ntropy://batches/ntropy_default``: the receiver records every batches.completed / batches.error here.
BATCHES = batches_asset(NTROPY_CONN_ID)
log = logging.getLogger(__name__)

DOC_MD = f"""
### Results of Ntropy batches, when Ntropy says they are ready

Runs when the webhook receiver records Ntropy batch events on the asset `{BATCHES.uri}` (Airflow's
API server serves the receiver at `POST /ntropy/webhooks/{NTROPY_CONN_ID}`; `ntropy_submit_only`
registers it). This DAG, deployed and **unpaused**, is what the receiver records for: while no unpaused
DAG schedules on the asset (this one paused, or not deployed yet), it answers 503 and Ntropy retries the
delivery (for 24 h), because Airflow would never run a paused DAG for events recorded meanwhile.

**One run per batch.** The receiver records each event with the batch id as its *partition key* and
this DAG is scheduled with `PartitionedAssetTimetable`, so Airflow creates one run per batch (the run's
partition key is the batch id) and links it to exactly that batch's events: each event is handled by
exactly one run, and a burst of events makes as many runs, none left waiting. The tasks still read
**every** triggering event of their run and keep each event and each batch once.
(A plain `schedule=[asset]` DAG is not queued for partition-keyed events; to use one, set
`[ntropy_webhooks] partition_by_batch = False`, and know that Airflow 3.3 then folds the events recorded
before a run is queued into it and leaves events recorded while a run is already queued waiting for the
next event.)

* `batches.completed` -> `write_results` (one mapped task per batch) writes
  `<output_path>/batch_id=<id>/ok/part-0.parquet` and `.../errors/part-0.parquet`, atomically;
  a rerun rewrites identical files.
* `batches.error` -> `alert_on_errored_batches` fails at once (no retries), naming the batches and
  events, so the run is failed and your failure alerts fire. Ntropy advises resubmitting: trigger a new run of
  `ntropy_submit_only` for that day.

**What to change**
* `OUTPUT_PATH` (or `NTROPY_DATA_ROOT`): any `ObjectStoragePath` (`s3://conn_id@bucket/prefix`, ...).
* `NTROPY_CONN_ID`, if the batches were submitted through another connection (same as in
  `ntropy_submit_only`).
* `alert_on_errored_batches`: replace with your own notifier (Slack, e-mail, ...) if a failed run is
  not the alert you want.
"""


with DAG(
    dag_id="ntropy_webhook_results",
    description="Write the results of the batches that Ntropy's webhook reports completed",
    # One run per batch: the receiver's partition key is the batch id (IdentityMapper, the default).
    # Airflow 3.2+: on 3.1 this line fails the DAG's import with an error that says so.
    schedule=partitioned_asset_timetable(BATCHES, dag_id="ntropy_webhook_results"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={"retries": 3},
    doc_md=DOC_MD,
    tags=["ntropy", "example", "webhooks"],
) as dag:

    def _plan(triggering_asset_events: Any):
        events = triggering_asset_events.get(BATCHES, []) if triggering_asset_events else []
        planned = plan_batch_events(event.extra for event in events)
        log.info(
            "%d events: %d completed, %d errored, %d duplicates, %d skipped",
            len(events),
            len(planned.completed),
            len(planned.errored),
            planned.duplicates,
            planned.skipped,
        )
        return planned

    @task
    def completed_batches(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """One ``write_results`` input per completed batch among every event of this run.

        The Batch object the webhook delivered is passed on, so its status need not be asked again.
        Every batch id is checked by the rule the receiver applies before it becomes part of a path
        (an event written by other means could carry ``../..``): a bad one fails the run, naming it.
        """
        completed = _plan(triggering_asset_events).completed
        for record in completed:
            try:
                check_batch_id(record.batch_id, "batch_id")
            except ValueError as err:
                raise AirflowFailException(
                    f"event {record.event_id!r}: {err}; no path built for it"
                ) from None
        return [
            {"batch_ids": [r.batch], "output_path": f"{OUTPUT_PATH}/batch_id={r.batch_id}"} for r in completed
        ]

    @task
    def alert_on_errored_batches(triggering_asset_events: Any = None) -> int:
        """Fail, naming every batch that Ntropy reported in ``error`` (they have no results)."""
        errored = _plan(triggering_asset_events).errored
        if errored:
            named = ", ".join(f"{r.batch_id} (event {r.event_id}, {r.total} rows)" for r in errored)
            # No retry: the run's events do not change, so every try would fail the same way, and the
            # failure (the alert) would only come after the retries' delays.
            raise AirflowFailException(
                f"{len(errored)} Ntropy batch(es) ended in error, resubmit them: {named}"
            )
        return 0

    ResultsToParquetOperator.partial(task_id="write_results", ntropy_conn_id=NTROPY_CONN_ID).expand_kwargs(
        completed_batches()
    )
    alert_on_errored_batches()
