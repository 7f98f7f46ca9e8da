"""Execute a plan safely: re-check, back up, record, consolidate, trash, clear — journaled.

The invariants (DESIGN §8) this module keeps, in the order it acts per group:

1. Nothing leaves before the plan is re-checked against one fresh ``GET /duplicates``: a group
   whose winner is gone, trashed or changed, or whose members changed, is skipped with a reason.
2. A loser is trashed only after its original is in the backup directory, complete, fsynced,
   and (for uploaded assets) its SHA-1 equals the server's checksum; its live-photo video too.
3. External-library losers are trashed only when a person allowed it in review.
4. Every step is journaled (append + fsync) before the next; a re-run with the same plan and
   backup directory resumes and repeats nothing that completed. A backup directory belongs to
   one analysis: a reviewed (edited) version of the plan may run into it too. Each group is
   bound to the version of it that execute started (``group_sha256``, journaled before its
   first step): a group done before is never done again, and a group an earlier run carried
   out in part with another version is left alone (``_State.committed``), so one group never
   gets two decisions.
5. The manifest holds each loser's full asset JSON, albums and tags for restore.
6. The API key is never written anywhere (it lives only inside the client).
7. Requests are batched across groups (albums, tags, deletes, membership clears) and run
   concurrently within the client's ``--concurrent`` and ``--rate-limit``.
8. A write into the backup folder that fails for lack of space (ENOSPC, EDQUOT), or because
   the folder cannot be written (EACCES, EPERM, EROFS), stops the run: no group starts after
   it, the groups under way finish or stop before trashing anything, and the report says it
   once (``ExecuteReport.stopped``); the same command resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import glob
import hashlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

from pydantic import ValidationError

from immich_dupes import __version__
from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, Plan, PlanAlbum, PlanAsset, fsync_dir
from immich_dupes.analysis.timezones import offset_minutes
from immich_dupes.engine.analyze import album_membership
from immich_dupes.engine.backup import (
    JOURNAL_NAME,
    PART_SUFFIX,
    BackupError,
    BackupHeader,
    BackupStore,
    GroupManifest,
    ManifestAlbum,
    ManifestAsset,
    ManifestTag,
    existing_ancestor,
    free_bytes,
    lock_backup_dir,
    verify_file,
)
from immich_dupes.engine.events import Event, Reporter, ignore
from immich_dupes.engine.journal import read_entries
from immich_dupes.engine.sanitize import sanitize_file_name
from immich_dupes.immich.client import ImmichClient, ServerInfo, normalize_base_url
from immich_dupes.immich.errors import (
    ConnectionFailed,
    ImmichError,
    IntegrityError,
    NotFound,
)
from immich_dupes.immich.models import Asset, BulkIdResult, Visibility
from immich_dupes.units import human_bytes

T = TypeVar("T")

BATCH_GROUPS = 100
"""Groups acted on together: requests are batched within a batch, memory stays flat across them."""
DELETE_CHUNK = 500
"""At most this many ids per ``DELETE /assets`` or bulk ``PUT /assets``."""
DOWNLOAD_ATTEMPTS = 3
"""A download whose bytes do not match the server's checksum is tried this many times in all."""
DISK_MARGIN_BYTES = 50 * 1024 * 1024
DISK_MARGIN_FRACTION = 0.05
_SINGLE_ONLY = ("latitude", "longitude", "dateTimeOriginal", "description", "livePhotoVideoId")
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
"""A write into the backup folder failed for lack of space: every later group would fail the same way."""
UNWRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
"""The backup folder cannot be written at all (permissions, read-only mount): the same for every group."""


class ExecuteRefused(ValueError):
    """Execute will not start (exit 2): nothing was sent that changes the server."""


# --------------------------------------------------------------------------- public types


@dataclass
class ExecuteOptions:
    backup_dir: Path
    force: bool = False
    """Delete permanently instead of moving to the trash."""
    skip_review: bool = False
    """Leave groups that need review and were not reviewed (else refuse to start)."""
    dry_run: bool = False
    """Send nothing that changes the server; record the requests that would be sent."""
    batch_size: int = BATCH_GROUPS


@dataclass
class ExecutePreview:
    """What a run would do, from the plan alone (for confirmation screens)."""

    groups_to_resolve: int
    groups_to_dismiss: int
    groups_to_stack: int
    groups_skipped: int
    losers: int
    bytes_to_backup: int
    backup_dir: Path
    force: bool
    unreviewed: int
    groups_done_before: int = 0
    """Done by an earlier run into this backup folder: left as they are (not counted above)."""
    live_videos: int = 0
    """Live-photo (motion) videos backed up with the losers counted in ``losers``: one per
    distinct ``live_photo_video_id`` per group, as execute backs them up."""
    video_bytes_estimate: int = 0
    """An estimate of those videos' bytes, not in ``bytes_to_backup``: each video at the size of
    its still (the loser's ``file_size``; 0 if unknown), since the plan has no size for them
    (``/duplicates`` never lists the hidden video assets) and asking the server would cost one
    request per video (minutes at the default 10 requests/s on a library of thousands).
    A motion video is typically about as big as its still."""
    external_losers: int = 0
    """Of ``losers``, the external-library copies (allowed in review): files in a library folder
    on the user's own disk, which Immich deletes when it purges them (at once with ``force``,
    when the trash is emptied otherwise) if the folder is writable. A restore from the backup
    brings such a copy back as an ordinary upload, not into its external library."""


@dataclass
class GroupOutcome:
    duplicate_id: str
    status: Literal["done", "skipped", "failed", "dry-run"]
    reason: str = ""
    trashed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)
    winner_kept: dict[str, Any] = field(default_factory=dict)
    """Planned fields execute did not write because the winner's own value was edited after
    analyze, each with the value it kept (see ``_kept_record``): verify checks these against
    what execute kept instead of the plan."""
    earlier: bool = False
    """Done by an earlier run into this backup folder and left as it is (status "done"): this
    run sent nothing for it, and ``trashed`` lists what that earlier run trashed (restored since,
    maybe: a done group is never done again)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "duplicate_id": self.duplicate_id,
            "status": self.status,
            "earlier": self.earlier,
            "reason": self.reason,
            "trashed": self.trashed,
            "kept": self.kept,
            "changes": self.changes,
            "winner_kept": self.winner_kept,
        }


@dataclass
class ExecuteReport:
    outcomes: list[GroupOutcome]
    requests: int = 0
    bytes_backed_up: int = 0
    seconds: float = 0.0
    report_path: Path | None = None
    planned_requests: list[str] = field(default_factory=list)
    dry_run: bool = False
    force: bool = False
    stopped: str | None = None
    """Why the run stopped starting groups early (the backup disk filled up): one message for
    the whole run, with what was done and what to do; None when it ran to the end."""
    stopped_reason: str = ""
    """The reason given to each group that the stop left for the next run (when ``stopped``)."""

    def _count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def done(self) -> int:
        """Groups done: by this run, or by an earlier run into the same backup folder and left
        as they are (``done_before``, also in this count)."""
        return self._count("done")

    @property
    def done_before(self) -> int:
        """Groups an earlier run into this backup folder did: left as they are, nothing sent."""
        return sum(1 for o in self.outcomes if o.status == "done" and o.earlier)

    @property
    def done_now(self) -> int:
        """Groups this run did (``done`` without ``done_before``)."""
        return self.done - self.done_before

    @property
    def would_do(self) -> int:
        """Groups a dry run would act on."""
        return self._count("dry-run")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def trashed(self) -> int:
        """Losers this run trashed (or deleted, with ``force``); not those of groups done before."""
        return sum(len(o.trashed) for o in self.outcomes if o.status == "done" and not o.earlier)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "force": self.force,
            "requests": self.requests,
            "bytes_backed_up": self.bytes_backed_up,
            "seconds": round(self.seconds, 3),
            "counts": {
                "done": self.done,
                "done_before": self.done_before,
                "skipped": self.skipped,
                "failed": self.failed,
                "dry_run": self._count("dry-run"),
                "trashed": self.trashed,
            },
            "groups": [o.to_json() for o in self.outcomes],
            "planned_requests": self.planned_requests,
            "stopped": self.stopped,
        }


# --------------------------------------------------------------------------- plan-only checks


def plan_sha256(plan: Plan) -> str:
    """The whole plan's hash: the same plan always hashes the same.

    Written in the backup header and each run's report. It binds a backup directory only when
    the header is an older one without ``analysis_created_at`` (see BackupStore.check_usable).
    Hashed group by group, so a plan of 80,000 groups is never one giant string in memory.
    """
    h = hashlib.sha256(plan.model_dump_json(exclude={"groups"}).encode("utf-8"))
    for g in plan.groups:
        h.update(b"\n")
        h.update(g.model_dump_json().encode("utf-8"))
    return h.hexdigest()


GROUP_VERSION_EXCLUDES = frozenset({"reviewed"})
"""Left out of a group's version: a person confirming a decision as it stands ("accept",
"accept all safe") does not change what execute does with the group."""

DONE_BEFORE = "done by an earlier run into this backup folder: left as it is"
"""The reason of a group done before (``GroupOutcome.earlier``) with this version of it."""
EARLIER_VERSION_DONE = (
    "done in an earlier run with another version of this group (the plan was edited since); "
    "those edits were not applied: a done group is never done again (restore brings back what "
    "it trashed; redo it from a new analysis, into a new backup folder)"
)
OTHER_VERSION_STARTED = (
    "an earlier run started this group with another version of it (the plan was edited since) "
    "and did not finish it; nothing was done to it now, so that one group never gets two "
    "decisions: run execute with the plan version that started it, or restore this backup "
    "(everything backed up for it is kept)"
)


def group_sha256(g: GroupPlan) -> str:
    """A group's version: SHA-256 of its JSON as in the plan file (``reviewed`` left out).

    Journaled when execute starts the group (``group_begin``); a later run of an edited plan
    compares it to tell the group's decision changed since.
    """
    body = g.model_dump_json(exclude=set(GROUP_VERSION_EXCLUDES))
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _unreviewed(g: GroupPlan) -> bool:
    return g.needs_review and not g.reviewed and g.action is not Action.SKIP


def _external_blocked(g: GroupPlan) -> bool:
    return decide.held_for_external(g)


SKIPPED_UNREVIEWED = "needs review and was not reviewed"
"""Worded for every way a run leaves it (``--skip-review`` on the command line, the review app's
execute), so it names no option: verify quotes it too."""
SKIPPED_EXTERNAL = "a loser is in an external library: not deleted unless allowed in review"


def left_alone(g: GroupPlan) -> str | None:
    """Why execute leaves ``g`` as it is whatever the server says, from the plan alone (an
    unreviewed group is refused without --skip-review and skipped with it); None if it acts.
    Verify without the backup's records quotes it for a group it finds not run."""
    if g.action is Action.SKIP:
        return "the plan says skip"
    if _unreviewed(g):
        return SKIPPED_UNREVIEWED
    if _external_blocked(g):
        return SKIPPED_EXTERNAL
    return None


