"""Fixtures for the webhook receiver's tests: a real uvicorn server on loopback, in this process,
recording into the test Airflow home's metadata database."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from ntropy_provider.api.wire import WEBHOOK_EVENT_BATCH_COMPLETED
from ntropy_provider.compat import has_partitioned_assets
from ntropy_provider.webhooks.app import create_app
from ntropy_provider.webhooks.assets import batches_asset, batches_asset_uri
from ntropy_provider.webhooks.config import URL_PREFIX, ReceiverConfig
from ntropy_provider.webhooks.server_limits import ServerLimits, uvicorn_config

STARTUP_TIMEOUT_SECONDS = 10.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The receiver needs partitioned assets (Airflow 3.2+); tests/test_compat.py checks the refusal."""
    if has_partitioned_assets():
        return
    skip = pytest.mark.skip(reason="the webhook receiver needs Airflow >= 3.2 (partitioned assets)")
    for item in items:
        if "tests/webhooks/" in str(item.path).replace("\\", "/"):
            item.add_marker(skip)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


class ServerThread:
    """A uvicorn server running ``app`` on a free loopback port in a background thread.

    With ``limits``, configured exactly as the stand-alone receiver is (``uvicorn_config``).
    """

    def __init__(self, app: FastAPI, limits: ServerLimits | None = None, **server: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if limits is None:
            config = uvicorn.Config(app, log_level="warning", lifespan="off", backlog=2048)
        else:
            config = uvicorn_config(app, limits, log_level="warning", lifespan="off", backlog=2048, **server)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="webhook-receiver", daemon=True
        )

    def start(self) -> ServerThread:
        self._thread.start()
        wait_for(lambda: self._server.started, STARTUP_TIMEOUT_SECONDS, "the receiver to start")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@dataclass
class Receiver:
    """A running receiver and what a test needs to talk to it."""

    url: str
    conn_id: str
    token: str
    app: FastAPI

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{URL_PREFIX}/webhooks/{self.conn_id}"

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"X-Ntropy-Token": self.token if token is None else token}


def batch_event(
    event_type: str = WEBHOOK_EVENT_BATCH_COMPLETED,
    *,
    event_id: str | None = None,
    batch_id: str | None = None,
    total: int = 3,
    status: str | None = None,
) -> dict[str, Any]:
    """A delivery body as Ntropy sends it (``shared/ntropy-api.md``, "Webhooks")."""
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": event_type,
        "data": {
            "id": batch_id or str(uuid.uuid4()),
            "operation": "POST /v3/transactions",
            "status": status or ("completed" if event_type.endswith("completed") else "error"),
            "priority": "default",
            "created_at": now,
            "updated_at": now,
            "progress": total,
            "total": total,
        },
    }


def register_consumer_dag(conn_id: str, dag_id: str, *, partitioned: bool = True) -> None:
    """Write an (unpaused) DAG scheduled on ``conn_id``'s batches asset to the metadata DB.

    That is what makes the asset known to Airflow, exactly as deploying ``ntropy_webhook_results`` does.
    ``partitioned``: scheduled with ``PartitionedAssetTimetable`` (one run per batch), as the example is;
    otherwise ``schedule=[asset]``.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, PartitionedAssetTimetable
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    asset = batches_asset(conn_id)
    schedule = PartitionedAssetTimetable(assets=asset) if partitioned else [asset]
    with DAG(dag_id, schedule=schedule, start_date=dt.datetime(2024, 1, 1)) as dag:
        EmptyOperator(task_id="noop")
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "test_dags", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )
    set_paused(dag_id, False)


def set_paused(dag_id: str, paused: bool) -> None:
    """Pause or unpause a DAG, as the UI's toggle does."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=paused))


def asset_events(conn_id: str) -> list[dict[str, Any]]:
    """The ``extra`` of every asset event recorded on ``conn_id``'s batches asset (read from Airflow's DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    uri = batches_asset_uri(conn_id)
    with create_session() as session:
        rows = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.uri == uri)
        ).all()
        return [dict(row.extra) for row in rows]


def queued_runs(dag_id: str) -> list[str]:
    """The asset-triggered runs of ``dag_id`` Airflow has queued, read from its DB (test-only reads).

    Partitioned consumers get one queued run per partition key (listed by key); plain ones one queue
    entry per asset (listed as ``"*"``).
    """
    from airflow.models.asset import AssetDagRunQueue, AssetPartitionDagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        keys = session.scalars(
            select(AssetPartitionDagRun.partition_key).where(
                AssetPartitionDagRun.target_dag_id == dag_id,
                AssetPartitionDagRun.created_dag_run_id.is_(None),
            )
        ).all()
        plain = session.scalars(
            select(AssetDagRunQueue.asset_id).where(AssetDagRunQueue.target_dag_id == dag_id)
        ).all()
        return sorted(keys) + ["*"] * len(plain)


@pytest.fixture
def receiver_factory(airflow_db, monkeypatch) -> Iterator[Callable[..., Receiver]]:
    """Start receivers: each gets its own connection id (so tests never share an asset) and token."""
    servers: list[ServerThread] = []

    def start(
        *,
        register_asset: bool = True,
        config: ReceiverConfig | None = None,
        extra_conn_ids: tuple[str, ...] = (),
        settings: dict[str, Any] | None = None,
        limits: ServerLimits | None = None,
        server: dict[str, Any] | None = None,
        **conn: Any,
    ) -> Receiver:
        conn_id = f"ntropy_wh_{uuid.uuid4().hex[:10]}"
        token = secrets.token_urlsafe(32)
        extra = {"webhook_token": token, **conn.pop("extra", {})}
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "ntropy", "host": "http://127.0.0.1:1", "extra": extra, **conn}),
        )
        settings = settings or {}
        if register_asset:
            partitioned = settings.get("partition_by_batch", True)
            register_consumer_dag(conn_id, f"consumer_{conn_id}", partitioned=partitioned)
        config = config or ReceiverConfig(conn_id=conn_id, extra_conn_ids=extra_conn_ids, **settings)
        app = create_app(config)
        # Mounted where the plugin mounts it on Airflow's API server.
        root = FastAPI()
        root.mount(URL_PREFIX, app)
        thread = ServerThread(root, limits, **(server or {})).start()
        servers.append(thread)
        return Receiver(url=thread.url, conn_id=conn_id, token=token, app=app)

    yield start
    for server in servers:
        server.stop()


class WebhookKit:
    """The helpers above, handed to tests as a fixture (test folders have no ``__init__``)."""

    batch_event = staticmethod(batch_event)
    register_consumer_dag = staticmethod(register_consumer_dag)
    set_paused = staticmethod(set_paused)
    asset_events = staticmethod(asset_events)
    queued_runs = staticmethod(queued_runs)
    wait_for = staticmethod(wait_for)
    ServerThread = ServerThread


@pytest.fixture
def kit() -> type[WebhookKit]:
    """Helpers: build delivery bodies, register consumer DAGs, read recorded asset events."""
    return WebhookKit


@pytest.fixture
def receiver(receiver_factory) -> Receiver:
    """A running receiver whose connection's batches asset is scheduled on by an unpaused DAG."""
    return receiver_factory()
