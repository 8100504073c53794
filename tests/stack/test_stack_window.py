"""The rolling window on a real Airflow: days sharing one key at its limits, and deaths between windows.

``ntropy_backfill`` submits each day through its rolling window (2 batches per day, 5 days at once: the
key's 10). The stack's key refills credits at 20,000/s on both sides (conftest), so 100,000-row days take
seconds of credits. Each test lands its own days, so the emulator's counters before and after a run say
exactly what that run sent; tests run in file order on the one session stack.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from airflow_stack import AirflowStack, EmulatorProcess, StackError, wait_until

from ntropy_provider import sample_data
from ntropy_provider.api.wire import MAX_BATCH_SIZE

#: Longer than pytest's 300 s per test: the first test of a session also starts the stack.
pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

BACKFILL = "ntropy_backfill"
ROWS = 100_000
SEED = 33
#: The emulator's speed outside these tests (stack_config.EMULATOR_ARGS).
NORMAL_SPEED = {"items_per_second": 2000}
#: Enrichment time-scaled like the credits (20x): used where the test has nothing left to observe.
FAST = {"items_per_second": 20_000}


@dataclass
class Outcome:
    """One backfill run and what the emulator saw during it."""

    run_id: str
    days: list[dt.date]
    state: str
    tasks: dict[str, dict[str, Any]]
    created: int
    submitted: int


class Backfill:
    """Lands days and runs ``ntropy_backfill`` over them on the stack."""

    def __init__(self, stack: AirflowStack, emulator: EmulatorProcess, root: Path) -> None:
        self.stack = stack
        self.emulator = emulator
        self.root = root

    def run(self, name: str, first: dt.date, days: int, during: Callable[[str, dict], None] | None = None):
        """Land ``days`` days from ``first`` under ``name``, run the backfill over them, call
        ``during(run_id, stats_before)`` while it runs, and wait for it to end."""
        last = first + dt.timedelta(days=days - 1)
        landing, output = self.root / name / "landing", self.root / name / "enriched"
        sample_data.write_landing(landing, first, last, rows_per_day=ROWS, seed=SEED)
        before = self.emulator.stats()
        conf = {"start_date": first.isoformat(), "end_date": last.isoformat()}
        conf |= {"landing_path": str(landing), "output_path": str(output)}
        run_id = self.stack.trigger(BACKFILL, None, conf=conf)
        if during is not None:
            during(run_id, before)
        state = self.stack.wait_for_run(BACKFILL, run_id, timeout=420)
        after = self.emulator.stats()
        return Outcome(
            run_id,
            [first + dt.timedelta(days=n) for n in range(days)],
            state,
            self.stack.task_instances(BACKFILL, run_id),
            after["batches_created"] - before["batches_created"],
            after["transactions_submitted"] - before["transactions_submitted"],
        )

    def assert_complete(self, outcome: Outcome, name: str) -> None:
        """Success; every landed row written ok, errored or rejected; each valid row sent exactly once,
        in exactly one batch per chunk (no duplicate batch)."""
        described = self.stack.describe(BACKFILL, outcome.run_id)
        assert outcome.state == "success", f"{described}\n{self.stack.logs()}"
        valid_total, chunks = 0, 0
        for day in outcome.days:
            out = self.root / name / "enriched" / f"date={day}"
            valid = sum(pq.read_metadata(out / part / "part-0.parquet").num_rows for part in ("ok", "errors"))
            rejected = len((out / "rejects.jsonl").read_text().splitlines())
            assert valid + rejected == ROWS, f"{day}: {valid} written + {rejected} rejected != {ROWS} landed"
            valid_total += valid
            chunks += math.ceil(valid / MAX_BATCH_SIZE)
        assert (outcome.created, outcome.submitted) == (chunks, valid_total), (
            f"a chunk was submitted twice or not at all: {outcome.created} batches for {chunks} chunks, "
            f"{outcome.submitted} rows sent for {valid_total} valid"
        )


@pytest.fixture(scope="module")
def backfill(
    airflow_stack: AirflowStack, stack_emulator: EmulatorProcess, stack_data_root: Path
) -> Iterator[Backfill]:
    """The backfill DAG parsed and unpaused (paused again after the module)."""
    airflow_stack.wait_for_dag(BACKFILL)
    airflow_stack.set_paused(BACKFILL, False)
    yield Backfill(airflow_stack, stack_emulator, stack_data_root / "window")
    with contextlib.suppress(StackError):
        airflow_stack.set_paused(BACKFILL, True)
    stack_emulator.configure(**NORMAL_SPEED)


def _submit_of_day_0(stack: AirflowStack, run_id: str) -> dict[str, Any]:
    return stack.task_instances(BACKFILL, run_id)["submit_and_wait[0]"]


def test_five_days_sharing_the_key_all_succeed_first_try(backfill: Backfill, stack_emulator: EmulatorProcess):
    # Enrichment time-scaled like the credits: the credit bucket, shared by the five days, binds.
    stack_emulator.configure(**FAST)
    try:
        outcome = backfill.run("shared", dt.date(2022, 1, 1), days=5)
    finally:
        stack_emulator.configure(**NORMAL_SPEED)
    backfill.assert_complete(outcome, "shared")
    tries = {key: ti["try_number"] for key, ti in outcome.tasks.items() if key.startswith("submit_and_wait[")}
    assert tries == {f"submit_and_wait[{i}]": 1 for i in range(5)}, "every day succeeded on its first try"


def test_worker_killed_right_after_a_post_of_a_middle_window(
    backfill: Backfill, airflow_stack: AirflowStack, stack_emulator: EmulatorProcess
):
    # A day of 4 chunks in windows of 2: chunks 0 and 1, then 2 when a slot frees (the middle window),
    # then 3. The POST of chunk 2 is stored and counted, its answer held: the task dies without its id.
    def kill_after_the_third_post(run_id: str, before: dict[str, Any]) -> None:
        def created() -> int:
            return stack_emulator.stats()["batches_created"] - before["batches_created"]

        wait_until(lambda: created() >= 2, timeout=240, what="the first window's two batches")
        stack_emulator.configure(create_batch_delay_ms=120_000)
        try:
            wait_until(lambda: created() >= 3, timeout=120, what="the POST of the middle window")
            ti = _submit_of_day_0(airflow_stack, run_id)
            process = wait_until(
                lambda: airflow_stack.task_process(ti["id"]), timeout=30, what="the submit task's process"
            )
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            # The retry identifies chunk 2's batch once it ended: no need to wait at the normal speed.
            stack_emulator.configure(create_batch_delay_ms=0, **FAST)

    try:
        outcome = backfill.run("worker_killed", dt.date(2022, 2, 1), days=1, during=kill_after_the_third_post)
    finally:
        stack_emulator.configure(**NORMAL_SPEED)
    backfill.assert_complete(outcome, "worker_killed")
    assert outcome.tasks["submit_and_wait[0]"]["try_number"] == 2, (
        "the killed try failed and the task retried"
    )


def test_triggerer_killed_while_the_submission_is_deferred_between_windows(
    backfill: Backfill, airflow_stack: AirflowStack, stack_emulator: EmulatorProcess
):
    # Slow batches: the first window's slots free only after minutes, so the task defers between windows.
    stack_emulator.configure(items_per_second=200)

    def kill_the_triggerer_while_deferred(run_id: str, before: dict[str, Any]) -> None:
        def deferred_between_windows() -> bool:
            sent = stack_emulator.stats()["batches_created"] - before["batches_created"]
            return sent == 2 and _submit_of_day_0(airflow_stack, run_id)["state"] == "deferred"

        try:
            wait_until(deferred_between_windows, timeout=240, what="the submission to defer after a window")
            airflow_stack.kill_component("triggerer", signal.SIGKILL)
        finally:
            # The window's batches end while no triggerer runs: the restarted one must see it and fire.
            stack_emulator.configure(**FAST)
        airflow_stack.restart_component("triggerer")

    try:
        outcome = backfill.run(
            "triggerer_killed", dt.date(2022, 3, 1), days=1, during=kill_the_triggerer_while_deferred
        )
    finally:
        stack_emulator.configure(**NORMAL_SPEED)
    backfill.assert_complete(outcome, "triggerer_killed")
    # The submission resumed from its deferral in the new triggerer: it was never failed and retried.
    assert outcome.tasks["submit_and_wait[0]"]["try_number"] == 1
    assert airflow_stack.components["triggerer"].alive()
