"""What both hooks share above the transport: request building, answer parsing, logging, masking.

The sync and the async hook differ only in how they send bytes and wait: each API call is a
:class:`Call` built here, and each hook's request loop is driven by an :class:`Exchange`, which decides
(retry, give up, succeed), logs and builds the errors without doing any I/O itself.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from ntropy_provider.api.models import Batch, BatchResult, format_datetime
from ntropy_provider.api.wire import BATCHES_PATH, MAX_BATCH_SIZE, MAX_LIST_LIMIT, PRIORITIES, BatchStatus
from ntropy_provider.exceptions import NtropyError
from ntropy_provider.hooks._connection import NtropyConnectionSettings, parse_connection
from ntropy_provider.hooks._http import (
    attempt_headers,
    dumps,
    error_for_answer,
    error_for_exception,
    loads,
    new_request_id,
    scrub,
)
from ntropy_provider.hooks._retry import Attempts, RetryEvent, RetryPolicy

RetryCallback = Callable[[RetryEvent], None]
T = TypeVar("T")
#: A list answer: its items and the next page's cursor (``None`` on the last page).
Page = tuple[list[dict[str, Any]], str | None]


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


class Exchange:
    """One call's request loop without its I/O: the sync and the async hook both drive their loop with it.

    Per attempt the hook calls :meth:`begin`, sends the request with the headers it returns, then reports
    the outcome to :meth:`no_answer` or :meth:`answered`; these log, raise the error that ends the call,
    or return the seconds to wait before the next attempt (``None`` from :meth:`answered`: success).

    :param method: the HTTP method.
    :param path: the API path.
    :param params: the query (``None`` values are left out).
    :param has_body: whether a JSON body is sent.
    :param settings: the connection's settings.
    :param log: the hook's logger.
    :param on_retry: the hook's retry callback, if any.
    :param policy: the retry policy, when not the connection's.
    """

    def __init__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        has_body: bool,
        settings: NtropyConnectionSettings,
        log: Any,
        on_retry: RetryCallback | None,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.url = settings.base_url + path
        self.query = {key: str(value) for key, value in (params or {}).items() if value is not None}
        self._has_body = has_body
        self._settings = settings
        self._log = log
        self._on_retry = on_retry
        self._attempts = Attempts(method, path, policy or settings.retry, new_request_id=new_request_id)
        self._started = 0.0

    def begin(self) -> dict[str, str]:
        """Start an attempt.

        :return: its headers (a fresh ``X-Request-ID``), on top of the session's.
        """
        request_id = self._attempts.begin()
        self._started = time.monotonic()
        return attempt_headers(request_id, has_body=self._has_body)

    def no_answer(self, error: BaseException, *, reached_server: bool) -> float:
        """The attempt got no answer (refused, dropped, timed out).

        :param error: the transport's exception.
        :param reached_server: whether the request may have reached the server.
        :return: seconds to wait before the next attempt.
        :raises NtropyConnectionError: when the call has failed for good.
        """
        attempts = self._attempts
        event = attempts.failed(
            status=None, retry_after=None, reason=type(error).__name__, reached_server=reached_server
        )
        if event is None:
            raise error_for_exception(
                method=self.method,
                path=self.path,
                base_url=self._settings.base_url,
                error=error,
                request_id=attempts.request_id,
                api_key=self._settings.api_key,
                attempts=attempts.count,
                unsafe_to_repeat=attempts.unsafe_to_repeat,
            ) from None
        return self._retry(event)

    def answered(self, status: int, body: bytes, retry_after: str | None) -> float | None:
        """The attempt got an answer.

        :param status: the answer's status.
        :param body: the answer's body.
        :param retry_after: its ``Retry-After`` header.
        :return: ``None`` on success, else seconds to wait before the next attempt.
        :raises NtropyError: the typed error, when the call has failed for good.
        """
        attempts = self._attempts
        log_answer(self._log, self.method, self.path, status, self._started, attempts.request_id)
        # Only a 2xx is a success: a 3xx (redirects are not followed, so the API key is never resent
        # elsewhere) has no API body to parse and ends the call with an error naming the status.
        if 200 <= status < 300:
            return None
        event = attempts.failed(status=status, retry_after=retry_after, reason=f"HTTP {status}")
        if event is None:
            raise error_for_answer(
                method=self.method,
                path=self.path,
                status=status,
                body=body,
                request_id=attempts.request_id,
                api_key=self._settings.api_key,
                attempts=attempts.count,
                unsafe_to_repeat=attempts.unsafe_to_repeat,
            )
        return self._retry(event)

    def read(self, parse: Callable[[bytes], T], body: bytes) -> T:
        """Read a successful answer's body, or end the call with an error naming the request.

        A 2xx whose body is not what the API sends (a proxy's HTML page, a truncated or changed
        document) would otherwise escape as a bare ``JSONDecodeError`` or ``KeyError``.

        :param parse: turns the body into the call's result.
        :param body: the answer's body.
        :raises NtropyError: when ``parse`` cannot read the body.
        """
        try:
            return parse(body)
        except (ValueError, KeyError, TypeError) as err:
            acted = (
                "; the server accepted the request, so what it created exists even though this "
                "answer could not be read"
                if self.method == "POST"
                else ""
            )
            raise NtropyError(
                scrub(
                    f"Ntropy API answered {self.method} {self.path} with a body this client cannot read: "
                    f"{type(err).__name__}: {err} (X-Request-ID {self._attempts.request_id}){acted}",
                    self._settings.api_key,
                ),
                request_id=self._attempts.request_id,
            ) from None

    def _retry(self, event: RetryEvent) -> float:
        report_retry(self._log, self._on_retry, event, self._attempts.policy.max_attempts)
        return event.wait


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API request and how to read its answer, built once for both hooks.

    :param method: the HTTP method.
    :param path: the API path.
    :param parse: turns the answer's body into the call's result.
    :param params: the query.
    :param body: the JSON body.
    """

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: Mapping[str, Any] | None = None
    body: bytes | None = None


