"""Test-only DAG of the distributed stack: one file through the rolling window, one batch open at a time.

Small chunks and ``max_open_batches=1`` make the submitting task defer to the triggerer between windows,
so that the next window may resume on another Celery worker; then the results are written as Parquet.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, Param, task

from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator

#: Rows per batch: a 200-row day makes five windows.
CHUNK_SIZE = 40

with DAG(
    dag_id="ntropy_stack_rolling_window",
    schedule=None,
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={"retries": 3},
    # (not "items": Jinja would resolve params.items to the dict's method)
    params={
        "items_path": Param("", type="string", description="The transactions file"),
        "output_path": Param("", type="string", description="Receives ok/, errors/ and rejects.jsonl"),
    },
    tags=["ntropy", "test"],
) as dag:
    submit = SubmitBatchOperator(
        task_id="submit",
        items="{{ params.items_path }}",
        chunk_size=CHUNK_SIZE,
        max_open_batches=1,
        max_concurrency=1,
        min_defer_wait=0,
        deferrable=True,
        wait_for_completion=True,
        poll_interval=1,
        max_poll_interval=2,
        on_invalid="quarantine",
        rejects_path="{{ params.output_path }}/rejects.jsonl",
    )

    @task
    def batch_ids(submitted: dict[str, Any]) -> list[str]:
        """The batches the submitting task ended with."""
        return list(submitted["batch_ids"])

    ResultsToParquetOperator(
        task_id="write_results",
        batch_ids=batch_ids(submit.output),
        output_path="{{ params.output_path }}",
        input_path="{{ params.items_path }}",
    )
