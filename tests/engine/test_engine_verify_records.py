"""verify -b and what the backup's records say: execute's skips (on purpose or not), a folder of
another analysis, a restore since, and counts that add up."""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from immich_dupes import cli
from immich_dupes.analysis.decide import accept, allow_external_delete, set_action, set_winner
from immich_dupes.analysis.plan import Action, GroupPlan, Plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import BackupError
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import (
    SKIPPED_EXTERNAL,
    SKIPPED_UNREVIEWED,
    ExecuteOptions,
    _Stop,
    execute,
    left_alone,
)
from immich_dupes.engine.restore import restore
from immich_dupes.engine.verify import VERIFY_PERMISSIONS, VerifyReport, skip_kind, verify
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient

URL = "http://fake-immich"
SKIPPED = "s20_large_nooffset.jpg"  # the plan says skip
EXTERNAL = "s10_upload_large.jpg"  # its loser is in an external library: execute skips it


@asynccontextmanager
async def connected(fake: FakeImmich) -> AsyncIterator[ImmichClient]:
    async with ImmichClient(
        URL, fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8,
        max_retries=1, backoff_base=0.0,
    ) as c:
        await c.connect(VERIFY_PERMISSIONS)
        yield c


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


async def accepted_plan(c: ImmichClient) -> Plan:
    plan = await analyze(c)
    plan.groups = [
        set_action(accept(g), Action.SKIP) if g.winner_asset.file_name == SKIPPED else accept(g)
        for g in plan.groups
    ]
    plan.refresh_counts()
    return plan


def execute_messages(rep: VerifyReport, severity: str) -> dict[str, str]:
    return {f.duplicate_id: f.message for f in rep.findings
            if f.field == "execute" and f.severity == severity}


def adds_up(rep: VerifyReport, plan: Plan) -> bool:
    parts = rep.groups_ok + rep.groups_with_anomalies + rep.groups_not_executed + rep.groups_skipped_by_execute
    return parts == rep.groups_checked and rep.groups_total == len(plan.groups)


# --------------------------------------------------------------------------- execute's skips


def test_each_reason_execute_skips_a_group_for_is_classified() -> None:
    """On purpose only as the plan given asks; a cancelled or stopped run, a plan reviewed since
    and a server that changed under the plan are not."""
    fake = FakeImmich(library="sample", profile="v3")

    async def plan_of() -> Plan:
        async with connected(fake) as c:
            return await analyze(c)

    plan = asyncio.run(plan_of())
    unreviewed = next(g for g in plan.groups if left_alone(g) == SKIPPED_UNREVIEWED)
    external = accept(group_of(plan, EXTERNAL))
    assert left_alone(external) == SKIPPED_EXTERNAL
    acting = next(g for g in plan.groups if left_alone(g) is None and g.action is Action.RESOLVE)
    full = _Stop(OSError(errno.ENOSPC, "No space left on device"), "")
    unwritable = _Stop(OSError(errno.EACCES, "Permission denied"), "")

    assert skip_kind(unreviewed, SKIPPED_UNREVIEWED) == "on_purpose"
    older = "needs review and was not reviewed (--skip-review)"  # as older versions recorded it
    assert skip_kind(unreviewed, older) == "on_purpose"
    assert skip_kind(accept(unreviewed), older) == "plan_changed"
    assert skip_kind(external, SKIPPED_EXTERNAL) == "on_purpose"
    # The external copy made the keeper since: this plan trashes the uploaded one.
    ext_id = next(a.id for a in external.assets if a.is_external)
    keeps_external = accept(set_winner(external, ext_id))
    assert left_alone(keeps_external) is None
    assert skip_kind(keeps_external, SKIPPED_EXTERNAL) == "plan_changed"
    # A run that stopped part way may have left a group half done, whatever this plan says now.
    assert skip_kind(unreviewed, "cancelled before the group was finished; run again to resume") == "interrupted"
    # The re-check found a loser in an external library the plan did not know of: not carried out.
    found = "IMG_1.jpg (0a1b2c3d) is in an external library: not deleted unless allowed in review"
    assert skip_kind(acting, found) == "left_alone"
    allowed = acting.model_copy(update={"allow_external_delete": True})
    assert skip_kind(allowed, found) == "left_alone"
    for reason in (
        "cancelled before this group started; run again to resume",
        "cancelled before the backup finished; run again to resume",
        "cancelled before consolidation; run again to resume",
        "cancelled before trashing; run again to resume",
        "cancelled before the group was finished; run again to resume",
        full.group_reason,
        unwritable.group_reason,
        "not reached",
        "",
    ):
        assert skip_kind(acting, reason) == "interrupted", reason
    # Reviewed since the run that skipped it: this version asks for it.
    assert skip_kind(accept(unreviewed), SKIPPED_UNREVIEWED) == "plan_changed"
    for reason in (
        "the winner was trashed after the plan was made",
        "the group changed since the plan: 1 asset(s) joined it; analyze again",
        "the server's answer for this group could not be read",
    ):
        assert skip_kind(acting, reason) == "left_alone", reason


