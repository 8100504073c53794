"""One batch's results, as the API's JSON bytes, to Arrow columns of ``RESULTS_ARROW_SCHEMA``.

The body of ``GET /v3/batches/{id}/results`` is parsed by Arrow's JSON reader (C++) with the explicit
``BATCH_RESULTS_ARROW_SCHEMA``, so no Python object is built per transaction: the nested
EnrichedTransactions arrive as one Arrow struct array and the flat columns are its children. A value
of the wrong type is an error that names its JSON path. Fields the schema has no column for are
reported by the reader and kept in ``extra_json`` (see ``extra_fields``); fields of the body beside
``results`` (not per transaction) are logged. ``created_at`` is read with or without a zone (ISO 8601,
``T`` or space, ``Z`` or an offset); without one it means UTC.
"""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.results.extra_fields import extra_json_column, plan_for
from ntropy_provider.results.schema import (
    BATCH_RESULTS_ARROW_SCHEMA,
    ENRICHED_TRANSACTION_ARROW_TYPE,
    EXTRA_JSON_COLUMN,
    LOCATION_STRUCTURED_FIELDS,
    RESULTS_ARROW_SCHEMA,
)

log = logging.getLogger(__name__)

_EMPTY_INTERMEDIARIES = pa.scalar([], type=RESULTS_ARROW_SCHEMA.field("intermediaries").type)
# Arrow's JSON reader parses whole blocks; one block must hold the whole body (one JSON object).
_MIN_BLOCK_SIZE = 1 << 20


class ResultsFormatError(ValueError):
    """The results body of a batch does not have the documented shape (the message says where)."""


@dataclass(frozen=True, slots=True)
class ConvertedResults:
    """One batch's results as Arrow, split into rows without and with an item error.

    :param batch_id: the batch the rows belong to.
    :param total: the batch's ``total`` as the results body states it.
    :param ok: rows whose ``error`` is null, in submission order.
    :param errors: rows with an ``error``, in submission order.
    """

    batch_id: str
    total: int
    ok: pa.RecordBatch
    errors: pa.RecordBatch

    @property
    def rows(self) -> int:
        """Rows in both parts together (equals ``total`` for a well-formed body)."""
        return self.ok.num_rows + self.errors.num_rows


def _children(array: pa.StructArray) -> dict[str, pa.Array]:
    # flatten() merges the parent's validity into each child, so a null parent gives null children.
    return {array.type.field(i).name: child for i, child in enumerate(array.flatten())}


@dataclass(frozen=True, slots=True)
class _Body:
    """A results body as read: its fields typed as the schema says, and what the schema does not know.

    :param table: one row: ``id``, ``total``, ``status``, ``results`` of ``BATCH_RESULTS_ARROW_SCHEMA``.
    :param extra_json: per result, its fields without a column as JSON text (or null).
    """

    table: pa.Table
    extra_json: pa.Array


_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
_BODY_FIELDS = BATCH_RESULTS_ARROW_SCHEMA.names


def _parse(stripped: bytes, unexpected: str) -> pa.Table:
    read_options = pa_json.ReadOptions(use_threads=False, block_size=max(len(stripped) + 1, _MIN_BLOCK_SIZE))
    parse_options = pa_json.ParseOptions(
        explicit_schema=BATCH_RESULTS_ARROW_SCHEMA,
        unexpected_field_behavior=unexpected,
        # A pretty-printed body has newlines between tokens; compact JSON (the API's) parses faster.
        newlines_in_values=b"\n" in stripped,
    )
    return pa_json.read_json(pa.BufferReader(stripped), read_options, parse_options)


