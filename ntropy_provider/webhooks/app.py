"""The webhook receiver: a small FastAPI app that turns Ntropy batch events into Airflow asset events.

Mounted on Airflow's API server by :class:`~ntropy_provider.webhooks.plugin.NtropyWebhooksPlugin`
at ``/ntropy`` (so Ntropy delivers to ``https://<airflow>/ntropy/webhooks``), or run on its own with
``python -m ntropy_provider.webhooks`` (same paths).

Every delivery goes through the same gates, cheapest first, and nothing is recorded unless it passes
all of them:

1. the path's connection is served and ``X-Ntropy-Token`` matches its token (constant-time; the same
   answer whether the connection is served or not, so ids cannot be probed) ........... else 401
2. the body stays under the size limit while it streams in ............................ else 413
3. the body arrives within the body time limit .......................................... else 408
4. the body is JSON ..................................................................... else 400
5. the body is the documented event (``WebhookEvent.from_dict``: a batch event's ``data`` is a valid
   Batch whose status matches the event type) ................ else 422 naming the field
6. the event type is a batch event ............................. else 200 ``ignored`` (not recorded)
7. recorded once per ``event_id`` and once per batch and event type
   ..................................................... 200 ``recorded``, or 200 ``duplicate``

Only the validated Batch, re-serialized, is recorded; a client that disconnects mid-body is logged, not
a 500. Every untrusted value in a log line goes through :func:`log_safe`.

When Airflow cannot record yet (database unavailable, no unpaused DAG scheduled on the asset, the token
store unreadable) the answer is 503: Ntropy retries for 24 h, so nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import anyio
import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect

from ntropy_provider.api.models import WebhookEvent
from ntropy_provider.api.wire import WEBHOOK_TOKEN_HEADER
from ntropy_provider.compat import WEBHOOK_RECEIVER, require_partitioned_assets
from ntropy_provider.webhooks.assets import BatchEventRecord
from ntropy_provider.webhooks.auth import TokenResolver, TokenUnavailableError, tokens_match
from ntropy_provider.webhooks.config import WEBHOOK_PATH, ReceiverConfig
from ntropy_provider.webhooks.log_text import log_safe
from ntropy_provider.webhooks.provider_config import DEFAULT_BODY_TIMEOUT_SECONDS
from ntropy_provider.webhooks.recorder import EventRecorder, NoActiveConsumerError, RecordOutcome

log = logging.getLogger(__name__)

#: Seconds Ntropy is asked to wait before retrying when Airflow cannot record yet.
RETRY_AFTER_SECONDS = 60


class _Rejected(Exception):
    """A delivery refused with a status code and a reason meant for the sender."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


