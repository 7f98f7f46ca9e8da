"""verify against the fake Immich: clean after execute, every kind of anomaly, Immich's own changes."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from journal_kill import Killed, kill_after

from immich_dupes.analysis.decide import accept, set_action
from immich_dupes.analysis.plan import Action, GroupPlan, Plan
from immich_dupes.engine import verify as verify_module
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import BackupError
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.verify import VERIFY_PERMISSIONS, VerifyReport, WrongServer, verify
from immich_dupes.fake import FakeImmich
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import PermissionMissing

PROFILES = ["v1", "v2", "v3"]
URL = "http://fake-immich"
MINUS_0330 = "s20_large_nooffset.jpg"  # its consolidated date carries -03:30, which Immich drops
EXTERNAL = "s10_upload_large.jpg"  # its loser is in an external library: execute skips it


@asynccontextmanager
async def connected(fake: FakeImmich, key: str | None = None) -> AsyncIterator[ImmichClient]:
    async with ImmichClient(
        URL, key or fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8,
        max_retries=1, backoff_base=0.0,
    ) as c:
        yield c


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


def edit(plan: Plan, winner_file: str, new: GroupPlan) -> None:
    plan.groups = [new if g.winner_asset.file_name == winner_file else g for g in plan.groups]


async def accepted_plan(c: ImmichClient, skip: Iterable[str] = (MINUS_0330,)) -> Plan:
    plan = await analyze(c)
    plan.groups = [accept(g) for g in plan.groups]
    for name in skip:
        edit(plan, name, set_action(group_of(plan, name), Action.SKIP))
    plan.refresh_counts()
    return plan


async def run_execute(c: ImmichClient, plan: Plan, backup: Path, force: bool = False) -> None:
    rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=force))
    assert rep.failed == 0, [o for o in rep.outcomes if o.status == "failed"]


def anomalies(rep: VerifyReport) -> set[tuple[str, str]]:
    """(winner file of the group, field) of every anomaly."""
    return {(f.duplicate_id, f.field) for f in rep.anomalies}


def gid(plan: Plan, winner_file: str) -> str:
    return group_of(plan, winner_file).duplicate_id


# --------------------------------------------------------------------------- clean


@pytest.mark.parametrize("profile", PROFILES)
async def test_clean_after_execute(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    async with connected(fake) as c:
        await c.connect(VERIFY_PERMISSIONS)
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        n = len(fake.request_log)
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
        requests = fake.request_log[n:]

    assert rep.anomalies == []
    executed = [g for g in plan.groups if g.action is not Action.SKIP]
    assert rep.groups_checked == len(executed)
    assert rep.groups_ok == len(executed) - 1  # the external-library group, skipped on purpose
    assert rep.groups_skipped == 2  # the plan's skip + execute's skip
    assert rep.groups_not_executed == 0
    skipped = [f for f in rep.notes if f.field == "execute"]
    assert [f.duplicate_id for f in skipped] == [gid(plan, EXTERNAL)]
    assert "external library" in skipped[0].message
    # Requests are few: one read per kept copy of a checked group, one checksum check for all the
    # losers, the album listing once, no writes.
    checked = [g for g in executed if g.duplicate_id != gid(plan, EXTERNAL)]
    reads = [r for r in requests if r.method == "GET" and r.path.startswith("/api/assets/")]
    assert len(reads) == sum(len(g.keep) for g in checked)
    assert not {r.path.rsplit("/", 1)[1] for r in reads} & {i for g in checked for i in g.losers}
    bulk = [r for r in requests if r.path == "/api/assets/bulk-upload-check"]
    assert len(bulk) == 1
    assert all(r.method == "GET" or r.path in ("/api/search/metadata", bulk[0].path) for r in requests)
    assert len([r for r in requests if r.path == "/api/albums"]) == 2  # owned + shared, once


@pytest.mark.parametrize("profile", PROFILES)
async def test_without_backup_dir_unexecuted_groups_are_anomalies(profile: str) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        rep = await verify(c, plan)
    resolve = [g for g in plan.groups if g.action is Action.RESOLVE]
    assert rep.groups_not_executed == len(resolve)
    assert rep.groups_ok == 0
    assert {f.duplicate_id for f in rep.anomalies} == {g.duplicate_id for g in resolve}
    assert all("not executed" in f.message for f in rep.anomalies)


async def test_without_backup_dir_a_skipped_group_is_not_executed(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        rep = await verify(c, plan)
    # Exit 0 must mean everything done: without the backup's report, the external group that
    # execute skipped is indistinguishable from one never run.
    assert anomalies(rep) == {(gid(plan, EXTERNAL), "execute")}
    assert rep.groups_not_executed == 1


# --------------------------------------------------------------------------- anomalies


@pytest.mark.parametrize("profile", PROFILES)
async def test_changes_after_execute_are_anomalies(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()

        # Someone trashes a winner, restores a loser, moves GPS, removes an album and a tag,
        # un-favorites, changes a rating and a description.
        desc = group_of(plan, "s04_large_nodesc.jpg")
        fake.trash_asset(desc.winner)
        rome = group_of(plan, "s13_large_timeline.jpg")
        await c.restore_from_trash(rome.losers)
        gps = group_of(plan, "s01_large_nogps.jpg")
        fake.update_asset_metadata(gps.winner, latitude=10.0, longitude=10.0)
        fav = group_of(plan, "s11_large_plain.jpg")
        album_id = fav.consolidated.album_ids[0]
        await c.request("DELETE", f"/albums/{album_id}/assets", json_body={"ids": [fav.winner]})
        fake.update_asset_metadata(fav.winner, isFavorite=False)
        tagged = group_of(plan, "s12_large_plain.jpg")
        tag_id = tagged.consolidated.tag_ids[0]
        await c.request("DELETE", f"/tags/{tag_id}/assets", json_body={"ids": [tagged.winner]})
        fake.update_asset_metadata(tagged.winner, rating=2)
        sunset = group_of(plan, "s16_large_sunset.jpg")
        fake.update_asset_metadata(sunset.winner, description="changed by someone")

        rep = await verify(c, plan, backup_dir=tmp_path / "b")

    assert anomalies(rep) == {
        (desc.duplicate_id, "present"),
        (rome.duplicate_id, "loser"),
        (gps.duplicate_id, "gps"),
        (fav.duplicate_id, "album"),
        (fav.duplicate_id, "favorite"),
        (tagged.duplicate_id, "tag"),
        (tagged.duplicate_id, "rating"),
        (sunset.duplicate_id, "description"),
    }
    by = {(f.duplicate_id, f.field): f for f in rep.anomalies}
    assert "in the trash" in by[(desc.duplicate_id, "present")].message
    assert "not in the trash" in by[(rome.duplicate_id, "loser")].message
    assert by[(gps.duplicate_id, "gps")].actual == "10.000000, 10.000000"
    assert "Seed album" in by[(fav.duplicate_id, "album")].message
    assert by[(tagged.duplicate_id, "rating")].expected == "4"
    assert by[(tagged.duplicate_id, "rating")].actual == "2"
    assert rep.groups_ok == rep.groups_checked - 1 - 6  # external skipped, six groups changed


async def test_gps_not_carried_is_an_anomaly(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        # The plan says the winner gets Paris; execute runs a plan without it, verify the real one.
        g = group_of(plan, "s01_large_nogps.jpg")
        without = plan.model_copy(deep=True)
        wg = group_of(without, "s01_large_nogps.jpg")
        wg.consolidated.latitude = wg.consolidated.longitude = None
        await run_execute(c, without, tmp_path / "b")
        fake.run_jobs()
        rep = await verify(c, plan)
    f = next(f for f in rep.anomalies if f.duplicate_id == g.duplicate_id)
    assert f.field == "gps"
    assert f.message == "GPS position not carried to the winner"
    assert f.actual == "none"


# --------------------------------------------------------------------------- Immich's own changes


@pytest.mark.parametrize("profile", PROFILES)
async def test_zone_replaced_by_gps_zone_is_a_note(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile, jobs_mode="manual")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        # A reviewer carries a +09:00 date onto a winner that gets Paris GPS.
        g = group_of(plan, "s01_large_nogps.jpg")
        g.consolidated.date_time_original = "2019-07-04T18:30:00+09:00"
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()  # sidecar write + re-extraction: the zone becomes Europe/Paris
        assert fake.asset(g.winner)["exifInfo"]["timeZone"] == "Europe/Paris"
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
    assert rep.anomalies == []
    note = next(f for f in rep.notes if f.field == "date")
    assert note.duplicate_id == g.duplicate_id
    assert "Europe/Paris" in note.message
    assert "same instant" in note.message
    # The Reykjavík copy's +00:00 became Atlantic/Reykjavik: same offset, still reported.
    ice = group_of(plan, "s06_png_nometa.png")
    assert any(f.duplicate_id == ice.duplicate_id and "Atlantic/Reykjavik" in f.message for f in rep.notes)


@pytest.mark.parametrize("profile", PROFILES)
async def test_dropped_negative_half_hour_offset_is_an_anomaly(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile, jobs_mode="manual")
    async with connected(fake) as c:
        plan = await accepted_plan(c, skip=())
        g = group_of(plan, MINUS_0330)
        assert g.consolidated.date_time_original == "2016-01-15T14:00:00-03:30"
        await run_execute(c, plan, tmp_path / "b")
        if profile != "v1":  # from 2.4 the API answers with the new date and offset at once
            before = await verify(c, plan, backup_dir=tmp_path / "b")
            assert before.anomalies == []
        fake.run_jobs()  # ... and the re-extraction silently drops -03:30
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
    assert anomalies(rep) == {(g.duplicate_id, "date")}
    f = rep.anomalies[0]
    assert "Immich dropped the offset -03:30" in f.message
    assert f.expected == "2016-01-15T14:00:00-03:30"


# --------------------------------------------------------------------------- trash, force, purge


@pytest.mark.parametrize("profile", PROFILES)
async def test_purged_losers_after_force_count_as_gone(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b", force=True)
        fake.run_jobs()  # the purge
        losers = [i for g in plan.groups if g.action is Action.RESOLVE for i in g.losers
                  if g.duplicate_id != gid(plan, EXTERNAL)]
        assert [await c.asset_or_none(i) for i in losers] == [None] * len(losers)
        with_b = await verify(c, plan, backup_dir=tmp_path / "b")
        without_b = await verify(c, plan)
    assert with_b.anomalies == []
    assert not [f for f in with_b.notes if f.field == "loser"]
    assert anomalies(without_b) == {(gid(plan, EXTERNAL), "execute")}


async def test_loser_purged_from_trash_is_a_note(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        g = group_of(plan, "s04_large_nodesc.jpg")
        fake.purge(g.losers[0])  # the nightly trash cleanup
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
    assert rep.anomalies == []
    note = next(f for f in rep.notes if f.field == "loser")
    assert note.asset_id == g.losers[0]
    assert "purged" in note.message


async def test_other_read_errors_fail_verify(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        g = group_of(plan, "s04_large_nodesc.jpg")
        fake.faults = f"503=1.0@/assets/{g.winner}"  # beyond the client's retries
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
    bad = [f for f in rep.anomalies if f.duplicate_id == g.duplicate_id]
    assert [f.field for f in bad] == ["read"]
    assert "503" in bad[0].message
    assert rep.groups_ok == rep.groups_checked - 2  # the external group and this one


async def test_scope_error_mid_run_raises() -> None:
    # A caller that did not pre-check the scopes (the CLI does: exit 3 before any read) finds
    # out at the first asset read; that is an error, never "gone".
    fake = FakeImmich(library="sample", profile="v3")
    key = fake.add_api_key(fake.user_id, ["user.read", "album.read", "duplicate.read"])
    async with connected(fake) as admin:
        plan = await accepted_plan(admin)
    async with connected(fake, key) as c:
        await c.connect()
        with pytest.raises(PermissionMissing) as e:
            await verify(c, plan)
    assert e.value.permission == "asset.read"


# --------------------------------------------------------------------------- keep_all and stack


@pytest.mark.parametrize("profile", PROFILES)
async def test_keep_all_and_stack_groups(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        edit(plan, "s04_large_nodesc.jpg", set_action(group_of(plan, "s04_large_nodesc.jpg"), Action.KEEP_ALL))
        edit(plan, "s01_large_nogps.jpg", set_action(group_of(plan, "s01_large_nogps.jpg"), Action.STACK))
        before = await verify(c, plan)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
        # The stack is broken up by someone afterwards.
        stack_group = group_of(plan, "s01_large_nogps.jpg")
        stack_id = fake.asset(stack_group.winner)["stack"]["id"]
        await c.request("DELETE", f"/stacks/{stack_id}")
        after = await verify(c, plan, backup_dir=tmp_path / "b")
    keep = gid(plan, "s04_large_nodesc.jpg")
    stack = gid(plan, "s01_large_nogps.jpg")
    assert (keep, "execute") in anomalies(before)
    assert (stack, "execute") in anomalies(before)
    assert rep.anomalies == []
    ok = {f.duplicate_id for f in rep.findings if f.severity == "ok"}
    assert {keep, stack} <= ok
    assert {k for k in anomalies(after) if k[0] == stack} == {(stack, "stack")}


# --------------------------------------------------------------------------- binding


async def test_plan_of_another_user_or_server_is_refused() -> None:
    fake = FakeImmich(library="sample", profile="v3")
    _, key2 = fake.add_user("user2", library="empty")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
    n = len(fake.request_log)
    async with connected(fake, key2) as c2:
        with pytest.raises(WrongServer, match="belongs to user"):
            await verify(c2, plan)
    other = plan.model_copy(update={"server_url": "http://elsewhere:2283/api"})
    async with connected(fake) as c:
        with pytest.raises(WrongServer, match="made for http://elsewhere"):
            await verify(c, other)
    assert isinstance(WrongServer("x"), ValueError)
    assert all(r.method == "GET" for r in fake.request_log[n:])
    assert not any(r.path.startswith("/api/assets/") for r in fake.request_log[n:])


async def test_backup_of_an_edited_plan_is_used_with_a_warning(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    events: list[Event] = []
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        plan.groups[0].note = "edited in review after execute"
        rep = await verify(c, plan, events.append, backup_dir=tmp_path / "b")
        # A backup directory of another user's library is refused.
        shutil.copytree(tmp_path / "b", tmp_path / "other")
        header = tmp_path / "other" / "immich-dupes-backup.json"
        body = json.loads(header.read_text())
        body["user_id"] = "00000000-0000-4000-8000-000000000001"
        header.write_text(json.dumps(body))
        with pytest.raises(BackupError, match="another user.s library"):
            await verify(c, plan, backup_dir=tmp_path / "other")
    assert rep.anomalies == []
    assert rep.groups_skipped == 2
    assert any(e.level == "warning" and "another version of this plan" in e.message for e in events)


async def test_without_backup_dir_a_group_skipped_on_purpose_says_why_and_points_to_b(tmp_path: Path) -> None:
    """execute --skip-review, then verify: without -b the plan alone cannot tell a group skipped
    on purpose from a run never made (an anomaly, which says so and points to -b); with -b the
    backup's records tell, and the same groups are notes."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await analyze(c)  # nothing reviewed
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b", skip_review=True))
        assert rep.failed == 0
        fake.run_jobs()
        without_b = await verify(c, plan)
        with_b = await verify(c, plan, backup_dir=tmp_path / "b")
    unreviewed = {g.duplicate_id for g in plan.groups if g.needs_review}
    assert {f.duplicate_id for f in without_b.anomalies} == unreviewed
    hint = ("; execute leaves it alone (needs review and was not reviewed): "
            "verify -b BACKUP_DIR reads what it did")
    assert all(f.message == "not executed: no loser is in the trash" + hint for f in without_b.anomalies)
    assert with_b.anomalies == []
    assert {f.duplicate_id for f in with_b.notes if f.field == "execute"} == unreviewed


