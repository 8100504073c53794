"""Injected faults: rate limiting, failures, dropped connections, delayed create answers, latency."""

from __future__ import annotations

import pytest
import requests

from ntropy_provider.emulator.testing import make_transaction, wait_for

OPERATION = "POST /v3/transactions"


def _get(emulator, path="/v3/batches", key=None, **kwargs):
    headers = {"X-API-Key": key or emulator.api_key}
    return requests.get(emulator.url + path, headers=headers, timeout=kwargs.pop("timeout", 10), **kwargs)


def test_rate_limit_answers_429_with_an_integer_retry_after(ntropy_emulator):
    ntropy_emulator.configure(rate_limit=2)
    answers = [_get(ntropy_emulator) for _ in range(6)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert answers[0].status_code == 200
    for answer in limited:
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.headers["content-type"] == "application/json"
        assert "Rate limit" in answer.json()["detail"]
    stats = ntropy_emulator.stats()
    assert stats["faults"]["rate_limited"] == len(limited)
    assert stats["requests"]["GET /v3/batches"] == 6  # faulted requests are counted too


def test_rate_limit_is_per_key(ntropy_emulator):
    ntropy_emulator.configure(rate_limit=1, api_keys=["a", "b"])
    assert _get(ntropy_emulator, key="a").status_code == 200
    assert _get(ntropy_emulator, key="b").status_code == 200
    assert _get(ntropy_emulator, key="a").status_code == 429


@pytest.mark.parametrize("status", [503, 500, 502, 504])
def test_fail_rate_answers_the_configured_status(ntropy_emulator, status):
    ntropy_emulator.configure(fail_rate=1.0, fail_status=status)
    answer = _get(ntropy_emulator)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json" and "detail" in answer.json()
    assert ntropy_emulator.stats()["faults"]["failed"] == 1


def test_fail_rate_is_a_fraction(ntropy_emulator):
    # 200 quick requests measure the injected fault rate, not the API's request rates: those are off.
    ntropy_emulator.configure(fail_rate=0.5, seed=7, endpoint_limits="off")
    codes = [_get(ntropy_emulator).status_code for _ in range(200)]
    assert set(codes) == {200, 503}
    assert 50 < codes.count(503) < 150


def test_dropped_connection_gets_no_answer(ntropy_emulator):
    ntropy_emulator.configure(drop_connection_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        _get(ntropy_emulator)
    ntropy_emulator.configure(drop_connection_rate=0.0)
    assert _get(ntropy_emulator).status_code == 200
    assert ntropy_emulator.stats()["faults"]["dropped_connection"] == 1


def test_create_batch_delay_stores_the_batch_before_answering(ntropy_emulator):
    ntropy_emulator.configure(create_batch_delay_ms=3_000)
    body = {"operation": OPERATION, "data": [make_transaction(0)]}
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            ntropy_emulator.url + "/v3/batches",
            json=body,
            headers={"X-API-Key": ntropy_emulator.api_key},
            timeout=0.5,
        )
    # The client gave up, but the batch exists: a client must find it rather than resubmit blindly.
    listed = wait_for(lambda: _get(ntropy_emulator).json()["data"])
    assert len(listed) == 1 and listed[0]["total"] == 1
    assert ntropy_emulator.stats()["batches_created"] == 1


def test_latency_still_answers(ntropy_emulator):
    ntropy_emulator.configure(latency_ms=50)
    assert _get(ntropy_emulator).status_code == 200


def test_faults_do_not_touch_admin_routes(ntropy_emulator):
    ntropy_emulator.configure(fail_rate=1.0, drop_connection_rate=1.0)
    assert requests.get(ntropy_emulator.url + "/_emulator/stats", timeout=10).status_code == 200
