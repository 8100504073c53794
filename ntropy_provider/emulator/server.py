"""Run the emulator in-process: a uvicorn server on a loopback port, in a background thread.

Tests and users' own code drive it through :class:`EmulatorServer`; every call that touches the state
runs on the server's event loop, so the state is never touched from two threads at once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import uvicorn

from ntropy_provider.emulator.app import create_asgi_app
from ntropy_provider.emulator.core import Emulator
from ntropy_provider.emulator.settings import DEFAULT_API_KEY, EmulatorSettings

T = TypeVar("T")


class EmulatorServer:
    """A running Ntropy API emulator on ``http://host:port``.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        with EmulatorServer(items_per_second=50_000) as emulator:
            sdk = SDK(emulator.api_key); sdk.base_url = emulator.url

    :param host: the interface to listen on (loopback by default).
    :param port: the port (0 picks a free one).
    :param api_keys: the accepted API keys (``["test-key"]`` by default).
    :param log_level: uvicorn's log level.
    :param settings: initial settings, any field of :class:`EmulatorSettings`
        (``items_per_second``, ``seed``, ``rate_limit``, ``fail_rate``, ...); :meth:`reset` returns to them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: list[str] | None = None,
        log_level: str = "warning",
        **settings: Any,
    ) -> None:
        initial = EmulatorSettings().updated({**settings, "api_keys": list(api_keys or [DEFAULT_API_KEY])})
        self.host = host
        self.port = port
        self.emulator = Emulator(initial)
        self.app = create_asgi_app(self.emulator)
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ---------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:45321`` (give it to the SDK as ``base_url``)."""
        # An IPv6 literal needs brackets in a URL, else its colons read as the port's.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        """The first accepted API key (``test-key`` by default)."""
        return self.emulator.settings.api_keys[0]

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        """Start serving; returns once the server answers.

        :param timeout: seconds to wait for the server to be up.
        :raises RuntimeError: when it does not come up in time.
        """
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted sockets: without it, the headers-then-body writes meet the client's
        # delayed ACK and every keep-alive request waits ~40 ms (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level=self._log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, args=(sock,), name="ntropy-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"The Ntropy emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def _run(self, sock: socket.socket) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            assert self._server is not None
            await self._server.serve(sockets=[sock])

        try:
            asyncio.run(serve())
        finally:
            sock.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the server thread to end.

        :param timeout: seconds to wait for the thread.
        """
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None
        self._server = None
        self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------------------------------------
    def _call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on the server's loop (or directly when the server is not running)."""
        if self._loop is None:
            return function()

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change settings while the server runs (e.g. ``configure(fail_rate=0.5, rate_limit=5)``).

        :param settings: any field of :class:`EmulatorSettings`.
        :raises ValueError: naming an unknown setting or a bad value.
        :return: the settings now in force.
        """
        return self._call(lambda: self.emulator.configure(settings))

    def settings(self) -> dict[str, Any]:
        """The settings now in force."""
        return self._call(self.emulator.settings.to_dict)

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests`` per ``"METHOD /route/{template}"``, ``batches_created``, faults, ..."""
        return self._call(self.emulator.stats.to_dict)

    def reset(self) -> None:
        """Forget all batches, holders, webhooks and counters, and return to the initial settings."""
        self._call(self.emulator.reset)
