"""Webhook-driven pipeline on a real Airflow: the receiver mounted in the API server by the plugin, the
emulator delivering as Ntropy does, ``ntropy_submit_only`` -> webhook -> asset event ->
``ntropy_webhook_results`` -> Parquet, with zero status polls; and deliveries while the scheduler is down.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import requests
from airflow_stack import AirflowStack, EmulatorProcess, wait_until

from ntropy_provider.api.wire import BATCH_WEBHOOK_EVENTS
from ntropy_provider.sample_data import account_holders, write_landing
from ntropy_provider.webhooks.assets import batches_asset_uri

pytestmark = pytest.mark.stack

SUBMIT_DAG = "ntropy_submit_only"
RESULTS_DAG = "ntropy_webhook_results"
STATUS_ROUTE = "GET /v3/batches/{batch_id}"
ASSET_URI = batches_asset_uri("ntropy_default")


def _emulator_api(emulator: EmulatorProcess, method: str, path: str, **kwargs: Any) -> Any:
    """Call the emulator's Ntropy API directly (as another client of the same account would)."""
    response = requests.request(
        method, f"{emulator.url}{path}", headers={"X-API-Key": emulator.api_key}, timeout=30, **kwargs
    )
    response.raise_for_status()
    return response.json() if response.content else None


def _webhook_token(emulator: EmulatorProcess) -> str:
    token = getattr(emulator, "webhook_token", None)
    if not token:
        pytest.fail(
            "the stack's ntropy_default connection has no webhook_token extra "
            "(EmulatorProcess.webhook_token / connection_json in tests/stack/airflow_stack.py)"
        )
    return token


def _other_active_runs(stack: AirflowStack) -> list[str]:
    runs = stack.api("GET", "/api/v2/dags/~/dagRuns", params={"state": ["running", "queued"], "limit": 100})
    return [f"{r['dag_id']}/{r['dag_run_id']}" for r in runs["dag_runs"] if r["dag_id"] != RESULTS_DAG]


def _asset_events(stack: AirflowStack, asset_id: int) -> list[dict[str, Any]]:
    body = stack.api("GET", "/api/v2/assets/events", params={"asset_id": asset_id, "limit": 1000})
    return body["asset_events"]


def _results_file(data_root: Path, batch_id: str, dataset: str) -> Path:
    return data_root / "webhook_results" / f"batch_id={batch_id}" / dataset / "part-0.parquet"


@pytest.fixture(scope="module")
def webhook_stack(airflow_stack: AirflowStack, stack_emulator: EmulatorProcess) -> Iterator[dict[str, Any]]:
    """Both DAGs parsed, the results DAG unpaused, the asset's id; undone at the end."""
    _webhook_token(stack_emulator)
    airflow_stack.wait_for_dag(SUBMIT_DAG)
    airflow_stack.wait_for_dag(RESULTS_DAG)
    assets = airflow_stack.api("GET", "/api/v2/assets", params={"uri_pattern": ASSET_URI})["assets"]
    [asset] = [a for a in assets if a["uri"] == ASSET_URI]
    airflow_stack.set_paused(RESULTS_DAG, False)
    try:
        yield {"asset_id": asset["id"]}
    finally:
        airflow_stack.set_paused(RESULTS_DAG, True)
        airflow_stack.set_paused(SUBMIT_DAG, True)
        # Later tests must not feed this DAG: remove the webhooks pointing at this stack's receiver.
        for webhook in _emulator_api(stack_emulator, "GET", "/v3/webhooks")["data"]:
            if webhook["url"].startswith(airflow_stack.api_url):
                _emulator_api(stack_emulator, "DELETE", f"/v3/webhooks/{webhook['id']}")


