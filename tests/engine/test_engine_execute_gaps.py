"""Execute review gaps: edits made after the plan, concurrent runs, refused DELETEs, mixed modes,
missing manifests, and live-photo videos the server refuses for another reason than "gone"."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from immich_dupes.analysis.plan import GroupPlan, Plan
from immich_dupes.engine.backup import BackupStore, lock_backup_dir
from immich_dupes.engine.execute import (
    ExecuteOptions,
    ExecuteRefused,
    ExecuteReport,
    _header,
    execute,
    load_states,
    mode_conflict,
    preflight,
)
from immich_dupes.engine.journal import read_entries
from immich_dupes.fake import FakeImmich
from immich_dupes.fake.api import error_response
from immich_dupes.fake.http import ApiRequest

ClientFactory = Callable[..., Any]
MakePlan = Callable[..., Awaitable[Plan]]
OnRequest = Callable[[FakeImmich, Callable[[ApiRequest], None]], None]


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


def outcome(rep: ExecuteReport, gid: str) -> Any:
    return next(o for o in rep.outcomes if o.duplicate_id == gid)


def deletes(fake: FakeImmich, since: int = 0) -> list[Any]:
    return [r for r in fake.request_log[since:] if r.method == "DELETE" and r.path == "/api/assets"]


def refuse(fake: FakeImmich, when: Callable[[ApiRequest], int | None], message: str) -> None:
    """Answer the requests ``when`` picks with that status and message, unprocessed."""
    original = fake._respond

    def wrapped(req: ApiRequest, decision: Any) -> Any:
        status = when(req)
        if status is not None:
            return error_response(fake.profile_info, status, message, "test-correlation"), None
        return original(req, decision)

    fake._respond = wrapped  # type: ignore[method-assign]


def unrefuse(fake: FakeImmich) -> None:
    fake.__dict__.pop("_respond", None)


async def run(client: Any, plan: Plan, backup: Path, **kw: Any) -> ExecuteReport:
    return await execute(client, plan, ExecuteOptions(backup_dir=backup, **kw))


def journal(backup: Path) -> list[dict[str, Any]]:
    return list(read_entries(backup / "journal.jsonl"))


# --------------------------------------------------------------------------- 1. edits since the plan


async def test_winner_own_values_edited_since_the_plan_are_not_reverted(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    rome = group_of(plan, "s19_large_rome.jpg")  # the winner supplies its own GPS
    sunset = group_of(plan, "s16_large_sunset.jpg")  # ... its own description
    timeline = group_of(plan, "s13_large_timeline.jpg")  # ... its own date
    assert rome.sources.gps == rome.winner
    assert rome.consolidated.latitude is not None
    assert sunset.sources.description == sunset.winner
    assert sunset.consolidated.description
    assert timeline.sources.datetime == timeline.winner
    # A person corrects each winner in Immich after analyze.
    fake.update_asset_metadata(rome.winner, latitude=41.5, longitude=12.25)
    fake.update_asset_metadata(sunset.winner, description="Corrected caption")
    fake.update_asset_metadata(timeline.winner, dateTimeOriginal="2001-02-03T04:05:06+00:00", timeZone="UTC")

    rep = await run(fake_client(fake), plan, tmp_path / "b")
    for g in (rome, sunset, timeline):
        assert outcome(rep, g.duplicate_id).status == "done"
        assert all(fake.asset(i)["isTrashed"] for i in g.losers)
    exif = fake.asset(rome.winner)["exifInfo"]
    assert (exif["latitude"], exif["longitude"]) == (41.5, 12.25)
    assert fake.asset(sunset.winner)["exifInfo"]["description"] == "Corrected caption"
    assert fake.asset(timeline.winner)["exifInfo"]["dateTimeOriginal"].startswith("2001-02-03T04:05:06")
    for g in (rome, sunset, timeline):
        assert not any(c.startswith(("GPS", "date", "description")) for c in outcome(rep, g.duplicate_id).changes)


async def test_a_carried_field_is_kept_when_the_winner_was_edited_since_the_plan(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    gps = group_of(plan, "s01_large_nogps.jpg")  # GPS comes from the loser
    desc = group_of(plan, "s04_large_nodesc.jpg")  # description comes from the loser
    date = group_of(plan, "s20_large_nooffset.jpg")  # date comes from the loser
    control = group_of(plan, "s12_large_plain.jpg")  # GPS from the loser, winner untouched
    assert gps.sources.gps in gps.losers
    assert desc.sources.description in desc.losers
    assert date.sources.datetime in date.losers
    assert date.consolidated.date_time_original
    before_date = fake.asset(date.winner)["exifInfo"]["dateTimeOriginal"]
    fake.update_asset_metadata(gps.winner, latitude=-33.5, longitude=151.25)
    fake.update_asset_metadata(desc.winner, description="Typed in Immich")
    fake.update_asset_metadata(date.winner, dateTimeOriginal="2003-03-03T03:03:03+00:00", timeZone="UTC")
    assert fake.asset(date.winner)["exifInfo"]["dateTimeOriginal"] != before_date

    rep = await run(fake_client(fake), plan, tmp_path / "b")
    exif = fake.asset(gps.winner)["exifInfo"]
    assert (exif["latitude"], exif["longitude"]) == (-33.5, 151.25)
    assert "winner's GPS was edited since the plan; kept it" in outcome(rep, gps.duplicate_id).changes
    assert fake.asset(desc.winner)["exifInfo"]["description"] == "Typed in Immich"
    assert "winner's description was edited since the plan; kept it" in outcome(rep, desc.duplicate_id).changes
    assert fake.asset(date.winner)["exifInfo"]["dateTimeOriginal"].startswith("2003-03-03T03:03:03")
    assert "winner's date was edited since the plan; kept it" in outcome(rep, date.duplicate_id).changes
    # Untouched winners still get what the plan carries.
    c = control.consolidated
    exif = fake.asset(control.winner)["exifInfo"]
    assert c.latitude is not None
    assert exif["latitude"] == pytest.approx(c.latitude)
    for g in (gps, desc, date, control):
        assert outcome(rep, g.duplicate_id).status == "done"


# --------------------------------------------------------------------------- 2. one run per directory


async def test_a_locked_backup_dir_is_refused_with_nothing_sent(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    backup = tmp_path / "b"
    backup.mkdir()
    client = fake_client(fake)
    await client.connect()
    n = len(fake.request_log)
    busy = "another execute or restore is using this backup directory"
    with lock_backup_dir(backup), pytest.raises(ExecuteRefused, match=busy):
        await run(client, plan, backup)
    assert not [r for r in fake.request_log[n:] if r.method not in ("GET", "POST")]
    assert not (backup / "journal.jsonl").exists()
    assert not (backup / "immich-dupes-backup.json").exists()  # the lock comes before the header
    # Released with the block: the run goes through now.
    rep = await run(client, plan, backup)
    assert rep.failed == 0
    assert rep.done > 0


async def test_the_lock_is_held_for_the_whole_run(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    backup = tmp_path / "b"
    tried: list[bool] = []

    def hook(req: ApiRequest) -> None:
        if req.method == "DELETE" and req.path == "/api/assets":
            try:
                with lock_backup_dir(backup):
                    tried.append(False)
            except Exception:
                tried.append(True)

    on_request(fake, hook)
    rep = await run(fake_client(fake), plan, backup)
    assert rep.failed == 0
    assert tried
    assert all(tried)


async def test_part_files_are_unique_per_run_and_stale_ones_are_removed(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    loser = g.losers[0]
    backup = tmp_path / "b"
    BackupStore.open_or_create(backup, _header(plan))  # as an earlier, killed run left it
    gdir = backup / "groups" / g.duplicate_id
    gdir.mkdir()
    name = f"{loser}-{g.asset(loser).file_name}"
    (gdir / f"{name}.part").write_bytes(b"left by an old run")
    (gdir / f"{name}.999999-deadbeef.part").write_bytes(b"left by a killed run")
    client = fake_client(fake)
    parts: list[Path] = []
    original = client.download_original

    async def recording(asset_id: str, dest: Path, **kw: Any) -> Any:
        parts.append(dest)
        return await original(asset_id, dest, **kw)

    client.download_original = recording
    rep = await run(client, plan, backup)
    assert outcome(rep, g.duplicate_id).status == "done"
    assert parts
    pattern = re.compile(rf".*\.{os.getpid()}-[0-9a-f]{{8}}\.part$")
    assert all(pattern.match(p.name) for p in parts), [p.name for p in parts]
    assert len({p.name for p in parts}) == len(parts)
    assert not list(backup.rglob("*.part"))
    assert (gdir / name).read_bytes() == fake.file_bytes(loser)


@pytest.mark.parametrize("which", ["still", "video"])
async def test_a_backup_changed_on_disk_before_the_delete_is_not_trashed(
    which: str, tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s15_plain_copy.jpg")  # its loser is a live photo
    loser = g.losers[0]
    vid = g.asset(loser).live_photo_video_id
    assert vid
    target = loser if which == "still" else vid
    backup = tmp_path / "b"
    flipped: list[Path] = []
    deleted: list[list[str]] = []

    def hook(req: ApiRequest) -> None:
        if req.method == "DELETE" and req.path == "/api/assets":
            deleted.append(json.loads(req.body)["ids"])
        # Consolidation runs after the backups, before the DELETE: damage one file, same size.
        if req.method == "PUT" and req.path == f"/api/assets/{g.winner}" and not flipped:
            p = next((backup / "groups" / g.duplicate_id).glob(f"{target}-*"))
            data = bytearray(p.read_bytes())
            data[len(data) // 2] ^= 0xFF
            p.write_bytes(bytes(data))
            flipped.append(p)

    on_request(fake, hook)
    rep = await run(fake_client(fake), plan, backup)
    assert flipped
    o = outcome(rep, g.duplicate_id)
    assert o.status == "failed"
    assert "changed on disk" in o.reason
    assert fake.asset(loser)["isTrashed"] is False
    assert all(loser not in ids for ids in deleted)
    # A rerun takes the backup again and finishes the group.
    rep2 = await run(fake_client(fake), plan, backup)
    assert outcome(rep2, g.duplicate_id).status == "done"
    assert flipped[0].read_bytes() == fake.file_bytes(target)


# --------------------------------------------------------------------------- 3. refused DELETE


async def test_a_delete_the_server_refused_is_not_resent_when_the_group_changed(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    plan.groups = [g]
    loser = g.losers[0]
    backup = tmp_path / "b"
    refuse(fake, lambda r: 400 if r.method == "DELETE" and r.path == "/api/assets" else None,
           "Validation failed")
    rep = await run(fake_client(fake), plan, backup)
    assert outcome(rep, g.duplicate_id).status == "failed"
    assert fake.asset(loser)["isTrashed"] is False
    kinds = [e["kind"] for e in journal(backup)]
    assert "trash_failed" in kinds
    assert loser not in load_states(journal(backup))[g.duplicate_id].trash_sent
    unrefuse(fake)
    # Meanwhile a person takes the loser out of the group in Immich.
    fake.update_asset_metadata(loser, duplicateId=None)
    n = len(fake.request_log)
    rep2 = await run(fake_client(fake), plan, backup)
    o = outcome(rep2, g.duplicate_id)
    assert o.status == "skipped"
    assert "changed" in o.reason
    assert not deletes(fake, n)
    assert fake.asset(loser)["isTrashed"] is False


def test_load_states_trash_failed_clears_only_the_refused_ids() -> None:
    entries: list[dict[str, Any]] = [
        {"kind": "trash_sent", "ids": ["a", "b", "c"], "groups": {"g1": ["a", "b"], "g2": ["c"]}},
        {"kind": "trash_failed", "ids": ["a", "b"], "groups": {"g1": ["a", "b"]}, "status": 400},
        {"kind": "trash_sent", "ids": ["b"], "groups": {"g1": ["b"]}},
    ]
    states = load_states(entries)
    assert states["g1"].trash_sent == {"b"}
    assert states["g2"].trash_sent == {"c"}


async def test_a_lost_answer_keeps_the_delete_maybe_sent(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    plan.groups = [g]
    backup = tmp_path / "b"
    client = fake_client(fake)
    from immich_dupes.immich.errors import ConnectionFailed

    async def lost(ids: Any, force: bool = False) -> None:
        raise ConnectionFailed("connection reset", method="DELETE", path="/assets")

    client.delete_assets = lost
    rep = await run(client, plan, backup)
    assert outcome(rep, g.duplicate_id).status == "failed"
    assert "trash_failed" not in [e["kind"] for e in journal(backup)]
    assert set(g.losers) <= load_states(journal(backup))[g.duplicate_id].trash_sent


# --------------------------------------------------------------------------- 4. one mode per backup


@pytest.mark.parametrize("first_force", [False, True])
async def test_resuming_in_the_other_mode_is_refused(
    first_force: bool, tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    backup = tmp_path / "b"
    client = fake_client(fake)
    cancel = asyncio.Event()
    seen = 0

    def stop_after_first_trash(ev: Any) -> None:
        nonlocal seen
        if ev.phase == "trash" and (ev.data or {}).get("journaled") == "trashed":
            seen += 1
            cancel.set()

    opts = ExecuteOptions(backup_dir=backup, force=first_force, batch_size=3)
    await execute(client, plan, opts, stop_after_first_trash, cancel)
    assert seen
    expected = "started in trash mode; resume without --force" if not first_force else "started with --force"
    n = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match=re.escape(expected)):
        await run(client, plan, backup, force=not first_force)
    with pytest.raises(ExecuteRefused, match=re.escape(expected)):
        preflight(plan, ExecuteOptions(backup_dir=backup, force=not first_force, dry_run=True))
    assert not deletes(fake, n)
    # The same mode resumes and finishes.
    rep = await run(client, plan, backup, force=first_force)
    assert rep.failed == 0
    modes = {m.mode for m in BackupStore.open_existing(backup).manifests()}
    assert modes == {"force" if first_force else "trash"}


def test_mode_conflict_needs_something_committed() -> None:
    nothing: list[dict[str, Any]] = [{"kind": "run", "force": False}, {"kind": "backed_up", "group": "g"}]
    assert mode_conflict(nothing, True) is None
    manifest: list[dict[str, Any]] = [{"kind": "run", "force": True}, {"kind": "manifest", "group": "g"}]
    assert mode_conflict(manifest, False) is not None
    assert mode_conflict(manifest, True) is None
    sent: list[dict[str, Any]] = [{"kind": "run", "force": False}, {"kind": "run", "force": True},
            {"kind": "trash_sent", "ids": [], "groups": {}, "force": False}]
    assert mode_conflict(sent, True) is not None


# --------------------------------------------------------------------------- 5. manifest before DELETE


@pytest.mark.parametrize("damage", ["missing", "garbled"])
async def test_a_missing_manifest_is_written_again_before_the_delete(
    damage: str, tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    backup = tmp_path / "b"
    damaged: list[bool] = []
    at_delete: list[bool] = []

    def hook(req: ApiRequest) -> None:
        mpath = backup / "groups" / g.duplicate_id / "manifest.json"
        if req.method == "PUT" and req.path == f"/api/assets/{g.winner}" and not damaged:
            if damage == "missing":
                mpath.unlink()
            else:
                mpath.write_text("{not a manifest")
            damaged.append(True)
        if req.method == "DELETE" and req.path == "/api/assets" and g.losers[0] in json.loads(req.body)["ids"]:
            m = BackupStore.open_existing(backup).read_manifest(g.duplicate_id)
            at_delete.append(m is not None and {x.asset_id for x in m.losers} == set(g.losers))

    on_request(fake, hook)
    rep = await run(fake_client(fake), plan, backup)
    assert damaged
    assert outcome(rep, g.duplicate_id).status == "done"
    assert at_delete == [True]
    assert fake.asset(g.losers[0])["isTrashed"] is True


# --------------------------------------------------------------------------- 6. live-photo video errors


async def test_a_live_video_refused_for_another_reason_fails_the_group(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s15_plain_copy.jpg")
    loser = g.losers[0]
    vid = g.asset(loser).live_photo_video_id
    assert vid
    refuse(fake, lambda r: 400 if r.method == "GET" and r.path == f"/api/assets/{vid}" else None,
           "Validation failed")
    rep = await run(fake_client(fake), plan, tmp_path / "b")
    o = outcome(rep, g.duplicate_id)
    assert o.status == "failed"
    assert "live-photo video" in o.reason
    assert fake.asset(loser)["isTrashed"] is False


async def test_a_live_video_that_is_gone_still_lets_the_still_be_trashed(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s15_plain_copy.jpg")
    loser = g.losers[0]
    vid = g.asset(loser).live_photo_video_id
    assert vid
    refuse(fake, lambda r: 400 if r.method == "GET" and r.path == f"/api/assets/{vid}" else None,
           "Not found or no asset.read access")
    rep = await run(fake_client(fake), plan, tmp_path / "b")
    o = outcome(rep, g.duplicate_id)
    assert o.status == "done", o.reason
    assert any("was already gone" in c for c in o.changes)
    assert fake.asset(loser)["isTrashed"] is True
