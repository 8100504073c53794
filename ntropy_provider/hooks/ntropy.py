"""The sync hook for the Ntropy API: :class:`NtropyHook` (requests), and the home of :class:`NtropyAsyncHook`.

Both hooks read the ``ntropy`` connection (see :mod:`ntropy_provider.hooks._connection`), send a fresh
``X-Request-ID`` with every request, retry 429 (after ``Retry-After``), 5xx and connection failures
under one shared :class:`~ntropy_provider.hooks._retry.RetryPolicy`, and raise the typed errors of
:mod:`ntropy_provider.exceptions` for everything else. The API key is sent in a header and never
logged, put in an exception message or shown in a ``repr``.
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
from ntropy_provider.api.models import AccountHolder, Batch, BatchResult, Webhook
from ntropy_provider.api.wire import (
    ACCOUNT_HOLDER_TYPES,
    ACCOUNT_HOLDERS_PATH,
    BATCHES_PATH,
    MAX_BATCH_SIZE,
    MAX_CONCURRENT_OPERATIONS,
    RETRY_AFTER_HEADER,
    TRANSACTIONS_OPERATION,
    WEBHOOKS_PATH,
    BatchStatus,
)
from ntropy_provider.exceptions import (
    TRANSIENT_ERRORS,
    NtropyAuthError,
    NtropyConnectionError,
    NtropyError,
    NtropyNotFoundError,
    NtropyTimeoutError,
    NtropyValidationError,
)
from ntropy_provider.hooks._api import (
    Call,
    Exchange,
    RetryCallback,
    batch_results_call,
    check_cursor,
    create_batch_call,
    get_batch_call,
    item_path,
    list_page_call,
    list_params,
    mask,
    overrides,
    parse_batch_result,
    post_batch_call,
    settings_from_connection,
)
from ntropy_provider.hooks._async import NtropyAsyncHook
from ntropy_provider.hooks._connection import (
    CONN_FIELDS,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    UI_FIELD_BEHAVIOUR,
    NtropyConnectionSettings,
)
from ntropy_provider.hooks._http import base_headers, dumps, loads
from ntropy_provider.hooks._retry import RetryEvent, RetryPolicy
from ntropy_provider.submission.engine import submit_records
from ntropy_provider.triggers.progress import ProgressTracker, next_poll_interval

#: Transport failures worth another attempt (no answer, or a truncated one).
_TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)

_UNSET: Any = object()
T = TypeVar("T")


def _reached_server(error: Exception) -> bool:
    """Whether a failed request may have reached the server (``False`` only for a failure to connect)."""
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return False
    reason = getattr(error.args[0], "reason", None) if error.args else None
    # urllib3's NewConnectionError (refused, DNS) is a ConnectTimeoutError too.
    return not isinstance(reason, ConnectTimeoutError)


__all__ = ["NtropyAsyncHook", "NtropyHook", "RetryEvent", "RetryPolicy"]


class NtropyHook(HttpHook):
    """Talk to the Ntropy API (batches, account holders, webhooks) through an ``ntropy`` connection.

    Built on :class:`~airflow.providers.http.hooks.http.HttpHook` for connection handling; requests go
    through one pooled :class:`requests.Session` (safe to share between the threads of
    :meth:`submit_batches`) and the hook's own retry policy.

    :param ntropy_conn_id: the ``ntropy`` connection to use.
    :param max_attempts: retry budget: most requests per call (overrides the connection's extra).
    :param max_elapsed: retry budget: most seconds spent retrying one call.
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds.
    :param backoff_base: the first backoff's upper bound, in seconds (doubling on every retry).
    :param backoff_max: the longest backoff, in seconds.
    :param timeout: seconds to wait for an answer.
    :param connect_timeout: seconds to wait for a TCP connection.
    :param on_retry: called with a :class:`~ntropy_provider.hooks._retry.RetryEvent` before each wait
        (in the thread that made the request), e.g. to count retries in metrics.
    :param kwargs: passed to :class:`~airflow.providers.http.hooks.http.HttpHook` (e.g. ``tcp_keep_alive``).
    """

    conn_name_attr = "ntropy_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Ntropy"

    def __init__(
        self,
        ntropy_conn_id: str = default_conn_name,
        *,
        max_attempts: int | None = None,
        max_elapsed: float | None = None,
        retry_after_cap: float | None = None,
        backoff_base: float | None = None,
        backoff_max: float | None = None,
        timeout: float | None = None,
        connect_timeout: float | None = None,
        on_retry: RetryCallback | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(method="GET", http_conn_id=ntropy_conn_id, **kwargs)
        self.ntropy_conn_id = ntropy_conn_id
        self.on_retry = on_retry
        self._overrides = overrides(
            max_attempts=max_attempts,
            max_elapsed=max_elapsed,
            retry_after_cap=retry_after_cap,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
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
        self._api_limits: ApiLimits | None = None
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
        """The extra form fields (region, timeout, retry budget) as wtforms fields.

        Airflow >= 3.2 reads the same fields declaratively from ``get_provider_info()["connection-types"]``
        (``conn-fields``) and does not call this; it needs Flask-AppBuilder, imported only here.
        """
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import IntegerField, StringField

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            field_class = IntegerField if "integer" in spec["schema"]["type"] else StringField
            widgets[name] = field_class(
                lazy_gettext(spec["label"]), widget=BS3TextFieldWidget(), description=spec["description"]
            )
        return widgets

    # ---------------------------------------------------------------- connection and session
    @property
    def settings(self) -> NtropyConnectionSettings:
        """The connection's settings (read once; the API key is registered with Airflow's masker)."""
        if self._settings is None:
            conn = self.get_connection(self.ntropy_conn_id)
            settings = settings_from_connection(conn, conn.extra_dejson, self.ntropy_conn_id, self._overrides)
            mask(settings.api_key)
            self.base_url = settings.base_url
            self._base_url_initialized = True
            self._settings = settings
        return self._settings

    @property
    def api_limits(self) -> ApiLimits:
        """The API key's limits: the connection's extras ``max_open_batches``, ``credit_capacity`` and
        ``credit_refill_per_second``, documented defaults for those absent (read once)."""
        if self._api_limits is None:
            extras = self.get_connection(self.ntropy_conn_id).extra_dejson
            where = f"connection {self.ntropy_conn_id!r} extra"
            self._api_limits = ApiLimits.from_extras(extras, where=where)
        return self._api_limits

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
                    self._session = self._configure_session_from_mount_adapters(session)
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
            headers = exchange.begin()
            try:
                response = session.request(
                    method,
                    exchange.url,
                    params=exchange.query,
                    data=body,
                    headers=headers,
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

    # ---------------------------------------------------------------- account holders
    def create_account_holder(
        self,
        account_holder_id: str,
        type: str,
        *,
        name: str | None = None,
        category_id: str | None = None,
    ) -> AccountHolder:
        """Create an account holder.

        :param account_holder_id: your id for the holder (1 to 256 characters).
        :param type: ``consumer`` or ``business``.
        :param name: an optional display name.
        :param category_id: an optional custom category set.
        :raises NtropyValidationError: when the id exists already (400) or a field is invalid.
        """
        if type not in ACCOUNT_HOLDER_TYPES:
            raise ValueError(f"type: expected one of {', '.join(ACCOUNT_HOLDER_TYPES)}, got {type!r}")
        body = dumps({"id": account_holder_id, "type": type, "name": name, "category_id": category_id})
        return self._json("POST", ACCOUNT_HOLDERS_PATH, AccountHolder.from_dict, body=body)

    def get_account_holder(self, account_holder_id: str) -> AccountHolder:
        """Fetch an account holder.

        :param account_holder_id: the holder's id.
        :raises NtropyNotFoundError: when it does not exist.
        """
        return self._json("GET", item_path(ACCOUNT_HOLDERS_PATH, account_holder_id), AccountHolder.from_dict)

    def ensure_account_holder(
        self,
        account_holder_id: str,
        type: str,
        *,
        name: str | None = None,
        category_id: str | None = None,
    ) -> AccountHolder:
        """Return the account holder, creating it when missing (safe to call on every run).

        An existing holder is returned as it is, even if its type or name differ from the arguments.

        :param account_holder_id: your id for the holder.
        :param type: ``consumer`` or ``business`` (used when creating).
        :param name: an optional display name (used when creating).
        :param category_id: an optional custom category set (used when creating).
        """
        try:
            return self.get_account_holder(account_holder_id)
        except NtropyNotFoundError:
            pass
        try:
            return self.create_account_holder(account_holder_id, type, name=name, category_id=category_id)
        except NtropyValidationError as err:
            if err.status != 400:
                raise
            # Created meanwhile by someone else (duplicate id): theirs is the one.
            return self.get_account_holder(account_holder_id)

    # ---------------------------------------------------------------- webhooks
    def create_webhook(
        self, url: str, events: Iterable[str], token: str | None = None, *, hmac_secret: str | None = None
    ) -> Webhook:
        """Register a webhook (at most 10 per organization).

        :param url: where Ntropy POSTs the events.
        :param events: the event types, e.g. ``["batches.completed", "batches.error"]``.
        :param token: sent back as ``X-Ntropy-Token`` with every delivery (a secret: never logged).
        :param hmac_secret: an optional signing secret (Ntropy does not document how it signs).
        """
        body = dumps({"url": url, "events": list(events), "token": token, "hmac_secret": hmac_secret})
        return self._json("POST", WEBHOOKS_PATH, Webhook.from_dict, body=body)

    def list_webhooks(self) -> list[Webhook]:
        """Every registered webhook (all pages)."""
        return [Webhook.from_dict(item) for item in self._iter_pages(WEBHOOKS_PATH, {"limit": 100})]

    def get_webhook(self, webhook_id: str) -> Webhook:
        """Fetch a webhook.

        :param webhook_id: the webhook's id.
        :raises NtropyNotFoundError: when it does not exist.
        """
        return self._json("GET", item_path(WEBHOOKS_PATH, webhook_id), Webhook.from_dict)

    def update_webhook(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Iterable[str] | None = None,
        token: str | None = _UNSET,
        enabled: bool | None = None,
    ) -> Webhook:
        """Change a webhook; arguments left out stay as they are.

        :param webhook_id: the webhook's id.
        :param url: a new URL.
        :param events: new event types.
        :param token: a new token (``None`` removes it).
        :param enabled: enable or disable deliveries.
        :return: the webhook as it is now.
        """
        changes: dict[str, Any] = {}
        if url is not None:
            changes["url"] = url
        if events is not None:
            changes["events"] = list(events)
        if token is not _UNSET:
            changes["token"] = token
        if enabled is not None:
            changes["enabled"] = enabled
        path = item_path(WEBHOOKS_PATH, webhook_id)
        answer = self._request("PATCH", path, body=dumps(changes)).content
        decoded = loads(answer) if answer else None
        if isinstance(decoded, Mapping) and "url" in decoded:
            return Webhook.from_dict(decoded)
        return self.get_webhook(webhook_id)

    def delete_webhook(self, webhook_id: str) -> None:
        """Remove a webhook.

        :param webhook_id: the webhook's id.
        :raises NtropyNotFoundError: when it does not exist.
        """
        self._request("DELETE", item_path(WEBHOOKS_PATH, webhook_id))

    def ensure_webhook(self, url: str, events: Iterable[str], token: str | None = None) -> Webhook:
        """Make sure exactly this webhook is registered for ``url``: idempotent, never a second one.

        A webhook already registered for ``url`` is updated when its events, token or enabled flag
        differ; otherwise one is created.

        :param url: where Ntropy POSTs the events.
        :param events: the event types.
        :param token: the delivery token (a secret: never logged).
        """
        wanted = sorted(set(events))
        for webhook in self.list_webhooks():
            if webhook.url != url:
                continue
            if sorted(set(webhook.events)) == wanted and webhook.token == token and webhook.enabled:
                return webhook
            self.log.info(
                "Updating webhook %s for %s (events, token or enabled flag differ)", webhook.id, url
            )
            return self.update_webhook(webhook.id, events=wanted, token=token, enabled=True)
        self.log.info("Registering a webhook for %s (events %s)", url, ", ".join(wanted))
        return self.create_webhook(url, wanted, token)

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
            return False, f"Could not reach the Ntropy API at {settings.base_url}: {err}"
        except NtropyError as err:
            return False, str(err)
        return True, f"Connected to the Ntropy API at {settings.base_url}; the API key was accepted"