def test_submit_only_then_webhook_then_results_with_zero_status_polls(
    webhook_stack, airflow_stack: AirflowStack, stack_emulator: EmulatorProcess, stack_data_root: Path
):
    # Nothing else may poll the emulator while we count: earlier tests' runs must be over.
    wait_until(lambda: not _other_active_runs(airflow_stack), timeout=180, what="other DAG runs to end")
    landing = stack_data_root / f"webhook_landing_{uuid.uuid4().hex[:6]}"
    day = dt.date(2024, 3, 5)
    summary = write_landing(landing, day, rows_per_day=400, fmt="parquet", holders=8)
    for holder in account_holders(count=8):
        try:
            _emulator_api(stack_emulator, "POST", "/v3/account_holders", json=holder)
        except requests.HTTPError as err:  # already created by an earlier test: fine
            assert err.response.status_code == 400, err.response.text
    before = stack_emulator.stats()

    airflow_stack.set_paused(SUBMIT_DAG, False)
    run_id = airflow_stack.trigger(
        SUBMIT_DAG, f"{day.isoformat()}T00:00:00Z", conf={"landing_path": str(landing)}
    )
    assert airflow_stack.wait_for_run(SUBMIT_DAG, run_id, timeout=240) == "success", airflow_stack.describe(
        SUBMIT_DAG, run_id
    )
    submitted = airflow_stack.api(
        "GET", f"/api/v2/dags/{SUBMIT_DAG}/dagRuns/{run_id}/taskInstances/submit/xcomEntries/return_value"
    )["value"]
    batch_ids = submitted["batch_ids"]
    assert batch_ids
    assert (submitted["total"], submitted["rejected"]) == (
        summary.rows - summary.invalid_rows,
        summary.invalid_rows,
    )

    # The webhook registered by the DAG delivered to the API server; the results DAG wrote every batch.
    [webhook] = [
        w
        for w in _emulator_api(stack_emulator, "GET", "/v3/webhooks")["data"]
        if w["url"] == f"{airflow_stack.api_url}/ntropy/webhooks/ntropy_default"
    ]
    assert sorted(webhook["events"]) == sorted(BATCH_WEBHOOK_EVENTS)
    for batch_id in batch_ids:
        wait_until(
            lambda b=batch_id: _results_file(stack_data_root, b, "ok").exists(),
            timeout=240,
            interval=1,
            what=f"results of batch {batch_id}",
        )
    written = sum(
        pq.read_metadata(_results_file(stack_data_root, b, d)).num_rows
        for b in batch_ids
        for d in ("ok", "errors")
    )
    assert written == submitted["total"]

    after = stack_emulator.stats()
    status_polls = after["requests"].get(STATUS_ROUTE, 0) - before["requests"].get(STATUS_ROUTE, 0)
    print(f"\n[webhooks] {len(batch_ids)} batch(es), {written} rows written, status polls: {status_polls}")

    # The token never shows: not in the registering task's log, not in any component's output.
    token = _webhook_token(stack_emulator)
    assert token not in airflow_stack.task_log(SUBMIT_DAG, run_id, "ensure_webhook", 1)
    for name, process in airflow_stack.components.items():
        assert token not in process.log_path.read_text(errors="replace"), f"token in {name}'s output"

    # Every event for these batches was recorded once and consumed by exactly one results run.
    events = [
        e
        for e in _asset_events(airflow_stack, webhook_stack["asset_id"])
        if e["extra"]["batch_id"] in batch_ids
    ]
    assert sorted(e["extra"]["batch_id"] for e in events) == sorted(batch_ids)
    for event in events:
        wait_until(lambda e=event: _consumers(airflow_stack, webhook_stack["asset_id"], e["id"]), timeout=60)
        [run_id] = _consumers(airflow_stack, webhook_stack["asset_id"], event["id"])
        run = airflow_stack.api("GET", f"/api/v2/dags/{RESULTS_DAG}/dagRuns/{run_id}")
        assert run["partition_key"] == event["extra"]["batch_id"]
        assert airflow_stack.wait_for_run(RESULTS_DAG, run_id) == "success"

    # Last, the point of it all: nobody asked Ntropy for a batch's status.
    assert status_polls == 0, f"{status_polls} GET /v3/batches/{{batch_id}} during the webhook-driven run"


def _consumers(stack: AirflowStack, asset_id: int, event_id: int) -> list[str]:
    for event in _asset_events(stack, asset_id):
        if event["id"] == event_id:
            return [run["run_id"] for run in event["created_dagruns"] if run["dag_id"] == RESULTS_DAG]
    return []


