"""Helpers of the example DAG tests (a uniquely named module: ``from conftest import`` is ambiguous)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
