"""Apache Airflow provider for Ntropy's transaction enrichment API.

Airflow discovers this package through the ``apache_airflow_provider`` entry point, which points at
:func:`get_provider_info`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_PACKAGE = "ntropy_provider"


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow (validated against Airflow's ``provider_info.schema.json``)."""
    from ntropy_provider.hooks.connection import provider_connection_type
    from ntropy_provider.webhooks.provider_config import PROVIDER_CONFIG

    return {
        "package-name": "ntropy-airflow-provider",
        "name": "Ntropy",
        # Plain text: Airflow's providers page shows it as is (a URL in it would not be a link); the package
        # name links to project.urls.Documentation, and the integration to Ntropy's docs.
        "description": "Enrich bank transactions with Ntropy's Batches API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Ntropy",
                "external-doc-url": "https://docs.ntropy.com/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Ntropy", "python-modules": [f"{_PACKAGE}.hooks.ntropy"]}],
        "operators": [
            {
                "integration-name": "Ntropy",
                "python-modules": [
                    f"{_PACKAGE}.operators.submit_batch",
                    f"{_PACKAGE}.operators.results_to_parquet",
                    f"{_PACKAGE}.operators.ensure_webhook",
                    f"{_PACKAGE}.operators.webhook_catchup",
                ],
            }
        ],
        "sensors": [{"integration-name": "Ntropy", "python-modules": [f"{_PACKAGE}.sensors.batch"]}],
        "triggers": [
            {
                "integration-name": "Ntropy",
                "python-modules": [f"{_PACKAGE}.triggers.batch", f"{_PACKAGE}.triggers.window"],
            }
        ],
        # The form's fields and labels are declared (Airflow >= 3.2 reads them without importing the hook).
        "connection-types": [provider_connection_type()],
        "config": PROVIDER_CONFIG,
        "plugins": [
            {"name": "ntropy_webhooks", "plugin-class": f"{_PACKAGE}.webhooks.plugin.NtropyWebhooksPlugin"}
        ],
    }
