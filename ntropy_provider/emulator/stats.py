"""The emulator's counters, served by ``GET /_emulator/stats`` (a module of its own so that the state
in ``core`` and the webhook deliverer in ``delivery`` both use it without importing each other)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Stats:
    """Counters served by ``GET /_emulator/stats``.

    ``rate_limited`` counts the API's documented limits by cause: ``credits`` and ``open_batches``
    (429), ``endpoint:<METHOD /route>`` (429) and ``batch_over_credit_capacity`` (422);
    ``faults`` counts injected faults (including the legacy ``rate_limit`` setting's 429s).
    """

    requests: Counter[str] = field(default_factory=Counter)
    batches_created: int = 0
    transactions_submitted: int = 0
    batches_completed: int = 0
    batches_errored: int = 0
    results_served: int = 0
    sync_transactions: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    max_open_batches_seen: int = 0
    webhook_attempts: int = 0
    webhook_delivered: int = 0
    webhook_failed_attempts: int = 0
    webhook_abandoned: int = 0
    #: Events given up because their webhook was disabled (or deleted) before they were delivered.
    webhook_dropped: int = 0
    webhook_duplicates: int = 0
    webhooks_disabled: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The counters as JSON-serializable values."""
        return {
            "requests": dict(self.requests),
            "batches_created": self.batches_created,
            "transactions_submitted": self.transactions_submitted,
            "batches_completed": self.batches_completed,
            "batches_errored": self.batches_errored,
            "results_served": self.results_served,
            "sync_transactions": self.sync_transactions,
            "faults": dict(self.faults),
            "rate_limited": dict(self.rate_limited),
            "max_open_batches_seen": self.max_open_batches_seen,
            "webhook_deliveries": {
                "attempts": self.webhook_attempts,
                "delivered": self.webhook_delivered,
                "failed_attempts": self.webhook_failed_attempts,
                "abandoned": self.webhook_abandoned,
                "dropped": self.webhook_dropped,
            },
            "webhook_duplicates": self.webhook_duplicates,
            "webhooks_disabled": self.webhooks_disabled,
        }
