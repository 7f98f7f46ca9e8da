"""Restore: bring the losers of an execute run back, from the trash or from the backup.

For every loser in the backup's manifests (and its live-photo video):

* present and trashed → ``POST /trash/restore/assets`` (batched; same ids, albums and faces
  kept). Immich's ``count`` only echoes the ids sent, so every one is re-read to confirm.
* present and not trashed → already present; nothing is sent.
* gone (purged) → the backed-up file is checked (size and SHA-1), then
  ``POST /assets/bulk-upload-check`` by checksum: a copy a previous restore uploaded is used
  as it is (restored from the trash if it is there); the same bytes under any other asset (a
  winner, another import) are left untouched and the loser fails, for the user to check by hand
  (an upload answered ``duplicate`` is decided the same way); otherwise the file is uploaded with
  ``x-immich-checksum`` and its original dates (videos first, so a still can be linked to its
  motion part), and the manifest's description, GPS, date with explicit offset, favorite,
  rating, visibility, albums and tags are applied where the server differs.

Idempotent: a second run finds everything present and as in the backup and sends nothing that
changes the server. ``dry_run`` reads (and asks ``bulk-upload-check``, which changes nothing)
and says what it would do. Re-uploads are recorded as old id → new id in
``restore-<time>.json`` in the backup directory, so a later run knows them. A record carries a
SHA-256 of its own content (``integrity``, like the manifests) and the ids whose metadata has
not been applied yet (``metadata_pending``): the manifest's metadata is applied to a re-uploaded
copy only once (in the run that uploaded it, or a later one if that run did not finish), so a
later restore never reverts the user's own edits to it. A recorded id that is a winner, a
backed-up asset, or holds other bytes than the backup is not used.

A recorded copy the server no longer shows to the key (the user moved it to the Locked folder:
Immich answers "not found" to API keys) is left alone and reported as present, with a note, only
when the server's answer for the backup's bytes is ``duplicate`` with that same id (so the photo
is provably still there): nothing is re-uploaded, applied or linked to it, and metadata still
pending for it stays pending. Anything else that cannot be read still fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from immich_dupes.analysis.geo import haversine_m
from immich_dupes.analysis.plan import UUID_PATTERN, atomic_write_text
from immich_dupes.analysis.timezones import local_iso_with_offset, offset_minutes
from immich_dupes.engine.backup import (
    BackupError,
    BackupStore,
    GroupManifest,
    ManifestAsset,
    lock_backup_dir,
    verify_file,
)
from immich_dupes.engine.events import Event, Reporter, ignore
from immich_dupes.engine.execute import load_states
from immich_dupes.engine.verify import FATAL as _FATAL
from immich_dupes.engine.verify import check_binding, compare_date, read_asset
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import (
    ImmichError,
)
from immich_dupes.immich.models import Asset, AssetType, BulkUploadCheckItem, Visibility

RESTORE_PERMISSIONS = (
    "user.read",
    "asset.read",
    "asset.delete",  # trash restore
    "asset.upload",
    "asset.update",
    "album.read",
    "albumAsset.create",
    "tag.asset",
)
DRY_RUN_PERMISSIONS = ("user.read", "asset.read", "asset.upload")
RESTORE_PREFIX = "restore-"
TRASH_BATCH = 500
CHECK_BATCH = 1000
GPS_SAME_M = 1.0

ActionKind = Literal["from_trash", "reupload", "already_present", "failed"]


@dataclass
class RestoreAction:
    """What restore did (or, in a dry run, would do) with one backed-up asset."""

    asset_id: str
    file_name: str
    action: ActionKind
    new_asset_id: str | None
    """The id the asset has now when it differs from ``asset_id`` (a re-upload)."""
    detail: str


@dataclass
class KeeperValue:
    """A keeper's own value that execute wrote over with another copy's, as the review chose.

    Restore brings back the losers; it does not change keepers (their values may have been
    edited since, and Immich changes some itself). This says what the keeper held before, from
    the manifest's snapshot of it, so nothing is lost: set it back in Immich if wanted."""

    duplicate_id: str
    winner_id: str
    file_name: str
    field: Literal["GPS", "date", "description"]
    before: str
    """The keeper's value before execute, as a person reads it."""


@dataclass
class RestoreReport:
    actions: list[RestoreAction] = field(default_factory=list)
    keepers: list[KeeperValue] = field(default_factory=list)
    """Keepers' own values execute wrote over (see ``keepers_written_over``)."""
    dry_run: bool = False
    record_file: Path | None = None
    """``restore-<time>.json`` written by this run (None in a dry run)."""

    @property
    def failed(self) -> int:
        return sum(1 for a in self.actions if a.action == "failed")

    def count(self, action: ActionKind) -> int:
        return sum(1 for a in self.actions if a.action == action)

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "failed": self.failed,
            "counts": {k: self.count(k) for k in ("from_trash", "reupload", "already_present", "failed")},
            "actions": [asdict(a) for a in self.actions],
            "keepers_written_over": [asdict(k) for k in self.keepers],
        }


