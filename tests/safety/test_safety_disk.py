"""Disk: free space is checked before execute starts; a disk that fills up mid-run stops it cleanly.

"Full" is simulated in-process: the ``os`` module seen by the code that writes the backup
(the download in the client, the atomic writes of manifests/reports, the journal) is swapped
for one whose writes raise ``ENOSPC`` once a budget is used up, for one kind of file at a
time. After each: nothing was trashed without its backup, the group in flight is reported
failed with a plain reason, the command exits 1 with one line (no traceback), and a re-run
with space ends exactly as a clean run.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from safety_support import (
    FIGURES,
    backup_state,
    capture,
    charge_writes,
    check_backups,
    check_manifests,
    client_for,
    mixed_plan,
    reference,
)

from immich_dupes.analysis.plan import save_plan
from immich_dupes.cli import main
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import normalize_base_url

GiB = 1 << 30


def _kind(path: str) -> str:
    name = os.path.basename(path)
    if name.endswith(".part"):
        return "download"
    if name.startswith(".manifest.json."):
        return "manifest"
    if name.startswith(".report-"):
        return "report"
    if name == "journal.jsonl":
        return "journal"
    return "other"


class Disk:
    """Writes of ``kind`` files under ``root`` fail with ENOSPC once ``budget`` bytes are used."""

    def __init__(self, root: Path, kind: str, budget: int) -> None:
        self.root = str(root.resolve())
        self.kind = kind
        self.budget = budget
        self.used = 0
        self.refused = 0

    def charge(self, fd: int, n: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return
        if not path.startswith(self.root) or _kind(path) != self.kind:
            return
        if self.used + n > self.budget:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.used += n


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``full_disk(root, kind, budget)``: writes of that kind under root fail once budget is used."""

    def install(root: Path, kind: str, budget: int) -> Disk:
        disk = Disk(root, kind, budget)
        charge_writes(monkeypatch, disk)
        return disk

    return install


def _cli(capsys: pytest.CaptureFixture[str], url: str, key: str, plan: Path, backup: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["-u", url, "-a", key, "execute", "-i", str(plan), "-b", str(backup), "--yes",
                 "--rate-limit", "1000"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("kind", "budget"),
    [("download", 120_000), ("download", 0), ("manifest", 4_000), ("journal", 6_000), ("report", 0)],
    ids=["downloads-mid-run", "downloads-at-once", "manifest", "journal", "report"],
)
def test_disk_full_mid_run_stops_cleanly_and_a_rerun_finishes(
    kind: str, budget: int, tmp_path: Path, capsys: pytest.CaptureFixture[str], full_disk: Any
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    with FakeServer(fake) as srv:
        plan_path = tmp_path / "plan.json"
        save_plan(mixed_plan(server_url=normalize_base_url(srv.url)), plan_path)
        before = capture(fake)
        disk = full_disk(backup, kind, budget)
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        assert disk.refused > 0, "the disk never filled up"
        assert code == 1, err
        assert "Traceback" not in err + out
        errors = [ln for ln in (out + err).splitlines() if "No space left on device" in ln]
        assert errors, out + err
        assert all(len(ln) < 400 for ln in errors)
        _, problems = check_backups(fake, before, backup)
        assert problems == []
        assert check_manifests(fake, before, backup) == []
        FIGURES.checked(len(before.assets), 0)
        FIGURES.run("execute (CLI)")
        # Room again: the same command finishes the job, as one clean run would have.
        disk.budget = 1 << 40
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        FIGURES.run("execute (CLI)")
        assert code == 0, err
    ref = asyncio.run(reference("v3", (), False))
    assert fake.state() == ref.state
    assert backup_state(backup) == ref.backup
    FIGURES.add_faults(__import__("collections").Counter({"disk full": disk.refused}))


def test_a_full_download_fails_only_the_group_in_flight(tmp_path: Path, full_disk: Any) -> None:
    """With room for some backups, those groups are done; the one that hit the full disk is
    failed with the reason, its losers untouched; the rest are left for the next run, none trashed."""
    fake = FakeImmich(library="sample")
    before = capture(fake)
    backup = tmp_path / "backup"
    disk = full_disk(backup, "download", 150_000)

    async def go() -> Any:
        async with client_for(fake) as c:
            return await execute(c, mixed_plan(), ExecuteOptions(backup_dir=backup))

    rep = asyncio.run(go())
    failed = [o for o in rep.outcomes if o.status == "failed"]
    assert rep.done >= 1
    assert failed
    for o in failed:
        assert "No space left on device" in o.reason
        assert "nothing in this group was trashed" in o.reason
        for loser in mixed_plan().group(o.duplicate_id).losers:
            assert fake.asset(loser)["isTrashed"] is False
    assert check_backups(fake, before, backup)[1] == []
    assert not list(backup.rglob("*.part")), "a partial download was left behind"
    assert disk.refused >= 1


def test_not_enough_free_space_is_refused_before_any_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    real = shutil.disk_usage

    def small(path: Any) -> Any:
        u = real(path)
        return type(u)(u.total, u.total - 1_000_000, 1_000_000)  # 1 MB free

    with FakeServer(fake) as srv:
        plan_path = tmp_path / "plan.json"
        save_plan(mixed_plan(server_url=normalize_base_url(srv.url)), plan_path)
        monkeypatch.setattr(shutil, "disk_usage", small)
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        assert code == 2
        assert err.count("\n") == 1
        assert "not enough free disk space" in err
        assert "1.0 MB free" in err
        assert fake.request_log == []
        assert not backup.exists()
        FIGURES.refused("disk space", "1 MB free")
        # The dry run needs no space.
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        assert code == 2
        capsys.readouterr()
        assert main(["-u", srv.url, "-a", fake.api_key, "execute", "-i", str(plan_path), "-b",
                     str(backup), "--dry-run"]) == 0
        # Plenty of room: it runs.
        monkeypatch.setattr(shutil, "disk_usage", lambda p: type(real(p))(100 * GiB, 0, 100 * GiB))
        code, out, err = _cli(capsys, srv.url, fake.api_key, plan_path, backup)
        assert code == 0, err
