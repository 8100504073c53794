"""ResultsToParquetOperator on the emulator: values row by row, split, input columns, stores, refusals."""

from __future__ import annotations

import datetime as dt
import random
import sys
import types
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from airflow.sdk import Asset, AssetAlias, ObjectStoragePath
from airflow.sdk.execution_time.context import OutletEventAccessors

from ntropy_provider.api.models import Batch
from ntropy_provider.io.source_rows import flatten_location
from ntropy_provider.operators.results_to_parquet import BatchesNotCompletedError, ResultsToParquetOperator
from ntropy_provider.results.datasets import DATA_FILE_NAME, RowCountMismatchError, read_schema_version
from ntropy_provider.results.input_join import InputJoinError
from ntropy_provider.results.schema import RESULTS_ARROW_SCHEMA, RESULTS_SCHEMA_VERSION


def _run(operator: ResultsToParquetOperator) -> tuple[dict[str, Any], OutletEventAccessors]:
    events = OutletEventAccessors()
    result = operator.execute({"outlet_events": events})  # type: ignore[arg-type]
    return result, events


def _read(directory: str | ObjectStoragePath) -> pa.Table:
    path = ObjectStoragePath(str(directory)) / DATA_FILE_NAME
    with path.open("rb") as handle:
        return pq.read_table(handle)


def _operator(batch_ids: Any, output_path: Any, conn_id: str, **kwargs: Any) -> ResultsToParquetOperator:
    return ResultsToParquetOperator(
        task_id=f"results_{random.randrange(10**9)}",
        batch_ids=batch_ids,
        output_path=output_path,
        ntropy_conn_id=conn_id,
        **kwargs,
    )


def test_rows_match_the_emulator_results_row_by_row(
    sample_rows, results_env, tmp_path, flatten_in_python
) -> None:
    results_env.emulator.configure(item_error_rate=0.05)
    rows = sample_rows(300)
    batch_ids = results_env.submit(rows, chunk_size=100)
    result, _ = _run(
        _operator({"batch_ids": batch_ids, "total": 300}, str(tmp_path / "out"), results_env.conn_id)
    )

    expected_ok: list[dict[str, Any]] = []
    expected_errors: list[dict[str, Any]] = []
    for batch_id in batch_ids:
        for item in results_env.hook.get_batch_results(batch_id).results:
            row = flatten_in_python(item, batch_id)
            (expected_errors if item["error"] else expected_ok).append(row)
    ok, errors = _read(result["ok_path"]), _read(result["errors_path"])
    assert ok.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    assert errors.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    assert read_schema_version(ok) == RESULTS_SCHEMA_VERSION
    assert ok.to_pylist() == expected_ok
    assert errors.to_pylist() == expected_errors

    # The sample holds every shape the schema has to carry; make sure they were really exercised.
    assert {"person", "organization"} <= set(ok.column("counterparty_type").to_pylist())
    assert ok.column("counterparty_type").null_count > 0
    assert any(len(value) > 0 for value in ok.column("intermediaries").to_pylist())
    assert ok.column("location_latitude").drop_null().to_pylist(), "no structured location with coordinates"
    assert ok.column("location_raw_address").null_count > 0
    # Rows without a holder get the documented special category (docs/ntropy-api.md), not null.
    assert "missing account holder information" in ok.column("category_general").to_pylist()
    assert ok.column("category_accounting").null_count > 0, "rows without a business holder have none"
    assert ok.column("category_accounting").drop_null().to_pylist()
    assert {"account_holder_not_found", "internal_error"} == set(errors.column("error_code").to_pylist())
    assert errors.column("intermediaries").null_count == errors.num_rows


def _as_a_newer_api_would_answer(raw: bytes) -> bytes:
    """The emulator's results body with what the API also returns: entity contact and industry fields,
    fields that the results schema does not know yet, and ``created_at`` without a zone on every other row.
    """
    body = orjson.loads(raw)
    for index, item in enumerate(body["results"]):
        if index % 2:
            item["created_at"] = item["created_at"].removesuffix("Z")
        if item["error"] is None:
            item["recurrence"] = {"type": "one off", "group_id": f"g-{index % 3}"}
        entities = item.get("entities") or {}
        counterparty = entities.get("counterparty")
        if counterparty and counterparty["type"] == "organization":
            counterparty.update(
                phone_number=f"+1 555 {index:04d}", tax_number=f"{index:02d}-1", naics2017="722515"
            )
        for position, intermediary in enumerate(entities.get("intermediaries") or []):
            intermediary.update(naics2017="522320", tax_number=None)
            if position == 0:
                intermediary["rating"] = 4.5
    return orjson.dumps(body)