async def test_a_group_execute_should_have_run_gets_no_such_hint() -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        rep = await verify(c, plan)  # execute never ran
    messages = {f.duplicate_id: f.message for f in rep.anomalies}
    assert messages[gid(plan, EXTERNAL)].endswith("verify -b BACKUP_DIR reads what it did")
    others = [m for d, m in messages.items() if d != gid(plan, EXTERNAL)]
    assert others
    assert all(m == "not executed: no loser is in the trash" for m in others)


async def test_with_b_after_a_killed_run_a_skipped_group_says_to_run_execute_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run killed before it wrote its report leaves no record of the groups it skipped
    (skips are not journaled): verify -b calls them not run, says why execute leaves them
    alone, and that running execute again finishes the run; after that, they are notes."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    async with connected(fake) as c:
        plan = await analyze(c)  # nothing reviewed
        acting = next(g for g in plan.groups if not g.needs_review)
        with monkeypatch.context() as m:
            kill_after(m, "group_begin", acting.duplicate_id)
            with pytest.raises(Killed):
                await execute(c, plan, ExecuteOptions(backup_dir=backup, skip_review=True))
        killed = await verify(c, plan, backup_dir=backup)
        rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, skip_review=True))
        assert rep.failed == 0
        fake.run_jobs()
        finished = await verify(c, plan, backup_dir=backup)
    unreviewed = {g.duplicate_id for g in plan.groups if g.needs_review}
    hinted = {f.duplicate_id for f in killed.anomalies if f.message.endswith(
        "; execute leaves it alone (needs review and was not reviewed): "
        "run execute again to finish the run")}
    assert hinted == unreviewed
    assert finished.anomalies == []
    assert {f.duplicate_id for f in finished.notes if f.field == "execute"} == unreviewed


