"""Benchmark: enriched results (the API's JSON bytes) to Parquet, three ways, in one run.

Data: ten batches of 24,960 transactions (249,600 rows, the largest batches the API takes) from the
project's sample-data generator, enriched by the emulator (a real HTTP server, in this process) and
saved as the ``GET /v3/batches/{id}/results`` bodies exactly as received. They are cached between runs.

Each measurement runs in a fresh subprocess (so that peak RSS is its own), reading the saved bodies
from disk (page cache) batch by batch:

* (a) ``write_results_datasets``: what ``ResultsToParquetOperator`` does after fetching each body
  (Arrow's JSON reader, split, atomic Parquet writers for ``ok/`` and ``errors/``, zstd);
* (b) what a user would write with pandas: ``json.loads`` every body, ``pandas.json_normalize`` the
  results, split on the error column, ``to_parquet`` both parts (zstd); also (b') the same per batch,
  one pair of files per batch, which bounds memory but still pays for Python objects;
* (c) the floor: only parsing the bodies, with each parser available (``orjson``, ``msgspec``,
  ``json``, Arrow's JSON reader with the results schema); the fastest counts;
* (a+) (a) on the same bodies where every result also carries fields the results schema does not know
  (``recurrence`` on each ok result, ``confidence`` on each counterparty and intermediary): the path
  that keeps them in ``extra_json``, for when the API adds a field before the schema knows it.

Reported per measurement: wall time of the work (imports excluded; median of ``--repeat`` runs), peak RSS
of the process and its growth during the work. Then the ratios a/b and a/c, and the peak RSS of (a) for
10, 40 and 80 batches (the 40 and 80 reuse the ten bodies under new batch ids), which must stay flat.
The script prints; it asserts nothing.

Usage: ``.venv/bin/python -m bench.results_convert [--repeat 3] [--cache DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BATCH_ROWS = 24_960
BATCHES = 10
API_KEY = "bench-key"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "ntropy-bench-results"


# --------------------------------------------------------------------------------------------------
# Data: sample rows, enriched by the emulator, saved as the API's bytes
# --------------------------------------------------------------------------------------------------
def ensure_data(cache: Path, batches: int = BATCHES) -> list[Path]:
    """The saved results bodies, generated through the emulator on the first run.

    :param cache: where the bodies are kept.
    :param batches: how many batches of 24,960 rows.
    """
    files = [cache / f"batch-{index:02d}.json" for index in range(batches)]
    if all(f.exists() for f in files):
        return files
    import datetime as dt

    import orjson
    import requests

    from ntropy_provider import sample_data
    from ntropy_provider.api.transaction_input import validate_transaction
    from ntropy_provider.emulator import EmulatorServer

    cache.mkdir(parents=True, exist_ok=True)
    print(
        f"generating {batches} batches of {BATCH_ROWS} rows through the emulator into {cache} ...", flush=True
    )
    with EmulatorServer(api_keys=[API_KEY], items_per_second=10_000_000, item_error_rate=0.01) as emulator:
        session = requests.Session()
        session.headers["X-API-Key"] = API_KEY
        for holder in sample_data.account_holders():
            session.post(f"{emulator.url}/v3/account_holders", json=holder).raise_for_status()
        for index, path in enumerate(files):
            day = dt.date(2024, 1, 1) + dt.timedelta(days=index)
            rows = [
                row
                for row in sample_data.transactions_for_date(day, BATCH_ROWS + BATCH_ROWS // 10, seed=42)
                if not validate_transaction(row)
            ][:BATCH_ROWS]
            body = orjson.dumps({"operation": "POST /v3/transactions", "data": rows})
            answer = session.post(
                f"{emulator.url}/v3/batches", data=body, headers={"Content-Type": "application/json"}
            )
            answer.raise_for_status()
            batch_id = answer.json()["id"]
            deadline = time.monotonic() + 600
            while session.get(f"{emulator.url}/v3/batches/{batch_id}").json()["status"] != "completed":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"batch {batch_id} did not complete")
                time.sleep(0.05)
            results = session.get(f"{emulator.url}/v3/batches/{batch_id}/results")
            results.raise_for_status()
            path.write_bytes(results.content)
            print(f"  {path.name}: {len(results.content) / 1e6:.1f} MB", flush=True)
    return files


#: What (a+) adds to the bodies: a field on each ok result, one on each entity (ends with naics2017).
UNKNOWN_FIELDS = (
    (b'"error":null}', b'"error":null,"recurrence":{"type":"one off","group_id":"g-1"}}'),
    (b'"naics2017":null}', b'"naics2017":null,"confidence":"high"}'),
)


def ensure_unknown_field_data(files: list[Path], cache: Path) -> list[Path]:
    """The saved bodies with fields the results schema does not know added to every result (for (a+)).

    :param files: the saved bodies.
    :param cache: where the variants are kept (a sub-directory).
    """
    variants = []
    (cache / "unknown-fields").mkdir(exist_ok=True)
    for path in files:
        variant = cache / "unknown-fields" / path.name
        if not variant.exists():
            raw = path.read_bytes()
            for old, new in UNKNOWN_FIELDS:
                raw = raw.replace(old, new)
            variant.write_bytes(raw)
        variants.append(variant)
    return variants


def bodies(files: list[Path], batches: int) -> Iterator[tuple[str, bytes]]:
    """``batches`` bodies, cycling through the files; repeats get a new batch id (as new batches would).

    :param files: the saved bodies.
    :param batches: how many to yield.
    """
    for index in range(batches):
        raw = files[index % len(files)].read_bytes()
        # The body starts with {"id":"<batch id>" (the emulator's key order): take the id from there.
        batch_id = raw[7 : raw.index(b'"', 7)].decode()
        if index >= len(files):
            new_id = str(uuid.UUID(int=index))
            raw = raw.replace(batch_id.encode(), new_id.encode(), 1)
            batch_id = new_id
        yield batch_id, raw


# --------------------------------------------------------------------------------------------------
# Workers (each runs in its own subprocess)
# --------------------------------------------------------------------------------------------------
def _status_kib(field: str) -> int:
    # /proc/self/status, not getrusage: ru_maxrss survives exec(), so a child would report the peak of the
    # parent it was forked from; VmHWM (peak) and VmRSS (now) belong to this process image only.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def work_a(files: list[Path], batches: int, out: Path) -> int:
    from ntropy_provider.results.datasets import write_results_datasets
    from ntropy_provider.utils.storage import as_storage_path

    summary = write_results_datasets(bodies(files, batches), as_storage_path(str(out)), compression="zstd")
    return summary.ok_rows + summary.error_rows


def work_b(files: list[Path], batches: int, out: Path) -> int:
    import pandas as pd

    results: list[dict[str, Any]] = []
    for batch_id, raw in bodies(files, batches):
        document = json.loads(raw)
        for item in document["results"]:
            item["batch_id"] = batch_id
        results.extend(document["results"])
    frame = pd.json_normalize(results)
    is_error = frame["error.code"].notna()
    out.mkdir(parents=True, exist_ok=True)
    frame[~is_error].to_parquet(out / "ok.parquet", compression="zstd", index=False)
    frame[is_error].to_parquet(out / "errors.parquet", compression="zstd", index=False)
    return len(frame)


def work_b_batchwise(files: list[Path], batches: int, out: Path) -> int:
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for index, (batch_id, raw) in enumerate(bodies(files, batches)):
        frame = pd.json_normalize(json.loads(raw)["results"])
        frame["batch_id"] = batch_id
        is_error = (
            frame["error.code"].notna() if "error.code" in frame else pd.Series(False, index=frame.index)
        )
        frame[~is_error].to_parquet(out / f"ok-{index:03d}.parquet", compression="zstd", index=False)
        frame[is_error].to_parquet(out / f"errors-{index:03d}.parquet", compression="zstd", index=False)
        rows += len(frame)
    return rows


def _parse_only(parse: Any, files: list[Path], batches: int) -> int:
    rows = 0
    for _, raw in bodies(files, batches):
        rows += parse(raw)
    return rows


def work_c_orjson(files: list[Path], batches: int, out: Path) -> int:
    import orjson

    return _parse_only(lambda raw: len(orjson.loads(raw)["results"]), files, batches)


def work_c_msgspec(files: list[Path], batches: int, out: Path) -> int:
    import msgspec

    decoder = msgspec.json.Decoder()
    return _parse_only(lambda raw: len(decoder.decode(raw)["results"]), files, batches)


def work_c_json(files: list[Path], batches: int, out: Path) -> int:
    return _parse_only(lambda raw: len(json.loads(raw)["results"]), files, batches)


def work_c_pyarrow(files: list[Path], batches: int, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.json as pa_json

    from ntropy_provider.results.schema import BATCH_RESULTS_ARROW_SCHEMA

    def parse(raw: bytes) -> int:
        table = pa_json.read_json(
            pa.BufferReader(raw),
            pa_json.ReadOptions(use_threads=False, block_size=len(raw) + 1),
            pa_json.ParseOptions(
                explicit_schema=BATCH_RESULTS_ARROW_SCHEMA, unexpected_field_behavior="ignore"
            ),
        )
        return len(table.column("results").chunk(0).flatten())

    return _parse_only(parse, files, batches)


def work_a_unknown(files: list[Path], batches: int, out: Path) -> int:
    return work_a(files, batches, out)


WORKERS = {
    "a": work_a,
    "a_unknown": work_a_unknown,
    "b": work_b,
    "b_batchwise": work_b_batchwise,
    "c_orjson": work_c_orjson,
    "c_msgspec": work_c_msgspec,
    "c_json": work_c_json,
    "c_pyarrow": work_c_pyarrow,
}
WORKER_COMMAND = [sys.executable, "-m", "bench.results_convert"]
LABELS = {
    "a": "(a) ResultsToParquet conversion",
    "a_unknown": "(a+) (a), unknown fields in every row",
    "b": "(b) pandas json_normalize",
    "b_batchwise": "(b') pandas, batch by batch",
    "c_orjson": "(c) parse only: orjson",
    "c_msgspec": "(c) parse only: msgspec",
    "c_json": "(c) parse only: json",
    "c_pyarrow": "(c) parse only: Arrow JSON reader",
}


def worker(mode: str, cache: Path, batches: int) -> None:
    """Run one measurement and print it as JSON (called in a subprocess).

    :param mode: a key of ``WORKERS``.
    :param cache: where the bodies are.
    :param batches: how many bodies to process.
    """
    files = sorted(cache.glob("batch-*.json"))
    if mode == "a_unknown":
        files = sorted((cache / "unknown-fields").glob("batch-*.json"))
    function = WORKERS[mode]
    # Import what the work needs before measuring, so that the time and growth are the work's own.
    if mode.startswith("a"):
        from ntropy_provider.utils.storage import as_storage_path

        # Airflow loads its plugins (hook lineage) on the first ObjectStoragePath.open() of a process: a
        # one-time cost of Airflow that a task has paid before it runs, not part of the conversion.
        with tempfile.TemporaryDirectory() as scratch:
            as_storage_path(scratch).joinpath("warm-up").open("wb").close()
        from ntropy_provider.results.schema import RESULTS_ARROW_SCHEMA

        # pyarrow imports pandas lazily on the first table it builds: import it now, as (b) does.
        RESULTS_ARROW_SCHEMA.empty_table()
    elif mode.startswith("b"):
        import pandas  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    with tempfile.TemporaryDirectory(prefix="ntropy-bench-out-") as out:
        before = _status_kib("VmRSS")
        cpu_start = time.process_time()
        start = time.perf_counter()
        rows = function(files, batches, Path(out) / "out")
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu_start
        peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {"mode": mode, "rows": rows, "wall": wall, "cpu": cpu, "peak_kib": peak, "before_kib": before}
        )
    )


def measure(mode: str, cache: Path, batches: int, repeat: int) -> dict[str, Any]:
    """Run a mode ``repeat`` times, each in a fresh subprocess; the median time, the largest peak.

    :param mode: a key of ``WORKERS``.
    :param cache: where the bodies are.
    :param batches: how many bodies to process.
    :param repeat: runs.
    """
    runs = []
    for _ in range(repeat):
        completed = subprocess.run(
            [*WORKER_COMMAND, "--worker", mode, "--cache", str(cache), "--batches", str(batches)],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        runs.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return {
        "mode": mode,
        "rows": runs[0]["rows"],
        "wall": statistics.median(r["wall"] for r in runs),
        "cpu": statistics.median(r["cpu"] for r in runs),
        "peak_mib": max(r["peak_kib"] for r in runs) / 1024,
        "growth_mib": max(r["peak_kib"] - r["before_kib"] for r in runs) / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    """Generate (once) the data, run every measurement, print the table and the ratios.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--batches", type=int, default=BATCHES)
    parser.add_argument("--worker", choices=sorted(WORKERS))
    parser.add_argument("--generate", action="store_true", help="only generate the data")
    args = parser.parse_args(argv)
    if args.generate:
        ensure_data(args.cache)
        return 0
    if args.worker:
        worker(args.worker, args.cache, args.batches)
        return 0

    if not all((args.cache / f"batch-{i:02d}.json").exists() for i in range(BATCHES)):
        # In a child process, so that this one stays small (its children's memory is measured).
        subprocess.run(
            [sys.executable, "-m", "bench.results_convert", "--generate", "--cache", str(args.cache)],
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    files = ensure_data(args.cache)
    ensure_unknown_field_data(files, args.cache)
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"{len(files)} results bodies, {len(files) * BATCH_ROWS:,} rows, {size:.0f} MB of JSON\n")
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    results = {mode: measure(mode, args.cache, BATCHES, args.repeat) for mode in WORKERS}
    print(
        f"{'measurement':38} {'rows':>9} {'wall s':>8} {'CPU s':>7} {'peak RSS MiB':>13} {'growth MiB':>11}"
    )
    for mode, r in results.items():
        row = f"{LABELS[mode]:38} {r['rows']:>9,} {r['wall']:>8.2f} {r['cpu']:>7.2f}"
        print(f"{row} {r['peak_mib']:>13.0f} {r['growth_mib']:>11.0f}")
    a, b = results["a"], results["b"]
    floor = min((r for m, r in results.items() if m.startswith("c_")), key=lambda r: r["wall"])
    cpu_floor = min((r for m, r in results.items() if m.startswith("c_")), key=lambda r: r["cpu"])
    print()
    speedup = b["wall"] / a["wall"]
    print(f"a/b wall time   {a['wall'] / b['wall']:.3f}  ({speedup:.1f}x faster than pandas; goal >= 4x)")
    print(
        f"a/b peak RSS    {a['peak_mib'] / b['peak_mib']:.3f}  (growth {a['growth_mib']:.0f} vs "
        f"{b['growth_mib']:.0f} MiB; goal <= 0.5)"
    )
    print(
        f"a/c wall time   {a['wall'] / floor['wall']:.3f}  (floor: {LABELS[floor['mode']]}, "
        f"{floor['wall']:.2f} s; goal <= 2)"
    )
    print(
        f"CPU time: a/b {a['cpu'] / b['cpu']:.3f} ({b['cpu'] / a['cpu']:.1f}x less), "
        f"a/c {a['cpu'] / cpu_floor['cpu']:.3f} (floor: {LABELS[cpu_floor['mode']]})"
        "; CPU time is less sensitive than wall time to other load on the machine"
    )
    a_plus = results["a_unknown"]
    print(
        f"a+/a wall time  {a_plus['wall'] / a['wall']:.3f}, CPU time {a_plus['cpu'] / a['cpu']:.3f}  "
        f"(the cost of keeping unknown fields in extra_json; a+/b wall {a_plus['wall'] / b['wall']:.3f})"
    )
    b2 = results["b_batchwise"]
    print(f"a/b' wall time  {a['wall'] / b2['wall']:.3f}  (pandas per batch, peak {b2['peak_mib']:.0f} MiB)")

    print("\npeak memory of (a) against the number of batches (24,960 rows each):")
    base = None
    for batches in (10, 40, 80):
        r = results["a"] if batches == BATCHES else measure("a", args.cache, batches, 1)
        base = base or r
        head = f"  {batches:>3} batches, {r['rows']:>9,} rows: {r['wall']:6.2f} s"
        print(
            f"{head}, peak RSS {r['peak_mib']:5.0f} MiB, growth {r['growth_mib']:4.0f} MiB "
            f"({r['peak_mib'] / base['peak_mib']:.2f}x the 10-batch peak)"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
