"""The API's resources as typed values (Batch, BatchResult, AccountHolder, Webhook, WebhookEvent) and the
datetime codec they share: timezone-aware ISO 8601 out; ISO 8601 or ``str(datetime)`` in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.api.wire import BATCH_WEBHOOK_EVENTS, BatchStatus


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
