"""SubmitBatchOperator's templated fields: paths are rendered, literal rows are data and never rendered."""

from __future__ import annotations

from airflow.sdk import ObjectStoragePath

from ntropy_provider.operators.submit_batch import SubmitBatchOperator

ROW = {
    "id": "a",
    "description": "{{ not_defined }} {% raw %} 50% OFF",
    "date": "2024-01-02",
    "amount": 1,
    "entry_type": "outgoing",
    "currency": "USD",
}


def test_object_storage_paths_are_rendered() -> None:
    operator = SubmitBatchOperator(
        task_id="submit",
        items=ObjectStoragePath("file:///landing/date={{ ds }}/in.parquet"),
        on_invalid="quarantine",
        rejects_path=ObjectStoragePath("file:///out/date={{ ds }}/rejects.jsonl"),
    )
    operator.render_template_fields({"ds": "2024-01-02"})
    assert isinstance(operator.items, ObjectStoragePath)
    assert str(operator.items) == "file:///landing/date=2024-01-02/in.parquet"
    assert str(operator.rejects_path) == "file:///out/date=2024-01-02/rejects.jsonl"


def test_literal_rows_are_not_rendered() -> None:
    # A bank description may hold "{{" or "{%": rendering it would fail or alter the data.
    for items in ([dict(ROW)], (dict(ROW),)):
        operator = SubmitBatchOperator(task_id="submit", items=items)
        operator.render_template_fields({"ds": "2024-01-02"})
        assert list(operator.items) == [ROW]
