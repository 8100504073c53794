"""Fixtures of the results tests: an in-memory object store reachable through ``ObjectStoragePath``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from airflow.sdk import ObjectStoragePath


@pytest.fixture
def memory_root() -> Iterator[ObjectStoragePath]:
    """A fresh ``memory://`` directory (fsspec's in-memory filesystem, attached to Airflow's object storage).

    Airflow only knows the schemes of installed providers (plus ``file``); attaching the scheme with a
    filesystem instance makes ``ObjectStoragePath("memory://...")`` work like any other store.
    """
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach("memory", fs=MemoryFileSystem())
    root = ObjectStoragePath(f"memory://results-{uuid.uuid4().hex}")
    yield root
    if root.fs.exists(root.path):
        root.fs.rm(root.path, recursive=True)
