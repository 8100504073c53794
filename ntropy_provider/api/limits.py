"""The API's per-key limits as one settings value: what the client paces itself to and the emulator enforces.

Ntropy documents (docs.ntropy.com, "Rate limits") a credit bucket per API key (one credit per transaction,
at most 100,000 held, refilled at 1,000 per second) and at most 10 enrichment batches in progress per key.
Keys can have raised limits on request, so these are settings with documented defaults, not constants:
the hook reads them from the ``ntropy`` connection's extras, the emulator from its command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

#: Documented default: at most 10 enrichment batches in progress per API key.
DEFAULT_MAX_OPEN_BATCHES = 10
#: Documented default: a key holds at most 100,000 credits.
DEFAULT_CREDIT_CAPACITY = 100_000
#: Documented default: credits refill at 1,000 per second.
DEFAULT_CREDIT_REFILL_PER_SECOND = 1_000.0


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The limits of one API key.

    :param max_open_batches: most enrichment batches in progress at once (>= 1).
    :param credit_capacity: most credits the key's bucket holds (>= 1); one credit per transaction.
    :param credit_refill_per_second: credits added to the bucket per second (> 0).
    """

    max_open_batches: int = DEFAULT_MAX_OPEN_BATCHES
    credit_capacity: int = DEFAULT_CREDIT_CAPACITY
    credit_refill_per_second: float = DEFAULT_CREDIT_REFILL_PER_SECOND

    def __post_init__(self) -> None:
        for name in ("max_open_batches", "credit_capacity"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        rate = self.credit_refill_per_second
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float))
            or not math.isfinite(rate)
            or rate <= 0
        ):
            raise ValueError(f"credit_refill_per_second: expected a number > 0, got {rate!r}")

    def seconds_to_refill(self, credits: int) -> float:
        """Seconds the bucket needs, from empty, to hold ``credits``.

        :param credits: the credits wanted (at most ``credit_capacity``).
        """
        return credits / self.credit_refill_per_second

    @classmethod
    def from_extras(cls, extras: Mapping[str, Any], *, where: str = "extra") -> ApiLimits:
        """Read the limits from a connection's extras; absent keys keep their documented defaults.

        Numbers written as strings (URI-form connections) are accepted.

        :param extras: the connection's extras.
        :param where: how to name the extras in an error message (e.g. the connection id).
        :raises ValueError: naming the extra whose value is unusable.
        """
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name not in extras or extras[spec.name] in (None, ""):
                continue
            raw = extras[spec.name]
            try:
                number = float(raw) if isinstance(raw, str) else raw
                if spec.name != "credit_refill_per_second" and isinstance(number, float):
                    if not number.is_integer():
                        raise ValueError
                    number = int(number)
            except ValueError:
                raise ValueError(f"{where} {spec.name}: expected a number, got {raw!r}") from None
            values[spec.name] = number
        try:
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{where} {err}") from None
