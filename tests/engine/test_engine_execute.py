"""Execute against the fake Immich: each invariant of DESIGN §8 is its own test."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, Plan
from immich_dupes.engine.backup import BackupError, BackupStore, sha1_b64_of, verify_file
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import (
    ExecuteOptions,
    ExecuteRefused,
    ExecuteReport,
    execute,
    preview,
)
from immich_dupes.engine.journal import read_entries
from immich_dupes.fake import FakeImmich, Faults
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.errors import PermissionMissing

ClientFactory = Callable[..., Any]
MakePlan = Callable[..., Awaitable[Plan]]
OnRequest = Callable[[FakeImmich, Callable[[ApiRequest], None]], None]


SAMPLE_ACTED = 17
"""Groups of the sample library execute acts on once all are accepted (the external one waits)."""
READ_ONLY_POSTS = ("/api/search/metadata", "/api/assets/bulk-upload-check", "/api/download/info")


def is_changing(method: str, path: str) -> bool:
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not (method == "POST" and path in READ_ONLY_POSTS)


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


def replace_group(plan: Plan, g: GroupPlan) -> None:
    plan.groups = [g if x.duplicate_id == g.duplicate_id else x for x in plan.groups]


def outcome(rep: ExecuteReport, gid: str) -> Any:
    return next(o for o in rep.outcomes if o.duplicate_id == gid)


def changing(fake: FakeImmich, since: int = 0) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.request_log[since:] if is_changing(r.method, r.path)]


def deletes(fake: FakeImmich, since: int = 0) -> int:
    return sum(1 for r in fake.request_log[since:] if r.method == "DELETE" and r.path == "/api/assets")


async def run(client: Any, plan: Plan, tmp_path: Path, **kw: Any) -> ExecuteReport:
    report = kw.pop("report", None)
    opts = ExecuteOptions(backup_dir=kw.pop("backup_dir", tmp_path / "backup"), **kw)
    if report is None:
        return await execute(client, plan, opts)
    return await execute(client, plan, opts, report)


# --------------------------------------------------------------------------- a basic run


@pytest.mark.parametrize("profile", ["v1", "v2", "v3"])
async def test_basic_run_every_profile(
    profile: str, tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    plan = await make_plan(fake)
    rep = await run(fake_client(fake), plan, tmp_path)

    acted = [g for g in plan.groups if not any(g.asset(i).is_external for i in g.losers)]
    assert rep.failed == 0
    assert rep.done == len(acted)
    store = BackupStore.open_existing(tmp_path / "backup")
    manifests = {m.duplicate_id: m for m in store.manifests()}
    for g in acted:
        assert outcome(rep, g.duplicate_id).status == "done"
        assert fake.asset(g.winner)["isTrashed"] is False
        m = manifests[g.duplicate_id]
        assert {x.asset_id for x in m.losers} == set(g.losers)
        for loser in g.losers:
            assert fake.asset(loser)["isTrashed"] is True
            entry = next(x for x in m.losers if x.asset_id == loser)
            assert entry.verified
            assert verify_file(store.resolve_file(entry.file), entry.size, entry.sha1_b64)
            assert (store.resolve_file(entry.file)).read_bytes() == fake.file_bytes(loser)
    # Nothing acted on is still listed as a duplicate.
    still = {grp["duplicateId"] for grp in fake.groups()}
    assert not still & {g.duplicate_id for g in acted}
    assert rep.report_path is not None
    assert rep.report_path.exists()
    report = json.loads(rep.report_path.read_text())
    assert len(report["groups"]) == len(plan.groups)


async def test_requests_per_group_within_budget(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="synthetic:60", original_size=20_000)
    plan = await make_plan(fake)
    client = fake_client(fake)
    await client.connect()
    rep = await run(client, plan, tmp_path)
    assert rep.failed == 0
    acted = rep.done
    assert acted >= 50
    # 2–3 asset groups: ~1.5 downloads per group, everything else batched.
    assert rep.requests / acted <= 2.5, rep.requests / acted


# --------------------------------------------------------------------------- §8.1 backups first


async def test_corrupt_download_is_never_trashed(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    loser = g.losers[0]
    fake.faults = Faults.parse(f"corrupt={loser}")
    rep = await run(fake_client(fake), plan, tmp_path)

    o = outcome(rep, g.duplicate_id)
    assert o.status == "failed"
    assert "checksum" in o.reason
    assert fake.asset(loser)["isTrashed"] is False
    assert fake.asset(g.winner)["exifInfo"]["latitude"] is None  # not consolidated either
    gdir = tmp_path / "backup" / "groups" / g.duplicate_id
    assert not any(p.name.startswith(loser) for p in gdir.iterdir()) if gdir.exists() else True
    # The other groups went ahead.
    assert rep.done >= 10
    assert rep.failed == 1


async def test_truncated_download_is_never_trashed(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s04_large_nodesc.jpg")
    loser = g.losers[0]
    fake.faults = Faults.parse(f"truncate=1@/assets/{loser}/original")
    rep = await run(fake_client(fake), plan, tmp_path)

    o = outcome(rep, g.duplicate_id)
    assert o.status == "failed"
    assert "backup" in o.reason
    assert fake.asset(loser)["isTrashed"] is False
    gdir = tmp_path / "backup" / "groups" / g.duplicate_id
    assert not list(gdir.glob(f"{loser}*")) if gdir.exists() else True


async def test_truncated_once_then_complete_is_backed_up(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s04_large_nodesc.jpg")
    loser = g.losers[0]
    seen: list[str] = []

    def hook(req: ApiRequest) -> None:
        if req.path == f"/api/assets/{loser}/original":
            seen.append(req.path)
            fake.faults = None  # only the first transfer (decided before this hook) is cut

    fake.faults = Faults.parse(f"truncate=1@/assets/{loser}/original")
    on_request(fake, hook)
    rep = await run(fake_client(fake), plan, tmp_path)
    assert outcome(rep, g.duplicate_id).status == "done"
    assert len(seen) >= 2
    assert fake.asset(loser)["isTrashed"] is True


async def test_every_delete_has_verified_backups_on_disk(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    checked: list[str] = []
    backup = tmp_path / "backup"

    def hook(req: ApiRequest) -> None:
        if req.method == "DELETE" and req.path == "/api/assets":
            ids = json.loads(req.body)["ids"]
            store = BackupStore.open_existing(backup)
            files = {m_l.asset_id: m_l for m in store.manifests() for m_l in m.losers}
            for i in ids:
                entry = files[i]
                path = store.resolve_file(entry.file)
                size, sha1 = sha1_b64_of(path)
                assert size == len(fake.file_bytes(i))
                info = fake.asset(i)
                if info.get("libraryId") is None:
                    assert sha1 == info["checksum"]
                checked.append(i)

    on_request(fake, hook)
    rep = await run(fake_client(fake), plan, tmp_path)
    assert rep.failed == 0
    assert len(checked) == sum(len(o.trashed) for o in rep.outcomes)


# --------------------------------------------------------------------------- §8.2 re-check


async def test_winner_trashed_after_analysis_blocks_its_group(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    fake.trash_asset(g.winner)
    rep = await run(fake_client(fake), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "skipped"
    assert "trashed" in o.reason
    assert fake.asset(g.losers[0])["isTrashed"] is False
    assert rep.failed == 0


async def test_winner_purged_after_analysis_blocks_its_group(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s13_large_timeline.jpg")
    fake.purge(g.winner)
    rep = await run(fake_client(fake), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "skipped"
    assert "gone" in o.reason
    assert fake.asset(g.losers[0])["isTrashed"] is False


async def test_winner_changed_since_the_plan_blocks_its_group(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    # The plan saw another file than the server has now (the file was replaced since).
    g.winner_asset.checksum = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="
    rep = await run(fake_client(fake), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "skipped"
    assert "winner changed" in o.reason
    assert fake.asset(g.losers[0])["isTrashed"] is False


async def test_group_that_gained_a_member_is_blocked(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    other = group_of(plan, "s04_large_nodesc.jpg")
    # Someone's re-run of duplicate detection put another asset into the group.
    fake.update_asset_metadata(other.losers[0], duplicateId=g.duplicate_id)
    rep = await run(fake_client(fake), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "skipped"
    assert "joined" in o.reason
    assert fake.asset(g.losers[0])["isTrashed"] is False
    # The group that lost that member is blocked too.
    o2 = outcome(rep, other.duplicate_id)
    assert o2.status == "skipped"
    assert fake.asset(other.losers[0])["isTrashed"] is False


async def test_group_that_lost_a_member_is_blocked(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s05_a_large_dateonly.jpg")
    assert len(g.losers) == 2
    fake.trash_asset(g.losers[1])
    rep = await run(fake_client(fake), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "skipped"
    assert "no longer in it" in o.reason
    assert fake.asset(g.losers[0])["isTrashed"] is False


# --------------------------------------------------------------------------- §8.3 external library


async def test_external_loser_not_deleted_unless_allowed_in_review(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s10_upload_large.jpg")
    ext = g.losers[0]
    assert g.asset(ext).is_external
    rep = await run(fake_client(fake), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "skipped"
    assert "external library" in o.reason
    assert fake.asset(ext)["isTrashed"] is False

    # A person allowed it in review: now it is backed up (size-checked) and trashed.
    fake2 = FakeImmich(library="sample")
    plan2 = await make_plan(fake2)
    g2 = group_of(plan2, "s10_upload_large.jpg")
    replace_group(plan2, decide.allow_external_delete(g2, True))
    rep2 = await run(fake_client(fake2), plan2, tmp_path, backup_dir=tmp_path / "b2")
    assert outcome(rep2, g2.duplicate_id).status == "done"
    assert fake2.asset(ext)["isTrashed"] is True
    m = BackupStore.open_existing(tmp_path / "b2").read_manifest(g2.duplicate_id)
    assert m is not None
    assert (tmp_path / "b2" / m.losers[0].file).read_bytes() == fake2.file_bytes(ext)


async def test_external_loser_found_on_the_server_blocks_even_if_the_plan_missed_it(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s10_upload_large.jpg")
    ext = g.losers[0]
    g.asset(ext).library_id = None  # a plan that lost the fact: the server's answer still counts
    rep = await run(fake_client(fake), plan, tmp_path)
    assert outcome(rep, g.duplicate_id).status == "skipped"
    assert fake.asset(ext)["isTrashed"] is False


# --------------------------------------------------------------------------- §8.4 journal


async def test_journal_is_durable_before_every_next_step(
    tmp_path: Path,
    fake_client: ClientFactory,
    make_plan: MakePlan,
    on_request: OnRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    backup = tmp_path / "backup"
    jpath = backup / "journal.jsonl"
    synced_size = [0]
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        real_fsync(fd)
        try:
            if Path(os.readlink(f"/proc/self/fd/{fd}")) == jpath.resolve():
                synced_size[0] = os.fstat(fd).st_size
        except OSError:
            pass

    monkeypatch.setattr(os, "fsync", spy_fsync)
    requests_checked = [0]

    def hook(req: ApiRequest) -> None:
        # Whenever a request goes out, everything journaled so far has been fsynced.
        if jpath.exists():
            assert jpath.stat().st_size == synced_size[0]
            requests_checked[0] += 1
        if req.method == "DELETE" and req.path == "/api/assets":
            ids = set(json.loads(req.body)["ids"])
            sent = {i for e in read_entries(jpath) if e["kind"] == "trash_sent" for i in e["ids"]}
            assert ids <= sent  # the intent is on disk before the DELETE

    on_request(fake, hook)
    seen: list[str] = []

    def reporter(ev: Event) -> None:
        kind = ev.data.get("journaled")
        if kind:
            kinds = [e["kind"] for e in read_entries(jpath)]
            assert kind in kinds, f"{kind} reported before it was on disk"
            assert jpath.stat().st_size == synced_size[0]
            seen.append(kind)

    rep = await run(fake_client(fake), plan, tmp_path, report=reporter)
    assert rep.failed == 0
    assert requests_checked[0] > 10
    assert {"backed_up", "manifest", "consolidated", "trash_sent", "trashed", "group_done"} <= set(seen)

    # Per group, the steps are journaled in order.
    entries = list(read_entries(jpath))
    for g in plan.groups:
        if outcome(rep, g.duplicate_id).status != "done":
            continue
        gid = g.duplicate_id

        def first(kind: str, gid: str = gid) -> int:
            for n, e in enumerate(entries):
                if e["kind"] == kind and (e.get("group") == gid or gid in (e.get("groups") or {})):
                    return n
            raise AssertionError(f"{kind} missing for {gid}")

        order = [first(k) for k in ("backed_up", "manifest", "consolidated", "trash_sent", "trashed", "group_done")]
        assert order == sorted(order)


async def test_rerun_after_completion_repeats_nothing(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    client = fake_client(fake)
    await run(client, plan, tmp_path)
    before = len(fake.request_log)
    rep = await run(client, plan, tmp_path)
    assert changing(fake, before) == []
    assert not [r for r in fake.request_log[before:] if r.path.endswith("/original")]
    assert all(o.status in ("done", "skipped") for o in rep.outcomes)
    assert rep.done == SAMPLE_ACTED


async def test_cancel_stops_safely_and_a_rerun_finishes(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    import asyncio

    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    client = fake_client(fake)
    cancel = asyncio.Event()

    def reporter(ev: Event) -> None:
        if ev.data.get("journaled") == "backed_up":
            cancel.set()

    opts = ExecuteOptions(backup_dir=tmp_path / "backup")
    rep = await execute(client, plan, opts, reporter, cancel)
    assert rep.failed == 0
    assert rep.done == 0
    assert not any(fake.asset(i)["isTrashed"] for g in plan.groups for i in g.losers)
    assert any("cancelled" in o.reason for o in rep.outcomes)

    before = len(fake.request_log)
    rep2 = await execute(client, plan, opts)
    assert rep2.done == SAMPLE_ACTED
    downloaded = [r.path for r in fake.request_log[before:] if r.path.endswith("/original")]
    assert len(downloaded) == len(set(downloaded))
    # The backup taken before the cancel was not downloaded again.
    first = next(e for e in read_entries(tmp_path / "backup" / "journal.jsonl") if e["kind"] == "backed_up")
    assert f"/api/assets/{first['asset']}/original" not in downloaded


# --------------------------------------------------------------------------- §8.5 manifest


async def test_manifest_holds_the_losers_full_metadata(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    before = {i: fake.asset(i) for g in plan.groups for i in g.losers}
    await run(fake_client(fake), plan, tmp_path)
    store = BackupStore.open_existing(tmp_path / "backup")
    by_file = {
        m_l.asset["originalFileName"]: (m, m_l) for m in store.manifests() for m_l in m.losers
    }

    _, fav = by_file["s11_small_fav_album.jpg"]
    assert fav.asset["isFavorite"] is True
    assert [a.name for a in fav.albums] == ["Seed album (duplicates test)"]

    _, rated = by_file["s12_small_rated_tagged.jpg"]
    assert rated.asset["exifInfo"]["rating"] == 4
    assert [t.value for t in rated.tags] == ["seed/keep-me"]

    _, desc = by_file["s04_small_desc.jpg"]
    assert desc.asset["exifInfo"]["description"]

    _, gps = by_file["s01_small_gps.jpg"]
    assert gps.asset["exifInfo"]["latitude"] == pytest.approx(48.8566, abs=1e-3)
    assert gps.asset["exifInfo"]["dateTimeOriginal"]
    assert gps.asset["localDateTime"]

    _, arch = by_file["s13_small_archived.jpg"]
    assert arch.asset["visibility"] == "archive"

    _, live = by_file["s15_live_still.jpg"]
    assert live.asset["livePhotoVideoId"]
    assert live.live_photo_video is not None
    assert live.live_photo_video.asset_id == live.asset["livePhotoVideoId"]
    assert live.live_photo_video.verified
    vpath = store.resolve_file(live.live_photo_video.file)
    assert vpath.read_bytes() == fake.file_bytes(live.live_photo_video.asset_id)
    assert [a.name for a in live.albums] == ["Holidays 2021"]

    # The asset JSON is the server's own answer from before execute acted.
    for _m, m_l in by_file.values():
        assert m_l.asset["id"] == m_l.asset_id
        assert m_l.asset["isTrashed"] is False
        assert m_l.asset["checksum"] == before[m_l.asset_id]["checksum"]
        assert m_l.asset["exifInfo"] == before[m_l.asset_id]["exifInfo"]

    # Files are private.
    root = tmp_path / "backup"
    assert (root.stat().st_mode & 0o777) == 0o700
    for p in root.rglob("*"):
        assert (p.stat().st_mode & 0o777) == (0o700 if p.is_dir() else 0o600), p


async def test_edited_manifest_is_refused_by_open_existing(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    await run(fake_client(fake), plan, tmp_path)
    store = BackupStore.open_existing(tmp_path / "backup")
    m = next(iter(store.manifests()))
    p = store.manifest_path(m.duplicate_id)
    data = json.loads(p.read_text())
    data["losers"][0]["asset"]["isFavorite"] = not data["losers"][0]["asset"].get("isFavorite")
    p.write_text(json.dumps(data))
    with pytest.raises(BackupError, match="edited or damaged"):
        list(store.manifests())
    data["losers"][0]["file"] = "../../outside.jpg"
    p.write_text(json.dumps(data))
    with pytest.raises(BackupError):
        list(store.manifests())
    with pytest.raises(BackupError, match="does not exist"):
        BackupStore.open_existing(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackupError, match="not an immich-dupes backup"):
        BackupStore.open_existing(tmp_path / "empty")


async def test_hostile_file_names_are_sanitised(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    import io

    from PIL import Image

    fake = FakeImmich(library="sample")
    client = fake_client(fake)
    await client.connect()
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(buf, "JPEG")
    src = tmp_path / "tiny.jpg"
    src.write_bytes(buf.getvalue())
    from datetime import UTC, datetime

    evil = "../../../../tmp/evil\x07\x1b[2J\u202e\x00name.jpg"
    up = await client.upload(
        src, filename=evil, file_created_at=datetime(2020, 1, 1, tzinfo=UTC),
        file_modified_at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    plan0 = await make_plan(fake)
    target = group_of(plan0, "s13_large_timeline.jpg")
    fake.update_asset_metadata(up.id, duplicateId=target.duplicate_id)
    plan = await make_plan(fake)
    g = group_of(plan, "s13_large_timeline.jpg")
    assert up.id in g.losers
    rep = await run(client, plan, tmp_path)
    assert outcome(rep, g.duplicate_id).status == "done"
    gdir = (tmp_path / "backup" / "groups" / g.duplicate_id).resolve()
    files = [p for p in gdir.iterdir() if p.name.startswith(up.id)]
    assert len(files) == 1
    name = files[0].name
    assert files[0].resolve().parent == gdir
    assert "/" not in name
    assert ".." not in name
    assert not any(ord(ch) < 32 or ch == "\u202e" for ch in name)
    assert name.endswith(".jpg")
    assert files[0].read_bytes() == src.read_bytes()
    assert not (Path("/tmp") / "evil").exists()


# --------------------------------------------------------------------------- §8.6 the key


async def test_api_key_never_written(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s01_large_nogps.jpg")
    fake.faults = Faults.parse(f"corrupt={g.losers[0]}")  # a failure with a reason, too
    rep = await run(fake_client(fake), plan, tmp_path)
    assert rep.failed == 1
    key = fake.api_key.encode()
    files = [p for p in (tmp_path / "backup").rglob("*") if p.is_file()]
    assert len(files) > 20
    for p in files:
        assert key not in p.read_bytes(), p
    assert fake.api_key not in json.dumps([o.reason for o in rep.outcomes])


# --------------------------------------------------------------------------- §8.7 few requests


async def test_deletes_are_batched_across_groups(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    before = len(fake.request_log)
    rep = await run(fake_client(fake), plan, tmp_path)
    assert rep.done == SAMPLE_ACTED
    assert deletes(fake, before) == 1
    dup_lists = [r for r in fake.request_log[before:] if r.path == "/api/duplicates" and r.method == "GET"]
    assert len(dup_lists) == 1

    fake2 = FakeImmich(library="sample")
    plan2 = await make_plan(fake2)
    before = len(fake2.request_log)
    rep2 = await run(fake_client(fake2), plan2, tmp_path, backup_dir=tmp_path / "b2", batch_size=5)
    assert rep2.done == SAMPLE_ACTED
    assert deletes(fake2, before) == 4  # 17 groups to act on, 5 per batch


# --------------------------------------------------------------------------- refusals (exit 2)


async def test_plan_for_another_server_is_refused_with_nothing_sent(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    plan.server_url = "http://other-immich:2283/api"
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="made for http://other-immich"):
        await run(fake_client(fake), plan, tmp_path)
    assert len(fake.request_log) == before
    assert not (tmp_path / "backup").exists()


async def test_plan_for_another_user_is_refused_with_nothing_changed(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    _, key2 = fake.add_user("Bob", library="sample")
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="another user"):
        await run(fake_client(fake, key=key2), plan, tmp_path)
    assert changing(fake, before) == []
    assert not (tmp_path / "backup").exists()


async def test_missing_permission_is_named_before_anything_changes(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    perms = ["user.read", "duplicate.read", "asset.read", "album.read", "asset.download",
             "asset.update", "albumAsset.create", "tag.asset"]  # no asset.delete
    key = fake.add_api_key(fake.user_id, perms)
    before = len(fake.request_log)
    with pytest.raises(PermissionMissing, match="asset.delete"):
        await run(fake_client(fake, key=key), plan, tmp_path)
    assert changing(fake, before) == []


@pytest.mark.parametrize("case", ["file", "foreign", "other-plan", "parent-is-file"])
async def test_unusable_backup_dir_is_refused(
    case: str, tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    target = tmp_path / "backup"
    if case == "file":
        target.write_text("x")
        match = "is a file"
    elif case == "foreign":
        target.mkdir()
        (target / "holiday.jpg").write_bytes(b"mine")
        match = "not an immich-dupes backup"
    elif case == "other-plan":
        await run(fake_client(fake), plan, tmp_path, dry_run=False)
        plan = await make_plan(fake)  # a new plan of the (now changed) library
        match = "different plan"
    else:
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "backup"
        match = "cannot be created"
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match=match):
        await run(fake_client(fake), plan, tmp_path, backup_dir=target)
    assert changing(fake, before) == []
    if case == "foreign":
        assert sorted(p.name for p in target.iterdir()) == ["holiday.jpg"]


async def test_unreviewed_groups_are_refused_unless_skip_review(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake, accept=False)
    unreviewed = preview(plan, ExecuteOptions(tmp_path / "b")).unreviewed
    assert unreviewed > 0
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="review") as e:
        await run(fake_client(fake), plan, tmp_path)
    assert "--skip-review" in str(e.value)
    assert len(fake.request_log) == before

    rep = await run(fake_client(fake), plan, tmp_path, skip_review=True)
    skipped = [o for o in rep.outcomes if "needs review" in o.reason]
    assert len(skipped) == unreviewed
    for g in plan.groups:
        if g.needs_review:
            assert not any(fake.asset(i)["isTrashed"] for i in g.losers)
        elif not any(g.asset(i).is_external for i in g.losers):
            assert all(fake.asset(i)["isTrashed"] for i in g.losers)


async def test_not_enough_disk_space_is_refused(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    from collections import namedtuple

    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9 - 40 * 2**20, 40 * 2**20))
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="disk space"):
        await run(fake_client(fake), plan, tmp_path)
    assert len(fake.request_log) == before


# --------------------------------------------------------------------------- dry run


async def test_dry_run_sends_nothing_and_lists_exactly_what_a_real_run_sends(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    before = len(fake.request_log)
    rep = await run(fake_client(fake), plan, tmp_path, dry_run=True)
    assert changing(fake, before) == []
    assert not (tmp_path / "backup").exists()
    assert rep.would_do == SAMPLE_ACTED
    assert rep.report_path is None

    # A real run on an identical server sends exactly the listed changes.
    fake2 = FakeImmich(library="sample")
    plan2 = await make_plan(fake2)
    assert plan2.model_dump(exclude={"created_at"}) == plan.model_dump(exclude={"created_at"})
    sent: list[str] = []

    def hook(req: ApiRequest) -> None:
        path = req.path.removeprefix("/api")
        if is_changing(req.method, req.path):
            body = json.dumps(json.loads(req.body), separators=(",", ":")) if req.body else ""
            sent.append(f"{req.method} {path} {body}")
        elif path.endswith("/original"):
            sent.append(f"GET {path}")

    on_request(fake2, hook)
    await run(fake_client(fake2), plan2, tmp_path, backup_dir=tmp_path / "real")
    planned = [
        p.split(" (backup", 1)[0] if p.startswith("GET ") else p for p in rep.planned_requests
    ]

    def norm(lines: list[str]) -> list[str]:
        out = []
        for line in lines:
            method, path, *body = line.split(" ", 2)
            if body and body[0]:
                data = json.loads(body[0])
                if isinstance(data, dict) and isinstance(data.get("ids"), list):
                    data["ids"] = sorted(data["ids"])
                out.append(f"{method} {path} {json.dumps(data, sort_keys=True)}")
            else:
                out.append(f"{method} {path}")
        return sorted(out)

    assert norm(planned) == norm(sent)


# --------------------------------------------------------------------------- other actions


async def test_keep_all_dismisses_and_stack_puts_the_winner_first(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    keep = group_of(plan, "s01_large_nogps.jpg")
    stack = group_of(plan, "s04_large_nodesc.jpg")
    replace_group(plan, decide.set_action(keep, Action.KEEP_ALL))
    replace_group(plan, decide.set_action(stack, Action.STACK))
    pv = preview(plan, ExecuteOptions(tmp_path / "backup"))
    assert (pv.groups_to_dismiss, pv.groups_to_stack) == (1, 1)
    rep = await run(fake_client(fake), plan, tmp_path)
    assert outcome(rep, keep.duplicate_id).status == "done"
    assert outcome(rep, stack.duplicate_id).status == "done"
    for i in keep.keep + keep.losers:
        a = fake.asset(i)
        assert a["isTrashed"] is False
        assert a.get("duplicateId") is None
    winner = fake.asset(stack.winner)
    assert winner["stack"]["primaryAssetId"] == stack.winner
    loser = fake.asset(stack.losers[0])
    assert loser["isTrashed"] is False
    assert loser.get("duplicateId") is None
    listed = {grp["duplicateId"] for grp in fake.groups()}
    assert keep.duplicate_id not in listed
    assert stack.duplicate_id not in listed


# --------------------------------------------------------------------------- the whole sample


async def test_full_sample_run_leaves_the_server_as_planned(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    from datetime import datetime

    from immich_dupes.analysis.timezones import offset_minutes

    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    sent: dict[str, dict[str, Any]] = {}

    def hook(req: ApiRequest) -> None:
        if req.method == "PUT" and req.path.startswith("/api/assets/"):
            sent[req.path.rsplit("/", 1)[1]] = json.loads(req.body)

    on_request(fake, hook)
    rep = await run(fake_client(fake), plan, tmp_path)
    assert rep.failed == 0
    fake.run_jobs()
    albums = {al["id"]: set(al["assetIds"]) for al in fake.albums}
    carried: set[str] = set()
    for g in plan.groups:
        if outcome(rep, g.duplicate_id).status != "done":
            continue
        a = fake.asset(g.winner)
        e = a["exifInfo"]
        c = g.consolidated
        w = g.winner_asset
        if c.latitude is not None and c.longitude is not None:
            assert e["latitude"] == pytest.approx(c.latitude, abs=1e-5)
            assert e["longitude"] == pytest.approx(c.longitude, abs=1e-5)
            if not w.has_gps:
                carried.add("gps")
        if c.description is not None:
            assert e["description"] == c.description
            if c.description != w.description:
                carried.add("description")
        assert a["isFavorite"] is (c.is_favorite or w.is_favorite)
        carried |= {"favorite"} if c.is_favorite and not w.is_favorite else set()
        if c.rating is not None:
            assert e["rating"] == c.rating
            carried |= {"rating"} if w.rating != c.rating else set()
        assert a["visibility"] == c.visibility
        carried |= {"archive"} if c.visibility != w.visibility else set()
        for al in c.album_ids:
            assert g.winner in albums[al]
            carried |= {"album"} if al not in {x.id for x in w.albums} else set()
        tags = {t["id"] for t in a["tags"]}
        assert set(c.tag_ids) <= tags
        carried |= {"tag"} if set(c.tag_ids) - {t.id for t in w.tags} else set()
        if c.live_photo_video_id:
            assert a["livePhotoVideoId"] == c.live_photo_video_id
            carried |= {"live"} if not w.live_photo_video_id else set()
        if c.date_time_original:
            # Sent as the plan has it: local time with an explicit offset.
            assert sent[g.winner]["dateTimeOriginal"] == c.date_time_original
            want = datetime.fromisoformat(c.date_time_original)
            off = want.utcoffset()
            assert off is not None
            minutes = int(off.total_seconds() // 60)
            if not (minutes < 0 and minutes % 60):  # Immich drops negative half-hour offsets (verify reports it)
                got = datetime.fromisoformat(e["dateTimeOriginal"])
                assert got == want
                if not e.get("latitude"):
                    assert offset_minutes(e["timeZone"], got) == minutes
            carried.add("date")
    assert carried >= {"gps", "description", "favorite", "rating", "archive", "album", "tag", "live", "date"}


async def test_a_server_error_while_rechecking_fails_that_group_only(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    g = group_of(plan, "s13_large_timeline.jpg")
    fake.trash_asset(g.winner)  # the group leaves the list: execute asks the server why
    fake.faults = Faults.parse(f"500=1@/assets/{g.winner}")
    rep = await run(fake_client(fake, max_retries=1), plan, tmp_path)
    o = outcome(rep, g.duplicate_id)
    assert o.status == "failed"
    assert "could not re-check" in o.reason
    assert fake.asset(g.losers[0])["isTrashed"] is False
    assert rep.done == SAMPLE_ACTED - 1
    assert rep.report_path is not None


async def test_a_loser_restored_by_a_person_between_runs_is_not_trashed_again(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    import asyncio

    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    client = fake_client(fake)
    cancel = asyncio.Event()

    def reporter(ev: Event) -> None:
        if ev.data.get("journaled") == "trashed":
            cancel.set()  # stop before the groups are finished

    opts = ExecuteOptions(backup_dir=tmp_path / "backup")
    rep = await execute(client, plan, opts, reporter, cancel)
    assert rep.done == 0
    g = group_of(plan, "s01_large_nogps.jpg")
    loser = g.losers[0]
    assert fake.asset(loser)["isTrashed"] is True
    await client.restore_from_trash([loser])
    assert fake.asset(loser)["isTrashed"] is False

    before = len(fake.request_log)
    rep2 = await execute(client, plan, opts)
    assert rep2.done == SAMPLE_ACTED
    assert fake.asset(loser)["isTrashed"] is False
    assert any("restored" in c for c in outcome(rep2, g.duplicate_id).changes)
    # The others were finished without a second DELETE.
    assert deletes(fake, before) == 0
