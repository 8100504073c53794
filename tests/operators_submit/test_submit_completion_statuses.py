"""The statuses of a task's ended batches: read from the key's newest batches, a GET only for the rest."""

from __future__ import annotations

from typing import Any

from ntropy_provider.api.models import Batch
from ntropy_provider.operators._completion import LIST_PAGE_SIZE, _latest_batches


def _batch(batch_id: str, status: str = "completed") -> Batch:
    return Batch.from_dict(
        {
            "id": batch_id,
            "operation": "POST /v3/transactions",
            "status": status,
            "created_at": "2024-01-01T00:00:00+00:00",
            "updated_at": "2024-01-01T00:00:00+00:00",
            "progress": 1,
            "total": 1,
            "request_id": "r",
        }
    )


class ListingHook:
    """The key's batches, newest first; counts what was asked."""

    def __init__(self, newest_first: list[Batch], elsewhere: dict[str, Batch]) -> None:
        self.newest_first = newest_first
        self.elsewhere = elsewhere
        self.listed = 0
        self.got: list[str] = []

    def list_batches(self, page_size: int = 100, **_: Any):
        for batch in self.newest_first:
            self.listed += 1
            yield batch

    def get_batch(self, batch_id: str) -> Batch:
        self.got.append(batch_id)
        return self.elsewhere[batch_id]


def test_batches_among_the_newest_need_no_get_and_keep_the_given_order() -> None:
    ours = [_batch(f"b{i}", "error" if i == 3 else "completed") for i in range(40)]
    others = [_batch(f"other{i}") for i in range(5)]
    hook = ListingHook(others + ours[::-1] + [_batch(f"old{i}") for i in range(500)], {})
    batches = _latest_batches(hook, [b.id for b in ours])
    assert [b.id for b in batches] == [b.id for b in ours]
    assert [b.id for b in batches if b.status == "error"] == ["b3"]
    assert hook.got == [] and hook.listed == 45  # stopped as soon as all were found


def test_batches_not_among_the_newest_are_fetched_one_by_one() -> None:
    crowd = [_batch(f"other{i}") for i in range(5 * LIST_PAGE_SIZE)]
    hook = ListingHook([_batch("b0"), *crowd], {"b1": _batch("b1", "error")})
    batches = _latest_batches(hook, ["b0", "b1"])
    assert [(b.id, b.status) for b in batches] == [("b0", "completed"), ("b1", "error")]
    assert hook.got == ["b1"]
    assert hook.listed == 2 * LIST_PAGE_SIZE  # a page more than they fill, not the key's whole history
