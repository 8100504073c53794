"""A worker process killed (SIGKILL) while the API holds its POST answer: the next try re-attaches.

The emulator stores the batch and only then delays its answer (``create_batch_delay_ms``), so the
batch exists on the server while the worker has not heard of it: exactly the window that the intent
records exist for. The task state store is a JSON file here, so that it outlives the killed process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from ntropy_provider.operators.submit_batch import SubmitBatchOperator

WORKER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    sys.path.insert(0, {tests_dir!r})
    from test_submit_killed_worker import FileStateStore, ROWS_KWARGS, make_operator

    make_operator().execute({{"task_state_store": FileStateStore(Path({state_path!r}))}})
    """
)

ROWS_KWARGS = {"count": 45}


class FileStateStore:
    """The task state store's get/set, kept in a JSON file (written whole on every set)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._load().get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        values = self._load()
        values[key] = value
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(values))
        temp.replace(self.path)


def make_operator() -> SubmitBatchOperator:
    rows = [
        {
            "id": f"k{i}",
            "description": "SHELL OIL",
            "date": "2024-01-02",
            "amount": 40.0,
            "entry_type": "outgoing",
            "currency": "USD",
        }
        for i in range(ROWS_KWARGS["count"])
    ]
    return SubmitBatchOperator(
        task_id="submit",
        items=rows,
        chunk_size=20,
        max_concurrency=1,
        poll_interval=0.05,
        max_poll_interval=0.2,
    )


def _wait_for(condition: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_worker_killed_during_post_answer_creates_no_duplicate(
    ntropy_connection: str, ntropy_emulator, tmp_path: Path
) -> None:
    state_path = tmp_path / "state.json"
    ntropy_emulator.configure(create_batch_delay_ms=60_000)  # answers never come in time
    script = WORKER.format(tests_dir=str(Path(__file__).parent), state_path=str(state_path))
    worker = subprocess.Popen([sys.executable, "-c", script])
    try:
        # The first chunk's batch is stored on the server; the worker is still waiting for the answer.
        _wait_for(lambda: ntropy_emulator.stats()["batches_created"] >= 1 or worker.poll() is not None)
        assert worker.poll() is None, "the worker ended before it could be killed"
        worker.kill()
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)
    stored = json.loads(state_path.read_text())
    assert stored["ntropy_submit_chunk_0"]["intent_at"] and not stored["ntropy_submit_chunk_0"]["batch_id"]
    assert ntropy_emulator.stats()["batches_created"] == 1

    ntropy_emulator.configure(create_batch_delay_ms=0)
    result = make_operator().execute({"task_state_store": FileStateStore(state_path)})

    stats = ntropy_emulator.stats()
    assert stats["batches_created"] == 3, "the batch created for the killed worker must be re-attached"
    assert stats["transactions_submitted"] == 45
    assert len(set(result["batch_ids"])) == 3