async def test_a_cancelled_run_is_not_executed_not_a_note(tmp_path: Path) -> None:
    """Walkthrough: execute cancelled before it did anything, then verify -b said OK. The groups
    the run did not finish are anomalies that say to run execute again; the group execute leaves
    alone on purpose stays a note; once execute ran again, verify is clean."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    cancel = asyncio.Event()

    def cancel_at_first_backup(ev: Event) -> None:
        if ev.data.get("journaled") == "backed_up":
            cancel.set()

    async with connected(fake) as c:
        plan = await accepted_plan(c)
        first = await execute(c, plan, ExecuteOptions(backup_dir=backup), cancel_at_first_backup, cancel)
        assert first.done == 0
        cancelled = {o.duplicate_id for o in first.outcomes if "cancelled" in o.reason}
        assert cancelled
        rep = await verify(c, plan, backup_dir=backup)
        again = await execute(c, plan, ExecuteOptions(backup_dir=backup))
        assert again.failed == 0
        fake.run_jobs()
        finished = await verify(c, plan, backup_dir=backup)

    anomalies = execute_messages(rep, "anomaly")
    assert set(anomalies) == cancelled
    assert all(m.startswith("not executed: the run of execute stopped before this group was done (cancelled")
               and m.endswith("): run execute again to finish") for m in anomalies.values())
    assert set(execute_messages(rep, "note")) == {group_of(plan, EXTERNAL).duplicate_id}
    assert rep.groups_not_executed == len(cancelled)
    assert rep.groups_ok == 0
    assert adds_up(rep, plan)
    assert finished.anomalies == []
    assert adds_up(finished, plan)


async def test_a_group_reviewed_since_execute_skipped_it_is_not_executed(tmp_path: Path) -> None:
    """execute --skip-review, then review the rest, then verify -b with that version: execute
    has not done the reviewed groups yet."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await analyze(c)
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b", skip_review=True))
        assert rep.failed == 0
        fake.run_jobs()
        unreviewed = {g.duplicate_id for g in plan.groups if left_alone(g) == SKIPPED_UNREVIEWED}
        assert unreviewed
        plan.groups = [accept(g) if g.duplicate_id in unreviewed else g for g in plan.groups]
        reviewed = {g.duplicate_id for g in plan.groups if g.duplicate_id in unreviewed and left_alone(g) is None}
        assert reviewed
        checked = await verify(c, plan, backup_dir=tmp_path / "b")
    anomalies = execute_messages(checked, "anomaly")
    assert set(anomalies) == reviewed
    assert all(m == f"not executed: execute skipped it ({SKIPPED_UNREVIEWED}), but this version of the"
               " plan asks for it: run execute again to finish" for m in anomalies.values())
    assert checked.groups_not_executed == len(reviewed)
    assert adds_up(checked, plan)


async def test_a_group_execute_left_alone_because_the_server_changed_is_not_executed(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        g = group_of(plan, "s04_large_nodesc.jpg")
        fake.trash_asset(g.winner)
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))
        assert rep.failed == 0
        fake.run_jobs()
        checked = await verify(c, plan, backup_dir=tmp_path / "b")
    assert execute_messages(checked, "anomaly") == {
        g.duplicate_id: "not executed: execute left it alone: the winner was trashed after the plan was made"
    }
    assert checked.groups_not_executed == 1
    assert adds_up(checked, plan)


# --------------------------------------------------------------------------- the backup folder


async def test_a_backup_folder_of_another_analysis_is_refused_as_execute_refuses_it(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))
        assert rep.failed == 0
        fake.run_jobs()
        other = plan.model_copy(update={"created_at": plan.created_at + timedelta(minutes=5)})
        with pytest.raises(BackupError, match="holds the backup of a different plan, from another analysis") as e:
            await verify(c, other, backup_dir=tmp_path / "b")
        # An edited version of the same analysis keeps using it.
        edited = plan.model_copy(deep=True)
        edited.groups[0].note = "edited in review"
        assert (await verify(c, edited, backup_dir=tmp_path / "b")).anomalies == []
    # The very sentence execute refuses the folder with.
    refusal = ""
    async with connected(fake) as c:
        try:
            await execute(c, other, ExecuteOptions(backup_dir=tmp_path / "b"))
        except ValueError as refused:
            refusal = str(refused)
    assert refusal == str(e.value)


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:
        yield fake, srv.url


def verify_cli(url: str, key: str, *args: str) -> int:
    return cli.main(["-u", url, "-a", key, "verify", *args, "--rate-limit", "1000"])


