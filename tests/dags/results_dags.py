"""Test-only DAGs for tests/results/test_results_dag_runs.py (run with dag.test())."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from airflow.sdk import DAG

from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.sensors.batch import BatchSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: A fixed output path (under the tests' throw-away AIRFLOW_HOME), so that its Assets are known at parse time.
STATIC_OUTPUT = Path(os.environ.get("AIRFLOW_HOME", "/tmp")) / "results-static"

with DAG(
    "ntropy_test_results_static",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
) as static_dag:
    ResultsToParquetOperator(
        task_id="write_results", batch_ids="{{ dag_run.conf['batch_ids'] }}", output_path=str(STATIC_OUTPUT)
    )

with DAG(
    "ntropy_test_results_templated",
    schedule=None,
    start_date=START,
    catchup=False,
    render_template_as_native_obj=True,
) as templated_dag:
    ResultsToParquetOperator(
        task_id="write_results",
        batch_ids="{{ dag_run.conf['batch_ids'] }}",
        output_path="{{ dag_run.conf['output_root'] }}/date={{ ds }}",
    )

with DAG("ntropy_test_results_end_to_end", schedule=None, start_date=START, catchup=False) as end_to_end_dag:
    submit = SubmitBatchOperator(task_id="submit", items="{{ dag_run.conf['input_path'] }}", chunk_size=40)
    wait = BatchSensor(task_id="wait", batch_ids=submit.output, deferrable=True, poke_interval=0.1)
    ResultsToParquetOperator(
        task_id="write_results",
        batch_ids=wait.output,
        output_path="{{ dag_run.conf['output_root'] }}/date={{ ds }}",
        input_path="{{ dag_run.conf['input_path'] }}",
    )
