"""What the benchmarks share: the emulator in its own process (so its CPU and memory count for no client).

Not a benchmark itself (``python -m bench`` skips modules starting with ``_``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: The API key the benchmarks' emulator accepts.
API_KEY = "bench-key"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def emulator_admin(url: str, path: str, method: str = "GET") -> Any:
    """Call the emulator's control API (``/_emulator/...``, no API key) and decode its JSON answer.

    :param url: the emulator's base URL.
    :param path: e.g. ``/_emulator/stats``.
    :param method: the HTTP method.
    """
    request = urllib.request.Request(url + path, method=method)
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read() or b"null")


@contextmanager
def emulator_process(
    *options: str, port: int | None = None, quiet: bool = False, timeout: float = 60.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run the ``ntropy-emulator`` CLI on loopback until the block ends; yield the process and its URL.

    :param options: further CLI options, e.g. ``"--items-per-second", "5"``.
    :param port: the port (a free one when ``None``).
    :param quiet: discard the emulator's output (else it shares this process's terminal).
    :param timeout: seconds to wait for it to answer.
    :raises RuntimeError: when it exits or does not answer within ``timeout`` (it is killed).
    """
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "ntropy_provider.emulator", "--port", str(port), "--api-key", API_KEY]
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen([*command, "--log-level", "warning", *options], stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                emulator_admin(url, "/_emulator/stats")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.05)
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
