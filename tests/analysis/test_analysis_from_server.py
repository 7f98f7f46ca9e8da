"""The plan's asset records, read straight from the server's JSON (``plan_assets``).

Analyze no longer builds a typed ``Asset`` for every asset it reads; execute and verify still
read the server through ``Asset``. These tests hold the two readings together, for the recorded
3.1 answers and for the fake's v1, v2 and v3 profiles, and pin each version quirk and each
refusal.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from immich_dupes.analysis.decide import AssetDataError, plan_asset, plan_assets
from immich_dupes.analysis.plan import PlanAsset, PlanTag
from immich_dupes.analysis.timezones import offset_minutes
from immich_dupes.fake import FakeImmich
from immich_dupes.immich.models import Asset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def typed_view(raw: dict[str, Any]) -> str:
    """The plan record as analyze built it before, through the ``Asset`` model that execute
    and verify still read the server with (kept here as the reference), as JSON."""
    a = Asset.model_validate(raw)
    e = a.exif
    dims = a.dimensions
    captured = e.dateTimeOriginal
    if captured is not None and captured.tzinfo is None:
        captured = captured.replace(tzinfo=UTC)
    rec = PlanAsset(
        id=a.id,
        file_name=a.originalFileName or a.id,
        type=a.type.value,
        mime=a.originalMimeType,
        width=dims[0] if dims else None,
        height=dims[1] if dims else None,
        file_size=e.fileSizeInByte,
        checksum=a.checksum,
        original_path=a.originalPath,
        library_id=a.libraryId,
        is_offline=a.isOffline,
        live_photo_video_id=a.livePhotoVideoId,
        captured_at=captured,
        local_time=a.localDateTime.replace(tzinfo=None) if a.localDateTime else None,
        time_zone=e.timeZone,
        utc_offset_minutes=offset_minutes(e.timeZone, captured),
        latitude=e.latitude,
        longitude=e.longitude,
        city=e.city,
        state=e.state,
        country=e.country,
        description=e.description or "",
        make=e.make,
        model=e.model,
        lens=e.lensModel,
        is_favorite=a.isFavorite,
        rating=e.rating if e.rating != 0 else None,
        visibility=a.visibility.value,
        tags=[PlanTag(id=t.id, value=t.value or t.name) for t in a.tags],
        updated_at=a.updatedAt,
        duration_ms=a.duration_ms,
    )
    return rec.model_dump_json()


def plan_view(raw: dict[str, Any]) -> str:
    return plan_asset(raw).model_dump_json()


def recorded_assets() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for g in json.loads((FIXTURES / "duplicates-admin.json").read_text()):
        out.extend(g["assets"])
    for p in sorted(FIXTURES.glob("asset-*.json")):
        data = json.loads(p.read_text())
        if isinstance(data, dict) and "id" in data:
            out.append(data)
    return out


def fake_assets(profile: str) -> list[dict[str, Any]]:
    """Every asset of the sample library as ``GET /duplicates`` of that profile sends it."""
    fake = FakeImmich(library="sample", profile=profile)

    async def fetch() -> Any:
        async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake") as c:
            r = await c.get("/api/duplicates", headers={"x-api-key": fake.api_key})
            r.raise_for_status()
            return r.json()

    return [a for g in asyncio.run(fetch()) for a in g["assets"]]


def test_recorded_assets_read_the_same_as_the_typed_model() -> None:
    assets = recorded_assets()
    assert len(assets) > 20
    for raw in assets:
        assert plan_view(raw) == typed_view(raw), raw["id"]


@pytest.mark.parametrize("profile", ["v1", "v2", "v3"])
def test_every_profile_reads_the_same_as_the_typed_model(profile: str) -> None:
    assets = fake_assets(profile)
    # The quirks under test are really there: v1 sends durations as text, v3 as numbers.
    durations = {type(a.get("duration")).__name__ for a in assets if a.get("type") == "VIDEO"}
    assert durations == ({"str"} if profile != "v3" else {"int"})
    for raw in assets:
        assert plan_view(raw) == typed_view(raw), (profile, raw["originalFileName"])


def base() -> dict[str, Any]:
    return json.loads((FIXTURES / "asset-s01-large-no-gps.json").read_text())  # type: ignore[no-any-return]


def test_version_quirks() -> None:
    raw = base()
    raw.pop("visibility")
    raw["isArchived"] = True  # before 1.133: only isArchived says it
    raw["duration"] = "0:01:02.500000"  # 1.x/2.x
    raw["tags"] = None
    raw["exifInfo"]["rating"] = 0  # v2 writes "no rating" as 0
    rec = plan_asset(raw)
    assert rec.visibility == "archive"
    assert rec.duration_ms == 62_500
    assert rec.tags == []
    assert rec.rating is None

    no_exif = {**base(), "exifInfo": None, "width": 640, "height": 480}
    rec = plan_asset(no_exif)
    assert (rec.width, rec.height) == (640, 480)  # the asset row's size (≥2.5) when EXIF has none
    assert rec.captured_at is None
    assert rec.description == ""
    bare = {**base(), "exifInfo": None}
    for k in ("width", "height"):
        bare.pop(k, None)
    assert plan_asset(bare).pixels == 0  # no size at all: the group will need review

    as_text = base()
    as_text["exifInfo"].update(exifImageWidth="0", exifImageHeight="3000", rating="0")
    as_text.update(width="640", height=480.0)
    rec = plan_asset(as_text)
    assert (rec.width, rec.height) == (640, 480)  # "0" is no size: the row's size, as Asset reads it
    assert rec.rating is None  # and "0" no rating
    assert plan_view(as_text) == typed_view(as_text)

    for odd in (float("nan"), float("inf"), "0:00:inf", "0:00:nan", "soon"):
        assert plan_asset({**base(), "duration": odd}).duration_ms is None  # no length, no error

    ancient = base()  # a camera whose clock was never set, in a zone with a negative offset
    ancient["exifInfo"].update(dateTimeOriginal="0001-01-01T00:00:00.000Z", timeZone="America/New_York")
    rec = plan_asset(ancient)
    assert rec.captured_at == datetime(1, 1, 1, tzinfo=UTC)
    assert rec.utc_offset_minutes is None

    naive = base()
    naive["exifInfo"]["dateTimeOriginal"] = "2019-07-04T18:30:00"
    naive["exifInfo"]["timeZone"] = "Europe/Berlin"
    rec = plan_asset(naive)
    assert rec.captured_at == datetime(2019, 7, 4, 18, 30, tzinfo=UTC)  # naive means UTC
    assert rec.utc_offset_minutes == 120  # Berlin in summer at that instant


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda a: a.__setitem__("originalFileName", "x" * 5000), "file_name: String should have at most 4096"),
        (lambda a: a["exifInfo"].__setitem__("dateTimeOriginal", "yesterday"), "exifInfo.dateTimeOriginal: "),
        # The basic ISO form: Python could read it, the Asset model that execute uses could not.
        (lambda a: a["exifInfo"].__setitem__("dateTimeOriginal", "20190704T183000Z"), "exifInfo.dateTimeOriginal: "),
        (lambda a: a.__setitem__("localDateTime", 12.5e20), "localDateTime: "),
        (lambda a: a.__setitem__("exifInfo", [1, 2]), "exifInfo: not a JSON object"),
        (lambda a: a.__setitem__("tags", [{"id": "not-a-uuid"}]), "tags[0].id: String should match pattern"),
        (lambda a: a.__setitem__("tags", "people"), "tags: not a list of JSON objects"),
        (lambda a: a["exifInfo"].__setitem__("latitude", float("nan")), "latitude: "),  # NaN is no position
        (lambda a: a.__setitem__("type", "HOLOGRAM"), "type: Input should be"),
        (lambda a: a.__setitem__("id", 42), "asset (no id): id: "),
        # What the Asset model (execute's reading) refuses is refused here too, not let through
        # to a plan whose group execute could then never read.
        *[
            (lambda a, d=d: a["exifInfo"].__setitem__("dateTimeOriginal", d), "exifInfo.dateTimeOriginal: ")
            for d in ("2019-13-04T18:30:00.000Z", "2019-07-04T18", "2019-07-04T18:30:00+02", "2019-07-04T18:30:00+02:00:30",
                      "2019-07-04X18:30:00", "2019-W27-4T18:30:00", "2019-07-04T1830")
        ],
        (lambda a: a.__setitem__("originalFileName", None), "file_name: Input should be a valid string"),
        (lambda a: a.__setitem__("type", None), "type: Input should be"),
        (lambda a: a.__setitem__("checksum", None), "checksum: Input should be a valid string"),
        (lambda a: a.__setitem__("isFavorite", None), "is_favorite: Input should be a valid boolean"),
        (lambda a: a.__setitem__("isOffline", None), "is_offline: Input should be a valid boolean"),
        (lambda a: a.__setitem__("tags", {}), "tags: not a list of JSON objects"),
        (lambda a: a.__setitem__("tags", [{"id": "0a000000-0000-4000-8000-000000000009", "value": None}]),
         "tags[0]: a tag's value or name is null"),
        (lambda a: a["exifInfo"].__setitem__("description", 0), "description: Input should be a valid string"),
        (lambda a: a.__setitem__("exifInfo", ""), "exifInfo: not a JSON object"),
        (lambda a: a["exifInfo"].__setitem__("exifImageWidth", "wide"), "exifInfo.exifImageWidth: "),
        (lambda a: a["exifInfo"].__setitem__("rating", 2.5), "exifInfo.rating: "),
    ],
)
def test_a_bad_asset_is_refused_with_its_id_and_field(change: Any, needle: str) -> None:
    good = {**base(), "id": "0a000000-0000-4000-8000-000000000001"}
    bad = base()
    change(bad)
    with pytest.raises(AssetDataError) as err:
        plan_assets([good, bad])
    text = str(err.value)
    assert needle in text
    if "(no id)" not in needle:
        assert text.startswith(f"asset {bad['id']}: ")


def test_a_group_is_validated_in_one_pass_and_keeps_its_order() -> None:
    assets = recorded_assets()[:5]
    recs = plan_assets(assets)
    assert [r.id for r in recs] == [a["id"] for a in assets]
    assert recs == [plan_asset(a) for a in assets]


def test_fields_at_their_default_are_not_passed_to_the_model() -> None:
    """Same records as validating every field, but pydantic's per-record set of given fields
    stays small (it was a third of a record's memory)."""
    from immich_dupes.analysis.decide import plan_asset_fields
    from immich_dupes.analysis.plan import PlanAsset

    assets = recorded_assets()
    recs = plan_assets(assets)
    assert recs == [PlanAsset.model_validate(plan_asset_fields(a)) for a in assets]
    assert max(len(r.model_fields_set) for r in recs) < len(PlanAsset.model_fields) - 5
