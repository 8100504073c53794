"""Fixtures for the real-Airflow stack tests (``@pytest.mark.stack``).

One stack per test session, shared by every stack test: the Ntropy emulator as a separate process, then
``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` on LocalExecutor, on a fresh
PostgreSQL database when 127.0.0.1:5432 answers, otherwise SQLite. The DAGs folder is the repo's ``dags/``;
the ``ntropy_default`` connection points at the emulator; ``NTROPY_DATA_ROOT`` is a temp directory.
Everything started here is stopped here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import stack_config
from airflow_stack import AirflowStack, Database, EmulatorProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_API_KEY = "stack-test-key"
#: The stack's key refills credits 20x faster than the documented 1,000/s, on both sides alike (the
#: emulator enforces it, the connection's extra paces the client to it): a 100,000-row day needs seconds
#: of credits instead of minutes, and the limits still bind.
STACK_CREDIT_REFILL_PER_SECOND = 20_000
STACK_CONNECTION_EXTRA = {
    "backoff_base": 0.2,
    "backoff_max": 2.0,
    "max_attempts": 12,
    "credit_refill_per_second": STACK_CREDIT_REFILL_PER_SECOND,
}

#: Lines for the terminal summary: which database was used, how long the stack took to start.
_SUMMARY: list[str] = []


@pytest.fixture(scope="session")
def stack_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stack's directory: ``airflow_home/``, ``logs/`` (one file per process) and ``data/``."""
    return tmp_path_factory.mktemp("airflow-stack")


@pytest.fixture(scope="session")
def stack_emulator(stack_workdir: Path) -> Iterator[EmulatorProcess]:
    """The Ntropy emulator in its own process, on loopback (``.configure()``, ``.stats()``, ``.reset()``)."""
    refill = ("--credit-refill-per-second", str(STACK_CREDIT_REFILL_PER_SECOND))
    emulator = EmulatorProcess(stack_workdir, STACK_API_KEY, (*stack_config.EMULATOR_ARGS, *refill))
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def stack_data_root(stack_workdir: Path) -> Path:
    """``NTROPY_DATA_ROOT`` of the stack: the DAGs' default landing and output folders live under it."""
    root = stack_workdir / "data"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="session")
def airflow_stack(
    stack_workdir: Path, stack_emulator: EmulatorProcess, stack_data_root: Path
) -> Iterator[AirflowStack]:
    """A running Airflow: four components as separate processes, every one reported healthy."""
    database = Database.create(stack_workdir)
    stack = AirflowStack(
        stack_workdir,
        REPO_ROOT / "dags",
        database,
        # A short retry backoff: the fault runs answer half the requests with 429/503.
        connection_json=stack_emulator.connection_json(STACK_CONNECTION_EXTRA),
        data_root=stack_data_root,
    )
    began = time.monotonic()
    try:
        stack.start()
        _SUMMARY.append(
            f"airflow stack: database={database.kind}"
            + (f" ({database.why})" if database.why else "")
            + f", healthy after {stack.startup_seconds:.1f}s "
            f"(db migrate included), logs in {stack_workdir / 'logs'}"
        )
        yield stack
    finally:
        stack.stop()
        _SUMMARY.append(f"airflow stack: up for {time.monotonic() - began:.1f}s in total (teardown included)")


@pytest.fixture(scope="session")
def stack_summary() -> list[str]:
    """Lines that stack tests add to the terminal summary (e.g. which worker ran which task)."""
    return _SUMMARY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say which database the stack used and how long it took to start."""
    for line in _SUMMARY:
        terminalreporter.write_line(line)
