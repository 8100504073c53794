"""The credit guard and the dry run's estimate: what a submission will cost, known before any POST.

Ntropy charges one credit per transaction sent. Once the input is validated, deduplicated and the
already-enriched rows skipped, the credits of the run are exactly the rows left to send; a run whose
cost exceeds its ceiling fails then, before anything is sent, naming the count, the limit and the
input. The ceiling is the operator's ``max_credits`` or the connection's ``max_credits`` extra (a
deployment-wide ceiling): when both are set the lower one holds, so a task cannot lift the
deployment's ceiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ntropy_provider.api.limits import ApiLimits
from ntropy_provider.exceptions import CreditLimitExceededError


def check_max_credits_value(value: Any, *, name: str = "max_credits") -> int | None:
    """``max_credits`` as an int (``None``: no limit), from an int or its rendered template.

    :param value: the value given (an int, a string such as ``"50000"``, ``None`` or ``""``).
    :param name: the argument's name, for the error.
    :raises ValueError: when it is not a whole number >= 0.
    """
    if value is None or value == "" or value == "None":
        return None
    try:
        number = float(value) if isinstance(value, str) else value
        ok = not isinstance(number, bool) and float(number).is_integer() and number >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected a whole number of credits >= 0 or None, got {value!r}")
    return int(number)


def effective_limit(task_limit: int | None, connection_limit: int | None) -> tuple[int | None, str]:
    """The ceiling that holds and where it comes from.

    :param task_limit: the operator's ``max_credits``.
    :param connection_limit: the connection's ``max_credits`` extra.
    """
    if task_limit is None and connection_limit is None:
        return None, "no limit"
    if connection_limit is None or (task_limit is not None and task_limit <= connection_limit):
        return task_limit, "the task's max_credits"
    return connection_limit, "the connection's max_credits extra"


def check_credits(credits: int, limit: int | None, *, source: str, input_description: str) -> None:
    """Fail, before anything is sent, when ``credits`` exceed ``limit``.

    :param credits: the credits the run would spend (rows to send).
    :param limit: the ceiling, ``None`` for none.
    :param source: where the ceiling comes from, for the message.
    :param input_description: the input, for the message (never its rows).
    :raises CreditLimitExceededError: naming the count, the limit and the input.
    """
    if limit is not None and credits > limit:
        raise CreditLimitExceededError(
            f"{credits:,} transaction(s) to send would cost {credits:,} credits, above {source} "
            f"({limit:,}); nothing was sent. Input: {input_description}. Check the input (a wrong, far "
            "larger file?), or raise max_credits."
        )


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a submission would send and how long the key's limits make it take.

    :param rows: transactions to send (= credits).
    :param batches: batches they make.
    :param seconds: the shortest time the credit bucket allows to send them, from a full bucket:
        what exceeds the bucket's capacity arrives at the refill rate. Processing time is not included.
    """

    rows: int
    batches: int
    seconds: float

    def to_json(self) -> dict[str, Any]:
        """The estimate as XCom values."""
        return {"rows": self.rows, "batches": self.batches, "credits": self.rows, "seconds": self.seconds}


def estimate_cost(rows: int, batches: int, limits: ApiLimits) -> CostEstimate:
    """The cost of sending ``rows`` in ``batches`` at ``limits`` (the documented ones by default).

    :param rows: transactions to send.
    :param batches: batches they make.
    :param limits: the key's limits.
    """
    beyond_bucket = max(0, rows - limits.credit_capacity)
    seconds = math.ceil(limits.seconds_to_refill(beyond_bucket)) if beyond_bucket else 0.0
    return CostEstimate(rows=rows, batches=batches, seconds=float(seconds))
