"""The ``ntropy`` connection: its fields, its form, and reading it from environment variables."""

from __future__ import annotations

import asyncio
import json

import pytest

from ntropy_provider import get_provider_info
from ntropy_provider.api.wire import REGION_BASE_URLS
from ntropy_provider.exceptions import NtropyNotFoundError
from ntropy_provider.hooks.connection import RequestOptions, parse_connection, resolve_base_url
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook

KEY = "conn-test-key-5f2e9a"


def _url(host=None, port=None, schema=None, region=None) -> str:
    return resolve_base_url(host=host, port=port, schema=schema, region=region, conn_id="c")


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, REGION_BASE_URLS["us"]),
        ({"region": "eu"}, REGION_BASE_URLS["eu"]),
        ({"region": "EU "}, REGION_BASE_URLS["eu"]),
        ({"host": "http://127.0.0.1:8900", "region": "eu"}, "http://127.0.0.1:8900"),
        ({"host": "http://127.0.0.1:8900/"}, "http://127.0.0.1:8900"),
        ({"host": "https://proxy.example.com/ntropy/"}, "https://proxy.example.com/ntropy"),
        ({"host": "http://127.0.0.1", "port": 8900}, "http://127.0.0.1:8900"),
        ({"host": "127.0.0.1", "port": 8900}, "http://127.0.0.1:8900"),
        ({"host": "localhost", "port": 8900}, "http://localhost:8900"),
        ({"host": "emulator", "port": 8900, "schema": "http"}, "http://emulator:8900"),
        ({"host": "api.example.com"}, "https://api.example.com"),
        # A port written into the host field: still loopback (http), and no second port added.
        ({"host": "127.0.0.1:8900"}, "http://127.0.0.1:8900"),
        ({"host": "localhost:8900", "port": 8900}, "http://localhost:8900"),
        ({"host": "::1", "port": 8900}, "http://[::1]:8900"),
        ({"host": "[::1]:8900"}, "http://[::1]:8900"),
        ({"host": "api.example.com/ntropy/", "port": 8443}, "https://api.example.com:8443/ntropy"),
    ],
)
def test_base_url_from_fields(fields: dict, expected: str) -> None:
    assert _url(**fields) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"region": "ap"}, "region: expected one of us, eu, got 'ap'"),
        ({"host": "ftp://x"}, "host: expected an http"),
        ({"host": "http://127.0.0.1:89OO"}, "Connection 'c': host: expected an http"),
        ({"host": "x.example.com", "schema": "ftp"}, "schema: expected 'http' or 'https'"),
        ({"host": "x.example.com:https"}, "host: expected a host name, optionally with :port"),
    ],
)
def test_bad_fields_are_named(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _url(**fields)


@pytest.mark.parametrize(
    "host", ["https://user:s3cr3t-pw@proxy.example.com", "user:s3cr3t-pw@127.0.0.1:8900"]
)
def test_credentials_in_the_host_are_refused_without_quoting_them(host: str) -> None:
    # The base URL is quoted in log lines and errors: a password in it would leak.
    with pytest.raises(ValueError, match="credentials in the host are not supported") as info:
        _url(host=host)
    assert "s3cr3t-pw" not in str(info.value)


def test_missing_key_and_bad_numbers_are_named_without_the_key() -> None:
    with pytest.raises(ValueError, match="has no API key: put the Ntropy API key in its password field"):
        parse_connection(conn_id="c", host=None, port=None, schema=None, password="", extras={})
    with pytest.raises(ValueError, match="timeout: expected a number of seconds > 0") as info:
        parse_connection(
            conn_id="c", host=None, port=None, schema=None, password=KEY, extras={"timeout": "0"}
        )
    assert KEY not in str(info.value)


def test_extras_legacy_names_and_overrides() -> None:
    settings = parse_connection(
        conn_id="c",
        host=None,
        port=None,
        schema=None,
        password=KEY,
        extras={"extra__ntropy__region": "eu", "max_attempts": "4", "timeout": "30", "retry_after_cap": ""},
        options=RequestOptions(max_attempts=7, connect_timeout=2),
    )
    assert settings.base_url == REGION_BASE_URLS["eu"]
    assert settings.retry.max_attempts == 7
    assert settings.retry.retry_after_cap == 120.0  # empty string: unset
    assert (settings.timeout, settings.connect_timeout) == (30.0, 2.0)
    assert KEY not in repr(settings)


def test_env_var_connection_in_json_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_NTROPY_JSON",
        json.dumps(
            {
                "conn_type": "ntropy",
                "host": "http://127.0.0.1:8900",
                "password": KEY,
                "extra": {"max_attempts": 3, "retry_after_cap": 9},
            }
        ),
    )
    hook = NtropyHook("ntropy_json", max_elapsed=42)
    settings = hook.settings
    assert settings.base_url == "http://127.0.0.1:8900"
    assert settings.api_key == KEY
    assert (settings.retry.max_attempts, settings.retry.retry_after_cap, settings.retry.max_elapsed) == (
        3,
        9,
        42,
    )
    assert KEY not in repr(hook) and KEY not in repr(settings)


