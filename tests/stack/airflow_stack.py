"""A real Airflow deployment in separate processes, for tests: the executable twin of docker-compose.yml.

:class:`AirflowStack` starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``
(LocalExecutor) on PostgreSQL or SQLite, each in its own process group, with its own ``AIRFLOW_HOME``;
:class:`EmulatorProcess` starts the Ntropy emulator as a separate process and drives it through its
``/_emulator`` control routes. Every wait is bounded; :meth:`AirflowStack.stop` and
:meth:`EmulatorProcess.stop` kill everything they started. Loopback only.

The settings come from ``stack_config.py``, which ``test_stack_compose.py`` compares with docker-compose.yml.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
import stack_config

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
VENV_BIN = Path(sys.executable).parent
TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class StackError(AssertionError):
    """The stack did not reach the expected state in time (the message names what and where to look)."""


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], T | None], *, timeout: float, interval: float = 0.5, what: str = "condition"
) -> T:
    """Poll ``condition`` until it returns something truthy, for at most ``timeout`` seconds.

    :param condition: called repeatedly; exceptions count as "not yet" (the last one is reported).
    :param timeout: seconds before giving up.
    :param interval: seconds between polls.
    :param what: words for the error message.
    :return: the first truthy value.
    :raises StackError: when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as err:  # a server that is still starting refuses connections
            last_error = err
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise StackError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def _clean_environ() -> dict[str, str]:
    """The test process's environment without any Airflow setting (the test session sets its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class ManagedProcess:
    """One child process in its own process group, its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (a new session, so that its children can be killed with it)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()

    @property
    def pid(self) -> int:
        """The process id (of the group leader)."""
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.popen is not None and self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        """Send ``sig`` to the whole process group and wait (bounded) for the leader to exit.

        :param sig: the signal; SIGKILL by default, as when a machine dies.
        :param timeout: seconds to wait for the exit before escalating to SIGKILL.
        """
        if self.popen is None:
            return
        # Airflow puts every task runner in a process group of its own (the supervisor's setpgid), so
        # killing our group misses them: note every descendant now, before their parents die and they are
        # re-parented out of reach, and kill the ones still alive once the group is gone.
        descendants = self._descendants()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=30)
        # Stragglers of the group die here, then descendants that had left it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        for child in descendants:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(descendants, timeout=10)

    def _descendants(self) -> list[psutil.Process]:
        if self.popen is None:
            return []
        try:
            return psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.Error:
            return []

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the process's output, for error messages."""
        if not self.log_path.exists():
            return "(no output)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


