"""A resumed submission reads from the next unsent chunk: the same rows as a full read, skipping cheaply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ntropy_provider.io.transactions_source import iter_rows
from ntropy_provider.submission.plan import iter_planned_chunks, plan_from_json, plan_to_json, scan


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{i}",
            "description": f"SHOP {i}",
            "date": "2024-01-02",
            "amount": 2.5 if i % 7 else -1.0,  # every 7th row is invalid
            "entry_type": "outgoing",
            "currency": "USD",
        }
        for i in range(count)
    ]


def _write(path: Path, rows: list[dict[str, Any]], fmt: str) -> Any:
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=100)
    elif fmt == "csv":
        lines = [",".join(rows[0])] + [",".join(str(v) for v in row.values()) for row in rows]
        lines.insert(5, "")  # an empty line keeps its number
        path.write_text("\n".join(lines) + "\n")
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    else:
        return rows
    return str(path)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "list"])
@pytest.mark.parametrize("start_row", [1, 2, 100, 101, 257, 999, 1_000, 5_000])
def test_reading_from_a_row_gives_the_rows_of_a_full_read_from_there(
    tmp_path: Path, fmt: str, start_row: int
) -> None:
    items = _write(tmp_path / f"input.{fmt}", _rows(1_000), fmt)
    full = [(r.row, r.transaction, r.valid) for r in iter_rows(items)]
    resumed = [(r.row, r.transaction, r.valid) for r in iter_rows(items, start_row=start_row)]
    assert resumed == [entry for entry in full if entry[0] >= start_row]


def test_parquet_row_groups_before_the_resumed_row_are_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _write(tmp_path / "input.parquet", _rows(1_000), "parquet")
    asked: list[list[int]] = []
    real = pq.ParquetFile.iter_batches

    def recording(self: pq.ParquetFile, *args: Any, **kwargs: Any) -> Any:
        asked.append(list(kwargs.get("row_groups") or []))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    next(iter_rows(items, start_row=750))
    assert asked == [[7, 8, 9]], "row 750 is in the 8th group of 100 rows"


def test_chunks_cut_from_a_resumed_read_equal_those_of_a_full_read(tmp_path: Path) -> None:
    items = _write(tmp_path / "input.parquet", _rows(1_000), "parquet")
    plan = plan_from_json(json.loads(json.dumps(plan_to_json(scan(iter_rows(items), chunk_size=70)))))
    full = list(iter_planned_chunks(iter_rows(items), plan, priority="default", skip=frozenset()))
    first = 6
    resumed = list(
        iter_planned_chunks(
            iter_rows(items, start_row=plan.chunks[first].first_row),
            plan,
            priority="default",
            skip=frozenset(),
            first_chunk=first,
        )
    )
    assert resumed == full[first:]
    assert [c.index for c in resumed] == list(range(first, len(plan.chunks)))
