"""ntropy_provider.landing: finding a day's file, counting and reading it, syncing the holders file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from ntropy_provider import landing, sample_data
from ntropy_provider.exceptions import NtropyNotFoundError
from ntropy_provider.hooks.ntropy import NtropyHook

DAY = dt.date(2024, 6, 1)


def _write_rows(path: Path, rows: list[dict], fmt: str) -> Path:
    """Rows as they are (no fixed schema: columns may be missing), as Parquet or CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        import pyarrow.csv as pa_csv

        pa_csv.write_csv(table, path)
    return path


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_the_file_sample_data_writes_is_the_one_found_and_counted(tmp_path, fmt):
    summary = sample_data.write_landing(tmp_path, DAY, rows_per_day=37, fmt=fmt, seed=3)

    found = landing.find_day_file(str(tmp_path), DAY)
    assert found is not None and Path(found.path) == summary.files[0]
    assert landing.count_rows(found) == 37
    assert landing.count_rows(str(found)) == 37
    holders_file = landing.find_holders_file(tmp_path.as_posix())
    assert holders_file is not None and Path(holders_file.path) == summary.holders_file


def test_parquet_is_preferred_when_both_formats_landed(tmp_path):
    sample_data.write_landing(tmp_path, DAY, rows_per_day=5, fmt="csv")
    sample_data.write_landing(tmp_path, DAY, rows_per_day=5, fmt="parquet")

    assert landing.find_day_file(str(tmp_path), DAY.isoformat()).name == "transactions.parquet"
    assert landing.find_day_file(str(tmp_path), DAY, formats=("csv",)).name == "transactions.csv"


def test_a_day_without_a_file_is_none_or_an_immediate_failure(tmp_path):
    sample_data.write_landing(tmp_path, DAY, rows_per_day=5)
    other_day = DAY + dt.timedelta(days=1)

    assert landing.find_day_file(str(tmp_path), other_day) is None
    with pytest.raises(AirflowFailException) as failure:
        landing.require_day_file(str(tmp_path), other_day)
    message = str(failure.value)
    assert "no transactions landed for 2024-06-02" in message
    assert "transactions.parquet, transactions.csv" in message
    assert f"{tmp_path}/date=2024-06-02" in message
    # Other formats are accepted only when asked for (the submit-only DAG also takes JSON Lines).
    jsonl = tmp_path / "date=2024-06-02" / "transactions.jsonl"
    jsonl.parent.mkdir()
    jsonl.write_text('{"id": "t1"}\n')
    assert landing.find_day_file(str(tmp_path), other_day) is None
    found = landing.require_day_file(str(tmp_path), other_day, formats=("parquet", "csv", "jsonl"))
    assert found.name == "transactions.jsonl"


def test_no_holders_file_is_none(tmp_path):
    assert landing.find_holders_file(str(tmp_path)) is None


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_read_column_gives_text_one_value_per_row_with_nulls_as_none(tmp_path, fmt):
    rows = [
        {"id": "t1", "account_holder_id": "1001"},
        {"id": "t2", "account_holder_id": None},
        {"id": "t3", "account_holder_id": "ah-7"},
    ]
    path = _write_rows(tmp_path / f"transactions.{fmt}", rows, fmt)

    assert landing.read_column(str(path), "account_holder_id") == ["1001", None, "ah-7"]
    assert landing.count_rows(str(path)) == 3


def test_csv_ids_that_look_like_numbers_are_read_as_text(tmp_path):
    # CSV type inference would make 1001 an integer: never equal to the API's and the rows' string ids.
    path = tmp_path / "transactions.csv"
    path.write_text("id,account_holder_id\nt1,1001\nt2,\nt3,0042\n")

    assert landing.read_column(str(path), "account_holder_id") == ["1001", None, "0042"]


def test_parquet_integer_ids_are_read_as_text(tmp_path):
    path = tmp_path / "transactions.parquet"
    ids = pa.array([1001, None], pa.int64())
    pq.write_table(pa.table({"id": ["t1", "t2"], "account_holder_id": ids}), path)

    assert landing.read_column(str(path), "account_holder_id") == ["1001", None]


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_file_without_the_optional_column_gives_none_for_every_row(tmp_path, fmt):
    rows = [{"id": f"t{n}", "description": "COFFEE"} for n in range(4)]
    path = _write_rows(tmp_path / f"transactions.{fmt}", rows, fmt)

    assert landing.read_column(str(path), "account_holder_id") == [None] * 4


def test_holders_file_ids_are_text_and_rows_without_an_id_are_skipped(tmp_path):
    path = tmp_path / "account_holders.csv"
    path.write_text("id,type,name\n1001,business,Acme\n,consumer,Nobody\n1001,consumer,Again\n0042,,\n")

    holders = landing.read_account_holders(str(path))

    assert list(holders) == ["1001", "0042"]
    assert (holders["1001"]["type"], holders["1001"]["name"]) == ("business", "Acme"), "first row wins"
    assert holders["0042"]["type"] is None


def _existing(hook: NtropyHook, holder_id: str) -> bool:
    try:
        hook.get_account_holder(holder_id)
    except NtropyNotFoundError:
        return False
    return True


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_ensure_creates_only_the_named_listed_holders_and_counts_the_others(
    tmp_path, fmt, ntropy_emulator, ntropy_connection
):
    holders = sample_data.account_holders(4)
    sample_data.write_holders(holders, tmp_path / f"account_holders.{fmt}", fmt)
    hook = NtropyHook(ntropy_conn_id=ntropy_connection)
    named = ["ah-0002", None, "ah-0004", "ah-0002", "", "ah-missing-0001"]

    counts = landing.ensure_account_holders_from_file(hook, str(tmp_path), holder_ids=named)

    assert counts == {"ensured": 2, "not_listed": 1}
    assert [h for h in ("ah-0001", "ah-0002", "ah-0003", "ah-0004") if _existing(hook, h)] == [
        "ah-0002",
        "ah-0004",
    ]
    created = hook.get_account_holder("ah-0004")
    assert (created.type, created.name) == (holders[3]["type"], holders[3]["name"])
    assert not _existing(hook, "ah-missing-0001")


def test_ensure_every_holder_of_the_file_is_idempotent(tmp_path, ntropy_emulator, ntropy_connection):
    (tmp_path / "account_holders.csv").write_text("id,type,name\n1001,business,Acme\n1002,,\n")
    hook = NtropyHook(ntropy_conn_id=ntropy_connection)

    first = landing.ensure_account_holders_from_file(hook, str(tmp_path))
    again = landing.ensure_account_holders_from_file(hook, str(tmp_path))

    assert first == again == {"ensured": 2, "not_listed": 0}
    assert hook.get_account_holder("1001").type == "business"
    assert hook.get_account_holder("1002").type == landing.DEFAULT_HOLDER_TYPE


def test_ensure_without_a_holders_file_creates_nothing(tmp_path, ntropy_emulator, ntropy_connection):
    hook = NtropyHook(ntropy_conn_id=ntropy_connection)

    assert landing.ensure_account_holders_from_file(hook, str(tmp_path)) == {"ensured": 0, "not_listed": 0}
    assert landing.ensure_account_holders_from_file(hook, str(tmp_path), holder_ids=["ah-1"]) == {
        "ensured": 0,
        "not_listed": 1,
    }
    assert not any(route.startswith("POST") for route in ntropy_emulator.stats()["requests"])
