"""The emulator's HTTP layer: the Ntropy API v3 routes and the ``/_emulator/`` admin routes.

Bodies are decoded with orjson by hand (not through pydantic models) so that every bad input gets a
clear 4xx naming what was wrong, and so that a 24,960-item batch is checked in one pass by
``ntropy_provider.api.transaction_input``'s validator, the same one the operators use on the client side.
Transport concerns (request ids, auth, request rates and injected faults) live in
:class:`~ntropy_provider.emulator.middleware.EmulatorMiddleware`, which wraps the whole app.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ntropy_provider.api.models import format_datetime, parse_datetime
from ntropy_provider.api.transaction_input import (
    MAX_ACCOUNT_HOLDER_ID_LENGTH,
    FieldError,
    validate_batch_request,
    validate_transaction,
)
from ntropy_provider.api.wire import (
    ACCOUNT_HOLDER_TYPES,
    ACCOUNT_HOLDERS_PATH,
    API_KEY_HEADER,
    BATCHES_PATH,
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    MAX_WEBHOOK_TOKEN_LENGTH,
    MAX_WEBHOOK_URL_LENGTH,
    PRIORITIES,
    RETRY_AFTER_HEADER,
    TRANSACTIONS_PATH,
    WEBHOOK_EVENTS,
    WEBHOOKS_PATH,
    BatchStatus,
)
from ntropy_provider.emulator.core import (
    Conflict,
    Emulator,
    LimitExceeded,
    NotFound,
    newest_first,
    public,
)
from ntropy_provider.emulator.enrichment import enrich, holder_type_for
from ntropy_provider.emulator.middleware import ADMIN_PREFIX, EmulatorMiddleware
from ntropy_provider.emulator.responses import ApiError, json_response

_UNENCODED_OFFSET = re.compile(r"(\d:\d\d(?:\.\d+)?) (\d\d:?\d\d)$")
#: Most validation errors listed in one 422 answer (a fully broken 24,960-item batch stays readable).
MAX_LISTED_ERRORS = 200
#: Batches at least this large are validated in a worker thread so the loop keeps answering.
_THREAD_VALIDATION_THRESHOLD = 500


def _unprocessable(loc: list[Any], msg: str, kind: str = "value_error") -> ApiError:
    """A 422 in FastAPI's list form, naming where the problem is.

    :param loc: where: ``["body", "data", 3, "amount"]``, ``["query", "limit"]``...
    :param msg: what is wrong (cut to 300 characters: values may be long).
    :param kind: a short machine-readable kind.
    """
    return ApiError(422, [{"loc": loc, "msg": msg[:300], "type": kind}])


def _field_error(loc: list[Any], error: FieldError) -> dict[str, Any]:
    return {"loc": loc, "msg": str(error), "type": "value_error"}


def _invalid(errors: list[dict[str, Any]]) -> ApiError:
    shown = errors[:MAX_LISTED_ERRORS]
    if len(errors) > MAX_LISTED_ERRORS:
        shown.append(
            {
                "loc": ["body"],
                "msg": f"... and {len(errors) - MAX_LISTED_ERRORS} more errors",
                "type": "value_error",
            }
        )
    return ApiError(422, shown)


async def _json_body(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    try:
        return raw, orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise _unprocessable(["body"], f"malformed JSON: {err}", "json_invalid") from None


async def _json_object(request: Request) -> tuple[bytes, dict[str, Any]]:
    raw, body = await _json_body(request)
    if not isinstance(body, dict):
        raise _unprocessable(["body"], "expected a JSON object", "dict_type")
    return raw, body


def _check_type(body: dict[str, Any], name: str, types: tuple[type, ...], required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise _unprocessable(["body", name], f"{name}: required", "missing")
        return None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join(t.__name__ for t in types)
        raise _unprocessable(["body", name], f"{name}: expected {wanted}, got {value!r}", "type_error")
    return value


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise _unprocessable(
            ["query", name], f"{name}: expected an integer {low}-{high}, got {text!r}", "value_error"
        )
    return value


def _query_datetime(request: Request, name: str) -> dt.datetime | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    # A client that does not percent-encode ``+00:00`` sends it as `` 00:00`` (``+`` decodes to a space).
    text = _UNENCODED_OFFSET.sub(r"\1+\2", text)
    try:
        return parse_datetime(text)
    except ValueError:
        raise _unprocessable(
            ["query", name], f"{name}: expected an ISO 8601 datetime, got {text!r}", "value_error"
        ) from None


def _query_cursor(request: Request) -> int | None:
    text = request.query_params.get("cursor")
    if text is None:
        return None
    # isdigit() alone accepts digits such as "²" that int() refuses: that would be a 500.
    if not (text.isascii() and text.isdigit()):
        raise _unprocessable(["query", "cursor"], "cursor: not a cursor returned by this API", "value_error")
    return int(text)


def _page(items: list[dict[str, Any]], limit: int, cursor: int | None) -> dict[str, Any]:
    """A page of stored objects (newest first, with ``_seq``) below the cursor."""
    below = [item for item in items if cursor is None or item["_seq"] < cursor]
    page = below[:limit]
    more = len(below) > limit
    return {
        "next_cursor": str(page[-1]["_seq"]) if more and page else None,
        "data": [public(i) for i in page],
    }


def _admit_and_charge(emulator: Emulator, request: Request, count: int) -> None:
    """Refuse or charge a request for ``count`` transactions: prepaid credits (423), then the documented
    per-key limits (429, or 422 for a batch the credit bucket can never hold); nothing is taken when refused.
    """
    credits = emulator.settings.credits
    if credits is not None and count > credits:
        raise ApiError(423, f"Not enough credits: {count} needed, {credits} left")
    emulator.admit(request.headers.get(API_KEY_HEADER, ""), count)
    if credits is not None:
        emulator.settings.credits = credits - count


def create_app(emulator: Emulator) -> FastAPI:
    """The FastAPI app serving the Ntropy API v3 from ``emulator``'s state (without the middleware).

    :param emulator: the state to serve.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await emulator.start()
        try:
            yield
        finally:
            await emulator.stop()

    app = FastAPI(
        title="Ntropy API emulator", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.emulator = emulator

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, err: ApiError) -> Response:
        return json_response({"detail": err.detail}, err.status, err.headers)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, err: NotFound) -> Response:
        return json_response({"detail": str(err)}, 404)

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, err: Conflict) -> Response:
        return json_response({"detail": str(err)}, err.status)

    @app.exception_handler(LimitExceeded)
    async def _limit_exceeded(_request: Request, err: LimitExceeded) -> Response:
        return json_response(
            {"detail": f"{err}; retry in {err.retry_after} s"},
            429,
            {RETRY_AFTER_HEADER: str(err.retry_after)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, err: StarletteHTTPException) -> Response:
        return json_response({"detail": err.detail}, err.status_code, dict(err.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, err: Exception) -> Response:
        return json_response({"detail": f"Internal server error: {type(err).__name__}"}, 500)

    # ----------------------------------------------------------------------------------------------
    # Batches
    # ----------------------------------------------------------------------------------------------
    @app.post(BATCHES_PATH)
    async def create_batch(request: Request) -> Response:
        raw, body = await _json_object(request)
        priority = body.get("priority", "default")
        if priority is None:
            priority = "default"
        if priority not in PRIORITIES:
            raise _unprocessable(
                ["body", "priority"], f"priority: expected one of {list(PRIORITIES)}", "enum"
            )
        data = body.get("data")
        if isinstance(data, list) and len(data) >= _THREAD_VALIDATION_THRESHOLD:
            problems = await asyncio.to_thread(validate_batch_request, body.get("operation"), data)
        else:
            problems = validate_batch_request(body.get("operation"), data)
        if problems:
            raise _invalid(
                [
                    _field_error(
                        ["body", error.field]
                        if index is None
                        else ["body", "data", index, *error.field.split(".")],
                        error,
                    )
                    for index, error in problems
                ]
            )
        _admit_and_charge(emulator, request, len(data))
        record = emulator.create_batch(raw, data, priority, request.headers.get(API_KEY_HEADER, ""))
        view = record.view(emulator.clock())
        delay = emulator.settings.create_batch_delay_ms
        if delay > 0:
            emulator.stats.faults["create_batch_delayed"] += 1
            await asyncio.sleep(delay / 1000)
        return json_response(view)

    @app.get(BATCHES_PATH)
    async def list_batches(request: Request) -> Response:
        limit = _query_int(request, "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)
        cursor = _query_cursor(request)
        status_text = request.query_params.get("status")
        try:
            status = BatchStatus(status_text) if status_text is not None else None
        except ValueError:
            raise _unprocessable(
                ["query", "status"],
                f"status: expected one of {[s.value for s in BatchStatus]}, got {status_text!r}",
                "enum",
            ) from None
        records = emulator.iter_batches(
            after_seq=cursor,
            status=status,
            created_after=_query_datetime(request, "created_after"),
            created_before=_query_datetime(request, "created_before"),
        )
        now = emulator.clock()
        page = []
        more = False
        for record in records:
            if len(page) == limit:
                more = True
                break
            page.append(record)
        return json_response(
            {"next_cursor": str(page[-1].seq) if more else None, "data": [r.view(now) for r in page]}
        )

    @app.get(BATCHES_PATH + "/{batch_id}")
    async def get_batch(batch_id: str) -> Response:
        return json_response(emulator.get_batch(batch_id).view(emulator.clock()))

    @app.get(BATCHES_PATH + "/{batch_id}/results")
    async def get_batch_results(batch_id: str, request: Request) -> Response:
        record = emulator.get_batch(batch_id)
        status = record.status_at(emulator.clock())
        if status is BatchStatus.PROCESSING:
            raise ApiError(
                409,
                f"Batch {batch_id} is still processing ({record.progress_at(emulator.clock())}"
                f"/{record.total}): results are not ready",
            )
        if status is BatchStatus.ERROR:
            raise ApiError(409, f"Batch {batch_id} ended in error: results are not available; resubmit it")
        compressed = await emulator.results_gzip(record)
        emulator.stats.results_served += 1
        if "gzip" in request.headers.get("accept-encoding", ""):
            return json_response(compressed, headers={"Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
        return json_response(await asyncio.to_thread(gzip.decompress, compressed))

    # ----------------------------------------------------------------------------------------------
    # Sync enrichment
    # ----------------------------------------------------------------------------------------------
    @app.post(TRANSACTIONS_PATH)
    async def enrich_one(request: Request) -> Response:
        _, body = await _json_body(request)
        errors = validate_transaction(body)
        if errors:
            raise _invalid([_field_error(["body", *e.field.split(".")], e) for e in errors])
        _admit_and_charge(emulator, request, 1)
        emulator.stats.sync_transactions += 1
        holders = {h: v["type"] for h, v in emulator.holders.items()}
        settings = emulator.settings
        result = enrich(
            body,
            holder_type=holder_type_for(body, holders),
            seed=settings.seed,
            created_at=format_datetime(dt.datetime.now(dt.UTC)),
            item_error_rate=settings.item_error_rate,
            extended_accounting=settings.extended_accounting_categories,
        )
        return json_response(result)

    # ----------------------------------------------------------------------------------------------
    # Account holders
    # ----------------------------------------------------------------------------------------------
    @app.post(ACCOUNT_HOLDERS_PATH)
    async def create_account_holder(request: Request) -> Response:
        _, body = await _json_object(request)
        holder_id = _check_type(body, "id", (str,), required=True)
        if not 1 <= len(holder_id) <= MAX_ACCOUNT_HOLDER_ID_LENGTH:
            raise _unprocessable(
                ["body", "id"],
                f"id: expected 1 to {MAX_ACCOUNT_HOLDER_ID_LENGTH} characters",
                "string_too_long",
            )
        holder_type = _check_type(body, "type", (str,), required=True)
        if holder_type not in ACCOUNT_HOLDER_TYPES:
            raise _unprocessable(
                ["body", "type"],
                f"type: expected one of {list(ACCOUNT_HOLDER_TYPES)}, got {holder_type!r}",
                "enum",
            )
        holder = {
            "id": holder_id,
            "type": holder_type,
            "name": _check_type(body, "name", (str,)),
            "category_id": _check_type(body, "category_id", (str,)),
        }
        return json_response(emulator.create_holder(holder))

    @app.get(ACCOUNT_HOLDERS_PATH)
    async def list_account_holders(request: Request) -> Response:
        limit = _query_int(request, "limit", DEFAULT_LIST_LIMIT, 1, MAX_LIST_LIMIT)
        cursor = _query_cursor(request)
        after = _query_datetime(request, "created_after")
        before = _query_datetime(request, "created_before")
        holders = [
            h
            for h in newest_first(emulator.holders.values())
            if (after is None or parse_datetime(h["created_at"]) >= after)
            and (before is None or parse_datetime(h["created_at"]) < before)
        ]
        return json_response(_page(holders, limit, cursor))

    @app.get(ACCOUNT_HOLDERS_PATH + "/{account_holder_id}")
    async def get_account_holder(account_holder_id: str) -> Response:
        return json_response(emulator.get_holder(account_holder_id))

    @app.delete(ACCOUNT_HOLDERS_PATH + "/{account_holder_id}")
    async def delete_account_holder(account_holder_id: str) -> Response:
        emulator.delete_holder(account_holder_id)
        return Response(status_code=204)

    # ----------------------------------------------------------------------------------------------
    # Webhooks
    # ----------------------------------------------------------------------------------------------
    def _check_url(body: dict[str, Any]) -> str:
        url = _check_type(body, "url", (str,), required=True)
        if not url.startswith(("http://", "https://")):
            raise _unprocessable(["body", "url"], f"url: expected an http(s) URL, got {url!r}", "url_parsing")
        if len(url) > MAX_WEBHOOK_URL_LENGTH:
            raise _unprocessable(
                ["body", "url"],
                f"url: at most {MAX_WEBHOOK_URL_LENGTH} characters, got {len(url)}",
                "string_too_long",
            )
        return url

    def _check_token(body: dict[str, Any]) -> str | None:
        token = _check_type(body, "token", (str,))
        if token is not None and len(token) > MAX_WEBHOOK_TOKEN_LENGTH:
            raise _unprocessable(
                ["body", "token"],
                f"token: at most {MAX_WEBHOOK_TOKEN_LENGTH} characters, got {len(token)}",
                "string_too_long",
            )
        return token

    def _check_events(body: dict[str, Any]) -> list[str]:
        events = _check_type(body, "events", (list,), required=True)
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if not events or unknown:
            raise _unprocessable(
                ["body", "events"],
                f"events: expected a non-empty list of {list(WEBHOOK_EVENTS)}, got unknown {unknown!r}",
                "enum",
            )
        return events

    @app.post(WEBHOOKS_PATH)
    async def create_webhook(request: Request) -> Response:
        _, body = await _json_object(request)
        url = _check_url(body)
        events = _check_events(body)
        token = _check_token(body)
        _check_type(body, "hmac_secret", (str,))  # accepted; how it signs is undocumented, so unused
        return json_response(emulator.create_webhook(url, events, token))

    @app.get(WEBHOOKS_PATH)
    async def list_webhooks() -> Response:
        return json_response({"next_cursor": None, "data": emulator.list_webhooks()})

    @app.get(WEBHOOKS_PATH + "/{webhook_id}")
    async def get_webhook(webhook_id: str) -> Response:
        return json_response(public(emulator.get_webhook(webhook_id)))

    @app.patch(WEBHOOKS_PATH + "/{webhook_id}")
    async def patch_webhook(webhook_id: str, request: Request) -> Response:
        webhook = emulator.get_webhook(webhook_id)
        _, body = await _json_object(request)
        changes: dict[str, Any] = {}
        if "url" in body:
            changes["url"] = _check_url(body)
        if "events" in body:
            changes["events"] = _check_events(body)
        if "token" in body:
            changes["token"] = _check_token(body)
        if "enabled" in body:
            changes["enabled"] = _check_type(body, "enabled", (bool,), required=True)
            if changes["enabled"]:
                changes["_consecutive_failures"] = 0  # re-enabled: the count of failures starts again
        if "hmac_secret" in body:
            _check_type(body, "hmac_secret", (str,))
        webhook.update(changes)
        return json_response(public(webhook))

    @app.delete(WEBHOOKS_PATH + "/{webhook_id}")
    async def delete_webhook(webhook_id: str) -> Response:
        emulator.get_webhook(webhook_id)
        del emulator.webhooks[webhook_id]
        return Response(status_code=204)

    # ----------------------------------------------------------------------------------------------
    # Admin (no API key: a loopback tool for tests and demos)
    # ----------------------------------------------------------------------------------------------
    @app.get(ADMIN_PREFIX + "/settings")
    async def get_settings() -> Response:
        return json_response(emulator.settings.to_dict())

    @app.patch(ADMIN_PREFIX + "/settings")
    async def patch_settings(request: Request) -> Response:
        _, body = await _json_object(request)
        try:
            return json_response(emulator.configure(body))
        except ValueError as err:
            raise ApiError(422, str(err)) from None

    @app.get(ADMIN_PREFIX + "/stats")
    async def get_stats() -> Response:
        return json_response(emulator.stats.to_dict())

    @app.post(ADMIN_PREFIX + "/reset")
    async def reset() -> Response:
        emulator.reset()
        return json_response({"reset": True})

    return app


def create_asgi_app(emulator: Emulator | None = None) -> EmulatorMiddleware:
    """The complete emulator as an ASGI app (what uvicorn serves).

    :param emulator: the state to serve (a fresh one with default settings when omitted).
    """
    emulator = emulator or Emulator()
    return EmulatorMiddleware(create_app(emulator), emulator)
