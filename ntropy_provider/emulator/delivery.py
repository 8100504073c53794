"""Webhook delivery, as Ntropy does it: POST the event, retry with the same ``event_id`` until a 2xx.

Each event gets one task per subscribed webhook. A failed attempt (non-2xx, connection error, or no
answer within ``webhook_timeout_seconds``) is retried after a pause that doubles from
``webhook_retry_initial_seconds`` up to ``webhook_retry_max_seconds``, for ``webhook_retry_window_seconds``.
The webhook is read again before each attempt: a deleted or disabled webhook stops its retries and a
patched URL or token is used from the next attempt on.

As documented (docs/ntropy-api.md, "Webhooks"): a webhook is disabled after
``webhook_disable_after_failures`` consecutive failed attempts (``enabled: false``; PATCH re-enables it),
and a fraction ``webhook_duplicate_rate`` of successful deliveries is delivered once more.

It depends only on the small :class:`DeliveryHost` surface (webhooks, settings, counters, a seeded random),
not on the emulator's core, so the two modules do not import each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from typing import Any, Protocol

import aiohttp
import orjson

from ntropy_provider.api.wire import WEBHOOK_TOKEN_HEADER
from ntropy_provider.emulator.settings import EmulatorSettings
from ntropy_provider.emulator.stats import Stats

log = logging.getLogger(__name__)


class DeliveryHost(Protocol):
    """What the deliverer reads from the emulator: its webhooks (by id), settings, counters and random."""

    webhooks: dict[str, dict[str, Any]]
    settings: EmulatorSettings
    stats: Stats
    fault_random: random.Random


class WebhookDeliverer:
    """Delivers events to registered webhooks in the background.

    :param emulator: the emulator whose webhooks, settings and counters are used.
    """

    def __init__(self, emulator: DeliveryHost) -> None:
        self._emulator = emulator
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Open the HTTP session (on the server's loop)."""
        self._session = aiohttp.ClientSession()

    async def stop(self) -> None:
        """Cancel pending deliveries and close the session."""
        self.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def cancel_all(self) -> None:
        """Cancel every pending delivery (on reset)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()

    def fire(self, event_type: str, data: dict[str, Any]) -> None:
        """Deliver one event to every enabled webhook subscribed to its type.

        :param event_type: e.g. ``batches.completed``.
        :param data: the event's payload (a Batch object).
        """
        for webhook in list(self._emulator.webhooks.values()):
            if webhook["enabled"] and event_type in webhook["events"]:
                event = {"event_id": str(uuid.uuid4()), "event_type": event_type, "data": data}
                task = asyncio.get_running_loop().create_task(self._deliver(webhook["id"], event))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _deliver(self, webhook_id: str, event: dict[str, Any]) -> None:
        emulator = self._emulator
        body = orjson.dumps(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + emulator.settings.webhook_retry_window_seconds
        pause = emulator.settings.webhook_retry_initial_seconds
        while True:
            webhook = emulator.webhooks.get(webhook_id)
            if webhook is None or not webhook["enabled"]:
                emulator.stats.webhook_dropped += 1
                return
            stats = emulator.stats
            stats.webhook_attempts += 1
            if await self._attempt(webhook, body):
                stats.webhook_delivered += 1
                webhook["_consecutive_failures"] = 0
                self._maybe_duplicate(webhook_id, body)
                return
            stats.webhook_failed_attempts += 1
            if self._count_failure(webhook):
                stats.webhook_dropped += 1
                return  # disabled: this event is dropped, even if the webhook is re-enabled later
            if loop.time() + pause > deadline:
                stats.webhook_abandoned += 1
                log.warning("Gave up delivering event %s to webhook %s", event["event_id"], webhook_id)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, emulator.settings.webhook_retry_max_seconds)

    def _count_failure(self, webhook: dict[str, Any]) -> bool:
        """Count a failed attempt; disable the webhook at the threshold of consecutive failures.

        :return: whether the webhook is disabled now.
        """
        failures = webhook.get("_consecutive_failures", 0) + 1
        webhook["_consecutive_failures"] = failures
        threshold = self._emulator.settings.webhook_disable_after_failures
        if threshold and failures >= threshold and webhook["enabled"]:
            webhook["enabled"] = False
            self._emulator.stats.webhooks_disabled += 1
            log.warning("Disabled webhook %s after %d consecutive failed deliveries", webhook["id"], failures)
        return not webhook["enabled"]

    def _maybe_duplicate(self, webhook_id: str, body: bytes) -> None:
        """Deliver a successful event once more, now and then, as Ntropy says it may."""
        emulator = self._emulator
        rate = emulator.settings.webhook_duplicate_rate
        if rate <= 0 or emulator.fault_random.random() >= rate:
            return

        async def again() -> None:
            await asyncio.sleep(emulator.settings.webhook_retry_initial_seconds)
            webhook = emulator.webhooks.get(webhook_id)
            if webhook is not None and webhook["enabled"]:
                emulator.stats.webhook_duplicates += 1
                await self._attempt(webhook, body)

        task = asyncio.get_running_loop().create_task(again())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, webhook: dict[str, Any], body: bytes) -> bool:
        assert self._session is not None
        headers = {"Content-Type": "application/json"}
        if webhook.get("token"):
            headers[WEBHOOK_TOKEN_HEADER] = webhook["token"]
        timeout = aiohttp.ClientTimeout(total=self._emulator.settings.webhook_timeout_seconds)
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with self._session.post(
                webhook["url"], data=body, headers=headers, timeout=timeout
            ) as resp:
                await resp.read()
                return 200 <= resp.status < 300
        return False
