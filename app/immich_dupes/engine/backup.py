"""The backup store: where execute puts every loser before it touches it, and restore reads.

Layout under the backup directory (directories 0700, files 0600)::

    immich-dupes-backup.json          header: format, server_url, user_id, analysis_created_at, ...
    journal.jsonl                     execute's durable step log (engine/journal.py)
    groups/<duplicate_id>/manifest.json                 GroupManifest (atomic write)
    groups/<duplicate_id>/<asset_id>-<sanitized name>   the original bytes
    report-<UTC timestamp>.json       one per execute run: every group's outcome

A manifest carries a SHA-256 of its own content (``integrity``), so a hand-edited or
damaged manifest is refused by restore instead of silently restoring the wrong thing.

A backup directory belongs to one *analysis* (the plan's server, user and ``created_at``, which
review never changes): the runs of every reviewed version of that plan share it, and execute
binds each group to the version of it that it started (in the journal). A header written
before ``analysis_created_at`` existed binds the directory to one plan's exact content
(``plan_sha256``), as it always did.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from immich_dupes.analysis.plan import UUID_PATTERN, atomic_write_text, fsync_dir
from immich_dupes.engine.journal import Journal
from immich_dupes.engine.sanitize import sanitize_file_name

FORMAT = 1
HEADER_NAME = "immich-dupes-backup.json"
JOURNAL_NAME = "journal.jsonl"
GROUPS_DIR = "groups"
MANIFEST_NAME = "manifest.json"
PART_SUFFIX = ".part"
LOCK_NAME = ".lock"
_UUID = re.compile(UUID_PATTERN)


class BackupError(ValueError):
    """The backup directory cannot be used (or read): one plain sentence naming the path."""


class BackupLocked(BackupError):
    """Another execute or restore holds the backup directory's lock."""


