"""Turning the asset events that triggered a run into work: results to write, batches that failed.

A run may be triggered by several asset events (a partitioned run by every event of its batch, a
plain ``schedule=[asset]`` run by every event recorded before it was queued), so a consumer must handle
every event in ``triggering_asset_events``, not only the last one. Each event belongs to exactly one
run; within a run, :func:`plan_batch_events` keeps each event once and each completed batch once, so
that a batch is written once even if Ntropy ever reported it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.webhooks.assets import BatchEventRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchEventPlan:
    """What one run has to do.

    :param completed: one record per completed batch, in event order (write their results).
    :param errored: one record per batch that ended in ``error`` (resubmit or alert).
    :param skipped: asset events that were not written by the receiver (e.g. created by hand), ignored.
    :param duplicates: events seen more than once in this run (same ``event_id``, or a batch already planned).
    """

    completed: list[BatchEventRecord] = field(default_factory=list)
    errored: list[BatchEventRecord] = field(default_factory=list)
    skipped: int = 0
    duplicates: int = 0


def plan_batch_events(extras: Iterable[Mapping[str, Any] | None]) -> BatchEventPlan:
    """Sort the ``extra`` of every triggering asset event into completed and errored batches.

    :param extras: the ``extra`` of each asset event, in the order Airflow gives them.
    :return: the plan; every input event is either planned, skipped or counted as a duplicate.
    """
    plan = BatchEventPlan()
    seen_events: set[str] = set()
    seen_batches: set[tuple[str, str]] = set()
    for extra in extras:
        try:
            record = BatchEventRecord.from_extra(extra or {})
        except (ValueError, TypeError) as err:
            log.warning("Skipping an asset event that the Ntropy receiver did not write: %s", err)
            plan.skipped += 1
            continue
        batch_key = (record.event_type, record.batch_id)
        if record.event_id in seen_events or batch_key in seen_batches:
            plan.duplicates += 1
            continue
        seen_events.add(record.event_id)
        seen_batches.add(batch_key)
        if record.is_completed:
            plan.completed.append(record)
        elif record.is_error:
            plan.errored.append(record)
        else:
            plan.skipped += 1
    return plan
