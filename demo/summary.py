"""Print what one run of ntropy_nightly_enrichment produced: counts, top categories and merchants, paths.

Usage: ``python demo/summary.py --data-root demo_data --date 2024-03-01``.
"""

from __future__ import annotations

import argparse
import collections
import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq


def summarize(data_root: Path, date: str, top: int = 5) -> dict:
    """Counts and top lists of one day's outputs.

    :param data_root: the ``NTROPY_DATA_ROOT`` of the run.
    :param date: the day, ``YYYY-MM-DD``.
    :param top: how many categories and merchants to list.
    :raises FileNotFoundError: naming the output that is missing.
    """
    out = data_root / "enriched" / f"date={date}"
    ok_file, errors_file, rejects_file = (
        out / "ok" / "part-0.parquet",
        out / "errors" / "part-0.parquet",
        out / "rejects.jsonl",
    )
    for path in (ok_file, errors_file):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: did the run succeed?")
    ok = pq.read_table(ok_file, columns=["category_general", "counterparty_name", "input_amount"]).to_pylist()
    errors = pq.read_table(errors_file, columns=["error_code"]).column("error_code").to_pylist()
    rejects = (
        [json.loads(line) for line in rejects_file.read_text().splitlines()] if rejects_file.exists() else []
    )
    categories = collections.Counter(r["category_general"] or "uncategorized" for r in ok)
    merchants = collections.Counter(r["counterparty_name"] for r in ok if r["counterparty_name"])
    return {
        "date": date,
        "ok": len(ok),
        "errored": len(errors),
        "error_codes": dict(collections.Counter(errors)),
        "rejected": len(rejects),
        "reject_reasons": [r.get("reason") for r in rejects[:3]],
        "top_categories": categories.most_common(top),
        "top_merchants": merchants.most_common(top),
        "paths": {"ok": str(ok_file), "errors": str(errors_file), "rejects": str(rejects_file)},
    }


def render(summary: dict) -> str:
    """The summary as a few lines of text.

    :param summary: what :func:`summarize` returned.
    """
    total = summary["ok"] + summary["errored"] + summary["rejected"]
    lines = [
        f"Ntropy nightly enrichment for {summary['date']}: {total} rows landed",
        f"  enriched ok : {summary['ok']}",
        f"  errored     : {summary['errored']}  {summary['error_codes']}",
        f"  rejected    : {summary['rejected']}  (invalid, never sent; e.g. {summary['reject_reasons'][:1]})",
        "  top categories: " + ", ".join(f"{name} ({n})" for name, n in summary["top_categories"]),
        "  top merchants : " + ", ".join(f"{name} ({n})" for name, n in summary["top_merchants"]),
        "  outputs:",
        *(f"    {name:8}{path}" for name, path in summary["paths"].items()),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary of one day.

    :param argv: command-line arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", required=True, type=Path)
    parser.add_argument("--date", required=True)
    args = parser.parse_args(argv)
    print(render(summarize(args.data_root, args.date)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
