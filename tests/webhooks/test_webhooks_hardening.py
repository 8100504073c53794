"""The receiver against the probes of an attacker and of a buggy sender: payloads that are not the
documented Batch, slow and oversized requests on a real uvicorn server on loopback, reused event ids,
and a seeded fuzz of the payload. Every case: never a 5xx, never a recorded event that fails validation."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest

from ntropy_provider.api.models import MAX_BATCH_ID_LENGTH, Batch, WebhookEvent, check_batch_id
from ntropy_provider.api.wire import WEBHOOK_EVENT_BATCH_COMPLETED, WEBHOOK_EVENT_BATCH_ERROR
from ntropy_provider.webhooks.log_text import log_safe
from ntropy_provider.webhooks.server_limits import (
    HeaderDeadlineH11Protocol,
    HeaderLimitsHttpToolsProtocol,
    ServerLimits,
)

#: Bounds every socket wait in this module: a limit that does not hold fails the test, never hangs it.
SOCKET_TIMEOUT_SECONDS = 15.0


def post(receiver, body: Any, *, token: str | None = None) -> httpx.Response:
    # The standard library, since orjson refuses to write 300 levels (the receiver's parser reads them).
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **receiver.headers(token)}
    return httpx.post(receiver.webhook_url, content=content, headers=headers, timeout=10)


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def _set(path: str, value: Any):
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = body
        for parent in parents:
            target = target[parent]
        target[leaf] = value

    return mutate


def _drop(path: str):
    def mutate(body: dict[str, Any]) -> None:
        *parents, leaf = path.split(".")
        target = body
        for parent in parents:
            target = target[parent]
        target.pop(leaf)

    return mutate


BAD_PAYLOADS = [
    # 1. datetimes that are not strings were a 500
    *(
        pytest.param(_set("data.created_at", value), "data.created_at", id=f"created_at-{name}")
        for name, value in [("number", 1700000000), ("null", None), ("list", []), ("object", {})]
    ),
    pytest.param(_set("data.updated_at", "yesterday"), "data.updated_at", id="updated_at-not-iso"),
    pytest.param(_set("data.updated_at", "2024-01-01" + "0" * 100), "data.updated_at", id="updated_at-long"),
    # 2. operation and priority were not checked: nested arrays broke Airflow's own API
    pytest.param(_set("data.operation", _nested(300)), "data.operation", id="operation-nested-300"),
    pytest.param(_set("data.operation", "GET /v3/anything"), "data.operation", id="operation-unknown"),
    pytest.param(_drop("data.operation"), "data.operation", id="operation-missing"),
    pytest.param(_set("data.priority", {"a": _nested(50)}), "data.priority", id="priority-object"),
    pytest.param(_set("data.priority", "urgent"), "data.priority", id="priority-unknown"),
    # 3. ids that are not batch ids
    *(
        pytest.param(_set("data.id", value), "data.id", id=f"id-{name}")
        for name, value in [
            ("empty", ""),
            ("null", None),
            ("true", True),
            ("number", 7),
            ("object", {"a": 1}),
            ("traversal", "../../../../tmp/x"),
            ("slash", "a/b"),
            ("backslash", "a\\b"),
            ("dot", "."),
            ("dots", ".."),
            ("equals", "batch_id=x"),
            ("space", "a b"),
            ("c1-control", "a\x85b"),
            ("line-separator", "a\u2028b"),
            ("too-long", "a" * (MAX_BATCH_ID_LENGTH + 1)),
        ]
    ),
    # 4. inconsistent or coerced values
    pytest.param(_set("data.status", "processing"), "data.status", id="status-processing"),
    pytest.param(_set("data.status", "error"), "data.status", id="status-contradicts-event-type"),
    pytest.param(_set("data.status", ["completed"]), "data.status", id="status-list"),
    pytest.param(_set("data.total", -1), "data.total", id="total-negative"),
    pytest.param(_set("data.total", True), "data.total", id="total-bool"),
    pytest.param(_set("data.total", 3.0), "data.total", id="total-float"),
    pytest.param(_set("data.progress", "3"), "data.progress", id="progress-string"),
    pytest.param(_set("data.progress", 4), "data.progress", id="progress-above-total"),
    # ids and types that would reach a log line raw
    pytest.param(_set("event_id", "e\u2028forged line"), "event_id", id="event-id-line-separator"),
    pytest.param(_set("event_type", "batches.completed\x85"), "event_type", id="event-type-c1"),
    pytest.param(_set("event_type", "x" * 500), "event_type", id="event-type-long"),
]


class TestPayloadIsTheDocumentedBatch:
    @pytest.mark.parametrize(("mutate", "field"), BAD_PAYLOADS)
    def test_refused_with_422_naming_the_field_and_never_recorded(self, receiver, kit, mutate, field):
        body = kit.batch_event()
        mutate(body)
        response = post(receiver, body)
        assert response.status_code == 422, response.text
        assert response.json()["detail"].startswith(field + ":"), response.text
        assert kit.asset_events(receiver.conn_id) == []

    @pytest.mark.parametrize("depth", [990, 5000])
    def test_deeply_nested_operation_is_a_4xx(self, receiver, kit, depth):
        deep = b"[" * depth + b"]" * depth
        body = orjson.dumps(kit.batch_event()).replace(b'"POST /v3/transactions"', deep)
        response = post(receiver, body)
        assert response.status_code in (400, 422), response.text
        assert kit.asset_events(receiver.conn_id) == []

    def test_deeply_nested_unknown_key_is_dropped_not_recorded(self, receiver, kit):
        body = orjson.dumps(kit.batch_event())[:-2] + b',"x":' + b"[" * 990 + b"]" * 990 + b"}}"
        assert post(receiver, body).json()["status"] == "recorded"
        [extra] = kit.asset_events(receiver.conn_id)
        assert "x" not in extra["batch"]

    @pytest.mark.parametrize(
        "batch_id",
        [str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex, "batch_2024-01-01.v2"],
    )
    def test_real_ids_are_never_refused(self, batch_id):
        assert check_batch_id(batch_id) == batch_id

    def test_only_the_validated_batch_is_recorded(self, receiver, kit):
        body = kit.batch_event()
        body["data"]["future_field"] = _nested(100)
        body["data"].pop("priority")  # documented default
        body["surplus"] = {"x": 1}
        assert post(receiver, body).json()["status"] == "recorded"
        [extra] = kit.asset_events(receiver.conn_id)
        assert set(extra["batch"]) == {
            "id",
            "operation",
            "status",
            "priority",
            "created_at",
            "updated_at",
            "progress",
            "total",
        }
        assert extra["batch"]["priority"] == "default"
        assert Batch.from_dict_strict(extra["batch"]).to_dict() == extra["batch"]

    def test_error_event_with_its_status_and_partial_progress_is_recorded(self, receiver, kit):
        body = kit.batch_event(WEBHOOK_EVENT_BATCH_ERROR, total=10)
        body["data"]["progress"] = 4
        assert post(receiver, body).json()["status"] == "recorded"


class TestDuplicates:
    def test_reused_event_id_for_another_batch_is_a_duplicate_and_a_warning_naming_both(
        self, receiver, kit, caplog
    ):
        first = kit.batch_event()
        second = kit.batch_event(WEBHOOK_EVENT_BATCH_ERROR, event_id=first["event_id"])
        assert post(receiver, first).json()["status"] == "recorded"
        with caplog.at_level(logging.WARNING, logger="ntropy_provider.webhooks.recorder"):
            assert post(receiver, second).json()["status"] == "duplicate"
        [warning] = [r for r in caplog.records if "reused" in r.getMessage()]
        message = warning.getMessage()
        assert first["data"]["id"] in message and second["data"]["id"] in message
        assert WEBHOOK_EVENT_BATCH_ERROR in message
        assert [e["event_id"] for e in kit.asset_events(receiver.conn_id)] == [first["event_id"]]

    def test_plain_replay_logs_no_warning(self, receiver, kit, caplog):
        body = kit.batch_event()
        post(receiver, body)
        with caplog.at_level(logging.WARNING, logger="ntropy_provider.webhooks.recorder"):
            assert post(receiver, body).json()["status"] == "duplicate"
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    def test_same_batch_and_type_under_a_new_event_id_is_a_duplicate(self, receiver, kit):
        first = kit.batch_event()
        again = kit.batch_event(batch_id=first["data"]["id"])
        assert post(receiver, first).json()["status"] == "recorded"
        assert post(receiver, again).json()["status"] == "duplicate"
        assert len(kit.asset_events(receiver.conn_id)) == 1


class TestLogLines:
    @pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029"])
    def test_control_and_line_separator_characters_are_escaped(self, char):
        rendered = log_safe(f"a{char}b")
        assert rendered.isprintable() and rendered.startswith("a") and rendered.endswith("b")

    def test_long_values_are_cut(self):
        assert len(log_safe("x" * 10_000)) < 300


# --------------------------------------------------------------------------------------------------
# Transport: a real uvicorn server on loopback, configured like the stand-alone receiver
# --------------------------------------------------------------------------------------------------
LIMITS = ServerLimits(max_header_bytes=16 * 1024, header_timeout_seconds=0.5, keep_alive_seconds=1)


@pytest.fixture(params=[HeaderLimitsHttpToolsProtocol, HeaderDeadlineH11Protocol], ids=["httptools", "h11"])
def protocol(request):
    """Each of uvicorn's HTTP implementations, with the stand-alone server's limits."""
    return request.param


@pytest.fixture
def limited(receiver_factory, protocol):
    """A receiver served with the stand-alone server's limits (short ones) and a 1 s body time limit."""
    return receiver_factory(limits=LIMITS, settings={"body_timeout_seconds": 1.0}, server={"http": protocol})


