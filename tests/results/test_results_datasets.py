"""Writing the ok/ and errors/ datasets: layout, schema, atomicity, reruns, stores (local and memory://)."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk import ObjectStoragePath

from ntropy_provider.results.atomic_write import AtomicParquetWriter, is_temporary_of, temporary_name
from ntropy_provider.results.datasets import (
    DATA_FILE_NAME,
    RowCountMismatchError,
    read_schema_version,
    write_results_datasets,
)
from ntropy_provider.results.flatten import ResultsFormatError
from ntropy_provider.results.layout import dataset_uri
from ntropy_provider.results.schema import RESULTS_ARROW_SCHEMA, RESULTS_SCHEMA_VERSION
from ntropy_provider.utils.storage import as_storage_path


def _result(tx_id: str, error: bool = False) -> dict:
    if error:
        return {
            "id": tx_id,
            "created_at": "2024-01-01T00:00:00Z",
            "entities": None,
            "categories": None,
            "location": None,
            "error": {"code": "internal_error", "message": "boom"},
        }
    return {
        "id": tx_id,
        "created_at": "2024-01-01T00:00:00Z",
        "entities": {
            "counterparty": {
                "type": "organization",
                "id": "c",
                "name": "Shop",
                "website": None,
                "logo": None,
                "mccs": [1],
            },
            "intermediaries": [],
        },
        "categories": {"general": "shopping", "accounting": None},
        "location": None,
        "error": None,
    }


def _body(batch_id: str, n: int, errors_every: int = 0) -> bytes:
    results = [
        _result(f"{batch_id}-{i}", error=bool(errors_every) and i % errors_every == 0) for i in range(n)
    ]
    return orjson.dumps({"id": batch_id, "total": n, "status": "completed", "results": results})


def _read(path: ObjectStoragePath) -> pa.Table:
    with path.open("rb") as handle:
        return pq.read_table(handle)


def _files(directory: ObjectStoragePath) -> list[str]:
    return sorted(child.name for child in directory.iterdir())


@pytest.fixture(params=["local", "memory"])
def output(request: pytest.FixtureRequest, tmp_path) -> ObjectStoragePath:
    if request.param == "local":
        return as_storage_path(str(tmp_path / "out" / "date=2024-01-01"))
    return request.getfixturevalue("memory_root") / "out" / "date=2024-01-01"


def test_layout_counts_schema_and_order(output: ObjectStoragePath) -> None:
    bodies = [
        ("b1", _body("b1", 10, errors_every=4)),
        ("b2", _body("b2", 7)),
        ("b3", _body("b3", 3, errors_every=1)),
    ]
    summary = write_results_datasets(iter(bodies), output, expected_rows={"b1": 10, "b2": 7, "b3": 3})
    assert (summary.ok_rows, summary.error_rows) == (10 - 3 + 7, 3 + 3)
    assert summary.batch_rows == {"b1": 10, "b2": 7, "b3": 3}
    assert _files(summary.ok_path) == [DATA_FILE_NAME] and _files(summary.errors_path) == [DATA_FILE_NAME]
    ok = _read(summary.ok_path / DATA_FILE_NAME)
    errors = _read(summary.errors_path / DATA_FILE_NAME)
    assert ok.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    assert errors.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    assert read_schema_version(ok) == read_schema_version(errors) == RESULTS_SCHEMA_VERSION
    assert ok.column("transaction_id").to_pylist() == [f"b1-{i}" for i in (1, 2, 3, 5, 6, 7, 9)] + [
        f"b2-{i}" for i in range(7)
    ]
    assert errors.column("transaction_id").to_pylist() == ["b1-0", "b1-4", "b1-8", "b3-0", "b3-1", "b3-2"]
    assert errors.column("batch_id").to_pylist() == ["b1"] * 3 + ["b3"] * 3
    assert set(errors.column("error_code").to_pylist()) == {"internal_error"}
    assert ok.column("error_code").null_count == ok.num_rows


def test_zero_rows_still_writes_both_datasets_with_the_full_schema(output: ObjectStoragePath) -> None:
    summary = write_results_datasets(iter([]), output)
    for directory in (summary.ok_path, summary.errors_path):
        table = _read(directory / DATA_FILE_NAME)
        assert table.num_rows == 0
        assert table.schema.equals(RESULTS_ARROW_SCHEMA, check_metadata=True)
    summary = write_results_datasets(iter([("b1", _body("b1", 5))]), output)
    assert _read(summary.errors_path / DATA_FILE_NAME).schema.equals(
        RESULTS_ARROW_SCHEMA, check_metadata=True
    )
    assert (summary.ok_rows, summary.error_rows) == (5, 0)


def test_rerun_gives_identical_bytes_and_replaces_another_runs_rows(output: ObjectStoragePath) -> None:
    bodies = [("b1", _body("b1", 50, errors_every=7)), ("b2", _body("b2", 30, errors_every=5))]
    first = write_results_datasets(iter(bodies), output)
    ok_bytes = (first.ok_path / DATA_FILE_NAME).read_bytes()
    errors_bytes = (first.errors_path / DATA_FILE_NAME).read_bytes()
    # Another run, for other batches, replaces everything: nothing of b1/b2 lingers.
    write_results_datasets(iter([("b9", _body("b9", 4, errors_every=2))]), output)
    assert set(_read(first.ok_path / DATA_FILE_NAME).column("batch_id").to_pylist()) == {"b9"}
    assert set(_read(first.errors_path / DATA_FILE_NAME).column("batch_id").to_pylist()) == {"b9"}
    # Back to the first batches: the same bytes as the first time.
    again = write_results_datasets(iter(bodies), output)
    assert (again.ok_path / DATA_FILE_NAME).read_bytes() == ok_bytes
    assert (again.errors_path / DATA_FILE_NAME).read_bytes() == errors_bytes
    assert _files(again.ok_path) == [DATA_FILE_NAME] and _files(again.errors_path) == [DATA_FILE_NAME]


def test_a_failing_batch_leaves_the_previous_output_untouched_and_no_temporary(
    output: ObjectStoragePath,
) -> None:
    good = write_results_datasets(iter([("b1", _body("b1", 5, errors_every=2))]), output)
    before = (good.ok_path / DATA_FILE_NAME).read_bytes(), (good.errors_path / DATA_FILE_NAME).read_bytes()

    def bodies():
        yield "b2", _body("b2", 20, errors_every=3)
        yield "b3", b'{"id": "b3", "total": 1, "status": "completed", "results": [{"id": 5}]}'

    with pytest.raises(ResultsFormatError, match="b3"):
        write_results_datasets(bodies(), output)
    assert (
        (good.ok_path / DATA_FILE_NAME).read_bytes(),
        (good.errors_path / DATA_FILE_NAME).read_bytes(),
    ) == before
    assert _files(good.ok_path) == [DATA_FILE_NAME] and _files(good.errors_path) == [DATA_FILE_NAME]


def test_row_counts_that_do_not_add_up_fail_loudly_and_write_nothing(output: ObjectStoragePath) -> None:
    with pytest.raises(
        RowCountMismatchError, match="batch b1: the results hold 5 rows but the batch's total is 6"
    ):
        write_results_datasets(iter([("b1", _body("b1", 5))]), output, expected_rows={"b1": 6})
    with pytest.raises(RowCountMismatchError, match="batches not written: \\['b2'\\]"):
        write_results_datasets(iter([("b1", _body("b1", 5))]), output, expected_rows={"b1": 5, "b2": 3})
    assert not (output / "ok" / DATA_FILE_NAME).exists()
    assert not (output / "errors" / DATA_FILE_NAME).exists()


def test_stale_temporaries_of_crashed_runs_are_removed_after_success(output: ObjectStoragePath) -> None:
    ok_dir = output / "ok"
    ok_dir.fs.makedirs(ok_dir.path, exist_ok=True)
    stale = ok_dir / temporary_name(DATA_FILE_NAME)
    stale.write_bytes(b"PAR1 half a file")
    other = ok_dir / "user-notes.txt"
    other.write_bytes(b"not ours")
    write_results_datasets(iter([("b1", _body("b1", 3))]), output)
    assert _files(ok_dir) == sorted([DATA_FILE_NAME, "user-notes.txt"])


def test_readers_skip_temporary_files(tmp_path) -> None:
    directory = as_storage_path(str(tmp_path / "ok"))
    with AtomicParquetWriter(directory / DATA_FILE_NAME, RESULTS_ARROW_SCHEMA, row_group_rows=2) as writer:
        writer.write(pa.RecordBatch.from_pylist([], schema=RESULTS_ARROW_SCHEMA))
        # Before publish: only the hidden temporary exists, and a dataset reader sees no file at all.
        names = _files(directory)
        assert len(names) == 1 and is_temporary_of(names[0], DATA_FILE_NAME) and names[0].startswith(".")
        assert pq.read_table(str(tmp_path / "ok")).num_rows == 0
    writer.publish()
    assert _files(directory) == [DATA_FILE_NAME]


def test_writer_refuses_rows_of_another_schema(tmp_path) -> None:
    directory = as_storage_path(str(tmp_path / "ok"))
    writer = AtomicParquetWriter(directory / DATA_FILE_NAME, RESULTS_ARROW_SCHEMA)
    with pytest.raises(ValueError, match="do not have the file's schema"), writer:
        writer.write(pa.RecordBatch.from_pydict({"x": [1]}))
    assert _files(directory) == []


def test_row_groups_gather_small_parts(tmp_path) -> None:
    output = as_storage_path(str(tmp_path / "out"))
    bodies = [(f"b{i}", _body(f"b{i}", 10, errors_every=5)) for i in range(6)]
    summary = write_results_datasets(iter(bodies), output, row_group_rows=20)
    errors = pq.ParquetFile(str(tmp_path / "out" / "errors" / DATA_FILE_NAME))
    assert summary.error_rows == 12
    # Two errored rows per batch are gathered into row groups of at least 20 rows (the rest at the end).
    sizes = [errors.metadata.row_group(i).num_rows for i in range(errors.num_row_groups)]
    assert sum(sizes) == 12 and len(sizes) == 1


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("file:///data/out/ok", "file:///data/out/ok"),
        ("memory://bucket/out/ok", "memory://bucket/out/ok"),
        ("s3://aws_conn@bucket/prefix/ok", "s3://bucket/prefix/ok"),
    ],
)
def test_dataset_uri_leaves_out_the_connection(uri: str, expected: str) -> None:
    assert dataset_uri(ObjectStoragePath(uri)) == expected


def test_a_bare_local_path_is_used_as_written(tmp_path) -> None:
    output = as_storage_path(str(tmp_path / "lake" / "date=2024-01-01"))
    summary = write_results_datasets(iter([("b1", _body("b1", 2))]), output)
    assert (tmp_path / "lake" / "date=2024-01-01" / "ok" / DATA_FILE_NAME).is_file()
    assert dataset_uri(summary.ok_path) == f"file://{tmp_path}/lake/date=2024-01-01/ok"


def test_version_1_files_read_beside_version_2_with_the_new_fields_null(tmp_path) -> None:
    """What the README promises a reader of both versions: schema evolution gives null for what v1 lacked."""
    import pyarrow.dataset as ds

    from ntropy_provider.results.schema import INTERMEDIARY_TYPE, parquet_list

    added = ("phone_number", "tax_number", "naics2017")
    v1_intermediary = pa.struct([field for field in INTERMEDIARY_TYPE if field.name not in added])
    v1_fields = [
        pa.field("intermediaries", parquet_list(v1_intermediary)) if field.name == "intermediaries" else field
        for field in RESULTS_ARROW_SCHEMA
        if field.name not in {f"counterparty_{name}" for name in added} | {"extra_json"}
    ]
    v1_row = {"transaction_id": "t1", "batch_id": "b1", "intermediaries": [{"id": "i", "name": "Square"}]}
    pq.write_table(pa.Table.from_pylist([v1_row], schema=pa.schema(v1_fields)), tmp_path / "v1.parquet")
    (tmp_path / "v2").mkdir()
    summary = write_results_datasets([("b2", _body("b2", 1))], as_storage_path(str(tmp_path / "v2")))
    both = ds.dataset(
        [str(tmp_path / "v1.parquet"), (summary.ok_path / DATA_FILE_NAME).path], schema=RESULTS_ARROW_SCHEMA
    ).to_table()
    rows = {row["transaction_id"]: row for row in both.to_pylist()}
    assert rows["t1"]["counterparty_naics2017"] is None and rows["t1"]["extra_json"] is None
    assert rows["t1"]["intermediaries"] == [
        {"id": "i", "name": "Square", **dict.fromkeys(added), "website": None, "logo": None, "mccs": None}
    ]
    assert rows["b2-0"]["counterparty_name"] == "Shop"
