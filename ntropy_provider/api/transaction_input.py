"""TransactionInput rules: one validator for the operators (client side) and the emulator (server side)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ntropy_provider.api.currencies import CURRENCIES
from ntropy_provider.api.wire import ENTRY_TYPES, MAX_BATCH_SIZE, OPERATIONS, TRANSACTIONS_OPERATION

MAX_DESCRIPTION_LENGTH = 1024
MAX_ACCOUNT_HOLDER_ID_LENGTH = 256
TRANSACTION_FIELDS: tuple[str, ...] = (
    "id",
    "description",
    "date",
    "amount",
    "entry_type",
    "currency",
    "account_holder_id",
    "location",
)
REQUIRED_TRANSACTION_FIELDS: tuple[str, ...] = (
    "id",
    "description",
    "date",
    "amount",
    "entry_type",
    "currency",
)
LOCATION_FIELDS: tuple[str, ...] = ("raw_address", "country")

_DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
_COUNTRY_PATTERN = re.compile(r"[A-Z]{2}(-[A-Z0-9]{1,3})?")


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one transaction is invalid.

    :param field: the field's name (``location.country`` for nested fields).
    :param reason: what is wrong, in words.
    :param value: a short rendering of the offending value (truncated, never the whole row).
    """

    field: str
    reason: str
    value: str = ""

    def __str__(self) -> str:
        shown = f" (got {self.value})" if self.value else ""
        return f"{self.field}: {self.reason}{shown}"


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_date(value: Any) -> str | None:
    if not isinstance(value, str) or not _DATE_PATTERN.fullmatch(value):
        return "expected a date as YYYY-MM-DD"
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return "not a calendar date"
    return None


def validate_transaction(item: Any) -> list[FieldError]:
    """Check one TransactionInput against the API's rules, without raising.

    The rules are those of ``docs/ntropy-api.md`` ("TransactionInput"); unknown keys are errors,
    because the API rejects them and a typo (``ammount``) would otherwise pass unnoticed.

    :param item: the transaction, as decoded JSON.
    :return: every problem found, empty when the transaction is valid.
    """
    if not isinstance(item, Mapping):
        return [FieldError("(row)", f"expected an object, got {type(item).__name__}")]
    errors: list[FieldError] = []
    for name in REQUIRED_TRANSACTION_FIELDS:
        if name not in item or (item[name] is None):
            errors.append(FieldError(name, "required"))
    for name in item:
        if name not in TRANSACTION_FIELDS:
            errors.append(FieldError(str(name), "unknown field"))

    tx_id = item.get("id")
    if tx_id is not None and (not isinstance(tx_id, str) or not tx_id):
        errors.append(FieldError("id", "expected a non-empty string", _show(tx_id)))

    description = item.get("description")
    if description is not None:
        if not isinstance(description, str):
            errors.append(FieldError("description", "expected a string", _show(description)))
        elif len(description) > MAX_DESCRIPTION_LENGTH:
            errors.append(
                FieldError(
                    "description",
                    f"longer than {MAX_DESCRIPTION_LENGTH} characters ({len(description)})",
                    _show(description),
                )
            )

    date = item.get("date")
    if date is not None and (reason := _check_date(date)):
        errors.append(FieldError("date", reason, _show(date)))

    amount = item.get("amount")
    if amount is not None:
        if not _is_number(amount):
            errors.append(FieldError("amount", "expected a number", _show(amount)))
        elif not math.isfinite(amount) or amount < 0:
            errors.append(FieldError("amount", "expected a finite number >= 0", _show(amount)))

    entry_type = item.get("entry_type")
    if entry_type is not None and entry_type not in ENTRY_TYPES:
        errors.append(FieldError("entry_type", "expected 'incoming' or 'outgoing'", _show(entry_type)))

    currency = item.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency not in CURRENCIES):
        errors.append(FieldError("currency", "expected an ISO 4217 code such as USD", _show(currency)))

    holder = item.get("account_holder_id")
    if holder is not None and (
        not isinstance(holder, str) or not 1 <= len(holder) <= MAX_ACCOUNT_HOLDER_ID_LENGTH
    ):
        errors.append(
            FieldError(
                "account_holder_id",
                f"expected null or a string of 1 to {MAX_ACCOUNT_HOLDER_ID_LENGTH} characters",
                _show(holder),
            )
        )

    errors.extend(_validate_location(item.get("location")))
    return errors


def _validate_location(location: Any) -> list[FieldError]:
    if location is None:
        return []
    if not isinstance(location, Mapping):
        return [FieldError("location", "expected null or an object", _show(location))]
    errors = [FieldError(f"location.{k}", "unknown field") for k in location if k not in LOCATION_FIELDS]
    raw = location.get("raw_address")
    if raw is not None and not isinstance(raw, str):
        errors.append(FieldError("location.raw_address", "expected null or a string", _show(raw)))
    country = location.get("country")
    if country is not None and (not isinstance(country, str) or not _COUNTRY_PATTERN.fullmatch(country)):
        errors.append(FieldError("location.country", "expected an ISO 3166 code such as US", _show(country)))
    return errors


def validate_batch_request(operation: Any, data: Any) -> list[tuple[int | None, FieldError]]:
    """Check a ``POST /v3/batches`` request: the operation, the item count and every item.

    :param operation: the requested operation.
    :param data: the list of transactions.
    :return: ``(item index or None, error)`` pairs, empty when the request is valid.
    """
    problems: list[tuple[int | None, FieldError]] = []
    # A JSON object or list is unhashable: test the type before looking it up in the frozenset.
    if not isinstance(operation, str) or operation not in OPERATIONS:
        problems.append(
            (None, FieldError("operation", f"expected {TRANSACTIONS_OPERATION!r}", _show(operation)))
        )
    if not isinstance(data, list):
        problems.append((None, FieldError("data", "expected a list of transactions", _show(data))))
        return problems
    if not 1 <= len(data) <= MAX_BATCH_SIZE:
        problems.append((None, FieldError("data", f"expected 1 to {MAX_BATCH_SIZE} items, got {len(data)}")))
        return problems
    for index, item in enumerate(data):
        problems.extend((index, error) for error in validate_transaction(item))
    return problems
