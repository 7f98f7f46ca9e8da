"""Winner choice (DESIGN §5), conflicts (§6) and consolidation (§7): pure unit tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import (
    Action,
    ConflictType,
    PlanAlbum,
    PlanAsset,
    PlanSettings,
    PlanTag,
    ReviewReason,
)
from immich_dupes.analysis.timezones import local_iso_with_offset, offset_minutes

SETTINGS = PlanSettings()
WHEN = datetime(2022, 5, 1, 8, 0, tzinfo=UTC)


def uid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


def asset(n: int, **kw: Any) -> PlanAsset:
    base: dict[str, Any] = {
        "id": uid(n),
        "file_name": f"img{n}.jpg",
        "mime": "image/jpeg",
        "width": 1600,
        "height": 1200,
        "file_size": 100_000,
        "captured_at": WHEN,
        "time_zone": "UTC+2",
        "utc_offset_minutes": 120,
        "original_path": f"/data/{n}.jpg",
    }
    base.update(kw)
    if "time_zone" in kw and "utc_offset_minutes" not in kw:
        base["utc_offset_minutes"] = offset_minutes(kw["time_zone"], base["captured_at"])
    return PlanAsset(**base)


def group(*assets: PlanAsset) -> decide.GroupPlan:
    return decide.build_group(uid(999), list(assets), SETTINGS)


# --------------------------------------------------------------------------- winner


def test_most_pixels_wins_even_with_a_smaller_file() -> None:
    big = asset(1, width=4000, height=3000, file_size=900_000)
    small_but_heavy = asset(2, width=1600, height=1200, file_size=5_000_000)
    g = group(small_but_heavy, big)
    assert g.winner == big.id
    assert g.losers == [small_but_heavy.id]
    assert g.winner_reason == "most pixels: 4000×3000 vs 1600×1200"


def test_pixel_tie_goes_to_the_larger_file() -> None:
    a = asset(1, width=2048, height=1536, file_size=160_000)
    b = asset(2, width=2048, height=1536, file_size=620_000)
    g = group(a, b)
    assert g.winner == b.id
    assert "larger file" in g.winner_reason


def test_full_tie_goes_to_richer_metadata_then_a_stable_order() -> None:
    plain = asset(1, width=100, height=100, file_size=10)
    rich = asset(2, width=100, height=100, file_size=10, latitude=1.0, longitude=2.0, description="x")
    assert group(plain, rich).winner == rich.id
    # Same facts: the result must not depend on the order the server listed them in.
    x = asset(5, width=100, height=100, file_size=10)
    y = asset(3, width=100, height=100, file_size=10)
    assert group(x, y).winner == group(y, x).winner == min(x.id, y.id)


def test_uploaded_copy_beats_external_library_copy_on_a_full_tie() -> None:
    ext = asset(1, width=10, height=10, file_size=5, library_id=uid(50))
    up = asset(9, width=10, height=10, file_size=5)
    assert group(ext, up).winner == up.id


def test_exif_dimensions_preferred_then_asset_dimensions() -> None:
    from immich_dupes.immich.models import Asset

    a = Asset.model_validate(
        {"id": uid(1), "width": 10, "height": 10, "exifInfo": {"exifImageWidth": 4000, "exifImageHeight": 3000}}
    )
    assert a.dimensions == (4000, 3000)
    b = Asset.model_validate({"id": uid(2), "width": 640, "height": 480, "exifInfo": {}})
    assert b.dimensions == (640, 480)
    c = Asset.model_validate({"id": uid(3)})
    assert c.dimensions is None


def test_group_with_no_dimensions_needs_review() -> None:
    g = group(asset(1, width=None, height=None), asset(2, width=None, height=None))
    assert ReviewReason.NO_DIMENSIONS in g.review_reasons
    assert g.needs_review


def test_one_asset_without_dimensions_simply_ranks_last() -> None:
    g = group(asset(1, width=None, height=None, file_size=9_000_000), asset(2))
    assert g.winner == uid(2)
    assert ReviewReason.NO_DIMENSIONS not in g.review_reasons


def test_mixed_image_and_video_needs_review() -> None:
    g = group(asset(1), asset(2, type="VIDEO", mime="video/mp4"))
    assert ReviewReason.MIXED_TYPES in g.review_reasons


def test_external_live_photo_and_same_path_need_review() -> None:
    assert ReviewReason.EXTERNAL_LIBRARY in group(asset(1), asset(2, library_id=uid(77))).review_reasons
    assert ReviewReason.LIVE_PHOTO in group(asset(1, live_photo_video_id=uid(78)), asset(2)).review_reasons
    same = group(asset(1, original_path="/x/a.jpg"), asset(2, original_path="/x/a.jpg"))
    assert ReviewReason.SAME_ORIGINAL_PATH in same.review_reasons


def test_clean_group_needs_no_review() -> None:
    g = group(asset(1, width=4000, height=3000), asset(2))
    assert g.review_reasons == []
    assert not g.needs_review
    assert g.decided


# --------------------------------------------------------------------------- conflicts


def types(g: decide.GroupPlan) -> set[ConflictType]:
    return {c.type for c in g.conflicts}


def test_gps_a_few_metres_apart_is_not_a_conflict() -> None:
    a = asset(1, latitude=48.85660, longitude=2.35220)
    b = asset(2, latitude=48.85678, longitude=2.35220)  # ~20 m north
    assert ConflictType.GPS not in types(group(a, b))


def test_gps_500_km_apart_is_a_conflict_with_the_distance() -> None:
    munich = asset(1, latitude=48.1372, longitude=11.5756)
    berlin = asset(2, latitude=52.52, longitude=13.405, width=3000, height=2000)
    g = group(munich, berlin)
    (c,) = [c for c in g.conflicts if c.type is ConflictType.GPS]
    assert c.blocking
    assert "504" in c.detail
    assert "km" in c.detail
    assert g.needs_review


def test_gps_tolerance_is_configurable() -> None:
    a = asset(1, latitude=0.0, longitude=0.0)
    b = asset(2, latitude=0.0009, longitude=0.0)  # ~100 m
    loose = decide.build_group(uid(9), [a, b], PlanSettings(gps_tolerance_m=500))
    tight = decide.build_group(uid(9), [a, b], PlanSettings(gps_tolerance_m=50))
    assert ConflictType.GPS not in types(loose)
    assert ConflictType.GPS in types(tight)


def test_gps_only_on_one_copy_is_no_conflict_and_is_carried() -> None:
    big = asset(1, width=4000, height=3000)
    small = asset(2, latitude=48.8566, longitude=2.3522)
    g = group(big, small)
    assert ConflictType.GPS not in types(g)
    assert (g.consolidated.latitude, g.consolidated.longitude) == (48.8566, 2.3522)
    assert g.sources.gps == small.id


@pytest.mark.parametrize(
    ("zone_a", "zone_b", "conflict"),
    [
        ("UTC+2", "+02:00", False),
        ("UTC+2", "Europe/Berlin", False),  # summer: CEST is +2
        ("UTC+1", "Europe/Berlin", True),  # not in summer
        ("UTC+5:30", "Asia/Kolkata", False),
        ("UTC", "+00:00", False),
        ("UTC", "UTC+2", True),
        ("-04:30", "UTC-4:30", False),
    ],
)
def test_timezones_compare_by_offset_at_the_instant(zone_a: str, zone_b: str, conflict: bool) -> None:
    g = group(asset(1, time_zone=zone_a), asset(2, time_zone=zone_b))
    assert (ConflictType.TIMEZONE in types(g)) is conflict


def test_winter_berlin_equals_utc_plus_1() -> None:
    winter = datetime(2020, 1, 15, 12, tzinfo=UTC)
    g = group(
        asset(1, time_zone="UTC+1", captured_at=winter), asset(2, time_zone="Europe/Berlin", captured_at=winter)
    )
    assert ConflictType.TIMEZONE not in types(g)


def test_capture_time_tolerance() -> None:
    one_second = datetime(2022, 5, 1, 8, 0, 1, tzinfo=UTC)
    ten_seconds = datetime(2022, 5, 1, 8, 0, 10, tzinfo=UTC)
    assert ConflictType.CAPTURE_TIME not in types(group(asset(1), asset(2, captured_at=one_second)))
    g = group(asset(1), asset(2, captured_at=ten_seconds))
    assert ConflictType.CAPTURE_TIME in types(g)
    assert g.needs_review


def test_empty_or_blank_descriptions_do_not_conflict() -> None:
    assert ConflictType.DESCRIPTION not in types(group(asset(1, description=""), asset(2, description="  ")))
    assert ConflictType.DESCRIPTION not in types(group(asset(1, description="Harbour"), asset(2, description="")))
    assert ConflictType.DESCRIPTION not in types(
        group(asset(1, description="Harbour "), asset(2, description="Harbour"))
    )
    assert ConflictType.DESCRIPTION in types(group(asset(1, description="Harbour"), asset(2, description="Tram")))


def test_camera_difference_is_informational_only() -> None:
    g = group(asset(1, make="Canon", model="EOS R5", width=4000), asset(2, make="Apple", model="iPhone 13"))
    (c,) = [c for c in g.conflicts if c.type is ConflictType.CAMERA]
    assert not c.blocking
    assert not g.needs_review


# --------------------------------------------------------------------------- consolidation


def test_date_and_zone_carried_when_the_winner_has_no_zone() -> None:
    winner = asset(1, width=4000, height=3000, time_zone=None, utc_offset_minutes=None)
    loser = asset(2, time_zone="UTC+2")
    g = group(winner, loser)
    assert g.sources.datetime == loser.id
    assert g.consolidated.date_time_original == "2022-05-01T10:00:00+02:00"


def test_winner_with_its_own_zone_keeps_its_date() -> None:
    g = group(asset(1, width=4000, height=3000), asset(2))
    assert g.consolidated.date_time_original is None


def test_favorite_rating_visibility_albums_tags_and_live_photo_are_merged() -> None:
    album = PlanAlbum(id=uid(100), name="Trip")
    tag = PlanTag(id=uid(200), value="seed/keep-me")
    winner = asset(1, width=4000, height=3000, rating=2, tags=[PlanTag(id=uid(201), value="a")])
    loser = asset(
        2,
        is_favorite=True,
        rating=4,
        visibility="archive",
        albums=[album],
        tags=[tag],
        live_photo_video_id=uid(300),
    )
    c = group(winner, loser).consolidated
    assert c.is_favorite is True
    assert c.rating == 4
    assert c.visibility == "archive"
    assert c.album_ids == [album.id]
    assert c.tag_ids == [uid(201), tag.id]
    assert c.live_photo_video_id == uid(300)


def test_description_from_loser_when_winner_has_none() -> None:
    g = group(asset(1, width=4000, height=3000), asset(2, description="Harbour at dawn"))
    assert g.consolidated.description == "Harbour at dawn"


def test_camera_only_on_loser_is_reported_as_lost() -> None:
    g = group(asset(1, width=4000, height=3000), asset(2, make="FUJIFILM", model="X-T4"))
    assert g.consolidated.camera_lost == "FUJIFILM X-T4"


def test_local_iso_with_offset() -> None:
    assert local_iso_with_offset(WHEN, 120) == "2022-05-01T10:00:00+02:00"
    assert local_iso_with_offset(WHEN, -270) == "2022-05-01T03:30:00-04:30"
    assert local_iso_with_offset(WHEN, 0) == "2022-05-01T08:00:00+00:00"


def test_offset_parsing() -> None:
    assert offset_minutes("UTC") == 0
    assert offset_minutes("UTC+2") == 120
    assert offset_minutes("UTC-3") == -180
    assert offset_minutes("UTC+5:30") == 330
    assert offset_minutes("+05:30") == 330
    assert offset_minutes("-04:30") == -270
    assert offset_minutes("Asia/Tokyo", WHEN) == 540
    assert offset_minutes("Not/AZone") is None
    assert offset_minutes(None) is None
    assert offset_minutes("UTC+99") is None


# --------------------------------------------------------------------------- review edits


def test_set_winner_recomputes_losers_sources_and_consolidation() -> None:
    big = asset(1, width=4000, height=3000)
    small = asset(2, latitude=1.0, longitude=2.0, description="only here")
    g = group(big, small)
    g2 = decide.set_winner(g, small.id)
    assert g2.winner == small.id
    assert g2.losers == [big.id]
    assert g2.keep == [small.id]
    assert g2.sources.gps == small.id
    assert g2.bytes_freed == big.file_size
    assert g.winner == big.id  # the original is untouched (undo relies on it)


def test_toggle_keep_makes_a_partial_keep_and_back() -> None:
    g = group(asset(1, width=4000, height=3000), asset(2), asset(3, width=10, height=10))
    kept = decide.toggle_keep(g, uid(2))
    assert set(kept.keep) == {uid(1), uid(2)}
    assert kept.losers == [uid(3)]
    back = decide.toggle_keep(kept, uid(2))
    assert set(back.losers) == {uid(2), uid(3)}
    assert decide.toggle_keep(g, g.winner) == g  # the winner cannot be trashed by a toggle


def test_set_source_validates_the_choice() -> None:
    berlin = asset(1, width=3000, height=2000, latitude=52.52, longitude=13.405)
    munich = asset(2, latitude=48.1372, longitude=11.5756)
    g = group(berlin, munich)
    g2 = decide.set_source(g, "gps", munich.id)
    assert (g2.consolidated.latitude, g2.consolidated.longitude) == (48.1372, 11.5756)
    with pytest.raises(ValueError, match="no description"):
        decide.set_source(g, "description", munich.id)
    with pytest.raises(ValueError, match="unknown field"):
        decide.set_source(g, "camera", munich.id)


def test_actions_mark_reviewed_and_keep_all_frees_nothing() -> None:
    g = group(asset(1, width=4000, height=3000), asset(2, description="x"))
    kept = decide.set_action(g, Action.KEEP_ALL)
    assert kept.reviewed
    assert kept.action is Action.KEEP_ALL
    assert kept.bytes_freed == 0
    accepted = decide.accept(decide.set_action(g, Action.SKIP))
    assert accepted.reviewed
    assert accepted.action is Action.RESOLVE


def test_set_winner_keeps_a_source_chosen_from_another_copy() -> None:
    big = asset(1, width=4000, height=3000, latitude=52.52, longitude=13.405)
    mid = asset(2, width=2000, height=1500, latitude=48.1372, longitude=11.5756)
    small = asset(3, width=100, height=100, latitude=48.1372, longitude=11.5757, description="Munich")
    g = decide.set_source(group(big, mid, small), "gps", small.id)
    g2 = decide.set_winner(g, mid.id)
    assert g2.sources.gps == small.id  # the person's choice survives the keeper change
    assert (g2.consolidated.latitude, g2.consolidated.longitude) == (48.1372, 11.5757)
    # A choice that names the new keeper becomes "keep its own".
    g3 = decide.set_winner(g, small.id)
    assert g3.sources.gps == small.id
    assert g3.consolidated.latitude == 48.1372