def _read_body(raw: bytes, batch_id: str | None) -> _Body:
    where = f"results of batch {batch_id}" if batch_id else "results body"
    stripped = raw.strip()
    if not stripped.startswith(b"{"):
        raise ResultsFormatError(f"{where}: expected a JSON object, got {bytes(raw[:40])!r}")
    seen: pa.StructType | None
    try:
        # "infer": the fields the schema does not list are typed and reported too, at every depth.
        table = _parse(stripped, "infer")
        seen = table.schema.field("results").type.value_type
    except _ARROW_ERRORS:
        # Either a known field has the wrong type, or an unknown one changes type between results
        # (which inference refuses): read the known fields only; any refusal now is the body's fault.
        try:
            table = _parse(stripped, "ignore")
        except _ARROW_ERRORS as err:
            raise ResultsFormatError(f"{where}: {_locate(stripped) or err}") from None
        seen = None
    if table.num_rows != 1:
        raise ResultsFormatError(f"{where}: expected one JSON object, got {table.num_rows}")
    _log_body_fields_not_kept(table.schema.names, where)
    # The inferred fields are left out by a cast to the schema's types (which keeps the known ones).
    known = pa.table(
        [table.column(field.name).cast(field.type) for field in BATCH_RESULTS_ARROW_SCHEMA],
        schema=BATCH_RESULTS_ARROW_SCHEMA,
    )
    results = known.column("results")
    count = 0 if results.null_count else len(results.chunk(0).flatten())
    if seen == ENRICHED_TRANSACTION_ARROW_TYPE:
        # Nothing beyond the schema (the common case): no Python object per transaction.
        return _Body(table=known, extra_json=pa.nulls(count, pa.string()))
    extra = _unknown_fields(stripped, seen, count, where)
    return _Body(table=known, extra_json=extra)


def _log_body_fields_not_kept(names: list[str], where: str) -> None:
    beyond = [name for name in names if name not in _BODY_FIELDS]
    if beyond:
        log.warning("%s: fields of the body not kept (not per transaction): %s", where, ", ".join(beyond))


@contextmanager
def _garbage_collection_paused() -> Iterator[None]:
    # Decoding a body builds millions of containers, none of them cyclic; the collector's passes over
    # them would double the time (measured). Paused only while this thread decodes and walks them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _unknown_fields(stripped: bytes, seen: pa.StructType | None, count: int, where: str) -> pa.Array:
    """The slow path, only for a body holding fields the schema does not know: keep them as JSON."""
    with _garbage_collection_paused():
        try:
            body = orjson.loads(stripped)
        except orjson.JSONDecodeError as err:
            raise ResultsFormatError(f"{where}: not valid JSON ({err})") from None
        if seen is None:  # read with the unknown fields ignored: the body's own were not reported
            _log_body_fields_not_kept(list(body), where)
        results = body.get("results") if isinstance(body.get("results"), list) else []
        if len(results) != count:
            raise ResultsFormatError(f"{where}: {len(results)} results decoded, {count} read")
        extra = extra_json_column(results, plan_for(ENRICHED_TRANSACTION_ARROW_TYPE, seen))
        del body, results  # freed here, by reference counting, while the collector is still paused
    return extra


_ITEM_SCHEMA = pa.schema(list(ENRICHED_TRANSACTION_ARROW_TYPE))
_COLUMN_PATH = re.compile(r"Column\((/[^)]*)\)")


