"""Winner choice, conflicts, consolidation and the review edits of a group. Pure functions.

Winner (DESIGN §5): most pixels, then larger file, then richer metadata, then a stable order
that does not depend on the server's list order. Conflicts (§6) are real disagreements between
copies that both have a value. Consolidation (§7) says what the winner should hold afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

from pydantic import TypeAdapter, ValidationError

from immich_dupes.analysis.geo import format_distance, haversine_m
from immich_dupes.analysis.plan import (
    BLOCKING_CONFLICTS,
    Action,
    Conflict,
    ConflictType,
    Consolidated,
    GroupPlan,
    PlanAsset,
    PlanSettings,
    ReviewReason,
    Sources,
    first_problem,
)
from immich_dupes.analysis.timezones import format_offset, local_iso_with_offset, offset_minutes
from immich_dupes.immich.models import duration_ms, visibility_of

# --------------------------------------------------------------------------- snapshot


class AssetDataError(ValueError):
    """The server described an asset in a way the plan cannot hold (names the asset and field)."""


_PLAN_ASSETS: TypeAdapter[list[PlanAsset]] = TypeAdapter(list[PlanAsset])
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
_INT: TypeAdapter[int | None] = TypeAdapter(int | None)
_NOTHING: Mapping[str, Any] = {}
_IMMICH_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?")
"""The shape Immich writes (``2019-07-04T18:30:00.000Z``), which Python and pydantic read alike."""


def _datetime(v: Any, field: str) -> datetime | None:
    """A date-time as the server writes it; anything else as pydantic (and so the ``Asset``
    model that execute reads the server with) reads it, or refuses it."""
    if v is None:
        return None
    if isinstance(v, str) and _IMMICH_DATETIME.fullmatch(v):
        try:
            return datetime.fromisoformat(v)
        except ValueError:  # the shape, not a date (month 13): pydantic says what is wrong
            pass
    try:
        return _DATETIME.validate_python(v)
    except ValidationError as e:
        raise AssetDataError(first_problem(e, under=field)) from None


def _int(v: Any, field: str) -> int | None:
    """A whole number as pydantic reads one (``"640"`` and ``640.0`` are 640), before it is
    tested: the string ``"0"`` is no size and no rating."""
    if v is None or type(v) is int:
        return v
    try:
        return _INT.validate_python(v)
    except ValidationError as e:
        raise AssetDataError(first_problem(e, under=field)) from None


def plan_asset_fields(asset: Mapping[str, Any]) -> dict[str, Any]:
    """The per-asset record a plan carries, from an ``AssetResponseDto`` as the server sent it.

    Works on the JSON itself, for any supported version (the few fields that changed shape go
    through the same helpers as the ``Asset`` model): analyze reads tens of thousands of assets,
    and a typed ``Asset`` for each only to copy it into a ``PlanAsset`` doubled its time.
    What the ``Asset`` model refuses among the fields read here is refused too (a null where it
    wants a value is passed on for ``plan_assets``' validation to refuse); fields not read here
    are not checked, and execute's re-check, which reads the group through ``Asset``, refuses
    a group it cannot read.
    """
    e = asset.get("exifInfo")
    if e is None:
        e = _NOTHING
    elif not isinstance(e, Mapping):
        raise AssetDataError("exifInfo: not a JSON object")
    w = _int(e.get("exifImageWidth"), "exifInfo.exifImageWidth")
    h = _int(e.get("exifImageHeight"), "exifInfo.exifImageHeight")
    if not (w and h):
        # Pixels as EXIF reports them, else as the asset row has them (≥2.5).
        w, h = _int(asset.get("width"), "width"), _int(asset.get("height"), "height")
        if not (w and h):
            w = h = None
    captured = _datetime(e.get("dateTimeOriginal"), "exifInfo.dateTimeOriginal")
    if captured is not None and captured.tzinfo is None:
        captured = captured.replace(tzinfo=UTC)
    local = _datetime(asset.get("localDateTime"), "localDateTime")
    zone = e.get("timeZone")
    rating = _int(e.get("rating"), "exifInfo.rating")
    tags = asset.get("tags")
    if tags is None:
        tags = []
    if not isinstance(tags, list) or not all(isinstance(t, Mapping) for t in tags):
        raise AssetDataError("tags: not a list of JSON objects")
    asset_id = asset.get("id")
    name = asset.get("originalFileName", "")
    description = e.get("description")
    return {
        "id": asset_id,
        "file_name": asset_id if name == "" else name,
        "type": asset.get("type", "IMAGE"),
        "mime": asset.get("originalMimeType"),
        "width": w,
        "height": h,
        "file_size": e.get("fileSizeInByte"),
        "checksum": asset.get("checksum", ""),
        "original_path": asset.get("originalPath"),
        "library_id": asset.get("libraryId"),
        "is_offline": asset.get("isOffline", False),
        "live_photo_video_id": asset.get("livePhotoVideoId"),
        "captured_at": captured,
        "local_time": local.replace(tzinfo=None) if local is not None else None,
        "time_zone": zone,
        "utc_offset_minutes": offset_minutes(zone, captured) if isinstance(zone, str) else None,
        "latitude": e.get("latitude"),
        "longitude": e.get("longitude"),
        "city": e.get("city"),
        "state": e.get("state"),
        "country": e.get("country"),
        "description": "" if description is None else description,
        "make": e.get("make"),
        "model": e.get("model"),
        "lens": e.get("lensModel"),
        "is_favorite": asset.get("isFavorite", False),
        "rating": None if rating == 0 else rating,
        "visibility": visibility_of(asset),
        "tags": [_tag(t, i) for i, t in enumerate(tags)],
        "updated_at": asset.get("updatedAt"),
        "duration_ms": duration_ms(asset.get("duration")),
    }


def _tag(t: Mapping[str, Any], i: int) -> dict[str, Any]:
    value, name = t.get("value", ""), t.get("name", "")
    if value is None or name is None:
        raise AssetDataError(f"tags[{i}]: a tag's value or name is null")
    return {"id": t.get("id"), "value": name if value == "" else value}


_DEFAULTS = {name: f.get_default(call_default_factory=True) for name, f in PlanAsset.model_fields.items()}
"""Each optional field's default (a required field maps to PydanticUndefined, equal to nothing)."""


def plan_assets(assets: Sequence[Mapping[str, Any]]) -> list[PlanAsset]:
    """``plan_asset_fields`` of each, validated in one pass; AssetDataError names what is wrong.

    Fields at their default are left for the model to fill in: pydantic keeps, per record, the
    set of the fields it was given, and that set was a third of a record's memory (1.3 KB of
    3.4 KB; 230 MB at 80,000 groups). The records are the same either way.
    """
    fields: list[dict[str, Any]] = []
    for a in assets:
        try:
            record = plan_asset_fields(a)
        except (ValueError, OverflowError) as e:  # AssetDataError, or a value no date can hold
            raise AssetDataError(f"asset {_shown_id(a)}: {e}") from None
        fields.append({k: v for k, v in record.items() if v != _DEFAULTS[k]})
    try:
        return _PLAN_ASSETS.validate_python(fields)
    except ValidationError as e:
        loc = e.errors()[0].get("loc", ())
        where = assets[loc[0]] if loc and isinstance(loc[0], int) and loc[0] < len(assets) else {}
        raise AssetDataError(f"asset {_shown_id(where)}: {first_problem(e, skip=1)}") from None


def plan_asset(asset: Mapping[str, Any]) -> PlanAsset:
    """One asset's plan record (``plan_assets`` for a whole group)."""
    return plan_assets([asset])[0]


def _shown_id(asset: Mapping[str, Any]) -> str:
    v = asset.get("id")
    return v[:64] if isinstance(v, str) else "(no id)"


# --------------------------------------------------------------------------- winner


def metadata_richness(a: PlanAsset) -> int:
    """How much a person would lose with this copy: a count of filled-in facts."""
    facts = [
        a.has_gps,
        a.captured_at is not None,
        a.time_zone is not None,
        bool(a.description.strip()),
        bool(a.make or a.model),
        bool(a.lens),
        a.is_favorite,
        a.rating is not None,
        bool(a.tags),
        bool(a.albums),
        a.live_photo_video_id is not None,
        bool(a.city or a.country),
    ]
    return sum(1 for f in facts if f)


def _rank_key(a: PlanAsset) -> tuple[int, int, int, int, str]:
    # Uploaded copies beat external-library copies on a full tie: an external file may be
    # moved by its owner, an uploaded one is Immich's to keep. Then the id, for a stable order.
    return (-a.pixels, -(a.file_size or 0), -metadata_richness(a), 1 if a.is_external else 0, a.id)


def rank(assets: Sequence[PlanAsset]) -> list[PlanAsset]:
    """Best first."""
    return sorted(assets, key=_rank_key)


def _dims(a: PlanAsset) -> str:
    return f"{a.width}×{a.height}" if a.width and a.height else "unknown size"


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1_000_000:.2f} MB"


