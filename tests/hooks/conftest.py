"""Fixtures of the hook tests: hooks pointed at the emulator, fast backoff, recorded retries, rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.hooks.ntropy_async import NtropyAsyncHook
from ntropy_provider.hooks.retry_policy import RetryEvent

#: Backoff small enough that 5xx/connection-error retries cost milliseconds in tests.
FAST_BACKOFF: dict[str, Any] = {"backoff_base": 0.02, "max_elapsed": 30.0}


def _rows(n: int, start: int = 0, prefix: str = "t") -> Iterator[dict[str, Any]]:
    """``n`` valid TransactionInputs with ids ``{prefix}{start}``, ``{prefix}{start + 1}``, ..."""
    for i in range(start, start + n):
        yield {
            "id": f"{prefix}{i}",
            "description": f"STARBUCKS STORE {i % 97} NEW YORK",
            "date": "2024-03-01",
            "amount": round(1 + (i % 500) * 0.37, 2),
            "entry_type": "outgoing" if i % 3 else "incoming",
            "currency": "USD",
            "account_holder_id": None,
            "location": None,
        }


@pytest.fixture
def make_rows() -> Callable[..., Iterator[dict[str, Any]]]:
    """``make_rows(n, start=0, prefix="t")``: a generator of ``n`` valid transactions, ids in order."""
    return _rows


@pytest.fixture
def retries() -> list[RetryEvent]:
    """Every retry the hooks of this test announce (through ``on_retry``), in order."""
    return []


@pytest.fixture
def hook(ntropy_connection: str, retries: list[RetryEvent]) -> Iterator[NtropyHook]:
    """A sync hook on the emulator, with fast backoff, recording its retries."""
    hook = NtropyHook(ntropy_connection, on_retry=retries.append, **FAST_BACKOFF)
    yield hook
    hook.close()


@pytest.fixture
def async_hook(ntropy_connection: str, retries: list[RetryEvent]) -> NtropyAsyncHook:
    """An async hook on the emulator, with fast backoff, recording its retries."""
    return NtropyAsyncHook(ntropy_connection, on_retry=retries.append, **FAST_BACKOFF)


@pytest.fixture
def conn_factory(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Define a connection from keyword fields (JSON form); returns its conn id."""
    counter = iter(range(1000))

    def define(**fields: Any) -> str:
        conn_id = f"ntropy_test_{next(counter)}"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "ntropy", **fields}))
        return conn_id

    return define
