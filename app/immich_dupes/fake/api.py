"""Routes of the fake Immich API: auth, permissions, validation, handlers.

Checks run in Immich's order: unknown route → 404; no or bad key → 401; missing permission
→ 403; malformed path id or body → 400 validation; unknown/foreign resource → 400
``Not found or no <permission> access``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from immich_dupes.fake._time import parse_client_datetime, parse_iso, uuid_for
from immich_dupes.fake.dto import api_key_dto, dumps, tag_dto, user_admin_dto
from immich_dupes.fake.errors import (
    MISSING,
    UUID_RE,
    ApiError,
    Issue,
    ValidationFailed,
    Validator,
    error_body,
    json_error_message,
    not_found,
)
from immich_dupes.fake.http import ApiRequest, ApiResponse, parse_multipart, parse_range
from immich_dupes.fake.media import make_thumbnail
from immich_dupes.fake.profiles import Profile
from immich_dupes.fake.records import ApiKey, Asset, User
from immich_dupes.fake.store import (
    ALL_PERMISSION,
    LISTED_VISIBILITY,
    VISIBILITIES,
    Store,
    checksum_bytes,
)

JSON = "application/json; charset=utf-8"
THUMB_CACHE_MAX = 2048


@dataclass
class Ctx:
    req: ApiRequest
    store: Store
    profile: Profile
    params: dict[str, str]
    user: User | None = None
    key: ApiKey | None = None
    corrupt: Callable[[str], bool] = field(default=lambda _id: False)
    _body: Any = None
    _parsed: bool = False

    @property
    def uid(self) -> str:
        assert self.user is not None
        return self.user.id

    def json(self) -> Any:
        if not self._parsed:
            raw = self.req.body.decode("utf-8", errors="replace")
            if not raw.strip():
                self._body = {}
            else:
                try:
                    self._body = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ApiError(400, json_error_message(raw, exc.pos)) from None
            self._parsed = True
        return self._body


Handler = Callable[[Ctx], ApiResponse]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler
    auth: bool
    permission: str | None
    profiles: frozenset[str]


ROUTES: list[Route] = []


def route(
    method: str,
    template: str,
    *,
    auth: bool = True,
    permission: str | None = None,
    profiles: str = "v1 v2 v3",
) -> Callable[[Handler], Handler]:
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"

    def deco(fn: Handler) -> Handler:
        ROUTES.append(
            Route(
                method,
                template,
                re.compile(regex),
                fn,
                auth,
                permission,
                frozenset(profiles.split()),
            )
        )
        return fn

    return deco


def json_response(obj: Any, status: int = 200) -> ApiResponse:
    body = obj if isinstance(obj, bytes) else dumps(obj)
    return ApiResponse(status, [("Content-Type", JSON)], body)


def no_content() -> ApiResponse:
    return ApiResponse(204, [], b"")


def error_response(
    profile: Profile,
    status: int,
    message: str | None,
    correlation_id: str,
    issues: list[Issue] | None = None,
) -> ApiResponse:
    body = error_body(
        status, message, issues=issues, legacy=profile.legacy_errors, correlation_id=correlation_id
    )
    return ApiResponse(status, [("Content-Type", JSON)], dumps(body))


def _path_issue(name: str) -> ValidationFailed:
    v = Validator({name: "x"})
    v.uuid_value([name], "not-a-uuid", name)
    return ValidationFailed(v.issues)


def dispatch(
    store: Store,
    req: ApiRequest,
    correlation_id: str,
    corrupt: Callable[[str], bool] = lambda _id: False,
) -> tuple[ApiResponse, str | None]:
    """Answer one request; returns the response and the caller's user id (None if unknown)."""
    profile = store.profile
    path = req.path.rstrip("/") or "/"
    if path == "/.well-known/immich" and req.method == "GET":
        return json_response({"api": {"endpoint": "/api"}}), None
    user_id: str | None = None
    try:
        if not path.startswith("/api/"):
            raise ApiError(404, f"Cannot {req.method} {req.path}")
        sub = path[4:]
        match: tuple[Route, dict[str, str]] | None = None
        for r in ROUTES:
            if r.method != req.method or profile.name not in r.profiles:
                continue
            m = r.pattern.match(sub)
            if m:
                match = (r, m.groupdict())
                break
        if match is None:
            raise ApiError(404, f"Cannot {req.method} {req.path}")
        r, params = match
        ctx = Ctx(req, store, profile, params, corrupt=corrupt)
        if r.auth:
            secret = req.headers.get("x-api-key") or req.arg("apiKey")
            if not secret:
                raise ApiError(401, "Authentication required")
            key = store.keys.get(secret)
            if key is None:
                raise ApiError(401, "Invalid API key")
            ctx.key = key
            ctx.user = store.users[key.user_id]
            user_id = key.user_id
            if (
                r.permission
                and ALL_PERMISSION not in key.permissions
                and r.permission not in key.permissions
            ):
                raise ApiError(403, f"Missing required permission: {r.permission}")
        for name, value in params.items():
            if name == "id" and not UUID_RE.match(value):
                raise _path_issue(name)
        response = r.handler(ctx)
    except ValidationFailed as exc:
        response = error_response(profile, 400, None, correlation_id, exc.issues)
    except ApiError as exc:
        response = error_response(profile, exc.status, exc.message, correlation_id)
    if not profile.legacy_errors or response.status >= 400:
        response.headers.append(("X-Correlation-ID", correlation_id))
    return response, user_id