def test_cli_refuses_a_file_and_another_analysis_before_any_request(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served

    async def go() -> Plan:
        async with ImmichClient(url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
            plan = await accepted_plan(c)
            assert (await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))).failed == 0
            return plan

    plan = asyncio.run(go())
    other = plan.model_copy(update={"created_at": plan.created_at + timedelta(minutes=5)})
    save_plan(other, tmp_path / "plan2.json")
    (tmp_path / "afile").write_text("")
    n = len(fake.request_log)
    capsys.readouterr()
    assert verify_cli(url, fake.api_key, str(tmp_path / "plan2.json"), "-b", str(tmp_path / "afile")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"backup directory {tmp_path / 'afile'} is a file, not a directory" in err
    assert verify_cli(url, fake.api_key, str(tmp_path / "plan2.json"), "-b", str(tmp_path / "b")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "holds the backup of a different plan, from another analysis" in err
    assert len(fake.request_log) == n


# --------------------------------------------------------------------------- after a restore


async def test_losers_a_restore_brought_back_say_so(tmp_path: Path) -> None:
    """After restore -b the losers are back: still anomalies (the plan no longer holds), each
    saying which restore brought it back, from the trash or re-uploaded after a purge."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
        assert rep.failed == 0
        fake.run_jobs()
        purged = group_of(plan, "s04_large_nodesc.jpg").losers[0]
        fake.purge(purged)
        restored = await restore(c, backup)
        assert restored.failed == 0
        fake.run_jobs()
        record = json.loads(next(backup.glob("restore-*.json")).read_text())
        day = record["created_at"][:10]
        new_id = record["mapping"][purged]
        checked = await verify(c, plan, backup_dir=backup)

    losers = {f.asset_id: f.message for f in checked.anomalies if f.field == "loser"}
    trashed = {i for g in plan.groups if g.action is Action.RESOLVE and left_alone(g) is None for i in g.losers}
    assert set(losers) == trashed
    assert f" is back in the library: re-uploaded by restore on {day} " in losers[purged]
    assert losers[purged].endswith(f" UTC as {new_id}")
    others = [m for i, m in losers.items() if i != purged]
    assert others
    assert all(f"is not in the trash (brought back from the trash by restore on {day} " in m for m in others)
    assert not [f for f in checked.notes if f.field == "loser"]  # not "purged from the trash" any more


# --------------------------------------------------------------------------- counts


async def test_counts_add_up_and_name_whose_skip_it_is(tmp_path: Path) -> None:
    """Walkthrough: '17 groups checked, 10 as planned, 0 not executed, 8 skipped' on 18 groups."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))
        assert rep.failed == 0
        fake.run_jobs()
        fake.trash_asset(group_of(plan, "s04_large_nodesc.jpg").winner)
        checked = await verify(c, plan, backup_dir=tmp_path / "b")
    assert adds_up(checked, plan)
    assert checked.groups_skipped_by_plan == 1
    assert checked.groups_skipped_by_execute == 1  # the external group
    assert checked.groups_with_anomalies == 1
    assert checked.groups_ok == checked.groups_checked - 2
    text = checked.counts_text()
    assert text.startswith(
        f"{len(plan.groups) - 1} groups checked: {checked.groups_ok} as planned, 1 with anomalies, "
        "0 not executed, 1 skipped by execute on purpose; 1 more skipped by the plan, not checked; "
    )
    body = checked.to_json()
    assert (body["groups_total"], body["groups_skipped_by_plan"], body["groups_skipped_by_execute"],
            body["groups_with_anomalies"], body["groups_skipped"]) == (len(plan.groups), 1, 1, 1, 2)


async def test_a_group_left_half_done_is_an_anomaly_even_if_the_plan_now_leaves_it_alone(
    tmp_path: Path,
) -> None:
    """Review: execute cancelled after it trashed the external loser of a group the person had
    allowed to delete; the allow is then taken back (the plan now leaves the group alone). The
    loser is in the trash: verify -b must not call the group skipped on purpose, neither from
    the cancelled run's report nor after another run skipped it as the new plan asks."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp_path / "b"
    cancel = asyncio.Event()
    async with connected(fake) as c:
        plan = await accepted_plan(c)
        gid = group_of(plan, EXTERNAL).duplicate_id
        plan.groups = [allow_external_delete(g, True) if g.duplicate_id == gid else g for g in plan.groups]
        losers = set(next(g for g in plan.groups if g.duplicate_id == gid).losers)

        def cancel_after_its_trash(ev: Event) -> None:
            if ev.data.get("journaled") == "trashed" and set(ev.data.get("ids") or ()) & losers:
                cancel.set()

        await execute(c, plan, ExecuteOptions(backup_dir=backup), cancel_after_its_trash, cancel)
        assert all(fake.state()["assets"][i]["isTrashed"] for i in losers)
        fake.run_jobs()
        plan.groups = [allow_external_delete(g, False) if g.duplicate_id == gid else g for g in plan.groups]
        after_cancel = await verify(c, plan, backup_dir=backup)
        await execute(c, plan, ExecuteOptions(backup_dir=backup))
        after_rerun = await verify(c, plan, backup_dir=backup)
    for rep in (after_cancel, after_rerun):
        assert [f.severity for f in rep.findings if f.duplicate_id == gid and f.field == "execute"] == ["anomaly"]
    assert "run execute again to finish" in next(
        f.message for f in after_cancel.anomalies if f.duplicate_id == gid)
    assert "started this group but did not finish it" in next(
        f.message for f in after_rerun.anomalies if f.duplicate_id == gid)
