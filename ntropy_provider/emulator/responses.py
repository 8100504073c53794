"""The emulator's error type and JSON answer, shared by the routes and the middleware."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class ApiError(Exception):
    """An error answer: ``{"detail": ...}`` with ``status``.

    :param status: the HTTP status.
    :param detail: a message, or FastAPI's list form for 422.
    :param headers: extra response headers.
    """

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer (always ``Content-Type: application/json``).

    :param content: a JSON-serializable object, or bytes already encoded.
    :param status: the HTTP status.
    :param headers: extra headers.
    """
    body = content if isinstance(content, bytes) else orjson.dumps(content)
    return Response(body, status_code=status, headers=headers, media_type="application/json")
