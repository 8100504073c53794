"""Shared fixtures of the SubmitBatchOperator tests: a task state store that outlives task tries."""

from __future__ import annotations

import copy
from typing import Any

import pytest


class FakeTaskStateStore:
    """The ``task_state_store`` accessor's get/set/delete, kept in a dict that survives "tries"."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return copy.deepcopy(self.values.get(key, default))

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        if value is None:
            raise ValueError("Cannot set value as None")
        self.values[key] = copy.deepcopy(value)
        self.writes += 1

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@pytest.fixture
def state_store() -> FakeTaskStateStore:
    """A fresh task state store shared by every try of one test's task."""
    return FakeTaskStateStore()


def _make_rows(count: int, prefix: str = "t") -> list[dict[str, Any]]:
    """``count`` valid transactions with ids ``{prefix}0`` ... in order."""
    return [
        {
            "id": f"{prefix}{i}",
            "description": f"STARBUCKS #{i}",
            "date": "2024-01-02",
            "amount": float(i % 97) + 0.5,
            "entry_type": "outgoing" if i % 3 else "incoming",
            "currency": "USD",
        }
        for i in range(count)
    ]


@pytest.fixture
def make_rows() -> Any:
    """The row factory: ``make_rows(count, prefix="t")``."""
    return _make_rows
