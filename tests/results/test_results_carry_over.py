"""carry_over: a re-run day's new ok/ keeps every earlier enriched row, atomically, same layout and schema."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from ntropy_provider.results.carry_over import CarryOverError, earlier_ok_file
from ntropy_provider.results.datasets import DATA_FILE_NAME, RowCountMismatchError, write_results_datasets
from ntropy_provider.results.input_join import InputColumns
from ntropy_provider.results.schema import RESULTS_ARROW_SCHEMA
from ntropy_provider.utils.storage import as_storage_path


def _result(tx_id: str, *, error: bool = False, category: str = "shopping") -> dict:
    return {
        "id": tx_id,
        "created_at": "2024-01-01T00:00:00Z",
        "entities": None,
        "categories": None if error else {"general": category, "accounting": None},
        "location": None,
        "error": {"code": "internal_error", "message": "boom"} if error else None,
    }


def _body(
    batch_id: str, ids: list[str], *, errors: set[str] = frozenset(), category: str = "shopping"
) -> bytes:
    results = [_result(i, error=i in errors, category=category) for i in ids]
    return orjson.dumps({"id": batch_id, "total": len(ids), "status": "completed", "results": results})


def _read(path: ObjectStoragePath) -> pa.Table:
    with path.open("rb") as handle:
        return pq.read_table(handle)


@pytest.fixture(params=["local", "memory"])
def output(request: pytest.FixtureRequest, tmp_path) -> ObjectStoragePath:
    if request.param == "local":
        return as_storage_path(str(tmp_path / "out" / "date=2024-01-01"))
    return request.getfixturevalue("memory_root") / "out" / "date=2024-01-01"


def _write(output: ObjectStoragePath, bodies: list[tuple[str, bytes]], carry: bool = True, **kwargs):
    source = earlier_ok_file(output) if carry else None
    return write_results_datasets(iter(bodies), output, carry_over_from=source, **kwargs)


def test_new_rows_first_then_every_earlier_row_they_do_not_replace(output) -> None:
    first = _write(output, [("b1", _body("b1", ["a", "b", "c", "d"], errors={"d"}))])
    assert (first.ok_rows, first.carried_rows) == (3, 0), "a first run carries nothing"

    # The re-run sent the errored row again (it succeeded) and one new row; "b" came back too,
    # re-sent without skip_enriched: its new result replaces the old one.
    again = _write(output, [("b2", _body("b2", ["d", "e", "b"], category="travel"))])

    ok = _read(output / "ok" / DATA_FILE_NAME)
    assert ok.column("transaction_id").to_pylist() == ["d", "e", "b", "a", "c"]
    assert ok.column("batch_id").to_pylist() == ["b2", "b2", "b2", "b1", "b1"]
    assert ok.column("category_general").to_pylist()[2] == "travel"
    assert (again.ok_rows, again.carried_rows, again.error_rows) == (5, 2, 0)
    assert ok.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    # errors/ is this run's only: the earlier errored row was sent again.
    assert _read(output / "errors" / DATA_FILE_NAME).num_rows == 0


def test_nothing_new_gives_the_same_bytes(output) -> None:
    ids = [f"t{i}" for i in range(70)]
    _write(output, [("b1", _body("b1", ids[:30])), ("b2", _body("b2", ids[30:]))], row_group_rows=25)
    before = (output / "ok" / DATA_FILE_NAME).read_bytes()

    summary = _write(output, [], row_group_rows=25)

    assert summary.carried_rows == 70
    assert (output / "ok" / DATA_FILE_NAME).read_bytes() == before
    # And again: a carried-over file carries over to itself.
    _write(output, [], row_group_rows=25)
    assert (output / "ok" / DATA_FILE_NAME).read_bytes() == before


def test_a_failed_run_leaves_the_earlier_ok_untouched(output) -> None:
    _write(output, [("b1", _body("b1", ["a", "b"]))])
    before = (output / "ok" / DATA_FILE_NAME).read_bytes()
    with pytest.raises(RowCountMismatchError):
        _write(output, [("b2", _body("b2", ["c"]))], expected_rows={"b2": 2})
    assert (output / "ok" / DATA_FILE_NAME).read_bytes() == before
    assert sorted(child.name for child in (output / "ok").iterdir()) == [DATA_FILE_NAME], "no temporary left"


def test_earlier_rows_without_the_input_columns_get_nulls(tmp_path) -> None:
    output = as_storage_path(str(tmp_path / "out"))
    _write(output, [("b1", _body("b1", ["a"]))])
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["b"], "amount": [3.5]}), source)
    columns = InputColumns(as_storage_path(str(source)), id_column="id")
    try:
        _write(output, [("b2", _body("b2", ["b"]))], input_columns=columns)
    finally:
        columns.close()
    ok = _read(output / "ok" / DATA_FILE_NAME)
    assert ok.column("transaction_id").to_pylist() == ["b", "a"]
    assert ok.column("input_amount").to_pylist() == [3.5, None]


def test_an_earlier_column_that_would_be_lost_is_a_clear_error(tmp_path) -> None:
    output = as_storage_path(str(tmp_path / "out"))
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": ["a"], "amount": [1.0]}), source)
    columns = InputColumns(as_storage_path(str(source)), id_column="id")
    try:
        _write(output, [("b1", _body("b1", ["a"]))], input_columns=columns)
    finally:
        columns.close()
    before = (output / "ok" / DATA_FILE_NAME).read_bytes()
    lost = r"has column\(s\) \[.*'input_amount'\] that the new output does not"
    with pytest.raises(CarryOverError, match=lost):
        _write(output, [("b2", _body("b2", ["b"]))])
    assert (output / "ok" / DATA_FILE_NAME).read_bytes() == before


def test_earlier_ok_file_accepts_an_output_or_its_ok_directory(tmp_path) -> None:
    output = as_storage_path(str(tmp_path / "out"))
    assert earlier_ok_file(output) is None
    _write(output, [("b1", _body("b1", ["a"]))])
    assert earlier_ok_file(output) == output / "ok" / DATA_FILE_NAME
    assert earlier_ok_file(output / "ok") == output / "ok" / DATA_FILE_NAME


def test_the_operator_carries_over_and_reports_it(tmp_path, ntropy_emulator, ntropy_connection) -> None:
    from ntropy_provider.hooks.ntropy import NtropyHook
    from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator

    rows = [
        {
            "id": f"r{i}",
            "description": "COFFEE",
            "date": "2024-01-02",
            "amount": 3.5,
            "entry_type": "outgoing",
            "currency": "EUR",
        }
        for i in range(6)
    ]
    hook = NtropyHook()
    ntropy_emulator.configure(items_per_second=100_000)
    first, second = hook.submit_batches(rows, chunk_size=4)
    hook.wait_for_batches([first.id, second.id], poll_interval=0.05, timeout=30)
    out = tmp_path / "out"

    class _Events(dict):
        def __missing__(self, key):
            self[key] = type("E", (), {"extra": None, "add": lambda *a, **k: None})()
            return self[key]

    def run(batch_ids: list[str]) -> dict:
        operator = ResultsToParquetOperator(
            task_id="write", batch_ids=batch_ids, output_path=str(out), carry_over=True
        )
        return operator.execute({"outlet_events": _Events()})

    assert run([first.id])["carried_rows"] == 0
    written = run([second.id])
    assert (written["ok_rows"], written["carried_rows"]) == (6, 4)
