"""ntropy_spend_summary with dag.test(): the report sums the nightly DAG's enriched rows."""

from __future__ import annotations

import datetime as dt

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from dags_examples_helpers import DAY, load_dag_module


@pytest.mark.usefixtures("airflow_db")
def test_spend_summary_sums_outgoing_spend_by_category_and_merchant(
    data_root, ntropy_emulator, ntropy_connection
):
    logical_date = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    nightly = load_dag_module("ntropy_nightly_enrichment")
    conf = {"landing_path": str(data_root / "landing"), "output_path": str(data_root / "enriched")}
    assert nightly.dag.test(logical_date=logical_date, run_conf=conf).state == "success"
    ok_path = data_root / "enriched" / f"date={DAY}" / "ok"

    summary = load_dag_module("ntropy_spend_summary")
    run = summary.dag.test(
        logical_date=logical_date,
        run_conf={
            "ok_path": str(ok_path),
            "date": DAY.isoformat(),
            "report_path": str(data_root / "reports"),
        },
    )

    assert run.state == "success"
    ok = pq.read_table(ok_path / "part-0.parquet").to_pylist()
    outgoing = [r for r in ok if r["input_entry_type"] == "outgoing"]
    folder = data_root / "reports" / f"date={DAY}"
    by_category = pa_csv.read_csv(folder / "spend_by_category.csv").to_pylist()
    by_merchant = pa_csv.read_csv(folder / "spend_by_merchant.csv").to_pylist()
    assert sum(r["transactions"] for r in by_category) == len(outgoing) > 0
    assert sum(r["spend"] for r in by_category) == pytest.approx(
        sum(r["input_amount"] for r in outgoing), abs=0.05
    )
    assert [r["spend"] for r in by_category] == sorted((r["spend"] for r in by_category), reverse=True)
    top = by_merchant[0]
    top_rows = [
        r
        for r in outgoing
        if (
            r["counterparty_name"] or "(unknown)",
            r["category_general"] or "uncategorized",
            r["input_currency"],
        )
        == (top["merchant"], top["category"], top["currency"])
    ]
    assert top["transactions"] == len(top_rows)
    assert top["spend"] == pytest.approx(sum(r["input_amount"] for r in top_rows), abs=0.01)
    assert len(by_merchant) <= summary.TOP_MERCHANTS
