"""Entry points of submission: records cut at fixed sizes (``NtropyHook.submit_batches``), or chunks
cut at a plan's boundaries (``SubmitBatchOperator``), both sent through the rolling window."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import MAX_BATCH_SIZE
from ntropy_provider.hooks.calls import check_priority
from ntropy_provider.io.dataframe_source import is_dataframe
from ntropy_provider.submission.chunks import iter_chunks
from ntropy_provider.submission.window import HookBatches, SubmissionWindow, as_results, hearing_429s


class _PostOnly:
    """A stand-in API that can only create batches (no window: nothing to poll)."""

    def __init__(self, post: Callable[[bytes], Batch]) -> None:
        self.post = post

    def poll(self, batch_ids: Collection[str], fresh: Collection[str]) -> dict[str, Batch | None]:
        return {}


def check_records_iterable(records: Any) -> None:
    """Refuse inputs that iterate as something other than transactions, before anything is sent.

    Iterating a DataFrame gives its column names, a string its characters and a mapping its keys: each
    would reach the API as rows and be refused there (or, worse, be paid for).

    :param records: what the caller passed as ``records``.
    :raises TypeError: naming the input's type and what to pass instead.
    """
    if is_dataframe(records):
        raise TypeError(
            "records: a pandas DataFrame iterates over its column names, not its rows; pass "
            "frame.to_dict('records') or use SubmitBatchOperator(items=frame), which reads it through Arrow"
        )
    if isinstance(records, (str, bytes, Mapping)):
        raise TypeError(
            f"records: expected an iterable of transaction mappings, got a {type(records).__name__}; "
            "to submit a file, use SubmitBatchOperator(items=<path or URI>)"
        )


def submit_records(
    api: Any,
    records: Iterable[Mapping[str, Any]],
    chunk_size: int,
    *,
    priority: str,
    max_concurrency: int,
    skip_chunks: Collection[int],
    before_submit: Callable[[int, int], None] | None,
    on_submitted: Callable[[int, Batch], None] | None,
    log: Any,
    limits: ApiLimits | None = None,
    max_open_batches: int | None = None,
    deadline: float | None = None,
) -> list[Batch | None]:
    """Cut ``records`` into chunks of ``chunk_size`` and send them through a rolling window.

    :param api: an :class:`~ntropy_provider.hooks.ntropy.NtropyHook`, or a bare ``post(body) -> Batch``
        (then without window or pacing: nothing can be polled).
    :param records: any iterable of transaction mappings, consumed lazily.
    :param chunk_size: transactions per batch (1 to 24,960).
    :param priority: ``default`` or ``low``.
    :param max_concurrency: most POSTs in flight (1 to 10).
    :param skip_chunks: chunk indexes not to send; their slot in the result is ``None``.
    :param before_submit: ``before_submit(chunk_index, size)``, in this thread, before a chunk is sent.
    :param on_submitted: ``on_submitted(chunk_index, batch)``, in this thread, once a chunk was accepted.
    :param log: where to log.
    :param limits: the key's limits (with a hook: ``None`` reads them from the hook).
    :param max_open_batches: the most batches in progress at once (default: the key's cap).
    :param deadline: ``time.monotonic()`` after which waiting for the API fails.
    :return: one Batch per chunk in input order (``None`` for skipped chunks).
    """
    if not 1 <= chunk_size <= MAX_BATCH_SIZE:
        raise ValueError(f"chunk_size: expected 1 to {MAX_BATCH_SIZE}, got {chunk_size!r}")
    check_priority(priority)
    check_records_iterable(records)
    hook = None if callable(api) and not hasattr(api, "post_batch_body") else api
    if hook is not None and limits is None:
        limits = hook.api_limits
    check_chunk_fits(chunk_size, limits)
    window = SubmissionWindow(
        HookBatches(hook) if hook is not None else _PostOnly(api),
        limits=limits if hook is not None else None,
        max_open_batches=max_open_batches,
        max_concurrency=max_concurrency,
        log=log,
        deadline=deadline,
    )
    chunks = iter_chunks(records, chunk_size, priority=priority, skip=frozenset(skip_chunks))
    if hook is None:
        outcome = window.run(chunks, before_submit=before_submit, on_submitted=on_submitted)
    else:
        with hearing_429s(hook, window):
            outcome = window.run(chunks, before_submit=before_submit, on_submitted=on_submitted)
    return as_results(outcome, window.chunks_seen)


def check_chunk_fits(chunk_size: int, limits: ApiLimits | None) -> None:
    """Refuse chunks the key's credit bucket can never hold: such a batch could never be accepted.

    :param chunk_size: most rows per chunk.
    :param limits: the key's limits (nothing is checked without them).
    :raises ValueError: naming both numbers.
    """
    if limits is not None and chunk_size > limits.credit_capacity:
        raise ValueError(
            f"chunk_size: {chunk_size} rows need {chunk_size} credits at once, but the key's bucket holds at "
            f"most credit_capacity={limits.credit_capacity}; use chunk_size <= {limits.credit_capacity}"
        )
