"""The emulator is a test tool: runtime modules never import it, and its pytest plugin is opt-in."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Runtime modules that once reached the emulator (sample data used its merchant catalogue).
RUNTIME_MODULES = ("ntropy_provider.sample_data", "ntropy_provider.catalogue", "ntropy_provider.api.wire")


def test_runtime_modules_do_not_import_the_emulator():
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in RUNTIME_MODULES)
        + "print(sorted(m for m in sys.modules if m.startswith('ntropy_provider.emulator')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


def test_the_distribution_declares_no_pytest_plugin_and_the_suite_opts_in():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert "pytest11" not in project.get("entry-points", {})
    conftest = (REPO_ROOT / "tests" / "conftest.py").read_text()
    assert 'pytest_plugins = ["ntropy_provider.emulator.pytest_plugin"]' in conftest
