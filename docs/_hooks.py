"""mkdocs hook: show the Sphinx roles of the provider's docstrings as code.

The docstrings are written for Sphinx (``:class:`~ntropy_provider.triggers.batch.BatchTrigger```);
mkdocstrings renders their text as Markdown, which leaves ``:class:`` before the code span. This keeps
the code span alone (its last component for the ``~`` form, as Sphinx shows it).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

_ROLE = re.compile(r":(?:class|mod|func|meth|attr|data|exc|obj|py:\w+):<code>(~?)([^<]+)</code>")


def on_config(config: Any, **kwargs: Any) -> Any:
    """Import the provider from this checkout (the table below reads its code), not an installed copy."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(config.config_file_path)))
    return config


def _shorten(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Rewrite ``:role:<code>target</code>`` to ``<code>target</code>`` in a rendered page."""
    return _ROLE.sub(_shorten, html)


#: Replaced by the connection form's extra fields, read from the code (they cannot drift from the form).
CONNECTION_FIELDS_MARKER = "<!-- ntropy:connection-fields -->"


def _connection_fields_table() -> str:
    from ntropy_provider.hooks.connection import CONN_FIELDS, SENSITIVE_FIELDS

    rows = ["| extra | form label | meaning |", "|---|---|---|"]
    for name, spec in CONN_FIELDS.items():
        schema = spec["schema"]
        kind = next(t for t in schema["type"] if t != "null")
        choices = f" One of {', '.join(f'`{c}`' for c in schema['enum'])}." if "enum" in schema else ""
        secret = " A secret: masked in the form." if name in SENSITIVE_FIELDS else ""
        rows.append(f"| `{name}` ({kind}) | {spec['label']} | {spec['description']}{choices}{secret} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Fill the connection page's table of extras from ``CONN_FIELDS``."""
    if CONNECTION_FIELDS_MARKER in markdown:
        markdown = markdown.replace(CONNECTION_FIELDS_MARKER, _connection_fields_table())
    return markdown
