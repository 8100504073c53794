"""Submit the day's transactions to Ntropy and end: the webhook tells Airflow when the results are ready.

The other half of the pair is ``ntropy_webhook_results``, which runs when Ntropy reports the batches.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from airflow.sdk import DAG, Param, task

from ntropy_provider.compat import CronDataIntervalTimetable
from ntropy_provider.io.transactions_source import INPUT_FORMATS
from ntropy_provider.landing import require_day_file
from ntropy_provider.operators.ensure_webhook import EnsureWebhookOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator

#: Where the example reads and writes by default; every path is also a DAG param you can override.
DATA_ROOT = os.environ.get("NTROPY_DATA_ROOT", "/tmp/ntropy")
NTROPY_CONN_ID = "ntropy_default"

DOC_MD = """
### Submit to Ntropy, and let the webhook do the waiting

Every night the day's transactions (`{{ ds }}`) are validated and submitted to Ntropy in batches, and
the run **ends at once**: nothing polls Ntropy. When a batch completes (or fails), Ntropy POSTs a
webhook to Airflow's API server; the receiver records it as an event on the asset
`ntropy://batches/ntropy_default`, and **`ntropy_webhook_results`** (scheduled on that asset) writes
the results. Deploy and unpause both DAGs (while `ntropy_webhook_results` is paused, the receiver
refuses deliveries with 503 and Ntropy retries them for 24 h).

```
<landing_path>/date=YYYY-MM-DD/transactions.parquet|csv|jsonl   input (one file per day)
<landing_path>/date=YYYY-MM-DD/rejects.jsonl                    invalid rows, never sent, with the reason
```

Tasks: `ensure_webhook` registers the receiver with Ntropy (idempotent: one webhook per URL; it is
updated when the token changes) -> `locate_input` finds the day's file -> `submit` validates,
quarantines invalid rows and submits batches of at most 24,960 rows (a retry never submits twice).

**What to change**
* The connection `ntropy_default` needs, besides the API key, the extra `webhook_token`: a long random
  string (`python -c "import secrets; print(secrets.token_urlsafe(32))"`). Ntropy sends it with every
  delivery and the receiver refuses deliveries without it.
* The receiver's public URL: by default `[api] base_url` + `/ntropy/webhooks/ntropy_default`; set the
  connection extra `webhook_url` when Ntropy reaches Airflow through another address (it must be https
  and reachable from the internet for the real API).
* The params `landing_path` (any `ObjectStoragePath`: `s3://bucket/x`, `file:///...`) or `NTROPY_DATA_ROOT`.
* Another connection: change `NTROPY_CONN_ID` here **and** in `ntropy_webhook_results` (each
  connection has its own asset `ntropy://batches/<conn_id>`).
"""


with DAG(
    dag_id="ntropy_submit_only",
    description="Submit the day's transactions to Ntropy; the webhook triggers ntropy_webhook_results",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 3},
    params={
        "landing_path": Param(
            f"{DATA_ROOT}/landing", type="string", description="Folder of date=YYYY-MM-DD partitions"
        ),
    },
    doc_md=DOC_MD,
    tags=["ntropy", "example", "webhooks"],
) as dag:
    # --8<-- [start:ensure_webhook]
    ensure_webhook = EnsureWebhookOperator(task_id="ensure_webhook", ntropy_conn_id=NTROPY_CONN_ID)
    # --8<-- [end:ensure_webhook]

    @task
    def locate_input(ds: str, params: dict[str, Any]) -> str:
        """The day's transactions file; fails at once (no retries), naming what it looked for, if none."""
        # Any format the submit operator reads (JSON Lines too): this DAG never reads the file itself.
        return str(require_day_file(params["landing_path"], ds, formats=INPUT_FORMATS))

    located = locate_input()
    # --8<-- [start:submit]
    submit = SubmitBatchOperator(
        task_id="submit",
        items=located,
        ntropy_conn_id=NTROPY_CONN_ID,
        on_invalid="quarantine",
        rejects_path="{{ params.landing_path }}/date={{ ds }}/rejects.jsonl",
        wait_for_completion=False,
    )
    # The webhook must exist before the first batch can complete, or its event would not be delivered.
    ensure_webhook >> submit
    # --8<-- [end:submit]
