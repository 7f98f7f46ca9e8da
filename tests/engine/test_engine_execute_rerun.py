"""Execute the easy groups, review the rest, execute again: ONE backup folder per analysis.

A backup folder belongs to the analysis (the plan's server, user and ``created_at``), so a
reviewed version of the plan runs into the folder of the first run; each group is bound to the
version of it that execute started. Covered here against the fake: the whole workflow through
the CLI (the final server equals one run of the final plan, verify -b exits 0, restore -b brings
back the losers of both runs), a group edited after it was done (reported, not touched), a group
stopped at each journaled step and then edited (refused for that group only once a request may
have gone out; carried out with the new decision when it only has backups), a folder of an
older version (whole-plan rule as before), and a plan of a new analysis (refused).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from journal_kill import Killed, kill_after

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, Plan, load_plan, save_plan
from immich_dupes.cli import main
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import HEADER_NAME, JOURNAL_NAME, BackupError, BackupStore
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import (
    DONE_BEFORE,
    ExecuteOptions,
    ExecuteRefused,
    ExecuteReport,
    execute,
    group_sha256,
    load_states,
)
from immich_dupes.engine.journal import read_entries
from immich_dupes.engine.restore import restore
from immich_dupes.engine.verify import verify
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import ImmichClient

FAKE_URL = "http://fake-immich"
ClientFactory = Callable[..., Any]
MakePlan = Callable[..., Awaitable[Plan]]
OnRequest = Callable[[FakeImmich, Callable[[ApiRequest], None]], None]

EASY = "s11_large_plain.jpg"
"""A group that needs no review: two copies, done by ``execute --skip-review``."""


# --------------------------------------------------------------------------- helpers


def index_of(plan: Plan, winner_file: str) -> int:
    return next(i for i, g in enumerate(plan.groups) if g.winner_asset.file_name == winner_file)


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return plan.groups[index_of(plan, winner_file)]


def reviewed(plan: Plan) -> Plan:
    """What a person does in review: "accept all safe", then decide every flagged group —
    several of them otherwise than analyze proposed."""
    out = plan.model_copy(deep=True)
    groups: list[GroupPlan] = []
    for g in out.groups:
        name = g.winner_asset.file_name
        if name == "s05_a_large_dateonly.jpg":  # three copies: another keeper, and keep one more
            g = decide.set_winner(g, g.losers[0])
            g = decide.accept(decide.toggle_keep(g, g.losers[-1]))
        elif name == "s02_large_berlin.jpg":
            g = decide.accept(decide.set_winner(g, g.losers[0]))
        elif name == "s16_large_sunset.jpg":
            g = decide.set_action(g, Action.KEEP_ALL)
        elif name == "s03_large_plus0200.jpg":
            g = decide.set_action(g, Action.STACK)
        elif name == "s20_large_nooffset.jpg":  # -03:30: Immich would drop it (verify says so)
            g = decide.accept(decide.set_source(g, "datetime", None))
        elif name == "s10_upload_large.jpg":
            g = decide.accept(decide.allow_external_delete(g, True))
        else:
            g = decide.accept(g)  # "accept all safe" takes the groups already done too
        groups.append(g)
    out.groups = groups
    out.refresh_counts()
    return out


def swapped(plan: Plan, winner_file: str) -> Plan:
    """The plan with one group's keeper changed to its loser (a review edit of that group)."""
    out = plan.model_copy(deep=True)
    i = index_of(out, winner_file)
    g = out.groups[i]
    out.groups[i] = decide.accept(decide.set_winner(g, g.losers[0]))
    return out


def trashed(fake: FakeImmich) -> set[str]:
    return {i for i in fake.asset_ids() if fake.asset(i)["isTrashed"]}


