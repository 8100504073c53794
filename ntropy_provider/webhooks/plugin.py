"""The Airflow plugin that mounts the webhook receiver on Airflow's API server at ``/ntropy``.

Airflow 3.3 loads plugins declared in a provider's metadata only when
``[core] lazy_discover_providers`` is ``False`` (it defaults to ``True``), so the package also
declares this plugin under the ``airflow.plugins`` entry point. To be mounted exactly once in both
modes, the entry point resolves to :data:`entry_point_plugin`, which is the plugin class when
providers are discovered lazily and ``None`` (silently skipped by Airflow) otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.configuration import conf
from airflow.providers.common.compat.sdk import AirflowPlugin

from ntropy_provider.compat import (
    WEBHOOK_RECEIVER,
    FeatureNotAvailable,
    has_partitioned_assets,
    require_partitioned_assets,
)
from ntropy_provider.webhooks.app import create_app
from ntropy_provider.webhooks.config import URL_PREFIX


class NtropyWebhooksPlugin(AirflowPlugin):
    """Serves ``POST /ntropy/webhooks`` (and ``/ntropy/webhooks/{conn_id}``) on Airflow's API server.

    Airflow's auth does not cover plugin apps: the receiver authenticates every delivery itself by
    its ``X-Ntropy-Token`` header.
    """

    name = "ntropy_webhooks"
    fastapi_apps: list[dict[str, Any]] = (
        [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Ntropy webhook receiver"}]
        if has_partitioned_assets()
        else []
    )


if not NtropyWebhooksPlugin.fastapi_apps:
    try:
        require_partitioned_assets(WEBHOOK_RECEIVER)
    except FeatureNotAvailable as unavailable:
        logging.getLogger(__name__).warning("%s It is not mounted at %s.", unavailable, URL_PREFIX)


def _providers_load_lazily() -> bool:
    # The very expression Airflow uses to decide whether provider plugins are loaded (airflow.settings).
    return conf.getboolean("core", "lazy_discover_providers", fallback=True)


#: Target of the ``airflow.plugins`` entry point (see the module's docstring).
entry_point_plugin: type[NtropyWebhooksPlugin] | None = (
    NtropyWebhooksPlugin if _providers_load_lazily() else None
)