def _locate(raw: bytes) -> str | None:
    """Name the first result (index, id), field and value that Arrow refused (only on the error path)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        return f"not valid JSON ({err})"
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        return None
    options = pa_json.ParseOptions(explicit_schema=_ITEM_SCHEMA, unexpected_field_behavior="ignore")
    for index, item in enumerate(results):
        if not isinstance(item, dict):
            return f"result {index}: expected an object, got {_show(item)}"
        try:
            pa_json.read_json(pa.BufferReader(orjson.dumps(item)), parse_options=options)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as err:
            found = _COLUMN_PATH.search(str(err))
            where = f"result {index} (id {_show(item.get('id'))})"
            if not found:
                return f"{where}: {err}"
            field = found.group(1).strip("/").replace("/[]", "[]").replace("/", ".")
            return f"{where}: field {field}: got {_show(_value_at(item, found.group(1)))} ({err})"
    return None


def _value_at(item: Any, path: str) -> Any:
    value = item
    for part in path.strip("/").split("/"):
        if part == "[]":
            value = next((v for v in value if v is not None), None) if isinstance(value, list) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def convert_results(raw: bytes, *, batch_id: str | None = None) -> pa.RecordBatch:
    """Convert a results body to one record batch of ``RESULTS_ARROW_SCHEMA``, rows in submission order.

    :param raw: the body of ``GET /v3/batches/{id}/results`` as received.
    :param batch_id: the batch that was asked for; the body's ``id`` must match it. ``None`` takes the
        body's ``id``.
    :raises ResultsFormatError: naming the batch and what is wrong (not a JSON object, a field of the
        wrong type, a missing transaction id, a different batch, a status other than ``completed``,
        a ``total`` that differs from the number of results).
    """
    return _convert(raw, batch_id)[1]


def _convert(raw: bytes, batch_id: str | None) -> tuple[str, pa.RecordBatch]:
    read = _read_body(raw, batch_id)
    table = read.table
    body_id = table.column("id")[0].as_py()
    status = table.column("status")[0].as_py()
    total = table.column("total")[0].as_py()
    where = f"results of batch {batch_id or body_id}"
    if batch_id is not None and body_id != batch_id:
        raise ResultsFormatError(f"{where}: the body is for batch {body_id!r}")
    if body_id is None:
        raise ResultsFormatError(f"{where}: the body has no batch id")
    if status != BatchStatus.COMPLETED.value:
        raise ResultsFormatError(f"{where}: status is {status!r}, expected 'completed'")

    results = table.column("results").chunk(0)
    items = results.flatten() if results.null_count == 0 else pa.array([], results.type.value_type)
    if total is None or total != len(items):
        raise ResultsFormatError(f"{where}: total is {total!r} but the body holds {len(items)} results")
    return body_id, _flatten_items(items, read.extra_json, body_id, where)


def _flatten_items(items: pa.StructArray, extra_json: pa.Array, batch_id: str, where: str) -> pa.RecordBatch:
    if items.null_count:
        row = items.is_null().to_pylist().index(True)
        raise ResultsFormatError(f"{where}: result {row} is null, expected an EnrichedTransaction")
    item = _children(items)
    transaction_id = item["id"]
    if transaction_id.null_count:
        row = transaction_id.is_null().to_pylist().index(True)
        raise ResultsFormatError(f"{where}: result {row} has no id")
    entities = _children(item["entities"])
    counterparty = _children(entities["counterparty"])
    categories = _children(item["categories"])
    location = _children(item["location"])
    structured = _children(location["structured"])
    error = _children(item["error"])

    # Rows without an error have a list of intermediaries, empty when the API sent none.
    intermediaries = entities["intermediaries"]
    if intermediaries.null_count:
        intermediaries = pc.if_else(
            pc.and_(intermediaries.is_null(), pc.invert(_has_error(error["code"], error["message"]))),
            _EMPTY_INTERMEDIARIES,
            intermediaries,
        )

    columns: dict[str, pa.Array] = {
        "transaction_id": transaction_id,
        "batch_id": pa.repeat(pa.scalar(batch_id, pa.string()), len(items)),
        "created_at": item["created_at"],
        **{f"counterparty_{name}": column for name, column in counterparty.items()},
        "intermediaries": intermediaries,
        "category_general": categories["general"],
        "category_accounting": categories["accounting"],
        "location_raw_address": location["raw_address"],
        **{f"location_{name}": structured[name] for name, _ in LOCATION_STRUCTURED_FIELDS},
        "error_code": error["code"],
        "error_message": error["message"],
        EXTRA_JSON_COLUMN: extra_json,
    }
    return pa.RecordBatch.from_arrays(
        [columns[field.name] for field in RESULTS_ARROW_SCHEMA], schema=RESULTS_ARROW_SCHEMA
    )


def _has_error(code: pa.Array, message: pa.Array) -> pa.BooleanArray:
    return pc.or_(code.is_valid(), message.is_valid())


def split_ok_errors(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.RecordBatch]:
    """Split rows without an error from rows with one, each part keeping the rows' order.

    A row is an error row when it has an ``error_code`` or an ``error_message``.

    :param batch: a record batch of ``RESULTS_ARROW_SCHEMA``.
    :return: ``(ok, errors)``.
    """
    has_error = _has_error(batch.column("error_code"), batch.column("error_message"))
    errored = pc.sum(has_error).as_py() or 0
    if errored == 0:
        return batch, batch.slice(0, 0)
    if errored == batch.num_rows:
        return batch.slice(0, 0), batch
    return batch.filter(pc.invert(has_error)), batch.filter(has_error)


def convert_and_split(raw: bytes, *, batch_id: str | None = None) -> ConvertedResults:
    """Convert a results body and split it into ok and errored rows.

    :param raw: the body of ``GET /v3/batches/{id}/results`` as received.
    :param batch_id: the batch that was asked for (checked against the body), or ``None``.
    :raises ResultsFormatError: as :func:`convert_results`.
    """
    body_id, batch = _convert(raw, batch_id)
    ok, errors = split_ok_errors(batch)
    return ConvertedResults(batch_id=body_id, total=batch.num_rows, ok=ok, errors=errors)
