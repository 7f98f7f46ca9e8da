"""Disk: once the backup disk is full (or the backup folder cannot be written), execute stops.

Without the stop, every group left fails in turn on the same full disk: one download and one
identical failure per group, thousands on a big library. With it, no group starts after the
first write that fails with ENOSPC or EDQUOT (or EACCES/EPERM/EROFS: a folder that cannot be
written fails every group too), the groups under way finish or stop before trashing anything,
no partial file stays behind, and the run ends with one message: what was done, why it
stopped, and that the same command resumes. A write error of one file only (EINVAL, say a name
the file system refuses) still fails only its group.

The full disk is simulated as in ``test_safety_disk.py`` (the ``os`` seen by the client, the
atomic writes and the journal is swapped), but with one budget for every kind of write (or
only the downloads), and the error to raise as a parameter.
"""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from safety_support import (
    FIGURES,
    backup_state,
    base_plan,
    capture,
    charge_writes,
    check_backups,
    check_manifests,
    client_for,
    mixed_plan,
    reference,
)

from immich_dupes.analysis.plan import Action, Plan, save_plan
from immich_dupes.cli import main
from immich_dupes.engine.execute import PIPELINE, ExecuteOptions, ExecuteReport, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import normalize_base_url

SYNTHETIC = "synthetic:40"
SYNTHETIC_SIZE = 24_000  # the fake's largest synthetic original (its default sizes)
CONCURRENCY = 6  # client_for's


def _is_download(path: str) -> bool:
    return path.endswith(".part")


class FillingDisk:
    """Writes under ``root`` (all of them, or only downloads) share one budget of bytes; once it
    is used up every such write fails with ``err``. ``only`` makes one file fail instead."""

    def __init__(
        self,
        root: Path,
        budget: int,
        err: int = errno.ENOSPC,
        downloads_only: bool = False,
        only: Callable[[str], bool] | None = None,
        mark: Callable[[], int] = lambda: 0,
    ) -> None:
        self.root = str(root.resolve())
        self.budget = budget
        self.err = err
        self.downloads_only = downloads_only
        self.only = only
        self.mark = mark
        self.used = 0
        self.refused = 0
        self.first_refusal: int | None = None
        """``mark()`` at the first refused write: how many requests had reached the fake."""

    def charge(self, fd: int, n: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return
        if not path.startswith(self.root):
            return
        if self.only is not None:
            refuse = self.only(path)
        elif self.downloads_only and not _is_download(path):
            return
        else:
            refuse = self.used + n > self.budget
        if refuse:
            self.refused += 1
            if self.first_refusal is None:
                self.first_refusal = self.mark()
            raise OSError(self.err, os.strerror(self.err))
        self.used += n


@pytest.fixture
def filling_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FillingDisk]:
    def install(root: Path, budget: int, **kw: Any) -> FillingDisk:
        disk = FillingDisk(root, budget, **kw)
        charge_writes(monkeypatch, disk)
        return disk

    return install


# --------------------------------------------------------------------------- helpers


def originals_requested(fake: FakeImmich, since: int = 0) -> list[str]:
    """Asset ids whose original was requested (``request_log[since:]``)."""
    return [r.path.split("/")[-2] for r in fake.request_log[since:]
            if r.method == "GET" and r.path.endswith("/original")]


def leftovers(backup: Path) -> list[str]:
    """Partial downloads and temp files of atomic writes left in the backup folder."""
    return sorted(p.name for p in backup.rglob("*") if p.name.endswith((".part", ".tmp")))


def reasons(rep: ExecuteReport) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in rep.outcomes:
        key = f"{o.status}: {o.reason}"
        out[key] = out.get(key, 0) + 1
    return out


def resolved(plan: Plan) -> list[str]:
    """Resolve groups in plan order (the order execute starts them in)."""
    return [g.duplicate_id for g in plan.groups
            if g.action is Action.RESOLVE and not any(g.asset(i).is_external for i in g.losers)]


def backup_bytes(fake: FakeImmich, plan: Plan, gid: str) -> int:
    g = plan.group(gid)
    total = 0
    for i in g.losers:
        total += len(fake.file_bytes(i))
        video = fake.asset(i).get("livePhotoVideoId")
        if video:
            total += len(fake.file_bytes(video))
    return total


