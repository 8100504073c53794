"""Pytest fixtures for testing against the Ntropy API emulator.

Opt in from your ``conftest.py`` (it is not loaded automatically wherever the provider is installed)::

    pytest_plugins = ["ntropy_provider.emulator.pytest_plugin"]

or for one run: ``pytest -p ntropy_provider.emulator.pytest_plugin``.

- ``ntropy_emulator_server`` (session): one in-process emulator on a free loopback port.
- ``ntropy_emulator``: the same server, reset (state, counters and settings) before and after each test;
  ``@pytest.mark.ntropy_emulator(items_per_second=5, fail_rate=0.1)`` sets a test's initial settings.
- ``ntropy_connection``: points Airflow's ``ntropy_default`` connection at the emulator.

Imports of the emulator are deferred to the fixtures, so loading the plugin costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ntropy_provider.hooks.connection import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from ntropy_provider.emulator.server import EmulatorServer

#: Items per second of the fixture's emulator: fast, so that tests stay fast (a full batch in ~1 s).
FIXTURE_ITEMS_PER_SECOND = 20_000.0
#: The connection id that ``ntropy_connection`` configures.
NTROPY_CONN_ID = DEFAULT_CONN_ID


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``ntropy_emulator`` marker.

    :param config: pytest's configuration.
    """
    config.addinivalue_line(
        "markers", "ntropy_emulator(**settings): initial emulator settings for the ntropy_emulator fixture"
    )


@pytest.fixture(scope="session")
def ntropy_emulator_server() -> Iterator[EmulatorServer]:
    """One running emulator for the whole test session (loopback, free port); stopped at the end."""
    from ntropy_provider.emulator.server import EmulatorServer

    server = EmulatorServer(items_per_second=FIXTURE_ITEMS_PER_SECOND, webhook_retry_initial_seconds=0.2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ntropy_emulator(
    ntropy_emulator_server: EmulatorServer, request: pytest.FixtureRequest
) -> Iterator[EmulatorServer]:
    """A running emulator with fresh state and default settings for this test.

    ``.url``, ``.api_key``, ``.configure(**settings)``, ``.settings()``, ``.stats()``, ``.reset()``.
    Settings given by an ``ntropy_emulator`` marker are applied before the test starts.
    """
    ntropy_emulator_server.reset()
    marker = request.node.get_closest_marker("ntropy_emulator")
    if marker is not None:
        ntropy_emulator_server.configure(**marker.kwargs)
    yield ntropy_emulator_server
    ntropy_emulator_server.reset()


@pytest.fixture
def ntropy_connection(ntropy_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Set ``AIRFLOW_CONN_NTROPY_DEFAULT`` to the emulator; returns the conn id ``"ntropy_default"``."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{NTROPY_CONN_ID.upper()}",
        json.dumps({"conn_type": "ntropy", "host": ntropy_emulator.url, "password": ntropy_emulator.api_key}),
    )
    return NTROPY_CONN_ID