# --------------------------------------------------------------------------- the items


@dataclass
class _Item:
    """One backed-up asset (a loser, or a loser's live-photo video) and what happens to it."""

    ma: ManifestAsset
    asset: Asset
    duplicate_id: str
    force: bool = False
    """Execute deleted it permanently (``--force``) rather than moving it to the trash."""
    video: _Item | None = None
    """For a still: its live-photo video's item."""
    is_video_part: bool = False
    current_id: str | None = None
    """Where the asset lives on the server now (its own id, or a re-upload's)."""
    server: Asset | None = None
    kind: ActionKind | None = None
    detail: str = ""
    """Why it failed (set by ``fail``)."""
    history: str = ""
    """What was done so far, to say what a later failure left behind."""
    extra: list[str] = field(default_factory=list)
    """What else was done (or would be), for a successful action."""
    ensure_metadata: bool = False
    """A re-uploaded copy: apply the manifest's metadata where the server differs."""
    restore_trash_id: str | None = None
    upload: bool = False
    duplicate_of: str | None = None
    """The upload was answered ``duplicate``: the server already holds these bytes as this id."""
    unseen_copy: str | None = None
    """The recorded re-uploaded copy's id, when reading it answered "not found" (locked or purged)."""
    hidden: bool = False
    """The recorded copy is still on the server but hidden from the key (Locked): left alone."""

    @property
    def old_id(self) -> str:
        return self.ma.asset_id

    @property
    def name(self) -> str:
        return self.asset.originalFileName or self.old_id

    def fail(self, detail: str) -> None:
        self.kind = "failed"
        self.detail = detail


def _items(store: BackupStore, manifests: Sequence[GroupManifest]) -> list[_Item]:
    """Every backed-up asset, videos right before their stills, each once."""
    out: list[_Item] = []
    seen: set[str] = set()
    for m in manifests:
        for loser in m.losers:
            video: _Item | None = None
            if loser.live_photo_video is not None and loser.live_photo_video.asset_id not in seen:
                video = _Item(
                    ma=loser.live_photo_video,
                    asset=_asset(loser.live_photo_video, store),
                    duplicate_id=m.duplicate_id,
                    force=m.mode == "force",
                    is_video_part=True,
                )
                seen.add(video.old_id)
                out.append(video)
            if loser.asset_id in seen:
                continue
            seen.add(loser.asset_id)
            out.append(
                _Item(
                    ma=loser,
                    asset=_asset(loser, store),
                    duplicate_id=m.duplicate_id,
                    force=m.mode == "force",
                    video=video,
                )
            )
    return out


def _asset(ma: ManifestAsset, store: BackupStore) -> Asset:
    try:
        a = Asset.model_validate({**ma.asset, "id": ma.asset.get("id", ma.asset_id)})
    except ValueError as e:
        raise BackupError(f"{store.root}: the manifest of asset {ma.asset_id} has an unreadable asset record ({e})") from None
    if a.id != ma.asset_id:
        raise BackupError(f"{store.root}: the manifest of asset {ma.asset_id} holds the record of {a.id}")
    return a


# --------------------------------------------------------------------------- re-upload records


_UUID = re.compile(UUID_PATTERN)


@dataclass
class RestoreRecords:
    """What earlier restores recorded (later runs win)."""

    mapping: dict[str, str] = field(default_factory=dict)
    """old id → the id of the copy a restore re-uploaded."""
    pending: set[str] = field(default_factory=set)
    """Old ids whose re-uploaded copy has not had the manifest's metadata applied yet."""


