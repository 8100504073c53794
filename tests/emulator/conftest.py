"""Helpers shared by the emulator's tests: sample transactions and a bounded wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def make_transaction(index: int = 0, **overrides: Any) -> dict[str, Any]:
    """A valid TransactionInput; ``overrides`` replace or add fields.

    :param index: makes the id unique.
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


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout`` seconds.

    :param condition: what to wait for.
    :param timeout: the bound on the wait.
    :param interval: pause between polls.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def tx_factory() -> Callable[..., dict[str, Any]]:
    """:func:`make_transaction` as a fixture."""
    return make_transaction


@pytest.fixture
def wait_until() -> Callable[..., Any]:
    """:func:`wait_for` as a fixture."""
    return wait_for


class WebhookReceiver:
    """A real HTTP receiver on loopback that records deliveries and fails the first ``fail_first``.

    :param fail_first: how many deliveries to answer 500 before answering 200.
    :param stall_first: how many deliveries to leave unanswered (until the receiver stops) before answering.
    """

    def __init__(self, fail_first: int = 0, stall_first: int = 0) -> None:
        import http.server
        import threading

        self.fail_first = fail_first
        self.stall_first = stall_first
        self._stop = threading.Event()
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                import json

                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
                    failing = len(receiver.received) <= receiver.fail_first
                    stalling = len(receiver.received) <= receiver.stall_first
                if stalling:  # a receiver that never answers: the sender's timeout must fire
                    receiver._stop.wait(30)
                    return
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where to deliver."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def bodies(self) -> list[dict[str, Any]]:
        """The delivered bodies, in arrival order."""
        with self._lock:
            return [body for _, body in self.received]


@pytest.fixture
def webhook_receiver() -> Any:
    """A running :class:`WebhookReceiver` that answers 200; stopped after the test."""
    with WebhookReceiver() as receiver:
        yield receiver
