"""The Arrow fast path of reading Parquet gives exactly what the row-by-row path gives, row for row."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ntropy_provider.io import arrow_check
from ntropy_provider.io.transactions_source import iter_rows

GOOD = {
    "id": "t1",
    "description": "AMAZON MKTP",
    "date": "2024-01-02",
    "amount": 10.5,
    "entry_type": "outgoing",
    "currency": "USD",
    "account_holder_id": "h1",
    "location_raw_address": "1 Main St",
    "location_country": "US",
}
#: One change per row, each breaking (or just touching) one rule.
CHANGES: list[dict[str, Any]] = [
    {},
    {"id": ""},
    {"id": None},
    {"description": ""},
    {"description": "x" * 1024},
    {"description": "é" * 1024},
    {"description": "x" * 1025},
    {"description": None},
    {"date": "2024-02-30"},
    {"date": "2024-02-29"},
    {"date": "2023-02-29"},
    {"date": "1900-02-29"},
    {"date": "2000-02-29"},
    {"date": "2024-13-01"},
    {"date": "2024-00-10"},
    {"date": "2024-04-31"},
    {"date": "2024-12-31"},
    {"date": "2024-01-00"},
    {"date": "2024-2-03"},
    {"date": "0000-01-01"},
    {"date": " 2024-01-02"},
    {"date": None},
    {"amount": -0.01},
    {"amount": 0.0},
    {"amount": float("nan")},
    {"amount": float("inf")},
    {"amount": None},
    {"entry_type": "in"},
    {"entry_type": None},
    {"currency": "usd"},
    {"currency": "XXX1"},
    {"currency": "EUR"},
    {"account_holder_id": ""},
    {"account_holder_id": None},
    {"account_holder_id": "h" * 257},
    {"location_raw_address": None},
    {"location_country": None},
    {"location_country": "us"},
    {"location_country": "GB-ENG"},
    {"location_raw_address": None, "location_country": None},
]


def _rows() -> list[dict[str, Any]]:
    return [{**GOOD, "id": GOOD["id"] + str(i), **change} for i, change in enumerate(CHANGES)]


def _read(path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool) -> list[tuple[Any, ...]]:
    if not fast:
        monkeypatch.setattr(arrow_check, "supported", lambda schema: False)
    # repr: NaN is not equal to itself
    rows = [
        (r.row, repr(r.transaction), [str(e) for e in r.errors], repr(r.raw)) for r in iter_rows(str(path))
    ]
    monkeypatch.undo()
    return rows


@pytest.mark.parametrize("read_batch", [1, 7, 1000])
def test_every_rule_gives_the_answer_of_the_row_by_row_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_batch: int
) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(_rows()), path, row_group_size=read_batch)
    assert arrow_check.supported(pq.read_schema(path))
    fast = _read(path, monkeypatch, fast=True)
    assert fast == _read(path, monkeypatch, fast=False)
    assert sum(1 for _, _, errors, _ in fast if not errors) >= 10 and any(errors for _, _, errors, _ in fast)


def test_typed_columns_are_typed_as_the_row_by_row_path_types_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = pa.table(
        {
            "id": ["a", "b"],
            "description": ["X", "Y"],
            "date": pa.array([dt.date(2024, 1, 2), None], pa.date32()),
            "amount": pa.array([3, 4], pa.int32()),
            "entry_type": ["incoming", "outgoing"],
            "currency": ["USD", "GBP"],
            "account_holder_id": pa.array([None, None], pa.null()),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    fast = _read(path, monkeypatch, fast=True)
    assert fast == _read(path, monkeypatch, fast=False)
    first = {"id": "a", "description": "X", "date": "2024-01-02", "amount": 3}
    assert fast[0][1] == repr({**first, "entry_type": "incoming", "currency": "USD"})


@pytest.mark.parametrize(
    "column",
    [
        pa.array([{"country": "US"}]),  # a location struct
        pa.array(["x"]),  # an unknown field
    ],
)
def test_schemas_it_cannot_check_go_row_by_row(column: pa.Array) -> None:
    table = pa.Table.from_pylist([GOOD]).append_column(
        "location" if column.type != pa.string() else "x", column
    )
    assert not arrow_check.supported(table.schema)


def test_a_missing_required_column_goes_row_by_row() -> None:
    assert not arrow_check.supported(
        pa.Table.from_pylist([{k: v for k, v in GOOD.items() if k != "date"}]).schema
    )
