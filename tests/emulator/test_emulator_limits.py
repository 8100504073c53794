"""The API's documented per-key limits (docs/ntropy-api.md, "Limits"), enforced by the emulator by default.

Each limit is lowered at run time to provoke a 429, whose Retry-After and detail are checked, then raised
(or the batches made to finish) so that the same request succeeds again; no sleeps, no timing assertions.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.emulator.__main__ import build_parser
from ntropy_provider.emulator.limits import ApiLimiter, retry_after_seconds
from ntropy_provider.emulator.settings import EmulatorSettings
from ntropy_provider.emulator.testing import make_transaction, wait_for

OPERATION = "POST /v3/transactions"


def _request(emulator: Any, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, emulator.url + path, json=body, headers={"X-API-Key": emulator.api_key}, timeout=10
    )


def _submit(emulator: Any, count: int) -> requests.Response:
    body = {"operation": OPERATION, "data": [make_transaction(i) for i in range(count)]}
    return _request(emulator, "POST", "/v3/batches", body)


def _retry_after(answer: requests.Response) -> int:
    assert answer.status_code == 429, answer.text
    return int(answer.headers["Retry-After"])


def test_the_documented_limits_are_the_defaults():
    settings = EmulatorSettings()
    documented = ApiLimits()
    assert settings.limits and settings.endpoint_limits == "documented"
    assert (settings.credit_capacity, settings.credit_refill_per_second, settings.max_open_batches) == (
        documented.credit_capacity,
        documented.credit_refill_per_second,
        documented.max_open_batches,
    )
    assert settings.endpoint_rate("POST /v3/batches") == 20
    assert settings.endpoint_rate("GET /v3/batches/{batch_id}/results") == 10
    assert settings.endpoint_rate("GET /_unknown") is None
    args = build_parser().parse_args([])
    assert (args.limits, args.credit_capacity, args.credit_refill_per_second, args.max_open_batches) == (
        "on",
        100_000,
        1_000.0,
        10,
    )
    assert build_parser().parse_args(["--limits", "off", "--endpoint-limits", "off"]).limits == "off"


def test_credit_bucket_answers_429_with_the_wait_for_the_missing_credits_and_recovers(ntropy_emulator):
    ntropy_emulator.configure(credit_capacity=10, credit_refill_per_second=1)
    assert _submit(ntropy_emulator, 10).status_code == 200  # the bucket starts full
    refused = _submit(ntropy_emulator, 5)
    # Honest: the bucket refills 1 credit per second and 5 are missing (at most; a few may have come back).
    assert 1 <= _retry_after(refused) <= 5
    assert "Credit limit" in refused.json()["detail"] and "5 credits needed" in refused.json()["detail"]
    assert ntropy_emulator.stats()["rate_limited"] == {"credits": 1}
    ntropy_emulator.configure(credit_refill_per_second=1_000_000)
    wait_for(lambda: _submit(ntropy_emulator, 5).status_code == 200, timeout=10)
    assert ntropy_emulator.stats()["batches_created"] == 2  # the refused one was not stored


def test_a_batch_larger_than_the_bucket_can_ever_hold_is_refused_for_good(ntropy_emulator):
    ntropy_emulator.configure(credit_capacity=10)
    refused = _submit(ntropy_emulator, 11)
    assert refused.status_code == 422 and "Retry-After" not in refused.headers
    assert "at most 10" in refused.json()["detail"]
    assert ntropy_emulator.stats()["rate_limited"] == {"batch_over_credit_capacity": 1}
    assert _submit(ntropy_emulator, 10).status_code == 200


def test_sync_enrichment_costs_one_credit(ntropy_emulator):
    ntropy_emulator.configure(credit_capacity=1, credit_refill_per_second=0.01)
    assert _request(ntropy_emulator, "POST", "/v3/transactions", make_transaction(0)).status_code == 200
    refused = _request(ntropy_emulator, "POST", "/v3/transactions", make_transaction(1))
    assert _retry_after(refused) >= 1 and "Credit limit" in refused.json()["detail"]


def test_batches_in_progress_are_capped_with_a_retry_after_from_their_etas_and_recover(ntropy_emulator):
    ntropy_emulator.configure(items_per_second=1, max_open_batches=2)
    assert _submit(ntropy_emulator, 5).status_code == 200
    assert _submit(ntropy_emulator, 5).status_code == 200
    refused = _submit(ntropy_emulator, 1)
    # The first batch ends 5 s after it started (1 item per second): that is the estimate.
    assert 1 <= _retry_after(refused) <= 5
    assert "Batch limit: 2 batches in progress" in refused.json()["detail"]
    # The sync endpoint shares the cap.
    assert _retry_after(_request(ntropy_emulator, "POST", "/v3/transactions", make_transaction(9))) >= 1
    stats = ntropy_emulator.stats()
    assert stats["rate_limited"] == {"open_batches": 2} and stats["max_open_batches_seen"] == 2
    ntropy_emulator.configure(items_per_second=1_000_000)  # the running batches finish at once
    wait_for(lambda: _submit(ntropy_emulator, 1).status_code == 200, timeout=10)


def test_endpoint_rates_answer_429_naming_the_endpoint_and_recover(ntropy_emulator):
    ntropy_emulator.configure(endpoint_rates={"GET /v3/batches": 1})
    assert _request(ntropy_emulator, "GET", "/v3/batches").status_code == 200
    refused = _request(ntropy_emulator, "GET", "/v3/batches")
    assert _retry_after(refused) == 1
    assert (
        "GET /v3/batches" in refused.json()["detail"] and "1 requests per second" in refused.json()["detail"]
    )
    # Other endpoints have their own buckets.
    assert _request(ntropy_emulator, "GET", "/v3/webhooks").status_code == 200
    assert ntropy_emulator.stats()["rate_limited"] == {"endpoint:GET /v3/batches": 1}
    ntropy_emulator.configure(endpoint_rates={"GET /v3/batches": 1000})  # applies at once, buckets full
    assert _request(ntropy_emulator, "GET", "/v3/batches").status_code == 200


def test_the_documented_rate_is_enforced_by_default(ntropy_emulator):
    # GET /v3/batches/{id} allows 20 per second: 40 requests at once cannot all pass.
    created = _submit(ntropy_emulator, 1).json()
    codes = [_request(ntropy_emulator, "GET", f"/v3/batches/{created['id']}").status_code for _ in range(40)]
    assert codes[0] == 200 and 429 in codes and set(codes) == {200, 429}


def test_limits_off_turns_every_limit_off(ntropy_emulator):
    ntropy_emulator.configure(
        limits=False, credit_capacity=1, max_open_batches=1, items_per_second=1, endpoint_rates={}
    )
    assert [_submit(ntropy_emulator, 5).status_code for _ in range(3)] == [200, 200, 200]
    assert {_request(ntropy_emulator, "GET", "/v3/batches").status_code for _ in range(40)} == {200}
    assert ntropy_emulator.stats()["rate_limited"] == {}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"credit_capacity": 0}, "credit_capacity: expected an integer >= 1"),
        ({"credit_refill_per_second": 0}, "credit_refill_per_second: expected a number > 0"),
        ({"max_open_batches": 1.5}, "max_open_batches: expected an integer >= 1"),
        ({"endpoint_limits": "some"}, "endpoint_limits: expected one of"),
        ({"endpoint_rates": {"GET /v3/nope": 1}}, "endpoint_rates: unknown endpoint"),
        ({"endpoint_rates": {"GET /v3/batches": 0}}, "expected a number > 0"),
        ({"limits": "off"}, "limits: expected true or false"),
        ({"webhook_disable_after_failures": -1}, "webhook_disable_after_failures: expected an integer"),
        ({"webhook_duplicate_rate": 2}, "webhook_duplicate_rate: expected a fraction"),
    ],
)
def test_bad_limit_settings_are_refused_naming_the_setting(changes, message):
    with pytest.raises(ValueError, match=message):
        EmulatorSettings().updated(changes)


def test_limit_settings_change_over_http(ntropy_emulator):
    answer = requests.patch(
        ntropy_emulator.url + "/_emulator/settings", json={"max_open_batches": 3, "limits": True}, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["max_open_batches"] == 3
    bad = requests.patch(
        ntropy_emulator.url + "/_emulator/settings", json={"credit_capacity": -1}, timeout=10
    )
    assert bad.status_code == 422 and "credit_capacity" in bad.json()["detail"]


def test_credit_wait_is_the_time_the_missing_credits_take_to_refill():
    now = [0.0]
    limiter = ApiLimiter(lambda: now[0])
    assert limiter.take_credits("k", 100, refill_per_second=10, capacity=100) == 0  # full at start
    assert limiter.take_credits("k", 30, refill_per_second=10, capacity=100) == pytest.approx(3.0)
    now[0] += 1.0  # 10 credits came back
    assert limiter.take_credits("k", 30, refill_per_second=10, capacity=100) == pytest.approx(2.0)
    assert retry_after_seconds(2.0) == 2 and retry_after_seconds(2.01) == 3 and retry_after_seconds(0.01) == 1
    now[0] += 2.0
    assert limiter.take_credits("k", 30, refill_per_second=10, capacity=100) == 0
    assert limiter.take_credits("other-key", 100, refill_per_second=10, capacity=100) == 0  # per key
