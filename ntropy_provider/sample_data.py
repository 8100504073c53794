"""Realistic, deterministic sample transactions for the demo, the example DAGs and tests.

Every day of a date range gets a landing partition ``<out>/date=YYYY-MM-DD/transactions.<parquet|csv>``
and the folder gets one ``account_holders.<parquet|csv>`` (the holders a real pipeline would sync to
Ntropy). The rows mix what a bank export holds:

* purchases at merchants the emulator knows (names and aliases from ``ntropy_provider.catalogue``),
  some through payment intermediaries (``SQ *``, ``TST*``, ``PAYPAL *``);
* purchases at small merchants nobody knows;
* peer-to-peer transfers (``VENMO PAYMENT TO ...``, ``ZELLE FROM ...``) and salaries;
* rows naming an account holder that was never created: they come back with the per-item error
  ``account_holder_not_found``;
* a few invalid rows (a negative amount, an unknown currency, ...) that client-side validation rejects.

The same seed and date always give the same rows. Run ``python -m ntropy_provider.sample_data --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from ntropy_provider.catalogue import CITIES, INTERMEDIARIES, MERCHANTS, Merchant

# The layout (file names, formats, partition names) is defined once, in ntropy_provider.landing.
from ntropy_provider.io.source_rows import flatten_location
from ntropy_provider.landing import ACCOUNT_HOLDERS_FILE, FORMATS, TRANSACTIONS_FILE, partition_name

#: Prefix of the ids of account holders that are never created (their rows get a per-item error).
MISSING_HOLDER_PREFIX = "ah-missing-"

#: Share of each kind of row (the rest are purchases at known merchants).
SHARE_UNKNOWN_MERCHANT = 0.10
SHARE_P2P = 0.08
SHARE_SALARY = 0.02
SHARE_MISSING_HOLDER = 0.04
SHARE_INVALID = 0.02

#: Columns of a transactions file. ``location`` is a struct in Parquet and two flat columns in CSV.
PARQUET_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("date", pa.string()),
        pa.field("amount", pa.float64()),
        pa.field("entry_type", pa.string()),
        pa.field("currency", pa.string()),
        pa.field("account_holder_id", pa.string()),
        pa.field(
            "location", pa.struct([pa.field("raw_address", pa.string()), pa.field("country", pa.string())])
        ),
    ]
)
HOLDERS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("name", pa.string()),
    ]
)

_ONLINE_CATEGORIES = frozenset(
    {"online shopping", "software", "streaming services", "advertising", "food delivery", "video games"}
)
_FIRST_NAMES = ("JOHN", "MARIA", "DAVID", "SARAH", "JAMES", "LINDA", "CARLOS", "EMMA", "WEI", "PRIYA", "OMAR")
_LAST_NAMES = ("SMITH", "GARCIA", "JOHNSON", "LEE", "BROWN", "PATEL", "NGUYEN", "MILLER", "KHAN", "LOPEZ")
_UNKNOWN_FIRST = ("GOLDEN", "RIVERSIDE", "MAPLE", "CORNER", "SUNRISE", "OLD TOWN", "HARBOR", "PINE HILL")
_UNKNOWN_SECOND = ("DELI", "BAKERY", "HARDWARE", "TAILORS", "AUTO REPAIR", "FLORIST", "BARBERSHOP", "BOOKS")
_EMPLOYERS = ("ACME CORP", "GLOBEX INC", "INITECH LLC", "UMBRELLA HEALTH")
_STREETS = ("MAIN ST", "BROADWAY", "MARKET ST", "2ND AVE", "OAK ST", "HIGH ST", "PARK AVE", "ELM ST")
_CURRENCY_BY_COUNTRY = {
    "GB": "GBP",
    "FR": "EUR",
    "DE": "EUR",
    "NL": "EUR",
    "ES": "EUR",
    "PT": "EUR",
    "IE": "EUR",
}
_P2P_APPS = tuple(i for i in INTERMEDIARIES if i.p2p and i.name in {"Venmo", "Zelle", "Cash App", "PayPal"})
_PROCESSOR_PREFIXES = ("SQ *", "TST* ", "PAYPAL *", "ZETTLE_*")


@dataclass(frozen=True, slots=True)
class LandingSummary:
    """What :func:`write_landing` wrote.

    :param root: the landing folder.
    :param files: the transactions file of each day, in date order.
    :param holders_file: the account holders file.
    :param rows: rows written in all.
    :param invalid_rows: rows that validation will reject.
    :param missing_holder_rows: rows whose account holder is never created.
    """

    root: Path
    files: tuple[Path, ...]
    holders_file: Path
    rows: int
    invalid_rows: int
    missing_holder_rows: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable summary."""
        return {
            "root": str(self.root),
            "files": [str(path) for path in self.files],
            "holders_file": str(self.holders_file),
            "rows": self.rows,
            "invalid_rows": self.invalid_rows,
            "missing_holder_rows": self.missing_holder_rows,
        }


