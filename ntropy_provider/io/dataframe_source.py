"""A pandas DataFrame as transaction input, read through Arrow the way a Parquet file is read.

The frame is handed to Arrow a slice at a time (``pyarrow.Table.from_pandas``: column by column, in
C++), and each slice's rows come out as the dicts the Parquet reader makes (``to_pylist``), typed and
checked by the same functions (:func:`~ntropy_provider.io.transactions_source.to_transaction`,
:func:`~ntropy_provider.io.transactions_source.check_row`). Nothing walks the frame row by row in
Python (no ``iterrows``, no ``to_dict("records")`` of the whole frame), and the frame is never copied
whole: memory grows by one slice of ``read_batch_rows`` rows.

A column Arrow cannot type (an ``object`` column mixing numbers and text, say) is taken from pandas
as Python values, for that slice only, so that its bad values reach the validator and are named (row,
field, value) as for any other input, instead of failing the whole read.

Row numbers are DataFrame positions, counted from 1 as for every input: row ``n`` is
``frame.iloc[n - 1]``, whatever the frame's index. Named index levels (``frame.set_index("id")``) are
read as columns; an unnamed index is not read.

pandas is an optional extra (``ntropy-airflow-provider[pandas]``): :func:`is_dataframe` never imports
it, so the other inputs do not need it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from ntropy_provider.exceptions import MissingExtraError
from ntropy_provider.io.source_rows import (
    DEFAULT_READ_BATCH_ROWS,
    SourceRow,
    check_row,
    to_transaction,
)

#: What to install for DataFrame inputs.
PANDAS_EXTRA = "ntropy-airflow-provider[pandas]"


def import_pandas(purpose: str = "a DataFrame input") -> ModuleType:
    """pandas, or a clear error naming the extra to install.

    :param purpose: what needs pandas, for the message.
    :raises MissingExtraError: when pandas is not installed.
    """
    try:
        import pandas
    except ImportError as err:
        raise MissingExtraError(
            f"{purpose} needs pandas, which is not installed: pip install '{PANDAS_EXTRA}'"
        ) from err
    return pandas


def is_pandas_import_error(err: ImportError) -> bool:
    """Whether an import failed because pandas is missing (e.g. while Airflow reads a DataFrame XCom).

    :param err: the import error.
    """
    return (err.name or "").split(".", 1)[0] == "pandas"


@contextmanager
def pandas_needed_for(purpose: str) -> Iterator[None]:
    """Turn an ImportError of pandas raised in the block into :class:`MissingExtraError`.

    Airflow deserializes a DataFrame XCom with pandas: a worker without pandas fails inside Airflow
    with a bare ``No module named 'pandas'``; this says what to install.

    :param purpose: what needs pandas, for the message.
    """
    try:
        yield
    except ImportError as err:
        if isinstance(err, MissingExtraError) or not is_pandas_import_error(err):
            raise
        raise MissingExtraError(
            f"{purpose} holds a pandas DataFrame, but pandas is not installed on this worker: "
            f"pip install '{PANDAS_EXTRA}'"
        ) from err


def is_dataframe(items: Any) -> bool:
    """Whether ``items`` is a pandas DataFrame, without importing pandas.

    A process that never imported pandas holds no DataFrame, so the other inputs cost no import.

    :param items: the input.
    """
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(items, pandas.DataFrame)


def describe_dataframe(frame: Any) -> str:
    """A short description of a DataFrame for logs (its shape, never its rows).

    :param frame: the DataFrame.
    """
    return f"a DataFrame of {len(frame)} rows x {len(frame.columns)} columns"


def _index_columns(frame: Any) -> list[str]:
    """The named index levels that are not also columns: read as columns."""
    columns = {str(c) for c in frame.columns}
    return [str(n) for n in frame.index.names if n is not None and str(n) not in columns]


def _check_columns(frame: Any) -> None:
    names = [str(c) for c in frame.columns] + _index_columns(frame)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"items: the DataFrame has more than one column named {repeated}; each transaction field "
            "must be one column"
        )


def _plain(value: Any, pandas: ModuleType) -> Any:
    """A value of a column Arrow could not type, as the validator expects it (None for missing)."""
    if value is None or value is pandas.NA or value is pandas.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()  # numpy scalars inside object columns
    return value


def _slice_records(part: Any, pandas: ModuleType) -> list[dict[str, Any]]:
    """The rows of one slice as dicts: through Arrow, with only the columns it cannot type from pandas."""
    import pyarrow as pa

    arrow_errors = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError)
    try:
        return pa.Table.from_pandas(part, preserve_index=False).to_pylist()
    except arrow_errors:
        pass
    names = [str(c) for c in part.columns]
    columns: list[list[Any]] = []
    for position in range(len(names)):
        series = part.iloc[:, position]
        try:
            columns.append(pa.array(series, from_pandas=True).to_pylist())
        except arrow_errors:
            columns.append([_plain(value, pandas) for value in series.tolist()])
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def iter_dataframe_rows(
    frame: Any, *, read_batch_rows: int = DEFAULT_READ_BATCH_ROWS, start_row: int = 1
) -> Iterator[SourceRow]:
    """Yield every row of a DataFrame, typed and checked, in position order.

    :param frame: the pandas DataFrame.
    :param read_batch_rows: rows handed to Arrow at a time.
    :param start_row: the first row to yield (1-based position): earlier rows are not converted at all.
    :raises ValueError: when two columns (or a column and a named index level) share a name.
    :raises MissingExtraError: when pandas is not installed.
    """
    pandas = import_pandas()
    _check_columns(frame)
    index_columns = _index_columns(frame)
    row = max(1, start_row) - 1
    for begin in range(row, len(frame), read_batch_rows):
        part = frame.iloc[begin : begin + read_batch_rows]
        if index_columns:
            part = part.reset_index(level=index_columns)
        for record in _slice_records(part, pandas):
            row += 1
            yield check_row(row, to_transaction(record), raw=record)
