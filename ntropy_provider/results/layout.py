"""Where the results datasets live under an output path, and the URIs that name them.

Kept apart from the writer (:mod:`~ntropy_provider.results.datasets`) and free of pyarrow: the
operator declares its output Assets from these names when a DAG file is parsed.

::

    <output_path>/ok/part-0.parquet       rows without an item error
    <output_path>/errors/part-0.parquet   rows with an item error (error_code, error_message)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ntropy_provider.compat import storage_bucket

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

OK_DATASET = "ok"
ERRORS_DATASET = "errors"
DATA_FILE_NAME = "part-0.parquet"


def dataset_paths(output_path: ObjectStoragePath) -> tuple[ObjectStoragePath, ObjectStoragePath]:
    """The ``ok/`` and ``errors/`` dataset directories under an output path.

    :param output_path: where the operator writes.
    """
    return output_path / OK_DATASET, output_path / ERRORS_DATASET


def dataset_uri(path: ObjectStoragePath) -> str:
    """A URI naming a dataset directory for Assets and lineage: ``file:///...``, ``s3://bucket/key``.

    The connection id (``s3://conn@bucket``) is left out: it says how to reach the data, not which data.

    :param path: a dataset directory.
    """
    protocol = path.protocol or "file"
    if protocol in ("file", "local"):
        return f"file://{path.path}"
    bucket = storage_bucket(path)
    key = path.key.strip("/")
    return f"{protocol}://{bucket}/{key}" if bucket else f"{protocol}://{key}"
