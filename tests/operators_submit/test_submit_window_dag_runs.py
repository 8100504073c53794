"""The rolling window end to end with dag.test(), against the emulator with the API's limits on.

The emulator enforces the documented limits (credit bucket, 10 batches in progress per key); the refill
and the enrichment speed are raised so that a multi-window input runs in seconds, and the connection
tells the client the same limits. No test here may need a retry of the submit task: 429s are waits.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dag_run_helpers import load_test_dags, task_states, xcom_value

#: Time-scaled limits: the documented bucket and cap, the refill 100x faster.
LIMITS = {"credit_capacity": 100_000, "credit_refill_per_second": 100_000.0, "max_open_batches": 10}


@pytest.fixture
def limited_emulator(ntropy_emulator: Any, ntropy_connection: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The emulator with the API's limits on, and a connection that states the same limits."""
    try:
        ntropy_emulator.configure(limits=True, **LIMITS)
    except Exception as err:  # an emulator without the limits: nothing to test against
        pytest.skip(f"this emulator does not enforce the API's limits: {err}")
    monkeypatch.setenv(
        "AIRFLOW_CONN_NTROPY_DEFAULT",
        json.dumps(
            {
                "conn_type": "ntropy",
                "host": ntropy_emulator.url,
                "password": ntropy_emulator.api_key,
                "extra": {**LIMITS, "max_elapsed": 600},
            }
        ),
    )
    return ntropy_emulator


def _write_parquet(path: Path, rows: int) -> None:
    pq.write_table(
        pa.table(
            {
                "id": [f"w{i}" for i in range(rows)],
                "description": [f"TESCO STORE {i % 311}" for i in range(rows)],
                "date": ["2024-02-03"] * rows,
                "amount": [float(i % 200) + 0.25 for i in range(rows)],
                "entry_type": ["outgoing"] * rows,
                "currency": ["GBP"] * rows,
            }
        ),
        path,
        row_group_size=10_000,
    )


def _tries(dag_run: Any, task_id: str) -> int:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter_by(run_id=dag_run.run_id, task_id=task_id).one()
        return ti.try_number


def _created(emulator: Any) -> int:
    return emulator.stats()["batches_created"]


def test_multi_window_input_succeeds_first_try_with_exactly_one_batch_per_chunk(
    airflow_db: Any, limited_emulator: Any, tmp_path: Path
) -> None:
    module = load_test_dags("submit_window_dags")
    source = tmp_path / "day.parquet"
    _write_parquet(source, 250_000)
    limited_emulator.configure(items_per_second=25_000)  # a full batch takes about a second

    dag_run = module.window_dag.test(run_conf={"input_path": str(source)})

    assert dag_run.state == "success", task_states(dag_run)
    assert _tries(dag_run, "submit") == 1, "first try"
    submitted = xcom_value(dag_run, "submit")
    assert len(submitted["batch_ids"]) == math.ceil(250_000 / 24_960) == _created(limited_emulator)
    assert submitted["total"] == 250_000 and len(json.dumps(submitted)) < 2_000
    stats = limited_emulator.stats()
    assert stats["transactions_submitted"] == 250_000
    # Paced under the limits: no POST refused for credits, the batch cap or the POST rate (polls of
    # batches' status may meet their endpoint's rate now and then: they only wait).
    refused = {k: v for k, v in stats["rate_limited"].items() if "GET" not in k}
    assert refused == {}, refused


def test_a_429_storm_on_post_waits_instead_of_failing(
    airflow_db: Any, limited_emulator: Any, tmp_path: Path
) -> None:
    module = load_test_dags("submit_window_dags")
    source = tmp_path / "day.parquet"
    _write_parquet(source, 50_000)
    limited_emulator.configure(items_per_second=5_000)
    # Once the first batches exist, the key's limits drop under what the connection says (another
    # client took the key's share): every POST beyond one open batch, or above the refill, gets a 429.
    storm = threading.Thread(target=_storm, args=(limited_emulator,), daemon=True)
    storm.start()

    dag_run = module.storm_dag.test(run_conf={"input_path": str(source)})
    storm.join(timeout=60)

    assert dag_run.state == "success", task_states(dag_run)
    assert _tries(dag_run, "submit") == 1, "429s are waits, never a failed try"
    assert _created(limited_emulator) == 10 == len(xcom_value(dag_run, "submit")["batch_ids"])
    assert sum(limited_emulator.stats()["rate_limited"].values()) > 0, "the storm did happen"


def _storm(emulator: Any) -> None:
    import time

    deadline = time.monotonic() + 60
    while _created(emulator) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    emulator.configure(max_open_batches=1, credit_refill_per_second=20_000.0)


def test_a_crash_between_windows_is_retried_with_zero_duplicates(
    airflow_db: Any, limited_emulator: Any, tmp_path: Path
) -> None:
    module = load_test_dags("submit_window_dags")
    module.CRASHES.clear()
    source = tmp_path / "day.parquet"
    _write_parquet(source, 50_000)
    limited_emulator.configure(items_per_second=10_000)

    dag_run = module.crash_dag.test(run_conf={"input_path": str(source)})

    assert dag_run.state == "success", task_states(dag_run)
    assert module.CRASHES == [(1, 3)], "the first try died after creating chunk 3, in the second window"
    assert _tries(dag_run, "submit") == 2
    submitted = xcom_value(dag_run, "submit")
    assert _created(limited_emulator) == 10 == len(set(submitted["batch_ids"])), "0 duplicates"
    assert submitted["total"] == 50_000
