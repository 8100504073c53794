"""Concurrent, crash-safe submission of chunks: the engine behind ``NtropyHook.submit_batches`` and
``SubmitBatchOperator``.

The calling thread reads the input, builds each chunk's body and runs the callbacks; worker threads only
send requests. At most ``max_concurrency`` requests are in flight, so memory stays near that many
bodies plus the one being built. When anything fails (a chunk refused, the input unreadable, a callback
raising), nothing more is sent, the requests in flight are settled (their ``on_submitted`` still runs,
so that the caller learns of every batch that exists), and the first error is raised.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import MAX_BATCH_SIZE, MAX_CONCURRENT_OPERATIONS
from ntropy_provider.exceptions import ItemError, NtropyError, NtropyValidationError
from ntropy_provider.hooks.calls import check_priority
from ntropy_provider.submission.chunks import Chunk, iter_chunks


def in_input_terms(error: NtropyError, chunk: Chunk) -> NtropyError:
    """Restate a chunk's error in the caller's terms: a 422 names the input row, not the item index.

    :param error: the error of the chunk's request.
    :param chunk: the chunk.
    """
    rows = f"input rows {chunk.start} to {chunk.start + chunk.size - 1}"
    if isinstance(error, NtropyValidationError) and any(e.index is not None for e in error.errors):
        shifted = [
            ItemError(None if e.index is None else e.index + chunk.start, e.field, e.message)
            for e in error.errors
        ]
        listed = "; ".join(
            f"input row {e.index}, field {e.field}: {e.message}" if e.index is not None else str(e)
            for e in shifted[:20]
        )
        more = f"; and {len(shifted) - 20} more" if len(shifted) > 20 else ""
        return NtropyValidationError(
            f"Ntropy API refused chunk {chunk.index} ({rows}) with {error.status}: {listed}{more} "
            f"(X-Request-ID {error.request_id})",
            status=error.status,
            detail=error.detail,
            request_id=error.request_id,
            errors=shifted,
        )
    error.add_note(f"while submitting chunk {chunk.index} ({rows})")
    return error


def submit_records(
    post: Callable[[bytes], Batch],
    records: Iterable[Mapping[str, Any]],
    chunk_size: int,
    *,
    priority: str,
    max_concurrency: int,
    skip_chunks: Collection[int],
    before_submit: Callable[[int, int], None] | None,
    on_submitted: Callable[[int, Batch], None] | None,
    log: Any,
) -> list[Batch | None]:
    """Cut ``records`` into chunks of ``chunk_size`` and ``post`` each body from a pool of threads.

    :param post: sends one ``POST /v3/batches`` body and returns the batch (called in worker threads).
    :param records: any iterable of transaction mappings, consumed lazily.
    :param chunk_size: transactions per batch (1 to 24,960).
    :param priority: ``default`` or ``low``.
    :param max_concurrency: most requests in flight (1 to 10).
    :param skip_chunks: chunk indexes not to send; their slot in the result is ``None``.
    :param before_submit: ``before_submit(chunk_index, size)``, in this thread, before a chunk is sent.
    :param on_submitted: ``on_submitted(chunk_index, batch)``, in this thread, once a chunk was accepted.
    :param log: where to log.
    :return: one Batch per chunk in input order (``None`` for skipped chunks).
    """
    if not 1 <= chunk_size <= MAX_BATCH_SIZE:
        raise ValueError(f"chunk_size: expected 1 to {MAX_BATCH_SIZE}, got {chunk_size!r}")
    check_priority(priority)
    chunks = iter_chunks(records, chunk_size, priority=priority, skip=frozenset(skip_chunks))
    return submit_chunks(
        post,
        chunks,
        max_concurrency=max_concurrency,
        before_submit=before_submit,
        on_submitted=on_submitted,
        log=log,
    )


def submit_chunks(
    post: Callable[[bytes], Batch],
    chunks: Iterable[Chunk],
    *,
    max_concurrency: int,
    before_submit: Callable[[int, int], None] | None,
    on_submitted: Callable[[int, Batch], None] | None,
    log: Any,
) -> list[Batch | None]:
    """``post`` each chunk's body from a pool of threads, as the chunks are cut.

    :param post: sends one ``POST /v3/batches`` body and returns the batch (called in worker threads).
    :param chunks: the chunks in order, cut lazily (a skipped chunk has no body).
    :param max_concurrency: most requests in flight (1 to 10).
    :param before_submit: ``before_submit(chunk_index, size)``, in this thread, before a chunk is sent.
    :param on_submitted: ``on_submitted(chunk_index, batch)``, in this thread, once a chunk was accepted.
    :param log: where to log.
    :return: one Batch per chunk in input order (``None`` for skipped chunks).
    """
    if not 1 <= max_concurrency <= MAX_CONCURRENT_OPERATIONS:
        raise ValueError(
            f"max_concurrency: expected 1 to {MAX_CONCURRENT_OPERATIONS}, got {max_concurrency!r}"
        )
    results: list[Batch | None] = []
    in_flight: dict[Future[Batch], Chunk] = {}
    errors: list[BaseException] = []

    def settle(done: Iterable[Future[Batch]]) -> None:
        for future in done:
            chunk = in_flight.pop(future)
            try:
                batch = future.result()
            except NtropyError as err:
                errors.append(in_input_terms(err, chunk))
                continue
            except Exception as err:
                errors.append(err)
                continue
            results[chunk.index] = batch
            log.info("Chunk %d (%d transactions) accepted as batch %s", chunk.index, chunk.size, batch.id)
            if on_submitted is not None:
                try:
                    on_submitted(chunk.index, batch)
                except Exception as err:
                    errors.append(err)

    executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="ntropy-submit")
    try:
        try:
            for chunk in chunks:
                results.append(None)
                if chunk.body is None:
                    log.info("Chunk %d (%d transactions) skipped, as asked", chunk.index, chunk.size)
                    continue
                settle([future for future in in_flight if future.done()])
                while len(in_flight) >= max_concurrency and not errors:
                    settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
                if errors:
                    break
                if before_submit is not None:
                    before_submit(chunk.index, chunk.size)
                future = executor.submit(post, chunk.body)
                # Only the worker holds the body, so that it is freed as soon as its request is done.
                in_flight[future] = dataclasses.replace(chunk, body=None)
                del chunk, future
        except Exception as err:  # the input, its serialization or before_submit failed
            errors.append(err)
        while in_flight:
            settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    if errors:
        raise errors[0]
    return results
