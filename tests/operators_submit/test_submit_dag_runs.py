"""End to end with dag.test() against the emulator: submit, defer, trigger, resume; retries and errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dag_run_helpers import load_test_dags, task_states, xcom_value

from ntropy_provider.emulator.testing import wait_for
from ntropy_provider.hooks.ntropy import NtropyHook


def _write_parquet(path: Path, rows: int) -> None:
    dates = [dt.date(2024, 1, 1) + dt.timedelta(days=i % 365) for i in range(rows)]
    pq.write_table(
        pa.table(
            {
                "id": [f"p{i}" for i in range(rows)],
                "description": [f"UBER TRIP {i}" for i in range(rows)],
                "date": pa.array(dates, pa.date32()),
                "amount": [float(i % 500) + 0.99 if i % 20_000 != 7 else -1.0 for i in range(rows)],
                "entry_type": ["outgoing"] * rows,
                "currency": ["USD"] * rows,
                "location_raw_address": [None] * rows,
                "location_country": [None if i % 2 else "US" for i in range(rows)],
            }
        ),
        path,
        row_group_size=8192,
    )


def test_parquet_file_to_three_batches_with_deferred_sensor(
    airflow_db, ntropy_connection: str, ntropy_emulator, tmp_path: Path
) -> None:
    module = load_test_dags("submit_batch_dags")
    module.SENSOR_EVENTS.clear()
    source = tmp_path / "transactions.parquet"
    _write_parquet(source, 60_003)  # 3 rows with a negative amount: 60,000 valid
    rejects = tmp_path / "rejects.jsonl"
    # Slow enough that the batches are still processing when the sensor checks: it must defer.
    ntropy_emulator.configure(items_per_second=15_000)

    dag_run = module.parquet_dag.test(run_conf={"input_path": str(source), "rejects_path": str(rejects)})

    assert dag_run.state == "success", task_states(dag_run)
    submitted = xcom_value(dag_run, "submit")
    assert len(submitted["batch_ids"]) == 3
    assert (submitted["total"], submitted["rejected"]) == (60_000, 3)
    assert [json.loads(line)["row"] for line in rejects.read_text().splitlines()] == [8, 20_008, 40_008]
    assert len(json.dumps(submitted)) < 1_000, "XCom holds ids and counts, never rows"
    assert ntropy_emulator.stats()["batches_created"] == 3
    assert ntropy_emulator.stats()["transactions_submitted"] == 60_000

    assert len(module.SENSOR_EVENTS) == 1, "the sensor must have deferred and resumed once"
    assert module.SENSOR_EVENTS[0]["status"] == "success"
    waited = xcom_value(dag_run, "wait")
    assert waited["batch_ids"] == submitted["batch_ids"]
    assert [b["status"] for b in waited["batches"]] == ["completed"] * 3
    assert [b["total"] for b in waited["batches"]] == [24_960, 24_960, 10_080]


def test_list_and_xcomarg_inputs(airflow_db, ntropy_connection: str, ntropy_emulator) -> None:
    module = load_test_dags("submit_batch_dags")
    ntropy_emulator.configure(items_per_second=200)
    dag_run = module.xcomarg_dag.test()
    assert dag_run.state == "success", task_states(dag_run)
    from_xcom = xcom_value(dag_run, "submit_xcomarg")
    from_list = xcom_value(dag_run, "submit_list")
    assert (len(from_xcom["batch_ids"]), from_xcom["total"]) == (2, 30)
    assert (len(from_list["batch_ids"]), from_list["total"]) == (1, 5)
    assert xcom_value(dag_run, "wait_list")["batch_ids"] == from_list["batch_ids"]
    results = NtropyHook().get_batch_results(from_list["batch_ids"][0]).results
    assert results[0]["id"] == "x0"
    # Literal rows are data: a description that looks like Jinja must reach the API unrendered.
    assert ntropy_emulator.stats()["batches_created"] == 3


def test_task_retry_after_crash_reattaches_instead_of_resubmitting(
    airflow_db, ntropy_connection: str, ntropy_emulator
) -> None:
    module = load_test_dags("submit_batch_dags")
    module.CRASHES.clear()
    dag_run = module.crash_dag.test()
    assert module.CRASHES == [1], "the first try must have crashed after its second POST"
    assert task_states(dag_run)["submit"] == ("success", 2)
    result = xcom_value(dag_run, "submit")
    assert len(result["batch_ids"]) == 3
    stats = ntropy_emulator.stats()
    assert stats["batches_created"] == 3, "the retry must re-attach to the batch whose id was never recorded"
    assert stats["transactions_submitted"] == 50


def test_crash_retry_with_records_in_airflow_variables_as_on_airflow_before_3_3(
    airflow_db, ntropy_connection: str, ntropy_emulator
) -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from ntropy_provider.compat import VARIABLE_PREFIX

    module = load_test_dags("submit_batch_dags")
    module.CRASHES.clear()
    module.VARIABLE_RECORDS_AT_CRASH.clear()
    dag_run = module.crash_variables_dag.test()

    assert module.CRASHES == [1], "the first try must have crashed after its second POST"
    # The crashed try had recorded chunk 0's batch and chunk 1's intent in Variables, the retry read them.
    at_crash = module.VARIABLE_RECORDS_AT_CRASH
    assert at_crash[0]["batch_id"] and at_crash[1]["intent_at"] and not at_crash[1]["batch_id"]
    assert task_states(dag_run)["submit"] == ("success", 2)
    assert len(xcom_value(dag_run, "submit")["batch_ids"]) == 3
    stats = ntropy_emulator.stats()
    assert stats["batches_created"] == 3, "the retry must re-attach to the batch whose id was never recorded"
    assert stats["transactions_submitted"] == 50
    with create_session() as session:
        left = session.query(Variable.key).filter(Variable.key.like(f"{VARIABLE_PREFIX}.%")).all()
    assert left == [], "the records are deleted once the task succeeded"


def test_errored_batches_resubmitted_then_named_in_the_failure(
    airflow_db, ntropy_connection: str, ntropy_emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_test_dags("submit_batch_dags")
    ntropy_emulator.configure(batch_error_rate=1.0)
    dag_run = module.errors_dag.test()
    assert task_states(dag_run)["submit_and_wait"][0] == "failed"
    # 2 chunks, each submitted once and resubmitted once (max_batch_error_retries=1): 4 batches.
    # The emulator counts a batch's end in a background task, a moment after its status reads as ended.
    stats = wait_for(lambda: (s := ntropy_emulator.stats())["batches_errored"] >= 4 and s)
    assert stats["batches_created"] == 4
    assert stats["batches_errored"] == 4
    latest = {b.id for b in NtropyHook().list_batches()}
    logged = capsys.readouterr().out
    assert "2 batch(es) ended in error after 1 resubmission(s)" in logged
    named = [batch_id for batch_id in latest if batch_id in logged.split("resubmission(s): ", 1)[1][:200]]
    assert len(named) == 2, "the failure names both batches still in error"


def test_wait_for_completion_deferred_succeeds(airflow_db, ntropy_connection: str, ntropy_emulator) -> None:
    module = load_test_dags("submit_batch_dags")
    ntropy_emulator.configure(items_per_second=40)  # ~0.5 s per batch: the operator must defer
    dag_run = module.wait_dag.test()
    assert task_states(dag_run)["submit_and_wait"][0] == "success"
    result = xcom_value(dag_run, "submit_and_wait")
    assert (len(result["batch_ids"]), result["total"], result["replaced_batch_ids"]) == (2, 30, {})
    # Only the BatchTrigger GETs a batch (the operator's checks list the key's batches): it polled both.
    assert ntropy_emulator.stats()["requests"].get("GET /v3/batches/{batch_id}", 0) >= 2, "deferred, polled"
    assert all(NtropyHook().get_batch(i).status == "completed" for i in result["batch_ids"])
