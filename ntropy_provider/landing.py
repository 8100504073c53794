"""The landing layout the example DAGs read and :mod:`ntropy_provider.sample_data` writes.

::

    <landing>/date=YYYY-MM-DD/transactions.parquet|csv    one file per day
    <landing>/account_holders.parquet|csv                 id, type, name of the account holders

Every path is an ``ObjectStoragePath`` (or a string for one): ``s3://bucket/x``, ``file:///...``, a
local path. Files are read with pyarrow, a column or the footer at a time, never whole when avoidable.
Ids are read as text: CSV type inference would turn ``1001`` into an integer that never equals the
string the rows and the API use.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from ntropy_provider.utils.storage import as_storage_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from ntropy_provider.hooks.ntropy import NtropyHook

# airflow.sdk and pyarrow are imported inside the functions: sample_data's command line imports this
# module for the names only, and DAG files parse faster without pyarrow.

#: Formats of the landing files, in the order they are looked for.
FORMATS: tuple[str, ...] = ("parquet", "csv")
#: Name of a day's file inside its ``date=YYYY-MM-DD`` partition (plus ``.<format>``).
TRANSACTIONS_FILE = "transactions"
#: Name of the account holders file at the top of the landing folder (plus ``.<format>``).
ACCOUNT_HOLDERS_FILE = "account_holders"
#: Account holder type used when the holders file has no ``type`` for a holder.
DEFAULT_HOLDER_TYPE = "consumer"

log = logging.getLogger(__name__)


def partition_name(day: dt.date | str) -> str:
    """The name of a day's partition folder: ``date=YYYY-MM-DD``.

    :param day: the day (a date or ``YYYY-MM-DD``).
    """
    return f"date={day.isoformat() if isinstance(day, dt.date) else day}"


def file_names(stem: str, formats: Sequence[str] = FORMATS) -> tuple[str, ...]:
    """The file names looked for, in order: ``<stem>.<format>`` for each format.

    :param stem: :data:`TRANSACTIONS_FILE` or :data:`ACCOUNT_HOLDERS_FILE`.
    :param formats: the formats, in order of preference.
    """
    return tuple(f"{stem}.{fmt}" for fmt in formats)


def _first_existing(folder: ObjectStoragePath, names: Sequence[str]) -> ObjectStoragePath | None:
    for name in names:
        candidate = folder / name
        if candidate.exists():
            return candidate
    return None


def day_partition(landing: ObjectStoragePath | str, day: dt.date | str) -> ObjectStoragePath:
    """The partition folder of a day: ``<landing>/date=YYYY-MM-DD``.

    :param landing: the landing folder.
    :param day: the day (a date or ``YYYY-MM-DD``).
    """
    return as_storage_path(landing) / partition_name(day)


def find_day_file(
    landing: ObjectStoragePath | str, day: dt.date | str, formats: Sequence[str] = FORMATS
) -> ObjectStoragePath | None:
    """The day's transactions file, or ``None`` when nothing landed for that day.

    :param landing: the landing folder.
    :param day: the day (a date or ``YYYY-MM-DD``).
    :param formats: the formats accepted, in order of preference (the first file found wins).
    """
    return _first_existing(day_partition(landing, day), file_names(TRANSACTIONS_FILE, formats))


def require_day_file(
    landing: ObjectStoragePath | str, day: dt.date | str, formats: Sequence[str] = FORMATS
) -> ObjectStoragePath:
    """The day's transactions file; fails the task at once, without retries, when nothing landed.

    A missing file does not appear by retrying (retries would only delay the failure by the retry
    delays): clear the task once the file has landed.

    :param landing: the landing folder.
    :param day: the day (a date or ``YYYY-MM-DD``).
    :param formats: the formats accepted, in order of preference (the first file found wins).
    :raises AirflowFailException: naming the day, the files looked for and the folder.
    """
    from airflow.providers.common.compat.sdk import AirflowFailException

    found = find_day_file(landing, day, formats)
    if found is None:
        names = ", ".join(file_names(TRANSACTIONS_FILE, formats))
        raise AirflowFailException(
            f"no transactions landed for {day}: looked for {names} in {day_partition(landing, day)}"
        )
    return found


def find_holders_file(landing: ObjectStoragePath | str) -> ObjectStoragePath | None:
    """The account holders file of the landing folder, or ``None`` when there is none.

    :param landing: the landing folder.
    """
    return _first_existing(as_storage_path(landing), file_names(ACCOUNT_HOLDERS_FILE))


def _is_parquet(path: ObjectStoragePath) -> bool:
    return path.name.endswith(".parquet")


def count_rows(path: ObjectStoragePath | str) -> int:
    """Rows in a Parquet file (from its footer) or a CSV file (streamed, only ``id`` parsed).

    :param path: the file.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = as_storage_path(path)
    with path.open("rb") as handle:
        if _is_parquet(path):
            return int(pq.read_metadata(handle).num_rows)
        options = pa_csv.ConvertOptions(include_columns=["id"], column_types={"id": pa.string()})
        return sum(batch.num_rows for batch in pa_csv.open_csv(handle, convert_options=options))


