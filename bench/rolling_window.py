"""Benchmark: a day of ~1M rows (40 batches) at the API's ceiling, rolling window vs submit-all-up-front.

The emulator enforces the documented per-key limits (100,000 credits, at most 10 batches in progress,
per-endpoint request rates). Time is scaled ``--scale`` times (20 by default) so that the run takes about
a minute, and **scaled alike on both sides**, so that the run keeps the proportions of real time: the
credit refill (1,000/s becomes 20,000/s) and the enrichment speed of a batch (the emulator's default
2,000 items/s becomes 40,000/s) on the server; on the client the credit estimate (the connection's
``credit_refill_per_second``), the operator's waits (``min_defer_wait``, poll intervals) and a deferral's
round trip through the scheduler (``--resume-latency`` seconds of real time, 3 by default, slept before
each resume and counted as worker time, as a new task process holds a slot while it starts). Scaling the
refill alone would make the 10-batches cap bind as hard as the credits, which at real speed it never does
with the documented limits (1M rows: ~900 s of credits, ~50 s of batches in progress); ``--items-per-second``
overrides the enrichment speed for such a stress run. What is not scaled is real work: reading, validating
and serializing the input and each POST's round trip, so the worker-held share printed is an upper bound of
the share at real speed (printed beside it). Every strategy gets a fresh emulator process and submits the
same rows, then waits until every batch has ended. Measured per strategy:

* wall time of submission + waiting, against the ideal ``max(credit bound, open-batches bound)``: the
  last chunk cannot be accepted before the bucket refilled ``rows - capacity`` credits (plus its own
  enrichment), and batches go at most 10 at a time (``ceil(batches / 10)`` rounds of one batch's time);
* 429 answers to ``POST /v3/batches`` as a share of the POSTs (the emulator's counters);
* whether it succeeded on the first try (no error escaped the submission);
* seconds a worker slot was held (for ``backfill``, the days' sum; its shares are per day): the
  deferrable operator is driven as Airflow would (``execute``, the trigger's ``run()`` in an event loop
  standing for the triggerer, the resume method), and only its synchronous calls count; the blocking
  strategies hold the worker for the whole wall time;
* CPU spent reading the input again on each resume, against one full read of the input;
* peak RSS growth of the process (``ru_maxrss`` after imports, before the run).

Strategies: ``window`` (SubmitBatchOperator, deferrable, the rolling window), ``backfill`` (the same rows
as 5 days of ntropy_backfill, each a deferrable operator with a window of 2, all at once on one key),
``window_blocking`` (``NtropyHook.submit_batches``, paced the same way, blocking), ``upfront`` (a copy of
the strategy before the window: every chunk POSTed at once from 4 threads, the hook waiting out 429s) and
``sdk`` (a loop of ntropy-sdk ``batches.create`` calls, sleeping a second and trying again when refused).

Usage: ``.venv/bin/python -m bench.rolling_window [--rows 998400] [--scale 20] [--only window,sdk]
[--items-per-second N] [--resume-latency 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from itertools import islice
from pathlib import Path
from typing import Any

from bench._common import API_KEY, emulator_admin, emulator_process

REPO_ROOT = Path(__file__).resolve().parents[1]
CHUNK_SIZE = 24_960
OPERATION = "POST /v3/transactions"
#: Documented limits (docs.ntropy.com, "Rate limits"), and the emulator's default enrichment speed.
CAPACITY, REFILL, MAX_OPEN, ITEMS_PER_SECOND = 100_000, 1_000.0, 10, 2_000.0
POST_CAUSES = ("credits", "open_batches", "endpoint:POST /v3/batches")
STRATEGIES = ("window", "backfill", "window_blocking", "upfront", "sdk")
#: Days of the ``backfill`` strategy (ntropy_backfill's DAYS_IN_FLIGHT).
BACKFILL_DAYS = 5


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
        }


def write_input(path: Path, n: int) -> None:
    """The rows as a Parquet file (row groups of 10,000 rows), the operator's input."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer = None
    source = rows(n)
    while block := list(islice(source, 100_000)):
        table = pa.Table.from_pylist(block)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=10_000)
    if writer is not None:
        writer.close()


