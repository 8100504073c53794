"""A task's rolling window across deferrals and tries: rebuilt from what it recorded, saved when it defers.

A deferrable :class:`~ntropy_provider.operators.submit_batch.SubmitBatchOperator` leaves its worker
between windows, and a new operator instance goes on after the trigger fired (or after a crash, on the
next try). What the window knew must survive that, or the new instance would start from a full credit
bucket and an empty window and draw 429s: the batches still open (they hold slots until seen ending),
the window's size (shrunk by a 429, growing back) and the credit estimate (what was left, plus the
refill since). This module is the one home of that saved form (a small dict kept in the ledger beside
the chunk plan) and of rebuilding a window from it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.submission.ledger import ChunkState
from ntropy_provider.submission.window import HookBatches, SubmissionWindow, WindowOutcome

#: Keys of the saved window: open batch ids, the adaptive window's size, the credit estimate's snapshot.
OPEN, SIZE, CREDITS = "open", "size", "credits"


def deferral_burst(limits: ApiLimits, *, credit_share: float, min_defer_wait: float, chunk_size: int) -> int:
    """Credits a deferrable task waits for when it defers while credits refill.

    It wakes for a burst of chunks, not one, and early enough that its part of the bucket is not yet
    full when it is back (a deferral costs about ``min_defer_wait``): otherwise the refill overflowing
    a full bucket while the task is away would be lost.

    :param limits: the key's limits.
    :param credit_share: the task's share of the key's credits.
    :param min_defer_wait: the operator's shortest wait worth a deferral, in seconds.
    :param chunk_size: the most transactions per batch (the burst is at least one chunk).
    """
    margin = limits.credit_refill_per_second * credit_share * min_defer_wait
    own_bucket = limits.credit_capacity * credit_share
    return max(chunk_size, int(own_bucket - margin))


def resume_window(
    hook: Any,
    states: Mapping[int, ChunkState],
    saved: Mapping[str, Any] | None,
    *,
    limits: ApiLimits,
    max_open_batches: int | None,
    max_concurrency: int,
    log: Any,
    deadline: float | None,
    total_rows: int,
    total_chunks: int,
    credit_share: float,
    burst_credits: int | None = None,
) -> SubmissionWindow:
    """A window that goes on where the task's earlier windows left off.

    :param hook: the sync Ntropy hook.
    :param states: every chunk's recorded state (batch id and size where it was sent).
    :param saved: what :func:`save_window` returned when the task deferred (``None`` or empty: a fresh
        start, or a new try; then every recorded batch counts as open until seen ending).
    :param limits: the key's limits.
    :param max_open_batches: the most of the task's batches in progress (``None``: the key's cap).
    :param max_concurrency: most POSTs in flight.
    :param log: where progress is logged.
    :param deadline: ``time.monotonic()`` after which waiting fails (``None``: never).
    :param total_rows: valid rows of the whole input, for the progress line.
    :param total_chunks: chunks of the whole input, for the progress line.
    :param credit_share: the task's share of the key's credits.
    :param burst_credits: credits to wait for when deferring for credits (see :func:`deferral_burst`).
    """
    saved = saved or {}
    window = SubmissionWindow(
        HookBatches(hook),
        limits=limits,
        max_open_batches=max_open_batches,
        max_concurrency=max_concurrency,
        log=log,
        deadline=deadline,
        total_rows=total_rows,
        total_chunks=total_chunks,
        credit_share=credit_share,
    )
    window.burst_credits = burst_credits
    if saved.get(SIZE) and window.window is not None:
        window.window.size = max(1, min(window.window.ceiling, int(saved[SIZE])))
    if saved.get(CREDITS) and window.credits is not None:
        window.credits.restore(saved[CREDITS])
    sent = {s.batch_id: s.size for s in states.values() if s.batch_id}
    window.chunks_sent = len(sent)
    window.stats.rows_sent = sum(sent.values())
    # Batches sent before (an earlier window or try) hold slots until they are seen ending.
    open_before = saved.get(OPEN)
    if open_before is None:
        open_before = list(sent)
    window.adopt({batch_id: sent.get(batch_id, 0) for batch_id in open_before})
    window.rows_done = window.stats.rows_sent - sum(sent.get(i, 0) for i in open_before)
    return window


def save_window(window: SubmissionWindow, outcome: WindowOutcome) -> dict[str, Any]:
    """What the task keeps of its window when it defers (JSON-safe and small: ids and numbers).

    :param window: the window that paused.
    :param outcome: what its run returned.
    """
    return {
        OPEN: list(outcome.open_batch_ids),
        SIZE: window.window.size if window.window else None,
        CREDITS: window.credits.snapshot() if window.credits else None,
    }


def without_ended(saved: Mapping[str, Any], ended: Collection[str]) -> dict[str, Any]:
    """The saved window, less the batches the trigger saw ending.

    :param saved: what :func:`save_window` returned.
    :param ended: ids of batches that ended while the task was deferred.
    """
    if OPEN not in saved:
        return dict(saved)
    return {**saved, OPEN: [i for i in saved[OPEN] if i not in ended]}
