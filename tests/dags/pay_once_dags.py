"""Test-only DAG for tests/operators_submit/test_submit_pay_once.py (run with dag.test()).

One day's pipeline as the nightly example runs it, every pay-once knob taken from the run's conf:
submit (skip_enriched, max_credits, dry_run, on_duplicate) -> wait -> write_results (carry_over).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.sensors.batch import BatchSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: Rows per batch: small, so that a test's few hundred rows make several batches.
CHUNK_SIZE = 40

with DAG(
    "ntropy_test_pay_once",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,  # None stays None, numbers stay numbers
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=0)},
) as pay_once_dag:
    submit = SubmitBatchOperator(
        task_id="submit",
        items="{{ dag_run.conf['input_path'] }}",
        chunk_size=CHUNK_SIZE,
        on_invalid="quarantine",
        rejects_path="{{ dag_run.conf['output_path'] }}/rejects.jsonl",
        skip_enriched="{{ dag_run.conf.get('skip_enriched') }}",
        max_credits="{{ dag_run.conf.get('max_credits') }}",
        dry_run="{{ dag_run.conf.get('dry_run', False) }}",
        deferrable=False,
    )
    wait = BatchSensor(task_id="wait", batch_ids=submit.output, deferrable=True, poke_interval=0.1)
    ResultsToParquetOperator(
        task_id="write_results",
        batch_ids=wait.output,
        output_path="{{ dag_run.conf['output_path'] }}",
        carry_over="{{ dag_run.conf.get('carry_over', True) }}",
    )
