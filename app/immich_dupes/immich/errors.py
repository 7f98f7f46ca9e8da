"""One exception family for everything the server (or the way to it) can say.

Messages never contain the API key: they are built from the status, Immich's own message and
the request path, never from headers or the full URL with its query.
"""

from __future__ import annotations

import json
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


def parse_error_body(body: bytes) -> tuple[str, list[str]]:
    """Immich's message and details from either error-body shape.

    v1/v2: ``{message: str | [str], error, statusCode, correlationId}``;
    v3: ``{message}`` or ``{message: "Validation failed", errors: [{path, message, ...}]}``.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return (text or "no message"), []
    if not isinstance(data, dict):
        return str(data)[:200], []
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
    return message, details


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