def account_holders(count: int = 24, seed: int = 42) -> list[dict[str, Any]]:
    """The account holders that exist (a quarter of them businesses).

    :param count: how many.
    :param seed: the random seed (names only; ids are ``ah-0001``, ``ah-0002``, ...).
    """
    rng = random.Random(f"holders:{seed}")
    holders = []
    for number in range(1, count + 1):
        if number % 4 == 0:
            holder_type = "business"
            name = f"{rng.choice(_UNKNOWN_FIRST).title()} {rng.choice(('Studio', 'Labs', 'Goods', 'Co'))}"
        else:
            holder_type = "consumer"
            name = f"{rng.choice(_FIRST_NAMES).title()} {rng.choice(_LAST_NAMES).title()}"
        holders.append({"id": f"ah-{number:04d}", "type": holder_type, "name": name})
    return holders


def _amount(rng: random.Random, low: float, high: float) -> float:
    # Log-uniform: many small purchases, a few large ones.
    return round(low * (high / low) ** rng.random(), 2)


def _store_location(rng: random.Random) -> tuple[str, str, str]:
    """A city the emulator knows: (description suffix, raw address, country code)."""
    city, (state, country, _lat, _lon) = rng.choice(list(CITIES.items()))
    region = f" {state}" if state else ""
    raw_address = f"{rng.randint(1, 999)} {rng.choice(_STREETS)}, {city.title()}{region}"
    return f"{city}{region}", raw_address, country


def _purchase(rng: random.Random, merchant: Merchant) -> dict[str, Any]:
    alias = rng.choice(merchant.aliases)
    if merchant.category in _ONLINE_CATEGORIES:
        return {
            "description": f"{alias} {rng.randint(100000, 999999)} ONLINE",
            "amount": _amount(rng, 2, 400),
            "currency": "USD",
            "location": None,
        }
    suffix, raw_address, country = _store_location(rng)
    prefix = rng.choice(_PROCESSOR_PREFIXES) if rng.random() < 0.15 else ""
    return {
        "description": f"{prefix}{alias} #{rng.randint(10, 9999)} {suffix}",
        "amount": _amount(rng, 1.5, 600),
        "currency": _CURRENCY_BY_COUNTRY.get(country, "USD"),
        "location": {"raw_address": raw_address, "country": country},
    }


def _unknown_purchase(rng: random.Random) -> dict[str, Any]:
    suffix, raw_address, country = _store_location(rng)
    name = f"{rng.choice(_UNKNOWN_FIRST)} {rng.choice(_UNKNOWN_SECOND)}"
    return {
        "description": f"POS PURCHASE {name} {suffix}",
        "amount": _amount(rng, 3, 250),
        "currency": _CURRENCY_BY_COUNTRY.get(country, "USD"),
        "location": {"raw_address": raw_address, "country": country},
    }


