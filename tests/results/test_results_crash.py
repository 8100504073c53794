"""A process killed in the middle of writing leaves nothing partial at the final paths; a rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from ntropy_provider.results.atomic_write import is_temporary_of
from ntropy_provider.results.datasets import DATA_FILE_NAME

SCRIPT = Path(__file__).with_name("results_crash_script.py")


def _run_killed(batch_ids: list[str], output: Path, kill_at_write: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NTROPY_TEST_KILL_AT_WRITE": str(kill_at_write)}
    return subprocess.run(
        [sys.executable, str(SCRIPT), json.dumps(batch_ids), str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _temporaries(directory: Path) -> list[Path]:
    return (
        [p for p in directory.iterdir() if is_temporary_of(p.name, DATA_FILE_NAME)]
        if directory.exists()
        else []
    )


def test_kill_midway_leaves_the_previous_output_or_nothing(sample_rows, results_env, tmp_path) -> None:
    from test_results_operator import _operator, _run  # same folder: reuse the in-process runner

    first = results_env.submit(sample_rows(60, seed=11), chunk_size=20)
    second = results_env.submit(sample_rows(60, seed=12), chunk_size=20)

    # 1. A fresh output path: the kill (after the first batch's ok and errors parts) leaves no final file.
    fresh = tmp_path / "fresh"
    killed = _run_killed(second, fresh, kill_at_write=2)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    for dataset in ("ok", "errors"):
        assert not (fresh / dataset / DATA_FILE_NAME).exists()
    leftovers = _temporaries(fresh / "ok")
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 4, (
        "the kill did not come in the middle of writing"
    )

    # 2. Over an earlier run's output: the kill leaves the earlier files exactly as they were.
    output = tmp_path / "out"
    _run(_operator(first, str(output), results_env.conn_id))
    before = {d: (output / d / DATA_FILE_NAME).read_bytes() for d in ("ok", "errors")}
    killed = _run_killed(second, output, kill_at_write=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert {d: (output / d / DATA_FILE_NAME).read_bytes() for d in ("ok", "errors")} == before
    assert _temporaries(output / "ok"), "the kill did not come in the middle of writing"

    # 3. The rerun completes, replaces the output with the second batches' rows and removes the leftovers.
    result, _ = _run(_operator(second, str(output), results_env.conn_id))
    assert result["ok_rows"] + result["error_rows"] == 60
    for dataset in ("ok", "errors"):
        assert sorted(p.name for p in (output / dataset).iterdir()) == [DATA_FILE_NAME]
        batch_ids = set(pq.read_table(output / dataset / DATA_FILE_NAME).column("batch_id").to_pylist())
        assert batch_ids <= set(second)
