"""The catch-up: batches whose webhook delivery was lost are recorded through the receiver, exactly once.

Policy tests use an in-memory API (both readings of ``created_after``); the end-to-end ones run the
emulator's real deliveries into a real receiver, lose them (consumer paused past the retry window, or
receiver down), disable the webhook as Ntropy does, and run the catch-up as a DAG with ``dag.test()``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import orjson
import pytest

from ntropy_provider.api.models import Batch, Webhook
from ntropy_provider.api.wire import BATCH_WEBHOOK_EVENTS, BatchStatus
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.operators.webhook_catchup import WebhookCatchUpOperator
from ntropy_provider.webhooks.catchup import (
    Delivery,
    WebhookCatchUp,
    catchup_event,
    default_watermark_variable,
    delivers_to,
    parse_watermark,
)

NOW = dt.datetime(2024, 3, 1, 12, 0, tzinfo=dt.UTC)
RECEIVER = "https://airflow.example.com/ntropy/webhooks/ntropy_default"


def _batch(minutes_ago: float, status: str = "completed", ended_minutes_ago: float | None = None) -> Batch:
    created = NOW - dt.timedelta(minutes=minutes_ago)
    ended = NOW - dt.timedelta(minutes=minutes_ago if ended_minutes_ago is None else ended_minutes_ago)
    return Batch(
        id=str(uuid.uuid4()),
        operation="POST /v3/transactions",
        status=BatchStatus(status),
        priority="default",
        created_at=created,
        updated_at=ended,
        progress=3,
        total=3,
    )


@dataclass
class FakeApi:
    """The API as the catch-up sees it; ``created_after`` inclusive or exclusive."""

    batches: list[Batch]
    inclusive: bool = True
    webhooks: list[Webhook] = field(default_factory=list)
    listed_after: list[dt.datetime] = field(default_factory=list)

    def list_batches(self, status: Any = None, created_after: Any = None) -> list[Batch]:
        self.listed_after.append(created_after)
        keep = (
            (lambda b: b.created_at >= created_after)
            if self.inclusive
            else (lambda b: b.created_at > created_after)
        )
        return [b for b in self.batches if keep(b)]

    def list_webhooks(self) -> list[Webhook]:
        return list(self.webhooks)

    def update_webhook(self, webhook_id: str, *, enabled: bool | None = None) -> Webhook:
        [hook] = [w for w in self.webhooks if w.id == webhook_id]
        self.webhooks[self.webhooks.index(hook)] = replace(hook, enabled=bool(enabled))
        return self.webhooks[-1]


class FakeReceiver:
    """Records each batch event once, like the receiver; can refuse everything (503)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.recorded: dict[tuple[str, str], str] = {}

    def __call__(self, event: dict[str, Any]) -> Delivery:
        if self.refuse:
            return Delivery(503, "no unpaused DAG")
        key = (event["data"]["id"], event["event_type"])
        if key in self.recorded:
            return Delivery(200, "duplicate")
        self.recorded[key] = event["event_id"]
        return Delivery(200, "recorded")


