"""File names from the server made safe to write: no directories, no traversal, no surprises.

A name comes from ``originalFileName``, which the uploading client chose: it may hold ``../``,
an absolute path, a Windows path, control characters, NUL, bidi overrides or a reserved
device name. What we write keeps the visible stem and the extension and nothing else.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_BYTES = 150
"""Room for ``<uuid>-`` and a ``.part`` suffix within the 255-byte limit of common file systems."""
MAX_EXT_CHARS = 16

_UNSAFE = re.compile(r'[<>:"/\\|?*]')
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CLOCK$", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {"COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"}
)


def _visible(text: str) -> str:
    """Drop control (Cc), format (Cf: bidi overrides, zero-width) and unassigned characters."""
    return "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cn", "Cs"))


def _cap_bytes(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def sanitize_file_name(name: str, fallback: str = "file") -> str:
    """One safe path component: ``"../../etc/pass\\x00wd.JPG"`` → ``"pass_wd.JPG"``-like.

    Keeps the extension (lower/upper case as given), strips directories, leading dots and
    spaces, control characters and path separators, renames reserved device names and caps
    the length. Never returns an empty string, ``.`` or ``..``.
    """
    text = unicodedata.normalize("NFC", name or "")
    text = text.replace("\x00", "")
    # Directories: the last component of a POSIX or Windows path.
    text = text.replace("\\", "/")
    text = text.rsplit("/", 1)[-1]
    text = _visible(text)
    text = _UNSAFE.sub("_", text)
    text = text.strip().lstrip(".").strip()
    text = text.rstrip(". ")
    stem, dot, ext = text.rpartition(".")
    if not dot:
        stem, ext = text, ""
    ext = ext[:MAX_EXT_CHARS]
    if stem.split(".")[0].strip().upper() in _RESERVED:
        stem = "_" + stem
    if not stem.strip("._ "):
        stem = fallback
    suffix = f".{ext}" if ext else ""
    stem = _cap_bytes(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(". ")
    if not stem:
        stem = fallback
    out = stem + suffix
    if "/" in out or "\\" in out or "\x00" in out or out in (".", ".."):
        raise ValueError(f"cannot make a safe file name of {name!r}")  # unreachable by construction
    return out