@pytest.mark.parametrize(
    ("uri", "base_url"),
    [
        ("ntropy://:{key}@127.0.0.1:8900", "http://127.0.0.1:8900"),
        ("ntropy://:{key}@http%3A%2F%2F127.0.0.1%3A8900", "http://127.0.0.1:8900"),
        ("ntropy://:{key}@?region=eu", REGION_BASE_URLS["eu"]),
        ("ntropy://:{key}@", REGION_BASE_URLS["us"]),
        ("ntropy://:{key}@ntropy-proxy.internal:8443/https", "https://ntropy-proxy.internal:8443"),
    ],
)
def test_env_var_connection_in_uri_form(monkeypatch: pytest.MonkeyPatch, uri: str, base_url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NTROPY_URI", uri.format(key=KEY))
    assert NtropyHook("ntropy_uri").settings.base_url == base_url
    assert NtropyHook("ntropy_uri").settings.api_key == KEY


def test_async_hook_reads_the_same_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NTROPY_URI", f"ntropy://:{KEY}@127.0.0.1:8900?max_attempts=5")
    settings = asyncio.run(NtropyAsyncHook("ntropy_uri").get_settings())
    assert (settings.base_url, settings.api_key, settings.retry.max_attempts) == (
        "http://127.0.0.1:8900",
        KEY,
        5,
    )


def test_connection_type_and_form_are_declared() -> None:
    entry = next(c for c in get_provider_info()["connection-types"] if c["connection-type"] == "ntropy")
    assert entry["hook-class-name"] == "ntropy_provider.hooks.ntropy.NtropyHook"
    assert entry["conn-fields"]["region"]["schema"]["enum"][:2] == list(REGION_BASE_URLS)
    behaviour = NtropyHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"
    assert "login" in behaviour["hidden_fields"]
    assert entry["ui-field-behaviour"]["hidden-fields"] == behaviour["hidden_fields"]
    assert NtropyHook.conn_type == "ntropy" and NtropyHook.conn_name_attr == "ntropy_conn_id"


def test_test_connection_reports_a_bad_connection_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_NTROPY_NOKEY", "ntropy://127.0.0.1:8900")
    ok, message = NtropyHook("ntropy_nokey").test_connection()
    assert not ok
    assert "no API key" in message


@pytest.mark.parametrize("form", ["json", "uri"])
def test_default_connection_from_env_reaches_the_emulator(
    monkeypatch: pytest.MonkeyPatch, ntropy_emulator, form: str
) -> None:
    host, port = ntropy_emulator.url.removeprefix("http://").rsplit(":", 1)
    value = (
        json.dumps({"conn_type": "ntropy", "host": ntropy_emulator.url, "password": ntropy_emulator.api_key})
        if form == "json"
        else f"ntropy://:{ntropy_emulator.api_key}@{host}:{port}?max_attempts=2"
    )
    monkeypatch.setenv("AIRFLOW_CONN_NTROPY_DEFAULT", value)
    ok, message = NtropyHook().test_connection()
    assert ok, message
    assert asyncio.run(NtropyAsyncHook().get_settings()).base_url == ntropy_emulator.url


def test_every_request_sends_and_logs_a_fresh_request_id(
    ntropy_connection: str, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import re

    caplog.set_level(logging.DEBUG)
    hook = NtropyHook(ntropy_connection)
    hook._log = logging.getLogger("ntropy.request-id-test")  # plain stdlib logging, DEBUG included
    for _ in range(3):
        hook.test_connection()
    with pytest.raises(NtropyNotFoundError) as info:
        hook.get_batch("missing")
    ids = re.findall(r"X-Request-ID ([0-9a-f]+)\)", caplog.text)
    assert len(ids) == 4 and len(set(ids)) == 4  # every request logged, each with a fresh id
    assert all(len(i) == 32 for i in ids)
    assert info.value.request_id == ids[-1]  # the error quotes the id of its request


def test_request_options_one_value_for_both_hooks_and_the_extras(ntropy_connection) -> None:
    # The seven retry/timeout settings are one RequestOptions: given as a value, or by name (which
    # wins), to either hook; the connection's extras fill in the rest.
    options = RequestOptions(max_attempts=4, timeout=20, backoff_max=3)
    sync = NtropyHook(ntropy_connection, options=options, max_attempts=6)
    assert sync.options == RequestOptions(max_attempts=6, timeout=20, backoff_max=3)
    assert (sync.settings.retry.max_attempts, sync.settings.timeout) == (6, 20.0)
    assert sync.settings.retry.backoff_max == 3.0
    async_hook = NtropyAsyncHook(ntropy_connection, options=options, connect_timeout=2)
    assert async_hook.options == RequestOptions(max_attempts=4, timeout=20, backoff_max=3, connect_timeout=2)
    with pytest.raises(TypeError, match="unknown arguments max_attempt"):
        NtropyAsyncHook(ntropy_connection, max_attempt=3)