async def _read_body(request: Request, limit: int, timeout: float = DEFAULT_BODY_TIMEOUT_SECONDS) -> bytes:
    """Read the body, refusing it as soon as it grows past ``limit`` (never buffering more than that) or
    takes longer than ``timeout`` seconds to arrive (a trickled body would hold a connection and a
    graceful shutdown for as long as the sender likes)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError:
            raise _Rejected(400, "Content-Length: not an integer") from None
        if declared_size > limit:
            raise _Rejected(413, f"body: larger than {limit} bytes (Content-Length: {declared_size})")
    body = bytearray()
    try:
        with anyio.fail_after(timeout):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise _Rejected(413, f"body: larger than {limit} bytes")
    except TimeoutError:
        raise _Rejected(408, f"body: not received within {timeout:g} s", {"Connection": "close"}) from None
    except ClientDisconnect:
        # Nobody is left to answer; the status only shows in the access log.
        raise _Rejected(400, "client disconnected before the body was complete") from None
    return bytes(body)


def _unauthorized() -> _Rejected:
    return _Rejected(401, f"missing or wrong {WEBHOOK_TOKEN_HEADER} header")


def _parse_event(body: bytes) -> WebhookEvent:
    if not body:
        raise _Rejected(400, "body: empty, expected a JSON object")
    try:
        decoded: Any = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise _Rejected(400, f"body: not valid JSON ({err})") from None
    try:
        return WebhookEvent.from_dict(decoded)
    except ValueError as err:
        raise _Rejected(422, str(err)) from None


def create_app(
    config: ReceiverConfig | None = None,
    *,
    resolver: TokenResolver | None = None,
    recorder: EventRecorder | None = None,
) -> FastAPI:
    """Build the receiver app (routes relative to its mount point: ``POST /webhooks``).

    :param config: the receiver's settings; read from Airflow's ``[ntropy_webhooks]`` section when omitted.
    :param resolver: resolves expected tokens (built from ``config`` when omitted).
    :param recorder: records events in Airflow's database (built from ``config`` when omitted).
    """
    require_partitioned_assets(WEBHOOK_RECEIVER)
    config = config or ReceiverConfig.from_airflow_conf()
    resolver = resolver or TokenResolver(config)
    recorder = recorder or EventRecorder(
        retention=dt.timedelta(days=config.dedupe_retention_days),
        partition_by_batch=config.partition_by_batch,
        require_active_consumer=config.require_active_consumer,
    )

    # No interactive docs: the only client is Ntropy, and the app sits outside Airflow's auth.
    app = FastAPI(
        title="Ntropy webhook receiver",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    served = config.served_conn_ids
    # Recording waits on the database (on SQLite, on its single writer): a limiter of its own keeps a
    # flood of deliveries from taking every thread of the API server's shared pool from Airflow's routes.
    record_limiter = anyio.CapacityLimiter(config.record_concurrency)
    app.state.config = config
    app.state.resolver = resolver
    app.state.recorder = recorder

    @app.exception_handler(_Rejected)
    async def _rejected(request: Request, exc: _Rejected) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness probe: answers without touching the database or any secret."""
        return {"status": "ok"}

    async def receive(request: Request, conn_id: str) -> dict[str, Any]:
        # A path that is not served is refused like a wrong token, without a look-up: no oracle of ids.
        if conn_id not in served:
            raise _unauthorized()
        try:
            expected = await resolver.get(conn_id)
        except TokenUnavailableError as err:
            log.warning("Ntropy webhook: %s; answering 503 so that Ntropy retries", err)
            raise _Rejected(
                503, "token store unavailable, retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        # Same answer for a missing token, a wrong one and an unconfigured connection: no oracle.
        if not tokens_match(request.headers.get(WEBHOOK_TOKEN_HEADER), expected):
            raise _unauthorized()

        try:
            event = _parse_event(
                await _read_body(request, config.max_body_bytes, config.body_timeout_seconds)
            )
        except _Rejected as refused:
            log.info("Ntropy webhook: refused a delivery (%d): %s", refused.status, log_safe(refused.detail))
            raise
        if not event.is_batch_event:
            log.info(
                "Ntropy webhook: ignored event %s of type %s",
                log_safe(event.event_id),
                log_safe(event.event_type),
            )
            return {"status": "ignored", "event_id": event.event_id, "reason": "not a batch event"}

        record = BatchEventRecord.from_webhook_event(event, conn_id)
        try:
            result = await anyio.to_thread.run_sync(recorder.record, record, limiter=record_limiter)
        except NoActiveConsumerError as err:
            log.error("Ntropy webhook: event %s not recorded: %s", log_safe(event.event_id), err)
            raise _Rejected(503, str(err), {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        except SQLAlchemyError as err:
            # The driver's message, bounded and escaped (SQLAlchemy's own text quotes every parameter).
            log.warning(
                "Ntropy webhook: event %s not recorded, database error: %s: %s",
                log_safe(event.event_id),
                type(err).__name__,
                log_safe(getattr(err, "orig", None) or err),
            )
            raise _Rejected(
                503, "database unavailable, retry later", {"Retry-After": str(RETRY_AFTER_SECONDS)}
            ) from None
        if result.outcome is RecordOutcome.RECORDED:
            log.info(
                "Ntropy webhook: recorded %s for batch %s (event %s, asset event %s)",
                log_safe(record.event_type),
                log_safe(record.batch_id),
                log_safe(record.event_id),
                result.asset_event_id,
            )
        else:
            log.info("Ntropy webhook: duplicate delivery of event %s ignored", log_safe(record.event_id))
        return {
            "status": result.outcome.value,
            "event_id": record.event_id,
            "asset_event_id": result.asset_event_id,
        }

    @app.post(WEBHOOK_PATH)
    async def webhook_default(request: Request) -> dict[str, Any]:
        """Receive a delivery for the configured Ntropy connection."""
        return await receive(request, config.conn_id)

    @app.post(WEBHOOK_PATH + "/{conn_id}")
    async def webhook_for_connection(request: Request, conn_id: str) -> dict[str, Any]:
        """Receive a delivery for one of the served connections (its own token, its own asset)."""
        return await receive(request, conn_id)

    return app