# =============================================================================== server


@route("GET", "/server/ping", auth=False)
def server_ping(ctx: Ctx) -> ApiResponse:
    return json_response({"res": "pong"})


@route("GET", "/server/version", auth=False)
def server_version(ctx: Ctx) -> ApiResponse:
    major, minor, patch = ctx.profile.version
    body: dict[str, Any] = {"major": major, "minor": minor, "patch": patch}
    if ctx.profile.prerelease:
        body["prerelease"] = None
    return json_response(body)


@route("GET", "/server/features", auth=False)
def server_features(ctx: Ctx) -> ApiResponse:
    p = ctx.profile
    body: dict[str, Any] = {
        "smartSearch": True,
        "facialRecognition": True,
        "duplicateDetection": True,
        "map": True,
        "reverseGeocoding": True,
        "importFaces": False,
        "sidecar": True,
        "search": True,
        "trash": True,
        "oauth": False,
        "oauthAutoLaunch": False,
    }
    if p.ocr:
        body["ocr"] = True
    body.update({"passwordLogin": True, "configFile": False, "email": False})
    if p.realtime_transcoding:
        body["realtimeTranscoding"] = False
    return json_response(body)


@route("GET", "/server/config", auth=False)
def server_config(ctx: Ctx) -> ApiResponse:
    p = ctx.profile
    body: dict[str, Any] = {
        "loginPageMessage": "",
        "trashDays": 30,
        "userDeleteDelay": 7,
        "oauthButtonText": "Login with OAuth",
        "isInitialized": True,
        "isOnboarded": False,
        "externalDomain": "",
        "publicUsers": True,
        "mapDarkStyleUrl": "https://tiles.immich.cloud/v1/style/dark.json",
        "mapLightStyleUrl": "https://tiles.immich.cloud/v1/style/light.json",
    }
    if p.maintenance_mode:
        body["maintenanceMode"] = False
    if p.min_faces:
        body["minFaces"] = 3
    return json_response(body)


@route("GET", "/server/about", permission="server.about")
def server_about(ctx: Ctx) -> ApiResponse:
    v = ctx.profile.version_text
    return json_response(
        {
            "version": v,
            "versionUrl": f"https://github.com/immich-app/immich/releases/tag/{v}",
            "licensed": False,
            "nodejs": "v22.0.0",
            "exiftool": "13.00",
            "ffmpeg": "fake",
            "libvips": "fake",
            "imagemagick": "",
        }
    )


@route("GET", "/users/me", permission="user.read")
def users_me(ctx: Ctx) -> ApiResponse:
    assert ctx.user is not None
    return json_response(user_admin_dto(ctx.user, ctx.store.usage(ctx.uid)))


@route("GET", "/api-keys/me")
def api_keys_me(ctx: Ctx) -> ApiResponse:
    assert ctx.key is not None
    return json_response(api_key_dto(ctx.key))


# =============================================================================== duplicates


@route("GET", "/duplicates", permission="duplicate.read")
def duplicates_list(ctx: Ctx) -> ApiResponse:
    return json_response(ctx.store.duplicates_json(ctx.uid))


@route("DELETE", "/duplicates/{id}", permission="duplicate.delete")
def duplicates_delete(ctx: Ctx) -> ApiResponse:
    dup = ctx.params["id"]
    if not ctx.store.owns_group(ctx.uid, dup):
        raise not_found("duplicate.delete")
    ctx.store.dismiss_groups(ctx.uid, [dup])
    return no_content()


