"""Plans for the review app tests, built with analysis.decide (no server needed).

A module with a unique name (not conftest) so test files can import it."""

from __future__ import annotations

import contextlib
import hashlib
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from PIL import Image, ImageDraw
from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState

from immich_dupes.analysis.decide import build_group
from immich_dupes.analysis.plan import Plan, PlanAlbum, PlanAsset, PlanSettings

USER_ID = "11111111-1111-4111-8111-111111111111"
SERVER = "http://fake-immich/api"


def uid(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(str(p) for p in parts)))


def asset(group: int, n: int, **kw: Any) -> PlanAsset:
    base: dict[str, Any] = {
        "id": uid("asset", group, n),
        "file_name": f"IMG_{group:04d}_{n}.jpg",
        "mime": "image/jpeg",
        "width": 4000 if n == 0 else 2000,
        "height": 3000 if n == 0 else 1500,
        "file_size": 5_000_000 if n == 0 else 1_200_000 + n,
        "checksum": f"sum{group}-{n}",
        "captured_at": datetime(2019, 7, 4, 16, 30, tzinfo=UTC) + timedelta(days=group),
        "time_zone": "Europe/Berlin",
        "utc_offset_minutes": 120,
    }
    base.update(kw)
    return PlanAsset(**base)


def safe_group(g: int) -> list[PlanAsset]:
    return [asset(g, 0), asset(g, 1, is_favorite=True)]


def gps_conflict_group(g: int) -> list[PlanAsset]:
    return [
        asset(g, 0, latitude=48.137, longitude=11.575, city="Munich", country="Germany"),
        asset(g, 1, latitude=52.52, longitude=13.405, city="Berlin", country="Germany",
              description="Brandenburg Gate", albums=[PlanAlbum(id=uid("album", g), name="Trip")]),
    ]


def tz_conflict_group(g: int) -> list[PlanAsset]:
    return [
        asset(g, 0, time_zone=None, utc_offset_minutes=None),
        asset(g, 1, time_zone="America/New_York", utc_offset_minutes=-240),
        asset(g, 2, time_zone="UTC+2", utc_offset_minutes=120, rating=4),
    ]


def external_group(g: int) -> list[PlanAsset]:
    return [asset(g, 0), asset(g, 1, library_id=uid("library"))]


KINDS: dict[str, Callable[[int], list[PlanAsset]]] = {
    "safe": safe_group,
    "gps": gps_conflict_group,
    "tz": tz_conflict_group,
    "external": external_group,
}


def build_plan(kinds: list[str]) -> Plan:
    settings = PlanSettings()
    groups = [build_group(uid("group", i), KINDS[k](i), settings) for i, k in enumerate(kinds)]
    plan = Plan(
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        server_url=SERVER,
        server_version="3.1.0",
        user_id=USER_ID,
        user_email="demo@example.com",
        settings=settings,
        total_groups=0,
        total_assets=0,
        needs_review_count=0,
        groups=groups,
    )
    plan.refresh_counts()
    return plan




async def settle_app(pilot: Pilot[Any]) -> None:
    """Wait until no worker is pending or running (a cancelled thumbnail worker is fine)."""
    app = pilot.app
    for _ in range(20):
        await pilot.pause()
        busy = [w for w in app.workers if w.state in (WorkerState.PENDING, WorkerState.RUNNING)]
        if not busy:
            break
        for w in busy:
            with contextlib.suppress(WorkerCancelled, WorkerFailed):
                await w.wait()
    await pilot.pause()


def _thumbnail_png(asset_id: str, size: str) -> bytes:
    """A small landscape-like picture, the same for the same asset on every run and machine."""
    seed = int(hashlib.sha1(asset_id.encode()).hexdigest()[:6], 16)
    w, h = (250, 188) if size == "thumbnail" else (960, 720)
    sky = Image.linear_gradient("L").resize((w, h)).point(lambda v: 90 + v // 3)
    img = Image.merge("RGB", (sky.point(lambda v: v // 2), sky.point(lambda v: v * 3 // 4), sky))
    draw = ImageDraw.Draw(img)
    sun = (seed % (w - 60)) + 30
    draw.ellipse((sun - h // 10, h // 8, sun + h // 10, h // 8 + h // 5), fill=(250, 230, 140))
    hill = [(0, h), (0, h * 2 // 3), (w // 3, h // 2 + seed % 20), (w * 2 // 3, h * 3 // 5), (w, h // 2), (w, h)]
    draw.polygon(hill, fill=(40 + seed % 60, 110, 60))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def picture_server() -> httpx.MockTransport:
    """Just enough of Immich for the review app: version, key, user, thumbnails."""

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/server/version":
            return httpx.Response(200, json={"major": 3, "minor": 1, "patch": 0})
        if path == "/api/api-keys/me":
            return httpx.Response(200, json={"id": uid("key"), "name": "test", "permissions": ["all"]})
        if path == "/api/users/me":
            return httpx.Response(200, json={"id": USER_ID, "email": "demo@example.com", "name": "Demo"})
        if path.startswith("/api/assets/") and path.endswith("/thumbnail"):
            asset_id = path.split("/")[3]
            size = request.url.params.get("size", "thumbnail")
            return httpx.Response(200, content=_thumbnail_png(asset_id, size),
                                  headers={"content-type": "image/png"})
        return httpx.Response(404, json={"message": "Not found", "statusCode": 404})

    return httpx.MockTransport(handle)
