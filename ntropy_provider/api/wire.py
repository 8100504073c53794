"""The Ntropy API v3's wire vocabulary: base URLs, headers, paths, published limits and enumerations.

Everything that speaks the API (the hooks, the operators, the trigger, the webhook receiver and the
emulator) takes its constants from here. The contract they follow is ``docs/ntropy-api.md``; choices
marked *inferred* there are marked here too. This module imports nothing heavy: every Airflow process
that loads the provider's metadata reaches it.
"""

from __future__ import annotations

import enum

# --------------------------------------------------------------------------------------------------
# Transport
# --------------------------------------------------------------------------------------------------
REGION_BASE_URLS: dict[str, str] = {"us": "https://api.ntropy.com", "eu": "https://api.eu.ntropy.com"}
DEFAULT_REGION = "us"
API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"
WEBHOOK_TOKEN_HEADER = "X-Ntropy-Token"
RETRY_AFTER_HEADER = "Retry-After"

BATCHES_PATH = "/v3/batches"
ACCOUNT_HOLDERS_PATH = "/v3/account_holders"
TRANSACTIONS_PATH = "/v3/transactions"
WEBHOOKS_PATH = "/v3/webhooks"

#: ``limit`` of a list call when the client sends none.
DEFAULT_LIST_LIMIT = 10
#: Largest ``limit`` the emulator accepts on a list call (*inferred*).
MAX_LIST_LIMIT = 1000

# --------------------------------------------------------------------------------------------------
# Published limits
# --------------------------------------------------------------------------------------------------
#: Most transactions in one batch.
MAX_BATCH_SIZE = 24_960
#: Most concurrent enrichment operations per API key.
MAX_CONCURRENT_OPERATIONS = 10
#: Credits and batches in progress per key are settings with documented defaults: see ``api/limits.py``.
#: Most webhooks per organization.
MAX_WEBHOOKS = 10
#: Longest webhook ``url`` and ``token`` (characters).
MAX_WEBHOOK_URL_LENGTH = 1024
MAX_WEBHOOK_TOKEN_LENGTH = 128
#: Documented default operations per second per API key, by ``"METHOD /path/{template}"``.
#: Endpoints not listed here have no documented rate (the emulator leaves them unlimited).
DOCUMENTED_ENDPOINT_RATES: dict[str, float] = {
    "POST /v3/transactions": 20,
    "GET /v3/transactions": 10,
    "POST /v3/batches": 20,
    "GET /v3/batches": 20,
    "GET /v3/batches/{batch_id}": 20,
    "GET /v3/batches/{batch_id}/results": 10,
    "POST /v3/account_holders": 100,
    "GET /v3/account_holders": 10,
    "GET /v3/account_holders/{account_holder_id}": 10,
    "DELETE /v3/account_holders/{account_holder_id}": 10,
    "POST /v3/webhooks": 10,
    "GET /v3/webhooks": 10,
    "GET /v3/webhooks/{webhook_id}": 10,
    "DELETE /v3/webhooks/{webhook_id}": 10,
}
#: Seconds Ntropy waits for a webhook receiver before it counts the delivery as failed.
WEBHOOK_DELIVERY_TIMEOUT_SECONDS = 10.0
#: How long Ntropy keeps retrying a failed webhook delivery.
WEBHOOK_RETRY_WINDOW_SECONDS = 24 * 3600

# --------------------------------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------------------------------
TRANSACTIONS_OPERATION = "POST /v3/transactions"
OPERATIONS: frozenset[str] = frozenset({TRANSACTIONS_OPERATION})
PRIORITIES: tuple[str, ...] = ("default", "low")
ENTRY_TYPES: tuple[str, ...] = ("incoming", "outgoing")
ACCOUNT_HOLDER_TYPES: tuple[str, ...] = ("consumer", "business")
COUNTERPARTY_TYPES: tuple[str, ...] = ("person", "organization")
#: Accounting categories the SDK accepts (it rejects ``investing`` and ``not enough information``).
ACCOUNTING_CATEGORIES: tuple[str, ...] = (
    "operational expenses",
    "cost of goods sold",
    "revenue",
    "financing",
    "taxes",
)
#: Further accounting categories the docs list (a premium feature) that ntropy-sdk 5.7.0 rejects.
EXTENDED_ACCOUNTING_CATEGORIES: tuple[str, ...] = ("investing", "not enough information")
#: Special general categories: no account holder given, too little information, none suitable.
GENERAL_CATEGORY_MISSING_ACCOUNT_HOLDER = "missing account holder information"
GENERAL_CATEGORY_NOT_ENOUGH_INFORMATION = "not enough information"
GENERAL_CATEGORY_OTHER = "other"
ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND = "account_holder_not_found"
ITEM_ERROR_INTERNAL = "internal_error"
ITEM_ERROR_CODES: tuple[str, ...] = (ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND, ITEM_ERROR_INTERNAL)

WEBHOOK_EVENT_BATCH_COMPLETED = "batches.completed"
WEBHOOK_EVENT_BATCH_ERROR = "batches.error"
BATCH_WEBHOOK_EVENTS: tuple[str, ...] = (WEBHOOK_EVENT_BATCH_COMPLETED, WEBHOOK_EVENT_BATCH_ERROR)
#: Every event type a webhook may subscribe to (reports and bank statements exist too).
WEBHOOK_EVENTS: tuple[str, ...] = (
    *BATCH_WEBHOOK_EVENTS,
    "reports.resolved",
    "reports.rejected",
    "reports.pending",
    "bank_statements.processing",
    "bank_statements.completed",
    "bank_statements.error",
)


class BatchStatus(enum.StrEnum):
    """Status of a batch: ``processing`` until it ends ``completed`` or ``error``."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    ERROR = "error"

    @property
    def is_terminal(self) -> bool:
        """Whether the batch will not change any more."""
        return self is not BatchStatus.PROCESSING


#: The webhook event fired on the transition of a batch to each terminal status.
WEBHOOK_EVENT_FOR_STATUS: dict[BatchStatus, str] = {
    BatchStatus.COMPLETED: WEBHOOK_EVENT_BATCH_COMPLETED,
    BatchStatus.ERROR: WEBHOOK_EVENT_BATCH_ERROR,
}
