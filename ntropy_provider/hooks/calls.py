"""The API calls: what each request sends and how its answer is read, built once for both hooks.

A :class:`Call` is one request (method, path, query, JSON body) with the function that turns its answer's
body into the call's result. The sync and the async hook send the same calls; only their I/O differs
(see :mod:`ntropy_provider.hooks.exchange` for the attempt-by-attempt decisions).
Every ``POST /v3/batches`` body, one batch from :meth:`NtropyHook.create_batch` or a chunk of
:meth:`NtropyHook.submit_batches`, is built by :func:`batch_body`.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson

from ntropy_provider.api.models import Batch, BatchResult, format_datetime
from ntropy_provider.api.wire import (
    BATCHES_PATH,
    MAX_BATCH_SIZE,
    MAX_LIST_LIMIT,
    PRIORITIES,
    TRANSACTIONS_OPERATION,
    BatchStatus,
)
from ntropy_provider.exceptions import NtropyError

T = TypeVar("T")
#: A list answer: its items and the next page's cursor (``None`` on the last page).
Page = tuple[list[dict[str, Any]], str | None]
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


# --------------------------------------------------------------------------------------------------
# JSON bodies
# --------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------
# Calls
# --------------------------------------------------------------------------------------------------
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


def batch_body(data_items: list[bytes], *, priority: str, operation: str = TRANSACTIONS_OPERATION) -> bytes:
    """The ``POST /v3/batches`` body around already serialized items: the one place that body is built.

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


def create_batch_body(data: Iterable[Mapping[str, Any]], operation: str, priority: str) -> bytes:
    """The body of one ``POST /v3/batches`` from transaction mappings, checked (see :func:`batch_body`).

    :param data: the transactions.
    :param operation: the batch operation.
    :param priority: ``default`` or ``low``.
    :raises ValueError: when there are no transactions or too many, or the priority is unknown.
    """
    check_priority(priority)
    items = data if isinstance(data, list) else list(data)
    if not 1 <= len(items) <= MAX_BATCH_SIZE:
        raise ValueError(f"data: expected 1 to {MAX_BATCH_SIZE} transactions, got {len(items)}")
    return batch_body([dumps(items)[1:-1]], priority=priority, operation=operation)


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


#: Batches per list request when many batches are read from the key's newest.
NEWEST_PAGE_SIZE = 100


class NewestBatchesSearch:
    """Find given batches among the key's newest (``GET /v3/batches``, newest first), by one or two list
    requests instead of a GET each: a task's batches were created lately, so they are among the newest
    unless other clients created many since. The search stops once every one is found, or after the
    pages they would fill and one more; the caller GETs those not found.

    Why: the per-batch endpoint allows 20 requests per second per key, which a GET per batch of a
    40-batch day spends in two seconds, for every task of the key.

    :param batch_ids: the batches wanted.
    """

    def __init__(self, batch_ids: Iterable[str]) -> None:
        self.wanted = set(batch_ids)
        self.found: dict[str, Batch] = {}
        self._budget = (len(self.wanted) // NEWEST_PAGE_SIZE + 2) * NEWEST_PAGE_SIZE
        self._seen = 0

    def see(self, batch: Batch) -> bool:
        """Look at the next batch of the list; whether the search is over.

        :param batch: the next batch, newest first.
        """
        self._seen += 1
        if batch.id in self.wanted:
            self.found[batch.id] = batch
        return len(self.found) == len(self.wanted) or self._seen >= self._budget
