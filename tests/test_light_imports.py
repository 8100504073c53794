"""What every Airflow process pays for the provider: no pyarrow, pandas or emulator at import time.

The scheduler, the triggerer, the DAG processor and every CLI call import Airflow (which loads the
provider's config section), the trigger, the sensor, the hook and the example DAG files; pyarrow and
pandas are only needed where Parquet is read or written, at task run time, and the emulator is a test
tool. Each case runs in a fresh interpreter, so that nothing imported by the test session hides a
heavy import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))
#: Modules that must not be loaded by the imports under test.
HEAVY = ("pyarrow", "pandas", "ntropy_provider.emulator", "ntropy_provider.sample_data")

_REPORT = """
import json, sys
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


def _loaded_after(code: str) -> list[str]:
    """The heavy modules loaded in a fresh interpreter after running ``code``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    script = code + "\n" + _REPORT.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_airflow_with_the_provider_config_section_stays_light() -> None:
    code = (
        "import airflow\n"
        "from airflow.configuration import conf\n"
        "from ntropy_provider.webhooks.provider_config import SECTION\n"
        "conf.get(SECTION, 'conn_id')\n"  # the provider's section is really loaded
    )
    assert _loaded_after(code) == []


LIGHT_MODULES = (
    "ntropy_provider.triggers.batch",
    "ntropy_provider.sensors.batch",
    "ntropy_provider.hooks.ntropy",
)


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_waiting_and_hook_modules_stay_light(module: str) -> None:
    assert _loaded_after(f"import {module}") == []


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda path: path.name)
def test_example_dag_files_stay_light(dag_file: Path) -> None:
    assert _loaded_after(f"import runpy\nrunpy.run_path({str(dag_file)!r})") == []
