"""Test-only DAGs for tests/operators_submit/test_submit_dag_runs.py (run with dag.test())."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, task

from ntropy_provider.compat import task_state_store
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.sensors.batch import BatchSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: Events the recording sensor received after deferring, for the tests to inspect (same process).
SENSOR_EVENTS: list[dict[str, Any]] = []
#: Try numbers on which CrashOnFirstTry crashed.
CRASHES: list[int] = []


class RecordingBatchSensor(BatchSensor):
    """A BatchSensor that records the trigger events it resumes with."""

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        SENSOR_EVENTS.append(event)
        return super().execute_complete(context, event)


class CrashOnFirstTry(SubmitBatchOperator):
    """Dies on its first try right after the API answered the POST of chunk 1, before recording it."""

    def execute(self, context: Any) -> Any:
        self._try_number = context["ti"].try_number
        return super().execute(context)

    def record_submitted(self, store: Any, index: int, state: Any, batch: Any) -> None:
        if self._try_number == 1 and index == 1:
            CRASHES.append(self._try_number)
            raise RuntimeError(f"simulated worker death after batch {batch.id} was created")
        super().record_submitted(store, index, state, batch)


#: What CrashOnFirstTryInVariables saw in its store when it crashed: chunk index -> record.
VARIABLE_RECORDS_AT_CRASH: dict[int, Any] = {}


def _without_state_store(context: Any) -> dict[str, Any]:
    """The context as Airflow 3.1 and 3.2 give it: no ``task_state_store``."""
    return {key: value for key, value in context.items() if key != "task_state_store"}


class CrashOnFirstTryInVariables(CrashOnFirstTry):
    """CrashOnFirstTry keeping its records in Airflow Variables, as on Airflow < 3.3, on every version."""

    def execute(self, context: Any) -> Any:
        self._ti = context["ti"]
        return super().execute(_without_state_store(context))

    def record_submitted(self, store: Any, index: int, state: Any, batch: Any) -> None:
        if self._try_number == 1 and index == 1:
            # What the Variables hold, read back through a fresh store as the next try will.
            fresh = task_state_store({"ti": self._ti})
            VARIABLE_RECORDS_AT_CRASH.update({i: fresh.get(f"ntropy_submit_chunk_{i}") for i in (0, 1)})
        super().record_submitted(store, index, state, batch)

    def forget_submission_records(self, context: Any) -> None:
        super().forget_submission_records(_without_state_store(context))


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"x{i}",
            "description": "{{ not a template }} COFFEE" if i == 0 else f"COFFEE {i}",
            "date": "2024-01-02",
            "amount": 3.5,
            "entry_type": "outgoing",
            "currency": "EUR",
        }
        for i in range(count)
    ]


with DAG("ntropy_test_submit_parquet", schedule=None, start_date=START, catchup=False) as parquet_dag:
    submit = SubmitBatchOperator(
        task_id="submit",
        items="{{ dag_run.conf['input_path'] }}",
        on_invalid="quarantine",
        rejects_path="{{ dag_run.conf['rejects_path'] }}",
    )
    RecordingBatchSensor(task_id="wait", batch_ids=submit.output, deferrable=True, poke_interval=0.2)


with DAG("ntropy_test_submit_xcomarg", schedule=None, start_date=START, catchup=False) as xcomarg_dag:

    @task
    def upstream_rows() -> list[dict[str, Any]]:
        return _rows(30)

    from_xcom = SubmitBatchOperator(task_id="submit_xcomarg", items=upstream_rows(), chunk_size=20)
    from_list = SubmitBatchOperator(task_id="submit_list", items=_rows(5))
    RecordingBatchSensor(
        task_id="wait_xcomarg", batch_ids=from_xcom.output, deferrable=True, poke_interval=0.1
    )
    BatchSensor(task_id="wait_list", batch_ids=from_list.output, deferrable=False, poke_interval=0.1)


with DAG("ntropy_test_submit_crash", schedule=None, start_date=START, catchup=False) as crash_dag:
    CrashOnFirstTry(
        task_id="submit",
        items=_rows(50),
        chunk_size=20,
        max_concurrency=1,
        retries=1,
        retry_delay=dt.timedelta(0),
    )


with DAG(
    "ntropy_test_submit_crash_variables", schedule=None, start_date=START, catchup=False
) as crash_variables_dag:
    CrashOnFirstTryInVariables(
        task_id="submit",
        items=_rows(50),
        chunk_size=20,
        max_concurrency=1,
        retries=1,
        retry_delay=dt.timedelta(0),
    )


with DAG("ntropy_test_submit_errors", schedule=None, start_date=START, catchup=False) as errors_dag:
    SubmitBatchOperator(
        task_id="submit_and_wait",
        items=_rows(30),
        chunk_size=20,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.1,
        max_poll_interval=0.5,
        max_batch_error_retries=1,
    )


with DAG("ntropy_test_submit_wait_deferred", schedule=None, start_date=START, catchup=False) as wait_dag:
    SubmitBatchOperator(
        task_id="submit_and_wait",
        items=_rows(30),
        chunk_size=20,
        wait_for_completion=True,
        deferrable=True,
        min_defer_wait=0,  # defer however soon the batches end: the deferral is what this DAG tests
        poll_interval=0.1,
        max_poll_interval=0.5,
        timeout=dt.timedelta(minutes=5),
    )