def winner_reason(ranked: Sequence[PlanAsset]) -> str:
    best, rest = ranked[0], ranked[1:]
    if not rest:
        return "only asset"
    nxt = rest[0]
    if best.pixels != nxt.pixels:
        return f"most pixels: {_dims(best)} vs {_dims(nxt)}"
    if (best.file_size or 0) != (nxt.file_size or 0):
        return f"same pixels ({_dims(best)}); larger file: {_mb(best.file_size)} vs {_mb(nxt.file_size)}"
    rb, rn = metadata_richness(best), metadata_richness(nxt)
    if rb != rn:
        return f"same pixels and size; richer metadata ({rb} vs {rn} facts)"
    if best.is_external != nxt.is_external:
        return "full tie; the uploaded copy is preferred over the external-library one"
    return "full tie on pixels, size and metadata; first by id"


# --------------------------------------------------------------------------- conflicts


def _gps(a: PlanAsset) -> str:
    assert a.latitude is not None
    assert a.longitude is not None
    place = ", ".join(p for p in (a.city, a.country) if p)
    return f"{a.latitude:.5f}, {a.longitude:.5f}" + (f" ({place})" if place else "")


def _when(a: PlanAsset) -> str:
    if a.captured_at is None:
        return "-"
    if a.utc_offset_minutes is not None:
        return local_iso_with_offset(a.captured_at, a.utc_offset_minutes)
    return a.captured_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + " (no zone)"