def _record_sha256(body: dict[str, Any]) -> str:
    rest = {k: v for k, v in body.items() if k != "integrity"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_records(root: Path) -> RestoreRecords:
    """Every earlier ``restore-*.json``, each checked against its integrity SHA-256.

    Raises BackupError for a record that cannot be read, is edited or damaged: restore does
    not guess which assets a damaged record may point at.
    """
    out = RestoreRecords()
    for p in sorted(root.glob(f"{RESTORE_PREFIX}*.json")):
        damaged = BackupError(
            f"the restore record {p} is edited or damaged (its integrity SHA-256 does not match"
            " its content); restore does not use it. Move it out of the backup directory and run"
            " restore again: the copies it recorded are then found on the server by checksum"
        )
        try:
            data = json.loads(p.read_bytes())
        except OSError as e:
            raise BackupError(f"the restore record {p} cannot be read ({e.strerror or e})") from None
        except ValueError:
            raise damaged from None
        if not isinstance(data, dict) or data.get("integrity") != _record_sha256(data):
            raise damaged
        mapping = data.get("mapping")
        pending = data.get("metadata_pending")
        if not (
            isinstance(mapping, dict)
            and isinstance(pending, list)
            and all(isinstance(k, str) and isinstance(v, str) and _UUID.fullmatch(k) and _UUID.fullmatch(v)
                    for k, v in mapping.items())
            and all(isinstance(x, str) for x in pending)
        ):
            raise damaged
        waiting = set(pending)
        for old, new in mapping.items():
            out.mapping[old] = new
            if old in waiting:
                out.pending.add(old)
            else:
                out.pending.discard(old)
    return out


def read_mapping(root: Path) -> dict[str, str]:
    """old id → new id from every earlier ``restore-*.json`` (later runs win; BackupError if damaged)."""
    return read_records(root).mapping


def _write_record(root: Path, mapping: dict[str, str], pending: set[str], rep: RestoreReport) -> Path:
    when = datetime.now(UTC)
    p = root / f"{RESTORE_PREFIX}{when.strftime('%Y%m%dT%H%M%S.%fZ')}.json"
    body: dict[str, Any] = {
        "created_at": when.isoformat().replace("+00:00", "Z"),
        "mapping": mapping,
        "metadata_pending": sorted(pending & mapping.keys()),
        **rep.to_json(),
    }
    body["integrity"] = _record_sha256(body)
    atomic_write_text(p, json.dumps(body, indent=1, ensure_ascii=False))
    return p


# --------------------------------------------------------------------------- keepers


_SENT_FIELDS = {"latitude": "GPS", "longitude": "GPS", "dateTimeOriginal": "date", "description": "description"}
"""Fields of a keeper update → the name ``KeeperValue.field`` gives them."""


def _local_date(instant: datetime, zone: str | None) -> str:
    """``2016-01-15T15:00:00+01:00 (Europe/Berlin)``: the local time as Immich's date field
    takes it back, not the UTC instant next to a zone's name."""
    minutes = offset_minutes(zone, instant) if zone else None
    if minutes is None:
        return instant.isoformat() + (f" ({zone})" if zone else "")
    return local_iso_with_offset(instant, minutes) + f" ({zone})"


def keepers_written_over(store: BackupStore, manifests: Sequence[GroupManifest]) -> list[KeeperValue]:
    """Each keeper value execute wrote over: the group's journal says execute wrote GPS, a date
    or a description onto its keeper (``consolidated``), and the manifest's snapshot of the
    keeper (``GroupManifest.winner``, kept from this version on) shows it had one of its own.
    A value the keeper lacked and got from a loser is not listed: nothing of its own was lost."""
    states = load_states(store.journal.entries())
    out: list[KeeperValue] = []
    for m in manifests:
        st = states.get(m.duplicate_id)
        if m.winner is None or st is None or not st.consolidated:
            continue
        try:
            before = Asset.model_validate(m.winner)
        except ValidationError:
            continue
        e = before.exif
        # What the journal says was written: the changes of the ``consolidated`` entry, and the
        # fields a run was about to write (``consolidate_sent``): a write whose answer was lost
        # took effect all the same, and the next run then found nothing left to write.
        written = {c.split(" ", 1)[0] for c in st.changes}
        written |= {_SENT_FIELDS[f] for f in st.consolidate_sent if f in _SENT_FIELDS}
        found: list[tuple[Literal["GPS", "date", "description"], str]] = []
        if "GPS" in written and e.latitude is not None and e.longitude is not None:
            found.append(("GPS", f"{e.latitude:.6f}, {e.longitude:.6f}"))
        if "date" in written and e.dateTimeOriginal is not None:
            found.append(("date", _local_date(e.dateTimeOriginal, e.timeZone)))
        if "description" in written and (e.description or "").strip():
            found.append(("description", e.description or ""))
        name = before.originalFileName or m.winner_id
        out += [KeeperValue(m.duplicate_id, m.winner_id, name, f, v) for f, v in found]
    return out


# --------------------------------------------------------------------------- metadata to apply


@dataclass
class _Changes:
    fields: dict[str, Any] = field(default_factory=dict)
    albums: list[tuple[str, str]] = field(default_factory=list)
    """(album id, name) the asset must be added to."""
    tags: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.fields or self.albums or self.tags)

    def describe(self) -> str:
        parts = [_FIELD_NAMES.get(k, k) for k in self.fields if k != "longitude"]
        if self.albums:
            parts.append("albums " + ", ".join(repr(n or i) for i, n in self.albums))
        if self.tags:
            parts.append("tags " + ", ".join(repr(v or i) for i, v in self.tags))
        return ", ".join(parts)


_FIELD_NAMES = {
    "latitude": "GPS",
    "dateTimeOriginal": "date",
    "isFavorite": "favorite",
    "livePhotoVideoId": "live-photo link",
}


def wanted_date(asset: Asset) -> str | None:
    """The manifest's capture date as local time with its explicit offset (None: unknown)."""
    e = asset.exif
    if e.dateTimeOriginal is None:
        return None
    inst = e.dateTimeOriginal if e.dateTimeOriginal.tzinfo else e.dateTimeOriginal.replace(tzinfo=UTC)
    off = offset_minutes(e.timeZone, inst)
    if off is None:
        return None
    return local_iso_with_offset(inst, off)


