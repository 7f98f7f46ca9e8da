"""Verify: re-read the server after execute and compare it with what the plan says should hold.

Winners present and not trashed; losers trashed (or gone after ``--force``: Immich answers 400
"Not found" for a purged asset); the consolidated values on the winner (GPS within the plan's
tolerance, date with its offset, description, favorite, rating, visibility, albums, tags,
live-photo video). Where Immich changed a value itself in a documented way that keeps the
instant (the zone replaced by the GPS position's zone), that is a *note*; so is a GPS position,
date or description that execute deliberately left as the winner had it (edited in Immich after
analyze), as long as the backup's journal records it for that group and the value is still the
one execute kept. Everything else that differs is an *anomaly*, and exit 0 means every group was
carried out and checked.

With the backup directory (``-b``, bound to the plan's analysis as execute binds it), verify
reads what execute recorded: a group execute left alone on purpose, as this plan asks (not
reviewed, a loser in an external library), is a note; one a cancelled or stopped run did not
finish, one this version of the plan asks for since, or one execute left alone because the
server no longer matched the plan is *not executed*, an anomaly. A loser a restore brought back
(its ``restore-*.json``) is an anomaly that names that restore: the plan no longer holds.

Requests: one ``GET /assets/{id}`` per kept copy of a checked group (concurrent within the
client's limits), one album listing for the whole run (``album_membership``), and for the losers
one ``POST /assets/bulk-upload-check`` per 1,000 (``losers_in_bulk``): a loser that check cannot
vouch for by its own id is read with a GET of its own, and so is the copy a restore re-uploaded
of a loser that is gone.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from immich_dupes.analysis.geo import format_distance, haversine_m
from immich_dupes.analysis.plan import Action, GroupPlan, Plan, PlanAlbum, PlanError
from immich_dupes.analysis.timezones import format_offset, offset_minutes
from immich_dupes.engine.analyze import album_membership
from immich_dupes.engine.backup import BackupError, BackupHeader, BackupStore
from immich_dupes.engine.events import Event, Reporter, ignore
from immich_dupes.engine.execute import (
    SKIPPED_EXTERNAL,
    SKIPPED_UNREVIEWED,
    group_sha256,
    left_alone,
    load_states,
    plan_sha256,
    same_server,
)
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ImmichError,
    PermissionMissing,
)
from immich_dupes.immich.models import Asset, ExifInfo

VERIFY_PERMISSIONS = ("user.read", "asset.read", "album.read")

Severity = Literal["ok", "note", "anomaly"]


@dataclass
class Finding:
    """One checked fact. ``asset_id`` is None for a finding about the whole group."""

    duplicate_id: str
    asset_id: str | None
    field: str
    expected: str
    actual: str
    severity: Severity
    message: str


@dataclass
class VerifyReport:
    """Every group of the plan is counted once: ``groups_checked`` (its action asks for a
    change) splits into ``groups_ok`` + ``groups_with_anomalies`` + ``groups_not_executed`` +
    ``groups_skipped_by_execute``; ``groups_skipped_by_plan`` (action ``skip``) are the rest."""

    findings: list[Finding] = field(default_factory=list)
    groups_checked: int = 0
    """Groups whose action asks for a change (resolve, keep_all, stack)."""
    groups_ok: int = 0
    """Carried out and without anomalies (notes allowed)."""
    groups_with_anomalies: int = 0
    """Carried out (or recorded failed), with at least one anomaly."""
    groups_not_executed: int = 0
    """Not carried out, and not on purpose: never run, a run that stopped before it (cancel,
    full disk), or left alone by execute because the server no longer matched the plan."""
    groups_skipped_by_execute: int = 0
    """Left alone by execute on purpose, as the plan given asks (a group not reviewed, run
    with --skip-review; a loser in an external library not allowed in review): notes."""
    groups_skipped_by_plan: int = 0
    """Action ``skip`` in the plan: nothing to check."""

    @property
    def groups_skipped(self) -> int:
        """Skipped on purpose: by the plan, or by execute as the plan asks."""
        return self.groups_skipped_by_plan + self.groups_skipped_by_execute

    @property
    def groups_total(self) -> int:
        return self.groups_checked + self.groups_skipped_by_plan

    @property
    def anomalies(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "anomaly"]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "note"]

    def counts_text(self) -> str:
        """The counts as one sentence; the parts add up to the groups checked and the plan's."""
        anomalies, notes = len(self.anomalies), len(self.notes)
        text = (
            f"{self.groups_checked} group{'' if self.groups_checked == 1 else 's'} checked: "
            f"{self.groups_ok} as planned, "
            f"{self.groups_with_anomalies} with anomalies, {self.groups_not_executed} not executed, "
            f"{self.groups_skipped_by_execute} skipped by execute on purpose"
        )
        if self.groups_skipped_by_plan:
            text += f"; {self.groups_skipped_by_plan} more skipped by the plan, not checked"
        return (
            text + f"; {anomalies} anomal{'y' if anomalies == 1 else 'ies'}, "
            f"{notes} note{'' if notes == 1 else 's'}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": not self.anomalies,
            "groups_total": self.groups_total,
            "groups_checked": self.groups_checked,
            "groups_ok": self.groups_ok,
            "groups_with_anomalies": self.groups_with_anomalies,
            "groups_not_executed": self.groups_not_executed,
            "groups_skipped": self.groups_skipped,
            "groups_skipped_by_execute": self.groups_skipped_by_execute,
            "groups_skipped_by_plan": self.groups_skipped_by_plan,
            "anomaly_count": len(self.anomalies),
            "note_count": len(self.notes),
            "findings": [asdict(f) for f in self.findings],
        }


