"""What both hooks share above the transport: request building, answer parsing, logging, masking."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ntropy_provider.exceptions import NtropyConnectionError, NtropyError
from ntropy_provider.hooks._connection import NtropyConnectionSettings, parse_connection
from ntropy_provider.hooks._http import dumps, error_for_answer, error_for_exception, loads
from ntropy_provider.hooks._retry import Attempts, RetryEvent
from ntropy_provider.schema import MAX_BATCH_SIZE, MAX_LIST_LIMIT, PRIORITIES, BatchStatus, format_datetime

RetryCallback = Callable[[RetryEvent], None]


def overrides(
    *,
    max_attempts: int | None,
    max_elapsed: float | None,
    retry_after_cap: float | None,
    backoff_base: float | None,
    backoff_max: float | None,
    timeout: float | None,
    connect_timeout: float | None,
) -> dict[str, Any]:
    """A hook's constructor settings, which win over the connection's extras (``None``: not given).

    :param max_attempts: retry budget: most requests per call.
    :param max_elapsed: retry budget: most seconds spent retrying one call.
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds.
    :param backoff_base: the first backoff's upper bound, in seconds.
    :param backoff_max: the longest backoff, in seconds.
    :param timeout: seconds to wait for an answer.
    :param connect_timeout: seconds to wait for a TCP connection.
    """
    return {
        "max_attempts": max_attempts,
        "max_elapsed": max_elapsed,
        "retry_after_cap": retry_after_cap,
        "backoff_base": backoff_base,
        "backoff_max": backoff_max,
        "timeout": timeout,
        "connect_timeout": connect_timeout,
    }


def settings_from_connection(
    conn: Any, extras: Mapping[str, Any], conn_id: str, given: Mapping[str, Any]
) -> NtropyConnectionSettings:
    """Read an Airflow connection into settings.

    :param conn: the Airflow ``Connection``.
    :param extras: its decoded extras.
    :param conn_id: its id, for error messages.
    :param given: the hook's constructor settings (see :func:`overrides`).
    """
    return parse_connection(
        conn_id=conn_id,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        password=conn.password,
        extras=extras,
        overrides=given,
    )


def transport_error(
    attempts: Attempts, settings: NtropyConnectionSettings, error: BaseException
) -> NtropyConnectionError:
    """The error that ends a call whose last request got no answer.

    :param attempts: the call's attempts.
    :param settings: the connection's settings.
    :param error: the transport's exception.
    """
    return error_for_exception(
        method=attempts.method,
        path=attempts.path,
        base_url=settings.base_url,
        error=error,
        request_id=attempts.request_id,
        api_key=settings.api_key,
        attempts=attempts.count,
        unsafe_to_repeat=attempts.unsafe_to_repeat,
    )


def answer_error(
    attempts: Attempts, settings: NtropyConnectionSettings, status: int, body: bytes
) -> NtropyError:
    """The error that ends a call whose last request got an error answer.

    :param attempts: the call's attempts.
    :param settings: the connection's settings.
    :param status: the answer's status.
    :param body: the answer's body.
    """
    return error_for_answer(
        method=attempts.method,
        path=attempts.path,
        status=status,
        body=body,
        request_id=attempts.request_id,
        api_key=settings.api_key,
        attempts=attempts.count,
        unsafe_to_repeat=attempts.unsafe_to_repeat,
    )


def item_path(collection: str, item_id: str) -> str:
    """The path of one resource, its id URL-quoted.

    :param collection: e.g. ``/v3/batches``.
    :param item_id: the resource's id.
    :raises ValueError: when the id is empty.
    """
    if not item_id:
        raise ValueError(f"{collection}: expected a non-empty id, got {item_id!r}")
    return f"{collection}/{quote(str(item_id), safe='')}"


def check_priority(priority: str) -> None:
    """Refuse an unknown batch priority.

    :param priority: the priority.
    :raises ValueError: naming the value and the allowed ones.
    """
    if priority not in PRIORITIES:
        raise ValueError(f"priority: expected one of {', '.join(PRIORITIES)}, got {priority!r}")


def create_batch_body(data: Iterable[Mapping[str, Any]], operation: str, priority: str) -> bytes:
    """The body of a single ``POST /v3/batches``.

    :param data: the transactions.
    :param operation: the batch operation.
    :param priority: ``default`` or ``low``.
    :raises ValueError: when there are no transactions or too many, or the priority is unknown.
    """
    check_priority(priority)
    items = data if isinstance(data, list) else list(data)
    if not 1 <= len(items) <= MAX_BATCH_SIZE:
        raise ValueError(f"data: expected 1 to {MAX_BATCH_SIZE} transactions, got {len(items)}")
    return dumps({"operation": operation, "priority": priority, "data": items})


def _as_api_datetime(value: dt.datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return format_datetime(value)


def list_params(
    *,
    status: BatchStatus | str | None,
    created_after: dt.datetime | str | None,
    created_before: dt.datetime | str | None,
    page_size: int,
) -> dict[str, Any]:
    """The query of ``GET /v3/batches``.

    :param status: only batches with this status.
    :param created_after: only batches created at or after this time.
    :param created_before: only batches created before this time.
    :param page_size: batches per page (1 to 1000).
    :raises ValueError: naming a bad page size or status.
    """
    if not 1 <= page_size <= MAX_LIST_LIMIT:
        raise ValueError(f"page_size: expected 1 to {MAX_LIST_LIMIT}, got {page_size!r}")
    params: dict[str, Any] = {"limit": page_size}
    if status is not None:
        params["status"] = BatchStatus(status).value
    if (after := _as_api_datetime(created_after)) is not None:
        params["created_after"] = after
    if (before := _as_api_datetime(created_before)) is not None:
        params["created_before"] = before
    return params


def parse_page(body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The items and the next cursor of a list answer.

    :param body: the answer's body.
    """
    page = loads(body)
    return list(page.get("data") or []), page.get("next_cursor")