def _acts(g: GroupPlan, options: ExecuteOptions) -> bool:
    """Whether execute will act on this group (before re-checking it against the server)."""
    return left_alone(g) is None


def _live_videos(g: GroupPlan) -> dict[str, int]:
    """The live-photo videos execute backs up with ``g``'s losers, each with its estimated size
    (the largest file size of a loser that has it; see ``ExecutePreview.video_bytes_estimate``).
    Keyed by video id: two losers sharing one video get one backup of it in the group."""
    out: dict[str, int] = {}
    for i in g.losers:
        a = g.asset(i)
        if a.live_photo_video_id:
            vid = a.live_photo_video_id
            out[vid] = max(out.get(vid, 0), a.file_size or 0)
    return out


def preview(
    plan: Plan, options: ExecuteOptions, done: Collection[str] = (), held: Collection[str] = ()
) -> ExecutePreview:
    """``done``: groups an earlier run into the backup folder finished; ``held``: groups an
    earlier run carried out in part with another version of them, which this run leaves
    alone (see ``preflight``)."""
    resolve = dismiss = stack = skipped = losers = size = done_before = videos = video_size = 0
    external = 0
    for g in plan.groups:
        if g.duplicate_id in done:
            done_before += 1
        elif g.duplicate_id in held or not _acts(g, options):
            skipped += 1
        elif g.action is Action.RESOLVE:
            resolve += 1
            losers += len(g.losers)
            external += sum(1 for i in g.losers if g.asset(i).is_external)
            size += sum(g.asset(i).file_size or 0 for i in g.losers)
            live = _live_videos(g)
            videos += len(live)
            video_size += sum(live.values())
        elif g.action is Action.KEEP_ALL:
            dismiss += 1
        else:
            stack += 1
    return ExecutePreview(
        groups_to_resolve=resolve,
        groups_to_dismiss=dismiss,
        groups_to_stack=stack,
        groups_skipped=skipped,
        losers=losers,
        bytes_to_backup=size,
        backup_dir=options.backup_dir,
        force=options.force,
        unreviewed=sum(1 for g in plan.groups if _unreviewed(g) and g.duplicate_id not in done),
        groups_done_before=done_before,
        live_videos=videos,
        video_bytes_estimate=video_size,
        external_losers=external,
    )


def same_server(a: str, b: str) -> bool:
    try:
        return normalize_base_url(a).rstrip("/").lower() == normalize_base_url(b).rstrip("/").lower()
    except ValueError:
        return False


def needed_permissions(plan: Plan, options: ExecuteOptions) -> list[str]:
    """The API-key permissions this run needs, checked before anything changes."""
    needed = ["user.read", "duplicate.read", "asset.read"]
    acted = [g for g in plan.groups if _acts(g, options)]
    if any(g.action is Action.RESOLVE for g in acted):
        needed += ["album.read", "asset.download", "asset.update", "asset.delete"]
        if any(g.consolidated.album_ids for g in acted if g.action is Action.RESOLVE):
            needed.append("albumAsset.create")
        if any(g.consolidated.tag_ids for g in acted if g.action is Action.RESOLVE):
            needed.append("tag.asset")
    if any(g.action is Action.KEEP_ALL for g in acted):
        needed.append("duplicate.delete")
    if any(g.action is Action.STACK for g in acted):
        needed += ["stack.create", "asset.update"]
    return list(dict.fromkeys(needed))


def _header(plan: Plan) -> BackupHeader:
    return BackupHeader(
        server_url=plan.server_url,
        user_id=plan.user_id,
        plan_sha256=plan_sha256(plan),
        created_at=datetime.now(UTC),
        tool_version=__version__,
        analysis_created_at=plan.created_at,
    )


def preflight(
    plan: Plan,
    options: ExecuteOptions,
    base_url: str | None = None,
    header: BackupHeader | None = None,
) -> ExecutePreview:
    """Every refusal that needs no server: raise ExecuteRefused, else return the preview.

    Checks: the plan's server, unreviewed groups, the backup directory (usable, empty or a
    backup of this plan's analysis), and free disk space for the backups still to take (the
    losers' originals and, estimated, their live-photo videos).
    """
    if base_url is not None:
        _refuse_other_server(plan, base_url)
    pv = preview(plan, options)
    if pv.unreviewed and not options.skip_review:
        raise ExecuteRefused(
            f"{pv.unreviewed} group(s) need review and were not reviewed: run "
            "`immich-dupes review PLAN.json` first, or pass --skip-review to leave them untouched"
        )
    try:
        exists = BackupStore.check_usable(options.backup_dir, header or _header(plan))
    except BackupError as e:
        raise ExecuteRefused(str(e)) from None
    done_bytes = 0  # of the backups this run needs, those already on disk (journaled)
    done_video_bytes = done_videos = 0  # the same for the live-photo videos (at most their estimate)
    if exists:
        # A resumed run trusts what the backup holds: every manifest must still be the one
        # execute wrote. An edited one is refused here, before anything is sent: trashing on
        # top of it would leave a backup that restore refuses.
        try:
            for _ in BackupStore.open_existing(options.backup_dir).manifests():
                pass
        except BackupError as e:
            raise ExecuteRefused(f"{e}; use a new backup directory, or restore from this one") from None
        journal = options.backup_dir / JOURNAL_NAME
        conflict = mode_conflict(read_entries(journal), options.force)
        if conflict:
            raise ExecuteRefused(conflict)
        # Groups an earlier run finished, or carried out in part with another version of them
        # (see _execute_locked), are left as they are: the preview says so and leaves them out.
        states = load_states(read_entries(journal))
        by_group = BackupStore.open_existing(options.backup_dir).header.analysis_created_at is not None
        done = {gid for gid, st in states.items() if st.done}
        held = {
            g.duplicate_id for g in plan.groups
            if by_group and (st := states.get(g.duplicate_id)) is not None and not st.done
            and st.committed and st.version != group_sha256(g)
        }
        pv = preview(plan, options, done, held)
        # Only the backups this run will use count as taken: a loser of this version of a
        # group this run acts on, backed up before. (Backups of groups now skipped, or of
        # assets that are no longer losers, stay on disk and take space: not subtracted.)
        for g in plan.groups:
            st = states.get(g.duplicate_id)
            if st is None or g.duplicate_id in done or g.duplicate_id in held:
                continue
            if g.action is not Action.RESOLVE or not _acts(g, options):
                continue
            for i in g.losers:
                b = st.backed_up.get(i)
                if b is not None and b.video_of is None:
                    done_bytes += min(b.size, g.asset(i).file_size or 0)
            for vid, estimate in _live_videos(g).items():
                b = st.backed_up.get(vid)
                if b is not None and b.video_of is not None:
                    done_videos += 1
                    done_video_bytes += min(b.size, estimate)
    videos_left = max(0, pv.live_videos - done_videos)
    remaining = max(0, pv.bytes_to_backup - done_bytes) + max(0, pv.video_bytes_estimate - done_video_bytes)
    if remaining and not options.dry_run:
        need = int(remaining * (1 + DISK_MARGIN_FRACTION)) + DISK_MARGIN_BYTES
        free = shutil.disk_usage(existing_ancestor(options.backup_dir) or Path("/")).free
        if need > free:
            what = (
                f"losers and {videos_left} live-photo video(s), estimated at the size of their stills, "
                "plus a margin"
                if videos_left else "losers plus a margin"
            )
            raise ExecuteRefused(
                f"not enough free disk space for the backups in {options.backup_dir}: "
                f"need about {human_bytes(need)} ({what}), {human_bytes(free)} free"
            )
    return pv


def _refuse_other_server(plan: Plan, base_url: str) -> None:
    if not same_server(plan.server_url, base_url):
        raise ExecuteRefused(
            f"this plan was made for {plan.server_url}, not {base_url}; "
            "run analyze against this server to make a plan for it"
        )


def mode_conflict(entries: Iterable[dict[str, Any]], force: bool) -> str | None:
    """Why this backup cannot be resumed with ``force`` (None when it can).

    A backup holds one mode: once a run wrote a manifest or sent a DELETE in trash mode (or
    with --force), its manifests say so and restore relies on it; a resume in the other mode
    would mix the two.
    """
    run_force: bool | None = None
    committed: set[bool] = set()
    for e in entries:
        kind = e["kind"]
        if kind == "run":
            run_force = bool(e.get("force", False))
        elif kind == "trash_sent" and "force" in e:
            committed.add(bool(e["force"]))
        elif kind in ("manifest", "trash_sent", "trashed") and run_force is not None:
            committed.add(run_force)
    if force and False in committed:
        return (
            "this backup was started in trash mode; resume without --force or use a new "
            "backup directory"
        )
    if not force and True in committed:
        return (
            "this backup was started with --force (permanent delete); resume with --force or "
            "use a new backup directory"
        )
    return None


# --------------------------------------------------------------------------- journal state


@dataclass
class _Backed:
    asset_id: str
    file: str
    size: int
    sha1: str
    video_of: str | None = None


