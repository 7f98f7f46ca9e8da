"""``immich-dupes execute`` end to end: exit codes, confirmation, dry-run output, report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from journal_kill import Killed, kill_after

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, Plan, save_plan
from immich_dupes.cli import main
from immich_dupes.commands.execute import _Filtered
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import SKIPPED_UNREVIEWED, ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer, Faults
from immich_dupes.immich.client import ImmichClient


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample")
    with FakeServer(fake) as srv:
        yield fake, srv.url


def plan_file(fake: FakeImmich, url: str, path: Path, accept: bool = True) -> Plan:
    async def go() -> Plan:
        async with ImmichClient(url, fake.api_key, rate_limit=10_000) as c:
            return await analyze(c)

    plan = asyncio.run(go())
    if accept:
        plan.groups = [decide.accept(g) for g in plan.groups]
    save_plan(plan, path)
    return plan


def changing(fake: FakeImmich, since: int) -> list[str]:
    return [
        f"{r.method} {r.path}"
        for r in fake.request_log[since:]
        if r.method not in ("GET", "HEAD") and r.path != "/api/search/metadata"
    ]


def cli(url: str, key: str, *args: str) -> int:
    return main(["-u", url, f"--api-key={key}", "execute", *args, "--rate-limit", "1000"])


def test_execute_with_yes_exits_0_and_writes_a_report(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    plan = plan_file(fake, url, tmp_path / "plan.json")
    code = cli(url, fake.api_key, "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "b"), "--yes")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "17 group(s) done, 1 skipped, 0 failed" in out
    assert "18 loser(s) trashed" in out
    assert "move to the Immich trash" in err  # the preview
    reports = list((tmp_path / "b").glob("report-*.json"))
    assert len(reports) == 1
    data = json.loads(reports[0].read_text())
    assert {g["duplicate_id"] for g in data["groups"]} == {g.duplicate_id for g in plan.groups}
    assert fake.api_key not in reports[0].read_text()


def test_a_failed_group_exits_1(served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    plan = plan_file(fake, url, tmp_path / "plan.json")
    loser = next(g for g in plan.groups if g.winner_asset.file_name == "s01_large_nogps.jpg").losers[0]
    fake.faults = Faults.parse(f"corrupt={loser}")
    code = cli(url, fake.api_key, "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "b"), "--yes")
    out, _ = capsys.readouterr()
    assert code == 1
    assert "FAILED" in out
    assert "checksum" in out
    assert fake.asset(loser)["isTrashed"] is False


def test_dry_run_prints_the_requests_and_changes_nothing(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    plan_file(fake, url, tmp_path / "plan.json")
    before = len(fake.request_log)
    code = cli(url, fake.api_key, "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "b"), "--dry-run")
    out, err = capsys.readouterr()
    assert code == 0, err
    assert changing(fake, before) == []
    assert not (tmp_path / "b").exists()
    lines = out.splitlines()
    assert sum(1 for line in lines if line.startswith("DELETE /assets ")) == 1
    assert sum(1 for line in lines if line.startswith("GET /assets/") and "/original" in line) == 19
    assert any(line.startswith("PUT /assets/") and '"latitude"' in line for line in lines)
    assert "dry run" in err


def test_refusals_exit_2_and_send_nothing_that_changes(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    plan_file(fake, url, tmp_path / "plan.json", accept=False)
    before = len(fake.request_log)
    code = cli(url, fake.api_key, "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "b"), "--yes")
    _, err = capsys.readouterr()
    assert code == 2
    assert "--skip-review" in err
    assert "review" in err

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "x.txt").write_text("mine")
    code = cli(url, fake.api_key, "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "foreign"),
               "--yes", "--skip-review")
    _, err = capsys.readouterr()
    assert code == 2
    assert "not an immich-dupes backup" in err

    (tmp_path / "bad.json").write_text("{}")
    code = cli(url, fake.api_key, "-i", str(tmp_path / "bad.json"), "-b", str(tmp_path / "b"), "--yes")
    assert code == 2
    assert changing(fake, before) == []


def test_no_terminal_and_no_yes_refuses_rather_than_guessing(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = served
    plan_file(fake, url, tmp_path / "plan.json")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    before = len(fake.request_log)
    code = cli(url, fake.api_key, "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "b"))
    _, err = capsys.readouterr()
    assert code == 2
    assert "--yes" in err
    assert changing(fake, before) == []


def test_bad_key_exits_3(served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    plan_file(fake, url, tmp_path / "plan.json")
    code = cli(url, "not-a-key", "-i", str(tmp_path / "plan.json"), "-b", str(tmp_path / "b"), "--yes")
    _, err = capsys.readouterr()
    assert code == 3
    assert "not-a-key" not in err


def test_ctrl_c_stops_safely_and_a_rerun_finishes(served: tuple[FakeImmich, str], tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from immich_dupes.engine.journal import read_entries

    fake, url = served
    plan = plan_file(fake, url, tmp_path / "plan.json")
    fake.faults = Faults.parse("latency=100ms")
    env = dict(os.environ, IMMICH_URL=url, IMMICH_API_KEY=fake.api_key)
    cmd = [sys.executable, "-m", "immich_dupes", "execute", "-i", str(tmp_path / "plan.json"),
           "-b", str(tmp_path / "b"), "--yes", "--rate-limit", "1000"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    journal = tmp_path / "b" / "journal.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if any(e["kind"] == "backed_up" for e in read_entries(journal)):
            break
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err.decode()
    assert b"stopping after the current step" in err
    kinds = [e["kind"] for e in read_entries(journal)]
    assert "group_done" not in kinds
    assert not any(fake.asset(i)["isTrashed"] for g in plan.groups for i in g.losers)

    fake.faults = None
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"17 group(s) done" in done.stdout


# --------------------------------------------------------------------------- what it says when done
# Walkthrough 4: run again after a restore it claimed "8 loser(s) trashed" while it sent nothing;
# an unreviewed group's reason named --skip-review, which the app's user never passed; the
# overall progress line stood at 0/10 while a large first group was being backed up.


def trashed(fake: FakeImmich) -> set[str]:
    return {i for i in fake.asset_ids() if fake.asset(i)["isTrashed"]}


def test_execute_again_after_a_restore_says_the_groups_were_done_before_and_trashed_nothing(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    path, backup = tmp_path / "plan.json", tmp_path / "backup"
    plan = plan_file(fake, url, path, accept=True)
    run = ("-i", str(path), "-b", str(backup), "--yes")
    assert cli(url, fake.api_key, *run) == 0
    out, _ = capsys.readouterr()
    first = json.loads(sorted(backup.glob("report-*.json"))[-1].read_text())
    done = first["counts"]["done"]
    losers = first["counts"]["trashed"]
    assert done
    assert losers
    assert first["counts"]["done_before"] == 0
    assert f"{done} group(s) done, " in out
    assert "by an earlier run" not in out
    assert main(["-u", url, "-a", fake.api_key, "restore", "-b", str(backup), "--yes"]) == 0
    capsys.readouterr()
    restored = fake.state()
    assert not trashed(fake) & {i for g in plan.groups if g.action is Action.RESOLVE for i in g.losers}

    # The same execute again: a done group is never done again (on purpose), and it says so.
    assert cli(url, fake.api_key, *run) == 0
    out, err = capsys.readouterr()
    assert fake.state() == restored  # nothing sent: the restored losers stay restored
    assert f"{done} group(s) done by an earlier run into this backup folder: left as they are" in out
    assert "0 group(s) done, " in out
    assert "; 0 loser(s) trashed;" in out
    assert f"{losers} loser(s) trashed" not in out
    assert f"0 done, 1 skipped, 0 failed, {done} done by an earlier run (left as they are)" in err
    last = json.loads(sorted(backup.glob("report-*.json"))[-1].read_text())
    assert last["counts"]["done_before"] == done
    assert last["counts"]["trashed"] == 0
    earlier = [o for o in last["groups"] if o["earlier"]]
    assert len(earlier) == done
    assert all(o["status"] == "done" and "earlier run" in o["reason"] for o in earlier)


def test_a_group_left_unreviewed_names_no_command_line_option(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The review app leaves unreviewed groups too (nobody passed --skip-review there): the
    reason, in the CLI, the report and verify alike, names no option."""
    fake, url = served
    path, backup = tmp_path / "plan.json", tmp_path / "backup"
    plan = plan_file(fake, url, path, accept=False)
    unreviewed = {g.duplicate_id for g in plan.groups if g.needs_review}
    assert unreviewed
    assert cli(url, fake.api_key, "-i", str(path), "-b", str(backup), "--yes", "--skip-review") == 0
    out, _ = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if ln.startswith("skipped ")]
    assert f"skipped {len(unreviewed)} groups: needs review and was not reviewed (ids in the report)" in lines
    assert not any("--" in ln for ln in lines), lines
    report = json.loads(sorted(backup.glob("report-*.json"))[-1].read_text())
    reasons = {o["reason"] for o in report["groups"] if o["duplicate_id"] in unreviewed}
    assert reasons == {SKIPPED_UNREVIEWED}
    assert "--" not in SKIPPED_UNREVIEWED


