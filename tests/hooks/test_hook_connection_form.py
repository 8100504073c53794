"""The connection form as Airflow serves it to its UI, and what the UI sends back.

``HookMetaService.hook_meta_data()`` is what the UI's ``/ui/connections/hook_meta`` answers, on every
supported Airflow version (3.1 builds it from the hook's wtforms fields, 3.2+ from ``conn-fields``).
The browser test of the same form is ``tests/ui/test_ui_connection_form.py``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.wire import DEFAULT_REGION, REGION_BASE_URLS
from ntropy_provider.hooks.connection import (
    CONN_FIELDS,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    SENSITIVE_FIELDS,
    WEBHOOK_CATCHUP_URL_EXTRA,
    WEBHOOK_TOKEN_EXTRA,
    WEBHOOK_URL_EXTRA,
    RequestOptions,
    parse_connection,
)
from ntropy_provider.hooks.exchange import transport_reason
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.retry_policy import POLICY_EXTRAS, RetryPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]


#: Prints the ``ntropy`` entry of the UI's hook metadata as JSON. Run in a fresh interpreter: Airflow 3.1's
#: HookMetaService fills the ProvidersManager singleton (and ``sys.modules``) with mocked Flask-AppBuilder.
_HOOK_META = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
entry = next(m for m in HookMetaService.hook_meta_data() if m.connection_type == "ntropy")
print(json.dumps(entry.model_dump(), default=lambda p: p.dump()))
"""


@pytest.fixture(scope="module")
def form() -> dict[str, Any]:
    """The ``ntropy`` entry of the UI's hook metadata, as JSON (what the browser receives)."""
    done = subprocess.run(
        [sys.executable, "-c", _HOOK_META], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _schema(field: dict[str, Any]) -> dict[str, Any]:
    return field["schema"]


def test_every_extra_the_provider_reads_has_a_labelled_field(form: dict[str, Any]) -> None:
    read = {
        "region",
        "max_credits",
        *RequestOptions.names(),
        *POLICY_EXTRAS,
        *(spec.name for spec in dataclasses.fields(ApiLimits)),
        WEBHOOK_TOKEN_EXTRA,
        WEBHOOK_URL_EXTRA,
        WEBHOOK_CATCHUP_URL_EXTRA,
    }
    assert set(CONN_FIELDS) == read
    assert set(form["extra_fields"]) == read
    for name, field in form["extra_fields"].items():
        assert _schema(field).get("title") == CONN_FIELDS[name]["label"], name
        assert field["description"], name
    assert {"connect_timeout", "backoff_base", "backoff_max", "webhook_token"} <= set(form["extra_fields"])


def test_region_offers_the_regions_only_and_no_field_is_prefilled(form: dict[str, Any]) -> None:
    region = form["extra_fields"]["region"]
    assert _schema(region)["enum"] == list(REGION_BASE_URLS)  # no literal null choice
    # The UI pre-fills the Extra JSON with every field's value: none may carry a default.
    prefilled = {name: field["value"] for name, field in form["extra_fields"].items()}
    assert {name: value for name, value in prefilled.items() if value is not None} == {}
    assert all("default" not in spec["schema"] for spec in CONN_FIELDS.values())
    # What an empty field means is said in its description, from the code's defaults.
    assert f"Empty: {DEFAULT_REGION}." in region["description"]
    assert f"Empty: {DEFAULT_TIMEOUT:g}." in form["extra_fields"]["timeout"]["description"]


def test_webhook_token_is_declared_sensitive(form: dict[str, Any]) -> None:
    assert {WEBHOOK_TOKEN_EXTRA} == SENSITIVE_FIELDS
    assert _schema(form["extra_fields"][WEBHOOK_TOKEN_EXTRA]).get("format") == "password"
    # Airflow >= 3.2 records it as sensitive from the declaration (not from the word "token" in its name).
    from airflow.providers_manager import ProvidersManager

    widget = ProvidersManager().connection_form_widgets.get(f"extra__ntropy__{WEBHOOK_TOKEN_EXTRA}")
    if widget is not None and isinstance(widget.field, dict):
        assert widget.is_sensitive


def test_standard_fields_are_relabelled(form: dict[str, Any]) -> None:
    standard = form["standard_fields"]
    assert standard["password"]["title"] == "API key"
    assert standard["login"]["hidden"] is True
    assert "overrides the region" in standard["host"]["title"]


def test_a_connection_saved_from_the_ui_reads_as_the_defaults() -> None:
    # The UI saves null for every field left empty, and (Airflow 3.3.2) port 0 where there is none.
    extras = dict.fromkeys(CONN_FIELDS)
    settings = parse_connection(conn_id="ui", host="", port=0, schema="", password="k-123456", extras=extras)
    assert settings.base_url == REGION_BASE_URLS[DEFAULT_REGION]
    assert settings.retry == RetryPolicy()
    assert (settings.timeout, settings.connect_timeout) == (DEFAULT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT)
    assert settings.api_limits == ApiLimits() and settings.max_credits is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", "http://127.0.0.1"), ("http://127.0.0.1:8900", "http://127.0.0.1:8900")],
)
def test_port_zero_means_no_port(host: str, expected: str) -> None:
    settings = parse_connection(conn_id="c", host=host, port=0, schema=None, password="k-1", extras={})
    assert settings.base_url == expected


def test_form_fields_in_the_form_are_read_back_typed() -> None:
    extras = {"connect_timeout": "2.5", "backoff_base": "0.5", "backoff_max": 4, "region": "eu"}
    settings = parse_connection(conn_id="c", host=None, port=None, schema=None, password="k", extras=extras)
    assert settings.connect_timeout == 2.5
    assert (settings.retry.backoff_base, settings.retry.backoff_max) == (0.5, 4.0)
    assert settings.base_url == REGION_BASE_URLS["eu"]


def test_unreachable_host_is_one_short_sentence(conn_factory) -> None:
    with socket.socket() as probe:  # a loopback port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    conn_id = conn_factory(host=url, password="k-123456", extra={"backoff_base": 0.01})
    ok, message = NtropyHook(conn_id).test_connection()
    assert not ok
    assert re.fullmatch(
        rf"Could not reach the Ntropy API at {re.escape(url)}: connection refused "
        r"\(X-Request-ID [0-9a-f]{32}\)\.",
        message,
    ), message
    assert message.count(url) == 1 and "Max retries" not in message and "attempts" not in message


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "host name not found"),
        (TimeoutError("timed out"), "no answer in time (read timed out)"),
    ],
)
def test_transport_reason_finds_the_innermost_cause(error: BaseException, reason: str) -> None:
    import requests

    try:
        try:
            raise error
        except BaseException as inner:
            raise requests.ConnectionError("HTTPConnectionPool(...): Max retries exceeded") from inner
    except requests.ConnectionError as outer:
        assert transport_reason(outer) == reason


def test_project_documentation_url_is_the_docs_site() -> None:
    """Airflow's providers page links the package to ``project.urls.Documentation``: our mkdocs site."""
    urls = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["urls"]
    site_url = re.search(r"^site_url:\s*(\S+)", (REPO_ROOT / "mkdocs.yml").read_text(), re.M)
    assert site_url and urls["Documentation"] == site_url.group(1)
