"""The client's side of the API's limits: the credit estimate, the adaptive window, bad settings refused."""

from __future__ import annotations

import pytest

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.submission.pacing import AdaptiveWindow, CreditEstimate, rate_limit_cause


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_credit_estimate_refills_to_capacity_and_paces_what_was_taken() -> None:
    clock = Clock()
    credits = CreditEstimate(ApiLimits(credit_capacity=1_000, credit_refill_per_second=100), clock)
    assert credits.seconds_until(1_000) == 0
    credits.take(1_000)
    assert credits.seconds_until(500) == pytest.approx(5.0)
    clock.now += 2
    assert credits.level() == pytest.approx(200)
    clock.now += 1_000
    assert credits.level() == 1_000, "never above the capacity"
    assert credits.seconds_until(5_000) == 0, "a wish above capacity waits for a full bucket only"


def test_a_resumed_estimate_goes_on_from_what_was_left_not_from_a_full_bucket() -> None:
    limits = ApiLimits(credit_capacity=1_000, credit_refill_per_second=100)
    before = CreditEstimate(limits, Clock())
    before.take(900)
    level, at, _share = before.snapshot()
    after = CreditEstimate(limits, Clock())  # a new process: a full bucket until told otherwise
    after.restore([level, at], now=at + 3)
    assert after.level() == pytest.approx(100 + 300)
    after.restore([level, at], now=at + 3_600)
    assert after.level() == 1_000, "never above the capacity"


def test_a_429_for_credits_empties_the_estimate_and_halves_the_refill_counted() -> None:
    clock = Clock()
    credits = CreditEstimate(ApiLimits(credit_capacity=1_000, credit_refill_per_second=100), clock)
    credits.drain()
    assert credits.seconds_until(300) == pytest.approx(6.0), "from empty, at half the refill"


def test_tasks_sharing_a_key_settle_on_shares_of_the_refill() -> None:
    clock = Clock()
    limits = ApiLimits(credit_capacity=1_000, credit_refill_per_second=100)
    credits = CreditEstimate(limits, clock)
    credits.drain()
    credits.drain()
    assert credits.seconds_until(100) == pytest.approx(4.0), "two 429s: a quarter of the refill counted"
    for _ in range(40):
        credits.accepted()
    assert credits.share == 1.0, "grows back with each POST accepted, up to the whole refill"
    for _ in range(20):
        credits.drain()
    assert credits.share == pytest.approx(0.1), "never below a tenth"
    resumed = CreditEstimate(limits, Clock())
    resumed.restore(credits.snapshot())
    assert resumed.share == pytest.approx(0.1), "kept across a deferral"


def test_a_task_sharing_the_key_starts_from_its_part_and_never_counts_more() -> None:
    clock = Clock()
    limits = ApiLimits(credit_capacity=1_000, credit_refill_per_second=100)
    credits = CreditEstimate(limits, clock, share=0.25)
    assert credits.level() == pytest.approx(250), "its part of a full bucket, not the whole"
    assert credits.seconds_until(350) == pytest.approx(4.0), "refilled at its part of the rate"
    for _ in range(40):
        credits.accepted()
    assert credits.share == pytest.approx(0.25), "accepted POSTs grow it back only up to its part"
    credits.drain()
    assert credits.share == pytest.approx(0.25), "a 429 keeps the share it was given (its level empties)"
    assert credits.seconds_until(100) == pytest.approx(4.0), "from empty, at its part of the rate"
    resumed = CreditEstimate(limits, Clock(), share=0.25)
    resumed.restore([0.0, 0.0, 1.0], now=0.0)
    assert resumed.share == pytest.approx(0.25), "a snapshot never lifts it above its part"


@pytest.mark.parametrize("share", [0, -0.5, 1.5, True, "0.2"])
def test_a_credit_share_outside_0_to_1_is_refused_when_the_dag_is_parsed(share: object) -> None:
    with pytest.raises(ValueError, match="credit_share"):
        SubmitBatchOperator(task_id="s", items=[], credit_share=share)  # type: ignore[arg-type]


def test_window_shrinks_to_what_the_server_accepted_and_grows_back_by_one() -> None:
    window = AdaptiveWindow(10)
    window.refused(open_batches=4)
    assert window.size == 4
    window.refused(open_batches=0)
    assert window.size == 1, "always room for one batch"
    for _ in range(20):
        window.ended()
    assert window.size == 10, "never above the ceiling"


@pytest.mark.parametrize(
    ("detail", "cause"),
    [
        ("Credit limit: 24960 credits needed, 100 available", "credits"),
        ("Batch limit: 10 batches in progress, at most 10 per API key", "batches"),
        ("Endpoint rate limit: at most 20 requests per second to POST /v3/batches", "rate"),
        ("Too many requests", "unknown"),
    ],
)
def test_the_cause_of_a_429_is_read_from_its_detail(detail: str, cause: str) -> None:
    assert rate_limit_cause(detail) == cause


@pytest.mark.parametrize("window", [0, -1, 1.5, True])
def test_a_window_below_one_is_refused_when_the_dag_is_parsed(window: object) -> None:
    with pytest.raises(ValueError, match="max_open_batches"):
        SubmitBatchOperator(task_id="s", items=[], max_open_batches=window)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"credit_refill_per_second": -5}, "credit_refill_per_second"),
        ({"credit_capacity": 0}, "credit_capacity"),
        ({"max_open_batches": 0}, "max_open_batches"),
    ],
)
def test_bad_limits_are_refused_when_the_dag_is_parsed(limits: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SubmitBatchOperator(task_id="s", items=[], api_limits=limits)


def test_a_chunk_the_bucket_can_never_hold_is_refused() -> None:
    with pytest.raises(ValueError, match="credit_capacity=1000"):
        SubmitBatchOperator(task_id="s", items=[], chunk_size=5_000, api_limits={"credit_capacity": 1_000})


def test_a_negative_defer_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="min_defer_wait"):
        SubmitBatchOperator(task_id="s", items=[], min_defer_wait=-1)