async def _run(fake: FakeImmich, plan: Plan, backup: Path, **kw: Any) -> ExecuteReport:
    async with client_for(fake) as c:
        return await execute(c, plan, ExecuteOptions(backup_dir=backup, **kw))


_SYNTH_REF: dict[str, Any] = {}


def synthetic_reference() -> dict[str, Any]:
    """The fake's state and the backup after one clean run of the synthetic plan (cached)."""
    if not _SYNTH_REF:
        fake = FakeImmich(library=SYNTHETIC)
        with tempfile.TemporaryDirectory() as d:
            rep = asyncio.run(_run(fake, base_plan(SYNTHETIC), Path(d) / "b"))
            assert rep.failed == 0
            assert rep.stopped is None
            _SYNTH_REF.update(state=fake.state(), backup=backup_state(Path(d) / "b"),
                              done=rep.done)
    return _SYNTH_REF


@pytest.fixture
def synthetic() -> tuple[FakeImmich, Plan]:
    return FakeImmich(library=SYNTHETIC), base_plan(SYNTHETIC)


# --------------------------------------------------------------------------- engine


def test_a_disk_that_fills_after_k_groups_stops_with_k_done_and_a_second_run_finishes(
    tmp_path: Path, filling_disk: Callable[..., FillingDisk], synthetic: tuple[FakeImmich, Plan]
) -> None:
    """Room for the backups of K groups: about K are done, the rest never start (no request for
    their originals), one group is failed, the message says it once; freed, a re-run finishes."""
    fake, plan = synthetic
    order = resolved(plan)
    k = 5
    assert len(order) > k + 20
    budget = sum(backup_bytes(fake, plan, gid) for gid in order[:k]) + SYNTHETIC_SIZE // 3
    backup = tmp_path / "backup"
    before = capture(fake)
    disk = filling_disk(backup, budget, downloads_only=True, mark=lambda: len(fake.request_log))

    # One group per batch: groups start in plan order, at most PIPELINE of them under way.
    rep = asyncio.run(_run(fake, plan, backup, batch_size=1))

    assert disk.refused >= 1
    assert rep.stopped is not None, reasons(rep)
    assert "No space left on device" in rep.stopped
    assert str(backup) in rep.stopped
    assert "free" in rep.stopped
    assert f"{rep.done} group(s) done" in rep.stopped
    assert "run the same command again" in rep.stopped
    # About K done: the groups under way when the disk filled finish or stop.
    assert k - PIPELINE < rep.done <= k + PIPELINE - 1, reasons(rep)
    assert rep.failed == 1, reasons(rep)
    failed = next(o for o in rep.outcomes if o.status == "failed")
    assert "No space left on device" in failed.reason
    assert "nothing in this group was trashed" in failed.reason
    stopped = [o for o in rep.outcomes if o.status == "skipped" and o.reason == rep.stopped_reason]
    assert len(stopped) == len(order) - rep.done - 1
    assert "the backup disk is full" in rep.stopped_reason
    # Groups were no longer started: only the downloads under way reached the fake after the
    # disk filled, not one per group left (the old behaviour: a failed download per group).
    assert disk.first_refusal is not None
    late = originals_requested(fake, disk.first_refusal)
    assert len(late) <= CONCURRENCY, late
    never = [o for o in stopped if not set(plan.group(o.duplicate_id).losers) & set(originals_requested(fake))]
    assert len(never) >= len(stopped) - PIPELINE
    # Nothing trashed without its complete backup; no partial file left.
    n, problems = check_backups(fake, before, backup)
    assert problems == []
    assert n == sum(len(plan.group(o.duplicate_id).losers) for o in rep.outcomes if o.status == "done")
    assert check_manifests(fake, before, backup) == []
    assert leftovers(backup) == []
    assert rep.report_path is not None  # only downloads were refused
    assert rep.report_path.exists()

    # Space freed: the same run again finishes everything, as one clean run would have.
    disk.budget = 1 << 40
    again = asyncio.run(_run(fake, plan, backup, batch_size=1))
    assert again.stopped is None
    assert again.failed == 0, reasons(again)
    assert again.done == synthetic_reference()["done"]
    assert fake.state() == synthetic_reference()["state"]
    assert backup_state(backup) == synthetic_reference()["backup"]
    FIGURES.checked(len(before.assets), 0)
    FIGURES.run("execute", 2)
    FIGURES.add_faults(__import__("collections").Counter({"disk full": disk.refused}))


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_under_the_journal_too_stops_with_one_message_and_resumes(
    err: int, tmp_path: Path, filling_disk: Callable[..., FillingDisk], synthetic: tuple[FakeImmich, Plan]
) -> None:
    """Every write shares the budget: after the first refused download the journal, manifests
    and report fail too. The run still ends with a report in memory and its one message, and a
    re-run with room finishes."""
    fake, plan = synthetic
    order = resolved(plan)
    budget = sum(backup_bytes(fake, plan, gid) for gid in order[:8])
    backup = tmp_path / "backup"
    before = capture(fake)
    disk = filling_disk(backup, budget, err=err, mark=lambda: len(fake.request_log))

    rep = asyncio.run(_run(fake, plan, backup))

    assert disk.refused >= 1
    assert rep.stopped is not None, reasons(rep)
    assert os.strerror(err) in rep.stopped
    assert rep.done < len(order)
    left = [o for o in rep.outcomes if o.status == "failed" or o.reason == rep.stopped_reason]
    assert f"{len(left)} left for the next run" in rep.stopped
    assert rep.failed <= 1, reasons(rep)
    assert not any(o.status == "skipped" and not o.reason for o in rep.outcomes)
    assert disk.first_refusal is not None
    assert len(originals_requested(fake, disk.first_refusal)) <= CONCURRENCY
    assert check_backups(fake, before, backup)[1] == []
    assert check_manifests(fake, before, backup) == []
    assert leftovers(backup) == []

    disk.budget = 1 << 40
    again = asyncio.run(_run(fake, plan, backup))
    assert again.stopped is None
    assert again.failed == 0, reasons(again)
    assert fake.state() == synthetic_reference()["state"]
    assert backup_state(backup) == synthetic_reference()["backup"]
    FIGURES.checked(len(before.assets), 0)
    FIGURES.run("execute", 2)
    FIGURES.add_faults(__import__("collections").Counter({"disk full": disk.refused}))


