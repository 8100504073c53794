"""EnsureWebhookOperator: make sure Ntropy delivers batch events to Airflow's webhook receiver."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseOperator, Context

from ntropy_provider.api.wire import BATCH_WEBHOOK_EVENTS, WEBHOOK_EVENTS
from ntropy_provider.hooks.connection import DEFAULT_CONN_ID, WEBHOOK_URL_EXTRA
from ntropy_provider.utils.net import is_loopback_host
from ntropy_provider.webhooks.config import DEFAULT_TOKEN_EXTRA_KEY, receiver_url

#: Key, in the Ntropy connection's extras, of the receiver's public URL (optional).
WEBHOOK_URL_EXTRA_KEY = WEBHOOK_URL_EXTRA  # the connection module owns the extras' names


class MissingWebhookTokenError(ValueError):
    """The connection has no webhook token: the receiver would refuse every delivery."""


class EnsureWebhookOperator(BaseOperator):
    """Register the Airflow webhook receiver with Ntropy, idempotently (one webhook per URL, ever).

    The token Ntropy sends with every delivery is the one the receiver checks: the connection's
    ``webhook_token`` extra. The URL is, in order: ``url``, the connection's ``webhook_url`` extra, or
    Airflow's ``[api] base_url`` followed by ``/ntropy/webhooks/<conn_id>``. An existing webhook for the
    URL is updated when its events or token differ (so rotating the token is: change the extra, run
    this task); otherwise nothing is sent but one list call.

    Returns (XCom) ``{"webhook_id", "url", "events"}``; never the token.

    :param ntropy_conn_id: the Ntropy connection: its API key registers the webhook, its
        ``webhook_token`` extra authenticates deliveries. Templated.
    :param url: the receiver's public URL (default: see above). Templated.
    :param events: the event types to deliver (default: ``batches.completed`` and ``batches.error``).
    :param token_extra_key: the extra that holds the token (must match the receiver's setting).
    """

    template_fields: Sequence[str] = ("ntropy_conn_id", "url")
    ui_color = "#f3e5f5"

    def __init__(
        self,
        *,
        ntropy_conn_id: str = DEFAULT_CONN_ID,
        url: str | None = None,
        events: Sequence[str] = BATCH_WEBHOOK_EVENTS,
        token_extra_key: str = DEFAULT_TOKEN_EXTRA_KEY,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        unknown = [event for event in events if event not in WEBHOOK_EVENTS]
        if unknown or not events:
            raise ValueError(f"events: expected a non-empty subset of {list(WEBHOOK_EVENTS)}, got {events!r}")
        self.ntropy_conn_id = ntropy_conn_id
        self.url = url
        self.events = tuple(events)
        self.token_extra_key = token_extra_key

    def execute(self, context: Context) -> dict[str, Any]:
        """Create or update the webhook; return its id, URL and events."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        hook = NtropyHook(ntropy_conn_id=self.ntropy_conn_id)
        extras = hook.get_connection(self.ntropy_conn_id).extra_dejson or {}
        token = extras.get(self.token_extra_key)
        if not isinstance(token, str) or not token:
            raise MissingWebhookTokenError(
                f"connection {self.ntropy_conn_id!r}: no {self.token_extra_key!r} in its extras; set one "
                "(a long random string): the receiver refuses every delivery without it"
            )
        url = self.url or extras.get(WEBHOOK_URL_EXTRA_KEY) or receiver_url(self.ntropy_conn_id)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url: expected an http(s) URL, got {url!r}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            self.log.warning("Webhook URL %s is not https: the token would cross the network in clear", url)
        webhook = hook.ensure_webhook(url, self.events, token)
        self.log.info("Ntropy webhook %s delivers %s to %s", webhook.id, ", ".join(webhook.events), url)
        return {"webhook_id": webhook.id, "url": webhook.url, "events": list(webhook.events)}
