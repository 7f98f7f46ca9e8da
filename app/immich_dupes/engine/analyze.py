"""Analyze: fetch every duplicate group, choose winners, flag conflicts, build the plan."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from immich_dupes import __version__
from immich_dupes.analysis.decide import AssetDataError, build_group, plan_assets
from immich_dupes.analysis.plan import (
    GroupPlan,
    Plan,
    PlanAlbum,
    PlanAsset,
    PlanSettings,
    first_problem,
    many_new_objects,
)
from immich_dupes.engine.events import Event, Reporter, ignore
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import ImmichError

ANALYZE_PERMISSIONS = ("duplicate.read", "user.read", "album.read", "asset.read")
NAMED_SKIPS = 20
"""Groups left out of a plan that are named one by one; the rest are counted."""


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
    """Build a plan for every group on the server (the client must be connected).

    A group the plan cannot hold (see ``decide.plan_assets``; a group id that is no UUID; an
    asset in two groups) is left out: a warning event names it (the first ``NAMED_SKIPS``),
    and the last event's ``data["skipped"]`` counts them all. An answer that is not a list of
    groups raises ImmichError.
    """
    settings = settings or PlanSettings()
    info = client.info
    if info is None:
        info = await client.connect(ANALYZE_PERMISSIONS)
    # Album lookups run while the (large) duplicates list downloads: under the rate limit
    # they would otherwise add their whole duration to the analysis.
    albums_task = asyncio.create_task(album_membership(client, report))
    pending: list[tuple[str, list[PlanAsset], list[str]]] = []
    received = 0
    skipped = 0

    def progress(done_bytes: int, total: int | None) -> None:
        report(Event("download", f"{received} groups", bytes_done=done_bytes, bytes_total=total))

    def skip(group_id: str, why: str) -> None:
        nonlocal skipped
        skipped += 1
        if skipped <= NAMED_SKIPS:
            shown = group_id[:64]
            report(Event("analyze", f"group {shown} left out of the plan: {why}", group_id=shown, level="warning"))
        elif skipped == NAMED_SKIPS + 1:
            report(Event("analyze", f"more groups left out of the plan (only the first {NAMED_SKIPS} are named)",
                         level="warning"))

    # Tens of thousands of small models are built here and all stay alive, without cycles.
    try:
        with many_new_objects():
            # The groups as JSON, straight into the plan's records: no typed Asset in between.
            async for g in client.iter_duplicates_raw(progress):
                group_id, raw_assets, suggested = _group_parts(g)
                if len(raw_assets) < 2:
                    continue
                received += 1
                try:
                    pending.append((group_id, plan_assets(raw_assets), suggested))
                except AssetDataError as e:
                    skip(group_id, str(e))
            membership = await albums_task
            groups: list[GroupPlan] = []
            # Immich gives an asset one duplicateId, and a plan relies on it: groups that share
            # an id (their own or an asset's) are all left out, whatever the order they came in.
            counts = Counter(x for gid, assets, _ in pending for x in {gid, *(a.id for a in assets)})
            for n, (duplicate_id, assets, suggested) in enumerate(pending):
                if n % 1000 == 0:  # seconds at 80,000 groups: say so, not a frozen download line
                    report(Event("analyze", "choosing winners", done=n, total=len(pending)))
                shared = sorted(x for x in {duplicate_id, *(a.id for a in assets)} if counts[x] > 1)
                if shared:
                    skip(duplicate_id, f"it shares the id {shared[0]} with another group")
                    continue
                for a in assets:
                    found = membership.get(a.id)
                    if found:
                        a.albums = found
                try:
                    groups.append(build_group(duplicate_id, assets, settings, suggested))
                except ValidationError as e:  # e.g. a duplicateId that is no UUID
                    skip(duplicate_id, first_problem(e))
                except (ValueError, OverflowError) as e:  # e.g. a date at the edge of the calendar
                    skip(duplicate_id, str(e) or type(e).__name__)
            pending.clear()
    finally:
        if not albums_task.done():
            albums_task.cancel()
    report(
        Event(
            "analyze", f"{len(groups)} groups", done=len(groups), total=len(groups), data={"skipped": skipped}
        )
    )

    return Plan.of_groups(
        groups,
        tool_version=__version__,
        created_at=datetime.now(UTC),
        server_url=client.base_url,
        server_version=str(info.version),
        user_id=info.user.id,
        user_email=info.user.email,
        settings=settings,
    )


def _group_parts(g: dict[str, Any]) -> tuple[str, list[dict[str, Any]], list[str]]:
    """A ``DuplicateResponseDto``'s id, assets (JSON objects) and suggestion; ImmichError if
    it is not one (the whole answer is then not what Immich sends)."""
    group_id = g.get("duplicateId")
    assets = g.get("assets")
    suggested = g.get("suggestedKeepAssetIds") or []  # absent before 2.7
    if (
        not isinstance(group_id, str)
        or not isinstance(assets, list)
        or not all(isinstance(a, dict) for a in assets)
        or not isinstance(suggested, list)
    ):
        raise ImmichError("the duplicates list holds an entry that is not a duplicate group", path="/duplicates")
    return group_id, assets, [s for s in suggested if isinstance(s, str)]

