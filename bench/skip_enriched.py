"""Benchmark: what ``skip_enriched`` costs against 10M earlier ids, and what it saves on a backfill.

Part 1, the cost. Data (cached between runs): an earlier results ``ok/`` file of 10,000,000 rows (the
``transaction_id`` column and four more string columns, as a results file has many: column projection
must skip them), and a day's input of 1,000,000 rows in Parquet. Each measurement runs in a fresh
subprocess so that its peak RSS is its own:

* (a) the baseline: reading the day's input as SubmitBatchOperator's scan does anyway (every row
  typed and validated, :func:`~ntropy_provider.io.transactions_source.iter_rows`);
* (b) loading the 10M earlier ids (:func:`~ntropy_provider.submission.skip_enriched.load_enriched_ids`:
  the id column only, 8-byte hashes);
* (c) (a) with the skip applied to every row (:class:`~ntropy_provider.submission.pay_once.PayOnce`:
  the ids loaded, the input deduplicated and looked up).

Reported: wall time and peak RSS of each, and the ratios b/a and c/a (time, and peak RSS growth over
the interpreter's own). Each measurement is the median of ``--repeat`` interleaved runs.

Part 2, the credits saved. Twenty landed days of sample data (``--rows-per-day``, default 20,000); the
nightly DAG already enriched the first fourteen (their ``ok/`` holds every valid row's id; the 12th
only half of them, a run that broke off). A backfill over the twenty days sends, per day, what the
operator's scan leaves after skip_enriched: counted with the operator's own filters (a dry run, no
API), against what it would send without them. The script prints; it asserts nothing.

Usage: ``.venv/bin/python -m bench.skip_enriched [--repeat 3] [--earlier 10000000] [--cache DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EARLIER_IDS = 10_000_000
DAY_ROWS = 1_000_000
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "ntropy-bench-skip-enriched"


def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited across exec from the parent)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def ensure_data(cache: Path, earlier: int) -> tuple[Path, Path]:
    """The earlier ``ok/`` output directory and the day's input file, written on the first run.

    :param cache: where they are kept.
    :param earlier: rows of the earlier ``ok/`` file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    output = cache / f"earlier-{earlier}"
    ok_file = output / "ok" / "part-0.parquet"
    day = cache / f"day-{DAY_ROWS}.parquet"
    if not ok_file.exists():
        ok_file.parent.mkdir(parents=True, exist_ok=True)
        step = 1_000_000
        with pq.ParquetWriter(ok_file, _ok_schema(), compression="zstd") as writer:
            for start in range(0, earlier, step):
                n = min(step, earlier - start)
                numbers = range(start, start + n)
                writer.write_table(
                    pa.table(
                        {
                            "transaction_id": [f"txn-{i:012d}" for i in numbers],
                            "batch_id": [f"batch-{i // 24_960:06d}" for i in numbers],
                            "merchant": [f"MERCHANT {i % 5000}" for i in numbers],
                            "category_general": [("shopping", "travel", "food")[i % 3] for i in numbers],
                            "extra_json": [None] * n,
                        },
                        schema=_ok_schema(),
                    ),
                    row_group_size=24_960,
                )
    if not day.exists():
        # Half the day's ids are among the earlier ones (a re-run over an overlapping range).
        numbers = range(earlier - DAY_ROWS // 2, earlier + DAY_ROWS // 2)
        pq.write_table(
            pa.table(
                {
                    "id": [f"txn-{i:012d}" for i in numbers],
                    "description": [f"UBER TRIP {i % 977}" for i in numbers],
                    "date": pa.array([dt.date(2024, 3, 1)] * DAY_ROWS, pa.date32()),
                    "amount": [float(i % 500) + 0.99 for i in numbers],
                    "entry_type": ["outgoing"] * DAY_ROWS,
                    "currency": ["USD"] * DAY_ROWS,
                }
            ),
            day,
            row_group_size=65_536,
        )
    return output, day


def _ok_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("transaction_id", pa.string(), nullable=False),
            ("batch_id", pa.string()),
            ("merchant", pa.string()),
            ("category_general", pa.string()),
            ("extra_json", pa.string()),
        ]
    )


# --------------------------------------------------------------------------------------------------
# Measurements (each in its own process)
# --------------------------------------------------------------------------------------------------
def measure(kind: str, output: str, day: str) -> dict[str, Any]:
    """One measurement, in this process: ``read``, ``load`` or ``scan_skip``.

    :param kind: which.
    :param output: the earlier output directory.
    :param day: the day's input.
    """
    from ntropy_provider.io.transactions_source import iter_rows
    from ntropy_provider.submission.pay_once import PayOnce
    from ntropy_provider.submission.skip_enriched import load_enriched_ids

    import_rss = _peak_rss_mb()
    start = time.perf_counter()
    result: dict[str, Any] = {}
    if kind == "read":
        result["rows"] = sum(1 for row in iter_rows(day) if row.valid)
    elif kind == "load":
        ids = load_enriched_ids([output])
        result["ids"] = len(ids)
        result["set_mb"] = ids.nbytes / 2**20
    else:
        pay_once = PayOnce(skip_enriched=output, on_duplicate="reject")
        result["rows"] = sum(1 for row in pay_once.scan_rows(iter_rows(day), None) if row.valid)
        result.update(pay_once.counts())
    result["seconds"] = time.perf_counter() - start
    result["peak_mb"] = _peak_rss_mb()
    result["growth_mb"] = result["peak_mb"] - import_rss
    return result