def ideal_seconds(n: int, refill: float, items_per_second: float) -> dict[str, float]:
    """The bounds the API's limits put on submission + waiting."""
    batches = math.ceil(n / CHUNK_SIZE)
    one_batch = CHUNK_SIZE / items_per_second
    last = (n - (batches - 1) * CHUNK_SIZE) / items_per_second
    credit = max(0.0, n - CAPACITY) / refill + last
    slots = math.ceil(batches / MAX_OPEN) * one_batch
    return {"credit": credit, "slots": slots, "ideal": max(credit, slots)}


# ------------------------------------------------------------------------------------------------
# The strategies (each runs in a fresh process)
# ------------------------------------------------------------------------------------------------
def _hook(url: str, refill: float) -> Any:
    from ntropy_provider.hooks.ntropy import NtropyHook

    extra = {"credit_refill_per_second": refill, "credit_capacity": CAPACITY, "max_open_batches": MAX_OPEN}
    os.environ["AIRFLOW_CONN_NTROPY_BENCH"] = json.dumps(
        {"conn_type": "ntropy", "host": url, "password": API_KEY, "extra": extra}
    )
    hook = NtropyHook("ntropy_bench")
    hook.get_conn()
    return hook


def _wait(hook: Any, ids: list[str]) -> None:
    hook.wait_for_batches(ids, poll_interval=0.25, max_poll_interval=2.0, timeout=3_600)


#: A deferral's round trip through the scheduler and a new task process, in real seconds (scaled).
RESUME_LATENCY = float(os.environ.get("BENCH_RESUME_LATENCY", "3"))


def _drive_operator(operator: Any, scale: float) -> dict[str, Any]:
    """Run a deferrable operator as Airflow would: its sync calls (the worker), each deferral's trigger in
    an event loop (the triggerer), a time-scaled round trip, then the resume method."""
    from airflow.sdk.exceptions import TaskDeferred

    class Store(dict):
        def set(self, key: str, value: Any, *, retention: Any = None) -> None:
            self[key] = value

    resume_reads: list[float] = []
    real_rows = operator._rows

    def timed_rows(start_row: int = 1) -> Iterator[Any]:
        # This thread's CPU: the backfill's days read in threads of one process, at the same time.
        started = time.thread_time()
        iterator = real_rows(start_row)
        first = next(iterator, None)
        if start_row > 1:
            resume_reads.append(time.thread_time() - started)
        if first is not None:
            yield first
            yield from iterator

    operator._rows = timed_rows
    context = {"task_state_store": Store()}
    held = resumed = 0.0
    deferrals = 0
    call: Any = lambda: operator.execute(context)  # noqa: E731
    while True:
        started = time.perf_counter()
        try:
            result = call()
            held += time.perf_counter() - started
            break
        except TaskDeferred as deferred:
            held += time.perf_counter() - started
            deferrals += 1
            event = asyncio.run(_first_event(deferred.trigger))
            method = getattr(operator, deferred.method_name)
            resume = time.perf_counter()
            time.sleep(RESUME_LATENCY / scale)  # the scheduler and a new task process, time-scaled
            resumed += time.perf_counter() - resume
            call = lambda method=method, event=event: method(context, event)  # noqa: E731
    return {
        "total": result["total"],
        "held": held + resumed,
        "resume_sleep": resumed,
        "deferrals": deferrals,
        "resume_read_cpu": resume_reads,
    }


def _operator(input_path: str, scale: float, **kwargs: Any) -> Any:
    from ntropy_provider.operators.submit_batch import SubmitBatchOperator

    return SubmitBatchOperator(
        task_id="submit",
        items=input_path,
        ntropy_conn_id="ntropy_bench",
        deferrable=True,
        wait_for_completion=True,
        min_defer_wait=30.0 / scale,  # the default 30 s, time-scaled like the refill
        poll_interval=10.0 / scale,
        max_poll_interval=300.0 / scale,
        **kwargs,
    )


def run_window(url: str, n: int, refill: float, input_path: str, scale: float) -> dict[str, Any]:
    """The deferrable SubmitBatchOperator, driven as Airflow would; only its sync calls hold a worker."""
    _hook(url, refill)
    return _drive_operator(_operator(input_path, scale), scale)


