"""Response DTOs, field for field and in the key order of the recorded Immich answers.

Variants of ``AssetResponseDto`` differ by endpoint, as on the real server:

- ``full``: ``GET /assets/{id}`` (with ``owner``, ``tags``, ``stack``; JS-style dates)
- ``dup``: items of ``GET /duplicates`` (no ``owner``/``stack``; Postgres-style dates)
- ``upd``: ``PUT /assets/{id}`` answer, stack and album members (no ``owner``/``tags``/``stack``)
- ``search``: ``POST /search/metadata`` items (no ``exifInfo``/``tags``)
- ``search_exif``: the same with ``exifInfo`` (``withExif: true``)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from immich_dupes.fake._time import duration_text, js_time, pg_time
from immich_dupes.fake.profiles import Profile
from immich_dupes.fake.records import Album, ApiKey, Asset, Stack, Tag, User

VARIANTS = ("full", "dup", "upd", "search", "search_exif")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def user_dto(u: User) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "profileImagePath": "",
        "avatarColor": u.avatar_color,
        "profileChangedAt": pg_time(u.created_at),
    }


def user_admin_dto(u: User, usage: int) -> dict[str, Any]:
    return {
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "profileImagePath": "",
        "avatarColor": u.avatar_color,
        "profileChangedAt": js_time(u.created_at),
        "storageLabel": u.storage_label,
        "shouldChangePassword": False,
        "isAdmin": u.is_admin,
        "createdAt": js_time(u.created_at),
        "deletedAt": None,
        "updatedAt": js_time(u.created_at),
        "oauthId": "",
        "quotaSizeInBytes": None,
        "quotaUsageInBytes": usage,
        "status": "active",
        "license": None,
    }


def api_key_dto(k: ApiKey) -> dict[str, Any]:
    return {
        "id": k.id,
        "name": k.name,
        "createdAt": js_time(k.created_at),
        "updatedAt": js_time(k.created_at),
        "permissions": list(k.permissions),
    }


def tag_dto(t: Tag, pg: bool = False) -> dict[str, Any]:
    fmt = pg_time if pg else js_time
    out: dict[str, Any] = {"id": t.id}
    if t.parent_id:
        out["parentId"] = t.parent_id
    out["name"] = t.name
    out["value"] = t.value
    out["createdAt"] = fmt(t.created_at)
    out["updatedAt"] = fmt(t.updated_at)
    if t.color:
        out["color"] = t.color
    return out


def exif_dto(a: Asset) -> dict[str, Any]:
    return {
        "make": a.make,
        "model": a.model,
        "exifImageWidth": a.exif_width,
        "exifImageHeight": a.exif_height,
        "fileSizeInByte": a.file_size,
        "orientation": a.orientation,
        "dateTimeOriginal": pg_time(a.date_time_original) if a.date_time_original else None,
        "modifyDate": pg_time(a.modify_date) if a.modify_date else None,
        "timeZone": a.time_zone,
        "lensModel": None,
        "fNumber": None,
        "focalLength": None,
        "iso": None,
        "exposureTime": None,
        "latitude": a.latitude,
        "longitude": a.longitude,
        "city": a.city,
        "state": a.state,
        "country": a.country,
        "description": a.description,
        "projectionType": None,
        "rating": a.rating,
    }


def asset_dto(
    a: Asset,
    variant: str,
    profile: Profile,
    *,
    owner: User | None,
    tags: Iterable[Tag],
    stack: Stack | None,
) -> dict[str, Any]:
    fmt: Callable[[datetime], str] = pg_time if variant == "dup" else js_time
    d: dict[str, Any] = {"id": a.id, "createdAt": fmt(a.created_at)}
    if profile.device_fields:
        d["deviceAssetId"] = a.device_asset_id
    d["ownerId"] = a.owner_id
    if variant == "full" and owner is not None:
        d["owner"] = user_dto(owner)
    if profile.device_fields:
        d["deviceId"] = "WEB" if a.library_id is None else "Library Import"
    d["libraryId"] = a.library_id
    d["type"] = a.type
    d["originalPath"] = a.path
    d["originalFileName"] = a.file_name
    d["originalMimeType"] = a.mime
    d["thumbhash"] = a.thumbhash
    d["fileCreatedAt"] = fmt(a.file_created_at)
    d["fileModifiedAt"] = fmt(a.file_modified_at)
    d["localDateTime"] = fmt(a.local_date_time)
    d["updatedAt"] = fmt(a.updated_at)
    d["isFavorite"] = a.is_favorite
    d["isArchived"] = a.visibility == "archive"
    d["isTrashed"] = a.is_trashed
    d["visibility"] = a.visibility
    if profile.duration_ms:
        d["duration"] = a.duration_ms if a.type == "VIDEO" else None
    else:
        d["duration"] = duration_text(a.duration_ms if a.type == "VIDEO" else None)
    if variant != "search":
        d["exifInfo"] = exif_dto(a)
    d["livePhotoVideoId"] = a.live_photo_video_id
    if variant in ("full", "dup"):
        d["tags"] = [tag_dto(t, pg=True) for t in tags]
    d["people"] = []
    d["checksum"] = a.checksum
    if variant == "full":
        d["stack"] = (
            {"id": stack.id, "primaryAssetId": stack.primary_id, "assetCount": len(stack.asset_ids)}
            if stack is not None
            else None
        )
    d["isOffline"] = False
    d["hasMetadata"] = True
    d["duplicateId"] = a.duplicate_id
    d["resized"] = True
    if profile.dims:
        d["width"] = a.width
        d["height"] = a.height
        d["isEdited"] = False
    return d


def album_dto(
    album: Album,
    profile: Profile,
    *,
    owner: User,
    assets: list[Asset],
    asset_dtos: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """``AlbumResponseDto``; ``assets`` are the album's live members (for dates and count)."""
    d: dict[str, Any] = {
        "albumName": album.name,
        "description": album.description,
        "albumThumbnailAssetId": album.thumbnail_id,
        "createdAt": js_time(album.created_at),
        "updatedAt": js_time(album.updated_at),
        "id": album.id,
    }
    if profile.album_legacy:
        d["ownerId"] = owner.id
        d["owner"] = user_dto(owner)
        d["albumUsers"] = []
    else:
        d["albumUsers"] = [{"user": user_dto(owner), "role": "owner"}]
    d["shared"] = False
    d["hasSharedLink"] = False
    if assets:
        days = [
            a.local_date_time.replace(hour=0, minute=0, second=0, microsecond=0) for a in assets
        ]
        d["startDate"] = js_time(min(days))
        d["endDate"] = js_time(max(days))
    if profile.album_legacy:
        d["assets"] = asset_dtos or []
    d["assetCount"] = len(assets)
    d["isActivityEnabled"] = True
    d["order"] = "desc"
    if assets:
        d["lastModifiedAssetTimestamp"] = js_time(max(a.updated_at for a in assets))
    return d
