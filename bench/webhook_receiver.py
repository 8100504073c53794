"""Latency and throughput of the webhook receiver, against the bare round trip of the same server.

The receiver runs on its own (``python -m ntropy_provider.webhooks``, uvicorn, one process) on a fresh
SQLite Airflow database in a temporary ``AIRFLOW_HOME``, with a DAG scheduled on the batches asset so
that every recorded event also queues a run (one per batch), as in production. The baseline, measured
in the same run on the same server, is ``GET /ntropy/health`` (HTTP round trip, no token, no
database). Figures: sequential latency of a recorded delivery, of a duplicate, of a refused one, then
a flood of concurrent deliveries (throughput and tail latency). The budget is 1 s per delivery
(Ntropy gives up after 10 s).

Run: ``python -m bench.webhook_receiver`` (``--flood N --concurrency C``).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CONN_ID = "ntropy_default"
TOKEN = secrets.token_urlsafe(32)


def _prepare_airflow_home() -> dict[str, str]:
    """A fresh Airflow home with its SQLite DB and a consumer DAG; the environment that points at it."""
    home = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        f"AIRFLOW_CONN_{CONN_ID.upper()}": json.dumps(
            {"conn_type": "ntropy", "password": "unused", "extra": {"webhook_token": TOKEN}}
        ),
    }
    os.environ.update(env)
    (home / "dags").mkdir()
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.dag import DagModel
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, PartitionedAssetTimetable
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.db import resetdb
    from airflow.utils.session import create_session
    from sqlalchemy import update

    from ntropy_provider.webhooks.assets import batches_asset

    resetdb(skip_init=False)
    # Like ntropy_webhook_results: one run per batch, so every delivery also queues a partitioned run.
    schedule = PartitionedAssetTimetable(assets=batches_asset(CONN_ID))
    with DAG("bench_consumer", schedule=schedule, start_date=dt.datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="noop")
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "bench_consumer").values(is_paused=False))
    return env


def _start_receiver(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ntropy_provider.webhooks", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/ntropy"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=1).raise_for_status()
            return process, url
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start") from None
            time.sleep(0.1)


def _event() -> bytes:
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    batch = {
        "id": str(uuid.uuid4()),
        "operation": "POST /v3/transactions",
        "status": "completed",
        "priority": "default",
        "created_at": now,
        "updated_at": now,
        "progress": 100,
        "total": 100,
    }
    event = {"event_id": str(uuid.uuid4()), "event_type": "batches.completed", "data": batch}
    return json.dumps(event).encode()


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _timed(client, method: str, url: str, expect: str | None = None, **kwargs) -> float:
    start = time.perf_counter()
    response = client.request(method, url, **kwargs)
    elapsed = time.perf_counter() - start
    if expect is not None:
        assert response.json().get("status") == expect, response.text
    return elapsed


async def _flood(url: str, count: int, concurrency: int) -> tuple[float, list[float], dict[str, int]]:
    import httpx

    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def deliver(body: bytes) -> None:
            async with gate:
                start = time.perf_counter()
                response = await client.post(url, content=body, headers={"X-Ntropy-Token": TOKEN})
                latencies.append(time.perf_counter() - start)
                status = response.json().get("status", str(response.status_code))
                outcomes[status] = outcomes.get(status, 0) + 1

        bodies = [_event() for _ in range(count)]
        start = time.perf_counter()
        await asyncio.gather(*(deliver(body) for body in bodies))
        return time.perf_counter() - start, latencies, outcomes


def main(argv: list[str] | None = None) -> None:
    """Measure and print.

    :param argv: command line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="sequential requests per kind")
    parser.add_argument("--flood", type=int, default=1000, help="deliveries in the concurrent flood")
    parser.add_argument("--concurrency", type=int, default=32, help="deliveries in flight during the flood")
    args = parser.parse_args(argv)

    import httpx

    env = _prepare_airflow_home()
    process, url = _start_receiver(env)
    webhook = f"{url}/webhooks/{CONN_ID}"
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(20):  # warm up: imports, token cache, DB connections
                _timed(client, "POST", webhook, content=_event(), headers={"X-Ntropy-Token": TOKEN})
            health = [_timed(client, "GET", f"{url}/health") for _ in range(args.samples)]
            recorded, duplicate, refused = [], [], []
            for _ in range(args.samples):
                body = _event()
                headers = {"X-Ntropy-Token": TOKEN}
                recorded.append(_timed(client, "POST", webhook, "recorded", content=body, headers=headers))
                duplicate.append(_timed(client, "POST", webhook, "duplicate", content=body, headers=headers))
                refused.append(_timed(client, "POST", webhook, content=body, headers={"X-Ntropy-Token": "x"}))
        elapsed, flood, outcomes = asyncio.run(_flood(webhook, args.flood, args.concurrency))
    finally:
        process.terminate()
        process.wait(10)

    base = statistics.median(health)
    print("webhook receiver (stand-alone uvicorn, 1 process, SQLite metadata DB, consumer DAG unpaused)")
    print(f"  baseline: GET /health round trip      p50 {base * 1000:7.2f} ms")
    for name, samples in (
        ("recorded delivery", recorded),
        ("duplicate delivery", duplicate),
        ("refused (401)", refused),
    ):
        p50, p99 = statistics.median(samples), _percentile(samples, 0.99)
        print(
            f"  {name:34} p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
            f"  max {max(samples) * 1000:7.2f} ms  ({p50 / base:5.1f} x baseline)"
        )
    p99 = _percentile(flood, 0.99)
    print(
        f"  flood of {args.flood} at concurrency {args.concurrency}: "
        f"{args.flood / elapsed:.0f} deliveries/s, p50 {statistics.median(flood) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(flood) * 1000:.1f} ms, outcomes {outcomes}"
    )
    print(f"  p99 of the flood against the 1 s budget: {p99:.3f} s ({p99 / 1.0:.1%} of it)")


if __name__ == "__main__":
    main()