def _metadata_changes(
    item: _Item, have: Asset, have_album_ids: set[str] | None, video_id: str | None
) -> _Changes:
    """What differs between the manifest's record and the server's copy ``have``."""
    want = item.asset
    we, he = want.exif, have.exif
    ch = _Changes()
    if (we.description or "").strip() and (we.description or "") != (he.description or ""):
        ch.fields["description"] = we.description
    if we.latitude is not None and we.longitude is not None and (
        he.latitude is None
        or he.longitude is None
        or _distance(we.latitude, we.longitude, he.latitude, he.longitude) > GPS_SAME_M
    ):
        ch.fields["latitude"] = we.latitude
        ch.fields["longitude"] = we.longitude
    date = wanted_date(want)
    if date is not None and compare_date(date, he, 1.0)[0] == "anomaly":
        ch.fields["dateTimeOriginal"] = date
    if want.isFavorite != have.isFavorite:
        ch.fields["isFavorite"] = want.isFavorite
    want_rating = we.rating if we.rating not in (0,) else None
    have_rating = he.rating if he.rating not in (0,) else None
    if want_rating is not None and want_rating != have_rating:
        ch.fields["rating"] = want_rating
    if (
        want.visibility.value in ("timeline", "archive", "hidden")
        and want.visibility != have.visibility
        and have.visibility is not Visibility.LOCKED  # the user moved it to the Locked folder
    ):
        ch.fields["visibility"] = want.visibility.value
    if video_id is not None and have.livePhotoVideoId != video_id:
        ch.fields["livePhotoVideoId"] = video_id
    if have_album_ids is not None:
        ch.albums = [(a.id, a.name) for a in item.ma.albums if a.id not in have_album_ids]
    have_tags = {t.id for t in have.tags}
    ch.tags = [(t.id, t.value) for t in item.ma.tags if t.id not in have_tags]
    return ch


def _distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    d = haversine_m(lat1, lon1, lat2, lon2)
    return d if math.isfinite(d) else math.inf


# --------------------------------------------------------------------------- the run


