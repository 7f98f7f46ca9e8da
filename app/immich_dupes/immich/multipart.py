"""A ``multipart/form-data`` request body whose file part streams from disk.

httpx's own ``files=`` either holds the file in memory (bytes) or reads a file object with
blocking reads on the event loop and no check that the file still has the size it announced.
An upload of a multi-GB video must do neither: this body is an async iterable of chunks with
an exact ``Content-Length`` computed up front (field parts + file size + boundaries), reads the
file off the event loop one chunk at a time, and so keeps memory flat whatever the file size.

Every iteration starts again from the first byte (a retried request resends the whole body), so
httpx may send it more than once. The file is checked as it goes: if it is shorter or longer than
announced, or (when the caller knows its SHA-1) its bytes differ from that checksum,
``SourceChanged`` is raised *before* the last file chunk and the closing boundary leave. The
server then never receives a complete body, and a complete body always has exactly
``Content-Length`` bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import os
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import BinaryIO

from immich_dupes.immich.errors import IntegrityError

CHUNK = 1 << 20

# The HTML5 form encoding httpx applies to names and file names: '"' and '\' escaped, control
# characters (except ESC) percent-encoded. Kept identical so the server sees what it saw before.
_FORM_REPLACEMENTS = {'"': "%22", "\\": "\\\\"}
_FORM_REPLACEMENTS.update({chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B})
_FORM_RE = re.compile("|".join(re.escape(c) for c in _FORM_REPLACEMENTS))


class SourceChanged(IntegrityError):
    """The file being uploaded changed (size or bytes) while it was sent; the body was abandoned."""


def _param(name: str, value: str) -> bytes:
    return f'{name}="{_FORM_RE.sub(lambda m: _FORM_REPLACEMENTS[m.group(0)], value)}"'.encode()


def sha1_of_checksum(checksum: str | None) -> bytes | None:
    """An ``x-immich-checksum`` value (40 hex or 28 base64 characters) as the 20 raw SHA-1 bytes.

    None when there is no checksum or it is neither form (then the bytes cannot be checked).
    """
    if not checksum:
        return None
    text = checksum.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 40 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None
    return raw if len(raw) == 20 else None


class StreamingMultipart:
    """``fields`` as text parts, then ``path`` as the file part ``file_field`` named ``filename``.

    Pass it as httpx ``content=`` together with ``headers`` (``Content-Type`` with the boundary,
    and the exact ``Content-Length``). The file's size is taken when this object is built; each
    time the body is sent the file must still have exactly that size (and, with ``expected_sha1``,
    those bytes), otherwise ``SourceChanged`` is raised while sending.
    """

    def __init__(
        self,
        fields: Mapping[str, str],
        *,
        file_field: str,
        path: Path,
        filename: str,
        content_type: str = "application/octet-stream",
        expected_sha1: bytes | None = None,
        chunk_size: int = CHUNK,
        boundary: str | None = None,
        method: str = "POST",
        url_path: str = "",
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        self.path = path
        self.size = path.stat().st_size
        self.expected_sha1 = expected_sha1
        self.chunk_size = chunk_size
        self.boundary = (boundary or os.urandom(16).hex()).encode("ascii")
        self._method = method
        self._url_path = url_path
        dash = b"--" + self.boundary + b"\r\n"
        head: list[bytes] = []
        for name, value in fields.items():
            head += [dash, b"Content-Disposition: form-data; ", _param("name", name), b"\r\n\r\n"]
            head += [value.encode("utf-8"), b"\r\n"]
        head += [dash, b"Content-Disposition: form-data; ", _param("name", file_field)]
        if filename:
            head += [b"; ", _param("filename", filename)]
        head += [b"\r\nContent-Type: ", content_type.encode("ascii"), b"\r\n\r\n"]
        self._head = b"".join(head)
        self._tail = b"\r\n--" + self.boundary + b"--\r\n"

    @property
    def content_length(self) -> int:
        return len(self._head) + self.size + len(self._tail)

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "multipart/form-data; boundary=" + self.boundary.decode("ascii"),
            "Content-Length": str(self.content_length),
        }

    def _changed(self, what: str) -> SourceChanged:
        return SourceChanged(
            f"{self.path} {what} while it was being uploaded; the upload was abandoned before "
            "it was complete (try again once the file is stable)",
            method=self._method,
            path=self._url_path,
        )

    def __aiter__(self) -> AsyncIterator[bytes]:
        # A fresh generator per iteration: httpx re-iterates this object on a retried request.
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self.path.open, "rb")
        try:
            now = os.fstat(f.fileno()).st_size
            if now != self.size:
                raise self._changed(f"changed size from {self.size} to {now} bytes")
            yield self._head
            sha1 = hashlib.sha1() if self.expected_sha1 is not None else None
            remaining = self.size
            pending = b""  # held back until the next read succeeds: the last one goes out verified
            while remaining:
                chunk = await asyncio.to_thread(_read, f, min(self.chunk_size, remaining), sha1)
                if not chunk:
                    raise self._changed(
                        f"shrank (ended after {self.size - remaining} of {self.size} bytes)"
                    )
                remaining -= len(chunk)
                if pending:
                    yield pending
                pending = chunk
            if await asyncio.to_thread(f.read, 1):
                raise self._changed(f"grew beyond {self.size} bytes")
            if sha1 is not None and sha1.digest() != self.expected_sha1:
                raise self._changed("no longer has the expected SHA-1 (its bytes changed)")
            if pending:
                yield pending
        finally:
            f.close()
        yield self._tail


def _read(f: BinaryIO, n: int, sha1: hashlib._Hash | None) -> bytes:
    """Read up to ``n`` bytes (fewer only at the end of the file) and feed them to ``sha1``."""
    out = f.read(n)
    if sha1 is not None and out:
        sha1.update(out)
    return out
