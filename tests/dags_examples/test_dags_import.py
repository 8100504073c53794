"""Every example DAG imports cleanly, documents itself, and the nightly and summary DAGs share their asset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dag_run_helpers import dag_bag

from ntropy_provider.compat import has_partitioned_assets

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
MY_DAGS = ("ntropy_nightly_enrichment", "ntropy_backfill", "ntropy_spend_summary")


@pytest.fixture(scope="module")
def dagbag() -> Any:
    return dag_bag(str(DAGS_FOLDER))


def test_every_dag_file_imports_without_errors(dagbag):
    errors = {Path(path).name: message for path, message in dagbag.import_errors.items()}
    if not has_partitioned_assets():
        # Airflow 3.1: the one example that needs a newer Airflow says so instead of importing.
        message = errors.pop("ntropy_webhook_results.py")
        assert "PartitionedAssetTimetable) needs Airflow >= 3.2" in message
    assert errors == {}
    assert set(MY_DAGS) <= set(dagbag.dag_ids)


@pytest.mark.parametrize("dag_id", MY_DAGS)
def test_each_dag_tells_users_what_to_change(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "To use it on your data" in dag.doc_md
    assert "ntropy" in dag.tags
    # Nothing runs against the API until a user unpauses (the deployment's setting), and no history
    # is replayed by surprise.
    assert dag.catchup is False


def test_spend_summary_is_scheduled_on_what_the_nightly_dag_publishes(dagbag):
    nightly = dagbag.dags["ntropy_nightly_enrichment"]
    summary = dagbag.dags["ntropy_spend_summary"]
    published = {(a.name, a.uri) for a in nightly.get_task("publish").outlets}
    scheduled_on = {(a.name, a.uri) for a in summary.timetable.asset_condition.objects}
    assert scheduled_on and scheduled_on <= published


def test_nightly_dag_processes_the_day_that_just_ended(dagbag):
    nightly = dagbag.dags["ntropy_nightly_enrichment"]
    chain = [t.task_id for t in nightly.topological_sort()]
    assert chain.index("ensure_account_holders") < chain.index("submit") < chain.index("wait")
    assert nightly.get_task("wait").deferrable is True
    assert nightly.get_task("submit").on_invalid == "quarantine"
    # A data-interval timetable: the run after midnight has {{ ds }} = the day that ended.
    assert type(nightly.timetable).__name__ == "CronDataIntervalTimetable"