@dataclass
class _State:
    """What the journal says happened to one group in earlier runs (or earlier in this run)."""

    backed_up: dict[str, _Backed] = field(default_factory=dict)
    manifest: bool = False
    consolidated: bool = False
    consolidate_sent: list[str] = field(default_factory=list)
    """Fields of the keeper a run was about to write (``consolidate_sent``, journaled before the
    request: its answer may be lost while the write took effect)."""
    changes: list[str] = field(default_factory=list)
    winner_kept: dict[str, Any] = field(default_factory=dict)
    """From ``consolidated`` (and ``group_done``): the winner's own values execute kept."""
    trash_sent: set[str] = field(default_factory=set)
    trashed: set[str] = field(default_factory=set)
    dismiss_sent: bool = False
    stack_sent: bool = False
    stacked: bool = False
    done: bool = False
    done_trashed: list[str] = field(default_factory=list)
    done_kept: list[str] = field(default_factory=list)
    done_changes: list[str] = field(default_factory=list)
    version: str | None = None
    """``group_sha256`` of the group as the run that began it last had it (``group_begin``);
    None in journals of older versions."""

    @property
    def started(self) -> bool:
        return bool(self.backed_up or self.committed)

    @property
    def committed(self) -> bool:
        """Whether a request that changes the server may have been sent for this group.

        Every such request is journaled before it is sent, and the first one of a resolve
        follows its manifest, so: anything journaled after the backups. Backups alone change
        nothing on the server (they are reads), so a group with only backups may still be
        carried out with another decision.
        """
        return bool(
            self.manifest
            or self.consolidated
            or self.trash_sent
            or self.trashed
            or self.dismiss_sent
            or self.stack_sent
            or self.stacked
            or self.done
        )


def load_states(entries: Iterable[dict[str, Any]]) -> dict[str, _State]:
    states: dict[str, _State] = defaultdict(_State)
    for e in entries:
        kind = e["kind"]
        gid = e.get("group")
        if kind == "backed_up" and gid:
            states[gid].backed_up[str(e["asset"])] = _Backed(
                asset_id=str(e["asset"]),
                file=str(e["file"]),
                size=int(e["size"]),
                sha1=str(e["sha1"]),
                video_of=e.get("video_of"),
            )
        elif kind == "group_begin" and gid:
            if isinstance(e.get("sha256"), str):
                states[gid].version = e["sha256"]
        elif kind == "manifest" and gid:
            states[gid].manifest = True
        elif kind == "consolidate_sent" and gid:
            sent = states[gid].consolidate_sent
            sent += [str(f) for f in e.get("fields", []) if str(f) not in sent]
        elif kind == "consolidated" and gid:
            states[gid].consolidated = True
            states[gid].changes = [str(c) for c in e.get("changes", [])]
            if isinstance(e.get("winner_kept"), dict):
                states[gid].winner_kept = dict(e["winner_kept"])
        elif kind in ("trash_sent", "trashed"):
            for g, ids in (e.get("groups") or {}).items():
                target = states[g].trash_sent if kind == "trash_sent" else states[g].trashed
                target.update(str(i) for i in ids)
        elif kind == "trash_failed":
            # The server refused that DELETE: those ids were not trashed by it.
            for g, ids in (e.get("groups") or {}).items():
                states[g].trash_sent.difference_update(str(i) for i in ids)
        elif kind == "dismiss_sent":
            for g in e.get("groups", []):
                states[g].dismiss_sent = True
        elif kind == "stack_sent" and gid:
            states[gid].stack_sent = True
        elif kind == "stacked" and gid:
            states[gid].stacked = True
        elif kind == "group_done" and gid:
            st = states[gid]
            st.done = True
            st.done_trashed = [str(i) for i in e.get("trashed", [])]
            st.done_kept = [str(i) for i in e.get("kept", [])]
            st.done_changes = [str(c) for c in e.get("changes", [])]
            if isinstance(e.get("winner_kept"), dict):
                st.winner_kept = dict(e["winner_kept"])
    return dict(states)


