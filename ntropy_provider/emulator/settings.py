"""The emulator's run-time settings: speed, the API's documented limits, determinism and fault injection.

One dataclass, changed at run time through ``EmulatorServer.configure`` or ``PATCH /_emulator/settings``.
Every change is checked here, so a typo in a test (``fail_rat=0.5``) fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.api.wire import (
    DOCUMENTED_ENDPOINT_RATES,
    WEBHOOK_DELIVERY_TIMEOUT_SECONDS,
    WEBHOOK_RETRY_WINDOW_SECONDS,
)

#: The API key accepted when none is configured (what the pytest fixtures use).
DEFAULT_API_KEY = "test-key"
#: Simulated enrichment speed of one batch (items per second): a realistic few thousand.
DEFAULT_ITEMS_PER_SECOND = 2_000.0
#: Consecutive failed deliveries after which a webhook is disabled. Ntropy documents that there is such
#: a limit but not its value: 10 is this project's choice (*inferred*, see docs/ntropy-api.md).
DEFAULT_WEBHOOK_DISABLE_AFTER_FAILURES = 10
#: ``endpoint_limits`` values: the documented per-endpoint rates, or none.
ENDPOINT_LIMIT_MODES = ("documented", "off")
_DEFAULT_LIMITS = ApiLimits()


@dataclass(slots=True)
class EmulatorSettings:
    """What the emulator does; every field can change while it runs.

    :param api_keys: the accepted ``X-API-Key`` values; any other key gets 401.
    :param items_per_second: simulated enrichment speed of each batch.
    :param seed: seeds every random choice (item errors, batch errors, faults).
    :param rate_limit: requests per second per API key (0 disables); beyond it 429 with ``Retry-After``.
    :param fail_rate: fraction of API requests answered with ``fail_status``.
    :param fail_status: the status of injected failures (503 by default; 500, 502 or 504 are useful too).
    :param batch_error_rate: fraction of batches that end in status ``error``.
    :param item_error_rate: fraction of items that get the per-item ``internal_error``.
    :param latency_ms: added to every API request before it is answered.
    :param drop_connection_rate: fraction of API requests whose connection is closed without an answer.
    :param create_batch_delay_ms: delay of the answer to ``POST /v3/batches`` *after* the batch is stored.
    :param credits: remaining credits (one per transaction); ``None`` is unlimited; short: 423.
    :param forbidden_keys: keys that authenticate but are "not enabled": 403.
    :param webhook_timeout_seconds: how long a webhook receiver gets to answer one delivery.
    :param webhook_retry_initial_seconds: first pause before a failed delivery is retried (then doubled).
    :param webhook_retry_max_seconds: longest pause between delivery attempts.
    :param webhook_retry_window_seconds: how long a failing delivery keeps being retried.
    :param limits: enforce the API's documented per-key limits below (``False`` turns them all off).
    :param credit_capacity: most credits a key's bucket holds (one credit per transaction).
    :param credit_refill_per_second: credits added to each key's bucket per second.
    :param max_open_batches: most batches in progress per key (the sync endpoint is refused too when full).
    :param endpoint_limits: ``documented`` (per-endpoint request rates) or ``off``.
    :param endpoint_rates: overrides of the documented rates, ``{"GET /v3/batches/{batch_id}": 100}``.
    :param webhook_disable_after_failures: consecutive failed deliveries that disable a webhook (0: never).
    :param webhook_duplicate_rate: fraction of successful deliveries that are delivered once more.
    :param extended_accounting_categories: also emit the accounting values ``investing`` and
        ``not enough information`` (documented, but ntropy-sdk 5.7.0 rejects them).
    """

    api_keys: list[str] = field(default_factory=lambda: [DEFAULT_API_KEY])
    items_per_second: float = DEFAULT_ITEMS_PER_SECOND
    seed: int = 0
    rate_limit: float = 0.0
    fail_rate: float = 0.0
    fail_status: int = 503
    batch_error_rate: float = 0.0
    item_error_rate: float = 0.0
    latency_ms: float = 0.0
    drop_connection_rate: float = 0.0
    create_batch_delay_ms: float = 0.0
    credits: int | None = None
    forbidden_keys: list[str] = field(default_factory=list)
    webhook_timeout_seconds: float = WEBHOOK_DELIVERY_TIMEOUT_SECONDS
    webhook_retry_initial_seconds: float = 1.0
    webhook_retry_max_seconds: float = 300.0
    webhook_retry_window_seconds: float = float(WEBHOOK_RETRY_WINDOW_SECONDS)
    limits: bool = True
    credit_capacity: int = _DEFAULT_LIMITS.credit_capacity
    credit_refill_per_second: float = _DEFAULT_LIMITS.credit_refill_per_second
    max_open_batches: int = _DEFAULT_LIMITS.max_open_batches
    endpoint_limits: str = "documented"
    endpoint_rates: dict[str, float] = field(default_factory=dict)
    webhook_disable_after_failures: int = DEFAULT_WEBHOOK_DISABLE_AFTER_FAILURES
    webhook_duplicate_rate: float = 0.0
    extended_accounting_categories: bool = False

    def endpoint_rate(self, endpoint: str) -> float | None:
        """The enforced operations per second of ``endpoint``, or ``None`` when unlimited.

        :param endpoint: ``"METHOD /route/{template}"``.
        """
        if not self.limits or self.endpoint_limits == "off":
            return None
        return self.endpoint_rates.get(endpoint, DOCUMENTED_ENDPOINT_RATES.get(endpoint))

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-serializable values."""
        return dataclasses.asdict(self)

    def updated(self, changes: Mapping[str, Any]) -> EmulatorSettings:
        """A copy with ``changes`` applied, each checked.

        :param changes: setting name to new value.
        :raises ValueError: naming the setting that is unknown or has a bad value.
        """
        values = self.to_dict()
        for name, value in changes.items():
            if name not in values:
                raise ValueError(f"{name}: unknown setting (known: {', '.join(sorted(values))})")
            values[name] = _check(name, value)
        return EmulatorSettings(**values)


