"""Unit tests of the emulator's state with a fake clock: lazy progress, rate limiting, settings, CLI."""

from __future__ import annotations

import socket
import subprocess
import sys

import orjson
import pytest
import requests

from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.emulator.__main__ import build_parser
from ntropy_provider.emulator.core import Emulator, build_results_body
from ntropy_provider.emulator.limits import RateLimiter
from ntropy_provider.emulator.settings import EmulatorSettings
from ntropy_provider.emulator.testing import make_transaction, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _create(emulator: Emulator, count: int):
    items = [make_transaction(i) for i in range(count)]
    raw = orjson.dumps({"operation": "POST /v3/transactions", "data": items})
    return emulator.create_batch(raw, items, "default")


def test_progress_is_computed_from_the_clock():
    clock = FakeClock()
    emulator = Emulator(EmulatorSettings(items_per_second=100), clock=clock)
    record = _create(emulator, 250)
    assert record.view(clock())["progress"] == 0 and record.status_at(clock()) is BatchStatus.PROCESSING
    clock.now += 1.0
    assert record.progress_at(clock()) == 100
    clock.now += 1.49
    assert record.progress_at(clock()) == 249 and record.status_at(clock()) is BatchStatus.PROCESSING
    clock.now += 0.02
    view = record.view(clock())
    assert (view["status"], view["progress"]) == ("completed", 250)


def test_speed_change_continues_from_the_current_progress():
    clock = FakeClock()
    emulator = Emulator(EmulatorSettings(items_per_second=10), clock=clock)
    record = _create(emulator, 100)
    clock.now += 5
    emulator.configure({"items_per_second": 1000})
    assert record.progress_at(clock()) == 50
    clock.now += 0.05
    assert record.status_at(clock()) is BatchStatus.COMPLETED


def test_injected_error_stops_half_way():
    clock = FakeClock()
    emulator = Emulator(EmulatorSettings(items_per_second=10, batch_error_rate=1.0), clock=clock)
    record = _create(emulator, 40)
    clock.now += 100
    assert record.status_at(clock()) is BatchStatus.ERROR and record.progress_at(clock()) == 20


def test_batch_errors_are_a_seeded_fraction():
    emulator = Emulator(EmulatorSettings(batch_error_rate=0.3, seed=3), clock=FakeClock())
    errors = [_create(emulator, 1).will_error for _ in range(200)]
    again = Emulator(EmulatorSettings(batch_error_rate=0.3, seed=3), clock=FakeClock())
    assert errors == [_create(again, 1).will_error for _ in range(200)]
    assert 30 < sum(errors) < 90


def test_results_body_is_the_api_shape_in_submission_order():
    emulator = Emulator(clock=FakeClock())
    record = _create(emulator, 5)
    body = orjson.loads(build_results_body(record))
    assert set(body) == {"id", "total", "status", "results"}
    assert body["status"] == "completed" and [r["id"] for r in body["results"]] == [
        f"tx-{i}" for i in range(5)
    ]


def test_rate_limiter_refills_over_time():
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert [limiter.acquire("k", 2) for _ in range(3)] == [0, 0, 1]
    clock.now += 0.5
    assert limiter.acquire("k", 2) == 0
    assert limiter.acquire("k", 0.1) == 10  # a slow limit asks for a long wait, in whole seconds
    assert limiter.acquire("k", 0) == 0  # 0 disables


def test_rate_limit_below_one_per_second_still_lets_requests_through() -> None:
    clock = FakeClock()
    limiter = RateLimiter(clock)
    assert limiter.acquire("k", 0.5) == 0  # the first request passes
    assert limiter.acquire("k", 0.5) == 2  # the next one waits the 2 s a token takes
    clock.now += 2
    assert limiter.acquire("k", 0.5) == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"nope": 1}, "nope: unknown setting"),
        ({"items_per_second": 0}, "items_per_second: expected a number > 0"),
        ({"fail_rate": 1.5}, "fail_rate: expected a fraction"),
        ({"latency_ms": -1}, "latency_ms: expected a number >= 0"),
        ({"seed": "x"}, "seed: expected an integer"),
        ({"api_keys": "k"}, "api_keys: expected a list"),
        ({"fail_status": 200}, "fail_status: expected an HTTP error status"),
        ({"credits": -5}, "credits: expected null or an integer"),
        ({"rate_limit": True}, "rate_limit: expected a finite number"),
        ({"webhook_retry_initial_seconds": 0}, "webhook_retry_initial_seconds: expected a number > 0"),
        ({"webhook_timeout_seconds": 0}, "webhook_timeout_seconds: expected a number > 0"),
    ],
)
def test_settings_reject_bad_values(changes, message):
    with pytest.raises(ValueError, match=message):
        EmulatorSettings().updated(changes)


def test_cli_flags():
    args = build_parser().parse_args(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9000",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--items-per-second",
            "500",
            "--seed",
            "4",
            "--rate-limit",
            "10",
            "--fail-rate",
            "0.1",
            "--batch-error-rate",
            "0.2",
            "--latency-ms",
            "30",
        ]
    )
    assert (args.host, args.port, args.api_keys, args.items_per_second, args.seed) == (
        "0.0.0.0",
        9000,
        ["a", "b"],
        500,
        4,
    )
    assert (args.rate_limit, args.fail_rate, args.batch_error_rate, args.latency_ms) == (10, 0.1, 0.2, 30)
    defaults = build_parser().parse_args([])
    assert (defaults.host, defaults.port, defaults.api_keys) == ("127.0.0.1", 8900, None)


def test_cli_serves_with_its_flags():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ntropy_provider.emulator", "--port", str(port), "--api-key", "k1"]
    command += ["--api-key", "k2", "--seed", "9", "--rate-limit", "50", "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"

        def settings():
            try:
                return requests.get(url + "/_emulator/settings", timeout=1).json()
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read().decode()
                return None

        current = wait_for(settings, timeout=60, interval=0.1)
        assert current["api_keys"] == ["k1", "k2"] and current["seed"] == 9 and current["rate_limit"] == 50
        assert requests.get(url + "/v3/batches", headers={"X-API-Key": "k2"}, timeout=5).status_code == 200
        assert (
            requests.get(url + "/v3/batches", headers={"X-API-Key": "test-key"}, timeout=5).status_code == 401
        )
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode is not None
