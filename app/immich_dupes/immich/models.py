"""Typed views of the Immich responses we use.

Tolerant of every supported version (1.106 … 3.x): unknown fields are ignored, fields a
version lacks are optional, and the few that changed shape (``duration``, ``isArchived`` vs
``visibility``) are normalised here so nothing above this layer cares which version answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


def duration_ms(v: Any) -> Any:
    """A video's length in milliseconds: v3 sends integer ms, 1.x/2.x ``"H:MM:SS.ffffff"``.

    Anything else that is not a number becomes None (unknown), not an error.
    """
    if v is None or isinstance(v, int):
        return v
    try:
        if isinstance(v, float):
            return int(v)
        if isinstance(v, str):
            h, m, s = v.split(":")
            return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)
    except (ValueError, OverflowError):  # also NaN and infinity: no length
        return None
    return None


def visibility_of(asset: Mapping[str, Any]) -> Any:
    """An ``AssetResponseDto``'s visibility; before 1.133 only ``isArchived`` says it."""
    v = asset.get("visibility")
    if v is None:
        return "archive" if asset.get("isArchived") else "timeline"
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=False)


class AssetType(StrEnum):
    IMAGE = "IMAGE"
    VIDEO = "VIDEO"
    AUDIO = "AUDIO"
    OTHER = "OTHER"


class Visibility(StrEnum):
    TIMELINE = "timeline"
    ARCHIVE = "archive"
    HIDDEN = "hidden"
    LOCKED = "locked"


class ExifInfo(_Model):
    exifImageWidth: int | None = None
    exifImageHeight: int | None = None
    fileSizeInByte: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None
    timeZone: str | None = None
    dateTimeOriginal: datetime | None = None
    modifyDate: datetime | None = None
    description: str | None = None
    make: str | None = None
    model: str | None = None
    lensModel: str | None = None
    fNumber: float | None = None
    focalLength: float | None = None
    iso: int | None = None
    exposureTime: str | None = None
    rating: int | None = None
    orientation: str | None = None
    projectionType: str | None = None

    @field_validator("iso", mode="before")
    @classmethod
    def _iso(cls, v: Any) -> Any:
        # Some versions send ISO as a float or a string.
        if isinstance(v, float):
            return int(v)
        if isinstance(v, str):
            try:
                return int(float(v))
            except ValueError:
                return None
        return v

    @field_validator("orientation", "exposureTime", mode="before")
    @classmethod
    def _stringish(cls, v: Any) -> Any:
        if isinstance(v, int | float):
            return str(v)
        return v


class Tag(_Model):
    id: str
    name: str = ""
    value: str = ""
    parentId: str | None = None


class StackSummary(_Model):
    id: str
    primaryAssetId: str | None = None
    assetCount: int | None = None


class Asset(_Model):
    """An ``AssetResponseDto``, normalised across versions."""

    id: str
    ownerId: str | None = None
    type: AssetType = AssetType.IMAGE
    originalFileName: str = ""
    originalMimeType: str | None = None
    originalPath: str | None = None
    fileCreatedAt: datetime | None = None
    fileModifiedAt: datetime | None = None
    localDateTime: datetime | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None
    checksum: str = ""
    libraryId: str | None = None
    isOffline: bool = False
    isFavorite: bool = False
    isTrashed: bool = False
    isArchived: bool = False
    visibility: Visibility = Visibility.TIMELINE
    duplicateId: str | None = None
    livePhotoVideoId: str | None = None
    stack: StackSummary | None = None
    tags: list[Tag] = Field(default_factory=list)
    duration_ms: int | None = Field(default=None, alias="duration")
    width: int | None = None
    height: int | None = None
    isEdited: bool = False
    hasMetadata: bool = True
    thumbhash: str | None = None
    exifInfo: ExifInfo | None = None

    @field_validator("duration_ms", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        return duration_ms(v)

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, v: Any) -> Any:
        return [] if v is None else v

    @model_validator(mode="before")
    @classmethod
    def _visibility_from_is_archived(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("visibility") is None:
            data = dict(data)
            data["visibility"] = visibility_of(data)
        return data

    @property
    def exif(self) -> ExifInfo:
        return self.exifInfo if self.exifInfo is not None else ExifInfo()

    @property
    def is_external(self) -> bool:
        """Imported by an external-library scan: the checksum is of the path, not the bytes."""
        return self.libraryId is not None

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """Pixels as EXIF reports them, else as the asset row has them (≥2.5)."""
        e = self.exif
        if e.exifImageWidth and e.exifImageHeight:
            return e.exifImageWidth, e.exifImageHeight
        if self.width and self.height:
            return self.width, self.height
        return None


class DuplicateGroup(_Model):
    duplicateId: str
    assets: list[Asset]
    suggestedKeepAssetIds: list[str] = Field(default_factory=list)

    @field_validator("suggestedKeepAssetIds", mode="before")
    @classmethod
    def _suggested(cls, v: Any) -> Any:
        return [] if v is None else v


class ServerVersion(_Model):
    major: int
    minor: int
    patch: int
    prerelease: str | None = None

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


class User(_Model):
    id: str
    email: str = ""
    name: str = ""
    isAdmin: bool = False


class ApiKeyInfo(_Model):
    id: str
    name: str = ""
    permissions: list[str] = Field(default_factory=list)


class ServerConfig(_Model):
    trashDays: int = 30


class ServerFeatures(_Model):
    trash: bool = True
    duplicateDetection: bool = True
    sidecar: bool = True


class AlbumUser(_Model):
    role: str = ""
    user: dict[str, Any] = Field(default_factory=dict)


class Album(_Model):
    id: str
    albumName: str = ""
    ownerId: str | None = None
    albumUsers: list[AlbumUser] = Field(default_factory=list)
    assetCount: int = 0
    shared: bool = False

    @property
    def owner_id(self) -> str | None:
        """v3 dropped ``ownerId``: the owner is the ``albumUsers`` entry with role owner."""
        if self.ownerId:
            return self.ownerId
        for au in self.albumUsers:
            if au.role == "owner":
                uid = au.user.get("id")
                return str(uid) if uid else None
        return None

    def can_add(self, user_id: str) -> bool:
        if self.owner_id == user_id:
            return True
        return any(
            au.user.get("id") == user_id and au.role in ("editor", "owner") for au in self.albumUsers
        )


class BulkIdResult(_Model):
    id: str
    success: bool
    error: str | None = None
    errorMessage: str | None = None


class UploadResult(_Model):
    id: str
    status: str  # "created" | "duplicate" (| "replaced" before v3)


class BulkUploadCheckItem(_Model):
    id: str
    action: str  # "accept" | "reject"
    reason: str | None = None
    assetId: str | None = None
    isTrashed: bool | None = None


class Stack(_Model):
    id: str
    primaryAssetId: str
    assets: list[dict[str, Any]] = Field(default_factory=list)