# --------------------------------------------------------------------------- losers by checksum


def loser_reads(fake: FakeImmich, n: int, plan: Plan) -> set[str]:
    """The losers of ``plan`` read one by one (GET /assets/{id}) since request ``n``."""
    losers = {i for g in plan.groups for i in g.losers}
    return {r.path.rsplit("/", 1)[1] for r in fake.request_log[n:]
            if r.method == "GET" and r.path.rsplit("/", 1)[1] in losers}


async def test_losers_are_checked_by_checksum_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a loser is in the trash comes from bulk-upload-check, 2 per request here: a loser
    restored from the trash since is found there, and none is read one by one."""
    monkeypatch.setattr(verify_module, "BULK_BATCH", 2)
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        rome = group_of(plan, "s13_large_timeline.jpg")
        await c.restore_from_trash(rome.losers)
        n = len(fake.request_log)
        rep = await verify(c, plan, backup_dir=tmp_path / "b")
    checks = [r for r in fake.request_log[n:] if r.path == "/api/assets/bulk-upload-check"]
    executed = [g for g in plan.groups if g.action is Action.RESOLVE and g.duplicate_id != gid(plan, EXTERNAL)]
    losers = sum(len(g.losers) for g in executed)
    assert len(checks) == (losers + 1) // 2
    assert loser_reads(fake, n, plan) == set()
    assert anomalies(rep) == {(rome.duplicate_id, "loser")}
    assert "not in the trash" in rep.anomalies[0].message


async def test_a_checksum_answered_by_another_asset_is_read_by_id(tmp_path: Path) -> None:
    """Only an answer naming the loser's own id counts: with the winner's checksum in the plan,
    Immich names the winner (not in the trash), and verify reads the loser itself instead."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
        n = len(fake.request_log)
        await verify(c, plan)
        before = loser_reads(fake, n, plan)  # those of the group execute left alone (external)
        g = group_of(plan, "s04_large_nodesc.jpg")
        loser = g.asset(g.losers[0])
        same = loser.model_copy(update={"checksum": g.winner_asset.checksum})
        edit(plan, "s04_large_nodesc.jpg",
             g.model_copy(update={"assets": [same if a.id == loser.id else a for a in g.assets]}))
        n = len(fake.request_log)
        rep = await verify(c, plan)  # no -b: the edited group no longer matches execute's records
    assert loser.id not in before
    assert loser_reads(fake, n, plan) == before | {loser.id}
    assert [f for f in rep.anomalies if f.duplicate_id == g.duplicate_id] == []


