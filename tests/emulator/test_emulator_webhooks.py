"""Webhook delivery to a real receiver on loopback: without polling, with token, retried with one event_id."""

from __future__ import annotations

import requests

from ntropy_provider.api.models import WebhookEvent
from ntropy_provider.emulator.testing import WebhookReceiver, make_transaction, wait_for


def _post(emulator, path, body):
    answer = requests.post(
        emulator.url + path, json=body, headers={"X-API-Key": emulator.api_key}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _batch(emulator, count=3):
    body = {"operation": "POST /v3/transactions", "data": [make_transaction(i) for i in range(count)]}
    return _post(emulator, "/v3/batches", body)


def test_completed_batch_is_delivered_without_polling(ntropy_emulator, webhook_receiver):
    hook = {"url": webhook_receiver.url, "events": ["batches.completed", "batches.error"], "token": "tkn-123"}
    _post(ntropy_emulator, "/v3/webhooks", hook)
    batch = _batch(ntropy_emulator)
    # Nobody asks about the batch: the emulator's own timer must end it and deliver.
    wait_for(lambda: webhook_receiver.received)
    headers, body = webhook_receiver.received[0]
    assert headers["X-Ntropy-Token"] == "tkn-123"
    assert headers["Content-Type"] == "application/json"
    event = WebhookEvent.from_dict(body)
    assert event.event_type == "batches.completed"
    assert (
        event.data["id"] == batch["id"]
        and event.data["status"] == "completed"
        and event.data["progress"] == 3
    )
    # The results are ready by the time the event arrives.
    results = requests.get(
        f"{ntropy_emulator.url}/v3/batches/{batch['id']}/results",
        headers={"X-API-Key": ntropy_emulator.api_key},
        timeout=10,
    )
    assert results.status_code == 200
    assert ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1


def test_error_batch_fires_batches_error_only_to_subscribers(ntropy_emulator, webhook_receiver):
    with WebhookReceiver() as completed_only:
        _post(ntropy_emulator, "/v3/webhooks", {"url": webhook_receiver.url, "events": ["batches.error"]})
        _post(ntropy_emulator, "/v3/webhooks", {"url": completed_only.url, "events": ["batches.completed"]})
        ntropy_emulator.configure(batch_error_rate=1.0)
        batch = _batch(ntropy_emulator)
        wait_for(lambda: webhook_receiver.received)
        headers, body = webhook_receiver.received[0]
        assert "X-Ntropy-Token" not in headers  # no token registered, none sent
        assert body["event_type"] == "batches.error" and body["data"]["id"] == batch["id"]
        assert body["data"]["status"] == "error"
        wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1)
        assert completed_only.received == []


def test_failed_deliveries_are_retried_with_the_same_event_id(ntropy_emulator):
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.05)
    with WebhookReceiver(fail_first=3) as receiver:
        _post(
            ntropy_emulator,
            "/v3/webhooks",
            {"url": receiver.url, "events": ["batches.completed"], "token": "t"},
        )
        _batch(ntropy_emulator)
        wait_for(lambda: len(receiver.received) == 4)
        ids = {body["event_id"] for body in receiver.bodies()}
        assert len(ids) == 1
        deliveries = wait_for(
            lambda: (d := ntropy_emulator.stats()["webhook_deliveries"])["delivered"] == 1 and d
        )
        assert deliveries == {
            "attempts": 4,
            "delivered": 1,
            "failed_attempts": 3,
            "abandoned": 0,
            "dropped": 0,
        }


def test_unreachable_receiver_is_retried_then_abandoned_after_the_window(ntropy_emulator):
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.05, webhook_retry_window_seconds=0.3)
    _post(
        ntropy_emulator, "/v3/webhooks", {"url": "http://127.0.0.1:9/closed", "events": ["batches.completed"]}
    )
    _batch(ntropy_emulator)
    deliveries = wait_for(
        lambda: (d := ntropy_emulator.stats()["webhook_deliveries"])["abandoned"] == 1 and d
    )
    assert deliveries["attempts"] >= 2 and deliveries["delivered"] == 0


def test_disabled_webhook_gets_nothing(ntropy_emulator, webhook_receiver):
    hook = _post(
        ntropy_emulator, "/v3/webhooks", {"url": webhook_receiver.url, "events": ["batches.completed"]}
    )
    requests.patch(
        f"{ntropy_emulator.url}/v3/webhooks/{hook['id']}",
        json={"enabled": False},
        headers={"X-API-Key": ntropy_emulator.api_key},
        timeout=10,
    )
    with WebhookReceiver() as control:
        _post(ntropy_emulator, "/v3/webhooks", {"url": control.url, "events": ["batches.completed"]})
        _batch(ntropy_emulator)
        # Once the enabled webhook has its event, the disabled one would have had it too.
        wait_for(lambda: control.received)
    assert ntropy_emulator.stats()["webhook_deliveries"]["attempts"] == 1
    assert webhook_receiver.received == []


