"""The SubmitBatchOperator's own failures: bad input, changed input, batches left in error.

They live apart from the operator so that the submission ledger and the operator raise the same
classes without importing each other. Import them from :mod:`ntropy_provider.operators.submit_batch`.
"""

from __future__ import annotations


class NtropySubmitError(Exception):
    """Base of the operator's own failures (bad input, changed input, batches in error)."""


class InvalidInputError(NtropySubmitError, ValueError):
    """Rows break the API's rules and ``on_invalid="fail"``: nothing was sent."""


class InputChangedError(NtropySubmitError):
    """The input differs from what an earlier try of this task instance submitted."""


class BatchesInErrorError(NtropySubmitError):
    """Batches ended in ``error`` and the resubmission budget is spent."""