class _Run:
    def __init__(
        self,
        client: ImmichClient,
        store: BackupStore,
        report: Reporter,
        dry_run: bool,
        records: RestoreRecords,
        winners: set[str],
        backed_up: set[str],
    ) -> None:
        self.client = client
        self.store = store
        self.report = report
        self.dry_run = dry_run
        self.winners = winners
        """Winners of the backed-up groups: never treated as a loser's restored copy."""
        # A recorded copy is never a winner or another backed-up asset.
        self.mapping = {
            k: v for k, v in records.mapping.items() if v not in winners and v not in backed_up
        }
        self.pending = records.pending & self.mapping.keys()
        self.new_mapping: dict[str, str] = {}
        self.done = 0
        self.total = 0

    def progress(self, item: _Item) -> None:
        self.done += 1
        self.report(Event("check", "", done=self.done, total=self.total))

    # ------------------------------------------------------------------ reading

    async def _read(self, asset_id: str) -> Asset | None | ImmichError:
        return await read_asset(self.client, asset_id)

    async def classify(self, items: Sequence[_Item]) -> None:
        """Where is each asset now: present, trashed, or gone (then check by checksum)."""

        async def one(it: _Item) -> None:
            try:
                await locate(it)
            finally:
                self.progress(it)

        async def locate(it: _Item) -> None:
            mapped = self.mapping.get(it.old_id)
            got: Asset | None | ImmichError = None
            if mapped is not None:
                got = await self._read(mapped)
                if isinstance(got, Asset) and got.checksum != it.ma.sha1_b64:
                    # Not the bytes of the backup: not our copy, whatever the record says.
                    self.mapping.pop(it.old_id, None)
                    self.pending.discard(it.old_id)
                    mapped = None
            if mapped is None:
                got = await self._read(it.old_id)
            it.current_id = mapped or it.old_id
            if isinstance(got, ImmichError):
                it.fail(f"could not be read: {got}")
                return
            it.server = got
            if got is None:
                # A recorded copy that reads as not found is purged, or hidden from the key
                # (Locked folder): the checksum check decides which.
                it.unseen_copy = mapped
                it.current_id = None
                return
            if mapped is not None and it.old_id in self.pending:
                it.ensure_metadata = True  # the run that uploaded it did not apply it
            if got.isTrashed:
                it.kind = "from_trash"
                it.restore_trash_id = got.id
            else:
                it.kind = "already_present"

        await asyncio.gather(*(one(it) for it in items))
        gone = [it for it in items if it.kind is None]
        if gone:
            await self.check_gone(gone)

    async def check_gone(self, gone: Sequence[_Item]) -> None:
        """Purged assets: the backup file must be intact; then is it on the server by checksum?"""

        async def check_file(it: _Item) -> bool:
            try:
                path = self.store.resolve_file(it.ma.file)
            except BackupError as e:
                it.fail(str(e))
                return False
            ok = await asyncio.to_thread(verify_file, path, it.ma.size, it.ma.sha1_b64)
            if not ok:
                it.fail(
                    f"purged from the server and the backup file {it.ma.file} is missing or damaged"
                    " (size or SHA-1 differ from the manifest)"
                )
            return ok

        oks = await asyncio.gather(*(check_file(it) for it in gone))
        usable = [it for it, ok in zip(gone, oks, strict=True) if ok]
        if not usable:
            return
        by_tag = {it.old_id: it for it in usable}
        results: list[BulkUploadCheckItem] = []
        for i in range(0, len(usable), CHECK_BATCH):
            chunk = usable[i : i + CHECK_BATCH]
            try:
                results += await self.client.bulk_upload_check([(it.old_id, it.ma.sha1_b64) for it in chunk])
            except _FATAL:
                raise
            except ImmichError as e:
                for it in chunk:
                    it.fail(f"purged; checking the server for a copy failed: {e}")
        answered: set[str] = set()
        matches: list[tuple[_Item, str, bool]] = []
        for r in results:
            match = by_tag.get(r.id)
            if match is None:
                continue
            it = match
            answered.add(r.id)
            if r.action == "accept":
                it.kind = "reupload"
                it.upload = True
                it.ensure_metadata = True
            elif r.reason == "duplicate" and r.assetId:
                matches.append((it, r.assetId, bool(r.isTrashed)))
            else:
                it.fail(f"the server will not take the file back ({r.reason or r.action})")
        for it in usable:
            if it.old_id not in answered and it.kind != "failed":
                it.fail("the server did not answer the checksum check for it")
        await self._same_bytes(matches)

    async def _same_bytes(self, matches: Sequence[tuple[_Item, str, bool]]) -> None:
        """The server already holds these bytes as another asset: ours from an earlier run, or not?

        A copy an earlier restore uploaded (recorded for this asset, or: same file name, uploaded
        after the backup was made, not a winner) is used as the loser's new self (restored from
        the trash if it is there). Anything else (the winner, another asset with identical bytes)
        is left exactly as it is and the loser fails: the photo is on the server, but the loser's
        own metadata is not ours to write onto another asset.
        """
        unknown = [m for m in matches if m[1] != self.mapping.get(m[0].old_id)]
        reads = await asyncio.gather(*(self._read(aid) for _, aid, _ in unknown))
        found = {m[1]: got for m, got in zip(unknown, reads, strict=True)}
        others = set(self.mapping.values())
        for it, aid, trashed in matches:
            got = found.get(aid)
            recorded = aid == self.mapping.get(it.old_id)
            if recorded and not trashed and self._hidden_copy(it, aid):
                self._leave_hidden(it, aid)
            elif recorded or (
                aid not in others and isinstance(got, Asset) and self._looks_like_ours(it, got)
            ):
                it.current_id = aid
                # Recorded: metadata only if that run did not apply it. Unrecorded (the run that
                # uploaded it stopped before writing its record): apply it, once.
                it.ensure_metadata = it.old_id in self.pending if recorded else True
                it.kind = "from_trash" if trashed else "already_present"
                it.restore_trash_id = aid if trashed else None
            elif isinstance(got, ImmichError):
                it.fail(f"purged; the server holds the same bytes as {aid}, which could not be read: {got}")
            elif trashed:
                it.fail(
                    f"purged; the same bytes are in the Immich trash as {aid}"
                    f" ({got.originalFileName if got else 'another asset'}), which this restore did not"
                    " upload: restore that one from the trash in Immich if it is the same photo"
                )
            else:
                it.fail(
                    f"purged; the same photo exists as {aid}"
                    f" ({got.originalFileName if got else 'another asset'}); the loser's own metadata"
                    " (albums, tags, description, favorite, ...) was not re-applied to it"
                    " — check it by hand"
                )

    def _hidden_copy(self, it: _Item, aid: str) -> bool:
        """Is ``aid`` this item's recorded re-upload, which the key cannot see but the server
        just named as holding the backup's bytes? (Then it is there, hidden: the Locked folder.)"""
        return aid == self.mapping.get(it.old_id) and aid == it.unseen_copy

    def _leave_hidden(self, it: _Item, aid: str) -> None:
        """Done, with a note: never re-uploaded, changed or linked, since the key cannot read it."""
        it.kind = "already_present"
        it.current_id = aid
        it.hidden = True
        it.ensure_metadata = False  # still pending if it was: applied once it is visible again
        it.restore_trash_id = None
        it.extra.append(
            f"restored earlier as {aid}; the server no longer shows it to this key"
            " (moved to Locked?); left alone"
        )

    def _looks_like_ours(self, it: _Item, got: Asset) -> bool:
        if got.id in self.winners or got.originalFileName != it.name or got.createdAt is None:
            return False
        made = self.store.header.created_at
        if made.tzinfo is None:
            made = made.replace(tzinfo=UTC)
        return got.createdAt >= made

    # ------------------------------------------------------------------ changing

    async def restore_trash(self, items: Sequence[_Item]) -> None:
        todo = [it for it in items if it.kind == "from_trash" and it.restore_trash_id]
        for i in range(0, len(todo), TRASH_BATCH):
            chunk = todo[i : i + TRASH_BATCH]
            try:
                await self.client.restore_from_trash([it.restore_trash_id or "" for it in chunk])
            except _FATAL:
                raise
            except ImmichError as e:
                for it in chunk:
                    it.fail(f"restoring from the trash failed: {e}")
                continue
            # ``count`` only echoes the ids sent: read each one back.
            reads = await asyncio.gather(*(self._read(it.restore_trash_id or "") for it in chunk))
            for it, got in zip(chunk, reads, strict=True):
                if isinstance(got, Asset) and not got.isTrashed:
                    it.server = got
                    it.history = "restored from the trash"
                elif isinstance(got, ImmichError):
                    it.fail(f"restored from the trash, but reading it back failed: {got}")
                elif got is not None and it.force and it.current_id == it.old_id:
                    # Deleted permanently, not purged yet: Immich shows it as trashed but will not
                    # restore it, and refuses its bytes until the purge job has removed it.
                    it.fail(
                        "deleted permanently and not yet purged by Immich; run restore again once"
                        " Immich's purge job has run, and it will be re-uploaded from the backup"
                    )
                else:
                    it.fail(
                        "still " + ("in the trash" if got is not None else "missing")
                        + " after the restore request"
                    )

    async def reupload(self, items: Sequence[_Item]) -> None:
        """Videos first, then stills (so each still can be linked to its motion part)."""
        videos = [it for it in items if it.upload and it.kind == "reupload" and it.is_video_part]
        stills = [it for it in items if it.upload and it.kind == "reupload" and not it.is_video_part]
        total = len(videos) + len(stills)
        sent = 0
        sent_bytes = 0
        size = sum(it.ma.size for it in (*videos, *stills))

        # At most ``concurrency`` uploads at once (each streams its file; memory stays flat).
        slots = asyncio.Semaphore(max(1, self.client.concurrency))

        async def one(it: _Item) -> None:
            nonlocal sent, sent_bytes
            async with slots:
                await self._upload(it)
            sent += 1
            sent_bytes += it.ma.size
            self.report(Event("upload", "", done=sent, total=total, bytes_done=sent_bytes, bytes_total=size))

        await asyncio.gather(*(one(it) for it in videos))
        await self._answered_duplicate(videos)  # before the stills: they link to these ids
        await asyncio.gather(*(one(it) for it in stills))
        await self._answered_duplicate(stills)

    async def _answered_duplicate(self, items: Sequence[_Item]) -> None:
        """Uploads the server answered ``duplicate``: it already holds these bytes (in the trash,
        or as another asset). Decided like the checksum check's matches, never taken as a
        re-upload: the answered id may be a trashed copy, a winner, or not ours at all."""
        dups = [it for it in items if it.kind == "reupload" and it.duplicate_of is not None]
        if not dups:
            return
        reads = await asyncio.gather(*(self._read(it.duplicate_of or "") for it in dups))
        matches: list[tuple[_Item, str, bool]] = []
        for it, got in zip(dups, reads, strict=True):
            aid = it.duplicate_of or ""
            it.upload = False
            it.current_id = None
            if isinstance(got, ImmichError):
                it.fail(f"purged; the server holds the same bytes as {aid}, which could not be read: {got}")
            elif got is None and self._hidden_copy(it, aid):
                self._leave_hidden(it, aid)
            elif got is None:
                it.fail(f"the server answered that it already holds these bytes as {aid}, which cannot be found")
            else:
                matches.append((it, aid, got.isTrashed))
        await self._same_bytes(matches)
        await self.restore_trash([it for it, _, _ in matches])

    def _relink(self, it: _Item) -> bool:
        """A still back under its own id whose motion part came back under a new id."""
        v = it.video
        return (
            not it.is_video_part and v is not None and v.kind != "failed"
            and v.current_id is not None and v.current_id != v.old_id
        )

    def _video_id(self, it: _Item) -> str | None:
        """The id the still's motion part has now (None if it has none or it is not back)."""
        if it.video is None or it.video.kind == "failed":
            return None
        return it.video.current_id

    async def _upload(self, it: _Item) -> None:
        a = it.asset
        created = a.fileCreatedAt or a.exif.dateTimeOriginal or datetime.now(UTC)
        modified = a.fileModifiedAt or created
        visibility = a.visibility.value if a.visibility.value in ("timeline", "archive", "hidden") else None
        try:
            res = await self.client.upload(
                self.store.resolve_file(it.ma.file),
                filename=it.name,
                file_created_at=created,
                file_modified_at=modified,
                checksum=it.ma.sha1_b64,
                is_favorite=a.isFavorite,
                visibility=visibility,
                live_photo_video_id=self._video_id(it),
                duration_ms=a.duration_ms if a.type is AssetType.VIDEO else None,
            )
        except _FATAL:
            raise
        except (ImmichError, BackupError, OSError) as e:
            it.fail(f"re-upload failed: {e}")
            return
        if res.status == "duplicate":
            it.duplicate_of = res.id  # decided by _answered_duplicate
            return
        it.current_id = res.id
        self.new_mapping[it.old_id] = res.id
        it.history = f"re-uploaded from the backup as {res.id}"

    async def apply_metadata(self, items: Sequence[_Item]) -> None:
        """For re-uploaded copies: bring the server in line with the manifest, sending only differences."""
        todo = [
            it for it in items
            if it.kind != "failed" and it.current_id and not it.hidden
            and (it.ensure_metadata or self._relink(it))
        ]
        if not todo:
            return

        async def read_state(it: _Item) -> tuple[Asset, set[str]] | None:
            cid = it.current_id or ""
            got = it.server if (it.server is not None and it.server.id == cid and not it.upload) else None
            if got is None:
                r = await self._read(cid)
                if not isinstance(r, Asset):
                    it.fail(f"{it.history or 'restored'}, but reading {cid} back failed: {r or 'gone'}")
                    return None
                got = r
            albums: set[str] = set()
            if it.ma.albums and it.ensure_metadata:
                try:
                    albums = {al.id for al in await self.client.albums_for_asset(cid)}
                except _FATAL:
                    raise
                except ImmichError as e:
                    it.fail(f"{it.history or 'restored'}, but its albums could not be read: {e}")
                    return None
            return got, albums

        states = await asyncio.gather(*(read_state(it) for it in todo))
        changes: list[tuple[_Item, _Changes]] = []
        for it, st in zip(todo, states, strict=True):
            if st is None:
                continue
            video = self._video_id(it) if not it.is_video_part else None
            if it.ensure_metadata:
                ch = _metadata_changes(it, st[0], st[1], video)
            else:  # its own record, back as it was: only the link to a re-uploaded motion part
                ch = _Changes()
                if video is not None and st[0].livePhotoVideoId != video:
                    ch.fields["livePhotoVideoId"] = video
            changes.append((it, ch))

        if self.dry_run:
            for it, ch in changes:
                if not ch.empty:
                    it.extra.append(f"would set {ch.describe()}")
            return

        async def put_fields(it: _Item, ch: _Changes) -> None:
            try:
                await self.client.update_asset(it.current_id or "", **ch.fields)
            except _FATAL:
                raise
            except ImmichError as e:
                it.fail(_join(it.history, f"but setting {ch.describe()} failed: {e}"))

        await asyncio.gather(*(put_fields(it, ch) for it, ch in changes if ch.fields))

        album_adds: dict[str, list[_Item]] = defaultdict(list)
        album_names: dict[str, str] = {}
        tag_adds: dict[str, list[_Item]] = defaultdict(list)
        tag_names: dict[str, str] = {}
        for it, ch in changes:
            for aid, name in ch.albums:
                album_adds[aid].append(it)
                album_names[aid] = name
            for tid, value in ch.tags:
                tag_adds[tid].append(it)
                tag_names[tid] = value

        async def add_album(album_id: str, its: list[_Item]) -> None:
            await self._bulk(
                its, self.client.add_to_album(album_id, [it.current_id or "" for it in its]),
                f"album {album_names.get(album_id) or album_id!r}",
            )

        async def add_tag(tag_id: str, its: list[_Item]) -> None:
            await self._bulk(
                its, self.client.tag_assets(tag_id, [it.current_id or "" for it in its]),
                f"tag {tag_names.get(tag_id) or tag_id!r}",
            )

        await asyncio.gather(
            *(add_album(k, v) for k, v in album_adds.items()),
            *(add_tag(k, v) for k, v in tag_adds.items()),
        )
        for it, ch in changes:
            if not ch.empty and it.kind != "failed":
                it.extra.append(f"set {ch.describe()}")

    async def _bulk(self, its: list[_Item], call: Any, what: str) -> None:
        try:
            results = await call
        except _FATAL:
            raise
        except ImmichError as e:
            for it in its:
                it.fail(_join(it.history, f"but adding it to {what} failed: {e}"))
            return
        by_id = {r.id: r for r in results}
        for it in its:
            r = by_id.get(it.current_id or "")
            if r is not None and not r.success and r.error != "duplicate":
                it.fail(_join(it.history, f"but adding it to {what} failed: {r.error or 'refused'}"))

    # ------------------------------------------------------------------ results

    def action(self, it: _Item) -> RestoreAction:
        """The outcome of one item; ``detail`` adds only what the action's name does not say."""
        new_id = it.current_id if it.current_id and it.current_id != it.old_id else None
        kind: ActionKind = it.kind or "failed"
        if kind == "failed":
            detail = it.detail or "not reached (the run stopped early)"
        else:
            extra = list(it.extra)
            if new_id and kind in ("already_present", "from_trash") and not it.hidden:
                extra.insert(0, "the copy an earlier restore re-uploaded")
            if self.dry_run and kind == "reupload":
                extra.append(
                    "then its description, GPS, date, favorite, rating, visibility, albums and tags are re-applied"
                )
            detail = "; ".join(extra)
        if it.is_video_part:
            detail = _join("live-photo video", detail)
        return RestoreAction(
            asset_id=it.old_id, file_name=it.name, action=kind, new_asset_id=new_id, detail=detail
        )


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a and b else (a or b)


