"""The fake server's rows: users, keys, assets, albums, tags, stacks, and file contents."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from PIL import Image

from immich_dupes.fake.media import FileMeta, render_scene


class Content:
    """The bytes of an original, produced on demand."""

    size: int
    sha1: bytes

    def data(self) -> bytes:
        raise NotImplementedError

    def thumb_key(self) -> str:
        raise NotImplementedError

    def thumb_source(self) -> Image.Image | bytes:
        raise NotImplementedError


class Blob(Content):
    """Bytes held in memory (sample library, uploads). Images are their own thumbnail source."""

    __slots__ = ("_data", "_key", "_scene", "sha1", "size")

    def __init__(self, data: bytes, key: str, scene: tuple[int, str] | None = None) -> None:
        self._data = data
        self._key = key
        self._scene = scene
        self.size = len(data)
        self.sha1 = hashlib.sha1(data).digest()

    def data(self) -> bytes:
        return self._data

    def thumb_key(self) -> str:
        return self._key

    def thumb_source(self) -> Image.Image | bytes:
        if self._scene is not None:
            return render_scene(self._scene[0], self._scene[1])
        return self._data


class SynthBase:
    """A small shared JPEG plus a shared padding block; hashes of the prefix are precomputed."""

    __slots__ = ("_prefix_hash", "jpeg", "pad", "palette")

    def __init__(self, palette: int, jpeg: bytes, pad_len: int) -> None:
        self.palette = palette
        self.jpeg = jpeg
        block = hashlib.sha256(f"pad:{palette}".encode()).digest() * 2048  # 64 KiB
        reps = pad_len // len(block) + 1
        self.pad = (block * reps)[:pad_len] if pad_len > 0 else b""
        self._prefix_hash = hashlib.sha1(jpeg + self.pad)

    def digest_with(self, trailer: bytes) -> bytes:
        h = self._prefix_hash.copy()
        h.update(trailer)
        return h.digest()


class SynthBlob(Content):
    """``base JPEG | padding | per-asset trailer``: unique bytes, cheap checksum, no storage."""

    __slots__ = ("_base", "_trailer", "sha1", "size")

    def __init__(self, base: SynthBase, trailer: bytes) -> None:
        self._base = base
        self._trailer = trailer
        self.size = len(base.jpeg) + len(base.pad) + len(trailer)
        self.sha1 = base.digest_with(trailer)

    def data(self) -> bytes:
        return b"".join((self._base.jpeg, self._base.pad, self._trailer))

    def thumb_key(self) -> str:
        return f"synthetic:{self._base.palette}"

    def thumb_source(self) -> Image.Image | bytes:
        return self._base.jpeg


@dataclass(slots=True)
class User:
    id: str
    email: str
    name: str
    avatar_color: str
    created_at: datetime
    is_admin: bool = False
    storage_label: str | None = None


@dataclass(slots=True)
class ApiKey:
    id: str
    secret: str
    user_id: str
    name: str
    permissions: list[str]
    created_at: datetime


@dataclass(eq=False, slots=True)
class Asset:
    """One asset row with its exif row; ``cache`` holds serialized DTOs until the next change."""

    id: str
    owner_id: str
    type: str  # IMAGE | VIDEO
    file_name: str
    mime: str
    path: str
    content: Content | None
    checksum: str  # base64 SHA-1 (of the bytes, or of "path:"+path for external libraries)
    created_at: datetime  # upload time
    updated_at: datetime
    file_created_at: datetime
    file_modified_at: datetime
    local_date_time: datetime
    fallback_time: datetime  # date used when the file has none
    file: FileMeta
    library_id: str | None = None
    is_favorite: bool = False
    visibility: str = "timeline"
    status: str = "active"  # active | trashed | deleted (force, waiting for purge)
    deleted_at: datetime | None = None
    duplicate_id: str | None = None
    live_photo_video_id: str | None = None
    stack_id: str | None = None
    tag_ids: list[str] = field(default_factory=list)
    duration_ms: int | None = None
    thumbhash: str | None = None
    device_asset_id: str = ""
    # exif row
    exif_width: int | None = None
    exif_height: int | None = None
    file_size: int | None = None
    make: str | None = None
    model: str | None = None
    orientation: str | None = None
    date_time_original: datetime | None = None
    modify_date: datetime | None = None
    time_zone: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    description: str = ""
    rating: int | None = None
    # sidecar (API edits written back by the SidecarWrite job)
    sidecar_instant: datetime | None = None
    sidecar_zone: str | None = None
    file_missing: bool = False
    cache: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_trashed(self) -> bool:
        return self.status != "active"

    @property
    def width(self) -> int | None:
        return self.exif_width

    @property
    def height(self) -> int | None:
        return self.exif_height

    def touch(self) -> None:
        self.cache.clear()


@dataclass(slots=True)
class Album:
    id: str
    owner_id: str
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    asset_ids: list[str] = field(default_factory=list)
    thumbnail_id: str | None = None


@dataclass(slots=True)
class Tag:
    id: str
    owner_id: str
    value: str
    name: str
    parent_id: str | None
    created_at: datetime
    updated_at: datetime
    color: str | None = None


@dataclass(slots=True)
class Stack:
    id: str
    owner_id: str
    primary_id: str
    asset_ids: list[str]
