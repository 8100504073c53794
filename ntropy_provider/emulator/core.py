"""The emulator's state and the life of its batches, independent of HTTP.

Everything here runs on the server's event loop (one thread), so no locks are needed. A batch's
progress is computed from the clock when somebody looks at it, never by a task per batch: thousands of
batches cost nothing while they "run". One background task (:meth:`Emulator._finisher`) sleeps until
the next batch is due to end, builds its results once (off the loop, as gzip-compressed JSON) and fires
its webhooks, so events are delivered even when nobody polls.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import gzip
import heapq
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ntropy_provider.api.models import format_datetime
from ntropy_provider.api.wire import (
    MAX_WEBHOOKS,
    TRANSACTIONS_OPERATION,
    WEBHOOK_EVENT_FOR_STATUS,
    BatchStatus,
)
from ntropy_provider.emulator.delivery import WebhookDeliverer
from ntropy_provider.emulator.enrichment import enrich, holder_type_for, unit_interval
from ntropy_provider.emulator.limits import ApiLimiter, RateLimiter, retry_after_seconds
from ntropy_provider.emulator.settings import EmulatorSettings
from ntropy_provider.emulator.stats import Stats


class NotFound(LookupError):
    """The named resource does not exist (answered 404)."""


class Conflict(Exception):
    """The request is valid but clashes with the state (answered with ``status``)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LimitExceeded(Exception):
    """A documented per-key limit refuses the request: 429 with ``Retry-After``.

    :param message: the ``detail``, naming the limit.
    :param retry_after: whole seconds until the request can succeed.
    """

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(slots=True, eq=False)
class BatchRecord:
    """One batch: how far it has got is a function of the clock.

    Progress runs linearly from ``base_progress`` at ``base_time`` at ``rate`` items per second up to
    ``target`` (``total``, or the point where an injected error stops it).

    :param id: the batch id.
    :param seq: creation order (the paging cursor).
    :param priority: ``default`` or ``low``.
    :param total: number of items.
    :param created_at: creation time (aware UTC).
    :param created_mono: creation time on the monotonic clock.
    :param will_error: whether the batch ends in ``error``.
    :param target: progress at which it ends.
    :param raw: the request body as received, kept only until the results are built.
    :param holders: the existing holders (id -> type) that its items name, at submission time.
    :param seed: the seed at submission time.
    :param item_error_rate: the item error rate at submission time.
    :param api_key: the key that submitted it (its batches in progress are capped).
    :param extended_accounting: whether its results may use the accounting values the SDK rejects.
    """

    id: str
    seq: int
    priority: str
    total: int
    created_at: dt.datetime
    created_mono: float
    will_error: bool
    target: int
    raw: bytes | None
    holders: dict[str, str]
    seed: int
    item_error_rate: float
    api_key: str = ""
    extended_accounting: bool = False
    base_time: float = 0.0
    base_progress: float = 0.0
    rate: float = 1.0
    results_gzip: bytes | None = None
    building: asyncio.Task[bytes] | None = None
    finalized: bool = False

    def finish_time(self) -> float:
        """Monotonic time at which the batch ends."""
        return self.base_time + (self.target - self.base_progress) / self.rate

    def progress_at(self, now: float) -> int:
        """Items processed at monotonic time ``now``.

        :param now: a monotonic time.
        """
        if now >= self.finish_time():
            return self.target
        return min(self.target, int(self.base_progress + (now - self.base_time) * self.rate))

    def status_at(self, now: float) -> BatchStatus:
        """Status at monotonic time ``now``.

        :param now: a monotonic time.
        """
        if now < self.finish_time():
            return BatchStatus.PROCESSING
        return BatchStatus.ERROR if self.will_error else BatchStatus.COMPLETED

    def view(self, now: float) -> dict[str, Any]:
        """The API's Batch object at monotonic time ``now``.

        :param now: a monotonic time.
        """
        status = self.status_at(now)
        moment = min(now, self.finish_time()) if status.is_terminal else now
        updated = self.created_at + dt.timedelta(seconds=max(0.0, moment - self.created_mono))
        return {
            "id": self.id,
            "operation": TRANSACTIONS_OPERATION,
            "status": status.value,
            "priority": self.priority,
            "created_at": format_datetime(self.created_at),
            "updated_at": format_datetime(updated),
            "progress": self.progress_at(now),
            "total": self.total,
        }


def build_results_body(record: BatchRecord) -> bytes:
    """Enrich every item of a batch and encode the results response once (runs in a worker thread).

    :param record: the batch, with its raw request body.
    """
    assert record.raw is not None
    items = orjson.loads(record.raw)["data"]
    created = format_datetime(record.created_at)
    results = [
        enrich(
            item,
            holder_type=holder_type_for(item, record.holders),
            seed=record.seed,
            created_at=created,
            item_error_rate=record.item_error_rate,
            extended_accounting=record.extended_accounting,
        )
        for item in items
    ]
    return orjson.dumps(
        {"id": record.id, "total": record.total, "status": BatchStatus.COMPLETED.value, "results": results}
    )


