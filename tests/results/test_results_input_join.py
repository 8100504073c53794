"""InputColumns: streaming join of input columns on transaction id, in any order, with bounded chunks."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from ntropy_provider.results.input_join import InputColumns, InputJoinError, input_format
from ntropy_provider.utils.storage import as_storage_path


def _input(tmp_path, ids: list[str], suffix: str = "parquet"):
    table = pa.table(
        {"id": ids, "amount": [float(i) for i in range(len(ids))], "note": [f"n-{i}" for i in ids]}
    )
    path = tmp_path / f"input.{suffix}"
    if suffix == "parquet":
        pq.write_table(table, path, row_group_size=7)
    else:
        pa_csv.write_csv(table, path)
    return as_storage_path(str(path))


def _take(columns: InputColumns, ids: list[str]) -> list[dict]:
    return columns.take(pa.array(ids, pa.string()), batch_id="b").to_pylist()


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_batches_in_input_order_reverse_order_and_shuffled(tmp_path, suffix: str) -> None:
    ids = [f"t{i:03d}" for i in range(100)]
    columns = InputColumns(_input(tmp_path, ids, suffix), chunk_rows=9)
    assert columns.schema.names == ["input_id", "input_amount", "input_note"]
    batches = [ids[i : i + 25] for i in range(0, 100, 25)]
    shuffled = list(ids)
    random.Random(1).shuffle(shuffled)
    for order in (batches, batches[::-1], [shuffled[:50], shuffled[50:]]):
        for batch in order:
            rows = _take(columns, batch)
            assert [row["input_id"] for row in rows] == batch
            expected_amount = [float(int(t[1:])) for t in batch]
            got_amount = [float(row["input_amount"]) for row in rows]  # CSV carries the text "3.0"
            assert got_amount == expected_amount
            assert [row["input_note"] for row in rows] == [f"n-{t}" for t in batch]
    columns.close()


def test_rows_not_in_any_batch_are_skipped(tmp_path) -> None:
    # Rows that were rejected before submission sit in the input between the submitted ones.
    ids = [f"t{i:03d}" for i in range(60)]
    columns = InputColumns(_input(tmp_path, ids), chunk_rows=8)
    submitted = [t for i, t in enumerate(ids) if i % 5 != 2]
    assert [r["input_id"] for r in _take(columns, submitted[:20])] == submitted[:20]
    assert [r["input_id"] for r in _take(columns, submitted[20:])] == submitted[20:]


def test_missing_ids_are_named(tmp_path) -> None:
    columns = InputColumns(_input(tmp_path, ["a", "b", "c"]), chunk_rows=2)
    with pytest.raises(
        InputJoinError, match=r"2 transaction\(s\) of batch b are not in the input file.*'x', 'y'"
    ):
        _take(columns, ["a", "x", "y"])


def test_csv_cells_are_strings_and_empty_cells_null(tmp_path) -> None:
    path = tmp_path / "input.csv"
    path.write_text('id,amount,account_holder_id,description\nt1,001.50,,"ZELLE, TO JOHN"\nt2,2,h1,\n')
    rows = _take(InputColumns(as_storage_path(str(path))), ["t2", "t1"])
    assert rows == [
        {"input_id": "t2", "input_amount": "2", "input_account_holder_id": "h1", "input_description": None},
        {
            "input_id": "t1",
            "input_amount": "001.50",
            "input_account_holder_id": None,
            "input_description": "ZELLE, TO JOHN",
        },
    ]


def test_unknown_format_and_missing_id_column_are_refused(tmp_path) -> None:
    with pytest.raises(InputJoinError, match="unknown format"):
        input_format(as_storage_path(str(tmp_path / "input.xlsx")))
    path = tmp_path / "input.parquet"
    pq.write_table(pa.table({"tx": ["a"]}), path)
    with pytest.raises(InputJoinError, match="no 'id' column to join on"):
        InputColumns(as_storage_path(str(path)))
    assert InputColumns(as_storage_path(str(path)), id_column="tx").schema.names == ["input_tx"]


def test_csv_with_non_utf8_bytes_in_a_quarantined_row_still_joins(tmp_path) -> None:
    # SubmitBatchOperator quarantines the undecodable row; the other rows' columns must still be carried.
    path = tmp_path / "input.csv"
    path.write_bytes(b"id,description\nt1,COFFEE\nt2,CAF\xe9 AU LAIT\nt3,TEA\n")
    columns = InputColumns(as_storage_path(str(path)))
    assert _take(columns, ["t1", "t3"]) == [
        {"input_id": "t1", "input_description": "COFFEE"},
        {"input_id": "t3", "input_description": "TEA"},
    ]
    assert _take(columns, ["t2"]) == [{"input_id": "t2", "input_description": "CAF\\xe9 AU LAIT"}]
    columns.close()


def test_csv_multiline_values_and_rows_with_extra_fields(tmp_path) -> None:
    # Python's csv (submission) accepts newlines in quoted values and quarantines a row with extra fields.
    path = tmp_path / "input.csv"
    path.write_bytes(b'id,description\nt1,"MULTI\nLINE"\nt2,A,EXTRA\nt3,TEA\n')
    columns = InputColumns(as_storage_path(str(path)))
    assert _take(columns, ["t1", "t3"]) == [
        {"input_id": "t1", "input_description": "MULTI\nLINE"},
        {"input_id": "t3", "input_description": "TEA"},
    ]
    columns.close()
