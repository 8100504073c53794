"""A pandas DataFrame as SubmitBatchOperator's input: read through Arrow, checked and chunked like a list.

Unit tests of :mod:`ntropy_provider.io.dataframe_source`, then a two-task ``dag.test()`` where the
DataFrame comes from an upstream task through XCom (Airflow serializes it as Parquet bytes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dag_run_helpers import load_test_dags, task_states, xcom_value

from ntropy_provider.exceptions import InvalidInputError, MissingExtraError
from ntropy_provider.io import dataframe_source
from ntropy_provider.io.transactions_source import describe_source, iter_rows
from ntropy_provider.operators.submit_batch import SubmitBatchOperator
from ntropy_provider.results.layout import DATA_FILE_NAME
from ntropy_provider.submission.plan import scan

REPO_ROOT = Path(__file__).resolve().parents[2]


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows)


def test_dataframe_rows_are_the_same_transactions_as_the_list_of_its_rows(make_rows) -> None:
    rows = make_rows(57)
    frame = _frame(rows)
    from_frame = list(iter_rows(frame, read_batch_rows=10))
    from_list = list(iter_rows(rows))
    assert [r.row for r in from_frame] == list(range(1, 58))
    assert [r.transaction for r in from_frame] == [r.transaction for r in from_list]
    assert all(r.valid for r in from_frame)
    # Same chunks, same fingerprints: a task that switches input kind re-attaches to its batches.
    plan_frame, plan_list = scan(iter_rows(frame), chunk_size=20), scan(iter_rows(rows), chunk_size=20)
    assert [(c.size, c.fingerprint, c.first_row) for c in plan_frame.chunks] == [
        (c.size, c.fingerprint, c.first_row) for c in plan_list.chunks
    ]
    assert describe_source(frame) == "a DataFrame of 57 rows x 6 columns"


def test_pandas_types_become_the_apis(make_rows) -> None:
    frame = _frame(make_rows(4))
    frame["date"] = pd.to_datetime(
        ["2024-01-02 00:00", "2024-02-03 00:00", "2024-03-04 13:45", "2024-04-05 00:00"], utc=True
    )
    frame["amount"] = pd.array([3, 4, 5, 6], dtype="Int64")  # nullable integers
    frame["currency"] = pd.Categorical(["USD", "EUR", "USD", "GBP"])
    frame["location_country"] = [None, "US", None, "GB"]
    rows = list(iter_rows(frame))
    assert all(r.valid for r in rows), [r.errors for r in rows]
    assert [r.transaction["date"] for r in rows] == ["2024-01-02", "2024-02-03", "2024-03-04", "2024-04-05"]
    assert [r.transaction["amount"] for r in rows] == [3, 4, 5, 6]
    assert [r.transaction["currency"] for r in rows] == ["USD", "EUR", "USD", "GBP"]
    assert "location" not in rows[0].transaction and rows[1].transaction["location"] == {"country": "US"}


def test_bad_values_are_named_by_row_field_and_value(make_rows) -> None:
    rows = make_rows(6)
    frame = _frame(rows)
    frame.loc[1, "amount"] = float("nan")  # pandas' missing value
    frame.loc[4, "currency"] = "DOLLARS"
    frame.index = [f"label{i}" for i in range(6)]  # row numbers are positions, never index labels
    read = list(iter_rows(frame))
    bad = {r.row: [str(e) for e in r.errors] for r in read if not r.valid}
    assert bad == {
        2: ["amount: required"],
        5: ["currency: expected an ISO 4217 code such as USD (got 'DOLLARS')"],
    }
    assert read[4].raw["currency"] == "DOLLARS", "a rejected row keeps its values for the rejects file"


def test_operator_fails_naming_the_dataframe_rows_and_sends_nothing(make_rows) -> None:
    frame = _frame(make_rows(30))
    frame.loc[11, "entry_type"] = "sideways"
    operator = SubmitBatchOperator(task_id="submit", items=frame, chunk_size=10)
    with pytest.raises(InvalidInputError) as failure:
        operator.scan()
    assert "1 of 30 input row(s)" in str(failure.value)
    assert "row 12: entry_type: expected 'incoming' or 'outgoing' (got 'sideways')" in str(failure.value)


def test_a_column_arrow_cannot_type_is_read_as_values_and_its_bad_ones_named(make_rows) -> None:
    rows = make_rows(5)
    rows[3]["amount"] = "12,50"  # text among floats: an object column Arrow refuses
    frame = _frame(rows)
    assert frame["amount"].dtype == object
    read = list(iter_rows(frame))
    assert [r.row for r in read if not r.valid] == [4]
    assert [str(e) for e in read[3].errors] == ["amount: expected a number (got '12,50')"]
    assert read[0].transaction["amount"] == rows[0]["amount"]
    assert read[0].transaction["date"] == "2024-01-02"


def test_named_index_is_read_as_a_column_and_start_row_skips_by_position(make_rows) -> None:
    frame = _frame(make_rows(25)).set_index("id")
    read = list(iter_rows(frame, start_row=21, read_batch_rows=7))
    assert [r.row for r in read] == [21, 22, 23, 24, 25]
    assert [r.transaction["id"] for r in read] == ["t20", "t21", "t22", "t23", "t24"]
    assert all(r.valid for r in read)


def test_duplicate_columns_fail_before_anything_is_read(make_rows) -> None:
    frame = pd.concat([_frame(make_rows(2)), _frame(make_rows(2))[["amount"]]], axis=1)
    with pytest.raises(ValueError, match=r"more than one column named \['amount'\]"):
        list(iter_rows(frame))


def test_no_row_by_row_python_walk_of_the_frame(make_rows, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the DataFrame was walked row by row in Python")

    for name in ("iterrows", "itertuples", "to_dict", "apply", "to_records"):
        monkeypatch.setattr(pd.DataFrame, name, refuse)
    monkeypatch.setattr(pd.Series, "tolist", refuse)  # only for columns Arrow cannot type
    read = list(iter_rows(_frame(make_rows(30)), read_batch_rows=8))
    assert len(read) == 30 and all(r.valid for r in read)


def test_operator_leaves_a_dataframe_unrendered(make_rows) -> None:
    frame = _frame([{**make_rows(1)[0], "description": "{{ not a template }}"}])
    operator = SubmitBatchOperator(task_id="submit", items=frame)
    assert operator.render_template(frame, {}) is frame


def test_missing_pandas_is_named_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # "import pandas" now fails
    with pytest.raises(MissingExtraError, match=r"pip install 'ntropy-airflow-provider\[pandas\]'"):
        dataframe_source.import_pandas()
    # Airflow deserializing a DataFrame XCom on a worker without pandas: the same advice.
    with (
        pytest.raises(MissingExtraError, match=r"items holds a pandas DataFrame.*\[pandas\]"),
        dataframe_source.pandas_needed_for("items"),
    ):
        raise ModuleNotFoundError("No module named 'pandas'", name="pandas")
    with pytest.raises(ModuleNotFoundError), dataframe_source.pandas_needed_for("items"):
        raise ModuleNotFoundError("No module named 'other'", name="other")


def test_the_provider_works_without_pandas(tmp_path: Path) -> None:
    """A fresh interpreter where pandas cannot be imported: every runtime module imports, lists and
    Parquet files are read, and a DataFrame input names the extra."""
    source = tmp_path / "rows.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["a"],
                "description": ["x"],
                "date": ["2024-01-02"],
                "amount": [1.0],
                "entry_type": ["outgoing"],
                "currency": ["USD"],
            }
        ),
        source,
    )
    code = f"""
