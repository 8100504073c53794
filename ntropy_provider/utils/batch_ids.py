"""Accept batch ids in every form that travels between Ntropy tasks."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ntropy_provider.api.models import Batch


def resolve_batch_ids(value: Any) -> list[str]:
    """Normalise what a user or an upstream task passes as ``batch_ids`` to a list of ids.

    Accepted: a single id; a list (or any iterable) of ids; the XCom dict of ``SubmitBatchOperator``
    or ``BatchSensor`` (both carry ``batch_ids``); a list of Batch dicts (each with ``id``).
    Order is kept and duplicates are dropped, so each batch is handled once.

    :param value: the ids, in any of the forms above (XComArgs are resolved by Airflow before this).
    :raises TypeError: naming the value's type when it holds no batch ids.
    :raises ValueError: when an id is empty.
    """
    if isinstance(value, Mapping):
        if "batch_ids" not in value:
            raise TypeError(f"batch_ids: expected a dict with a 'batch_ids' key, got keys {sorted(value)}")
        value = value["batch_ids"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise TypeError(f"batch_ids: expected a list of batch ids, got {type(value).__name__}")
    ids: list[str] = []
    for position, item in enumerate(value):
        batch_id = item.get("id") if isinstance(item, Mapping) else item
        if not isinstance(batch_id, str) or not batch_id.strip():
            raise ValueError(f"batch_ids[{position}]: expected a non-empty batch id, got {batch_id!r}")
        if batch_id not in ids:
            ids.append(batch_id)
    return ids


def known_terminal_batches(value: Any) -> dict[str, Batch]:
    """The batches whose final state already travelled with ``value``, by id.

    A BatchSensor's XCom (``batches``) and a webhook event's Batch objects carry the batch's terminal
    status and total. A terminal batch never changes again, so a consumer may trust these instead of
    asking the API once more (the webhook-driven path then makes no status call at all). Entries that
    are bare ids, malformed, or still ``processing`` are left out: the caller asks the API for those.

    :param value: the same forms :func:`resolve_batch_ids` accepts.
    """
    if isinstance(value, Mapping):
        value = value.get("batches", ())
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return {}
    known: dict[str, Batch] = {}
    for item in value:
        if not isinstance(item, Mapping) or "status" not in item:
            continue
        try:
            batch = Batch.from_dict(item)
        except (KeyError, ValueError, TypeError):
            continue
        if batch.is_terminal:
            known[batch.id] = batch
    return known
