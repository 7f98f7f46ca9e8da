"""restore against the fake Immich: from the trash, by re-upload, idempotent, dry run, refusals."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from journal_kill import Killed, kill_after

from immich_dupes.analysis.decide import accept, set_source
from immich_dupes.analysis.plan import Action, GroupPlan, Plan
from immich_dupes.analysis.timezones import offset_minutes
from immich_dupes.commands.restore import render_keepers
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import BackupError, BackupHeader, BackupStore, GroupManifest
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.restore import RestoreReport, read_mapping, restore
from immich_dupes.engine.verify import WrongServer
from immich_dupes.fake import FakeImmich, RequestRecord
from immich_dupes.immich.client import ImmichClient

PROFILES = ["v1", "v2", "v3"]
URL = "http://fake-immich"
EXTERNAL = "s10_upload_large.jpg"
READ_ONLY_POSTS = {"/api/assets/bulk-upload-check", "/api/search/metadata"}


@asynccontextmanager
async def connected(fake: FakeImmich, key: str | None = None) -> AsyncIterator[ImmichClient]:
    async with ImmichClient(
        URL, key or fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8,
        max_retries=1, backoff_base=0.0,
    ) as c:
        await c.connect()
        yield c


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


async def executed(c: ImmichClient, backup: Path, force: bool = False) -> Plan:
    plan = await analyze(c)
    plan.groups = [accept(g) for g in plan.groups]
    rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=force))
    assert rep.failed == 0
    return plan


def trashed_losers(plan: Plan) -> list[str]:
    """Every loser execute removed (the external-library group is skipped by execute)."""
    return [
        i for g in plan.groups
        if g.action is Action.RESOLVE and g.winner_asset.file_name != EXTERNAL
        for i in g.losers
    ]


def changing(log: Sequence[RequestRecord]) -> list[tuple[str, str]]:
    return [
        (r.method, r.path) for r in log
        if r.method != "GET" and not (r.method == "POST" and r.path in READ_ONLY_POSTS)
    ]


def by_asset(rep: RestoreReport) -> dict[str, tuple[str, str | None]]:
    return {a.asset_id: (a.action, a.new_asset_id) for a in rep.actions}


def album_ids_of(fake: FakeImmich, asset_id: str) -> set[str]:
    return {al["id"] for al in fake.albums if asset_id in al["assetIds"]}


def tag_ids_of(fake: FakeImmich, asset_id: str) -> set[str]:
    return {t["id"] for t in fake.asset(asset_id)["tags"]}


# --------------------------------------------------------------------------- from the trash


@pytest.mark.parametrize("profile", PROFILES)
async def test_trash_mode_restores_from_trash_with_same_ids_and_albums(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    async with connected(fake) as c:
        albums_before = {i: album_ids_of(fake, i) for i in fake.asset_ids()}
        plan = await executed(c, tmp_path / "b")
        losers = trashed_losers(plan)
        assert all(fake.asset(i)["isTrashed"] for i in losers)
        rep = await restore(c, tmp_path / "b")
        fake.run_jobs()
        n = len(fake.request_log)
        again = await restore(c, tmp_path / "b")
        second_run = fake.request_log[n:]

    acts = by_asset(rep)
    assert {i: acts[i] for i in losers} == {i: ("from_trash", None) for i in losers}
    assert rep.failed == 0
    for i in losers:
        a = fake.asset(i)
        assert a["isTrashed"] is False
        assert album_ids_of(fake, i) == albums_before[i]
    s11 = group_of(plan, "s11_large_plain.jpg").losers[0]
    assert album_ids_of(fake, s11)  # the favorite-in-album loser is in its album again
    # Restoring from the trash is one batched request, confirmed by reading each id back.
    restores = [r for r in fake.request_log[:n] if r.path == "/api/trash/restore/assets"]
    assert len(restores) == 1
    # Idempotent: the second run finds everything present and changes nothing.
    assert {a.action for a in again.actions} == {"already_present"}
    assert changing(second_run) == []
    assert rep.record_file is not None
    assert rep.record_file.exists()


# --------------------------------------------------------------------------- re-upload


API_ONLY = {
    "description": "Set through the API, not in the file",
    "latitude": 19.076,
    "longitude": 72.8777,
    "dateTimeOriginal": "2015-05-05T10:00:00+05:30",
    "isFavorite": True,
    "rating": 3,
}


@pytest.mark.parametrize("profile", PROFILES)
async def test_force_mode_reuploads_and_reapplies_metadata(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    loser = fake.find_asset("s13_small_archived.jpg")  # archived; give it metadata the file lacks
    fake.update_asset_metadata(loser, **API_ONLY)
    album = next(al["id"] for al in fake.albums if al["albumName"] == "Holidays 2021")
    tag = next(t["id"] for t in fake.tags if t["value"] == "seed/keep-me")
    async with connected(fake) as c:
        await c.add_to_album(album, [loser])
        await c.tag_assets(tag, [loser])
        before = fake.asset(loser)
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()  # the purge
        losers = trashed_losers(plan)
        assert [await c.asset_or_none(i) for i in losers] == [None] * len(losers)

        rep = await restore(c, tmp_path / "b")
        fake.run_jobs()  # sidecar write + re-extraction of the re-applied metadata
        n = len(fake.request_log)
        again = await restore(c, tmp_path / "b")
        second_run = fake.request_log[n:]

    assert rep.failed == 0, [a for a in rep.actions if a.action == "failed"]
    acts = by_asset(rep)
    assert {acts[i][0] for i in losers} == {"reupload"}
    new = acts[loser][1]
    assert new is not None
    assert new != loser
    a = fake.asset(new)
    assert a["checksum"] == before["checksum"]
    assert a["fileModifiedAt"] == before["fileModifiedAt"]
    assert a["originalFileName"] == "s13_small_archived.jpg"
    e = a["exifInfo"]
    assert e["description"] == API_ONLY["description"]
    assert (e["latitude"], e["longitude"]) == (19.076, 72.8777)
    instant = datetime.fromisoformat(e["dateTimeOriginal"])
    assert instant == datetime(2015, 5, 5, 4, 30, tzinfo=UTC)
    assert offset_minutes(e["timeZone"], instant) == 330  # UTC+5:30, or Asia/Kolkata from GPS
    assert a["isFavorite"] is True
    assert e["rating"] == 3
    assert a["visibility"] == "archive"
    assert album in album_ids_of(fake, new)
    assert tag in tag_ids_of(fake, new)
    # Upload parts differ by version: v1/v2 need deviceAssetId/deviceId, v3 has none.
    assert ("deviceAssetId" in a) is (profile != "v3")
    # Every loser is back with its albums and tags (from the manifest).
    store = BackupStore.open_existing(tmp_path / "b")
    for m in store.manifests():
        for ma in m.losers:
            nid = acts[ma.asset_id][1]
            assert nid is not None
            assert {al.id for al in ma.albums} <= album_ids_of(fake, nid)
            assert {t.id for t in ma.tags} <= tag_ids_of(fake, nid)
    # Recorded for later runs, and a second run changes nothing.
    assert read_mapping(tmp_path / "b") == {i: acts[i][1] for i in losers}
    assert by_asset(again) == {i: ("already_present", new) for i, (_, new) in acts.items()}
    assert {x.action for x in again.actions} == {"already_present"}
    assert changing(second_run) == []


async def test_live_photo_video_is_uploaded_first_and_linked(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        g = group_of(plan, "s15_plain_copy.jpg")
        still = g.losers[0]
        video = g.consolidated.live_photo_video_id
        assert video is not None
        fake.purge(video)  # gone too, although execute linked it to the winner
        rep = await restore(c, tmp_path / "b")
    acts = by_asset(rep)
    assert acts[video][0] == "reupload"
    assert acts[still][0] == "reupload"
    new_video, new_still = acts[video][1], acts[still][1]
    assert new_video is not None
    assert new_still is not None
    assert fake.asset(new_still)["livePhotoVideoId"] == new_video
    assert fake.asset(new_video)["visibility"] == "hidden"
    uploads = [r.t_start for r in fake.request_log if r.method == "POST" and r.path == "/api/assets"]
    assert len(uploads) == len(trashed_losers(plan)) + 1


async def test_lost_record_finds_the_reupload_by_checksum(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        first = await restore(c, tmp_path / "b")
        for p in (tmp_path / "b").glob("restore-*.json"):
            p.unlink()  # a run killed before it wrote its record
        fake.run_jobs()
        n = len(fake.request_log)
        again = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    assert by_asset(again) == {i: ("already_present", new) for i, (_, new) in by_asset(first).items()}
    assert {k for k, _ in by_asset(first).values()} == {"reupload", "already_present"}
    assert changing(log) == []
    assert any(r.path == "/api/assets/bulk-upload-check" for r in log)


async def test_trashed_reupload_is_restored_from_trash(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        first = await restore(c, tmp_path / "b")
        old, (_, new) = next((i, v) for i, v in by_asset(first).items() if v[0] == "reupload")
        assert new is not None
        fake.trash_asset(new)
        again = await restore(c, tmp_path / "b")
    assert by_asset(again)[old] == ("from_trash", new)
    assert fake.asset(new)["isTrashed"] is False
    assert not [a for a in again.actions if a.action not in ("already_present", "from_trash")]


async def test_purged_from_trash_and_damaged_backup_file_fails(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b")
        good, bad = group_of(plan, "s04_large_nodesc.jpg").losers[0], group_of(plan, "s01_large_nogps.jpg").losers[0]
        fake.purge(good)
        fake.purge(bad)
        store = BackupStore.open_existing(tmp_path / "b")
        ma = next(x for m in store.manifests() for x in m.losers if x.asset_id == bad)
        path = store.resolve_file(ma.file)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        rep = await restore(c, tmp_path / "b")
    acts = by_asset(rep)
    assert acts[good][0] == "reupload"
    assert acts[bad] == ("failed", None)
    assert "damaged" in next(a.detail for a in rep.actions if a.asset_id == bad)
    assert rep.failed == 1
    others = [i for i in trashed_losers(plan) if i not in (good, bad)]
    assert {acts[i][0] for i in others} == {"from_trash"}


# --------------------------------------------------------------------------- dry run


@pytest.mark.parametrize("force", [False, True])
async def test_dry_run_sends_nothing_that_changes(force: bool, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=force)
        fake.run_jobs()
        state = {i: fake.asset(i)["isTrashed"] for i in fake.asset_ids()}
        n = len(fake.request_log)
        rep = await restore(c, tmp_path / "b", dry_run=True)
        log = fake.request_log[n:]
    losers = trashed_losers(plan)
    want = "reupload" if force else "from_trash"
    assert {by_asset(rep)[i][0] for i in losers} == {want}
    assert rep.dry_run is True
    assert changing(log) == []
    assert {i: fake.asset(i)["isTrashed"] for i in fake.asset_ids()} == state
    assert list((tmp_path / "b").glob("restore-*.json")) == []
    assert rep.record_file is None


# --------------------------------------------------------------------------- refusals


async def test_edited_manifest_missing_dir_and_foreign_backup_are_refused(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    _, key2 = fake.add_user("user2")
    async with connected(fake) as c:
        await executed(c, tmp_path / "b")
        n = len(fake.request_log)
        with pytest.raises(BackupError, match="does not exist"):
            await restore(c, tmp_path / "nowhere")
        (tmp_path / "plain").mkdir()
        with pytest.raises(BackupError, match="not an immich-dupes backup"):
            await restore(c, tmp_path / "plain")
        assert fake.request_log[n:] == []
    async with connected(fake, key2) as c2:
        n = len(fake.request_log)
        with pytest.raises(WrongServer, match="belongs to user"):
            await restore(c2, tmp_path / "b")
        assert changing(fake.request_log[n:]) == []
    manifest = next((tmp_path / "b" / "groups").glob("*/manifest.json"))
    body = json.loads(manifest.read_text())
    body["losers"][0]["asset"]["isFavorite"] = not body["losers"][0]["asset"].get("isFavorite")
    manifest.write_text(json.dumps(body))
    async with connected(fake) as c:
        n = len(fake.request_log)
        with pytest.raises(BackupError, match="edited or damaged"):
            await restore(c, tmp_path / "b")
        assert fake.request_log[n:] == []


async def test_force_deleted_not_yet_purged_fails_clearly_then_reuploads(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3", jobs_mode="manual")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        losers = trashed_losers(plan)
        assert all(fake.asset(i)["isTrashed"] for i in losers)  # deleted, purge job still queued
        early = await restore(c, tmp_path / "b")
        fake.run_jobs()  # the purge
        later = await restore(c, tmp_path / "b")
    assert {by_asset(early)[i][0] for i in losers} == {"failed"}
    assert all("not yet purged" in a.detail for a in early.actions if a.asset_id in losers)
    assert {by_asset(later)[i][0] for i in losers} == {"reupload"}
    assert later.failed == 0


@pytest.mark.parametrize("force", [False, True], ids=["trash", "force"])
async def test_restore_survives_transient_server_errors(force: bool, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=force)
        fake.run_jobs()
    fake.faults = "5xx=0.3,seed=3"  # every request kind retried by the client (all idempotent here)
    async with ImmichClient(
        URL, fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8,
        max_retries=8, backoff_base=0.0,
    ) as c:
        rep = await restore(c, tmp_path / "b")
        fake.faults = None
        fake.run_jobs()
        again = await restore(c, tmp_path / "b")
    assert rep.failed == 0, [a.detail for a in rep.actions if a.action == "failed"]
    assert any(r.fault for r in fake.request_log)
    losers = trashed_losers(plan)
    assert {by_asset(rep)[i][0] for i in losers} == {"reupload" if force else "from_trash"}
    assert {a.action for a in again.actions} == {"already_present"}


async def test_same_bytes_under_another_asset_are_left_alone_and_the_loser_fails(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        loser = group_of(plan, "s11_large_plain.jpg").losers[0]  # a favorite, in an album
        store = BackupStore.open_existing(tmp_path / "b")
        ma = next(x for m in store.manifests() for x in m.losers if x.asset_id == loser)
        # Someone imported the same bytes again under another name before the restore.
        other = await c.upload(
            store.resolve_file(ma.file), filename="imported-again.jpg",
            file_created_at=datetime(2020, 1, 1, tzinfo=UTC), file_modified_at=datetime(2020, 1, 1, tzinfo=UTC),
            checksum=ma.sha1_b64,
        )
        assert fake.asset(other.id)["isFavorite"] is False
        n = len(fake.request_log)
        rep = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    act = next(a for a in rep.actions if a.asset_id == loser)
    # The photo is on the server, but not the loser's own albums/tags/favorite: that is a failure
    # for the user to check, not "already present".
    assert act.action == "failed"
    assert act.new_asset_id is None
    assert other.id in act.detail
    assert "imported-again.jpg" in act.detail
    assert "not re-applied" in act.detail
    assert not [r for r in log if r.method == "PUT" and other.id in r.path]
    assert album_ids_of(fake, other.id) == set()
    assert tag_ids_of(fake, other.id) == set()
    assert fake.asset(other.id)["isFavorite"] is False
    assert loser not in read_mapping(tmp_path / "b")
    assert rep.failed == 1


async def test_still_from_trash_is_linked_to_its_reuploaded_motion_part(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b")
        g = group_of(plan, "s15_plain_copy.jpg")
        still, video = g.losers[0], g.consolidated.live_photo_video_id
        assert video is not None
        assert fake.asset(still)["isTrashed"] is True
        fake.purge(video)  # the motion part is gone; the trashed still loses its link
        assert fake.asset(still)["livePhotoVideoId"] is None
        rep = await restore(c, tmp_path / "b")
        n = len(fake.request_log)
        again = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    acts = by_asset(rep)
    assert acts[still] == ("from_trash", None)
    assert acts[video][0] == "reupload"
    assert fake.asset(still)["livePhotoVideoId"] == acts[video][1]
    assert {a.action for a in again.actions} == {"already_present"}
    assert changing(log) == []


async def test_restore_removes_what_a_killed_runs_atomic_writes_left_and_a_dry_run_does_not(
    tmp_path: Path,
) -> None:
    """A restore killed while writing its record leaves ``.restore-….json.<x>.tmp``: the next
    restore, the only writer under the folder's lock, removes it; a dry run writes nothing."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    async with connected(fake) as c:
        await executed(c, backup)
        stale = backup / ".restore-20261124T000000.000000Z.json.k1ll3d.tmp"
        stale.write_text("{")
        await restore(c, backup, dry_run=True)
        assert stale.exists()
        await restore(c, backup)
    assert not stale.exists()


