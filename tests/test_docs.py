"""The documentation site covers every operator, sensor and trigger, and every argument of each.

``make docs`` builds the site with ``mkdocs build --strict``: a page's snippet from a DAG that no longer
exists, a broken link, or a docstring ``:param:`` that the signature lacks fails it. This checks the
other direction, which the build cannot see: every class Airflow is told about has a page rendering it,
and every argument of its constructor is documented in its docstring.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from ntropy_provider import get_provider_info

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = REPO_ROOT / "docs"


def _declared_classes() -> list[type]:
    """The public operator, sensor and trigger classes of the modules ``get_provider_info()`` declares."""
    from airflow.providers.common.compat.sdk import BaseOperator
    from airflow.triggers.base import BaseTrigger

    info = get_provider_info()
    kinds = ("operators", "sensors", "triggers")
    modules = [m for key in kinds for entry in info[key] for m in entry["python-modules"]]
    classes = []
    for name in modules:
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            public = obj.__module__ == name and not obj.__name__.startswith("_")
            if public and issubclass(obj, BaseOperator | BaseTrigger):
                classes.append(obj)
    return classes


def _rendered() -> set[str]:
    """The objects the pages render with mkdocstrings (``::: dotted.path``)."""
    found: set[str] = set()
    for page in DOCS.rglob("*.md"):
        found |= set(re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), re.M))
    return found


CLASSES = _declared_classes()


def test_every_declared_class_is_found() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"SubmitBatchOperator", "BatchSensor", "BatchTrigger", "ResultsToParquetOperator"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_class_has_a_page(cls: type) -> None:
    assert f"{cls.__module__}.{cls.__qualname__}" in _rendered()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_every_argument_is_documented(cls: type) -> None:
    documented = set(re.findall(r":param (\w+):", inspect.getdoc(cls) or ""))
    parameters = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    assert [name for name in parameters if name not in documented] == []


def test_each_page_example_comes_from_an_example_dag() -> None:
    """Operator, sensor and trigger pages include their example from dags/*.py, not a copy."""
    for page in [*DOCS.glob("operators/*.md"), *DOCS.glob("sensors/*.md"), *DOCS.glob("triggers/*.md")]:
        included = re.findall(r'^--8<-- "(dags/[\w.]+\.py):(\w+)"$', page.read_text(), re.M)
        assert included, f"{page.name} includes no example DAG code"
        for path, section in included:
            source = (REPO_ROOT / path).read_text()
            assert f"# --8<-- [start:{section}]" in source and f"# --8<-- [end:{section}]" in source


def _docs_hooks():
    spec = importlib.util.spec_from_file_location("ntropy_docs_hooks", DOCS / "_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_connection_page_lists_every_form_field_from_the_code() -> None:
    from ntropy_provider.hooks.connection import CONN_FIELDS

    hooks = _docs_hooks()
    page = (DOCS / "connection.md").read_text()
    assert hooks.CONNECTION_FIELDS_MARKER in page
    rendered = hooks.on_page_markdown(page)
    for name, spec in CONN_FIELDS.items():
        assert f"| `{name}` (" in rendered and spec["label"] in rendered, name
    assert "A secret: masked in the form." in rendered  # the webhook token


def test_sphinx_roles_render_as_code() -> None:
    html = "see :class:<code>~ntropy_provider.triggers.batch.BatchTrigger</code> and :mod:<code>a.b</code>"
    assert _docs_hooks().on_page_content(html) == "see <code>BatchTrigger</code> and <code>a.b</code>"
