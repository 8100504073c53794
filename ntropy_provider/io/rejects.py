"""Write rejected input rows, with their row number and the reason, as JSON Lines.

One line per rejected row: ``{"row": 12, "reason": "amount: expected a finite number >= 0 (got -5)",
"errors": [{"field": "amount", "reason": "...", "value": "-5"}], "data": {...the row as read...}}``.
Local files are written to a temporary name and renamed into place; on object stores (``s3://...``,
ObjectStoragePath) the file is written to a hidden temporary object beside the final one and moved
onto it only when complete. Either way a failure never leaves half a file under the final name (an
object store's stream would otherwise publish the part written so far when it is closed).
"""

from __future__ import annotations

import os
import tempfile
from types import TracebackType
from typing import Any, BinaryIO

import orjson

from ntropy_provider.io.source_rows import SourceRow
from ntropy_provider.utils.storage import as_storage_path, local_path


def reject_record(source_row: SourceRow) -> dict[str, Any]:
    """The JSON object written for one rejected row.

    :param source_row: the row, with its errors.
    """
    return {
        "row": source_row.row,
        "reason": "; ".join(str(error) for error in source_row.errors),
        "errors": [{"field": e.field, "reason": e.reason, "value": e.value} for e in source_row.errors],
        "data": source_row.raw,
    }


class RejectsWriter:
    """Context manager that writes rejected rows to ``location`` (a path, URI or ObjectStoragePath).

    The file is always (re)written, even when nothing is rejected, so that it describes this run and
    not an earlier one.

    :param location: where the JSON Lines file goes.
    """

    def __init__(self, location: Any) -> None:
        self.location = location
        self.count = 0
        self._handle: BinaryIO | None = None
        self._temp_path: str | None = None
        self._final_path = local_path(location)
        self._temp_object: Any = None
        self._final_object: Any = None

    def __enter__(self) -> RejectsWriter:
        if self._final_path is not None:
            directory = os.path.dirname(os.path.abspath(self._final_path))
            os.makedirs(directory, exist_ok=True)
            fd, self._temp_path = tempfile.mkstemp(prefix=".rejects-", suffix=".tmp", dir=directory)
            self._handle = os.fdopen(fd, "wb")
        else:
            from ntropy_provider.results.atomic_write import temporary_name

            path = as_storage_path(self.location)
            self._final_object = path
            self._temp_object = path.parent / temporary_name(path.name)
            self._handle = self._temp_object.open("wb")
        return self

    def write(self, source_row: SourceRow) -> None:
        """Append one rejected row.

        :param source_row: the row, with its errors.
        """
        assert self._handle is not None, "RejectsWriter used outside its with-block"
        self._handle.write(orjson.dumps(reject_record(source_row), option=orjson.OPT_APPEND_NEWLINE))
        self.count += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._handle is not None
        self._handle.close()
        if self._temp_object is not None:
            from ntropy_provider.results.atomic_write import move

            if exc_type is None:
                move(self._temp_object, self._final_object)
            else:
                self._temp_object.unlink(missing_ok=True)
            return
        if self._temp_path is None:
            return
        if exc_type is None:
            os.replace(self._temp_path, self._final_path)  # type: ignore[arg-type]
        else:
            os.unlink(self._temp_path)
