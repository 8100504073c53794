"""The async hook for the Ntropy API, for triggers: aiohttp, and nothing that blocks the event loop.

Its I/O loop only sends, reads and sleeps (``asyncio.sleep``); every decision is the exchange's
(:mod:`ntropy_provider.hooks.exchange`), shared with the sync
:class:`~ntropy_provider.hooks.ntropy.NtropyHook`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

import aiohttp
from airflow.sdk import BaseHook

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.models import Batch, BatchResult
from ntropy_provider.api.wire import (
    BATCHES_PATH,
    MAX_CONCURRENT_OPERATIONS,
    RETRY_AFTER_HEADER,
    TRANSACTIONS_OPERATION,
    BatchStatus,
)
from ntropy_provider.hooks.calls import (
    NEWEST_PAGE_SIZE,
    Call,
    NewestBatchesSearch,
    batch_results_call,
    check_cursor,
    create_batch_call,
    get_batch_call,
    list_page_call,
    list_params,
    parse_batch_result,
)
from ntropy_provider.hooks.connection import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    NtropyConnectionSettings,
    RequestOptions,
    settings_from_airflow_connection,
)
from ntropy_provider.hooks.exchange import Exchange, RetryCallback, amask, base_headers

#: Transport failures worth another attempt (no answer, or a truncated one).
_TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)

T = TypeVar("T")


def _reached_server(error: BaseException) -> bool:
    """Whether a failed request may have reached the server (``False`` only for a failure to connect)."""
    return not isinstance(error, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


class NtropyAsyncHook(BaseHook):
    """The batch calls of :class:`NtropyHook`, on aiohttp, for triggers: nothing here blocks the loop.

    The connection is read with ``await BaseHook.aget_connection``; retries follow the same
    :class:`~ntropy_provider.hooks.retry_policy.RetryPolicy` as the sync hook, waiting with ``asyncio.sleep``.
    Use it as ``async with NtropyAsyncHook() as hook:`` to share one HTTP session between calls;
    without ``async with`` each call opens and closes its own.
    (Not an ``HttpAsyncHook``: that hook's fixed-wait tenacity retries ignore ``Retry-After`` and it
    turns every connection extra into a header.)

    :param ntropy_conn_id: the ``ntropy`` connection to use.
    :param options: retry and timeout settings that win over the connection's extras.
    :param on_retry: called with a :class:`~ntropy_provider.hooks.retry_policy.RetryEvent` before each wait.
    :param settings: any field of :class:`~ntropy_provider.hooks.connection.RequestOptions` by name
        (``max_attempts=3``), winning over ``options``.
    """

    conn_name_attr = "ntropy_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Ntropy (async)"

    def __init__(
        self,
        ntropy_conn_id: str = default_conn_name,
        *,
        options: RequestOptions | None = None,
        on_retry: RetryCallback | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        self.ntropy_conn_id = ntropy_conn_id
        self.on_retry = on_retry
        self.options = RequestOptions.take(settings, options)
        if settings:
            raise TypeError(f"{type(self).__name__}: unknown arguments {', '.join(sorted(settings))}")
        self._settings: NtropyConnectionSettings | None = None
        self._session: aiohttp.ClientSession | None = None
        self._entered = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ntropy_conn_id={self.ntropy_conn_id!r})"

    async def get_settings(self) -> NtropyConnectionSettings:
        """The connection's settings, read once without blocking the event loop."""
        if self._settings is None:
            conn = await BaseHook.aget_connection(self.ntropy_conn_id)
            extras = await conn.aextra_dejson() if hasattr(conn, "aextra_dejson") else conn.extra_dejson
            settings = settings_from_airflow_connection(conn, extras, self.ntropy_conn_id, self.options)
            await amask(settings.api_key)
            self._settings = settings
        return self._settings

    def _read_settings(self, what: str) -> NtropyConnectionSettings:
        if self._settings is None:
            # Reading the connection here would block the event loop: it is read by ``async with`` or
            # ``await hook.get_settings()``.
            raise RuntimeError(
                f"{type(self).__name__}.{what}: the connection {self.ntropy_conn_id!r} is not read yet; "
                "use `async with hook:` or `await hook.get_settings()` first"
            )
        return self._settings

    @property
    def api_limits(self) -> ApiLimits:
        """The API key's limits from the connection's extras (readable once the connection was read).

        :raises RuntimeError: before ``async with`` or ``await get_settings()``.
        """
        return self._read_settings("api_limits").api_limits

    @property
    def max_credits(self) -> int | None:
        """The most credits one task may spend (``max_credits`` extra), ``None`` for no ceiling.

        :raises RuntimeError: before ``async with`` or ``await get_settings()``.
        """
        return self._read_settings("max_credits").max_credits

    def _new_session(self, settings: NtropyConnectionSettings) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=settings.connect_timeout, sock_read=settings.timeout
            ),
            connector=aiohttp.TCPConnector(limit=MAX_CONCURRENT_OPERATIONS),
            headers=base_headers(settings.api_key),
        )

    async def __aenter__(self) -> NtropyAsyncHook:
        # Re-entrant: a nested ``async with`` shares the open session (replacing it would leak the
        # outer one, unclosed); the outermost exit closes it.
        if self._session is None:
            self._session = self._new_session(await self.get_settings())
        self._entered += 1
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered = max(0, self._entered - 1)
        if not self._entered:
            await self.close()

    async def close(self) -> None:
        """Close the shared HTTP session, if one is open."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: bytes | None = None,
        parse: Callable[[bytes], T] | None = None,
    ) -> Any:
        settings = await self.get_settings()
        if self._session is not None:
            return await self._request_in(self._session, settings, method, path, params, body, parse)
        async with self._new_session(settings) as session:
            return await self._request_in(session, settings, method, path, params, body, parse)

    async def _request_in(
        self,
        session: aiohttp.ClientSession,
        settings: NtropyConnectionSettings,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: bytes | None,
        parse: Callable[[bytes], T] | None = None,
    ) -> Any:
        exchange = Exchange(
            method,
            path,
            params=params,
            has_body=body is not None,
            settings=settings,
            log=self.log,
            on_retry=self.on_retry,
        )
        while True:
            headers = exchange.begin()
            try:
                async with session.request(
                    method,
                    exchange.url,
                    params=exchange.query,
                    data=body,
                    headers=headers,
                    allow_redirects=False,
                ) as response:
                    status = response.status
                    content = await response.read()
                    retry_after = response.headers.get(RETRY_AFTER_HEADER)
            except _TRANSPORT_ERRORS as err:
                wait = exchange.no_answer(err, reached_server=_reached_server(err))
            else:
                wait = exchange.answered(status, content, retry_after)
                if wait is None:
                    return content if parse is None else exchange.read(parse, content)
            await asyncio.sleep(wait)

    async def _call(self, call: Call[T]) -> T:
        return await self._request(
            call.method, call.path, params=call.params, body=call.body, parse=call.parse
        )

    async def create_batch(
        self,
        data: Iterable[Mapping[str, Any]],
        operation: str = TRANSACTIONS_OPERATION,
        priority: str = "default",
    ) -> Batch:
        """Submit one batch of at most 24,960 transactions.

        :param data: the transactions (TransactionInput mappings).
        :param operation: the batch operation; only ``POST /v3/transactions`` exists.
        :param priority: ``default`` or ``low``.
        """
        return await self._call(create_batch_call(data, operation, priority))

    async def get_batch(self, batch_id: str) -> Batch:
        """Fetch a batch's status and progress.

        :param batch_id: the batch id.
        :raises NtropyNotFoundError: when the batch does not exist.
        """
        return await self._call(get_batch_call(batch_id))

    async def find_among_newest(self, batch_ids: Iterable[str]) -> dict[str, Batch]:
        """The batches of ``batch_ids`` found among the key's newest, by id, from one list request
        (or a few): cheaper than a GET each for many batches just created. Those not found are left
        out (GET them with :meth:`get_batch`).

        :param batch_ids: the batches wanted.
        """
        search = NewestBatchesSearch(batch_ids)
        if search.wanted:
            async for batch in self.list_batches(page_size=NEWEST_PAGE_SIZE):
                if search.see(batch):
                    break
        return search.found

    async def list_batches(
        self,
        status: BatchStatus | str | None = None,
        created_after: dt.datetime | str | None = None,
        created_before: dt.datetime | str | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[Batch]:
        """Iterate (``async for``) over every batch, newest first, fetching page after page.

        :param status: only batches with this status.
        :param created_after: only batches created at or after this time.
        :param created_before: only batches created before this time.
        :param page_size: batches per request (1 to 1000).
        """
        params = list_params(
            status=status, created_after=created_after, created_before=created_before, page_size=page_size
        )
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            items, cursor = await self._call(list_page_call(BATCHES_PATH, params, cursor))
            for item in items:
                yield Batch.from_dict(item)
            if not cursor:
                return
            check_cursor(seen, cursor, BATCHES_PATH)

    async def get_batch_results_raw(self, batch_id: str) -> bytes:
        """The results document of a completed batch, as received.

        :param batch_id: the batch id.
        :raises NtropyNotReadyError: while the batch is processing, or after it ended in ``error``.
        """
        return await self._call(batch_results_call(batch_id))

    async def get_batch_results(self, batch_id: str) -> BatchResult:
        """The results of a completed batch, in submission order.

        :param batch_id: the batch id.
        :raises NtropyNotReadyError: while the batch is processing, or after it ended in ``error``.
        """
        raw = await self.get_batch_results_raw(batch_id)
        # A full batch's results are tens of MB of JSON: decoding them would stall the loop (and every
        # other trigger on it) for a noticeable time, so it happens in a worker thread.
        return await asyncio.to_thread(parse_batch_result, raw)
