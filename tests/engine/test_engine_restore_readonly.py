"""``restore --dry-run`` on a backup folder it cannot write: it only reads, writes nothing (not
even the lock file), and still refuses to run while an execute or restore holds the folder.

The folder's files are compared before and after (names, sizes, modes, mtimes, the folders'
own mtimes included), so the no-write guarantee is tested whatever the permissions; the
read-only folder is made by ``chmod -R a-w`` (not a bound for root, so skipped then) and, for
every user, by refusing every open for writing under it (``os.open`` answers EROFS, as on a
read-only mount)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from immich_dupes import cli
from immich_dupes.analysis.decide import accept
from immich_dupes.commands import restore as restore_cmd
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import LOCK_NAME, BackupLocked, lock_backup_dir
from immich_dupes.engine.events import Event
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.restore import restore
from immich_dupes.fake import FakeImmich
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import ImmichClient

URL = "http://fake-immich"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

Snapshot = dict[str, tuple[str, int, int, int]]


def client(fake: FakeImmich) -> ImmichClient:
    return ImmichClient(URL, fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8)


def executed(tmp: Path, force: bool) -> tuple[FakeImmich, Path]:
    """A backup made by a real execute against the fake (``force``: the losers are purged, so a
    restore would re-upload them from the backup's files)."""
    fake = FakeImmich(library="sample", profile="v3")
    backup = tmp / "backup"

    async def go() -> None:
        async with client(fake) as c:
            plan = await analyze(c)
            plan.groups = [accept(g) for g in plan.groups]
            rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=force))
            assert rep.failed == 0
            assert rep.done > 0

    asyncio.run(go())
    if force:
        fake.run_jobs()
    assert (backup / LOCK_NAME).is_file()  # execute left its lock file: the shared lock uses it
    return fake, backup


def snapshot(root: Path) -> Snapshot:
    """Every entry under ``root`` (and ``root``): kind, size, mode and mtime in nanoseconds."""
    out: Snapshot = {}
    for p in [root, *sorted(root.rglob("*"))]:
        st = p.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
        out[str(p.relative_to(root))] = (kind, st.st_size if kind == "file" else 0, st.st_mode, st.st_mtime_ns)
    return out


def dry_run_cli(
    fake: FakeImmich, backup: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], str]:
    """``immich-dupes restore -b BACKUP --dry-run`` (the command's own code, the fake's transport)."""
    args = cli.build_parser().parse_args(
        ["-u", URL, "-a", fake.api_key, "restore", "-b", str(backup), "--dry-run", "--rate-limit", "10000"]
    )
    capsys.readouterr()
    code = restore_cmd.run(args, fake.transport())
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


@contextlib.contextmanager
def read_only_under(root: Path, monkeypatch: pytest.MonkeyPatch, also: tuple[Path, ...] = ()) -> Iterator[list[str]]:
    """Every ``os.open`` for writing under ``root`` fails with EROFS, as on a read-only mount
    (permissions do not matter, so it binds root as well). ``also``: paths that cannot even be
    opened for reading (EACCES, as another user's 0600 file). Yields the refused attempts."""
    real_open = os.open
    refused: list[str] = []
    top = os.path.realpath(root)

    def guarded(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        where = os.path.realpath(os.fspath(path)) if isinstance(path, str | Path) else ""
        if where == top or where.startswith(top + os.sep):
            if flags & _WRITE_FLAGS:
                refused.append(where)
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
            if any(where == os.path.realpath(a) for a in also):
                raise OSError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "open", guarded)
        yield refused


# --------------------------------------------------------------------------- read-only, writes nothing


@pytest.mark.parametrize("force", [False, True], ids=["trashed", "purged"])
def test_dry_run_on_a_folder_it_cannot_write_lists_the_same_and_writes_nothing(
    force: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, backup = executed(tmp_path, force)
    before = snapshot(backup)

    code, writable, _ = dry_run_cli(fake, backup, capsys)
    assert code == 0
    want = "would re-upload" if force else "would restore from trash"
    assert sum(1 for line in writable if line.startswith(want)) >= 10, writable
    assert snapshot(backup) == before  # a dry run on a writable folder writes nothing either

    with read_only_under(backup, monkeypatch) as refused:
        code, read_only, err = dry_run_cli(fake, backup, capsys)
    assert code == 0, err
    assert read_only == writable
    assert "warning" not in err  # the shared lock was taken: nothing to warn about
    assert refused == []  # not even an attempt to open something for writing
    assert snapshot(backup) == before


def test_dry_run_on_a_chmod_a_w_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        pytest.skip("running as root, which writes through any permission: chmod -R a-w cannot make "
                    "the folder read-only (the EROFS test above covers this case for root)")
    fake, backup = executed(tmp_path, force=True)
    code, writable, _ = dry_run_cli(fake, backup, capsys)
    assert code == 0
    subprocess.run(["chmod", "-R", "a-w", str(backup)], check=True)
    try:
        before = snapshot(backup)
        with pytest.raises(PermissionError):  # the folder really is read-only for this user
            (backup / "probe").write_bytes(b"")
        code, read_only, err = dry_run_cli(fake, backup, capsys)
        assert code == 0, err
        assert read_only == writable
        assert snapshot(backup) == before
        # A real restore needs to write (its record, the lock): refused in one line, nothing sent.
        n = len(fake.request_log)
        args = cli.build_parser().parse_args(["-u", URL, "-a", fake.api_key, "restore", "-b", str(backup), "--yes"])
        capsys.readouterr()
        assert restore_cmd.run(args, fake.transport()) == 2
        assert "cannot be locked" in capsys.readouterr().err
        assert fake.request_log[n:] == []
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(backup)], check=True)