def _build_compressed(record: BatchRecord) -> bytes:
    # mtime=0: the same results give the same bytes.
    return gzip.compress(build_results_body(record), compresslevel=1, mtime=0)


class Emulator:
    """The state of one emulated Ntropy organization: batches, account holders, webhooks, settings.

    :param settings: the settings to start with (and to return to on :meth:`reset`).
    :param clock: the monotonic clock (replaceable in unit tests).
    """

    def __init__(self, settings: EmulatorSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.initial_settings = settings or EmulatorSettings()
        self.settings = self.initial_settings.updated({})
        self.clock = clock
        self.rate_limiter = RateLimiter(clock)
        self.api_limiter = ApiLimiter(clock)
        self.stats = Stats()
        self.fault_random = random.Random(self.settings.seed)
        self.batches: dict[str, BatchRecord] = {}
        self._batch_order: list[BatchRecord] = []
        self._open_by_key: dict[str, list[BatchRecord]] = {}
        self.holders: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}
        self._seq = 0
        self._due: list[tuple[float, int, BatchRecord]] = []
        self._wake: asyncio.Event | None = None
        self._finisher_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.deliverer = WebhookDeliverer(self)

    # ---------------------------------------------------------------------------------------------
    # Life cycle (called on the server's loop)
    # ---------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the background task that ends batches and fires their webhooks."""
        self._wake = asyncio.Event()
        self._finisher_task = asyncio.create_task(self._finisher(), name="ntropy-emulator-finisher")
        await self.deliverer.start()

    async def stop(self) -> None:
        """Stop every background task."""
        self._cancel_tasks()
        if self._finisher_task is not None:
            self._finisher_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._finisher_task
        await self.deliverer.stop()

    def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        self.deliverer.cancel_all()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def reset(self) -> None:
        """Forget every batch, holder, webhook, counter and pending delivery; restore the initial settings."""
        self._cancel_tasks()
        self.settings = self.initial_settings.updated({})
        self.fault_random = random.Random(self.settings.seed)
        self.rate_limiter.reset()
        self.api_limiter.reset()
        self.stats = Stats()
        self.batches.clear()
        self._batch_order.clear()
        self._open_by_key.clear()
        self.holders.clear()
        self.webhooks.clear()
        self._seq = 0
        self._due.clear()

    def configure(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Change settings at run time; running batches continue at the new speed from where they are.

        :param changes: setting name to value.
        :raises ValueError: naming a bad setting.
        :return: the settings now in force.
        """
        new = self.settings.updated(changes)
        if new.items_per_second != self.settings.items_per_second:
            now = self.clock()
            for record in self.batches.values():
                if record.status_at(now) is BatchStatus.PROCESSING:
                    record.base_progress = record.base_progress + (now - record.base_time) * record.rate
                    record.base_time = now
                    record.rate = new.items_per_second
                    self._schedule(record)
        if new.seed != self.settings.seed:
            self.fault_random = random.Random(new.seed)
        if (new.endpoint_limits, new.endpoint_rates) != (
            self.settings.endpoint_limits,
            self.settings.endpoint_rates,
        ):
            self.api_limiter.reset_endpoint_rates()  # new rates apply at once, from full buckets
        self.settings = new
        return new.to_dict()

    # ---------------------------------------------------------------------------------------------
    # The documented per-key limits (docs/ntropy-api.md, "Limits")
    # ---------------------------------------------------------------------------------------------
    def open_batches(self, api_key: str) -> list[BatchRecord]:
        """The key's batches still in progress (finished ones are dropped from the tally here).

        :param api_key: the key.
        """
        now = self.clock()
        running = [
            r
            for r in self._open_by_key.get(api_key, [])
            if self.batches.get(r.id) is r and r.status_at(now) is BatchStatus.PROCESSING
        ]
        self._open_by_key[api_key] = running
        return running

    def admit(self, api_key: str, transactions: int) -> None:
        """Check the batch cap and take the credits for ``transactions``, or refuse (nothing taken).

        The sync endpoint is admitted the same way (the cap is shared) but holds no slot afterwards: only
        :meth:`create_batch` adds to the key's batches in progress.

        :param api_key: the caller's key.
        :param transactions: the credits wanted (one per transaction).
        :raises Conflict: 422 when ``transactions`` is more than the bucket can ever hold.
        :raises LimitExceeded: 429 while the cap is full or the bucket holds too few credits.
        """
        settings = self.settings
        if not settings.limits:
            return
        capacity, refill = settings.credit_capacity, settings.credit_refill_per_second
        if transactions > capacity:
            # Waiting never helps: the bucket never holds more than its capacity (*inferred* answer).
            self.stats.rate_limited["batch_over_credit_capacity"] += 1
            raise Conflict(
                f"Credit limit: a batch of {transactions} transactions needs {transactions} credits but this "
                f"API key holds at most {capacity}; submit batches of at most {capacity} transactions",
                status=422,
            )
        running = self.open_batches(api_key)
        if len(running) >= settings.max_open_batches:
            now = self.clock()
            soonest = min(r.finish_time() for r in running)
            self.stats.rate_limited["open_batches"] += 1
            raise LimitExceeded(
                f"Batch limit: {len(running)} batches in progress, at most {settings.max_open_batches} per "
                "API key; retry when one has finished",
                retry_after_seconds(soonest - now),
            )
        wait = self.api_limiter.take_credits(api_key, transactions, refill, capacity)
        if wait > 0:
            held = int(self.api_limiter.credits_available(api_key, refill, capacity))
            self.stats.rate_limited["credits"] += 1
            raise LimitExceeded(
                f"Credit limit: {transactions} credits needed, {held} available (at most {capacity}, "
                f"refilled at {refill:g} per second)",
                retry_after_seconds(wait),
            )

    # ---------------------------------------------------------------------------------------------
    # Batches
    # ---------------------------------------------------------------------------------------------
    def next_seq(self) -> int:
        """The next creation sequence number (shared by batches, holders and webhooks)."""
        self._seq += 1
        return self._seq

    def create_batch(
        self, raw: bytes, items: list[dict[str, Any]], priority: str, api_key: str = ""
    ) -> BatchRecord:
        """Store a validated (and admitted: see :meth:`admit`) batch and start its clock.

        :param raw: the request body as received (``{"operation", "priority", "data"}``).
        :param items: the decoded, validated ``data``.
        :param priority: ``default`` or ``low``.
        :param api_key: the key that submits it.
        """
        settings = self.settings
        seq = self.next_seq()
        batch_id = str(uuid.uuid4())
        will_error = settings.batch_error_rate > 0 and (
            unit_interval(settings.seed, "batch-error", str(seq)) < settings.batch_error_rate
        )
        total = len(items)
        named = {item.get("account_holder_id") for item in items} - {None}
        now = self.clock()
        record = BatchRecord(
            id=batch_id,
            seq=seq,
            priority=priority,
            total=total,
            created_at=dt.datetime.now(dt.UTC),
            created_mono=now,
            will_error=will_error,
            # An injected error strikes half-way, like an unexpected failure of the whole batch.
            target=total // 2 if will_error else total,
            raw=raw,
            holders={h: self.holders[h]["type"] for h in named if h in self.holders},
            seed=settings.seed,
            item_error_rate=settings.item_error_rate,
            api_key=api_key,
            extended_accounting=settings.extended_accounting_categories,
            base_time=now,
            rate=settings.items_per_second,
        )
        self.batches[batch_id] = record
        self._batch_order.append(record)
        running = self.open_batches(api_key)
        running.append(record)
        self.stats.max_open_batches_seen = max(self.stats.max_open_batches_seen, len(running))
        self.stats.batches_created += 1
        self.stats.transactions_submitted += total
        self._schedule(record)
        return record

    def get_batch(self, batch_id: str) -> BatchRecord:
        """A batch by id.

        :param batch_id: the id.
        :raises NotFound: when unknown.
        """
        try:
            return self.batches[batch_id]
        except KeyError:
            raise NotFound(f"Batch {batch_id!r} not found") from None

    def iter_batches(
        self,
        *,
        after_seq: int | None,
        status: BatchStatus | None,
        created_after: dt.datetime | None,
        created_before: dt.datetime | None,
    ) -> Iterator[BatchRecord]:
        """Batches newest first, starting below the cursor, filtered.

        :param after_seq: the cursor (only batches with a smaller ``seq``), or None for the newest.
        :param status: keep only this status.
        :param created_after: keep only ``created_at >= created_after``.
        :param created_before: keep only ``created_at < created_before``.
        """
        order = self._batch_order
        end = len(order) if after_seq is None else bisect.bisect_left(order, after_seq, key=lambda r: r.seq)
        now = self.clock()
        for index in range(end - 1, -1, -1):
            record = order[index]
            if created_after is not None and record.created_at < created_after:
                break  # older still from here on
            if created_before is not None and record.created_at >= created_before:
                continue
            if status is not None and record.status_at(now) is not status:
                continue
            yield record

    async def results_gzip(self, record: BatchRecord) -> bytes:
        """The results response of a completed batch, gzip-compressed: built once and then kept.

        Kept compressed (about a tenth of the JSON) so that many finished batches cost little memory;
        clients that accept gzip (requests, aiohttp and the SDK do) get these bytes as they are.

        :param record: a batch whose status is ``completed``.
        """
        if record.results_gzip is not None:
            return record.results_gzip
        if record.building is None:
            record.building = self._spawn(self._build(record))
        return await asyncio.shield(record.building)

    async def _build(self, record: BatchRecord) -> bytes:
        body = await asyncio.to_thread(_build_compressed, record)
        record.results_gzip = body
        record.raw = None  # the input is not needed any more: keep only the results
        record.holders = {}
        return body

    def _schedule(self, record: BatchRecord) -> None:
        heapq.heappush(self._due, (record.finish_time(), record.seq, record))
        if self._wake is not None:
            self._wake.set()

    async def _finisher(self) -> None:
        assert self._wake is not None
        while True:
            now = self.clock()
            while self._due and self._due[0][0] <= now:
                due_at, _, record = heapq.heappop(self._due)
                current = self.batches.get(record.id) is record
                # Skip entries made stale by a speed change or a reset.
                if current and not record.finalized and due_at == record.finish_time():
                    record.finalized = True
                    self._spawn(self._finalize(record))
            self._wake.clear()
            timeout = max(0.0, self._due[0][0] - self.clock()) if self._due else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _finalize(self, record: BatchRecord) -> None:
        status = record.status_at(self.clock())
        if status is BatchStatus.COMPLETED:
            await self.results_gzip(record)
            self.stats.batches_completed += 1
        else:
            record.raw = None
            record.holders = {}
            self.stats.batches_errored += 1
        if self.batches.get(record.id) is record:
            self.deliverer.fire(WEBHOOK_EVENT_FOR_STATUS[status], record.view(self.clock()))

    # ---------------------------------------------------------------------------------------------
    # Account holders
    # ---------------------------------------------------------------------------------------------
    def create_holder(self, holder: dict[str, Any]) -> dict[str, Any]:
        """Store a validated account holder.

        :param holder: ``{id, type, name, category_id}``.
        :raises Conflict: when the id exists (400).
        """
        if holder["id"] in self.holders:
            raise Conflict(f"Account holder {holder['id']!r} already exists")
        stored = {**holder, "created_at": format_datetime(dt.datetime.now(dt.UTC)), "_seq": self.next_seq()}
        self.holders[holder["id"]] = stored
        return public(stored)

    def get_holder(self, holder_id: str) -> dict[str, Any]:
        """An account holder by id.

        :param holder_id: the id.
        :raises NotFound: when unknown.
        """
        try:
            return public(self.holders[holder_id])
        except KeyError:
            raise NotFound(f"Account holder {holder_id!r} not found") from None

    def delete_holder(self, holder_id: str) -> None:
        """Delete an account holder.

        :param holder_id: the id.
        :raises NotFound: when unknown.
        """
        if self.holders.pop(holder_id, None) is None:
            raise NotFound(f"Account holder {holder_id!r} not found")

    # ---------------------------------------------------------------------------------------------
    # Webhooks
    # ---------------------------------------------------------------------------------------------
    def create_webhook(self, url: str, events: list[str], token: str | None) -> dict[str, Any]:
        """Register a webhook.

        :param url: where deliveries go.
        :param events: the event types to deliver.
        :param token: sent as ``X-Ntropy-Token``.
        :raises Conflict: beyond :data:`MAX_WEBHOOKS` (400).
        """
        if len(self.webhooks) >= MAX_WEBHOOKS:
            raise Conflict(f"At most {MAX_WEBHOOKS} webhooks per organization: delete one first")
        webhook = {
            "id": str(uuid.uuid4()),
            "created_at": format_datetime(dt.datetime.now(dt.UTC)),
            "url": url,
            "events": list(events),
            "token": token,
            "enabled": True,
            "_seq": self.next_seq(),
            "_consecutive_failures": 0,
        }
        self.webhooks[webhook["id"]] = webhook
        return public(webhook)

    def get_webhook(self, webhook_id: str) -> dict[str, Any]:
        """The stored webhook (with private keys).

        :param webhook_id: the id.
        :raises NotFound: when unknown.
        """
        try:
            return self.webhooks[webhook_id]
        except KeyError:
            raise NotFound(f"Webhook {webhook_id!r} not found") from None

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook, newest first."""
        return [public(w) for w in sorted(self.webhooks.values(), key=lambda w: -w["_seq"])]


def public(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored object without its private (``_``-prefixed) keys.

    :param stored: the stored object.
    """
    return {k: v for k, v in stored.items() if not k.startswith("_")}


def newest_first(objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored objects sorted newest first by their creation sequence.

    :param objects: stored objects with ``_seq``.
    """
    return sorted(objects, key=lambda o: -o["_seq"])
