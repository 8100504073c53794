"""Fixtures of the browser tests (``@pytest.mark.ui``): a real Airflow API server and a headless Chromium.

The API server comes from the stack harness (``tests/stack/airflow_stack.py``: ``airflow db migrate``,
then ``airflow api-server`` alone, on SQLite); the browser is Debian's ``chromium`` driven by
``playwright-core`` from ``tests/ui/node_modules`` (``make ui-deps`` installs both; no browser download).
The tests skip, saying what is missing, when Chromium, Node.js or playwright-core is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

UI_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(UI_DIR.parent / "stack"))  # the stack harness, shared with the stack tests

from airflow_stack import AirflowStack, Database, EmulatorProcess, wait_until  # noqa: E402

UI_API_KEY = "ui-test-key"
#: How long the browser may take for the whole form walk (Node's own waits are 20 s each).
DRIVER_TIMEOUT = 120


def _chromium() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if _chromium() is None:
        return "no Chromium (apt-get install -y chromium, or `make ui-deps`; CHROMIUM=/path overrides)"
    if shutil.which("node") is None:
        return "no Node.js (apt-get install -y nodejs npm, or `make ui-deps`)"
    if not (UI_DIR / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (cd tests/ui && npm ci, or `make ui-deps`)"
    return None


@dataclass
class AirflowUI:
    """A running Airflow API server with its UI, the emulator behind it, and the browser driver.

    :param stack: the API server (REST client included).
    :param emulator: the Ntropy emulator.
    :param screenshots: where the driver saves its screenshots.
    :param api_key: the key the emulator accepts.
    """

    stack: AirflowStack
    emulator: EmulatorProcess
    screenshots: Path
    api_key: str = UI_API_KEY

    def drive_connection_form(self, test_connection_id: str | None = None) -> dict[str, Any]:
        """Walk the connection form in Chromium (``connection_form.mjs``) and return what it saw.

        :param test_connection_id: a stored connection whose Test button to press, if any.
        """
        options = {
            "baseUrl": self.stack.api_url,
            "chromium": _chromium(),
            "screenshotDir": str(self.screenshots),
            "testConnectionId": test_connection_id,
        }
        done = subprocess.run(
            ["node", str(UI_DIR / "connection_form.mjs"), json.dumps(options)],
            cwd=UI_DIR,
            capture_output=True,
            text=True,
            timeout=DRIVER_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"the browser driver failed (screenshots in {self.screenshots}):\n{done.stderr[-4000:]}\n"
                f"--- api-server ---\n{self.stack.logs(40)}"
            )
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    """The API server (all users admin, connection tests enabled) on SQLite, and the emulator."""
    missing = _missing()
    if missing:
        pytest.skip(f"browser tests need Chromium, Node.js and playwright-core: {missing}")
    workdir = tmp_path_factory.mktemp("airflow-ui")
    emulator = EmulatorProcess(workdir, UI_API_KEY)
    stack = AirflowStack(
        workdir,
        UI_DIR.parents[1] / "dags",
        Database("sqlite", f"sqlite:///{workdir / 'airflow.db'}"),
        connection_json=emulator.connection_json(),
        data_root=workdir,
        extra_env={
            # No login page to drive: every visitor is an admin (loopback only, a throw-away home).
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # The UI's Test button is off unless enabled.
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        },
    )
    screenshots = workdir / "screenshots"
    screenshots.mkdir()
    try:
        emulator.start()
        stack.init_db()
        stack.start_component("api-server")
        wait_until(stack.health, timeout=180, interval=1, what="the API server to answer")
        yield AirflowUI(stack, emulator, screenshots)
    finally:
        stack.stop()
        emulator.stop()
        print(f"[ui] screenshots in {screenshots}")
