"""Untrusted text made safe for one log line."""

from __future__ import annotations

#: Longest rendering of one untrusted value in a log line.
MAX_LOGGED_CHARS = 200


def log_safe(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """Render an untrusted value for a log line: every control, format and line-separator character
    escaped (C0, DEL, C1, U+2028, U+2029, ...), so a value can neither forge nor split a log line, and
    the result cut to ``limit`` characters.

    :param value: the value (rendered with ``str`` first).
    :param limit: the longest result.
    """
    text = str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    # repr escapes exactly the characters str.isprintable refuses; drop its surrounding quotes.
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
