"""``FakeImmich``: one fake Immich server (state, jobs, faults, request log) for any transport."""

from __future__ import annotations

import json
import math
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from immich_dupes.fake import library as libs
from immich_dupes.fake._time import parse_client_datetime
from immich_dupes.fake.api import correlation_id, dispatch, error_response
from immich_dupes.fake.faults import FaultDecision, Faults
from immich_dupes.fake.http import ApiRequest, ApiResponse
from immich_dupes.fake.profiles import Profile, get_profile
from immich_dupes.fake.store import Store

if TYPE_CHECKING:
    import httpx

NAMESPACE = "immich-dupes-fake"
_CREATED = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
_COLORS = ("blue", "green", "purple", "orange", "pink", "red", "yellow", "amber")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One answered (or dropped) request, as seen by the fake."""

    t_start: float  # time.monotonic()
    t_end: float
    method: str
    path: str
    query: str
    status: int  # 0 when no response was sent (server down)
    user_id: str | None
    body_bytes_in: int
    body_bytes_out: int
    fault: str | None = None  # injected fault, if any


class FakeImmich:
    """A fake Immich server that behaves like the recorded 3.1 server (or a v1.144 / v2.7 one).

    ``library``: ``"sample"`` (pictures with real EXIF, every analysis case), ``"synthetic:N"``
    (N duplicate groups, for benchmarks) or ``"empty"``. ``profile``: ``"v1"`` (1.144),
    ``"v2"`` (2.7) or ``"v3"`` (3.1). ``original_size`` sets the approximate size in bytes of
    synthetic originals. ``cache_responses=False`` builds every JSON answer anew, as a real
    server does, instead of keeping serialized answers until the next change (so a benchmark
    of ``GET /duplicates`` pays the server's work). All state access is serialized by one lock; every accessor is safe to
    call from tests while a server thread is answering requests.
    """

    def __init__(
        self,
        library: str = "sample",
        profile: str = "v3",
        *,
        original_size: int | None = None,
        jobs_mode: Literal["auto", "manual"] = "auto",
        faults: Faults | str | None = None,
        cache_responses: bool = True,
    ) -> None:
        self.profile: str = profile  # "v1" | "v2" | "v3"
        self.profile_info: Profile = get_profile(profile)
        self.library = library
        self.original_size = original_size
        self._lock = threading.RLock()
        self._meta = threading.Lock()
        self._store = Store(self.profile_info, NAMESPACE)
        self._store.cache_serialized = cache_responses
        admin = self._store.add_user(
            "Admin", "admin@example.com", is_admin=True, color="gray", created=_CREATED
        )
        self.user_id: str = admin.id
        self.api_key: str = self._store.add_key(
            admin.id, ["all"], "immich-dupes fake (admin)"
        ).secret
        self.jobs_mode: Literal["auto", "manual"] = jobs_mode
        self.request_log: list[RequestRecord] = []
        self.errors: list[str] = []  # tracebacks of unexpected exceptions (answered with 500)
        self._faults = faults if isinstance(faults, Faults) else Faults.parse(faults)
        self._down_started: float | None = None
        self._counts: dict[str, int] = {}
        self._seq = 0
        self._populate(self.user_id, library)

    def _populate(self, owner: str, library: str) -> None:
        if library == "empty":
            return
        if library == "sample":
            libs.build_sample(self._store, owner, NAMESPACE)
            return
        if library.startswith("synthetic:"):
            try:
                n = int(library.split(":", 1)[1])
            except ValueError:
                raise ValueError(
                    f"library {library!r}: expected synthetic:<number of groups>"
                ) from None
            libs.build_synthetic(self._store, owner, NAMESPACE, n, self.original_size)
            return
        raise ValueError(f"unknown library {library!r}: expected sample, synthetic:N or empty")

    # ------------------------------------------------------------------ users and keys

    def add_user(self, name: str = "user2", *, library: str = "empty") -> tuple[str, str]:
        """A second (non-admin) user with an all-permission key; ``library`` fills their assets."""
        with self._lock:
            n = len(self._store.users)
            email = f"{name.lower().replace(' ', '.')}@example.com"
            user = self._store.add_user(
                name, email, is_admin=False, color=_COLORS[n % len(_COLORS)], created=_CREATED
            )
            key = self._store.add_key(user.id, ["all"], f"immich-dupes fake ({name})")
            self._populate(user.id, library)
            return user.id, key.secret

    def add_api_key(
        self, user_id: str, permissions: list[str] | None = None, name: str = "limited"
    ) -> str:
        """A key of ``user_id`` with only ``permissions`` (default ``["asset.read"]``)."""
        with self._lock:
            return self._store.add_key(user_id, list(permissions or ["asset.read"]), name).secret

    # ------------------------------------------------------------------ transports

    def transport(self) -> httpx.AsyncBaseTransport:
        """In-process async transport; use with ``base_url="http://fake-immich"``."""
        from immich_dupes.fake.transport import FakeAsyncTransport

        return FakeAsyncTransport(self)

    def sync_transport(self) -> httpx.BaseTransport:
        from immich_dupes.fake.transport import FakeSyncTransport

        return FakeSyncTransport(self)

    # ------------------------------------------------------------------ faults and jobs

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults | str | None) -> None:
        with self._meta:
            self._faults = value if isinstance(value, Faults) else Faults.parse(value)
            self._down_started = None
            self._counts.clear()

    def run_jobs(self) -> int:
        """Run the queued background jobs (sidecar write + re-extraction, purges) now."""
        with self._lock:
            return self._store.run_jobs()

    def warm(self) -> None:
        """Serialize every user's duplicate listing now (benchmarks: keep it out of the timing)."""
        with self._lock:
            for uid in list(self._store.users):
                self._store.duplicates_json(uid)

    @property
    def pending_jobs(self) -> int:
        with self._lock:
            return len(self._store.jobs)

    # ------------------------------------------------------------------ the exchange (transports)

    def _decide(self, method: str, path: str) -> FaultDecision:
        faults = self._faults
        if not faults.active:
            return FaultDecision()
        with self._meta:
            key = f"{method} {path}"
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
            if faults.down_for:
                now = time.monotonic()
                if self._down_started is None:
                    self._down_started = now
                if now < self._down_started + faults.down_for:
                    return FaultDecision(down=True)
        return faults.decide(method, path, n)

    def _correlation(self) -> str:
        with self._meta:
            self._seq += 1
            return correlation_id(self._seq)

    def _respond(self, req: ApiRequest, decision: FaultDecision) -> tuple[ApiResponse, str | None]:
        """Answer ``req`` (an injected status skips processing). The body may still be lazy."""
        cid = self._correlation()
        if decision.status is not None:
            status = decision.status
            message = {
                429: "Too Many Requests",
                502: "Bad Gateway",
                503: "Service Unavailable",
            }.get(status, "Internal server error")
            resp = error_response(self.profile_info, status, message, cid)
            resp.headers.append(("X-Correlation-ID", cid))
            if decision.retry_after is not None:
                resp.headers.append(("Retry-After", str(max(0, math.ceil(decision.retry_after)))))
            return resp, None
        faults = self._faults
        path = req.path

        def corrupt(asset_id: str) -> bool:
            return faults.corrupts(asset_id, path)

        with self._lock:
            try:
                if self.jobs_mode == "auto" and self._store.jobs:
                    self._store.run_jobs()
                return dispatch(self._store, req, cid, corrupt)
            except Exception:  # a bug in the fake: answer like Immich does, keep the traceback
                self.errors.append(traceback.format_exc())
                resp = error_response(self.profile_info, 500, "Internal server error", cid)
                resp.headers.append(("X-Correlation-ID", cid))
                return resp, None

    def _record(
        self,
        req: ApiRequest,
        t0: float,
        status: int,
        user_id: str | None,
        bytes_out: int,
        fault: str | None,
    ) -> None:
        """Log one request that was handled (or refused: status 0) since ``t0``, ending now."""
        rec = RequestRecord(
            t0, time.monotonic(), req.method, req.path, req.query, status, user_id,
            len(req.body), bytes_out, fault,
        )
        with self._meta:
            self.request_log.append(rec)

    # ------------------------------------------------------------------ accessors for tests

    def asset(self, asset_id: str) -> dict[str, Any]:
        """The asset as ``GET /assets/{id}`` would answer it (KeyError once purged)."""
        with self._lock:
            a = self._store.assets[asset_id]
            return json.loads(self._store.asset_bytes(a, "full"))  # type: ignore[no-any-return]

    def file_bytes(self, asset_id: str) -> bytes:
        """The original's exact bytes (no fault applied)."""
        with self._lock:
            content = self._store.assets[asset_id].content
            if content is None:
                raise KeyError(asset_id)
        return content.data()

    def asset_ids(self, user_id: str | None = None) -> list[str]:
        """Ids of every asset of ``user_id`` (default: the admin), trashed ones included."""
        uid = user_id or self.user_id
        with self._lock:
            return [a.id for a in self._store.assets.values() if a.owner_id == uid]

    def find_asset(self, file_name: str, user_id: str | None = None) -> str:
        """The id of the asset called ``file_name`` (sample library names like ``s01_small_gps.jpg``)."""
        uid = user_id or self.user_id
        with self._lock:
            for a in self._store.assets.values():
                if a.file_name == file_name and a.owner_id == uid:
                    return a.id
        raise KeyError(file_name)

    @property
    def albums(self) -> list[dict[str, Any]]:
        """Every album: ``{id, albumName, ownerId, assetIds}``."""
        with self._lock:
            return [
                {
                    "id": al.id,
                    "albumName": al.name,
                    "ownerId": al.owner_id,
                    "assetIds": list(al.asset_ids),
                }
                for al in self._store.albums.values()
            ]

    @property
    def tags(self) -> list[dict[str, Any]]:
        """Every tag: ``{id, value, name, parentId, ownerId, assetIds}``."""
        with self._lock:
            out = []
            for t in self._store.tags.values():
                members = [a.id for a in self._store.assets.values() if t.id in a.tag_ids]
                out.append(
                    {
                        "id": t.id,
                        "value": t.value,
                        "name": t.name,
                        "parentId": t.parent_id,
                        "ownerId": t.owner_id,
                        "assetIds": members,
                    }
                )
            return out

    def state(self) -> dict[str, Any]:
        """The admin's library as a plain comparable value, after the background jobs: per
        asset (trashed ones too) the fields execute and restore change, and each album's
        members. Two runs that should end alike compare equal on it."""
        self.run_jobs()
        assets: dict[str, Any] = {}
        for i in sorted(self.asset_ids()):
            a = self.asset(i)
            e = a.get("exifInfo") or {}
            assets[i] = {
                **{k: a.get(k) for k in ("isTrashed", "isFavorite", "visibility", "livePhotoVideoId",
                                         "duplicateId", "checksum")},
                **{k: e.get(k) for k in ("latitude", "longitude", "dateTimeOriginal", "timeZone",
                                         "description", "rating")},
                "tags": sorted(t["id"] for t in a.get("tags") or []),
                "stack": (a.get("stack") or {}).get("primaryAssetId"),
            }
        albums = {al["id"]: sorted(al["assetIds"]) for al in self.albums}
        return {"assets": assets, "albums": albums}

    def groups(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """The duplicate groups ``GET /duplicates`` would list now (without its side effects)."""
        uid = user_id or self.user_id
        with self._lock:
            store = self._store
            out: list[dict[str, Any]] = []
            for dup, members in store.duplicate_groups(uid):
                group: dict[str, Any] = {
                    "duplicateId": dup,
                    "assets": [store.asset_dict(a, "dup") for a in members],
                }
                if self.profile_info.suggested_keep:
                    group["suggestedKeepAssetIds"] = store.suggest(members)
                out.append(group)
            return out

    def trash_asset(self, asset_id: str) -> None:
        """Trash an asset as if someone else did (web UI)."""
        with self._lock:
            self._store.delete_assets([self._store.assets[asset_id]], force=False)

    def update_asset_metadata(self, asset_id: str, **fields: Any) -> None:
        """Change an asset as if someone else did, jobs included.

        Fields use the API names: description, latitude, longitude, dateTimeOriginal (ISO text),
        isFavorite, rating, visibility, timeZone, duplicateId, livePhotoVideoId.
        """
        with self._lock:
            a = self._store.assets[asset_id]
            f = dict(fields)
            if "dateTimeOriginal" in f:
                f["dateTimeOriginal"] = parse_client_datetime(str(f["dateTimeOriginal"]))
            self._store.update_asset(a, f)
            self._store.jobs = [
                j for j in self._store.jobs if j.asset_id != asset_id or j.kind != "sidecar"
            ]
            self._store.extract(a)

    def purge(self, asset_id: str) -> None:
        """Force-delete and purge an asset now (``GET`` then answers 400)."""
        with self._lock:
            a = self._store.assets[asset_id]
            a.status = "deleted"
            self._store.purge(a)

    def remove_file(self, asset_id: str) -> None:
        """Lose the original on disk: downloads answer 404 ``Asset media not found``."""
        with self._lock:
            self._store.assets[asset_id].file_missing = True