def run_measure(kind: str, output: Path, day: Path) -> dict[str, Any]:
    """:func:`measure` in a fresh interpreter.

    :param kind: which measurement.
    :param output: the earlier output directory.
    :param day: the day's input.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench.skip_enriched", "--measure", kind, str(output), str(day)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[0])
    for key in ("seconds", "peak_mb", "growth_mb"):
        out[key] = statistics.median(r[key] for r in runs)
    return out


# --------------------------------------------------------------------------------------------------
# Part 2: credits saved on an overlapping backfill
# --------------------------------------------------------------------------------------------------
def backfill_savings(root: Path, rows_per_day: int) -> dict[str, int]:
    """Credits a backfill over twenty days spends with and without skip_enriched (no API call).

    :param root: a scratch directory.
    :param rows_per_day: rows landed per day.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ntropy_provider import sample_data
    from ntropy_provider.io.transactions_source import iter_rows
    from ntropy_provider.submission.pay_once import PayOnce

    first = dt.date(2024, 3, 1)
    days = [first + dt.timedelta(days=n) for n in range(20)]
    landing = sample_data.write_landing(
        root / "landing", days[0], days[-1], rows_per_day=rows_per_day, seed=9
    )
    without, with_skip = 0, 0
    for number, (day, path) in enumerate(zip(days, landing.files, strict=True), start=1):
        out = root / "enriched" / f"date={day}"
        valid_ids = [r.transaction["id"] for r in iter_rows(path) if r.valid]
        if number <= 14:  # the nightly DAG's days (the 12th broke off halfway)
            done = valid_ids[: len(valid_ids) // 2] if number == 12 else valid_ids
            (out / "ok").mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"transaction_id": done}), out / "ok" / "part-0.parquet")
        pay_once = PayOnce(skip_enriched=str(out), on_duplicate="reject")
        with_skip += sum(1 for r in pay_once.scan_rows(iter_rows(path), None) if r.valid)
        without += len(valid_ids)
    return {"days": len(days), "credits_without_skip": without, "credits_with_skip": with_skip}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--earlier", type=int, default=EARLIER_IDS)
    parser.add_argument("--rows-per-day", type=int, default=20_000)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--measure", nargs=3, metavar=("KIND", "OUTPUT", "DAY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.getLogger("ntropy_provider").setLevel(logging.WARNING)  # one line per file read otherwise
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return 0

    output, day = ensure_data(args.cache, args.earlier)
    # Interleaved (a, b, c, a, b, c, ...), so that a shared machine's load shifts all three alike.
    kinds = ("read", "load", "scan_skip")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    for _ in range(args.repeat):
        for kind in kinds:
            runs[kind].append(run_measure(kind, output, day))
    results = {kind: _median(runs[kind]) for kind in kinds}
    read, load, scan_skip = results["read"], results["load"], results["scan_skip"]
    print(
        f"(a) read the day's input ({DAY_ROWS:,} rows, validated): {read['seconds']:.2f} s, "
        f"peak {read['peak_mb']:.0f} MB (+{read['growth_mb']:.0f} MB)"
    )
    print(
        f"(b) load {load['ids']:,} earlier ids (id column only): {load['seconds']:.2f} s, "
        f"peak {load['peak_mb']:.0f} MB (+{load['growth_mb']:.0f} MB; the set holds {load['set_mb']:.0f} MB)"
    )
    print(
        f"(c) (a) with skip_enriched: {scan_skip['seconds']:.2f} s, peak {scan_skip['peak_mb']:.0f} MB "
        f"(+{scan_skip['growth_mb']:.0f} MB); {scan_skip['skipped']:,} rows skipped, "
        f"{scan_skip['rows']:,} left"
    )
    print(
        f"ratios: load/read time {load['seconds'] / read['seconds']:.2f}, "
        f"peak-growth {load['growth_mb'] / max(read['growth_mb'], 1):.2f}; "
        f"(c)/(a) time {scan_skip['seconds'] / read['seconds']:.2f}, "
        f"peak-growth {scan_skip['growth_mb'] / max(read['growth_mb'], 1):.2f}"
    )

    with tempfile.TemporaryDirectory() as scratch:
        saved = backfill_savings(Path(scratch), args.rows_per_day)
    spent, full = saved["credits_with_skip"], saved["credits_without_skip"]
    print(
        f"backfill over {saved['days']} days, 13.5 of them already enriched: {spent:,} credits with "
        f"skip_enriched against {full:,} without: {full - spent:,} saved ({(full - spent) / full:.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