async def reference_state(plan: Plan, tmp: Path) -> dict[str, Any]:
    """The server after ONE run of ``plan`` on a fresh fake of the same library (same ids)."""
    fake = FakeImmich(library="sample")
    ref = plan.model_copy(deep=True)
    ref.server_url = FAKE_URL
    async with ImmichClient(FAKE_URL, fake.api_key, transport=fake.transport(), rate_limit=10_000) as c:
        rep = await execute(c, ref, ExecuteOptions(backup_dir=tmp / "reference-backup"))
    assert rep.failed == 0, [o.reason for o in rep.outcomes if o.status == "failed"]
    return fake.state()


def is_changing(method: str, path: str) -> bool:
    return method not in ("GET", "HEAD") and path not in (
        "/api/search/metadata", "/api/assets/bulk-upload-check", "/api/download/info")


def changing_bodies(fake: FakeImmich, on_request: OnRequest) -> list[str]:
    """``"METHOD path body"`` of every request that changes the server, from now on."""
    seen: list[str] = []

    def hook(req: ApiRequest) -> None:
        if is_changing(req.method, req.path):
            seen.append(f"{req.method} {req.path} {req.body.decode('utf-8', 'replace')}")

    on_request(fake, hook)
    return seen


def mentions(requests: Iterable[str], ids: Iterable[str]) -> list[str]:
    return [r for r in requests if any(i in r for i in ids)]


def outcome(rep: ExecuteReport, gid: str) -> tuple[str, str]:
    o = next(o for o in rep.outcomes if o.duplicate_id == gid)
    return o.status, o.reason


# --------------------------------------------------------------------------- the workflow (CLI)


def _analyzed(fake: FakeImmich, url: str) -> Plan:
    async def go() -> Plan:
        async with ImmichClient(url, fake.api_key, rate_limit=10_000) as c:
            return await analyze(c)

    return asyncio.run(go())


def _cli(url: str, key: str, *args: str) -> int:
    return main(["-u", url, f"--api-key={key}", *args])


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample")
    with FakeServer(fake) as srv:
        yield fake, srv.url