def _p2p(rng: random.Random) -> dict[str, Any]:
    app = rng.choice(_P2P_APPS)
    person = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
    incoming = rng.random() < 0.4
    direction = "FROM" if incoming else "TO"
    return {
        "description": f"{app.aliases[0]} PAYMENT {direction} {person} CONF {rng.randint(100000, 999999)}",
        "amount": _amount(rng, 5, 500),
        "currency": "USD",
        "location": None,
        "entry_type": "incoming" if incoming else "outgoing",
    }


def _salary(rng: random.Random) -> dict[str, Any]:
    return {
        "description": f"{rng.choice(_EMPLOYERS)} PAYROLL DIRECT DEP",
        "amount": _amount(rng, 1500, 9000),
        "currency": "USD",
        "location": None,
        "entry_type": "incoming",
    }


def _make_invalid(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    """Break one field of a row, the way bad exports do."""
    kind = rng.randrange(4)
    if kind == 0:
        row["amount"] = -abs(row["amount"]) or -1.0
    elif kind == 1:
        row["currency"] = "DOLLARS"
    elif kind == 2:
        row["entry_type"] = "debit"
    else:
        row["date"] = row["date"][:8] + "32"
    return row


def transactions_for_date(
    date: dt.date, rows: int, *, seed: int = 42, holders: Sequence[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One day's transactions, as TransactionInput dicts (``location`` nested or None).

    :param date: the day.
    :param rows: how many rows.
    :param seed: the random seed; the same seed and date give the same rows.
    :param holders: the holders that exist (default :func:`account_holders`).
    """
    rng = random.Random(f"transactions:{seed}:{date.isoformat()}")
    holder_ids = [h["id"] for h in (holders if holders is not None else account_holders(seed=seed))]
    out: list[dict[str, Any]] = []
    for index in range(rows):
        draw = rng.random()
        if draw < SHARE_UNKNOWN_MERCHANT:
            row = _unknown_purchase(rng)
        elif draw < SHARE_UNKNOWN_MERCHANT + SHARE_P2P:
            row = _p2p(rng)
        elif draw < SHARE_UNKNOWN_MERCHANT + SHARE_P2P + SHARE_SALARY:
            row = _salary(rng)
        else:
            row = _purchase(rng, rng.choice(MERCHANTS))
        row.setdefault("entry_type", "outgoing")
        if rng.random() < SHARE_MISSING_HOLDER:
            holder = f"{MISSING_HOLDER_PREFIX}{rng.randint(1, 50):04d}"
        else:
            holder = rng.choice(holder_ids)
        row = {
            "id": f"tx-{date:%Y%m%d}-{index:07d}",
            "description": row["description"],
            "date": date.isoformat(),
            "amount": row["amount"],
            "entry_type": row["entry_type"],
            "currency": row["currency"],
            "account_holder_id": holder,
            "location": row["location"],
        }
        if rng.random() < SHARE_INVALID:
            row = _make_invalid(rng, row)
        out.append(row)
    return out


def _dates(start: dt.date, end: dt.date) -> Iterator[dt.date]:
    day = start
    while day <= end:
        yield day
        day += dt.timedelta(days=1)


def write_table(rows: list[dict[str, Any]], path: Path, fmt: str) -> Path:
    """Write transactions (TransactionInput dicts) to one Parquet or CSV file, atomically.

    Parquet keeps ``location`` as a struct; CSV has ``location_raw_address`` and ``location_country``.

    :param rows: the transactions.
    :param path: the file to write (its folder is created).
    :param fmt: ``parquet`` or ``csv``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {FORMATS}, got {fmt!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA), tmp)
    else:
        pa_csv.write_csv(pa.Table.from_pylist([flatten_location(row) for row in rows]), tmp)
    tmp.replace(path)
    return path


def write_landing(
    out: Path | str,
    start: dt.date,
    end: dt.date | None = None,
    *,
    rows_per_day: int = 500,
    fmt: str = "parquet",
    seed: int = 42,
    holders: int = 24,
) -> LandingSummary:
    """Write one landing partition per day from ``start`` to ``end`` (inclusive), plus the holders file.

    :param out: the landing folder (``<out>/date=YYYY-MM-DD/transactions.<fmt>``).
    :param start: the first day.
    :param end: the last day (default: ``start``).
    :param rows_per_day: rows in each day's file.
    :param fmt: ``parquet`` or ``csv``.
    :param seed: the random seed.
    :param holders: how many account holders exist.
    :raises ValueError: when the range is empty, the format unknown, ``rows_per_day`` negative or
        ``holders`` below 1.
    """
    end = end or start
    if end < start:
        raise ValueError(f"end: {end} is before start {start}")
    if rows_per_day < 0:
        raise ValueError(f"rows_per_day: expected >= 0, got {rows_per_day}")
    if holders < 1:
        # Rows pick their holder among the existing ones: with none, there is nothing to pick from.
        raise ValueError(f"holders: expected at least 1, got {holders}")
    root = Path(out)
    holder_rows = account_holders(holders, seed=seed)
    holders_file = root / f"{ACCOUNT_HOLDERS_FILE}.{fmt}"
    write_holders(holder_rows, holders_file, fmt)
    files, total, invalid, missing = [], 0, 0, 0
    for day in _dates(start, end):
        rows = transactions_for_date(day, rows_per_day, seed=seed, holders=holder_rows)
        files.append(write_table(rows, partition_path(root, day, fmt), fmt))
        total += len(rows)
        invalid += sum(1 for row in rows if _is_invalid(row))
        missing += sum(1 for row in rows if str(row["account_holder_id"]).startswith(MISSING_HOLDER_PREFIX))
    return LandingSummary(root, tuple(files), holders_file, total, invalid, missing)


def write_holders(rows: list[dict[str, Any]], path: Path, fmt: str) -> Path:
    """Write the account holders file (``id``, ``type``, ``name``).

    :param rows: the holders.
    :param path: the file.
    :param fmt: ``parquet`` or ``csv``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=HOLDERS_SCHEMA)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return path


def partition_path(root: Path | str, day: dt.date | str, fmt: str = "parquet") -> Path:
    """Where a day's transactions land: ``<root>/date=YYYY-MM-DD/transactions.<fmt>``.

    :param root: the landing folder.
    :param day: the day (a date or ``YYYY-MM-DD``).
    :param fmt: ``parquet`` or ``csv``.
    """
    return Path(root) / partition_name(day) / f"{TRANSACTIONS_FILE}.{fmt}"


def _is_invalid(row: dict[str, Any]) -> bool:
    from ntropy_provider.api.transaction_input import validate_transaction

    return bool(validate_transaction(row))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ntropy-sample-data",
        description="Write realistic, deterministic sample transactions into a landing folder, "
        "one date=YYYY-MM-DD partition per day, plus account_holders.<format>.",
    )
    parser.add_argument("--out", required=True, help="the landing folder")
    parser.add_argument("--start", required=True, type=dt.date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", type=dt.date.fromisoformat, help="last day, YYYY-MM-DD (default: --start)")
    parser.add_argument("--rows-per-day", type=int, default=500, help="rows per day (default 500)")
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="file format (default parquet)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--holders", type=int, default=24, help="account holders that exist (default 24)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: print a JSON summary of what was written.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    """
    args = _parse_args(argv)
    try:
        summary = write_landing(
            args.out,
            args.start,
            args.end,
            rows_per_day=args.rows_per_day,
            fmt=args.format,
            seed=args.seed,
            holders=args.holders,
        )
    except ValueError as err:
        raise SystemExit(f"ntropy-sample-data: {err}") from None
    print(json.dumps(summary.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