def test_every_field_the_api_returns_is_kept(
    sample_rows, results_env, tmp_path, flatten_in_python, monkeypatch
) -> None:
    """The ok dataset keeps phone_number, tax_number, naics2017 (counterparty and intermediaries) and the
    fields the schema does not know (in extra_json); created_at with or without a zone is UTC."""
    from ntropy_provider.hooks.ntropy import NtropyHook

    real_raw = NtropyHook.get_batch_results_raw
    monkeypatch.setattr(
        NtropyHook,
        "get_batch_results_raw",
        lambda self, batch_id: _as_a_newer_api_would_answer(real_raw(self, batch_id)),
    )
    batch_ids = results_env.submit(sample_rows(200), chunk_size=80)
    result, _ = _run(_operator(batch_ids, str(tmp_path / "out"), results_env.conn_id))

    expected = []
    for batch_id in batch_ids:
        expected += [
            flatten_in_python(item, batch_id) for item in results_env.hook.get_batch_results(batch_id).results
        ]
    ok, errors = _read(result["ok_path"]), _read(result["errors_path"])
    assert ok.to_pylist() + errors.to_pylist() == sorted(
        expected, key=lambda row: row["error_code"] is not None
    )
    assert ok.column("counterparty_naics2017").drop_null().to_pylist()
    assert ok.column("counterparty_phone_number").drop_null().to_pylist()
    assert any(i["naics2017"] == "522320" for value in ok.column("intermediaries").to_pylist() for i in value)
    extras = [orjson.loads(text) for text in ok.column("extra_json").to_pylist()]
    assert all(extra["recurrence"]["type"] == "one off" for extra in extras)
    assert any(
        extra.get("entities", {}).get("intermediaries", [{}])[0] == {"rating": 4.5} for extra in extras
    )
    assert errors.column("extra_json").null_count == errors.num_rows
    # Half the rows came without a zone: read as UTC, they equal the reference (parse_datetime: naive is UTC).
    raw = orjson.loads(NtropyHook(ntropy_conn_id=results_env.conn_id).get_batch_results_raw(batch_ids[0]))
    naive = [item for item in raw["results"] if not item["created_at"].endswith("Z")]
    assert naive and all("+" not in item["created_at"] for item in naive)
    by_id = {row["transaction_id"]: row["created_at"] for row in ok.to_pylist() + errors.to_pylist()}
    for item in naive:
        assert by_id[item["id"]] == dt.datetime.fromisoformat(item["created_at"]).replace(tzinfo=dt.UTC)


def test_split_counts_and_xcom(sample_rows, results_env, tmp_path) -> None:
    rows = sample_rows(120)
    batch_ids = results_env.submit(rows, chunk_size=50)
    result, _ = _run(_operator(batch_ids, str(tmp_path / "out"), results_env.conn_id))
    ok, errors = _read(result["ok_path"]), _read(result["errors_path"])
    assert result["ok_rows"] == ok.num_rows and result["error_rows"] == errors.num_rows
    assert result["ok_rows"] + result["error_rows"] == 120
    assert result["error_rows"] == sum(
        1 for row in rows if (row["account_holder_id"] or "").startswith("ah-missing")
    )
    assert result["batch_ids"] == batch_ids
    assert result["ok_path"] == f"file://{tmp_path}/out/ok"
    assert result["errors_path"] == f"file://{tmp_path}/out/errors"
    assert set(ok.column("transaction_id").to_pylist()) | set(
        errors.column("transaction_id").to_pylist()
    ) == {row["id"] for row in rows}


def _flat_input(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**flatten_location(row), "note": f"user column {row['id']}"} for row in rows]


