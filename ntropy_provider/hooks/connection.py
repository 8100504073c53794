"""The ``ntropy`` connection type: what its fields mean, how the UI shows them, how they are read.

* password: the API key (required).
* ``region`` extra: ``us`` (https://api.ntropy.com, the default) or ``eu`` (https://api.eu.ntropy.com).
* host (optional): overrides the region. Either a full URL (``http://127.0.0.1:8900``) or a host name
  with the port and schema (``http``/``https``) fields; a loopback host without schema means ``http``
  (the local emulator speaks plain HTTP), any other host ``https``.
* extras ``timeout``, ``connect_timeout`` (seconds) and the retry budget (:data:`POLICY_EXTRAS`); the
  seven of them a hook also accepts as arguments are one :class:`RequestOptions` value.
* extras ``webhook_token`` (a secret: the token Ntropy sends with every webhook delivery) and
  ``webhook_url`` (the receiver's public URL), read by the webhook operators and the receiver.
* extras ``max_open_batches``, ``credit_capacity``, ``credit_refill_per_second``: the API key's limits
  (:class:`~ntropy_provider.api.limits.ApiLimits`, documented defaults), and ``max_credits``: a
  deployment-wide ceiling of credits one task may spend (absent: none).

This module is the home of the connection type's name and of the default connection id; it imports
nothing but the standard library and :mod:`ntropy_provider.api`, so that Airflow's configuration loading
(see :mod:`ntropy_provider.webhooks.provider_config`) can read it.

Extras are looked up under their plain name and under Airflow's legacy ``extra__ntropy__<name>``; an
empty or ``null`` extra (the UI saves ``null`` for every field left empty) means "the default". The port
``0`` means no port (Airflow 3.3.2's UI sends it for a connection without one).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.wire import DEFAULT_REGION, REGION_BASE_URLS
from ntropy_provider.hooks.retry_policy import POLICY_EXTRAS, RetryPolicy
from ntropy_provider.utils.net import is_loopback_host

CONN_TYPE = "ntropy"
DEFAULT_CONN_ID = "ntropy_default"
#: Seconds to wait for an answer (a 24,960-item batch may take a while to be accepted).
DEFAULT_TIMEOUT = 300.0
#: Seconds to wait for a TCP connection.
DEFAULT_CONNECT_TIMEOUT = 10.0

_LEGACY_PREFIX = f"extra__{CONN_TYPE}__"
_DEFAULT_POLICY = RetryPolicy()
_DEFAULT_LIMITS = ApiLimits()

#: The extra that holds the token Ntropy sends with every webhook delivery (the receiver checks it).
WEBHOOK_TOKEN_EXTRA = "webhook_token"
#: The extra that holds the webhook receiver's public URL (``EnsureWebhookOperator``, the catch-up).
WEBHOOK_URL_EXTRA = "webhook_url"
#: The extra that holds the receiver URL Airflow's workers reach, for the catch-up (optional).
WEBHOOK_CATCHUP_URL_EXTRA = "webhook_catchup_url"


def _field(
    label: str, description: str, kind: str, default: Any = None, **schema: Any
) -> dict[str, dict[str, Any] | str]:
    """One ``conn-fields`` entry: optional (``null`` allowed), without a ``default`` in its schema.

    Airflow's form pre-fills every schema ``default`` into the Extra JSON, so each connection saved from
    the UI would store them; the defaults live in the code instead, and the description says what an
    empty field means.
    """
    if default is not None:
        description = f"{description} Empty: {f'{default:g}' if isinstance(default, float) else default}."
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


#: The form fields stored in the connection's extras (Airflow's declarative ``conn-fields``), every extra
#: the provider reads, so that a connection created elsewhere (environment, CLI, REST) shows labelled
#: fields when edited in the UI. The ``region`` choices exclude ``null``: an unset region is the default.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "region": _field(
        "Region",
        "Ntropy region of the API key, used when Host is empty: "
        + ", ".join(f"{name} = {url}" for name, url in REGION_BASE_URLS.items())
        + ".",
        "string",
        DEFAULT_REGION,
        enum=list(REGION_BASE_URLS),
    ),
    "timeout": _field(
        "Read timeout (seconds)",
        "Seconds to wait for an answer before the request counts as failed and is retried.",
        "number",
        DEFAULT_TIMEOUT,
        exclusiveMinimum=0,
    ),
    "connect_timeout": _field(
        "Connect timeout (seconds)",
        "Seconds to wait for a TCP connection to the API.",
        "number",
        DEFAULT_CONNECT_TIMEOUT,
        exclusiveMinimum=0,
    ),
    "max_attempts": _field(
        "Retry budget: attempts",
        "Most requests per call, the first included, when the API answers 429/5xx or the connection fails.",
        "integer",
        _DEFAULT_POLICY.max_attempts,
        minimum=1,
    ),
    "max_elapsed": _field(
        "Retry budget: seconds",
        "Most seconds spent retrying one call.",
        "number",
        _DEFAULT_POLICY.max_elapsed,
        minimum=0,
    ),
    "backoff_base": _field(
        "Backoff: first wait (seconds)",
        "Upper bound of the first wait before a retry; it doubles on every retry (with full jitter).",
        "number",
        _DEFAULT_POLICY.backoff_base,
        minimum=0,
    ),
    "backoff_min": _field(
        "Backoff: shortest wait (seconds)",
        "The jittered wait never goes below this (nor above the current upper bound).",
        "number",
        _DEFAULT_POLICY.backoff_min,
        minimum=0,
    ),
    "backoff_max": _field(
        "Backoff: longest wait (seconds)",
        "Longest wait between two attempts.",
        "number",
        _DEFAULT_POLICY.backoff_max,
        minimum=0,
    ),
    "retry_after_cap": _field(
        "Longest Retry-After honoured (seconds)",
        "A 429's Retry-After above this is cut to it.",
        "number",
        _DEFAULT_POLICY.retry_after_cap,
        minimum=0,
    ),
    "max_open_batches": _field(
        "Key limit: batches in progress",
        "Most enrichment batches in progress per API key (Ntropy's documented default).",
        "integer",
        _DEFAULT_LIMITS.max_open_batches,
        minimum=1,
    ),
    "credit_capacity": _field(
        "Key limit: credit bucket size",
        "Most credits the API key holds (one credit per transaction).",
        "integer",
        _DEFAULT_LIMITS.credit_capacity,
        minimum=1,
    ),
    "credit_refill_per_second": _field(
        "Key limit: credits refilled per second",
        "Credits added to the API key's bucket per second.",
        "number",
        _DEFAULT_LIMITS.credit_refill_per_second,
        exclusiveMinimum=0,
    ),
    "max_credits": _field(
        "Most credits per task",
        "A deployment-wide ceiling of credits one task may spend. Empty: no ceiling.",
        "integer",
        minimum=1,
    ),
    WEBHOOK_TOKEN_EXTRA: _field(
        "Webhook token",
        "A long random string Ntropy sends with every webhook delivery; the Airflow receiver refuses "
        "deliveries without it.",
        "string",
        # "password": Airflow masks the field and treats it as a secret (not only because of its name).
        format="password",
    ),
    WEBHOOK_URL_EXTRA: _field(
        "Webhook URL",
        "The receiver's public URL registered with Ntropy. Empty: Airflow's [api] base_url followed by "
        "/ntropy/webhooks/<conn_id>.",
        "string",
    ),
    WEBHOOK_CATCHUP_URL_EXTRA: _field(
        "Webhook URL for the catch-up",
        "The receiver's URL as Airflow's workers reach it, when the public Webhook URL is not reachable "
        "from them. Empty: the Webhook URL.",
        "string",
    ),
}

#: Whether a field holds a secret (masked in the form, registered as sensitive).
SENSITIVE_FIELDS: frozenset[str] = frozenset(
    name for name, spec in CONN_FIELDS.items() if spec["schema"].get("format") == "password"
)

#: How the standard form fields are shown (Airflow's ``ui-field-behaviour``).
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["login"],
    "relabeling": {
        "password": "API key",
        "host": "Host (optional, overrides the region)",
        "schema": "Scheme (http or https, when Host has none)",
    },
    "placeholders": {
        "password": "your Ntropy API key",
        "host": "empty for the region's API, or e.g. http://127.0.0.1:8900 for the local emulator",
        "port": "only with a Host without port",
        "schema": "https",
    },
}


def provider_connection_type() -> dict[str, Any]:
    """The ``connection-types`` entry of ``get_provider_info()``, with the declarative UI metadata."""
    return {
        "connection-type": CONN_TYPE,
        "hook-class-name": "ntropy_provider.hooks.ntropy.NtropyHook",
        "hook-name": "Ntropy",
        "ui-field-behaviour": {
            "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        },
        "conn-fields": CONN_FIELDS,
    }


@dataclass(frozen=True, slots=True)
class NtropyConnectionSettings:
    """Everything a hook needs from an ``ntropy`` connection.

    :param base_url: the API's base URL, without trailing slash.
    :param api_key: the API key (excluded from ``repr``).
    :param retry: the retry policy.
    :param timeout: seconds to wait for an answer.
    :param connect_timeout: seconds to wait for a TCP connection.
    :param api_limits: the API key's limits (batches in progress, credit bucket).
    :param max_credits: the most credits one task may spend, ``None`` for no ceiling.
    """

    base_url: str
    api_key: str = field(repr=False)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    api_limits: ApiLimits = field(default_factory=ApiLimits)
    max_credits: int | None = None


@dataclass(frozen=True, slots=True)
class RequestOptions:
    """The retry and timeout settings a hook takes as arguments, which win over the connection's extras.

    Every field is ``None`` when not given (the connection's extra, else the default, applies).

    :param timeout: seconds to wait for an answer.
    :param connect_timeout: seconds to wait for a TCP connection.
    :param max_attempts: retry budget: most requests per call that failed (a 429 does not count).
    :param max_elapsed: retry budget: most seconds spent retrying one call (429 waits included).
    :param retry_after_cap: the longest ``Retry-After`` honoured, in seconds.
    :param backoff_base: the first backoff's upper bound, in seconds (doubling on every retry).
    :param backoff_max: the longest backoff, in seconds.
    """

    timeout: float | None = None
    connect_timeout: float | None = None
    max_attempts: int | None = None
    max_elapsed: float | None = None
    retry_after_cap: float | None = None
    backoff_base: float | None = None
    backoff_max: float | None = None

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings' names, which are also their connection extras' names."""
        return tuple(spec.name for spec in dataclasses.fields(cls))

    @classmethod
    def take(cls, kwargs: MutableMapping[str, Any], options: RequestOptions | None = None) -> RequestOptions:
        """Options from a hook's keyword arguments (removed from ``kwargs``), over ``options``.

        :param kwargs: the hook's keyword arguments; the settings named here are taken out of it.
        :param options: options given as one value, if any.
        """
        given = {name: kwargs.pop(name) for name in cls.names() if name in kwargs}
        return dataclasses.replace(options or cls(), **{k: v for k, v in given.items() if v is not None})

    def given(self) -> dict[str, Any]:
        """The settings that were given (not ``None``)."""
        return {name: getattr(self, name) for name in self.names() if getattr(self, name) is not None}


def extra_value(extras: Mapping[str, Any], name: str) -> Any:
    """An extra by its plain name, else by Airflow's legacy prefixed name; empty strings count as unset.

    :param extras: the connection's extras.
    :param name: the plain name, e.g. ``region``.
    """
    for key in (name, _LEGACY_PREFIX + name):
        value = extras.get(key)
        if value not in (None, ""):
            return value
    return None


def resolve_base_url(
    *, host: str | None, port: int | None, schema: str | None, region: str | None, conn_id: str
) -> str:
    """The API's base URL for a connection's host, port, schema and region.

    :param host: the host field (a name, or a full URL), empty to use the region.
    :param port: the port field.
    :param schema: the schema field, taken as the URL scheme when the host has none.
    :param region: the ``region`` extra (``us`` when empty).
    :param conn_id: the connection's id, for error messages.
    :raises ValueError: naming the field whose value is not usable.
    """
    host = (host or "").strip()
    if not host:
        name = (region or DEFAULT_REGION).strip().lower()
        if name not in REGION_BASE_URLS:
            raise ValueError(
                f"Connection {conn_id!r}: region: expected one of {', '.join(REGION_BASE_URLS)}, "
                f"got {region!r}"
            )
        return REGION_BASE_URLS[name]
    if "@" in urlsplit(host if "://" in host else "//" + host).netloc:
        # The base URL appears in log lines and error messages: credentials in it would leak (and the
        # message must not quote the host either).
        raise ValueError(
            f"Connection {conn_id!r}: host: credentials in the host are not supported; "
            "put the API key in the password field"
        )
    if "://" in host:
        parts = urlsplit(host)
        try:
            url_port = parts.port  # raises for a port that is not a number or out of range
        except ValueError:
            url_port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or url_port == -1:
            raise ValueError(f"Connection {conn_id!r}: host: expected an http(s) URL, got {host!r}")
        url = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        if port and url_port is None:
            url = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}".rstrip("/")
        return url
    # A host field may carry a port ("127.0.0.1:8900") and may be a bare IPv6 literal ("::1"): read it
    # as a URL's authority, so the loopback test sees the host name alone and no second port is added.
    host = host.rstrip("/")
    if host.count(":") > 1 and not host.startswith("["):
        host = f"[{host}]"
    parts = urlsplit("//" + host)
    try:
        host_port = parts.port
    except ValueError:
        raise ValueError(
            f"Connection {conn_id!r}: host: expected a host name, optionally with :port, got {host!r}"
        ) from None
    if not parts.hostname:
        raise ValueError(f"Connection {conn_id!r}: host: expected a host name, got {host!r}")
    scheme = (schema or "").strip().lower() or ("http" if is_loopback_host(parts.hostname) else "https")
    if scheme not in ("http", "https"):
        raise ValueError(f"Connection {conn_id!r}: schema: expected 'http' or 'https', got {schema!r}")
    netloc = f"{parts.netloc}:{port}" if port and host_port is None else parts.netloc
    return f"{scheme}://{netloc}{parts.path}".rstrip("/")


