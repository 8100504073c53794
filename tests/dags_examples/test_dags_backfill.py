"""ntropy_backfill with dag.test(): a range of days, one mapped task per day, every row accounted for."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dags_examples_helpers import DAY, load_dag_module

from ntropy_provider import sample_data
from ntropy_provider.api.limits import DEFAULT_MAX_OPEN_BATCHES
from ntropy_provider.api.transaction_input import validate_transaction


@pytest.mark.usefixtures("airflow_db")
def test_backfill_enriches_every_landed_day_of_the_range(tmp_path, ntropy_emulator, ntropy_connection):
    landing = tmp_path / "landing"
    # Three days, the middle one never landed; the last one as CSV.
    sample_data.write_landing(landing, DAY, rows_per_day=80, seed=9)
    sample_data.write_landing(landing, DAY + dt.timedelta(days=2), rows_per_day=60, seed=9, fmt="csv")
    module = load_dag_module("ntropy_backfill")

    run = module.dag.test(
        run_conf={
            "start_date": DAY.isoformat(),
            "end_date": (DAY + dt.timedelta(days=2)).isoformat(),
            "landing_path": str(landing),
            "output_path": str(tmp_path / "enriched"),
        }
    )

    assert run.state == "success"
    tis = run.get_task_instances()
    assert sorted(ti.map_index for ti in tis if ti.task_id == "submit_and_wait") == [0, 1]
    report = next(ti for ti in tis if ti.task_id == "report").xcom_pull(task_ids="report")
    landed = sample_data.transactions_for_date(DAY, 80, seed=9) + sample_data.transactions_for_date(
        DAY + dt.timedelta(days=2), 60, seed=9
    )
    rejected = sum(1 for r in landed if validate_transaction(r))
    assert report["days"] == 2 and report["input_rows"] == 140
    assert report["rejected_rows"] == rejected
    assert report["ok_rows"] + report["error_rows"] == 140 - rejected
    for day in (DAY, DAY + dt.timedelta(days=2)):
        out = tmp_path / "enriched" / f"date={day}"
        assert pq.read_metadata(out / "ok" / "part-0.parquet").num_rows > 0
        assert (out / "errors" / "part-0.parquet").exists() and (out / "rejects.jsonl").exists()
    assert ntropy_emulator.stats()["batches_created"] == 2


def test_backfill_keeps_the_days_batches_in_progress_within_the_keys_cap():
    module = load_dag_module("ntropy_backfill")
    dag = module.dag
    submit = dag.get_task("submit_and_wait")
    days, window = submit.partial_kwargs["max_active_tis_per_dag"], submit.partial_kwargs["max_open_batches"]
    assert (days, window) == (module.DAYS_IN_FLIGHT, module.WINDOW_PER_DAY)
    assert days * window <= DEFAULT_MAX_OPEN_BATCHES, "days in flight x window per day within the key's cap"
    assert submit.partial_kwargs["max_concurrency"] == 1
    assert submit.partial_kwargs["deferrable"] is True
    assert dag.max_active_runs == 1


@pytest.mark.usefixtures("airflow_db")
def test_a_two_million_row_history_plans_small_xcoms_and_one_task_per_day(tmp_path):
    """The plan reads only file footers: 2,000,000 rows over 90 days become 90 entries of a few bytes."""
    landing = tmp_path / "landing"
    per_day = 2_000_000 // 90 + 1
    ids = pa.array([f"tx-{n:08d}" for n in range(per_day)])
    for offset in range(90):
        day = DAY + dt.timedelta(days=offset)
        (landing / f"date={day}").mkdir(parents=True)
        pq.write_table(pa.table({"id": ids}), landing / f"date={day}" / "transactions.parquet")
    module = load_dag_module("ntropy_backfill")
    plan = module.dag.get_task("plan").python_callable
    params = {
        "start_date": DAY.isoformat(),
        "end_date": (DAY + dt.timedelta(days=89)).isoformat(),
        "landing_path": str(landing),
        "output_path": str(tmp_path / "enriched"),
    }

    days = plan(params=params)

    assert len(days) == 90 and sum(d["rows"] for d in days) >= 2_000_000
    assert len(json.dumps(days)) < 20_000, "the plan's XCom holds paths and counts, never rows"
    assert max(d["rows"] for d in days) <= 24_960, "each mapped task handles about one batch"
