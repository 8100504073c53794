"""The webhook DAG pair parses, is wired as documented, and its own code handles collapsed events.

Running them for real (submit -> webhook -> asset event -> results) needs a scheduler: that is the stack
test ``tests/stack/test_stack_webhooks.py``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException
from dag_run_helpers import dag_bag

from ntropy_provider.webhooks.assets import BatchEventRecord, batches_asset

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dags():
    found = {}
    for name in ("ntropy_submit_only", "ntropy_webhook_results", "ntropy_webhook_catchup"):
        bag = dag_bag(str(DAGS / f"{name}.py"))
        assert bag.import_errors == {}, bag.import_errors
        found[name] = bag.dags[name]
    return found


def _event(event_type: str = "batches.completed", batch_id: str | None = None) -> SimpleNamespace:
    """What ``triggering_asset_events[asset]`` yields: an object with ``extra``."""
    batch_id = batch_id or str(uuid.uuid4())
    status = "completed" if event_type.endswith("completed") else "error"
    record = BatchEventRecord(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        batch_id=batch_id,
        status=status,
        total=3,
        progress=3,
        conn_id="ntropy_default",
        batch={"id": batch_id, "status": status, "total": 3},
    )
    return SimpleNamespace(extra=record.to_extra())


def test_submit_only_registers_the_webhook_before_submitting_and_ends(dags):
    dag = dags["ntropy_submit_only"]
    assert set(dag.task_ids) == {"ensure_webhook", "locate_input", "submit"}
    assert "ensure_webhook" in dag.get_task("submit").upstream_task_ids
    assert dag.get_task("submit").wait_for_completion is False
    assert "webhook_token" in dag.doc_md
    assert "ntropy_webhook_results" in dag.doc_md


def test_submit_only_fails_without_retries_when_nothing_landed(dags, tmp_path):
    # As in ntropy_nightly_enrichment: retrying (3 x the retry delay) does not make a file land.
    locate = dags["ntropy_submit_only"].get_task("locate_input").python_callable
    with pytest.raises(AirflowFailException, match="no transactions landed for 2024-03-01"):
        locate(ds="2024-03-01", params={"landing_path": str(tmp_path)})


def test_results_dag_is_scheduled_on_the_batches_asset(dags):
    dag = dags["ntropy_webhook_results"]
    from airflow.sdk import PartitionedAssetTimetable

    # One run per batch: partitioned on the batch id the receiver records as the partition key.
    assert isinstance(dag.timetable, PartitionedAssetTimetable)
    assert dag.timetable.asset_condition == batches_asset("ntropy_default")
    assert set(dag.task_ids) == {"completed_batches", "write_results", "alert_on_errored_batches"}
    assert "What to change" in dag.doc_md


def test_every_collapsed_completed_event_gets_its_own_write(dags):
    dag = dags["ntropy_webhook_results"]
    events = [_event(), _event("batches.error"), _event(), _event()]
    events.append(events[0])  # the same asset event listed twice must not be written twice
    triggering = {batches_asset("ntropy_default"): events}
    writes = dag.get_task("completed_batches").python_callable(triggering_asset_events=triggering)
    completed = [e.extra for e in events[:4] if e.extra["event_type"] == "batches.completed"]
    assert [w["batch_ids"][0]["id"] for w in writes] == [e["batch_id"] for e in completed]
    assert all(w["output_path"].endswith(f"batch_id={w['batch_ids'][0]['id']}") for w in writes)


def test_errored_batches_fail_the_alert_task_naming_them(dags):
    dag = dags["ntropy_webhook_results"]
    errored = _event("batches.error")
    alert = dag.get_task("alert_on_errored_batches").python_callable
    # AirflowFailException: failed without retries, which would only delay the alert.
    with pytest.raises(AirflowFailException, match=errored.extra["batch_id"]):
        alert(triggering_asset_events={batches_asset("ntropy_default"): [_event(), errored]})
    assert alert(triggering_asset_events={batches_asset("ntropy_default"): [_event()]}) == 0


@pytest.mark.parametrize("bad_id", ["../../../../tmp/x", "a/b", "..", "a b"])
def test_results_dag_refuses_a_bad_batch_id_before_building_a_path(dags, bad_id):
    # An asset event written by other means than the receiver (e.g. the REST API) is not validated.
    dag = dags["ntropy_webhook_results"]
    triggering = {batches_asset("ntropy_default"): [_event(), _event(batch_id=bad_id)]}
    with pytest.raises(AirflowFailException, match="batch_id"):
        dag.get_task("completed_batches").python_callable(triggering_asset_events=triggering)


def test_catchup_dag_runs_the_catchup_on_a_schedule_one_run_at_a_time(dags):
    from ntropy_provider.operators.webhook_catchup import WebhookCatchUpOperator

    dag = dags["ntropy_webhook_catchup"]
    [task] = dag.tasks
    assert isinstance(task, WebhookCatchUpOperator)
    assert task.ntropy_conn_id == "ntropy_default"
    assert (dag.catchup, dag.max_active_runs) == (False, 1)
    assert "What to change" in dag.doc_md and "watermark" in dag.doc_md
