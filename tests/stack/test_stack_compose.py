"""docker-compose.yml runs what the stack tests run: same services, commands, settings and image.

Not marked ``stack``: it only parses files, in well under a second.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
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
        assert env.get(name) == value, f"{service}: {name}"
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
    base = re.search(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert base and base.group(1) == stack_config.AIRFLOW_IMAGE
    assert stack_config.AIRFLOW_IMAGE.endswith(":" + version("apache-airflow"))
    assert "/opt/ntropy-provider" in dockerfile and "pip install" in dockerfile