class WrongServer(PlanError):
    """The plan (or backup) was made for another server or user: nothing is checked or changed."""


# --------------------------------------------------------------------------- binding


async def check_binding(client: ImmichClient, server_url: str, user_id: str, what: str) -> None:
    """Refuse (WrongServer) when ``server_url``/``user_id`` are not this client's server and user."""
    info = client.info
    if info is None:
        info = await client.connect(VERIFY_PERMISSIONS)
    if not same_server(server_url, client.base_url):
        raise WrongServer(
            f"{what} was made for {server_url}, not {client.base_url}: refusing to use it here"
        )
    if user_id != info.user.id:
        raise WrongServer(
            f"{what} belongs to user {user_id}, but the API key is of user {info.user.id}"
            f" ({info.user.email or 'unknown e-mail'}): refusing to use it"
        )


# --------------------------------------------------------------------------- dates


_FIXED = re.compile(r"^(?:UTC|GMT)?\s*[+-]\d{1,2}(?::?\d{2})?$", re.IGNORECASE)


def is_named_zone(zone: str | None) -> bool:
    """An IANA name like ``Asia/Tokyo`` (what Immich derives from GPS), not ``UTC+9``/``+09:00``."""
    if not zone:
        return False
    z = zone.strip()
    if z.upper() in ("UTC", "GMT", "Z") or _FIXED.match(z):
        return False
    return offset_minutes(z) is not None


