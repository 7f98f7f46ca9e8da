"""Thumbnails: fetched from Immich, cached on disk and in a bounded in-memory LRU.

The disk cache is keyed by asset id + size + checksum, so a changed file never shows a stale
picture. Decoding happens off the event loop (``asyncio.to_thread``), and what is kept in
memory is the decoded, already downscaled PIL image: showing a cached thumbnail again costs
no IO and no decode.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Literal

from PIL import Image as PILImage

from immich_dupes.analysis.plan import PlanAsset
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import ConnectionFailed, ImmichError

Size = Literal["thumbnail", "preview"]

MAX_EDGE: dict[str, int] = {"thumbnail": 320, "preview": 1600}
"""Decoded pictures are shrunk to this longest edge: a terminal cannot show more."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "immich-dupes" / "thumbs"


def cache_key(asset: PlanAsset, size: str) -> str:
    raw = f"{asset.id}\0{size}\0{asset.checksum}".encode()
    return hashlib.sha256(raw).hexdigest()[:40]


def decode(data: bytes, size: str) -> PILImage.Image:
    """Bytes → an RGB PIL image no larger than the size needs (raises on garbage)."""
    with PILImage.open(io.BytesIO(data)) as img:
        img.draft("RGB", (MAX_EDGE[size], MAX_EDGE[size]))
        out = img.convert("RGB")
    out.thumbnail((MAX_EDGE[size], MAX_EDGE[size]))
    return out


class ThumbnailCache:
    """Memory LRU (bounded by bytes) in front of a disk cache (unbounded, user-clearable)."""

    def __init__(self, cache_dir: Path | None, memory_bytes: int = 32 * 1024 * 1024) -> None:
        self.cache_dir = cache_dir
        self.memory_bytes = memory_bytes
        self._mem: OrderedDict[str, PILImage.Image] = OrderedDict()
        self._mem_used = 0
        self.failed: dict[str, str] = {}
        """cache key → why there is no picture (404 and the like; not retried this session)."""
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ memory

    def get(self, asset: PlanAsset, size: str) -> PILImage.Image | None:
        key = cache_key(asset, size)
        img = self._mem.get(key)
        if img is not None:
            self._mem.move_to_end(key)
            self.hits += 1
        return img

    def put(self, asset: PlanAsset, size: str, img: PILImage.Image) -> None:
        key = cache_key(asset, size)
        cost = img.width * img.height * 3
        old = self._mem.pop(key, None)
        if old is not None:
            self._mem_used -= old.width * old.height * 3
        self._mem[key] = img
        self._mem_used += cost
        while self._mem_used > self.memory_bytes and len(self._mem) > 1:
            _, dropped = self._mem.popitem(last=False)
            self._mem_used -= dropped.width * dropped.height * 3

    @property
    def memory_used(self) -> int:
        return self._mem_used

    def __len__(self) -> int:
        return len(self._mem)

    # ------------------------------------------------------------------ disk

    def path_for(self, asset: PlanAsset, size: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = cache_key(asset, size)
        return self.cache_dir / size / key[:2] / key

    def read_disk(self, asset: PlanAsset, size: str) -> bytes | None:
        path = self.path_for(asset, size)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError:
            return None

    def write_disk(self, asset: PlanAsset, size: str, data: bytes) -> None:
        """Atomic (temp + rename); a cache that cannot be written is only slower, never an error."""
        path = self.path_for(asset, size)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return

    async def from_disk(self, asset: PlanAsset, size: str) -> PILImage.Image | None:
        """Disk → decoded picture in memory, or None (a corrupt cache file is dropped)."""
        data = await asyncio.to_thread(self.read_disk, asset, size)
        if data is None:
            return None
        try:
            img = await asyncio.to_thread(decode, data, size)
        except Exception:
            path = self.path_for(asset, size)
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()
            return None
        self.put(asset, size, img)
        return img

    async def store(self, asset: PlanAsset, size: str, data: bytes) -> PILImage.Image:
        """Bytes from the server → disk and memory; raises when they are not a picture."""
        img = await asyncio.to_thread(decode, data, size)
        await asyncio.to_thread(self.write_disk, asset, size, data)
        self.put(asset, size, img)
        self.misses += 1
        return img


class Pictures:
    """Where the app gets a picture: memory, then disk, then the server (when there is one)."""

    def __init__(self, cache: ThumbnailCache) -> None:
        self.cache = cache
        self.client: ImmichClient | None = None
        self.unavailable = "connecting to the server…"
        """Why there is no server to ask (shown instead of a picture)."""
        self.fetched = 0

    def cached(self, asset: PlanAsset, size: str) -> PILImage.Image | None:
        return self.cache.get(asset, size)

    async def get(self, asset: PlanAsset, size: str) -> tuple[PILImage.Image | None, str]:
        """(picture, '') or (None, why not). Never raises for a missing or broken picture."""
        img = self.cache.get(asset, size)
        if img is not None:
            return img, ""
        key = cache_key(asset, size)
        if key in self.cache.failed:
            return None, self.cache.failed[key]
        img = await self.cache.from_disk(asset, size)
        if img is not None:
            return img, ""
        client = self.client
        if client is None:
            return None, f"no picture: {self.unavailable}"
        try:
            data = await client.thumbnail(asset.id, size)
        except ConnectionFailed as e:
            return None, f"server unreachable ({e.message})"
        except ImmichError as e:
            why = f"no picture: the server answered {e.status or 'an error'}"
            self.cache.failed[key] = why
            return None, why
        self.fetched += 1
        try:
            img = await self.cache.store(asset, size, data)
        except Exception:
            why = "the server sent something that is not a picture"
            self.cache.failed[key] = why
            return None, why
        return img, ""
