"""The API's input rules checked a whole Arrow column at a time: the fast path of reading Parquet.

Checking a row in Python (typing each value, then ``validate_transaction``)
costs several microseconds; most rows of a Parquet file are plainly valid, and Arrow's compute functions
can tell which ones at once. :func:`clean_rows` marks the rows that pass every rule of
``validate_transaction`` (the same rules, stated column-wise), and :func:`clean_transactions` builds their
TransactionInput dicts straight from the columns. Every other row, and every batch whose schema this
module does not know how to check (a ``location`` struct column, a decimal amount, a timestamp date,
an id that is not text), goes through the row-by-row path, which names its problems; a test holds both
paths to the same answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ntropy_provider.api.currencies import CURRENCIES
from ntropy_provider.api.transaction_input import (
    MAX_ACCOUNT_HOLDER_ID_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    REQUIRED_TRANSACTION_FIELDS,
    TRANSACTION_FIELDS,
)
from ntropy_provider.api.wire import ENTRY_TYPES

if TYPE_CHECKING:
    import pyarrow as pa

#: Flat columns folded into ``location`` (the same as ``transactions_source.FLAT_LOCATION_COLUMNS``).
_FLAT_LOCATION = {"location_raw_address": "raw_address", "location_country": "country"}
#: Regular expressions of ``transaction_input`` (anchored: Arrow matches anywhere otherwise).
_DATE = r"^\d{4}-\d{2}-\d{2}$"
_COUNTRY = r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$"
_TEXT_FIELDS = ("id", "description", "entry_type", "currency", "account_holder_id", *_FLAT_LOCATION)


def _kind(data_type: pa.DataType) -> str | None:
    """What a column's type is to the rules: ``text``, ``number``, ``date``, ``null``, or ``None``
    (a type only the row-by-row path handles)."""
    import pyarrow as pa

    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "text"
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "number"
    if pa.types.is_date(data_type):
        return "date"
    if pa.types.is_null(data_type):
        return "null"
    return None


def supported(schema: pa.Schema) -> bool:
    """Whether :func:`clean_rows` can check batches of this schema (else every row goes row by row).

    :param schema: the record batches' schema.
    """
    names = set(schema.names)
    if len(names) != len(schema.names) or not set(REQUIRED_TRANSACTION_FIELDS) <= names:
        return False
    for spec in schema:
        kind = _kind(spec.type)
        if spec.name == "location" or spec.name not in (*TRANSACTION_FIELDS, *_FLAT_LOCATION):
            return False  # a struct, or a field the validator reports: row by row
        if spec.name == "amount":
            ok = kind == "number"
        elif spec.name == "date":
            ok = kind in ("text", "date")
        else:
            ok = kind == "text" or (kind == "null" and spec.name not in REQUIRED_TRANSACTION_FIELDS)
        if not ok:
            return False
    return True


def clean_rows(batch: pa.RecordBatch) -> pa.Array:
    """A boolean per row: ``True`` when the row passes every rule (call only when :func:`supported`).

    :param batch: a record batch of a supported schema.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def column(name: str) -> pa.Array:
        return batch.column(batch.schema.get_field_index(name))

    checks: list[pa.Array] = []
    for name in REQUIRED_TRANSACTION_FIELDS:
        checks.append(pc.is_valid(column(name)))
    checks.append(pc.greater(pc.utf8_length(column("id")), 0))
    checks.append(pc.less_equal(pc.utf8_length(column("description")), MAX_DESCRIPTION_LENGTH))
    date = column("date")
    if _kind(date.type) == "text":
        shaped = pc.match_substring_regex(date, _DATE)
        checks += [shaped, _calendar_date(pc.if_else(shaped, date, "2000-01-01"))]
    amount = column("amount")
    if pa.types.is_floating(amount.type):
        checks.append(pc.is_finite(amount))
    checks.append(pc.greater_equal(amount, 0))
    checks.append(pc.is_in(column("entry_type"), value_set=pa.array(sorted(ENTRY_TYPES))))
    checks.append(pc.is_in(column("currency"), value_set=pa.array(sorted(CURRENCIES))))
    names = set(batch.schema.names)
    if "account_holder_id" in names and _kind(column("account_holder_id").type) == "text":
        length = pc.utf8_length(column("account_holder_id"))
        fits = pc.and_(pc.greater(length, 0), pc.less_equal(length, MAX_ACCOUNT_HOLDER_ID_LENGTH))
        checks.append(pc.or_(pc.is_null(length), fits))
    if "location_country" in names and _kind(column("location_country").type) == "text":
        country = column("location_country")
        checks.append(pc.or_(pc.is_null(country), pc.match_substring_regex(country, _COUNTRY)))
    mask = checks[0]
    for check in checks[1:]:
        mask = pc.and_kleene(mask, check)
    return pc.fill_null(mask, False)


def _calendar_date(text: pa.Array) -> pa.Array:
    """Whether ``YYYY-MM-DD`` text (the pattern already checked) is a calendar date: year 1 or later,
    month 1 to 12, a day the month has (February 29 in leap years only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    def part(start: int, stop: int) -> pa.Array:
        return pc.cast(pc.utf8_slice_codeunits(text, start, stop), pa.int32())

    year, month, day = part(0, 4), part(5, 7), part(8, 10)

    def divisible(by: int) -> pa.Array:  # integer division truncates: y // n * n == y
        return pc.equal(pc.multiply(pc.divide(year, by), by), year)

    leap = pc.or_(pc.and_(divisible(4), pc.invert(divisible(100))), divisible(400))
    month_ok = pc.and_(pc.greater_equal(month, 1), pc.less_equal(month, 12))
    lengths = pa.array([31, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int32())
    length = pc.take(lengths, pc.if_else(month_ok, month, 0))
    length = pc.add(length, pc.cast(pc.and_(leap, pc.equal(month, 2)), pa.int32()))
    day_ok = pc.and_(pc.greater_equal(day, 1), pc.less_equal(day, length))
    return pc.and_(pc.and_(month_ok, day_ok), pc.greater_equal(year, 1))


def clean_transactions(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """The TransactionInput dicts of a batch of clean rows, typed as the row-by-row path types them.

    Dates become ``YYYY-MM-DD`` text, null optional values are left out and the flat location columns
    become a ``location`` object.

    :param batch: rows for which :func:`clean_rows` said ``True``.
    """
    import pyarrow as pa

    columns = []
    for index, spec in enumerate(batch.schema):
        array = batch.column(index)
        if spec.name == "date" and _kind(spec.type) == "date":
            array = array.cast(pa.string())
        columns.append(array)
    rows: list[dict[str, Any]] = pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pylist()
    optional = [
        i
        for i, spec in enumerate(batch.schema)
        if spec.name not in REQUIRED_TRANSACTION_FIELDS and batch.column(i).null_count
    ]
    flat = [name for name in batch.schema.names if name in _FLAT_LOCATION]
    if not optional and not flat:
        return rows
    out = []
    for row in rows:
        if optional:
            row = {key: value for key, value in row.items() if value is not None}
        if flat:
            location = {_FLAT_LOCATION[name]: row.pop(name) for name in flat if name in row}
            if location:
                row["location"] = location
        out.append(row)
    return out
