"""BatchSensor against the emulator: check once, defer, poke and reschedule, errors, soft_fail."""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import pytest

# airflow.exceptions holds it on every supported version (the Task SDK re-exports it from 3.2 on).
from airflow.exceptions import AirflowRescheduleException
from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from ntropy_provider.exceptions import BatchesInErrorError
from ntropy_provider.hooks.ntropy import NtropyHook
from ntropy_provider.sensors.batch import BatchSensor
from ntropy_provider.triggers.batch import BatchTrigger


def _create(count: int, size: int = 10) -> list[str]:
    hook = NtropyHook()
    rows = [
        {
            "id": f"s{i}",
            "description": "NETFLIX",
            "date": "2024-01-02",
            "amount": 9.99,
            "entry_type": "outgoing",
            "currency": "USD",
        }
        for i in range(size)
    ]
    return [hook.create_batch(rows).id for _ in range(count)]


def _finished(ids: list[str]) -> None:
    NtropyHook().wait_for_batches(ids, poll_interval=0.02, timeout=30)


def _sensor(batch_ids: Any, **kwargs: Any) -> BatchSensor:
    kwargs.setdefault("poke_interval", 0.02)
    kwargs.setdefault("timeout", 60)
    return BatchSensor(task_id="wait", batch_ids=batch_ids, **kwargs)


@pytest.mark.parametrize("form", ["list", "submit_xcom", "single"])
def test_already_ended_batches_succeed_without_deferring(ntropy_connection: str, ntropy_emulator, form: str):
    ids = _create(1 if form == "single" else 2)
    _finished(ids)
    value: Any = {"list": ids, "submit_xcom": {"batch_ids": ids, "total": 20}, "single": ids[0]}[form]
    result = _sensor(value, deferrable=True).execute({})
    assert result["batch_ids"] == ids
    assert [b["id"] for b in result["batches"]] == ids
    assert all(b["status"] == "completed" and b["operation"] for b in result["batches"])


@pytest.mark.parametrize("deferrable", [True, False])
def test_no_batches_succeed_at_once(ntropy_connection: str, ntropy_emulator, deferrable: bool) -> None:
    # An input whose rows were all quarantined submits no batch; the wait must not break the pipeline.
    submitted = {"batch_ids": [], "total": 0, "rejected": 3, "rejects_path": "/tmp/r.jsonl"}
    result = _sensor(submitted, deferrable=deferrable).execute({})
    assert result == {"batch_ids": [], "batches": []}
    assert ntropy_emulator.stats()["requests"].get("GET /v3/batches/{batch_id}", 0) == 0


def test_processing_batches_defer_one_trigger_for_all(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=5)
    ids = _create(3)
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(ids, deferrable=True, timeout=600, max_poll_interval=30).execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, BatchTrigger)
    kwargs = trigger.serialize()[1]
    assert kwargs["batch_ids"] == ids
    assert kwargs["poll_interval"] == 0.02 and kwargs["max_poll_interval"] == 30
    assert kwargs["deadline"] == pytest.approx(dt.datetime.now(dt.UTC).timestamp() + 600, abs=30)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout == dt.timedelta(seconds=600)


def test_errored_batch_fails_at_once_naming_it(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    ids = _create(2)
    _finished(ids)
    with pytest.raises(BatchesInErrorError) as caught:
        _sensor(ids, deferrable=True).execute({})
    assert all(i in str(caught.value) for i in ids)
    assert "resubmitting" in str(caught.value)


def test_errored_batch_soft_fail_skips_at_first_check(ntropy_connection: str, ntropy_emulator) -> None:
    # The deferrable path's check before deferring is outside BaseSensorOperator's soft_fail handling.
    ntropy_emulator.configure(batch_error_rate=1.0)
    ids = _create(1)
    _finished(ids)
    with pytest.raises(AirflowSkipException, match=ids[0]):
        _sensor(ids, deferrable=True, soft_fail=True).execute({})


def test_poke_mode_waits_and_returns_batches(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=500)
    ids = _create(2, size=100)
    result = _sensor(ids, deferrable=False, mode="poke").execute({})
    assert [b["status"] for b in result["batches"]] == ["completed", "completed"]
    assert ntropy_emulator.stats()["requests"]["GET /v3/batches/{batch_id}"] > 2


def test_poke_mode_errored_batch_with_soft_fail_skips(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(batch_error_rate=1.0)
    ids = _create(1)
    _finished(ids)
    with pytest.raises(AirflowSkipException):
        _sensor(ids, deferrable=False, soft_fail=True).execute({})
    with pytest.raises(BatchesInErrorError):
        _sensor(ids, deferrable=False).execute({})


def test_reschedule_mode_frees_the_slot_while_processing(ntropy_connection: str, ntropy_emulator) -> None:
    ntropy_emulator.configure(items_per_second=5)
    ids = _create(1)
    ti = mock.Mock()
    ti.get_first_reschedule_date.return_value = None
    with pytest.raises(AirflowRescheduleException):
        _sensor(ids, deferrable=False, mode="reschedule", poke_interval=5).execute({"ti": ti})


def _event(ids: list[str], status: str, reason: str, errored: list[str] = ()) -> dict[str, Any]:
    return {
        "status": status,
        "termination_reason": reason,
        "message": f"{status}: {reason}",
        "batch_ids": ids,
        "errored_batch_ids": list(errored),
        "batches": [
            {"id": i, "status": "error" if i in errored else "completed", "progress": 1, "total": 1}
            for i in ids
        ],
    }


def test_execute_complete_turns_events_into_xcom_or_failures(ntropy_connection: str, ntropy_emulator) -> None:
    ids = _create(2)
    _finished(ids)
    sensor = _sensor(ids)
    result = sensor.execute_complete({}, _event(ids, "success", "completed"))
    assert result["batch_ids"] == ids and result["batches"][0]["created_at"]
    with pytest.raises(BatchesInErrorError, match=ids[1]):
        sensor.execute_complete({}, _event(ids, "error", "batch_error", errored=[ids[1]]))
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, _event(ids, "timeout", "timeout"))


def test_soft_fail_turns_a_deferred_failure_into_a_skip(ntropy_connection: str, ntropy_emulator) -> None:
    sensor = _sensor(["b1"], soft_fail=True)
    event = _event(["b1"], "error", "batch_error", errored=["b1"])
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution("execute_complete", {"event": event}, {})


class _FlakyHook(NtropyHook):
    """The real hook, whose first get_batch fails as if the API's 503s outlasted the retry budget."""

    failures = 0

    def get_batch(self, batch_id: str) -> Any:
        if _FlakyHook.failures == 0:
            _FlakyHook.failures += 1
            from ntropy_provider.exceptions import NtropyServerError

            raise NtropyServerError("HTTP 503 after retries", status=503)
        return super().get_batch(batch_id)


def test_poke_absorbs_a_transient_error(ntropy_connection: str, ntropy_emulator) -> None:
    ids = _create(1)
    _finished(ids)
    _FlakyHook.failures = 0
    sensor = _sensor(ids, deferrable=False, mode="poke")
    with mock.patch.object(sensor, "get_hook", lambda: _FlakyHook()):
        result = sensor.execute({})
    assert _FlakyHook.failures == 1
    assert [b["status"] for b in result["batches"]] == ["completed"]
