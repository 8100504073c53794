"""A local Ntropy API v3 server for tests, demos and users' own offline tests (like moto for AWS).

Start it with ``ntropy-emulator`` (or ``python -m ntropy_provider.emulator``), in-process with
:class:`~ntropy_provider.emulator.server.EmulatorServer`, or through the pytest fixtures of
``ntropy_provider.emulator.pytest_plugin`` (opt in with ``pytest_plugins = [...]`` in a conftest.py).
The official ``ntropy-sdk`` works against it unchanged. It serves the contract of ``docs/ntropy-api.md``,
the API's documented per-key limits included. A test tool: the provider's runtime never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ntropy_provider.emulator.server import EmulatorServer
    from ntropy_provider.emulator.settings import EmulatorSettings

__all__ = ["EmulatorServer", "EmulatorSettings"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (e.g. by the pytest plugin) does not import FastAPI or uvicorn.
    if name == "EmulatorServer":
        from ntropy_provider.emulator.server import EmulatorServer

        return EmulatorServer
    if name == "EmulatorSettings":
        from ntropy_provider.emulator.settings import EmulatorSettings

        return EmulatorSettings
    raise AttributeError(name)
