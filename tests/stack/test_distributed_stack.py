"""The provider on Airflow's distributed setup: CeleryExecutor workers, two schedulers, two triggerers.

One :class:`~distributed_stack.DistributedStack` for the whole module (starting it is the slow part), the
scenarios in file order. Each one ends with the emulator having counted exactly the batches the run
needed, and every landed row written as ok, errored or rejected; each kill scenario fails if a batch is
submitted twice, a row is lost or the run does not end. A run summary (executor, how many workers,
schedulers and triggerers, which worker ran which task) goes to the terminal summary and to
``logs/run-summary.txt`` of the stack's directory.

Skipped, with the reason, without Redis on 127.0.0.1:6379 or PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest
import requests
from airflow_stack import Database, EmulatorProcess, StackError, wait_until
from distributed_stack import DistributedStack, distributed_prerequisites, prepare_dags_folder
from test_stack_nightly import NIGHTLY, ROWS, SEED, Nightly

from ntropy_provider import sample_data
from ntropy_provider.api.transaction_input import validate_transaction
from ntropy_provider.sample_data import account_holders, write_landing
from ntropy_provider.webhooks.assets import batches_asset_uri

pytestmark = [pytest.mark.stack, pytest.mark.distributed, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "distributed-stack-key"
CONNECTION_EXTRA = {"backoff_base": 0.2, "backoff_max": 2.0, "max_attempts": 12}
BACKFILL = "ntropy_backfill"
ROLLING = "ntropy_stack_rolling_window"
SUBMIT_DAG = "ntropy_submit_only"
RESULTS_DAG = "ntropy_webhook_results"
FAST = {"items_per_second": 2000, "create_batch_delay_ms": 0}


def _valid(day: dt.date, rows: int, seed: int) -> int:
    return sum(
        1 for r in sample_data.transactions_for_date(day, rows, seed=seed) if not validate_transaction(r)
    )


def _accounted(out: Path, valid: int, rows: int) -> None:
    """ok + errored = the valid rows, and the rejects are the rest, in one output folder."""
    ok = pq.read_metadata(out / "ok" / "part-0.parquet").num_rows
    errors = pq.read_metadata(out / "errors" / "part-0.parquet").num_rows
    rejects = len((out / "rejects.jsonl").read_text().splitlines())
    assert (ok + errors, rejects) == (valid, rows - valid), (
        f"{out}: {ok} ok + {errors} errored, {rejects} rejected"
    )


class Summary:
    """Which worker ran which task, per scenario; written to the terminal summary and a file."""

    def __init__(self, lines: list[str], path: Path):
        self.lines = lines
        self.path = path

    def add(self, line: str) -> None:
        self.lines.append(f"distributed: {line}")
        with self.path.open("a") as out:
            out.write(line + "\n")

    def placement(self, scenario: str, stack: DistributedStack, dag_id: str, run_id: str) -> dict[str, str]:
        workers = stack.worker_of(dag_id, run_id)
        where = ", ".join(f"{task}@{host}" for task, host in sorted(workers.items()))
        self.add(f"[{scenario}] {dag_id}/{run_id}: {where}")
        return workers


@pytest.fixture(scope="module")
def dist_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("distributed-stack")


@pytest.fixture(scope="module")
def dist_emulator(dist_workdir: Path) -> Iterator[EmulatorProcess]:
    """An emulator of this module's own: counters and webhooks are not shared with the other stack."""
    emulator = EmulatorProcess(dist_workdir, API_KEY)
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def data_root(dist_workdir: Path) -> Path:
    root = dist_workdir / "data"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def dist(
    dist_workdir: Path, dist_emulator: EmulatorProcess, data_root: Path, stack_summary: list[str]
) -> Iterator[DistributedStack]:
    """The distributed stack, every component healthy and both workers consuming the queue."""
    reason = distributed_prerequisites()
    if reason:
        pytest.skip(f"distributed stack not started: {reason}")
    database = Database.create(dist_workdir)
    if database.kind != "postgresql":
        pytest.skip(f"distributed stack not started: no usable PostgreSQL ({database.why})")
    stack = DistributedStack(
        dist_workdir,
        prepare_dags_folder(dist_workdir / "dags", REPO_ROOT / "dags"),
        database,
        connection_json=dist_emulator.connection_json(CONNECTION_EXTRA),
        data_root=data_root,
    )
    try:
        stack.start()
        stack_summary.append(f"distributed: {stack.summary()}; healthy after {stack.startup_seconds:.1f}s")
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def summary(dist: DistributedStack, dist_workdir: Path, stack_summary: list[str]) -> Summary:
    path = dist_workdir / "logs" / "run-summary.txt"
    path.write_text(dist.summary() + "\n")
    return Summary(stack_summary, path)


