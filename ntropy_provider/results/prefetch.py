"""Run the next item's fetch and conversion in a background thread while the caller writes the current one.

Fetching a batch's results is network time and converting them is Arrow's C++ (which releases the GIL),
so with one item prepared ahead the writer rarely waits. Exactly one worker keeps the order; a queue of
``depth`` items bounds memory to ``depth + 2`` items (queued, being prepared, being written).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[S, T]):
    """Iterate over ``transform(item)`` for each item of ``source``, computed one step ahead in a thread.

    Errors of the source or of the transform are raised in the consumer, in order. Closing (or leaving
    the ``with`` block) stops the worker at its next step.

    :param source: the items (e.g. a lazy iterator that fetches each batch's body).
    :param transform: what to do with each item in the background (e.g. parse it).
    :param depth: items prepared ahead.
    """

    def __init__(self, source: Iterable[S], transform: Callable[[S], T], *, depth: int = 1) -> None:
        self._source = source
        self._transform = transform
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="ntropy-results-prefetch", daemon=True)
        self._started = False

    def _put(self, value: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._source:
                if self._stop.is_set() or not self._put(self._transform(item)):
                    return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._put(_Failure(error))
            return
        self._put(_DONE)

    def __iter__(self) -> Iterator[T]:
        if not self._started:
            self._started = True
            self._thread.start()
        while True:
            value = self._queue.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value  # type: ignore[misc]

    def close(self) -> None:
        """Stop the worker and wait for it (it finishes the step it is in)."""
        self._stop.set()
        if self._started:
            self._thread.join()

    def __enter__(self) -> Prefetcher[S, T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