import importlib, pkgutil, sys

class NoPandas:  # as if pandas were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, NoPandas())
import ntropy_provider
skipped = ("ntropy_provider.emulator", "ntropy_provider.webhooks.standalone")
for module in pkgutil.walk_packages(ntropy_provider.__path__, "ntropy_provider."):
    if not module.name.startswith(skipped):
        importlib.import_module(module.name)
from ntropy_provider.io.transactions_source import iter_rows
assert [r.valid for r in iter_rows([{{"id": "a"}}])] == [False]
assert [r.transaction["id"] for r in iter_rows({str(source)!r})] == ["a"]
from ntropy_provider.io.dataframe_source import import_pandas
try:
    import_pandas()
except ImportError as err:
    print("ERROR:", err)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    expected = "needs pandas, which is not installed: pip install 'ntropy-airflow-provider[pandas]'"
    assert expected in done.stdout


# --------------------------------------------------------------------------------------------------
# Through XCom
# --------------------------------------------------------------------------------------------------
def _xcom_refuses_dataframes() -> str | None:
    """Why this Airflow cannot put a DataFrame in XCom with the installed pandas, or ``None``.

    Airflow 3.1 and 3.2 know a DataFrame only by its pandas 2 class name, so with pandas 3 their XCom
    serializer refuses it (Airflow 3.3 registers both names: apache/airflow#71103).
    """
    from airflow.sdk.bases.xcom import BaseXCom

    try:
        BaseXCom.serialize_value(pd.DataFrame({"a": [1]}))
    except TypeError as err:
        return f"Airflow's XCom cannot hold a DataFrame of pandas {pd.__version__}: {err}"
    return None