@pytest.mark.parametrize("file_format", ["parquet", "parquet-nested", "csv"])
@pytest.mark.parametrize("shuffled", [False, True], ids=["input-order", "shuffled"])
def test_input_columns_are_carried(
    sample_rows, results_env, tmp_path, file_format: str, shuffled: bool
) -> None:
    rows = sample_rows(150)
    batch_ids = results_env.submit(rows, chunk_size=40)
    if file_format == "parquet-nested":
        # The sample-data generator's own layout: location as a struct, id not nullable.
        from ntropy_provider.sample_data import PARQUET_SCHEMA

        flat = [dict(row) for row in rows]
        table = pa.Table.from_pylist(flat, schema=PARQUET_SCHEMA)
    else:
        flat = _flat_input(rows)
    if shuffled:
        random.Random(5).shuffle(flat)
    table = pa.Table.from_pylist(flat, schema=table.schema if file_format == "parquet-nested" else None)
    input_file = tmp_path / f"input.{file_format.split('-')[0]}"
    if file_format.startswith("parquet"):
        pq.write_table(table, input_file, row_group_size=17)
    else:
        pa_csv.write_csv(table, input_file)
    operator = _operator(batch_ids, str(tmp_path / "out"), results_env.conn_id, input_path=str(input_file))
    # Small chunks, so that the join really streams across chunk boundaries.
    from ntropy_provider.results import input_join

    original = input_join.InputColumns.__init__

    def small_chunks(self, path, *, id_column="id", chunk_rows=0):
        original(self, path, id_column=id_column, chunk_rows=23)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(input_join.InputColumns, "__init__", small_chunks)
        result, _ = _run(operator)
    by_id = {row["id"]: row for row in flat}
    out = pa.concat_tables([_read(result["ok_path"]), _read(result["errors_path"])])
    assert out.num_rows == 150
    assert out.schema.names[: len(RESULTS_ARROW_SCHEMA)] == RESULTS_ARROW_SCHEMA.names
    assert out.schema.names[len(RESULTS_ARROW_SCHEMA) :] == [f"input_{name}" for name in flat[0]]
    for row in out.to_pylist():
        source = by_id[row["transaction_id"]]
        assert row["input_id"] == row["transaction_id"]
        for name, value in source.items():
            got = row[f"input_{name}"]
            if file_format == "csv" and isinstance(value, float):
                assert float(got) == value, (row["transaction_id"], name)  # carried as the text in the file
            elif file_format == "csv" and value is not None:
                assert got == str(value), (row["transaction_id"], name)
            else:
                assert got == value, (row["transaction_id"], name)
    # Errored rows carry their input so that they can be resubmitted as they were.
    errors = _read(result["errors_path"])
    assert errors.num_rows > 0 and errors.column("input_description").null_count == 0


def test_input_without_some_transactions_is_refused(sample_rows, results_env, tmp_path) -> None:
    rows = sample_rows(30)
    batch_ids = results_env.submit(rows, chunk_size=30)
    input_file = tmp_path / "input.parquet"
    pq.write_table(pa.Table.from_pylist(_flat_input(rows[:-2])), input_file)
    operator = _operator(batch_ids, str(tmp_path / "out"), results_env.conn_id, input_path=str(input_file))
    with pytest.raises(
        InputJoinError, match=f"2 transaction\\(s\\) of batch {batch_ids[0]} are not in the input"
    ):
        _run(operator)
    assert not (tmp_path / "out" / "ok" / DATA_FILE_NAME).exists()


def test_output_to_memory_store_through_object_storage_path(sample_rows, results_env, memory_root) -> None:
    batch_ids = results_env.submit(sample_rows(60), chunk_size=25)
    output = memory_root / "lake" / "date=2024-03-01"
    operator = _operator(batch_ids, output, results_env.conn_id)
    assert [outlet.uri for outlet in operator.outlets] == [
        f"memory://{memory_root.path.strip('/')}/lake/date=2024-03-01/ok",
        f"memory://{memory_root.path.strip('/')}/lake/date=2024-03-01/errors",
    ]
    result, events = _run(operator)
    assert result["ok_path"] == operator.outlets[0].uri
    assert _read(output / "ok").num_rows == result["ok_rows"]
    assert _read(output / "errors").num_rows == result["error_rows"]
    assert result["ok_rows"] + result["error_rows"] == 60
    assert events[operator.outlets[0]].extra["rows"] == result["ok_rows"]
    assert events[operator.outlets[1]].extra["rows"] == result["error_rows"]