def max_gps_distance(assets: Sequence[PlanAsset]) -> float:
    with_gps = [a for a in assets if a.has_gps]
    best = 0.0
    for a, b in combinations(with_gps, 2):
        assert a.latitude is not None
        assert a.longitude is not None
        assert b.latitude is not None
        assert b.longitude is not None
        best = max(best, haversine_m(a.latitude, a.longitude, b.latitude, b.longitude))
    return best


def find_conflicts(assets: Sequence[PlanAsset], settings: PlanSettings) -> list[Conflict]:
    out: list[Conflict] = []

    with_gps = [a for a in assets if a.has_gps]
    if len(with_gps) >= 2:
        dist = max_gps_distance(with_gps)
        if dist > settings.gps_tolerance_m:
            out.append(
                Conflict(
                    type=ConflictType.GPS,
                    values={a.id: _gps(a) for a in with_gps},
                    detail=f"copies are {format_distance(dist)} apart",
                )
            )

    dated = [a for a in assets if a.captured_at is not None]
    if len(dated) >= 2:
        instants = [a.captured_at for a in dated if a.captured_at is not None]
        spread = (max(instants) - min(instants)).total_seconds()
        if spread > settings.time_tolerance_s:
            out.append(
                Conflict(
                    type=ConflictType.CAPTURE_TIME,
                    values={a.id: _when(a) for a in dated},
                    detail=f"capture instants {_spread(spread)} apart",
                )
            )

    zoned = [a for a in assets if a.utc_offset_minutes is not None]
    if len({a.utc_offset_minutes for a in zoned}) > 1:
        out.append(
            Conflict(
                type=ConflictType.TIMEZONE,
                values={
                    a.id: f"{a.time_zone} ({format_offset(a.utc_offset_minutes or 0)})" for a in zoned
                },
                detail="different UTC offsets at the capture instant",
            )
        )

    described = [a for a in assets if a.description.strip()]
    if len({a.description.strip() for a in described}) > 1:
        out.append(
            Conflict(
                type=ConflictType.DESCRIPTION,
                values={a.id: a.description for a in described},
                detail="different descriptions",
            )
        )

    cams = [a for a in assets if a.make or a.model]
    if len({((a.make or "").strip().lower(), (a.model or "").strip().lower()) for a in cams}) > 1:
        out.append(
            Conflict(
                type=ConflictType.CAMERA,
                values={a.id: " ".join(p for p in (a.make, a.model) if p) for a in cams},
                blocking=False,
                detail="Immich cannot change the camera; shown for information",
            )
        )
    return out


