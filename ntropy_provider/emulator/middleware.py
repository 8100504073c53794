"""The emulator's outermost ASGI layer: request ids, counting, auth, request rates and injected faults.

It runs before any route, so that a request refused here (401, 403, 429, an injected 5xx or a dropped
connection) never reaches the API routes of :mod:`ntropy_provider.emulator.app`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.routing import Match

from ntropy_provider.api.wire import API_KEY_HEADER, REQUEST_ID_HEADER, RETRY_AFTER_HEADER
from ntropy_provider.emulator.core import Emulator
from ntropy_provider.emulator.limits import retry_after_seconds
from ntropy_provider.emulator.responses import json_response

#: Admin routes (settings, stats, reset) live under this prefix, which no real API path uses.
ADMIN_PREFIX = "/_emulator"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class EmulatorMiddleware:
    """Wraps the app with what happens before a route runs: request ids, counting, faults and auth.

    It is the outermost ASGI layer on purpose: to drop a connection without an answer it needs the
    server's own ``send`` (uvicorn's, whose transport it closes).

    :param app: the FastAPI app of :func:`create_app`.
    :param emulator: the emulator state (settings and counters).
    """

    def __init__(self, app: FastAPI, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    def _template(self, scope: Scope) -> str:
        method = scope["method"]
        for route in self.app.router.routes:
            match, _ = route.matches(scope)
            if match is not Match.NONE:
                return f"{method} {getattr(route, 'path', scope['path'])}"
        return f"{method} (unmatched)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call.

        :param scope: the ASGI scope.
        :param receive: the ASGI receive channel.
        :param send: the ASGI send channel.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get(REQUEST_ID_HEADER.lower(), "")
        if not (0 < len(request_id) <= 128 and request_id.isascii() and request_id.isprintable()):
            request_id = uuid.uuid4().hex
        request_id_header = (REQUEST_ID_HEADER.lower().encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), request_id_header]}
            await send(message)

        if scope["path"].startswith(ADMIN_PREFIX + "/"):
            await self.app(scope, receive, send_with_id)
            return
        emulator = self.emulator
        template = self._template(scope)
        emulator.stats.requests[template] += 1
        settings = emulator.settings
        if settings.latency_ms > 0:
            await asyncio.sleep(settings.latency_ms / 1000)
        chance = emulator.fault_random.random
        if settings.drop_connection_rate > 0 and chance() < settings.drop_connection_rate:
            emulator.stats.faults["dropped_connection"] += 1
            await _drop_connection(send)
            return
        key = headers.get(API_KEY_HEADER.lower())
        answer: Response | None = None
        if key is None or key not in settings.api_keys:
            answer = json_response({"detail": "Missing or invalid API key (X-API-Key)"}, 401)
        elif key in settings.forbidden_keys:
            answer = json_response({"detail": "This operation is not enabled for this API key"}, 403)
        elif wait := emulator.rate_limiter.acquire(key, settings.rate_limit):
            emulator.stats.faults["rate_limited"] += 1
            answer = json_response(
                {
                    "detail": f"Rate limit of {settings.rate_limit:g} requests per second exceeded; "
                    f"retry in {wait} s"
                },
                429,
                {RETRY_AFTER_HEADER: str(wait)},
            )
        elif (rate := settings.endpoint_rate(template)) is not None and (
            wait := emulator.api_limiter.take_request(key, template, rate)
        ):
            emulator.stats.rate_limited[f"endpoint:{template}"] += 1
            seconds = retry_after_seconds(wait)
            answer = json_response(
                {
                    "detail": f"Endpoint rate limit: at most {rate:g} requests per second to {template} per "
                    f"API key; retry in {seconds} s"
                },
                429,
                {RETRY_AFTER_HEADER: str(seconds)},
            )
        elif settings.fail_rate > 0 and chance() < settings.fail_rate:
            emulator.stats.faults["failed"] += 1
            answer = json_response(
                {"detail": "Injected failure: the service is temporarily unavailable"}, settings.fail_status
            )
        if answer is not None:
            await answer(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)


async def _drop_connection(send: Send) -> None:
    """Close the client's connection without answering (uvicorn), or break the answer (other servers)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is not None:
        cycle.disconnected = True  # type: ignore[union-attr]  # so uvicorn does not answer 500 either
        transport.abort()
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]})
    raise ConnectionAbortedError("injected dropped connection")