def test_a_backup_folder_that_cannot_be_written_stops_the_run_too(
    tmp_path: Path, filling_disk: Callable[..., FillingDisk], synthetic: tuple[FakeImmich, Plan]
) -> None:
    """EACCES (a mount that lost its permissions) fails every group alike: the same stop."""
    fake, plan = synthetic
    backup = tmp_path / "backup"
    before = capture(fake)
    disk = filling_disk(backup, 3 * SYNTHETIC_SIZE, err=errno.EACCES, downloads_only=True,
                        mark=lambda: len(fake.request_log))
    rep = asyncio.run(_run(fake, plan, backup))
    assert rep.stopped is not None, reasons(rep)
    assert "cannot be written (Permission denied" in rep.stopped
    assert "Fix its permissions (or mount it writable) and run the same command again" in rep.stopped
    assert rep.failed == 1
    assert disk.first_refusal is not None
    assert len(originals_requested(fake, disk.first_refusal)) <= CONCURRENCY
    assert check_backups(fake, before, backup)[1] == []
    assert leftovers(backup) == []
    disk.budget = 1 << 40
    again = asyncio.run(_run(fake, plan, backup))
    assert again.failed == 0
    assert again.stopped is None
    assert fake.state() == synthetic_reference()["state"]


def test_a_write_error_of_one_file_fails_only_its_group(
    tmp_path: Path, filling_disk: Callable[..., FillingDisk], synthetic: tuple[FakeImmich, Plan]
) -> None:
    """EINVAL on one file (a name the file system refuses) says nothing about the others."""
    fake, plan = synthetic
    victim = plan.group(resolved(plan)[3]).losers[0]
    backup = tmp_path / "backup"
    before = capture(fake)
    filling_disk(backup, 0, err=errno.EINVAL, only=lambda p: os.path.basename(p).startswith(victim))
    rep = asyncio.run(_run(fake, plan, backup))
    assert rep.stopped is None
    assert rep.failed == 1, reasons(rep)
    assert rep.done == synthetic_reference()["done"] - 1
    assert fake.asset(victim)["isTrashed"] is False
    assert check_backups(fake, before, backup)[1] == []
    assert leftovers(backup) == []


