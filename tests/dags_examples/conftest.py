"""Fixtures for the example DAG tests: a landing folder of sample data and a way to run a DAG."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ntropy_provider import sample_data

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO_ROOT / "dags"
DAY = dt.date(2024, 3, 1)


def load_dag_module(name: str) -> ModuleType:
    """Import an example DAG file from ``dags/`` (it lives in the ``example_dags`` bundle).

    :param name: the file name without ``.py``.
    """
    return load_module_from(DAGS_FOLDER / f"{name}.py", name)


def load_module_from(path: Path, name: str) -> ModuleType:
    """Import a Python file that is not in a package, once.

    :param path: the file.
    :param name: the module name to register it under.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root with ``landing/`` (two days of sample data) and an empty ``enriched/``."""
    sample_data.write_landing(tmp_path / "landing", DAY, DAY + dt.timedelta(days=1), rows_per_day=120, seed=5)
    return tmp_path
