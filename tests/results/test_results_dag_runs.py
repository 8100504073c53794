"""ResultsToParquetOperator in dag.test() runs: asset events with row counts, templated paths, end to end."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from dag_run_helpers import load_test_dags, task_states, xcom_value

from ntropy_provider.results.datasets import DATA_FILE_NAME


def _asset_events(dag_run: Any) -> dict[str, dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == dag_run.dag_id, AssetEvent.source_run_id == dag_run.run_id
            )
        ).all()
        return {event.asset.uri: dict(event.extra or {}) for event in events}


def test_static_output_emits_both_assets_with_row_counts(airflow_db, sample_rows, results_env) -> None:
    module = load_test_dags("results_dags")
    batch_ids = results_env.submit(sample_rows(80), chunk_size=30)
    dag_run = module.static_dag.test(run_conf={"batch_ids": batch_ids})
    assert dag_run.state == "success", task_states(dag_run)
    result = xcom_value(dag_run, "write_results")
    assert result["ok_rows"] + result["error_rows"] == 80 and result["error_rows"] > 0
    ok_uri, errors_uri = f"file://{module.STATIC_OUTPUT}/ok", f"file://{module.STATIC_OUTPUT}/errors"
    events = _asset_events(dag_run)
    assert set(events) == {ok_uri, errors_uri}
    assert events[ok_uri]["rows"] == result["ok_rows"] and events[ok_uri]["dataset"] == "ok"
    assert events[errors_uri]["rows"] == result["error_rows"] and events[errors_uri]["dataset"] == "errors"
    for extra in events.values():
        assert (extra["ok_rows"], extra["error_rows"], extra["batch_count"]) == (
            result["ok_rows"],
            result["error_rows"],
            3,
        )


def test_templated_output_emits_assets_through_an_alias(
    airflow_db, sample_rows, results_env, tmp_path
) -> None:
    module = load_test_dags("results_dags")
    batch_ids = results_env.submit(sample_rows(40), chunk_size=40)
    dag_run = module.templated_dag.test(run_conf={"batch_ids": batch_ids, "output_root": str(tmp_path)})
    assert dag_run.state == "success", task_states(dag_run)
    result = xcom_value(dag_run, "write_results")
    partition = tmp_path / f"date={dag_run.logical_date:%Y-%m-%d}"
    assert result["ok_path"] == f"file://{partition}/ok"
    events = _asset_events(dag_run)
    assert events[f"file://{partition}/ok"]["rows"] == result["ok_rows"]
    assert events[f"file://{partition}/errors"]["rows"] == result["error_rows"]


def test_end_to_end_submit_wait_write_with_input_columns(
    airflow_db, results_env, sample_rows, tmp_path
) -> None:
    module = load_test_dags("results_dags")
    rows = sample_rows(100)
    flat = [
        {
            **{k: v for k, v in row.items() if k != "location"},
            "location_raw_address": (row["location"] or {}).get("raw_address"),
            "location_country": (row["location"] or {}).get("country"),
        }
        for row in rows
    ]
    source = tmp_path / "transactions.parquet"
    pq.write_table(pa.Table.from_pylist(flat), source)
    dag_run = module.end_to_end_dag.test(
        run_conf={"input_path": str(source), "output_root": str(tmp_path / "out")}
    )
    assert dag_run.state == "success", task_states(dag_run)
    result = xcom_value(dag_run, "write_results")
    assert result["batch_ids"] == xcom_value(dag_run, "submit")["batch_ids"] and len(result["batch_ids"]) == 3
    partition = tmp_path / "out" / f"date={dag_run.logical_date:%Y-%m-%d}"
    out = pa.concat_tables([pq.read_table(partition / d / DATA_FILE_NAME) for d in ("ok", "errors")])
    assert out.num_rows == 100 == result["ok_rows"] + result["error_rows"]
    assert out.column("input_description").to_pylist() == [
        {r["id"]: r["description"] for r in rows}[tx] for tx in out.column("transaction_id").to_pylist()
    ]