def parse_batch(body: bytes) -> Batch:
    """A ``Batch`` answer.

    :param body: the answer's body.
    """
    return Batch.from_dict(loads(body))


def parse_batch_result(body: bytes) -> BatchResult:
    """A results document.

    :param body: the answer's body.
    """
    return BatchResult.from_dict(loads(body))


def _as_received(body: bytes) -> bytes:
    return body


def post_batch_call(body: bytes) -> Call[Batch]:
    """``POST /v3/batches`` with a body already serialized.

    :param body: the request body (see :func:`create_batch_body`).
    """
    return Call("POST", BATCHES_PATH, parse_batch, body=body)


def create_batch_call(data: Iterable[Mapping[str, Any]], operation: str, priority: str) -> Call[Batch]:
    """``POST /v3/batches``: one batch of at most 24,960 transactions.

    :param data: the transactions.
    :param operation: the batch operation.
    :param priority: ``default`` or ``low``.
    :raises ValueError: when there are no transactions or too many, or the priority is unknown.
    """
    return post_batch_call(create_batch_body(data, operation, priority))


def get_batch_call(batch_id: str) -> Call[Batch]:
    """``GET /v3/batches/{id}``.

    :param batch_id: the batch id.
    """
    return Call("GET", item_path(BATCHES_PATH, batch_id), parse_batch)


def batch_results_call(batch_id: str) -> Call[bytes]:
    """``GET /v3/batches/{id}/results``, its body as received.

    :param batch_id: the batch id.
    """
    return Call("GET", item_path(BATCHES_PATH, batch_id) + "/results", _as_received)


def list_page_call(path: str, params: Mapping[str, Any], cursor: str | None) -> Call[Page]:
    """One page of a list endpoint.

    :param path: the collection, e.g. ``/v3/batches``.
    :param params: the list's query (see :func:`list_params`).
    :param cursor: the previous page's ``next_cursor``, ``None`` for the first page.
    """
    return Call("GET", path, parse_page, params={**params, "cursor": cursor})


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


def parse_page(body: bytes) -> Page:
    """The items and the next cursor of a list answer.

    :param body: the answer's body.
    """
    page = loads(body)
    return list(page.get("data") or []), page.get("next_cursor")


def check_cursor(seen: set[str], cursor: str, path: str) -> None:
    """Refuse a paging cursor met before, which would make a list walk loop for ever.

    :param seen: the cursors of this walk so far (``cursor`` is added to it).
    :param cursor: the ``next_cursor`` just received.
    :param path: the list's path, for the message.
    :raises NtropyError: when ``cursor`` was seen before.
    """
    if cursor in seen:
        raise NtropyError(
            f"Ntropy API returned the paging cursor {cursor!r} of {path} a second time; "
            "stopping instead of walking the same pages for ever"
        )
    seen.add(cursor)


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
    level = log.debug if method == "GET" and 200 <= status < 300 else log.info
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
