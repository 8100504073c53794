"""The sync hook's calls beyond batches: account holders and webhooks (a mixin of :class:`NtropyHook`).

They are rarer than the batch calls and share nothing with them but the request loop, which
:class:`~ntropy_provider.hooks.ntropy.NtropyHook` provides (``_request``, ``_json``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ntropy_provider.api.models import AccountHolder, Webhook
from ntropy_provider.api.wire import ACCOUNT_HOLDER_TYPES, ACCOUNT_HOLDERS_PATH, WEBHOOKS_PATH
from ntropy_provider.exceptions import NtropyNotFoundError, NtropyValidationError
from ntropy_provider.hooks.calls import dumps, item_path, loads

T = TypeVar("T")
_UNSET: Any = object()


class AccountHolderAndWebhookCalls:
    """Account holder and webhook calls, for a hook that provides the request loop.

    :meth:`_request` and :meth:`_json` are the hook's (see :class:`~ntropy_provider.hooks.ntropy.NtropyHook`).
    """

    log: Any

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        raise NotImplementedError  # provided by the hook

    def _json(self, method: str, path: str, build: Callable[[Any], T], **kwargs: Any) -> T:
        raise NotImplementedError  # provided by the hook

    # ---------------------------------------------------------------- account holders
    def create_account_holder(
        self,
        account_holder_id: str,
        type: str,
        *,
        name: str | None = None,
        category_id: str | None = None,
    ) -> AccountHolder:
        """Create an account holder.

        :param account_holder_id: your id for the holder (1 to 256 characters).
        :param type: ``consumer`` or ``business``.
        :param name: an optional display name.
        :param category_id: an optional custom category set.
        :raises NtropyValidationError: when the id exists already (400) or a field is invalid.
        """
        if type not in ACCOUNT_HOLDER_TYPES:
            raise ValueError(f"type: expected one of {', '.join(ACCOUNT_HOLDER_TYPES)}, got {type!r}")
        body = dumps({"id": account_holder_id, "type": type, "name": name, "category_id": category_id})
        return self._json("POST", ACCOUNT_HOLDERS_PATH, AccountHolder.from_dict, body=body)

    def get_account_holder(self, account_holder_id: str) -> AccountHolder:
        """Fetch an account holder.

        :param account_holder_id: the holder's id.
        :raises NtropyNotFoundError: when it does not exist.
        """
        return self._json("GET", item_path(ACCOUNT_HOLDERS_PATH, account_holder_id), AccountHolder.from_dict)

    def ensure_account_holder(
        self,
        account_holder_id: str,
        type: str,
        *,
        name: str | None = None,
        category_id: str | None = None,
    ) -> AccountHolder:
        """Return the account holder, creating it when missing (safe to call on every run).

        An existing holder is returned as it is, even if its type or name differ from the arguments.

        :param account_holder_id: your id for the holder.
        :param type: ``consumer`` or ``business`` (used when creating).
        :param name: an optional display name (used when creating).
        :param category_id: an optional custom category set (used when creating).
        """
        try:
            return self.get_account_holder(account_holder_id)
        except NtropyNotFoundError:
            pass
        try:
            return self.create_account_holder(account_holder_id, type, name=name, category_id=category_id)
        except NtropyValidationError as err:
            if err.status != 400:
                raise
            # Created meanwhile by someone else (duplicate id): theirs is the one.
            return self.get_account_holder(account_holder_id)

    # ---------------------------------------------------------------- webhooks
    def create_webhook(
        self, url: str, events: Iterable[str], token: str | None = None, *, hmac_secret: str | None = None
    ) -> Webhook:
        """Register a webhook (at most 10 per organization).

        :param url: where Ntropy POSTs the events.
        :param events: the event types, e.g. ``["batches.completed", "batches.error"]``.
        :param token: sent back as ``X-Ntropy-Token`` with every delivery (a secret: never logged).
        :param hmac_secret: an optional signing secret (Ntropy does not document how it signs).
        """
        body = dumps({"url": url, "events": list(events), "token": token, "hmac_secret": hmac_secret})
        return self._json("POST", WEBHOOKS_PATH, Webhook.from_dict, body=body)

    def list_webhooks(self) -> list[Webhook]:
        """Every registered webhook (all pages)."""
        return [Webhook.from_dict(item) for item in self._iter_pages(WEBHOOKS_PATH, {"limit": 100})]

    def get_webhook(self, webhook_id: str) -> Webhook:
        """Fetch a webhook.

        :param webhook_id: the webhook's id.
        :raises NtropyNotFoundError: when it does not exist.
        """
        return self._json("GET", item_path(WEBHOOKS_PATH, webhook_id), Webhook.from_dict)

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        token: str | None = _UNSET,
        enabled: bool | None = None,
    ) -> Webhook:
        """Change a webhook; arguments left out stay as they are.

        :param webhook_id: the webhook's id.
        :param url: a new URL.
        :param events: new event types.
        :param token: a new token (``None`` removes it).
        :param enabled: enable or disable deliveries.
        :return: the webhook as it is now.
        """
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = url
        if events is not None:
            changes["events"] = list(events)
        if token is not _UNSET:
            changes["token"] = token
        if enabled is not None:
            changes["enabled"] = enabled
        path = item_path(WEBHOOKS_PATH, webhook_id)
        answer = self._request("PATCH", path, body=dumps(changes)).content
        decoded = loads(answer) if answer else None
        if isinstance(decoded, Mapping) and "url" in decoded:
            return Webhook.from_dict(decoded)
        return self.get_webhook(webhook_id)

    def delete_webhook(self, webhook_id: str) -> None:
        """Remove a webhook.

        :param webhook_id: the webhook's id.
        :raises NtropyNotFoundError: when it does not exist.
        """
        self._request("DELETE", item_path(WEBHOOKS_PATH, webhook_id))

    def ensure_webhook(self, url: str, events: Iterable[str], token: str | None = None) -> Webhook:
        """Make sure exactly this webhook is registered for ``url``: idempotent, never a second one.

        A webhook already registered for ``url`` is updated when its events, token or enabled flag
        differ; otherwise one is created.

        :param url: where Ntropy POSTs the events.
        :param events: the event types.
        :param token: the delivery token (a secret: never logged).
        """
        wanted = sorted(set(events))
        for webhook in self.list_webhooks():
            if webhook.url != url:
                continue
            if sorted(set(webhook.events)) == wanted and webhook.token == token and webhook.enabled:
                return webhook
            self.log.info(
                "Updating webhook %s for %s (events, token or enabled flag differ)", webhook.id, url
            )
            return self.update_webhook(webhook.id, events=wanted, token=token, enabled=True)
        self.log.info("Registering a webhook for %s (events %s)", url, ", ".join(wanted))
        return self.create_webhook(url, wanted, token)