def test_rerun_writes_identical_bytes(sample_rows, results_env, tmp_path) -> None:
    batch_ids = results_env.submit(sample_rows(90), chunk_size=30)
    output = tmp_path / "out"
    _run(_operator(batch_ids, str(output), results_env.conn_id))
    first = [(output / d / DATA_FILE_NAME).read_bytes() for d in ("ok", "errors")]
    _run(_operator(batch_ids, str(output), results_env.conn_id))
    assert [(output / d / DATA_FILE_NAME).read_bytes() for d in ("ok", "errors")] == first
    assert sorted(p.name for p in (output / "ok").iterdir()) == [DATA_FILE_NAME]


def test_batches_not_completed_are_refused_before_anything_is_written(
    sample_rows, results_env, tmp_path
) -> None:
    done = results_env.submit(sample_rows(10), chunk_size=10)
    results_env.emulator.configure(batch_error_rate=1.0)
    errored = results_env.submit(sample_rows(10, seed=4), chunk_size=10)
    results_env.emulator.configure(batch_error_rate=0.0, items_per_second=0.5)
    processing = [
        batch.id for batch in results_env.hook.submit_batches(sample_rows(10, seed=5), chunk_size=10)
    ]
    operator = _operator(done + errored + processing, str(tmp_path / "out"), results_env.conn_id)
    with pytest.raises(BatchesNotCompletedError) as info:
        _run(operator)
    message = str(info.value)
    assert "2 of 3 batch(es) are not completed" in message
    assert f"batch {errored[0]} is error" in message and "resubmit" in message
    assert f"batch {processing[0]} is processing" in message
    assert done[0] not in message
    assert not (tmp_path / "out").exists()
    # No results were fetched: the check came first.
    assert results_env.emulator.stats()["requests"].get("GET /v3/batches/{batch_id}/results", 0) == 0


def test_totals_that_do_not_add_up_fail_loudly(sample_rows, results_env, tmp_path, monkeypatch) -> None:
    batch_ids = results_env.submit(sample_rows(20), chunk_size=20)
    from ntropy_provider.hooks.ntropy import NtropyHook

    real_get_batch = NtropyHook.get_batch

    def inflated(self, batch_id: str) -> Batch:
        batch = real_get_batch(self, batch_id)
        return Batch.from_dict({**batch.to_dict(), "total": batch.total + 1})

    monkeypatch.setattr(NtropyHook, "get_batch", inflated)
    with pytest.raises(RowCountMismatchError, match="the results hold 20 rows but the batch's total is 21"):
        _run(_operator(batch_ids, str(tmp_path / "out"), results_env.conn_id))
    assert not (tmp_path / "out" / "ok" / DATA_FILE_NAME).exists()


def test_zero_batches_write_empty_datasets(sample_rows, results_env, tmp_path) -> None:
    result, _ = _run(_operator([], str(tmp_path / "out"), results_env.conn_id))
    assert (result["ok_rows"], result["error_rows"]) == (0, 0)
    for directory in (result["ok_path"], result["errors_path"]):
        assert _read(directory).schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)


def test_outlets_static_templated_and_given(tmp_path) -> None:
    static = ResultsToParquetOperator(task_id="static", batch_ids=["b"], output_path=str(tmp_path / "o"))
    assert [o.uri for o in static.outlets] == [f"file://{tmp_path}/o/ok", f"file://{tmp_path}/o/errors"]
    templated = ResultsToParquetOperator(
        task_id="templated", batch_ids=["b"], output_path="s3://aws@lake/ntropy/date={{ ds }}"
    )
    assert len(templated.outlets) == 1 and isinstance(templated.outlets[0], AssetAlias)
    assert templated.outlets[0].name.endswith(".templated")
    mine = Asset(uri="s3://lake/ntropy/ok")
    given = ResultsToParquetOperator(
        task_id="given", batch_ids=["b"], output_path="s3://aws@lake/ntropy", outlets=[mine]
    )
    assert given.outlets == [mine]