# --------------------------------------------------------------------------- the lock


HOLDER = """
import sys
from pathlib import Path
from immich_dupes.engine.backup import lock_backup_dir
with lock_backup_dir(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


@contextlib.contextmanager
def held_by_another_process(backup: Path) -> Iterator[None]:
    """Another process holding the folder's lock the way execute and restore do."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(backup)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == "held\n"
        yield
    finally:
        assert p.stdin is not None
        p.stdin.close()
        p.wait(timeout=30)


def test_dry_run_is_refused_while_another_process_holds_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, backup = executed(tmp_path, force=False)
    with held_by_another_process(backup):
        before = snapshot(backup)
        n = len(fake.request_log)
        with read_only_under(backup, monkeypatch):
            code, out, err = dry_run_cli(fake, backup, capsys)
        assert code == 2
        assert out == []
        assert err.splitlines() == [
            f"immich-dupes: error: another execute or restore is using this backup directory ({backup}); "
            "wait for it to finish"
        ]
        assert fake.request_log[n:] == []  # refused before the server is contacted
        assert snapshot(backup) == before
    # Released: the same dry run goes through.
    with read_only_under(backup, monkeypatch):
        assert dry_run_cli(fake, backup, capsys)[0] == 0


def test_a_dry_run_keeps_execute_and_restore_out_but_lets_other_dry_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shared lock is held for the whole dry run: checked from inside it, at its first
    request to the server."""
    fake, backup = executed(tmp_path, force=False)
    seen: list[str] = []
    original = fake._respond

    def during(req: ApiRequest, decision: Any) -> Any:
        if not seen:
            try:
                with lock_backup_dir(backup):  # what an execute or restore takes
                    seen.append("writer got in")
            except BackupLocked:
                seen.append("writer refused")
            with lock_backup_dir(backup, shared=True) as note:  # a second dry run
                seen.append(f"reader got in{note}")
        return original(req, decision)

    monkeypatch.setattr(fake, "_respond", during)

    async def go() -> None:
        async with client(fake) as c, asyncio.timeout(60):
            rep = await restore(c, backup, dry_run=True)
        assert rep.actions
        assert rep.failed == 0

    asyncio.run(go())  # a writable folder: only the dry run's lock keeps the writer out
    assert seen == ["writer refused", "reader got in"]
    with lock_backup_dir(backup):  # released with the run
        pass


def test_a_lock_file_it_cannot_read_is_said_and_the_dry_run_reads_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user's 0600 lock file: whether a run holds the folder cannot be told without
    it. The dry run says so in one warning and reads anyway (it changes nothing anywhere)."""
    fake, backup = executed(tmp_path, force=False)
    code, writable, _ = dry_run_cli(fake, backup, capsys)
    before = snapshot(backup)
    with read_only_under(backup, monkeypatch, also=(backup / LOCK_NAME,)):
        code, out, err = dry_run_cli(fake, backup, capsys)
    assert code == 0, err
    assert out == writable
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: cannot tell whether an execute or restore is using {backup} "
        "(its lock file cannot be opened: Permission denied); reading it as it is"
    ]
    assert snapshot(backup) == before

    events: list[Event] = []

    async def go() -> None:
        async with client(fake) as c:
            await restore(c, backup, events.append, dry_run=True)

    with read_only_under(backup, monkeypatch, also=(backup / LOCK_NAME,)):
        asyncio.run(go())
    assert [e.message for e in events if e.level == "warning"] == [warnings[0].removeprefix("warning: ")]


def test_no_lock_file_no_run_to_wait_for_and_none_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy made without the dot-file: no execute or restore has held it (each creates the
    lock file first), so the dry run reads without a lock, silently, and creates none."""
    fake, backup = executed(tmp_path, force=False)
    code, writable, _ = dry_run_cli(fake, backup, capsys)
    (backup / LOCK_NAME).unlink()
    before = snapshot(backup)
    code, out, err = dry_run_cli(fake, backup, capsys)
    assert (code, out) == (0, writable)
    assert "warning" not in err
    assert snapshot(backup) == before
    assert not (backup / LOCK_NAME).exists()
    # a real restore still takes (and creates) it
    with lock_backup_dir(backup):
        assert (backup / LOCK_NAME).exists()