# --------------------------------------------------------------------------- keepers


async def test_restore_lists_the_keepers_own_values_execute_wrote_over(tmp_path: Path) -> None:
    """Restore brings back losers, not the keepers' values: where the review took a loser's
    description or GPS over the keeper's own, the backup keeps what the keeper held and restore
    says it (output and record); a value the keeper lacked and got is not listed."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    async with connected(fake) as c:
        plan = await analyze(c)
        sunset = group_of(plan, "s16_large_sunset.jpg")
        berlin = group_of(plan, "s02_large_berlin.jpg")
        nodesc = group_of(plan, "s04_large_nodesc.jpg")
        own_description = sunset.winner_asset.description
        own_gps = (berlin.winner_asset.latitude, berlin.winner_asset.longitude)
        assert own_description
        assert None not in own_gps
        chosen = {
            sunset.duplicate_id: set_source(sunset, "description", sunset.losers[0]),
            berlin.duplicate_id: set_source(berlin, "gps", berlin.losers[0]),
        }
        plan.groups = [accept(chosen.get(g.duplicate_id, g)) for g in plan.groups]
        rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
        assert rep.failed == 0
        assert fake.asset(sunset.winner)["exifInfo"]["description"] != own_description
        dry = await restore(c, backup, dry_run=True)
        back = await restore(c, backup)
    lat, lon = own_gps
    assert lat is not None
    assert lon is not None
    for r in (dry, back):
        listed = {(k.winner_id, k.field): k.before for k in r.keepers}
        assert listed[(sunset.winner, "description")] == own_description
        assert listed[(berlin.winner, "GPS")] == f"{lat:.6f}, {lon:.6f}"
        assert (nodesc.winner, "description") not in listed  # it had none of its own
    # restore did not change the keeper: the listed value is information, not an action
    assert fake.asset(sunset.winner)["exifInfo"]["description"] != own_description
    assert back.record_file is not None
    record = json.loads(back.record_file.read_text())
    assert {"winner_id": sunset.winner, "field": "description", "before": own_description}.items() <= next(
        k for k in record["keepers_written_over"] if k["winner_id"] == sunset.winner).items()
    text = "\n".join(render_keepers(back))
    assert f"description was {own_description!r}" in text
    assert "Keepers are not touched" in text


def test_a_manifest_written_before_keepers_were_kept_still_verifies(tmp_path: Path) -> None:
    """Manifests of earlier versions have no ``winner``: their content hash leaves it out."""
    gid, wid = "0f7a5a3e-1111-4c8e-9a0b-000000000001", "0f7a5a3e-2222-4c8e-9a0b-000000000002"
    header = BackupHeader(server_url="http://h/api", user_id="u", plan_sha256="x", created_at=datetime.now(UTC))
    store = BackupStore.open_or_create(tmp_path / "b", header)
    m = GroupManifest(duplicate_id=gid, winner_id=wid, mode="trash", losers=[])
    body = m.model_dump(mode="json", exclude={"integrity", "winner"})
    body["integrity"] = hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    path = store.manifest_path(gid)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(body))
    got = store.read_manifest(gid)
    assert got is not None
    assert got.winner is None
    with_winner = m.model_copy(update={"winner": {"id": wid}})
    assert with_winner.content_sha256() != got.content_sha256()


class _LoseOneAnswer(httpx.AsyncBaseTransport):
    """Forwards every request to the fake; the answer to the first one ``lose`` picks is lost
    (a connection reset after the server acted on it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, lose: Callable[[httpx.Request], bool]) -> None:
        self.inner = inner
        self.lose = lose
        self.lost = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.lost and self.lose(request):
            self.lost += 1
            await response.aread()
            raise httpx.ReadError("connection reset", request=request)
        return response


