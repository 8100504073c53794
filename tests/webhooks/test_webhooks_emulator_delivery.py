"""The emulator's own webhook delivery (as Ntropy delivers: POST, retry until 2xx) into the receiver,
registered by EnsureWebhookOperator, recorded in Airflow's DB, with no status polling at all."""

from __future__ import annotations

import json

import pytest

from ntropy_provider.api.wire import (
    BATCH_WEBHOOK_EVENTS,
    WEBHOOK_EVENT_BATCH_COMPLETED,
    WEBHOOK_EVENT_BATCH_ERROR,
)
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.operators.ensure_webhook import EnsureWebhookOperator, MissingWebhookTokenError

STATUS_ROUTE = "GET /v3/batches/{batch_id}"


def transactions(count: int) -> list[dict]:
    return [
        {
            "id": f"t{i}",
            "description": f"STARBUCKS STORE {i}",
            "date": "2024-03-01",
            "amount": 4.5 + i,
            "entry_type": "outgoing",
            "currency": "USD",
            "account_holder_id": None,
        }
        for i in range(count)
    ]


@pytest.fixture
def wired(ntropy_emulator, receiver_factory):
    """A receiver whose connection points at the emulator, and the webhook registered by the operator."""
    receiver = receiver_factory(host=ntropy_emulator.url, password=ntropy_emulator.api_key)
    operator = EnsureWebhookOperator(
        task_id="ensure_webhook", ntropy_conn_id=receiver.conn_id, url=receiver.webhook_url
    )
    return receiver, operator


def recorded(kit, receiver, count: int) -> list[dict]:
    kit.wait_for(lambda: len(kit.asset_events(receiver.conn_id)) >= count, 15, f"{count} asset event(s)")
    return kit.asset_events(receiver.conn_id)


def test_completed_batch_is_delivered_and_recorded_without_polling(wired, ntropy_emulator, kit):
    receiver, operator = wired
    webhook = operator.execute(context={})
    assert webhook["url"] == receiver.webhook_url
    assert sorted(webhook["events"]) == sorted(BATCH_WEBHOOK_EVENTS)
    assert receiver.token not in json.dumps(webhook)

    batch = NtropyHook(ntropy_conn_id=receiver.conn_id).create_batch(transactions(10))
    [extra] = recorded(kit, receiver, 1)
    assert (extra["batch_id"], extra["event_type"]) == (batch.id, WEBHOOK_EVENT_BATCH_COMPLETED)
    assert (extra["status"], extra["total"]) == ("completed", 10)
    stats = ntropy_emulator.stats()
    assert stats["requests"].get(STATUS_ROUTE, 0) == 0
    kit.wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1, 5, "delivery ack")


def test_errored_batch_is_recorded_as_an_error_event(wired, ntropy_emulator, kit):
    receiver, operator = wired
    ntropy_emulator.configure(batch_error_rate=1.0)
    operator.execute(context={})
    batch = NtropyHook(ntropy_conn_id=receiver.conn_id).create_batch(transactions(4))
    [extra] = recorded(kit, receiver, 1)
    assert (extra["batch_id"], extra["event_type"], extra["status"]) == (
        batch.id,
        WEBHOOK_EVENT_BATCH_ERROR,
        "error",
    )


def test_refused_deliveries_are_retried_and_recorded_once_the_token_is_right(wired, ntropy_emulator, kit):
    receiver, operator = wired
    hook = NtropyHook(ntropy_conn_id=receiver.conn_id)
    # Registered with a stale token: the receiver answers 401 and the emulator keeps retrying.
    webhook = hook.ensure_webhook(receiver.webhook_url, BATCH_WEBHOOK_EVENTS, "stale-token")
    batch = hook.create_batch(transactions(3))
    kit.wait_for(
        lambda: ntropy_emulator.stats()["webhook_deliveries"]["failed_attempts"] >= 2, 15, "refused attempts"
    )
    assert kit.asset_events(receiver.conn_id) == []
    # Rotating the token the operator's way: same URL, the webhook is updated rather than duplicated.
    again = operator.execute(context={})
    assert again["webhook_id"] == webhook.id
    assert len(hook.list_webhooks()) == 1
    [extra] = recorded(kit, receiver, 1)
    assert extra["batch_id"] == batch.id
    kit.wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1, 5, "delivery ack")
    assert len(kit.asset_events(receiver.conn_id)) == 1


def test_many_batches_each_recorded_exactly_once(wired, ntropy_emulator, kit):
    receiver, operator = wired
    operator.execute(context={})
    hook = NtropyHook(ntropy_conn_id=receiver.conn_id)
    batch_ids = {hook.create_batch(transactions(2)).id for _ in range(20)}
    extras = recorded(kit, receiver, 20)
    kit.wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 20, 10, "acks")
    extras = kit.asset_events(receiver.conn_id)
    assert sorted(e["batch_id"] for e in extras) == sorted(batch_ids)
    assert len({e["event_id"] for e in extras}) == 20
    assert ntropy_emulator.stats()["requests"].get(STATUS_ROUTE, 0) == 0


def test_operator_is_idempotent(wired):
    receiver, operator = wired
    first, second = operator.execute(context={}), operator.execute(context={})
    assert first == second
    assert len(NtropyHook(ntropy_conn_id=receiver.conn_id).list_webhooks()) == 1


def test_operator_refuses_a_connection_without_a_token(ntropy_emulator, receiver_factory):
    receiver = receiver_factory(
        host=ntropy_emulator.url, password=ntropy_emulator.api_key, extra={"webhook_token": ""}
    )
    operator = EnsureWebhookOperator(task_id="t", ntropy_conn_id=receiver.conn_id, url=receiver.webhook_url)
    with pytest.raises(MissingWebhookTokenError, match="webhook_token"):
        operator.execute(context={})
    assert NtropyHook(ntropy_conn_id=receiver.conn_id).list_webhooks() == []


def test_operator_default_url_is_the_api_servers_base_url(ntropy_emulator, receiver_factory, monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    receiver = receiver_factory(host=ntropy_emulator.url, password=ntropy_emulator.api_key)
    result = EnsureWebhookOperator(task_id="t", ntropy_conn_id=receiver.conn_id).execute(context={})
    assert result["url"] == f"https://airflow.example.com/ntropy/webhooks/{receiver.conn_id}"


def test_operator_rejects_unknown_events():
    with pytest.raises(ValueError, match="events"):
        EnsureWebhookOperator(task_id="t", events=["batches.done"])
