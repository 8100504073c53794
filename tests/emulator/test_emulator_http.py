"""The emulator over plain HTTP: shapes, status codes, headers, paging, validation and progress."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import re
from typing import Any

import pytest
import requests

from ntropy_provider.api.models import Batch, BatchResult
from ntropy_provider.api.transaction_input import TRANSACTION_FIELDS
from ntropy_provider.api.wire import MAX_BATCH_SIZE
from ntropy_provider.emulator.testing import make_transaction, wait_for

OPERATION = "POST /v3/transactions"


class Api:
    """A tiny client: base URL + API key, answers returned as they come."""

    def __init__(self, emulator: Any, key: str | None = None) -> None:
        self.url = emulator.url
        self.session = requests.Session()
        if key is not None:
            self.session.headers["X-API-Key"] = key

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.request(method, self.url + path, **kwargs)

    def batch(self, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        answer = self("POST", "/v3/batches", json={"operation": OPERATION, "data": items, **extra})
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def api(ntropy_emulator: Any) -> Api:
    return Api(ntropy_emulator, ntropy_emulator.api_key)


def assert_json(answer: requests.Response, status: int) -> Any:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    if isinstance(body, dict):
        assert "request_id" not in body
    return body


# --------------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------------
def test_request_id_is_echoed_or_generated(api):
    answer = api("GET", "/v3/batches", headers={"X-Request-ID": "a" * 32})
    assert answer.headers["x-request-id"] == "a" * 32
    generated = api("GET", "/v3/batches").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    # Errors carry it too.
    assert (
        api("GET", "/v3/batches/nope", headers={"X-Request-ID": "b" * 32}).headers["x-request-id"] == "b" * 32
    )


def test_every_error_answer_is_json(api, ntropy_emulator):
    assert "detail" in assert_json(Api(ntropy_emulator)("GET", "/v3/batches"), 401)
    assert "detail" in assert_json(Api(ntropy_emulator, "wrong")("GET", "/v3/batches"), 401)
    assert_json(api("GET", "/v3/batches/unknown"), 404)
    assert_json(api("GET", "/v3/nothing-here"), 404)
    assert_json(api("PUT", "/v3/batches"), 405)
    assert_json(api("POST", "/v3/batches", data=b"{not json"), 422)


def test_admin_routes_need_no_key(ntropy_emulator):
    anonymous = Api(ntropy_emulator)
    assert assert_json(anonymous("GET", "/_emulator/settings"), 200)["items_per_second"] > 0
    patched = assert_json(anonymous("PATCH", "/_emulator/settings", json={"latency_ms": 1}), 200)
    assert patched["latency_ms"] == 1
    assert ntropy_emulator.settings()["latency_ms"] == 1
    assert "unknown setting" in str(
        assert_json(anonymous("PATCH", "/_emulator/settings", json={"x": 1}), 422)
    )
    assert_json(anonymous("PATCH", "/_emulator/settings", json={"fail_rate": "high"}), 422)
    assert assert_json(anonymous("GET", "/_emulator/stats"), 200)["batches_created"] == 0
    assert_json(anonymous("POST", "/_emulator/reset"), 200)
    assert ntropy_emulator.settings()["latency_ms"] == 0


# --------------------------------------------------------------------------------------------------
# Batches
# --------------------------------------------------------------------------------------------------
def test_batch_shape_and_results_in_submission_order(api):
    items = [make_transaction(i, description=f"NETFLIX.COM {i}") for i in range(30)]
    created = api.batch(items)
    Batch.from_dict(created)
    assert created["operation"] == OPERATION and created["priority"] == "default"
    assert created["total"] == 30 and created["created_at"].endswith("Z")
    done = wait_for(
        lambda: (b := api("GET", f"/v3/batches/{created['id']}").json())["status"] == "completed" and b
    )
    assert done["progress"] == 30
    results = assert_json(api("GET", f"/v3/batches/{created['id']}/results"), 200)
    parsed = BatchResult.from_dict(results)
    assert parsed.status == "completed" and parsed.total == 30
    assert [r["id"] for r in results["results"]] == [f"tx-{i}" for i in range(30)]
    assert all(r["entities"]["counterparty"]["name"] == "Netflix" for r in results["results"])


def test_progress_counts_up_and_follows_a_speed_change(api, ntropy_emulator):
    ntropy_emulator.configure(items_per_second=2)
    created = api.batch([make_transaction(i) for i in range(1000)])
    first = api("GET", f"/v3/batches/{created['id']}").json()
    assert first["status"] == "processing" and first["progress"] < 1000
    assert_json(api("GET", f"/v3/batches/{created['id']}/results"), 409)
    ntropy_emulator.configure(items_per_second=1_000_000)
    done = wait_for(
        lambda: (b := api("GET", f"/v3/batches/{created['id']}").json())["status"] == "completed" and b
    )
    assert done["progress"] == 1000 >= first["progress"]
    assert done["updated_at"] >= done["created_at"]


def test_processing_batches_do_not_block_other_requests(api, ntropy_emulator):
    # About the loop staying free with many batches running: the cap of 10 in progress is raised.
    ntropy_emulator.configure(items_per_second=1, max_open_batches=20)
    ids = [api.batch([make_transaction(i)] * 1)["id"] for i in range(20)]
    # Many running batches, yet every other call answers right away, with the right status.
    listed = api("GET", "/v3/batches", params={"limit": 50}).json()["data"]
    assert {b["id"] for b in listed} == set(ids)
    assert {b["status"] for b in listed} == {"processing"}


def test_results_are_built_once_kept_compressed_and_the_input_is_dropped(api, ntropy_emulator):
    created = api.batch([make_transaction(i) for i in range(50)])
    wait_for(lambda: ntropy_emulator.stats()["batches_completed"] == 1)
    record = ntropy_emulator.emulator.batches[created["id"]]
    assert record.raw is None and isinstance(record.results_gzip, bytes)
    path = f"/v3/batches/{created['id']}/results"
    first = api("GET", path)
    assert first.headers["content-encoding"] == "gzip"
    assert first.content == gzip.decompress(record.results_gzip)
    plain = api("GET", path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == first.content and plain.json()["results"][49]["id"] == "tx-49"


def test_a_full_batch_is_accepted_and_an_oversized_one_rejected(api, ntropy_emulator):
    ntropy_emulator.configure(items_per_second=1_000_000)
    full = api.batch([make_transaction(i) for i in range(MAX_BATCH_SIZE)])
    assert full["total"] == MAX_BATCH_SIZE
    too_many = api(
        "POST", "/v3/batches", json={"operation": OPERATION, "data": [make_transaction()] * 24_961}
    )
    assert "1 to 24960 items" in str(assert_json(too_many, 422))
    wait_for(lambda: api("GET", f"/v3/batches/{full['id']}").json()["status"] == "completed")
    results = api("GET", f"/v3/batches/{full['id']}/results").json()["results"]
    assert len(results) == MAX_BATCH_SIZE and results[-1]["id"] == f"tx-{MAX_BATCH_SIZE - 1}"


def test_injected_batch_error(api, ntropy_emulator):
    ntropy_emulator.configure(batch_error_rate=1.0)
    created = api.batch([make_transaction(i) for i in range(10)])
    errored = wait_for(
        lambda: (b := api("GET", f"/v3/batches/{created['id']}").json())["status"] == "error" and b
    )
    assert errored["progress"] < errored["total"]
    assert "error" in assert_json(api("GET", f"/v3/batches/{created['id']}/results"), 409)["detail"]
    wait_for(lambda: ntropy_emulator.stats()["batches_errored"] == 1)


def test_item_errors_stay_local_to_their_item(api, ntropy_emulator):
    assert_json(api("POST", "/v3/account_holders", json={"id": "biz", "type": "business"}), 200)
    items = [
        make_transaction(0, account_holder_id="biz"),
        make_transaction(1, account_holder_id="ghost"),
        make_transaction(2),
    ]
    created = api.batch(items)
    wait_for(lambda: api("GET", f"/v3/batches/{created['id']}").json()["status"] == "completed")
    ok, missing, no_holder = api("GET", f"/v3/batches/{created['id']}/results").json()["results"]
    assert ok["error"] is None and ok["categories"] == {
        "general": "coffee shops",
        "accounting": "operational expenses",
    }
    assert missing["error"]["code"] == "account_holder_not_found" and missing["entities"] is None
    assert no_holder["error"] is None
    assert no_holder["categories"] == {"general": "missing account holder information", "accounting": None}


def test_item_error_rate_gives_internal_errors(api, ntropy_emulator):
    ntropy_emulator.configure(item_error_rate=1.0)
    created = api.batch([make_transaction(i) for i in range(5)])
    wait_for(lambda: api("GET", f"/v3/batches/{created['id']}").json()["status"] == "completed")
    results = api("GET", f"/v3/batches/{created['id']}/results").json()["results"]
    assert {r["error"]["code"] for r in results} == {"internal_error"}


# --------------------------------------------------------------------------------------------------
# Listing
# --------------------------------------------------------------------------------------------------
# Needs 25 batches at once: a faster POST /v3/batches rate than the documented 20/s.
@pytest.mark.ntropy_emulator(endpoint_rates={"POST /v3/batches": 1000})
def test_cursor_paging_newest_first(api):
    ids = [api.batch([make_transaction(i)])["id"] for i in range(25)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = assert_json(api("GET", "/v3/batches", params=params), 200)
        assert set(page) == {"next_cursor", "data"}
        seen += [b["id"] for b in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == ids[::-1]
    default = api("GET", "/v3/batches").json()
    assert len(default["data"]) == 10 and default["next_cursor"] is not None


def test_list_filters_by_status_and_creation_time(api, ntropy_emulator):
    early = [api.batch([make_transaction(i)])["id"] for i in range(3)]
    wait_for(lambda: ntropy_emulator.stats()["batches_completed"] == 3)
    boundary = dt.datetime.fromisoformat(api("GET", f"/v3/batches/{early[-1]}").json()["created_at"])
    ntropy_emulator.configure(items_per_second=0.001)
    late = [api.batch([make_transaction(i)])["id"] for i in range(2)]
    processing = api("GET", "/v3/batches", params={"status": "processing"}).json()["data"]
    assert [b["id"] for b in processing] == late[::-1]
    completed = api("GET", "/v3/batches", params={"status": "completed"}).json()["data"]
    assert [b["id"] for b in completed] == early[::-1]
    # created_after is inclusive, created_before exclusive; both ISO 'Z' and str(datetime) forms.
    for form in (boundary.isoformat().replace("+00:00", "Z"), str(boundary)):
        after = api("GET", "/v3/batches", params={"created_after": form}).json()["data"]
        assert [b["id"] for b in after] == [*late[::-1], early[-1]]
        before = api("GET", "/v3/batches", params={"created_before": form}).json()["data"]
        assert [b["id"] for b in before] == early[:-1][::-1]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "ten"},
        {"limit": 0},
        {"limit": 100_000},
        {"cursor": "not-a-cursor"},
        {"cursor": "\u00b2"},  # a digit to str.isdigit(), not to int()
        {"status": "done"},
        {"created_after": "yesterday"},
    ],
)
def test_bad_list_parameters_are_422(api, params):
    detail = assert_json(api("GET", "/v3/batches", params=params), 422)["detail"]
    assert detail[0]["loc"] == ["query", next(iter(params))]


# --------------------------------------------------------------------------------------------------
# Validation: 422 naming the item and the field; never a 500 for bad input
# --------------------------------------------------------------------------------------------------
def test_422_names_the_item_index_and_field(api):
    items = [make_transaction(i) for i in range(5)]
    items[3]["amount"] = "12.50"
    items[4]["location"] = {"raw_address": "x", "country": "usa"}
    body = {"operation": OPERATION, "data": items}
    detail = assert_json(api("POST", "/v3/batches", json=body), 422)["detail"]
    assert [e["loc"] for e in detail] == [
        ["body", "data", 3, "amount"],
        ["body", "data", 4, "location", "country"],
    ]
    assert "expected a number" in detail[0]["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"operation": OPERATION, "data": []},
        {"operation": "POST /v2/transactions", "data": [make_transaction()]},
        {"operation": {}, "data": [make_transaction()]},  # unhashable: must not reach the set lookup
        {"operation": [OPERATION], "data": [make_transaction()]},
        {"operation": OPERATION, "data": "nope"},
        {"operation": OPERATION},
        {"operation": OPERATION, "data": [make_transaction()], "priority": "urgent"},
        {"operation": OPERATION, "data": [1, None, "x"]},
        {"operation": OPERATION, "data": [{**make_transaction(), "ammount": 1}]},
        [1, 2, 3],
        "just a string",
        None,
    ],
)
def test_bad_batch_requests_are_422(api, body):
    assert_json(api("POST", "/v3/batches", json=body), 422)


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v3/batches", "POST"),
        ("/v3/transactions", "POST"),
        ("/v3/account_holders", "POST"),
        ("/v3/webhooks", "POST"),
    ],
)
@pytest.mark.parametrize(
    "payload",
    [b"", b"{", b"\xff\xfe", b"[]", b"123", b'{"id": 5, "type": [], "url": 1, "events": "x", "data": {}}'],
)
def test_garbage_bodies_never_cause_a_500(api, path, method, payload):
    answer = api(method, path, data=payload, headers={"Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/json"


def test_unknown_ids_are_404(api):
    for path in ("/v3/batches/x", "/v3/batches/x/results", "/v3/account_holders/x", "/v3/webhooks/x"):
        assert "not found" in assert_json(api("GET", path), 404)["detail"]
    assert_json(api("DELETE", "/v3/account_holders/x"), 404)
    assert_json(api("DELETE", "/v3/webhooks/x"), 404)
    assert_json(api("PATCH", "/v3/webhooks/x", json={"enabled": False}), 404)


# --------------------------------------------------------------------------------------------------
# Sync enrichment, account holders, webhooks CRUD
# --------------------------------------------------------------------------------------------------
def test_sync_transaction(api):
    api("POST", "/v3/account_holders", json={"id": "me", "type": "consumer"})
    tx = make_transaction(
        description="Venmo payment from Jane Doe", entry_type="incoming", account_holder_id="me"
    )
    enriched = assert_json(api("POST", "/v3/transactions", json=tx), 200)
    assert enriched["entities"]["counterparty"] == {
        **enriched["entities"]["counterparty"],
        "type": "person",
        "name": "Jane Doe",
    }
    assert enriched["entities"]["intermediaries"][0]["name"] == "Venmo"
    assert enriched["categories"]["accounting"] is None  # consumer holders get no accounting category
    bad = assert_json(api("POST", "/v3/transactions", json={**tx, "currency": "usd"}), 422)["detail"]
    assert bad[0]["loc"] == ["body", "currency"]


def test_account_holders_crud(api):
    body = {"id": "acme", "type": "business", "name": "Acme", "category_id": None, "request_id": None}
    created = assert_json(api("POST", "/v3/account_holders", json=body), 200)
    assert set(created) == {"id", "type", "name", "category_id", "created_at"}
    assert "already exists" in assert_json(api("POST", "/v3/account_holders", json=body), 400)["detail"]
    assert assert_json(api("GET", "/v3/account_holders/acme"), 200) == created
    assert assert_json(api("GET", "/v3/account_holders"), 200)["data"] == [created]
    deleted = api("DELETE", "/v3/account_holders/acme")
    assert deleted.status_code == 204 and deleted.content == b""
    assert_json(api("GET", "/v3/account_holders/acme"), 404)
    assert_json(api("POST", "/v3/account_holders", json={"id": "x", "type": "robot"}), 422)
    assert_json(api("POST", "/v3/account_holders", json={"id": "", "type": "consumer"}), 422)


# Creates 12 webhooks at once: a faster POST /v3/webhooks rate than the documented 10/s.
@pytest.mark.ntropy_emulator(endpoint_rates={"POST /v3/webhooks": 1000})
def test_webhooks_crud_and_limit(api):
    body = {
        "url": "http://127.0.0.1:9/hook",
        "events": ["batches.completed"],
        "token": "s3cret",
        "hmac_secret": None,
    }
    created = assert_json(api("POST", "/v3/webhooks", json=body), 200)
    assert set(created) == {"id", "created_at", "url", "events", "token", "enabled"}
    assert created["enabled"] is True
    patched = assert_json(api("PATCH", f"/v3/webhooks/{created['id']}", json={"enabled": False}), 200)
    assert (
        patched["enabled"] is False and api("GET", f"/v3/webhooks/{created['id']}").json()["enabled"] is False
    )
    for _ in range(9):
        assert_json(api("POST", "/v3/webhooks", json=body), 200)
    assert "At most 10" in assert_json(api("POST", "/v3/webhooks", json=body), 400)["detail"]
    listed = assert_json(api("GET", "/v3/webhooks"), 200)
    assert listed["next_cursor"] is None and len(listed["data"]) == 10
    assert api("DELETE", f"/v3/webhooks/{created['id']}").status_code == 204
    assert_json(api("POST", "/v3/webhooks", json={**body, "events": ["batches.exploded"]}), 422)
    assert_json(api("POST", "/v3/webhooks", json={**body, "url": "ftp://x"}), 422)
    assert_json(api("PATCH", f"/v3/webhooks/{listed['data'][0]['id']}", json={"enabled": "yes"}), 422)


def test_credits_and_forbidden_keys(api, ntropy_emulator):
    ntropy_emulator.configure(credits=3)
    api.batch([make_transaction(i) for i in range(2)])
    too_many = api("POST", "/v3/batches", json={"operation": OPERATION, "data": [make_transaction()] * 2})
    assert "credits" in assert_json(too_many, 423)["detail"]
    ntropy_emulator.configure(api_keys=["test-key", "no-batches"], forbidden_keys=["no-batches"])
    assert_json(Api(ntropy_emulator, "no-batches")("GET", "/v3/batches"), 403)


# 60 quick submissions: a faster POST /v3/batches rate than the documented 20/s.
@pytest.mark.ntropy_emulator(endpoint_rates={"POST /v3/batches": 1000})
def test_fuzzed_items_get_200_or_422_never_500(api):
    rng = random.Random(1234)
    values = [
        None,
        "",
        "x" * 2000,
        "USD",
        "2024-02-30",
        "2024-01-01",
        -1,
        0,
        1.5,
        10**30,
        True,
        [],
        {},
        [1],
        {"a": 1},
    ]
    statuses = set()
    for round_ in range(60):
        item = make_transaction(round_)
        for name in rng.sample(TRANSACTION_FIELDS, rng.randint(1, 3)):
            item[name] = rng.choice(values)
        if rng.random() < 0.2:
            item["location"] = {"raw_address": rng.choice(values), "country": rng.choice(values)}
        answer = api("POST", "/v3/batches", json={"operation": OPERATION, "data": [make_transaction(), item]})
        statuses.add(answer.status_code)
        assert answer.status_code in (200, 422), answer.text
        if answer.status_code == 422:
            assert all(error["loc"][:3] == ["body", "data", 1] for error in answer.json()["detail"])
    assert statuses == {200, 422}


def test_extended_accounting_categories_are_served_only_when_the_setting_is_on(api, ntropy_emulator):
    assert_json(api("POST", "/v3/account_holders", json={"id": "biz", "type": "business"}), 200)
    tx = make_transaction(0, description="xq9 zzkk 77", account_holder_id="biz")
    plain = assert_json(api("POST", "/v3/transactions", json=tx), 200)
    assert plain["categories"] == {"general": "not enough information", "accounting": None}
    ntropy_emulator.configure(extended_accounting_categories=True)
    extended = assert_json(api("POST", "/v3/transactions", json=tx), 200)
    assert extended["categories"] == {
        "general": "not enough information",
        "accounting": "not enough information",
    }
    created = api.batch([tx])
    wait_for(lambda: api("GET", f"/v3/batches/{created['id']}").json()["status"] == "completed")
    (result,) = api("GET", f"/v3/batches/{created['id']}/results").json()["results"]
    assert result["categories"]["accounting"] == "not enough information"
