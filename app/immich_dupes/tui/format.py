"""How facts about assets and groups are written on screen. Pure functions (no textual)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from immich_dupes import units
from immich_dupes.analysis.geo import format_distance, haversine_m
from immich_dupes.analysis.plan import ConflictType, GroupPlan, PlanAsset
from immich_dupes.analysis.timezones import format_offset, local_iso_with_offset

NONE = "—"


def human_bytes(n: float | None) -> str:
    return NONE if n is None else units.human_bytes(n)


def dims(a: PlanAsset) -> str:
    return f"{a.width}×{a.height}" if a.width and a.height else "unknown size"


def megapixels(a: PlanAsset) -> str:
    return f"{a.pixels / 1_000_000:.1f} MP" if a.pixels else ""


def fmt(a: PlanAsset) -> str:
    kind = "" if a.type == "IMAGE" else f" {a.type.lower()}"
    return (a.format or "?") + kind


def when(a: PlanAsset) -> str:
    """Local wall-clock time with its offset, e.g. ``2019-07-04 18:30:00 +02:00``."""
    if a.captured_at is None:
        return NONE
    if a.utc_offset_minutes is not None:
        return local_iso_with_offset(a.captured_at, a.utc_offset_minutes).replace("T", " ", 1)[:19] + (
            " " + format_offset(a.utc_offset_minutes)
        )
    return a.captured_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + " UTC?"


def local_when(a: PlanAsset) -> str:
    """Wall-clock time only (the zone has its own row): ``2019-07-04 18:30:00``."""
    full = when(a)
    return full[:19] if a.utc_offset_minutes is not None else full


def zone(a: PlanAsset) -> str:
    if a.time_zone is None and a.utc_offset_minutes is None:
        return NONE
    off = f" ({format_offset(a.utc_offset_minutes)})" if a.utc_offset_minutes is not None else ""
    return f"{a.time_zone or '?'}{off}"


def place(a: PlanAsset) -> str:
    return ", ".join(p for p in (a.city, a.country) if p)


def gps(a: PlanAsset) -> str:
    """``48.1372, 11.5756 Munich, Germany`` (4 decimals: about 10 m)."""
    if not a.has_gps:
        return NONE
    assert a.latitude is not None
    assert a.longitude is not None
    where = place(a)
    return f"{a.latitude:.4f}, {a.longitude:.4f}" + (f" {where}" if where else "")


def distance(a: PlanAsset, b: PlanAsset) -> float | None:
    if not (a.has_gps and b.has_gps):
        return None
    assert a.latitude is not None
    assert a.longitude is not None
    assert b.latitude is not None
    assert b.longitude is not None
    return haversine_m(a.latitude, a.longitude, b.latitude, b.longitude)


def camera(a: PlanAsset) -> str:
    return " ".join(p for p in (a.make, a.model) if p) or NONE


def stars(rating: int | None) -> str:
    if rating is None or rating <= 0:
        return "rejected" if rating == -1 else NONE
    return "★" * rating


def badges(a: PlanAsset) -> list[str]:
    out: list[str] = []
    if a.is_external:
        out.append("external library")
    if a.is_offline:
        out.append("offline file")
    if a.live_photo_video_id:
        out.append("live photo")
    if a.is_favorite:
        out.append("♥ favorite")
    if a.rating:
        out.append(stars(a.rating))
    if a.albums:
        out.append(f"{len(a.albums)} album" + ("s" if len(a.albums) != 1 else ""))
    if a.visibility != "timeline":
        out.append(a.visibility)
    return out


def short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


# --------------------------------------------------------------------------- the diff table


@dataclass(frozen=True)
class DiffRow:
    """One field of the metadata diff: a value per asset and what the keeper ends up with."""

    key: str
    label: str
    values: tuple[str, ...]
    differs: bool
    conflict: bool
    source: int | None
    """Position of the asset that supplies the result, None when it is a rule (union, any…)."""
    result: str
    rule: str


def _row(
    key: str,
    label: str,
    values: list[str],
    *,
    source: int | None,
    result: str,
    rule: str,
    conflict: bool = False,
) -> DiffRow:
    present = {v for v in values if v != NONE}
    differs = len(set(values)) > 1 and bool(present)
    return DiffRow(key, label, tuple(values), differs, conflict, source, result, rule)


def _from(position: int, keeper: int) -> str:
    """The "how" of a value one copy supplies: the keeper's own, or taken from copy N."""
    return "keeper" if position == keeper else f"from #{position + 1}"