_FRACTIONS = {
    "fail_rate",
    "batch_error_rate",
    "item_error_rate",
    "drop_connection_rate",
    "webhook_duplicate_rate",
}
_BOOLEANS = {"limits", "extended_accounting_categories"}
_API_LIMITS = {"credit_capacity", "credit_refill_per_second", "max_open_batches"}
_NON_NEGATIVE = {
    "rate_limit",
    "latency_ms",
    "create_batch_delay_ms",
    "webhook_retry_max_seconds",
    "webhook_retry_window_seconds",
}
#: 0 would not mean "fast" here: a first pause of 0 doubles to 0 for ever (a failing receiver hammered
#: in a tight loop for the whole retry window), and aiohttp reads a timeout of 0 as "no timeout".
_POSITIVE = {"items_per_second", "webhook_timeout_seconds", "webhook_retry_initial_seconds"}


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def _check(name: str, value: Any) -> Any:
    """Check and normalise one setting's value."""
    if name in ("api_keys", "forbidden_keys"):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise ValueError(f"{name}: expected a list of strings, got {value!r}")
        if not all(isinstance(key, str) and key for key in value):
            raise ValueError(f"{name}: every key must be a non-empty string")
        return list(value)
    if name == "seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"seed: expected an integer, got {value!r}")
        return value
    if name == "credits":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"credits: expected null or an integer >= 0, got {value!r}")
        return value
    if name in _BOOLEANS:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if name in _API_LIMITS:
        ApiLimits(**{name: value})  # raises ValueError naming the setting
        return float(value) if name == "credit_refill_per_second" else value
    if name == "endpoint_limits":
        if value not in ENDPOINT_LIMIT_MODES:
            raise ValueError(f"endpoint_limits: expected one of {list(ENDPOINT_LIMIT_MODES)}, got {value!r}")
        return value
    if name == "endpoint_rates":
        if not isinstance(value, Mapping):
            raise ValueError(f"endpoint_rates: expected an object of endpoint to rate, got {value!r}")
        rates = {}
        for endpoint, rate in value.items():
            if endpoint not in DOCUMENTED_ENDPOINT_RATES:
                known = ", ".join(DOCUMENTED_ENDPOINT_RATES)
                raise ValueError(f"endpoint_rates: unknown endpoint {endpoint!r} (known: {known})")
            if _number(f"endpoint_rates[{endpoint!r}]", rate) <= 0:
                raise ValueError(f"endpoint_rates[{endpoint!r}]: expected a number > 0, got {rate!r}")
            rates[endpoint] = float(rate)
        return rates
    if name == "webhook_disable_after_failures":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}: expected an integer >= 0 (0: never), got {value!r}")
        return value
    if name == "fail_status":
        if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
            raise ValueError(f"fail_status: expected an HTTP error status (400-599), got {value!r}")
        return value
    number = _number(name, value)
    if name in _POSITIVE and number <= 0:
        raise ValueError(f"{name}: expected a number > 0, got {value!r}")
    if name in _FRACTIONS and not 0.0 <= number <= 1.0:
        raise ValueError(f"{name}: expected a fraction between 0 and 1, got {value!r}")
    if name in _NON_NEGATIVE and number < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    return number