# --------------------------------------------------------------------------- the command line


def _cli(capsys: pytest.CaptureFixture[str], url: str, key: str, plan: Path, backup: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-u", url, "-a", key, "execute", "-i", str(plan), "-b", str(backup), "--yes",
                 "--rate-limit", "1000"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("downloads_only", [True, False], ids=["downloads", "every-write"])
def test_the_command_says_it_once_exits_1_and_the_same_command_resumes(
    downloads_only: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    filling_disk: Callable[..., FillingDisk],
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    with FakeServer(fake) as srv:
        plan = mixed_plan(server_url=normalize_base_url(srv.url))
        plan_path = tmp_path / "plan.json"
        save_plan(plan, plan_path)
        before = capture(fake)
        disk = filling_disk(backup, 150_000, downloads_only=downloads_only)
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        text = out + err
        assert disk.refused > 0
        assert code == 1, err
        assert "Traceback" not in text
        stop = [ln for ln in text.splitlines() if "execute stopped early" in ln]
        assert len(stop) == 1, text  # once, not per group
        assert stop[0].startswith("immich-dupes: execute stopped early: the backup disk is full")
        assert str(backup) in stop[0]
        assert "No space left on device" in stop[0]
        assert " free in " in stop[0]
        assert "run the same command again" in stop[0]
        assert len(stop[0]) < 400
        assert err.rstrip("\n").splitlines()[-1] == stop[0], "the message is not the last word"
        done = int(stop[0].split(" group(s) done")[0].rsplit(" ", 1)[1])
        left = int(stop[0].split(" left for the next run")[0].rsplit(" ", 1)[1])
        if downloads_only:  # (when the journal has no room either, nothing can be trashed)
            assert done >= 1, stop[0]  # the groups whose backups fitted were finished
        assert left >= 8, stop[0]  # enough groups left that a line each would show
        # The group that met the full disk is named; the groups left are not, one by one.
        assert sum(1 for ln in out.splitlines() if ln.startswith("FAILED")) <= 1, out
        assert sum(1 for ln in text.splitlines() if "No space left on device" in ln) <= 3, text
        assert not any(ln.startswith("skipped ") and "backup disk is full" in ln for ln in out.splitlines())
        assert check_backups(fake, before, backup)[1] == []
        assert check_manifests(fake, before, backup) == []
        assert leftovers(backup) == []
        FIGURES.run("execute (CLI)")

        disk.budget = 1 << 40
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        FIGURES.run("execute (CLI)")
        assert code == 0, err
        assert "execute stopped early" not in out + err
        assert "0 failed" in out
    ref = asyncio.run(reference("v3", (), False))
    assert fake.state() == ref.state
    assert backup_state(backup) == ref.backup
    FIGURES.checked(len(before.assets), 0)


def test_a_disk_full_before_the_first_step_is_one_line_with_the_free_space(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], filling_disk: Callable[..., FillingDisk],
) -> None:
    """The journal cannot take even the run's first entry: nothing is done, one line says why."""
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    with FakeServer(fake) as srv:
        plan_path = tmp_path / "plan.json"
        save_plan(mixed_plan(server_url=normalize_base_url(srv.url)), plan_path)
        disk = filling_disk(backup, 0, only=lambda p: p.endswith("journal.jsonl"))
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
    assert disk.refused == 1
    assert code == 1
    assert "Traceback" not in out + err
    last = err.rstrip("\n").splitlines()[-1]
    assert last.startswith("immich-dupes: error: cannot write to the backup directory (No space left on device")
    assert " free)" in last
    assert "run the same command again" in last
    assert not any(a["isTrashed"] for a in map(fake.asset, fake.asset_ids()))


def test_the_stop_message_names_what_could_not_be_written(tmp_path: Path) -> None:
    """A group folder left owned by another user: the message must point at it, not only at
    the backup folder (which may itself be writable)."""
    from immich_dupes.engine.execute import ExecuteReport, _Stop, _stop_message

    failed = tmp_path / "backup" / "groups" / "g1"
    stop = _Stop(OSError(errno.EACCES, "Permission denied", str(failed)), "g1")
    msg = _stop_message(stop, ExecuteReport(outcomes=[]), tmp_path / "backup")
    assert f"cannot be written (Permission denied: {failed})" in msg
