"""restore when a copy an earlier restore re-uploaded was later moved to the Locked folder.

Immich hides locked assets from API keys (400 "Not found or no asset.read access"), so a later
run cannot read the copy it restored. When this backup's restore record names that copy and the
server's answer for the backup's bytes is ``duplicate`` with the same id, the copy is provably
still there: the run reports it as present with a note, instead of failing every time. Anything
else (a copy purged for real, a locked asset the records do not name) behaves as before.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from immich_dupes.analysis.decide import accept
from immich_dupes.analysis.plan import Plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.restore import RestoreReport, read_records, restore
from immich_dupes.fake import FakeImmich, Faults, RequestRecord
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.models import BulkUploadCheckItem

URL = "http://fake-immich"
READ_ONLY_POSTS = {"/api/assets/bulk-upload-check", "/api/search/metadata"}
NOTE = "the server no longer shows it to this key (moved to Locked?); left alone"


def note_for(new_id: str) -> str:
    return f"restored earlier as {new_id}; {NOTE}"


@asynccontextmanager
async def connected(fake: FakeImmich) -> AsyncIterator[ImmichClient]:
    async with ImmichClient(
        URL, fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8,
        max_retries=1, backoff_base=0.0,
    ) as c:
        await c.connect()
        yield c


async def executed(c: ImmichClient, backup: Path) -> Plan:
    """Every group accepted and executed with ``--force`` (losers deleted permanently)."""
    plan = await analyze(c)
    plan.groups = [accept(g) for g in plan.groups]
    rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=True))
    assert rep.failed == 0
    return plan


def by_asset(rep: RestoreReport) -> dict[str, tuple[str, str | None]]:
    return {a.asset_id: (a.action, a.new_asset_id) for a in rep.actions}


def changing(log: Sequence[RequestRecord]) -> list[tuple[str, str]]:
    return [
        (r.method, r.path) for r in log
        if r.method != "GET" and not (r.method == "POST" and r.path in READ_ONLY_POSTS)
    ]


def uploads(log: Sequence[RequestRecord]) -> list[RequestRecord]:
    return [r for r in log if r.method == "POST" and r.path == "/api/assets"]


def lock(fake: FakeImmich, asset_id: str) -> None:
    """The user moves the asset to the Locked folder (in the web app, with their PIN)."""
    fake.update_asset_metadata(asset_id, visibility="locked")


async def reuploaded_live_photo(fake: FakeImmich, c: ImmichClient, backup: Path) -> tuple[str, str, RestoreReport]:
    """Force-execute, purge the live photo's motion part too, restore: (old still id, new still id, report)."""
    plan = await executed(c, backup)
    fake.run_jobs()  # the purge
    g = next(g for g in plan.groups if g.winner_asset.file_name == "s15_plain_copy.jpg")
    still, video = g.losers[0], g.consolidated.live_photo_video_id
    assert video is not None
    fake.purge(video)
    first = await restore(c, backup)
    fake.run_jobs()
    assert first.failed == 0
    assert by_asset(first)[still][0] == "reupload"
    new = by_asset(first)[still][1]
    assert new is not None
    return still, new, first