def open_backup(backup_dir: Path, dry_run: bool = False) -> tuple[BackupStore, int]:
    """Open a backup for restore and check every manifest (BackupError on anything wrong).

    Returns the store and the number of assets it holds (losers and their live-photo videos).
    Reads only the disk: a command calls this before it contacts the server. With ``dry_run``
    it needs no write access to the directory and writes nothing into it (see ``restore``).
    """
    store = BackupStore.open_existing(Path(backup_dir))
    count = len(_items(store, list(store.manifests())))
    read_records(store.root)
    # refuse now if an execute or restore is using it
    with lock_backup_dir(store.root, shared=dry_run):
        pass
    return store, count


async def restore(
    client: ImmichClient,
    backup_dir: Path,
    report: Reporter = ignore,
    dry_run: bool = False,
) -> RestoreReport:
    """Bring every backed-up loser back (see the module docstring). Idempotent.

    Raises BackupError (a ValueError) for a missing, foreign, invalid or edited backup or
    restore record, BackupLocked (a BackupError) when another execute or restore is using the
    directory, and WrongServer (a ValueError) for a backup of another server or user, before
    changing anything. The directory's lock is held for the whole run.

    A dry run only reads the directory: it works on a read-only backup (a read-only mount,
    another user's folder) and writes nothing into it, not even the lock file. It holds a
    shared lock instead (other dry runs may read along; an execute or restore is refused
    until it ends) and is refused while an execute or restore holds the directory. Where
    that cannot be told (a lock file it cannot read or lock), it reads anyway and says so
    with a warning event.
    """
    store = BackupStore.open_existing(Path(backup_dir))
    with lock_backup_dir(store.root, shared=dry_run) as note:
        if note:
            report(Event("restore", note, level="warning"))
        if not dry_run:  # the only writer now: what a killed run's atomic writes left can go
            store.remove_stale_temp_files()
        return await _restore_locked(client, store, report, dry_run)


