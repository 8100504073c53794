"""The ``[ntropy_webhooks]`` configuration section, as declared to Airflow in ``get_provider_info()``.

This module imports nothing of Airflow's (only the connection module, for the default connection id; it
imports the standard library alone): Airflow reads it while its own configuration is still loading. The
defaults here are the ones :class:`~ntropy_provider.webhooks.config.ReceiverConfig` uses.
"""

from __future__ import annotations

from typing import Any

from ntropy_provider.hooks.connection import DEFAULT_CONN_ID, WEBHOOK_TOKEN_EXTRA

SECTION = "ntropy_webhooks"
DEFAULT_TOKEN_EXTRA_KEY = WEBHOOK_TOKEN_EXTRA
DEFAULT_MAX_BODY_BYTES = 64 * 1024
#: A 64 KiB body arrives in milliseconds; Ntropy itself gives up on a delivery after 10 s.
DEFAULT_BODY_TIMEOUT_SECONDS = 5.0
DEFAULT_TOKEN_CACHE_SECONDS = 30.0
DEFAULT_DEDUPE_RETENTION_DAYS = 7
DEFAULT_RECORD_CONCURRENCY = 8
DEFAULT_PARTITION_BY_BATCH = True
DEFAULT_REQUIRE_ACTIVE_CONSUMER = True

#: The release that added these options (Airflow's ``version_added``), not the current version.
_ADDED_IN = "0.1.0"


def _option(description: str, type_: str, default: Any, example: Any = None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": _ADDED_IN,
        "type": type_,
        "example": example,
        "default": None if default is None else str(default),
    }


#: The section, in the shape of ``provider_info.schema.json`` ("config").
PROVIDER_CONFIG: dict[str, Any] = {
    SECTION: {
        "description": "The Ntropy webhook receiver that the provider mounts on Airflow's API server at "
        "/ntropy (POST /ntropy/webhooks).",
        "options": {
            "conn_id": _option(
                "The Ntropy connection served at POST /ntropy/webhooks and /ntropy/webhooks/<conn_id>: its "
                "extra holds the token, its asset (ntropy://batches/<conn_id>) records the events.",
                "string",
                DEFAULT_CONN_ID,
            ),
            "extra_conn_ids": _option(
                "More Ntropy connections to serve at POST /ntropy/webhooks/<conn_id> (comma-separated).",
                "string",
                "",
                "ntropy_eu,ntropy_sandbox",
            ),
            "token_extra_key": _option(
                "Key, in the connection's extras, of the token every delivery must carry (X-Ntropy-Token).",
                "string",
                DEFAULT_TOKEN_EXTRA_KEY,
            ),
            "token_variable": _option(
                "Read the token of conn_id from this Airflow variable instead of the connection's extras.",
                "string",
                None,
                "ntropy_webhook_token",
            ),
            "max_body_bytes": _option(
                "Largest delivery body accepted; a larger one is refused (413) while it streams in.",
                "integer",
                DEFAULT_MAX_BODY_BYTES,
            ),
            "body_timeout_seconds": _option(
                "Longest time a delivery's body may take to arrive once its headers are in; a slower one is "
                "refused with 408 and its connection closed.",
                "float",
                DEFAULT_BODY_TIMEOUT_SECONDS,
            ),
            "token_cache_seconds": _option(
                "How long a token read from a connection or variable is reused.",
                "float",
                DEFAULT_TOKEN_CACHE_SECONDS,
            ),
            "dedupe_retention_days": _option(
                "How long event ids are remembered to drop Ntropy's repeated deliveries (at least 2; Ntropy "
                "retries for 24 hours).",
                "integer",
                DEFAULT_DEDUPE_RETENTION_DAYS,
            ),
            "partition_by_batch": _option(
                "Record each event with its batch id as partition key: a DAG scheduled with "
                "PartitionedAssetTimetable on the batches asset gets exactly one run per batch. Set to False "
                "to feed plain schedule=[asset] DAGs instead (Airflow then only queues non-partitioned DAGs, "
                "and may defer events that arrive while a run is being queued until the next event).",
                "boolean",
                "True",
            ),
            "require_active_consumer": _option(
                "Refuse (503, so that Ntropy retries for 24 hours) an event that no unpaused DAG would run "
                "for, e.g. while ntropy_webhook_results is paused, instead of recording it unprocessed.",
                "boolean",
                "True",
            ),
            "record_concurrency": _option(
                "Most deliveries written to the metadata database at once, per API server process.",
                "integer",
                DEFAULT_RECORD_CONCURRENCY,
            ),
        },
    }
}
