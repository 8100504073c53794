"""Airflow spread over "machines", for tests: CeleryExecutor workers, two schedulers, two triggerers.

:class:`DistributedStack` extends :class:`~airflow_stack.AirflowStack`: the executor is Celery, with this
machine's Redis as the broker and the stack's PostgreSQL database as metadata database and result
backend; it starts ``api-server`` (several worker processes), ``dag-processor``, ``scheduler-1..n``,
``triggerer-1..n`` and ``worker-1..n`` (``airflow celery worker``), each in its own process group with its
own ``AIRFLOW_HOME`` and log folder: nothing is shared but the database, the broker and the files the
DAGs read and write (the "object store"). Every process reports its own name as host name
(``stack_hostname.py``), so that a task instance names the worker that ran it and a trigger the triggerer
that holds it. A queue of its own per test session keeps parallel sessions off each other's tasks.

:func:`distributed_prerequisites` says why the stack cannot run here (no Redis, no PostgreSQL, no Celery
provider), for a clear skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import stack_config
from airflow_stack import LOOPBACK, VENV_BIN, AirflowStack, Database, ManagedProcess, StackError, wait_until

HERE = Path(__file__).resolve().parent
#: DAGs that only the distributed stack runs (beside the repo's ``dags/``).
STACK_DAGS = HERE / "dags"
REDIS_PORT = 6379

#: Faster failure detection for the tests only: a killed worker's task and a killed scheduler's tasks
#: are noticed within seconds instead of Airflow's production defaults (300 s).
DISTRIBUTED_HARNESS_ENV: dict[str, str] = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "stack_hostname.hostname",
    # A loaded test machine (eleven Airflow processes on two shared cores) answers the Execution API slower
    # than the 5 s default: a timed-out call fails the try, which is not what a scenario tests.
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) == 0


def distributed_prerequisites() -> str | None:
    """Why the distributed stack cannot run on this machine, or None when it can.

    It needs Redis on 127.0.0.1:6379 (``NTROPY_STACK_REDIS_URL`` for another broker), PostgreSQL on
    127.0.0.1:5432 and the Celery provider (the ``celery`` part of the ``test`` extra).
    """
    try:
        import airflow.providers.celery  # noqa: F401
        import redis
    except ImportError as err:
        return f"the Celery provider is not installed ({err}): pip install -e '.[test]'"
    if not os.environ.get("NTROPY_STACK_REDIS_URL") and not _port_open(REDIS_PORT):
        return f"no Redis answers at {LOOPBACK}:{REDIS_PORT} (the Celery broker)"
    try:
        redis.Redis.from_url(broker_url(), socket_timeout=3).ping()
    except Exception as err:
        return f"Redis at {broker_url()} does not answer PING ({err})"
    if os.environ.get("NTROPY_STACK_DB", "").lower() == "sqlite" or not _port_open(5432):
        return (
            f"no PostgreSQL at {LOOPBACK}:5432 (CeleryExecutor needs a database that other processes share)"
        )
    return None


def broker_url() -> str:
    """The Celery broker: ``NTROPY_STACK_REDIS_URL``, else Redis on loopback."""
    return os.environ.get("NTROPY_STACK_REDIS_URL", f"redis://{LOOPBACK}:{REDIS_PORT}/0")


def prepare_dags_folder(target: Path, repo_dags: Path) -> Path:
    """The stack's DAGs folder: copies of the repo's example DAGs and of the distributed-only DAGs.

    :param target: the folder to create.
    :param repo_dags: the repo's ``dags/``.
    """
    target.mkdir(parents=True, exist_ok=True)
    for source in (*repo_dags.glob("*.py"), *STACK_DAGS.glob("*.py")):
        shutil.copy2(source, target / source.name)
    return target


class DistributedStack(AirflowStack):
    """Airflow on CeleryExecutor: several workers, schedulers and triggerers, each a separate process.

    :param workdir: an empty directory: one ``AIRFLOW_HOME`` per component under ``homes/``, logs, passwords.
    :param dags_folder: the DAGs folder (see :func:`prepare_dags_folder`).
    :param database: the metadata database; PostgreSQL (it is also the Celery result backend).
    :param connection_json: ``AIRFLOW_CONN_NTROPY_DEFAULT``.
    :param data_root: ``NTROPY_DATA_ROOT``, shared by every component like an object store.
    :param workers: Celery workers to start.
    :param schedulers: schedulers to start.
    :param triggerers: triggerers to start.
    :param api_workers: worker processes of the API server.
    :param worker_concurrency: task slots of each Celery worker.
    :param extra_env: more environment.
    """

    def __init__(
        self,
        workdir: Path,
        dags_folder: Path,
        database: Database,
        *,
        connection_json: str,
        data_root: Path,
        workers: int = 2,
        schedulers: int = 2,
        triggerers: int = 2,
        api_workers: int = 2,
        worker_concurrency: int = 2,
        extra_env: Mapping[str, str] = (),
    ):
        if database.kind != "postgresql":
            raise StackError(f"the distributed stack needs PostgreSQL, not {database.kind} ({database.why})")
        super().__init__(workdir, dags_folder, database, connection_json=connection_json, data_root=data_root)
        #: The Celery queue of this session only: parallel sessions share the broker.
        self.queue = f"ntropy_stack_{os.getpid()}"
        result_backend = f"db+{database.url}"
        self.env.update(DISTRIBUTED_HARNESS_ENV)
        self.env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": broker_url(),
                "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                # stack_hostname.py must be importable by every component.
                "PYTHONPATH": os.pathsep.join(p for p in (str(HERE), self.env.get("PYTHONPATH", "")) if p),
            }
        )
        self.env.update(extra_env)
        self.api_workers = api_workers
        self.worker_concurrency = worker_concurrency
        #: Component name -> its ``airflow`` subcommand.
        self.layout: dict[str, str] = {"api-server": "api-server", "dag-processor": "dag-processor"}
        self.layout.update({f"scheduler-{n}": "scheduler" for n in range(1, schedulers + 1)})
        self.layout.update({f"triggerer-{n}": "triggerer" for n in range(1, triggerers + 1)})
        self.layout.update({f"worker-{n}": "celery worker" for n in range(1, workers + 1)})

    # ---------------------------------------------------------------- processes
    @property
    def workers(self) -> list[str]:
        """Names of the Celery workers."""
        return [name for name, sub in self.layout.items() if sub == "celery worker"]

    @property
    def schedulers(self) -> list[str]:
        """Names of the schedulers."""
        return [name for name, sub in self.layout.items() if sub == "scheduler"]

    @property
    def triggerers(self) -> list[str]:
        """Names of the triggerers."""
        return [name for name, sub in self.layout.items() if sub == "triggerer"]

    def _component_argv(self, name: str) -> list[str]:
        subcommand = self.layout[name]
        airflow = str(VENV_BIN / "airflow")
        if subcommand == "celery worker":
            return [
                airflow,
                "celery",
                "worker",
                "--queues",
                self.queue,
                "--concurrency",
                str(self.worker_concurrency),
                "--celery-hostname",
                f"{name}@{self.queue}",
                # Logs stay on the worker's "machine" and are not served: no fixed port 8793 to fight over.
                "--skip-serve-logs",
                "--without-mingle",
                "--without-gossip",
            ]
        argv = [airflow, subcommand, *stack_config.COMPONENT_ARGS[subcommand]]
        if subcommand == "api-server":
            argv += ["--host", LOOPBACK, "--port", str(self.api_port), "--workers", str(self.api_workers)]
        return argv

    def _component_env(self, name: str) -> dict[str, str]:
        home = self.workdir / "homes" / name
        home.mkdir(parents=True, exist_ok=True)
        return {**self.env, "AIRFLOW_HOME": str(home), "NTROPY_STACK_HOSTNAME": name}

    def start_component(self, subcommand: str) -> ManagedProcess:
        """Start one component by its name (``worker-2``, ``scheduler-1``, ``api-server``...).

        :param subcommand: the component's name in :attr:`layout` (named so to override the base class).
        """
        name = subcommand
        process = ManagedProcess(
            name, self._component_argv(name), self._component_env(name), self.workdir / "logs" / f"{name}.log"
        )
        process.start()
        self.components[name] = process
        return process

    def start(self, timeout: float = 300) -> None:
        """Prepare the database, start every component, and wait until all are healthy and workers ready.

        :param timeout: seconds allowed for the components to become healthy.
        """
        began = time.monotonic()
        self.init_db()
        for name in self.layout:
            self.start_component(name)
        self.wait_healthy(timeout=timeout)
        for name in self.workers:
            self.wait_worker_ready(name, timeout=timeout)
        self.startup_seconds = time.monotonic() - began

    def wait_worker_ready(self, name: str, timeout: float = 180) -> None:
        """Wait until a Celery worker has connected to the broker and consumes the queue.

        :param name: the worker.
        :param timeout: seconds to wait.
        """
        process = self.components[name]

        def ready() -> bool:
            if not process.alive():
                raise StackError(f"{name} exited:\n{process.log_tail()}")
            return process.log_path.exists() and " ready." in process.log_path.read_text(errors="replace")

        wait_until(ready, timeout=timeout, interval=1, what=f"{name} to be ready")

    def restart_worker(self, name: str) -> None:
        """Start a killed worker again and wait until it consumes the queue.

        :param name: the worker.
        """
        log_path = self.components[name].log_path
        # A fresh log, so that "ready." is this start's.
        log_path.rename(log_path.with_suffix(f".{int(time.time())}.log"))
        self.start_component(name)
        self.wait_worker_ready(name)

    # ---------------------------------------------------------------- who holds what
    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the metadata database (what the REST API does not show: trigger and scheduler ownership).

        :param query: a SELECT.
        :param params: its parameters.
        """
        import psycopg2
        from sqlalchemy.engine import make_url

        url = make_url(self.database.url)
        conn = psycopg2.connect(
            host=url.host, port=url.port, user=url.username, password=url.password, dbname=url.database
        )
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    def trigger_holders(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id -> the triggerer that holds the run's deferred task's trigger.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        rows = self.sql(
            "SELECT ti.task_id, ti.map_index, j.hostname FROM task_instance ti "
            "JOIN trigger t ON t.id = ti.trigger_id JOIN job j ON j.id = t.triggerer_id "
            "WHERE ti.dag_id = %s AND ti.run_id = %s",
            dag_id,
            run_id,
        )
        return {(task if index < 0 else f"{task}[{index}]"): host for task, index, host in rows}

    def queued_by(self, ti_id: str) -> str | None:
        """The scheduler whose executor sent a task instance to Celery.

        :param ti_id: the task instance's id.
        """
        rows = self.sql(
            "SELECT j.hostname FROM task_instance ti JOIN job j ON j.id = ti.queued_by_job_id "
            "WHERE ti.id = %s",
            ti_id,
        )
        return rows[0][0] if rows else None

    def worker_of(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id -> the worker that ran (or runs) its latest try (its ``hostname``).

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return {task: ti.get("hostname") or "" for task, ti in self.task_instances(dag_id, run_id).items()}

    def stop(self) -> None:
        """Stop every component, then drop the session's queue from the broker and the database."""
        super().stop()
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(broker_url(), socket_timeout=3)
            client.delete(self.queue, f"_kombu.binding.{self.queue}")

    def summary(self) -> str:
        """Executor and process counts, for the run summary."""
        return (
            f"executor=CeleryExecutor (broker {broker_url()}, queue {self.queue}, "
            "result backend PostgreSQL), "
            f"{len(self.workers)} workers x {self.worker_concurrency} slots, "
            f"{len(self.schedulers)} schedulers, "
            f"{len(self.triggerers)} triggerers, api-server with {self.api_workers} worker processes, "
            "1 dag-processor"
        )
