"""The stack harness stops everything it started, also processes that left its process group.

Not marked ``stack``: it starts one small Python process tree, no Airflow.
"""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import psutil
from airflow_stack import ManagedProcess, _clean_environ, wait_until

# A parent that starts a child in a session (and process group) of its own, as Airflow's supervisor
# does for every task runner, and writes the child's pid.
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    open(sys.argv[1], "w").write(str(child.pid))
    time.sleep(600)
    """
)


def test_kill_also_stops_descendants_in_another_process_group(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    process = ManagedProcess(
        "tree", [sys.executable, "-c", PARENT, str(pid_file)], _clean_environ(), tmp_path / "tree.log"
    )
    process.start()
    child_pid = None
    try:
        child_pid = wait_until(
            lambda: pid_file.exists() and pid_file.read_text() and int(pid_file.read_text()),
            timeout=30,
            interval=0.05,
            what="the child to start",
        )
        child = psutil.Process(child_pid)
        assert child.status() != psutil.STATUS_ZOMBIE

        process.kill()

        assert not process.alive()
        gone, _ = psutil.wait_procs([child], timeout=10)
        assert gone, f"child {child_pid} survived the harness's kill"
    finally:
        process.kill()
        if child_pid is not None and psutil.pid_exists(child_pid):
            psutil.Process(child_pid).kill()


def test_kill_escalates_to_sigkill_for_a_process_that_ignores_sigterm(tmp_path: Path):
    ignores = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready'); time.sleep(600)"
    )
    process = ManagedProcess(
        "stubborn", [sys.executable, "-c", ignores], _clean_environ(), tmp_path / "s.log"
    )
    process.start()
    try:
        wait_until(
            lambda: "ready" in process.log_tail(), timeout=30, interval=0.05, what="the process to start"
        )

        process.kill(signal.SIGTERM, timeout=1)

        assert not process.alive()
        assert process.popen is not None and process.popen.returncode == -signal.SIGKILL
    finally:
        process.kill()
