"""``python -m ntropy_provider.webhooks``: the receiver on its own, in its own process, reading its
connection from Airflow's metadata database (as the API server does), recording into the same DB."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid

import httpx
import orjson
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def db_connection(airflow_db):
    """A connection stored in the metadata DB (not in the environment), with a webhook token."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    conn_id = f"ntropy_db_{uuid.uuid4().hex[:8]}"
    token = uuid.uuid4().hex * 2
    with create_session() as session:
        session.add(
            Connection(conn_id=conn_id, conn_type="ntropy", extra=json.dumps({"webhook_token": token}))
        )
    yield conn_id, token
    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()


def test_standalone_receiver_reads_the_metastore_and_records(db_connection, kit):
    conn_id, token = db_connection
    kit.register_consumer_dag(conn_id, f"consumer_{conn_id}")
    port = _free_port()
    env = {**os.environ, "AIRFLOW__NTROPY_WEBHOOKS__CONN_ID": conn_id}
    env.pop("_AIRFLOW_PROCESS_CONTEXT", None)  # the stand-alone entry point must set it by itself
    process = subprocess.Popen(
        [sys.executable, "-m", "ntropy_provider.webhooks", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}/ntropy"
    try:

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"the receiver exited: {process.stderr.read().decode()[-2000:]}")
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        kit.wait_for(up, 60, "the stand-alone receiver to answer")
        body = kit.batch_event()
        refused = httpx.post(f"{base}/webhooks", content=orjson.dumps(body), headers={"X-Ntropy-Token": "no"})
        accepted = httpx.post(
            f"{base}/webhooks", content=orjson.dumps(body), headers={"X-Ntropy-Token": token}
        )
        replayed = httpx.post(
            f"{base}/webhooks", content=orjson.dumps(body), headers={"X-Ntropy-Token": token}
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    assert refused.status_code == 401
    assert accepted.json()["status"] == "recorded", accepted.text
    assert replayed.json()["status"] == "duplicate"
    assert [e["event_id"] for e in kit.asset_events(conn_id)] == [body["event_id"]]