async def test_a_keeper_value_written_by_a_run_whose_answer_was_lost_is_still_listed(
    tmp_path: Path,
) -> None:
    """Review: the keeper's GPS update reached Immich but its answer was lost, so that run failed
    the group before journaling what it wrote; the next run found the keeper already holding the
    new value and wrote nothing. Restore must still list the keeper's own GPS."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    async with connected(fake) as c:
        plan = await analyze(c)
    berlin = group_of(plan, "s02_large_berlin.jpg")
    own = (berlin.winner_asset.latitude, berlin.winner_asset.longitude)
    chosen = set_source(berlin, "gps", berlin.losers[0])
    plan.groups = [accept(chosen if g.duplicate_id == berlin.duplicate_id else g) for g in plan.groups]

    def keeper_gps(r: httpx.Request) -> bool:
        return r.method == "PUT" and r.url.path == f"/api/assets/{berlin.winner}" and b"latitude" in r.content

    lossy = _LoseOneAnswer(fake.transport(), keeper_gps)
    async with ImmichClient(URL, fake.api_key, transport=lossy, rate_limit=10_000, max_retries=0) as c:
        first = await execute(c, plan, ExecuteOptions(backup_dir=backup))
    assert lossy.lost == 1
    assert next(o for o in first.outcomes if o.duplicate_id == berlin.duplicate_id).status == "failed"
    assert fake.asset(berlin.winner)["exifInfo"]["latitude"] != own[0]  # the write took effect
    async with connected(fake) as c:
        second = await execute(c, plan, ExecuteOptions(backup_dir=backup))
        assert second.failed == 0
        assert not any(ch.startswith("GPS") for o in second.outcomes
                       if o.duplicate_id == berlin.duplicate_id for ch in o.changes)
        rep = await restore(c, backup, dry_run=True)
    lat, lon = own
    assert lat is not None
    assert lon is not None
    listed = {(k.winner_id, k.field): k.before for k in rep.keepers}
    assert listed[(berlin.winner, "GPS")] == f"{lat:.6f}, {lon:.6f}"


def test_a_keeper_date_is_listed_in_its_local_time() -> None:
    """The before value of a date reads as Immich's date field takes it: local time, offset."""
    from immich_dupes.engine.restore import _local_date

    instant = datetime(2016, 1, 15, 14, 0, tzinfo=UTC)
    assert _local_date(instant, "Europe/Berlin") == "2016-01-15T15:00:00+01:00 (Europe/Berlin)"
    assert _local_date(instant, None) == "2016-01-15T14:00:00+00:00"


async def test_a_manifest_rebuilt_after_consolidation_keeps_no_snapshot_of_the_keeper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: a manifest missing on resume is written again from this run's listing, where
    the keeper already holds what consolidation wrote: that is no "before", so none is kept."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    async with connected(fake) as c:
        plan = await analyze(c)
        berlin = group_of(plan, "s02_large_berlin.jpg")
        chosen = set_source(berlin, "gps", berlin.losers[0])
        plan.groups = [accept(chosen if g.duplicate_id == berlin.duplicate_id else g) for g in plan.groups]
        with monkeypatch.context() as m:
            kill_after(m, "consolidated", berlin.duplicate_id)
            with pytest.raises(Killed):
                await execute(c, plan, ExecuteOptions(backup_dir=backup))
        store = BackupStore.open_existing(backup)
        first = store.read_manifest(berlin.duplicate_id)
        assert first is not None
        assert first.winner is not None  # written before consolidation: the keeper as it was
        store.manifest_path(berlin.duplicate_id).unlink()
        rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
        assert rep.failed == 0
        again = store.read_manifest(berlin.duplicate_id)
        assert again is not None
        assert again.winner is None
