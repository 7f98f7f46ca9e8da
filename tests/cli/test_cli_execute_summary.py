"""What ``immich-dupes execute`` says when it is done: groups done before, skip reasons, progress.

Walkthrough 4: the same execute run again after a restore claimed "10 group(s) done … 8
loser(s) trashed" although it sent nothing and the losers were back on the server; a group
left unreviewed named ``--skip-review`` in the review app, where nobody passed it; the
overall progress line stood at ``0/10`` while a large first group was being backed up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, Plan, save_plan
from immich_dupes.cli import main
from immich_dupes.commands.execute import _Filtered
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import SKIPPED_UNREVIEWED, ExecuteOptions, execute
from immich_dupes.engine.journal import Journal
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient

FAKE_URL = "http://fake-immich"


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample")
    with FakeServer(fake) as srv:
        yield fake, srv.url


def plan_file(fake: FakeImmich, url: str, path: Path, accept: bool) -> Plan:
    async def go() -> Plan:
        async with ImmichClient(url, fake.api_key, rate_limit=10_000) as c:
            return await analyze(c)

    plan = asyncio.run(go())
    if accept:
        plan.groups = [decide.accept(g) for g in plan.groups]
    save_plan(plan, path)
    return plan


def cli(url: str, key: str, *args: str) -> int:
    return main(["-u", url, f"--api-key={key}", *args, "--rate-limit", "1000"])


def trashed(fake: FakeImmich) -> set[str]:
    return {i for i in fake.asset_ids() if fake.asset(i)["isTrashed"]}


def test_execute_again_after_a_restore_says_the_groups_were_done_before_and_trashed_nothing(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    path, backup = tmp_path / "plan.json", tmp_path / "backup"
    plan = plan_file(fake, url, path, accept=True)
    run = ("execute", "-i", str(path), "-b", str(backup), "--yes")
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
    assert cli(url, fake.api_key, "restore", "-b", str(backup), "--yes") == 0
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
    assert cli(url, fake.api_key, "execute", "-i", str(path), "-b", str(backup), "--yes", "--skip-review") == 0
    out, _ = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if ln.startswith("skipped ")]
    assert f"skipped {len(unreviewed)} groups: needs review and was not reviewed (ids in the report)" in lines
    assert not any("--" in ln for ln in lines), lines
    report = json.loads(sorted(backup.glob("report-*.json"))[-1].read_text())
    reasons = {o["reason"] for o in report["groups"] if o["duplicate_id"] in unreviewed}
    assert reasons == {SKIPPED_UNREVIEWED}
    assert "--" not in SKIPPED_UNREVIEWED


# --------------------------------------------------------------------------- the progress line


def _client(fake: FakeImmich) -> ImmichClient:
    return ImmichClient(FAKE_URL, fake.api_key, transport=fake.transport(), rate_limit=10_000)


async def _overall(fake: FakeImmich, plan: Plan, backup: Path) -> list[Event]:
    """The overall progress events the CLI's progress line is given during one run."""
    shown: list[Event] = []
    async with _client(fake) as c:
        await execute(c, plan, ExecuteOptions(backup), _Filtered(shown.append))
    return [e for e in shown if e.phase == "progress"]


async def _plan(fake: FakeImmich) -> Plan:
    async with _client(fake) as c:
        plan = await analyze(c)
    plan.groups = [decide.accept(g) for g in plan.groups]
    return plan


async def test_the_progress_line_shows_the_bytes_before_the_first_group_finishes(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample")
    plan = await _plan(fake)
    overall = await _overall(fake, plan, tmp_path / "b")
    first_done = next(i for i, e in enumerate(overall) if e.done > overall[0].done)
    moving = [e for e in overall[:first_done] if e.bytes_done]
    assert moving, "the line stood still until a group finished"
    assert moving[0].total == overall[0].total
    assert len({e.bytes_done for e in moving}) > 1
    sizes = [e.bytes_done for e in overall]
    assert sizes == sorted(sizes)


class _Killed(Exception):
    pass


async def test_the_bytes_of_the_progress_line_never_go_back_on_a_resumed_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resumed run finds the backups of the killed one on disk: the backup events count them,
    and so does the overall line once a group finishes (it does not drop back to 0 B)."""
    fake = FakeImmich(library="sample")
    plan = await _plan(fake)
    backup = tmp_path / "b"
    real = Journal.append_many

    def append_many(self: Journal, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        entries = list(entries)
        real(self, entries)
        if any(kind == "backed_up" for kind, _ in entries):
            raise _Killed

    with monkeypatch.context() as m:
        m.setattr(Journal, "append_many", append_many)
        with pytest.raises(_Killed):
            async with _client(fake) as c:
                await execute(c, plan, ExecuteOptions(backup))
    overall = await _overall(fake, plan, backup)
    sizes = [e.bytes_done for e in overall]
    assert sizes[-1] > 0
    assert sizes == sorted(sizes), sizes