def run_backfill(url: str, n: int, refill: float, input_path: str, scale: float) -> dict[str, Any]:
    """ntropy_backfill's sizing: the same rows as BACKFILL_DAYS days, each a deferrable operator with a
    window of 2 and one POST in flight, all at once against one key. Worker time is the days' sum."""
    from ntropy_provider.api.limits import DEFAULT_MAX_OPEN_BATCHES

    _hook(url, refill)
    window = DEFAULT_MAX_OPEN_BATCHES // BACKFILL_DAYS
    days = [_day_path(input_path, day) for day in range(BACKFILL_DAYS)]
    with ThreadPoolExecutor(max_workers=BACKFILL_DAYS) as pool:
        futures = [
            pool.submit(
                _drive_operator,
                _operator(
                    day,
                    scale,
                    max_open_batches=window,
                    max_concurrency=1,
                    credit_share=1 / BACKFILL_DAYS,  # ntropy_backfill's CREDIT_SHARE_PER_DAY
                ),
                scale,
            )
            for day in days
        ]
        results = [future.result() for future in futures]
    return {
        "total": sum(r["total"] for r in results),
        "held": sum(r["held"] for r in results),
        "resume_sleep": sum(r["resume_sleep"] for r in results),
        "deferrals": sum(r["deferrals"] for r in results),
        "resume_read_cpu": [cpu for r in results for cpu in r["resume_read_cpu"]],
        "slots": BACKFILL_DAYS,  # worker time is the days' sum: shares are per day
    }


def _day_path(input_path: str, day: int) -> str:
    return input_path.replace(".parquet", f".day{day}.parquet")


def split_days(input_path: str, n: int) -> None:
    """The input cut into BACKFILL_DAYS files of consecutive rows (the backfill's days)."""
    import pyarrow.parquet as pq

    table = pq.read_table(input_path)
    per_day = math.ceil(n / BACKFILL_DAYS)
    for day in range(BACKFILL_DAYS):
        pq.write_table(table.slice(day * per_day, per_day), _day_path(input_path, day), row_group_size=10_000)


async def _first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("the trigger ended without an event")


def run_window_blocking(url: str, n: int, refill: float, input_path: str, scale: float) -> dict[str, Any]:
    """``NtropyHook.submit_batches``: the same window and pacing, blocking the caller."""
    hook = _hook(url, refill)
    batches = hook.submit_batches(rows(n), CHUNK_SIZE, max_concurrency=4)
    _wait(hook, [b.id for b in batches])
    return {"total": sum(b.total for b in batches)}


def run_upfront(url: str, n: int, refill: float, input_path: str, scale: float) -> dict[str, Any]:
    """The strategy before the window, kept here as the baseline: every chunk POSTed up front from 4
    threads (at most 4 POSTs in flight, no notion of batches in progress or credits), the hook waiting
    out each 429 on its own."""
    from ntropy_provider.submission.chunks import iter_chunks

    hook = _hook(url, refill)
    errors: list[str] = []

    def post(body: bytes) -> Any:
        try:
            return hook.post_batch_body(body)
        except Exception as err:  # what made the task fail before; counted, then the chunk goes again
            errors.append(type(err).__name__)
            return post(body)

    batches: list[Any] = []
    in_flight: set[Future[Any]] = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for chunk in iter_chunks(rows(n), CHUNK_SIZE, priority="default"):
            while len(in_flight) >= 4:  # at most 4 bodies held, as the old engine did
                done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                batches += [future.result() for future in done]
            in_flight.add(pool.submit(post, chunk.body))
        batches += [future.result() for future in in_flight]
    _wait(hook, [b.id for b in batches])
    return {"total": sum(b.total for b in batches), "errors": errors}


def run_sdk(url: str, n: int, refill: float, input_path: str, scale: float) -> dict[str, Any]:
    """A loop of ntropy-sdk ``batches.create`` calls; a refused call sleeps a second and goes again."""
    from ntropy_sdk import SDK

    sdk = SDK(API_KEY)
    sdk.base_url = url
    errors: list[str] = []
    ids: list[str] = []
    total = 0
    source = rows(n)
    while chunk := list(islice(source, CHUNK_SIZE)):
        while True:
            try:
                batch = sdk.batches.create(operation=OPERATION, data=chunk)
                break
            except Exception as err:
                errors.append(type(err).__name__)
                time.sleep(1.0)
        ids.append(batch.id)
        total += batch.total
    _wait(_hook(url, refill), ids)
    return {"total": total, "errors": errors}