class EmulatorProcess:
    """The Ntropy emulator in a separate process, controlled over HTTP.

    :param workdir: where its log goes.
    :param api_key: the key it accepts.
    :param extra_args: more command-line options (``stack_config.EMULATOR_ARGS`` by default).
    """

    def __init__(self, workdir: Path, api_key: str, extra_args: Iterable[str] = stack_config.EMULATOR_ARGS):
        self.port = free_port()
        self.api_key = api_key
        #: The token the webhook receiver expects (the ``webhook_token`` extra of the connection).
        self.webhook_token = secrets.token_urlsafe(24)
        self.url = f"http://{LOOPBACK}:{self.port}"
        argv = [sys.executable, "-m", stack_config.EMULATOR_MODULE, "--host", LOOPBACK]
        argv += ["--port", str(self.port), "--api-key", api_key, *extra_args]
        self.process = ManagedProcess("emulator", argv, _clean_environ(), workdir / "logs" / "emulator.log")
        self._session = requests.Session()

    def start(self, timeout: float = 60) -> None:
        """Start the emulator and wait until it answers.

        :param timeout: seconds to wait for it.
        """
        self.process.start()
        try:
            wait_until(lambda: self._alive_and_answering(), timeout=timeout, what="the emulator to answer")
        except StackError as err:
            raise StackError(f"{err}\n--- emulator output ---\n{self.process.log_tail()}") from None

    def _alive_and_answering(self) -> bool:
        if not self.process.alive():
            raise StackError(f"the emulator exited:\n{self.process.log_tail()}")
        return self._session.get(f"{self.url}/_emulator/stats", timeout=5).ok

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change the emulator's settings (``PATCH /_emulator/settings``).

        :param settings: any of the emulator's settings, e.g. ``fail_rate=0.5``.
        :return: the settings now in force.
        """
        response = self._session.patch(f"{self.url}/_emulator/settings", json=settings, timeout=10)
        response.raise_for_status()
        return response.json()

    def settings(self) -> dict[str, Any]:
        """The settings in force."""
        response = self._session.get(f"{self.url}/_emulator/settings", timeout=10)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Counters: requests per route, ``batches_created``, ``transactions_submitted``, ..."""
        response = self._session.get(f"{self.url}/_emulator/stats", timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Forget every batch, holder and counter, and restore the default settings."""
        self._session.post(f"{self.url}/_emulator/reset", timeout=10).raise_for_status()

    def connection_json(self, extra: Mapping[str, Any] | None = None) -> str:
        """The ``AIRFLOW_CONN_NTROPY_DEFAULT`` value that points at this emulator, with the webhook token.

        :param extra: more extras (e.g. a shorter retry backoff for tests).
        """
        conn: dict[str, Any] = {"conn_type": "ntropy", "host": self.url, "password": self.api_key}
        conn["extra"] = {"webhook_token": self.webhook_token, **(extra or {})}
        return json.dumps(conn)

    def stop(self) -> None:
        """Kill the emulator."""
        self.process.kill(signal.SIGTERM, timeout=10)


@dataclass
class Database:
    """The metadata database of one stack: a fresh PostgreSQL database, or a SQLite file.

    :param kind: ``postgresql`` or ``sqlite``.
    :param url: the SQLAlchemy URL.
    :param drop: drops the database at teardown (PostgreSQL only).
    :param why: why this kind was chosen, shown in the session summary.
    """

    kind: str
    url: str
    drop: Callable[[], None] = field(default=lambda: None)
    why: str = ""

    @classmethod
    def create(cls, workdir: Path) -> Database:
        """PostgreSQL when 127.0.0.1:5432 answers (``NTROPY_STACK_DB=sqlite`` forces SQLite), else SQLite.

        The PostgreSQL role comes from ``NTROPY_STACK_PG_USER`` / ``NTROPY_STACK_PG_PASSWORD``
        (default ``postgres``/``postgres``); the database is named after the test process.

        :param workdir: where a SQLite file goes.
        """
        if os.environ.get("NTROPY_STACK_DB", "").lower() == "sqlite":
            why = "NTROPY_STACK_DB=sqlite"
        elif not _port_open(LOOPBACK, 5432):
            why = f"no PostgreSQL answers at {LOOPBACK}:5432"
        else:
            try:
                return cls._create_postgres()
            except Exception as err:  # reachable but unusable (auth, driver): fall back, and say so
                why = f"PostgreSQL at {LOOPBACK}:5432 is not usable ({err})"
        return cls("sqlite", f"sqlite:///{workdir / 'airflow.db'}", why=why)

    @classmethod
    def _create_postgres(cls) -> Database:
        import psycopg2

        user = os.environ.get("NTROPY_STACK_PG_USER", "postgres")
        password = os.environ.get("NTROPY_STACK_PG_PASSWORD", "postgres")
        name = f"ntropy_stack_{os.getpid()}"
        admin = {"host": LOOPBACK, "port": 5432, "user": user, "password": password, "dbname": "postgres"}

        def run(sql: str) -> None:
            conn = psycopg2.connect(connect_timeout=5, **admin)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute(sql)
            finally:
                conn.close()

        # Databases of earlier sessions that were killed before their teardown: their process is gone.
        conn = psycopg2.connect(connect_timeout=5, **admin)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ntropy_stack_%'")
                stale = [row[0] for row in cur.fetchall()]
        finally:
            conn.close()
        for old in stale:
            suffix = old.removeprefix("ntropy_stack_")
            if old == name or (suffix.isdigit() and not psutil.pid_exists(int(suffix))):
                run(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
        run(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg2://{user}:{password}@{LOOPBACK}:5432/{name}"
        return cls("postgresql", url, drop=lambda: run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


class AirflowStack:
    """Airflow's four components as separate processes, on LocalExecutor, with a REST client.

    :param workdir: an empty directory: ``AIRFLOW_HOME``, logs and the passwords file go there.
    :param dags_folder: the DAGs folder (the repo's ``dags/``).
    :param database: the metadata database.
    :param connection_json: ``AIRFLOW_CONN_NTROPY_DEFAULT`` (see :meth:`EmulatorProcess.connection_json`).
    :param data_root: ``NTROPY_DATA_ROOT``, where the example DAGs read and write by default.
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
        extra_env: Mapping[str, str] = (),
    ):
        self.workdir = workdir
        self.home = workdir / "airflow_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.database = database
        self.api_port = free_port()
        self.api_url = f"http://{LOOPBACK}:{self.api_port}"
        self.password = secrets.token_urlsafe(12)
        passwords_file = workdir / "simple_auth_manager_passwords.json"
        passwords_file.write_text(json.dumps({stack_config.ADMIN_USER: self.password}))
        from cryptography.fernet import Fernet

        self.env = _clean_environ()
        self.env.update(stack_config.SHARED_AIRFLOW_ENV)
        self.env.update(stack_config.HARNESS_ONLY_AIRFLOW_ENV)
        self.env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW_CONN_NTROPY_DEFAULT": connection_json,
                "NTROPY_DATA_ROOT": str(data_root),
            }
        )
        self.env.update(extra_env)
        self.components: dict[str, ManagedProcess] = {}
        self._session = requests.Session()
        self._token: str | None = None
        self.startup_seconds: float | None = None

    # ---------------------------------------------------------------- processes
    def _argv(self, subcommand: str) -> list[str]:
        argv = [str(VENV_BIN / "airflow"), subcommand, *stack_config.COMPONENT_ARGS[subcommand]]
        if subcommand == "api-server":
            argv += ["--host", LOOPBACK, "--port", str(self.api_port), "--workers", "1"]
        return argv

    def init_db(self, timeout: float = 300) -> None:
        """Run the init job's commands (``airflow db migrate``), as docker-compose's init job does.

        :param timeout: seconds allowed for each command.
        """
        for command in stack_config.INIT_COMMANDS:
            argv = [str(VENV_BIN / "airflow"), *command]
            done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                output = f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
                raise StackError(f"`airflow {' '.join(command)}` failed:\n{output}")

    def start_component(self, subcommand: str) -> ManagedProcess:
        """Start one component (``api-server``, ``scheduler``, ``dag-processor``, ``triggerer``).

        :param subcommand: the ``airflow`` subcommand.
        """
        process = ManagedProcess(
            subcommand, self._argv(subcommand), self.env, self.workdir / "logs" / f"{subcommand}.log"
        )
        process.start()
        self.components[subcommand] = process
        return process

    def start(self, timeout: float = 240) -> None:
        """Prepare the database, start the four components, and wait until all report healthy.

        :param timeout: seconds allowed for the components to become healthy.
        """
        began = time.monotonic()
        self.init_db()
        for subcommand in stack_config.AIRFLOW_COMPONENTS.values():
            self.start_component(subcommand)
        self.wait_healthy(timeout=timeout)
        self.startup_seconds = time.monotonic() - began

    def kill_component(self, subcommand: str, sig: int = signal.SIGKILL) -> None:
        """Kill one component and its children (SIGKILL by default: no clean shutdown).

        :param subcommand: which component.
        :param sig: the signal.
        """
        self.components[subcommand].kill(sig)

    def restart_component(self, subcommand: str) -> ManagedProcess:
        """Start a component again after :meth:`kill_component`.

        :param subcommand: which component.
        """
        return self.start_component(subcommand)

    def stop(self) -> None:
        """Stop every component (SIGTERM, then SIGKILL after a bounded wait) and drop the database."""
        for process in reversed(list(self.components.values())):
            process.kill(signal.SIGTERM, timeout=20)
        try:
            self.database.drop()
        except Exception as err:  # never hide the test's own failure behind a teardown error
            print(f"[stack] could not drop the database: {err}")

    def logs(self, lines: int = 30) -> str:
        """The last output lines of every component, for failure messages."""
        return "\n".join(
            f"--- {name} (alive={proc.alive()}) ---\n{proc.log_tail(lines)}"
            for name, proc in self.components.items()
        )

    # ---------------------------------------------------------------- health
    def health(self) -> dict[str, Any]:
        """``GET /api/v2/monitor/health`` (no authentication needed)."""
        response = self._session.get(f"{self.api_url}/api/v2/monitor/health", timeout=10)
        response.raise_for_status()
        return response.json()

    def _all_healthy(self) -> bool:
        for name, process in self.components.items():
            if not process.alive():
                raise StackError(f"{name} exited:\n{process.log_tail()}")
        health = self.health()
        parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
        return all(health.get(part, {}).get("status") == "healthy" for part in parts)

    def wait_healthy(self, timeout: float = 240) -> None:
        """Wait until the API server reports every component healthy.

        :param timeout: seconds to wait.
        """
        try:
            wait_until(self._all_healthy, timeout=timeout, interval=1, what="every component to be healthy")
        except StackError as err:
            raise StackError(f"{err}\n{self.logs()}") from None

    def triggerer_healthy(self) -> bool:
        """Whether the API server sees a live triggerer."""
        return self.health().get("triggerer", {}).get("status") == "healthy"

    # ---------------------------------------------------------------- REST
    def _login(self) -> str:
        response = self._session.post(
            f"{self.api_url}/auth/token",
            json={"username": stack_config.ADMIN_USER, "password": self.password},
            timeout=30,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API as the admin user (a JWT from the simple auth manager's ``/auth/token``).

        :param method: HTTP method.
        :param path: path under the API server, e.g. ``/api/v2/dags``.
        :param kwargs: passed to ``requests`` (``json=``, ``params=``).
        :return: the decoded JSON body (None when empty).
        :raises StackError: on a non-2xx answer, with the body.
        """
        if self._token is None:
            self._token = self._login()
        for attempt in range(2):
            response = self._session.request(
                method,
                f"{self.api_url}{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=30,
                **kwargs,
            )
            if response.status_code == 401 and attempt == 0:
                self._token = self._login()
                continue
            break
        if not response.ok:
            raise StackError(f"{method} {path}: {response.status_code} {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until the dag-processor has parsed and serialized a DAG (its file is ``<dag_id>.py``).

        :param dag_id: the DAG.
        :param timeout: seconds to wait.
        """

        def parsed() -> dict[str, Any] | None:
            errors = self.api("GET", "/api/v2/importErrors").get("import_errors", [])
            # Other files' errors are not this DAG's problem; its own file's error ends the wait at once.
            mine = [e for e in errors if str(e.get("filename", "")).endswith(f"{dag_id}.py")]
            if mine:
                raise StackError(f"import errors: {json.dumps(mine)[:3000]}")
            try:
                dag = self.api("GET", f"/api/v2/dags/{dag_id}")
                # The DAG row can exist before its serialized version: a run triggered in between gets
                # no task instances and "succeeds" at once. Wait for the version and its tasks.
                versions = self.api("GET", f"/api/v2/dags/{dag_id}/dagVersions")["dag_versions"]
                tasks = self.api("GET", f"/api/v2/dags/{dag_id}/tasks")["tasks"]
            except StackError:
                return None
            return dag if versions and tasks else None

        return wait_until(parsed, timeout=timeout, interval=1, what=f"DAG {dag_id} to be parsed")

    def set_paused(self, dag_id: str, paused: bool) -> None:
        """Pause or unpause a DAG.

        :param dag_id: the DAG.
        :param paused: the new state.
        """
        self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})

    def trigger(self, dag_id: str, logical_date: str | None, conf: Mapping[str, Any] | None = None) -> str:
        """Trigger a DAG run through the REST API.

        A logical date before the DAG's ``start_date`` gives a run without task instances (Airflow only
        creates the tasks that have started by then), which "succeeds" at once.

        :param dag_id: the DAG.
        :param logical_date: ISO 8601, e.g. ``2024-03-01T00:00:00Z``, or None for a run without one.
        :param conf: the run's ``conf`` (DAG params).
        :return: the run id.
        """
        body = {"logical_date": logical_date, "conf": dict(conf or {})}
        return str(self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def dag_runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        """The DAG's runs (``GET /api/v2/dags/{dag_id}/dagRuns``).

        :param dag_id: the DAG.
        :param params: query filters, e.g. ``run_type="scheduled"``.
        """
        return list(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params=params)["dag_runs"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The state of a DAG run.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        return str(self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """The run's task instances by task id (mapped instances as ``task_id[index]``).

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        body = self.api("GET", path, params={"limit": 1000})
        out = {}
        for ti in body["task_instances"]:
            index = ti.get("map_index", -1)
            out[ti["task_id"] if index < 0 else f"{ti['task_id']}[{index}]"] = ti
        return out

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float = 180
    ) -> dict[str, Any]:
        """Wait until a task instance is in one of ``states``.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param states: acceptable states, e.g. ``{"deferred"}``.
        :param timeout: seconds to wait.
        :return: the task instance.
        """
        wanted = set(states)

        def reached() -> dict[str, Any] | None:
            ti = self.task_instances(dag_id, run_id).get(task_id)
            if ti and ti["state"] in wanted:
                return ti
            if self.run_state(dag_id, run_id) in TERMINAL_RUN_STATES:
                described = self.describe(dag_id, run_id)
                raise StackError(f"run ended before {task_id} reached {wanted}: {described}")
            return None

        try:
            return wait_until(reached, timeout=timeout, interval=0.5, what=f"{task_id} to be {wanted}")
        except StackError as err:
            raise StackError(f"{err}\n{self.describe(dag_id, run_id)}\n{self.logs()}") from None

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        """Wait until a DAG run ends; return its state (``success`` or ``failed``).

        :param dag_id: the DAG.
        :param run_id: the run.
        :param timeout: seconds to wait.
        """
        try:
            return wait_until(
                lambda: state if (state := self.run_state(dag_id, run_id)) in TERMINAL_RUN_STATES else None,
                timeout=timeout,
                interval=1,
                what=f"run {run_id} of {dag_id} to end",
            )
        except StackError as err:
            raise StackError(f"{err}\n{self.describe(dag_id, run_id)}\n{self.logs()}") from None

    def describe(self, dag_id: str, run_id: str) -> str:
        """One line per task instance (state, try number), for assertion messages.

        :param dag_id: the DAG.
        :param run_id: the run.
        """
        try:
            tis = self.task_instances(dag_id, run_id)
        except Exception as err:
            return f"(task instances unavailable: {err})"
        return "; ".join(f"{k}={v['state']}(try {v.get('try_number')})" for k, v in sorted(tis.items()))

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The log of one try of a task, as text.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param task_id: the task.
        :param try_number: the try.
        """
        body = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        )
        content = body.get("content", "")
        if isinstance(content, list):
            return "\n".join(
                str(line.get("event", line)) if isinstance(line, dict) else str(line) for line in content
            )
        return str(content)

    # ---------------------------------------------------------------- task processes
    def task_process(self, ti_id: str) -> psutil.Process | None:
        """The process that runs a task instance's code (its title is ``airflow worker -- <ti id>``).

        :param ti_id: the task instance's id (the ``id`` field of the REST API's task instance).
        """
        scheduler = self.components.get("scheduler")
        if scheduler is None or not scheduler.alive():
            return None
        marker = f"airflow worker -- {ti_id}"
        for child in psutil.Process(scheduler.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if marker in " ".join(child.cmdline()):
                    return child
        return None