def read_column(path: ObjectStoragePath | str, column: str) -> list[str | None]:
    """One column of a Parquet or CSV file as text, one value per row (Parquet reads only that column).

    Null and empty values are ``None``. A file without the column gives ``None`` for every row:
    optional columns (``account_holder_id``) may be absent.

    :param path: the file.
    :param column: the column's name.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = as_storage_path(path)
    with path.open("rb") as handle:
        if _is_parquet(path):
            parquet = pq.ParquetFile(handle)
            if column not in parquet.schema_arrow.names:
                return [None] * parquet.metadata.num_rows
            values = parquet.read(columns=[column]).column(column).cast(pa.string()).to_pylist()
            return [value or None for value in values]
        options = pa_csv.ConvertOptions(
            include_columns=[column],
            include_missing_columns=True,  # an absent column comes back all null
            column_types={column: pa.string()},
            strings_can_be_null=True,
        )
        return pa_csv.read_csv(handle, convert_options=options).column(column).to_pylist()


def read_account_holders(path: ObjectStoragePath | str) -> dict[str, dict[str, Any]]:
    """The holders of an account holders file, by id (as text), in file order.

    A holder listed twice keeps its first row. Rows without an id are skipped with a warning naming
    them: there is nothing to create them under.

    :param path: the file (columns ``id``, ``type``, ``name``; ``type`` and ``name`` may be absent).
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    path = as_storage_path(path)
    with path.open("rb") as handle:
        if _is_parquet(path):
            table = pq.read_table(handle)
        else:
            ids_as_text = pa_csv.ConvertOptions(column_types={"id": pa.string()}, strings_can_be_null=True)
            table = pa_csv.read_csv(handle, convert_options=ids_as_text)
    holders: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(table.to_pylist(), start=1):
        if row.get("id") is None or str(row["id"]) == "":
            log.warning("%s: row %d has no id: skipped", path, number)
            continue
        holders.setdefault(str(row["id"]), row)
    return holders


def ensure_account_holders_from_file(
    hook: NtropyHook, landing: ObjectStoragePath | str, holder_ids: Collection[str | None] | None = None
) -> dict[str, int]:
    """Create in Ntropy the holders of the landing's holders file that do not exist yet (idempotent).

    :param hook: the hook whose ``ensure_account_holder`` creates them.
    :param landing: the landing folder holding ``account_holders.parquet|csv``.
    :param holder_ids: only the holders with these ids (e.g. the ids a day's rows name; ``None`` and
        empty ids are ignored); ``None`` for every holder of the file.
    :return: ``{"ensured": holders ensured, "not_listed": ids of ``holder_ids`` the file does not list}``.
        Rows naming a holder that is not listed come back from Ntropy with ``account_holder_not_found``.
    """
    wanted = None if holder_ids is None else {h for h in holder_ids if h}
    holders_file = find_holders_file(landing)
    if holders_file is None:
        log.warning(
            "No holders file (%s) in %s: rows will be enriched as they are",
            ", ".join(file_names(ACCOUNT_HOLDERS_FILE)),
            landing,
        )
        listed: dict[str, dict[str, Any]] = {}
    else:
        listed = read_account_holders(holders_file)
    ensured = 0
    for holder_id, row in listed.items():
        if wanted is not None and holder_id not in wanted:
            continue
        hook.ensure_account_holder(holder_id, row.get("type") or DEFAULT_HOLDER_TYPE, name=row.get("name"))
        ensured += 1
    not_listed = 0 if wanted is None else len(wanted - listed.keys())
    if not_listed:
        # Not an error: their rows come back from Ntropy with account_holder_not_found.
        log.warning("%d account holder id(s) named by the rows are not in the holders file", not_listed)
    return {"ensured": ensured, "not_listed": not_listed}