RUNNERS = {
    "window": run_window,
    "backfill": run_backfill,
    "window_blocking": run_window_blocking,
    "upfront": run_upfront,
    "sdk": run_sdk,
}


def worker(strategy: str, url: str, n: int, refill: float, input_path: str, scale: float) -> None:
    """Run one strategy once and print its measurements as JSON."""
    import ntropy_sdk  # noqa: F401  (imports before the clock, for every strategy alike)

    import ntropy_provider.hooks.ntropy
    import ntropy_provider.operators.submit_batch  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    first_try = True
    try:
        result = RUNNERS[strategy](url, n, refill, input_path, scale)
    except Exception as err:  # a failed first try: report it
        first_try = False
        result = {"total": 0, "errors": [f"{type(err).__name__}: {err}"[:300]]}
    wall = time.perf_counter() - started
    result.setdefault("held", wall)
    first_try = first_try and not result.get("errors")
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({**result, "wall": wall, "first_try": first_try, "rss_delta_mb": rss}))


def full_read_cpu(input_path: str) -> float:
    """CPU seconds of one full read of the input (typed and checked, as a submission reads it)."""
    from ntropy_provider.io.transactions_source import iter_rows

    started = time.process_time()
    for _ in iter_rows(input_path):
        pass
    return time.process_time() - started


