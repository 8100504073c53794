"""Catch-up of webhook deliveries that never arrived: Ntropy's batches, listed, recorded through the receiver.

A webhook delivery can be lost for good: the receiver was down, or refused (503) while no consumer DAG
was unpaused, longer than Ntropy retries (24 h), or Ntropy disabled the webhook after consecutive
failures. A run of :class:`WebhookCatchUp` (scheduled by ``ntropy_webhook_catchup``)

1. re-enables, with a warning, every disabled webhook that delivers to this connection's receiver;
2. lists the connection's batches created since a *watermark* (minus an overlap, so the answer is the
   same whether the API's ``created_after`` is inclusive or not, and clock skew is absorbed);
3. POSTs each terminal batch, ended more than ``grace`` ago, to the receiver as the event its webhook
   would have delivered. The receiver validates and records it exactly like a delivery, through the same
   exactly-once claim: a batch whose event was recorded answers ``duplicate``, and the event that the
   catch-up records makes a later real delivery (or a replay) of that batch a ``duplicate`` too;
4. moves the watermark up to the oldest batch it could not settle (still processing, ended within
   ``grace``, or refused by the receiver), so that batch is looked at again next time.

Recording goes over HTTP, not into the database: in Airflow 3 a task has no database access, and this way
the catch-up is exactly a delivery. The watermark is an Airflow Variable (one per connection), so that it
is visible and can be moved back by hand to re-scan.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from ntropy_provider.api.models import Batch, Webhook, format_datetime, parse_datetime
from ntropy_provider.api.wire import BATCH_WEBHOOK_EVENTS, WEBHOOK_EVENT_FOR_STATUS
from ntropy_provider.webhooks.config import URL_PREFIX, WEBHOOK_PATH

log = logging.getLogger(__name__)

#: Prefix of the event ids the catch-up records (Ntropy's own are UUIDs, so they never collide).
CATCHUP_EVENT_ID_PREFIX = "catchup"
#: How long after a batch ended the catch-up leaves it to the webhook (Ntropy's first retries).
DEFAULT_GRACE = dt.timedelta(minutes=15)
#: How far before the watermark each listing starts: absorbs an exclusive ``created_after`` and skew.
DEFAULT_OVERLAP = dt.timedelta(hours=1)
#: Where the first run starts looking (before any watermark exists).
DEFAULT_INITIAL_LOOKBACK = dt.timedelta(days=1)
#: A batch older than this no longer holds the watermark back (the receiver forgets event ids after 7
#: days by default: scanning further back could record a batch a second time).
DEFAULT_MAX_LOOKBACK = dt.timedelta(days=6)


def catchup_event_id(event_type: str, batch_id: str) -> str:
    """The event id the catch-up records a batch's event under: one per batch and type, stable.

    :param event_type: ``batches.completed`` or ``batches.error``.
    :param batch_id: the batch.
    """
    return f"{CATCHUP_EVENT_ID_PREFIX}:{event_type}:{batch_id}"


def catchup_event(batch: Batch) -> dict[str, Any]:
    """The delivery body the webhook would have sent for a terminal batch.

    :param batch: a ``completed`` or ``error`` batch.
    :raises ValueError: when the batch has not ended.
    """
    event_type = WEBHOOK_EVENT_FOR_STATUS.get(batch.status)
    if event_type is None:
        raise ValueError(f"batch {batch.id}: status {batch.status.value!r} has no webhook event")
    return {
        "event_id": catchup_event_id(event_type, batch.id),
        "event_type": event_type,
        "data": batch.to_dict(),
    }


def delivers_to(webhook: Webhook, receiver_url: str, conn_id: str) -> bool:
    """Whether a webhook delivers this connection's batch events to its receiver.

    Matched by URL, or by the receiver's path for the connection (``/ntropy/webhooks/<conn_id>``) when
    the webhook was registered under another host name than the one the catch-up reaches.

    :param webhook: a registered webhook.
    :param receiver_url: the receiver's URL for the connection.
    :param conn_id: the connection.
    """
    if not set(webhook.events) & set(BATCH_WEBHOOK_EVENTS):
        return False
    if webhook.url.rstrip("/") == receiver_url.rstrip("/"):
        return True
    return urlsplit(webhook.url).path.rstrip("/") == f"{URL_PREFIX}{WEBHOOK_PATH}/{conn_id}"


class BatchSource(Protocol):
    """What the catch-up needs of the API (``NtropyHook`` provides it)."""

    def list_batches(self, status: Any = None, created_after: Any = None) -> Iterable[Batch]: ...

    def list_webhooks(self) -> list[Webhook]: ...

    def update_webhook(self, webhook_id: str, *, enabled: bool | None = None) -> Webhook: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """The receiver's answer to one catch-up delivery.

    :param status_code: the HTTP status (0 when the receiver could not be reached).
    :param outcome: the answer's ``status`` (``recorded``, ``duplicate``), or the refusal's ``detail``.
    """

    status_code: int
    outcome: str

    @property
    def settled(self) -> bool:
        """Whether the batch's event is recorded now (by this delivery or before it)."""
        return 200 <= self.status_code < 300 and self.outcome in ("recorded", "duplicate")


#: Sends one event body to the receiver and reports its answer.
Deliver = Callable[[dict[str, Any]], Delivery]


