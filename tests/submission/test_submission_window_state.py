"""A task's rolling window across deferrals: rebuilt from the ledger's states and what it saved."""

from __future__ import annotations

import logging

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.submission.ledger import ChunkState
from ntropy_provider.submission.window import WindowOutcome
from ntropy_provider.submission.window_state import (
    deferral_burst,
    resume_window,
    save_window,
    without_ended,
)

LIMITS = ApiLimits(max_open_batches=10, credit_capacity=100_000, credit_refill_per_second=1_000)
LOG = logging.getLogger(__name__)


def _states() -> dict[int, ChunkState]:
    return {
        0: ChunkState(size=100, fingerprint="a", batch_id="b0"),
        1: ChunkState(size=200, fingerprint="b", batch_id="b1"),
        2: ChunkState(size=50, fingerprint="c"),
    }


def _window(saved=None, max_open_batches=None):
    return resume_window(
        object(),
        _states(),
        saved,
        limits=LIMITS,
        max_open_batches=max_open_batches,
        max_concurrency=2,
        log=LOG,
        deadline=None,
        total_rows=350,
        total_chunks=3,
        credit_share=1.0,
    )


def test_a_new_try_counts_every_recorded_batch_open_until_seen_ending() -> None:
    window = _window()
    assert set(window.open) == {"b0", "b1"}
    assert (window.chunks_sent, window.stats.rows_sent, window.rows_done) == (2, 300, 0)


def test_a_resumed_window_goes_on_from_what_it_saved() -> None:
    first = _window(max_open_batches=4)
    first.window.size = 2  # shrunk by a 429
    first.credits.take(int(first.credits.level()) - 1_234)
    saved = save_window(first, WindowOutcome(open_batch_ids=["b0", "b1"]))
    assert saved["open"] == ["b0", "b1"] and saved["size"] == 2

    resumed = _window(without_ended(saved, {"b0"}), max_open_batches=4)
    assert set(resumed.open) == {"b1"}
    assert resumed.rows_done == 100  # b0 ended while deferred
    assert resumed.window.size == 2
    # What was left plus the refill since: not a full bucket.
    assert 1_234 <= resumed.credits.level() < LIMITS.credit_capacity


def test_a_saved_size_never_exceeds_the_window_s_ceiling() -> None:
    assert _window({"size": 50}, max_open_batches=3).window.size == 3


def test_the_deferral_burst_leaves_room_for_the_refill_while_away() -> None:
    burst = deferral_burst(LIMITS, credit_share=0.2, min_defer_wait=30, chunk_size=1_000)
    assert burst == 20_000 - 0.2 * 1_000 * 30
    # never less than one chunk
    assert deferral_burst(LIMITS, credit_share=0.01, min_defer_wait=300, chunk_size=24_960) == 24_960
