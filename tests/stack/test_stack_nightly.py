"""ntropy_nightly_enrichment on a real Airflow (api-server, scheduler, dag-processor, triggerer): it succeeds,
and it still succeeds without submitting any batch twice when processes die or the API misbehaves.

Every run gets its own landing day, so that the emulator's counters before and after a run say exactly
what that run sent. Tests run in file order on the one session stack.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow_stack import AirflowStack, EmulatorProcess, StackError, wait_until

from ntropy_provider import sample_data
from ntropy_provider.api.transaction_input import validate_transaction

pytestmark = pytest.mark.stack

NIGHTLY = "ntropy_nightly_enrichment"
SUMMARY = "ntropy_spend_summary"
ROWS = 200
SEED = 11
#: Fast enough for quick runs, set back after every fault.
NORMAL_SPEED = {"items_per_second": 2000}


@dataclass
class RunOutcome:
    """One DAG run and what the emulator saw during it."""

    run_id: str
    day: dt.date
    state: str
    tasks: dict[str, dict[str, Any]]
    delta: dict[str, int]
    faults: dict[str, int]
    requests: int


def _valid_rows(day: dt.date) -> int:
    rows = sample_data.transactions_for_date(day, ROWS, seed=SEED)
    return sum(1 for row in rows if not validate_transaction(row))


class Nightly:
    """Runs the nightly DAG for one day at a time on the stack and reports what happened."""

    def __init__(self, stack: AirflowStack, emulator: EmulatorProcess, data_root: Path):
        self.stack = stack
        self.emulator = emulator
        self.data_root = data_root
        self.next_day = dt.date(2024, 3, 1)

    def land(self, day: dt.date) -> None:
        sample_data.write_landing(self.data_root / "landing", day, rows_per_day=ROWS, seed=SEED)

    def run(self, during: Callable[[str], None] | None = None, timeout: float = 300) -> RunOutcome:
        """Land a new day, trigger a run for it, call ``during(run_id)``, and wait for the run to end."""
        day, self.next_day = self.next_day, self.next_day + dt.timedelta(days=1)
        self.land(day)
        before = self.emulator.stats()
        run_id = self.stack.trigger(NIGHTLY, f"{day.isoformat()}T00:00:00Z")
        if during is not None:
            during(run_id)
        state = self.stack.wait_for_run(NIGHTLY, run_id, timeout=timeout)
        after = self.emulator.stats()
        delta = {k: after[k] - before[k] for k in ("batches_created", "transactions_submitted")}
        faults = {k: after["faults"][k] - before["faults"].get(k, 0) for k in after["faults"]}
        requests = sum(after["requests"].values()) - sum(before["requests"].values())
        tasks = self.stack.task_instances(NIGHTLY, run_id)
        return RunOutcome(run_id, day, state, tasks, delta, faults, requests)

    def assert_complete(self, outcome: RunOutcome) -> None:
        """The run succeeded, sent each valid row once in one batch, and wrote every row somewhere."""
        described = self.stack.describe(NIGHTLY, outcome.run_id)
        assert outcome.state == "success", f"{outcome.run_id}: {described}\n{self.stack.logs()}"
        valid = _valid_rows(outcome.day)
        assert outcome.delta == {"batches_created": 1, "transactions_submitted": valid}, (
            f"a batch was submitted twice or not at all: {outcome.delta}"
        )
        out = self.data_root / "enriched" / f"date={outcome.day.isoformat()}"
        ok = pq.read_metadata(out / "ok" / "part-0.parquet").num_rows
        errors = pq.read_metadata(out / "errors" / "part-0.parquet").num_rows
        rejects = len((out / "rejects.jsonl").read_text().splitlines())
        assert ok + errors == valid and rejects == ROWS - valid and errors > 0


@pytest.fixture(scope="module")
def nightly(
    airflow_stack: AirflowStack, stack_emulator: EmulatorProcess, stack_data_root: Path
) -> Iterator[Nightly]:
    """The nightly DAG parsed and unpaused; the scheduled run that unpausing creates has finished."""
    airflow_stack.wait_for_dag(NIGHTLY)
    runner = Nightly(airflow_stack, stack_emulator, stack_data_root)
    # Unpausing creates the scheduled run of the day that just ended: its data must be there.
    runner.land(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1))
    airflow_stack.set_paused(NIGHTLY, False)
    yield runner
    # Leave the shared stack quiet for the next test module.
    for dag_id in (NIGHTLY, SUMMARY):
        with contextlib.suppress(StackError):
            airflow_stack.set_paused(dag_id, True)


def test_scheduled_run_succeeds(nightly: Nightly, airflow_stack: AirflowStack):
    runs = wait_until(
        lambda: airflow_stack.dag_runs(NIGHTLY, run_type="scheduled"),
        timeout=120,
        what="the scheduler to create the scheduled run",
    )
    run = runs[0]
    state = airflow_stack.wait_for_run(NIGHTLY, run["dag_run_id"], timeout=300)
    assert state == "success", airflow_stack.describe(NIGHTLY, run["dag_run_id"])
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    assert run["logical_date"].startswith(yesterday.isoformat()), "the run processes the day that just ended"
    assert (nightly.data_root / "enriched" / f"date={yesterday}" / "ok" / "part-0.parquet").exists()


def test_triggered_run_succeeds_with_parquet_outputs(nightly: Nightly):
    outcome = nightly.run()
    nightly.assert_complete(outcome)
    out = nightly.data_root / "enriched" / f"date={outcome.day.isoformat()}"
    ok = pq.read_table(out / "ok" / "part-0.parquet")
    assert {"transaction_id", "category_general", "counterparty_name", "input_amount"} <= set(ok.column_names)
    rejected = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert all(r["errors"] and r["reason"] and r["data"]["id"] for r in rejected), rejected[:2]
    # Task logs are read from the shared log folder (no component serves them over HTTP).
    assert "accepted as batch" in nightly.stack.task_log(NIGHTLY, outcome.run_id, "submit", 1)


def test_triggerer_killed_while_the_sensor_is_deferred(nightly: Nightly, airflow_stack: AirflowStack):
    nightly.emulator.configure(items_per_second=10)  # ~20 s of processing: the sensor stays deferred

    def kill_triggerer(run_id: str) -> None:
        airflow_stack.wait_for_task_state(NIGHTLY, run_id, "wait", {"deferred"}, timeout=180)
        airflow_stack.kill_component("triggerer", signal.SIGKILL)
        airflow_stack.restart_component("triggerer")

    try:
        outcome = nightly.run(during=kill_triggerer)
    finally:
        nightly.emulator.configure(**NORMAL_SPEED)
    nightly.assert_complete(outcome)
    # The sensor resumed from its deferral in the new triggerer: it was never failed and retried.
    assert outcome.tasks["wait"]["try_number"] == 1
    assert airflow_stack.components["triggerer"].alive()


def test_submitting_task_killed_after_the_post_was_accepted(nightly: Nightly, airflow_stack: AirflowStack):
    # The emulator stores the batch, counts it, then holds the answer: the task dies without the id.
    nightly.emulator.configure(create_batch_delay_ms=120_000)

    def kill_submitter(run_id: str) -> None:
        created = nightly.emulator.stats()["batches_created"]
        try:
            submit = airflow_stack.wait_for_task_state(NIGHTLY, run_id, "submit", {"running"}, timeout=180)
            wait_until(
                lambda: nightly.emulator.stats()["batches_created"] > created,
                timeout=120,
                what="the emulator to accept the POST",
            )
            process = wait_until(
                lambda: airflow_stack.task_process(submit["id"]), timeout=30, what="the submit task's process"
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            nightly.emulator.configure(create_batch_delay_ms=0)

    outcome = nightly.run(during=kill_submitter)
    nightly.assert_complete(outcome)
    assert outcome.tasks["submit"]["try_number"] == 2, "the killed try failed and the task retried"


def test_api_answers_429_and_503_to_half_the_requests(nightly: Nightly):
    nightly.emulator.configure(fail_rate=0.5, fail_status=503, rate_limit=3)
    try:
        outcome = nightly.run()
    finally:
        nightly.emulator.configure(fail_rate=0.0, rate_limit=0)
    nightly.assert_complete(outcome)
    assert outcome.faults["failed"] > 0 and outcome.faults["rate_limited"] > 0, outcome.faults
    faulted = outcome.faults["failed"] + outcome.faults["rate_limited"]
    assert faulted >= 0.3 * outcome.requests, f"{faulted} faults in {outcome.requests} requests"


def test_spend_summary_runs_when_the_nightly_dag_publishes(nightly: Nightly, airflow_stack: AirflowStack):
    summary_dag = SUMMARY
    airflow_stack.wait_for_dag(summary_dag)
    airflow_stack.set_paused(summary_dag, False)

    outcome = nightly.run()
    nightly.assert_complete(outcome)

    report = nightly.data_root / "reports" / f"date={outcome.day.isoformat()}" / "spend_by_category.csv"
    wait_until(report.exists, timeout=180, what=f"the spend report of {outcome.day}")
    runs = airflow_stack.dag_runs(summary_dag, run_type="asset_triggered")
    assert runs, "the summary ran because of the asset event, not a schedule or a trigger"
    states = [airflow_stack.wait_for_run(summary_dag, run["dag_run_id"], timeout=120) for run in runs]
    assert set(states) == {"success"}
