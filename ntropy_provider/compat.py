"""Every difference between the Airflow versions the provider supports (3.1, 3.2, 3.3 and later).

The rest of the package imports what moved between versions from here, or from Airflow's own
``airflow.providers.common.compat.sdk`` (exceptions, ``BaseHook``, ``AirflowPlugin``, ...), and never
checks a version itself. Differences are detected by feature, not by version number, so that a
backport or a later release takes the better path by itself.

What differs, and what the provider does about it:

* ``context["task_state_store"]`` (Airflow 3.3+): before, :class:`VariableTaskStateStore` keeps the
  same records in Airflow Variables written through the Task SDK, deleted once the task succeeded
  (:func:`task_state_store`).
* ``PartitionedAssetTimetable`` (3.2+): on 3.1 :func:`partitioned_asset_timetable` raises
  :class:`FeatureNotAvailable` at parse time, naming the feature and the way out.
* The webhook receiver records partition-keyed asset events (3.2+): on 3.1 it is not mounted (the
  plugin logs why) and :func:`require_partitioned_assets` refuses to build it.
* The triggerer calls a trigger's ``on_kill`` from 3.3 on; before, BatchTrigger's note that Ntropy
  batches cannot be cancelled is simply not logged (nothing to adapt).
* ``ObjectStoragePath.bucket`` keeps ``conn@`` on 3.1 (universal-pathlib 0.2): :func:`storage_bucket`.
* ``CronDataIntervalTimetable`` is in ``airflow.sdk`` from 3.2 on, in ``airflow.timetables.interval``
  on 3.1 (:data:`CronDataIntervalTimetable`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from airflow.providers.common.compat.sdk import AirflowException

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1: not yet re-exported by the Task SDK
    from airflow.timetables.interval import CronDataIntervalTimetable

__all__ = [
    "CronDataIntervalTimetable",
    "FeatureNotAvailable",
    "VariableTaskStateStore",
    "partitioned_asset_timetable",
    "task_state_store",
]

#: The prefix of every Variable :class:`VariableTaskStateStore` writes (find leftovers with it).
VARIABLE_PREFIX = "ntropy_task_state"


class FeatureNotAvailable(AirflowException):
    """A provider feature needs a newer Airflow than the one installed.

    :param feature: what the user tried to use.
    :param needs: the Airflow version that has it, e.g. ``"3.2"``.
    :param instead: what to do on this version.
    """

    def __init__(self, feature: str, needs: str, instead: str) -> None:
        super().__init__(
            f"{feature} needs Airflow >= {needs}; this is Airflow {airflow_version()}. {instead}"
        )
        self.feature = feature
        self.needs = needs


def airflow_version() -> str:
    """The installed Airflow's version, for messages (never for decisions)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-core")
    except PackageNotFoundError:  # pragma: no cover - installs always have it from 3.0 on
        return version("apache-airflow")