@route("DELETE", "/duplicates", permission="duplicate.delete")
def duplicates_delete_all(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    ids = v.uuids("ids")
    v.done()
    for dup in ids:
        if not ctx.store.owns_group(ctx.uid, dup):
            raise not_found("duplicate.delete")
    ctx.store.dismiss_groups(ctx.uid, ids)
    return no_content()


@route("POST", "/duplicates/resolve", permission="duplicate.delete", profiles="v2 v3")
def duplicates_resolve(ctx: Ctx) -> ApiResponse:
    body = ctx.json()
    v = Validator(body)
    obj = v.require_object()
    groups = obj.get("groups")
    parsed: list[tuple[str, list[str], list[str]]] = []
    if not isinstance(groups, list):
        v.type_issue(["groups"], "array", groups if "groups" in obj else MISSING, "groups")
    elif not groups:
        v.issues.append(
            Issue(
                {
                    "origin": "array",
                    "code": "too_small",
                    "minimum": 1,
                    "inclusive": True,
                    "path": ["groups"],
                    "message": "Too small: expected array to have >=1 items",
                },
                "groups must contain at least 1 elements",
            )
        )
    else:
        for i, g in enumerate(groups):
            gv = Validator(g)
            if not isinstance(g, dict):
                v.type_issue(["groups", i], "object", g, "groups")
                continue
            dup = gv.uuid("duplicateId")
            keep = gv.uuids("keepAssetIds")
            trash = gv.uuids("trashAssetIds")
            for issue in gv.issues:
                issue.zod["path"] = ["groups", i, *issue.zod["path"]]
                issue.legacy = f"groups.{i}.{issue.legacy}"
            v.issues.extend(gv.issues)
            if dup is not None:
                parsed.append((dup, keep, trash))
    v.done()
    for dup, _, _ in parsed:
        if not ctx.store.owns_group(ctx.uid, dup):
            raise not_found("duplicate.delete")
    results = [ctx.store.resolve_group(ctx.uid, dup, keep, trash) for dup, keep, trash in parsed]
    return json_response(results)


# =============================================================================== assets


@route("GET", "/assets/statistics", permission="asset.statistics")
def assets_statistics(ctx: Ctx) -> ApiResponse:
    images = videos = 0
    for a in ctx.store.assets.values():
        if a.owner_id == ctx.uid and not a.is_trashed and a.visibility in LISTED_VISIBILITY:
            if a.type == "VIDEO":
                videos += 1
            else:
                images += 1
    return json_response({"images": images, "videos": videos, "total": images + videos})


@route("POST", "/assets/bulk-upload-check", permission="asset.upload")
def bulk_upload_check(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    obj = v.require_object()
    items = obj.get("assets")
    if not isinstance(items, list):
        v.type_issue(["assets"], "array", items, "assets")
        v.done()
    assert isinstance(items, list)
    pairs: list[tuple[str, str]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            v.type_issue(["assets", i], "object", item, "assets")
            continue
        cid, checksum = item.get("id"), item.get("checksum")
        if not isinstance(cid, str):
            v.type_issue(["assets", i, "id"], "string", cid, "id")
        if not isinstance(checksum, str):
            v.type_issue(["assets", i, "checksum"], "string", checksum, "checksum")
        if isinstance(cid, str) and isinstance(checksum, str):
            pairs.append((cid, checksum))
    v.done()
    results: list[dict[str, Any]] = []
    for cid, checksum in pairs:
        digest = checksum_bytes(checksum)
        found = ctx.store.find_by_checksum(ctx.uid, digest) if digest else None
        if found is None:
            results.append({"id": cid, "action": "accept"})
        else:
            results.append(
                {
                    "id": cid,
                    "action": "reject",
                    "reason": "duplicate",
                    "assetId": found.id,
                    "isTrashed": found.is_trashed,
                }
            )
    return json_response({"results": results})


@route("GET", "/assets/{id}", permission="asset.read")
def asset_get(ctx: Ctx) -> ApiResponse:
    a = ctx.store.get_owned(ctx.uid, ctx.params["id"], "asset.read")
    return json_response(ctx.store.asset_bytes(a, "full"))


def _update_fields(ctx: Ctx, v: Validator, *, bulk: bool) -> dict[str, Any]:
    """Validate the fields shared by ``UpdateAssetDto`` and ``AssetBulkUpdateDto``."""
    p = ctx.profile
    f: dict[str, Any] = {}
    if (d := v.string("description")) is not None:
        f["description"] = d
    lat = v.number("latitude", minimum=-90, maximum=90)
    lon = v.number("longitude", minimum=-180, maximum=180)
    if lat is not None:
        f["latitude"] = lat
    if lon is not None:
        f["longitude"] = lon
    if (fav := v.boolean("isFavorite")) is not None:
        f["isFavorite"] = fav
    if (vis := v.enum("visibility", VISIBILITIES)) is not None:
        f["visibility"] = vis
    if v.present("rating"):
        raw = v.body.get("rating")
        if raw is None:
            f["rating"] = None
        else:
            r = v.number("rating", minimum=-1, maximum=5, integer=True)
            if r is not None:
                if r == 0 and not p.rating_zero_null:
                    v.custom(
                        "rating",
                        "Rating must be -1 (rejected), 1–5 (starred), or null (unrated); 0 is not valid",
                    )
                else:
                    f["rating"] = int(r)
    if (dto := v.string("dateTimeOriginal")) is not None:
        f["dateTimeOriginal"] = dto
    if bulk:
        if v.present("duplicateId"):
            f["duplicateId"] = v.uuid("duplicateId", nullable=True)
        if (tz := v.string("timeZone")) is not None:
            f["timeZone"] = tz
        rel = v.number("dateTimeRelative", integer=True)
        if rel is not None:
            f["dateTimeRelative"] = int(rel)
    elif v.present("livePhotoVideoId"):
        f["livePhotoVideoId"] = v.uuid("livePhotoVideoId", nullable=True)
    return f


def _parse_date_field(f: dict[str, Any], message: str) -> None:
    if "dateTimeOriginal" in f:
        try:
            f["dateTimeOriginal"] = parse_client_datetime(f["dateTimeOriginal"])
        except ValueError:
            raise ApiError(500, message) from None


@route("PUT", "/assets/{id}", permission="asset.update")
def asset_put(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    f = _update_fields(ctx, v, bulk=False)
    v.done()
    a = ctx.store.get_owned(ctx.uid, ctx.params["id"], "asset.update")
    _parse_date_field(f, "Failed to update asset")
    if "livePhotoVideoId" in f and f["livePhotoVideoId"] is not None:
        ctx.store.get_owned(ctx.uid, f["livePhotoVideoId"], "asset.update")
    ctx.store.update_asset(a, f)
    return json_response(ctx.store.asset_bytes(a, "upd"))


@route("PUT", "/assets", permission="asset.update")
def assets_put(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    ids = v.uuids("ids")
    f = _update_fields(ctx, v, bulk=True)
    v.done()
    assets = ctx.store.get_all_owned(ctx.uid, ids, "asset.update")
    _parse_date_field(f, "Failed to update assets")
    for a in assets:
        ctx.store.update_asset(a, dict(f))
    return no_content()


@route("DELETE", "/assets", permission="asset.delete")
def assets_delete(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    ids = v.uuids("ids")
    force = v.boolean("force")
    v.done()
    assets = ctx.store.get_all_owned(ctx.uid, ids, "asset.delete")
    ctx.store.delete_assets(assets, bool(force))
    return no_content()


def _parse_duration(text: str | None, ms: bool) -> int | None:
    if text is None or text == "":
        return None
    if ms or re.fullmatch(r"\d+", text):
        try:
            return int(float(text))
        except ValueError:
            return None
    m = re.fullmatch(r"(\d+):(\d{2}):(\d{2})(?:\.(\d+))?", text)
    if not m:
        return None
    frac = (m.group(4) or "0")[:3].ljust(3, "0")
    return ((int(m.group(1)) * 60 + int(m.group(2))) * 60 + int(m.group(3))) * 1000 + int(frac)


@route("POST", "/assets", permission="asset.upload")
def asset_upload(ctx: Ctx) -> ApiResponse:
    header = ctx.req.headers.get("x-immich-checksum")
    if header:
        digest = checksum_bytes(header)
        existing = ctx.store.find_by_checksum(ctx.uid, digest) if digest else None
        if existing is not None:
            return json_response({"status": "duplicate", "id": existing.id}, 200)
    parts = parse_multipart(ctx.req.headers.get("content-type", ""), ctx.req.body)
    if parts is None:
        raise ApiError(400, "Multipart: Boundary not found")
    fields: dict[str, str] = {}
    file_part = None
    for part in parts:
        if part.name == "assetData" and part.filename is not None:
            file_part = part
        elif part.filename is None:
            fields[part.name] = part.data.decode("utf-8", errors="replace")
    v = Validator(fields)
    if ctx.profile.device_fields:
        v.string("deviceAssetId", required=True)
        v.string("deviceId", required=True)
    created = v.string("fileCreatedAt", required=True)
    modified = v.string("fileModifiedAt", required=True)
    visibility = v.enum("visibility", VISIBILITIES) or "timeline"
    live = v.uuid("livePhotoVideoId", required=False)
    v.done()
    if file_part is None:
        raise ApiError(400, "Asset data is required")
    try:
        created_at = parse_iso(created or "")
        modified_at = parse_iso(modified or "")
    except ValueError:
        v2 = Validator(fields)
        v2.custom("fileCreatedAt", "Invalid ISO date", "fileCreatedAt must be a Date instance")
        raise ValidationFailed(v2.issues) from None
    digest_existing = ctx.store.find_by_checksum(ctx.uid, _sha1(file_part.data))
    if digest_existing is not None:
        return json_response({"status": "duplicate", "id": digest_existing.id}, 200)
    filename = fields.get("filename") or file_part.filename or "upload.bin"
    a = ctx.store.upload(
        ctx.uid,
        file_part.data,
        filename,
        file_created_at=created_at,
        file_modified_at=modified_at,
        is_favorite=fields.get("isFavorite", "false").lower() == "true",
        visibility=visibility,
        live_photo_video_id=live,
        duration_ms=_parse_duration(fields.get("duration"), ctx.profile.duration_ms),
        device_asset_id=fields.get("deviceAssetId", ""),
    )
    return json_response({"id": a.id, "status": "created"}, 201)


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()


def _corrupted(data: bytes, offset: int, start: int) -> bytes:
    """Flip the byte at absolute ``offset`` if it falls inside ``data`` (which starts at ``start``)."""
    i = offset - start
    if 0 <= i < len(data):
        return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
    return data


def _media_missing() -> ApiError:
    return ApiError(404, "Asset media not found")


def _send_file(ctx: Ctx, a: Asset) -> ApiResponse:
    content = ctx.store.content_of(a)
    if content is None:
        raise _media_missing()
    size = content.size
    corrupt = ctx.corrupt(a.id)
    headers = [
        ("Content-Type", a.mime),
        ("Cache-Control", "private, max-age=86400, no-transform"),
        ("Content-Disposition", f"inline; filename*=UTF-8''{quote(a.file_name)}"),
        ("Accept-Ranges", "bytes"),
    ]
    rng = ctx.req.headers.get("range")
    start, end = 0, size - 1
    status = 200
    if rng:
        try:
            parsed = parse_range(rng, size)
        except ValueError:
            return ApiResponse(416, [("Content-Range", f"bytes */{size}")], b"")
        if parsed is not None:
            start, end = parsed
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
    headers.append(("Content-Length", str(end - start + 1)))

    def produce() -> bytes:
        data = content.data()
        if status == 206:
            data = data[start : end + 1]
        return _corrupted(data, size // 2, start) if corrupt else data

    return ApiResponse(status, headers, produce)


@route("GET", "/assets/{id}/original", permission="asset.download")
def asset_original(ctx: Ctx) -> ApiResponse:
    a = ctx.store.get_owned(ctx.uid, ctx.params["id"], "asset.download")
    return _send_file(ctx, a)


@route("GET", "/assets/{id}/video/playback", permission="asset.view")
def asset_playback(ctx: Ctx) -> ApiResponse:
    a = ctx.store.get_owned(ctx.uid, ctx.params["id"], "asset.view")
    if a.type != "VIDEO":
        raise _media_missing()
    return _send_file(ctx, a)


@route("GET", "/assets/{id}/thumbnail", permission="asset.view")
def asset_thumbnail(ctx: Ctx) -> ApiResponse:
    sizes: tuple[str, ...] = ("fullsize", "preview", "thumbnail")
    if ctx.profile.name != "v1":
        sizes = ("original", *sizes)
    size = ctx.req.arg("size") or "thumbnail"
    if size not in sizes:
        v = Validator({"size": size})
        v.enum("size", sizes)
        v.done()
    a = ctx.store.get_owned(ctx.uid, ctx.params["id"], "asset.view")
    if size == "original" and ctx.profile.name == "v2":
        raise ApiError(400, "Invalid size")
    if size in ("fullsize", "original"):
        if a.type == "IMAGE" and a.mime in ("image/jpeg", "image/png", "image/webp", "image/gif"):
            return ApiResponse(302, [("Location", f"/api/assets/{a.id}/original")], b"")
        size = "preview"
    content = ctx.store.content_of(a)
    if content is None:
        raise _media_missing()
    key = (content.thumb_key(), size)
    store = ctx.store
    is_video = a.type == "VIDEO"
    ctype = "image/webp" if size == "thumbnail" else "image/jpeg"
    headers = [("Content-Type", ctype), ("Cache-Control", "private, max-age=86400, no-transform")]
    cached = store.thumbs.get(key)
    if cached is not None:
        return ApiResponse(200, headers, cached)

    def produce() -> bytes:
        data = make_thumbnail(content.thumb_source(), size, video_badge=is_video)
        store.thumbs[key] = data
        while len(store.thumbs) > THUMB_CACHE_MAX:
            try:
                store.thumbs.popitem(last=False)
            except KeyError:  # pragma: no cover - concurrent eviction
                break
        return data

    return ApiResponse(200, headers, produce)


# =============================================================================== search


@route("POST", "/search/metadata", permission="asset.read")
def search_metadata(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    aid = v.uuid("id", required=False)
    checksum = v.string("checksum")
    album_ids = v.uuids("albumIds", required=False)
    tag_ids = v.uuids("tagIds", required=False)
    library_id = v.uuid("libraryId", required=False, nullable=True)
    name = v.string("originalFileName")
    with_deleted = v.boolean("withDeleted")
    with_exif = v.boolean("withExif")
    favorite = v.boolean("isFavorite")
    visibility = v.enum("visibility", VISIBILITIES)
    kind = v.enum("type", ("IMAGE", "VIDEO", "AUDIO", "OTHER"))
    order = v.enum("order", ("asc", "desc")) or "desc"
    page = v.number("page", minimum=1, integer=True)
    size = v.number("size", minimum=1, maximum=1000, integer=True)
    v.done()
    store = ctx.store
    page_n = int(page or 1)
    size_n = int(size or 250)
    digest = checksum_bytes(checksum) if checksum else None
    album_sets = [set(store.albums[i].asset_ids) for i in album_ids if i in store.albums]
    hits: list[Asset] = []
    for a in store.assets.values():
        if a.owner_id != ctx.uid:
            continue
        if aid is not None and a.id != aid:
            continue
        if a.is_trashed and not with_deleted:
            continue
        if visibility is not None:
            if a.visibility != visibility:
                continue
        elif a.visibility not in LISTED_VISIBILITY:
            continue
        if checksum is not None and (digest is None or a.checksum != _b64(digest)):
            continue
        if album_ids and (
            len(album_sets) != len(album_ids) or not all(a.id in s for s in album_sets)
        ):
            continue
        if tag_ids and not all(t in a.tag_ids for t in tag_ids):
            continue
        if "libraryId" in v.body and a.library_id != library_id:
            continue
        if name is not None and name.lower() not in a.file_name.lower():
            continue
        if favorite is not None and a.is_favorite != favorite:
            continue
        if kind is not None and a.type != kind:
            continue
        hits.append(a)
    hits.sort(key=lambda a: (a.file_created_at, a.id), reverse=order == "desc")
    chunk = hits[(page_n - 1) * size_n : page_n * size_n]
    more = len(hits) > page_n * size_n
    variant = "search_exif" if with_exif else "search"
    items = b",".join(store.asset_bytes(a, variant) for a in chunk)
    head = dumps({"total": 0, "count": 0, "items": [], "facets": []})
    tail = (
        b'{"total":'
        + str(len(chunk)).encode()
        + b',"count":'
        + str(len(chunk)).encode()
        + b',"items":['
        + items
        + b'],"facets":[],"nextPage":'
        + dumps(str(page_n + 1) if more else None)
        + b"}"
    )
    return json_response(b'{"albums":' + head + b',"assets":' + tail + b"}")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


# =============================================================================== trash


def _ids_body(ctx: Ctx, key: str = "ids") -> list[str]:
    v = Validator(ctx.json())
    v.require_object()
    ids = v.uuids(key)
    v.done()
    return ids


@route("POST", "/trash/restore/assets", permission="asset.delete")
def trash_restore_assets(ctx: Ctx) -> ApiResponse:
    ids = _ids_body(ctx)
    assets = ctx.store.get_all_owned(ctx.uid, ids, "asset.delete")
    ctx.store.restore(assets)
    return json_response({"count": len(ids)})


@route("POST", "/trash/restore", permission="asset.delete")
def trash_restore(ctx: Ctx) -> ApiResponse:
    mine = [a for a in ctx.store.assets.values() if a.owner_id == ctx.uid]
    return json_response({"count": ctx.store.restore(mine)})


@route("POST", "/trash/empty", permission="asset.delete")
def trash_empty(ctx: Ctx) -> ApiResponse:
    trashed = [
        a for a in ctx.store.assets.values() if a.owner_id == ctx.uid and a.status == "trashed"
    ]
    ctx.store.delete_assets(trashed, True)
    return json_response({"count": len(trashed)})


# =============================================================================== albums


def _bool_arg(ctx: Ctx, name: str) -> bool | None:
    raw = ctx.req.arg(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        v = Validator({name: raw})
        v.type_issue([name], "boolean", raw, name)
        v.done()
    return raw == "true"


@route("GET", "/albums", permission="album.read")
def albums_list(ctx: Ctx) -> ApiResponse:
    asset_id = ctx.req.arg("assetId")
    if asset_id is not None and not UUID_RE.match(asset_id):
        raise _path_issue("assetId")
    shared = _bool_arg(ctx, "shared")
    albums = ctx.store.albums_of(ctx.uid, asset_id)
    if asset_id is None and shared:
        albums = []  # the fake has no shared albums
    return json_response([ctx.store.album_dict(al, with_assets=False) for al in albums])


@route("POST", "/albums", permission="album.create")
def album_create(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    name = v.string("albumName", required=True)
    desc = v.string("description") or ""
    ids = v.uuids("assetIds", required=False)
    v.done()
    album = ctx.store.add_album(ctx.uid, name or "", desc)
    if ids:
        ctx.store.get_all_owned(ctx.uid, ids, "asset.share")
        ctx.store.album_add(album, ids, ctx.uid)
    return json_response(ctx.store.album_dict(album, with_assets=True), 201)


@route("GET", "/albums/{id}", permission="album.read")
def album_get(ctx: Ctx) -> ApiResponse:
    album = ctx.store.get_album(ctx.uid, ctx.params["id"], "album.read")
    without = _bool_arg(ctx, "withoutAssets")
    return json_response(ctx.store.album_dict(album, with_assets=not without))


@route("PUT", "/albums/{id}/assets", permission="albumAsset.create")
def album_add_assets(ctx: Ctx) -> ApiResponse:
    ids = _ids_body(ctx)
    album = ctx.store.get_album(ctx.uid, ctx.params["id"], "albumAsset.create")
    return json_response(ctx.store.album_add(album, ids, ctx.uid))


@route("DELETE", "/albums/{id}/assets", permission="albumAsset.delete")
def album_remove_assets(ctx: Ctx) -> ApiResponse:
    ids = _ids_body(ctx)
    album = ctx.store.get_album(ctx.uid, ctx.params["id"], "albumAsset.delete")
    return json_response(ctx.store.album_remove(album, ids))


@route("PUT", "/albums/assets", permission="albumAsset.create")
def albums_add_assets(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    album_ids = v.uuids("albumIds")
    asset_ids = v.uuids("assetIds")
    v.done()
    denied = False
    added = 0
    for album_id in album_ids:
        album = ctx.store.albums.get(album_id)
        if album is None or album.owner_id != ctx.uid:
            denied = True
            continue
        results = ctx.store.album_add(album, asset_ids, ctx.uid)
        added += sum(1 for r in results if r["success"])
    if denied and not added:
        return json_response({"success": False, "error": "no_permission"})
    if not added:
        return json_response({"success": False, "error": "duplicate"})
    return json_response({"success": True})


# =============================================================================== tags


@route("GET", "/tags", permission="tag.read")
def tags_list(ctx: Ctx) -> ApiResponse:
    tags = sorted(
        (t for t in ctx.store.tags.values() if t.owner_id == ctx.uid), key=lambda t: t.value
    )
    return json_response([tag_dto(t) for t in tags])


@route("PUT", "/tags", permission="tag.create")
def tags_upsert(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    values = v.strings("tags")
    v.done()
    tags = [ctx.store.upsert_tag(ctx.uid, value) for value in values]
    return json_response([tag_dto(t) for t in tags])


@route("PUT", "/tags/{id}/assets", permission="tag.asset")
def tag_add_assets(ctx: Ctx) -> ApiResponse:
    ids = _ids_body(ctx)
    tag = ctx.store.get_tag(ctx.uid, ctx.params["id"], "tag.asset")
    out: list[dict[str, Any]] = []
    for aid in ids:
        a = ctx.store.assets.get(aid)
        if a is None or a.owner_id != ctx.uid:
            out.append({"id": aid, "success": False, "error": "no_permission"})
        elif ctx.store.tag_asset(tag, a):
            out.append({"id": aid, "success": True})
        else:
            out.append({"id": aid, "success": False, "error": "duplicate"})
    return json_response(out)


@route("DELETE", "/tags/{id}/assets", permission="tag.asset")
def tag_remove_assets(ctx: Ctx) -> ApiResponse:
    ids = _ids_body(ctx)
    tag = ctx.store.get_tag(ctx.uid, ctx.params["id"], "tag.asset")
    out: list[dict[str, Any]] = []
    for aid in ids:
        a = ctx.store.assets.get(aid)
        if a is not None and a.owner_id == ctx.uid and ctx.store.untag_asset(tag, a):
            out.append({"id": aid, "success": True})
        else:
            out.append({"id": aid, "success": False, "error": "not_found"})
    return json_response(out)


@route("PUT", "/tags/assets", permission="tag.asset")
def tags_bulk_assets(ctx: Ctx) -> ApiResponse:
    v = Validator(ctx.json())
    v.require_object()
    tag_ids = v.uuids("tagIds")
    asset_ids = v.uuids("assetIds")
    v.done()
    tags = [ctx.store.get_tag(ctx.uid, t, "tag.asset") for t in tag_ids]
    assets = ctx.store.get_all_owned(ctx.uid, asset_ids, "asset.update")
    count = sum(1 for t in tags for a in assets if ctx.store.tag_asset(t, a))
    return json_response({"count": count})


# =============================================================================== stacks


def _stack_response(ctx: Ctx, stack_id: str) -> dict[str, Any]:
    stack = ctx.store.stacks[stack_id]
    assets = [ctx.store.assets[i] for i in stack.asset_ids if i in ctx.store.assets]
    return {
        "id": stack.id,
        "primaryAssetId": stack.primary_id,
        "assets": [ctx.store.asset_dict(a, "upd") for a in assets],
    }


@route("POST", "/stacks", permission="stack.create")
def stack_create(ctx: Ctx) -> ApiResponse:
    ids = _ids_body(ctx, "assetIds")
    if len(ids) < 2:
        raise ValidationFailed(
            [
                Issue(
                    {
                        "origin": "array",
                        "code": "too_small",
                        "minimum": 2,
                        "inclusive": True,
                        "path": ["assetIds"],
                        "message": "Too small: expected array to have >=2 items",
                    },
                    "assetIds must contain at least 2 elements",
                )
            ]
        )
    assets = ctx.store.get_all_owned(ctx.uid, list(dict.fromkeys(ids)), "asset.update")
    stack = ctx.store.create_stack(ctx.uid, assets)
    return json_response(_stack_response(ctx, stack.id), 201)


@route("GET", "/stacks/{id}", permission="stack.read")
def stack_get(ctx: Ctx) -> ApiResponse:
    stack = ctx.store.stacks.get(ctx.params["id"])
    if stack is None or stack.owner_id != ctx.uid:
        raise not_found("stack.read")
    return json_response(_stack_response(ctx, stack.id))


@route("DELETE", "/stacks/{id}", permission="stack.delete")
def stack_delete(ctx: Ctx) -> ApiResponse:
    stack = ctx.store.stacks.get(ctx.params["id"])
    if stack is None or stack.owner_id != ctx.uid:
        raise not_found("stack.delete")
    ctx.store.delete_stack(stack)
    return no_content()


def correlation_id(seq: int) -> str:
    return uuid_for("correlation", str(seq))


__all__ = ["ROUTES", "ApiRequest", "ApiResponse", "correlation_id", "dispatch"]
