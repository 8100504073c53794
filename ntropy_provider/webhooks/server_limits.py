"""Transport limits of the stand-alone receiver: header size, header time, keep-alive, connections.

The receiver is meant to face the internet, where a client may connect and send nothing, trickle its
headers, or send megabytes of them. uvicorn bounds neither the time before a request's headers are
complete nor (with ``httptools``) their size, so the stand-alone server runs uvicorn's ``h11`` protocol
with :class:`HeaderDeadlineH11Protocol` and the limits below. The body's own time limit is the app's
(``body_timeout_seconds``, answered 408). Behind Airflow's API server none of this applies: put a
reverse proxy with the same limits in front of it (see the README).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Largest request line plus headers accepted (bytes); Ntropy's deliveries send well under 2 KiB.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
#: Seconds a connection may take to send a complete request line and headers (after connecting, or after
#: its previous response); slower ones are closed without an answer.
DEFAULT_HEADER_TIMEOUT_SECONDS = 5.0
#: Seconds an idle kept-alive connection stays open.
DEFAULT_KEEP_ALIVE_SECONDS = 5
#: Most open connections (and requests in progress); beyond it uvicorn answers 503.
DEFAULT_LIMIT_CONCURRENCY = 256
#: Seconds a graceful shutdown waits for requests in progress.
DEFAULT_GRACEFUL_SHUTDOWN_SECONDS = 10
#: Where :func:`uvicorn_config` leaves the header deadline for the protocol (uvicorn has no such setting;
#: a Config attribute also travels to worker processes).
HEADER_TIMEOUT_ATTRIBUTE = "ntropy_header_timeout_seconds"


class HeaderDeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete in time.

    The deadline starts when the connection opens and again after each response, and is met once h11
    has parsed the request's headers (the peer's state leaves ``IDLE``): a connect-only socket or a
    slow-header sender is closed after ``header_timeout`` seconds whatever it trickles.
    """

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        # Set by uvicorn_config(); a Config built elsewhere gets the default.
        self.header_timeout: float = getattr(config, HEADER_TIMEOUT_ATTRIBUTE, DEFAULT_HEADER_TIMEOUT_SECONDS)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's header deadline.

        :param transport: the new connection.
        """
        self._header_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        """Start the next request's header deadline (a kept-alive connection)."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection.

        :param exc: why the connection ended (``None`` for a clean close).
        """
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The stand-alone server's transport limits.

    :param max_header_bytes: largest request line plus headers (h11's incomplete-event limit); larger
        ones are answered 400 and the connection closed before more is buffered.
    :param header_timeout_seconds: time allowed for a request's headers.
    :param keep_alive_seconds: how long an idle kept-alive connection stays open.
    :param limit_concurrency: most open connections; beyond it 503.
    :param graceful_shutdown_seconds: how long a shutdown waits for requests in progress.
    """

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    header_timeout_seconds: float = DEFAULT_HEADER_TIMEOUT_SECONDS
    keep_alive_seconds: int = DEFAULT_KEEP_ALIVE_SECONDS
    limit_concurrency: int = DEFAULT_LIMIT_CONCURRENCY
    graceful_shutdown_seconds: int = DEFAULT_GRACEFUL_SHUTDOWN_SECONDS

    def __post_init__(self) -> None:
        if self.max_header_bytes < 1024:
            raise ValueError(f"max_header_bytes: expected at least 1024, got {self.max_header_bytes}")
        for name in ("header_timeout_seconds", "keep_alive_seconds", "limit_concurrency"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)}")


def uvicorn_config(app: Any, limits: ServerLimits | None = None, **settings: Any) -> uvicorn.Config:
    """A uvicorn configuration that enforces ``limits`` (run it with ``uvicorn.Server(config)``).

    :param app: the ASGI app, or its import string (needed for several workers).
    :param limits: the transport limits (defaults when omitted).
    :param settings: any other ``uvicorn.Config`` argument (``host``, ``port``, ``workers``, ...).
    """
    limits = limits or ServerLimits()
    config = uvicorn.Config(
        app,
        http=HeaderDeadlineH11Protocol,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=limits.keep_alive_seconds,
        limit_concurrency=limits.limit_concurrency,
        timeout_graceful_shutdown=limits.graceful_shutdown_seconds,
        **settings,
    )
    setattr(config, HEADER_TIMEOUT_ATTRIBUTE, limits.header_timeout_seconds)
    return config
