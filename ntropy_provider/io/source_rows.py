"""One input row as the API wants it: typing a record's values, checking it, the row that carries both.

Every reader of inputs (lists, files, DataFrames) turns its records into :class:`SourceRow` through
:func:`to_transaction` and :func:`check_row`, so that a row reads the same whatever it came from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from ntropy_provider.api.transaction_input import FieldError, validate_transaction

#: Rows decoded at a time from a columnar input (a Parquet file, a DataFrame).
DEFAULT_READ_BATCH_ROWS = 10_000
#: Flat columns folded into the ``location`` object.
FLAT_LOCATION_COLUMNS: dict[str, str] = {"location_raw_address": "raw_address", "location_country": "country"}


def flatten_location(row: Mapping[str, Any]) -> dict[str, Any]:
    """The flat form of a transaction for CSV: ``location`` as :data:`FLAT_LOCATION_COLUMNS`.

    The inverse of what this module does when it reads a flat file, so a row written with it reads
    back as the same transaction.

    :param row: a TransactionInput dict, with or without ``location``.
    """
    location = row.get("location") or {}
    flat = {key: value for key, value in row.items() if key != "location"}
    flat.update({column: location.get(key) for column, key in FLAT_LOCATION_COLUMNS.items()})
    return flat


@dataclass(slots=True)
class SourceRow:
    """One input row, typed for the API, with what is wrong with it.

    :param row: 1-based row number in the input.
    :param transaction: the TransactionInput dict (possibly invalid; ``None`` when undecodable).
    :param errors: every problem found; empty when the row can be sent.
    :param raw: a JSON-safe rendering of the row as read, kept only for rows with errors.
    """

    row: int
    transaction: dict[str, Any] | None
    errors: list[FieldError] = field(default_factory=list)
    raw: Any = None

    @property
    def valid(self) -> bool:
        """Whether the row can be sent to the API."""
        return not self.errors


def json_safe(value: Any) -> Any:
    """Render a value so that it can be written to a JSON rejects file whatever it holds.

    :param value: what a row held.
    """
    if isinstance(value, str):
        # Lone surrogates stand for undecodable bytes (surrogateescape): show them as \\xNN.
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)  # JSON writers refuse integers beyond 64 bits
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)


def _typed_value(name: str, value: Any) -> Any:
    """Type one non-string value from Parquet, JSON or a Python list the API's way."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if name == "date" else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _parse_number(text: str) -> Any:
    """A CSV amount as a number; text that is not a number is returned as is, for the validator to name."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text and "e" not in text.lower() else number


def to_transaction(record: Mapping[str, Any], *, from_text: bool = False) -> dict[str, Any]:
    """Turn one flat record (a CSV row, a Parquet row, a JSON object) into a TransactionInput dict.

    Null values are left out (so optional fields are absent and missing required ones are reported
    as ``required``); with ``from_text`` (CSV), empty strings count as null except for ``description``,
    amounts are parsed as numbers and a ``location`` column is parsed as JSON. Unknown keys are kept,
    so that the validator names them.

    :param record: the row, column name to value.
    :param from_text: whether every value is text (CSV).
    """
    transaction: dict[str, Any] = {}
    location: dict[str, Any] = {}
    for name, value in record.items():
        if value is None or (from_text and value == "" and name != "description"):
            continue
        if isinstance(value, float) and math.isnan(value) and name != "amount":
            continue  # pandas-written Parquet uses NaN for missing values
        if name in FLAT_LOCATION_COLUMNS:
            location[FLAT_LOCATION_COLUMNS[name]] = value
            continue
        if from_text:
            if name == "amount":
                value = _parse_number(value)
            elif name == "location":
                # Text that is not JSON stays text: the validator reports "expected null or an object".
                with contextlib.suppress(orjson.JSONDecodeError):
                    value = orjson.loads(value)
        else:
            value = _typed_value(str(name), value)
        transaction[str(name)] = value
    if location and "location" not in transaction:
        transaction["location"] = location
    return transaction


def check_row(row: int, transaction: Any, raw: Any = None, problems: Sequence[FieldError] = ()) -> SourceRow:
    """Validate one transaction with the API's rules and wrap it as a :class:`SourceRow`.

    :param row: 1-based row number.
    :param transaction: the transaction dict (or whatever the row held).
    :param raw: the row as read, kept for rejects (defaults to the transaction).
    :param problems: problems already found while decoding the row.
    """
    errors = list(problems)
    if transaction is not None:
        errors.extend(validate_transaction(transaction))
    if not errors:
        return SourceRow(row=row, transaction=transaction)
    shown = json_safe(raw if raw is not None else transaction)
    return SourceRow(row=row, transaction=transaction, errors=errors, raw=shown)
