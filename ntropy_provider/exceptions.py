"""Every error the provider raises, one class per meaning.

The API's errors come first, one class per meaning of an HTTP answer; then the task-level failures of
the operators and the sensor (bad input, changed input, batches left in error, a wait past its
deadline), and :data:`TRANSIENT_ERRORS`, what a wait rides out.

Every error carries the HTTP ``status`` (``None`` when no answer came), the API's ``detail`` and the
``request_id`` sent as ``X-Request-ID``, so that a failure can be quoted to Ntropy's support. Messages
never contain the API key: the hook builds them only from the method, the path, the status and the
API's own ``detail``, with the key scrubbed from the latter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowOptionalProviderFeatureException,
)


@dataclass(frozen=True, slots=True)
class ItemError:
    """One invalid field of one submitted item, as a 422 answer names it.

    :param index: the item's index in the request's ``data`` list (``None`` when the error is not
        about one item, e.g. the ``operation`` field).
    :param field: the field's dotted name, e.g. ``amount`` or ``location.country``.
    :param message: what is wrong with it.
    """

    index: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"item {self.index}, field {self.field}" if self.index is not None else f"field {self.field}"
        return f"{where}: {self.message}"


class NtropyError(AirflowException):
    """Base class of every error the Ntropy hooks raise.

    :param message: the human-readable message (never holds a secret).
    :param status: the HTTP status, ``None`` when the server never answered.
    :param detail: the API's ``detail`` (a string, or FastAPI's list of validation errors).
    :param request_id: the ``X-Request-ID`` of the (last) request.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.request_id = request_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default pickling; Airflow pickles exceptions.
        return (_rebuild, (type(self), str(self), self.__dict__.copy()))


def _rebuild(cls: type[NtropyError], message: str, state: dict[str, Any]) -> NtropyError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class NtropyAuthError(NtropyError):
    """401 (the API key is missing or wrong) or 403 (the feature is not enabled for this key)."""


class NtropyNotFoundError(NtropyError):
    """404: the batch, account holder or webhook does not exist."""


