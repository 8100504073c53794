from __future__ import annotations

import pytest

from ntropy_provider.utils.batch_ids import resolve_batch_ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("b1", ["b1"]),
        (["b1", "b2"], ["b1", "b2"]),
        (("b2", "b1", "b2"), ["b2", "b1"]),
        ({"batch_ids": ["b1", "b2"], "total": 3, "rejected": 0}, ["b1", "b2"]),
        ({"batch_ids": ["b1"], "batches": [{"id": "b1"}]}, ["b1"]),
        ([{"id": "b1", "status": "completed"}, {"id": "b2"}], ["b1", "b2"]),
        ([], []),
    ],
)
def test_accepted_forms(value, expected) -> None:
    assert resolve_batch_ids(value) == expected


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (42, TypeError, "int"),
        ({"ids": ["b1"]}, TypeError, "'batch_ids' key"),
        (["b1", ""], ValueError, r"batch_ids\[1\]"),
        ([None], ValueError, r"batch_ids\[0\]"),
    ],
)
def test_rejected_forms_name_the_problem(value, error, match) -> None:
    with pytest.raises(error, match=match):
        resolve_batch_ids(value)


def test_known_terminal_batches_keeps_only_final_batch_objects() -> None:
    from ntropy_provider.utils.batch_ids import known_terminal_batches

    def batch(batch_id: str, status: str) -> dict:
        return {
            "id": batch_id,
            "operation": "POST /v3/transactions",
            "status": status,
            "priority": "default",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:30Z",
            "progress": 5,
            "total": 5,
        }

    sensor_xcom = {
        "batch_ids": ["a", "b", "c"],
        "batches": [batch("a", "completed"), batch("b", "processing")],
    }
    assert set(known_terminal_batches(sensor_xcom)) == {"a"}
    assert set(known_terminal_batches([batch("e", "error"), "f", {"id": "g"}])) == {"e"}
    assert known_terminal_batches(["a", "b"]) == {}
    assert known_terminal_batches("a") == {}
