"""The pytest fixtures and the in-process server API that other tests (and users) build on."""

from __future__ import annotations

import json
import os

import pytest
import requests

from ntropy_provider.emulator.testing import make_transaction


def test_fixture_serves_the_api_and_counts_requests(ntropy_emulator):
    url, key = ntropy_emulator.url, ntropy_emulator.api_key
    assert url.startswith("http://127.0.0.1:")
    assert key == "test-key"
    created = requests.post(
        f"{url}/v3/batches",
        json={"operation": "POST /v3/transactions", "data": [make_transaction(0), make_transaction(1)]},
        headers={"X-API-Key": key},
        timeout=10,
    )
    assert created.status_code == 200, created.text
    batch_id = created.json()["id"]
    got = requests.get(f"{url}/v3/batches/{batch_id}", headers={"X-API-Key": key}, timeout=10)
    assert got.json()["total"] == 2
    stats = ntropy_emulator.stats()
    assert stats["requests"] == {"POST /v3/batches": 1, "GET /v3/batches/{batch_id}": 1}
    assert stats["batches_created"] == 1
    assert stats["transactions_submitted"] == 2


def test_state_and_settings_are_reset_between_tests_part_one(ntropy_emulator):
    ntropy_emulator.configure(fail_rate=1.0, latency_ms=5)
    requests.post(
        f"{ntropy_emulator.url}/v3/account_holders",
        json={"id": "leftover", "type": "consumer"},
        headers={"X-API-Key": ntropy_emulator.api_key},
        timeout=10,
    )
    assert ntropy_emulator.settings()["fail_rate"] == 1.0


def test_state_and_settings_are_reset_between_tests_part_two(ntropy_emulator):
    assert ntropy_emulator.settings()["fail_rate"] == 0.0
    assert ntropy_emulator.stats()["requests"] == {}
    answer = requests.get(
        f"{ntropy_emulator.url}/v3/account_holders/leftover",
        headers={"X-API-Key": ntropy_emulator.api_key},
        timeout=10,
    )
    assert answer.status_code == 404


def test_reset_forgets_batches(ntropy_emulator):
    headers = {"X-API-Key": ntropy_emulator.api_key}
    body = {"operation": "POST /v3/transactions", "data": [make_transaction()]}
    batch_id = requests.post(
        f"{ntropy_emulator.url}/v3/batches", json=body, headers=headers, timeout=10
    ).json()["id"]
    ntropy_emulator.reset()
    answer = requests.get(f"{ntropy_emulator.url}/v3/batches/{batch_id}", headers=headers, timeout=10)
    assert answer.status_code == 404
    assert ntropy_emulator.stats()["batches_created"] == 0


def test_configure_rejects_unknown_settings(ntropy_emulator):
    with pytest.raises(ValueError, match="fail_rat: unknown setting"):
        ntropy_emulator.configure(fail_rat=0.5)
    with pytest.raises(ValueError, match="fail_rate: expected a fraction"):
        ntropy_emulator.configure(fail_rate=2)


def test_ntropy_connection_points_airflow_at_the_emulator(ntropy_connection, ntropy_emulator):
    assert ntropy_connection == "ntropy_default"
    conn = json.loads(os.environ["AIRFLOW_CONN_NTROPY_DEFAULT"])
    assert conn == {"conn_type": "ntropy", "host": ntropy_emulator.url, "password": "test-key"}


@pytest.mark.ntropy_emulator(items_per_second=3, seed=11)
def test_marker_sets_initial_settings(ntropy_emulator):
    settings = ntropy_emulator.settings()
    assert (settings["items_per_second"], settings["seed"]) == (3, 11)


def test_unencoded_offset_in_a_datetime_query_is_accepted(ntropy_emulator):
    # "+" left unencoded in a URL arrives as a space; the filter must still work, not 422.
    url = f"{ntropy_emulator.url}/v3/batches?created_after=2024-01-02T03:04:05+00:00"
    answer = requests.get(url, headers={"X-API-Key": ntropy_emulator.api_key}, timeout=10)
    assert answer.status_code == 200, answer.text


def test_server_url_brackets_an_ipv6_host():
    from ntropy_provider.emulator.server import EmulatorServer

    # Not started: only the URL is built ("http://::1:8900" would not parse as host ::1, port 8900).
    assert EmulatorServer(host="::1", port=8900).url == "http://[::1]:8900"
    assert EmulatorServer(host="127.0.0.1", port=8900).url == "http://127.0.0.1:8900"
