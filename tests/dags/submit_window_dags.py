"""Test-only DAGs of test_submit_window_dag_runs.py: the rolling window in dag.test()."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG

from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.sensors.batch import BatchSensor

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
#: Chunks a CrashInSecondWindow task died on, by try number (same process as the test).
CRASHES: list[tuple[int, int]] = []


class CrashInSecondWindow(SubmitBatchOperator):
    """Dies on its first try right after the API created the first chunk of the second window,
    before the batch id is recorded: the worst moment for duplicates."""

    def execute(self, context: Any) -> Any:
        self._try_number = context["ti"].try_number
        return super().execute(context)

    def resume_submission(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        self._try_number = context["ti"].try_number
        return super().resume_submission(context, event)

    def record_submitted(self, ledger: Any, index: int, state: Any, batch: Any) -> None:
        if self._try_number == 1 and index == 3:
            CRASHES.append((self._try_number, index))
            raise RuntimeError(f"simulated worker death after batch {batch.id} was created")
        super().record_submitted(ledger, index, state, batch)


def _window_dag(dag_id: str, operator: type[SubmitBatchOperator], chunk_size: int, **kwargs: Any) -> DAG:
    with DAG(dag_id, schedule=None, start_date=START, catchup=False) as dag:
        submit = operator(
            task_id="submit",
            items="{{ dag_run.conf['input_path'] }}",
            chunk_size=chunk_size,
            max_open_batches=3,
            deferrable=True,
            min_defer_wait=0.3,  # the emulator's batches take about a second: defer between windows
            poll_interval=0.2,
            max_poll_interval=1.0,
            timeout=dt.timedelta(minutes=5),
            reconcile_timeout=60,
            retry_delay=dt.timedelta(0),
            **kwargs,
        )
        BatchSensor(task_id="wait", batch_ids=submit.output, deferrable=True, poke_interval=0.2)
    return dag


window_dag = _window_dag("ntropy_test_window", SubmitBatchOperator, 24_960, retries=2)
storm_dag = _window_dag("ntropy_test_window_storm", SubmitBatchOperator, 5_000, retries=2)
crash_dag = _window_dag("ntropy_test_window_crash", CrashInSecondWindow, 5_000, retries=1)
