"""ntropy_provider.compat on the installed Airflow (the suite runs on 3.1, 3.2 and 3.3)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset

from ntropy_provider.compat import (
    VARIABLE_PREFIX,
    FeatureNotAvailable,
    VariableTaskStateStore,
    add_callback,
    forgets_after_success,
    has_partitioned_assets,
    partitioned_asset_timetable,
    task_state_store,
)


def test_partitioned_timetable_or_a_parse_time_error_naming_the_feature() -> None:
    asset = Asset("ntropy://batches/x")
    if has_partitioned_assets():
        from airflow.sdk import PartitionedAssetTimetable

        assert isinstance(partitioned_asset_timetable(asset, dag_id="d"), PartitionedAssetTimetable)
        return
    with pytest.raises(
        FeatureNotAvailable, match=r"DAG 'd'.*PartitionedAssetTimetable.*needs Airflow >= 3\.2"
    ):
        partitioned_asset_timetable(asset, dag_id="d")


@pytest.mark.skipif(has_partitioned_assets(), reason="the receiver exists on this Airflow")
def test_webhook_receiver_refuses_to_start_without_partitioned_assets() -> None:
    from ntropy_provider.webhooks.app import create_app
    from ntropy_provider.webhooks.plugin import NtropyWebhooksPlugin

    with pytest.raises(FeatureNotAvailable, match=r"webhook receiver.*needs Airflow >= 3\.2"):
        create_app()
    assert NtropyWebhooksPlugin.fastapi_apps == [], "nothing is mounted on this version"


def test_native_task_state_store_is_preferred() -> None:
    native = object()
    assert task_state_store({"task_state_store": native, "ti": object()}) is native
    assert task_state_store({}) is None, "outside a task instance there is no store"
    assert not forgets_after_success(native)


def test_variable_store_is_scoped_to_one_task_instance() -> None:
    ti = SimpleNamespace(dag_id="d" * 250, run_id="r" * 250, task_id="t" * 250, map_index=3)
    store = task_state_store({"ti": ti})
    assert isinstance(store, VariableTaskStateStore)
    assert forgets_after_success(store)
    key = store.variable_key("ntropy_submit_chunk_12")
    assert key.startswith(f"{VARIABLE_PREFIX}.") and len(key) <= 250, "Airflow's key length limit"
    other_index = VariableTaskStateStore(dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=4)
    assert other_index.variable_key("ntropy_submit_chunk_12") != key
    assert VariableTaskStateStore.for_task_instance(ti).variable_key("k") == store.variable_key("k")


def test_add_callback_keeps_the_users_callbacks() -> None:
    def mine(context):
        return None

    def theirs(context):
        return None

    assert add_callback(None, mine) == [mine]
    assert add_callback(theirs, mine) == [theirs, mine]
    assert add_callback([theirs], mine) == [theirs, mine]


def test_connection_form_reaches_airflow_where_it_can() -> None:
    """3.2+ reads the declarative form from get_provider_info(); 3.1 only through Flask-AppBuilder."""
    import importlib.util

    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = {key for key in manager.connection_form_widgets if key.startswith("extra__ntropy__")}
    if not has_partitioned_assets() and importlib.util.find_spec("flask_appbuilder") is None:
        # ProvidersManager alone has no widgets on Airflow 3.1 without Flask-AppBuilder; the UI's API builds
        # the form from the hook with FAB mocked (tests/hooks/test_hook_connection_form.py).
        assert widgets == set()
        return
    assert "extra__ntropy__region" in widgets
    assert manager.field_behaviours["ntropy"]["relabeling"]["password"] == "API key"


class _FakeVariables:
    """Airflow's ``Variable`` API over a dict; ``lossy`` drops writes as a failed ``Variable.set`` does."""

    def __init__(self, *, lossy: bool = False) -> None:
        self.values: dict[str, Any] = {}
        self.lossy = lossy

    def set(self, key: str, value: Any, description: str | None = None, serialize_json: bool = False) -> None:
        if not self.lossy:
            self.values[key] = json.loads(json.dumps(value))

    def get(self, key: str, default: Any = None, deserialize_json: bool = False) -> Any:
        return self.values.get(key, default)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def _store_with(monkeypatch: pytest.MonkeyPatch, variables: _FakeVariables) -> VariableTaskStateStore:
    monkeypatch.setattr("airflow.providers.common.compat.sdk.Variable", variables)
    return VariableTaskStateStore(dag_id="d", run_id="r", task_id="t")


def test_variable_store_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    variables = _FakeVariables()
    store = _store_with(monkeypatch, variables)
    store.set("ntropy_submit_chunk_0", {"size": 3, "batch_id": None}, retention=None)
    assert store.get("ntropy_submit_chunk_0") == {"size": 3, "batch_id": None}
    assert list(variables.values) == [store.variable_key("ntropy_submit_chunk_0")]
    store.delete("ntropy_submit_chunk_0")
    assert store.get("ntropy_submit_chunk_0") is None and variables.values == {}


def test_a_write_that_did_not_land_stops_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    # Airflow 3.1/3.2's Variable.set logs a failed write and returns: the read-back must catch it.
    store = _store_with(monkeypatch, _FakeVariables(lossy=True))
    expected = "Could not record 'ntropy_submit_chunk_1' of task instance d/r/t/-1"
    with pytest.raises(RuntimeError, match=expected):
        store.set("ntropy_submit_chunk_1", {"size": 3})