def _spread(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def review_reasons(assets: Sequence[PlanAsset], conflicts: Sequence[Conflict]) -> list[ReviewReason]:
    reasons: list[ReviewReason] = []
    if any(c.blocking and c.type in BLOCKING_CONFLICTS for c in conflicts):
        reasons.append(ReviewReason.CONFLICT)
    if all(a.pixels == 0 for a in assets):
        reasons.append(ReviewReason.NO_DIMENSIONS)
    if len({a.type for a in assets}) > 1:
        reasons.append(ReviewReason.MIXED_TYPES)
    if any(a.is_external for a in assets):
        reasons.append(ReviewReason.EXTERNAL_LIBRARY)
    if any(a.live_photo_video_id for a in assets):
        reasons.append(ReviewReason.LIVE_PHOTO)
    paths = [a.original_path for a in assets if a.original_path]
    if len(set(paths)) != len(paths):
        reasons.append(ReviewReason.SAME_ORIGINAL_PATH)
    return reasons


# --------------------------------------------------------------------------- consolidation


def default_sources(
    group_assets: Sequence[PlanAsset],
    winner_id: str,
    keep: Sequence[str],
    ranked: Sequence[PlanAsset] | None = None,
) -> Sources:
    """Where each chosen field comes from when nobody said otherwise.

    The winner's own value wins when it has one; otherwise the best-ranked other copy that has
    it. Conflicts still need a person; the default is only what the review starts from.
    ``ranked`` is ``rank(group_assets)`` when the caller has it already.
    """
    by_rank = rank(group_assets) if ranked is None else ranked
    winner = next(a for a in group_assets if a.id == winner_id)
    others = [a for a in by_rank if a.id != winner_id]

    gps = winner.id if winner.has_gps else next((a.id for a in others if a.has_gps), None)
    dt: str | None
    desc: str | None
    if winner.utc_offset_minutes is not None and winner.captured_at is not None:
        dt = winner.id
    else:
        dt = next(
            (a.id for a in others if a.utc_offset_minutes is not None and a.captured_at is not None),
            None,
        )
    if winner.description.strip():
        desc = winner.id
    else:
        desc = next((a.id for a in others if a.description.strip()), None)
    return Sources(gps=gps, datetime=dt, description=desc)


def consolidate(group: GroupPlan, ranked: Sequence[PlanAsset] | None = None) -> Consolidated:
    """What the winner should hold afterwards, from the group's decision and sources.

    ``ranked`` is ``rank(group.assets)`` when the caller has it already.
    """
    winner = group.winner_asset
    every = group.assets
    src = group.sources
    ranked = rank(every) if ranked is None else ranked
    v: dict[str, Any] = {}

    if src.gps is not None and src.gps != winner.id:
        a = group.asset(src.gps)
        if a.has_gps:
            v["latitude"], v["longitude"] = a.latitude, a.longitude
    elif winner.has_gps:
        v["latitude"], v["longitude"] = winner.latitude, winner.longitude

    if src.datetime is not None and src.datetime != winner.id:
        a = group.asset(src.datetime)
        if a.captured_at is not None and a.utc_offset_minutes is not None:
            v["date_time_original"] = local_iso_with_offset(a.captured_at, a.utc_offset_minutes)

    if src.description is not None and src.description != winner.id:
        v["description"] = group.asset(src.description).description
    elif winner.description:
        v["description"] = winner.description

    v["is_favorite"] = any(a.is_favorite for a in every)
    ratings = [a.rating for a in every if a.rating is not None]
    v["rating"] = max(ratings) if ratings else None
    v["visibility"] = "archive" if any(a.visibility == "archive" for a in every) else "timeline"

    albums: dict[str, None] = {}
    tags: dict[str, None] = {}
    for a in [winner, *[x for x in every if x.id != winner.id]]:
        for al in a.albums:
            albums.setdefault(al.id)
        for t in a.tags:
            tags.setdefault(t.id)
    v["album_ids"] = list(albums)
    v["tag_ids"] = list(tags)

    if winner.live_photo_video_id is None:
        v["live_photo_video_id"] = next(
            (a.live_photo_video_id for a in ranked if a.live_photo_video_id and a.id != winner.id),
            None,
        )
    else:
        v["live_photo_video_id"] = winner.live_photo_video_id

    if not (winner.make or winner.model):
        other = next((a for a in ranked if a.make or a.model), None)
        if other is not None:
            v["camera_lost"] = " ".join(p for p in (other.make, other.model) if p)
    # One validated construction: assignments one by one are each re-validated.
    return Consolidated(**v)


def held_for_external(group: GroupPlan) -> bool:
    """Whether execute leaves ``group`` as it is because a loser is an external-library copy
    that no person allowed deleting in review (``engine.execute.left_alone``)."""
    return (
        group.action is Action.RESOLVE
        and not group.allow_external_delete
        and any(group.asset(i).is_external for i in group.losers)
    )


def _bytes_freed(group: GroupPlan) -> int:
    """What execute frees as the plan stands: the losers' originals of a resolved group; nothing
    for a group it leaves alone for an external-library loser (until allowed in review)."""
    if group.action is not Action.RESOLVE or held_for_external(group):
        return 0
    return sum(group.asset(i).file_size or 0 for i in group.losers)


def _refresh(group: GroupPlan) -> GroupPlan:
    """Recompute what follows from the decision (consolidated values, bytes) and re-validate."""
    group.consolidated = consolidate(group)
    group.bytes_freed = _bytes_freed(group)
    return GroupPlan.model_validate(group.model_dump())


# --------------------------------------------------------------------------- building


def build_group(
    duplicate_id: str,
    assets: Sequence[PlanAsset],
    settings: PlanSettings,
    suggested_keep: Sequence[str] = (),
) -> GroupPlan:
    ranked = rank(assets)
    winner = ranked[0]
    conflicts = find_conflicts(assets, settings)
    reasons = review_reasons(assets, conflicts)
    losers = [a.id for a in ranked[1:]]
    note = ""
    if suggested_keep and winner.id not in suggested_keep:
        theirs = next((a for a in assets if a.id in suggested_keep), None)
        if theirs is not None:
            note = f"Immich would keep {theirs.file_name} (largest file)"
    group = GroupPlan(
        duplicate_id=duplicate_id,
        assets=list(ranked),
        winner=winner.id,
        losers=losers,
        keep=[winner.id],
        action=Action.RESOLVE,
        winner_reason=winner_reason(ranked),
        conflicts=conflicts,
        review_reasons=reasons,
        needs_review=bool(reasons),
        sources=default_sources(assets, winner.id, [winner.id], ranked),
        note=note,
    )
    # Validated once above; what follows is derived by us, so no second validation pass
    # (this runs for every group of a library with tens of thousands of them).
    group.consolidated = consolidate(group, ranked)
    group.bytes_freed = _bytes_freed(group)
    return group


# --------------------------------------------------------------------------- review edits
# Each returns a new, validated GroupPlan: the review app and the tests use exactly these.


def set_winner(group: GroupPlan, asset_id: str) -> GroupPlan:
    """Make ``asset_id`` the keeper; the others become losers (partial keeps are kept)."""
    group.asset(asset_id)
    g = group.model_copy(deep=True)
    before, old_winner = g.sources, g.winner
    extra_keeps = [k for k in g.keep if k not in (g.winner, asset_id)]
    g.winner = asset_id
    g.keep = [asset_id, *extra_keeps]
    g.losers = [a.id for a in g.assets if a.id not in g.keep]
    g.sources = _resource(g, before, old_winner)
    g.winner_reason = "chosen in review"
    return _refresh(g)


def _resource(g: GroupPlan, before: Sources, old_winner: str) -> Sources:
    """Keep each source choice that still makes sense for the new winner; re-derive the rest.

    A choice that names another copy (take GPS from #2) still stands after the keeper changes,
    unless that copy is now the keeper itself (then it simply keeps its own value).
    """
    default = default_sources(g.assets, g.winner, g.keep)
    kept: dict[str, str | None] = {}
    for field in ("gps", "datetime", "description"):
        chosen = getattr(before, field)
        # "The old keeper's own value" was no choice of another copy: re-derive it.
        if chosen is not None and chosen not in (g.winner, old_winner):
            kept[field] = chosen
    return default.model_copy(update=kept)


def toggle_keep(group: GroupPlan, asset_id: str) -> GroupPlan:
    """Keep a non-winner too (a partial keep), or send it back to the trash list."""
    group.asset(asset_id)
    if asset_id == group.winner:
        return group
    g = group.model_copy(deep=True)
    if asset_id in g.keep:
        g.keep = [k for k in g.keep if k != asset_id]
    else:
        g.keep = [*g.keep, asset_id]
    g.losers = [a.id for a in g.assets if a.id not in g.keep]
    return _refresh(g)


def set_source(group: GroupPlan, field: str, asset_id: str | None) -> GroupPlan:
    """Choose which copy supplies ``gps``, ``datetime`` or ``description`` (None: the winner's)."""
    if field not in ("gps", "datetime", "description"):
        raise ValueError(f"unknown field {field!r}")
    if asset_id is not None:
        a = group.asset(asset_id)
        if field == "gps" and not a.has_gps:
            raise ValueError(f"{a.file_name} has no GPS position")
        if field == "datetime" and (a.captured_at is None or a.utc_offset_minutes is None):
            raise ValueError(f"{a.file_name} has no capture time with a known zone")
        if field == "description" and not a.description.strip():
            raise ValueError(f"{a.file_name} has no description")
    g = group.model_copy(deep=True)
    g.sources = g.sources.model_copy(update={field: asset_id})
    return _refresh(g)


def set_action(group: GroupPlan, action: Action, reviewed: bool = True) -> GroupPlan:
    g = group.model_copy(deep=True)
    g.action = action
    g.reviewed = reviewed or g.reviewed
    return _refresh(g)


def accept(group: GroupPlan) -> GroupPlan:
    """A person looked and agrees with the decision as it stands."""
    g = group.model_copy(deep=True)
    g.reviewed = True
    if g.action is Action.SKIP:
        g.action = Action.RESOLVE
    return _refresh(g)


def allow_external_delete(group: GroupPlan, allow: bool) -> GroupPlan:
    g = group.model_copy(deep=True)
    g.allow_external_delete = allow
    return _refresh(g)
