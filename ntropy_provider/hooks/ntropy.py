"""The sync hook for the Ntropy API: :class:`NtropyHook` (requests), for tasks and users' own code.

The async hook for triggers is :class:`~ntropy_provider.hooks.ntropy_async.NtropyAsyncHook`. Both read the
``ntropy`` connection (:mod:`ntropy_provider.hooks.connection`), send a fresh ``X-Request-ID`` with every
request, retry under one :class:`~ntropy_provider.hooks.retry_policy.RetryPolicy` (429 waits without spending
the failure budget; 5xx and connection failures spend it) and raise the typed errors of
:mod:`ntropy_provider.exceptions` for everything else; the decisions are the exchange's
(:mod:`ntropy_provider.hooks.exchange`), the hooks only move bytes and sleep. The API key is sent in a
header and never logged, put in an exception message or shown in a ``repr``. The account holder and
webhook calls are a mixin (:mod:`ntropy_provider.hooks._holders_and_webhooks`) over this request loop.

Why :class:`NtropyHook` builds on :class:`~airflow.providers.http.hooks.http.HttpHook`, and how far: it is
the HTTP provider's hook, so Airflow users know its connection handling, ``base_url``, TCP keep-alive
options and ``run()``. The hook uses only its public surface: the connection is read with
``get_connection``, ``base_url`` is set from the ``ntropy`` connection (region or host), and
:meth:`NtropyHook.get_conn` builds the pooled ``requests`` session itself (the API key in a header, the
keep-alive adapter mounted with ``Session.mount``). HttpHook's own session building is not used: it would
turn every connection extra (the retry budget, the limits) into a request header. The inherited
:meth:`NtropyHook.run` goes through the Ntropy retry policy and typed errors (one request loop for every
call, with the rules above, including "never repeat a POST whose answer was lost"); HttpHook's
``run_with_advanced_retry`` is refused, since its tenacity retries on top of the policy's would repeat
POSTs blindly and multiply the budget.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import requests
from airflow.providers.http.hooks.http import HttpHook
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from urllib3.exceptions import ConnectTimeoutError

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.models import Batch, BatchResult
from ntropy_provider.api.wire import (
    BATCHES_PATH,
    MAX_BATCH_SIZE,
    MAX_CONCURRENT_OPERATIONS,
    RETRY_AFTER_HEADER,
    TRANSACTIONS_OPERATION,
    BatchStatus,
)
from ntropy_provider.exceptions import (
    TRANSIENT_ERRORS,
    NtropyAuthError,
    NtropyConnectionError,
    NtropyError,
    NtropyTimeoutError,
)
from ntropy_provider.hooks._holders_and_webhooks import AccountHolderAndWebhookCalls
from ntropy_provider.hooks.calls import (
    NEWEST_PAGE_SIZE,
    Call,
    NewestBatchesSearch,
    batch_results_call,
    check_cursor,
    create_batch_call,
    dumps,
    get_batch_call,
    list_page_call,
    list_params,
    loads,
    parse_batch_result,
    post_batch_call,
)
from ntropy_provider.hooks.connection import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    SENSITIVE_FIELDS,
    UI_FIELD_BEHAVIOUR,
    NtropyConnectionSettings,
    RequestOptions,
    settings_from_airflow_connection,
)
from ntropy_provider.hooks.exchange import Exchange, RetryCallback, base_headers, mask
from ntropy_provider.hooks.retry_policy import RetryEvent, RetryPolicy
from ntropy_provider.progress import ProgressTracker, next_poll_interval
from ntropy_provider.submission.engine import submit_records

#: Transport failures worth another attempt (no answer, or a truncated one).
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

T = TypeVar("T")


def _reached_server(error: Exception) -> bool:
    """Whether a failed request may have reached the server (``False`` only for a failure to connect)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return False
    reason = getattr(error.args[0], "reason", None) if error.args else None
    # urllib3's NewConnectionError (refused, DNS) is a ConnectTimeoutError too.
    return not isinstance(reason, ConnectTimeoutError)


