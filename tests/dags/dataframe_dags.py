"""Test-only DAG for tests/operators_submit/test_submit_dataframe.py: a DataFrame from an upstream task.

The upstream task returns a pandas DataFrame; Airflow serializes it into XCom (Parquet bytes) and the
SubmitBatchOperator pulls it back as a DataFrame, then sensor and results writer, as a user's DAG would.
Every task's connection id is a template (``dag_run.conf['conn_id']``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, task

from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.sensors.batch import BatchSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: Rows of the upstream DataFrame.
ROWS = 45
CONN_ID = "{{ dag_run.conf['conn_id'] }}"
#: Positions (0-based) of the rows that break the API's rules, and how.
BAD_POSITIONS = {7: "amount", 23: "currency", 40: "amount"}


def frame_rows() -> Any:
    """The DataFrame an analyst's task would build: typed columns, NaN for a missing amount."""
    import pandas as pd

    amounts = [float(i % 50) + 0.25 for i in range(ROWS)]
    amounts[7] = -3.0
    amounts[40] = float("nan")
    currencies = ["USD"] * ROWS
    currencies[23] = "DOLLARS"
    return pd.DataFrame(
        {
            "id": [f"df{i}" for i in range(ROWS)],
            "description": [f"AMAZON MKTP {i}" for i in range(ROWS)],
            "date": pd.date_range("2024-03-01", periods=ROWS, freq="D"),
            "amount": amounts,
            "entry_type": pd.Categorical(["outgoing" if i % 4 else "incoming" for i in range(ROWS)]),
            "currency": currencies,
            "location_country": [None if i % 3 else "US" for i in range(ROWS)],
        }
    )


with DAG("ntropy_test_submit_dataframe", schedule=None, start_date=START, catchup=False) as dataframe_dag:

    @task
    def transactions() -> Any:
        return frame_rows()

    submit = SubmitBatchOperator(
        task_id="submit",
        items=transactions(),
        ntropy_conn_id=CONN_ID,
        chunk_size=20,
        on_invalid="quarantine",
        rejects_path="{{ dag_run.conf['rejects_path'] }}",
    )
    wait = BatchSensor(
        task_id="wait", batch_ids=submit.output, ntropy_conn_id=CONN_ID, deferrable=True, poke_interval=0.1
    )
    ResultsToParquetOperator(
        task_id="write_results",
        batch_ids=wait.output,
        ntropy_conn_id=CONN_ID,
        output_path="{{ dag_run.conf['output_root'] }}",
    )
