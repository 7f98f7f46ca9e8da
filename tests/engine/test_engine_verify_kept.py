"""verify after execute kept the winner's own GPS, date or description (edited in Immich after
analyze): a note for exactly the fields execute recorded keeping, an anomaly for anything else,
for a kept value that changed again, and for old backups that do not record what was kept."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from immich_dupes import cli
from immich_dupes.analysis.decide import accept
from immich_dupes.analysis.plan import GroupPlan, Plan, load_plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, ExecuteReport, execute
from immich_dupes.engine.journal import read_entries
from immich_dupes.engine.verify import Finding, GroupRecord, VerifyReport, WinnerKept, verify
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.fake.api import error_response
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import ImmichClient

ClientFactory = Callable[..., ImmichClient]
MakePlan = Callable[..., Awaitable[Plan]]

GPS = "s01_large_nogps.jpg"  # GPS comes from the loser
DESC = "s04_large_nodesc.jpg"  # description comes from the loser
DATE = "s20_large_nooffset.jpg"  # date (-03:30) comes from the loser
DATE_GPS = "s06_png_nometa.png"  # date and GPS from the loser: Immich re-zones from the GPS
CONTROL = "s12_large_plain.jpg"  # GPS from the loser, winner untouched
KEPT = "kept the winner's own edit made after analyze"

EDITED_GPS = (-33.5, 151.25)
EDITED_DESC = "Typed in Immich"
EDITED_DATE = "2003-03-03T03:03:03+00:00"


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


def gid(plan: Plan, winner_file: str) -> str:
    return group_of(plan, winner_file).duplicate_id


def edit_winners(fake: FakeImmich, plan: Plan) -> None:
    """A person corrects the winners in Immich after analyze, before execute."""
    fake.update_asset_metadata(group_of(plan, GPS).winner, latitude=EDITED_GPS[0], longitude=EDITED_GPS[1])
    fake.update_asset_metadata(group_of(plan, DESC).winner, description=EDITED_DESC)
    fake.update_asset_metadata(group_of(plan, DATE).winner, dateTimeOriginal=EDITED_DATE, timeZone="UTC")
    fake.update_asset_metadata(
        group_of(plan, DATE_GPS).winner, dateTimeOriginal="2004-04-04T04:04:04+05:00", timeZone="UTC+5"
    )


async def edited_and_executed(
    fake: FakeImmich, c: ImmichClient, make_plan: MakePlan, backup: Path
) -> tuple[Plan, ExecuteReport]:
    plan = await make_plan(fake)
    edit_winners(fake, plan)
    rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
    assert rep.failed == 0, [o for o in rep.outcomes if o.status == "failed"]
    fake.run_jobs()
    return plan, rep


def findings(rep: VerifyReport, plan: Plan, winner_file: str, fld: str) -> list[Finding]:
    g = gid(plan, winner_file)
    return [f for f in rep.findings if f.duplicate_id == g and f.field == fld]


def anomalies(rep: VerifyReport) -> set[tuple[str, str]]:
    return {(f.duplicate_id, f.field) for f in rep.anomalies}


# --------------------------------------------------------------------------- kept → note


@pytest.mark.parametrize("profile", ["v1", "v3"])
async def test_kept_edits_are_notes_not_anomalies(
    profile: str, tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample", profile=profile)
    c = fake_client(fake)
    plan, xrep = await edited_and_executed(fake, c, make_plan, tmp_path / "b")
    changes = {o.duplicate_id: o.changes for o in xrep.outcomes}
    assert "winner's GPS was edited since the plan; kept it" in changes[gid(plan, GPS)]
    assert "winner's description was edited since the plan; kept it" in changes[gid(plan, DESC)]
    assert "winner's date was edited since the plan; kept it" in changes[gid(plan, DATE)]
    assert "winner's date was edited since the plan; kept it" in changes[gid(plan, DATE_GPS)]

    rep = await verify(c, plan, backup_dir=tmp_path / "b")

    # Everything else went as planned (the external group is skipped by execute, a note).
    assert rep.anomalies == []
    for name, fld in ((GPS, "gps"), (DESC, "description"), (DATE, "date"), (DATE_GPS, "date")):
        [f] = findings(rep, plan, name, fld)
        assert f.severity == "note", f
        assert KEPT in f.message
    [gps] = findings(rep, plan, GPS, "gps")
    assert gps.expected == gps.actual == "-33.500000, 151.250000"
    [desc] = findings(rep, plan, DESC, "description")
    assert desc.actual == EDITED_DESC
    assert repr(group_of(plan, DESC).consolidated.description) in desc.message  # the plan's value is named
    [date] = findings(rep, plan, DATE, "date")
    assert date.expected.startswith("2003-03-03T03:03:03+00:00")
    # The kept +05:00 date, with Immich's zone now taken from the GPS that execute did carry.
    [dg] = findings(rep, plan, DATE_GPS, "date")
    assert dg.expected == "2004-04-04T04:04:04+05:00"
    assert "from the GPS position" in dg.message
    assert findings(rep, plan, DATE_GPS, "gps") == []  # the loser's GPS was carried as planned
    ok = {f.duplicate_id for f in rep.findings if f.severity == "ok" and f.field == "group"}
    assert {gid(plan, n) for n in (GPS, DESC, DATE, DATE_GPS)} <= ok
    assert rep.groups_ok == rep.groups_checked - 1  # all but the external group execute skipped

    # Without the backup directory verify cannot know what execute kept: as before, anomalies.
    bare = await verify(c, plan)
    want = {(gid(plan, GPS), "gps"), (gid(plan, DESC), "description"), (gid(plan, DATE), "date"),
            (gid(plan, DATE_GPS), "date")}
    assert want <= anomalies(bare)


async def test_what_execute_kept_is_in_the_journal_and_the_report(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan, xrep = await edited_and_executed(fake, fake_client(fake), make_plan, tmp_path / "b")
    done = {e["group"]: e for e in read_entries(tmp_path / "b" / "journal.jsonl") if e["kind"] == "group_done"}
    assert done[gid(plan, GPS)]["winner_kept"] == {"gps": {"latitude": -33.5, "longitude": 151.25}}
    assert done[gid(plan, DESC)]["winner_kept"] == {"description": EDITED_DESC}
    kept_date = done[gid(plan, DATE)]["winner_kept"]["date"]
    assert kept_date["timeZone"] == "UTC"
    assert kept_date["dateTimeOriginal"].startswith("2003-03-03T03:03:03")
    assert done[gid(plan, CONTROL)]["winner_kept"] == {}
    [report] = (tmp_path / "b").glob("report-*.json")
    body = json.loads(report.read_text())
    by_id = {o["duplicate_id"]: o for o in body["groups"]}
    assert by_id[gid(plan, GPS)]["winner_kept"] == done[gid(plan, GPS)]["winner_kept"]
    assert [o.winner_kept for o in xrep.outcomes if o.duplicate_id == gid(plan, DESC)] == [
        {"description": EDITED_DESC}
    ]


# --------------------------------------------------------------------------- still anomalies


async def test_a_kept_value_that_changed_again_is_an_anomaly(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    c = fake_client(fake)
    plan, _ = await edited_and_executed(fake, c, make_plan, tmp_path / "b")
    # Edited once more after execute: neither the plan's value nor the one execute kept.
    fake.update_asset_metadata(group_of(plan, GPS).winner, latitude=10.5, longitude=20.25)
    fake.update_asset_metadata(group_of(plan, DESC).winner, description="changed again")
    fake.update_asset_metadata(group_of(plan, DATE).winner, dateTimeOriginal="1999-09-09T09:09:09+00:00",
                               timeZone="UTC")
    fake.run_jobs()

    rep = await verify(c, plan, backup_dir=tmp_path / "b")

    assert anomalies(rep) == {(gid(plan, GPS), "gps"), (gid(plan, DESC), "description"), (gid(plan, DATE), "date")}
    for f in rep.anomalies:
        assert "changed again after execute kept the winner's own edit" in f.message
    [gps] = findings(rep, plan, GPS, "gps")
    assert (gps.expected, gps.actual) == ("-33.500000, 151.250000", "10.500000, 20.250000")
    [desc] = findings(rep, plan, DESC, "description")
    assert (desc.expected, desc.actual) == (EDITED_DESC, "changed again")
    # The group whose kept date was left alone is still a note.
    [dg] = findings(rep, plan, DATE_GPS, "date")
    assert dg.severity == "note"


async def test_only_the_fields_execute_kept_in_that_group_are_excused(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    c = fake_client(fake)
    plan, _ = await edited_and_executed(fake, c, make_plan, tmp_path / "b")
    control, gps = group_of(plan, CONTROL), group_of(plan, GPS)
    assert control.consolidated.latitude is not None
    assert gps.consolidated.rating is None
    # After execute: the control group's GPS moves (execute kept nothing there), and the group
    # whose GPS execute kept gets a rating the plan does not have.
    fake.update_asset_metadata(control.winner, latitude=EDITED_GPS[0], longitude=EDITED_GPS[1])
    fake.update_asset_metadata(gps.winner, rating=4)
    fake.run_jobs()

    rep = await verify(c, plan, backup_dir=tmp_path / "b")

    assert anomalies(rep) == {(control.duplicate_id, "gps"), (gps.duplicate_id, "rating")}
    [moved] = findings(rep, plan, CONTROL, "gps")
    assert KEPT not in moved.message
    assert "from the planned one" in moved.message
    [kept] = findings(rep, plan, GPS, "gps")
    assert kept.severity == "note"


def _checked(record: GroupRecord | None, plan: Plan, c: ImmichClient, name: str) -> Any:
    """Run verify's per-group check of one group against the server's current state."""
    from immich_dupes.engine.verify import _GroupCheck, read_assets

    g = group_of(plan, name)

    async def go() -> Any:
        assets = await read_assets(c, list(dict.fromkeys([*g.keep, *g.losers])))
        return _GroupCheck(plan, g, assets, None, record).run()

    return go()


async def test_a_record_kept_for_another_field_does_not_excuse_this_one(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    c = fake_client(fake)
    plan, _ = await edited_and_executed(fake, c, make_plan, tmp_path / "b")
    kept_gps = WinnerKept(gps=EDITED_GPS)
    kept_desc = WinnerKept(description=EDITED_DESC)
    # The GPS group's kept GPS, recorded as the description instead: the GPS is an anomaly.
    r = await _checked(GroupRecord("done", winner_kept=kept_desc), plan, c, GPS)
    assert r.state == "anomaly"
    assert {f.field for f in r.findings if f.severity == "anomaly"} == {"gps"}
    r = await _checked(GroupRecord("done", winner_kept=kept_gps), plan, c, GPS)
    assert r.state == "ok"
    # A kept value other than the one the winner holds: an anomaly.
    r = await _checked(GroupRecord("done", winner_kept=WinnerKept(gps=(10.5, 20.25))), plan, c, GPS)
    assert r.state == "anomaly"
    r = await _checked(GroupRecord("done", winner_kept=kept_gps), plan, c, DESC)
    assert r.state == "anomaly"
    assert {f.field for f in r.findings if f.severity == "anomaly"} == {"description"}


# --------------------------------------------------------------------------- old backups, resumes


def _strip_winner_kept(backup: Path) -> int:
    """Make the backup look like one written before execute recorded what it kept."""
    journal = backup / "journal.jsonl"
    lines = []
    stripped = 0
    for e in read_entries(journal):
        stripped += "winner_kept" in e
        e.pop("winner_kept", None)
        lines.append(json.dumps(e) + "\n")
    journal.write_text("".join(lines))
    for p in backup.glob("report-*.json"):
        body = json.loads(p.read_text())
        for o in body["groups"]:
            o.pop("winner_kept", None)
        p.write_text(json.dumps(body))
    return stripped


async def test_an_old_backup_without_the_record_verifies_as_before(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    c = fake_client(fake)
    plan, _ = await edited_and_executed(fake, c, make_plan, tmp_path / "b")
    assert _strip_winner_kept(tmp_path / "b") > 0

    rep = await verify(c, plan, backup_dir=tmp_path / "b")

    assert anomalies(rep) == {
        (gid(plan, GPS), "gps"), (gid(plan, DESC), "description"), (gid(plan, DATE), "date"),
        (gid(plan, DATE_GPS), "date"),
    }
    assert not [f for f in rep.findings if KEPT in f.message]
    [gps] = findings(rep, plan, GPS, "gps")
    assert "from the planned one" in gps.message
    [desc] = findings(rep, plan, DESC, "description")
    assert desc.message == "description differs from the plan"


def test_malformed_records_are_ignored_field_by_field() -> None:
    assert WinnerKept.from_json(None) == WinnerKept()
    assert WinnerKept.from_json({}) == WinnerKept()
    k = WinnerKept.from_json({
        "gps": {"latitude": "north", "longitude": 1.0},
        "date": {"dateTimeOriginal": "not a date", "timeZone": "UTC"},
        "description": 5,
    })
    assert k == WinnerKept()
    k = WinnerKept.from_json({
        "gps": {"latitude": True, "longitude": 1.0},
        "date": {"dateTimeOriginal": "2003-03-03T03:03:03+00:00", "timeZone": 7},
        "description": "ok",
    })
    assert k == WinnerKept(description="ok")
    k = WinnerKept.from_json({
        "gps": {"latitude": None, "longitude": None},
        "date": {"dateTimeOriginal": "2003-03-03T03:03:03+00:00", "timeZone": None},
    })
    assert k == WinnerKept(gps=(None, None), date=("2003-03-03T03:03:03+00:00", None))


async def test_a_resumed_run_still_records_what_the_first_run_kept(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    """Consolidated in one run, trashed and finished in the next: the record carries over."""
    fake = FakeImmich(library="sample")
    c = fake_client(fake)
    plan = await make_plan(fake)
    edit_winners(fake, plan)
    original = fake._respond

    def refuse_deletes(req: ApiRequest, decision: Any) -> Any:
        if req.method == "DELETE" and req.path == "/api/assets":
            return error_response(fake.profile_info, 500, "refused by the test", "test"), None
        return original(req, decision)

    fake._respond = refuse_deletes  # type: ignore[method-assign]
    first = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))
    assert {o.status for o in first.outcomes if o.duplicate_id == gid(plan, GPS)} == {"failed"}
    fake.__dict__.pop("_respond")
    second = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))
    assert second.failed == 0
    fake.run_jobs()
    [o] = [o for o in second.outcomes if o.duplicate_id == gid(plan, GPS)]
    assert o.status == "done"
    assert o.winner_kept == {"gps": {"latitude": -33.5, "longitude": 151.25}}

    rep = await verify(c, plan, backup_dir=tmp_path / "b")
    assert rep.anomalies == []
    [f] = findings(rep, plan, GPS, "gps")
    assert f.severity == "note"


# --------------------------------------------------------------------------- the command


def test_verify_command_exits_0_and_prints_the_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeImmich(library="sample")
    path, backup = tmp_path / "plan.json", tmp_path / "backup"
    with FakeServer(fake, port=0) as srv:

        async def go() -> Plan:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
                plan = await analyze(c)
                plan.groups = [accept(g) for g in plan.groups]
                save_plan(plan, path)
                plan = load_plan(path)
                edit_winners(fake, plan)
                rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
                assert rep.failed == 0
                return plan

        plan = asyncio.run(go())
        fake.run_jobs()
        capsys.readouterr()
        code = cli.main(["-u", srv.url, "-a", fake.api_key, "verify", str(path), "-b", str(backup),
                         "--rate-limit", "1000"])
        out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"note    gps: {KEPT} (execute did not overwrite it)" in out
    assert "ANOMALY" not in out
    assert plan.groups