# --------------------------------------------------------------------------------------------------
# A store that survives task tries
# --------------------------------------------------------------------------------------------------
class TaskStateAccessor(Protocol):
    """The interface of Airflow 3.3's ``context["task_state_store"]`` that the provider uses."""

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, else ``default``."""

    def set(self, key: str, value: Any, **kwargs: Any) -> None:
        """Store a JSON value under ``key`` (``retention=`` among the keyword arguments)."""

    def delete(self, key: str) -> None:
        """Forget ``key``."""


class VariableTaskStateStore:
    """``task_state_store`` for Airflow 3.1 and 3.2: one Airflow Variable per key, per task instance.

    A task may read and write Variables under Airflow 3's task isolation (the Task SDK sends them
    through the API server), and Variables outlive task tries, which is all the submission ledger
    needs. The Variable's key is ``ntropy_task_state.<digest>.<key>``, where the digest stands for
    the dag id, run id, task id and map index (keys have a length limit; the description names them
    in full, for whoever browses *Admin > Variables*).

    Unlike 3.3's store, Variables never expire: the records are deleted once the task has
    succeeded (:attr:`forget_after_success`). A task that failed for good keeps its records, so that
    clearing it later re-attaches to its batches instead of paying for them again; delete the
    Variables by their prefix when that is no longer wanted.

    Every write is read back, because the Task SDK's ``Variable.set`` of these versions logs a
    failed write instead of raising it, and a record that silently went missing would let a retry
    submit again.

    :param dag_id: the task instance's DAG.
    :param run_id: its run.
    :param task_id: its task.
    :param map_index: its map index (``-1`` when not mapped).
    """

    #: The records are deleted after success (3.3's store keeps them for its retention instead).
    forget_after_success = True

    def __init__(self, *, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> None:
        self.scope = f"{dag_id}/{run_id}/{task_id}/{map_index}"
        digest = hashlib.sha256(self.scope.encode()).hexdigest()[:32]
        self._prefix = f"{VARIABLE_PREFIX}.{digest}."

    @classmethod
    def for_task_instance(cls, ti: Any) -> VariableTaskStateStore:
        """The store of a running task instance.

        :param ti: ``context["ti"]``.
        """
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
        )

    def variable_key(self, key: str) -> str:
        """The Airflow Variable that holds ``key``.

        :param key: the record's key.
        """
        return self._prefix + key

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value stored under ``key``, else ``default``.

        :param key: the record's key.
        :param default: returned when nothing is stored.
        """
        from airflow.providers.common.compat.sdk import Variable

        return Variable.get(self.variable_key(key), default=default, deserialize_json=True)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        """Store a JSON value under ``key``, and check that it was stored.

        :param key: the record's key.
        :param value: a JSON-serialisable value.
        :param retention: ignored: the records live until the task succeeds.
        :raises RuntimeError: the Variable could not be written.
        """
        from airflow.providers.common.compat.sdk import Variable

        variable = self.variable_key(key)
        Variable.set(
            variable,
            value,
            description=f"Ntropy provider crash-recovery record {key!r} of task instance {self.scope}; "
            "deleted when the task succeeds",
            serialize_json=True,
        )
        if Variable.get(variable, default=None, deserialize_json=True) != json.loads(json.dumps(value)):
            raise RuntimeError(
                f"Could not record {key!r} of task instance {self.scope} in the Airflow Variable "
                f"{variable!r} (see the error logged above); stopping before anything else is sent, so "
                "that a retry cannot submit twice"
            )

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens when it is not stored).

        :param key: the record's key.
        """
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(self.variable_key(key))


def task_state_store(context: Any) -> Any | None:
    """The store of the running task instance that survives its tries, on every supported Airflow.

    :param context: the task's context.
    :return: ``context["task_state_store"]`` on Airflow 3.3+, a :class:`VariableTaskStateStore`
        before, or ``None`` outside a task instance (a bare ``execute({})`` in a test).
    """
    native = context.get("task_state_store")
    if native is not None:
        return native
    ti = context.get("ti")
    if ti is None:
        return None
    return VariableTaskStateStore.for_task_instance(ti)


def forgets_after_success(store: Any) -> bool:
    """Whether the task must delete its records once it succeeded (the store keeps them for ever).

    :param store: what :func:`task_state_store` returned.
    """
    return bool(getattr(store, "forget_after_success", False))


def add_callback(existing: Any, callback: Callable[[Any], None]) -> list[Callable[[Any], None]]:
    """A task callback argument (``None``, one callable or a list) with ``callback`` appended.

    :param existing: the user's ``on_success_callback`` (or another callback argument).
    :param callback: the provider's own.
    """
    if existing is None:
        return [callback]
    if isinstance(existing, Sequence) and not callable(existing):
        return [*existing, callback]
    return [existing, callback]


# --------------------------------------------------------------------------------------------------
# Object storage paths
# --------------------------------------------------------------------------------------------------
def storage_bucket(path: Any) -> str:
    """The bucket of an ``ObjectStoragePath``, without the connection id (``s3://conn@bucket``).

    Airflow 3.1 pins universal-pathlib 0.2, whose ``bucket`` keeps the ``conn@`` part (and is empty
    for ``memory://`` paths, whose first segment is then part of ``key``); 0.3 (Airflow 3.2+) drops it.

    :param path: an ``ObjectStoragePath``.
    """
    return (path.bucket or "").rpartition("@")[2]


# --------------------------------------------------------------------------------------------------
# Partitioned assets (Airflow 3.2+)
# --------------------------------------------------------------------------------------------------
#: What the webhook receiver records needs (partition-keyed asset events, partition-aware consumers).
WEBHOOK_RECEIVER = "The Ntropy webhook receiver (partition-keyed asset events)"


def has_partitioned_assets() -> bool:
    """Whether this Airflow has partitioned assets (asset events with a partition key, 3.2+)."""
    try:
        from airflow.sdk import PartitionedAssetTimetable  # noqa: F401
    except ImportError:
        return False
    return True


def require_partitioned_assets(feature: str) -> None:
    """Fail, naming ``feature``, when this Airflow has no partitioned assets.

    :param feature: what needs them, for the message.
    :raises FeatureNotAvailable: on Airflow 3.1.
    """
    if not has_partitioned_assets():
        raise FeatureNotAvailable(
            feature,
            needs="3.2",
            instead="Upgrade Airflow to use it; every other part of the provider works on this version.",
        )


# --------------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------------
def partitioned_asset_timetable(assets: Any, *, dag_id: str) -> Any:
    """``PartitionedAssetTimetable(assets=...)`` (Airflow 3.2+: one DAG run per partition key).

    :param assets: the asset (or asset expression) to schedule on.
    :param dag_id: the DAG that asks, named in the error.
    :raises FeatureNotAvailable: on Airflow 3.1, at parse time, so that the DAG shows an import
        error that says what is missing instead of running with different semantics.
    """
    try:
        from airflow.sdk import PartitionedAssetTimetable
    except ImportError:
        raise FeatureNotAvailable(
            f"DAG {dag_id!r}: one run per batch (PartitionedAssetTimetable)",
            needs="3.2",
            instead="Upgrade Airflow, or schedule your own DAG on the asset with schedule=[asset] and "
            "set [ntropy_webhooks] partition_by_batch = False (see the README's support table).",
        ) from None
    return PartitionedAssetTimetable(assets=assets)
