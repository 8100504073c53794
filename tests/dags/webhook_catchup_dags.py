"""Test-only catch-up DAG for tests/webhooks/test_webhooks_catchup.py (run with dag.test()).

Each test has its own connection and receiver: both come from the run's conf (the operator templates them).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from ntropy_provider.operators.webhook_catchup import WebhookCatchUpOperator

with DAG(
    "ntropy_test_webhook_catchup",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
) as dag:
    # No grace period: a test's batches ended a moment ago.
    WebhookCatchUpOperator(
        task_id="catch_up",
        ntropy_conn_id="{{ dag_run.conf['conn_id'] }}",
        receiver_url="{{ dag_run.conf['receiver_url'] }}",
        grace=dt.timedelta(0),
        retries=0,
    )
