"""docker-compose.yml runs what the stack tests run: same services, commands, settings and image; and it
starts for real.

The checks of the file are not marked ``stack``: they only parse files, in well under a second. The last
test (``stack`` and ``compose``) starts the file through podman and podman-compose, in the default and the
``celery`` profile, triggers the nightly DAG through the REST API and reads the Parquet on the mounted
volume; it is skipped, with the reason, where podman cannot run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow.parquet as pq
import pytest
import requests
import stack_config
import yaml
from airflow_stack import AirflowStack, Database

from ntropy_provider.webhooks.config import URL_PREFIX, WEBHOOK_PATH

REPO_ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = (stack_config.INIT_SERVICE, *stack_config.AIRFLOW_COMPONENTS)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


@pytest.fixture
def harness_env(tmp_path: Path) -> dict[str, str]:
    """The environment the harness gives its Airflow processes (nothing is started)."""
    stack = AirflowStack(
        tmp_path,
        REPO_ROOT / "dags",
        Database("sqlite", f"sqlite:///{tmp_path / 'airflow.db'}"),
        connection_json='{"conn_type": "ntropy"}',
        data_root=tmp_path,
    )
    return stack.env


def _interpolate_defaults(value: str) -> str:
    """Resolve ``${VAR:-default}`` to its default, as compose does when the variable is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_every_service_the_harness_runs_exists(compose):
    services = compose["services"]
    expected = {*AIRFLOW_SERVICES, stack_config.EMULATOR_SERVICE, stack_config.POSTGRES_SERVICE}
    assert expected <= set(services)


@pytest.mark.parametrize("service", list(stack_config.AIRFLOW_COMPONENTS))
def test_each_component_runs_the_same_airflow_subcommand(compose, service):
    command = compose["services"][service]["command"]
    words = command if isinstance(command, list) else shlex.split(command)
    subcommand = stack_config.AIRFLOW_COMPONENTS[service]
    assert words == [subcommand, *stack_config.COMPONENT_ARGS[subcommand]]
    # The image's entrypoint prefixes "airflow"; the service must not replace it.
    assert "entrypoint" not in compose["services"][service]


def test_init_job_runs_the_harness_init_commands_in_order(compose):
    script = "\n".join(compose["services"][stack_config.INIT_SERVICE]["command"])
    positions = [script.find("airflow " + " ".join(command)) for command in stack_config.INIT_COMMANDS]
    assert all(p >= 0 for p in positions) and positions == sorted(positions), script
    # The admin user's password goes where the api-server reads it.
    passwords_file = compose["services"]["airflow-api-server"]["environment"][
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"
    ]
    assert f"> {passwords_file}" in script and stack_config.ADMIN_USER in script


@pytest.mark.parametrize("service", AIRFLOW_SERVICES)
def test_airflow_services_share_the_harness_settings(compose, harness_env, service):
    env = compose["services"][service]["environment"]
    for name, value in stack_config.SHARED_AIRFLOW_ENV.items():
        # The executor is a variable (the celery profile sets CeleryExecutor); its default is the harness's.
        assert _interpolate_defaults(env.get(name, "")) == value, f"{service}: {name}"
        assert harness_env[name] == value
    for name in stack_config.PER_DEPLOYMENT_AIRFLOW_ENV:
        assert name in env, f"{service} does not set {name}"
        assert name in harness_env, f"the harness does not set {name}"
    # Nothing the harness relies on is missing from compose, except its test-only speed-ups.
    harness_airflow = {k for k in harness_env if k.startswith("AIRFLOW")} - {"AIRFLOW_HOME"}
    assert harness_airflow - set(stack_config.HARNESS_ONLY_AIRFLOW_ENV) <= set(env)


