"""Submission: rows become batches, each chunk paid for once.

* :mod:`~ntropy_provider.submission.plan`: one validation pass fixes the chunks (boundaries and
  fingerprints) of an input; the one source of where chunks are cut.
* :mod:`~ntropy_provider.submission.chunks`: cutting rows into ``POST /v3/batches`` bodies at given
  boundaries, lazily.
* :mod:`~ntropy_provider.submission.ledger`: the crash-safe records of what each chunk became, kept
  across task tries, and the reconciliation of POSTs whose answer was lost.
* :mod:`~ntropy_provider.submission.engine`: sending chunks concurrently with the ledger's callbacks.

Reading inputs and writing rejected rows is :mod:`ntropy_provider.io`'s job; the errors are in
:mod:`ntropy_provider.exceptions`.
"""
