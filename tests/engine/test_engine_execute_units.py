"""Pure parts of execute: file-name sanitising, the journal, the backup store header, preview."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from immich_dupes.engine.backup import BackupError, BackupHeader, BackupStore, verify_file
from immich_dupes.engine.execute import _date_differs
from immich_dupes.engine.journal import Journal, read_entries
from immich_dupes.engine.sanitize import sanitize_file_name

UUID = "0b6f6c1e-9a55-4b8f-8f7e-1c2d3e4f5a6b"
UUID2 = "1b6f6c1e-9a55-4b8f-8f7e-1c2d3e4f5a6b"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("IMG_0001.JPG", "IMG_0001.JPG"),
        ("../../etc/passwd", "passwd"),
        ("/absolute/path/photo.heic", "photo.heic"),
        ("C:\\Users\\me\\DSC 1.jpg", "DSC 1.jpg"),
        ("..", "file"),
        ("...", "file"),
        (".hidden.png", "hidden.png"),
        ("a\x00b\x07c\x1b.jpg", "abc.jpg"),
        ("evil\u202egpj.exe", "evilgpj.exe"),
        ("con.jpg", "_con.jpg"),
        ("LPT1", "_LPT1"),
        ('what?*:<>|".jpg', "what_______.jpg"),
        ("", "file"),
        ("trailing. . ", "trailing"),
    ],
)
def test_sanitize_file_name(name: str, expected: str) -> None:
    assert sanitize_file_name(name) == expected


def test_sanitize_caps_length_and_keeps_the_extension() -> None:
    out = sanitize_file_name("é" * 500 + ".jpeg")
    assert out.endswith(".jpeg")
    assert len(out.encode("utf-8")) <= 150
    out.encode("utf-8").decode("utf-8")  # no split character


def test_asset_path_stays_inside_the_group_dir(tmp_path: Path) -> None:
    store = BackupStore.open_or_create(tmp_path / "b", _header())
    p = store.asset_path(UUID, UUID2, "../../../../outside.jpg")
    assert p.parent == tmp_path / "b" / "groups" / UUID
    assert p.name == f"{UUID2}-outside.jpg"
    with pytest.raises(BackupError):
        store.asset_path("../x", UUID2, "a.jpg")
    with pytest.raises(BackupError):
        store.asset_path(UUID, "../../x", "a.jpg")


def _header(plan: str = "a" * 64, server: str = "http://h/api", user: str = UUID) -> BackupHeader:
    return BackupHeader(
        server_url=server, user_id=user, plan_sha256=plan, created_at=datetime.now(UTC), tool_version="t"
    )


def test_backup_dir_binding(tmp_path: Path) -> None:
    root = tmp_path / "b"
    store = BackupStore.open_or_create(root, _header())
    assert (root.stat().st_mode & 0o777) == 0o700
    assert ((root / "immich-dupes-backup.json").stat().st_mode & 0o777) == 0o600
    assert store.header.plan_sha256 == "a" * 64
    # The same plan resumes; another plan, server or user is refused.
    assert BackupStore.check_usable(root, _header()) is True
    with pytest.raises(BackupError, match="different plan"):
        BackupStore.open_or_create(root, _header(plan="b" * 64))
    with pytest.raises(BackupError, match="another server"):
        BackupStore.open_or_create(root, _header(server="http://other/api"))
    with pytest.raises(BackupError, match="another user"):
        BackupStore.open_or_create(root, _header(user=UUID2))
    (root / "immich-dupes-backup.json").write_text("{not json")
    with pytest.raises(BackupError, match="invalid backup header"):
        BackupStore.open_existing(root)


def test_a_resumed_store_removes_what_killed_atomic_writes_left(tmp_path: Path) -> None:
    """A SIGKILL between an atomic write's temp file and its rename leaves ``.<name>.<x>.tmp``
    behind (seen once in the kill-and-resume test): the next run, which holds the folder's
    lock, removes such files, and nothing else."""
    root = tmp_path / "b"
    store = BackupStore.open_or_create(root, _header())
    group = store.group_dir(UUID, create=True)
    stale = [group / ".manifest.json.qd4amqny.tmp", root / ".immich-dupes-backup.json.x1y2z3.tmp",
             root / ".report-20261124T000000Z.json.abc.tmp"]
    kept = [group / f"{UUID2}-photo.jpg", group / "manifest.json", root / "notes.tmp", root / ".lock"]
    for f in (*stale, *kept):
        f.write_text("x")
    BackupStore.open_or_create(root, _header())
    assert [f.exists() for f in stale] == [False] * len(stale)
    assert all(f.exists() for f in kept)


def test_journal_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = Journal(path)
    j.append("backed_up", group="g", asset="a1")
    j.append("manifest", group="g")
    j.close()
    with path.open("ab") as f:
        f.write(b'{"kind":"consolidated","gro')  # killed mid-write
    assert [e["kind"] for e in read_entries(path)] == ["backed_up", "manifest"]
    j = Journal(path)
    j.append("consolidated", group="g")
    j.close()
    kinds = [e["kind"] for e in read_entries(path)]
    assert kinds == ["backed_up", "manifest", "consolidated"]
    assert path.read_bytes().endswith(b"\n")
    assert all(json.loads(line) for line in path.read_text().splitlines())
    assert (os.stat(path).st_mode & 0o777) == 0o600


def test_verify_file(tmp_path: Path) -> None:
    import base64
    import hashlib

    p = tmp_path / "f"
    p.write_bytes(b"hello")
    digest = base64.b64encode(hashlib.sha1(b"hello").digest()).decode()
    assert verify_file(p, 5, digest)
    assert not verify_file(p, 4, digest)
    assert not verify_file(p, 5, base64.b64encode(hashlib.sha1(b"hellO").digest()).decode())
    assert not verify_file(tmp_path / "missing", 5, digest)


@pytest.mark.parametrize(
    ("target", "instant", "zone", "differs"),
    [
        ("2019-07-04T18:30:00+02:00", "2019-07-04T16:30:00+00:00", "UTC+2", False),
        ("2019-07-04T18:30:00+02:00", "2019-07-04T16:30:00+00:00", "Europe/Berlin", False),
        ("2019-07-04T18:30:00+02:00", "2019-07-04T16:30:00+00:00", "UTC", True),
        ("2019-07-04T18:30:00+02:00", "2019-07-04T18:30:00+00:00", "UTC+2", True),
        ("2019-07-04T18:30:00+02:00", None, None, True),
    ],
)
def test_date_differs(target: str, instant: str | None, zone: str | None, differs: bool) -> None:
    current = datetime.fromisoformat(instant) if instant else None
    assert _date_differs(target, current, zone) is differs
