"""ntropy_nightly_enrichment end to end with dag.test() against the emulator: every row accounted for."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dags_examples_helpers import DAY, REPO_ROOT, load_dag_module, load_module_from

from ntropy_provider import sample_data
from ntropy_provider.api.transaction_input import validate_transaction
from ntropy_provider.api.wire import ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND


def _run(module, data_root, day=DAY):
    return module.dag.test(
        logical_date=dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
        run_conf={"landing_path": str(data_root / "landing"), "output_path": str(data_root / "enriched")},
    )


@pytest.mark.usefixtures("airflow_db")
def test_nightly_run_writes_ok_errors_and_rejects_that_add_up(data_root, ntropy_emulator, ntropy_connection):
    module = load_dag_module("ntropy_nightly_enrichment")
    dag_run = _run(module, data_root)

    assert dag_run.state == "success"
    landed = sample_data.transactions_for_date(DAY, 120, seed=5)
    invalid_ids = {r["id"] for r in landed if validate_transaction(r)}
    missing_ids = {
        r["id"]
        for r in landed
        if r["id"] not in invalid_ids and r["account_holder_id"].startswith(sample_data.MISSING_HOLDER_PREFIX)
    }
    out = data_root / "enriched" / f"date={DAY}"
    ok = pq.read_table(out / "ok" / "part-0.parquet")
    errors = pq.read_table(out / "errors" / "part-0.parquet")
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]

    assert ok.num_rows + errors.num_rows + len(rejects) == len(landed)
    assert set(errors.column("transaction_id").to_pylist()) == missing_ids
    assert set(errors.column("error_code").to_pylist()) == {ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND}
    assert len(rejects) == len(invalid_ids) > 0
    # The input columns travel with the results, so that the spend can be summed downstream.
    assert "input_amount" in ok.column_names
    assert ok.column("category_general").null_count < ok.num_rows
    stats = ntropy_emulator.stats()
    assert stats["batches_created"] == 1
    assert stats["transactions_submitted"] == len(landed) - len(invalid_ids)

    # The demo's summary reads the same outputs and counts the same rows.
    summary = load_module_from(REPO_ROOT / "demo" / "summary.py", "demo_summary").summarize(
        data_root, DAY.isoformat()
    )
    assert (summary["ok"], summary["errored"], summary["rejected"]) == (
        ok.num_rows,
        errors.num_rows,
        len(rejects),
    )
    assert summary["top_merchants"] and summary["top_categories"]


@pytest.mark.usefixtures("airflow_db")
def test_nightly_run_fails_at_once_when_nothing_landed(tmp_path, ntropy_emulator, ntropy_connection):
    module = load_dag_module("ntropy_nightly_enrichment")
    (tmp_path / "landing").mkdir()
    dag_run = _run(module, tmp_path, day=dt.date(2024, 5, 5))

    assert dag_run.state == "failed"
    states = {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances()}
    assert states["locate_input"] == ("failed", 1), "a missing file is not retried"
    assert states["submit"][0] == "upstream_failed"
    assert ntropy_emulator.stats()["batches_created"] == 0


@pytest.mark.usefixtures("airflow_db")
def test_nightly_run_reads_csv_landings_too(tmp_path, ntropy_emulator, ntropy_connection):
    day = dt.date(2024, 4, 2)
    sample_data.write_landing(tmp_path / "landing", day, rows_per_day=60, fmt="csv", seed=4)
    module = load_dag_module("ntropy_nightly_enrichment")

    assert _run(module, tmp_path, day=day).state == "success"
    landed = sample_data.transactions_for_date(day, 60, seed=4)
    valid = [r for r in landed if not validate_transaction(r)]
    out = tmp_path / "enriched" / f"date={day}"
    errors = pq.read_table(out / "errors" / "part-0.parquet")
    ok = pq.read_table(out / "ok" / "part-0.parquet")
    assert ok.num_rows + errors.num_rows == len(valid)
    # Holders listed in account_holders.csv were created: only the missing ones error.
    missing = {r["id"] for r in valid if r["account_holder_id"].startswith(sample_data.MISSING_HOLDER_PREFIX)}
    assert set(errors.column("transaction_id").to_pylist()) == missing


def test_publish_refuses_counts_that_do_not_add_up(data_root):
    module = load_dag_module("ntropy_nightly_enrichment")
    publish = module.dag.get_task("publish").python_callable
    landed = str(data_root / "landing" / f"date={DAY}" / "transactions.parquet")
    written = {"ok_rows": 100, "error_rows": 5, "ok_path": "file:///x/ok", "errors_path": "file:///x/errors"}

    with pytest.raises(ValueError, match="120 rows landed but 100 ok \\+ 5 errored \\+ 1 rejected"):
        list(publish(landed, {"total": 105, "rejected": 1}, written, DAY.isoformat()))
    events = list(publish(landed, {"total": 105, "rejected": 15}, written, DAY.isoformat()))
    assert [e.extra["input_rows"] for e in events] == [120, 120]
    assert [e.extra["path"] for e in events] == ["file:///x/ok", "file:///x/errors"]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_holders_step_accepts_files_without_the_optional_account_holder_column(tmp_path, fmt):
    # account_holder_id is optional in the API (null disables categorization): exports without it are common.
    day = dt.date(2024, 4, 3)
    rows = [
        {k: v for k, v in row.items() if k != "account_holder_id"}
        for row in sample_data.transactions_for_date(day, 40, seed=9)
    ]
    landed = sample_data.partition_path(tmp_path / "landing", day, fmt)
    if fmt == "parquet":  # not write_table: its fixed schema would add the column back, all null
        landed.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), landed)
    else:
        sample_data.write_table(rows, landed, fmt)
    holders_file = tmp_path / "landing" / f"account_holders.{fmt}"
    sample_data.write_holders(sample_data.account_holders(4), holders_file, fmt)
    ensure = (
        load_dag_module("ntropy_nightly_enrichment").dag.get_task("ensure_account_holders").python_callable
    )

    assert ensure(str(landed), {"landing_path": str(tmp_path / "landing")}) == {"ensured": 0, "not_listed": 0}