@pytest.mark.parametrize("profile", ["v1", "v3"])
async def test_locked_reupload_is_left_alone_with_a_note_on_every_later_run(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    plain = fake.find_asset("s13_small_archived.jpg")  # a loser without a motion part
    async with connected(fake) as c:
        still, new_still, first = await reuploaded_live_photo(fake, c, tmp_path / "b")
        new_plain = by_asset(first)[plain][1]
        assert new_plain is not None
        lock(fake, new_still)  # a live photo: before the fix, every later run failed it
        lock(fake, new_plain)
        assert await c.asset_or_none(new_still) is None  # hidden from the key
        n = len(fake.request_log)
        second = await restore(c, tmp_path / "b")
        third = await restore(c, tmp_path / "b")
        dry = await restore(c, tmp_path / "b", dry_run=True)
        log = fake.request_log[n:]

    for rep in (second, third, dry):
        assert rep.failed == 0, [a for a in rep.actions if a.action == "failed"]
        acts = {a.asset_id: a for a in rep.actions}
        for old, new in ((still, new_still), (plain, new_plain)):
            assert (acts[old].action, acts[old].new_asset_id) == ("already_present", new)
            assert acts[old].detail == note_for(new)
        # everything else is as the first run left it
        assert {a.action for a in rep.actions} == {"already_present"}
    # Left alone: nothing uploaded, nothing changed, the copies still there and still locked.
    assert changing(log) == []
    assert uploads(log) == []
    assert fake.asset(new_still)["visibility"] == "locked"
    assert fake.asset(new_plain)["visibility"] == "locked"
    # The record still names the copies, so later runs keep recognising them.
    assert read_records(tmp_path / "b").mapping[still] == new_still


async def test_locked_copy_with_metadata_pending_keeps_it_pending(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    old = fake.find_asset("s11_small_fav_album.jpg")  # a loser in an album
    async with connected(fake) as c:
        await executed(c, tmp_path / "b")
        fake.run_jobs()
        fake.faults = Faults.parse("500=1@/albums")  # the uploading run cannot apply albums
        first = await restore(c, tmp_path / "b")
        fake.faults = None
        fake.run_jobs()
        assert by_asset(first)[old][0] == "failed"
        records = read_records(tmp_path / "b")
        assert old in records.pending
        new = records.mapping[old]
        lock(fake, new)
        second = await restore(c, tmp_path / "b")  # also applies the others' pending albums
        n = len(fake.request_log)
        third = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
        in_albums = [al["id"] for al in fake.albums if new in al["assetIds"]]
        after_locked = read_records(tmp_path / "b")
        # Back from the Locked folder: the metadata that was never applied is applied now.
        fake.update_asset_metadata(new, visibility="timeline")
        fourth = await restore(c, tmp_path / "b")

    for rep in (second, third):
        assert rep.failed == 0, [a for a in rep.actions if a.action == "failed"]
        a = next(x for x in rep.actions if x.asset_id == old)
        assert (a.action, a.new_asset_id, a.detail) == ("already_present", new, note_for(new))
    assert changing(log) == []
    assert in_albums == []  # nothing was added to the locked copy
    assert old in after_locked.pending
    assert fourth.failed == 0
    a = next(x for x in fourth.actions if x.asset_id == old)
    assert (a.action, a.new_asset_id) == ("already_present", new)
    assert "set albums" in a.detail
    assert old not in read_records(tmp_path / "b").pending


async def test_upload_answered_duplicate_with_the_locked_copy_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server whose checksum check does not list the locked copy: the upload names it."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        still, new_still, _ = await reuploaded_live_photo(fake, c, tmp_path / "b")
        lock(fake, new_still)

        async def check_accepts_all(items: Sequence[tuple[str, str]]) -> list[BulkUploadCheckItem]:
            return [BulkUploadCheckItem(id=tag, action="accept") for tag, _ in items]

        monkeypatch.setattr(c, "bulk_upload_check", check_accepts_all)
        assets_before = len(fake.asset_ids())
        n = len(fake.request_log)
        second = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]

    assert second.failed == 0, [a for a in second.actions if a.action == "failed"]
    a = next(x for x in second.actions if x.asset_id == still)
    assert (a.action, a.new_asset_id, a.detail) == ("already_present", new_still, note_for(new_still))
    # The upload was answered duplicate: no second copy, nothing else changed.
    assert [r.status for r in uploads(log)] == [200]
    assert len(fake.asset_ids()) == assets_before
    assert [x for x in changing(log) if x != ("POST", "/api/assets")] == []


async def test_purged_reupload_is_uploaded_again(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        still, new_still, _ = await reuploaded_live_photo(fake, c, tmp_path / "b")
        fake.purge(new_still)  # gone for real (its motion part too): the bytes are accepted again
        n = len(fake.request_log)
        second = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]

    assert second.failed == 0, [a for a in second.actions if a.action == "failed"]
    a = next(x for x in second.actions if x.asset_id == still)
    assert a.action == "reupload"
    assert a.new_asset_id not in (None, new_still)
    assert NOTE not in a.detail
    assert [r.status for r in uploads(log)] == [201, 201]  # the motion part, then the still
    assert read_records(tmp_path / "b").mapping[still] == a.new_asset_id


async def test_locked_asset_not_in_the_records_still_fails(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    old = fake.find_asset("s13_small_archived.jpg")
    async with connected(fake) as c:
        await executed(c, tmp_path / "b")
        fake.run_jobs()
        first = await restore(c, tmp_path / "b")
        new = by_asset(first)[old][1]
        assert new is not None
        for p in (tmp_path / "b").glob("restore-*.json"):
            p.unlink()  # the records that named it are lost
        lock(fake, new)
        n = len(fake.request_log)
        second = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]

    a = next(x for x in second.actions if x.asset_id == old)
    assert a.action == "failed"
    assert f"the same photo exists as {new}" in a.detail
    assert NOTE not in a.detail
    assert second.failed == 1
    assert changing(log) == []
    assert fake.asset(new)["visibility"] == "locked"
