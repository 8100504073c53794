"""The sample-data generator: deterministic, realistic, and laid out the way the example DAGs read it."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from ntropy_provider import sample_data
from ntropy_provider.api.transaction_input import validate_transaction
from ntropy_provider.emulator.enrichment import recognise

DAY = dt.date(2024, 3, 1)


def test_same_seed_and_date_give_the_same_rows_and_other_dates_differ():
    first = sample_data.transactions_for_date(DAY, 300, seed=7)
    again = sample_data.transactions_for_date(DAY, 300, seed=7)
    other_day = sample_data.transactions_for_date(DAY + dt.timedelta(days=1), 300, seed=7)
    other_seed = sample_data.transactions_for_date(DAY, 300, seed=8)
    assert first == again
    assert [r["description"] for r in first] != [r["description"] for r in other_day]
    assert [r["description"] for r in first] != [r["description"] for r in other_seed]
    assert len({r["id"] for r in first + other_day}) == 600, "ids are unique across days"


def test_rows_mix_known_and_unknown_merchants_p2p_missing_holders_and_invalid_rows():
    rows = sample_data.transactions_for_date(DAY, 2000, seed=42)
    holders = {h["id"] for h in sample_data.account_holders(seed=42)}
    invalid = [r for r in rows if validate_transaction(r)]
    valid = [r for r in rows if not validate_transaction(r)]
    recognised = [recognise(r["description"]) for r in valid]
    known = sum(1 for rec in recognised if rec.merchant is not None)
    people = sum(1 for rec in recognised if rec.person is not None)
    unknown = sum(1 for rec in recognised if not (rec.merchant or rec.person or rec.keyword))
    missing = [r for r in rows if r["account_holder_id"] not in holders]

    assert 0.6 * len(rows) < known < 0.9 * len(rows), "most rows name merchants the emulator knows"
    assert people > 0.04 * len(rows), "peer-to-peer transfers name a person"
    assert unknown > 0.05 * len(rows), "some merchants are unknown"
    assert 0.01 * len(rows) < len(missing) < 0.08 * len(rows)
    assert all(r["account_holder_id"].startswith(sample_data.MISSING_HOLDER_PREFIX) for r in missing)
    assert 0.005 * len(rows) < len(invalid) < 0.05 * len(rows)
    # Each invalid row is wrong in one named field, the way a bad export is.
    assert {validate_transaction(r)[0].field for r in invalid} <= {"amount", "currency", "entry_type", "date"}


def test_write_landing_parquet_partitions_and_holders(tmp_path):
    summary = sample_data.write_landing(tmp_path, DAY, DAY + dt.timedelta(days=2), rows_per_day=50, seed=3)
    assert [p.relative_to(tmp_path).as_posix() for p in summary.files] == [
        "date=2024-03-01/transactions.parquet",
        "date=2024-03-02/transactions.parquet",
        "date=2024-03-03/transactions.parquet",
    ]
    table = pq.read_table(summary.files[0])
    assert table.schema.equals(sample_data.PARQUET_SCHEMA)
    assert table.to_pylist() == sample_data.transactions_for_date(
        DAY, 50, seed=3, holders=sample_data.account_holders(seed=3)
    )
    holders = pq.read_table(summary.holders_file).to_pylist()
    assert len(holders) == 24 and {h["type"] for h in holders} == {"consumer", "business"}
    assert summary.rows == 150
    assert summary.invalid_rows == sum(
        1 for f in summary.files for r in pq.read_table(f).to_pylist() if validate_transaction(r)
    )


def test_write_landing_csv_flattens_the_location(tmp_path):
    summary = sample_data.write_landing(tmp_path, DAY, rows_per_day=40, fmt="csv", seed=3)
    assert summary.files[0].name == "transactions.csv"
    # An empty CSV cell is a null (a missing location), as the operators read it.
    table = pa_csv.read_csv(summary.files[0], convert_options=pa_csv.ConvertOptions(strings_can_be_null=True))
    assert "location_raw_address" in table.column_names and "location" not in table.column_names
    rows = sample_data.transactions_for_date(DAY, 40, seed=3)
    assert table.column("id").to_pylist() == [r["id"] for r in rows]
    countries = [(r["location"] or {}).get("country") for r in rows]
    assert table.column("location_country").to_pylist() == countries
    assert summary.holders_file.name == "account_holders.csv"


def test_cli_prints_a_summary_and_refuses_a_backwards_range(tmp_path, capsys):
    assert sample_data.main(["--out", str(tmp_path), "--start", "2024-03-01", "--rows-per-day", "5"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"] == 5 and printed["files"][0].endswith("date=2024-03-01/transactions.parquet")
    with pytest.raises(SystemExit, match="end: 2024-02-01 is before start 2024-03-01"):
        sample_data.main(["--out", str(tmp_path), "--start", "2024-03-01", "--end", "2024-02-01"])
    with pytest.raises(SystemExit, match="holders: expected at least 1, got 0"):
        sample_data.main(["--out", str(tmp_path), "--start", "2024-03-01", "--holders", "0"])