def test_urls_in_the_settings_point_at_services_that_exist(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    services = compose["services"]
    execution = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert execution.hostname == "airflow-api-server" and execution.path == "/execution/"
    assert f"{execution.port}:{execution.port}" in services["airflow-api-server"]["ports"]
    database = urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert database.hostname == stack_config.POSTGRES_SERVICE
    assert database.username == services["postgres"]["environment"]["POSTGRES_USER"]
    assert database.path.lstrip("/") == services["postgres"]["environment"]["POSTGRES_DB"]
    # By default the Ntropy connection points at the emulator, with a key the emulator accepts.
    connection = json.loads(_interpolate_defaults(env["AIRFLOW_CONN_NTROPY_DEFAULT"]))
    emulator_args = services[stack_config.EMULATOR_SERVICE]["command"]
    host = urlparse(connection["host"])
    assert connection["conn_type"] == "ntropy"
    assert host.hostname == stack_config.EMULATOR_SERVICE
    assert str(host.port) == emulator_args[emulator_args.index("--port") + 1]
    assert connection["password"] == emulator_args[emulator_args.index("--api-key") + 1]
    assert connection["extra"]["webhook_token"], "the webhook receiver needs a token, as in the harness"
    # Deliveries come from the emulator's container: [api] base_url (localhost) would be that container
    # itself, so the connection names the api-server service, where the plugin serves the receiver.
    webhook_url = urlparse(connection["extra"]["webhook_url"])
    assert webhook_url.hostname == "airflow-api-server"
    assert f"{webhook_url.port}:{webhook_url.port}" in services["airflow-api-server"]["ports"]
    assert webhook_url.path == f"{URL_PREFIX}{WEBHOOK_PATH}/ntropy_default"
    # ... and the documented switch to the real API is the two variables in it.
    assert "${NTROPY_API_HOST:-" in env["AIRFLOW_CONN_NTROPY_DEFAULT"]
    assert "${NTROPY_API_KEY:-" in env["AIRFLOW_CONN_NTROPY_DEFAULT"]
    assert "${NTROPY_WEBHOOK_URL:-" in env["AIRFLOW_CONN_NTROPY_DEFAULT"]


def test_emulator_runs_like_the_harness_emulator(compose):
    emulator = compose["services"][stack_config.EMULATOR_SERVICE]
    assert emulator["entrypoint"] == ["python", "-m", stack_config.EMULATOR_MODULE]
    args = emulator["command"]
    joined = " ".join(args)
    assert " ".join(stack_config.EMULATOR_ARGS) in joined
    assert {"--host", "--port", "--api-key"} <= set(args)


def test_dags_are_mounted_where_airflow_reads_them(compose):
    for service in AIRFLOW_SERVICES:
        definition = compose["services"][service]
        # Logs are not served over HTTP (--skip-serve-logs): every component shares the log folder.
        assert any(v.endswith(":/opt/airflow/logs") for v in definition["volumes"])
        dags_folder = definition["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
        data_root = definition["environment"]["NTROPY_DATA_ROOT"]
        assert f"./dags:{dags_folder}" in definition["volumes"]
        assert any(v.endswith(f":{data_root}") for v in definition["volumes"])


def test_image_is_the_official_one_at_the_installed_airflow_version():
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    base = re.search(
        r"^ARG AIRFLOW_BASE_IMAGE=(\S+)\nFROM \$\{AIRFLOW_BASE_IMAGE\}$", dockerfile, re.MULTILINE
    )
    assert base and base.group(1) == stack_config.AIRFLOW_IMAGE
    assert stack_config.AIRFLOW_IMAGE.endswith(":" + version("apache-airflow"))
    assert "/opt/ntropy-provider" in dockerfile and "pip install" in dockerfile


LONG_RUNNING = (
    *stack_config.AIRFLOW_COMPONENTS,
    stack_config.EMULATOR_SERVICE,
    stack_config.POSTGRES_SERVICE,
    "redis",
    "airflow-worker-1",
    "airflow-worker-2",
    "flower",
)


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck(compose, service):
    healthcheck = compose["services"][service]["healthcheck"]
    assert healthcheck["test"][0] in ("CMD", "CMD-SHELL") and healthcheck["retries"] > 0


def test_celery_profile_runs_two_workers_on_redis(compose):
    services = compose["services"]
    workers = [name for name, s in services.items() if s.get("command", [None])[0:2] == ["celery", "worker"]]
    assert len(workers) == 2 and all(services[w]["profiles"] == ["celery"] for w in workers)
    for worker in workers:
        env = services[worker]["environment"]
        assert urlparse(env["AIRFLOW__CELERY__BROKER_URL"]).hostname == "redis"
        assert services[worker]["depends_on"]["redis"]["condition"] == "service_healthy"
    # One switch picks the executor; the default stays the harness's LocalExecutor.
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__CORE__EXECUTOR"] == (
        "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    )
    assert "celery" in services["redis"]["profiles"]


# ------------------------------------------------------------------------------------------------------------
# docker-compose.yml started for real, through podman and podman-compose (no Docker engine or registry here).

COMPOSE_ASSETS = REPO_ROOT / "tests" / "stack" / "compose"
API = "http://127.0.0.1:8080"
NIGHTLY = "ntropy_nightly_enrichment"
DAY = dt.date(2024, 3, 1)
ROWS = 200


def _podman_compose() -> str | None:
    return shutil.which(
        "podman-compose", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )


def compose_run_problem() -> str | None:
    """Why docker-compose.yml cannot be started here, or None."""
    if shutil.which("podman") is None:
        return "podman is not installed (Debian: apt-get install podman runc debootstrap)"
    try:
        subprocess.run(["podman", "info"], check=True, capture_output=True, timeout=120)
    except (subprocess.SubprocessError, OSError) as err:
        return f"podman cannot run containers here ({err})"
    if _podman_compose() is None:
        return "podman-compose is not installed (pip install podman-compose)"
    base = subprocess.run(["podman", "image", "exists", _base_image()], check=False).returncode == 0
    if not base and (os.geteuid() != 0 or shutil.which("debootstrap") is None):
        return "the local base image is missing and cannot be built here (debootstrap as root)"
    return None


def _base_image() -> str:
    return f"localhost/ntropy-airflow-base:{version('apache-airflow')}"


def _run(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done


@pytest.fixture(scope="module")
def compose_images(compose: dict[str, Any], stack_summary: list[str]) -> str:
    """The images the compose file names, built locally: the Airflow base (Debian + PyPI, the same Airflow
    version as the official image), PostgreSQL and Redis from Debian, then the repo's Dockerfile on that base.
    The base images are cached by podman (and the Debian root file system outside the repo); the provider
    image is rebuilt every session."""
    problem = compose_run_problem()
    if problem:
        pytest.skip(f"docker-compose.yml not started: {problem}")
    began = time.monotonic()
    env = {
        **os.environ,
        "POSTGRES_IMAGE": f"docker.io/library/{compose['services']['postgres']['image']}",
        "REDIS_IMAGE": f"docker.io/library/{compose['services']['redis']['image']}",
    }
    base = _run([str(COMPOSE_ASSETS / "build_base_image.sh")], timeout=3600, env=env).stdout.split()[-1]
    assert base == _base_image()
    base_seconds = time.monotonic() - began
    image = compose["x-airflow-common"]["image"]
    _run(
        [
            "podman",
            "build",
            "--network",
            "host",
            "--volume",
            "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca.crt:ro",
            "--build-arg",
            f"AIRFLOW_BASE_IMAGE={base}",
            "--tag",
            image,
            str(REPO_ROOT),
        ],
        timeout=1800,
    )
    stack_summary.append(
        f"compose: images ready in {time.monotonic() - began:.0f}s "
        f"(base images {base_seconds:.0f}s, cached after the first run; provider image on {base})"
    )
    return image


class ComposeProject:
    """One ``podman-compose`` project in a directory of its own: the compose file, dags, demo data."""

    def __init__(self, workdir: Path, profile: str | None):
        self.dir = workdir
        shutil.copy2(REPO_ROOT / "docker-compose.yml", workdir / "docker-compose.yml")
        shutil.copytree(REPO_ROOT / "dags", workdir / "dags")
        (workdir / "demo_data").mkdir()
        self.name = f"ntropy{os.getpid()}{profile or 'default'}"
        self.profile_args = ["--profile", profile] if profile else []
        self.env = {**os.environ, "AIRFLOW_UID": str(os.getuid())}
        if profile == "celery":
            self.env["AIRFLOW_EXECUTOR"] = "CeleryExecutor"
        self.session = requests.Session()

    def compose(self, *args: str, timeout: float = 900) -> str:
        argv = [_podman_compose() or "podman-compose", "--project-name", self.name, *self.profile_args, *args]
        return _run(argv, timeout=timeout, cwd=self.dir, env=self.env).stdout

    def up_in_dependency_order(self, compose: dict[str, Any]) -> None:
        """``up -d``, honouring ``depends_on`` conditions the way Docker Compose does.

        podman-compose cannot here: before podman 4.6 it ignores ``service_healthy``, and the
        ``--requires`` links it creates make podman 4.3 refuse to start a service whose dependency (the
        init job) has exited. So: the services that depend on nothing, until healthy; then the init job,
        until it exited 0; then everything (``--no-deps``: no links, each tier already satisfied).
        """
        services = {
            name: s
            for name, s in compose["services"].items()
            if not s.get("profiles") or set(s["profiles"]) & set(self.profile_args[1:])
        }
        first = [name for name, s in services.items() if not s.get("depends_on")]
        self.compose("up", "-d", "--no-deps", *first)
        from airflow_stack import wait_until

        checked = [name for name in first if "healthcheck" in services[name]]
        wait_until(lambda: self.healthy(checked), timeout=300, interval=3, what=f"{checked} to be healthy")
        self.compose("up", "-d", "--no-deps", stack_config.INIT_SERVICE)
        init = self.containers()[stack_config.INIT_SERVICE]["Names"][0]
        code = _run(["podman", "wait", init], timeout=900).stdout.strip()
        assert code == "0", f"{stack_config.INIT_SERVICE} exited {code}:\n{self.logs()}"
        rest = [name for name in services if name not in first and name != stack_config.INIT_SERVICE]
        self.compose("up", "-d", "--no-deps", *rest)

    def containers(self) -> dict[str, dict[str, Any]]:
        """Service name -> the ``podman ps`` record of its container."""
        out = _run(
            [
                "podman",
                "ps",
                "-a",
                "--format",
                "json",
                "--filter",
                f"label=io.podman.compose.project={self.name}",
            ],
            timeout=60,
        ).stdout
        return {c["Labels"]["com.docker.compose.service"]: c for c in json.loads(out or "[]")}

    def healthy(self, services: list[str]) -> bool:
        """Run every healthcheck once (podman without systemd runs none on its own); all must pass."""
        containers = self.containers()
        ok = True
        for service in services:
            container = containers.get(service)
            if container is None or container["State"] != "running":
                return False
            done = subprocess.run(
                ["podman", "healthcheck", "run", container["Names"][0]], capture_output=True, timeout=120
            )
            ok = ok and done.returncode == 0
        return ok

    def logs(self) -> str:
        out = []
        for service, container in self.containers().items():
            done = subprocess.run(
                ["podman", "logs", "--tail", "25", container["Names"][0]],
                capture_output=True,
                text=True,
                timeout=60,
            )
            out.append(
                f"--- {service} ({container['State']}) ---\n{done.stdout[-2500:]}{done.stderr[-2500:]}"
            )
        return "\n".join(out)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        token = self.session.post(
            f"{API}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30
        )
        token.raise_for_status()
        response = self.session.request(
            method,
            f"{API}{path}",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            timeout=30,
            **kwargs,
        )
        response.raise_for_status()
        return response.json() if response.content else None


@pytest.mark.stack
@pytest.mark.compose
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("profile", [None, "celery"], ids=["default", "celery"])
def test_compose_up_runs_the_nightly_dag_to_parquet(
    compose: dict[str, Any],
    compose_images: str,
    profile: str | None,
    tmp_path: Path,
    stack_summary: list[str],
):
    from airflow_stack import wait_until

    from ntropy_provider import sample_data
    from ntropy_provider.api.transaction_input import validate_transaction

    project = ComposeProject(tmp_path, profile)
    sample_data.write_landing(project.dir / "demo_data" / "landing", DAY, rows_per_day=ROWS, seed=3)
    long_running = [
        name
        for name, service in compose["services"].items()
        if "healthcheck" in service and (not service.get("profiles") or profile in service["profiles"])
    ]
    began = time.monotonic()
    try:
        project.up_in_dependency_order(compose)
        wait_until(
            lambda: project.healthy(long_running),
            timeout=900,
            interval=5,
            what=f"{long_running} to be healthy",
        )
        healthy_after = time.monotonic() - began
        wait_until(
            lambda: project.api("GET", f"/api/v2/dags/{NIGHTLY}/tasks")["tasks"],
            timeout=300,
            interval=3,
            what="the nightly DAG to be parsed",
        )
        project.api("PATCH", f"/api/v2/dags/{NIGHTLY}", json={"is_paused": False})
        run_id = project.api(
            "POST", f"/api/v2/dags/{NIGHTLY}/dagRuns", json={"logical_date": f"{DAY.isoformat()}T00:00:00Z"}
        )["dag_run_id"]
        state = wait_until(
            lambda: (
                (s := project.api("GET", f"/api/v2/dags/{NIGHTLY}/dagRuns/{run_id}")["state"])
                in ("success", "failed")
                and s
            ),
            timeout=900,
            interval=3,
            what="the nightly run to end",
        )
        tis = project.api("GET", f"/api/v2/dags/{NIGHTLY}/dagRuns/{run_id}/taskInstances")["task_instances"]
        assert state == "success", {ti["task_id"]: ti["state"] for ti in tis}
        out = project.dir / "demo_data" / "enriched" / f"date={DAY.isoformat()}"
        valid = sum(
            1 for r in sample_data.transactions_for_date(DAY, ROWS, seed=3) if not validate_transaction(r)
        )
        ok = pq.read_metadata(out / "ok" / "part-0.parquet").num_rows
        errors = pq.read_metadata(out / "errors" / "part-0.parquet").num_rows
        rejects = len((out / "rejects.jsonl").read_text().splitlines())
        assert (ok + errors, rejects) == (valid, ROWS - valid)
        hosts = {ti["task_id"]: ti["hostname"] for ti in tis}
        if profile == "celery":
            containers = project.containers()
            workers = {
                subprocess.run(
                    ["podman", "inspect", "--format", "{{.Config.Hostname}}", containers[w]["Names"][0]],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                for w in ("airflow-worker-1", "airflow-worker-2")
            }
            assert set(hosts.values()) <= workers, (
                f"tasks ran outside the Celery workers: {hosts} vs {workers}"
            )
        stack_summary.append(
            f"compose ({profile or 'default'} profile): {len(long_running)} services healthy after "
            f"{healthy_after:.0f}s, nightly run {state} after {time.monotonic() - began:.0f}s in total; "
            f"{ok} ok + {errors} errored + "
            f"{rejects} rejected rows on the mounted volume; task hosts {sorted(set(hosts.values()))}"
        )
    except BaseException:
        print(project.logs())
        raise
    finally:
        with contextlib.suppress(Exception):
            project.compose("down", "--volumes", timeout=600)