def test_openlineage_is_silent_without_the_provider_and_complete_with_it(
    sample_rows, results_env, tmp_path, monkeypatch
) -> None:
    batch_ids = results_env.submit(sample_rows(30), chunk_size=30)
    operator = _operator(batch_ids, str(tmp_path / "out"), results_env.conn_id)
    result, _ = _run(operator)
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", None)
    assert operator.get_openlineage_facets_on_complete(None) is None

    # With a stand-in for the provider (it is not installed here), check what would be reported.
    extractors = types.ModuleType("airflow.providers.openlineage.extractors")

    class OperatorLineage:
        def __init__(self, inputs: list, outputs: list) -> None:
            self.inputs, self.outputs = inputs, outputs

    extractors.OperatorLineage = OperatorLineage  # type: ignore[attr-defined]
    facet = types.ModuleType("airflow.providers.common.compat.openlineage.facet")
    facet.Dataset = lambda **kw: ("Dataset", kw)  # type: ignore[attr-defined]
    facet.OutputDataset = lambda **kw: ("OutputDataset", kw)  # type: ignore[attr-defined]
    facet.OutputStatisticsOutputDatasetFacet = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.extractors", extractors)
    monkeypatch.setitem(sys.modules, "airflow.providers.common.compat.openlineage.facet", facet)
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert lineage.inputs == [("Dataset", {"namespace": results_env.emulator.url, "name": "/v3/batches"})]
    assert [kind for kind, _ in lineage.outputs] == ["OutputDataset", "OutputDataset"]
    ok, errors = (kw for _, kw in lineage.outputs)
    assert (ok["namespace"], ok["name"]) == ("file", f"{tmp_path}/out/ok")
    assert (errors["namespace"], errors["name"]) == ("file", f"{tmp_path}/out/errors")
    assert ok["outputFacets"]["outputStatistics"] == {"rowCount": result["ok_rows"]}
    assert errors["outputFacets"]["outputStatistics"] == {"rowCount": result["error_rows"]}


def test_templated_object_storage_path_is_rendered(memory_root) -> None:
    operator = ResultsToParquetOperator(
        task_id="render", batch_ids=["b"], output_path=memory_root / "lake" / "date={{ ds }}"
    )
    assert isinstance(operator.outlets[0], AssetAlias)
    operator.render_template_fields({"ds": "2024-03-01"})  # type: ignore[arg-type]
    assert isinstance(operator.output_path, ObjectStoragePath)
    # Compared by parts: str() of a memory:// path differs between universal-pathlib 0.2 and 0.3.
    assert operator.output_path.protocol == "memory"
    assert operator.output_path.path == f"{memory_root.path}/lake/date=2024-03-01"


def test_terminal_batches_handed_over_are_not_asked_for_again(sample_rows, results_env, tmp_path) -> None:
    """The sensor's XCom and webhook events carry final Batch objects: trusting them saves one GET each."""
    batch_ids = results_env.submit(sample_rows(30), chunk_size=10)
    handed_over = [results_env.hook.get_batch(batch_id).to_dict() for batch_id in batch_ids[:2]]
    before = results_env.emulator.stats()["requests"].get("GET /v3/batches/{batch_id}", 0)

    result, _ = _run(
        _operator(
            {"batch_ids": batch_ids, "batches": handed_over}, str(tmp_path / "out"), results_env.conn_id
        )
    )

    status_calls = results_env.emulator.stats()["requests"].get("GET /v3/batches/{batch_id}", 0) - before
    assert status_calls == 1  # only the batch that came as a bare id
    assert result["ok_rows"] + result["error_rows"] == 30


def test_a_handed_over_batch_still_processing_is_checked_with_the_api(
    sample_rows, results_env, tmp_path
) -> None:
    batch_ids = results_env.submit(sample_rows(10), chunk_size=10)
    stale = {**results_env.hook.get_batch(batch_ids[0]).to_dict(), "status": "processing", "progress": 0}

    result, _ = _run(_operator([stale], str(tmp_path / "out"), results_env.conn_id))

    assert result["batch_ids"] == batch_ids
    assert result["ok_rows"] + result["error_rows"] == 10