def test_skip_review_then_review_then_execute_again_into_the_same_folder(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    key = fake.api_key
    path, backup = tmp_path / "plan.json", tmp_path / "backup"
    plan0 = _analyzed(fake, url)
    save_plan(plan0, path)
    trashed_before = trashed(fake)
    easy = {g.duplicate_id for g in plan0.groups if not g.needs_review}
    assert 0 < len(easy) < len(plan0.groups)

    # 1. The groups that need no review.
    code = _cli(url, key, "execute", "-i", str(path), "-b", str(backup), "--skip-review", "--yes",
                "--rate-limit", "1000")
    out, err = capsys.readouterr()
    assert code == 0, out + err
    first = trashed(fake) - trashed_before
    assert first

    # 2. Review edits the plan file; 3. execute again with the SAME folder.
    plan1 = reviewed(load_plan(path))
    save_plan(plan1, path)
    code = _cli(url, key, "execute", "-i", str(path), "-b", str(backup), "--yes", "--rate-limit", "1000")
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"{len(plan1.groups) - len(easy)} group(s) done, 0 skipped, 0 failed" in out
    assert f"{len(easy)} group(s) done by an earlier run into this backup folder: left as they are" in out
    last = json.loads(sorted(backup.glob("report-*.json"))[-1].read_text())
    statuses = {o["duplicate_id"]: (o["status"], o["reason"]) for o in last["groups"]}
    assert {s for s, _ in statuses.values()} == {"done"}
    # "accept all safe" on the groups done before is no edit of what execute does with them.
    assert {statuses[g][1] for g in easy} == {DONE_BEFORE}
    assert {o["duplicate_id"] for o in last["groups"] if o["earlier"]} == easy
    assert last["counts"]["done_before"] == len(easy)
    second = trashed(fake) - trashed_before - first
    assert second

    # The server is what ONE run of the final plan gives.
    got = fake.state()
    assert got == asyncio.run(reference_state(plan1, tmp_path))

    # verify -b covers the groups of both runs, and warns about nothing.
    code = _cli(url, key, "verify", str(path), "-b", str(backup))
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "another version" not in err
    assert "another analysis" not in err

    # restore -b brings back every loser of both runs.
    code = _cli(url, key, "restore", "-b", str(backup), "--yes", "--rate-limit", "1000")
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert trashed(fake) == trashed_before
    for g in plan1.groups:
        for i in g.losers if g.action is Action.RESOLVE else ():
            assert fake.asset(i)["isTrashed"] is False, i


# --------------------------------------------------------------------------- a group edited after it was done


async def test_a_group_edited_after_it_was_done_is_reported_and_not_touched(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan0 = await make_plan(fake, accept=False)
    rep1 = await execute(fake_client(fake), plan0, ExecuteOptions(backup, skip_review=True))
    g = group_of(plan0, EASY)
    assert outcome(rep1, g.duplicate_id)[0] == "done"
    after_first = fake.state()

    plan1 = swapped(plan0, EASY)  # now keep the other copy: too late, it is done
    assert group_sha256(plan1.group(g.duplicate_id)) != group_sha256(g)
    sent = changing_bodies(fake, on_request)
    events: list[Event] = []
    rep2 = await execute(fake_client(fake), plan1, ExecuteOptions(backup, skip_review=True), events.append)

    status, reason = outcome(rep2, g.duplicate_id)
    assert status == "done"
    assert "another version of this group" in reason
    assert "not applied" in reason
    assert rep2.failed == 0
    assert sent == []  # nothing else was left to do, and this group is not done again
    assert fake.state() == after_first
    assert fake.asset(g.winner)["isTrashed"] is False
    assert fake.asset(g.losers[0])["isTrashed"] is True
    assert any(e.level == "warning" and "1 group(s) were done in an earlier run with another version"
               in e.message for e in events)
    # Every other group done before keeps the plain reason.
    for o in rep2.outcomes:
        if o.status == "done" and o.duplicate_id != g.duplicate_id:
            assert o.reason == DONE_BEFORE

    # verify -b names that group as carried out with another version; none other.
    warned: list[Event] = []
    async with fake_client(fake) as c:
        vrep = await verify(c, plan1, warned.append, backup_dir=backup)
    warnings = [e.message for e in warned if e.level == "warning" and "another version" in e.message]
    assert len(warnings) == 1
    assert g.duplicate_id in warnings[0]
    assert "1 group(s)" in warnings[0]
    assert vrep.anomalies  # the server follows the earlier version, not this plan: said so
    quiet: list[Event] = []
    async with fake_client(fake) as c:
        vrep0 = await verify(c, plan0, quiet.append, backup_dir=backup)
    assert not [e for e in quiet if e.level == "warning" and "another" in e.message]
    assert vrep0.anomalies == []


# --------------------------------------------------------------------------- stopped mid-way, then edited


KILL_POINTS = ("group_begin", "backed_up", "manifest", "consolidated", "trash_sent", "trashed")
ONLY_BACKUPS = ("group_begin", "backed_up")
"""Steps before which nothing of the group was sent to the server (backups are reads)."""


@pytest.mark.parametrize("step", KILL_POINTS)
async def test_a_group_stopped_mid_way_then_edited_never_gets_two_decisions(
    step: str,
    tmp_path: Path,
    fake_client: ClientFactory,
    make_plan: MakePlan,
    on_request: OnRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan = await make_plan(fake)  # every group accepted as analyze decided
    g = group_of(plan, EASY)
    gid, old_winner, old_loser = g.duplicate_id, g.winner, g.losers[0]
    trashed_before = trashed(fake)

    with monkeypatch.context() as m:
        kill_after(m, step, gid)
        with pytest.raises(Killed):
            await execute(fake_client(fake), plan, ExecuteOptions(backup))
    st = load_states(read_entries(backup / JOURNAL_NAME))[gid]
    assert st.version == group_sha256(g)
    assert st.committed is (step not in ONLY_BACKUPS)
    assert fake.asset(old_loser)["isTrashed"] is (step == "trashed")

    edited = swapped(plan, EASY)  # review now keeps the other copy of this group
    sent = changing_bodies(fake, on_request)
    rep = await execute(fake_client(fake), edited, ExecuteOptions(backup))
    status, reason = outcome(rep, gid)
    others = [o for o in rep.outcomes if o.duplicate_id != gid]

    if step in ONLY_BACKUPS:
        # Nothing of it reached the server: carried out with the new decision, like any group.
        assert status == "done", reason
        assert rep.failed == 0
        assert fake.asset(old_winner)["isTrashed"] is True
        assert fake.asset(old_loser)["isTrashed"] is False
        m = BackupStore.open_existing(backup).read_manifest(gid)
        assert m is not None
        assert m.winner_id == old_loser
        assert [x.asset_id for x in m.losers] == [old_winner]
        assert fake.state() == await reference_state(edited, tmp_path)
    else:
        # Carried out in part with the first decision: this group alone is refused, untouched.
        assert status == "failed"
        assert "another version" in reason
        assert "plan version that started it" in reason
        assert rep.failed == 1
        assert {o.status for o in others} <= {"done", "skipped"}
        assert mentions(sent, (old_winner, old_loser)) == []
        assert fake.asset(old_winner)["isTrashed"] is False  # the first decision's keeper stays
        assert fake.asset(old_loser)["isTrashed"] is (step == "trashed")
        # Nothing of it is lost: its loser's backup and manifest are in place.
        m = BackupStore.open_existing(backup).read_manifest(gid)
        assert m is not None
        assert [x.asset_id for x in m.losers] == [old_loser]

        # The plan version that started it finishes it.
        rep3 = await execute(fake_client(fake), plan, ExecuteOptions(backup))
        assert outcome(rep3, gid) == ("done", "")
        assert rep3.failed == 0
        assert fake.asset(old_winner)["isTrashed"] is False
        assert fake.asset(old_loser)["isTrashed"] is True
        assert fake.state() == await reference_state(plan, tmp_path)

    # restore brings back every loser trashed by any of the runs.
    rrep = await restore(fake_client(fake), backup)
    assert rrep.failed == 0
    assert trashed(fake) == trashed_before


async def test_a_dry_run_of_an_edited_plan_shows_the_refused_group(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, on_request: OnRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan = await make_plan(fake)
    gid = group_of(plan, EASY).duplicate_id
    with monkeypatch.context() as m:
        kill_after(m, "consolidated", gid)
        with pytest.raises(Killed):
            await execute(fake_client(fake), plan, ExecuteOptions(backup))
    journal = (backup / JOURNAL_NAME).read_bytes()
    sent = changing_bodies(fake, on_request)
    rep = await execute(fake_client(fake), swapped(plan, EASY), ExecuteOptions(backup, dry_run=True))
    assert outcome(rep, gid)[0] == "failed"
    assert {o.status for o in rep.outcomes if o.duplicate_id != gid} <= {"dry-run", "skipped"}
    assert sent == []
    assert (backup / JOURNAL_NAME).read_bytes() == journal


# --------------------------------------------------------------------------- folder binding


def _as_an_older_version_wrote_it(backup: Path) -> None:
    """The header and journal as immich-dupes wrote them before folders were bound to analyses."""
    header = backup / HEADER_NAME
    body = json.loads(header.read_text())
    del body["analysis_created_at"]
    header.write_text(json.dumps(body, indent=1))
    journal = backup / JOURNAL_NAME
    lines = [ln for ln in journal.read_text().splitlines(keepends=True)
             if json.loads(ln)["kind"] != "group_begin"]
    journal.write_text("".join(lines))


async def test_a_folder_of_an_older_version_keeps_the_whole_plan_rule(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan0 = await make_plan(fake, accept=False)
    await execute(fake_client(fake), plan0, ExecuteOptions(backup, skip_review=True))
    _as_an_older_version_wrote_it(backup)
    header = (backup / HEADER_NAME).read_bytes()
    assert BackupStore.open_existing(backup).header.analysis_created_at is None

    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="different plan; resume only with the same plan file"):
        await execute(fake_client(fake), reviewed(plan0), ExecuteOptions(backup))
    assert not [r for r in fake.request_log[before:] if is_changing(r.method, r.path)]

    # The very plan that made it resumes, as before; the header stays as it was.
    rep = await execute(fake_client(fake), plan0, ExecuteOptions(backup, skip_review=True))
    assert rep.failed == 0
    done = [o for o in rep.outcomes if o.status == "done"]
    assert done
    assert {o.reason for o in done} == {DONE_BEFORE}
    assert (backup / HEADER_NAME).read_bytes() == header


async def test_a_plan_of_a_new_analysis_is_refused(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan0 = await make_plan(fake, accept=False)
    await execute(fake_client(fake), plan0, ExecuteOptions(backup, skip_review=True))
    header = BackupStore.open_existing(backup).header
    assert header.analysis_created_at == plan0.created_at

    again = await make_plan(fake, accept=False)  # analyze again: another created_at
    assert again.created_at != plan0.created_at
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="use a new folder for a new analysis"):
        await execute(fake_client(fake), again, ExecuteOptions(backup, skip_review=True))
    assert not [r for r in fake.request_log[before:] if is_changing(r.method, r.path)]

    # verify refuses it too, with execute's own check (BackupStore.same_analysis)
    async with fake_client(fake) as c:
        with pytest.raises(BackupError, match="use a new folder for a new analysis"):
            await verify(c, again, backup_dir=backup)


# --------------------------------------------------------------------------- a group's version


async def test_a_groups_version_changes_with_a_decision_not_with_an_accept(
    fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    plan = await make_plan(FakeImmich(library="sample"), accept=False)
    safe = [g for g in plan.groups if not g.needs_review]
    assert safe
    for g in safe:
        assert group_sha256(decide.accept(g)) == group_sha256(g)
    g = group_of(plan, EASY)
    assert group_sha256(decide.set_winner(g, g.losers[0])) != group_sha256(g)
    assert group_sha256(decide.set_action(g, Action.KEEP_ALL)) != group_sha256(g)
    assert group_sha256(decide.set_action(g, Action.SKIP)) != group_sha256(g)
    three = group_of(plan, "s05_a_large_dateonly.jpg")
    assert group_sha256(decide.toggle_keep(three, three.losers[0])) != group_sha256(three)
    # A journal without versions (older versions) loads as "unknown".
    st = load_states([{"kind": "backed_up", "group": g.duplicate_id, "asset": g.losers[0],
                       "file": "f", "size": 1, "sha1": "x"}])[g.duplicate_id]
    assert st.version is None
    assert st.started
    assert not st.committed


# --------------------------------------------------------------------------- the preview of a second run


async def test_the_preview_of_a_second_run_leaves_out_the_groups_done_before(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    """The confirmation must say what this run will do: not the groups already done, nor
    their bytes (and the disk check must not count their backups twice)."""
    from immich_dupes.commands.execute import describe_preview
    from immich_dupes.engine.execute import preflight, preview

    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan0 = await make_plan(fake, accept=False)
    rep1 = await execute(fake_client(fake), plan0, ExecuteOptions(backup, skip_review=True))
    done = {o.duplicate_id for o in rep1.outcomes if o.status == "done"}
    assert done

    plan1 = reviewed(plan0)
    options = ExecuteOptions(backup)
    pv = preflight(plan1, options)
    fresh = preview(plan1, options)  # as if nothing had been done
    todo = [g for g in plan1.groups if g.duplicate_id not in done and g.action is Action.RESOLVE]
    assert pv.groups_done_before == len(done)
    assert pv.groups_to_resolve == len(todo) < fresh.groups_to_resolve
    assert pv.bytes_to_backup == sum(g.asset(i).file_size or 0 for g in todo for i in g.losers)
    assert f"{len(done)} group(s) done by an earlier run into this folder" in describe_preview(pv, False)


async def test_the_disk_check_counts_only_backups_this_run_will_use(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backups of a group the reviewed plan now skips stay on disk but are no help to this run:
    they must not be subtracted from what it still needs (from the review of the rerun)."""
    import shutil as shutil_module
    from collections import namedtuple

    import immich_dupes.engine.execute as execute_module
    from immich_dupes.engine.execute import preflight

    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan = await make_plan(fake)
    g = group_of(plan, EASY)
    only_easy = plan.model_copy(deep=True)
    only_easy.groups = [
        x if x.duplicate_id == g.duplicate_id else decide.set_action(x, Action.SKIP) for x in only_easy.groups
    ]
    with monkeypatch.context() as m:
        kill_after(m, "backed_up", g.duplicate_id)  # its losers are backed up, nothing else
        with pytest.raises(Killed):
            await execute(fake_client(fake), only_easy, ExecuteOptions(backup))
    st = load_states(read_entries(backup / JOURNAL_NAME))[g.duplicate_id]
    assert set(st.backed_up) == set(g.losers)

    edited = plan.model_copy(deep=True)
    i = index_of(edited, EASY)
    edited.groups[i] = decide.set_action(edited.groups[i], Action.SKIP)
    options = ExecuteOptions(backup)
    pv = preflight(edited, options)
    states = load_states(read_entries(backup / JOURNAL_NAME))
    # What this run still has to back up: its losers that are not on disk yet.
    remaining = sum(
        x.asset(i).file_size or 0
        for x in edited.groups
        if x.action is Action.RESOLVE and execute_module._acts(x, options) and x.duplicate_id != g.duplicate_id
        for i in x.losers if i not in (states[x.duplicate_id].backed_up if x.duplicate_id in states else {})
    )
    assert remaining > 0
    remaining += pv.video_bytes_estimate  # the live-photo videos, estimated: none backed up yet
    need = int(remaining * (1 + execute_module.DISK_MARGIN_FRACTION)) + execute_module.DISK_MARGIN_BYTES

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _p: usage(10**12, 0, need - 1))
    with pytest.raises(ExecuteRefused, match="not enough free disk space"):
        preflight(edited, options)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda _p: usage(10**12, 0, need + 1))
    assert preflight(edited, options).bytes_to_backup == pv.bytes_to_backup

    # The unedited plan does use those backups: they count as taken.
    same = preflight(plan, options)
    assert same.bytes_to_backup == pv.bytes_to_backup + sum(g.asset(x).file_size or 0 for x in g.losers)


async def test_the_preview_leaves_out_a_group_left_alone_for_another_version(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    from immich_dupes.engine.execute import preflight

    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    plan = await make_plan(fake)
    g = group_of(plan, EASY)
    with monkeypatch.context() as m:
        kill_after(m, "manifest", g.duplicate_id)  # past its backups: committed
        with pytest.raises(Killed):
            await execute(fake_client(fake), plan, ExecuteOptions(backup))
    edited = swapped(plan, EASY)
    pv = preflight(edited, ExecuteOptions(backup))
    fresh = preflight(plan, ExecuteOptions(backup))  # the version that started it: resumed
    assert pv.groups_to_resolve == fresh.groups_to_resolve - 1
    assert pv.groups_skipped == fresh.groups_skipped + 1
    assert pv.bytes_to_backup == fresh.bytes_to_backup - sum(g.asset(x).file_size or 0 for x in g.losers)


def test_the_cli_report_names_the_groups_done_with_an_earlier_version() -> None:
    from immich_dupes.commands.execute import describe_report
    from immich_dupes.engine.execute import EARLIER_VERSION_DONE, GroupOutcome

    rep = ExecuteReport(outcomes=[
        GroupOutcome("g-edited", "done", EARLIER_VERSION_DONE, earlier=True),
        GroupOutcome("g-plain", "done", DONE_BEFORE, earlier=True),
        GroupOutcome("g-new", "done"),
    ])
    text = describe_report(rep)
    assert f"not redone (1): {EARLIER_VERSION_DONE}: g-edited" in text
    assert "g-plain" not in text
    assert "2 group(s) done by an earlier run into this backup folder: left as they are" in text
    assert "1 group(s) done, 0 skipped" in text
