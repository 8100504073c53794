"""Benchmark: submit 250,000 transactions with ``NtropyHook.submit_batches`` vs the official SDK's loop.

Both sides send the same rows (one deterministic generator, consumed lazily in chunks of 24,960) to the
same emulator, which runs in its own process so that its CPU does not count against either client (and
enriches slowly, so that building results of finished batches does not compete with the submissions).
Each measurement runs in a fresh subprocess:

* timing runs (no tracing): wall time of the submission and the peak RSS growth (``ru_maxrss`` delta);
* one tracing run per side: the peak of Python allocations (``tracemalloc``) during the submission.

The baseline is ``sdk.batches.create(operation=..., data=chunk)`` called per chunk in a loop, the way the
SDK is meant to be used for more than one batch. The script prints the ratios; it asserts nothing.

Usage: ``.venv/bin/python -m bench.hook_submit [--rows 250000] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from bench._common import API_KEY, emulator_admin, emulator_process

REPO_ROOT = Path(__file__).resolve().parents[1]
CHUNK_SIZE = 24_960
OPERATION = "POST /v3/transactions"


def rows(n: int) -> Iterator[dict[str, Any]]:
    """The benchmark's transactions: deterministic, realistic field sizes."""
    for i in range(n):
        yield {
            "id": f"bench-{i:08d}",
            "description": f"POS PURCHASE STARBUCKS STORE #{i % 9973} NEW YORK NY CARD 4417 "
            f"REF {i * 7919 % 10**9}",
            "date": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "amount": round(1 + (i % 10_000) * 0.37, 2),
            "entry_type": "outgoing" if i % 4 else "incoming",
            "currency": "USD",
            "account_holder_id": None,
            "location": None,
        }


def _submit_with_hook(url: str, n: int, max_concurrency: int = 10) -> int:
    from ntropy_provider.hooks.ntropy import NtropyHook

    # The emulator's batches stay processing here (the benchmark measures the client's submission), so
    # the window is as large as the input: every chunk goes at once, as the SDK loop sends them.
    conn = {"conn_type": "ntropy", "host": url, "password": API_KEY, "extra": {"max_open_batches": 1_000}}
    os.environ["AIRFLOW_CONN_NTROPY_BENCH"] = json.dumps(conn)
    hook = NtropyHook("ntropy_bench")
    hook.get_conn()  # read the connection before the clock starts, as the SDK gets its key up front
    batches = hook.submit_batches(rows(n), CHUNK_SIZE, max_concurrency=max_concurrency)
    return sum(b.total for b in batches if b is not None)


def _submit_with_hook_2(url: str, n: int) -> int:
    """The hook with only 2 requests in flight: less memory held, still overlapping client and server."""
    return _submit_with_hook(url, n, max_concurrency=2)


def _sdk(url: str) -> Any:
    from ntropy_sdk import SDK

    sdk = SDK(API_KEY)
    sdk.base_url = url
    return sdk


def _submit_with_sdk(url: str, n: int) -> int:
    """The SDK at its leanest: chunks cut lazily from the same generator."""
    sdk = _sdk(url)
    total = 0
    source = rows(n)
    while chunk := list(islice(source, CHUNK_SIZE)):
        total += sdk.batches.create(operation=OPERATION, data=chunk).total
    return total


def _submit_with_sdk_list(url: str, n: int) -> int:
    """The SDK as its list-taking API invites: the input materialized, then sliced."""
    sdk = _sdk(url)
    data = list(rows(n))
    return sum(
        sdk.batches.create(operation=OPERATION, data=data[i : i + CHUNK_SIZE]).total
        for i in range(0, len(data), CHUNK_SIZE)
    )


SIDES = {
    "hook": _submit_with_hook,
    "hook_2": _submit_with_hook_2,
    "sdk": _submit_with_sdk,
    "sdk_list": _submit_with_sdk_list,
}
LABELS = {"hook": "submit_batches", "hook_2": "max_concurrency=2", "sdk": "SDK loop", "sdk_list": "SDK, list"}