def parse_offset_datetime(text: str) -> tuple[datetime, int] | None:
    """``2019-07-04T18:30:00+02:00`` → (the UTC instant, +120). None without an offset."""
    try:
        d = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    off = d.utcoffset()
    if off is None:
        return None
    return d.astimezone(UTC), int(off.total_seconds() // 60)


def _utc(d: datetime) -> datetime:
    return d.replace(tzinfo=UTC) if d.tzinfo is None else d.astimezone(UTC)


def _local(instant: datetime, minutes: int) -> str:
    return instant.astimezone(timezone(timedelta(minutes=minutes))).strftime("%Y-%m-%dT%H:%M:%S")


def describe_exif_date(exif: ExifInfo) -> str:
    """How the server holds the capture date: local time, offset and zone."""
    if exif.dateTimeOriginal is None:
        return "no capture date"
    inst = _utc(exif.dateTimeOriginal)
    off = offset_minutes(exif.timeZone, inst)
    if off is None:
        return inst.strftime("%Y-%m-%dT%H:%M:%SZ") + f" (zone {exif.timeZone or 'unknown'})"
    zone = f" ({exif.timeZone})" if is_named_zone(exif.timeZone) else ""
    return _local(inst, off) + format_offset(off) + zone


def compare_date(
    expected: str, exif: ExifInfo, tolerance_s: float = 2.0
) -> tuple[Severity, str]:
    """Compare a planned ``dateTimeOriginal`` (local time + offset) with what the server holds.

    Same instant and offset: ok. Same instant but an IANA zone Immich took from the GPS
    position: a note (documented Immich behaviour that keeps the instant). A different instant
    is an anomaly; for a negative half-hour offset the message says Immich dropped it.
    """
    parsed = parse_offset_datetime(expected)
    if parsed is None:
        return "anomaly", f"the plan's date {expected!r} has no offset; cannot be checked"
    want_instant, want_off = parsed
    if exif.dateTimeOriginal is None:
        return "anomaly", f"the winner has no capture date; the plan says {expected}"
    have_instant = _utc(exif.dateTimeOriginal)
    have_off = offset_minutes(exif.timeZone, have_instant)
    actual = describe_exif_date(exif)
    drift = abs((have_instant - want_instant).total_seconds())
    if drift > max(tolerance_s, 1.0):
        if want_off < 0 and want_off % 60 != 0:
            return "anomaly", (
                f"Immich dropped the offset {format_offset(want_off)}: the date reverted to {actual}"
                f" instead of {expected}"
            )
        return "anomaly", f"capture date is {actual}, the plan says {expected}"
    if have_off is None:
        return "anomaly", f"same instant, but the time zone is unknown ({exif.timeZone!r}); planned {format_offset(want_off)}"
    if have_off == want_off:
        if is_named_zone(exif.timeZone):
            return "note", (
                f"Immich set the zone to {exif.timeZone} from the GPS position"
                f" (same instant, same offset {format_offset(want_off)})"
            )
        return "ok", ""
    if is_named_zone(exif.timeZone):
        return "note", (
            f"Immich replaced the zone {format_offset(want_off)} with {exif.timeZone}"
            f" ({format_offset(have_off)}) from the GPS position: same instant, local time now"
            f" {_local(have_instant, have_off)} instead of {_local(want_instant, want_off)}"
        )
    return "anomaly", (
        f"same instant but offset {format_offset(have_off)}, the plan says {format_offset(want_off)}"
    )


# --------------------------------------------------------------------------- what execute did


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


@dataclass(frozen=True)
class WinnerKept:
    """Planned values execute did not write because the winner's own value had been edited in
    Immich after analyze, with the value it kept (``winner_kept`` of the journal's
    ``consolidated``/``group_done`` entries). None: execute recorded no such thing for the field.
    """

    gps: tuple[float | None, float | None] | None = None
    date: tuple[str | None, str | None] | None = None
    """(``dateTimeOriginal`` as ISO text with its offset, ``timeZone``) as execute saw them."""
    description: str | None = None

    @classmethod
    def from_json(cls, raw: object) -> WinnerKept:
        """Read what execute recorded; a missing (older backup) or malformed field is left out,
        so that field is checked against the plan as before."""
        if not isinstance(raw, dict):
            return cls()
        gps: tuple[float | None, float | None] | None = None
        g = raw.get("gps")
        if isinstance(g, dict):
            lat, lon = g.get("latitude"), g.get("longitude")
            if (lat is None or _number(lat)) and (lon is None or _number(lon)):
                gps = (
                    float(lat) if lat is not None else None,
                    float(lon) if lon is not None else None,
                )
        date: tuple[str | None, str | None] | None = None
        d = raw.get("date")
        if isinstance(d, dict):
            when, zone = d.get("dateTimeOriginal"), d.get("timeZone")
            if (when is None or (isinstance(when, str) and _parse_iso(when) is not None)) and (
                zone is None or isinstance(zone, str)
            ):
                date = (when, zone)
        desc = raw.get("description")
        return cls(gps=gps, date=date, description=desc if isinstance(desc, str) else None)


def _parse_iso(text: str) -> datetime | None:
    try:
        return _utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


@dataclass(frozen=True)
class GroupRecord:
    """What the backup directory says execute did with one group."""

    status: str
    """done | skipped | failed | not-run (the backup has no record of the group)"""
    reason: str = ""
    force: bool = False
    winner_kept: WinnerKept = field(default_factory=WinnerKept)
    """The winner's own values execute kept instead of the plan's (done groups only)."""


def execution_records(
    backup_dir: Path, plan: Plan, report: Reporter = ignore
) -> dict[str, GroupRecord]:
    """duplicate id → what execute did, from the backup directory of this plan.

    The journal is the durable truth (``group_done``); the reports of finished runs add why a
    group was skipped or failed; the manifests say trash or force. A group execute started but
    never finished (a killed run) counts as failed. Raises BackupError (a ValueError) for a
    missing or foreign backup directory (see ``open_backup_of``).

    The directory may hold the runs of several reviewed versions of the plan; a warning names
    the groups execute carried out with another version of them than the plan given (the
    server is compared with the plan given).
    """
    store, known = open_backup_of(backup_dir, plan)
    states = load_states(store.journal.entries())
    acted = {gid: st.version for gid, st in states.items() if st.started or st.done}
    _warn_other_versions(backup_dir, plan, known, store.header.plan_sha256, acted, report)

    reported: dict[str, tuple[str, str]] = {}
    for body in _run_records(store.root, "report-*.json"):
        for o in body.get("groups") or []:
            if isinstance(o, dict) and isinstance(o.get("duplicate_id"), str):
                reported[o["duplicate_id"]] = (str(o.get("status", "")), str(o.get("reason", "")))

    modes = {m.duplicate_id: m.mode for m in store.manifests()}
    out: dict[str, GroupRecord] = {}
    for g in plan.groups:
        gid = g.duplicate_id
        force = modes.get(gid) == "force"
        st = states.get(gid)
        if st is not None and st.done:
            out[gid] = GroupRecord("done", "", force, WinnerKept.from_json(st.winner_kept))
        elif st is not None and st.started and not reported.get(gid, ("", ""))[1].endswith(_INTERRUPTED_END):
            # Half done. A report that says the run stopped part way says so too (and what to
            # do); any other (a later run that skipped it as its plan asked) does not count.
            why = "execute started this group but did not finish it"
            if gid in reported and reported[gid][1]:
                why += f" (the last report: {reported[gid][0]}, {reported[gid][1]})"
            out[gid] = GroupRecord("failed", why, force)
        elif gid in reported and reported[gid][0] in ("skipped", "failed"):
            out[gid] = GroupRecord(reported[gid][0], reported[gid][1], force)
    return out


def _run_records(root: Path, pattern: str) -> Iterator[dict[str, Any]]:
    """The JSON records of finished runs (execute's reports, restore's records) in the backup
    directory, oldest first; dry runs and what cannot be read are left out."""
    for p in sorted(root.glob(pattern)):
        try:
            body = json.loads(p.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(body, dict) and not body.get("dry_run"):
            yield body


def open_backup_of(backup_dir: Path, plan: Plan) -> tuple[BackupStore, bool]:
    """The backup directory of ``plan``, opened for reading, and whether its header names the
    plan's analysis (False: a header of an older immich-dupes, which cannot tell).

    Raises BackupError (a ValueError) for a path that does not exist, is a file or is no
    backup, and, by execute's own check (``BackupStore.same_analysis``), for the backup of
    another server, user or analysis. Every reviewed version of the plan may use it. Reads
    only: a read-only backup directory is fine.
    """
    path = Path(backup_dir)
    if path.exists() and not path.is_dir():
        raise BackupError(f"backup directory {path} is a file, not a directory")
    store = BackupStore.open_existing(path)
    header = BackupHeader(
        server_url=plan.server_url,
        user_id=plan.user_id,
        plan_sha256="",  # not compared: only the analysis binds (an older header cannot tell)
        created_at=plan.created_at,
        analysis_created_at=plan.created_at,
    )
    return store, BackupStore.same_analysis(path, store.header, header)


@dataclass(frozen=True)
class Restored:
    """What a restore run recorded doing with one backed-up loser (its ``restore-*.json``)."""

    when: str
    """When that restore ran, as a person reads it (``2024-05-01 10:00 UTC``; "" if unknown)."""
    action: Literal["from_trash", "reupload"]
    new_id: str | None = None
    """The id of the copy a re-upload made (None: the loser came back under its own id)."""

    def describe(self) -> str:
        on = f" on {self.when}" if self.when else ""
        if self.action == "reupload":
            return f"re-uploaded by restore{on}" + (f" as {self.new_id}" if self.new_id else "")
        return f"brought back from the trash by restore{on}" + (
            f" (the copy it had re-uploaded, {self.new_id})" if self.new_id else ""
        )


def restored_by_restore(backup_dir: Path) -> dict[str, Restored]:
    """Loser id → the last restore run that brought it back, from the backup's restore records
    (``restore-*.json``, written by engine.restore). Only wording and one read per re-upload
    depend on them, never a verdict turned good: read leniently, a record that cannot be read
    is left out (restore itself refuses an edited one)."""
    out: dict[str, Restored] = {}
    for body in _run_records(Path(backup_dir), "restore-*.json"):
        when = ""
        made = body.get("created_at")
        if isinstance(made, str) and (d := _parse_iso(made)) is not None:
            when = d.strftime("%Y-%m-%d %H:%M UTC")
        for a in body.get("actions") or []:
            if not isinstance(a, dict) or not isinstance(a.get("asset_id"), str):
                continue
            new = a.get("new_asset_id")
            new_id = new if isinstance(new, str) and new else None
            if a.get("action") == "from_trash":
                out[a["asset_id"]] = Restored(when, "from_trash", new_id)
            elif a.get("action") == "reupload":
                out[a["asset_id"]] = Restored(when, "reupload", new_id)
    return out


def _warn_other_versions(
    backup_dir: Path,
    plan: Plan,
    known: bool,
    header_plan: str,
    acted: dict[str, str | None],
    report: Reporter,
) -> None:
    """Warn where the records describe another version of a group than ``plan``'s (see
    ``execution_records``); silent when every group execute acted on is as in ``plan``.

    ``known``: the header names the plan's analysis (``open_backup_of``). ``acted``: each
    group execute started → the version (``group_sha256``) it journaled, None in journals of
    older versions (then only the whole plan's hash can tell).
    """
    other: list[str] = []
    unknown = False
    for g in plan.groups:
        if g.duplicate_id not in acted:
            continue
        version = acted[g.duplicate_id]
        if version is None:
            unknown = True
        elif version != group_sha256(g):
            other.append(g.duplicate_id)
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        report(Event(
            "verify",
            f"{backup_dir}: execute carried out {len(other)} group(s) with another version of this "
            f"plan (edited since): {shown}; they are checked against this plan's version",
            level="warning",
        ))
    elif (unknown or not known) and header_plan != plan_sha256(plan):
        what = "another version of this plan" if known else (
            "another plan, or another version of this one (a backup of an older immich-dupes"
            " cannot tell which)"
        )
        report(Event(
            "verify",
            f"{backup_dir} was made for {what}; using its records group by group",
            level="warning",
        ))


# --------------------------------------------------------------------------- checking a group


@dataclass
class _GroupResult:
    findings: list[Finding]
    state: Literal["ok", "anomaly", "not_executed", "skipped"]


FATAL = (AuthenticationFailed, PermissionMissing, ConnectionFailed)
"""Errors that make a whole verify or restore run meaningless: raised, never turned into a
finding or one item's failure."""


@dataclass(frozen=True)
class InTrash:
    """What the bulk checksum check said of a loser under its own id: in the trash or not.
    That is all verify reads of a loser; the rest of the asset is not known."""

    trashed: bool


BULK_BATCH = 1000
"""Checksums per ``POST /assets/bulk-upload-check`` (restore checks in batches of this size too)."""


async def losers_in_bulk(
    client: ImmichClient, groups: Sequence[GroupPlan], report: Reporter = ignore
) -> dict[str, InTrash]:
    """Whether each resolved group's losers are in the trash, 1,000 per request instead of one
    GET each: about half of verify's requests.

    Immich matches the checksums against every asset of the user, trashed ones included, and
    names the asset it found and (from 1.115 on) whether it is in the trash. Only an answer that
    names the loser's own id is taken. Every other one (no asset with those bytes, as after a
    purge; another asset with the same bytes; no ``isTrashed``), a refused request (a key
    without ``asset.upload``) and a failed one leave the loser out of the result, and verify
    reads it with ``GET /assets/{id}``.
    """
    info = client.info
    if info is not None and info.missing(["asset.upload"]):
        return {}
    pairs: list[tuple[str, str]] = []
    for g in groups:
        if g.action is Action.RESOLVE:
            pairs += [(aid, a.checksum) for aid in g.losers if (a := g.asset(aid)).checksum]
    if not pairs:
        return {}
    total = len(pairs)
    report(Event("losers", f"checking {total} losers by checksum", done=0, total=total))
    out: dict[str, InTrash] = {}
    for i in range(0, total, BULK_BATCH):
        chunk = pairs[i : i + BULK_BATCH]
        try:
            results = await client.bulk_upload_check(chunk)
        except PermissionMissing:
            report(Event("losers", "the API key may not check checksums (asset.upload):"
                         " reading each loser instead"))
            return out
        except (AuthenticationFailed, ConnectionFailed):
            raise
        except ImmichError as e:
            report(Event("losers", f"checking {len(chunk)} losers by checksum failed ({e}):"
                         " reading them one by one instead", level="warning"))
            continue
        asked = {aid for aid, _ in chunk}
        for r in results:
            if r.id in asked and r.action == "reject" and r.assetId == r.id and r.isTrashed is not None:
                out[r.id] = InTrash(r.isTrashed)
        report(Event("losers", "", done=i + len(chunk), total=total))
    return out


async def read_asset(client: ImmichClient, asset_id: str) -> Asset | None | ImmichError:
    """GET /assets/{id}: an Asset, None when gone (400 Not found), or the error for anything
    else except the FATAL ones, which are raised."""
    try:
        return await client.asset_or_none(asset_id)
    except FATAL:
        raise
    except ImmichError as e:
        return e


async def read_assets(client: ImmichClient, ids: Sequence[str]) -> dict[str, Asset | None | ImmichError]:
    results = await asyncio.gather(*(read_asset(client, i) for i in ids))
    return dict(zip(ids, results, strict=True))


def _trashed(a: Asset | None | ImmichError | InTrash) -> bool:
    return a.isTrashed if isinstance(a, Asset) else isinstance(a, InTrash) and a.trashed


def _name(group: GroupPlan, asset_id: str) -> str:
    try:
        return group.asset(asset_id).file_name
    except KeyError:
        return asset_id


_INTERRUPTED_END = "run again to resume"
"""How execute's reason ends for a group a cancelled or stopped run did not finish (its cancel
reasons and ``_Stop.group_reason``); "not reached" and no reason are such groups too."""
_PLAN_REASONS = (
    SKIPPED_UNREVIEWED,
    "needs review and was not reviewed (--skip-review)",  # SKIPPED_UNREVIEWED of older versions
    SKIPPED_EXTERNAL,
    "the plan says skip",
)
"""What execute records for a group it leaves alone as the plan of that run asked."""

SkipKind = Literal["on_purpose", "interrupted", "plan_changed", "left_alone"]


def skip_kind(g: GroupPlan, reason: str) -> SkipKind:
    """Why execute's records call group ``g`` skipped, for verify of this version of the plan.

    * interrupted: a cancelled or stopped run did not get to finish it, or did not reach it
      (whatever this plan says of the group: that run may have left it half done);
    * on_purpose (a note): this plan leaves the group alone whatever the server says
      (``left_alone``: action skip, not reviewed, an external-library loser not allowed);
    * plan_changed: execute left it alone as the plan of that run asked, but this version of
      the plan asks for it (reviewed since);
    * left_alone: execute left it alone because the server no longer matched the plan (the
      group or a member changed, the winner is gone or trashed, a loser the server shows in an
      external library, an unreadable answer).

    All but on_purpose are anomalies: the group is not as the plan says.
    """
    if not reason or reason == "not reached" or reason.endswith(_INTERRUPTED_END):
        return "interrupted"  # first: a run that stopped part way may have left it half done
    if left_alone(g) is not None:
        return "on_purpose"
    if reason in _PLAN_REASONS:
        return "plan_changed"
    return "left_alone"


class _GroupCheck:
    def __init__(
        self,
        plan: Plan,
        group: GroupPlan,
        assets: dict[str, Asset | None | ImmichError | InTrash],
        membership: dict[str, list[PlanAlbum]] | None,
        record: GroupRecord | None,
        restored: dict[str, Restored] | None = None,
    ) -> None:
        self.plan = plan
        self.g = group
        self.assets = assets
        """Every member as read, and the copy restore re-uploaded of a loser that is gone."""
        self.membership = membership
        self.record = record
        self.restored = restored or {}
        self.findings: list[Finding] = []

    def add(
        self,
        severity: Severity,
        fld: str,
        message: str,
        asset_id: str | None = None,
        expected: object = "",
        actual: object = "",
    ) -> None:
        self.findings.append(
            Finding(
                duplicate_id=self.g.duplicate_id,
                asset_id=asset_id,
                field=fld,
                expected=_text(expected),
                actual=_text(actual),
                severity=severity,
                message=message,
            )
        )

    @property
    def has_anomaly(self) -> bool:
        return any(f.severity == "anomaly" for f in self.findings)

    def result(self, state: Literal["ok", "anomaly", "not_executed", "skipped"] | None = None) -> _GroupResult:
        if state is None:
            state = "anomaly" if self.has_anomaly else "ok"
        if state == "ok":
            self.add("ok", "group", f"{self.g.action.value}: everything as planned", self.g.winner)
        return _GroupResult(self.findings, state)

    # ------------------------------------------------------------------ entry

    def run(self) -> _GroupResult:
        g = self.g
        rec = self.record
        if rec is not None and rec.status == "skipped":
            return self._skipped(rec.reason)
        if rec is not None and rec.status == "failed":
            self.add("anomaly", "execute", f"execute failed for this group: {rec.reason or 'no reason given'}")
            self._check_kept()
            return _GroupResult(self.findings, "anomaly")
        if rec is not None and rec.status not in ("done",):
            message = (f"not executed (the backup's report says {rec.status}"
                       + (f": {rec.reason}" if rec.reason else "") + ")")
            skip = left_alone(g)
            if rec.status == "not-run" and skip is not None:
                # No record at all (a run killed before its report): skips are not journaled.
                message += f"; execute leaves it alone ({skip}): run execute again to finish the run"
            self.add("anomaly", "execute", message)
            return _GroupResult(self.findings, "not_executed")
        if self._read_errors():
            return self.result("anomaly")
        if g.action is Action.RESOLVE:
            return self._resolve()
        if g.action is Action.KEEP_ALL:
            return self._keep_all()
        return self._stack()

    def _skipped(self, reason: str) -> _GroupResult:
        """A group execute's records call skipped: a note only when it was on purpose, as this
        plan asks (see ``skip_kind``); else not executed, an anomaly that says what to do."""
        kind = skip_kind(self.g, reason)
        shown = reason or "no reason given"
        if kind == "on_purpose":
            why = left_alone(self.g)
            also = f"; this plan leaves it alone too ({why})" if why is not None and why != reason else ""
            self.add("note", "execute", f"skipped by execute: {shown}{also}")
            return _GroupResult(self.findings, "skipped")
        if kind == "interrupted":
            what = "" if reason == "not reached" else reason.removesuffix(_INTERRUPTED_END).rstrip("; ")
            what = what or "it did not reach this group"
            message = (f"not executed: the run of execute stopped before this group was done"
                       f" ({what}): run execute again to finish")
        elif kind == "plan_changed":
            message = (f"not executed: execute skipped it ({shown}), but this version of the plan"
                       " asks for it: run execute again to finish")
        else:
            message = f"not executed: execute left it alone: {shown}"
        self.add("anomaly", "execute", message)
        return _GroupResult(self.findings, "not_executed")

    def _read_errors(self) -> bool:
        bad = False
        for aid, a in self.assets.items():
            if isinstance(a, ImmichError):
                self.add("anomaly", "read", f"{_name(self.g, aid)}: could not be read: {a}", aid)
                bad = True
        return bad

    def _get(self, asset_id: str) -> Asset | None:
        a = self.assets.get(asset_id)
        return a if isinstance(a, Asset) else None

    # ------------------------------------------------------------------ kinds of group

    def _not_executed(self, why: str) -> _GroupResult:
        if self.record is not None:
            # The backup says it was done, yet the server shows nothing: that is not "not run".
            self.add("anomaly", "execute", f"the backup says this group was done, but {why}")
            return _GroupResult(self.findings, "anomaly")
        message = f"not executed: {why}"
        skip = left_alone(self.g)
        if skip is not None:
            # Execute leaves such a group alone on purpose; only its records can say that it ran
            # and skipped it (the plan alone cannot tell a skipped group from a run never made,
            # nor a group changed since by another run or by hand): still an anomaly here.
            message += f"; execute leaves it alone ({skip}): verify -b BACKUP_DIR reads what it did"
        self.add("anomaly", "execute", message)
        return _GroupResult(self.findings, "not_executed")

    def _check_kept(self) -> None:
        for aid in self.g.keep:
            a = self._get(aid)
            role = "winner" if aid == self.g.winner else "kept copy"
            name = _name(self.g, aid)
            if a is None:
                self.add("anomaly", "present", f"{role} {name} is gone from the server", aid, "present", "gone")
            elif a.isTrashed:
                self.add("anomaly", "present", f"{role} {name} is in the trash", aid, "present", "trashed")

    def _resolve(self) -> _GroupResult:
        g = self.g
        losers = [(aid, self.assets.get(aid)) for aid in g.losers]
        removed = [aid for aid, a in losers if a is None or _trashed(a)]
        if losers and not removed and self.record is None:
            self._check_kept()
            return self._not_executed("no loser is in the trash")
        self._check_kept()
        force = self.record.force if self.record is not None else None
        for aid, a in losers:
            name = _name(g, aid)
            back = self.restored.get(aid)
            copy = self.assets.get(back.new_id) if back is not None and back.new_id else None
            if a is None and isinstance(copy, Asset) and not copy.isTrashed and back is not None:
                self.add(
                    "anomaly", "loser", f"loser {name} is back in the library: {back.describe()}",
                    aid, "trashed" if not force else "gone", "restored",
                )
            elif a is None:
                if force is False:
                    self.add(
                        "note", "loser", f"loser {name} was moved to the trash and has since been"
                        " purged from it (restore can re-upload it from the backup)", aid, "trashed", "gone",
                    )
            elif isinstance(a, Asset | InTrash) and not _trashed(a):
                why = back.describe() if back is not None else "restored since, or never trashed"
                self.add(
                    "anomaly", "loser", f"loser {name} is not in the trash ({why})",
                    aid, "trashed" if not force else "gone", "present",
                )
            elif isinstance(a, Asset | InTrash) and force:
                # Force-deleted but not purged yet: Immich shows it as trashed until the purge job.
                self.add("note", "loser", f"loser {name} is deleted but not yet purged by Immich", aid, "gone", "trashed")
        w = self._get(g.winner)
        if w is not None:
            self._consolidated(w)
        return self.result()

    def _keep_all(self) -> _GroupResult:
        self._check_kept()
        present = [a for aid in self.g.keep if (a := self._get(aid)) is not None]
        still = [a for a in present if a.duplicateId == self.g.duplicate_id]
        if present and len(still) == len(present) and self.record is None:
            return self._not_executed("the group is still a duplicate group on the server")
        for a in still:
            self.add(
                "anomaly", "dismissed",
                f"{_name(self.g, a.id)} is still in duplicate group {self.g.duplicate_id}",
                a.id, "not a duplicate", "still grouped",
            )
        return self.result()

    def _stack(self) -> _GroupResult:
        self._check_kept()
        present = [a for aid in self.g.keep if (a := self._get(aid)) is not None]
        if present and all(a.stack is None for a in present) and self.record is None:
            return self._not_executed("the assets are not stacked")
        w = self._get(self.g.winner)
        stack_id = w.stack.id if w is not None and w.stack is not None else None
        if w is not None:
            primary = w.stack.primaryAssetId if w.stack is not None else None
            if primary != self.g.winner:
                self.add(
                    "anomaly", "stack", f"the winner {_name(self.g, w.id)} is not the primary of a stack",
                    w.id, self.g.winner, primary or "not stacked",
                )
        for a in present:
            if a.id == self.g.winner:
                continue
            have = a.stack.id if a.stack is not None else None
            if have is None or have != stack_id:
                self.add(
                    "anomaly", "stack", f"{_name(self.g, a.id)} is not in the winner's stack",
                    a.id, stack_id or "stacked", have or "not stacked",
                )
        return self.result()

    # ------------------------------------------------------------------ consolidated values

    def _consolidated(self, w: Asset) -> None:
        c = self.g.consolidated
        e = w.exif
        wid = w.id
        tol = self.plan.settings.gps_tolerance_m
        kept = self.record.winner_kept if self.record is not None else WinnerKept()

        if c.latitude is not None and c.longitude is not None:
            want = f"{c.latitude:.6f}, {c.longitude:.6f}"
            if e.latitude is None or e.longitude is None:
                if kept.gps is not None:
                    self._kept_gps(w, kept.gps, want)
                else:
                    self.add("anomaly", "gps", "GPS position not carried to the winner", wid, want, "none")
            else:
                have = f"{e.latitude:.6f}, {e.longitude:.6f}"
                d = haversine_m(c.latitude, c.longitude, e.latitude, e.longitude)
                if d > tol and kept.gps is not None:
                    self._kept_gps(w, kept.gps, want)
                elif d > tol:
                    self.add(
                        "anomaly", "gps",
                        f"GPS position is {format_distance(d)} from the planned one (tolerance {format_distance(tol)})",
                        wid, want, have,
                    )

        if c.date_time_original is not None:
            sev, msg = compare_date(c.date_time_original, e, self.plan.settings.time_tolerance_s)
            if sev == "anomaly" and kept.date is not None:
                self._kept_date(w, kept.date, c.date_time_original)
            elif sev != "ok":
                self.add(sev, "date", msg, wid, c.date_time_original, describe_exif_date(e))

        if c.description is not None:
            have_d = (e.description or "").strip()
            if have_d != c.description.strip() and kept.description is not None:
                self._kept_description(w, kept.description, c.description)
            elif have_d != c.description.strip():
                self.add("anomaly", "description", "description differs from the plan", wid, c.description, e.description or "")

        if w.isFavorite != c.is_favorite:
            self.add(
                "anomaly", "favorite",
                "favorite " + ("not carried to the winner" if c.is_favorite else "set although the plan says not"),
                wid, c.is_favorite, w.isFavorite,
            )

        have_r = e.rating if e.rating not in (0,) else None
        if have_r != c.rating:
            self.add("anomaly", "rating", "rating differs from the plan", wid, c.rating, have_r)

        if w.visibility.value != c.visibility:
            self.add("anomaly", "visibility", "visibility differs from the plan", wid, c.visibility, w.visibility.value)

        if c.album_ids and self.membership is not None:
            have_albums = {a.id for a in self.membership.get(wid, [])}
            names = {al.id: al.name for a in self.g.assets for al in a.albums}
            for album_id in c.album_ids:
                if album_id not in have_albums:
                    self.add(
                        "anomaly", "album",
                        f"the winner is not in album {names.get(album_id) or album_id!r}",
                        wid, album_id, "missing",
                    )

        if c.tag_ids:
            have_tags = {t.id for t in w.tags}
            values = {t.id: t.value for a in self.g.assets for t in a.tags}
            for tag_id in c.tag_ids:
                if tag_id not in have_tags:
                    self.add(
                        "anomaly", "tag", f"the winner lacks the tag {values.get(tag_id) or tag_id!r}",
                        wid, tag_id, "missing",
                    )

        if c.live_photo_video_id is not None and w.livePhotoVideoId != c.live_photo_video_id:
            self.add(
                "anomaly", "live_photo", "the live-photo video is not linked to the winner",
                wid, c.live_photo_video_id, w.livePhotoVideoId or "none",
            )

        if c.camera_lost:
            self.add(
                "note", "camera",
                f"camera {c.camera_lost} exists only on a loser: Immich cannot write make/model",
                wid, c.camera_lost, "",
            )


    # ------------------------------------------------------------------ values execute kept

    _KEPT = "kept the winner's own edit made after analyze (execute did not overwrite it)"
    _AGAIN = "changed again after execute kept the winner's own edit"

    def _kept_gps(self, w: Asset, kept: tuple[float | None, float | None], want: str) -> None:
        """The plan's GPS is not on the winner, but execute recorded keeping the winner's own."""
        e = w.exif
        tol = self.plan.settings.gps_tolerance_m
        have = f"{e.latitude:.6f}, {e.longitude:.6f}" if e.latitude is not None and e.longitude is not None else "none"
        klat, klon = kept
        if klat is None or klon is None:
            was, same = "none", have == "none"
        else:
            was = f"{klat:.6f}, {klon:.6f}"
            same = (
                e.latitude is not None
                and e.longitude is not None
                and haversine_m(klat, klon, e.latitude, e.longitude) <= tol
            )
        if same:
            self.add("note", "gps", f"{self._KEPT}; the plan had {want}", w.id, was, have)
        else:
            self.add(
                "anomaly", "gps", f"GPS {self._AGAIN}: now {have}, execute kept {was}, the plan says {want}",
                w.id, was, have,
            )

    def _kept_date(self, w: Asset, kept: tuple[str | None, str | None], want: str) -> None:
        """The plan's date is not on the winner, but execute recorded keeping the winner's own."""
        e = w.exif
        tol = self.plan.settings.time_tolerance_s
        actual = describe_exif_date(e)
        when, zone = kept
        instant = _parse_iso(when) if when is not None else None
        extra = ""
        if instant is None:
            was, same = "no capture date", e.dateTimeOriginal is None
        else:
            off = offset_minutes(zone, instant)
            if off is None:
                was = instant.strftime("%Y-%m-%dT%H:%M:%SZ") + f" (zone {zone or 'unknown'})"
                same = (
                    e.dateTimeOriginal is not None
                    and abs((_utc(e.dateTimeOriginal) - instant).total_seconds()) <= max(tol, 1.0)
                )
            else:
                was = _local(instant, off) + format_offset(off)
                sev, msg = compare_date(was, e, tol)
                same = sev != "anomaly"
                extra = f"; {msg}" if sev == "note" else ""
        if same:
            self.add("note", "date", f"{self._KEPT}; the plan had {want}{extra}", w.id, was, actual)
        else:
            self.add(
                "anomaly", "date", f"date {self._AGAIN}: now {actual}, execute kept {was}, the plan says {want}",
                w.id, was, actual,
            )

    def _kept_description(self, w: Asset, kept: str, want: str) -> None:
        """The plan's description is not on the winner, but execute recorded keeping the winner's own."""
        have = w.exif.description or ""
        if have.strip() == kept.strip():
            self.add("note", "description", f"{self._KEPT}; the plan had {want!r}", w.id, kept, have)
        else:
            self.add(
                "anomaly", "description",
                f"description {self._AGAIN}: now {have!r}, execute kept {kept!r}, the plan says {want!r}",
                w.id, kept, have,
            )


def _text(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


# --------------------------------------------------------------------------- the run


def groups_to_check(plan: Plan) -> Iterator[GroupPlan]:
    for g in plan.groups:
        if g.action is not Action.SKIP:
            yield g


def _needs_albums(groups: Iterable[GroupPlan]) -> bool:
    return any(g.action is Action.RESOLVE and g.consolidated.album_ids for g in groups)


async def verify(
    client: ImmichClient,
    plan: Plan,
    report: Reporter = ignore,
    backup_dir: Path | None = None,
) -> VerifyReport:
    """Check the server against the plan (and, with ``backup_dir``, what execute recorded).

    Raises WrongServer (a ValueError) for a plan of another server or user, and the client's
    errors for authentication, missing permissions or an unreachable server.
    """
    await check_binding(client, plan.server_url, plan.user_id, "this plan")
    records: dict[str, GroupRecord] | None = None
    restored: dict[str, Restored] = {}
    if backup_dir is not None:
        records = execution_records(Path(backup_dir), plan, report)
        restored = restored_by_restore(Path(backup_dir))

    out = VerifyReport()
    out.groups_skipped_by_plan = sum(1 for g in plan.groups if g.action is Action.SKIP)
    groups = list(groups_to_check(plan))
    total = len(groups)
    report(Event("verify", f"checking {total} groups", done=0, total=total))

    membership: dict[str, list[PlanAlbum]] | None = None
    if _needs_albums(groups):
        membership = await album_membership(client, report)

    skipped = {k for k, rec in (records or {}).items() if rec.status == "skipped"}
    in_bulk = await losers_in_bulk(client, [g for g in groups if g.duplicate_id not in skipped], report)

    results: dict[int, _GroupResult] = {}
    done = 0
    it = iter(enumerate(groups))

    async def worker() -> None:
        nonlocal done
        for idx, g in it:
            rec = records.get(g.duplicate_id) if records is not None else None
            if records is not None and rec is None:
                rec = GroupRecord(status="not-run", reason="the backup directory has no record of it")
            ids = list(dict.fromkeys([*g.keep, *g.losers]))
            assets: dict[str, Asset | None | ImmichError | InTrash] = {}
            if rec is None or rec.status != "skipped":
                known = {i: in_bulk[i] for i in g.losers if i in in_bulk}
                assets.update(await read_assets(client, [i for i in ids if i not in known]))
                assets.update(known)
                # A loser gone from the server that a restore re-uploaded: is that copy back?
                copies = [c for i in g.losers if assets.get(i) is None and (back := restored.get(i))
                          is not None and (c := back.new_id) is not None and c not in assets]
                assets.update(await read_assets(client, copies))
            results[idx] = _GroupCheck(plan, g, assets, membership, rec, restored).run()
            done += 1
            report(Event("verify", "", done=done, total=total, group_id=g.duplicate_id))

    workers = max(1, client.concurrency)
    await asyncio.gather(*(worker() for _ in range(min(workers, max(total, 1)))))

    for idx in range(total):
        r = results[idx]
        out.findings.extend(r.findings)
        out.groups_checked += 1
        if r.state == "ok":
            out.groups_ok += 1
        elif r.state == "anomaly":
            out.groups_with_anomalies += 1
        elif r.state == "not_executed":
            out.groups_not_executed += 1
        else:
            out.groups_skipped_by_execute += 1
    anomalies = len(out.anomalies)
    report(
        Event(
            "verify",
            f"{out.groups_ok} of {out.groups_checked} groups as planned; "
            f"{anomalies} anomal{'y' if anomalies == 1 else 'ies'}",
            done=total,
            total=total,
            level="warning" if anomalies else "info",
        )
    )
    return out


__all__ = [
    "VERIFY_PERMISSIONS",
    "Finding",
    "GroupRecord",
    "InTrash",
    "Restored",
    "VerifyReport",
    "WinnerKept",
    "FATAL",
    "WrongServer",
    "check_binding",
    "compare_date",
    "is_named_zone",
    "losers_in_bulk",
    "parse_offset_datetime",
    "read_asset",
    "open_backup_of",
    "read_assets",
    "restored_by_restore",
    "same_server",
    "skip_kind",
    "verify",
]