class _JournalLike(Protocol):
    def append(self, kind: str, **data: Any) -> None: ...

    def append_many(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> None: ...

    def close(self) -> None: ...


class _NullJournal:
    """Dry run: nothing is written."""

    def append(self, kind: str, **data: Any) -> None:
        return None

    def append_many(self, entries: Iterable[tuple[str, dict[str, Any]]]) -> None:
        return None

    def close(self) -> None:
        return None


# --------------------------------------------------------------------------- fresh list spool


class _Spool:
    """The fresh duplicate groups we will act on, kept on disk (memory stays flat)."""

    def __init__(self) -> None:
        self._f: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self._index: dict[str, tuple[int, int]] = {}

    def put(self, group_id: str, raw: dict[str, Any]) -> None:
        data = json.dumps(raw, separators=(",", ":")).encode("utf-8")
        self._f.seek(0, os.SEEK_END)
        self._index[group_id] = (self._f.tell(), len(data))
        self._f.write(data)

    def get(self, group_id: str) -> dict[str, Any] | None:
        where = self._index.get(group_id)
        if where is None:
            return None
        self._f.seek(where[0])
        out: dict[str, Any] = json.loads(self._f.read(where[1]))
        return out

    def close(self) -> None:
        self._f.close()


# --------------------------------------------------------------------------- per-group work


class _Stopped(Exception):
    """A group's backup meets a run that has stopped (another group found the disk full)."""


@dataclass
class _Stop:
    """Why the run starts no more groups: a write into the backup folder failed in a way every
    later group would meet too (a full disk, a folder that cannot be written)."""

    error: OSError
    group_id: str
    """The group whose write failed first ("" when it was the journal): the one reported failed."""

    @property
    def disk_full(self) -> bool:
        return self.error.errno in DISK_FULL_ERRNOS

    @property
    def what(self) -> str:
        return "the backup disk is full" if self.disk_full else "the backup folder cannot be written"

    @property
    def group_reason(self) -> str:
        return f"stopped before this group finished: {self.what}; run again to resume"


@dataclass
class _Work:
    g: GroupPlan
    st: _State
    outcome: GroupOutcome
    winner: Asset
    current: dict[str, Asset] = field(default_factory=dict)
    """Members known present and not trashed, as the server has them now."""
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    to_trash: list[str] = field(default_factory=list)
    already_trashed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    """Losers an earlier run trashed that someone restored since: left alone."""
    backups: dict[str, _Backed] = field(default_factory=dict)
    video_raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos_gone: set[str] = field(default_factory=set)
    """Live-photo videos of losers that were already gone from the server (no backup to take)."""
    failed: str | None = None
    listed: bool = True
    """Whether the group is still in the fresh duplicates list."""
    cancelled: bool = False

    def fail(self, reason: str, cancelled: bool = False) -> None:
        if self.failed is None:
            self.failed = reason
            self.cancelled = cancelled

    @property
    def name(self) -> str:
        return self.g.winner_asset.file_name


def _asset_label(g: GroupPlan, asset_id: str) -> str:
    try:
        return f"{g.asset(asset_id).file_name} ({asset_id[:8]})"
    except KeyError:
        return asset_id


def _bulk_json(ids: Sequence[str], **fields: Any) -> dict[str, Any]:
    return {"ids": list(ids), **fields}


def _chunks(items: Sequence[T], n: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class _Runner:
    """One execute run: holds the client, the store, the journal and the counters."""

    def __init__(
        self,
        client: ImmichClient,
        plan: Plan,
        options: ExecuteOptions,
        report: Reporter,
        cancel: asyncio.Event,
        store: BackupStore | None,
        states: dict[str, _State],
    ) -> None:
        self.client = client
        self.plan = plan
        self.options = options
        self.report = report
        self.cancel = cancel
        self.store = store
        self.journal: _JournalLike = (
            _NullJournal() if options.dry_run or store is None else store.journal
        )
        self.states = states
        self.planned: list[str] = []
        self.bytes_backed_up = 0
        self.bytes_total = 0
        self.assets_total = 0
        self.assets_done = 0
        self.groups_total = 0
        self.groups_finished = 0
        self.membership: dict[str, list[PlanAlbum]] = {}
        self.spool = _Spool()
        self.dry = options.dry_run
        self.version = client.version
        self.outcomes: dict[str, GroupOutcome] = {}
        self.versions: dict[str, str] = {}
        """``group_sha256`` of each group this run acts on, journaled once it is re-checked."""
        self.rechecked = 0
        self.bytes_reused = 0
        self.stop: _Stop | None = None
        self.download_gate = asyncio.Semaphore(max(1, client.concurrency))
        """Downloads start only through this gate, which checks for a stop once a slot is free:
        the groups queued behind a full disk never send their request."""

    # ------------------------------------------------------------------ helpers

    def state(self, gid: str) -> _State:
        st = self.states.get(gid)
        if st is None:
            st = self.states[gid] = _State()
        return st

    def emit(self, phase: str, message: str = "", **kw: Any) -> None:
        self.report(Event(phase, message, **kw))

    def stop_on(self, e: OSError, gid: str) -> bool:
        """Whether ``e``, a failed write into the backup folder, stops the run (the first is kept).

        A full disk (ENOSPC, EDQUOT) or a folder that cannot be written (EACCES, EPERM, EROFS)
        would fail every later group the same way: no group starts after it; the groups under
        way finish, or stop before anything of theirs is trashed.
        """
        if e.errno not in DISK_FULL_ERRNOS | UNWRITABLE_ERRNOS:
            return False
        if self.stop is None:
            self.stop = _Stop(e, gid)
            self.emit("backup", f"{self.stop.what}: no more groups are started; "
                      "those under way finish or stop before trashing anything", level="warning")
        return True

    def stopped_by_another(self, e: OSError, gid: str) -> bool:
        """Note ``e`` (see stop_on); True when another group had already stopped the run, so
        this one is left for the next run (skipped) rather than reported failed a second time."""
        return self.stop_on(e, gid) and self.stop is not None and self.stop.group_id != gid

    def stopped_reason(self) -> str | None:
        return self.stop.group_reason if self.stop is not None else None

    def progress(self, message: str = "") -> None:
        """The overall line: groups finished, and the losers' bytes backed up counted as the
        "backup" events count them (found verified on disk included, as in ``bytes_total``)."""
        self.emit(
            "progress",
            message,
            done=self.groups_finished,
            total=self.groups_total,
            bytes_done=self.bytes_backed_up + self.bytes_reused,
            bytes_total=self.bytes_total or None,
        )

    async def send(self, method: str, path: str, body: Any, call: Callable[[], Awaitable[T]], dry: T) -> T:
        """Send a request that changes the server, or (dry run) record it and pretend."""
        if self.dry:
            self.planned.append(f"{method} {path} {json.dumps(body, separators=(',', ':'))}")
            return dry
        return await call()

    def finish(self, w: _Work, status: Literal["done", "skipped", "failed", "dry-run"], reason: str = "") -> None:
        w.outcome.status = status
        w.outcome.reason = reason
        self.groups_finished += 1
        level = "warning" if status in ("failed",) else "info"
        if status == "failed":
            self.emit("group", f"{w.name}: {reason}", group_id=w.g.duplicate_id, level=level)
        self.progress()

    # ------------------------------------------------------------------ fresh list

    async def fetch_fresh(self, wanted: set[str], need_albums: bool) -> None:
        """ONE ``GET /duplicates`` (spooled), with the album-membership map built alongside."""

        def on_progress(received: int, total: int | None) -> None:
            self.emit("recheck", "reading the duplicates list", bytes_done=received, bytes_total=total)

        albums_task: asyncio.Task[dict[str, list[PlanAlbum]]] | None = None
        if need_albums:
            albums_task = asyncio.create_task(album_membership(self.client, self._album_events))
        try:
            async for raw in self.client.iter_duplicates_raw(on_progress):
                gid = str(raw.get("duplicateId", ""))
                if gid in wanted:
                    self.spool.put(gid, raw)
            if albums_task is not None:
                self.membership = await albums_task
        finally:
            if albums_task is not None and not albums_task.done():
                albums_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await albums_task

    def _album_events(self, ev: Event) -> None:
        self.report(Event("albums", ev.message, done=ev.done, total=ev.total))

    # ------------------------------------------------------------------ re-check

    async def recheck(self, g: GroupPlan) -> _Work | str:
        """The group as the server has it now, or the reason it must be left alone."""
        st = self.state(g.duplicate_id)
        raw_group = self.spool.get(g.duplicate_id)
        raw = {str(a["id"]): a for a in (raw_group or {}).get("assets", []) if isinstance(a, dict)}
        try:
            fresh = {i: Asset.model_validate(a) for i, a in raw.items()}
        except ValidationError:
            return "the server's answer for this group could not be read"
        plan_ids = [a.id for a in g.assets]
        extra = [i for i in fresh if i not in set(plan_ids)]
        if extra:
            return f"the group changed since the plan: {len(extra)} asset(s) joined it; analyze again"
        missing = [i for i in plan_ids if i not in fresh]
        resumed = st.started
        outcome = GroupOutcome(g.duplicate_id, "skipped", kept=list(g.keep))

        if missing and not resumed:
            if g.winner in missing:
                return await self._why_winner_missing(g)
            names = ", ".join(_asset_label(g, i) for i in missing[:3])
            return (
                f"the group changed since the plan: {names} is no longer in it "
                "(trashed, deleted or dismissed elsewhere)"
            )
        current: dict[str, Asset] = dict(fresh)
        w = _Work(g=g, st=st, outcome=outcome, winner=fresh.get(g.winner) or Asset(id=g.winner))
        if missing:
            found = await asyncio.gather(*(self.client.asset_or_none(i) for i in missing))
            for i, a in zip(missing, found, strict=True):
                is_loser = i in g.losers and g.action is Action.RESOLVE
                if is_loser and (i in st.trash_sent or i in st.trashed):
                    if a is None or a.isTrashed:
                        w.already_trashed.append(i)
                    elif i in st.trashed:
                        w.restored.append(i)  # trashed by us, restored since: a person's choice
                    else:
                        current[i] = a  # our DELETE may never have arrived: send it again
                    continue
                if a is None:
                    return f"{_asset_label(g, i)} is gone from the server"
                if a.isTrashed:
                    return f"{_asset_label(g, i)} was trashed after the plan was made"
                if g.action is Action.STACK and st.stack_sent:
                    current[i] = a
                    continue
                if g.action is Action.KEEP_ALL and st.dismiss_sent:
                    current[i] = a
                    continue
                if i in g.keep and g.action is Action.RESOLVE and (st.trash_sent or st.trashed):
                    current[i] = a  # its membership may have been cleared already
                    continue
                return (
                    f"the group changed since the plan: {_asset_label(g, i)} is no longer in it"
                )
        for i, a in current.items():
            pa = g.asset(i)
            if a.isTrashed:
                return f"{_asset_label(g, i)} was trashed after the plan was made"
            if pa.checksum and a.checksum and a.checksum != pa.checksum:
                who = "the winner" if i == g.winner else _asset_label(g, i)
                return f"{who} changed since the plan (its file is different); analyze again"
        if g.winner not in current:
            return "the winner is no longer on the server"
        w.winner = current[g.winner]
        w.current = current
        w.raw = raw
        w.listed = raw_group is not None
        if g.action is Action.RESOLVE:
            for i in g.losers:
                a = current.get(i)
                if a is None:
                    continue
                if i in st.trashed:
                    w.restored.append(i)  # trashed by an earlier run and restored since
                    continue
                if a.is_external and not g.allow_external_delete:
                    return (
                        f"{_asset_label(g, i)} is in an external library: not deleted unless "
                        "allowed in review"
                    )
                w.to_trash.append(i)
        return w

    async def _why_winner_missing(self, g: GroupPlan) -> str:
        a = await self.client.asset_or_none(g.winner)
        if a is None:
            return "the winner is gone from the server since the plan was made"
        if a.isTrashed:
            return "the winner was trashed after the plan was made"
        if g.winner_asset.checksum and a.checksum != g.winner_asset.checksum:
            return "the winner changed since the plan (its file is different); analyze again"
        if a.visibility in (Visibility.HIDDEN, Visibility.LOCKED):
            return f"the winner is now {a.visibility.value}; left alone"
        if a.stack is not None:
            return "the winner was stacked since the plan; left alone"
        return (
            "the group is no longer in Immich's duplicates list (dismissed, resolved or "
            "re-detected elsewhere); analyze again"
        )

    async def recheck_batch(self, groups: Sequence[GroupPlan]) -> list[_Work]:
        results = await asyncio.gather(*(self.recheck(g) for g in groups), return_exceptions=True)
        out: list[_Work] = []
        for g, r in zip(groups, results, strict=True):
            if isinstance(r, ImmichError):
                reason = f"could not re-check the group against the server ({r}); nothing done"
                self.outcomes[g.duplicate_id] = GroupOutcome(g.duplicate_id, "failed", reason=reason)
                self.journal.append("failed", group=g.duplicate_id, reason=reason)
                self.groups_finished += 1
                self.emit("group", f"{g.winner_asset.file_name}: {reason}", group_id=g.duplicate_id,
                          level="warning")
            elif isinstance(r, BaseException):
                raise r
            elif isinstance(r, str):
                o = GroupOutcome(g.duplicate_id, "skipped", reason=r)
                self.outcomes[g.duplicate_id] = o
                self.groups_finished += 1
                self.emit("recheck", f"{g.winner_asset.file_name}: skipped: {r}", group_id=g.duplicate_id)
            else:
                self.outcomes[g.duplicate_id] = r.outcome
                out.append(r)
        self.journal_versions(out)
        self.rechecked += len(groups)
        self.emit("recheck", "", done=self.rechecked, total=self.groups_total)
        self.progress()
        return out

    def journal_versions(self, works: Sequence[_Work]) -> None:
        """Bind each group about to be acted on to its version (``group_begin``), before its
        first step; once per version, so a resume with the same plan adds nothing."""
        begun = [(w, self.versions[w.g.duplicate_id]) for w in works if w.g.duplicate_id in self.versions]
        begun = [(w, v) for w, v in begun if w.st.version != v]
        self.journal.append_many(("group_begin", {"group": w.g.duplicate_id, "sha256": v}) for w, v in begun)
        for w, v in begun:
            w.st.version = v

    # ------------------------------------------------------------------ backup

    async def backup_group(self, w: _Work) -> None:
        try:
            for i in w.to_trash:
                if self.cancel.is_set():
                    w.fail("cancelled before the backup finished; run again to resume", cancelled=True)
                    return
                if self.stop is not None:
                    raise _Stopped
                a = w.current[i]
                got = await self.backup_asset(w, a, w.raw.get(i), video_of=None)
                if isinstance(got, str):
                    w.fail(got)
                    return
                w.backups[i] = got
                vid = a.livePhotoVideoId
                if vid:
                    vgot = await self.backup_video(w, i, vid)
                    if isinstance(vgot, str):
                        w.fail(vgot)
                        return
                    if vgot is not None:
                        w.backups[vid] = vgot
        except _Stopped:
            # The backups it took are kept (and journaled): the next run reuses them.
            assert self.stop is not None
            w.fail(self.stop.group_reason, cancelled=True)
            return
        # Losers trashed in an earlier run: their backups are on record in the journal.
        for i in w.already_trashed:
            b = w.st.backed_up.get(i)
            if b is not None:
                w.backups[i] = b

    async def backup_video(self, w: _Work, loser_id: str, vid: str) -> _Backed | str | None:
        rec = w.st.backed_up.get(vid)
        if rec is not None and w.st.manifest and self._verified(rec):
            return rec
        try:
            raw = await self.client.get_asset_json(vid)
            va = Asset.model_validate(raw)
        except NotFound:
            # Immich's "Not found or no access" (a 400 with that message): the video is gone.
            # Any other error fails the group: the loser is never trashed without its video.
            self.emit(
                "backup",
                f"{_asset_label(w.g, loser_id)}: its live-photo video {vid} is gone; backing up the still only",
                group_id=w.g.duplicate_id,
                level="warning",
            )
            w.videos_gone.add(vid)
            w.outcome.changes.append(f"live-photo video {vid} of {loser_id} was already gone")
            return None
        except ImmichError as e:
            return f"could not read the live-photo video of {_asset_label(w.g, loser_id)}: {e}"
        except ValidationError:
            return f"the live-photo video {vid} could not be read"
        w.video_raw[vid] = raw
        return await self.backup_asset(w, va, raw, video_of=loser_id)

    def _verified(self, rec: _Backed) -> bool:
        if self.store is None:
            return False
        try:
            p = self.store.resolve_file(rec.file)
        except BackupError:
            return False
        return verify_file(p, rec.size, rec.sha1)

    async def backup_asset(
        self, w: _Work, a: Asset, raw: dict[str, Any] | None, video_of: str | None
    ) -> _Backed | str:
        gid = w.g.duplicate_id
        label = _asset_label(w.g, a.id) if video_of is None else f"live-photo video of {_asset_label(w.g, video_of)}"
        rec = w.st.backed_up.get(a.id)
        if rec is not None and self._verified(rec):
            self._count_backup(rec.size, video_of is None)
            return rec
        expected = a.exif.fileSizeInByte or None
        if self.dry:
            rel = f"groups/{gid}/{a.id}-{sanitize_file_name(a.originalFileName or a.id)}"
            self.planned.append(f"GET /assets/{a.id}/original (backup to {rel})")
            self.bytes_backed_up += expected or 0
            self._count_backup(0, video_of is None)
            return _Backed(a.id, rel, expected or 0, a.checksum, video_of)
        assert self.store is not None
        try:
            self.store.group_dir(gid, create=True)
        except OSError as e:
            if self.stopped_by_another(e, gid):
                raise _Stopped from None
            return (f"backup of {label} failed: its folder could not be created ({e.strerror or e}); "
                    "nothing in this group was trashed")
        try:
            dest = self.store.asset_path(gid, a.id, a.originalFileName or a.id)
        except BackupError as e:
            return str(e)
        rel = self.store.relative(dest)
        external = a.is_external
        # A file renamed into place by a run that was killed before journaling it.
        if not external and dest.exists() and a.checksum:
            size = dest.stat().st_size
            if (expected is None or size == expected) and verify_file(dest, size, a.checksum):
                self._count_backup(size, video_of is None)
                return _Backed(a.id, rel, size, a.checksum, video_of)
        # Parts of a killed earlier run: ours alone to remove, since this run holds the lock.
        for stale in (dest.with_name(dest.name + PART_SUFFIX),
                      *dest.parent.glob(glob.escape(dest.name) + ".*" + PART_SUFFIX)):
            with contextlib.suppress(OSError):
                stale.unlink()
        # A name of this run's own: two writers can never share one part file.
        part = dest.with_name(f"{dest.name}.{os.getpid()}-{secrets.token_hex(4)}{PART_SUFFIX}")
        problem = ""
        got = 0
        stopped = False

        def on_bytes(n: int) -> None:
            nonlocal got
            got += n
            self.bytes_backed_up += n
            self.emit("backup", "", done=self.assets_done, total=self.assets_total,
                      bytes_done=self.bytes_backed_up + self.bytes_reused,
                      bytes_total=self.bytes_total or None)

        for _attempt in range(DOWNLOAD_ATTEMPTS):
            self.bytes_backed_up -= got
            got = 0
            try:
                async with self.download_gate:
                    if self.stop is not None:
                        stopped = True
                        break
                    size, sha1 = await self.client.download_original(
                        a.id, part, expected_size=expected, on_bytes=on_bytes)
            except IntegrityError as e:
                problem = f"the download was incomplete ({e.message})"
                continue
            except ImmichError as e:
                problem = f"the download failed ({e})"
                break
            except OSError as e:
                problem = f"the backup could not be written ({e.strerror or e})"
                stopped = self.stopped_by_another(e, gid)
                break
            if not external and a.checksum and sha1 != a.checksum:
                problem = "the downloaded bytes do not match the server's checksum (SHA-1)"
                continue
            if expected is not None and size != expected:
                problem = f"the download is {size} bytes, the server says {expected}"
                continue
            try:
                os.replace(part, dest)
            except OSError as e:
                problem = f"the backup could not be renamed into place ({e.strerror or e})"
                stopped = self.stopped_by_another(e, gid)
                break
            self._count_backup(0, video_of is None)
            return _Backed(a.id, rel, size, sha1, video_of)
        self.bytes_backed_up -= got
        with contextlib.suppress(OSError):
            part.unlink()
        if stopped:
            raise _Stopped
        return f"backup of {label} failed: {problem}; nothing in this group was trashed"

    def journal_backups(self, works: Sequence[_Work]) -> None:
        """Make the batch's new backups durable (directory fsync), then journal them at once.

        Per file the bytes were fsynced before the rename; one directory fsync per group makes
        the renames durable, and one journal write records them all before any manifest.
        """
        entries: list[tuple[str, dict[str, Any]]] = []
        fresh: list[tuple[_Work, _Backed]] = []
        for w in works:
            new = [b for i, b in w.backups.items() if w.st.backed_up.get(i) != b]
            if not new or self.store is None or self.dry:
                continue
            fsync_dir(self.store.group_dir(w.g.duplicate_id))
            for b in new:
                entries.append(("backed_up", {
                    "group": w.g.duplicate_id, "asset": b.asset_id, "file": b.file,
                    "size": b.size, "sha1": b.sha1, "video_of": b.video_of,
                }))
                fresh.append((w, b))
        self.journal.append_many(entries)
        for w, b in fresh:
            w.st.backed_up[b.asset_id] = b
        if fresh:
            self.emit("backup", "", done=self.assets_done, total=self.assets_total,
                      bytes_done=self.bytes_backed_up + self.bytes_reused,
                      bytes_total=self.bytes_total or None,
                      data={"journaled": "backed_up", "assets": [b.asset_id for _, b in fresh]})

    def _count_backup(self, reused_bytes: int, is_loser: bool) -> None:
        """One more loser backed up (``reused_bytes``: found verified on disk, not downloaded)."""
        if is_loser:
            self.assets_done += 1
        self.bytes_reused += reused_bytes
        self.emit("backup", "", done=self.assets_done, total=self.assets_total,
                  bytes_done=self.bytes_backed_up + self.bytes_reused,
                  bytes_total=self.bytes_total or None)

    # ------------------------------------------------------------------ manifest

    def _manifest_asset(self, w: _Work, asset_id: str, raw: dict[str, Any], b: _Backed) -> ManifestAsset:
        tags = []
        for t in raw.get("tags") or []:
            if isinstance(t, dict) and t.get("id"):
                tags.append(ManifestTag(id=str(t["id"]), value=str(t.get("value") or t.get("name") or "")))
        albums = [ManifestAlbum(id=al.id, name=al.name) for al in self.membership.get(asset_id, [])]
        return ManifestAsset(
            asset_id=asset_id, asset=raw, albums=albums, tags=tags, file=b.file, size=b.size,
            sha1_b64=b.sha1, verified=True,
        )

    def build_manifest(self, w: _Work) -> GroupManifest:
        losers: list[ManifestAsset] = []
        for i in w.to_trash:
            b = w.backups[i]
            ma = self._manifest_asset(w, i, w.raw.get(i) or w.current[i].model_dump(mode="json"), b)
            vid = w.current[i].livePhotoVideoId
            if vid and vid in w.backups:
                vraw = w.video_raw.get(vid) or {"id": vid}
                ma.live_photo_video = self._manifest_asset(w, vid, vraw, w.backups[vid])
            losers.append(ma)
        return GroupManifest(
            duplicate_id=w.g.duplicate_id,
            winner_id=w.g.winner,
            mode="force" if self.options.force else "trash",
            losers=losers,
            winner=w.raw.get(w.winner.id) or w.winner.model_dump(mode="json"),
        )

    async def write_manifests(self, works: Sequence[_Work]) -> None:
        """Each group's manifest (atomic, fsynced, written in parallel), then one journal write."""
        todo = [w for w in works if not w.failed and not w.st.manifest]
        if not todo:
            return

        async def one(w: _Work) -> None:
            try:
                m = self.build_manifest(w)
                if not self.dry and self.store is not None:
                    await asyncio.to_thread(self.store.write_manifest, m)
            except OSError as e:
                if self.stopped_by_another(e, w.g.duplicate_id):
                    assert self.stop is not None
                    w.fail(self.stop.group_reason, cancelled=True)
                else:
                    w.fail(f"could not write the manifest ({e}); nothing trashed")
            except (BackupError, ValidationError) as e:
                w.fail(f"could not write the manifest ({e}); nothing trashed")

        await asyncio.gather(*(one(w) for w in todo))
        ok = [w for w in todo if not w.failed]
        self.journal.append_many(("manifest", {"group": w.g.duplicate_id}) for w in ok)
        for w in ok:
            w.st.manifest = True
        if ok:
            self.emit("manifest", "", data={"journaled": "manifest", "groups": [w.g.duplicate_id for w in ok]})

    # ------------------------------------------------------------------ consolidate

    def changes_for(self, w: _Work) -> tuple[dict[str, Any], list[str], list[str], list[str]]:
        """Fields to PUT on the winner, albums and tags to add, and the human-readable list."""
        c = w.g.consolidated
        win = w.winner
        e = win.exif
        snap = w.g.winner_asset
        src = w.g.sources
        fields: dict[str, Any] = {}
        said: list[str] = []

        # GPS, date and description are written only when the plan asks for a change: the
        # value comes from another copy (or, in a plan edited by hand, differs from what the
        # winner held at plan time). The winner's own values are never written back over it,
        # and a correction made in Immich since the plan (the winner's value now differs from
        # the plan's snapshot of it) is kept.
        def asks(source: str | None, differs_from_snapshot: bool) -> bool:
            return (source is not None and source != w.g.winner) or differs_from_snapshot

        if (
            c.latitude is not None
            and c.longitude is not None
            and asks(src.gps, _gps_differs(c.latitude, c.longitude, snap.latitude, snap.longitude))
            and _gps_differs(e.latitude, e.longitude, c.latitude, c.longitude)
        ):
            if _gps_differs(e.latitude, e.longitude, snap.latitude, snap.longitude):
                said.append("winner's GPS was edited since the plan; kept it")
                w.outcome.winner_kept["gps"] = _kept_record(win, "gps")
            else:
                fields["latitude"] = c.latitude
                fields["longitude"] = c.longitude
                said.append(f"GPS {c.latitude:.5f}, {c.longitude:.5f}")
        if (
            c.date_time_original
            and asks(src.datetime, _snapshot_date_differs(c.date_time_original, snap))
            and _date_differs(c.date_time_original, e.dateTimeOriginal, e.timeZone)
        ):
            if _winner_date_edited(snap, e.dateTimeOriginal, e.timeZone):
                said.append("winner's date was edited since the plan; kept it")
                w.outcome.winner_kept["date"] = _kept_record(win, "date")
            else:
                fields["dateTimeOriginal"] = c.date_time_original
                said.append(f"date {c.date_time_original}")
        if (
            c.description is not None
            and asks(src.description, c.description != snap.description)
            and c.description != (e.description or "")
        ):
            if (e.description or "") != snap.description:
                said.append("winner's description was edited since the plan; kept it")
                w.outcome.winner_kept["description"] = _kept_record(win, "description")
            else:
                fields["description"] = c.description
                said.append("description")
        if c.is_favorite and not win.isFavorite:
            fields["isFavorite"] = True
            said.append("favorite")
        if c.rating is not None and c.rating != 0 and (not e.rating or e.rating < c.rating):
            fields["rating"] = c.rating
            said.append(f"rating {c.rating}")
        if c.visibility == "archive" and win.visibility is Visibility.TIMELINE:
            if self.version.at_least(1, 133):
                fields["visibility"] = "archive"
            else:
                fields["isArchived"] = True
            said.append("archived")
        if (
            c.live_photo_video_id
            and win.livePhotoVideoId is None
            and c.live_photo_video_id != win.id
            and self.version.at_least(1, 115)
        ):
            fields["livePhotoVideoId"] = c.live_photo_video_id
            said.append("live-photo video linked")
        in_albums = {al.id for al in self.membership.get(win.id, [])}
        albums = [al for al in c.album_ids if al not in in_albums]
        names = {al.id: al.name for a in w.g.assets for al in a.albums}
        for al in albums:
            said.append(f"album {names.get(al) or al}")
        has_tags = {t.id for t in win.tags}
        tags = [t for t in c.tag_ids if t not in has_tags]
        tag_names = {t.id: t.value for a in w.g.assets for t in a.tags}
        for t in tags:
            said.append(f"tag {tag_names.get(t) or t}")
        return fields, albums, tags, said

    async def consolidate_batch(self, works: Sequence[_Work]) -> None:
        todo = [w for w in works if not w.failed and not w.st.consolidated]
        for w in works:
            if w.st.consolidated and not w.failed:
                w.outcome.changes = list(w.st.changes)
                w.outcome.winner_kept = dict(w.st.winner_kept)
        if not todo:
            return
        if self.cancel.is_set():
            for w in todo:
                w.fail("cancelled before consolidation; run again to resume", cancelled=True)
            return
        singles: list[tuple[_Work, dict[str, Any]]] = []
        bulks: dict[str, tuple[dict[str, Any], list[_Work]]] = {}
        album_adds: dict[str, list[_Work]] = defaultdict(list)
        tag_adds: dict[str, list[_Work]] = defaultdict(list)
        planned: list[tuple[_Work, list[str]]] = []
        for w in todo:
            fields, albums, tags, said = self.changes_for(w)
            w.outcome.changes = [*w.outcome.changes, *said]  # after the backup's notes
            if fields:
                planned.append((w, sorted(fields)))
            if any(k in fields for k in _SINGLE_ONLY):
                singles.append((w, fields))
            elif fields:
                key = json.dumps(fields, sort_keys=True)
                bulks.setdefault(key, (fields, []))[1].append(w)
            for al in albums:
                album_adds[al].append(w)
            for t in tags:
                tag_adds[t].append(w)
        # Journaled before the requests: which of each keeper's own fields are about to be
        # written (restore lists the values they held; a lost answer may hide the write).
        self.journal.append_many(
            ("consolidate_sent", {"group": w.g.duplicate_id, "fields": names}) for w, names in planned
        )
        for w, names in planned:
            w.st.consolidate_sent += [f for f in names if f not in w.st.consolidate_sent]

        async def single(w: _Work, fields: dict[str, Any]) -> None:
            path = f"/assets/{w.winner.id}"
            try:
                await self.send("PUT", path, fields, lambda: self.client.update_asset(w.winner.id, **fields), None)
            except ImmichError as e:
                w.fail(f"could not update the winner ({e}); nothing trashed")

        async def bulk(fields: dict[str, Any], ws: list[_Work]) -> None:
            for part in _chunks(ws, DELETE_CHUNK):
                ids = [w.winner.id for w in part]
                try:
                    await self.send(
                        "PUT", "/assets", _bulk_json(ids, **fields),
                        functools.partial(self.client.bulk_update, ids, **fields), None,
                    )
                except ImmichError as e:
                    for w in part:
                        w.fail(f"could not update the winner ({e}); nothing trashed")

        async def per_id(kind: str, target: str, ws: list[_Work]) -> None:
            ids = list(dict.fromkeys(w.winner.id for w in ws))
            path = f"/albums/{target}/assets" if kind == "album" else f"/tags/{target}/assets"
            call: Callable[[], Awaitable[list[BulkIdResult]]]
            if kind == "album":
                call = functools.partial(self.client.add_to_album, target, ids)
            else:
                call = functools.partial(self.client.tag_assets, target, ids)
            try:
                none: list[BulkIdResult] = []
                results = await self.send("PUT", path, {"ids": ids}, call, none)
            except ImmichError as e:
                for w in ws:
                    w.fail(f"could not add the winner to {kind} {target} ({e}); nothing trashed")
                return
            by_id = {r.id: r for r in results}
            for w in ws:
                r = by_id.get(w.winner.id)
                if r is not None and not r.success and r.error != "duplicate":
                    w.fail(f"could not add the winner to {kind} {target} ({r.error}); nothing trashed")

        await asyncio.gather(
            *(single(w, f) for w, f in singles),
            *(bulk(f, ws) for f, ws in bulks.values()),
            *(per_id("album", al, ws) for al, ws in album_adds.items()),
            *(per_id("tag", t, ws) for t, ws in tag_adds.items()),
        )
        ok = [w for w in todo if not w.failed]
        self.journal.append_many(
            ("consolidated", {"group": w.g.duplicate_id, "changes": w.outcome.changes,
                              "winner_kept": w.outcome.winner_kept}) for w in ok
        )
        for w in ok:
            w.st.consolidated = True
            w.st.changes = list(w.outcome.changes)
            w.st.winner_kept = dict(w.outcome.winner_kept)
        self.emit("consolidate", "", done=len(ok), total=len(todo),
                  data={"journaled": "consolidated", "groups": [w.g.duplicate_id for w in ok]})

    # ------------------------------------------------------------------ trash and clear

    async def trash_batch(self, works: Sequence[_Work]) -> None:
        ready = [w for w in works if not w.failed and w.st.consolidated]
        if self.cancel.is_set():
            for w in ready:
                if w.to_trash:
                    w.fail("cancelled before trashing; run again to resume", cancelled=True)
            return
        sendable: list[_Work] = []
        candidates = [w for w in ready if w.to_trash]
        problems = await asyncio.gather(*(self._backups_present(w) for w in candidates))
        for w, problem in zip(candidates, problems, strict=True):
            if problem is None:
                sendable.append(w)
            else:
                w.fail(f"{problem}; nothing trashed; run again")
        for part in _chunks(sendable, max(1, DELETE_CHUNK // 3)):
            ids = [i for w in part for i in w.to_trash]
            groups = {w.g.duplicate_id: list(w.to_trash) for w in part}
            self.journal.append("trash_sent", ids=ids, groups=groups, force=self.options.force)
            for w in part:
                w.st.trash_sent.update(w.to_trash)
            self.emit("trash", "", data={"journaled": "trash_sent", "ids": ids})
            try:
                await self.send(
                    "DELETE", "/assets", {"ids": ids, "force": self.options.force},
                    functools.partial(self.client.delete_assets, ids, force=self.options.force),
                    None,
                )
            except ImmichError as e:
                if _definite_refusal(e):
                    # The server answered "no": nothing of this request was trashed. Journaled
                    # so the next run re-checks these losers like any other, instead of
                    # re-sending a DELETE it might never have received.
                    self.journal.append("trash_failed", ids=ids, groups=groups, status=e.status)
                    for w in part:
                        w.st.trash_sent.difference_update(w.to_trash)
                for w in part:
                    w.fail(f"the trash request failed ({e}); the backups are kept; run again")
                continue
            self.journal.append("trashed", ids=ids, groups=groups)
            for w in part:
                w.st.trashed.update(w.to_trash)
            self.emit("trash", f"{len(ids)} assets", done=len(ids), total=len(ids),
                      data={"journaled": "trashed", "ids": ids})

    async def _backups_present(self, w: _Work) -> str | None:
        """Right before the DELETE: every backup of the group re-hashed on disk, and its manifest.

        Each loser's file (and its live-photo video's) must still hold the recorded size and
        SHA-1 — another process or a person may have touched the directory since. None when
        all is in place, else why nothing of this group may be trashed.
        """
        if self.dry or self.store is None:
            return None
        store = self.store
        files: list[_Backed] = []
        for i in w.to_trash:
            b = w.backups.get(i)
            if b is None:
                return f"the backup of {_asset_label(w.g, i)} is missing"
            files.append(b)
            vid = w.current[i].livePhotoVideoId
            if vid and vid not in w.videos_gone:
                vb = w.backups.get(vid)
                if vb is None:
                    return f"the backup of the live-photo video of {_asset_label(w.g, i)} is missing"
                files.append(vb)

        def check(b: _Backed) -> bool:
            try:
                p = store.resolve_file(b.file)
            except BackupError:
                return False
            return verify_file(p, b.size, b.sha1)

        results = await asyncio.gather(*(asyncio.to_thread(check, b) for b in files))
        for b, ok in zip(files, results, strict=True):
            if not ok:
                what = _asset_label(w.g, b.video_of) if b.video_of else _asset_label(w.g, b.asset_id)
                kind = "the live-photo video backup" if b.video_of else "the backup"
                return f"{kind} of {what} went missing or changed on disk"
        return await self._manifest_in_place(w)

    async def _manifest_in_place(self, w: _Work) -> str | None:
        """The group's manifest exists, loads and covers every loser about to be trashed.

        A missing or incomplete one is written again from the fresh data, unless a loser of
        this group was already trashed (its entry could not be rebuilt): then the group fails.
        """
        assert self.store is not None
        store = self.store
        mode = "force" if self.options.force else "trash"
        gid = w.g.duplicate_id
        try:
            m = await asyncio.to_thread(store.read_manifest, gid)
        except BackupError:
            m = None
        if m is not None and m.mode == mode:
            have = {x.asset_id: x for x in m.losers}
            if all(i in have for i in w.to_trash):
                return None
        if w.already_trashed:
            return (
                "the group's manifest is missing or damaged and a loser was already trashed; "
                "nothing more trashed (its backup files are kept)"
            )
        m = self.build_manifest(w)
        if w.st.consolidated or w.st.consolidate_sent:
            # The keeper may already hold what consolidation wrote: no snapshot of it as "before".
            m = m.model_copy(update={"winner": None})
        try:
            await asyncio.to_thread(store.write_manifest, m)
        except (OSError, BackupError, ValidationError) as e:
            if isinstance(e, OSError):
                self.stop_on(e, gid)
            return f"the group's manifest was missing and could not be written again ({e})"
        self.emit("manifest", f"{w.name}: the manifest was missing; written again",
                  group_id=gid, level="warning")
        return None

    async def clear_and_finish(self, works: Sequence[_Work], members: Callable[[_Work], list[str]]) -> None:
        ready = [w for w in works if not w.failed]
        if self.cancel.is_set():
            for w in ready:
                w.fail("cancelled before the group was finished; run again to resume", cancelled=True)
            ready = []
        for part in _chunks(ready, max(1, DELETE_CHUNK // 3)):
            ids = [i for w in part for i in members(w)]
            if ids:
                try:
                    await self.send(
                        "PUT", "/assets", _bulk_json(ids, duplicateId=None),
                        functools.partial(self.client.bulk_update, ids, duplicateId=None),
                        None,
                    )
                except ImmichError as e:
                    for w in part:
                        w.fail(f"could not clear the duplicate membership ({e}); run again")
                    continue
            entries = []
            for w in part:
                w.outcome.trashed = [*w.already_trashed, *w.to_trash] if w.g.action is Action.RESOLVE else []
                if w.restored:
                    w.outcome.changes.append(
                        f"{len(w.restored)} loser(s) restored from the trash since an earlier run: left alone"
                    )
                entries.append(("group_done", {
                    "group": w.g.duplicate_id, "action": w.g.action.value,
                    "trashed": w.outcome.trashed, "kept": w.outcome.kept, "changes": w.outcome.changes,
                    "winner_kept": w.outcome.winner_kept,
                }))
            self.journal.append_many(entries)
            for w in part:
                w.st.done = True
                self.finish(w, "dry-run" if self.dry else "done")
            self.emit("done", "", data={"journaled": "group_done", "groups": [w.g.duplicate_id for w in part]})
        for w in works:
            if w.failed and w.cancelled:
                self.finish(w, "skipped", w.failed)
            elif w.failed:
                self.journal.append("failed", group=w.g.duplicate_id, reason=w.failed)
                self.finish(w, "failed", w.failed)

    # ------------------------------------------------------------------ the three actions

    async def resolve_batch(self, groups: Sequence[GroupPlan]) -> None:
        works = await self.recheck_batch(groups)
        if not works:
            return
        for w in works:
            w.outcome.kept = list(w.g.keep)
        await asyncio.gather(*(self.backup_group(w) for w in works))
        self.journal_backups(works)
        await self.write_manifests(works)
        await self.consolidate_batch(works)
        await self.trash_batch(works)
        await self.clear_and_finish(works, self._resolved_members)

    def _resolved_members(self, w: _Work) -> list[str]:
        """Whose duplicate membership to clear once a group is resolved.

        The keepers, and (trash mode) the trashed losers too, as Immich's own resolve does: a
        run that resumes after the trash sees Immich clear a lone winner's group on its next
        ``GET /duplicates`` (2.7+), losers included, so clearing them always ends the same way.
        Force-deleted losers are gone and are left out.
        """
        keep = [k for k in w.g.keep if k in w.current]
        if self.options.force:
            return keep
        return [*keep, *w.already_trashed, *w.to_trash]

    async def dismiss_batch(self, groups: Sequence[GroupPlan]) -> None:
        works = await self.recheck_batch(groups)
        # A group an earlier run dismissed is no longer listed: nothing left to send for it.
        ready = [w for w in works if not w.failed and (w.listed or not w.st.dismiss_sent)]
        if not ready:
            pass
        elif self.cancel.is_set():
            for w in ready:
                w.fail("cancelled before dismissing; run again to resume", cancelled=True)
        else:
            gids = [w.g.duplicate_id for w in ready]
            asset_ids = [i for w in ready for i in w.current]
            self.journal.append("dismiss_sent", groups=gids)
            self.emit("dismiss", "", data={"journaled": "dismiss_sent", "groups": gids})
            if self.version.at_least(1, 135):
                method, path, body = "DELETE", "/duplicates", {"ids": gids}
            else:
                method, path, body = "PUT", "/assets", _bulk_json(asset_ids, duplicateId=None)
            try:
                await self.send(method, path, body,
                                lambda: self.client.dismiss_duplicates(gids, asset_ids), None)
            except ImmichError as e:
                for w in ready:
                    w.fail(f"could not dismiss the group ({e})")
        for w in works:
            if not w.failed:
                w.outcome.changes = ["dismissed: not duplicates"]
        await self.clear_and_finish(works, lambda w: [])

    async def stack_batch(self, groups: Sequence[GroupPlan]) -> None:
        works = await self.recheck_batch(groups)
        if not self.version.at_least(1, 113):
            for w in works:
                w.fail("this Immich version has no stacks API (needs 1.113 or newer)")
        if self.cancel.is_set():
            for w in works:
                w.fail("cancelled before stacking; run again to resume", cancelled=True)

        async def one(w: _Work) -> None:
            if w.failed:
                return
            members = [w.g.winner, *[a.id for a in w.g.assets if a.id != w.g.winner]]
            if w.st.stack_sent and not w.st.stacked:
                try:
                    win = await self.client.asset_or_none(w.g.winner)
                except ImmichError as e:
                    w.fail(f"could not check the stack of an earlier run ({e})")
                    return
                if win is not None and win.stack is not None and win.stack.primaryAssetId == w.g.winner:
                    w.st.stacked = True
            if not w.st.stacked:
                self.journal.append("stack_sent", group=w.g.duplicate_id)
                w.st.stack_sent = True
                try:
                    await self.send("POST", "/stacks", {"assetIds": members},
                                    lambda: self.client.create_stack(members), "")
                except ImmichError as e:
                    w.fail(f"could not stack the group ({e})")
                    return
                self.journal.append("stacked", group=w.g.duplicate_id)
                w.st.stacked = True
            w.outcome.changes = [f"stacked with {w.name} as primary"]

        await asyncio.gather(*(one(w) for w in works))
        await self.clear_and_finish(works, lambda w: list(w.current))


def _definite_refusal(e: ImmichError) -> bool:
    """The server answered the request with an error (so it did not act on it).

    No answer (ConnectionFailed: reset, timeout) or a gateway timeout (504: the server behind
    the proxy may still have acted) leaves the request "maybe sent".
    """
    return not isinstance(e, ConnectionFailed) and e.status is not None and e.status != 504


def _gps_differs(
    lat: float | None, lon: float | None, other_lat: float | None, other_lon: float | None
) -> bool:
    if lat is None or lon is None or other_lat is None or other_lon is None:
        return (lat is None or lon is None) != (other_lat is None or other_lon is None)
    return abs(lat - other_lat) > 1e-6 or abs(lon - other_lon) > 1e-6


def _kept_record(win: Asset, what: Literal["gps", "date", "description"]) -> Any:
    """The winner's own value of one field as execute saw and kept it, as JSON for the journal."""
    e = win.exif
    if what == "gps":
        return {"latitude": e.latitude, "longitude": e.longitude}
    if what == "date":
        d = e.dateTimeOriginal
        if d is not None and d.tzinfo is None:
            d = d.replace(tzinfo=UTC)
        return {"dateTimeOriginal": d.isoformat() if d is not None else None, "timeZone": e.timeZone}
    return e.description or ""


def _winner_date_edited(snap: PlanAsset, current: datetime | None, zone: str | None) -> bool:
    """Whether the winner's capture time (instant or offset) differs from the plan's snapshot.

    Compared the way analyze recorded it (decide.plan_asset): the instant, and the offset its
    time zone has at that instant.
    """
    if current is not None and current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    was = snap.captured_at
    if was is not None and was.tzinfo is None:
        was = was.replace(tzinfo=UTC)
    if current is None or was is None:
        return (current is None) != (was is None)
    if abs((current - was).total_seconds()) > 1:
        return True
    return offset_minutes(zone, current) != snap.utc_offset_minutes


def _snapshot_date_differs(target: str, snap: PlanAsset) -> bool:
    """Whether a planned date (local time with offset) differs from the winner at plan time."""
    try:
        want = datetime.fromisoformat(target.replace("Z", "+00:00"))
    except ValueError:
        return True
    was = snap.captured_at
    off = want.utcoffset()
    if was is None or off is None:
        return True
    if was.tzinfo is None:
        was = was.replace(tzinfo=UTC)
    if abs((was - want).total_seconds()) > 1:
        return True
    return int(off.total_seconds() // 60) != snap.utc_offset_minutes


def _date_differs(target: str, current: datetime | None, zone: str | None) -> bool:
    try:
        want = datetime.fromisoformat(target.replace("Z", "+00:00"))
    except ValueError:
        return True
    if current is None or want.tzinfo is None:
        return True
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    if abs((current - want).total_seconds()) > 1:
        return True
    off = want.utcoffset()
    want_min = int(off.total_seconds() // 60) if off is not None else 0
    return offset_minutes(zone, current) != want_min


PIPELINE = 2
"""Batches in flight at once: the next batch downloads while one consolidates and trashes."""


async def _pipelined(
    batches: Sequence[Sequence[GroupPlan]],
    act: Callable[[Sequence[GroupPlan]], Awaitable[None]],
    cancel: asyncio.Event,
    outcomes: dict[str, GroupOutcome],
    stopped: Callable[[], str | None] = lambda: None,
) -> None:
    """Run the batches in order, at most PIPELINE at a time; none starts after a cancel or a
    stop (``stopped()``: the reason each group not started is given, or None)."""
    gate = asyncio.Semaphore(PIPELINE)

    async def one(batch: Sequence[GroupPlan]) -> None:
        async with gate:
            why = "cancelled before this group started; run again to resume" if cancel.is_set() else stopped()
            if why is not None:
                for g in batch:
                    outcomes.setdefault(g.duplicate_id, GroupOutcome(g.duplicate_id, "skipped", why))
                return
            await act(batch)

    try:
        async with asyncio.TaskGroup() as tg:
            for batch in batches:
                tg.create_task(one(batch))
    except BaseExceptionGroup as group:
        # One error type for callers (ImmichError, OSError, ...), not an exception group.
        raise group.exceptions[0] from None


# --------------------------------------------------------------------------- entry point


async def check_binding(
    client: ImmichClient,
    plan: Plan,
    options: ExecuteOptions,
    report: Reporter = ignore,
) -> ServerInfo:
    """The refusals that need the server, with read-only requests only: call it before showing
    a preview or asking for a confirmation, so nobody confirms a run that is then refused.

    Connects (version, the key's permissions, the user) unless the client is connected
    already, then raises ExecuteRefused for a plan of another server or another user, and
    PermissionMissing when the key lacks a permission this run needs. A plan of another server
    is refused before any request. ``execute`` calls it again (no request when connected).
    """
    _refuse_other_server(plan, client.base_url)
    needed = needed_permissions(plan, options)
    report(Event("connect", "checking the server, user and API key permissions"))
    if client.info is None:
        info = await client.connect(needed)
    else:
        info = client.info
        info.require(needed)
    if info.user.id != plan.user_id:
        raise ExecuteRefused(
            f"this plan was made for another user ({plan.user_email or plan.user_id}); "
            f"the API key belongs to {info.user.email or info.user.id}"
        )
    return info


async def execute(
    client: ImmichClient,
    plan: Plan,
    options: ExecuteOptions,
    report: Reporter = ignore,
    cancel: asyncio.Event | None = None,
) -> ExecuteReport:
    """Carry out the plan (see the module docstring for the guarantees).

    Raises ExecuteRefused before anything is sent for a plan of another server or user, an
    unusable backup directory, unreviewed groups without ``skip_review`` or too little disk;
    PermissionMissing (an ImmichError) when the key lacks a permission the run needs.
    """
    started = time.monotonic()
    started_at = datetime.now(UTC)
    cancel = cancel or asyncio.Event()
    requests_before = client.stats.total
    header = _header(plan)
    preflight(plan, options, client.base_url, header)
    await check_binding(client, plan, options, report)

    store: BackupStore | None
    with contextlib.ExitStack() as held:
        try:
            if options.dry_run:
                exists = BackupStore.check_usable(options.backup_dir, header)
                store = BackupStore.open_existing(options.backup_dir) if exists else None
            else:
                # One writer per backup directory for the whole run (execute or restore),
                # taken before the header is written: two first runs cannot both write one.
                if not options.backup_dir.exists():
                    options.backup_dir.mkdir(mode=0o700, parents=True)
                held.enter_context(lock_backup_dir(options.backup_dir))
                store = BackupStore.open_or_create(options.backup_dir, header)
        except BackupError as e:
            raise ExecuteRefused(str(e)) from None
        except OSError as e:
            raise ExecuteRefused(
                f"backup directory {options.backup_dir} cannot be created: {e.strerror or e}"
            ) from None
        return await _execute_locked(
            client, plan, options, report, cancel, store, header, started, started_at, requests_before
        )


async def _execute_locked(
    client: ImmichClient,
    plan: Plan,
    options: ExecuteOptions,
    report: Reporter,
    cancel: asyncio.Event,
    store: BackupStore | None,
    header: BackupHeader,
    started: float,
    started_at: datetime,
    requests_before: int,
) -> ExecuteReport:
    """The run proper, with the backup directory locked (a dry run locks nothing)."""
    # Checked again under the lock: another run may have started in between. The journal is
    # read twice rather than held in memory (it has several entries per group).
    conflict = mode_conflict(store.journal.entries(), options.force) if store is not None else None
    if conflict:
        raise ExecuteRefused(conflict)
    states = load_states(store.journal.entries()) if store is not None else {}

    runner = _Runner(client, plan, options, report, cancel, store, states)
    runner.outcomes = {}
    # A directory of an older version is bound to this exact plan (check_usable): its groups
    # cannot differ. Otherwise each group is checked against the version that started it.
    by_group = store is not None and store.header.analysis_created_at is not None
    try:
        if not options.dry_run:
            runner.journal.append("run", force=options.force, skip_review=options.skip_review,
                                  tool_version=__version__)
        resolve: list[GroupPlan] = []
        dismiss: list[GroupPlan] = []
        stack: list[GroupPlan] = []
        edited_done = 0
        for g in plan.groups:
            st = states.get(g.duplicate_id)
            version = group_sha256(g)
            if st is not None and st.done:
                edited = st.version is not None and st.version != version
                edited_done += edited
                runner.outcomes[g.duplicate_id] = GroupOutcome(
                    g.duplicate_id, "done", EARLIER_VERSION_DONE if edited else DONE_BEFORE,
                    trashed=st.done_trashed, kept=st.done_kept, changes=st.done_changes,
                    winner_kept=dict(st.winner_kept), earlier=True,
                )
            elif st is not None and st.committed and by_group and st.version != version:
                # Carried out in part with another decision: never finished with this one. (No
                # version on record cannot happen here, group_begin precedes every step; were
                # it missing, which decision started the group could not be told: left alone.)
                runner.outcomes[g.duplicate_id] = GroupOutcome(g.duplicate_id, "failed", OTHER_VERSION_STARTED)
                report(Event("group", f"{g.winner_asset.file_name}: {OTHER_VERSION_STARTED}",
                             group_id=g.duplicate_id, level="warning"))
            elif (why := left_alone(g)) is not None:
                runner.outcomes[g.duplicate_id] = GroupOutcome(g.duplicate_id, "skipped", why)
            else:
                runner.versions[g.duplicate_id] = version
                if g.action is Action.RESOLVE:
                    resolve.append(g)
                elif g.action is Action.KEEP_ALL:
                    dismiss.append(g)
                else:
                    stack.append(g)
        if edited_done:
            report(Event("group", f"{edited_done} group(s) were done in an earlier run with another "
                         "version of them; the edits made to them since were not applied (see the report)",
                         level="warning"))
        runner.groups_total = len(resolve) + len(dismiss) + len(stack)
        runner.assets_total = sum(len(g.losers) for g in resolve)
        # The live-photo videos are downloaded too: counted as the preview estimates them, so
        # the byte count of the progress ends near its total (past it when videos outweigh stills).
        runner.bytes_total = sum(
            sum(g.asset(i).file_size or 0 for i in g.losers) + sum(_live_videos(g).values()) for g in resolve
        )
        report(Event("recheck", "reading the duplicates list", done=0, total=runner.groups_total))
        wanted = {g.duplicate_id for g in (*resolve, *dismiss, *stack)}
        if wanted:
            await runner.fetch_fresh(wanted, need_albums=bool(resolve))
        size = max(1, options.batch_size)
        try:
            for groups, act in ((resolve, runner.resolve_batch), (dismiss, runner.dismiss_batch),
                                (stack, runner.stack_batch)):
                await _pipelined(list(_chunks(groups, size)), act, cancel, runner.outcomes,
                                 runner.stopped_reason)
        except OSError as e:
            # The journal could not be written (the disk filled up under it): nothing more can
            # be recorded, so nothing more is done. The groups under way were interrupted at
            # a journaled step; the next run resumes them.
            if not runner.stop_on(e, ""):
                raise
    finally:
        runner.spool.close()
        if store is not None:
            store.journal.close()

    stop = runner.stop
    if stop is not None:
        for o in runner.outcomes.values():
            if o.status == "skipped" and not o.reason:  # under way when the journal failed
                o.reason = stop.group_reason
    not_reached = stop.group_reason if stop is not None else "not reached"
    outcomes = [runner.outcomes.get(g.duplicate_id) or GroupOutcome(g.duplicate_id, "skipped", not_reached)
                for g in plan.groups]
    rep = ExecuteReport(
        outcomes=outcomes,
        requests=client.stats.total - requests_before,
        bytes_backed_up=runner.bytes_backed_up,
        seconds=time.monotonic() - started,
        planned_requests=runner.planned,
        dry_run=options.dry_run,
        force=options.force,
    )
    if stop is not None:
        rep.stopped_reason = stop.group_reason
        rep.stopped = _stop_message(stop, rep, options.backup_dir)
    if store is not None and not options.dry_run:
        body = rep.to_json()
        body.update(
            started_at=started_at.isoformat(),
            finished_at=datetime.now(UTC).isoformat(),
            server_url=plan.server_url,
            plan_sha256=header.plan_sha256,
            tool_version=__version__,
        )
        try:
            rep.report_path = store.write_report(body)
        except OSError:
            if stop is None:
                raise
            # The disk that stopped the run has no room for the report either; the journal
            # holds every step, and the message says what was done.
    before = f", {rep.done_before} done by an earlier run (left as they are)" if rep.done_before else ""
    report(Event("finished", f"{rep.done_now} done, {rep.skipped} skipped, {rep.failed} failed{before}",
                 done=runner.groups_finished, total=runner.groups_total))
    return rep


def _stop_message(stop: _Stop, rep: ExecuteReport, backup_dir: Path) -> str:
    """The one message of a stopped run: why, what was done, what is left, what to do."""
    why = stop.error.strerror or str(stop.error)
    if stop.disk_full:
        free = free_bytes(backup_dir)
        room = f", {human_bytes(free)} free" if free is not None else ""
        what = f"the backup disk is full ({why}{room} in {backup_dir})"
        todo = "Free some space there"
    else:
        # The file or folder that failed, which may be deeper than the backup folder itself
        # (e.g. a group folder left owned by another user): that is what needs fixing.
        where = f": {stop.error.filename}" if stop.error.filename else ""
        what = f"the backup folder {backup_dir} cannot be written ({why}{where})"
        todo = "Fix its permissions (or mount it writable)"
    left = sum(1 for o in rep.outcomes
               if o.status == "failed" or (o.status == "skipped" and o.reason == stop.group_reason))
    return (
        f"execute stopped early: {what}; {rep.done} group(s) done, {left} left for the next run. "
        f"{todo} and run the same command again: it resumes where this run stopped"
    )


__all__ = [
    "DONE_BEFORE",
    "EARLIER_VERSION_DONE",
    "ExecuteOptions",
    "ExecutePreview",
    "ExecuteRefused",
    "ExecuteReport",
    "GroupOutcome",
    "check_binding",
    "execute",
    "group_sha256",
    "needed_permissions",
    "plan_sha256",
    "preflight",
    "preview",
]
