"""Transport limits of the stand-alone receiver: header size, header time, keep-alive, connections.

The receiver is meant to face the internet, where a client may connect and send nothing, trickle its
headers, or send megabytes of them. uvicorn bounds neither the time before a request's headers are
complete nor (with ``httptools``) their size, so the stand-alone server runs uvicorn's protocol
extended with both (:class:`HeaderLimitsHttpToolsProtocol`, or :class:`HeaderDeadlineH11Protocol` where
``httptools`` is not installed) and the limits below. The body's own time limit is the app's
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

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

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


class _HeaderDeadline:
    """Closes a connection whose request line and headers are not complete in time.

    The deadline starts when the connection opens and again after each response (a kept-alive
    connection): a connect-only socket or a slow-header sender is closed after ``header_timeout`` seconds,
    whatever it trickles. Mixed into uvicorn's protocols, which provide ``loop``, ``transport`` and
    ``config``.
    """

    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    _header_deadline: asyncio.TimerHandle | None = None

    def _header_timeout(self) -> float:
        # Set by uvicorn_config(); a Config built elsewhere gets the default.
        return float(getattr(self.config, HEADER_TIMEOUT_ATTRIBUTE, DEFAULT_HEADER_TIMEOUT_SECONDS))  # type: ignore[attr-defined]

    def _awaiting_headers(self) -> bool:
        raise NotImplementedError

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self._header_timeout(), self._header_deadline_passed)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


class HeaderDeadlineH11Protocol(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with the header deadline (h11 bounds the header size by itself)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's header deadline.

        :param transport: the new connection.
        """
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        """Start the next request's header deadline."""
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection.

        :param exc: why the connection ended (``None`` for a clean close).
        """
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE


if HttpToolsProtocol is not None:  # httptools is optional (uvicorn[standard])

    class HeaderLimitsHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        """uvicorn's httptools protocol (the fast one) with the header deadline and a header size limit.

        httptools has no size limit of its own: the bytes fed while a request's headers are incomplete are
        counted, and past ``h11_max_incomplete_event_size`` (the same setting as for h11) the request is
        answered 400 and the connection closed, so at most that plus one read is ever buffered.
        """

        _in_headers = True
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            """Start the first request's header deadline.

            :param transport: the new connection.
            """
            super().connection_made(transport)
            self._arm_header_deadline()

        def data_received(self, data: bytes) -> None:
            """Feed the parser, refusing a request whose headers grow past the limit.

            :param data: the bytes received.
            """
            super().data_received(data)
            if self._in_headers and not self.transport.is_closing():
                self._header_bytes += len(data)
                if self._header_bytes > self.config.h11_max_incomplete_event_size:
                    self.send_400_response("Request headers too large.")

        def on_message_begin(self) -> None:
            """A request starts: its headers are counted from here."""
            super().on_message_begin()
            self._in_headers = True
            self._header_bytes = 0

        def on_headers_complete(self) -> None:
            """The headers are in: the deadline and the count are met."""
            self._in_headers = False
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            """Start the next request's header deadline, unless it is already in (pipelined)."""
            pipelined = bool(self.pipeline)
            super().on_response_complete()
            if not pipelined and not self.transport.is_closing():
                self._in_headers = True
                self._header_bytes = 0
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            """Drop the deadline with the connection.

            :param exc: why the connection ended (``None`` for a clean close).
            """
            self._cancel_header_deadline()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            return self._in_headers


def _protocol() -> type[asyncio.Protocol]:
    # httptools when installed (uvicorn[standard]; several times faster), else h11: uvicorn's own choice.
    if HttpToolsProtocol is not None:
        return HeaderLimitsHttpToolsProtocol
    return HeaderDeadlineH11Protocol


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
    :param settings: any other ``uvicorn.Config`` argument (``host``, ``port``, ``workers``, ...); ``http``
        defaults to the fastest protocol class with the limits (give one of this module's classes).
    """
    limits = limits or ServerLimits()
    settings.setdefault("http", _protocol())
    config = uvicorn.Config(
        app,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        timeout_keep_alive=limits.keep_alive_seconds,
        limit_concurrency=limits.limit_concurrency,
        timeout_graceful_shutdown=limits.graceful_shutdown_seconds,
        **settings,
    )
    setattr(config, HEADER_TIMEOUT_ATTRIBUTE, limits.header_timeout_seconds)
    return config
