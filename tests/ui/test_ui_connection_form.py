"""The ``ntropy`` connection form as a user meets it: Airflow's UI in a real (headless) Chromium.

What Airflow serves to the form is unit-tested in ``tests/hooks/test_hook_connection_form.py``; this
checks what the browser shows from it: labels, masked secrets, the Region choices, an Extra JSON without
defaults, and the Test button's message. Screenshots land in the test's temporary directory.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from airflow_stack import VENV_BIN

from ntropy_provider.api.wire import REGION_BASE_URLS
from ntropy_provider.hooks.connection import CONN_FIELDS, SENSITIVE_FIELDS, UI_FIELD_BEHAVIOUR

pytestmark = [pytest.mark.ui, pytest.mark.timeout(240)]


def _create_connection(ui: Any, conn_id: str, **fields: object) -> None:
    ui.stack.api(
        "POST", "/api/v2/connections", json={"connection_id": conn_id, "conn_type": "ntropy", **fields}
    )


@pytest.fixture(scope="module")
def report(airflow_ui: Any) -> dict:
    """One walk through the form (and the Test button of a connection with host and port)."""
    _create_connection(
        airflow_ui,
        "ntropy_ui_port",
        host="127.0.0.1",
        port=airflow_ui.emulator.port,
        password=airflow_ui.api_key,
    )
    return airflow_ui.drive_connection_form(test_connection_id="ntropy_ui_port")


def test_form_shows_every_field_labelled(report: dict) -> None:
    labels = {label.replace("*", "").strip() for label in report["extraLabels"]}
    relabeled = UI_FIELD_BEHAVIOUR["relabeling"]
    assert {relabeled["password"], relabeled["host"], relabeled["schema"]} <= labels
    assert {spec["label"] for spec in CONN_FIELDS.values()} <= labels
    assert "Login" not in labels  # hidden


def test_secrets_are_masked(report: dict) -> None:
    types = {field["name"]: field["type"] for field in report["extraInputs"] if field["name"]}
    assert types["password"] == "password"
    for name in SENSITIVE_FIELDS:
        assert types[f"element_{name}"] == "password", name


def test_region_offers_the_regions_and_no_null(report: dict) -> None:
    assert report["regionOptions"] == list(REGION_BASE_URLS)


def test_extra_json_holds_no_defaults(report: dict) -> None:
    # The untouched form's Extra JSON: each field is there (Airflow's UI writes them all) but null.
    pairs = re.findall(r'"(\w+)":\s*([^,\n}]+)', report["extraJson"])
    assert pairs, report["extraJson"]
    assert {name: value.strip() for name, value in pairs if value.strip() != "null"} == {}


def test_test_button_reaches_the_api(airflow_ui: Any, report: dict) -> None:
    assert report["testStatus"] == 200, report
    shown = " ".join(report["testToast"])
    assert f"Connected to the Ntropy API at http://127.0.0.1:{airflow_ui.emulator.port}" in shown, shown


def test_cli_tests_a_connection_without_port(airflow_ui: Any) -> None:
    """The documented alternative where Airflow 3.3.2's UI answers "Bad Request" (it sends port 0 for a
    connection without port, and refuses it as a different endpoint): ``airflow connections test``."""
    _create_connection(
        airflow_ui, "ntropy_ui_noport", host=airflow_ui.emulator.url, password=airflow_ui.api_key
    )
    before = airflow_ui.emulator.stats()
    done = subprocess.run(
        [str(VENV_BIN / "airflow"), "connections", "test", "ntropy_ui_noport"],
        env=airflow_ui.stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Connection success!" in output, output[-3000:]
    assert airflow_ui.emulator.stats() != before, "the test did not reach the emulator"