class TestPolicy:
    @pytest.mark.parametrize("inclusive", [True, False], ids=["inclusive", "exclusive"])
    def test_every_ended_batch_is_recorded_once_whatever_created_after_means(self, inclusive):
        policy = WebhookCatchUp("ntropy_default", RECEIVER, grace=dt.timedelta(0))
        batches = [_batch(m) for m in (50, 40, 30)]
        api, receiver = FakeApi(batches, inclusive=inclusive), FakeReceiver()
        first = policy.run(api, receiver, watermark=None, now=NOW)
        assert sorted(first.recorded) == sorted(b.id for b in batches)
        # A batch created exactly at the watermark is seen again (overlap), and is only a duplicate.
        at_watermark = replace(_batch(0), created_at=first.watermark_after)
        api.batches.append(at_watermark)
        second = policy.run(api, receiver, watermark=first.watermark_after, now=NOW + dt.timedelta(minutes=1))
        assert second.recorded == [at_watermark.id]
        assert second.duplicates == 3
        assert len(receiver.recorded) == 4
        assert api.listed_after[1] == first.watermark_after - policy.overlap

    def test_unsettled_batches_hold_the_watermark_back(self):
        policy = WebhookCatchUp("ntropy_default", RECEIVER, grace=dt.timedelta(minutes=15))
        processing = _batch(300, "processing")
        just_ended = _batch(200, ended_minutes_ago=5)  # left to the webhook for now
        old = _batch(400)
        report = policy.run(FakeApi([processing, just_ended, old]), FakeReceiver(), watermark=None, now=NOW)
        assert report.recorded == [old.id]
        assert report.waiting == 2
        assert report.watermark_after == processing.created_at

    def test_refused_batches_hold_the_watermark_back_and_are_reported(self):
        policy = WebhookCatchUp("ntropy_default", RECEIVER, grace=dt.timedelta(0))
        batches = [_batch(90), _batch(30)]
        report = policy.run(FakeApi(batches), FakeReceiver(refuse=True), watermark=None, now=NOW)
        assert [batch_id for batch_id, _ in report.refused] == [batches[0].id, batches[1].id]
        assert report.watermark_after == batches[0].created_at

    def test_without_unsettled_batches_the_watermark_is_the_listing_time(self):
        policy = WebhookCatchUp("ntropy_default", RECEIVER, grace=dt.timedelta(0))
        report = policy.run(
            FakeApi([_batch(10)]), FakeReceiver(), watermark=NOW - dt.timedelta(hours=2), now=NOW
        )
        assert report.watermark_after == NOW

    def test_a_batch_stuck_past_the_max_lookback_no_longer_holds_the_watermark(self, caplog):
        policy = WebhookCatchUp("ntropy_default", RECEIVER, max_lookback=dt.timedelta(days=6))
        stuck = _batch(7 * 24 * 60, "processing")
        with caplog.at_level(logging.WARNING):
            report = policy.run(FakeApi([stuck]), FakeReceiver(), watermark=stuck.created_at, now=NOW)
        assert report.watermark_after == NOW
        assert "stops looking" in caplog.text

    def test_only_disabled_webhooks_of_this_receiver_are_enabled_with_a_warning(self, caplog):
        events = tuple(BATCH_WEBHOOK_EVENTS)
        ours = Webhook("w1", RECEIVER, events, enabled=False)
        same_path = Webhook(
            "w2", "http://10.0.0.5:8080/ntropy/webhooks/ntropy_default", events, enabled=False
        )
        other_conn = Webhook("w3", "https://airflow.example.com/ntropy/webhooks/other", events, enabled=False)
        reports_only = Webhook("w4", RECEIVER, ("reports.resolved",), enabled=False)
        api = FakeApi([], webhooks=[ours, same_path, other_conn, reports_only])
        with caplog.at_level(logging.WARNING):
            report = WebhookCatchUp("ntropy_default", RECEIVER).run(api, FakeReceiver(), None, now=NOW)
        assert report.reenabled == ["w1", "w2"]
        assert [w.enabled for w in api.webhooks] == [True, True, False, False]
        assert "disabled webhook w1" in caplog.text

    def test_catchup_event_is_the_documented_delivery_with_a_stable_id(self):
        batch = _batch(10, "error")
        event = catchup_event(batch)
        assert event["event_type"] == "batches.error"
        assert event == catchup_event(batch)
        with pytest.raises(ValueError, match="processing"):
            catchup_event(_batch(10, "processing"))

    def test_delivers_to_needs_batch_events(self):
        assert not delivers_to(Webhook("w", RECEIVER, ("reports.pending",)), RECEIVER, "ntropy_default")

    def test_watermark_text(self):
        assert parse_watermark(None) is None
        assert parse_watermark("2024-03-01T12:00:00Z") == NOW
        with pytest.raises(ValueError, match="watermark"):
            parse_watermark("soon")


# --------------------------------------------------------------------------------------------------
# End to end: emulator -> receiver -> Airflow's DB, the catch-up run as a DAG
# --------------------------------------------------------------------------------------------------
def _transactions(count: int) -> list[dict[str, Any]]:
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


def _run_catchup(conn_id: str, receiver_url: str) -> Any:
    """Run a catch-up DAG for ``conn_id`` with dag.test(); the DAG run."""
    from dag_run_helpers import load_test_dags

    dag = load_test_dags("webhook_catchup_dags").dag
    return dag.test(run_conf={"conn_id": conn_id, "receiver_url": receiver_url})


def _wait_abandoned(ntropy_emulator, kit, count: int) -> None:
    """Wait until Ntropy has given up ``count`` events: past the retry window, or dropped because the
    webhook was disabled after consecutive failures (whichever comes first for each event)."""

    def given_up() -> int:
        deliveries = ntropy_emulator.stats()["webhook_deliveries"]
        return deliveries["abandoned"] + deliveries["dropped"]

    kit.wait_for(lambda: given_up() >= count, 20, f"{count} events given up")


@pytest.fixture
def short_retries(ntropy_emulator):
    """Ntropy retries for 24 h; here for well under a second, so a failing receiver loses events quickly."""
    ntropy_emulator.configure(webhook_retry_initial_seconds=0.05, webhook_retry_window_seconds=0.2)
    return ntropy_emulator


def _disable(hook: NtropyHook, webhook_id: str) -> None:
    # What Ntropy does after consecutive failures (the emulator may do it by itself; the API is the same).
    hook.update_webhook(webhook_id, enabled=False)


