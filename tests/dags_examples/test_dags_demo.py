"""The one-command demo runs end to end and stops the emulator it started.

Marked ``stack``: it runs real processes (the emulator, ``airflow db migrate``, ``airflow dags test``) for
about 20 seconds, so ``make test-fast`` leaves it out.
"""

from __future__ import annotations

import os
import re
import subprocess

import psutil
import pytest
from dags_examples_helpers import REPO_ROOT

pytestmark = pytest.mark.stack


def test_demo_enriches_a_day_prints_a_summary_and_stops_the_emulator(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NTROPY_"))}
    env.update(
        DEMO_SKIP_VENV="1",
        DEMO_AIRFLOW_HOME=str(tmp_path / "airflow_home"),
        DEMO_DATA_ROOT=str(tmp_path / "data"),
        DEMO_DATE="2024-03-05",
        DEMO_ROWS="150",
    )

    done = subprocess.run(
        ["bash", str(REPO_ROOT / "demo" / "run_demo.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    counts = {
        name: int(re.search(rf"{name}\s*: (\d+)", out).group(1))
        for name in ("enriched ok", "errored", "rejected")
    }
    assert sum(counts.values()) == 150 and counts["enriched ok"] > 0, out
    assert "top categories:" in out and "top merchants :" in out
    assert str(tmp_path / "data" / "enriched" / "date=2024-03-05" / "ok" / "part-0.parquet") in out
    emulator_pid = int(re.search(r"Local Ntropy emulator on \S+ \(pid (\d+)\)", out).group(1))
    assert (
        not psutil.pid_exists(emulator_pid) or psutil.Process(emulator_pid).status() == psutil.STATUS_ZOMBIE
    )