def _run(
    strategy: str, n: int, scale: float, input_path: str, items_per_second: float, resume: float
) -> dict[str, Any]:
    refill = REFILL * scale
    options = ("--limits", "on", "--credit-refill-per-second", str(refill))
    options += ("--items-per-second", str(items_per_second))
    with emulator_process(*options, quiet=True) as (_, url):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.rolling_window",
                "--worker",
                strategy,
                "--url",
                url,
                "--rows",
                str(n),
                "--scale",
                str(scale),
                "--input",
                input_path,
            ],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "BENCH_RESUME_LATENCY": str(resume)},
        )
        if out.returncode != 0:
            raise RuntimeError(f"{strategy} crashed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        stats = emulator_admin(url, "/_emulator/stats")
    posts = stats["requests"].get("POST /v3/batches", 0)
    refused = sum(stats["rate_limited"].get(cause, 0) for cause in POST_CAUSES)
    result.update(
        posts=posts,
        refused=refused,
        created=stats["batches_created"],
        submitted=stats["transactions_submitted"],
        max_open=stats.get("max_open_batches_seen"),
        causes={k: v for k, v in stats["rate_limited"].items() if v},
    )
    return result


def _real_speed_share(result: dict[str, Any], ideal: float, scale: float) -> float:
    """The worker-held share at real speed: held work over the real-speed wall (waits x ``scale``)."""
    slots = result.get("slots", 1)
    if result["held"] >= result["wall"] * slots * 0.99:  # a blocking strategy: held all along
        return 100.0
    # The deferrals' round trips were slept time-scaled: at real speed each takes `scale` times longer.
    held = (result["held"] + result.get("resume_sleep", 0.0) * (scale - 1)) / slots
    waited = max(0.0, result["wall"] - held)
    return 100 * held / max(held + waited * scale, ideal * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40 * CHUNK_SIZE)
    parser.add_argument("--scale", type=float, default=20.0, help="credit refill speed-up (1,000/s x scale)")
    parser.add_argument("--only", default=",".join(STRATEGIES), help="strategies to run, comma-separated")
    parser.add_argument(
        "--items-per-second",
        type=float,
        help="enrichment speed of a batch (default: the emulator's 2,000/s x scale, like the refill)",
    )
    parser.add_argument(
        "--resume-latency",
        type=float,
        default=RESUME_LATENCY,
        help="a deferral's round trip through the scheduler, real seconds (time-scaled; default 3)",
    )
    parser.add_argument("--worker", choices=STRATEGIES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.url, args.rows, REFILL * args.scale, args.input, args.scale)
        return

    items_per_second = args.items_per_second or ITEMS_PER_SECOND * args.scale
    bounds = ideal_seconds(args.rows, REFILL * args.scale, items_per_second)
    with tempfile.TemporaryDirectory(prefix="bench-window-") as scratch:
        input_path = str(Path(scratch) / "day.parquet")
        write_input(Path(input_path), args.rows)
        split_days(input_path, args.rows)
        read_cpu = full_read_cpu(input_path)
        results = {
            name: _run(name, args.rows, args.scale, input_path, items_per_second, args.resume_latency)
            for name in args.only.split(",")
        }

    print(
        f"{args.rows:,} rows in {math.ceil(args.rows / CHUNK_SIZE)} batches; limits: {CAPACITY:,} credits, "
        f"refill {REFILL * args.scale:,.0f}/s ({args.scale:g}x), {MAX_OPEN} batches in progress, "
        f"{items_per_second:,.0f} items/s per batch; a deferral's round trip {args.resume_latency:g} s "
        f"/ {args.scale:g}"
    )
    print(
        f"ideal {bounds['ideal']:.1f} s = max(credit bound {bounds['credit']:.1f} s, "
        f"open-batches bound {bounds['slots']:.1f} s); one full read of the input: {read_cpu:.2f} s CPU"
    )
    header = ["wall s", "x ideal", "first try", "429/POSTs", "worker held s", "held %", "real-speed %"]
    header.append("peak RSS MB")
    print(f"{'':18}" + "".join(f"{h:>14}" for h in header))
    for name, r in results.items():
        share = f"{r['refused']}/{r['posts']}"
        values = [
            f"{r['wall']:.1f}",
            f"{r['wall'] / bounds['ideal']:.2f}",
            "yes" if r["first_try"] else "no",
            f"{share} {100 * r['refused'] / max(r['posts'], 1):.0f}%",
            f"{r['held']:.1f}",
            f"{100 * r['held'] / (r['wall'] * r.get('slots', 1)):.0f}%",
            # At real speed the waits are `scale` times longer, the work is not (a lower bound of the
            # wall: the ideal at real speed); blocking strategies hold the worker all along.
            f"{_real_speed_share(r, bounds['ideal'], args.scale):.0f}%",
            f"{r['rss_delta_mb']:.0f}",
        ]
        print(f"{name:18}" + "".join(f"{v:>14}" for v in values))
        if r["submitted"] != args.rows or r["created"] != math.ceil(args.rows / CHUNK_SIZE):
            print(f"  !! {name}: {r['created']} batches, {r['submitted']:,} rows on the server")
        if r["causes"]:
            print(f"  {name}: 429s by cause {r['causes']}; most batches in progress {r['max_open']}")
        if r.get("errors"):
            print(f"  {name}: {len(r['errors'])} error(s) escaped the submission: {sorted(set(r['errors']))}")
    for name in ("window", "backfill"):
        _print_resumes(name, results.get(name), read_cpu / (1 if name == "window" else BACKFILL_DAYS))
    window = results.get("window")
    base = results.get("upfront")
    if window and base:
        print(
            f"ratio upfront / window: wall {base['wall'] / window['wall']:.2f}x, "
            f"worker held {base['held'] / max(window['held'], 0.01):.1f}x"
        )


def _print_resumes(name: str, result: dict[str, Any] | None, read_cpu: float) -> None:
    """How often a deferrable strategy deferred, and what re-reading on a resume cost (against one full
    read of what that task reads: the whole input, or one day)."""
    if not result:
        return
    reads = sorted(result.get("resume_read_cpu") or [])
    worst = reads[-1] if reads else 0.0
    median = reads[len(reads) // 2] if reads else 0.0
    # The median beside the worst: a read of a few milliseconds can take a garbage collection (of what
    # the process's other threads left, for the backfill's days) on the way.
    print(
        f"{name}: {result.get('deferrals', 0)} deferral(s), {len(reads)} resumed read(s); re-reading on "
        f"a resume costs {median:.3f} s CPU = {100 * median / max(read_cpu, 1e-9):.1f}% of a full read "
        f"(median), at most {worst:.3f} s = {100 * worst / max(read_cpu, 1e-9):.1f}%"
    )


if __name__ == "__main__":
    main()
