"""ntropy_backfill on a real Airflow: mapped, deferred submit-and-wait per day, results per day, totals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from airflow_stack import AirflowStack, EmulatorProcess

from ntropy_provider import sample_data
from ntropy_provider.api.transaction_input import validate_transaction

pytestmark = pytest.mark.stack

BACKFILL = "ntropy_backfill"
FIRST_DAY = dt.date(2023, 6, 1)
DAYS = 4
ROWS = 150
SEED = 21


def test_backfill_of_a_date_range_succeeds_with_one_batch_per_day(
    airflow_stack: AirflowStack, stack_emulator: EmulatorProcess, stack_data_root: Path
):
    landing = stack_data_root / "backfill_landing"
    output = stack_data_root / "backfill_enriched"
    last_day = FIRST_DAY + dt.timedelta(days=DAYS - 1)
    sample_data.write_landing(landing, FIRST_DAY, last_day, rows_per_day=ROWS, seed=SEED)
    airflow_stack.wait_for_dag(BACKFILL)
    airflow_stack.set_paused(BACKFILL, False)
    before = stack_emulator.stats()
    try:
        run_id = airflow_stack.trigger(
            BACKFILL,
            None,  # the range is in conf; a run of a date range has no logical date of its own
            conf={
                "start_date": FIRST_DAY.isoformat(),
                "end_date": last_day.isoformat(),
                "landing_path": str(landing),
                "output_path": str(output),
            },
        )
        state = airflow_stack.wait_for_run(BACKFILL, run_id, timeout=300)
    finally:
        airflow_stack.set_paused(BACKFILL, True)

    assert state == "success", airflow_stack.describe(BACKFILL, run_id)
    tasks = airflow_stack.task_instances(BACKFILL, run_id)
    assert sorted(k for k in tasks if k.startswith("submit_and_wait[")) == [
        f"submit_and_wait[{i}]" for i in range(DAYS)
    ]
    after = stack_emulator.stats()
    valid = 0
    for offset in range(DAYS):
        day = FIRST_DAY + dt.timedelta(days=offset)
        rows = sample_data.transactions_for_date(day, ROWS, seed=SEED)
        day_valid = sum(1 for r in rows if not validate_transaction(r))
        valid += day_valid
        out = output / f"date={day}"
        written = sum(pq.read_metadata(out / name / "part-0.parquet").num_rows for name in ("ok", "errors"))
        assert written == day_valid
    assert after["batches_created"] - before["batches_created"] == DAYS
    assert after["transactions_submitted"] - before["transactions_submitted"] == valid