def _connect(receiver) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(receiver.url.rsplit(":", 1)[1])))
    sock.settimeout(SOCKET_TIMEOUT_SECONDS)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket timeout)."""
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _request_head(receiver, length: int) -> bytes:
    path = receiver.webhook_url.split(receiver.url, 1)[1]
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Ntropy-Token: {receiver.token}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


class TestTransportLimits:
    def test_connect_only_socket_is_closed(self, limited):
        with _connect(limited) as sock:
            assert _read_until_closed(sock) == b""  # closed by the server, not by our timeout

    def test_trickled_headers_are_cut_off(self, limited):
        with _connect(limited) as sock:
            sock.sendall(b"POST /ntropy/webhooks HTTP/1.1\r\nHost: x\r\n")
            deadline = time.monotonic() + SOCKET_TIMEOUT_SECONDS
            closed = False
            while not closed and time.monotonic() < deadline:
                try:
                    sock.sendall(b"X")  # one byte of a header line, never finished
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                sock.settimeout(0.1)
                with contextlib.suppress(TimeoutError):
                    closed = sock.recv(1) == b""
            assert closed

    def test_oversized_header_is_refused_before_it_is_buffered(self, receiver_factory, protocol, kit):
        # A header deadline far away: only the size limit can stop this sender.
        limits = ServerLimits(max_header_bytes=16 * 1024, header_timeout_seconds=SOCKET_TIMEOUT_SECONDS * 4)
        limited = receiver_factory(limits=limits, server={"http": protocol})
        with _connect(limited) as sock:
            sock.sendall(b"POST /ntropy/webhooks HTTP/1.1\r\nHost: x\r\nX-Pad: ")
            sent = 0
            try:
                while sent < 8 * 1024 * 1024:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError):
                pass
            answer = _read_until_closed(sock)
        # Cut off long before 8 MiB (a reset may swallow the 400 itself), never a 5xx.
        assert sent < 8 * 1024 * 1024 or answer.startswith(b"HTTP/1.1 400"), (sent, answer[:100])
        assert not answer.startswith(b"HTTP/1.1 5")
        assert kit.asset_events(limited.conn_id) == []

    def test_idle_kept_alive_connection_is_closed(self, limited):
        with _connect(limited) as sock:
            sock.sendall(b"GET /ntropy/health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_until_closed(sock)
        assert answer.startswith(b"HTTP/1.1 200")

    def test_trickled_body_is_answered_408_and_closed(self, limited, kit):
        body = orjson.dumps(kit.batch_event())
        with _connect(limited) as sock:
            sock.sendall(_request_head(limited, len(body)) + body[:10])
            answer = _read_until_closed(sock)  # we never send the rest
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert kit.asset_events(limited.conn_id) == []

    def test_client_disconnect_mid_body_is_not_a_500(self, limited, kit, caplog):
        body = orjson.dumps(kit.batch_event())
        with caplog.at_level(logging.INFO):
            with _connect(limited) as sock:
                sock.sendall(_request_head(limited, len(body)) + body[:10])
            kit.wait_for(
                lambda: any("disconnected" in r.getMessage() for r in caplog.records),
                SOCKET_TIMEOUT_SECONDS,
                "the receiver to notice the disconnect",
            )
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert post(limited, kit.batch_event()).json()["status"] == "recorded"  # still serving


# --------------------------------------------------------------------------------------------------
# Fuzz
# --------------------------------------------------------------------------------------------------
FUZZ_SEED = 20241202
FUZZ_COUNT = 300
_SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    3,
    2**40,
    1.5,
    "",
    ".",
    "..",
    "a/b",
    "completed",
    "error",
    "processing",
    "default",
    "low",
    "POST /v3/transactions",
    "2024-01-01T00:00:00Z",
    "\u2028",
    "\x00",
    str(uuid.UUID(int=1)),
]


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth > 3 or kind < 0.6:
        return rng.choice(_SCALARS)
    if kind < 0.8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["id", "x", "status"]): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))
    }


def _fuzzed_body(rng: random.Random, kit) -> Any:
    body = kit.batch_event(rng.choice([WEBHOOK_EVENT_BATCH_COMPLETED, WEBHOOK_EVENT_BATCH_ERROR]))
    for _ in range(rng.randint(0, 3)):
        target = body if rng.random() < 0.3 else body.get("data")
        if not isinstance(target, dict):
            break
        key = rng.choice([*target, "extra"])
        if rng.random() < 0.15:
            target.pop(key, None)
        else:
            target[key] = _random_value(rng)
    return body if rng.random() > 0.05 else _random_value(rng)


def test_fuzzed_payloads_never_5xx_and_never_record_an_invalid_event(receiver, kit):
    rng = random.Random(FUZZ_SEED)
    statuses: dict[int, int] = {}
    with httpx.Client(
        timeout=10, headers={**receiver.headers(), "Content-Type": "application/json"}
    ) as client:
        for _ in range(FUZZ_COUNT):
            answer = client.post(receiver.webhook_url, content=orjson.dumps(_fuzzed_body(rng, kit)))
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
            assert answer.status_code < 500, answer.text
    assert statuses.get(422) and statuses.get(200), statuses  # the fuzz reached both sides
    for extra in kit.asset_events(receiver.conn_id):
        event = WebhookEvent.from_dict(
            {"event_id": extra["event_id"], "event_type": extra["event_type"], "data": extra["batch"]}
        )
        assert event.batch is not None and event.batch.id == extra["batch_id"]