async def _restore_locked(
    client: ImmichClient, store: BackupStore, report: Reporter, dry_run: bool
) -> RestoreReport:
    manifests = list(store.manifests())  # read and checked once, before the server is contacted
    items = _items(store, manifests)
    records = read_records(store.root)
    await check_binding(
        client, store.header.server_url, store.header.user_id, f"the backup in {store.root}"
    )
    run = _Run(
        client, store, report, dry_run, records,
        winners={m.winner_id for m in manifests},
        backed_up={it.old_id for it in items},
    )
    run.total = len(items)
    out = RestoreReport(dry_run=dry_run)
    report(Event("restore", f"{len(items)} assets in the backup", done=0, total=len(items)))

    out.keepers = keepers_written_over(store, manifests)
    try:
        await run.classify(items)
        if not dry_run:
            await run.restore_trash(items)
            await run.reupload(items)
        await run.apply_metadata(items)
    finally:
        out.actions = [run.action(it) for it in items]
        if not dry_run:
            mapping = {**run.mapping, **run.new_mapping}
            pending = set(run.pending)
            for it in items:
                if it.current_id and it.current_id != it.old_id and it.kind != "failed":
                    mapping[it.old_id] = it.current_id
                if it.ensure_metadata:
                    # Applied in full, or still to be applied by a later run.
                    (pending.add if it.kind == "failed" else pending.discard)(it.old_id)
            out.record_file = _write_record(store.root, mapping, pending, out)

    for a in out.actions:
        if a.action == "failed":
            report(Event("restore", f"{a.file_name}: {a.detail}", level="error"))
    report(
        Event(
            "restore",
            ("dry run, would do: " if dry_run else "")
            + f"{out.count('from_trash')} from the trash, {out.count('reupload')} re-uploaded, "
            f"{out.count('already_present')} already present, {out.failed} failed",
            done=len(items),
            total=len(items),
        )
    )
    return out


__all__ = [
    "DRY_RUN_PERMISSIONS",
    "RESTORE_PERMISSIONS",
    "KeeperValue",
    "RestoreAction",
    "RestoreReport",
    "RestoreRecords",
    "open_backup",
    "read_mapping",
    "read_records",
    "restore",
    "wanted_date",
]
