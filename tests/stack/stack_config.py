"""The settings that the real-Airflow stack harness and ``docker-compose.yml`` share.

The stack tests are the executable twin of the docker-compose deployment: both start the same Airflow
components with the same subcommands and the same settings. They are written down once, here; the
harness (``tests/stack/airflow_stack.py``) builds its processes from them and
``test_stack_compose.py`` checks that ``docker-compose.yml`` says the same thing.
"""

from __future__ import annotations

#: The official image the compose file builds on (the provider is installed on top by ``Dockerfile``).
AIRFLOW_IMAGE = "apache/airflow:3.3.2"

#: Compose service name -> the ``airflow`` subcommand it runs (the harness runs the same subcommand).
AIRFLOW_COMPONENTS: dict[str, str] = {
    "airflow-api-server": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}

#: Options of each subcommand, in both deployments. Task and trigger logs are read from a shared folder
#: (a volume in compose), so no component serves them over HTTP: the serve-logs servers would listen on
#: every interface at fixed ports (8793, 8794), which neither loopback-only tests nor parallel sessions want.
COMPONENT_ARGS: dict[str, tuple[str, ...]] = {
    "api-server": (),
    "scheduler": ("--skip-serve-logs",),
    "dag-processor": (),
    "triggerer": ("--skip-serve-logs",),
}

#: Compose service of the local Ntropy API emulator.
EMULATOR_SERVICE = "ntropy-emulator"
#: Compose service of the metadata database.
POSTGRES_SERVICE = "postgres"
#: Compose service that prepares the database once before the components start.
INIT_SERVICE = "airflow-init"

#: ``airflow`` commands the init job runs, in order (the harness runs exactly these too).
INIT_COMMANDS: tuple[tuple[str, ...], ...] = (("db", "migrate"),)

#: The admin user of the simple auth manager; its password sits in the passwords file.
ADMIN_USER = "admin"

#: Settings with the same value in both deployments.
SHARED_AIRFLOW_ENV: dict[str, str] = {
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__AUTH_MANAGER": (
        "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    ),
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    # Example DAGs start paused: nothing runs against the API until somebody unpauses a DAG.
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
}

#: Settings both deployments must set, each to a value of its own (paths, URLs, secrets).
PER_DEPLOYMENT_AIRFLOW_ENV: tuple[str, ...] = (
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
    "AIRFLOW__API__BASE_URL",
    "AIRFLOW_CONN_NTROPY_DEFAULT",
    "NTROPY_DATA_ROOT",
)

#: Faster heartbeats and retries for the tests only: a stack test waits for these, a deployment does not.
HARNESS_ONLY_AIRFLOW_ENV: dict[str, str] = {
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "3",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
    "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "5",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__CORE__PARALLELISM": "8",
}

#: The emulator's module (run as ``python -m``) and the options both deployments pass (besides --host,
#: --port and --api-key, which differ).
EMULATOR_MODULE = "ntropy_provider.emulator"
EMULATOR_ARGS: tuple[str, ...] = ("--items-per-second", "2000", "--seed", "7")
