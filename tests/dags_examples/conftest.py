"""Fixtures for the example DAG tests: a landing folder of sample data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dags_examples_helpers import DAY

from ntropy_provider import sample_data


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root with ``landing/`` (two days of sample data) and an empty ``enriched/``."""
    sample_data.write_landing(tmp_path / "landing", DAY, DAY + dt.timedelta(days=1), rows_per_day=120, seed=5)
    return tmp_path
