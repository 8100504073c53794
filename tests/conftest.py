"""Test-wide set-up: a throw-away Airflow home, before anything imports Airflow.

DAG files that tests run with ``dag.test()`` must belong to a DAG bundle (Airflow 3.3 serializes the
DAG from its bundle first), so two local bundles are configured: the example DAGs in ``dags/`` and
the test-only DAGs in ``tests/dags/``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

#: The emulator's fixtures (ntropy_emulator, ntropy_connection): opt-in, they are not auto-loaded wherever
#: the provider is installed.
pytest_plugins = ["ntropy_provider.emulator.pytest_plugin"]

REPO_ROOT = Path(__file__).resolve().parent.parent

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ntropy-tests-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = json.dumps(
    [
        {
            "name": "ntropy_example_dags",  # "example_dags" is reserved by Airflow 3.3
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO_ROOT / "dags")},
        },
        {
            "name": "test_dags",
            "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
            "kwargs": {"path": str(REPO_ROOT / "tests" / "dags")},
        },
    ]
)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A fresh SQLite metadata database for tests that run DAGs with ``dag.test()``.

    :return: the Airflow home that holds it.
    """
    from airflow.utils.db import resetdb

    resetdb(skip_init=False)
    return _AIRFLOW_HOME
