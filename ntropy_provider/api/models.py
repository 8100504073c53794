"""The API's resources as typed values (Batch, BatchResult, AccountHolder, Webhook, WebhookEvent) and the
datetime codec they share: timezone-aware ISO 8601 out; ISO 8601 or ``str(datetime)`` in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.api.wire import (
    BATCH_WEBHOOK_EVENTS,
    OPERATIONS,
    PRIORITIES,
    WEBHOOK_EVENT_FOR_STATUS,
    BatchStatus,
)

#: Longest batch id accepted. Every documented batch id is a UUID (36 characters); 64 leaves room for
#: another opaque id format, and no id is longer.
MAX_BATCH_ID_LENGTH = 64
#: What a batch id may look like: letters, digits, ``-``, ``_`` and ``.``, not starting with a dot. A UUID
#: always matches; a path separator, ``..``, ``=`` (the ``batch_id=<id>`` folder convention), a space or a
#: control character never does, so an id that matches is safe as a key, a URL segment and a path segment.
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
#: Longest webhook ``event_id`` accepted (Ntropy's are UUIDs); bounds the receiver's dedupe key.
MAX_EVENT_ID_LENGTH = 200
#: Longest webhook ``event_type`` accepted (the documented ones are under 30 characters).
MAX_EVENT_TYPE_LENGTH = 100
#: Longest datetime string accepted (an ISO 8601 datetime with microseconds and offset is 32).
_MAX_DATETIME_LENGTH = 64


class BatchValidationError(ValueError):
    """A value is not what the API documents; the message starts with the field's name.

    :param field: the field that is wrong (dotted, e.g. ``data.total``).
    :param problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


def _describe(value: Any) -> str:
    """A short, log-safe rendering of a refused value (never a whole nested document)."""
    if isinstance(value, (dict, list)):
        return f"a JSON {'object' if isinstance(value, dict) else 'array'}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_batch_id(value: Any, field: str = "id") -> str:
    """Return ``value`` if it is a batch id, the one rule for every place an id becomes a key or a path.

    :param value: the candidate id.
    :param field: the name used in the error.
    :raises BatchValidationError: naming ``field`` when ``value`` cannot be a batch id.
    """
    if not isinstance(value, str):
        raise BatchValidationError(field, f"expected a batch id string, got {_describe(value)}")
    if not 0 < len(value) <= MAX_BATCH_ID_LENGTH:
        raise BatchValidationError(field, f"expected 1 to {MAX_BATCH_ID_LENGTH} characters, got {len(value)}")
    if BATCH_ID_PATTERN.fullmatch(value) is None:
        raise BatchValidationError(
            field,
            f"expected letters, digits, '-', '_' or '.' (not first), as in a UUID, got {_describe(value)}",
        )
    return value


def _check_count(data: Mapping[str, Any], key: str, prefix: str) -> int:
    value = data.get(key)
    # bool is an int subclass; neither True nor 3.0 is a count.
    if type(value) is not int or value < 0:
        raise BatchValidationError(prefix + key, f"expected a non-negative integer, got {_describe(value)}")
    return value