def worker(side: str, url: str, n: int, trace: bool) -> None:
    """Run one side once and print its measurements as JSON (in a fresh process)."""
    submit = SIDES[side]
    # Import everything the side needs before measuring, so imports count for neither.
    import ntropy_sdk  # noqa: F401

    import ntropy_provider.hooks.ntropy  # noqa: F401

    # What producing the rows costs (the same for every side), to report each client's own CPU net of it.
    cpu_clock = time.process_time()
    for _ in rows(n):
        pass
    generation_cpu = time.process_time() - cpu_clock
    before = resource.getrusage(resource.RUSAGE_SELF)
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    total = submit(url, n)
    wall = time.perf_counter() - started
    traced_peak = tracemalloc.get_traced_memory()[1] if trace else None
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss_delta_mb = (after.ru_maxrss - before.ru_maxrss) / 1024
    measured = {"wall": wall, "cpu": cpu, "net_cpu": max(cpu - generation_cpu, 0.0), "total": total}
    print(json.dumps({**measured, "rss_delta_mb": rss_delta_mb, "traced_peak": traced_peak}))


def _run(side: str, url: str, n: int, trace: bool) -> dict[str, Any]:
    emulator_admin(url, "/_emulator/reset", "POST")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.hook_submit",
            "--worker",
            side,
            "--url",
            url,
            "--rows",
            str(n),
            *(["--trace"] if trace else []),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,  # where ``bench`` is importable
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    stats = emulator_admin(url, "/_emulator/stats")
    if result["total"] != n or stats["transactions_submitted"] != n:
        raise RuntimeError(
            f"{side}: submitted {result['total']} / server saw {stats['transactions_submitted']}"
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per side (median reported)")
    parser.add_argument("--worker", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.url, args.rows, args.trace)
        return

    # Batches stay "processing" (1 item/s): the emulator then spends its CPU on the submissions only,
    # not on building the results of batches that finish during the measurement.
    # The API's limits off: this benchmark measures the client's submission, and its batches never end
    # (bench.rolling_window measures submission under the limits).
    with emulator_process("--items-per-second", "1", "--limits", "off") as (_, url):
        timings: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for _ in range(args.repeat):
            for side in SIDES:  # interleaved, so that drift affects both sides alike
                timings[side].append(_run(side, url, args.rows, trace=False))
        traced = {side: _run(side, url, args.rows, trace=True)["traced_peak"] for side in SIDES}

    def median(side: str, key: str) -> float:
        return statistics.median(r[key] for r in timings[side])

    print(f"Submitting {args.rows:,} transactions in batches of {CHUNK_SIZE:,} (emulator in its own process)")
    print(f"{'':34}" + "".join(f"{LABELS[side]:>20}" for side in SIDES))
    lines = {
        "wall time, median (s)": [median(side, "wall") for side in SIDES],
        "client CPU time, median (s)": [median(side, "cpu") for side in SIDES],
        "  net of making the rows (s)": [median(side, "net_cpu") for side in SIDES],
        "peak RSS growth, median (MB)": [median(side, "rss_delta_mb") for side in SIDES],
        "peak traced allocations (MB)": [traced[side] / 2**20 for side in SIDES],
    }
    for label, values in lines.items():
        print(f"{label:34}" + "".join(f"{value:>20.2f}" for value in values))
    for baseline, side in (("sdk", "hook"), ("sdk_list", "hook"), ("sdk", "hook_2")):
        ratios = {key: median(baseline, key) / max(median(side, key), 0.01) for key in ("wall", "net_cpu")}
        rss = median(baseline, "rss_delta_mb") / max(median(side, "rss_delta_mb"), 0.1)
        print(
            f"{LABELS[baseline]} / {LABELS[side]}: wall {ratios['wall']:.2f}x, "
            f"client CPU net of making the rows {ratios['net_cpu']:.2f}x, "
            f"peak RSS growth {rss:.2f}x, peak traced {traced[baseline] / traced[side]:.2f}x"
        )
    print(
        "(the wall-time ratio is bounded by the emulator's own time per batch, which both sides wait for; "
        "client CPU is what each client spends)"
    )


if __name__ == "__main__":
    main()