@contextlib.contextmanager
def lock_backup_dir(path: Path, shared: bool = False) -> Iterator[str]:
    """Hold a lock on ``<path>/.lock`` for the duration of the ``with`` block.

    Exclusive (execute, restore): the lock file is created if need be and holds the pid.
    Non-blocking: raises BackupLocked at once when another execute or restore (any process,
    or another open of it in this one) holds it. The lock dies with its process, so a killed
    run never leaves the directory locked. ``path`` must exist.

    ``shared`` (restore's dry run, which only reads): needs no write access and writes nothing.
    A shared lock on the existing lock file, taken through a read-only descriptor, is refused
    (BackupLocked) while an execute or restore holds the directory, lets other readers in, and
    keeps an execute or restore out until the block ends. No lock file: no execute or restore
    ever held this directory (each creates it first), so there is nothing to wait for and
    nothing is created (nor kept out: an execute started meanwhile is not refused, and the
    dry run, which only reads, may then list what that run changes). A lock file that cannot
    be read or locked (another user's, a file system without locks): whether a run is using
    the directory cannot be told; the block runs anyway (reading only) and the value yielded
    says so in one sentence. Otherwise the value yielded is "".
    """
    lock = Path(path) / LOCK_NAME
    if shared:
        yield from _shared_lock(Path(path), lock)
        return
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        raise BackupError(f"backup directory {path} cannot be locked: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupLocked(_busy(path)) from None
        except OSError as e:
            raise BackupError(f"backup directory {path} cannot be locked: {e.strerror}") from None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield ""
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _busy(path: Path) -> str:
    return f"another execute or restore is using this backup directory ({path}); wait for it to finish"


def _shared_lock(path: Path, lock: Path) -> Iterator[str]:
    """The ``shared`` half of lock_backup_dir: read-only, never creates or writes the lock file."""
    cannot_tell = (
        "cannot tell whether an execute or restore is using {path} ({why}); reading it as it is"
    )
    try:
        # non-blocking: a FIFO put in its place must not hang the dry run
        fd = os.open(lock, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        yield ""  # never locked by anyone: no run to wait for
        return
    except OSError as e:
        yield cannot_tell.format(path=path, why=f"its lock file cannot be opened: {e.strerror}")
        return
    try:
        note = ""
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupLocked(_busy(path)) from None
        except OSError as e:
            note = cannot_tell.format(path=path, why=f"its lock file cannot be locked: {e.strerror}")
        yield note
    finally:
        os.close(fd)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BackupHeader(_Model):
    format: Literal[1] = 1
    server_url: str
    user_id: str
    plan_sha256: str
    """SHA-256 of the whole plan of the run that created the directory. It binds the directory
    only when ``analysis_created_at`` is missing (a header of an older immich-dupes)."""
    created_at: datetime
    """When the directory was created."""
    tool_version: str = ""
    analysis_created_at: datetime | None = None
    """The plan's ``created_at``: with server and user, the analysis this directory belongs to.
    Review edits a plan but never this, so every reviewed version of the plan may use the
    directory; a plan of another analysis may not. None in headers of older versions."""


class ManifestAlbum(_Model):
    id: str
    name: str = ""


class ManifestTag(_Model):
    id: str
    value: str = ""


class ManifestAsset(_Model):
    asset_id: str = Field(pattern=UUID_PATTERN)
    asset: dict[str, Any]
    """The full AssetResponseDto JSON as the server sent it right before execute acted."""
    albums: list[ManifestAlbum] = Field(default_factory=list)
    tags: list[ManifestTag] = Field(default_factory=list)
    file: str
    """Path of the backed-up original, relative to the backup directory."""
    size: int = Field(ge=0)
    sha1_b64: str
    """Base64 SHA-1 of the stored bytes (equal to the server's ``checksum`` for uploads)."""
    verified: bool
    live_photo_video: ManifestAsset | None = None


class GroupManifest(_Model):
    duplicate_id: str = Field(pattern=UUID_PATTERN)
    winner_id: str = Field(pattern=UUID_PATTERN)
    mode: Literal["trash", "force"]
    losers: list[ManifestAsset]
    winner: dict[str, Any] | None = None
    """The winner's AssetResponseDto JSON as the server sent it right before execute changed
    it: its own GPS, date, time zone and description, which consolidation writes over where the
    review took another copy's. Restore brings back losers, not these: it lists them. None in
    manifests of versions before it was kept (left out of their content hash)."""
    integrity: str = ""
    """SHA-256 (hex) of this manifest without this field; set on write, checked on read."""

    def content_sha256(self) -> str:
        exclude = {"integrity"} if self.winner is not None else {"integrity", "winner"}
        body = self.model_dump(mode="json", exclude=exclude)
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha1_b64_of(path: Path, chunk: int = 1 << 20) -> tuple[int, str]:
    """(size, base64 SHA-1) of a file, read in chunks."""
    h = hashlib.sha1()
    size = 0
    with path.open("rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
            size += len(block)
    return size, base64.b64encode(h.digest()).decode("ascii")


def verify_file(path: Path, size: int, sha1_b64: str) -> bool:
    """True when the file exists, has ``size`` bytes and that SHA-1 (base64)."""
    try:
        if not path.is_file() or path.stat().st_size != size:
            return False
        _, digest = sha1_b64_of(path)
    except OSError:
        return False
    return digest == sha1_b64


def _mkdir_private(path: Path) -> None:
    path.mkdir(mode=0o700, parents=False, exist_ok=True)
    os.chmod(path, 0o700)


def _check_uuid(value: str, what: str) -> None:
    if not _UUID.match(value):
        raise BackupError(f"{what} {value!r} is not a UUID; refusing to use it in a path")


class BackupStore:
    """One backup directory. Create with ``open_or_create`` (execute) or ``open_existing`` (restore)."""

    def __init__(self, root: Path, header: BackupHeader) -> None:
        self.root = root
        self.header = header
        self.journal = Journal(root / JOURNAL_NAME)
        self._made: set[str] = set()
        self._resolved: dict[str, Path] = {}

    # ------------------------------------------------------------------ opening

    @staticmethod
    def check_usable(path: Path, header: BackupHeader) -> bool:
        """Raise BackupError unless ``path`` can hold this plan's backup; True if it already does.

        A directory holds the backup of one analysis: any reviewed version of that plan may use
        it (execute then checks each group against the version that started it). A header
        without ``analysis_created_at`` (older versions), or a ``header`` without it, binds the
        directory to the exact plan (``plan_sha256``). Reads only; creates nothing (a dry run
        calls this too).
        """
        if path.exists() and not path.is_dir():
            raise BackupError(f"backup directory {path} is a file, not a directory")
        if not path.exists():
            parent = existing_ancestor(path)
            if parent is None or not parent.is_dir():
                raise BackupError(f"backup directory {path} cannot be created (no such parent folder)")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise BackupError(f"backup directory {path} cannot be created: {parent} is not writable")
            return False
        if not os.access(path, os.W_OK | os.X_OK | os.R_OK):
            raise BackupError(f"backup directory {path} is not writable")
        head = path / HEADER_NAME
        if not head.exists():
            foreign = sorted(p.name for p in path.iterdir() if p.name != LOCK_NAME)
            if foreign:
                shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
                raise BackupError(
                    f"backup directory {path} is not empty and is not an immich-dupes backup "
                    f"(holds {shown}); use an empty or new folder"
                )
            return False
        existing = _read_header(head)
        # A directory of an older immich-dupes (analysis unknown): bound to one plan's exact content.
        if (
            not BackupStore.same_analysis(path, existing, header)
            and existing.plan_sha256 != header.plan_sha256
        ):
            raise BackupError(
                f"backup directory {path} holds the backup of a different plan; "
                "resume only with the same plan file, or use a new folder for this plan"
            )
        return True

    @staticmethod
    def same_analysis(path: Path, existing: BackupHeader, header: BackupHeader) -> bool:
        """The binding of a backup directory (header ``existing``) to a plan (``header``):
        raise BackupError when it holds a backup of another server, user or analysis.

        True when it is of this plan's analysis; False when that cannot be told (either header
        lacks ``analysis_created_at``: an older immich-dupes), where execute binds the directory
        to the exact plan (``plan_sha256``, in ``check_usable``). Verify uses it too.
        """
        if existing.server_url.rstrip("/") != header.server_url.rstrip("/"):
            raise BackupError(
                f"backup directory {path} holds a backup from another server "
                f"({existing.server_url}); use a new folder for this one"
            )
        if existing.user_id != header.user_id:
            raise BackupError(
                f"backup directory {path} holds a backup of another user's library; use a new folder"
            )
        if existing.analysis_created_at is None or header.analysis_created_at is None:
            return False
        if existing.analysis_created_at != header.analysis_created_at:
            raise BackupError(
                f"backup directory {path} holds the backup of a different plan, from another "
                f"analysis (made {_when(existing.analysis_created_at)}; this plan's was made "
                f"{_when(header.analysis_created_at)}); use a new folder for a new analysis"
            )
        return True

    @classmethod
    def open_or_create(cls, path: Path, plan_header: BackupHeader) -> BackupStore:
        """Open the backup of this plan (resume) or start a new one in an empty/new folder.

        The caller holds the folder's lock (``lock_backup_dir``): a resume removes what killed
        atomic writes left (``remove_stale_temp_files``)."""
        path = Path(path)
        exists = cls.check_usable(path, plan_header)
        if exists:
            header = _read_header(path / HEADER_NAME)
        else:
            try:
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                _mkdir_private(path)
                header = plan_header
                atomic_write_text(path / HEADER_NAME, header.model_dump_json(indent=1))
                fsync_dir(path)
            except OSError as e:
                raise BackupError(f"backup directory {path} cannot be used: {e.strerror}") from None
        try:
            _mkdir_private(path / GROUPS_DIR)
            probe = path / f".probe-{os.getpid()}.tmp"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise BackupError(f"backup directory {path} is not writable: {e.strerror}") from None
        store = cls(path, header)
        if exists:
            store.remove_stale_temp_files()
        return store

    def remove_stale_temp_files(self) -> int:
        """Remove what a killed run's atomic writes left behind: the temp files they write
        first (``.<name>.<random>.tmp``, see ``atomic_write_chunks``) and rename into place.
        Only the caller holding the folder's exclusive lock may do this (execute, or restore
        when not a dry run): no other writer can be busy with one. Returns how many were removed."""
        removed = 0
        for stale in (*self.root.glob(".*.tmp"), *(self.root / GROUPS_DIR).glob("*/.*.tmp")):
            with contextlib.suppress(OSError):
                stale.unlink()
                removed += 1
        return removed

    @classmethod
    def open_existing(cls, path: Path) -> BackupStore:
        """Open a backup for reading (restore, verify). Raises BackupError with a clear sentence."""
        path = Path(path)
        if not path.exists():
            raise BackupError(f"backup directory {path} does not exist")
        if not path.is_dir():
            raise BackupError(f"{path} is a file, not a backup directory")
        head = path / HEADER_NAME
        if not head.exists():
            raise BackupError(f"{path} is not an immich-dupes backup (no {HEADER_NAME})")
        return cls(path, _read_header(head))

    # ------------------------------------------------------------------ layout

    def group_dir(self, duplicate_id: str, create: bool = False) -> Path:
        _check_uuid(duplicate_id, "duplicate id")
        d = self.root / GROUPS_DIR / duplicate_id
        if create and duplicate_id not in self._made:
            if GROUPS_DIR not in self._made:
                _mkdir_private(self.root / GROUPS_DIR)
                self._made.add(GROUPS_DIR)
            _mkdir_private(d)
            self._made.add(duplicate_id)
        return d

    def asset_path(self, duplicate_id: str, asset_id: str, file_name: str) -> Path:
        """Where an asset's original goes: ``groups/<dup>/<asset>-<sanitized name>``."""
        _check_uuid(asset_id, "asset id")
        gdir = self.group_dir(duplicate_id)
        p = gdir / f"{asset_id}-{sanitize_file_name(file_name)}"
        base = self._resolved.get(duplicate_id)
        if base is None:
            base = self._resolved[duplicate_id] = gdir.resolve()
        if (base / p.name).resolve().parent != base:
            raise BackupError(f"refusing a backup path outside {gdir}: {p.name!r}")
        return p

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def resolve_file(self, rel: str) -> Path:
        """A manifest's ``file`` as a path inside the backup directory (never outside it)."""
        p = (self.root / rel).resolve()
        root = self.root.resolve()
        if root not in p.parents:
            raise BackupError(f"manifest file path {rel!r} points outside the backup directory")
        return p

    # ------------------------------------------------------------------ manifests

    def manifest_path(self, duplicate_id: str) -> Path:
        return self.group_dir(duplicate_id) / MANIFEST_NAME

    def write_manifest(self, m: GroupManifest) -> Path:
        self.group_dir(m.duplicate_id, create=True)
        m = m.model_copy(update={"integrity": ""})
        m.integrity = m.content_sha256()
        p = self.manifest_path(m.duplicate_id)
        atomic_write_text(p, m.model_dump_json(indent=1))
        return p

    def read_manifest(self, duplicate_id: str) -> GroupManifest | None:
        p = self.manifest_path(duplicate_id)
        if not p.exists():
            return None
        return _load_manifest(p, self)

    def manifests(self) -> Iterator[GroupManifest]:
        """Every group's manifest, in a stable order; BackupError on an invalid or edited one."""
        gdir = self.root / GROUPS_DIR
        if not gdir.is_dir():
            return
        for d in sorted(gdir.iterdir()):
            p = d / MANIFEST_NAME
            if d.is_dir() and p.exists():
                yield _load_manifest(p, self)

    # ------------------------------------------------------------------ reports

    def write_report(self, data: dict[str, Any], when: datetime | None = None) -> Path:
        when = when or datetime.now(UTC)
        name = f"report-{when.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
        p = self.root / name
        atomic_write_text(p, json.dumps(data, indent=1, ensure_ascii=False))
        return p


def _when(d: datetime) -> str:
    """An analysis time as a person reads it: ``2024-05-01 10:00:00 UTC``."""
    if d.tzinfo is not None:
        return d.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return d.strftime("%Y-%m-%d %H:%M:%S")


def existing_ancestor(path: Path) -> Path | None:
    """The path itself or its nearest parent that exists (where a folder would be created)."""
    p = path.absolute()
    for candidate in (p, *p.parents):
        if candidate.exists():
            return candidate
    return None


def free_bytes(path: Path) -> int | None:
    """Free space where ``path`` is (or would be created); None when it cannot be told."""
    where = existing_ancestor(path)
    if where is None:
        return None
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def _read_header(path: Path) -> BackupHeader:
    try:
        return BackupHeader.model_validate_json(path.read_bytes())
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise BackupError(f"{path}: invalid backup header ({loc}: {err.get('msg')})") from None
    except OSError as e:
        raise BackupError(f"{path}: cannot read ({e.strerror})") from None


def _load_manifest(path: Path, store: BackupStore) -> GroupManifest:
    try:
        m = GroupManifest.model_validate_json(path.read_bytes())
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err.get("loc", ()))
        raise BackupError(f"{path}: invalid manifest ({loc}: {err.get('msg')})") from None
    except OSError as e:
        raise BackupError(f"{path}: cannot read ({e.strerror})") from None
    if m.integrity != m.content_sha256():
        raise BackupError(f"{path}: the manifest was edited or damaged (its checksum does not match)")
    if path.parent.name != m.duplicate_id:
        raise BackupError(f"{path}: manifest is for group {m.duplicate_id}, not {path.parent.name}")
    for loser in m.losers:
        for a in (loser, loser.live_photo_video):
            if a is not None:
                store.resolve_file(a.file)
    return m


__all__ = [
    "FORMAT",
    "HEADER_NAME",
    "JOURNAL_NAME",
    "LOCK_NAME",
    "BackupError",
    "BackupHeader",
    "BackupLocked",
    "BackupStore",
    "GroupManifest",
    "ManifestAlbum",
    "ManifestAsset",
    "lock_backup_dir",
    "sha1_b64_of",
    "verify_file",
]