def test_a_receiver_that_does_not_answer_in_time_gets_the_event_again(ntropy_emulator):
    ntropy_emulator.configure(webhook_timeout_seconds=0.3, webhook_retry_initial_seconds=0.05)
    with WebhookReceiver(stall_first=1) as receiver:
        _post(ntropy_emulator, "/v3/webhooks", {"url": receiver.url, "events": ["batches.completed"]})
        _batch(ntropy_emulator)
        deliveries = wait_for(
            lambda: (d := ntropy_emulator.stats()["webhook_deliveries"])["delivered"] == 1 and d
        )
        assert deliveries["failed_attempts"] == 1
        first, second = receiver.bodies()
        assert first["event_id"] == second["event_id"]


def test_deleting_a_webhook_stops_its_retries(ntropy_emulator):
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.05, webhook_retry_max_seconds=0.05)
    with WebhookReceiver(fail_first=10_000) as receiver:
        hook = _post(ntropy_emulator, "/v3/webhooks", {"url": receiver.url, "events": ["batches.completed"]})
        _batch(ntropy_emulator)
        wait_for(lambda: len(receiver.received) >= 2)
        requests.delete(
            f"{ntropy_emulator.url}/v3/webhooks/{hook['id']}",
            headers={"X-API-Key": ntropy_emulator.api_key},
            timeout=10,
        )
        stopped_at = ntropy_emulator.stats()["webhook_deliveries"]["attempts"]
        # A further batch on another webhook proves time has passed; the deleted one got nothing more.
        with WebhookReceiver() as control:
            _post(ntropy_emulator, "/v3/webhooks", {"url": control.url, "events": ["batches.completed"]})
            _batch(ntropy_emulator)
            wait_for(lambda: control.received)
            wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1)
        assert (
            ntropy_emulator.stats()["webhook_deliveries"]["attempts"] == stopped_at + 1
        )  # the control's one


def _webhook(emulator, webhook_id):
    answer = requests.get(
        f"{emulator.url}/v3/webhooks/{webhook_id}", headers={"X-API-Key": emulator.api_key}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_webhook_is_disabled_after_consecutive_failures_and_patch_re_enables_it(ntropy_emulator):
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.01, webhook_disable_after_failures=3)
    with WebhookReceiver(fail_first=3) as receiver:
        hook = _post(ntropy_emulator, "/v3/webhooks", {"url": receiver.url, "events": ["batches.completed"]})
        _batch(ntropy_emulator)
        wait_for(lambda: _webhook(ntropy_emulator, hook["id"])["enabled"] is False)
        # Disabled on the third failure: no fourth attempt of that event.
        assert len(receiver.received) == 3
        assert ntropy_emulator.stats()["webhooks_disabled"] == 1
        answer = requests.patch(
            f"{ntropy_emulator.url}/v3/webhooks/{hook['id']}",
            json={"enabled": True},
            headers={"X-API-Key": ntropy_emulator.api_key},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["enabled"] is True
        second = _batch(ntropy_emulator)
        wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1)
        assert receiver.bodies()[-1]["data"]["id"] == second["id"]
        assert _webhook(ntropy_emulator, hook["id"])["enabled"] is True


def test_a_success_resets_the_count_of_consecutive_failures(ntropy_emulator):
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.01, webhook_disable_after_failures=3)
    with WebhookReceiver(fail_first=2) as receiver:
        hook = _post(ntropy_emulator, "/v3/webhooks", {"url": receiver.url, "events": ["batches.completed"]})
        _batch(ntropy_emulator)
        wait_for(lambda: ntropy_emulator.stats()["webhook_deliveries"]["delivered"] == 1)
        assert _webhook(ntropy_emulator, hook["id"])["enabled"] is True
        assert ntropy_emulator.emulator.webhooks[hook["id"]]["_consecutive_failures"] == 0


def test_some_successful_deliveries_arrive_twice_with_the_same_event_id(ntropy_emulator, webhook_receiver):
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.01, webhook_duplicate_rate=1.0)
    _post(ntropy_emulator, "/v3/webhooks", {"url": webhook_receiver.url, "events": ["batches.completed"]})
    _batch(ntropy_emulator)
    wait_for(lambda: len(webhook_receiver.received) == 2)
    first, second = webhook_receiver.bodies()
    assert first == second
    wait_for(lambda: ntropy_emulator.stats()["webhook_duplicates"] == 1)


def test_url_and_token_lengths_are_enforced(ntropy_emulator):
    def create(url, token):
        return requests.post(
            f"{ntropy_emulator.url}/v3/webhooks",
            json={"url": url, "events": ["batches.completed"], "token": token},
            headers={"X-API-Key": ntropy_emulator.api_key},
            timeout=10,
        )

    base = "http://127.0.0.1:9/"
    longest = base + "x" * (1024 - len(base))
    assert create(longest, "t" * 128).status_code == 200
    too_long_url = create(longest + "x", None)
    assert too_long_url.status_code == 422 and "url: at most 1024" in str(too_long_url.json())
    too_long_token = create(base, "t" * 129)
    assert too_long_token.status_code == 422 and "token: at most 128" in str(too_long_token.json())