def _max_credits(extras: Mapping[str, Any], conn_id: str) -> int | None:
    raw = extra_value(extras, "max_credits")
    if raw is None:
        return None
    try:
        value = float(raw) if isinstance(raw, str) else raw
        ok = not isinstance(value, bool) and float(value).is_integer() and value >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"Connection {conn_id!r}: extra max_credits: expected an integer >= 1, got {raw!r}")
    return int(value)


def _api_limits(extras: Mapping[str, Any], conn_id: str) -> ApiLimits:
    names = [spec.name for spec in dataclasses.fields(ApiLimits)]
    plain = {name: value for name in names if (value := extra_value(extras, name)) is not None}
    return ApiLimits.from_extras(plain, where=f"Connection {conn_id!r}: extra")


def _positive_float(extras: Mapping[str, Any], name: str, default: float, conn_id: str) -> float:
    raw = extra_value(extras, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not value > 0:
        raise ValueError(f"Connection {conn_id!r}: {name}: expected a number of seconds > 0, got {raw!r}")
    return value


def parse_connection(
    *,
    conn_id: str,
    host: str | None,
    port: int | None,
    schema: str | None,
    password: str | None,
    extras: Mapping[str, Any],
    options: RequestOptions | None = None,
) -> NtropyConnectionSettings:
    """Read an ``ntropy`` connection's fields into settings.

    :param conn_id: the connection's id, for error messages.
    :param host: the host field.
    :param port: the port field.
    :param schema: the schema field.
    :param password: the password field: the API key.
    :param extras: the connection's extras (decoded).
    :param options: settings given to the hook's constructor; they win over the extras.
    :raises ValueError: naming the connection and the field or extra whose value is missing or not usable
        (never showing the key).
    """
    if not password:
        raise ValueError(
            f"Connection {conn_id!r} has no API key: put the Ntropy API key in its password field"
        )
    merged = {name: extra_value(extras, name) for name in (*POLICY_EXTRAS, *RequestOptions.names())}
    merged.update((options or RequestOptions()).given())
    try:
        retry = RetryPolicy.from_settings(merged)
    except ValueError as err:
        raise ValueError(f"Connection {conn_id!r}: {err}") from None
    return NtropyConnectionSettings(
        base_url=resolve_base_url(
            host=host, port=port, schema=schema, region=extra_value(extras, "region"), conn_id=conn_id
        ),
        api_key=password,
        retry=retry,
        timeout=_positive_float(merged, "timeout", DEFAULT_TIMEOUT, conn_id),
        connect_timeout=_positive_float(merged, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, conn_id),
        api_limits=_api_limits(extras, conn_id),
        max_credits=_max_credits(extras, conn_id),
    )


def settings_from_airflow_connection(
    conn: Any, extras: Mapping[str, Any], conn_id: str, options: RequestOptions | None
) -> NtropyConnectionSettings:
    """Read an Airflow ``Connection`` into settings (both hooks; the async one decodes extras itself).

    :param conn: the Airflow ``Connection``.
    :param extras: its decoded extras.
    :param conn_id: its id, for error messages.
    :param options: the hook's constructor settings.
    """
    return parse_connection(
        conn_id=conn_id,
        host=conn.host,
        port=conn.port,
        schema=conn.schema,
        password=conn.password,
        extras=extras,
        options=options,
    )
