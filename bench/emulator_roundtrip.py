"""Round-trip time and peak memory of the emulator for one full 24,960-item batch.

The emulator runs as its own process (the ``ntropy-emulator`` CLI), so its memory is measured alone
(peak resident set, ``VmHWM``). Figures are printed as ratios against baselines measured in the same run:
the round trip of a 1-item batch, and the time to JSON-encode the request and decode the results with the
standard library (the least work any client and server must do for the same data). The memory part
submits further full batches and shows how much the server grows per finished batch, beside the size of
that batch's results JSON (the server keeps them gzip-compressed).

Run: ``python -m bench.emulator_roundtrip`` (``--batches N`` for the memory part, default 4).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from bench._common import API_KEY, emulator_process
from ntropy_provider.api.wire import MAX_BATCH_SIZE, TRANSACTIONS_OPERATION

ITEMS_PER_SECOND = 1_000_000
DESCRIPTIONS = [
    "SQ *BLUE BOTTLE COFFEE #{n}",
    "AMZN MKTP US*{n}",
    "Zelle payment to John Smith conf {n}",
    "NETFLIX.COM {n}",
    "UBER TRIP {n} HELP.UBER.COM",
    "xkq zz {n}",
    "PAYROLL ACME CORP {n}",
    "TST* SHAKE SHACK {n}",
]


def transactions(count: int) -> list[dict[str, Any]]:
    """A realistic mix of ``count`` transactions (merchants, intermediaries, P2P, gibberish, addresses).

    :param count: how many.
    """
    return [
        {
            "id": f"bench-{n}",
            "description": DESCRIPTIONS[n % len(DESCRIPTIONS)].format(n=n),
            "date": "2024-03-30",
            "amount": round(1 + n % 500 * 1.37, 2),
            "entry_type": "incoming" if n % 7 == 0 else "outgoing",
            "currency": "USD",
            "account_holder_id": "bench-holder" if n % 2 else None,
            "location": {"raw_address": "10 Union Sq, New York, NY 10003", "country": "US"}
            if n % 3 == 0
            else None,
        }
        for n in range(count)
    ]


def peak_rss(pid: int) -> int:
    """Peak resident set size of a process in bytes (``VmHWM``; current RSS where that is unavailable).

    :param pid: the process id.
    """
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return psutil.Process(pid).memory_info().rss


def rss(pid: int) -> int:
    """Current resident set size in bytes.

    :param pid: the process id.
    """
    return psutil.Process(pid).memory_info().rss


class Client:
    """Just enough HTTP to drive a batch through the emulator.

    :param url: the emulator's base URL.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers["X-API-Key"] = API_KEY

    def round_trip(self, items: list[dict[str, Any]]) -> tuple[float, bytes, dict[str, float]]:
        """Create a batch, poll until completed, fetch and decode its results.

        :param items: the transactions.
        :return: seconds taken, the results body as received, and seconds per phase.
        """
        start = time.perf_counter()
        created = self.session.post(
            f"{self.url}/v3/batches", json={"operation": TRANSACTIONS_OPERATION, "data": items}, timeout=120
        )
        created.raise_for_status()
        batch_id = created.json()["id"]
        created_at = time.perf_counter()
        while (
            self.session.get(f"{self.url}/v3/batches/{batch_id}", timeout=60).json()["status"] != "completed"
        ):
            time.sleep(0.01)
        completed_at = time.perf_counter()
        answer = self.session.get(f"{self.url}/v3/batches/{batch_id}/results", timeout=120)
        answer.raise_for_status()
        results = answer.json()["results"]
        elapsed = time.perf_counter() - start
        assert len(results) == len(items)
        phases = {
            "create (encode, send, validate, store)": created_at - start,
            "wait until completed": completed_at - created_at,
            "results (build, send, decode)": start + elapsed - completed_at,
        }
        return elapsed, answer.content, phases


def main(argv: list[str] | None = None) -> None:
    """Measure and print.

    :param argv: command line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batches", type=int, default=4, help="full batches per round of the memory part (two rounds)"
    )
    args = parser.parse_args(argv)

    items = transactions(MAX_BATCH_SIZE)
    with emulator_process("--items-per-second", str(ITEMS_PER_SECOND), quiet=True) as (process, url):
        client = Client(url)
        client.session.post(
            f"{url}/v3/account_holders", json={"id": "bench-holder", "type": "business"}, timeout=10
        )
        for _ in range(3):  # warm up: imports, caches, connection
            client.round_trip(items[:1])
        idle_peak = peak_rss(process.pid)
        small = min(client.round_trip(items[:1])[0] for _ in range(5))

        full, body, phases = client.round_trip(items)
        full_peak = peak_rss(process.pid)
        results_size = len(body)

        # Baseline: the least any client and server do for the same data, with the standard library:
        # encode and decode the request once, encode and decode the results once.
        start = time.perf_counter()
        encoded = json.dumps({"operation": TRANSACTIONS_OPERATION, "data": items})
        json.loads(encoded)
        json.dumps(json.loads(body))
        codec = time.perf_counter() - start

        # Two rounds of N batches: the first lets the allocator reach its working size, the second
        # shows what each further finished batch really adds.
        for _ in range(args.batches):
            client.round_trip(items)
        settled = rss(process.pid)
        for _ in range(args.batches):
            client.round_trip(items)
        grown = rss(process.pid)
        per_batch = (grown - settled) / max(1, args.batches)

    mib = 1024 * 1024
    print(f"emulator round trip of one full batch ({MAX_BATCH_SIZE:,} items, {ITEMS_PER_SECOND:,} items/s)")
    print(f"  baseline: 1-item batch round trip          {small * 1000:9.1f} ms")
    print(f"  baseline: stdlib JSON of request + results {codec * 1000:9.1f} ms")
    print(f"  full batch round trip                      {full * 1000:9.1f} ms")
    for phase, seconds in phases.items():
        print(f"    {phase:40} {seconds * 1000:9.1f} ms")
    print(f"    ratio to the 1-item round trip           {full / small:9.1f} x")
    print(f"    ratio to stdlib JSON of the same data    {full / codec:9.2f} x")
    print(f"  server peak RSS idle                       {idle_peak / mib:9.1f} MiB")
    growth = full_peak - idle_peak
    print(f"  server peak RSS with one full batch        {full_peak / mib:9.1f} MiB (+{growth / mib:.1f})")
    print(f"    ratio peak growth / request+results size {growth / (len(encoded) + results_size):9.2f} x")
    kept = len(gzip.compress(body, compresslevel=1, mtime=0))
    print(f"  results JSON of one batch                  {results_size / mib:9.1f} MiB")
    print(f"  results kept per finished batch (gzip)     {kept / mib:9.1f} MiB")
    print(f"  RSS growth per further finished batch      {per_batch / mib:9.2f} MiB ({args.batches} batches)")
    print(f"    ratio to the results JSON                {per_batch / results_size:9.2f} x")


if __name__ == "__main__":
    main(sys.argv[1:])
