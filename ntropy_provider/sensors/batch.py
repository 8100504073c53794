"""BatchSensor: wait for Ntropy batches to end, deferred to the triggerer or by poking."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout, AirflowSkipException
from airflow.sdk import BaseSensorOperator
from airflow.sdk.bases.sensor import PokeReturnValue

from ntropy_provider.api.models import Batch
from ntropy_provider.api.wire import BatchStatus
from ntropy_provider.exceptions import TRANSIENT_ERRORS, BatchesInErrorError
from ntropy_provider.hooks.connection import DEFAULT_CONN_ID
from ntropy_provider.triggers.batch import BatchTrigger
from ntropy_provider.utils.batch_ids import resolve_batch_ids

if TYPE_CHECKING:
    from airflow.sdk import Context


def errored_message(errored: Sequence[str], total: int) -> str:
    """The failure message naming every batch in error.

    :param errored: ids of the batches in error.
    :param total: how many batches were waited for.
    """
    return (
        f"{len(errored)} of {total} Ntropy batch(es) ended in error: {', '.join(errored)}. "
        "Their results are not available; resubmitting these batches often succeeds "
        "(SubmitBatchOperator(wait_for_completion=True, max_batch_error_retries=...) does it for you)."
    )


class BatchSensor(BaseSensorOperator):
    """Wait until every given Ntropy batch has ended; fail naming every batch that ended in ``error``.

    Deferrable by default (``deferrable=True``, not the ``[operators] default_deferrable`` setting, whose
    Airflow default ``False`` would make every wait hold a worker slot): it checks once, and only
    defers to :class:`~ntropy_provider.triggers.batch.BatchTrigger` (one trigger for all the batches)
    when some are still processing. With ``deferrable=False`` it pokes (``mode="poke"`` or
    ``"reschedule"``), one GET per pending batch per poke; a transient API error (5xx, 429, connection)
    only skips a poke, as it only delays a poll of the deferred wait. ``soft_fail`` turns failures into
    a skip.

    Returns (XCom) ``{"batch_ids": [...], "batches": [Batch.to_dict(), ...]}``, so that a downstream
    ``batch_ids=`` argument accepts it too.

    :param batch_ids: the batches: a list of ids, a single id, the XCom dict of
        ``SubmitBatchOperator`` or of another ``BatchSensor``, or an XComArg of any of them; no batch at
        all (an upstream input with no valid row) succeeds at once. Templated.
    :param ntropy_conn_id: the Airflow connection of the Ntropy API. Templated.
    :param deferrable: wait in the triggerer instead of a worker slot (pass ``False`` where no
        triggerer runs).
    :param max_poll_interval: longest interval between checks of the deferred wait, in seconds
        (``poke_interval`` is the shortest).
    :param kwargs: BaseSensorOperator arguments (``poke_interval``, ``timeout``, ``mode``, ``soft_fail``...).
    """

    template_fields: Sequence[str] = ("batch_ids", "ntropy_conn_id")
    ui_color = "#2e7d6b"

    def __init__(
        self,
        *,
        batch_ids: Any,
        ntropy_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = True,
        max_poll_interval: float = 300.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10.0)
        super().__init__(**kwargs)
        self.batch_ids = batch_ids
        self.ntropy_conn_id = ntropy_conn_id
        self.deferrable = deferrable
        self.max_poll_interval = max(max_poll_interval, float(self.poke_interval))

    def get_hook(self) -> Any:
        """The sync Ntropy hook for this sensor's connection."""
        from ntropy_provider.hooks.ntropy import NtropyHook

        return NtropyHook(ntropy_conn_id=self.ntropy_conn_id)

    def _ids(self) -> list[str]:
        ids = resolve_batch_ids(self.batch_ids)
        if not ids:
            # SubmitBatchOperator returns no batch for an empty input or one whose rows were all
            # quarantined: nothing to wait for is success, so the pipeline goes on (to empty results).
            self.log.info("No batch to wait for: the upstream submission created none")
        return ids

    def _check(self, ids: list[str]) -> list[Batch]:
        hook = self.get_hook()
        return [hook.get_batch(batch_id) for batch_id in ids]

    def _finish(self, ids: list[str], batches: list[dict[str, Any]]) -> dict[str, Any]:
        errored = [b["id"] for b in batches if b["status"] == BatchStatus.ERROR]
        if errored:
            raise BatchesInErrorError(errored_message(errored, len(ids)))
        return {"batch_ids": ids, "batches": batches}

    def poke(self, context: Context) -> bool | PokeReturnValue:
        """Check every batch once; done when all have ended.

        :param context: the task context.
        """
        ids = self._ids()
        try:
            batches = self._check(ids)
        except TRANSIENT_ERRORS as err:
            # As in the deferred wait: a 5xx, 429 or connection error after the hook's own retries is
            # not the batches' fault; the next poke tries again (the sensor's timeout still applies).
            self.log.warning("Transient error while checking the batches (%s: %s)", type(err).__name__, err)
            return False
        pending = [b for b in batches if not b.is_terminal]
        if pending:
            done = sum(b.progress for b in batches)
            total = sum(b.total for b in batches)
            self.log.info(
                "%d of %d batch(es) still processing (%s/%s items)",
                len(pending),
                len(ids),
                f"{done:,}",
                f"{total:,}",
            )
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(ids, [b.to_dict() for b in batches]))

    def execute(self, context: Context) -> Any:
        """Poke, or check once and defer to the triggerer.

        :param context: the task context.
        """
        if not self.deferrable:
            return super().execute(context)
        ids = self._ids()
        batches = self._check(ids)
        if all(b.is_terminal for b in batches):
            self.log.info("Every batch had already ended; not deferring")
            try:
                return self._finish(ids, [b.to_dict() for b in batches])
            except BatchesInErrorError as err:
                # BaseSensorOperator applies soft_fail only inside its poke loop and on resume; this
                # check bypasses both, so it must honour soft_fail itself, like the poke mode does.
                if self.soft_fail or self.never_fail:
                    raise AirflowSkipException(f"Skipping (soft_fail/never_fail): {err}") from err
                raise
        self.defer(
            trigger=BatchTrigger(
                batch_ids=ids,
                ntropy_conn_id=self.ntropy_conn_id,
                poll_interval=float(self.poke_interval),
                max_poll_interval=self.max_poll_interval,
                deadline=time.time() + float(self.timeout),
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=float(self.timeout)),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """Turn the trigger's event into the XCom value or a failure (``soft_fail`` makes it a skip).

        :param context: the task context.
        :param event: the BatchTrigger's event payload.
        """
        ids = list(event.get("batch_ids") or [])
        batches = list(event.get("batches") or [])
        if event.get("status") == "timeout":
            raise AirflowSensorTimeout(event.get("message"))
        if event.get("status") == "error" and event.get("termination_reason") != "batch_error":
            raise AirflowException(event.get("message"))
        self.log.info("%s", event.get("message"))
        if event.get("status") == "success":
            # The event carries id/status/progress/total; the full Batch objects come from one more GET.
            batches = [b.to_dict() for b in self._check(ids)]
        return self._finish(ids, batches)
