"""Loopback detection: the one check used for plain-HTTP hosts (connection) and webhook URLs."""

from __future__ import annotations

import pytest

from ntropy_provider.utils.net import is_loopback_host


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.0.0.2", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["", None, "api.ntropy.com", "10.0.0.1", "localhost.example.com", "::2"])
def test_other_hosts(host: str | None) -> None:
    assert not is_loopback_host(host)
