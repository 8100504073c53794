"""Helpers of the tests that run test DAGs with ``dag.test()`` and read back what the run left.

A uniquely named module next to ``tests/conftest.py`` (whose folder pytest puts on ``sys.path``):
``from conftest import`` would be ambiguous, with a conftest.py in several test folders.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

#: The test-only DAG bundle: ``dag.test()`` needs the DAG's file inside a bundle.
TEST_DAGS_FOLDER = Path(__file__).resolve().parent / "dags"


def load_test_dags(name: str) -> ModuleType:
    """Import a DAG file of ``tests/dags/`` once, under its own name.

    :param name: the file name without ``.py``, e.g. ``submit_batch_dags``.
    """
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TEST_DAGS_FOLDER / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def xcom_value(dag_run: Any, task_id: str) -> Any:
    """The ``return_value`` XCom a task of a finished run pushed.

    :param dag_run: the run ``dag.test()`` returned.
    :param task_id: the task.
    :raises AssertionError: when the task pushed none.
    """
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.scalars(
            XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key="return_value"
            )
        ).first()
        assert row is not None, f"no XCom from {task_id}"
        return XComModel.deserialize_value(row)


def task_states(dag_run: Any) -> dict[str, tuple[str, int]]:
    """Each task's final state and try number, e.g. for an assertion's message.

    :param dag_run: the run ``dag.test()`` returned.
    """
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: (ti.state, ti.try_number) for ti in dag_run.get_task_instances(session=session)}


def dag_bag(dag_folder: str) -> Any:
    """Airflow's DagBag over ``dag_folder`` (it moved to ``airflow.dag_processing`` in Airflow 3.2).

    :param dag_folder: a folder or one DAG file.
    """
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=dag_folder)
