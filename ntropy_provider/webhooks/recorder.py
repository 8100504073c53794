"""Records each batch event exactly once as an Airflow asset event.

Ntropy retries a delivery (same ``event_id``) for 24 h until it gets a 2xx, and two copies can arrive
at the same time. Exactly-once rests on one database transaction that both

1. inserts ``(conn_id, event_id)`` into a small table of our own (``ntropy_webhook_event``, primary
   key on that pair) in Airflow's metadata database, and
2. creates the asset event through Airflow's own ``AssetManager.register_asset_change`` (what the REST
   API's ``POST /api/v2/assets/events`` calls), which also queues the DAG runs scheduled on the asset.

A second copy fails on the primary key and is answered as a duplicate. A batch ends once, so an event
for a batch and event type already recorded under another ``event_id`` (a re-delivery under a new id, or
the catch-up's record of a batch whose delivery came late) fails on a unique index over
``(conn_id, batch_id, event_type)`` and is a duplicate too. If recording fails, the
transaction rolls back, the event id is not kept, and Ntropy's retry records it later. Because the
table lives in the metadata database, this holds across API-server workers and hosts. Nothing here
touches Airflow's tables other than through Airflow's API.

Everything here blocks (SQLAlchemy sessions): the receiver calls it from a worker thread.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import threading
import time
from dataclasses import dataclass

from airflow.utils.sqlalchemy import UtcDateTime
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ntropy_provider.api.models import MAX_EVENT_ID_LENGTH
from ntropy_provider.webhooks.assets import BatchEventRecord, batches_asset_uri
from ntropy_provider.webhooks.log_text import log_safe

log = logging.getLogger(__name__)

DEDUPE_TABLE_NAME = "ntropy_webhook_event"
#: Longest connection id Airflow allows.
MAX_CONN_ID_LENGTH = 250
#: How often a process deletes expired event ids.
PURGE_INTERVAL_SECONDS = 3600.0

_metadata = MetaData()


dedupe_table = Table(
    DEDUPE_TABLE_NAME,
    _metadata,
    Column("conn_id", String(MAX_CONN_ID_LENGTH), primary_key=True),
    Column("event_id", String(MAX_EVENT_ID_LENGTH), primary_key=True),
    Column("event_type", String(100), nullable=False),
    Column("batch_id", String(100), nullable=False),
    # Airflow's own timezone-safe type, so the column behaves the same on SQLite, Postgres and MySQL.
    Column("received_at", UtcDateTime(), nullable=False, index=True),
    Column("asset_event_id", Integer, nullable=True),
)
#: One recorded event per batch and event type, whatever its event id.
batch_index = Index(
    "ntropy_webhook_event_batch_uq",
    dedupe_table.c.conn_id,
    dedupe_table.c.batch_id,
    dedupe_table.c.event_type,
    unique=True,
)


class NoActiveConsumerError(Exception):
    """No unpaused DAG would run for the event (the asset is unknown, or its consumers are paused or of
    the wrong kind): recording it now would leave its batch unprocessed, so the delivery is refused and
    Ntropy retries it."""


class RecordOutcome(enum.StrEnum):
    """What became of a delivery."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome of recording one event.

    :param outcome: ``recorded`` (a new asset event) or ``duplicate`` (seen before; nothing written).
    :param asset_event_id: the id of the asset event created (``None`` for a duplicate).
    """

    outcome: RecordOutcome
    asset_event_id: int | None = None


class EventRecorder:
    """Writes batch events to Airflow's metadata database, once per ``(conn_id, event_id)``.

    :param retention: how long event ids are remembered (must exceed Ntropy's 24 h retry window).
    :param partition_by_batch: record each event with the batch id as its partition key (see
        :class:`~ntropy_provider.webhooks.config.ReceiverConfig`).
    :param require_active_consumer: refuse (and so have Ntropy retry) events that no unpaused DAG of the
        right kind would run for.
    """

    def __init__(
        self,
        retention: dt.timedelta = dt.timedelta(days=7),
        *,
        partition_by_batch: bool = True,
        require_active_consumer: bool = True,
    ) -> None:
        self._retention = retention
        self._partition_by_batch = partition_by_batch
        self._require_active_consumer = require_active_consumer
        self._table_ready = False
        self._setup_lock = threading.Lock()
        # SQLite takes one writer at a time: queueing in-process beats failing on "database is locked".
        self._write_lock: threading.Lock | None = None
        self._next_purge = 0.0

    def ensure_table(self) -> None:
        """Create the deduplication table if it does not exist yet (idempotent, safe across processes)."""
        if self._table_ready:
            return
        from airflow import settings

        with self._setup_lock:
            if self._table_ready:
                return
            engine = settings.engine
            if engine is None:
                raise RuntimeError("Airflow's ORM is not configured (settings.engine is None)")
            try:
                _metadata.create_all(engine, checkfirst=True)
            except OperationalError:
                # Another process created it between our check and our CREATE: fine if it now exists.
                from sqlalchemy import inspect

                if not inspect(engine).has_table(DEDUPE_TABLE_NAME):
                    raise
            # A table created before the index existed gets it now.
            try:
                batch_index.create(engine, checkfirst=True)
            except OperationalError:
                from sqlalchemy import inspect

                names = {index["name"] for index in inspect(engine).get_indexes(DEDUPE_TABLE_NAME)}
                if batch_index.name not in names:
                    raise
            if engine.dialect.name == "sqlite":
                self._write_lock = threading.Lock()
            self._table_ready = True

    def record(self, event: BatchEventRecord) -> RecordResult:
        """Record one batch event as an asset event, unless its ``event_id`` was recorded before.

        :param event: the validated event.
        :raises NoActiveConsumerError: when no unpaused DAG would run for the event.
        :raises sqlalchemy.exc.OperationalError: when the database is unavailable (retry later).
        """
        self.ensure_table()
        if self._write_lock is None:
            result = self._record(event)
        else:
            with self._write_lock:
                result = self._record(event)
        self._maybe_purge()
        return result

    def _record(self, event: BatchEventRecord) -> RecordResult:
        from airflow.assets.manager import asset_manager
        from airflow.serialization.definitions.assets import SerializedAssetUniqueKey
        from airflow.utils.session import create_session

        uri = batches_asset_uri(event.conn_id)
        key = {"conn_id": event.conn_id, "event_id": event.event_id}
        try:
            with create_session(scoped=False) as session:
                # The claim comes first: a concurrent copy blocks on (or fails at) this primary key.
                session.execute(
                    insert(dedupe_table).values(
                        **key,
                        event_type=event.event_type,
                        batch_id=event.batch_id,
                        received_at=dt.datetime.now(dt.UTC),
                    )
                )
                if self._require_active_consumer and not self._active_consumers(session, uri):
                    # Raising rolls the claim back, so a later retry can still record the event.
                    raise NoActiveConsumerError(self._no_consumer_reason(uri))
                asset_event = asset_manager.register_asset_change(
                    asset=SerializedAssetUniqueKey(name=uri, uri=uri),
                    extra=event.to_extra(),
                    partition_key=event.batch_id if self._partition_by_batch else None,
                    source_is_api=True,
                    session=session,
                )
                if asset_event is None:
                    raise NoActiveConsumerError(self._no_consumer_reason(uri))
                session.execute(
                    update(dedupe_table)
                    .where(dedupe_table.c.conn_id == event.conn_id, dedupe_table.c.event_id == event.event_id)
                    .values(asset_event_id=asset_event.id)
                )
                asset_event_id = asset_event.id
        except IntegrityError:
            # Only the claim's keys make this a duplicate. A constraint elsewhere (in Airflow's tables)
            # rolled the claim back too: answering "duplicate" would lose the event for good, so let it
            # surface as a database error (503) and have Ntropy retry it.
            if self._is_duplicate(event):
                return RecordResult(RecordOutcome.DUPLICATE)
            raise
        return RecordResult(RecordOutcome.RECORDED, asset_event_id)

    def _is_duplicate(self, event: BatchEventRecord) -> bool:
        """Whether the claim failed because the event, or its batch's event of that type, is recorded.

        A reused ``event_id`` that reported another batch or type is still a duplicate (its id is taken)
        but is logged as a warning naming both, since the sender is confused or hostile.
        """
        from airflow.utils.session import create_session

        columns = (dedupe_table.c.event_id, dedupe_table.c.batch_id, dedupe_table.c.event_type)
        with create_session(scoped=False) as session:
            same_id = session.execute(
                select(*columns).where(
                    dedupe_table.c.conn_id == event.conn_id, dedupe_table.c.event_id == event.event_id
                )
            ).first()
            same_batch = session.execute(
                select(*columns).where(
                    dedupe_table.c.conn_id == event.conn_id,
                    dedupe_table.c.batch_id == event.batch_id,
                    dedupe_table.c.event_type == event.event_type,
                )
            ).first()
        if same_id is not None:
            if (same_id.batch_id, same_id.event_type) != (event.batch_id, event.event_type):
                log.warning(
                    "Ntropy webhook: event id %s reused: recorded for batch %s (%s), now delivered for batch "
                    "%s (%s); answered as a duplicate, nothing recorded",
                    log_safe(event.event_id),
                    log_safe(same_id.batch_id),
                    log_safe(same_id.event_type),
                    log_safe(event.batch_id),
                    log_safe(event.event_type),
                )
            return True
        if same_batch is not None:
            log.info(
                "Ntropy webhook: %s of batch %s already recorded as event %s; event %s is a duplicate",
                log_safe(event.event_type),
                log_safe(event.batch_id),
                log_safe(same_batch.event_id),
                log_safe(event.event_id),
            )
            return True
        return False

    def _no_consumer_reason(self, uri: str) -> str:
        kind = "with PartitionedAssetTimetable" if self._partition_by_batch else "with schedule=[asset]"
        return (
            f"no unpaused DAG is scheduled on asset {uri!r} {kind} (as ntropy_webhook_results is): "
            "deploy or unpause it; until then deliveries are refused and Ntropy retries them"
        )

    def _active_consumers(self, session, uri: str) -> list[str]:
        """Unpaused DAGs scheduled on the asset that Airflow will queue for this receiver's events.

        Airflow queues only partition-aware DAGs for partition-keyed events, and only the others for
        events without a key; a paused DAG is not queued at all (and does not catch up on unpause).
        """
        from airflow.models.asset import AssetModel, DagScheduleAssetReference
        from airflow.models.dag import DagModel

        rows = session.execute(
            select(DagModel.dag_id, DagModel.timetable_partitioned)
            .join(DagScheduleAssetReference, DagScheduleAssetReference.dag_id == DagModel.dag_id)
            .join(AssetModel, AssetModel.id == DagScheduleAssetReference.asset_id)
            .where(AssetModel.uri == uri, AssetModel.name == uri, DagModel.is_paused.is_(False))
        ).all()
        return [dag_id for dag_id, partitioned in rows if bool(partitioned) == self._partition_by_batch]

    def is_recorded(self, conn_id: str, event_id: str) -> bool:
        """Whether an event id is remembered as recorded.

        :param conn_id: the connection the event was delivered for.
        :param event_id: Ntropy's event id.
        """
        from airflow.utils.session import create_session
        from sqlalchemy import select

        self.ensure_table()
        with create_session(scoped=False) as session:
            found = session.execute(
                select(dedupe_table.c.event_id).where(
                    dedupe_table.c.conn_id == conn_id, dedupe_table.c.event_id == event_id
                )
            ).first()
        return found is not None

    def purge(self, now: dt.datetime | None = None) -> int:
        """Forget event ids older than the retention period.

        :param now: the current time (aware UTC); defaults to now.
        :return: how many event ids were forgotten.
        """
        from airflow.utils.session import create_session

        self.ensure_table()
        cutoff = (now or dt.datetime.now(dt.UTC)) - self._retention
        with create_session(scoped=False) as session:
            deleted = session.execute(delete(dedupe_table).where(dedupe_table.c.received_at < cutoff))
        return int(deleted.rowcount or 0)

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_INTERVAL_SECONDS
        try:
            if self._write_lock is None:
                removed = self.purge()
            else:
                with self._write_lock:
                    removed = self.purge()
        except Exception:
            # Purging is housekeeping: a failure must not fail the delivery that was just recorded.
            log.warning("Ntropy webhook: could not purge old event ids", exc_info=True)
            return
        if removed:
            log.info("Ntropy webhook: forgot %d event ids older than %s", removed, self._retention)
