"""Results test fixtures: an in-memory object store, the emulator with sample data, a reference flattening."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from airflow.sdk import ObjectStoragePath

from ntropy_provider.api.models import parse_datetime
from ntropy_provider.results.schema import LOCATION_STRUCTURED_FIELDS


@pytest.fixture
def memory_root() -> Iterator[ObjectStoragePath]:
    """A fresh ``memory://`` directory (fsspec's in-memory filesystem, attached to Airflow's object storage).

    Airflow only knows the schemes of installed providers (plus ``file``); attaching the scheme with a
    filesystem instance makes ``ObjectStoragePath("memory://...")`` work like any other store.
    """
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    root = ObjectStoragePath(f"memory://results-{uuid.uuid4().hex}")
    yield root
    if root.fs.exists(root.path):
        root.fs.rm(root.path, recursive=True)


#: The EnrichedTransaction's fields, as ntropy-sdk 5.7.0 models them, written out independently of the
#: Arrow schema: anything else belongs in ``extra_json``.
ENTITY_FIELDS = ("id", "name", "website", "logo", "mccs", "phone_number", "tax_number", "naics2017")
KNOWN_FIELDS: dict[str, Any] = {
    "id": None,
    "created_at": None,
    "entities": {
        "counterparty": {"type": None, **dict.fromkeys(ENTITY_FIELDS)},
        "intermediaries": [dict.fromkeys(ENTITY_FIELDS)],
    },
    "categories": {"general": None, "accounting": None},
    "location": {"raw_address": None, "structured": {name: None for name, _ in LOCATION_STRUCTURED_FIELDS}},
    "error": {"code": None, "message": None},
}


def unknown_fields(value: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """The non-null fields of ``value`` missing from ``known``, nested, lists kept position by position.

    :param value: a decoded JSON object.
    :param known: its known fields: ``None`` for a leaf, a dict for an object, a one-dict list for a list.
    """
    found: dict[str, Any] = {}
    for key, item in value.items():
        if key not in known:
            if item is not None:
                found[key] = item
        elif isinstance(known[key], dict) and isinstance(item, dict):
            if inner := unknown_fields(item, known[key]):
                found[key] = inner
        elif isinstance(known[key], list) and isinstance(item, list):
            parts = [unknown_fields(element, known[key][0]) for element in item]
            if any(parts):
                found[key] = parts
    return found


def flatten_in_python(item: dict[str, Any], batch_id: str) -> dict[str, Any]:
    """An independent, row-by-row flattening of one EnrichedTransaction into a results row (plain Python).

    :param item: the EnrichedTransaction as decoded JSON.
    :param batch_id: the batch it came from.
    """
    entities = item.get("entities") or {}
    counterparty = entities.get("counterparty") or {}
    location = item.get("location") or {}
    structured = location.get("structured") or {}
    categories = item.get("categories") or {}
    error = item.get("error") or {}
    intermediaries = entities.get("intermediaries")
    if intermediaries is None and not error:
        intermediaries = []
    row: dict[str, Any] = {
        "transaction_id": item["id"],
        "batch_id": batch_id,
        "created_at": parse_datetime(item["created_at"]),
        **{f"counterparty_{k}": counterparty.get(k) for k in ("type", *ENTITY_FIELDS)},
        "intermediaries": None
        if intermediaries is None
        else [{k: i.get(k) for k in ENTITY_FIELDS} for i in intermediaries],
        "category_general": categories.get("general"),
        "category_accounting": categories.get("accounting"),
        "location_raw_address": location.get("raw_address"),
    }
    for name, _ in LOCATION_STRUCTURED_FIELDS:
        value = structured.get(name)
        row[f"location_{name}"] = (
            float(value) if value is not None and name in ("latitude", "longitude") else value
        )
    row["error_code"] = error.get("code")
    row["error_message"] = error.get("message")
    extra = unknown_fields(item, KNOWN_FIELDS)
    row["extra_json"] = orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode() if extra else None
    return row


@pytest.fixture(name="flatten_in_python")
def flatten_in_python_fixture() -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """:func:`flatten_in_python`, for test modules (conftest modules are not importable by name)."""
    return flatten_in_python


@dataclass
class ResultsEnv:
    """The emulator, a hook on it, its connection id and a way to get completed batches.

    :param emulator: the running emulator.
    :param hook: a hook on the ``ntropy_default`` connection (pointing at the emulator).
    :param conn_id: the connection id.
    """

    emulator: Any
    hook: Any
    conn_id: str

    def submit(self, rows: list[dict[str, Any]], chunk_size: int) -> list[str]:
        """Submit rows in batches of ``chunk_size`` and wait (bounded) until all have ended.

        :param rows: valid TransactionInputs.
        :param chunk_size: rows per batch.
        :return: the batch ids, in input order.
        """
        batches = self.hook.submit_batches(rows, chunk_size=chunk_size)
        ids = [batch.id for batch in batches]
        self.hook.wait_for_batches(ids, poll_interval=0.02, timeout=60)
        return ids


def make_sample_rows(count: int, *, seed: int = 3, null_holder_every: int = 7) -> list[dict[str, Any]]:
    """Valid sample transactions (the project's sample-data generator, invalid rows dropped).

    Every ``null_holder_every``-th row has no account holder (its categories come back null).

    :param count: rows wanted.
    :param seed: the generator's seed.
    :param null_holder_every: how often to drop the account holder.
    """
    from ntropy_provider import sample_data
    from ntropy_provider.api.transaction_input import validate_transaction

    rows = [
        row
        for row in sample_data.transactions_for_date(
            dt.date(2024, 3, 1), int(count * 1.1) + 10, seed=seed, holders=sample_holders()
        )
        if not validate_transaction(row)
    ][:count]
    for index, row in enumerate(rows):
        if null_holder_every and index % null_holder_every == 3:
            row["account_holder_id"] = None
    return rows


def sample_holders() -> list[dict[str, Any]]:
    """The few account holders of the sample rows (few, so that creating them is quick)."""
    from ntropy_provider import sample_data

    return sample_data.account_holders(count=4, seed=3)  # the fourth is a business


@pytest.fixture
def sample_rows() -> Callable[..., list[dict[str, Any]]]:
    """:func:`make_sample_rows`, for test modules."""
    return make_sample_rows


@pytest.fixture
def results_env(ntropy_emulator: Any, ntropy_connection: str) -> ResultsEnv:
    """The emulator with the sample account holders created, and a hook on it."""
    from ntropy_provider.hooks.ntropy import NtropyHook

    hook = NtropyHook(ntropy_conn_id=ntropy_connection)
    for holder in sample_holders():
        hook.create_account_holder(holder["id"], holder["type"], name=holder.get("name"))
    return ResultsEnv(emulator=ntropy_emulator, hook=hook, conn_id=ntropy_connection)
