"""Every connection id argument of every operator and sensor is templated (``{{ var.value.env }}_ntropy``).

The classes are discovered, not listed, so that a new operator or a new ``*_conn_id`` argument is
covered without touching this file. A run with a templated conn id on ``dag.test()`` is in
tests/operators_submit/test_submit_dataframe.py.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest
from airflow.sdk import BaseOperator

import ntropy_provider.operators
import ntropy_provider.sensors

#: A value for each required argument, so that the operators can be built.
REQUIRED = {"items": [], "batch_ids": ["b1"], "output_path": "/tmp/ntropy-out"}


def _operator_classes() -> list[type[BaseOperator]]:
    found: dict[str, type[BaseOperator]] = {}
    for package in (ntropy_provider.operators, ntropy_provider.sensors):
        for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseOperator) and cls.__module__ == module.__name__:
                    found[cls.__qualname__] = cls
    return [found[name] for name in sorted(found)]


def _conn_id_arguments(cls: type[BaseOperator]) -> list[str]:
    return [name for name in inspect.signature(cls.__init__).parameters if name.endswith("conn_id")]


CLASSES = _operator_classes()


def test_every_operator_and_the_sensor_are_found() -> None:
    names = {cls.__name__ for cls in CLASSES}
    expected = {"SubmitBatchOperator", "BatchSensor", "ResultsToParquetOperator", "EnsureWebhookOperator"}
    assert expected <= names
    assert all(_conn_id_arguments(cls) for cls in CLASSES), "every operator talks to a connection"


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_conn_ids_are_template_fields_and_rendered(cls: type[BaseOperator]) -> None:
    arguments = _conn_id_arguments(cls)
    missing = set(arguments) - set(cls.template_fields)
    assert not missing, f"not templated: {sorted(missing)}"
    parameters = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {k: v for k, v in REQUIRED.items() if k in parameters}
    kwargs.update({name: "{{ params.env }}_" + name for name in arguments})
    operator = cls(task_id="t", **kwargs)
    operator.render_template_fields({"params": {"env": "prod"}})  # type: ignore[arg-type]
    rendered = {name: getattr(operator, name) for name in arguments}
    assert rendered == {name: "prod_" + name for name in arguments}
