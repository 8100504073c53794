"""SubmitBatchOperator(wait_for_completion=True), polling: errored batches resubmitted, within a budget."""

from __future__ import annotations

from typing import Any

import pytest

from ntropy_provider.emulator.testing import wait_for
from ntropy_provider.exceptions import BatchesInErrorError
from ntropy_provider.operators.submit_batch import SubmitBatchOperator


class HealingSubmit(SubmitBatchOperator):
    """Batches error until the first resubmission; then the emulator heals (as Ntropy's docs promise)."""

    def __init__(self, *, emulator: Any, crash_on_resubmit: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.emulator = emulator
        self.crash_on_resubmit = crash_on_resubmit

    def _resubmit_errored(self, context: Any, errored: list[str]) -> bool:
        self.emulator.configure(batch_error_rate=0.0)
        return super()._resubmit_errored(context, errored)

    def record_submitted(self, store: Any, index: int, state: Any, batch: Any) -> None:
        if self.crash_on_resubmit and state.attempt > 0:
            raise RuntimeError("died after the resubmission was answered, before recording it")
        super().record_submitted(store, index, state, batch)


def _operator(rows: list[dict[str, Any]], **kwargs: Any) -> SubmitBatchOperator:
    kwargs.setdefault("chunk_size", 10)
    return (HealingSubmit if "emulator" in kwargs else SubmitBatchOperator)(
        task_id="submit_and_wait",
        items=rows,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.02,
        max_poll_interval=0.2,
        **kwargs,
    )


def test_errored_batches_are_resubmitted_and_replacements_reported(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    result = _operator(make_rows(25), emulator=ntropy_emulator).execute({"task_state_store": state_store})
    # The emulator counts a batch's end in a background task, a moment after its status reads as ended.
    stats = wait_for(
        lambda: (s := ntropy_emulator.stats())["batches_completed"] + s["batches_errored"] >= 6 and s
    )
    assert stats["batches_created"] == 6 and stats["batches_errored"] == 3
    assert len(result["replaced_batch_ids"]) == 3
    assert set(result["replaced_batch_ids"].values()) == set(result["batch_ids"])
    assert stats["batches_completed"] == 3


def test_resubmission_survives_a_crash_without_a_second_resubmission(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    rows = make_rows(10)
    with pytest.raises(RuntimeError, match="resubmission"):
        _operator(rows, emulator=ntropy_emulator, crash_on_resubmit=True).execute(
            {"task_state_store": state_store}
        )
    assert ntropy_emulator.stats()["batches_created"] == 2
    result = _operator(rows, emulator=ntropy_emulator).execute({"task_state_store": state_store})
    assert ntropy_emulator.stats()["batches_created"] == 2, "the retry re-attaches to the resubmitted batch"
    assert len(result["replaced_batch_ids"]) == 1


def test_budget_spent_names_every_batch_in_error(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    operator = _operator(make_rows(15), max_batch_error_retries=2)
    with pytest.raises(BatchesInErrorError) as caught:
        operator.execute({"task_state_store": state_store})
    assert ntropy_emulator.stats()["batches_created"] == 2 * 3
    final_ids = [state_store.values[f"ntropy_submit_chunk_{i}"]["batch_id"] for i in range(2)]
    assert all(batch_id in str(caught.value) for batch_id in final_ids)
    assert "2 batch(es) ended in error after 2 resubmission(s)" in str(caught.value)


def test_without_retries_budget_fails_at_once(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
):
    ntropy_emulator.configure(batch_error_rate=1.0)
    with pytest.raises(BatchesInErrorError):
        _operator(make_rows(5), max_batch_error_retries=0).execute({"task_state_store": state_store})
    assert ntropy_emulator.stats()["batches_created"] == 1


def test_without_a_state_store_one_try_still_works(
    ntropy_connection: str, ntropy_emulator, make_rows
) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    result = _operator(make_rows(12), emulator=ntropy_emulator).execute({})
    assert len(result["batch_ids"]) == 2 and len(result["replaced_batch_ids"]) == 2
    assert ntropy_emulator.stats()["batches_created"] == 4


def _deferred(rows: list[dict[str, Any]], state_store: Any) -> tuple[SubmitBatchOperator, Any]:
    from airflow.providers.common.compat.sdk import TaskDeferred

    operator = SubmitBatchOperator(
        task_id="submit_and_wait",
        items=rows,
        chunk_size=10,
        wait_for_completion=True,
        deferrable=True,
        min_defer_wait=0.0,  # defer however soon the batches end (they take seconds here)
        poll_interval=0.02,
        max_poll_interval=0.2,
        timeout=600,
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"task_state_store": state_store})
    return operator, deferred.value


def test_execute_complete_handles_every_event_status(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    from ntropy_provider.exceptions import NtropySubmitError

    ntropy_emulator.configure(items_per_second=1)
    operator, deferred = _deferred(make_rows(15), state_store)
    ids = deferred.trigger.batch_ids
    assert deferred.kwargs["summary"] == {
        "total": 15,
        "rejected": 0,
        "skipped": 0,
        "duplicates": 0,
        "input_rows": 15,
        "rejects_path": None,
    }
    context = {"task_state_store": state_store}

    def event(status: str, reason: str) -> dict[str, Any]:
        return {
            "status": status,
            "termination_reason": reason,
            "message": f"{status}/{reason}",
            "batch_ids": ids,
        }

    # success, with the method kwargs (a triggerer) and without them (dag.test() drops them)
    for kwargs in (deferred.kwargs, {}):
        result = operator.execute_complete(context, event("success", "completed"), **kwargs)
        assert result["batch_ids"] == ids and result["total"] == 15 and result["rejected"] == 0
    with pytest.raises(TimeoutError, match="timeout/timeout"):
        operator.execute_complete(context, event("timeout", "timeout"), **deferred.kwargs)
    with pytest.raises(NtropySubmitError, match="error/api_error"):
        operator.execute_complete(context, event("error", "api_error"), **deferred.kwargs)
    assert ntropy_emulator.stats()["batches_created"] == 2, "no event resubmits anything but batch_error"


@pytest.mark.parametrize(("poll", "most"), [(0, 10), (-1, 10), (60, 30)])
def test_bad_poll_intervals_refused_before_anything_is_paid_for(poll: float, most: float) -> None:
    # The trigger would refuse them only at defer time, after the batches were submitted (and charged).
    with pytest.raises(ValueError, match="poll_interval"):
        SubmitBatchOperator(task_id="s", items=[], poll_interval=poll, max_poll_interval=most)


def test_budget_spent_for_one_chunk_names_the_others_in_error_too(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    context = {"task_state_store": state_store}
    operator = _operator(make_rows(15), max_batch_error_retries=1)
    with pytest.raises(BatchesInErrorError):
        operator.execute(context)
    # Chunk 1 still has budget left (as after a resubmission that was never recorded as one).
    state_store.values["ntropy_submit_chunk_1"]["attempt"] = 0
    errored = [state_store.values[f"ntropy_submit_chunk_{i}"]["batch_id"] for i in range(2)]
    created = ntropy_emulator.stats()["batches_created"]
    with pytest.raises(BatchesInErrorError) as caught:
        operator._resubmit_errored(context, errored)
    assert all(batch_id in str(caught.value) for batch_id in errored), str(caught.value)
    assert ntropy_emulator.stats()["batches_created"] == created, "nothing resubmitted once the task fails"


def test_polling_wait_absorbs_a_transient_error(
    ntropy_connection: str, ntropy_emulator, state_store, make_rows
) -> None:
    from ntropy_provider.exceptions import NtropyConnectionError
    from ntropy_provider.hooks.ntropy import NtropyHook

    failures: list[str] = []

    class FlakyHook(NtropyHook):
        def get_batch(self, batch_id: str) -> Any:
            if not failures:
                failures.append(batch_id)
                raise NtropyConnectionError("connection reset after retries")
            return super().get_batch(batch_id)

    operator = _operator(make_rows(15))
    operator.get_hook = FlakyHook  # type: ignore[method-assign]
    result = operator.execute({"task_state_store": state_store})
    assert len(failures) == 1
    assert len(result["batch_ids"]) == 2
    # The emulator counts a batch's end in a background task, a moment after its status reads as ended.
    wait_for(lambda: ntropy_emulator.stats()["batches_completed"] == 2)
