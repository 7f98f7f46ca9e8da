"""Analyze: fetch every duplicate group, choose winners, flag conflicts, build the plan."""

from __future__ import annotations

import asyncio
import gc
from collections import defaultdict
from datetime import UTC, datetime

from immich_dupes import __version__
from immich_dupes.analysis.decide import build_group, plan_asset
from immich_dupes.analysis.plan import GroupPlan, Plan, PlanAlbum, PlanAsset, PlanSettings
from immich_dupes.engine.events import Event, Reporter, ignore
from immich_dupes.immich.client import ImmichClient

ANALYZE_PERMISSIONS = ("duplicate.read", "user.read", "album.read", "asset.read")


async def album_membership(client: ImmichClient, report: Reporter = ignore) -> dict[str, list[PlanAlbum]]:
    """asset id → the albums it is in, from one listing per album (not one request per asset)."""
    albums = await client.albums()
    report(Event("albums", f"{len(albums)} albums", done=0, total=len(albums)))
    out: dict[str, list[PlanAlbum]] = defaultdict(list)
    done = 0

    async def one(album_id: str, name: str) -> None:
        nonlocal done
        for asset_id in await client.album_asset_ids(album_id):
            out[asset_id].append(PlanAlbum(id=album_id, name=name[:4096]))
        done += 1
        report(Event("albums", "", done=done, total=len(albums)))

    await asyncio.gather(*(one(a.id, a.albumName) for a in albums))
    return dict(out)


async def analyze(
    client: ImmichClient,
    settings: PlanSettings | None = None,
    report: Reporter = ignore,
) -> Plan:
    """Build a plan for every group on the server (the client must be connected)."""
    settings = settings or PlanSettings()
    info = client.info
    if info is None:
        info = await client.connect(ANALYZE_PERMISSIONS)
    # Album lookups run while the (large) duplicates list downloads: under the rate limit
    # they would otherwise add their whole duration to the analysis.
    albums_task = asyncio.create_task(album_membership(client, report))
    pending: list[tuple[str, list[PlanAsset], list[str]]] = []
    received = 0

    def progress(done_bytes: int, total: int | None) -> None:
        report(Event("download", "", bytes_done=done_bytes, bytes_total=total, done=received))

    # Tens of thousands of small models are built here and all stay alive: the cyclic
    # collector would walk every one of them again and again (it doubled the run time and
    # memory at 20,000 groups). They hold no reference cycles, so pause it for this phase.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        async for g in client.iter_duplicates(progress):
            if len(g.assets) < 2:
                continue
            received += 1
            pending.append((g.duplicateId, [plan_asset(a) for a in g.assets], g.suggestedKeepAssetIds))
        membership = await albums_task
        groups: list[GroupPlan] = []
        for duplicate_id, assets, suggested in pending:
            for a in assets:
                found = membership.get(a.id)
                if found:
                    a.albums = found
            groups.append(build_group(duplicate_id, assets, settings, suggested))
        pending.clear()
    finally:
        if not albums_task.done():
            albums_task.cancel()
        if gc_was_enabled:
            gc.enable()
    report(Event("analyze", f"{len(groups)} groups", done=len(groups), total=len(groups)))

    plan = Plan(
        tool_version=__version__,
        created_at=datetime.now(UTC),
        server_url=client.base_url,
        server_version=str(info.version),
        user_id=info.user.id,
        user_email=info.user.email,
        settings=settings,
        total_groups=0,
        total_assets=0,
        needs_review_count=0,
        groups=groups,
    )
    plan.refresh_counts()
    return plan