@pytest.mark.parametrize("how", ["503", "no asset.upload", "403 on an old server"])
async def test_without_the_checksum_check_every_loser_is_read(how: str, tmp_path: Path) -> None:
    """A failed or refused bulk check costs requests, never a verdict: each loser is read."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        await run_execute(c, plan, tmp_path / "b")
        fake.run_jobs()
    key = fake.api_key
    if how == "503":
        fake.faults = "503=1.0@/assets/bulk-upload-check"
    else:
        key = fake.add_api_key(fake.user_id, [*VERIFY_PERMISSIONS])
    events: list[Event] = []
    async with connected(fake, key) as c:
        await c.connect(VERIFY_PERMISSIONS)
        if how == "403 on an old server":
            assert c.info is not None
            c.info.key = None  # before 1.139 the key's permissions are not known in advance
        n = len(fake.request_log)
        rep = await verify(c, plan, events.append, backup_dir=tmp_path / "b")
    checked = [g for g in plan.groups if g.action is Action.RESOLVE and g.duplicate_id != gid(plan, EXTERNAL)]
    assert loser_reads(fake, n, plan) == {i for g in checked for i in g.losers}
    assert rep.anomalies == []
    checks = [r for r in fake.request_log[n:] if r.path == "/api/assets/bulk-upload-check"]
    # 503: one try and the client's one retry; a key known to lack asset.upload: not even asked
    assert len(checks) == {"503": 2, "no asset.upload": 0, "403 on an old server": 1}[how]
    if how != "no asset.upload":
        assert any("reading" in e.message for e in events)