@pytest.fixture(scope="module")
def nightly(dist: DistributedStack, dist_emulator: EmulatorProcess, data_root: Path) -> Iterator[Nightly]:
    """The nightly DAG parsed (still paused: the first scenario unpauses it)."""
    dist.wait_for_dag(NIGHTLY)
    yield Nightly(dist, dist_emulator, data_root)
    with contextlib.suppress(StackError):
        dist.set_paused(NIGHTLY, True)


@pytest.fixture
def restore_emulator(dist_emulator: EmulatorProcess) -> Iterator[None]:
    """Whatever a scenario slows down in the emulator is set back after it."""
    yield
    dist_emulator.configure(**FAST)


def _other(names: list[str], name: str) -> str:
    [other] = [n for n in names if n != name]
    return other


def _wait_hostname(stack: DistributedStack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    """The running task instance, once it has reported the worker it runs on."""
    stack.wait_for_task_state(dag_id, run_id, task_id, {"running"}, timeout=240)
    return wait_until(
        lambda: (ti := stack.task_instances(dag_id, run_id)[task_id]).get("hostname") and ti,
        timeout=60,
        what=f"{task_id} to report its worker",
    )


# ------------------------------------------------------------------------------------------ scenarios
def test_nightly_and_backfill_spread_over_both_workers(
    dist: DistributedStack,
    dist_emulator: EmulatorProcess,
    nightly: Nightly,
    data_root: Path,
    summary,
    restore_emulator,
):
    # Every POST holds its task 3 s: four days submitted at once need more slots than one worker has.
    dist_emulator.configure(create_batch_delay_ms=3000)
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    nightly.land(yesterday)
    first, days, rows, seed = dt.date(2023, 6, 1), 4, 150, 21
    landing, output = data_root / "backfill_landing", data_root / "backfill_enriched"
    last = first + dt.timedelta(days=days - 1)
    sample_data.write_landing(landing, first, last, rows_per_day=rows, seed=seed)
    dist.wait_for_dag(BACKFILL)
    before = dist_emulator.stats()

    dist.set_paused(NIGHTLY, False)  # creates the scheduled run of the day that just ended
    dist.set_paused(BACKFILL, False)
    backfill_run = dist.trigger(
        BACKFILL,
        None,
        conf={
            "start_date": first.isoformat(),
            "end_date": last.isoformat(),
            "landing_path": str(landing),
            "output_path": str(output),
        },
    )
    [scheduled] = wait_until(
        lambda: dist.dag_runs(NIGHTLY, run_type="scheduled"), timeout=120, what="the scheduled nightly run"
    )
    try:
        assert dist.wait_for_run(BACKFILL, backfill_run, timeout=480) == "success", dist.describe(
            BACKFILL, backfill_run
        )
    finally:
        dist.set_paused(BACKFILL, True)
    nightly_run = scheduled["dag_run_id"]
    assert dist.wait_for_run(NIGHTLY, nightly_run, timeout=300) == "success", dist.describe(
        NIGHTLY, nightly_run
    )
    after = dist_emulator.stats()

    valid = _valid(yesterday, ROWS, SEED)
    _accounted(data_root / "enriched" / f"date={yesterday}", valid, ROWS)
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        day_valid = _valid(day, rows, seed)
        valid += day_valid
        _accounted(output / f"date={day}", day_valid, rows)
    assert after["batches_created"] - before["batches_created"] == 1 + days
    assert after["transactions_submitted"] - before["transactions_submitted"] == valid

    hosts = set(summary.placement("spread", dist, NIGHTLY, nightly_run).values())
    hosts |= set(summary.placement("spread", dist, BACKFILL, backfill_run).values())
    assert hosts == set(dist.workers), f"tasks ran on {hosts}, not on every worker of {dist.workers}"


def test_worker_killed_right_after_the_post_the_retry_reattaches_on_the_other_worker(
    dist: DistributedStack, nightly: Nightly, summary, restore_emulator
):
    # The emulator stores and counts the batch, then holds the answer: the worker dies without the id.
    nightly.emulator.configure(create_batch_delay_ms=120_000)
    killed: list[str] = []

    def kill_submitting_worker(run_id: str) -> None:
        created = nightly.emulator.stats()["batches_created"]
        try:
            submit = _wait_hostname(dist, NIGHTLY, run_id, "submit")
            wait_until(
                lambda: nightly.emulator.stats()["batches_created"] > created,
                timeout=120,
                what="the emulator to accept the POST",
            )
            killed.append(submit["hostname"])
            dist.kill_component(submit["hostname"], signal.SIGKILL)
        finally:
            nightly.emulator.configure(create_batch_delay_ms=0)

    try:
        outcome = nightly.run(during=kill_submitting_worker, timeout=420)
    finally:
        if killed:
            dist.restart_worker(killed[0])
    nightly.assert_complete(outcome)
    workers = summary.placement("worker killed after POST", dist, NIGHTLY, outcome.run_id)
    assert outcome.tasks["submit"]["try_number"] == 2, "the killed try failed and the task retried"
    assert workers["submit"] == _other(dist.workers, killed[0]), "the retry ran on the surviving worker"


def test_triggerer_holding_the_trigger_killed_the_other_takes_over(
    dist: DistributedStack, nightly: Nightly, summary, restore_emulator
):
    nightly.emulator.configure(items_per_second=5)  # ~40 s of processing: the sensor stays deferred
    seen: dict[str, str] = {}

    def kill_holder(run_id: str) -> None:
        dist.wait_for_task_state(NIGHTLY, run_id, "wait", {"deferred"}, timeout=240)
        holder = wait_until(
            lambda: dist.trigger_holders(NIGHTLY, run_id).get("wait"),
            timeout=60,
            what="a triggerer to pick up the sensor's trigger",
        )
        seen["killed"] = holder
        dist.kill_component(holder, signal.SIGKILL)
        survivor = _other(dist.triggerers, holder)
        # The survivor adopts the dead triggerer's trigger once that one's heartbeat is stale.
        with contextlib.suppress(StackError):  # the batch may end (and the trigger go) before a poll sees it
            seen["taken_over_by"] = wait_until(
                lambda: dist.trigger_holders(NIGHTLY, run_id).get("wait") == survivor and survivor,
                timeout=60,
                what=f"{survivor} to take over the trigger",
            )

    try:
        outcome = nightly.run(during=kill_holder, timeout=420)
    finally:
        if "killed" in seen:
            dist.start_component(seen["killed"])
    nightly.assert_complete(outcome)
    summary.placement("triggerer killed", dist, NIGHTLY, outcome.run_id)
    summary.add(
        f"[triggerer killed] {seen.get('killed')} held the trigger; taken over by {seen.get('taken_over_by')}"
    )
    # The sensor resumed from its deferral in the surviving triggerer: never failed, never timed out.
    assert outcome.tasks["wait"]["try_number"] == 1 and outcome.tasks["wait"]["state"] == "success"
    assert seen.get("taken_over_by") == _other(dist.triggerers, seen["killed"])


def test_scheduler_killed_mid_run(dist: DistributedStack, nightly: Nightly, summary, restore_emulator):
    nightly.emulator.configure(create_batch_delay_ms=5000)  # submit runs for a while under one scheduler
    seen: dict[str, str] = {}

    def kill_scheduler(run_id: str) -> None:
        submit = _wait_hostname(dist, NIGHTLY, run_id, "submit")
        scheduler = wait_until(lambda: dist.queued_by(submit["id"]), timeout=30, what="submit's scheduler")
        seen["killed"] = scheduler
        dist.kill_component(scheduler, signal.SIGKILL)
        nightly.emulator.configure(create_batch_delay_ms=0)

    try:
        outcome = nightly.run(during=kill_scheduler, timeout=420)
    finally:
        if "killed" in seen:
            dist.start_component(seen["killed"])
    nightly.assert_complete(outcome)
    summary.placement("scheduler killed", dist, NIGHTLY, outcome.run_id)
    survivor = _other(dist.schedulers, seen["killed"])
    last = outcome.tasks["publish"]
    assert dist.queued_by(last["id"]) == survivor, "the surviving scheduler finished the run"
    summary.add(
        f"[scheduler killed] {seen['killed']} queued submit and was killed; {survivor} finished the run"
    )


def test_worker_killed_between_rolling_windows(
    dist: DistributedStack, dist_emulator: EmulatorProcess, data_root: Path, summary, restore_emulator
):
    day, rows, seed = dt.date(2024, 4, 2), 200, 5
    landing, output = data_root / "rolling_landing", data_root / "rolling_enriched"
    write_landing(landing, day, rows_per_day=rows, seed=seed)
    [items] = list((landing / f"date={day}").glob("transactions.*"))
    dist.wait_for_dag(ROLLING)
    dist.set_paused(ROLLING, False)
    dist_emulator.configure(items_per_second=10)  # a 40-row batch takes ~4 s: the window waits for it
    before = dist_emulator.stats()
    run_id = dist.trigger(ROLLING, None, conf={"items_path": str(items), "output_path": str(output)})
    killed = None
    try:
        first_window = _wait_hostname(dist, ROLLING, run_id, "submit")
        dist.wait_for_task_state(ROLLING, run_id, "submit", {"deferred"}, timeout=240)
        killed = first_window["hostname"]
        dist.kill_component(killed, signal.SIGKILL)
        state = dist.wait_for_run(ROLLING, run_id, timeout=420)
    finally:
        dist.set_paused(ROLLING, True)
        if killed:
            dist.restart_worker(killed)
    assert state == "success", dist.describe(ROLLING, run_id)
    after = dist_emulator.stats()
    valid = _valid(day, rows, seed)
    assert after["batches_created"] - before["batches_created"] == math.ceil(valid / 40)
    assert after["transactions_submitted"] - before["transactions_submitted"] == valid
    _accounted(output, valid, rows)
    workers = summary.placement("worker killed between windows", dist, ROLLING, run_id)
    tries = dist.task_instances(ROLLING, run_id)["submit"]["try_number"]
    # Killed between windows, the worker may hold the resumed task's message already: then that try fails
    # and the retry re-attaches from the ledger. Either way no chunk went twice (the counts above).
    summary.add(
        f"[worker killed between windows] {killed} killed; submit ended on {workers['submit']}, try {tries}"
    )
    assert workers["submit"] == _other(dist.workers, killed), "the later windows ran on the other worker"


def _emulator_api(emulator: EmulatorProcess, method: str, path: str, **kwargs: Any) -> Any:
    response = requests.request(
        method, f"{emulator.url}{path}", headers={"X-API-Key": emulator.api_key}, timeout=30, **kwargs
    )
    response.raise_for_status()
    return response.json() if response.content else None


def _results_file(data_root: Path, batch_id: str) -> Path:
    return data_root / "webhook_results" / f"batch_id={batch_id}" / "ok" / "part-0.parquet"


def _rows(prefix: str, count: int) -> list[dict[str, Any]]:
    """Valid transactions sent straight to the emulator (no account holder: nothing to create first)."""
    return [
        {
            "id": f"{prefix}-{i}",
            "description": "AMAZON MKTPLACE",
            "date": "2024-03-06",
            "amount": 12.5,
            "entry_type": "outgoing",
            "currency": "USD",
            "account_holder_id": None,
        }
        for i in range(count)
    ]


def test_webhook_burst_and_replays_over_two_api_server_workers(
    dist: DistributedStack, dist_emulator: EmulatorProcess, data_root: Path, summary
):
    api_workers = psutil.Process(dist.components["api-server"].pid).children(recursive=True)
    assert len(api_workers) >= dist.api_workers, "the API server runs several worker processes"
    dist.wait_for_dag(SUBMIT_DAG)
    dist.wait_for_dag(RESULTS_DAG)
    uri = batches_asset_uri("ntropy_default")
    [asset] = [
        a for a in dist.api("GET", "/api/v2/assets", params={"uri_pattern": uri})["assets"] if a["uri"] == uri
    ]
    landing = data_root / "webhook_landing"
    day = dt.date(2024, 3, 5)
    landed = write_landing(landing, day, rows_per_day=400, fmt="parquet", holders=8)
    for holder in account_holders(count=8):
        with contextlib.suppress(requests.HTTPError):  # already there
            _emulator_api(dist_emulator, "POST", "/v3/account_holders", json=holder)
    dist.set_paused(RESULTS_DAG, False)
    dist.set_paused(SUBMIT_DAG, False)
    # Unpausing creates the scheduled run of the day that just ended (its data landed for the nightly DAG):
    # it submits a batch of its own, so the count starts once it is over.
    [scheduled] = wait_until(
        lambda: dist.dag_runs(SUBMIT_DAG, run_type="scheduled"), timeout=120, what="the scheduled run"
    )
    dist.wait_for_run(SUBMIT_DAG, scheduled["dag_run_id"], timeout=300)
    before = dist_emulator.stats()
    try:
        run_id = dist.trigger(SUBMIT_DAG, f"{day.isoformat()}T00:00:00Z", conf={"landing_path": str(landing)})
        assert dist.wait_for_run(SUBMIT_DAG, run_id, timeout=300) == "success", dist.describe(
            SUBMIT_DAG, run_id
        )
        submitted = dist.api(
            "GET", f"/api/v2/dags/{SUBMIT_DAG}/dagRuns/{run_id}/taskInstances/submit/xcomEntries/return_value"
        )["value"]
        batch_ids = submitted["batch_ids"]
        assert dist_emulator.stats()["batches_created"] - before["batches_created"] == len(batch_ids)

        # The burst: batches nobody has delivered yet (created while the webhook is disabled), each delivered
        # 12 times at once (8 copies of one event id, 4 under new ids) over the API server's workers.
        url = f"{dist.api_url}/ntropy/webhooks/ntropy_default"
        [webhook] = [
            w for w in _emulator_api(dist_emulator, "GET", "/v3/webhooks")["data"] if w["url"] == url
        ]
        for batch_id in batch_ids:  # the pipeline's own deliveries have arrived before the webhook goes off
            wait_until(
                lambda b=batch_id: _results_file(data_root, b).exists(),
                timeout=300,
                what=f"results of {batch_id}",
            )
        _emulator_api(dist_emulator, "PATCH", f"/v3/webhooks/{webhook['id']}", json={"enabled": False})
        try:
            burst_ids = [
                _emulator_api(
                    dist_emulator,
                    "POST",
                    "/v3/batches",
                    json={"operation": "POST /v3/transactions", "data": rows},
                )["id"]
                for rows in (_rows(f"burst{n}", 5) for n in range(3))
            ]
            deliveries = []
            for batch_id in burst_ids:
                batch = wait_until(
                    lambda b=batch_id: (
                        (got := _emulator_api(dist_emulator, "GET", f"/v3/batches/{b}"))["status"]
                        == "completed"
                        and got
                    ),
                    timeout=240,
                    what=f"batch {batch_id} to complete",
                )
                replayed = str(uuid.uuid4())
                for n in range(12):
                    event_id = replayed if n < 8 else str(uuid.uuid4())
                    deliveries.append(
                        {"event_id": event_id, "event_type": "batches.completed", "data": batch}
                    )
            headers = {"X-Ntropy-Token": dist_emulator.webhook_token}
            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(
                    pool.map(lambda d: requests.post(url, json=d, headers=headers, timeout=60), deliveries)
                )
        finally:
            _emulator_api(dist_emulator, "PATCH", f"/v3/webhooks/{webhook['id']}", json={"enabled": True})
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][
            :3
        ]
        outcomes = [a.json()["status"] for a in answers]
        assert outcomes.count("recorded") == len(burst_ids), f"one copy of each event records it: {outcomes}"
        assert outcomes.count("duplicate") == len(deliveries) - len(burst_ids), outcomes

        for batch_id in burst_ids:
            wait_until(
                lambda b=batch_id: _results_file(data_root, b).exists(),
                timeout=300,
                what=f"results of {batch_id}",
            )
        events = dist.api("GET", "/api/v2/assets/events", params={"asset_id": asset["id"], "limit": 1000})
        mine = [e for e in events["asset_events"] if e["extra"]["batch_id"] in batch_ids + burst_ids]
        assert sorted(e["extra"]["batch_id"] for e in mine) == sorted(batch_ids + burst_ids), (
            "each recorded once"
        )
        written = 0
        for event in mine:
            consumers = wait_until(
                lambda e=event: [
                    r["run_id"]
                    for x in dist.api(
                        "GET", "/api/v2/assets/events", params={"asset_id": asset["id"], "limit": 1000}
                    )["asset_events"]
                    if x["id"] == e["id"]
                    for r in x["created_dagruns"]
                    if r["dag_id"] == RESULTS_DAG
                ],
                timeout=120,
                what="the results run of each event",
            )
            assert len(consumers) == 1, consumers
            assert dist.wait_for_run(RESULTS_DAG, consumers[0], timeout=300) == "success"
            summary.placement("webhook pair", dist, RESULTS_DAG, consumers[0])
            folder = data_root / "webhook_results" / f"batch_id={event['extra']['batch_id']}"
            written += sum(pq.read_metadata(folder / d / "part-0.parquet").num_rows for d in ("ok", "errors"))
        assert written == submitted["total"] + 5 * len(burst_ids)
        assert submitted["total"] == landed.rows - landed.invalid_rows
        created = dist_emulator.stats()["batches_created"] - before["batches_created"]
        assert created == len(batch_ids) + len(burst_ids), "no batch was created twice"
        summary.placement("webhook pair", dist, SUBMIT_DAG, run_id)
        summary.add(
            f"[webhook pair] {len(deliveries)} burst deliveries for {len(burst_ids)} batch(es) over "
            f"{dist.api_workers} API server workers: {outcomes.count('recorded')} recorded, "
            f"{outcomes.count('duplicate')} duplicate"
        )
    finally:
        dist.set_paused(SUBMIT_DAG, True)
        dist.set_paused(RESULTS_DAG, True)
