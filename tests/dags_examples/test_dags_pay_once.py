"""The example nightly DAG pays once: an unchanged day's re-run costs 0 credits; a dry run sends nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dags_examples_helpers import DAY, load_dag_module

from ntropy_provider import sample_data


def _run(module, data_root: Path, **conf):
    return module.dag.test(
        logical_date=dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC),
        run_conf={
            "landing_path": str(data_root / "landing"),
            "output_path": str(data_root / "enriched"),
            **conf,
        },
    )


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


@pytest.fixture
def landing_without_item_errors(data_root: Path) -> Path:
    """The day's landed rows minus those naming missing holders: they error every time, so are paid
    on every run (errored rows are not skipped), which would hide what a re-run of the rest costs."""
    day_file = sample_data.partition_path(data_root / "landing", DAY, "parquet")
    table = pq.read_table(day_file)
    holders = table.column("account_holder_id").to_pylist()
    keep = [not str(h).startswith(sample_data.MISSING_HOLDER_PREFIX) for h in holders]
    pq.write_table(table.filter(pa.array(keep)), day_file)
    return data_root


@pytest.mark.usefixtures("airflow_db")
def test_a_rerun_of_an_unchanged_day_costs_nothing_and_keeps_ok_byte_identical(
    landing_without_item_errors: Path, ntropy_emulator, ntropy_connection
) -> None:
    data_root = landing_without_item_errors
    module = load_dag_module("ntropy_nightly_enrichment")
    ok_file = data_root / "enriched" / f"date={DAY}" / "ok" / "part-0.parquet"

    dry = _run(module, data_root, dry_run=True)
    assert dry.state == "success"
    assert _states(dry)["write_results"] == "skipped" and _states(dry)["publish"] == "skipped"
    assert ntropy_emulator.stats()["batches_created"] == 0 and not ok_file.exists()

    # dry_run passed explicitly: dag.test() keeps an earlier run's conf in the DAG's params.
    first = _run(module, data_root, dry_run=False)
    assert first.state == "success", _states(first)
    sent = ntropy_emulator.stats()["transactions_submitted"]
    assert ntropy_emulator.stats()["batches_created"] == 1 and sent > 0
    before = ok_file.read_bytes()

    again = _run(module, data_root, dry_run=False)
    assert again.state == "success", _states(again)
    assert ntropy_emulator.stats()["batches_created"] == 1, "the re-run created no batch"
    assert ntropy_emulator.stats()["transactions_submitted"] == sent
    assert ok_file.read_bytes() == before