def test_receiver_keeps_recording_while_the_scheduler_is_down(
    webhook_stack, airflow_stack: AirflowStack, stack_emulator: EmulatorProcess, stack_data_root: Path
):
    token = _webhook_token(stack_emulator)
    url = f"{airflow_stack.api_url}/ntropy/webhooks/ntropy_default"
    existing = [w for w in _emulator_api(stack_emulator, "GET", "/v3/webhooks")["data"] if w["url"] == url]
    if not existing:
        _emulator_api(
            stack_emulator,
            "POST",
            "/v3/webhooks",
            json={"url": url, "events": list(BATCH_WEBHOOK_EVENTS), "token": token},
        )
    rows = [
        {
            "id": f"sd-{i}",
            "description": "AMAZON MKTPLACE",
            "date": "2024-03-06",
            "amount": 12.5,
            "entry_type": "outgoing",
            "currency": "USD",
            "account_holder_id": None,
        }
        for i in range(5)
    ]
    deliveries_before = stack_emulator.stats()["webhook_deliveries"]

    airflow_stack.kill_component("scheduler")
    try:
        batch_ids = [
            _emulator_api(
                stack_emulator,
                "POST",
                "/v3/batches",
                json={"operation": "POST /v3/transactions", "data": rows},
            )["id"]
            for _ in range(3)
        ]
        # Delivered and answered 2xx by the API server alone: recorded, waiting for the scheduler.
        wait_until(
            lambda: (
                stack_emulator.stats()["webhook_deliveries"]["delivered"]
                >= deliveries_before["delivered"] + 3
            ),
            timeout=60,
            what="the three deliveries to be acknowledged",
        )
        recorded = {
            e["extra"]["batch_id"]: e for e in _asset_events(airflow_stack, webhook_stack["asset_id"])
        }
        assert set(batch_ids) <= recorded.keys()
        assert all(not recorded[b]["created_dagruns"] for b in batch_ids)
        # ... at the first attempt: no delivery was refused or timed out while the scheduler was down.
        failed = stack_emulator.stats()["webhook_deliveries"]["failed_attempts"]
        assert failed == deliveries_before["failed_attempts"]
    finally:
        airflow_stack.restart_component("scheduler")
    airflow_stack.wait_healthy()

    for batch_id in batch_ids:
        wait_until(
            lambda b=batch_id: _results_file(stack_data_root, b, "ok").exists(),
            timeout=240,
            interval=1,
            what=f"results of batch {batch_id} after the scheduler came back",
        )
        assert pq.read_metadata(_results_file(stack_data_root, batch_id, "ok")).num_rows == len(rows)
    # Each of the three events went to exactly one run: its batch's own run (partition key = batch id).
    events = [
        e
        for e in _asset_events(airflow_stack, webhook_stack["asset_id"])
        if e["extra"]["batch_id"] in batch_ids
    ]
    assert len(events) == 3
    runs = set()
    for event in events:
        wait_until(lambda e=event: _consumers(airflow_stack, webhook_stack["asset_id"], e["id"]), timeout=60)
        [run_id] = _consumers(airflow_stack, webhook_stack["asset_id"], event["id"])
        run = airflow_stack.api("GET", f"/api/v2/dags/{RESULTS_DAG}/dagRuns/{run_id}")
        assert run["partition_key"] == event["extra"]["batch_id"]
        assert airflow_stack.wait_for_run(RESULTS_DAG, run_id) == "success"
        runs.add(run_id)
    assert len(runs) == 3


CATCHUP_DAG = "ntropy_webhook_catchup"


