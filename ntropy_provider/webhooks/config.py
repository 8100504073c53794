"""Settings of the webhook receiver, read from Airflow's configuration.

Every setting lives in the ``[ntropy_webhooks]`` section of ``airflow.cfg`` and can be set through
the environment as usual (``AIRFLOW__NTROPY_WEBHOOKS__CONN_ID=...``).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.configuration import conf

from ntropy_provider.webhooks.provider_config import (
    DEFAULT_BODY_TIMEOUT_SECONDS,
    DEFAULT_CONN_ID,
    DEFAULT_DEDUPE_RETENTION_DAYS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_PARTITION_BY_BATCH,
    DEFAULT_RECORD_CONCURRENCY,
    DEFAULT_REQUIRE_ACTIVE_CONSUMER,
    DEFAULT_TOKEN_CACHE_SECONDS,
    DEFAULT_TOKEN_EXTRA_KEY,
)
from ntropy_provider.webhooks.provider_config import SECTION as CONFIG_SECTION

#: Where the plugin mounts the receiver on Airflow's API server (the stand-alone app uses it too).
URL_PREFIX = "/ntropy"
#: The route Ntropy delivers to, relative to the mount point (``/webhooks/{conn_id}`` for each served one).
WEBHOOK_PATH = "/webhooks"


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """How the receiver authenticates, bounds and records deliveries.

    :param conn_id: the Ntropy connection served by ``POST /webhooks`` (other connections are served
        by ``POST /webhooks/{conn_id}``); it names the asset that events are recorded on.
    :param extra_conn_ids: further Ntropy connections served at ``POST /webhooks/{conn_id}``; any other
        connection id in the path is answered 401, like a wrong token, without a look-up (so
        unauthenticated callers can neither make the receiver read arbitrary connections nor learn
        which ids are served).
    :param token_extra_key: key, in the connection's extras, of the expected ``X-Ntropy-Token``.
    :param token_variable: when set, the token is read from this Airflow variable instead of the
        connection's extras (for the default connection only).
    :param max_body_bytes: largest accepted body; a larger one is refused with 413 while it streams in.
    :param body_timeout_seconds: longest time the body may take to arrive; a slower one is refused (408).
    :param token_cache_seconds: how long a resolved token is reused before it is read again.
    :param dedupe_retention_days: how long event ids are remembered for deduplication.
    :param record_concurrency: most deliveries written to the database at once (per process).
    :param partition_by_batch: record each event with its batch id as the asset event's partition key, so
        that a DAG scheduled with ``PartitionedAssetTimetable`` gets exactly one run per batch, each run
        linked to its own events. Airflow queues only partition-aware DAGs for such events; with
        ``False``, plain ``schedule=[asset]`` DAGs run instead, but Airflow 3.3 then gives a run only the
        events recorded before its queue entry was created, and events recorded while a run was already
        queued wait for the next event.
    :param require_active_consumer: answer 503 (Ntropy retries for 24 h) instead of recording an event
        that no unpaused DAG would run for, e.g. while ``ntropy_webhook_results`` is paused: Airflow does
        not run a paused DAG for events recorded meanwhile, even after it is unpaused.
    """

    conn_id: str = DEFAULT_CONN_ID
    extra_conn_ids: tuple[str, ...] = ()
    token_extra_key: str = DEFAULT_TOKEN_EXTRA_KEY
    token_variable: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    body_timeout_seconds: float = DEFAULT_BODY_TIMEOUT_SECONDS
    token_cache_seconds: float = DEFAULT_TOKEN_CACHE_SECONDS
    dedupe_retention_days: int = DEFAULT_DEDUPE_RETENTION_DAYS
    record_concurrency: int = DEFAULT_RECORD_CONCURRENCY
    partition_by_batch: bool = DEFAULT_PARTITION_BY_BATCH
    require_active_consumer: bool = DEFAULT_REQUIRE_ACTIVE_CONSUMER

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise ValueError(f"max_body_bytes: expected at least 1024, got {self.max_body_bytes}")
        if not self.body_timeout_seconds > 0:
            raise ValueError(f"body_timeout_seconds: expected > 0, got {self.body_timeout_seconds}")
        if self.token_cache_seconds < 0:
            raise ValueError(f"token_cache_seconds: expected >= 0, got {self.token_cache_seconds}")
        if self.dedupe_retention_days < 2:
            # Ntropy retries for 24 h: forgetting an event id sooner would let a retry record twice.
            raise ValueError(f"dedupe_retention_days: expected at least 2, got {self.dedupe_retention_days}")
        if self.record_concurrency < 1:
            raise ValueError(f"record_concurrency: expected at least 1, got {self.record_concurrency}")

    @property
    def served_conn_ids(self) -> frozenset[str]:
        """Every connection whose deliveries are accepted."""
        return frozenset((self.conn_id, *self.extra_conn_ids))

    @classmethod
    def from_airflow_conf(cls) -> ReceiverConfig:
        """Read the settings from the ``[ntropy_webhooks]`` section (defaults where unset)."""
        return cls(
            conn_id=conf.get(CONFIG_SECTION, "conn_id", fallback=DEFAULT_CONN_ID),
            extra_conn_ids=tuple(
                c.strip()
                for c in conf.get(CONFIG_SECTION, "extra_conn_ids", fallback="").split(",")
                if c.strip()
            ),
            token_extra_key=conf.get(CONFIG_SECTION, "token_extra_key", fallback=DEFAULT_TOKEN_EXTRA_KEY),
            token_variable=conf.get(CONFIG_SECTION, "token_variable", fallback=None) or None,
            max_body_bytes=conf.getint(CONFIG_SECTION, "max_body_bytes", fallback=DEFAULT_MAX_BODY_BYTES),
            body_timeout_seconds=conf.getfloat(
                CONFIG_SECTION, "body_timeout_seconds", fallback=DEFAULT_BODY_TIMEOUT_SECONDS
            ),
            token_cache_seconds=conf.getfloat(
                CONFIG_SECTION, "token_cache_seconds", fallback=DEFAULT_TOKEN_CACHE_SECONDS
            ),
            dedupe_retention_days=conf.getint(
                CONFIG_SECTION, "dedupe_retention_days", fallback=DEFAULT_DEDUPE_RETENTION_DAYS
            ),
            record_concurrency=conf.getint(
                CONFIG_SECTION, "record_concurrency", fallback=DEFAULT_RECORD_CONCURRENCY
            ),
            partition_by_batch=conf.getboolean(
                CONFIG_SECTION, "partition_by_batch", fallback=DEFAULT_PARTITION_BY_BATCH
            ),
            require_active_consumer=conf.getboolean(
                CONFIG_SECTION, "require_active_consumer", fallback=DEFAULT_REQUIRE_ACTIVE_CONSUMER
            ),
        )


def receiver_url(conn_id: str = DEFAULT_CONN_ID, base_url: str | None = None) -> str:
    """The URL to register with Ntropy for deliveries of ``conn_id``'s events.

    :param conn_id: the Ntropy connection (its token authenticates the deliveries, its asset records them).
    :param base_url: the public URL of Airflow's API server (or of the stand-alone receiver);
        defaults to Airflow's ``[api] base_url``.
    :raises ValueError: when no base URL is given or configured.
    """
    base = base_url or conf.get("api", "base_url", fallback="")
    if not base:
        raise ValueError(
            "no base URL: pass one, or set [api] base_url to the public URL of Airflow's API server"
        )
    return f"{base.rstrip('/')}{URL_PREFIX}{WEBHOOK_PATH}/{conn_id}"
