"""The sample and synthetic libraries: real EXIF, every analysis case, determinism, speed."""

from __future__ import annotations

import base64
import hashlib
import io
import math
import re
import time
from typing import Any

from fake_support import client
from PIL import Image

from immich_dupes.fake import FakeImmich
from immich_dupes.fake.library import sample_files

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _groups_by_scene(fake: FakeImmich) -> dict[str, list[dict[str, Any]]]:
    return {g["assets"][0]["originalFileName"][:3]: g["assets"] for g in fake.groups()}


def test_sample_files_carry_real_exif(fake: FakeImmich) -> None:
    data = fake.file_bytes(fake.find_asset("s01_small_gps.jpg"))
    img = Image.open(io.BytesIO(data))
    exif = img.getexif()
    sub, gps = exif.get_ifd(0x8769), exif.get_ifd(0x8825)
    assert (exif[0x010F], exif[0x0110]) == ("Apple", "iPhone 13")
    assert (sub[0x9003], sub[0x9011]) == ("2022:05:01 10:00:00", "+02:00")
    lat = sum(float(v) / 60**i for i, v in enumerate(gps[2]))
    assert gps[1] == "N"
    assert abs(lat - 48.8566) < 1e-4
    desc = Image.open(io.BytesIO(fake.file_bytes(fake.find_asset("s04_small_desc.jpg")))).getexif()[
        0x010E
    ]
    assert desc.startswith("Harbour at dawn")
    png = Image.open(io.BytesIO(fake.file_bytes(fake.find_asset("s06_png_nometa.png"))))
    assert png.format == "PNG"
    assert not png.getexif()
    for name in ("s01_large_nogps.jpg", "s05_a_large_dateonly.jpg", "s12_small_rated_tagged.jpg"):
        a = fake.asset(fake.find_asset(name))
        img = Image.open(io.BytesIO(fake.file_bytes(a["id"])))
        assert (
            img.size
            == (a["exifInfo"]["exifImageWidth"], a["exifInfo"]["exifImageHeight"])
            == (a["width"], a["height"])
        )
        assert (
            a["checksum"]
            == base64.b64encode(hashlib.sha1(fake.file_bytes(a["id"])).digest()).decode()
        )


def test_copies_look_alike_and_scenes_differ(fake: FakeImmich) -> None:
    def tiny(name: str) -> list[int]:
        img = (
            Image.open(io.BytesIO(fake.file_bytes(fake.find_asset(name))))
            .convert("L")
            .resize((8, 6))
        )
        return list(img.tobytes())

    def dist(a: list[int], b: list[int]) -> float:
        return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)

    same = dist(tiny("s01_large_nogps.jpg"), tiny("s01_small_gps.jpg"))
    other = dist(tiny("s01_large_nogps.jpg"), tiny("s02_large_berlin.jpg"))
    assert same < 8 < other


