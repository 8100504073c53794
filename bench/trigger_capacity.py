"""Benchmark: how many BatchTriggers one triggerer holds, for the sizing guide (docs/sizing.md).

One triggerer runs every trigger it holds in one asyncio event loop. This runs 100, 500, 1,000 and 2,000
BatchTriggers (one batch each, started over the first poll interval as deferrals arrive) in this process's
loop against the emulator in a separate process, and reports for each count: the loop's lag (how late a
10 ms timer wakes: p99 and worst), CPU seconds per trigger-hour and API requests per batch. The baseline
is the smallest count, measured in the same run: the ratios say how the loop degrades as one triggerer
holds more. The capacity is the largest count whose p99 lag stays under ``--lag-budget-ms`` (100 ms: a
trigger's poll and its event are then late by at most that; Airflow warns of a blocked loop at 200 ms).

Run: ``.venv/bin/python -m bench.trigger_capacity`` (about 3 minutes; on a shared machine the lag
includes other processes' CPU: read it as an upper bound).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bench._common import emulator_process
from bench.trigger_loop_lag import measure, trigger_bench_setup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--counts", default="100,500,1000,2000", help="triggers per run; the first is the baseline"
    )
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--items-per-second", type=float, default=1.0, help="per batch: 20 items ~ 20 s")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="API answer latency")
    parser.add_argument("--poll-interval", type=float, default=2.0)
    parser.add_argument("--max-poll-interval", type=float, default=60.0)
    parser.add_argument("--lag-budget-ms", type=float, default=100.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]

    port, url, options = trigger_bench_setup(args)
    from ntropy_provider.triggers.batch import BatchTrigger

    results: dict[int, dict[str, Any]] = {}
    with emulator_process(*options, port=port, quiet=True):
        for count in counts:
            args.batches = count
            result = measure(
                url,
                args,
                lambda batch_id: BatchTrigger(
                    [batch_id], poll_interval=args.poll_interval, max_poll_interval=args.max_poll_interval
                ),
            )
            # measure() reports CPU per batch-hour: one batch per trigger, so per trigger-hour.
            results[count] = result

    base = results[counts[0]]
    print(
        f"\nBatchTriggers in one event loop, one batch each ({args.batch_size} items at "
        f"{args.items_per_second:g}/s = {args.batch_size / args.items_per_second:.0f} s), "
        f"API latency {args.latency_ms:g} ms, poll {args.poll_interval:g}..{args.max_poll_interval:g} s"
    )
    print(
        f"{'triggers':>8} {'ended':>6} {'p99 lag ms':>10} {'worst ms':>9} {'CPU s/trig-h':>12} "
        f"{'req/batch':>9} {'p99 vs ' + str(counts[0]):>11} {'CPU/trig vs ' + str(counts[0]):>16}"
    )
    for count, r in results.items():
        lag_ratio = r["p99_lag_ms"] / base["p99_lag_ms"] if base["p99_lag_ms"] else float("inf")
        cpu_ratio = r["cpu_s_per_batch_hour"] / base["cpu_s_per_batch_hour"]
        print(
            f"{count:>8} {r['ended_ok']:>6} {r['p99_lag_ms']:>10.1f} {r['worst_lag_ms']:>9.1f} "
            f"{r['cpu_s_per_batch_hour']:>12.3f} {r['requests_per_batch']:>9.1f} {lag_ratio:>10.1f}x "
            f"{cpu_ratio:>15.2f}x"
        )
    within = [c for c, r in results.items() if r["p99_lag_ms"] < args.lag_budget_ms and r["ended_ok"] == c]
    capacity = max(within) if within else 0
    print(
        f"\ncapacity: {capacity} triggers per triggerer with p99 loop lag < {args.lag_budget_ms:g} ms "
        f"(largest count measured: {counts[-1]}; Airflow's [triggerer] capacity default is 1000)"
    )
    if args.json:
        print(json.dumps({str(c): r for c, r in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
