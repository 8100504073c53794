"""Catch up on webhook deliveries that never arrived, so the webhook-driven pipeline never misses a batch.

The third DAG of the webhook pipeline, next to ``ntropy_submit_only`` and ``ntropy_webhook_results``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param

from ntropy_provider.operators.webhook_catchup import WebhookCatchUpOperator

#: The connection the batches are submitted through (same as in the two other webhook DAGs).
NTROPY_CONN_ID = "ntropy_default"

DOC_MD = f"""
### Catch up on lost webhook deliveries

Ntropy retries a failed webhook delivery for 24 hours and **disables a webhook** that keeps failing; the
receiver refuses deliveries (503) while `ntropy_webhook_results` is paused. Either way a batch's event can
be lost for good, and its results would never be written. Every 15 minutes this DAG

1. **re-enables** a webhook of `{NTROPY_CONN_ID}` that Ntropy disabled (and logs a warning: look for
   why the receiver failed);
2. lists the batches created since its **watermark** (the Variable
   `ntropy_webhook_catchup_watermark__{NTROPY_CONN_ID}`, minus an hour of overlap), and POSTs each batch
   that ended more than 15 minutes ago to the receiver as the event its webhook would have sent. The
   receiver records it exactly once: an already recorded batch is a `duplicate`, and a real delivery
   arriving later is a `duplicate` too. `ntropy_webhook_results` then writes it as usual;
3. moves the watermark up to the oldest batch still processing (or refused).

The task fails, naming the batches, while the receiver refuses them (e.g. `ntropy_webhook_results`
paused): unpause it and the next run records them. To catch up at once on batches that just ended,
trigger a run with `{{"grace_minutes": 0}}`.

**What to change**
* `NTROPY_CONN_ID`, as in the two other DAGs.
* The receiver URL the workers reach: the connection extra `webhook_catchup_url` (else `webhook_url`,
  else `[api] base_url` + `/ntropy/webhooks/{NTROPY_CONN_ID}`).
* To re-scan a period, set the Variable to an earlier ISO 8601 time (no batch is recorded twice within the
  receiver's `dedupe_retention_days`).
"""

with DAG(
    dag_id="ntropy_webhook_catchup",
    description="Record the Ntropy batches whose webhook delivery was lost; re-enable a disabled webhook",
    schedule=dt.timedelta(minutes=15),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=2)},
    params={
        "grace_minutes": Param(
            15, type="number", minimum=0, description="Leave batches that ended this recently to the webhook"
        ),
    },
    doc_md=DOC_MD,
    tags=["ntropy", "example", "webhooks"],
) as dag:
    # --8<-- [start:catch_up]
    WebhookCatchUpOperator(
        task_id="catch_up", ntropy_conn_id=NTROPY_CONN_ID, grace="{{ params.grace_minutes * 60 }}"
    )
    # --8<-- [end:catch_up]
