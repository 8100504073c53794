"""Where a file lives: the one conversion from what a user writes (a string) to a storage path.

A location may be an ``ObjectStoragePath``, a URI (``s3://conn@bucket/key``, ``file:///...``,
``memory://...``) or a local path (``str`` or ``os.PathLike``). ``airflow.sdk`` is imported inside the
functions, so that importing this module stays cheap.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def as_storage_path(path: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` for a URI, a local path or an existing path object.

    :param path: ``file:///...``, ``s3://conn_id@bucket/key``, ``memory://...``, a local path, or a path.
    :param conn_id: an Airflow connection for the store, when the URI does not name one.
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(path, ObjectStoragePath):
        return path
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if "://" not in text:
        # A bare local path: absolute, so that the dataset URI is unambiguous; not percent-encoded
        # (Path.as_uri() would turn ``date=...`` into ``date%3D...``, a different directory).
        text = f"file://{os.path.abspath(text)}"
    return ObjectStoragePath(text, conn_id=conn_id)


def local_path(location: Any) -> str | None:
    """The local file system path of a location, or ``None`` when it lives elsewhere.

    Local files are opened directly (faster than through fsspec, and seekable).

    :param location: a path, URI or ObjectStoragePath.
    """
    from airflow.sdk import ObjectStoragePath

    if isinstance(location, ObjectStoragePath):
        return location.path if location.protocol in ("file", "local") else None
    name = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if name.startswith("file://"):
        return urlparse(name).path
    return None if "://" in name else name
