"""The whole workflow on the sample library: analyze → accept all → execute → verify → restore (twice)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from immich_dupes.analysis.decide import accept, set_source
from immich_dupes.analysis.plan import Action, load_plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.restore import restore
from immich_dupes.engine.verify import verify
from immich_dupes.fake import FakeImmich
from immich_dupes.immich.client import ImmichClient

READ_ONLY_POSTS = {"/api/assets/bulk-upload-check", "/api/search/metadata"}


def snapshot(fake: FakeImmich, asset_id: str) -> dict[str, Any]:
    """What a person would miss if restore lost it."""
    a = fake.asset(asset_id)
    e = a.get("exifInfo") or {}
    return {
        "favorite": a["isFavorite"],
        "rating": e.get("rating") or None,
        "description": e.get("description") or "",
        "visibility": a["visibility"],
        "tags": sorted(t["id"] for t in a.get("tags") or []),
        "albums": sorted(al["id"] for al in fake.albums if asset_id in al["assetIds"]),
        "gps": (e.get("latitude"), e.get("longitude")),
        "taken": datetime.fromisoformat(e["dateTimeOriginal"]) if e.get("dateTimeOriginal") else None,
        "checksum": a["checksum"],
        "live": a.get("livePhotoVideoId") is not None,
    }


@pytest.mark.parametrize("force", [False, True], ids=["trash", "force"])
@pytest.mark.parametrize("profile", ["v1", "v2", "v3"])
async def test_sample_round_trip(profile: str, force: bool, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    backup = tmp_path / "backup"
    async with ImmichClient(
        "http://fake-immich", fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8
    ) as c:
        plan = await analyze(c)
        plan.groups = [accept(g) for g in plan.groups]
        # Immich cannot hold a -03:30 offset (verify reports it; see test_engine_verify): the
        # reviewer keeps the winner's own date for that group so the run can verify clean.
        plan.groups = [
            set_source(g, "datetime", None) if g.winner_asset.file_name == "s20_large_nooffset.jpg" else g
            for g in plan.groups
        ]
        save_plan(plan, tmp_path / "plan.json")
        plan = load_plan(tmp_path / "plan.json")
        losers = [i for g in plan.groups if g.action is Action.RESOLVE for i in g.losers]
        before = {i: snapshot(fake, i) for i in losers}

        ex = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=force))
        assert ex.failed == 0
        fake.run_jobs()  # Immich's background jobs (sidecar, re-extraction, purge)

        rep = await verify(c, plan, backup_dir=backup)
        assert rep.anomalies == [], [f.message for f in rep.anomalies]
        assert rep.groups_ok == rep.groups_checked - 1  # the external-library group, skipped
        removed = [i for i in losers if (await c.asset_or_none(i)) is None or fake.asset(i)["isTrashed"]]
        assert len(removed) == len(losers) - 1

        first = await restore(c, backup)
        assert first.failed == 0
        fake.run_jobs()
        n = len(fake.request_log)
        second = await restore(c, backup)
        second_log = fake.request_log[n:]

    now_at = {a.asset_id: a.new_asset_id or a.asset_id for a in first.actions}
    for old in losers:
        current = now_at.get(old, old)  # the external loser was never touched
        assert fake.asset(current)["isTrashed"] is False
        after = snapshot(fake, current)
        assert after == before[old], old
        if force and old in removed:
            assert current != old
        else:
            assert current == old
    assert {a.action for a in second.actions} == {"already_present"}
    assert [
        (r.method, r.path) for r in second_log
        if r.method != "GET" and r.path not in READ_ONLY_POSTS
    ] == []