def test_consumer_paused_past_the_retry_window_then_caught_up_exactly_once(
    short_retries, receiver_factory, kit
):
    emulator = short_retries
    receiver = receiver_factory(host=emulator.url, password=emulator.api_key)
    hook = NtropyHook(ntropy_conn_id=receiver.conn_id)
    webhook = hook.ensure_webhook(receiver.webhook_url, BATCH_WEBHOOK_EVENTS, receiver.token)
    consumer = f"consumer_{receiver.conn_id}"
    kit.set_paused(consumer, True)  # the receiver answers 503 to every delivery
    batch_ids = {hook.create_batch(_transactions(2)).id for _ in range(5)}
    _wait_abandoned(emulator, kit, 5)
    _disable(hook, webhook.id)
    assert kit.asset_events(receiver.conn_id) == []

    # Still paused: the catch-up fails, naming the batches, and records nothing.
    refused = _run_catchup(receiver.conn_id, receiver.webhook_url)
    assert refused.state == "failed"
    assert kit.asset_events(receiver.conn_id) == []
    assert hook.get_webhook(webhook.id).enabled  # re-enabled all the same

    kit.set_paused(consumer, False)
    assert _run_catchup(receiver.conn_id, receiver.webhook_url).state == "success"
    extras = kit.asset_events(receiver.conn_id)
    assert sorted(e["batch_id"] for e in extras) == sorted(batch_ids)
    assert kit.queued_runs(consumer) == sorted(batch_ids)

    # Again: nothing new. A late real delivery or a replay of any of them: a duplicate.
    assert _run_catchup(receiver.conn_id, receiver.webhook_url).state == "success"
    late = kit.batch_event(batch_id=sorted(batch_ids)[0])
    late["data"]["total"] = late["data"]["progress"] = 2
    answer = httpx.post(receiver.webhook_url, content=orjson.dumps(late), headers=receiver.headers())
    assert answer.json()["status"] == "duplicate"
    assert len(kit.asset_events(receiver.conn_id)) == 5


def test_receiver_down_webhook_disabled_then_caught_up_and_deliveries_resume(
    short_retries, receiver_factory, kit
):
    from airflow.models.variable import Variable  # the metadata DB's, read from outside a task

    emulator = short_retries
    receiver = receiver_factory(host=emulator.url, password=emulator.api_key)
    hook = NtropyHook(ntropy_conn_id=receiver.conn_id)
    # The receiver is "down": Ntropy delivers to a port nobody listens on, at the receiver's path.
    down = f"http://127.0.0.1:9/ntropy/webhooks/{receiver.conn_id}"
    webhook = hook.ensure_webhook(down, BATCH_WEBHOOK_EVENTS, receiver.token)
    lost = {hook.create_batch(_transactions(3)).id for _ in range(3)}
    _wait_abandoned(emulator, kit, 3)
    _disable(hook, webhook.id)

    assert _run_catchup(receiver.conn_id, receiver.webhook_url).state == "success"
    assert sorted(e["batch_id"] for e in kit.asset_events(receiver.conn_id)) == sorted(lost)
    assert hook.get_webhook(webhook.id).enabled
    assert parse_watermark(Variable.get(default_watermark_variable(receiver.conn_id))) is not None

    # The receiver is back at the registered URL: a new batch is delivered by the webhook, and the catch-up
    # finds it recorded (duplicate), not twice.
    hook.update_webhook(webhook.id, url=receiver.webhook_url)
    fresh = hook.create_batch(_transactions(2)).id
    kit.wait_for(lambda: len(kit.asset_events(receiver.conn_id)) == 4, 15, "the webhook's delivery")
    assert _run_catchup(receiver.conn_id, receiver.webhook_url).state == "success"
    extras = kit.asset_events(receiver.conn_id)
    assert sorted(e["batch_id"] for e in extras) == sorted({*lost, fresh})
    [delivered] = [e for e in extras if e["batch_id"] == fresh]
    assert not delivered["event_id"].startswith("catchup:")  # the webhook's own event, kept


def test_operator_refuses_a_connection_without_a_token(ntropy_emulator, receiver_factory):
    receiver = receiver_factory(
        host=ntropy_emulator.url, password=ntropy_emulator.api_key, extra={"webhook_token": ""}
    )
    operator = WebhookCatchUpOperator(
        task_id="t", ntropy_conn_id=receiver.conn_id, receiver_url=receiver.webhook_url
    )
    with pytest.raises(ValueError, match="webhook_token"):
        operator.execute(context={})


def test_refusals_fail_the_run_and_hold_the_watermark_before_the_batch(short_retries, receiver_factory, kit):
    from airflow.models.variable import Variable

    emulator = short_retries
    # No consumer DAG at all: the receiver refuses (503) every event of this connection.
    receiver = receiver_factory(host=emulator.url, password=emulator.api_key, register_asset=False)
    hook = NtropyHook(ntropy_conn_id=receiver.conn_id)
    batch = hook.create_batch(_transactions(1))
    kit.wait_for(lambda: hook.get_batch(batch.id).is_terminal, 15, "the batch to end")
    assert _run_catchup(receiver.conn_id, receiver.webhook_url).state == "failed"
    stored = parse_watermark(Variable.get(default_watermark_variable(receiver.conn_id)))
    assert stored is not None and stored <= hook.get_batch(batch.id).created_at
    assert kit.asset_events(receiver.conn_id) == []