def diff_rows(g: GroupPlan) -> list[DiffRow]:
    assets = g.assets
    pos = {a.id: i for i, a in enumerate(assets)}
    w = pos[g.winner]
    winner = assets[w]
    c = g.consolidated
    conflicts = {x.type for x in g.conflicts if x.blocking}
    camera_conflict = any(x.type is ConflictType.CAMERA for x in g.conflicts)
    rows: list[DiffRow] = []

    rows.append(_row("dimensions", "dimensions", [dims(a) for a in assets],
                     source=w, result=dims(winner), rule="keeper"))
    rows.append(_row("size", "size", [human_bytes(a.file_size) for a in assets],
                     source=w, result=human_bytes(winner.file_size), rule="keeper"))
    rows.append(_row("format", "format", [fmt(a) for a in assets],
                     source=w, result=fmt(winner), rule="keeper"))

    dt_src = g.sources.datetime
    dt_pos = pos.get(dt_src) if dt_src else None
    if c.date_time_original is not None and dt_pos is not None:
        date_result = when(assets[dt_pos])
        zone_result = zone(assets[dt_pos])
        rule = _from(dt_pos, w)
    else:
        date_result, zone_result = when(winner), zone(winner)
        rule = "keeper" if dt_src is None or dt_src == g.winner else "unchanged"
        dt_pos = w if winner.captured_at is not None else None
    rows.append(_row("date", "local date", [local_when(a) for a in assets], source=dt_pos,
                     result=date_result, rule=rule,
                     conflict=ConflictType.CAPTURE_TIME in conflicts))
    rows.append(_row("timezone", "time zone", [zone(a) for a in assets], source=dt_pos,
                     result=zone_result, rule=rule, conflict=ConflictType.TIMEZONE in conflicts))

    gps_values: list[str] = []
    for i, a in enumerate(assets):
        v = gps(a)
        d = distance(a, winner) if i != w else None
        if d is not None:
            v = f"↔{format_distance(d)} {v}"
        gps_values.append(v)
    gps_pos = pos.get(g.sources.gps) if g.sources.gps else None
    if c.latitude is not None and c.longitude is not None:
        src_asset = assets[gps_pos] if gps_pos is not None else winner
        gps_result = gps(src_asset)
        gps_rule = _from(gps_pos if gps_pos is not None else w, w)
    else:
        gps_result, gps_rule, gps_pos = NONE, "none", None
    rows.append(_row("gps", "GPS / place", gps_values, source=gps_pos, result=gps_result,
                     rule=gps_rule, conflict=ConflictType.GPS in conflicts))

    desc_pos = pos.get(g.sources.description) if g.sources.description else None
    desc_result = c.description if c.description else NONE
    rows.append(_row("description", "description",
                     [short(a.description, 200) if a.description.strip() else NONE for a in assets],
                     source=desc_pos if c.description else None,
                     result=short(desc_result, 200),
                     rule=_from(desc_pos, w) if desc_pos is not None and c.description else "none",
                     conflict=ConflictType.DESCRIPTION in conflicts))

    cam_result = camera(winner)
    if c.camera_lost:
        cam_result += f" (Immich cannot write {c.camera_lost})"
    rows.append(_row("camera", "camera", [camera(a) for a in assets], source=w,
                     result=cam_result, rule="read-only", conflict=camera_conflict))
    rows.append(_row("lens", "lens", [a.lens or NONE for a in assets], source=w,
                     result=winner.lens or NONE, rule="read-only"))

    fav_pos = next((i for i, a in enumerate(assets) if a.is_favorite), None)
    rows.append(_row("favorite", "favorite", ["♥ yes" if a.is_favorite else "no" for a in assets],
                     source=fav_pos, result="♥ yes" if c.is_favorite else "no",
                     rule="any copy"))
    rated = [(a.rating, i) for i, a in enumerate(assets) if a.rating is not None]
    rating_pos = max(rated)[1] if rated else None
    rows.append(_row("rating", "rating", [stars(a.rating) for a in assets], source=rating_pos,
                     result=stars(c.rating), rule="highest"))

    rows.append(_row("albums", "albums",
                     [_names([al.name or al.id[:8] for al in a.albums]) for a in assets],
                     source=None, result=f"{len(c.album_ids)} album(s)" if c.album_ids else NONE,
                     rule="union"))
    rows.append(_row("tags", "tags", [_names([t.value or t.id[:8] for t in a.tags]) for a in assets],
                     source=None, result=f"{len(c.tag_ids)} tag(s)" if c.tag_ids else NONE,
                     rule="union"))
    rows.append(_row("visibility", "visibility", [a.visibility for a in assets], source=None,
                     result=c.visibility, rule="strictest"))
    live_pos = next((i for i, a in enumerate(assets)
                     if a.live_photo_video_id and a.live_photo_video_id == c.live_photo_video_id), None)
    rows.append(_row("live", "live photo",
                     ["motion video" if a.live_photo_video_id else NONE for a in assets],
                     source=live_pos, result="motion video" if c.live_photo_video_id else NONE,
                     rule=_from(live_pos, w) if live_pos is not None else "keeper"))
    external_losers = any(a.is_external and a.id in g.losers for a in assets)
    if not external_losers:
        library_result = NONE
    elif g.allow_external_delete:
        library_result = "external copies trashed"
    else:
        library_result = "external copies kept"
    rows.append(_row("library", "library",
                     ["external" if a.is_external else "uploaded" for a in assets], source=None,
                     result=library_result, rule="X allows" if external_losers else ""))
    return rows


def _names(names: list[str]) -> str:
    return ", ".join(sorted(names)) if names else NONE


def conflict_summary(g: GroupPlan) -> str:
    parts = []
    for c in g.conflicts:
        label = c.type.value.replace("_", " ")
        parts.append(f"{label}: {c.detail}" if c.detail else label)
    for r in g.review_reasons:
        if r.value == "conflict":
            continue
        parts.append(r.value.replace("_", " "))
    return "; ".join(parts)