def test_xcom_refuses_dataframes_only_where_the_readme_says() -> None:
    """The skips below hide nothing: only Airflow < 3.3 with pandas 3 refuses (the README's support table)."""
    import airflow
    from packaging.version import Version

    documented = Version(airflow.__version__) < Version("3.3") and Version(pd.__version__).major >= 3
    assert (_xcom_refuses_dataframes() is not None) == documented


def test_a_dataframe_survives_xcom_and_reads_the_same(make_rows) -> None:
    if reason := _xcom_refuses_dataframes():
        pytest.skip(reason)
    from airflow.sdk.bases.xcom import BaseXCom

    frame = _frame(make_rows(12))
    frame["date"] = pd.to_datetime(frame["date"])
    stored = json.loads(json.dumps(BaseXCom.serialize_value(frame)))  # as the API server keeps it
    back = BaseXCom.deserialize_value(type("Row", (), {"value": stored})())
    assert isinstance(back, pd.DataFrame)
    assert [r.transaction for r in iter_rows(back)] == [r.transaction for r in iter_rows(frame)]


def test_dataframe_from_an_upstream_task_runs_end_to_end(
    airflow_db, ntropy_connection: str, ntropy_emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reason := _xcom_refuses_dataframes():
        pytest.skip(reason)
    module = load_test_dags("dataframe_dags")
    ntropy_emulator.configure(items_per_second=500)
    rejects = tmp_path / "rejects.jsonl"
    output = tmp_path / "out"
    # The tasks' conn id is a template: only the rendered one reaches the emulator.
    default = f"AIRFLOW_CONN_{ntropy_connection.upper()}"
    monkeypatch.setenv("AIRFLOW_CONN_NTROPY_DATAFRAME", os.environ[default])
    monkeypatch.delenv(default)
    conf = {"rejects_path": str(rejects), "output_root": str(output), "conn_id": "ntropy_dataframe"}

    dag_run = module.dataframe_dag.test(run_conf=conf)

    assert dag_run.state == "success", task_states(dag_run)
    submitted = xcom_value(dag_run, "submit")
    bad = module.BAD_POSITIONS
    assert (submitted["total"], submitted["rejected"]) == (module.ROWS - len(bad), len(bad))
    assert len(submitted["batch_ids"]) == 3  # 42 valid rows in chunks of 20
    rejected = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["row"] for r in rejected] == [p + 1 for p in sorted(bad)]
    assert [r["errors"][0]["field"] for r in rejected] == [bad[p] for p in sorted(bad)]
    assert ntropy_emulator.stats()["transactions_submitted"] == module.ROWS - len(bad)

    # Every row accounted for: enriched, errored or rejected, each exactly once.
    results = pa.concat_tables([pq.read_table(output / d / DATA_FILE_NAME) for d in ("ok", "errors")])
    enriched = results.column("transaction_id").to_pylist()
    rejected_ids = [r["data"]["id"] for r in rejected]
    assert sorted(enriched + rejected_ids) == sorted(f"df{i}" for i in range(module.ROWS))
    written = xcom_value(dag_run, "write_results")
    assert written["ok_rows"] + written["error_rows"] + submitted["rejected"] == module.ROWS
