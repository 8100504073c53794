"""Test-only: run ResultsToParquetOperator in this process and SIGKILL it at a chosen point of the writing.

Usage: ``python results_crash_script.py '<batch ids as JSON>' <output_path>``, with
``NTROPY_TEST_KILL_AT_WRITE=N``: the process kills itself (SIGKILL, no cleanup of any kind) when the writer
is asked for its N+1-th write, i.e. after N parts (ok and errors of N/2 batches) went to the temporary
files. Row groups are one row, so those rows are really on disk when the kill comes. The kill point is
deterministic: it depends on the count of writes, never on timing.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from airflow.sdk.execution_time.context import OutletEventAccessors

from ntropy_provider.operators.results_to_parquet import ResultsToParquetOperator
from ntropy_provider.results import atomic_write

KILL_AT = int(os.environ["NTROPY_TEST_KILL_AT_WRITE"])
_writes = 0
_original_init = atomic_write.AtomicParquetWriter.__init__
_original_write = atomic_write.AtomicParquetWriter.write


def _init(self, final_path, schema, *, compression="zstd", row_group_rows=1):
    _original_init(self, final_path, schema, compression=compression, row_group_rows=1)


def _write(self, batch):
    global _writes
    _writes += 1
    if _writes > KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)
    _original_write(self, batch)


atomic_write.AtomicParquetWriter.__init__ = _init  # type: ignore[method-assign]
atomic_write.AtomicParquetWriter.write = _write  # type: ignore[method-assign]

if __name__ == "__main__":
    operator = ResultsToParquetOperator(
        task_id="crash", batch_ids=json.loads(sys.argv[1]), output_path=sys.argv[2]
    )
    operator.execute({"outlet_events": OutletEventAccessors()})  # type: ignore[arg-type]
    print("finished without being killed")
