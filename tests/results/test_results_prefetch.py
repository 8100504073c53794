"""Prefetcher: order kept, errors raised in the consumer, the worker stopped on close."""

from __future__ import annotations

import threading

import pytest

from ntropy_provider.results.prefetch import Prefetcher


def test_items_come_in_order_transformed_in_another_thread() -> None:
    threads: set[str] = set()

    def transform(item: int) -> int:
        threads.add(threading.current_thread().name)
        return item * 10

    with Prefetcher(range(50), transform) as prefetched:
        assert list(prefetched) == [i * 10 for i in range(50)]
    assert threads == {"ntropy-results-prefetch"}


@pytest.mark.parametrize("where", ["source", "transform"])
def test_errors_reach_the_consumer_after_the_items_before_them(where: str) -> None:
    def source():
        yield 1
        yield 2
        if where == "source":
            raise ConnectionError("fetch failed")
        yield 3

    def transform(item: int) -> int:
        if where == "transform" and item == 3:
            raise ValueError("bad body 3")
        return item

    seen = []
    with (
        pytest.raises((ConnectionError, ValueError), match=r"fetch failed|bad body 3"),
        Prefetcher(source(), transform) as prefetched,
    ):
        for item in prefetched:
            seen.append(item)
    assert seen == [1, 2]


def test_close_stops_the_worker_early() -> None:
    pulled = []

    def source():
        for i in range(1000):
            pulled.append(i)
            yield i

    prefetched = Prefetcher(source(), lambda item: item, depth=1)
    iterator = iter(prefetched)
    assert next(iterator) == 0
    prefetched.close()
    # At most: the one consumed, one queued, one in hand when the stop came.
    assert len(pulled) <= 3
    assert not prefetched._thread.is_alive()
