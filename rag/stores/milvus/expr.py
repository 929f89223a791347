"""Safe Milvus filter expressions, and URIs fit for messages.

Every filter expression is built from typed values: strings go through `literal` (and
`like_pattern` for substrings), numbers are formatted as integers, so no query, URL,
publication or author name can change what an expression means.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit


def literal(value: str) -> str:
    """A Milvus string literal holding exactly `value`."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def like_pattern(substring: str) -> str:
    """A LIKE pattern matching any string that contains `substring` (callers re-check exactly:
    Milvus cannot escape a backslash inside LIKE, so one becomes a wildcard)."""
    parts = [p.replace("%", "\\%").replace("_", "\\_") for p in substring.split("\\")]
    return literal("%" + "%".join(parts) + "%")


def in_list(field: str, values: Iterable[str], negate: bool = False) -> str:
    """`field in [...]` (or `not in`) over string values."""
    items = ",".join(literal(v) for v in values)
    return f"{field} {'not in' if negate else 'in'} [{items}]"


def day_number(iso: str | None) -> int:
    """2024-03-01... -> 20240301; -1 when there is no date."""
    if not iso or not re.match(r"\d{4}-\d{2}-\d{2}", iso):
        return -1
    return int(iso[:10].replace("-", ""))


def redact(uri: str) -> str:
    """The URI without any user or password in it, for messages."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return uri


def is_server(uri: str) -> bool:
    """Whether `uri` names a Milvus server (else it is a Milvus Lite file)."""
    return uri.startswith(("http://", "https://", "tcp://", "unix:"))


def reason(e: Exception) -> str:
    """The first line of a client error, redacted and cut short."""
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    return redact(str(msg).strip().splitlines()[0])[:300]