__all__ = ["NtropyHook", "RequestOptions", "RetryEvent", "RetryPolicy"]


class NtropyHook(AccountHolderAndWebhookCalls, HttpHook):
    """Talk to the Ntropy API (batches, account holders, webhooks) through an ``ntropy`` connection.

    Built on :class:`~airflow.providers.http.hooks.http.HttpHook` (see the module's docstring for how
    far); requests go through one pooled :class:`requests.Session` (safe to share between the threads of
    :meth:`submit_batches`) and the hook's own retry policy.

    :param ntropy_conn_id: the ``ntropy`` connection to use.
    :param options: retry and timeout settings that win over the connection's extras.
    :param on_retry: called with a :class:`~ntropy_provider.hooks.retry_policy.RetryEvent` before each wait
        (in the thread that made the request), e.g. to count retries in metrics.
    :param kwargs: any field of :class:`~ntropy_provider.hooks.connection.RequestOptions` by name
        (``max_attempts=3``, winning over ``options``); the rest is passed to
        :class:`~airflow.providers.http.hooks.http.HttpHook` (e.g. ``tcp_keep_alive``).
    """

    conn_name_attr = "ntropy_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Ntropy"

    def __init__(
        self,
        ntropy_conn_id: str = default_conn_name,
        *,
        options: RequestOptions | None = None,
        on_retry: RetryCallback | None = None,
        **kwargs: Any,
    ) -> None:
        request_options = RequestOptions.take(kwargs, options)
        super().__init__(method=kwargs.pop("method", "GET"), http_conn_id=ntropy_conn_id, **kwargs)
        self.ntropy_conn_id = ntropy_conn_id
        self.on_retry = on_retry
        self.options = request_options
        if self.keep_alive_adapter is not None:
            # One pool large enough for every concurrent submit (the API allows 10 operations at once).
            self.keep_alive_adapter = TCPKeepAliveAdapter(
                idle=kwargs.get("tcp_keep_alive_idle", 120),
                count=kwargs.get("tcp_keep_alive_count", 20),
                interval=kwargs.get("tcp_keep_alive_interval", 30),
                pool_connections=1,
                pool_maxsize=MAX_CONCURRENT_OPERATIONS,
            )
        self._settings: NtropyConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ntropy_conn_id={self.ntropy_conn_id!r})"

    # ---------------------------------------------------------------- connection form
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """How the standard connection form fields are shown (also declared in ``get_provider_info``)."""
        return {key: value.copy() for key, value in UI_FIELD_BEHAVIOUR.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra form fields (region, timeouts, retry budget, limits, webhook) as wtforms fields.

        Airflow >= 3.2 reads the same fields declaratively from ``get_provider_info()["connection-types"]``
        (``conn-fields``) and does not call this; Airflow 3.1 turns these wtforms fields into the same
        form (a ``PasswordField`` is its sensitive field, ``any_of`` its choices). It needs wtforms and
        Flask-AppBuilder, imported only here.
        """
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, PasswordField, StringField
        from wtforms.validators import Optional, any_of

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            schema = spec["schema"]
            validators = [Optional()]
            if "enum" in schema:
                validators.append(any_of(schema["enum"]))
            if name in SENSITIVE_FIELDS:
                field_class, widget = PasswordField, BS3PasswordFieldWidget()
            else:
                field_class = IntegerField if "integer" in schema["type"] else StringField
                widget = BS3TextFieldWidget()
            widgets[name] = field_class(
                lazy_gettext(spec["label"]),
                widget=widget,
                validators=validators,
                description=spec["description"],
            )
        return widgets

    # ---------------------------------------------------------------- connection and session
    @property
    def settings(self) -> NtropyConnectionSettings:
        """The connection's settings (read once; the API key is registered with Airflow's masker)."""
        if self._settings is None:
            conn = self.get_connection(self.ntropy_conn_id)
            settings = settings_from_airflow_connection(
                conn, conn.extra_dejson, self.ntropy_conn_id, self.options
            )
            mask(settings.api_key)
            self.base_url = settings.base_url  # HttpHook's public attribute (url_from_endpoint reads it)
            self._settings = settings
        return self._settings

    @property
    def api_limits(self) -> ApiLimits:
        """The API key's limits from the connection's extras (documented defaults when absent)."""
        return self.settings.api_limits

    @property
    def max_credits(self) -> int | None:
        """The most credits one task may spend (``max_credits`` extra), ``None`` for no ceiling."""
        return self.settings.max_credits

    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's pooled session, authenticated with the API key (built once, shared by threads).

        :param headers: extra headers for every request of the session (only when it is first built).
        :param extra_options: unused; accepted for :meth:`HttpHook.run` compatibility.
        """
        if self._session is None:
            settings = self.settings
            with self._session_lock:
                if self._session is None:
                    session = requests.Session()
                    session.headers.update(base_headers(settings.api_key))
                    session.headers.update(headers or {})
                    if self.keep_alive_adapter is not None:
                        scheme = settings.base_url.split("://", 1)[0]
                        session.mount(f"{scheme}://", self.keep_alive_adapter)
                    self._session = session
        return self._session

    def close(self) -> None:
        """Close the pooled session (the hook builds a new one if used again)."""
        with self._session_lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    # ---------------------------------------------------------------- the request loop
    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        policy: RetryPolicy | None = None,
        parse: Callable[[bytes], Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one call (retrying as the policy says): the response, or ``parse`` of its body."""
        settings = self.settings
        session = self.get_conn()
        exchange = Exchange(
            method,
            path,
            params=params,
            has_body=body is not None,
            settings=settings,
            log=self.log,
            on_retry=self.on_retry,
            policy=policy,
        )
        while True:
            attempt_headers = {**(headers or {}), **exchange.begin()}
            try:
                response = session.request(
                    method,
                    exchange.url,
                    params=exchange.query,
                    data=body,
                    headers=attempt_headers,
                    timeout=(settings.connect_timeout, settings.timeout),
                    allow_redirects=False,
                )
            except _TRANSPORT_ERRORS as err:
                wait = exchange.no_answer(err, reached_server=_reached_server(err))
            else:
                wait = exchange.answered(
                    response.status_code, response.content, response.headers.get(RETRY_AFTER_HEADER)
                )
                if wait is None:
                    return response if parse is None else exchange.read(parse, response.content)
            time.sleep(wait)

    def run(
        self,
        endpoint: str | None = None,
        data: dict[str, Any] | str | bytes | None = None,
        headers: dict[str, Any] | None = None,
        extra_options: dict[str, Any] | None = None,
        **request_kwargs: Any,
    ) -> requests.Response:
        """HttpHook's generic call, through the Ntropy retry policy and typed errors.

        ``NtropyHook(method="GET").run("/v3/batches", {"limit": 1})``: ``data`` is the query of a GET
        or DELETE and the JSON body otherwise (a mapping is serialized; str/bytes are sent as they are).
        Prefer the typed methods (:meth:`get_batch`, ...); this is for endpoints they do not cover.

        :param endpoint: the API path, e.g. ``/v3/batches``.
        :param data: the query (GET, DELETE) or the body (other methods).
        :param headers: extra headers for this call (the API key and request id are the hook's).
        :param extra_options: not supported (timeouts and retries come from the connection); must be empty.
        :param request_kwargs: not supported; must be empty.
        :return: the 2xx response.
        :raises TypeError: when ``extra_options`` or ``request_kwargs`` are given.
        :raises NtropyError: the typed error of a failed call, after the policy's retries.
        """
        if extra_options or request_kwargs:
            raise TypeError(
                f"{type(self).__name__}.run: extra_options and request arguments are not supported "
                f"(got {', '.join(sorted({*(extra_options or {}), *request_kwargs}))}); timeouts and "
                "retries come from the ntropy connection and the hook's options"
            )
        method = (self.method or "GET").upper()
        path = "/" + (endpoint or "").lstrip("/")
        if method in ("GET", "DELETE", "HEAD"):
            if data is not None and not isinstance(data, Mapping):
                raise TypeError(f"{type(self).__name__}.run: the query of a {method} must be a mapping")
            return self._request(method, path, params=data, headers=headers)
        body = data if isinstance(data, bytes) else data.encode() if isinstance(data, str) else None
        if isinstance(data, Mapping):
            body = dumps(data)
        return self._request(method, path, body=body, headers=headers)

    def run_with_advanced_retry(self, _retry_args: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        """Refused: :meth:`run` already retries under the Ntropy policy.

        Tenacity retries around it would multiply the budget and could repeat a POST whose answer was
        lost (a duplicate, paid batch).

        :raises NotImplementedError: always.
        """
        raise NotImplementedError(
            f"{type(self).__name__}.run_with_advanced_retry is not supported: run() already retries under "
            "the Ntropy retry policy (set max_attempts, max_elapsed... on the connection or the hook)"
        )

    def _call(self, call: Call[T]) -> T:
        return self._request(call.method, call.path, params=call.params, body=call.body, parse=call.parse)

    def _json(self, method: str, path: str, build: Callable[[Any], T], **kwargs: Any) -> T:
        return self._request(method, path, parse=lambda body: build(loads(body)), **kwargs)

    def _iter_pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            items, cursor = self._call(list_page_call(path, params, cursor))
            yield from items
            if not cursor:
                return
            check_cursor(seen, cursor, path)

    # ---------------------------------------------------------------- batches
    def create_batch(
        self,
        data: Iterable[Mapping[str, Any]],
        operation: str = TRANSACTIONS_OPERATION,
        priority: str = "default",
    ) -> Batch:
        """Submit one batch of at most 24,960 transactions.

        :param data: the transactions (TransactionInput mappings).
        :param operation: the batch operation; only ``POST /v3/transactions`` exists.
        :param priority: ``default`` or ``low``.
        :return: the created batch (``processing``).
        :raises ValueError: when ``data`` is empty or too large, or ``priority`` unknown.
        :raises NtropyValidationError: when the API refuses an item (the message names item and field).
        """
        return self._call(create_batch_call(data, operation, priority))

    def get_batch(self, batch_id: str) -> Batch:
        """Fetch a batch's status and progress.

        :param batch_id: the batch id.
        :raises NtropyNotFoundError: when the batch does not exist.
        """
        return self._call(get_batch_call(batch_id))

    def find_among_newest(self, batch_ids: Collection[str]) -> dict[str, Batch]:
        """The batches of ``batch_ids`` found among the key's newest, by id, from one list request
        (or a few): cheaper than a GET each for many batches just created. Those not found are left
        out (GET them with :meth:`get_batch`).

        :param batch_ids: the batches wanted.
        """
        search = NewestBatchesSearch(batch_ids)
        if search.wanted:
            for batch in self.list_batches(page_size=NEWEST_PAGE_SIZE):
                if search.see(batch):
                    break
        return search.found

    def list_batches(
        self,
        status: BatchStatus | str | None = None,
        created_after: dt.datetime | str | None = None,
        created_before: dt.datetime | str | None = None,
        page_size: int = 100,
    ) -> Iterator[Batch]:
        """Iterate over every batch (newest first), fetching page after page as needed.

        :param status: only batches with this status.
        :param created_after: only batches created at or after this time.
        :param created_before: only batches created before this time.
        :param page_size: batches per request (1 to 1000).
        """
        params = list_params(
            status=status, created_after=created_after, created_before=created_before, page_size=page_size
        )
        for item in self._iter_pages(BATCHES_PATH, params):
            yield Batch.from_dict(item)

    def get_batch_results_raw(self, batch_id: str) -> bytes:
        """The results document of a completed batch, as received (for streaming parsers).

        :param batch_id: the batch id.
        :raises NtropyNotReadyError: while the batch is processing, or after it ended in ``error``.
        """
        return self._call(batch_results_call(batch_id))

    def get_batch_results(self, batch_id: str) -> BatchResult:
        """The results of a completed batch, one EnrichedTransaction per item, in submission order.

        :param batch_id: the batch id.
        :raises NtropyNotReadyError: while the batch is processing, or after it ended in ``error``.
        """
        return parse_batch_result(self.get_batch_results_raw(batch_id))

    def submit_batches(
        self,
        records: Iterable[Mapping[str, Any]],
        chunk_size: int = MAX_BATCH_SIZE,
        *,
        priority: str = "default",
        max_concurrency: int = MAX_CONCURRENT_OPERATIONS,
        skip_chunks: Collection[int] = frozenset(),
        before_submit: Callable[[int, int], None] | None = None,
        on_submitted: Callable[[int, Batch], None] | None = None,
        max_open_batches: int | None = None,
        timeout: float | None = None,
    ) -> list[Batch | None]:
        """Cut any number of transactions into batches and submit them at the pace the API allows.

        A rolling window (:mod:`ntropy_provider.submission.window`): at most ``max_open_batches`` of
        these batches are in progress at once, the next chunk goes when one ends, and POSTs are paced
        to an estimate of the key's credit bucket (:attr:`api_limits`), so that the API's 429s are the
        exception; a 429 makes the chunk wait and go again, never fails the call (until ``timeout``).
        The call blocks until the last chunk is accepted (not until the batches end).

        The input is consumed lazily and each chunk serialized once, so memory stays near
        ``max_concurrency`` chunks in flight plus the one being built, whatever the input's length.
        Both callbacks run in the calling thread, so they may record state (e.g. in a task state store):
        ``before_submit`` right before a chunk's request is issued, ``on_submitted`` as soon as its
        answer is in (in completion order). When a chunk fails for good no further chunk is sent; the
        chunks in flight are awaited (``on_submitted`` still runs for those that succeed), then the first
        error is raised, naming the chunk and, for a 422, the input row and field. A chunk whose answer
        was lost (dropped connection, read timeout, 500/502/504) is not sent again, since the server may
        have stored it: the error says so, and ``before_submit``'s record lets the caller reconcile it.

        :param records: any iterable of transaction mappings (a generator over a huge file included).
        :param chunk_size: transactions per batch (1 to 24,960).
        :param priority: ``default`` or ``low``.
        :param max_concurrency: most requests in flight (1 to 10, the API's limit per key).
        :param skip_chunks: chunk indexes not to send again (e.g. sent by an earlier try); their input
            rows are consumed and their slot in the result is ``None``.
        :param before_submit: called as ``before_submit(chunk_index, size)`` before a chunk is sent.
        :param on_submitted: called as ``on_submitted(chunk_index, batch)`` once a chunk was accepted.
        :param max_open_batches: the most of these batches in progress at once (default: the key's
            ``max_open_batches``); lower it to leave room for other users of the key.
        :param timeout: seconds after which waiting for a slot or credits fails with
            ``NtropyTimeoutError`` (``None``: no limit).
        :return: one Batch per chunk in input order (``None`` for skipped chunks); empty for empty input.
        """
        self.get_conn()  # read the connection once, in this thread, before the workers start
        return submit_records(
            self,
            records,
            chunk_size,
            priority=priority,
            max_concurrency=max_concurrency,
            skip_chunks=skip_chunks,
            before_submit=before_submit,
            on_submitted=on_submitted,
            log=self.log,
            max_open_batches=max_open_batches,
            deadline=None if timeout is None else time.monotonic() + timeout,
        )

    def post_batch_body(self, body: bytes) -> Batch:
        """Send one ``POST /v3/batches`` with an already serialized body (see
        :mod:`ntropy_provider.submission.chunks`); safe to call from several threads.

        :param body: the request body.
        :return: the created batch.
        """
        return self._call(post_batch_call(body))

    def wait_for_batches(
        self,
        batch_ids: Iterable[str],
        poll_interval: float = 10.0,
        timeout: float | None = 36_000.0,
        *,
        max_poll_interval: float | None = None,
        purpose: str = "complete",
    ) -> list[Batch]:
        """Poll batches until every one has ended (``completed`` or ``error``): the wait of sync code.

        The one blocking wait loop of the provider (``SubmitBatchOperator`` uses it too). Progress is
        logged at every round; a transient error (5xx, 429, no answer, after the hook's own retries)
        skips that batch's poll instead of ending a wait that may last hours. The interval grows from
        ``poll_interval`` toward ``max_poll_interval`` and follows the batches' ETA, as the trigger's.

        :param batch_ids: the batches to wait for.
        :param poll_interval: seconds between two rounds of polling (the shortest, when it adapts).
        :param timeout: seconds after which to give up (``None``: wait for ever).
        :param max_poll_interval: the longest interval between rounds; ``None`` keeps it at
            ``poll_interval``.
        :param purpose: what the wait is for, in log lines and the timeout's message.
        :return: the final Batch of each id, in the order given (``error`` batches included: the caller
            decides what an errored batch means).
        :raises NtropyTimeoutError: naming the batches still processing at the deadline.
        """
        given = list(batch_ids)
        tracker = ProgressTracker(dict.fromkeys(given))  # each batch polled once, even when named twice
        maximum = poll_interval if max_poll_interval is None else max(poll_interval, max_poll_interval)
        deadline = None if timeout is None else time.monotonic() + timeout
        final: dict[str, Batch] = {}
        interval = poll_interval
        while True:
            for batch_id in tracker.pending:
                try:
                    batch = self.get_batch(batch_id)
                except TRANSIENT_ERRORS as err:
                    self.log.warning(
                        "Transient error polling batch %s (%s: %s)", batch_id, type(err).__name__, err
                    )
                    continue
                tracker.update(batch, time.monotonic())
                if batch.is_terminal:
                    final[batch_id] = batch
                    self.log.info("Batch %s ended %s (%d items)", batch_id, batch.status, batch.total)
            if tracker.all_terminal:
                # One Batch per id given, so that the answer lines up with the argument.
                return [final[batch_id] for batch_id in given]
            self.log.info("Waiting to %s: %s", purpose, tracker.summary())
            if deadline is not None and time.monotonic() >= deadline:
                pending = tracker.pending
                raise NtropyTimeoutError(
                    f"Timed out waiting to {purpose}: {len(pending)} batch(es) still processing after "
                    f"{timeout} s: {', '.join(pending)}"
                )
            interval = next_poll_interval(interval, tracker.eta, minimum=poll_interval, maximum=maximum)
            # Sleep at most until the deadline and look once more there: giving up as soon as the next
            # full interval would overrun it gave up early, on batches that might end in the meantime.
            pause = interval if deadline is None else min(interval, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)

    # ---------------------------------------------------------------- test_connection
    def test_connection(self) -> tuple[bool, str]:
        """Make one cheap authenticated call (list one batch) and say whether it worked, and if not why."""
        try:
            settings = self.settings
        except Exception as err:
            return False, str(err)
        quick = settings.retry.replace(max_attempts=min(2, settings.retry.max_attempts), max_elapsed=10.0)
        try:
            self._request("GET", BATCHES_PATH, params={"limit": 1}, policy=quick)
        except NtropyAuthError as err:
            return False, (
                f"The API key was refused by {settings.base_url} (HTTP {err.status}: {err.detail}); "
                "check the connection's password field (the API key) and region"
            )
        except NtropyConnectionError as err:
            # One sentence: where, why and the request id (the exception's own message says more).
            return False, (
                f"Could not reach the Ntropy API at {settings.base_url}: {err.reason} "
                f"(X-Request-ID {err.request_id})."
            )
        except NtropyError as err:
            return False, str(err)
        return True, f"Connected to the Ntropy API at {settings.base_url}; the API key was accepted"