# --------------------------------------------------------------------------- the progress line


async def _overall(client: ImmichClient, plan: Plan, backup: Path) -> list[Event]:
    """The overall progress events the CLI's progress line is given during one run."""
    shown: list[Event] = []
    await execute(client, plan, ExecuteOptions(backup), _Filtered(shown.append))
    return [e for e in shown if e.phase == "progress"]


async def test_the_progress_line_shows_the_bytes_before_the_first_group_finishes(
    tmp_path: Path, fake_client: Callable[..., ImmichClient], make_plan: Callable[..., Awaitable[Plan]]
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    overall = await _overall(fake_client(fake), plan, tmp_path / "b")
    first_done = next(i for i, e in enumerate(overall) if e.done > overall[0].done)
    moving = [e for e in overall[:first_done] if e.bytes_done]
    assert moving, "the line stood still until a group finished"
    assert moving[0].total == overall[0].total
    assert len({e.bytes_done for e in moving}) > 1
    sizes = [e.bytes_done for e in overall]
    assert sizes == sorted(sizes)


async def test_the_bytes_of_the_progress_line_never_go_back_on_a_resumed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    fake_client: Callable[..., ImmichClient], make_plan: Callable[..., Awaitable[Plan]],
) -> None:
    """A resumed run finds the backups of the killed one on disk: the backup events count them,
    and so does the overall line once a group finishes (it does not drop back to 0 B)."""
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    backup = tmp_path / "b"
    first = next(g for g in plan.groups if g.action is Action.RESOLVE and g.losers and not g.needs_review)
    with monkeypatch.context() as m:
        kill_after(m, "backed_up", first.duplicate_id)
        with pytest.raises(Killed):
            await execute(fake_client(fake), plan, ExecuteOptions(backup))
    overall = await _overall(fake_client(fake), plan, backup)
    sizes = [e.bytes_done for e in overall]
    assert sizes[-1] > 0
    assert sizes == sorted(sizes), sizes
