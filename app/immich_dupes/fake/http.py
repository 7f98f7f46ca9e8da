"""Transport-neutral request and response of the fake, plus multipart and Range parsing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import parse_qs


@dataclass
class ApiRequest:
    method: str
    path: str  # e.g. /api/assets/<id> (no query)
    query: str = ""  # raw query string
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @cached_property
    def args(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def arg(self, name: str) -> str | None:
        values = self.args.get(name)
        return values[0] if values else None


Body = bytes | Callable[[], bytes]


@dataclass
class ApiResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: Body = b""

    def header(self, name: str) -> str | None:
        low = name.lower()
        for k, v in self.headers:
            if k.lower() == low:
                return v
        return None

    def materialize(self) -> bytes:
        """Produce the body (lazy bodies render outside the state lock)."""
        if callable(self.body):
            self.body = self.body()
        return self.body


@dataclass
class Part:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes


_DISP_PARAM = re.compile(r';\s*([A-Za-z0-9_*-]+)=(?:"((?:[^"\\]|\\.)*)"|([^;]*))')


def parse_multipart(content_type: str, body: bytes) -> list[Part] | None:
    """Split a ``multipart/form-data`` body; None when it is not one."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        return None
    delim = b"--" + m.group(1).encode()
    parts: list[Part] = []
    for chunk in body.split(delim)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        if data.endswith(b"\r\n"):
            data = data[:-2]
        name = ""
        filename: str | None = None
        ctype: str | None = None
        for line in head.decode("utf-8", errors="replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key.strip().lower() == "content-disposition":
                for pm in _DISP_PARAM.finditer(value):
                    pname = pm.group(1).lower()
                    pval = pm.group(2) if pm.group(2) is not None else (pm.group(3) or "").strip()
                    if pname == "name":
                        name = pval
                    elif pname == "filename":
                        filename = pval
            elif key.strip().lower() == "content-type":
                ctype = value.strip()
        parts.append(Part(name, filename, ctype, data))
    return parts


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` → (start, end) inclusive; raises ValueError when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if m.group(1):
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else size - 1
    else:
        length = int(m.group(2))
        if length == 0:
            raise ValueError(header)
        start = max(0, size - length)
        end = size - 1
    end = min(end, size - 1)
    if start >= size or start > end:
        raise ValueError(header)
    return start, end
