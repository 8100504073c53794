"""The asset that webhook events are recorded on, and the shape of each event's ``extra``.

Both sides use this module: the receiver (which writes asset events) and the DAGs scheduled on
the asset (which read them), so the ``extra`` keys are defined once. It imports only Airflow's SDK and
the API's shapes (no pyarrow, no web framework, no HTTP client), so DAG files can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from airflow.sdk import Asset

from ntropy_provider.api.models import Batch, WebhookEvent
from ntropy_provider.api.wire import WEBHOOK_EVENT_BATCH_COMPLETED, WEBHOOK_EVENT_BATCH_ERROR
from ntropy_provider.hooks.connection import DEFAULT_CONN_ID

#: Every Ntropy connection gets its own asset: ``ntropy://batches/<conn_id>``.
BATCHES_ASSET_URI_PREFIX = "ntropy://batches"


def batches_asset_uri(conn_id: str = DEFAULT_CONN_ID) -> str:
    """The URI (also the name) of the asset that records batch events of one Ntropy connection.

    :param conn_id: the Ntropy connection whose webhook deliveries are recorded.
    """
    return f"{BATCHES_ASSET_URI_PREFIX}/{conn_id}"


def batches_asset(conn_id: str = DEFAULT_CONN_ID) -> Asset:
    """The asset to schedule a DAG on to run once Ntropy reports batches ``completed`` or ``error``.

    The receiver can only record events on an asset that Airflow knows, i.e. one that at least one
    DAG references (e.g. ``schedule=[batches_asset()]``).

    :param conn_id: the Ntropy connection whose webhook deliveries are recorded.
    """
    uri = batches_asset_uri(conn_id)
    return Asset(name=uri, uri=uri, group="ntropy")


@dataclass(frozen=True, slots=True)
class BatchEventRecord:
    """One batch event as stored in an asset event's ``extra``.

    :param event_id: Ntropy's id of the event (unique; retries repeat it).
    :param event_type: ``batches.completed`` or ``batches.error``.
    :param batch_id: the batch the event reports on.
    :param status: the batch's status when the event fired.
    :param total: items in the batch.
    :param progress: items processed when the event fired.
    :param conn_id: the Ntropy connection the delivery was authenticated for.
    :param batch: the Batch object as delivered (so consumers need not ask Ntropy for the status again).
    """

    event_id: str
    event_type: str
    batch_id: str
    status: str
    total: int
    progress: int
    conn_id: str
    batch: dict[str, Any]

    @property
    def is_completed(self) -> bool:
        """Whether the batch completed (its results can be fetched)."""
        return self.event_type == WEBHOOK_EVENT_BATCH_COMPLETED

    @property
    def is_error(self) -> bool:
        """Whether the whole batch failed (no results; Ntropy advises resubmitting)."""
        return self.event_type == WEBHOOK_EVENT_BATCH_ERROR

    @classmethod
    def from_webhook_event(cls, event: WebhookEvent, conn_id: str) -> BatchEventRecord:
        """Build the record of a validated batch event from its validated Batch only.

        Nothing of the delivery but what :meth:`Batch.from_dict_strict` checked and re-serialized reaches
        the asset event's ``extra``: unknown keys are dropped, so its size and depth are bounded.

        :param event: a delivery checked by ``WebhookEvent.from_dict`` (its ``batch`` is set).
        :param conn_id: the connection the delivery was authenticated for.
        :raises ValueError: when the event is not a validated batch event.
        """
        batch = event.batch
        if batch is None:
            raise ValueError(f"event_type: {event.event_type!r} is not a batch event")
        return cls(
            event_id=event.event_id,
            event_type=event.event_type,
            batch_id=batch.id,
            status=batch.status.value,
            total=batch.total,
            progress=batch.progress,
            conn_id=conn_id,
            batch=batch.to_dict(),
        )

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> BatchEventRecord:
        """Read the record back from an asset event's ``extra``.

        :param extra: the asset event's ``extra`` dict.
        :raises ValueError: naming the missing key when the event was not written by the receiver.
        """
        missing = [f.name for f in fields(cls) if f.name not in extra]
        if missing:
            raise ValueError(f"asset event extra: missing {', '.join(missing)} (not an Ntropy batch event?)")
        return cls(
            event_id=str(extra["event_id"]),
            event_type=str(extra["event_type"]),
            batch_id=str(extra["batch_id"]),
            status=str(extra["status"]),
            total=int(extra["total"]),
            progress=int(extra["progress"]),
            conn_id=str(extra["conn_id"]),
            batch=dict(extra["batch"]),
        )

    def to_extra(self) -> dict[str, Any]:
        """The asset event's ``extra`` (JSON-serializable)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_batch(self) -> Batch:
        """The Batch as Ntropy reported it when the event fired."""
        return Batch.from_dict(self.batch)
