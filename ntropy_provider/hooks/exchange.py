"""The exchange with the API, without I/O: what each attempt sends, what its outcome means, how it is told.

The hooks are layered so that both of them decide alike and differ only in how bytes move:

* policy (:mod:`ntropy_provider.hooks.retry_policy`): whether a failure is worth another attempt and
  how long to wait; no I/O, no clock of its own;
* exchange (this module): one call's attempts (:class:`Exchange`): a fresh ``X-Request-ID`` per attempt,
  the policy's verdict on each outcome, the log lines, the typed errors (secrets scrubbed), the decoding of
  a successful answer, and registering the API key with Airflow's secrets masker;
* calls (:mod:`ntropy_provider.hooks.calls`): what each API request sends and how its answer is read;
* I/O loops: :class:`~ntropy_provider.hooks.ntropy.NtropyHook` (requests, ``time.sleep``) and
  :class:`~ntropy_provider.hooks.ntropy_async.NtropyAsyncHook` (aiohttp, ``asyncio.sleep``).
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson

from ntropy_provider import __version__
from ntropy_provider.api.wire import API_KEY_HEADER, REQUEST_ID_HEADER
from ntropy_provider.exceptions import (
    NtropyConnectionError,
    NtropyError,
    NtropyOutOfCreditsError,
    NtropyValidationError,
    describe_detail,
    error_class_for_status,
    parse_item_errors,
)
from ntropy_provider.hooks.connection import NtropyConnectionSettings
from ntropy_provider.hooks.retry_policy import RATE_LIMITED_STATUS, Attempts, RetryEvent, RetryPolicy

RetryCallback = Callable[[RetryEvent], None]
T = TypeVar("T")
USER_AGENT = f"ntropy-airflow-provider/{__version__}"
_REDACTED = "***"


# --------------------------------------------------------------------------------------------------
# Headers and request ids
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# One call's attempts
# --------------------------------------------------------------------------------------------------
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
            policy = attempts.policy
            budget = (
                f"; still rate limited after {attempts.elapsed:.1f} s, and the next wait would pass "
                f"max_elapsed ({policy.max_elapsed:g} s)"
                if status == RATE_LIMITED_STATUS
                else ""
            )
            raise error_for_answer(
                method=self.method,
                path=self.path,
                status=status,
                body=body,
                request_id=attempts.request_id,
                api_key=self._settings.api_key,
                attempts=attempts.count,
                unsafe_to_repeat=attempts.unsafe_to_repeat,
                why=budget,
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
        report_retry(
            self._log, self._on_retry, event, self._attempts.policy, failures=self._attempts.failures
        )
        return event.wait


# --------------------------------------------------------------------------------------------------
# Errors, secrets scrubbed
# --------------------------------------------------------------------------------------------------
def scrub(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``.

    :param text: any text that may end up in a log line or an exception.
    :param secret: the secret to hide (nothing is replaced when empty).
    """
    return text.replace(secret, _REDACTED) if secret else text


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
    why: str = "",
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
    :param why: why the call ended, appended to the message (e.g. the elapsed budget of a 429).
    """
    # Scrub the body itself, not only the message: ``detail`` is kept on the exception (and quoted by
    # test_connection), so a server that echoes the key would otherwise carry it out.
    if api_key:
        body = body.replace(api_key.encode(), _REDACTED.encode())
    detail = error_detail(body)
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    cls = error_class_for_status(status)
    why = (_NOT_REPEATED if unsafe_to_repeat and status >= 500 else "") + why
    if issubclass(cls, NtropyOutOfCreditsError):
        why += (
            "; the organization is out of prepaid credits: this is a billing state, so the request is not "
            "retried; add credits to the Ntropy account, then run the task again"
        )
    if 300 <= status < 400:
        why = "; redirects are not followed: check the connection's host and schema (https)"
    message = scrub(
        f"Ntropy API answered {status} to {method} {path}{tried}: {describe_detail(detail)} "
        f"(X-Request-ID {request_id}){why}",
        api_key,
    )
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
    reason = scrub(transport_reason(error), api_key)
    message = scrub(
        f"No answer from the Ntropy API at {base_url} to {method} {path} after {attempts} attempt"
        f"{'s' if attempts > 1 else ''}: {reason} (X-Request-ID {request_id}){why}",
        api_key,
    )
    return NtropyConnectionError(message, reason=reason, status=None, detail=None, request_id=request_id)


def _chain(error: BaseException) -> list[BaseException]:
    """The error and every exception inside it: causes, contexts and exception arguments (urllib3's
    ``MaxRetryError`` keeps the real failure in ``.reason``, requests in ``args[0]``)."""
    seen: list[BaseException] = []
    todo: list[Any] = [error]
    while todo and len(seen) < 20:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is known for known in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
        todo.append(getattr(item, "os_error", None))  # aiohttp's ClientConnectorError
    return seen


def transport_reason(error: BaseException) -> str:
    """Why a request got no answer, in a few words: ``connection refused``, ``host name not found``,
    ``connect timed out``... (the innermost cause, without the transport's nested wrapper messages).

    :param error: the transport's exception (requests, urllib3, aiohttp or the standard library).
    """
    chain = _chain(error)
    names = {type(item).__name__ for item in chain}
    if "ClientConnectorDNSError" in names:  # aiohttp: the resolver's error as a plain OSError
        return "host name not found"
    for item in chain:
        if isinstance(item, socket.gaierror):
            return "host name not found"
        if isinstance(item, ssl.SSLError):
            return f"TLS error ({item.reason or item.strerror or type(item).__name__})"
        if isinstance(item, OSError) and item.errno is not None and not isinstance(item, TimeoutError):
            if item.errno == errno.ECONNREFUSED:
                return "connection refused"
            if item.errno == errno.ECONNRESET:
                return "connection reset by the server"
            return (item.strerror or errno.errorcode.get(item.errno) or str(item)).lower()
    if names & {"ConnectTimeout", "ConnectTimeoutError", "ServerTimeoutError", "ConnectionTimeoutError"}:
        return "connect timed out"
    if names & {"ReadTimeout", "ReadTimeoutError", "SocketTimeoutError", "TimeoutError"}:
        return "no answer in time (read timed out)"
    if names & {"RemoteDisconnected", "ServerDisconnectedError", "ChunkedEncodingError", "ProtocolError"}:
        return "the server closed the connection without answering"
    return type(chain[-1]).__name__ if chain else type(error).__name__


# --------------------------------------------------------------------------------------------------
# Logging and masking
# --------------------------------------------------------------------------------------------------
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


def report_retry(
    log: Any, on_retry: RetryCallback | None, event: RetryEvent, policy: RetryPolicy, *, failures: int
) -> None:
    """Log a retry and tell ``on_retry``, before the hook waits.

    :param log: the hook's logger.
    :param on_retry: the hook's callback, if any.
    :param event: the retry.
    :param policy: the policy, whose budgets the log line names.
    :param failures: the call's failed attempts so far that spend the budget (429s do not).
    """
    if event.rate_limited:
        # "Not yet", not a failure: an INFO line, and no attempt count that would suggest a budget.
        log.info(
            "Ntropy API %s %s: rate limited (429, X-Request-ID %s); waiting %.2f s (429s spend no attempt "
            "of the budget, only time: at most %g s per call)",
            event.method,
            event.path,
            event.request_id,
            event.wait,
            policy.max_elapsed,
        )
    else:
        log.warning(
            "Ntropy API %s %s failed (%s, attempt %d of %d, X-Request-ID %s); retrying in %.2f s",
            event.method,
            event.path,
            event.reason,
            failures,
            policy.max_attempts,
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
