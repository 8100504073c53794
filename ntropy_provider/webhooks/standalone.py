"""The receiver as a stand-alone ASGI app, for deployments that expose it apart from Airflow's API server.

``uvicorn ntropy_provider.webhooks.standalone:app --host 0.0.0.0 --port 8081`` (or
``python -m ntropy_provider.webhooks``) serves the same paths as the plugin: ``POST /ntropy/webhooks``.
The process needs Airflow's configuration (``AIRFLOW_HOME`` / ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``),
because it records events in Airflow's metadata database, like the API server does.
"""

from __future__ import annotations

import os

# Like Airflow's API server (airflow/api_fastapi/main.py): a server process reads connections from the
# metadata database too, not only from the environment. Must be set before Airflow resolves secrets.
os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")

from fastapi import FastAPI

from ntropy_provider.webhooks.app import create_app
from ntropy_provider.webhooks.config import URL_PREFIX


def build_standalone_app() -> FastAPI:
    """The receiver mounted at ``/ntropy``, exactly where the plugin mounts it on the API server."""
    root = FastAPI(title="Ntropy webhook receiver", docs_url=None, redoc_url=None, openapi_url=None)
    root.mount(URL_PREFIX, create_app())
    return root


app = build_standalone_app()
