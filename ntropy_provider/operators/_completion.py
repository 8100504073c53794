"""Waiting for a submission's batches to end, and resubmitting the chunks whose batch ended in error.

The second half of :class:`~ntropy_provider.operators.submit_batch.SubmitBatchOperator`'s work with
``wait_for_completion``: deferred to :class:`~ntropy_provider.triggers.batch.BatchTrigger` or polling in
the worker, then a retry of errored chunks within ``max_batch_error_retries`` (recorded in the same
ledger as the submission, so a task retry does not resubmit them again). A mixin, so that the operator
module keeps the submission itself; it reads the operator's arguments and submission methods.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.exceptions import BatchesInErrorError, NtropySubmitError, NtropyTimeoutError
from ntropy_provider.triggers.batch import BatchTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from ntropy_provider.api.models import Batch


class CompletionWaitMixin:
    """Wait for the submitted batches and resubmit errored chunks; mixed into SubmitBatchOperator.

    The host class provides the arguments (``poll_interval``, ``max_poll_interval``, ``deferrable``,
    ``wait_for_completion``, ``min_defer_wait``, ``max_batch_error_retries``, ``ntropy_conn_id``) and the
    submission's methods (``scan``, ``_ledger``, ``_load_states``, ``_reconcile``, ``_send``,
    ``_result``, ``get_hook``, ``defer``, ``log``) and ``_expected_end``, when the submission expects
    its last batches to end.
    """

    def _wait(self, hook: Any, batch_ids: list[str], *, timeout: float | None, purpose: str) -> list[Batch]:
        """Poll (sync) until every batch ended; the batches in the order given."""
        return hook.wait_for_batches(
            batch_ids,
            poll_interval=self.poll_interval,
            timeout=timeout,
            max_poll_interval=self.max_poll_interval,
            purpose=purpose,
        )

    def _resubmit_errored(self, context: Context, errored: list[str]) -> bool:
        """Resubmit the chunks whose batch is in ``errored``, within the budget.

        :return: whether anything was resubmitted.
        :raises BatchesInErrorError: naming every batch that stays in error when the budget is spent.
        """
        plan = self.scan()
        ledger = self._ledger(context)
        states = self._load_states(ledger, plan)
        hook = self.get_hook()
        self._reconcile(hook, ledger, states)
        by_batch = {s.batch_id: i for i, s in states.items()}
        retry: set[int] = set()
        stuck: list[str] = []
        for batch_id in errored:
            index = by_batch.get(batch_id)
            if index is None:
                continue  # already replaced by an earlier try
            if states[index].attempt < self.max_batch_error_retries:
                retry.add(index)
            else:
                stuck.append(batch_id)
        if stuck:
            # The task fails: the others are not resubmitted (nothing would collect them), but they are
            # in error too, and the message names every batch in error.
            others = [str(states[i].batch_id) for i in sorted(retry)]
            raise BatchesInErrorError(
                f"{len(stuck)} batch(es) ended in error after {self.max_batch_error_retries} "
                f"resubmission(s): {', '.join(stuck)}"
                + (
                    f"; {len(others)} more in error, not resubmitted because the task fails: "
                    f"{', '.join(others)}"
                    if others
                    else ""
                )
            )
        for index in sorted(retry):
            state = states[index]
            self.log.warning(
                "Chunk %d: batch %s ended in error; resubmitting (attempt %d of %d)",
                index,
                state.batch_id,
                state.attempt + 1,
                self.max_batch_error_retries,
            )
            ledger.record_replaced(index, state)
        summary = self._ledger(context).load_wait()[0]
        self._send(hook, ledger, plan, states, retry, deadline=None, summary=summary, pausable=False)
        return bool(retry)

    def _current_result(self, context: Context, summary: dict[str, Any]) -> dict[str, Any]:
        return self._result(self._ledger(context).recorded(), summary)

    def _after_submit(
        self, context: Context, result: dict[str, Any], deadline: float | None
    ) -> dict[str, Any]:
        if not self.wait_for_completion or not result["batch_ids"]:
            return self._report_credits(result)
        summary = {k: v for k, v in result.items() if k not in ("batch_ids", "credits", "replaced_batch_ids")}
        if self.deferrable:
            return self._defer_or_finish(context, result, deadline, summary)
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.time())
            batches = self._wait(self.get_hook(), result["batch_ids"], timeout=remaining, purpose="complete")
            errored = [b.id for b in batches if b.status == "error"]
            if not errored:
                return self._report_credits(result)
            self._resubmit_errored(context, errored)
            result = self._current_result(context, summary)

    def _report_credits(self, result: dict[str, Any]) -> dict[str, Any]:
        """Log what the run spent (the XCom holds it too); the result, unchanged."""
        if not result.get("dry_run"):
            self.log.info(
                "Credits spent by this run: %d (%d transaction(s) sent in %d batch(es), %d resubmitted); "
                "%d rejected, %d already enriched and skipped, of %d input row(s)",
                result.get("credits", 0),
                result.get("total", 0),
                len(result.get("batch_ids") or []),
                len(result.get("replaced_batch_ids") or {}),
                result.get("rejected", 0),
                result.get("skipped", 0),
                result.get("input_rows", 0),
            )
        return result

    def _defer_or_finish(
        self, context: Context, result: dict[str, Any], deadline: float | None, summary: dict[str, Any]
    ) -> dict[str, Any]:
        # One check before deferring: batches that already ended need no triggerer round trip. One list
        # request of the key's batches in progress says whether any is still running (then the task
        # defers at once); only when none is are their statuses read, to find the errored ones.
        hook = self.get_hook()
        ids = set(result["batch_ids"])
        running = not self._ended_soon(hook, ids)
        batches = [] if running else _latest_batches(hook, result["batch_ids"])
        if not running and all(b.is_terminal for b in batches):
            errored = [b.id for b in batches if b.status == "error"]
            if not errored:
                return self._report_credits(result)
            self._resubmit_errored(context, errored)
            result = self._current_result(context, summary)
        # The deadline and counts travel both as method kwargs (the triggerer keeps them) and in the
        # state store (dag.test() drops method kwargs on resume).
        self._ledger(context).save_wait(deadline, summary)
        self.defer(
            trigger=BatchTrigger(
                batch_ids=result["batch_ids"],
                ntropy_conn_id=self.ntropy_conn_id,
                poll_interval=self.poll_interval,
                max_poll_interval=self.max_poll_interval,
                deadline=deadline,
            ),
            method_name="execute_complete",
            kwargs={"deadline": deadline, "summary": summary},
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover

    def _ended_soon(self, hook: Any, ids: set[str]) -> bool:
        """Whether none of ``ids`` is in progress, having waited here (not deferred) for the ones expected
        to end within ``min_defer_wait``. One list request per look.

        A deferral costs seconds of scheduling, and a trigger that fires seconds after the deferral races
        the scheduler (Airflow can take the late exit of the deferring process for a task killed
        externally, and retry it). When the submission could not tell when its batches end, two looks a
        moment apart tell their speed.
        """
        expected = self._expected_end
        until = time.monotonic() + self.min_defer_wait
        seen: dict[str, tuple[float, int]] = {}
        while True:
            now = time.monotonic()
            running = {b.id: b for b in hook.list_batches(status=BatchStatus.PROCESSING.value) if b.id in ids}
            if not running:
                return True
            if expected is None and seen and set(running) <= set(seen):
                speeds = {i: (b.progress - seen[i][1]) / (now - seen[i][0]) for i, b in running.items()}
                if min(speeds.values()) > 0:
                    expected = max((b.total - b.progress) / speeds[i] for i, b in running.items())
            left = until - now
            if left <= 0 or (expected is not None and expected >= left):
                return False  # not within min_defer_wait: the triggerer waits, not a worker
            seen = {i: (now, b.progress) for i, b in running.items()}
            time.sleep(min(1.0, self.poll_interval, left))

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        deadline: float | None = None,
        summary: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Resume after the trigger fired: succeed, resubmit errored batches and wait again, or fail.

        :param context: the task context.
        :param event: the BatchTrigger's event payload.
        :param deadline: the absolute deadline of the wait (Unix time), carried across deferrals.
        :param summary: the counts of the submission, carried across deferrals.
        """
        if summary is None:
            summary, deadline = self._ledger(context).load_wait()
        status = event.get("status")
        self.log.info("%s", event.get("message"))
        if status == "success":
            return self._report_credits(self._current_result(context, summary))
        if status == "timeout":
            raise NtropyTimeoutError(event.get("message"))
        if event.get("termination_reason") != "batch_error":
            raise NtropySubmitError(event.get("message"))
        self._resubmit_errored(context, list(event.get("errored_batch_ids") or []))
        result = self._current_result(context, summary)
        return self._defer_or_finish(context, result, deadline, summary)


def _latest_batches(hook: Any, batch_ids: list[str]) -> list[Batch]:
    """The batches, in the order given: from the key's newest where they are among them, a GET each
    for the rest (see ``NtropyHook.find_among_newest``)."""
    found = hook.find_among_newest(batch_ids)
    return [found.get(batch_id) or hook.get_batch(batch_id) for batch_id in batch_ids]
