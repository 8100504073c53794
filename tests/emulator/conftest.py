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
