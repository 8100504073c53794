"""Transport pieces shared by the sync and the async hook: headers, request ids, errors, JSON bodies.

Cutting an input into batch bodies is submission's job (:mod:`ntropy_provider.submission.chunks`).
"""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from ntropy_provider import __version__
from ntropy_provider.api.wire import API_KEY_HEADER, REQUEST_ID_HEADER, TRANSACTIONS_OPERATION
from ntropy_provider.exceptions import (
    NtropyConnectionError,
    NtropyError,
    NtropyValidationError,
    describe_detail,
    error_class_for_status,
    parse_item_errors,
)

USER_AGENT = f"ntropy-airflow-provider/{__version__}"
_REDACTED = "***"
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def new_request_id() -> str:
    """A fresh ``X-Request-ID``: 32 hex characters."""
    return uuid.uuid4().hex


def base_headers(api_key: str) -> dict[str, str]:
    """The headers every API request carries (a session's defaults).

    :param api_key: the API key.
    """
    return {API_KEY_HEADER: api_key, "Accept": "application/json", "User-Agent": USER_AGENT}


def attempt_headers(request_id: str, *, has_body: bool) -> dict[str, str]:
    """The headers of one attempt, on top of :func:`base_headers`.

    :param request_id: the attempt's fresh ``X-Request-ID``.
    :param has_body: whether a JSON body is sent.
    """
    if has_body:
        return {REQUEST_ID_HEADER: request_id, "Content-Type": "application/json"}
    return {REQUEST_ID_HEADER: request_id}


def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``.

    :param text: any text that may end up in a log line or an exception.
    :param secret: the secret to hide (nothing is replaced when empty).
    """
    return text.replace(secret, _REDACTED) if secret else text


def _json_default(value: Any) -> Any:
    # Values common in rows read from databases and data frames that orjson does not know.
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "isoformat"):  # dates, times, pandas Timestamps
        return value.isoformat()
    if hasattr(value, "item"):  # numpy / pandas scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Serialize to JSON bytes (orjson; Decimal, numpy and date values included).

    :param value: the value.
    :raises TypeError: when a value cannot be represented in JSON.
    """
    return orjson.dumps(value, default=_json_default, option=_ORJSON_OPTIONS)


def loads(body: bytes | str) -> Any:
    """Parse JSON bytes.

    :param body: the JSON document.
    """
    return orjson.loads(body)


def error_detail(body: bytes) -> Any:
    """The ``detail`` of an error answer's body (the raw text when it is not the API's JSON).

    :param body: the answer's body.
    """
    if not body:
        return None
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:500].decode("utf-8", "replace")
    if isinstance(decoded, Mapping) and "detail" in decoded:
        return decoded["detail"]
    return decoded


_NOT_REPEATED = "; not repeated: the server may have acted on it, and a second POST could create a duplicate"


def error_for_answer(
    *,
    method: str,
    path: str,
    status: int,
    body: bytes,
    request_id: str,
    api_key: str | None,
    attempts: int,
    unsafe_to_repeat: bool = False,
) -> NtropyError:
    """The typed exception for an error answer; its message names the item and field of a 422.

    :param method: the request's method.
    :param path: the request's path.
    :param status: the answer's status.
    :param body: the answer's body.
    :param request_id: the request's ``X-Request-ID``.
    :param api_key: the API key, scrubbed from the message should the server echo it.
    :param attempts: how many requests were made for this call.
    :param unsafe_to_repeat: whether a retryable failure was not retried because repeating it might
        create something twice.
    """
    # Scrub the body itself, not only the message: ``detail`` is kept on the exception (and quoted by
    # test_connection), so a server that echoes the key would otherwise carry it out.
    if api_key:
        body = body.replace(api_key.encode(), _REDACTED.encode())
    detail = error_detail(body)
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    why = _NOT_REPEATED if unsafe_to_repeat and status >= 500 else ""
    if 300 <= status < 400:
        why = "; redirects are not followed: check the connection's host and schema (https)"
    message = scrub(
        f"Ntropy API answered {status} to {method} {path}{tried}: {describe_detail(detail)} "
        f"(X-Request-ID {request_id}){why}",
        api_key,
    )
    cls = error_class_for_status(status)
    if issubclass(cls, NtropyValidationError):
        return cls(
            message, status=status, detail=detail, request_id=request_id, errors=parse_item_errors(detail)
        )
    return cls(message, status=status, detail=detail, request_id=request_id)


def error_for_exception(
    *,
    method: str,
    path: str,
    base_url: str,
    error: BaseException,
    request_id: str,
    api_key: str | None,
    attempts: int,
    unsafe_to_repeat: bool = False,
) -> NtropyConnectionError:
    """The typed exception for a request that got no answer (refused, dropped, timed out).

    :param method: the request's method.
    :param path: the request's path.
    :param base_url: the API's base URL.
    :param error: the transport's exception.
    :param request_id: the last request's ``X-Request-ID``.
    :param api_key: the API key, scrubbed from the message.
    :param attempts: how many requests were made for this call.
    :param unsafe_to_repeat: whether the call ended because repeating it might create something twice.
    """
    why = _NOT_REPEATED if unsafe_to_repeat else ""
    message = scrub(
        f"No answer from the Ntropy API at {base_url} to {method} {path} after {attempts} attempt"
        f"{'s' if attempts > 1 else ''}: {type(error).__name__}: {error} (X-Request-ID {request_id}){why}",
        api_key,
    )
    return NtropyConnectionError(message, status=None, detail=None, request_id=request_id)


# --------------------------------------------------------------------------------------------------
# Batch bodies, serialized once, straight to bytes
# --------------------------------------------------------------------------------------------------
def batch_body(data_items: list[bytes], *, priority: str, operation: str = TRANSACTIONS_OPERATION) -> bytes:
    """The ``POST /v3/batches`` body around already serialized items.

    :param data_items: transactions as JSON bytes, one or more per element, comma-separated within.
    :param priority: ``default`` or ``low``.
    :param operation: the batch operation.
    """
    head = b'{"operation":' + dumps(operation) + b',"priority":' + dumps(priority) + b',"data":['
    pieces = [head]
    for item in data_items:
        pieces += (item, b",")
    pieces[-1] = b"]}" if data_items else pieces[-1] + b"]}"
    # One join: the body is the only new copy (a nested join would hold the items three times).
    return b"".join(pieces)