def log_answer(log: Any, method: str, path: str, status: int, started: float, request_id: str) -> None:
    """Log one answer with its request id (reads at DEBUG: polling and paging are frequent).

    :param log: the hook's logger.
    :param method: the request's method.
    :param path: the request's path.
    :param status: the answer's status.
    :param started: ``time.monotonic()`` when the request started.
    :param request_id: the request's ``X-Request-ID``.
    """
    took = (time.monotonic() - started) * 1000
    level = log.debug if method == "GET" and status < 400 else log.info
    level("Ntropy API %s %s -> %d in %.0f ms (X-Request-ID %s)", method, path, status, took, request_id)


def report_retry(log: Any, on_retry: RetryCallback | None, event: RetryEvent, max_attempts: int) -> None:
    """Log a retry and tell ``on_retry``, before the hook waits.

    :param log: the hook's logger.
    :param on_retry: the hook's callback, if any.
    :param event: the retry.
    :param max_attempts: the budget, for the log line.
    """
    log.warning(
        "Ntropy API %s %s failed (%s, attempt %d of %d, X-Request-ID %s); retrying in %.2f s",
        event.method,
        event.path,
        event.reason,
        event.attempt,
        max_attempts,
        event.request_id,
        event.wait,
    )
    if on_retry is not None:
        on_retry(event)


def mask(secret: str) -> None:
    """Register the API key with Airflow's secrets masker (best effort outside a task).

    :param secret: the secret.
    """
    try:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)
    except Exception:  # masking is a second line of defence, never a failure
        pass


async def amask(secret: str) -> None:
    """:func:`mask` without blocking the event loop.

    :param secret: the secret.
    """
    try:
        from airflow.sdk.log import amask_secret

        await amask_secret(secret)
    except Exception:  # see mask()
        pass