def test_consumer_paused_past_the_retry_window_then_the_catchup_delivers_every_batch_once(
    webhook_stack, airflow_stack: AirflowStack, stack_emulator: EmulatorProcess, stack_data_root: Path
):
    token = _webhook_token(stack_emulator)
    url = f"{airflow_stack.api_url}/ntropy/webhooks/ntropy_default"
    webhooks = [w for w in _emulator_api(stack_emulator, "GET", "/v3/webhooks")["data"] if w["url"] == url]
    if webhooks:
        [webhook] = webhooks
    else:
        webhook = _emulator_api(
            stack_emulator,
            "POST",
            "/v3/webhooks",
            json={"url": url, "events": list(BATCH_WEBHOOK_EVENTS), "token": token},
        )
    airflow_stack.wait_for_dag(CATCHUP_DAG)
    rows = [
        {
            "id": f"cu-{i}",
            "description": "UBER TRIP",
            "date": "2024-03-07",
            "amount": 7.5,
            "entry_type": "outgoing",
            "currency": "USD",
            "account_holder_id": None,
        }
        for i in range(4)
    ]
    settings = stack_emulator.settings()
    before = stack_emulator.stats()["webhook_deliveries"]
    # The consumer is paused for a while: the receiver answers 503 until Ntropy (here: within a second)
    # gives up on each event, and Ntropy disables the failing webhook.
    airflow_stack.set_paused(RESULTS_DAG, True)
    try:
        stack_emulator.configure(webhook_retry_initial_seconds=0.2, webhook_retry_window_seconds=1.0)
        batch_ids = [
            _emulator_api(
                stack_emulator,
                "POST",
                "/v3/batches",
                json={"operation": "POST /v3/transactions", "data": rows},
            )["id"]
            for _ in range(3)
        ]
        wait_until(
            # Given up: past the retry window, or dropped when the webhook was disabled after failures.
            lambda: _given_up(stack_emulator.stats()) >= _given_up({"webhook_deliveries": before}) + 3,
            timeout=60,
            what="Ntropy to give up on the three deliveries",
        )
        if _emulator_api(stack_emulator, "GET", f"/v3/webhooks/{webhook['id']}")["enabled"]:
            # What Ntropy does after consecutive failures (the emulator may already have done it itself).
            _emulator_api(stack_emulator, "PATCH", f"/v3/webhooks/{webhook['id']}", json={"enabled": False})
    finally:
        stack_emulator.configure(
            webhook_retry_initial_seconds=settings["webhook_retry_initial_seconds"],
            webhook_retry_window_seconds=settings["webhook_retry_window_seconds"],
        )
        airflow_stack.set_paused(RESULTS_DAG, False)
    events = _asset_events(airflow_stack, webhook_stack["asset_id"])
    assert not [e for e in events if e["extra"]["batch_id"] in batch_ids]  # lost, for now

    # Like the webhook, the catch-up records every ended batch of the account that has no event yet: those
    # of the earlier tests' pipelines too (their results runs are not awaited here). Unpausing also starts a
    # scheduled run (15 minutes' grace: it leaves these batches alone); the triggered ones take no grace.
    airflow_stack.set_paused(CATCHUP_DAG, False)
    try:
        run_id = airflow_stack.trigger(CATCHUP_DAG, None, conf={"grace_minutes": 0})
        assert airflow_stack.wait_for_run(CATCHUP_DAG, run_id, timeout=240) == "success", (
            airflow_stack.describe(CATCHUP_DAG, run_id)
        )
        # Again: nothing recorded twice.
        again = airflow_stack.trigger(CATCHUP_DAG, None, conf={"grace_minutes": 0})
        assert airflow_stack.wait_for_run(CATCHUP_DAG, again, timeout=240) == "success"
    finally:
        airflow_stack.set_paused(CATCHUP_DAG, True)
    assert _emulator_api(stack_emulator, "GET", f"/v3/webhooks/{webhook['id']}")["enabled"]

    for batch_id in batch_ids:
        wait_until(
            lambda b=batch_id: _results_file(stack_data_root, b, "ok").exists(),
            timeout=240,
            interval=1,
            what=f"results of batch {batch_id} after the catch-up",
        )
        assert pq.read_metadata(_results_file(stack_data_root, batch_id, "ok")).num_rows == len(rows)
    events = [
        e
        for e in _asset_events(airflow_stack, webhook_stack["asset_id"])
        if e["extra"]["batch_id"] in batch_ids
    ]
    assert sorted(e["extra"]["batch_id"] for e in events) == sorted(batch_ids)
    assert all(e["extra"]["event_id"].startswith("catchup:") for e in events)
    for event in events:
        wait_until(lambda e=event: _consumers(airflow_stack, webhook_stack["asset_id"], e["id"]), timeout=60)
        [results_run] = _consumers(airflow_stack, webhook_stack["asset_id"], event["id"])
        assert airflow_stack.wait_for_run(RESULTS_DAG, results_run) == "success"

    # A late delivery of one of them, after the catch-up's 2xx: a duplicate, nothing recorded.
    late = {"event_id": str(uuid.uuid4()), "event_type": "batches.completed"}
    late["data"] = _emulator_api(stack_emulator, "GET", f"/v3/batches/{batch_ids[0]}")
    answer = requests.post(url, json=late, headers={"X-Ntropy-Token": token}, timeout=30)
    assert answer.json()["status"] == "duplicate", answer.text
    events = [
        e
        for e in _asset_events(airflow_stack, webhook_stack["asset_id"])
        if e["extra"]["batch_id"] in batch_ids
    ]
    assert len(events) == 3


def _given_up(stats: dict) -> int:
    """Events the emulator gave up delivering: abandoned past the retry window or dropped on disabling."""
    deliveries = stats["webhook_deliveries"]
    return deliveries["abandoned"] + deliveries.get("dropped", 0)
