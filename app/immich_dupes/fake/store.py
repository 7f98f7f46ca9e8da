"""The fake server's state and everything that changes it, modelled on Immich's services.

Not thread-safe by itself: ``FakeImmich`` holds one lock around every call.
"""

from __future__ import annotations

import base64
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from immich_dupes.fake._time import (
    is_iana,
    local_wall,
    localize,
    offset_label,
    uuid_for,
    zone_offset,
)
from immich_dupes.fake.dto import album_dto, asset_dto, dumps, exif_dto
from immich_dupes.fake.errors import ApiError, not_found
from immich_dupes.fake.media import FileMeta, mime_for, read_file_meta
from immich_dupes.fake.places import nearest_place
from immich_dupes.fake.profiles import Profile
from immich_dupes.fake.records import Album, ApiKey, Asset, Blob, Content, Stack, Tag, User

ALL_PERMISSION = "all"
LISTED_VISIBILITY = ("timeline", "archive")
VISIBILITIES = ("archive", "timeline", "hidden", "locked")


def now() -> datetime:
    return datetime.now(UTC)


def b64_sha1(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def checksum_bytes(text: str) -> bytes | None:
    """A client checksum (40 hex chars or 28 base64 chars) as raw SHA-1 bytes."""
    t = text.strip()
    try:
        if len(t) == 40:
            return bytes.fromhex(t)
        raw = base64.b64decode(t, validate=True)
    except ValueError:
        return None
    return raw if len(raw) == 20 else None


@dataclass(slots=True)
class Job:
    kind: str  # "sidecar" | "purge"
    asset_id: str


class Store:
    """Users, keys, assets, albums, tags and stacks of one fake server."""

    def __init__(self, profile: Profile, namespace: str = "fake") -> None:
        self.profile = profile
        self.namespace = namespace
        self.users: dict[str, User] = {}
        self.keys: dict[str, ApiKey] = {}
        self.assets: dict[str, Asset] = {}
        self.albums: dict[str, Album] = {}
        self.tags: dict[str, Tag] = {}
        self.stacks: dict[str, Stack] = {}
        self.jobs: list[Job] = []
        self.version = 0
        self._seq = 0
        self._dup_index: dict[str, set[str]] = {}
        self._checksums: dict[str, dict[str, str]] = {}  # owner → checksum → asset id
        self._dup_cache: dict[str, tuple[int, bytes]] = {}
        self.cache_serialized = True
        """Keep serialized DTOs and the ``GET /duplicates`` body until the next change. A real
        server builds every answer anew; ``False`` makes the fake do so too (benchmarks)."""
        self._live_refs: dict[str, set[str]] = {}  # motion video id → stills that link it
        self.thumbs: OrderedDict[tuple[str, str], bytes] = OrderedDict()

    # ------------------------------------------------------------------ ids, users, keys

    def new_id(self, kind: str) -> str:
        self._seq += 1
        return uuid_for(self.namespace, kind, str(self._seq))

    def changed(self) -> None:
        self.version += 1

    def add_user(
        self, name: str, email: str, *, is_admin: bool, color: str, created: datetime
    ) -> User:
        uid = uuid_for(self.namespace, "user", email)
        user = User(uid, email, name, color, created, is_admin, "admin" if is_admin else None)
        self.users[uid] = user
        self._checksums.setdefault(uid, {})
        return user

    def add_key(self, user_id: str, permissions: list[str], name: str) -> ApiKey:
        if user_id not in self.users:
            raise KeyError(user_id)
        kid = self.new_id("api-key")
        key = ApiKey(kid, secrets.token_hex(24), user_id, name, list(permissions), now())
        self.keys[key.secret] = key
        return key

    # ------------------------------------------------------------------ assets: rows

    def add_asset(self, a: Asset) -> Asset:
        """Insert a fully built row (library builders, upload)."""
        self.assets[a.id] = a
        if a.duplicate_id:
            self._dup_index.setdefault(a.duplicate_id, set()).add(a.id)
        if a.library_id is None:
            self._checksums.setdefault(a.owner_id, {})[a.checksum] = a.id
        if a.live_photo_video_id:
            self._live_refs.setdefault(a.live_photo_video_id, set()).add(a.id)
        self.changed()
        return a

    def set_live_photo(self, a: Asset, video_id: str | None) -> None:
        if a.live_photo_video_id:
            refs = self._live_refs.get(a.live_photo_video_id)
            if refs is not None:
                refs.discard(a.id)
                if not refs:
                    del self._live_refs[a.live_photo_video_id]
        a.live_photo_video_id = video_id
        if video_id:
            self._live_refs.setdefault(video_id, set()).add(a.id)
        a.touch()

    def set_duplicate(self, a: Asset, dup: str | None) -> None:
        if a.duplicate_id == dup:
            return
        if a.duplicate_id:
            members = self._dup_index.get(a.duplicate_id)
            if members is not None:
                members.discard(a.id)
                if not members:
                    del self._dup_index[a.duplicate_id]
        a.duplicate_id = dup
        if dup:
            self._dup_index.setdefault(dup, set()).add(a.id)
        a.touch()
        self.changed()

    def get_owned(self, user_id: str, asset_id: str, permission: str) -> Asset:
        """The caller's asset, or 400 ``Not found or no <permission> access`` (as Immich)."""
        a = self.assets.get(asset_id)
        if a is None or a.owner_id != user_id or a.visibility == "locked":
            raise not_found(permission)
        return a

    def get_all_owned(self, user_id: str, ids: Iterable[str], permission: str) -> list[Asset]:
        out: list[Asset] = []
        for i in ids:
            out.append(self.get_owned(user_id, i, permission))
        return out

    def find_by_checksum(self, owner_id: str, digest: bytes) -> Asset | None:
        aid = self._checksums.get(owner_id, {}).get(b64_sha1(digest))
        return self.assets.get(aid) if aid else None

    # ------------------------------------------------------------------ serialization

    def asset_bytes(self, a: Asset, variant: str) -> bytes:
        cached = a.cache.get(variant)
        if cached is None:
            cached = dumps(self.asset_dict(a, variant))
            if self.cache_serialized:
                a.cache[variant] = cached
        return cached

    def asset_dict(self, a: Asset, variant: str) -> dict[str, Any]:
        tags = [self.tags[t] for t in a.tag_ids if t in self.tags]
        stack = self.stacks.get(a.stack_id) if a.stack_id else None
        return asset_dto(
            a, variant, self.profile, owner=self.users.get(a.owner_id), tags=tags, stack=stack
        )

    def album_dict(self, album: Album, *, with_assets: bool) -> dict[str, Any]:
        members = [self.assets[i] for i in album.asset_ids if i in self.assets]
        live = [a for a in members if not a.is_trashed]
        dtos = [self.asset_dict(a, "upd") for a in live] if with_assets else None
        return album_dto(
            album, self.profile, owner=self.users[album.owner_id], assets=live, asset_dtos=dtos
        )

    # ------------------------------------------------------------------ metadata extraction

    def extract(self, a: Asset, *, initial: bool = False) -> None:
        """Metadata (re-)extraction: what Immich's MetadataExtraction job computes.

        The date comes from the sidecar when the API wrote one, else from the file. A sidecar
        date with a negative half-hour offset (``-04:30``) is not understood and the file's own
        date wins (recorded on Immich 3.1). With GPS the zone becomes the position's IANA zone
        when the date came from the sidecar or the file's date carries no offset.
        """
        fm = a.file
        if initial:
            a.latitude, a.longitude = fm.latitude, fm.longitude
            a.description = fm.description
            a.make, a.model = fm.make, fm.model
            a.exif_width, a.exif_height = fm.width, fm.height
            a.orientation = fm.orientation
            a.file_size = a.content.size if a.content is not None else a.file_size
            a.modify_date = a.file_modified_at
        place = (
            nearest_place(a.latitude, a.longitude)
            if a.latitude is not None and a.longitude is not None
            else None
        )
        use_gps_zone: bool
        instant: datetime
        zone: str | None
        if a.sidecar_instant is not None:
            off = zone_offset(a.sidecar_zone, a.sidecar_instant)
            if off < 0 and off % 60 != 0:
                instant, zone, _ = self._file_date(a, place)
            else:
                instant, zone = a.sidecar_instant, a.sidecar_zone
            use_gps_zone = True
        else:
            instant, zone, had_offset = self._file_date(a, place)
            use_gps_zone = not had_offset
        if place is not None and use_gps_zone:
            zone = place.zone
        a.date_time_original = instant
        a.time_zone = zone
        a.file_created_at = instant
        a.local_date_time = local_wall(instant, zone)
        if place is not None:
            a.city, a.state, a.country = place.city, place.state, place.country
        else:
            a.city = a.state = a.country = None
        a.touch()
        self.changed()

    @staticmethod
    def _file_date(a: Asset, place: Any) -> tuple[datetime, str | None, bool]:
        fm = a.file
        video_zone = "UTC" if a.type == "VIDEO" else None
        if fm.local is None:
            return a.fallback_time, (place.zone if place is not None else video_zone), False
        if fm.offset is not None:
            return (
                (fm.local - timedelta(minutes=fm.offset)).replace(tzinfo=UTC),
                offset_label(fm.offset),
                True,
            )
        if place is not None:
            return localize(fm.local, place.zone), place.zone, False
        return fm.local.replace(tzinfo=UTC), video_zone, False

    # ------------------------------------------------------------------ jobs

    def queue(self, kind: str, asset_id: str) -> None:
        if not any(j.kind == kind and j.asset_id == asset_id for j in self.jobs[-64:]):
            self.jobs.append(Job(kind, asset_id))

    def run_jobs(self) -> int:
        done = 0
        while self.jobs:
            jobs, self.jobs = self.jobs, []
            for job in jobs:
                a = self.assets.get(job.asset_id)
                if a is None:
                    continue
                if job.kind == "sidecar":
                    self.extract(a)
                    a.updated_at = now()
                elif job.kind == "purge" and a.status == "deleted":
                    self.purge(a)
                done += 1
        return done

    # ------------------------------------------------------------------ updates

    def update_asset(self, a: Asset, f: dict[str, Any]) -> None:
        """Apply an ``UpdateAssetDto``/``AssetBulkUpdateDto`` (already validated) to one asset."""
        t = now()
        exif_changed = False
        if "isFavorite" in f:
            a.is_favorite = bool(f["isFavorite"])
            a.updated_at = t
        if "visibility" in f:
            a.visibility = str(f["visibility"])
            a.updated_at = t
            if a.visibility == "locked":
                for album in self.albums.values():
                    if a.id in album.asset_ids:
                        album.asset_ids.remove(a.id)
        if "description" in f:
            a.description = str(f["description"])
            exif_changed = True
        if "latitude" in f and f["latitude"] is not None:
            a.latitude = float(f["latitude"])
            exif_changed = True
        if "longitude" in f and f["longitude"] is not None:
            a.longitude = float(f["longitude"])
            exif_changed = True
        if "rating" in f:
            r = f["rating"]
            a.rating = None if r is None or (r == 0 and self.profile.rating_zero_null) else int(r)
            exif_changed = True
        if "dateTimeOriginal" in f:
            instant, off = f["dateTimeOriginal"]
            zone = offset_label(off) if off is not None else a.time_zone
            a.date_time_original = instant
            if off is not None and self.profile.offset_on_put:
                a.time_zone = zone
            a.sidecar_instant, a.sidecar_zone = instant, zone
            exif_changed = True
        if "timeZone" in f or "dateTimeRelative" in f:
            instant = a.date_time_original or a.file_created_at
            if f.get("dateTimeRelative") is not None:
                instant = instant + timedelta(minutes=int(f["dateTimeRelative"]))
            zone = str(f["timeZone"]) if f.get("timeZone") is not None else a.time_zone
            a.date_time_original = instant
            a.time_zone = zone
            a.sidecar_instant, a.sidecar_zone = instant, zone
            exif_changed = True
        if "duplicateId" in f:
            self.set_duplicate(a, f["duplicateId"])
        if "livePhotoVideoId" in f:
            self._link_live_photo(a, f["livePhotoVideoId"])
            a.updated_at = t
        if exif_changed:
            self.queue("sidecar", a.id)
        a.touch()
        self.changed()

    def _link_live_photo(self, a: Asset, video_id: str | None) -> None:
        if video_id is None:
            old = self.assets.get(a.live_photo_video_id) if a.live_photo_video_id else None
            if old is not None and old.visibility == "hidden":
                old.visibility = "timeline"
                old.touch()
            self.set_live_photo(a, None)
            return
        motion = self.assets.get(video_id)
        if motion is None:
            raise ApiError(400, "Live photo video not found")
        if motion.type != "VIDEO":
            raise ApiError(400, "Live photo video must be a video")
        if motion.owner_id != a.owner_id:
            raise ApiError(400, "Live photo video does not belong to the user")
        if motion.visibility == "timeline":
            motion.visibility = "hidden"
            motion.touch()
        self.set_live_photo(a, video_id)

    def delete_assets(self, assets: list[Asset], force: bool) -> None:
        t = now()
        for a in assets:
            if force:
                a.status = "deleted"
                a.deleted_at = a.deleted_at or t
                self.queue("purge", a.id)
            elif a.status == "active":
                a.status = "trashed"
                a.deleted_at = t
            a.updated_at = t
            a.touch()
        self.changed()

    def restore(self, assets: Iterable[Asset]) -> int:
        n = 0
        t = now()
        for a in assets:
            if a.status == "trashed":
                a.status = "active"
                a.deleted_at = None
                a.updated_at = t
                a.touch()
                n += 1
        self.changed()
        return n

    def purge(self, a: Asset) -> None:
        """Remove the row, its file and its links (the AssetDelete job)."""
        if a.id not in self.assets:
            return
        del self.assets[a.id]
        self.set_duplicate(a, None)
        if a.library_id is None:
            owned = self._checksums.get(a.owner_id, {})
            if owned.get(a.checksum) == a.id:
                del owned[a.checksum]
        for album in self.albums.values():
            if a.id in album.asset_ids:
                album.asset_ids.remove(a.id)
                if album.thumbnail_id == a.id:
                    album.thumbnail_id = album.asset_ids[0] if album.asset_ids else None
        if a.stack_id:
            self._leave_stack(a)
        for still_id in list(self._live_refs.get(a.id, ())):
            still = self.assets.get(still_id)
            if still is not None:
                self.set_live_photo(still, None)
        self._live_refs.pop(a.id, None)
        motion_id = a.live_photo_video_id
        if motion_id:
            self.set_live_photo(a, None)
            motion = self.assets.get(motion_id)
            if motion is not None and not self._live_refs.get(motion_id):
                self.purge(motion)
        self.changed()

    # ------------------------------------------------------------------ duplicates

    def _group_members(self, dup: str, owner: str) -> list[Asset]:
        out: list[Asset] = []
        for aid in self._dup_index.get(dup, ()):
            a = self.assets.get(aid)
            if (
                a is not None
                and a.owner_id == owner
                and a.status == "active"
                and a.stack_id is None
            ):
                out.append(a)
        return out

    def cleanup_singletons(self, owner: str) -> None:
        """2.7+: before listing, unlink groups that have one (non-trashed, unstacked) member left."""
        lonely: list[str] = []
        for dup in list(self._dup_index):
            if len(self._group_members(dup, owner)) == 1:
                lonely.append(dup)
        for dup in lonely:
            for aid in list(self._dup_index.get(dup, ())):
                a = self.assets.get(aid)
                if a is not None and a.owner_id == owner:
                    self.set_duplicate(a, None)

    def duplicate_groups(self, owner: str) -> list[tuple[str, list[Asset]]]:
        groups: list[tuple[str, list[Asset]]] = []
        for dup in sorted(self._dup_index):
            members = [
                a for a in self._group_members(dup, owner) if a.visibility in LISTED_VISIBILITY
            ]
            if len(members) > 1:
                members.sort(key=lambda a: (a.local_date_time, a.id))
                groups.append((dup, members))
        return groups

    @staticmethod
    def _exif_count(a: Asset) -> int:
        return sum(1 for v in exif_dto(a).values() if v)

    def suggest(self, members: list[Asset]) -> list[str]:
        """Immich's suggestion: largest ``fileSizeInByte``, ties → most truthy EXIF values (last wins)."""
        if not members:
            return []
        biggest = max(a.file_size or 0 for a in members)
        best = [a for a in members if (a.file_size or 0) == biggest]
        if len(best) > 1:
            best = sorted(best, key=self._exif_count)
        return [best[-1].id]

    def duplicates_json(self, owner: str) -> bytes:
        if self.profile.clear_singletons:
            self.cleanup_singletons(owner)
        cached = self._dup_cache.get(owner) if self.cache_serialized else None
        if cached is not None and cached[0] == self.version:
            return cached[1]
        out: list[bytes] = [b"["]
        for n, (dup, members) in enumerate(self.duplicate_groups(owner)):
            out.append(b'{"duplicateId":"' if n == 0 else b',{"duplicateId":"')
            out.append(dup.encode())
            out.append(b'","assets":[')
            for i, a in enumerate(members):
                if i:
                    out.append(b",")
                out.append(self.asset_bytes(a, "dup"))
            if self.profile.suggested_keep:
                out.append(b'],"suggestedKeepAssetIds":')
                out.append(dumps(self.suggest(members)))
                out.append(b"}")
            else:
                out.append(b"]}")
        out.append(b"]")
        body = b"".join(out)
        if self.cache_serialized:
            self._dup_cache[owner] = (self.version, body)
        return body

    def dismiss_groups(self, owner: str, dup_ids: list[str]) -> None:
        for dup in dup_ids:
            for aid in list(self._dup_index.get(dup, ())):
                a = self.assets.get(aid)
                if a is not None and a.owner_id == owner:
                    self.set_duplicate(a, None)

    def owns_group(self, owner: str, dup: str) -> bool:
        return any(
            (a := self.assets.get(aid)) is not None and a.owner_id == owner
            for aid in self._dup_index.get(dup, ())
        )

    def resolve_group(
        self, owner: str, dup: str, keep_ids: list[str], trash_ids: list[str]
    ) -> dict[str, Any]:
        members = [
            a for a in self._group_members_any_owner(dup) if a.visibility in LISTED_VISIBILITY
        ]
        if not members:
            return {"id": dup, "success": False, "error": "not_found"}
        ids = {a.id for a in members}
        keep = [i for i in keep_ids if i in ids]
        trash = [i for i in trash_ids if i in ids]
        for aid in ids:
            if aid in keep and aid in trash:
                return {
                    "id": dup,
                    "success": False,
                    "error": "validation",
                    "errorMessage": "An asset cannot be in both keepAssetIds and trashAssetIds",
                }
            if aid not in keep and aid not in trash:
                return {
                    "id": dup,
                    "success": False,
                    "error": "validation",
                    "errorMessage": "Every asset must be in either keepAssetIds or trashAssetIds",
                }
        if any(self.assets[i].owner_id != owner for i in trash):
            return {
                "id": dup,
                "success": False,
                "error": "no_permission",
                "errorMessage": "No permission to delete assets",
            }
        keepers = [self.assets[i] for i in keep]
        merge = (len(keep) == 1 and len(trash) > 0) or (
            self.profile.resolve_merge_all_keepers and len(keep) > 0
        )
        if merge:
            self._merge_into(keepers, members)
        for k in keepers:
            self.set_duplicate(k, None)
        t = now()
        for i in trash:
            a = self.assets[i]
            a.status = "trashed"
            a.deleted_at = t
            a.updated_at = t
            self.set_duplicate(a, None)
            a.touch()
        self.changed()
        return {"id": dup, "success": True}

    def _group_members_any_owner(self, dup: str) -> list[Asset]:
        out = []
        for aid in self._dup_index.get(dup, ()):
            a = self.assets.get(aid)
            if a is not None and a.status == "active" and a.stack_id is None:
                out.append(a)
        return sorted(out, key=lambda a: (a.local_date_time, a.id))

    def _merge_into(self, keepers: list[Asset], group: list[Asset]) -> None:
        """The v3 resolve merge (duplicate.service.ts ``getSyncMergeResult``)."""
        favorite = any(a.is_favorite for a in group)
        visibility: str | None = None
        for level in ("locked", "archive", "timeline"):
            if any(a.visibility == level for a in group):
                visibility = level
                break
        if visibility is None and any(a.visibility == "hidden" for a in group):
            visibility = "hidden"
        rating = max((a.rating or 0 for a in group), default=0)
        lines: list[str] = []
        for a in group:
            for line in (a.description or "").splitlines():
                s = line.strip()
                if s and s not in lines:
                    lines.append(s)
        lats = {a.latitude for a in group if a.latitude is not None}
        lons = {a.longitude for a in group if a.longitude is not None}
        album_ids = [
            al.id for al in self.albums.values() if any(a.id in al.asset_ids for a in group)
        ]
        tag_ids: list[str] = []
        for a in group:
            for tid in a.tag_ids:
                if tid not in tag_ids:
                    tag_ids.append(tid)
        for k in keepers:
            exif_changed = False
            k.is_favorite = favorite
            if visibility:
                k.visibility = visibility
            if rating > 0:
                k.rating = rating
                exif_changed = True
            if lines:
                k.description = "\n".join(lines)
                exif_changed = True
            if len(lats) == 1 and len(lons) == 1:
                k.latitude, k.longitude = next(iter(lats)), next(iter(lons))
                exif_changed = True
            for album_id in album_ids:
                album = self.albums[album_id]
                if album.owner_id == k.owner_id and k.id not in album.asset_ids:
                    album.asset_ids.append(k.id)
                    album.updated_at = now()
            if tag_ids:
                k.tag_ids = list(tag_ids)
                exif_changed = True
            if exif_changed:
                self.queue("sidecar", k.id)
            k.updated_at = now()
            k.touch()

    # ------------------------------------------------------------------ upload

    def upload(
        self,
        owner: str,
        data: bytes,
        filename: str,
        *,
        file_created_at: datetime,
        file_modified_at: datetime,
        is_favorite: bool,
        visibility: str,
        live_photo_video_id: str | None,
        duration_ms: int | None,
        device_asset_id: str,
    ) -> Asset:
        mime = mime_for(filename)
        kind = "VIDEO" if mime.startswith("video/") else "IMAGE"
        aid = self.new_id("asset")
        dot = filename.rfind(".")
        ext = filename[dot:].lower() if dot >= 0 else ""
        content = Blob(data, f"asset:{aid}")
        meta = read_file_meta(data) if kind == "IMAGE" else FileMeta()
        t = now()
        a = Asset(
            id=aid,
            owner_id=owner,
            type=kind,
            file_name=filename,
            mime=mime,
            path=f"/data/upload/{owner}/{aid[:2]}/{aid[2:4]}/{aid}{ext}",
            content=content,
            checksum=b64_sha1(content.sha1),
            created_at=t,
            updated_at=t,
            file_created_at=file_created_at,
            file_modified_at=file_modified_at,
            local_date_time=file_created_at,
            fallback_time=file_created_at,
            file=meta,
            is_favorite=is_favorite,
            visibility=visibility,
            duration_ms=duration_ms if kind == "VIDEO" else None,
            thumbhash=base64.b64encode(content.sha1[:18]).decode(),
            device_asset_id=device_asset_id,
        )
        self.extract(a, initial=True)
        self.add_asset(a)
        if live_photo_video_id:
            motion = self.assets.get(live_photo_video_id)
            if motion is not None and motion.owner_id == owner and motion.type == "VIDEO":
                self.set_live_photo(a, motion.id)
                motion.visibility = "hidden"
                motion.touch()
        return a

    # ------------------------------------------------------------------ albums

    def add_album(
        self, owner: str, name: str, description: str = "", created: datetime | None = None
    ) -> Album:
        t = created or now()
        album = Album(self.new_id("album"), owner, name, description, t, t)
        self.albums[album.id] = album
        self.changed()
        return album

    def get_album(self, user: str, album_id: str, permission: str) -> Album:
        album = self.albums.get(album_id)
        if album is None or album.owner_id != user:
            raise not_found(permission)
        return album

    def album_add(self, album: Album, asset_ids: list[str], user: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for aid in asset_ids:
            a = self.assets.get(aid)
            if aid in album.asset_ids:
                out.append({"id": aid, "success": False, "error": "duplicate"})
            elif a is None or a.owner_id != user:
                out.append({"id": aid, "success": False, "error": "no_permission"})
            else:
                album.asset_ids.append(aid)
                album.thumbnail_id = album.thumbnail_id or aid
                album.updated_at = now()
                out.append({"id": aid, "success": True})
        self.changed()
        return out

    def album_remove(self, album: Album, asset_ids: list[str]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for aid in asset_ids:
            if aid not in album.asset_ids:
                out.append({"id": aid, "success": False, "error": "not_found"})
                continue
            album.asset_ids.remove(aid)
            if album.thumbnail_id == aid:
                album.thumbnail_id = album.asset_ids[0] if album.asset_ids else None
            album.updated_at = now()
            out.append({"id": aid, "success": True})
        self.changed()
        return out

    def albums_of(self, user: str, asset_id: str | None = None) -> list[Album]:
        out = [al for al in self.albums.values() if al.owner_id == user]
        if asset_id is not None:
            out = [al for al in out if asset_id in al.asset_ids]
        return sorted(out, key=lambda al: al.created_at, reverse=True)

    # ------------------------------------------------------------------ tags

    def upsert_tag(self, owner: str, value: str, created: datetime | None = None) -> Tag:
        parts = [p.strip() for p in value.split("/") if p.strip()]
        if not parts:
            raise ApiError(400, "Tag value cannot be empty")
        parent: Tag | None = None
        for i in range(len(parts)):
            full = "/".join(parts[: i + 1])
            existing = next(
                (t for t in self.tags.values() if t.owner_id == owner and t.value == full), None
            )
            if existing is None:
                t0 = created or now()
                existing = Tag(
                    uuid_for(self.namespace, "tag", owner, full),
                    owner,
                    full,
                    parts[i],
                    parent.id if parent else None,
                    t0,
                    t0,
                )
                self.tags[existing.id] = existing
                self.changed()
            parent = existing
        assert parent is not None
        return parent

    def get_tag(self, user: str, tag_id: str, permission: str) -> Tag:
        tag = self.tags.get(tag_id)
        if tag is None or tag.owner_id != user:
            raise not_found(permission)
        return tag

    def tag_asset(self, tag: Tag, a: Asset) -> bool:
        if tag.id in a.tag_ids:
            return False
        a.tag_ids.append(tag.id)
        tag.updated_at = now()
        a.touch()
        self.queue("sidecar", a.id)
        self.changed()
        return True

    def untag_asset(self, tag: Tag, a: Asset) -> bool:
        if tag.id not in a.tag_ids:
            return False
        a.tag_ids.remove(tag.id)
        a.touch()
        self.queue("sidecar", a.id)
        self.changed()
        return True

    # ------------------------------------------------------------------ stacks

    def create_stack(self, owner: str, assets: list[Asset]) -> Stack:
        ordered: list[Asset] = []
        for a in assets:
            if a.stack_id and a.stack_id in self.stacks:
                old = self.stacks[a.stack_id]
                if old.primary_id == a.id:
                    for mid in old.asset_ids:
                        m = self.assets.get(mid)
                        if m is not None and m not in ordered and m not in assets:
                            ordered.append(m)
                        if m is not None:
                            m.stack_id = None
                            m.touch()
                    del self.stacks[old.id]
                else:
                    self._leave_stack(a)
        members = list(dict.fromkeys([*assets, *ordered]))
        stack = Stack(self.new_id("stack"), owner, members[0].id, [m.id for m in members])
        self.stacks[stack.id] = stack
        for m in members:
            m.stack_id = stack.id
            m.touch()
        self.changed()
        return stack

    def _leave_stack(self, a: Asset) -> None:
        stack = self.stacks.get(a.stack_id or "")
        a.stack_id = None
        a.touch()
        if stack is None:
            return
        if a.id in stack.asset_ids:
            stack.asset_ids.remove(a.id)
        if len(stack.asset_ids) < 2:
            self.delete_stack(stack)
            return
        if stack.primary_id == a.id:
            stack.primary_id = stack.asset_ids[0]
        for mid in stack.asset_ids:
            if (m := self.assets.get(mid)) is not None:
                m.touch()

    def delete_stack(self, stack: Stack) -> None:
        self.stacks.pop(stack.id, None)
        for mid in stack.asset_ids:
            m = self.assets.get(mid)
            if m is not None and m.stack_id == stack.id:
                m.stack_id = None
                m.touch()
        self.changed()

    # ------------------------------------------------------------------ misc

    def content_of(self, a: Asset) -> Content | None:
        return None if a.file_missing else a.content

    def usage(self, user: str) -> int:
        return sum(a.file_size or 0 for a in self.assets.values() if a.owner_id == user)

    def valid_zone(self, zone: str) -> bool:
        return is_iana(zone) or zone == "UTC"
