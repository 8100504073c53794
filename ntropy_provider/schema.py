"""The one place that knows the shapes of the Ntropy API v3.

Everything that speaks the API (the hooks, the operators, the trigger, the webhook receiver and the
local emulator) takes its constants, typed values, input rules and the Arrow schema of results from
here, so that a change in the contract is a change in one module. The contract itself is written
down in ``shared/ntropy-api.md``; choices marked *inferred* there are marked here too.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

# --------------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------------
REGION_BASE_URLS: dict[str, str] = {"us": "https://api.ntropy.com", "eu": "https://api.eu.ntropy.com"}
DEFAULT_REGION = "us"
API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
WEBHOOK_TOKEN_HEADER = "X-Ntropy-Token"
RETRY_AFTER_HEADER = "Retry-After"

BATCHES_PATH = "/v3/batches"
ACCOUNT_HOLDERS_PATH = "/v3/account_holders"
TRANSACTIONS_PATH = "/v3/transactions"
WEBHOOKS_PATH = "/v3/webhooks"

#: ``limit`` of a list call when the client sends none.
DEFAULT_LIST_LIMIT = 10
#: Largest ``limit`` the emulator accepts on a list call (*inferred*).
MAX_LIST_LIMIT = 1000

# --------------------------------------------------------------------------------------------------
# Published limits
# --------------------------------------------------------------------------------------------------
#: Most transactions in one batch.
MAX_BATCH_SIZE = 24_960
#: Most concurrent enrichment operations per API key.
MAX_CONCURRENT_OPERATIONS = 10
#: Credits: one per transaction, a bucket of 100,000 refilled at 1,000 per second.
CREDIT_BUCKET_SIZE = 100_000
CREDIT_REFILL_PER_SECOND = 1_000
#: Most webhooks per organization.
MAX_WEBHOOKS = 10
#: Seconds Ntropy waits for a webhook receiver before it counts the delivery as failed.
WEBHOOK_DELIVERY_TIMEOUT_SECONDS = 10.0
#: How long Ntropy keeps retrying a failed webhook delivery.
WEBHOOK_RETRY_WINDOW_SECONDS = 24 * 3600

# --------------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------------
TRANSACTIONS_OPERATION = "POST /v3/transactions"
OPERATIONS: frozenset[str] = frozenset({TRANSACTIONS_OPERATION})
PRIORITIES: tuple[str, ...] = ("default", "low")
ENTRY_TYPES: tuple[str, ...] = ("incoming", "outgoing")
ACCOUNT_HOLDER_TYPES: tuple[str, ...] = ("consumer", "business")
COUNTERPARTY_TYPES: tuple[str, ...] = ("person", "organization")
#: Accounting categories the SDK accepts (it rejects ``investing`` and ``not enough information``).
ACCOUNTING_CATEGORIES: tuple[str, ...] = (
    "operational expenses",
    "cost of goods sold",
    "revenue",
    "financing",
    "taxes",
)
ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND = "account_holder_not_found"
ITEM_ERROR_INTERNAL = "internal_error"
ITEM_ERROR_CODES: tuple[str, ...] = (ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND, ITEM_ERROR_INTERNAL)

WEBHOOK_EVENT_BATCH_COMPLETED = "batches.completed"
WEBHOOK_EVENT_BATCH_ERROR = "batches.error"
BATCH_WEBHOOK_EVENTS: tuple[str, ...] = (WEBHOOK_EVENT_BATCH_COMPLETED, WEBHOOK_EVENT_BATCH_ERROR)
#: Every event type a webhook may subscribe to (reports and bank statements exist too).
WEBHOOK_EVENTS: tuple[str, ...] = (
    *BATCH_WEBHOOK_EVENTS,
    "reports.resolved",
    "reports.rejected",
    "reports.pending",
    "bank_statements.processing",
    "bank_statements.completed",
    "bank_statements.error",
)


class BatchStatus(enum.StrEnum):
    """Status of a batch: ``processing`` until it ends ``completed`` or ``error``."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    ERROR = "error"

    @property
    def is_terminal(self) -> bool:
        """Whether the batch will not change any more."""
        return self is not BatchStatus.PROCESSING


