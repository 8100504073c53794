"""Benchmark: a pandas DataFrame as SubmitBatchOperator's input, against a list of dicts of the same rows.

What is measured is what the operator does with its input before and while sending, in process: the
validation scan that plans the chunks (``submission.plan.scan`` over ``iter_rows``), then the second read
that cuts every chunk into its request body (``iter_planned_chunks``). Nothing is sent (the HTTP side
does not depend on the input's kind).

The same rows (``--rows``, default 250,000: ten full batches and a partial one) are held three ways, each
in a fresh subprocess that builds its input, then measures only the reading:

* (list) a list of dicts, the baseline;
* (frame) a DataFrame of those rows (``DataFrame.from_records``), read by the provider through Arrow,
  a slice at a time (:mod:`ntropy_provider.io.dataframe_source`);
* (naive) the same DataFrame turned into a list first with ``to_dict("records")``, what one would write
  without DataFrame support: the whole frame copied into Python dicts, then the list path.

Reported: wall and CPU time of the reading (median of ``--repeat`` interleaved runs), and the process's
peak RSS growth during it (the peak is reset after the input is built, so holding the input does not
count); then the ratios frame/list and naive/list. The script prints; it asserts nothing.

Usage: ``.venv/bin/python -m bench.dataframe_input [--rows 250000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODES = {
    "list": "(list) list of dicts",
    "frame": "(frame) DataFrame, through Arrow",
    "naive": "(naive) DataFrame -> to_dict('records') -> list",
}
CHUNK_SIZE = 24_960


def make_rows(count: int) -> list[dict[str, Any]]:
    """``count`` valid transactions, varied enough that strings are not shared between rows.

    :param count: how many.
    """
    merchants = ("STARBUCKS", "AMAZON MKTP", "UBER TRIP", "SQ *BLUE BOTTLE", "NETFLIX.COM", "SHELL OIL")
    return [
        {
            "id": f"tx-{i:09d}",
            "description": f"{merchants[i % len(merchants)]} #{i % 9973} STORE {i}",
            "date": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "amount": float(i % 5000) / 4 + 0.01,
            "entry_type": "outgoing" if i % 5 else "incoming",
            "currency": "USD" if i % 7 else "EUR",
            "account_holder_id": f"holder-{i % 250}",
        }
        for i in range(count)
    ]


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux ``clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def read_like_the_operator(items: Any) -> int:
    """The operator's two reads of its input: the planning scan, then the cut into request bodies.

    :param items: the input.
    :return: bytes of request bodies cut (so that nothing is optimised away).
    """
    from ntropy_provider.io.transactions_source import iter_rows
    from ntropy_provider.submission.plan import iter_planned_chunks, scan

    plan = scan(iter_rows(items), chunk_size=CHUNK_SIZE)
    assert plan.rejected == 0, "the benchmark's rows are all valid"
    chunks = iter_planned_chunks(iter_rows(items), plan, priority="default", skip=frozenset())
    return sum(len(chunk.body or b"") for chunk in chunks)


def worker(mode: str, rows: int) -> None:
    """Build the input of ``mode``, measure the reading, print one JSON line (run in a subprocess).

    :param mode: a key of :data:`MODES`.
    :param rows: how many rows.
    """
    import pandas as pd

    # Import what the reading needs first, so that time and memory are the reading's own.
    import ntropy_provider.io.dataframe_source
    import ntropy_provider.submission.plan  # noqa: F401

    read_like_the_operator(make_rows(10))
    read_like_the_operator(pd.DataFrame.from_records(make_rows(10)))
    data: Any = make_rows(rows)
    if mode in ("frame", "naive"):
        data = pd.DataFrame.from_records(data)  # the user holds the frame only
    gc.collect()
    before = _status_kib("VmRSS")
    reset = _reset_peak()
    cpu_start = time.process_time()
    start = time.perf_counter()
    items = data.to_dict("records") if mode == "naive" else data
    body_bytes = read_like_the_operator(items)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "mode": mode,
                "wall": wall,
                "cpu": cpu,
                "before_kib": before,
                "peak_kib": peak,
                "peak_reset": reset,
                "body_bytes": body_bytes,
            }
        )
    )


def run_once(mode: str, rows: int) -> dict[str, Any]:
    """One measurement of ``mode`` in a fresh subprocess.

    :param mode: a key of :data:`MODES`.
    :param rows: how many rows.
    """
    done = subprocess.run(
        [sys.executable, "-m", "bench.dataframe_input", "--worker", mode, "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median times and the largest peak growth of a mode's runs.

    :param runs: what :func:`run_once` returned for one mode.
    """
    if not all(r["peak_reset"] for r in runs):
        print("warning: the peak RSS could not be reset: growth includes building the input", file=sys.stderr)
    return {
        "wall": statistics.median(r["wall"] for r in runs),
        "cpu": statistics.median(r["cpu"] for r in runs),
        "growth_mib": max(r["peak_kib"] - r["before_kib"] for r in runs) / 1024,
        "held_mib": max(r["before_kib"] for r in runs) / 1024,
        "body_bytes": runs[0]["body_bytes"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run every mode and print the table and the ratios.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worker", choices=sorted(MODES))
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.rows)
        return 0
    print(f"{args.rows:,} rows, chunks of {CHUNK_SIZE:,}; load average {os.getloadavg()[0]:.2f}")
    # Interleaved, so that a change in the machine's load touches every mode alike.
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            runs[mode].append(run_once(mode, args.rows))
    results = {mode: summarize(mode_runs) for mode, mode_runs in runs.items()}
    assert len({r["body_bytes"] for r in results.values()}) == 1, "every mode must cut the same bodies"
    print(f"\n{'input':<50} {'wall s':>7} {'cpu s':>7} {'peak growth MiB':>16} {'process before MiB':>19}")
    for mode, label in MODES.items():
        r = results[mode]
        print(f"{label:<50} {r['wall']:7.2f} {r['cpu']:7.2f} {r['growth_mib']:16.0f} {r['held_mib']:19.0f}")
    base = results["list"]
    for mode in ("frame", "naive"):
        r = results[mode]
        print(
            f"{mode}/list: wall {r['wall'] / base['wall']:.2f}x, cpu {r['cpu'] / base['cpu']:.2f}x, "
            f"peak growth {r['growth_mib'] / max(base['growth_mib'], 1e-9):.2f}x "
            f"({r['growth_mib']:.0f} vs {base['growth_mib']:.0f} MiB)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
