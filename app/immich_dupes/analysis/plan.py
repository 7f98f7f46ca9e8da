"""The plan file: the contract between analyze, review, execute and verify.

Versioned, validated on load (a hand-edited plan that is invalid is refused with the path of
the bad field), written atomically. Keeps the original tool's keys (``total_groups``,
``total_assets``, ``needs_review_count``, ``groups[].duplicate_id``, ``.winner``, ``.losers[]``,
``.conflicts[] {type, values}``, ``.needs_review``) so its ``jq`` recipes still work.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Literal[1] = 1
MAX_DESCRIPTION = 65_535
"""Longer than any caption a person writes; a 10 MB 'description' is a broken file, not a caption."""

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
Uuid = Annotated[str, StringConstraints(pattern=UUID_PATTERN)]
Description = Annotated[str, StringConstraints(max_length=MAX_DESCRIPTION)]
ShortText = Annotated[str, StringConstraints(max_length=4096)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Action(StrEnum):
    RESOLVE = "resolve"
    """Keep ``keep``, trash ``trash``, consolidate metadata onto the winner."""
    SKIP = "skip"
    """Leave the group alone for now."""
    KEEP_ALL = "keep_all"
    """Not duplicates: dismiss the group, keep every asset."""
    STACK = "stack"
    """Keep every file, stacked with the winner as primary."""


class ConflictType(StrEnum):
    GPS = "gps"
    CAPTURE_TIME = "capture_time"
    TIMEZONE = "timezone"
    DESCRIPTION = "description"
    CAMERA = "camera"


BLOCKING_CONFLICTS = frozenset(
    {ConflictType.GPS, ConflictType.CAPTURE_TIME, ConflictType.TIMEZONE, ConflictType.DESCRIPTION}
)


class ReviewReason(StrEnum):
    CONFLICT = "conflict"
    NO_DIMENSIONS = "no_dimensions"
    MIXED_TYPES = "mixed_types"
    EXTERNAL_LIBRARY = "external_library"
    LIVE_PHOTO = "live_photo"
    SAME_ORIGINAL_PATH = "same_original_path"


class PlanTag(_Strict):
    id: Uuid
    value: ShortText = ""


class PlanAlbum(_Strict):
    id: Uuid
    name: ShortText = ""


class PlanAsset(_Strict):
    """What a reviewer needs to decide offline, and what execute re-checks against."""

    id: Uuid
    file_name: ShortText
    type: Literal["IMAGE", "VIDEO", "AUDIO", "OTHER"] = "IMAGE"
    mime: ShortText | None = None
    width: int | None = Field(default=None, ge=0)
    height: int | None = Field(default=None, ge=0)
    file_size: int | None = Field(default=None, ge=0)
    checksum: ShortText = ""
    original_path: ShortText | None = None
    library_id: Uuid | None = None
    is_offline: bool = False
    live_photo_video_id: Uuid | None = None
    captured_at: datetime | None = None
    """The capture instant (UTC), ``exifInfo.dateTimeOriginal``."""
    local_time: datetime | None = None
    """Wall-clock time where it was taken (Immich's ``localDateTime``, naive)."""
    time_zone: ShortText | None = None
    utc_offset_minutes: int | None = Field(default=None, ge=-18 * 60, le=18 * 60)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    city: ShortText | None = None
    state: ShortText | None = None
    country: ShortText | None = None
    description: Description = ""
    make: ShortText | None = None
    model: ShortText | None = None
    lens: ShortText | None = None
    is_favorite: bool = False
    rating: int | None = Field(default=None, ge=-1, le=5)
    visibility: Literal["timeline", "archive", "hidden", "locked"] = "timeline"
    tags: list[PlanTag] = Field(default_factory=list)
    albums: list[PlanAlbum] = Field(default_factory=list)
    updated_at: datetime | None = None
    duration_ms: int | None = None

    @field_validator("latitude", "longitude")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @property
    def is_external(self) -> bool:
        return self.library_id is not None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    @property
    def has_gps(self) -> bool:
        return self.latitude is not None and self.longitude is not None

    @property
    def format(self) -> str:
        if self.mime and "/" in self.mime:
            return self.mime.split("/", 1)[1].upper()
        return Path(self.file_name).suffix.lstrip(".").upper()


class Conflict(_Strict):
    type: ConflictType
    values: dict[str, str]
    """asset id → the value as shown to a person."""
    blocking: bool = True
    detail: ShortText = ""


class Sources(_Strict):
    """Which asset supplies each field that needs a choice (None: leave the winner's as it is)."""

    gps: Uuid | None = None
    datetime: Uuid | None = None
    description: Uuid | None = None


class Consolidated(_Strict):
    """What the winner should hold after execute. Verify compares the server against this."""

    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    date_time_original: ShortText | None = None
    """Local time with an explicit offset, e.g. ``2019-07-04T18:30:00+02:00``; None: unchanged."""
    description: Description | None = None
    is_favorite: bool = False
    rating: int | None = Field(default=None, ge=-1, le=5)
    visibility: Literal["timeline", "archive"] = "timeline"
    album_ids: list[Uuid] = Field(default_factory=list)
    tag_ids: list[Uuid] = Field(default_factory=list)
    live_photo_video_id: Uuid | None = None
    camera_lost: ShortText | None = None
    """Make/model only a loser has: Immich cannot write it, so it is reported."""

    @field_validator("latitude", "longitude")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


class GroupPlan(_Strict):
    duplicate_id: Uuid
    assets: list[PlanAsset] = Field(min_length=2)
    winner: Uuid
    losers: list[Uuid]
    """The assets that will be trashed (the original tool's key); equal to ``trash``."""
    keep: list[Uuid]
    """Assets kept: the winner, plus any a person chose to keep too."""
    action: Action = Action.RESOLVE
    winner_reason: ShortText = ""
    conflicts: list[Conflict] = Field(default_factory=list)
    review_reasons: list[ReviewReason] = Field(default_factory=list)
    needs_review: bool = False
    reviewed: bool = False
    sources: Sources = Field(default_factory=Sources)
    consolidated: Consolidated = Field(default_factory=Consolidated)
    allow_external_delete: bool = False
    """Trash external-library losers too: only ever set by a person in review."""
    bytes_freed: int = Field(default=0, ge=0)
    """The losers' bytes execute would free as the plan stands: 0 when it removes none (an action
    other than resolve, or an external-library loser not allowed: ``decide.held_for_external``).
    A plan written by an earlier build counted those losers too; an edit of the group recounts."""
    note: ShortText = ""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    @model_validator(mode="after")
    def _consistent(self) -> GroupPlan:
        ids = [a.id for a in self.assets]
        if len(set(ids)) != len(ids):
            raise ValueError("an asset is listed twice in this group")
        members = set(ids)
        if self.winner not in members:
            raise ValueError(f"winner {self.winner} is not an asset of this group")
        if self.winner in self.losers:
            raise ValueError(f"winner {self.winner} is also a loser")
        if self.winner not in self.keep:
            raise ValueError("the winner must be in keep")
        for name, lst in (("losers", self.losers), ("keep", self.keep)):
            for aid in lst:
                if aid not in members:
                    raise ValueError(f"{name} names {aid}, which is not an asset of this group")
            if len(set(lst)) != len(lst):
                raise ValueError(f"{name} lists an asset twice")
        if set(self.keep) & set(self.losers):
            raise ValueError("an asset is both kept and trashed")
        if set(self.keep) | set(self.losers) != members:
            raise ValueError("every asset must be either kept or a loser")
        for field in ("gps", "datetime", "description"):
            src = getattr(self.sources, field)
            if src is not None and src not in members:
                raise ValueError(f"sources.{field} names {src}, which is not in this group")
        return self

    def asset(self, asset_id: str) -> PlanAsset:
        for a in self.assets:
            if a.id == asset_id:
                return a
        raise KeyError(asset_id)

    @property
    def winner_asset(self) -> PlanAsset:
        return self.asset(self.winner)

    @property
    def loser_assets(self) -> list[PlanAsset]:
        return [self.asset(i) for i in self.losers]

    @property
    def decided(self) -> bool:
        """A person reviewed it, or it needs no review."""
        return self.reviewed or not self.needs_review


class PlanSettings(_Strict):
    gps_tolerance_m: float = Field(default=100.0, gt=0)
    time_tolerance_s: float = Field(default=2.0, ge=0)


class Plan(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    tool_version: ShortText = ""
    created_at: datetime
    server_url: ShortText
    server_version: ShortText = ""
    user_id: Uuid
    user_email: ShortText = ""
    settings: PlanSettings = Field(default_factory=PlanSettings)
    total_groups: int = Field(ge=0)
    total_assets: int = Field(ge=0)
    needs_review_count: int = Field(ge=0)
    groups: list[GroupPlan]

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    @model_validator(mode="after")
    def _unique(self) -> Plan:
        check_unique(self.groups)
        return self

    @classmethod
    def of_groups(cls, groups: list[GroupPlan], **header: Any) -> Plan:
        """A plan of groups fresh from ``decide.build_group``: validated when built and not
        changed since. The header is validated and the groups checked against each other, but
        each group's own checks (``GroupPlan._consistent``) are not run a second time, as
        ``Plan(groups=...)`` would (a pass over 20,000 groups). Not for groups edited after
        they were built: assignments to a ``GroupPlan`` are not validated."""
        plan = cls(**header, total_groups=0, total_assets=0, needs_review_count=0, groups=[])
        check_unique(groups)
        plan.groups = groups
        plan.refresh_counts()
        return plan

    def refresh_counts(self) -> None:
        """Recompute the summary keys after edits (review)."""
        self.total_groups = len(self.groups)
        self.total_assets = sum(len(g.assets) for g in self.groups)
        self.needs_review_count = sum(1 for g in self.groups if g.needs_review and not g.reviewed)

    def group(self, duplicate_id: str) -> GroupPlan:
        for g in self.groups:
            if g.duplicate_id == duplicate_id:
                return g
        raise KeyError(duplicate_id)


def check_unique(groups: list[GroupPlan]) -> None:
    """A group appears once, and an asset belongs to one group."""
    seen_groups: set[str] = set()
    seen_assets: dict[str, str] = {}
    for i, g in enumerate(groups):
        if g.duplicate_id in seen_groups:
            raise ValueError(f"groups[{i}]: duplicate_id {g.duplicate_id} appears twice")
        seen_groups.add(g.duplicate_id)
        for a in g.assets:
            other = seen_assets.get(a.id)
            if other is not None:
                raise ValueError(
                    f"groups[{i}]: asset {a.id} is also in group {other}; an asset belongs to one group"
                )
            seen_assets[a.id] = g.duplicate_id


class PlanError(ValueError):
    """A plan file that cannot be used; the message names the file and the bad field."""


def _loc(loc: tuple[Any, ...], under: str = "") -> str:
    out = under
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_plan(text: str | bytes, source: str = "plan") -> Plan:
    """Validate a plan; raise PlanError with one clear line naming the bad field.

    A good plan goes straight from JSON to the models (no intermediate tree of dicts) with the
    cyclic GC paused (``many_new_objects``): 80,000 groups load in about 3 s instead of 13.
    Anything wrong takes the path below, which says what and where; the fast path only ever
    accepts less than it (same models, and schema_version must be written, not defaulted).
    """
    with many_new_objects():
        try:
            plan = Plan.model_validate_json(text)
        except Exception:  # any doubt: the explaining path decides
            pass
        else:
            if "schema_version" in plan.model_fields_set:
                return plan
        return _parse_plan_explained(text, source)


FREEZE_AFTER = 200_000
"""New container objects (as the cyclic GC counts them) above which ``many_new_objects``
freezes what was built."""


@contextlib.contextmanager
def many_new_objects() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large structure without cycles is built.

    Plans of tens of thousands of groups are ~10^6 small objects. With the collector on, it
    walks them again and again while they are made (it doubled analyze's time); turned back
    on, its next pass walks all of them at once (0.2 s at 20,000 groups) and every later full
    pass again. So a big build is also frozen (``gc.freeze``): moved out of the collector's
    sight. Reference counting still frees it when it is dropped; only garbage with cycles
    made during the build would be kept, and a small build is not frozen at all.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > FREEZE_AFTER:
            gc.freeze()
        if enabled:
            gc.enable()


def _parse_plan_explained(text: str | bytes, source: str) -> Plan:
    try:
        raw = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PlanError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise PlanError(f"{source}: not valid JSON (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{source}: a plan is a JSON object, found {type(raw).__name__}")
    version = raw.get("schema_version")
    if version != SCHEMA_VERSION:
        raise PlanError(
            f"{source}: schema_version {version!r} is not supported (this immich-dupes reads {SCHEMA_VERSION})"
        )
    try:
        return Plan.model_validate(raw)
    except ValidationError as e:
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise PlanError(f"{source}: {first_problem(e)}{more}") from None


def first_problem(e: ValidationError, skip: int = 0, under: str = "") -> str:
    """The first error of ``e`` as one line, ``where: what`` (``groups[3].winner: …``).

    ``skip`` drops that many leading parts of the location (a list index the caller names
    otherwise); ``under`` is the path of what was validated, when that was a part."""
    err = e.errors()[0]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{_loc(tuple(err.get('loc', ()))[skip:], under)}: {msg}"


def load_plan(path: str | os.PathLike[str]) -> Plan:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise PlanError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise PlanError(f"{p}: is a directory, not a plan file") from None
    except OSError as e:
        raise PlanError(f"{p}: cannot read ({e.strerror})") from None
    return parse_plan(data, str(p))


def atomic_write_chunks(
    path: str | os.PathLike[str], chunks: Iterable[str | bytes], mode: int = 0o600
) -> None:
    """Write via a temp file in the same folder, fsync, rename: never a half-written file.

    Text chunks are written as UTF-8, bytes as they are."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(p.parent, ignore_errors=False)


def fsync_dir(path: Path, *, ignore_errors: bool = True) -> None:
    """Make a rename or a new file in ``path`` durable (fsync of the directory).

    A directory that cannot be opened (some file systems) is skipped; an fsync that fails is
    ignored unless ``ignore_errors`` is False.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        if not ignore_errors:
            raise
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str, mode: int = 0o600) -> None:
    atomic_write_chunks(path, [text], mode)


_ASSETS: TypeAdapter[list[PlanAsset]] = TypeAdapter(list[PlanAsset])
GROUPS_PER_CHUNK = 500


def group_json(g: GroupPlan) -> bytes:
    """A group as the plan file holds it: every group key, and each asset without the fields
    that are at their default (``false``, ``""``, ``[]``, ``null``, ``"IMAGE"``, ``"timeline"``).

    Loading fills them in again, to equal models: the hashes that bind a backup to a plan
    (``engine.execute.plan_sha256``/``group_sha256``) are of the models, so they do not change.
    A plan is a fifth to a quarter smaller this way, and loads faster into less memory:
    pydantic keeps per record the set of fields the file gave (2.2 KB with every field; about
    110 MB less at 20,000 groups). The group keys the original tool's ``jq`` recipes use are
    always written.
    """
    rest = g.model_dump_json(exclude={"assets"}).encode("utf-8")
    assets = _ASSETS.dump_json(g.assets, exclude_defaults=True)
    head = b'{"duplicate_id":' + json.dumps(g.duplicate_id).encode("utf-8")
    if rest.startswith(head):  # always: duplicate_id is the first field; assets after it
        return head + b',"assets":' + assets + rest[len(head) :]
    return b'{"assets":' + assets + b"," + rest[1:]


def _plan_chunks(plan: Plan) -> Iterator[bytes]:
    # ``groups`` is the last field: the header is the plan without it, then a few hundred
    # groups at a time, so a plan of tens of thousands of groups is never one string in memory.
    head = plan.model_dump_json(exclude={"groups"}).encode("utf-8")
    yield head[:-1] + (b',"groups":[' if head != b"{}" else b'{"groups":[')
    groups = plan.groups
    for start in range(0, len(groups), GROUPS_PER_CHUNK):
        part = b",".join(group_json(g) for g in groups[start : start + GROUPS_PER_CHUNK])
        yield (b"," if start else b"") + part
    yield b"]}"


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write the plan atomically (compact JSON: ``jq .`` shows it indented)."""
    plan.refresh_counts()
    atomic_write_chunks(path, _plan_chunks(plan))


def plan_json_schema() -> dict[str, Any]:
    return Plan.model_json_schema()
