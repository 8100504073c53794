"""Account holders and webhooks through the sync hook: CRUD, and the idempotent ``ensure_*`` calls."""

from __future__ import annotations

import pytest

from ntropy_provider.exceptions import NtropyNotFoundError, NtropyValidationError
from ntropy_provider.hooks.ntropy import NtropyHook

URL = "https://airflow.example.com/ntropy/webhooks"
EVENTS = ["batches.completed", "batches.error"]


def test_account_holder_create_get_and_duplicate(hook: NtropyHook) -> None:
    created = hook.create_account_holder("acme-1", "business", name="Acme Inc.")
    assert (created.id, created.type, created.name) == ("acme-1", "business", "Acme Inc.")
    assert hook.get_account_holder("acme-1") == created
    with pytest.raises(NtropyValidationError) as info:
        hook.create_account_holder("acme-1", "business")
    assert info.value.status == 400
    with pytest.raises(NtropyNotFoundError):
        hook.get_account_holder("nobody")
    with pytest.raises(ValueError, match="type: expected one of consumer, business"):
        hook.create_account_holder("x", "person")


def test_ensure_account_holder_is_idempotent(hook: NtropyHook, ntropy_emulator) -> None:
    first = hook.ensure_account_holder("jane doe 1", "consumer", name="Jane")
    second = hook.ensure_account_holder("jane doe 1", "consumer", name="Jane")
    assert first == second and first.id == "jane doe 1"  # ids needing URL quoting round-trip
    assert ntropy_emulator.stats()["requests"]["POST /v3/account_holders"] == 1


def test_webhook_crud(hook: NtropyHook) -> None:
    webhook = hook.create_webhook(URL, EVENTS, token="tok-abcdef")
    assert (webhook.url, set(webhook.events), webhook.enabled) == (URL, set(EVENTS), True)
    assert hook.get_webhook(webhook.id).id == webhook.id
    assert [w.id for w in hook.list_webhooks()] == [webhook.id]
    updated = hook.update_webhook(webhook.id, events=["batches.error"], enabled=False)
    assert (updated.events, updated.enabled) == (("batches.error",), False)
    assert hook.get_webhook(webhook.id).token == "tok-abcdef"  # left out: unchanged
    hook.delete_webhook(webhook.id)
    with pytest.raises(NtropyNotFoundError):
        hook.get_webhook(webhook.id)
    assert hook.list_webhooks() == []


def test_ensure_webhook_is_idempotent_and_repairs_drift(hook: NtropyHook, ntropy_emulator) -> None:
    first = hook.ensure_webhook(URL, EVENTS, token="tok-1")
    again = hook.ensure_webhook(URL, list(reversed(EVENTS)), token="tok-1")
    assert again.id == first.id
    assert ntropy_emulator.stats()["requests"]["POST /v3/webhooks"] == 1
    assert "PATCH /v3/webhooks/{webhook_id}" not in ntropy_emulator.stats()["requests"]
    hook.update_webhook(first.id, enabled=False)
    repaired = hook.ensure_webhook(URL, EVENTS, token="tok-2")
    assert repaired.id == first.id and repaired.enabled and repaired.token == "tok-2"
    assert len(hook.list_webhooks()) == 1  # never a second webhook for the same URL
    other = hook.ensure_webhook(URL + "/other", EVENTS)
    assert other.id != first.id and len(hook.list_webhooks()) == 2


def test_list_webhooks_walks_every_page(hook: NtropyHook) -> None:
    created = {hook.create_webhook(f"{URL}/{i}", EVENTS).id for i in range(10)}
    assert {w.id for w in hook.list_webhooks()} == created
    assert "tok" not in repr(hook.list_webhooks()[0])


def test_ensure_webhook_racing_another_registration_converges_on_one(hook: NtropyHook) -> None:
    # Two DAG runs registering the same receiver both saw no webhook and both create one. Here the other
    # run's create lands first, between this call's list and its own create.
    real_create = hook.create_webhook
    theirs = []

    def create_after_the_other_run(url, events, token=None, **kwargs):
        if not theirs:
            theirs.append(real_create(url, events, token))
        return real_create(url, events, token, **kwargs)

    hook.create_webhook = create_after_the_other_run  # type: ignore[method-assign]
    kept = hook.ensure_webhook(URL, EVENTS, token="tok-1")
    [only] = [w for w in hook.list_webhooks() if w.url == URL]
    assert kept.id == only.id == theirs[0].id  # the oldest is kept, the newer one deleted
    # The other run, looking again, keeps the same one.
    hook.create_webhook = real_create  # type: ignore[method-assign]
    assert hook.ensure_webhook(URL, EVENTS, token="tok-1").id == kept.id