def _check_choice(data: Mapping[str, Any], key: str, prefix: str, choices: Any, default: str | None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or value not in choices:
        raise BatchValidationError(prefix + key, f"expected one of {sorted(choices)}, got {_describe(value)}")
    return value


def _check_datetime(data: Mapping[str, Any], key: str, prefix: str) -> dt.datetime:
    value = data.get(key)
    if not isinstance(value, str) or len(value) > _MAX_DATETIME_LENGTH:
        raise BatchValidationError(prefix + key, f"expected an ISO 8601 string, got {_describe(value)}")
    try:
        return parse_datetime(value)
    except (ValueError, OverflowError):
        # OverflowError: valid, but its UTC conversion leaves datetime's range (year 1 or 9999).
        raise BatchValidationError(
            prefix + key, f"expected an ISO 8601 datetime, got {_describe(value)}"
        ) from None


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

    @classmethod
    def from_dict_strict(cls, data: Any, prefix: str = "") -> Batch:
        """Build a Batch from untrusted JSON, refusing anything the API does not document.

        :meth:`from_dict` trusts the API's answers (and coerces); this is for what arrives from outside,
        e.g. a webhook delivery. Unknown keys are dropped; every documented one is checked: the id by
        :func:`check_batch_id`, ``operation``/``status``/``priority`` known strings (``priority`` may be
        left out: ``default``), the datetimes ISO 8601 strings, ``progress``/``total`` non-negative
        integers (not booleans or floats) with ``progress <= total``.

        :param data: the decoded JSON value.
        :param prefix: prepended to field names in errors (e.g. ``"data."``).
        :raises BatchValidationError: naming the first field that is wrong.
        """
        if not isinstance(data, Mapping):
            raise BatchValidationError(prefix.rstrip(".") or "batch", "expected a JSON object")
        batch_id = check_batch_id(data.get("id"), prefix + "id")
        operation = _check_choice(data, "operation", prefix, OPERATIONS, None)
        status = _check_choice(data, "status", prefix, {s.value for s in BatchStatus}, None)
        priority = _check_choice(data, "priority", prefix, PRIORITIES, "default")
        created_at = _check_datetime(data, "created_at", prefix)
        updated_at = _check_datetime(data, "updated_at", prefix)
        progress = _check_count(data, "progress", prefix)
        total = _check_count(data, "total", prefix)
        if progress > total:
            raise BatchValidationError(
                prefix + "progress", f"expected at most total ({total}), got {progress}"
            )
        return cls(
            id=batch_id,
            operation=operation,
            status=BatchStatus(status),
            priority=priority,
            created_at=created_at,
            updated_at=updated_at,
            progress=progress,
            total=total,
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
    :param data: the event's payload as delivered (a Batch object for batch events).
    :param batch: for a batch event, the validated Batch (:meth:`Batch.from_dict_strict`); else ``None``.
    """

    event_id: str
    event_type: str
    data: dict[str, Any]
    batch: Batch | None = None

    @property
    def is_batch_event(self) -> bool:
        """Whether this event reports a batch's terminal transition."""
        return self.event_type in BATCH_WEBHOOK_EVENTS

    @classmethod
    def from_dict(cls, data: Any) -> WebhookEvent:
        """Build a WebhookEvent from an untrusted delivery body, checking its documented shape.

        ``event_id`` and ``event_type`` are non-empty strings of bounded length without control
        characters; a batch event's ``data`` is a Batch (:meth:`Batch.from_dict_strict`) whose status is
        the one its event type reports (``completed`` for ``batches.completed``, ``error`` for
        ``batches.error``).

        :param data: the decoded JSON body.
        :raises BatchValidationError: (a ``ValueError``) naming the field that is missing or wrong.
        """
        if not isinstance(data, Mapping):
            raise BatchValidationError("body", "expected a JSON object")
        for key, longest in (("event_id", MAX_EVENT_ID_LENGTH), ("event_type", MAX_EVENT_TYPE_LENGTH)):
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise BatchValidationError(key, f"expected a non-empty string, got {_describe(value)}")
            if len(value) > longest:
                raise BatchValidationError(key, f"longer than {longest} characters")
            if not value.isprintable():
                # Both become key columns and log fields: PostgreSQL refuses NUL, a log line must stay one.
                raise BatchValidationError(key, "contains control or line-separator characters")
        payload = data.get("data")
        if not isinstance(payload, Mapping):
            raise BatchValidationError("data", "expected a JSON object")
        event_type = data["event_type"]
        batch = None
        if event_type in BATCH_WEBHOOK_EVENTS:
            batch = Batch.from_dict_strict(payload, prefix="data.")
            expected = WEBHOOK_EVENT_FOR_STATUS.get(batch.status)
            if expected != event_type:
                raise BatchValidationError(
                    "data.status", f"{batch.status.value!r} contradicts event_type {event_type!r}"
                )
        return cls(event_id=data["event_id"], event_type=event_type, data=dict(payload), batch=batch)

    def to_dict(self) -> dict[str, Any]:
        """The delivery body."""
        return {"event_id": self.event_id, "event_type": self.event_type, "data": self.data}