@dataclass(slots=True)
class CatchUpReport:
    """What one catch-up run did.

    :param watermark_before: the watermark the run started from.
    :param watermark_after: the watermark it leaves (every batch created before it is settled).
    :param listed: batches listed.
    :param recorded: ids of the batches whose event this run recorded (their delivery had been lost).
    :param duplicates: terminal batches already recorded.
    :param waiting: batches left for later (still processing, or ended within the grace period).
    :param refused: ``(batch id, answer)`` of deliveries the receiver did not record.
    :param reenabled: ids of the webhooks that were disabled and are enabled again.
    """

    watermark_before: dt.datetime
    watermark_after: dt.datetime
    listed: int = 0
    recorded: list[str] = field(default_factory=list)
    duplicates: int = 0
    waiting: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    reenabled: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary (the operator's XCom)."""
        return {
            "watermark_before": format_datetime(self.watermark_before),
            "watermark_after": format_datetime(self.watermark_after),
            "listed": self.listed,
            "recorded": list(self.recorded),
            "duplicates": self.duplicates,
            "waiting": self.waiting,
            "refused": [list(item) for item in self.refused],
            "reenabled": list(self.reenabled),
        }


@dataclass(frozen=True, slots=True)
class WebhookCatchUp:
    """One connection's catch-up policy.

    :param conn_id: the Ntropy connection (its batches, its receiver path).
    :param receiver_url: where the catch-up POSTs events (the receiver's URL for ``conn_id``).
    :param grace: how long after a batch ended it is left to the webhook.
    :param overlap: how far before the watermark each listing starts.
    :param initial_lookback: where the first run starts (no watermark yet).
    :param max_lookback: older unsettled batches no longer hold the watermark back (logged).
    """

    conn_id: str
    receiver_url: str
    grace: dt.timedelta = DEFAULT_GRACE
    overlap: dt.timedelta = DEFAULT_OVERLAP
    initial_lookback: dt.timedelta = DEFAULT_INITIAL_LOOKBACK
    max_lookback: dt.timedelta = DEFAULT_MAX_LOOKBACK

    def __post_init__(self) -> None:
        for name in ("grace", "overlap", "initial_lookback", "max_lookback"):
            if getattr(self, name) < dt.timedelta(0):
                raise ValueError(f"{name}: expected a non-negative duration, got {getattr(self, name)}")

    def reenable_webhooks(self, source: BatchSource) -> list[str]:
        """Enable again every disabled webhook that delivers to this receiver, with a warning each.

        :param source: the API.
        :return: the ids of the webhooks enabled.
        """
        enabled: list[str] = []
        for webhook in source.list_webhooks():
            if webhook.enabled or not delivers_to(webhook, self.receiver_url, self.conn_id):
                continue
            log.warning(
                "Ntropy disabled webhook %s (%s), most likely after consecutive failed deliveries: "
                "enabling it again; the batches whose events were lost meanwhile are caught up now",
                webhook.id,
                webhook.url,
            )
            source.update_webhook(webhook.id, enabled=True)
            enabled.append(webhook.id)
        return enabled

    def run(
        self,
        source: BatchSource,
        deliver: Deliver,
        watermark: dt.datetime | None,
        now: dt.datetime | None = None,
    ) -> CatchUpReport:
        """Re-enable disabled webhooks, then record every settled-but-unrecorded batch since ``watermark``.

        :param source: the API.
        :param deliver: sends an event to the receiver.
        :param watermark: where the previous run left off (``None`` on the first run).
        :param now: the current time (aware UTC; defaults to now).
        :return: the report; its ``watermark_after`` is to be stored for the next run.
        """
        now = now or dt.datetime.now(dt.UTC)
        start = watermark or now - self.initial_lookback
        report = CatchUpReport(watermark_before=start, watermark_after=start)
        # Webhooks first: batches that end from now on are delivered again, whatever the listing finds.
        report.reenabled = self.reenable_webhooks(source)
        listed_at = now
        unsettled: list[dt.datetime] = []
        batches = sorted(source.list_batches(created_after=start - self.overlap), key=lambda b: b.created_at)
        for batch in batches:
            report.listed += 1
            if not batch.is_terminal or batch.updated_at > now - self.grace:
                report.waiting += 1
                unsettled.append(batch.created_at)
                continue
            answer = deliver(catchup_event(batch))
            if not answer.settled:
                report.refused.append((batch.id, f"{answer.status_code} {answer.outcome}"))
                unsettled.append(batch.created_at)
            elif answer.outcome == "recorded":
                log.warning(
                    "Batch %s (%s) had no recorded webhook event: recorded it now",
                    batch.id,
                    batch.status.value,
                )
                report.recorded.append(batch.id)
            else:
                report.duplicates += 1
        report.watermark_after = self._next_watermark(unsettled, listed_at, now)
        return report

    def _next_watermark(
        self, unsettled: list[dt.datetime], listed_at: dt.datetime, now: dt.datetime
    ) -> dt.datetime:
        floor = now - self.max_lookback
        held = [created for created in unsettled if created >= floor]
        if len(held) < len(unsettled):
            log.warning(
                "%d batch(es) created before %s are still unsettled; the catch-up stops looking for them "
                "(the receiver forgets event ids after its retention period)",
                len(unsettled) - len(held),
                format_datetime(floor),
            )
        return min([*held, listed_at])


def parse_watermark(value: str | None) -> dt.datetime | None:
    """Read a stored watermark (``None`` when there is none).

    :param value: the stored ISO 8601 text.
    :raises ValueError: naming the value when it is not a datetime.
    """
    if value is None or not value.strip():
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise ValueError(f"watermark: expected an ISO 8601 datetime, got {value!r}") from None


def default_watermark_variable(conn_id: str) -> str:
    """The Airflow Variable that keeps a connection's catch-up watermark.

    :param conn_id: the Ntropy connection.
    """
    return f"ntropy_webhook_catchup_watermark__{conn_id}"
