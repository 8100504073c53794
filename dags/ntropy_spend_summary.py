"""Spend summary: runs when the nightly enrichment publishes enriched rows (data-aware scheduling)."""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any

from airflow.sdk import DAG, Asset, ObjectStoragePath, Param, task

DATA_ROOT = os.environ.get("NTROPY_DATA_ROOT", "/tmp/ntropy")
#: The asset that ntropy_nightly_enrichment's ``publish`` task emits (same name and URI).
ENRICHED_OK = Asset(name="ntropy_enriched_ok", uri="ntropy://enriched/ok", group="ntropy")
#: Rows in the merchant report.
TOP_MERCHANTS = 25
#: Each report's grouping: enriched dataset column -> report column.
BY_CATEGORY = {"category_general": "category", "input_currency": "currency"}
BY_MERCHANT = {"counterparty_name": "merchant", "category_general": "category", "input_currency": "currency"}
log = logging.getLogger(__name__)

DOC_MD = """
### Spend summary on top of enriched transactions

Shows how the provider composes into pipelines you already have: this DAG has no schedule of its own,
it runs whenever `ntropy_nightly_enrichment` emits the asset `ntropy_enriched_ok` (data-aware
scheduling). Each asset event's `extra` carries the day (`date`) and the `ok` dataset (`path`); the DAG
sums the *outgoing* spend of that day by category and by merchant, per currency, into two small CSVs:

```
<report_path>/date=YYYY-MM-DD/spend_by_category.csv   category, currency, transactions, spend
<report_path>/date=YYYY-MM-DD/spend_by_merchant.csv   merchant, category, currency, transactions, spend
```

It is plain pandas (the provider's `[pandas]` extra): `read_parquet` of only the columns it needs from
`ok/part-0.parquet` (`category_general`, `counterparty_name`, Ntropy's, and `input_amount`,
`input_entry_type`, `input_currency`, your columns carried through by
`ResultsToParquetOperator(input_path=...)`), then a `groupby` per report.

**To use it on your data**: set `report_path` (any `ObjectStoragePath`), or replace `summarize` with
your own aggregation / a load into your warehouse. To run it by hand for a day, trigger it with
`{"ok_path": "<output_path>/date=YYYY-MM-DD/ok", "date": "YYYY-MM-DD"}`.
Nothing here talks to the Ntropy API, so it works the same with the emulator and the real API.
"""


def _read_ok(ok_path: str) -> Any:
    """The day's outgoing transactions, with the columns the report needs (a pandas DataFrame)."""
    import pandas as pd  # in the task, not at parse time: the DAG processor never loads it

    columns = ["category_general", "counterparty_name", "input_amount", "input_entry_type", "input_currency"]
    with (ObjectStoragePath(ok_path) / "part-0.parquet").open("rb") as handle:
        ok = pd.read_parquet(handle, columns=columns)
    # CSV inputs carry their columns as strings; Parquet inputs keep their types.
    ok["input_amount"] = pd.to_numeric(ok["input_amount"])
    outgoing = ok[ok["input_entry_type"] == "outgoing"]
    return outgoing.fillna({"category_general": "uncategorized", "counterparty_name": "(unknown)"})


def _spend_by(spend: Any, keys: dict[str, str]) -> Any:
    """Transactions and total spend per group, largest spend first.

    :param spend: the outgoing transactions.
    :param keys: the columns to group by, each with its name in the report.
    """
    grouped = (
        spend.groupby(list(keys), dropna=False)["input_amount"]
        .agg(transactions="size", spend="sum")
        .reset_index()
        .rename(columns=keys)
    )
    grouped["spend"] = grouped["spend"].round(2)
    first = next(iter(keys.values()))
    return grouped.sort_values(["spend", first], ascending=[False, True], ignore_index=True)


def _write_csv(frame: Any, path: ObjectStoragePath) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:
        frame.to_csv(handle, index=False)
    return str(path)


with DAG(
    dag_id="ntropy_spend_summary",
    description="Spend by category and merchant, each time enriched transactions are published",
    schedule=[ENRICHED_OK],
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args={"retries": 1},
    params={
        "report_path": Param(f"{DATA_ROOT}/reports", type="string", description="Folder of the reports"),
        "ok_path": Param("", type="string", description="Manual runs: the ok dataset to summarize"),
        "date": Param("", type="string", description="Manual runs: the day of ok_path (YYYY-MM-DD)"),
    },
    doc_md=DOC_MD,
    tags=["ntropy", "example"],
) as dag:

    @task
    def datasets_to_summarize(
        params: dict[str, Any], triggering_asset_events: Any = None
    ) -> list[dict[str, str]]:
        """The (date, ok path) pairs of the asset events that started this run, or of the params."""
        if params.get("ok_path"):
            return [{"date": params.get("date") or "manual", "path": params["ok_path"]}]
        events = list((triggering_asset_events or {}).get(ENRICHED_OK, []))
        found = {e.extra["date"]: e.extra["path"] for e in events if e.extra.get("path")}
        if not found:
            raise ValueError("no ntropy_enriched_ok event with a path started this run; pass ok_path")
        return [{"date": day, "path": path} for day, path in sorted(found.items())]

    @task
    def summarize(datasets: list[dict[str, str]], params: dict[str, Any]) -> list[dict[str, Any]]:
        """Sum outgoing spend by category and by merchant, per currency, one report folder per day."""
        reports = []
        for dataset in datasets:
            spend = _read_ok(dataset["path"])
            by_category = _spend_by(spend, BY_CATEGORY)
            by_merchant = _spend_by(spend, BY_MERCHANT).head(TOP_MERCHANTS)
            folder = ObjectStoragePath(params["report_path"]) / f"date={dataset['date']}"
            report = {
                "date": dataset["date"],
                "by_category": _write_csv(by_category, folder / "spend_by_category.csv"),
                "by_merchant": _write_csv(by_merchant, folder / "spend_by_merchant.csv"),
                "transactions": len(spend),
            }
            log.info("Spend report for %s: %s", dataset["date"], report)
            reports.append(report)
        return reports

    summarize(datasets_to_summarize())
