"""Small helpers for tests that run against the emulator (this project's and users' own).

- :func:`make_transaction`: a valid TransactionInput to start from.
- :func:`wait_for`: poll a condition with a bound, instead of sleeping and hoping.
- :class:`WebhookReceiver`: a real HTTP server on loopback that records webhook deliveries.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")


def make_transaction(index: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid TransactionInput (a Starbucks purchase); ``overrides`` replace or add fields.

    :param index: makes the id unique (``tx-<index>``).
    :param overrides: fields to change.
    """
    tx: dict[str, Any] = {
        "id": f"tx-{index}",
        "description": "STARBUCKS STORE #1234",
        "date": "2024-03-30",
        "amount": 4.5,
        "entry_type": "outgoing",
        "currency": "USD",
        "account_holder_id": None,
        "location": None,
    }
    tx.update(overrides)
    return tx


def wait_for(condition: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    :param condition: what to wait for.
    :param timeout: the bound on the wait, in seconds.
    :param interval: the pause between polls.
    :raises AssertionError: when the condition is still false after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class WebhookReceiver:
    """A real HTTP receiver on loopback that records deliveries; use it as a context manager.

    :param fail_first: how many deliveries to answer 500 before answering 200.
    :param stall_first: how many deliveries to leave unanswered (until the receiver stops).
    """

    def __init__(self, fail_first: int = 0, stall_first: int = 0) -> None:
        self.fail_first = fail_first
        self.stall_first = stall_first
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                    count = len(receiver.received)
                if count <= receiver.stall_first:  # never answer: the sender's timeout must fire
                    receiver._stop.wait(30)
                    return
                self.send_response(500 if count <= receiver.fail_first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        return Handler

    @property
    def url(self) -> str:
        """Where to deliver (``http://127.0.0.1:<port>/hook``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> WebhookReceiver:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def bodies(self) -> list[dict[str, Any]]:
        """The delivered bodies, in arrival order."""
        with self._lock:
            return [body for _, body in self.received]
