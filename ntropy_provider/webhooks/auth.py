"""Authentication of deliveries: the ``X-Ntropy-Token`` header against a secret kept in Airflow.

Airflow's own auth does not cover plugin routes, so this check is the receiver's only gate. The
secret is read without blocking the event loop (``BaseHook.aget_connection``, or a thread for a
variable) and cached briefly, so a flood of deliveries does not turn into a flood of secret look-ups.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.sdk import BaseHook

from ntropy_provider.webhooks.config import ReceiverConfig

log = logging.getLogger(__name__)

#: How long the absence of a token (or an unknown connection) is remembered: short, so that a token
#: configured after the first refused deliveries is picked up quickly.
NEGATIVE_CACHE_SECONDS = 5.0


class TokenUnavailableError(Exception):
    """The secret store could not be read (not: the token is missing); the delivery should be retried."""


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Compare a delivered token with the expected one in constant time.

    Both sides are hashed first, so the comparison neither depends on where they differ nor on their
    lengths (``hmac.compare_digest`` returns early on a length mismatch and rejects non-ASCII str).

    :param given: the header's value (``None`` when absent).
    :param expected: the configured token (``None`` or empty when none is configured: nothing matches).
    """
    if not given or not expected:
        return False
    # Starlette decodes header bytes as latin-1: encoding back with latin-1 restores the bytes sent.
    given_digest = hashlib.sha256(given.encode("latin-1", errors="replace")).digest()
    expected_digest = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(given_digest, expected_digest)


@dataclass(slots=True)
class _CacheEntry:
    token: str | None
    expires_at: float


class TokenResolver:
    """Resolves and caches the expected token of each Ntropy connection.

    :param config: where the token lives (connection extra key or variable) and how long to cache it.
    """

    def __init__(self, config: ReceiverConfig) -> None:
        self._config = config
        self._cache: dict[str, _CacheEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        # Never show cached tokens.
        return f"{type(self).__name__}(conn_id={self._config.conn_id!r}, cached={sorted(self._cache)})"

    def clear(self) -> None:
        """Forget every cached token (e.g. after a rotation)."""
        self._cache.clear()

    async def get(self, conn_id: str) -> str | None:
        """The expected token for deliveries to ``conn_id``, or ``None`` when none is configured.

        :param conn_id: the connection whose deliveries are being authenticated.
        :raises TokenUnavailableError: when the secret store cannot be read.
        """
        entry = self._cache.get(conn_id)
        if entry is not None and entry.expires_at > time.monotonic():
            return entry.token
        # One look-up per connection at a time: concurrent deliveries wait for it instead of piling up.
        lock = self._locks.setdefault(conn_id, asyncio.Lock())
        async with lock:
            entry = self._cache.get(conn_id)
            if entry is not None and entry.expires_at > time.monotonic():
                return entry.token
            token = await self._lookup(conn_id)
            ttl = self._config.token_cache_seconds if token else NEGATIVE_CACHE_SECONDS
            self._cache[conn_id] = _CacheEntry(token, time.monotonic() + ttl)
            return token

    async def _lookup(self, conn_id: str) -> str | None:
        if self._config.token_variable and conn_id == self._config.conn_id:
            return await self._from_variable(self._config.token_variable)
        return await self._from_connection(conn_id)

    async def _from_connection(self, conn_id: str) -> str | None:
        try:
            conn = await BaseHook.aget_connection(conn_id)
        except AirflowNotFoundException:
            log.warning("Ntropy webhook: connection %r does not exist; deliveries to it are refused", conn_id)
            return None
        except Exception as err:
            reason = f"could not read connection {conn_id!r}: {type(err).__name__}"
            raise TokenUnavailableError(reason) from None
        token = (conn.extra_dejson or {}).get(self._config.token_extra_key)
        if not isinstance(token, str) or not token:
            log.warning(
                "Ntropy webhook: connection %r has no %r in its extras; deliveries to it are refused",
                conn_id,
                self._config.token_extra_key,
            )
            return None
        return token

    async def _from_variable(self, name: str) -> str | None:
        from airflow.sdk import Variable

        try:
            token = await asyncio.to_thread(Variable.get, name, None)
        except Exception as err:
            raise TokenUnavailableError(f"could not read variable {name!r}: {type(err).__name__}") from None
        if not isinstance(token, str) or not token:
            log.warning("Ntropy webhook: variable %r is not set; deliveries are refused", name)
            return None
        return token
