"""Cutting input into request bodies: lazily, once, in order, naming a row that cannot be serialized."""

from __future__ import annotations

import datetime as dt
import decimal
import tracemalloc
from collections.abc import Iterator

import orjson
import pytest

from ntropy_provider.hooks.calls import batch_body
from ntropy_provider.submission.chunks import iter_chunks


def _rows(n: int, start: int = 0) -> Iterator[dict]:
    for i in range(start, start + n):
        yield {
            "id": f"t{i}",
            "description": f"coffee shop purchase number {i}",
            "date": "2024-01-01",
            "amount": 3.5,
            "entry_type": "outgoing",
            "currency": "USD",
            "account_holder_id": None,
            "location": None,
        }


def test_chunks_cover_the_input_in_order_with_right_sizes() -> None:
    chunks = list(iter_chunks(_rows(25), 10, priority="low"))
    assert [(c.index, c.start, c.size) for c in chunks] == [(0, 0, 10), (1, 10, 10), (2, 20, 5)]
    decoded = [orjson.loads(c.body) for c in chunks]
    assert all(d["operation"] == "POST /v3/transactions" and d["priority"] == "low" for d in decoded)
    assert [row["id"] for d in decoded for row in d["data"]] == [f"t{i}" for i in range(25)]


def test_exact_multiple_and_empty_input() -> None:
    assert [c.size for c in iter_chunks(_rows(20), 10, priority="default")] == [10, 10]
    assert list(iter_chunks([], 10, priority="default")) == []


def test_skipped_chunks_consume_their_rows_without_serializing() -> None:
    chunks = list(iter_chunks(_rows(25), 10, priority="default", skip={0, 2}))
    assert [(c.index, c.start, c.size, c.body is None) for c in chunks] == [
        (0, 0, 10, True),
        (1, 10, 10, False),
        (2, 20, 5, True),
    ]
    assert [r["id"] for r in orjson.loads(chunks[1].body)["data"]] == [f"t{i}" for i in range(10, 20)]


def test_input_is_consumed_lazily() -> None:
    consumed = 0

    def counting() -> Iterator[dict]:
        nonlocal consumed
        for row in _rows(1000):
            consumed += 1
            yield row

    chunks = iter_chunks(counting(), 100, priority="default")
    next(chunks)
    assert consumed == 100
    next(chunks)
    assert consumed == 200


def test_memory_stays_near_one_chunk_for_a_long_generator() -> None:
    tracemalloc.start()
    try:
        one_chunk = len(next(iter_chunks(_rows(2000), 2000, priority="default")).body)
        tracemalloc.reset_peak()
        total = 0
        for chunk in iter_chunks(_rows(100_000), 2000, priority="default"):
            total += chunk.size
            del chunk
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 100_000
    # 50 chunks went through; the peak stays within a few chunks' bytes, not the input's ~50x.
    assert peak < 5 * one_chunk, (peak, one_chunk)


def test_common_non_json_values_are_converted() -> None:
    row = {"id": "x", "amount": decimal.Decimal("12.34"), "date": dt.date(2024, 2, 29)}
    body = next(iter_chunks([row], 10, priority="default")).body
    assert orjson.loads(body)["data"] == [{"id": "x", "amount": 12.34, "date": "2024-02-29"}]


def test_a_row_that_cannot_be_serialized_is_named() -> None:
    rows = [*_rows(12), {"id": "bad", "amount": object()}]
    chunks = iter_chunks(rows, 10, priority="default")
    next(chunks)
    with pytest.raises(TypeError, match="input row 12: cannot serialize to JSON"):
        next(chunks)


def test_batch_body_wraps_serialized_items() -> None:
    assert orjson.loads(batch_body([b'{"id":"a"}', b'{"id":"b"}'], priority="default")) == {
        "operation": "POST /v3/transactions",
        "priority": "default",
        "data": [{"id": "a"}, {"id": "b"}],
    }


def test_submission_engine_holds_a_few_chunks_whatever_the_input_length() -> None:
    import datetime as dt_

    from ntropy_provider.api.models import Batch
    from ntropy_provider.api.wire import BatchStatus
    from ntropy_provider.submission.engine import submit_records

    now = dt_.datetime.now(dt_.UTC)
    sizes: list[int] = []

    def post(body: bytes) -> Batch:  # stands in for the HTTP call: looks at the body, answers a batch
        sizes.append(len(body))
        total = body.count(b'"id":')
        return Batch(
            f"b{len(sizes)}", "POST /v3/transactions", BatchStatus.PROCESSING, "default", now, now, 0, total
        )

    class _Log:
        def info(self, *args: object) -> None:
            pass

    tracemalloc.start()
    try:
        batches = submit_records(
            post,
            _rows(200_000),
            5_000,
            priority="default",
            max_concurrency=4,
            skip_chunks=(),
            before_submit=None,
            on_submitted=None,
            log=_Log(),
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [b.total for b in batches] == [5_000] * 40
    input_bytes = sum(sizes)
    # 4 bodies in flight, plus one being built (held twice while it is joined).
    assert peak < 8 * max(sizes), (peak, max(sizes), input_bytes)
    assert peak < input_bytes / 4
