"""One exception family for everything the server (or the way to it) can say.

Messages never contain the API key: they are built from the status, Immich's own message and
the request path, never from headers or the full URL with its query.
"""

from __future__ import annotations

import html
import json
import re
import unicodedata
from typing import Any


class ImmichError(Exception):
    """Base: ``status`` is the HTTP status (None when no answer came), ``message`` Immich's text."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        details: list[str] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.path = path
        self.details = details or []
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"{self.status} " if self.status is not None else ""
        extra = f" ({'; '.join(self.details)})" if self.details else ""
        prefix = f"{where}: " if where else ""
        return f"{prefix}{status}{self.message}{extra}"


class ConnectionFailed(ImmichError):
    """No answer: refused, DNS, TLS, reset, timeout."""


class AuthenticationFailed(ImmichError):
    """401: no key or a bad key."""


class PermissionMissing(ImmichError):
    """403: the key lacks a permission; ``permission`` names it when known."""

    def __init__(self, message: str, *, permission: str | None = None, **kw: Any) -> None:
        self.permission = permission
        super().__init__(message, **kw)


class NotFound(ImmichError):
    """Immich answers 400 'Not found or no <perm> access' for unknown, foreign or purged ids."""


class BadRequest(ImmichError):
    """Any other 4xx (validation)."""


class ServerError(ImmichError):
    """5xx after retries."""


class UnsupportedServer(ImmichError):
    """The server is too old, or not an Immich server."""


class IntegrityError(ImmichError):
    """A download whose size or checksum does not match what the server said."""


QUOTE_LIMIT = 200
"""The most characters of a server's text an error message quotes."""
MAX_DETAILS = 10
"""The most validation details an error message lists."""


def quote_text(text: str, limit: int = QUOTE_LIMIT) -> str:
    """A server's text made fit for a one-line error: whitespace runs (newlines included) become
    one space, control and format characters are dropped, and it is cut to ``limit`` characters."""
    cleaned = "".join(
        ch if ch.isprintable() else " " for ch in text if unicodedata.category(ch) != "Cf"
    )
    one_line = " ".join(cleaned.split())
    if len(one_line) > limit:
        return one_line[: limit - 1].rstrip() + "…"
    return one_line


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def looks_like_html(body: bytes, content_type: str = "") -> bool:
    if "html" in content_type.lower():
        return True
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def describe_html(body: bytes) -> str:
    """``an HTML page ("Its title")``: what an error says of a web page, never the page."""
    m = _TITLE.search(body[:65536])
    title = quote_text(html.unescape(m.group(1).decode("utf-8", "replace")), 80) if m else ""
    return f'an HTML page ("{title}")' if title else "an HTML page"


def parse_error_body(body: bytes) -> tuple[str, list[str]]:
    """Immich's message and details from either error-body shape, capped and on one line.

    v1/v2: ``{message: str | [str], error, statusCode, correlationId}``;
    v3: ``{message}`` or ``{message: "Validation failed", errors: [{path, message, ...}]}``.
    A body that is not JSON (a proxy's or another web server's page) is described, never
    quoted whole: an HTML page by its title, plain text cut to one short line.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        if looks_like_html(body):
            return describe_html(body), []
        text = quote_text(body[: QUOTE_LIMIT * 4].decode("utf-8", "replace"))
        return (text or "no message"), []
    if not isinstance(data, dict):
        return quote_text(str(data)), []
    msg = data.get("message")
    details: list[str] = []
    if isinstance(msg, list):
        details = [str(m) for m in msg]
        message = "Validation failed" if details else str(data.get("error") or "error")
    elif isinstance(msg, str):
        message = msg
    else:
        message = str(data.get("error") or "error")
    errors = data.get("errors")
    if isinstance(errors, list):
        for e in errors:
            if isinstance(e, dict):
                path = ".".join(str(p) for p in e.get("path", []) if p is not None)
                m = str(e.get("message", ""))
                details.append(f"{path}: {m}" if path else m)
    shown = [quote_text(d) for d in details[:MAX_DETAILS]]
    if len(details) > MAX_DETAILS:
        shown.append(f"and {len(details) - MAX_DETAILS} more")
    return quote_text(message), shown


def error_for(status: int, body: bytes, method: str, path: str) -> ImmichError:
    message, details = parse_error_body(body)
    kw: dict[str, Any] = {"status": status, "method": method, "path": path, "details": details}
    if status == 401:
        return AuthenticationFailed(message, **kw)
    if status == 403:
        perm = None
        prefix = "Missing required permission: "
        if message.startswith(prefix):
            perm = message[len(prefix) :].strip()
        return PermissionMissing(message, permission=perm, **kw)
    if status == 400 and message.lower().startswith("not found"):
        return NotFound(message, **kw)
    if status >= 500:
        return ServerError(message, **kw)
    return BadRequest(message, **kw)