class NtropyValidationError(NtropyError):
    """400 or 422: the request was refused for its content.

    :param errors: the invalid fields found in a 422 answer, each naming its item and field.
    """

    def __init__(self, message: str, *, errors: Sequence[ItemError] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.errors: tuple[ItemError, ...] = tuple(errors)


class NtropyNotReadyError(NtropyError):
    """409: the resource is busy or not ready, e.g. the results of a batch still processing."""


class NtropyQuotaError(NtropyError):
    """A quota of the organization is exhausted (the base of :class:`NtropyOutOfCreditsError`)."""


class NtropyOutOfCreditsError(NtropyQuotaError):
    """423: the organization is out of prepaid credits, a billing state: never retried, fails at once."""


class NtropyRateLimitError(NtropyError):
    """429 ("not yet") for longer than the call's ``max_elapsed`` allows waiting."""


class NtropyServerError(NtropyError):
    """500/502/503/504 (or another 5xx) after the retry budget was spent."""


class NtropyConnectionError(NtropyError):
    """The server could not be reached, dropped the connection or timed out, and the budget is spent.

    :param message: the human-readable message.
    :param reason: why there was no answer, in a few words (e.g. ``connection refused``).
    :param kwargs: as :class:`NtropyError`.
    """

    def __init__(self, message: str, *, reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason


class NtropyTimeoutError(NtropyError, TimeoutError):
    """A wait (e.g. :meth:`NtropyHook.wait_for_batches`) passed its deadline.

    Also a :class:`TimeoutError`, so that code catching the builtin still catches it.
    """


#: Errors that a wait rides out: the API's trouble after the hook's own retries (5xx, 429, no answer) does
#: not end a wait that may last hours; the next poll asks again (the wait's deadline still applies).
#: The async transport's own exceptions are added where they can occur (the trigger), so that sync code
#: does not import aiohttp through this tuple.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    NtropyServerError,
    NtropyRateLimitError,
    NtropyConnectionError,
    ConnectionError,
)


# --------------------------------------------------------------------------------------------------
# Task-level failures
# --------------------------------------------------------------------------------------------------
class NtropySubmitError(Exception):
    """Base of SubmitBatchOperator's own failures (bad input, changed input, batches in error)."""


class InvalidInputError(NtropySubmitError, ValueError):
    """Rows break the API's rules and ``on_invalid="fail"``: nothing was sent."""


class InputChangedError(NtropySubmitError):
    """The input differs from what an earlier try of this task instance submitted, or changed during a run."""


class BatchesInErrorError(NtropySubmitError, AirflowFailException):
    """Batches ended in ``error`` (for SubmitBatchOperator: and the resubmission budget is spent).

    Fails the task at once, without Airflow's retries: a retry re-attaches to the same batches (the
    submission ledger makes sure of it) and finds them in error again, so it could only delay the
    failure by the retry delays. Resubmission is SubmitBatchOperator's ``max_batch_error_retries``.
    """


class MissingExtraError(AirflowOptionalProviderFeatureException, ImportError):
    """A feature needs a package of an optional extra that is not installed (e.g. pandas: ``[pandas]``).

    An ``ImportError`` too, so that code catching a failed import still catches it.
    """


_CLASS_FOR_STATUS: dict[int, type[NtropyError]] = {
    400: NtropyValidationError,
    401: NtropyAuthError,
    403: NtropyAuthError,
    404: NtropyNotFoundError,
    409: NtropyNotReadyError,
    422: NtropyValidationError,
    423: NtropyOutOfCreditsError,
    429: NtropyRateLimitError,
}


def error_class_for_status(status: int) -> type[NtropyError]:
    """The exception class that stands for an HTTP error status.

    :param status: an HTTP status that is not a success (>= 300; redirects are not followed).
    """
    if status >= 500:
        return NtropyServerError
    return _CLASS_FOR_STATUS.get(status, NtropyError)


def parse_item_errors(detail: Any) -> list[ItemError]:
    """Read the invalid fields out of a 422 ``detail``.

    Two forms are understood: FastAPI's list (``[{"loc": ["body", "data", 3, "amount"], "msg": ...}]``)
    and a list of ``{"index": 3, "field": "amount", "message": ...}`` objects.

    :param detail: the ``detail`` of the answer.
    :return: the errors found, empty when ``detail`` is a plain string.
    """
    if not isinstance(detail, list):
        return []
    errors: list[ItemError] = []
    for entry in detail:
        if not isinstance(entry, Mapping):
            continue
        message = str(entry.get("msg") or entry.get("message") or entry.get("reason") or "invalid")
        if "loc" in entry and isinstance(entry["loc"], (list, tuple)):
            errors.append(_item_error_from_loc(list(entry["loc"]), message))
        else:
            index = entry.get("index")
            errors.append(
                ItemError(index if isinstance(index, int) else None, str(entry.get("field", "?")), message)
            )
    return errors


def _item_error_from_loc(loc: list[Any], message: str) -> ItemError:
    # ["body", "data", 3, "location", "country"] -> item 3, field location.country
    if loc and loc[0] == "body":
        loc = loc[1:]
    if len(loc) >= 2 and loc[0] == "data" and isinstance(loc[1], int):
        return ItemError(loc[1], ".".join(str(part) for part in loc[2:]) or "(item)", message)
    return ItemError(None, ".".join(str(part) for part in loc) or "(body)", message)


def describe_detail(detail: Any, limit: int = 20) -> str:
    """Render an API ``detail`` for an exception message, naming item and field for validation errors.

    :param detail: a string, FastAPI's list of errors, or anything JSON.
    :param limit: at most this many item errors are spelled out.
    """
    errors = parse_item_errors(detail)
    if errors:
        shown = "; ".join(str(error) for error in errors[:limit])
        more = f"; and {len(errors) - limit} more" if len(errors) > limit else ""
        return shown + more
    if detail is None:
        return "(no detail)"
    return str(detail)


class DuplicateIdError(InvalidInputError, AirflowFailException):
    """The input holds the same transaction id more than once and ``on_duplicate="fail"``: nothing was
    sent. Fails at once: a retry reads the same input."""


class CreditLimitExceededError(NtropySubmitError, AirflowFailException):
    """The rows to send cost more credits than ``max_credits`` allows: nothing was sent.

    Fails at once, without Airflow's retries: a retry would read the same input and be refused again.
    """


class EnrichedOutputError(NtropySubmitError, ValueError):
    """An earlier output named by ``skip_enriched`` cannot be read as transaction ids (no id column,
    ids that are not strings, not Parquet): nothing was sent."""