#: The webhook event fired on the transition of a batch to each terminal status.
WEBHOOK_EVENT_FOR_STATUS: dict[BatchStatus, str] = {
    BatchStatus.COMPLETED: WEBHOOK_EVENT_BATCH_COMPLETED,
    BatchStatus.ERROR: WEBHOOK_EVENT_BATCH_ERROR,
}


# --------------------------------------------------------------------------------------------------
# Datetimes: timezone-aware ISO 8601 out, ISO 8601 or ``str(datetime)`` in
# --------------------------------------------------------------------------------------------------
def format_datetime(value: dt.datetime) -> str:
    """Render a datetime the way the API does: UTC, ISO 8601, ``Z`` suffix.

    :param value: an aware datetime (a naive one is taken as UTC).
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: str | dt.datetime) -> dt.datetime:
    """Parse an API datetime (``2024-01-01T00:00:00Z`` or ``2024-01-02 03:04:05+00:00``) as aware UTC.

    :param value: the string (or a datetime, returned as aware UTC).
    :raises ValueError: when the string is not a datetime.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


# --------------------------------------------------------------------------------------------------
# Typed values
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Batch:
    """A batch as the API reports it.

    :param id: the batch id (a UUID).
    :param operation: always ``POST /v3/transactions``.
    :param status: ``processing``, ``completed`` or ``error``.
    :param priority: ``default`` or ``low``.
    :param created_at: when the batch was created (aware UTC).
    :param updated_at: when the batch last changed (aware UTC).
    :param progress: items processed so far.
    :param total: items in the batch.
    """

    id: str
    operation: str
    status: BatchStatus
    priority: str
    created_at: dt.datetime
    updated_at: dt.datetime
    progress: int
    total: int

    @property
    def is_terminal(self) -> bool:
        """Whether the batch has ended (``completed`` or ``error``)."""
        return self.status.is_terminal

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Batch:
        """Build a Batch from the API's JSON object.

        :param data: the decoded JSON object.
        """
        return cls(
            id=str(data["id"]),
            operation=data["operation"],
            status=BatchStatus(data["status"]),
            priority=data.get("priority", "default"),
            created_at=parse_datetime(data["created_at"]),
            updated_at=parse_datetime(data["updated_at"]),
            progress=int(data["progress"]),
            total=int(data["total"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON object for this batch (JSON-serializable, small enough for XCom)."""
        return {
            "id": self.id,
            "operation": self.operation,
            "status": self.status.value,
            "priority": self.priority,
            "created_at": format_datetime(self.created_at),
            "updated_at": format_datetime(self.updated_at),
            "progress": self.progress,
            "total": self.total,
        }


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The results of a completed batch, in submission order.

    :param id: the batch id.
    :param total: items in the batch.
    :param status: the batch status (``completed`` when results are served).
    :param results: one EnrichedTransaction JSON object per submitted item.
    """

    id: str
    total: int
    status: BatchStatus
    results: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchResult:
        """Build a BatchResult from the API's JSON object.

        :param data: the decoded JSON object.
        """
        return cls(
            id=str(data["id"]),
            total=int(data["total"]),
            status=BatchStatus(data["status"]),
            results=list(data.get("results") or []),
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON object for these results."""
        return {"id": self.id, "total": self.total, "status": self.status.value, "results": self.results}


@dataclass(frozen=True, slots=True)
class AccountHolder:
    """An account holder: the consumer or business whose transactions are enriched.

    :param id: the caller's id for the holder (1 to 256 characters).
    :param type: ``consumer`` or ``business``.
    :param name: an optional display name.
    :param category_id: an optional custom category set.
    :param created_at: when the holder was created (aware UTC).
    """

    id: str
    type: str
    name: str | None = None
    category_id: str | None = None
    created_at: dt.datetime | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AccountHolder:
        """Build an AccountHolder from the API's JSON object.

        :param data: the decoded JSON object.
        """
        created = data.get("created_at")
        return cls(
            id=str(data["id"]),
            type=data["type"],
            name=data.get("name"),
            category_id=data.get("category_id"),
            created_at=parse_datetime(created) if created else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON object for this holder."""
        return {
            "id": self.id,
            "type": self.type,
            "name": self.name,
            "category_id": self.category_id,
            "created_at": format_datetime(self.created_at) if self.created_at else None,
        }


@dataclass(frozen=True, slots=True)
class Webhook:
    """A registered webhook.

    ``token`` is a secret: it is excluded from ``repr`` so that it never lands in a log line.

    :param id: the webhook id.
    :param url: where deliveries are POSTed.
    :param events: the event types delivered.
    :param enabled: whether deliveries are made.
    :param created_at: when the webhook was created (aware UTC).
    :param token: the value sent as ``X-Ntropy-Token`` with every delivery.
    """

    id: str
    url: str
    events: tuple[str, ...]
    enabled: bool = True
    created_at: dt.datetime | None = None
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Webhook:
        """Build a Webhook from the API's JSON object.

        :param data: the decoded JSON object.
        """
        created = data.get("created_at")
        return cls(
            id=str(data["id"]),
            url=data["url"],
            events=tuple(data.get("events") or ()),
            enabled=bool(data.get("enabled", True)),
            created_at=parse_datetime(created) if created else None,
            token=data.get("token"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON object for this webhook (the token included: never log it)."""
        return {
            "id": self.id,
            "created_at": format_datetime(self.created_at) if self.created_at else None,
            "url": self.url,
            "events": list(self.events),
            "token": self.token,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One webhook delivery: ``{"event_id", "event_type", "data": Batch}``.

    :param event_id: unique per event; a retried delivery repeats it.
    :param event_type: e.g. ``batches.completed``.
    :param data: the event's payload (a Batch object for batch events).
    """

    event_id: str
    event_type: str
    data: dict[str, Any]

    @property
    def is_batch_event(self) -> bool:
        """Whether this event reports a batch's terminal transition."""
        return self.event_type in BATCH_WEBHOOK_EVENTS

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WebhookEvent:
        """Build a WebhookEvent from a delivery body, checking its documented shape.

        :param data: the decoded JSON body.
        :raises ValueError: naming the field that is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValueError("body: expected a JSON object")
        for key in ("event_id", "event_type"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"{key}: expected a non-empty string")
        payload = data.get("data")
        if not isinstance(payload, Mapping):
            raise ValueError("data: expected a JSON object")
        event = cls(event_id=data["event_id"], event_type=data["event_type"], data=dict(payload))
        if event.is_batch_event:
            # OverflowError: a datetime whose UTC conversion leaves the representable range (year 1 or 9999).
            try:
                Batch.from_dict(payload)
            except (KeyError, ValueError, TypeError, OverflowError) as err:
                raise ValueError(f"data: not a Batch object ({err!r})") from None
        return event

    def to_dict(self) -> dict[str, Any]:
        """The delivery body."""
        return {"event_id": self.event_id, "event_type": self.event_type, "data": self.data}


# --------------------------------------------------------------------------------------------------
# TransactionInput rules: one validator for the operators (client side) and the emulator (server side)
# --------------------------------------------------------------------------------------------------
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

#: ISO 4217 active currency codes.
CURRENCIES: frozenset[str] = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XCG",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
        "ZWL",
    ]
)


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

    The rules are those of ``shared/ntropy-api.md`` ("TransactionInput"); unknown keys are errors,
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


# --------------------------------------------------------------------------------------------------
# Arrow schema of enriched results: one row per transaction
# --------------------------------------------------------------------------------------------------
#: Bumped whenever a column is added, removed or changes type; stored in every Parquet file's metadata.
RESULTS_SCHEMA_VERSION = "1"
RESULTS_SCHEMA_VERSION_KEY = b"ntropy_provider.results_schema_version"

#: Structured location fields, in the API's order, and their Arrow types.
LOCATION_STRUCTURED_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("street", pa.string()),
    ("city", pa.string()),
    ("state", pa.string()),
    ("postcode", pa.string()),
    ("country_code", pa.string()),
    ("country", pa.string()),
    ("house_number", pa.string()),
    ("latitude", pa.float64()),
    ("longitude", pa.float64()),
    ("google_maps_url", pa.string()),
    ("apple_maps_url", pa.string()),
    ("store_number", pa.string()),
)


def parquet_list(value_type: pa.DataType) -> pa.ListType:
    """A list type whose item field is named ``element``, as Parquet names it.

    Arrow's default name is ``item``; a file written with it reads back as ``element``, so the schema
    read from a results file would differ from the declared one. With ``element`` they are equal.

    :param value_type: the type of the list's values.
    """
    return pa.list_(pa.field("element", value_type))


INTERMEDIARY_TYPE = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("website", pa.string()),
        pa.field("logo", pa.string()),
        pa.field("mccs", parquet_list(pa.int32())),
    ]
)

RESULTS_ARROW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("transaction_id", pa.string(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("counterparty_type", pa.string()),
        pa.field("counterparty_id", pa.string()),
        pa.field("counterparty_name", pa.string()),
        pa.field("counterparty_website", pa.string()),
        pa.field("counterparty_logo", pa.string()),
        pa.field("counterparty_mccs", parquet_list(pa.int32())),
        pa.field("intermediaries", parquet_list(INTERMEDIARY_TYPE)),
        pa.field("category_general", pa.string()),
        pa.field("category_accounting", pa.string()),
        pa.field("location_raw_address", pa.string()),
        *(pa.field(f"location_{name}", type_) for name, type_ in LOCATION_STRUCTURED_FIELDS),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
    ],
    metadata={RESULTS_SCHEMA_VERSION_KEY: RESULTS_SCHEMA_VERSION.encode()},
)
"""The columns of the ``ok/`` and ``errors/`` Parquet datasets.

``transaction_id`` and ``batch_id`` are never null; every other column is nullable and keeps its
type when all of its values are null. ``intermediaries`` is a list (empty, never null, for rows
without an error). The schema version sits in the metadata under ``RESULTS_SCHEMA_VERSION_KEY``.
"""

#: A counterparty as the results keep it: an entity plus its ``type`` (``person`` or ``organization``).
COUNTERPARTY_TYPE = pa.struct([pa.field("type", pa.string()), *INTERMEDIARY_TYPE])

#: An EnrichedTransaction as typed for Arrow's JSON reader. Only the fields that the results keep are
#: listed; the reader ignores the others (``phone_number``, ``recurrence``, ...), at every depth.
ENRICHED_TRANSACTION_ARROW_TYPE = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field(
            "entities",
            pa.struct(
                [
                    pa.field("counterparty", COUNTERPARTY_TYPE),
                    pa.field("intermediaries", parquet_list(INTERMEDIARY_TYPE)),
                ]
            ),
        ),
        pa.field(
            "categories", pa.struct([pa.field("general", pa.string()), pa.field("accounting", pa.string())])
        ),
        pa.field(
            "location",
            pa.struct(
                [
                    pa.field("raw_address", pa.string()),
                    pa.field(
                        "structured", pa.struct([pa.field(n, t) for n, t in LOCATION_STRUCTURED_FIELDS])
                    ),
                ]
            ),
        ),
        pa.field("error", pa.struct([pa.field("code", pa.string()), pa.field("message", pa.string())])),
    ]
)

#: The body of ``GET /v3/batches/{id}/results`` (``{"id", "total", "status", "results"}``), for Arrow's
#: JSON reader.
BATCH_RESULTS_ARROW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("total", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("results", pa.list_(ENRICHED_TRANSACTION_ARROW_TYPE)),
    ]
)
