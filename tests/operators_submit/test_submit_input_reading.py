"""Reading transactions from lists, Parquet, CSV and JSON Lines: typing, row numbers, bad rows as rejects."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ntropy_provider.io.rejects import RejectsWriter
from ntropy_provider.io.source_rows import flatten_location
from ntropy_provider.io.transactions_source import detect_format, iter_rows
from ntropy_provider.submission.plan import Fingerprint

GOOD = {
    "id": "t1",
    "description": "STARBUCKS 123",
    "date": "2024-01-02",
    "amount": 4.5,
    "entry_type": "outgoing",
    "currency": "USD",
}


def test_list_rows_pass_through_and_get_row_numbers() -> None:
    rows = list(iter_rows([GOOD, {**GOOD, "id": "t2", "amount": -1}]))
    assert [r.row for r in rows] == [1, 2]
    assert rows[0].valid and rows[0].transaction == GOOD
    assert not rows[1].valid
    assert [e.field for e in rows[1].errors] == ["amount"]


def test_list_rows_get_dates_and_decimals_typed() -> None:
    import decimal

    rows = list(iter_rows([{**GOOD, "date": dt.date(2024, 3, 1), "amount": decimal.Decimal("1.25")}]))
    assert rows[0].valid
    assert rows[0].transaction["date"] == "2024-03-01"
    assert rows[0].transaction["amount"] == 1.25


def test_parquet_dates_become_iso_strings_and_missing_optionals_are_absent(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": ["a", "b"],
            "description": ["x", "y"],
            "date": pa.array([dt.date(2024, 1, 2), dt.date(2024, 2, 3)], pa.date32()),
            "amount": [1.0, 2.5],
            "entry_type": ["incoming", "outgoing"],
            "currency": ["EUR", "USD"],
            "account_holder_id": [None, "h1"],
            "location_raw_address": [None, "10 Union Sq"],
            "location_country": [None, "US"],
        }
    )
    path = tmp_path / "in.parquet"
    pq.write_table(table, path)
    rows = list(iter_rows(str(path), read_batch_rows=1))
    assert all(r.valid for r in rows), [r.errors for r in rows]
    assert rows[0].transaction == {
        "id": "a",
        "description": "x",
        "date": "2024-01-02",
        "amount": 1.0,
        "entry_type": "incoming",
        "currency": "EUR",
    }
    assert rows[1].transaction["account_holder_id"] == "h1"
    assert rows[1].transaction["location"] == {"raw_address": "10 Union Sq", "country": "US"}


def test_csv_amounts_are_numbers_and_empty_optionals_are_absent(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text(
        "id,description,date,amount,entry_type,currency,account_holder_id\n"
        "a,coffee,2024-01-02,12,outgoing,USD,\n"
        'b,"rent, march",2024-01-03,1200.50,outgoing,USD,h1\n'
        ",,2024-01-04,abc,outgoing,USD,\n",
        encoding="utf-8",
    )
    rows = list(iter_rows(path))
    assert rows[0].valid and rows[0].transaction["amount"] == 12
    assert "account_holder_id" not in rows[0].transaction
    assert rows[1].valid and rows[1].transaction["amount"] == 1200.5
    assert rows[1].transaction["description"] == "rent, march"
    assert {e.field for e in rows[2].errors} == {"id", "amount"}
    assert rows[2].row == 3


def test_flattened_rows_read_back_as_the_same_transactions(tmp_path: Path) -> None:
    import pyarrow.csv as pa_csv

    with_location = {
        "id": "a",
        "description": "coffee",
        "date": "2024-01-02",
        "amount": 3.5,
        "entry_type": "outgoing",
        "currency": "USD",
        "location": {"raw_address": "10 Union Sq", "country": "US"},
    }
    without_location = {**with_location, "id": "b"}
    del without_location["location"]
    path = tmp_path / "flat.csv"
    flat = [flatten_location(row) for row in (with_location, without_location)]
    assert "location" not in flat[0] and flat[0]["location_country"] == "US"
    pa_csv.write_csv(pa.Table.from_pylist(flat), path)

    assert [row.transaction for row in iter_rows(path)] == [with_location, without_location]


def test_csv_non_utf8_bytes_reject_only_their_row(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_bytes(
        b"id,description,date,amount,entry_type,currency\n"
        b"a,caf\xe9 latte,2024-01-02,3,outgoing,EUR\n"
        b"b,fine,2024-01-02,3,outgoing,EUR\n"
    )
    rows = list(iter_rows(path))
    assert len(rows) == 2
    assert not rows[0].valid
    assert rows[0].errors[0].field == "description"
    assert "UTF-8" in rows[0].errors[0].reason
    assert rows[0].raw["description"] == "caf\\xe9 latte"
    assert rows[1].valid


def test_csv_one_megabyte_description_is_a_reject_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    big = "x" * 1_000_000
    path.write_text(
        f"id,description,date,amount,entry_type,currency\na,{big},2024-01-02,3,outgoing,EUR\n"
        "b,ok,2024-01-02,3,outgoing,EUR\n"
    )
    rows = list(iter_rows(path))
    assert not rows[0].valid and rows[0].errors[0].field == "description"
    assert "1000000" in rows[0].errors[0].reason
    assert rows[1].valid


def test_jsonl_bad_lines_are_rejects_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl.gz"
    lines = [
        json.dumps(GOOD),
        "{not json",
        "",
        json.dumps([1, 2]),
        json.dumps({**GOOD, "date": "2024-13-01"}),
    ]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    rows = list(iter_rows(path))
    assert [r.row for r in rows] == [1, 2, 4, 5]
    assert rows[0].valid
    assert "JSON" in rows[1].errors[0].reason
    assert rows[2].errors[0].field == "(row)"
    assert rows[3].errors[0].field == "date"


def test_unknown_format_and_wrong_items_type_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="input_format"):
        detect_format("/data/in.xlsx")
    with pytest.raises(TypeError, match="items"):
        list(iter_rows({"id": "t1"}))


def test_rejects_writer_keeps_row_reason_and_data(tmp_path: Path) -> None:
    rows = list(iter_rows([GOOD, {**GOOD, "currency": "XXX", "amount": "7"}]))
    target = tmp_path / "sub" / "rejects.jsonl"
    with RejectsWriter(str(target)) as writer:
        for row in rows:
            if not row.valid:
                writer.write(row)
    records = [json.loads(line) for line in target.read_text().splitlines()]
    assert writer.count == 1
    assert records[0]["row"] == 2
    assert "currency" in records[0]["reason"] and "amount" in records[0]["reason"]
    assert records[0]["data"]["currency"] == "XXX"
    assert not list(target.parent.glob(".rejects-*"))


def chunk_fingerprint(transaction_ids: list[str]) -> str:
    fingerprint = Fingerprint()
    for transaction_id in transaction_ids:
        fingerprint.add(transaction_id)
    return fingerprint.hexdigest()


def test_fingerprint_depends_on_ids_and_order() -> None:
    assert chunk_fingerprint(["a", "b"]) == chunk_fingerprint(["a", "b"])
    assert chunk_fingerprint(["a", "b"]) != chunk_fingerprint(["b", "a"])
    assert chunk_fingerprint(["ab"]) != chunk_fingerprint(["a", "b"])


def test_object_storage_paths_for_input_and_rejects(tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "id": ""}) + "\n")
    rows = list(iter_rows(ObjectStoragePath(f"file://{source}")))
    assert [r.valid for r in rows] == [True, False]
    assert [r.valid for r in iter_rows(f"file://{source}")] == [True, False]
    target = ObjectStoragePath(f"file://{tmp_path}/out/rejects.jsonl")
    with RejectsWriter(target) as writer:
        writer.write(rows[1])
    assert json.loads((tmp_path / "out" / "rejects.jsonl").read_text())["row"] == 2


def test_rejects_on_an_object_store_appear_only_when_complete() -> None:
    # A failure mid-write must leave neither a partial file at the final path nor a temporary object
    # (closing an object store's stream publishes whatever was written so far).
    import uuid

    from airflow.sdk import ObjectStoragePath
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    rows = [r for r in iter_rows([{**GOOD, "id": ""}, {**GOOD, "amount": -1}]) if not r.valid]
    directory = ObjectStoragePath(f"memory://rejects-{uuid.uuid4().hex}/out")
    target = directory / "rejects.jsonl"
    try:
        with pytest.raises(RuntimeError, match="reading failed"), RejectsWriter(target) as writer:
            writer.write(rows[0])
            raise RuntimeError("reading failed")
        assert not target.exists()
        assert directory.fs.find(directory.path) == []
        with RejectsWriter(target) as writer:
            for row in rows:
                writer.write(row)
        assert [json.loads(line)["row"] for line in target.read_text().splitlines()] == [1, 2]
        assert [p.name for p in directory.iterdir()] == ["rejects.jsonl"]
    finally:
        directory.fs.rm(directory.path, recursive=True)


def test_fingerprint_of_many_ids_at_once_is_the_fingerprint_of_each_in_turn() -> None:
    ids: list[object] = ["a", "b\x1fc", "", 42, "caf\u00e9", "lone \udcff surrogate"]
    at_once = Fingerprint()
    at_once.add_many(ids[:2])
    at_once.add_many([])
    at_once.add_many(ids[2:])
    assert at_once.size == len(ids)
    assert at_once.hexdigest() == chunk_fingerprint(ids)