def _km(a: dict[str, Any], b: dict[str, Any]) -> float:
    la1, lo1, la2, lo2 = map(
        math.radians, (a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    )
    h = (
        math.sin((la2 - la1) / 2) ** 2
        + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_every_analysis_case_is_in_the_sample(fake: FakeImmich) -> None:
    scenes = _groups_by_scene(fake)
    assert len(scenes) == 18
    s02 = {a["originalFileName"]: a["exifInfo"] for a in scenes["s02"]}
    assert 450 < _km(s02["s02_small_munich.jpg"], s02["s02_large_berlin.jpg"]) < 550
    s19 = [a["exifInfo"] for a in scenes["s19"]]
    assert 0.01 < _km(s19[0], s19[1]) < 0.04
    assert {a["exifInfo"]["dateTimeOriginal"][-9:-6] for a in scenes["s19"]} == {":00", ":01"}
    assert sorted(a["exifInfo"]["description"] for a in scenes["s16"]) == [
        "Evening at the pier",
        "Sunset over the bay",
    ]
    assert {a["type"] for a in scenes["s17"]} == {"IMAGE", "VIDEO"}
    assert all(
        a["width"] is None and a["exifInfo"]["exifImageWidth"] is None for a in scenes["s18"]
    )
    assert {a["exifInfo"]["timeZone"] for a in scenes["s20"]} == {None, "UTC-3:30"}
    assert {a["exifInfo"]["timeZone"] for a in scenes["s03"]} == {"UTC", "UTC+2"}
    live = [a for a in scenes["s15"] if a["livePhotoVideoId"]]
    assert len(live) == 1
    assert fake.asset(live[0]["livePhotoVideoId"])["visibility"] == "hidden"
    assert sum(a["libraryId"] is not None for a in scenes["s10"]) == 1
    assert [a["visibility"] for a in scenes["s13"] if a["isArchived"]] == ["archive"]
    assert len(scenes["s05"]) == 3
    assert {a["exifInfo"]["exifImageWidth"] for a in scenes["s06"]} == {1000}


def test_sample_is_deterministic_and_ids_look_like_immich() -> None:
    a, b = FakeImmich(), FakeImmich()
    with client(a) as ca, client(b) as cb:
        assert ca.get("/api/duplicates").content == cb.get("/api/duplicates").content
    assert a.api_key != b.api_key, "keys are secrets, generated per server"
    assert a.user_id == b.user_id
    assert all(UUID4.match(i) for i in a.asset_ids())
    assert UUID4.match(a.user_id)


def test_sample_builds_quickly_from_cold() -> None:
    sample_files.cache_clear()
    t = time.perf_counter()
    FakeImmich()
    assert time.perf_counter() - t < 3.0


def test_synthetic_library_shape_checksums_and_sizes() -> None:
    fake = FakeImmich(library="synthetic:300")
    groups = fake.groups()
    assert len(groups) >= 290  # an archived copy never hides a group, a hidden one would
    assert all(2 <= len(g["assets"]) <= 3 for g in groups)
    assets = [a for g in groups for a in g["assets"]]
    assert any(a["exifInfo"]["latitude"] is not None for a in assets)
    assert any(a["exifInfo"]["description"] for a in assets)
    assert any(a["libraryId"] is not None for a in assets)
    assert any(a["tags"] for a in assets)
    assert any(a["isFavorite"] for a in assets)
    with client(fake) as api:
        for a in [x for x in assets if x["libraryId"] is None][:10]:
            body = api.get(f"/api/assets/{a['id']}/original").content
            assert len(body) == a["exifInfo"]["fileSizeInByte"] < 60_000
            assert base64.b64encode(hashlib.sha1(body).digest()).decode() == a["checksum"]
        thumb = api.get(f"/api/assets/{assets[0]['id']}/thumbnail")
        assert thumb.status_code == 200
        assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"
    again = FakeImmich(library="synthetic:300")
    assert [g["duplicateId"] for g in again.groups()] == [g["duplicateId"] for g in groups]


def test_synthetic_original_size() -> None:
    fake = FakeImmich(library="synthetic:3", original_size=1_000_000)
    sizes = sorted(a["exifInfo"]["fileSizeInByte"] for g in fake.groups() for a in g["assets"])
    assert 900_000 < sizes[-1] <= 1_000_000
    assert sizes[0] >= 300_000


def test_synthetic_20000_builds_and_lists_fast() -> None:
    t = time.perf_counter()
    fake = FakeImmich(library="synthetic:20000")
    built = time.perf_counter() - t
    with client(fake) as api:
        t = time.perf_counter()
        first = api.get("/api/duplicates")
        listed = time.perf_counter() - t
        t = time.perf_counter()
        again = api.get("/api/duplicates")
        cached = time.perf_counter() - t
        aid = first.content[first.content.index(b'"assets":[{"id":"') + 17 :][:36].decode()
        assert api.put(f"/api/assets/{aid}", json={"description": "changed"}).status_code == 200
        changed = api.get("/api/duplicates")
    assert first.status_code == 200
    assert again.content == first.content
    assert b'"description":"changed"' in changed.content
    assert built < 8, built
    assert listed < 8, listed
    assert cached < 1, cached
    assert first.content.count(b'{"duplicateId":') >= 19_500
