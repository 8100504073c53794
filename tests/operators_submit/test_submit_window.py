"""The rolling window against the emulator: at most a window in progress, 429s waited out, deferral
between windows that resumes from the next unsent chunk, and no duplicate across resumes and retries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from ntropy_provider.emulator.testing import wait_for
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.triggers.window import SubmissionWindowTrigger


def _processing(hook: NtropyHook) -> int:
    return sum(1 for _ in hook.list_batches(status="processing"))


def test_submit_batches_keeps_at_most_the_window_in_progress(
    ntropy_connection: str, ntropy_emulator, make_rows
) -> None:
    ntropy_emulator.configure(items_per_second=400)  # 25 rows: ~60 ms per batch
    observer = NtropyHook(ntropy_connection)
    seen: list[int] = []
    batches = NtropyHook(ntropy_connection).submit_batches(
        make_rows(300),
        chunk_size=25,
        max_open_batches=3,
        on_submitted=lambda index, batch: seen.append(_processing(observer)),
    )
    assert [b.total for b in batches] == [25] * 12
    assert ntropy_emulator.stats()["batches_created"] == 12
    assert seen and max(seen) <= 3, seen


def test_a_429_storm_on_posts_makes_the_chunks_wait_never_fails(
    ntropy_connection: str, ntropy_emulator, make_rows
) -> None:
    # The hook gives up on a 429 quickly (max_elapsed), so the window itself must wait and send again.
    hook = NtropyHook(ntropy_connection, max_elapsed=0.05, backoff_base=0.01, backoff_max=0.02)
    ntropy_emulator.configure(fail_rate=0.6, fail_status=429, seed=7)
    batches = hook.submit_batches(make_rows(200), chunk_size=10, max_concurrency=4)
    ntropy_emulator.configure(fail_rate=0.0)
    assert [b.total for b in batches] == [10] * 20
    assert ntropy_emulator.stats()["batches_created"] == 20, "a refused POST created nothing: no duplicate"
    assert len({b.id for b in batches}) == 20


def _window_operator(rows: list[dict[str, Any]], **kwargs: Any) -> SubmitBatchOperator:
    return SubmitBatchOperator(
        task_id="submit",
        items=rows,
        chunk_size=10,
        max_open_batches=2,
        deferrable=True,
        min_defer_wait=0.0,  # defer at every wait, however short: the emulator's batches take ~0.1 s
        poll_interval=0.05,
        max_poll_interval=0.2,
        **kwargs,
    )


async def _fire(trigger: SubmissionWindowTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("the trigger ended without an event")


def _run_deferring(operator: SubmitBatchOperator, context: dict[str, Any], resumes: list[str]) -> Any:
    """Execute, and run each deferral's trigger and resume, as Airflow would; the final result."""
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        pending = deferred
    while True:
        assert isinstance(pending.trigger, SubmissionWindowTrigger)
        assert set(pending.trigger.serialize()[1]) <= {
            "batch_ids",
            "ntropy_conn_id",
            "wake_at",
            "deadline",
            "poll_interval",
            "max_poll_interval",
        }
        event = asyncio.run(asyncio.wait_for(_fire(pending.trigger), 30))
        resumes.append(event["reason"])
        try:
            return getattr(operator, pending.method_name)(context, event)
        except TaskDeferred as again:
            pending = again


def test_deferrable_operator_defers_between_windows_and_resumes_without_rescanning(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows, monkeypatch: pytest.MonkeyPatch
) -> None:
    ntropy_emulator.configure(items_per_second=100)
    operator = _window_operator(make_rows(65))
    scans: list[int] = []
    real_scan = operator.scan
    monkeypatch.setattr(operator, "scan", lambda: scans.append(1) or real_scan())
    resumes: list[str] = []
    result = _run_deferring(operator, {"task_state_store": state_store}, resumes)
    assert resumes and set(resumes) == {"slot"}, resumes
    assert len(scans) == 1, "a resumed submission does not read the whole input again"
    assert len(result["batch_ids"]) == 7 and result["total"] == 65
    assert ntropy_emulator.stats()["batches_created"] == 7
    assert len(set(result["batch_ids"])) == 7


def test_a_retry_between_windows_re_attaches_and_sends_only_the_rest(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    ntropy_emulator.configure(items_per_second=100)
    rows = make_rows(65)
    context = {"task_state_store": state_store}
    with pytest.raises(TaskDeferred):  # the first try deferred, then its worker / triggerer died
        _window_operator(rows).execute(context)
    sent_first = ntropy_emulator.stats()["batches_created"]
    assert 0 < sent_first < 7
    result = _run_deferring(_window_operator(rows), context, [])  # the retry starts from execute()
    assert ntropy_emulator.stats()["batches_created"] == 7, "0 duplicates"
    assert len(set(result["batch_ids"])) == 7 and result["total"] == 65


def test_blocking_operator_paces_the_same_way(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
):
    ntropy_emulator.configure(items_per_second=400)
    operator = _window_operator(make_rows(65), wait_for_completion=True)
    operator.deferrable = False
    result = operator.execute({"task_state_store": state_store})
    assert len(result["batch_ids"]) == 7
    assert ntropy_emulator.stats()["batches_created"] == 7
    # The emulator counts a batch's end in a background task, a moment after its status reads as ended.
    wait_for(lambda: ntropy_emulator.stats()["batches_completed"] == 7)


@pytest.mark.parametrize(("speed", "defers"), [(100, False), (2, True)])
def test_batches_about_to_end_are_waited_for_in_the_worker_not_deferred(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows, speed: int, defers: bool
) -> None:
    # A trigger firing seconds after its deferral races Airflow's scheduler; a long wait frees the worker.
    ntropy_emulator.configure(items_per_second=speed)
    operator = SubmitBatchOperator(
        task_id="submit",
        items=make_rows(30),
        chunk_size=10,
        deferrable=True,
        wait_for_completion=True,
        min_defer_wait=5.0,
        poll_interval=0.05,
        max_poll_interval=0.2,
    )
    context = {"task_state_store": state_store}
    if defers:
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        assert deferred.value.method_name == "execute_complete"
        return
    result = operator.execute(context)
    assert len(result["batch_ids"]) == 3 and result["total"] == 30
