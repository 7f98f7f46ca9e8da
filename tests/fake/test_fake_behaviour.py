"""Server behaviour the client depends on: jobs, trash and purge, groups, albums, tags, stacks,
live photos, upload, search, downloads, profiles and the accessors tests use."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import httpx
import pytest
from fake_support import client, jpeg, upload
from PIL import Image

from immich_dupes.fake import FakeImmich


def b64sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def group_of(api: httpx.Client, dup: str) -> list[str]:
    return [
        a["originalFileName"]
        for g in api.get("/api/duplicates").json()
        if g["duplicateId"] == dup
        for a in g["assets"]
    ]


# ----------------------------------------------------------------------------- jobs


def test_auto_jobs_run_before_the_next_request_not_inside_the_one_that_queued_them(
    fake: FakeImmich, api: httpx.Client
) -> None:
    aid = fake.find_asset("s01_large_nogps.jpg")
    r = api.put(f"/api/assets/{aid}", json={"dateTimeOriginal": "2022-05-01T20:00:00+09:00"})
    assert r.json()["localDateTime"] == "2022-05-01T10:00:00.000Z", "answered before the job ran"
    assert fake.pending_jobs == 1
    after = api.get(f"/api/assets/{aid}").json()
    assert after["localDateTime"] == "2022-05-01T20:00:00.000Z"
    assert after["fileCreatedAt"] == "2022-05-01T11:00:00.000Z"
    assert fake.pending_jobs == 0


def test_manual_jobs_wait_for_run_jobs() -> None:
    fake = FakeImmich(jobs_mode="manual")
    aid = fake.find_asset("s01_large_nogps.jpg")
    with client(fake) as api:
        api.put(f"/api/assets/{aid}", json={"dateTimeOriginal": "2022-05-01T20:00:00+09:00"})
        assert api.get(f"/api/assets/{aid}").json()["localDateTime"] == "2022-05-01T10:00:00.000Z"
        assert api.get(f"/api/assets/{aid}").json()["exifInfo"]["timeZone"] == "UTC+9"
        assert fake.run_jobs() == 1
        assert api.get(f"/api/assets/{aid}").json()["localDateTime"] == "2022-05-01T20:00:00.000Z"


def test_gps_edit_makes_the_zone_that_of_the_position_after_a_date_edit(
    fake: FakeImmich, api: httpx.Client
) -> None:
    aid = fake.find_asset("s20_large_nooffset.jpg")
    api.put(
        f"/api/assets/{aid}",
        json={
            "latitude": 40.7128,
            "longitude": -74.006,
            "dateTimeOriginal": "2016-01-15T14:00:00-05:00",
        },
    )
    a = api.get(f"/api/assets/{aid}").json()
    assert a["exifInfo"]["timeZone"] == "America/New_York"
    assert a["exifInfo"]["city"] == "New York"
    assert a["localDateTime"] == "2016-01-15T14:00:00.000Z"


def test_newfoundland_offset_is_lost_like_minus_0430(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s20_large_nooffset.jpg")
    before = api.get(f"/api/assets/{aid}").json()
    r = api.put(f"/api/assets/{aid}", json={"dateTimeOriginal": "2016-01-15T14:00:00-03:30"})
    assert r.json()["exifInfo"]["timeZone"] == "UTC-3:30"
    after = api.get(f"/api/assets/{aid}").json()
    assert after["exifInfo"]["timeZone"] is None
    assert after["localDateTime"] == before["localDateTime"]


def test_bulk_time_zone_without_gps_recomputes_local_time(
    fake: FakeImmich, api: httpx.Client
) -> None:
    aid = fake.find_asset("s03_small_plus0000.jpg")
    assert (
        api.put("/api/assets", json={"ids": [aid], "timeZone": "Asia/Kolkata"}).status_code == 204
    )
    a = api.get(f"/api/assets/{aid}").json()
    assert a["exifInfo"]["timeZone"] == "Asia/Kolkata"
    assert a["localDateTime"] == "2023-07-14T22:00:00.000Z"
    assert a["fileCreatedAt"] == "2023-07-14T16:30:00.000Z"


# ----------------------------------------------------------------------------- trash, purge


def test_force_delete_purges_when_jobs_run(fake: FakeImmich) -> None:
    fake.jobs_mode = "manual"
    aid = fake.find_asset("s13_small_archived.jpg")
    with client(fake) as api:
        assert (
            api.request("DELETE", "/api/assets", json={"ids": [aid], "force": True}).status_code
            == 204
        )
        a = api.get(f"/api/assets/{aid}").json()
        assert a["isTrashed"] is True
        assert api.post("/api/trash/restore/assets", json={"ids": [aid]}).json() == {"count": 1}
        assert api.get(f"/api/assets/{aid}").json()["isTrashed"] is True, (
            "force-deleted assets do not come back"
        )
        fake.run_jobs()
        r = api.get(f"/api/assets/{aid}")
        assert (r.status_code, r.json()) == (400, {"message": "Not found or no asset.read access"})
    with pytest.raises(KeyError):
        fake.asset(aid)


def test_trash_empty_and_restore_all(fake: FakeImmich, api: httpx.Client) -> None:
    a, b = fake.find_asset("s04_small_desc.jpg"), fake.find_asset("s16_small_pier.jpg")
    api.request("DELETE", "/api/assets", json={"ids": [a, b]})
    assert api.post("/api/trash/restore").json() == {"count": 2}
    api.request("DELETE", "/api/assets", json={"ids": [a]})
    assert api.post("/api/trash/empty").json() == {"count": 1}
    assert api.get(f"/api/assets/{a}").status_code == 400
    assert api.get(f"/api/assets/{b}").json()["isTrashed"] is False


def test_singleton_groups_are_cleared_on_listing_from_2_7(
    fake: FakeImmich, api: httpx.Client
) -> None:
    small = fake.find_asset("s04_small_desc.jpg")
    large = fake.find_asset("s04_large_nodesc.jpg")
    dup = fake.asset(small)["duplicateId"]
    api.request("DELETE", "/api/assets", json={"ids": [small]})
    assert fake.asset(large)["duplicateId"] == dup, "nothing changes before a listing"
    assert group_of(api, dup) == []
    assert fake.asset(large)["duplicateId"] is None
    assert fake.asset(small)["duplicateId"] is None, "the trashed member loses it too"


def test_v1_keeps_singleton_duplicate_ids() -> None:
    fake = FakeImmich(profile="v1")
    small, large = fake.find_asset("s04_small_desc.jpg"), fake.find_asset("s04_large_nodesc.jpg")
    dup = fake.asset(small)["duplicateId"]
    with client(fake) as api:
        api.request("DELETE", "/api/assets", json={"ids": [small]})
        assert group_of(api, dup) == []
    assert fake.asset(large)["duplicateId"] == dup


def test_dismiss_groups_and_foreign_groups(fake: FakeImmich, api: httpx.Client) -> None:
    s06 = fake.asset(fake.find_asset("s06_png_nometa.png"))["duplicateId"]
    s07 = fake.asset(fake.find_asset("s07_tie_q95_canon.jpg"))["duplicateId"]
    _, key2 = fake.add_user("user2")
    with client(fake, key2) as other:
        r = other.delete(f"/api/duplicates/{s06}")
        assert (r.status_code, r.json()["message"]) == (
            400,
            "Not found or no duplicate.delete access",
        )
        assert other.get("/api/duplicates").json() == []
    assert api.delete(f"/api/duplicates/{s06}").status_code == 204
    assert api.request("DELETE", "/api/duplicates", json={"ids": [s07]}).status_code == 204
    listed = {g["duplicateId"] for g in api.get("/api/duplicates").json()}
    assert s06 not in listed
    assert s07 not in listed
    assert fake.asset(fake.find_asset("s06_png_nometa.png"))["duplicateId"] is None


def test_hidden_and_stacked_assets_are_not_listed(fake: FakeImmich, api: httpx.Client) -> None:
    still = fake.find_asset("s15_live_still.jpg")
    video = fake.asset(still)["livePhotoVideoId"]
    assert video is not None
    motion = api.get(f"/api/assets/{video}").json()
    assert (motion["type"], motion["visibility"]) == ("VIDEO", "hidden")
    listed = {a["id"] for g in api.get("/api/duplicates").json() for a in g["assets"]}
    assert still in listed
    assert video not in listed
    a, b = fake.find_asset("s02_small_munich.jpg"), fake.find_asset("s02_large_berlin.jpg")
    dup = fake.asset(a)["duplicateId"]
    stack = api.post("/api/stacks", json={"assetIds": [b, a]}).json()
    assert stack["primaryAssetId"] == b
    assert len(stack["assets"]) == 2
    assert api.get(f"/api/assets/{a}").json()["stack"] == {
        "id": stack["id"],
        "primaryAssetId": b,
        "assetCount": 2,
    }
    assert group_of(api, dup) == []
    assert api.delete(f"/api/stacks/{stack['id']}").status_code == 204
    assert sorted(group_of(api, dup)) == ["s02_large_berlin.jpg", "s02_small_munich.jpg"], (
        "unstacked: listed again"
    )
    assert api.get(f"/api/stacks/{stack['id']}").status_code == 400


def test_group_order_and_suggestion(fake: FakeImmich, api: httpx.Client) -> None:
    groups = api.get("/api/duplicates").json()
    assert [g["duplicateId"] for g in groups] == sorted(g["duplicateId"] for g in groups)
    for g in groups:
        times = [a["localDateTime"] for a in g["assets"]]
        assert times == sorted(times)
        sizes = {a["id"]: a["exifInfo"]["fileSizeInByte"] for a in g["assets"]}
        assert sizes[g["suggestedKeepAssetIds"][0]] == max(sizes.values())
    assert fake.groups() == groups


# ----------------------------------------------------------------------------- resolve


def test_resolve_v3_merges_metadata_into_the_single_keeper(
    fake: FakeImmich, api: httpx.Client
) -> None:
    keep, lose = (
        fake.find_asset("s12_large_plain.jpg"),
        fake.find_asset("s12_small_rated_tagged.jpg"),
    )
    api.put(f"/api/assets/{lose}", json={"isFavorite": True, "description": "line one\nline two"})
    api.put(f"/api/assets/{keep}", json={"description": "line two\nkeeper"})
    album = api.post("/api/albums", json={"albumName": "loser album", "assetIds": [lose]}).json()
    dup = fake.asset(keep)["duplicateId"]
    r = api.post(
        "/api/duplicates/resolve",
        json={"groups": [{"duplicateId": dup, "keepAssetIds": [keep], "trashAssetIds": [lose]}]},
    )
    assert r.json() == [{"id": dup, "success": True}]
    k = api.get(f"/api/assets/{keep}").json()
    assert k["isFavorite"] is True
    assert k["exifInfo"]["rating"] == 4
    assert k["exifInfo"]["description"] == "line two\nkeeper\nline one"
    assert (k["exifInfo"]["latitude"], k["exifInfo"]["longitude"]) == (-33.8688, 151.2093)
    assert [t["value"] for t in k["tags"]] == ["seed/keep-me"]
    assert keep in next(al for al in fake.albums if al["id"] == album["id"])["assetIds"]
    assert k["exifInfo"]["timeZone"] == "UTC+11", "date and zone are never touched by resolve"


def test_resolve_reports_validation_per_group_and_skips_conflicting_gps(
    fake: FakeImmich, api: httpx.Client
) -> None:
    munich, berlin = (
        fake.find_asset("s02_small_munich.jpg"),
        fake.find_asset("s02_large_berlin.jpg"),
    )
    dup = fake.asset(munich)["duplicateId"]
    bad = api.post(
        "/api/duplicates/resolve",
        json={"groups": [{"duplicateId": dup, "keepAssetIds": [berlin], "trashAssetIds": []}]},
    ).json()
    assert bad == [
        {
            "id": dup,
            "success": False,
            "error": "validation",
            "errorMessage": "Every asset must be in either keepAssetIds or trashAssetIds",
        }
    ]
    api.post(
        "/api/duplicates/resolve",
        json={
            "groups": [{"duplicateId": dup, "keepAssetIds": [berlin], "trashAssetIds": [munich]}]
        },
    )
    assert api.get(f"/api/assets/{berlin}").json()["exifInfo"]["latitude"] == 52.52


def test_resolve_is_absent_before_2_7() -> None:
    fake = FakeImmich(profile="v1")
    with client(fake) as api:
        r = api.post("/api/duplicates/resolve", json={"groups": []})
        assert r.status_code == 404
        assert r.json()["message"] == "Cannot POST /api/duplicates/resolve"


# ----------------------------------------------------------------------------- albums, tags


def test_album_membership_and_bulk_results(fake: FakeImmich, api: httpx.Client) -> None:
    fav = fake.find_asset("s11_small_fav_album.jpg")
    large = fake.find_asset("s11_large_plain.jpg")
    album = api.get("/api/albums", params={"assetId": fav}).json()[0]
    r = api.put(f"/api/albums/{album['id']}/assets", json={"ids": [fav, large]}).json()
    assert r == [
        {"id": fav, "success": False, "error": "duplicate"},
        {"id": large, "success": True},
    ]
    assert [a["id"] for a in api.get("/api/albums", params={"assetId": large}).json()] == [
        album["id"]
    ]
    assert api.get(f"/api/albums/{album['id']}").json()["assetCount"] == 2
    assert api.put(
        "/api/albums/assets", json={"albumIds": [album["id"]], "assetIds": [large]}
    ).json() == {"success": False, "error": "duplicate"}
    r = api.request(
        "DELETE", f"/api/albums/{album['id']}/assets", json={"ids": [large, large]}
    ).json()
    assert r == [
        {"id": large, "success": True},
        {"id": large, "success": False, "error": "not_found"},
    ]
    _, key2 = fake.add_user("user2")
    with client(fake, key2) as other:
        r2 = other.put(f"/api/albums/{album['id']}/assets", json={"ids": [large]})
        assert (r2.status_code, r2.json()) == (
            400,
            {"message": "Not found or no albumAsset.create access"},
        )


def test_albums_before_3_have_owner_and_assets() -> None:
    fake = FakeImmich(profile="v2")
    with client(fake) as api:
        fav = fake.find_asset("s11_small_fav_album.jpg")
        listed = api.get("/api/albums", params={"assetId": fav}).json()[0]
        assert listed["ownerId"] == fake.user_id
        assert listed["owner"]["id"] == fake.user_id
        assert listed["albumUsers"] == []
        assert listed["assets"] == []
        full = api.get(f"/api/albums/{listed['id']}").json()
        assert [a["id"] for a in full["assets"]] == [fav]
        assert (
            api.get(f"/api/albums/{listed['id']}", params={"withoutAssets": "true"}).json()[
                "assets"
            ]
            == []
        )


def test_tags_upsert_assign_and_show_on_assets(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s01_large_nogps.jpg")
    tags = api.put("/api/tags", json={"tags": ["trip/paris", "trip"]}).json()
    assert [t["value"] for t in tags] == ["trip/paris", "trip"]
    child, parent = tags
    assert child["parentId"] == parent["id"]
    assert api.put("/api/tags", json={"tags": ["trip/paris"]}).json()[0]["id"] == child["id"], (
        "upsert"
    )
    r = api.put(f"/api/tags/{child['id']}/assets", json={"ids": [aid, aid]}).json()
    assert r == [{"id": aid, "success": True}, {"id": aid, "success": False, "error": "duplicate"}]
    assert [t["value"] for t in api.get(f"/api/assets/{aid}").json()["tags"]] == ["trip/paris"]
    other = fake.find_asset("s01_small_gps.jpg")
    assert api.put(
        "/api/tags/assets", json={"tagIds": [child["id"], parent["id"]], "assetIds": [aid, other]}
    ).json() == {"count": 3}
    assert api.request(
        "DELETE", f"/api/tags/{parent['id']}/assets", json={"ids": [aid]}
    ).json() == [{"id": aid, "success": True}]
    assert {t["value"]: t["assetIds"] for t in fake.tags}["trip/paris"] == [aid, other] or set(
        {t["value"]: t["assetIds"] for t in fake.tags}["trip/paris"]
    ) == {aid, other}


# ----------------------------------------------------------------------------- live photos


def test_live_photo_video_can_be_linked_to_the_keeper_and_is_purged_when_orphaned(
    fake: FakeImmich, api: httpx.Client
) -> None:
    still, plain = fake.find_asset("s15_live_still.jpg"), fake.find_asset("s15_plain_copy.jpg")
    video = fake.asset(still)["livePhotoVideoId"]
    r = api.put(f"/api/assets/{plain}", json={"livePhotoVideoId": video})
    assert r.status_code == 200
    assert r.json()["livePhotoVideoId"] == video
    r = api.put(f"/api/assets/{plain}", json={"livePhotoVideoId": plain})
    assert (r.status_code, r.json()["message"]) == (400, "Live photo video must be a video")
    api.put(f"/api/assets/{plain}", json={"livePhotoVideoId": None})
    assert fake.asset(plain)["livePhotoVideoId"] is None
    assert fake.asset(video)["visibility"] == "timeline", "unlinking shows the video again"
    api.put(f"/api/assets/{plain}", json={"livePhotoVideoId": video})
    fake.purge(plain)
    assert fake.asset(still)["livePhotoVideoId"] == video, "still referenced: not purged"
    fake.purge(still)
    with pytest.raises(KeyError):
        fake.asset(video)


# ----------------------------------------------------------------------------- upload


def test_upload_reads_exif_and_checksums(api: httpx.Client) -> None:
    data = jpeg(
        "2019:07:04 18:30:00", 120, (48.8566, 2.3522), "Eiffel", "Canon", "EOS R5", size=(400, 300)
    )
    r = upload(api, data, "IMG_0001.jpg", created="2019-07-04T16:30:00.000Z")
    a = api.get(f"/api/assets/{r.json()['id']}").json()
    e = a["exifInfo"]
    assert a["checksum"] == b64sha1(data)
    assert a["libraryId"] is None
    assert (e["exifImageWidth"], e["exifImageHeight"], a["width"], a["height"]) == (
        400,
        300,
        400,
        300,
    )
    assert e["dateTimeOriginal"] == "2019-07-04T16:30:00+00:00"
    assert e["timeZone"] == "UTC+2"
    assert a["localDateTime"] == "2019-07-04T18:30:00.000Z"
    assert (e["latitude"], e["longitude"]) == pytest.approx((48.8566, 2.3522), abs=1e-4)
    assert (e["description"], e["make"], e["model"], e["fileSizeInByte"]) == (
        "Eiffel",
        "Canon",
        "EOS R5",
        len(data),
    )
    assert e["city"] == "Paris 04 Hôtel-de-Ville"
    assert a["originalPath"].startswith("/data/upload/")
    assert a["originalFileName"] == "IMG_0001.jpg"


def test_checksum_header_hex_or_base64_and_trashed_copies_count(
    fake: FakeImmich, api: httpx.Client
) -> None:
    aid = fake.find_asset("s01_small_gps.jpg")
    data = fake.file_bytes(aid)
    hexsum = hashlib.sha1(data).hexdigest()
    for header in (hexsum, b64sha1(data)):
        r = upload(api, b"not even read", "x.jpg", checksum=header)
        assert (r.status_code, r.json()) == (200, {"status": "duplicate", "id": aid})
    api.request("DELETE", "/api/assets", json={"ids": [aid]})
    assert upload(api, data, "again.jpg").json() == {"status": "duplicate", "id": aid}
    check = api.post(
        "/api/assets/bulk-upload-check", json={"assets": [{"id": "t", "checksum": hexsum}]}
    ).json()
    assert check["results"][0]["isTrashed"] is True
    fake.purge(aid)
    r = upload(api, data, "again.jpg", checksum=hexsum)
    assert r.status_code == 201
    assert r.json()["id"] != aid
    assert fake.asset(r.json()["id"])["exifInfo"]["latitude"] == pytest.approx(48.8566, abs=1e-4), (
        "EXIF re-read"
    )


def test_upload_validation_per_profile() -> None:
    for profile, missing in (("v3", "fileCreatedAt"), ("v2", "deviceAssetId")):
        fake = FakeImmich(library="empty", profile=profile)
        with client(fake) as api:
            r = api.post(
                "/api/assets",
                data={"fileModifiedAt": "2020-01-01T00:00:00Z"},
                files={"assetData": ("a.jpg", b"x", "image/jpeg")},
            )
            assert r.status_code == 400
            body = r.json()
            text = str(body)
            assert missing in text, (profile, body)


def test_external_library_checksum_is_of_the_path(fake: FakeImmich) -> None:
    aid = fake.find_asset("s10_library_small_gps.jpg")
    a = fake.asset(aid)
    assert a["libraryId"] is not None
    assert a["originalPath"].startswith("/mnt/external/")
    assert a["checksum"] == b64sha1(f"path:{a['originalPath']}".encode())
    assert a["checksum"] != b64sha1(fake.file_bytes(aid))


# ----------------------------------------------------------------------------- search


def test_search_metadata_pages_and_filters(fake: FakeImmich, api: httpx.Client) -> None:
    page1 = api.post("/api/search/metadata", json={"page": 1, "size": 5}).json()
    assert page1["albums"] == {"total": 0, "count": 0, "items": [], "facets": []}
    assets = page1["assets"]
    assert (assets["count"], assets["total"], assets["nextPage"]) == (5, 5, "2")
    assert "exifInfo" not in assets["items"][0]
    seen = {a["id"] for a in assets["items"]}
    page = 2
    while True:
        more = api.post("/api/search/metadata", json={"page": page, "size": 5}).json()["assets"]
        seen |= {a["id"] for a in more["items"]}
        if more["nextPage"] is None:
            break
        page = int(more["nextPage"])
    listed = {
        aid for aid in fake.asset_ids() if fake.asset(aid)["visibility"] in ("timeline", "archive")
    }
    assert seen == listed
    aid = fake.find_asset("s03_small_plus0000.jpg")
    checksum = fake.asset(aid)["checksum"]
    by_sum = api.post("/api/search/metadata", json={"checksum": checksum, "withExif": True}).json()[
        "assets"
    ]["items"]
    assert [a["id"] for a in by_sum] == [aid]
    assert "exifInfo" in by_sum[0]
    api.request("DELETE", "/api/assets", json={"ids": [aid]})
    assert api.post("/api/search/metadata", json={"id": aid}).json()["assets"]["items"] == []
    assert (
        len(
            api.post("/api/search/metadata", json={"id": aid, "withDeleted": True}).json()[
                "assets"
            ]["items"]
        )
        == 1
    )
    album = next(al for al in fake.albums if al["albumName"] == "Seed album (duplicates test)")
    in_album = api.post("/api/search/metadata", json={"albumIds": [album["id"]]}).json()["assets"][
        "items"
    ]
    assert [a["id"] for a in in_album] == album["assetIds"]
    r = api.post("/api/search/metadata", json={"size": 1001})
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "too_big"


# ----------------------------------------------------------------------------- downloads


def test_original_download_headers_range_and_missing_file(
    fake: FakeImmich, api: httpx.Client
) -> None:
    aid = fake.find_asset("s01_small_gps.jpg")
    r = api.get(f"/api/assets/{aid}/original")
    assert r.status_code == 200
    assert b64sha1(r.content) == fake.asset(aid)["checksum"]
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-length"] == str(len(r.content))
    assert r.headers["content-disposition"] == "inline; filename*=UTF-8''s01_small_gps.jpg"
    part = api.get(f"/api/assets/{aid}/original", headers={"range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == r.content[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(r.content)}"
    tail = api.get(f"/api/assets/{aid}/original", headers={"range": "bytes=-5"})
    assert tail.content == r.content[-5:]
    assert (
        api.get(
            f"/api/assets/{aid}/original", headers={"range": f"bytes={len(r.content)}-"}
        ).status_code
        == 416
    )
    fake.remove_file(aid)
    missing = api.get(f"/api/assets/{aid}/original")
    assert (missing.status_code, missing.json()) == (404, {"message": "Asset media not found"})


def test_thumbnails(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s01_large_nogps.jpg")
    thumb = api.get(f"/api/assets/{aid}/thumbnail")
    assert thumb.headers["content-type"] == "image/webp"
    img = Image.open(io.BytesIO(thumb.content))
    assert img.format == "WEBP"
    assert max(img.size) == 250
    preview = Image.open(
        io.BytesIO(api.get(f"/api/assets/{aid}/thumbnail", params={"size": "preview"}).content)
    )
    assert preview.format == "JPEG"
    assert max(preview.size) <= 1440
    full = api.get(f"/api/assets/{aid}/thumbnail", params={"size": "fullsize"})
    assert (full.status_code, full.headers["location"]) == (302, f"/api/assets/{aid}/original")
    video = fake.find_asset("s09_video_720p.mp4")
    still = Image.open(io.BytesIO(api.get(f"/api/assets/{video}/thumbnail").content))
    assert still.format == "WEBP"
    assert api.get(f"/api/assets/{aid}/thumbnail", params={"size": "huge"}).status_code == 400


# ----------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("profile", ["v1", "v2", "v3"])
def test_profile_differences(profile: str) -> None:
    fake = FakeImmich(profile=profile)
    with client(fake) as api:
        version = api.get("/api/server/version").json()
        assert ("prerelease" in version) == (profile == "v3")
        assert version["major"] == int(profile[1])
        groups = api.get("/api/duplicates").json()
        assert ("suggestedKeepAssetIds" in groups[0]) == (profile != "v1")
        video = fake.find_asset("s09_video_720p.mp4")
        a = api.get(f"/api/assets/{video}").json()
        assert a["duration"] == (3000 if profile == "v3" else "0:00:03.000000")
        assert ("width" in a) == (profile != "v1")
        assert ("deviceId" in a) == (profile != "v3")
        image = fake.find_asset("s01_large_nogps.jpg")
        if profile == "v3":
            assert api.get(f"/api/assets/{image}").json()["duration"] is None
        r = api.put(f"/api/assets/{image}", json={"rating": 0})
        if profile == "v3":
            assert r.status_code == 400
        else:
            assert r.status_code == 200
            assert r.json()["exifInfo"]["rating"] is None
        err = api.get("/api/assets/not-a-uuid").json()
        if profile == "v3":
            assert err["message"] == "Validation failed"
            assert err["errors"][0]["path"] == ["id"]
        else:
            assert err["message"] == ["id must be a UUID"]
            assert err["statusCode"] == 400
            assert err["error"] == "Bad Request"
            assert err["correlationId"]
        nf = api.get("/api/assets/399eb182-afea-4389-be45-bdcf674ccfa0").json()
        assert nf["message"] == "Not found or no asset.read access"


# ----------------------------------------------------------------------------- auth, log, accessors


def test_api_key_in_query_and_permission_names(fake: FakeImmich) -> None:
    with client(fake, None) as anon:
        assert anon.get("/api/users/me", params={"apiKey": fake.api_key}).status_code == 200
    key = fake.add_api_key(fake.user_id, ["duplicate.read"])
    with client(fake, key) as c:
        assert c.get("/api/duplicates").status_code == 200
        r = c.get(f"/api/assets/{fake.find_asset('s01_small_gps.jpg')}/original")
        assert (r.status_code, r.json()) == (
            403,
            {"message": "Missing required permission: asset.download"},
        )
        assert c.get("/api/api-keys/me").status_code == 200, "any valid key"


def test_request_log(fake: FakeImmich, api: httpx.Client) -> None:
    api.get("/api/duplicates")
    with client(fake, None) as anon:
        anon.get("/api/duplicates")
    ok, denied = fake.request_log[-2:]
    assert (ok.method, ok.path, ok.status, ok.user_id) == (
        "GET",
        "/api/duplicates",
        200,
        fake.user_id,
    )
    assert ok.body_bytes_out > 1000
    assert ok.t_end >= ok.t_start
    assert (denied.status, denied.user_id) == (401, None)


def test_accessors_as_someone_else(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s16_small_pier.jpg")
    fake.update_asset_metadata(
        aid, description="changed elsewhere", dateTimeOriginal="2018-09-02T20:30:00+02:00"
    )
    a = api.get(f"/api/assets/{aid}").json()
    assert a["exifInfo"]["description"] == "changed elsewhere"
    assert a["localDateTime"] == "2018-09-02T20:30:00.000Z"
    fake.trash_asset(aid)
    assert api.get(f"/api/assets/{aid}").json()["isTrashed"] is True
    fake.purge(aid)
    assert api.get(f"/api/assets/{aid}").status_code == 400
    assert isinstance(fake.albums, list)
    assert isinstance(fake.tags, list)


def test_users_are_isolated(fake: FakeImmich) -> None:
    uid, key = fake.add_user("user2", library="sample")
    with client(fake, key) as other:
        me: dict[str, Any] = other.get("/api/users/me").json()
        assert me["id"] == uid
        assert me["isAdmin"] is False
        theirs = other.get("/api/duplicates").json()
        mine = fake.groups()
        assert len(theirs) == len(mine)
        assert not {a["id"] for g in theirs for a in g["assets"]} & {
            a["id"] for g in mine for a in g["assets"]
        }
        assert all(a["ownerId"] == uid for g in theirs for a in g["assets"])


def test_a_bug_in_a_handler_answers_500_and_keeps_the_traceback(
    fake: FakeImmich, api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(owner: str) -> bytes:
        raise RuntimeError("bug")

    monkeypatch.setattr(fake._store, "duplicates_json", boom)
    r = api.get("/api/duplicates")
    assert (r.status_code, r.json()) == (500, {"message": "Internal server error"})
    assert "RuntimeError: bug" in fake.errors[-1]
    assert api.get("/api/server/ping").status_code == 200


def test_upload_of_something_that_is_not_a_picture(api: httpx.Client) -> None:
    r = upload(api, b"definitely not a jpeg", "broken.jpg")
    assert r.status_code == 201
    a = api.get(f"/api/assets/{r.json()['id']}").json()
    assert a["exifInfo"]["exifImageWidth"] is None
    assert a["fileCreatedAt"] == "2020-01-02T06:04:05.000Z", (
        "no EXIF date: the upload's fileCreatedAt"
    )
    thumb = api.get(f"/api/assets/{a['id']}/thumbnail")
    assert thumb.status_code == 200
    assert Image.open(io.BytesIO(thumb.content)).format == "WEBP"


def test_bulk_relative_shift_and_grouping_by_duplicate_id(
    fake: FakeImmich, api: httpx.Client
) -> None:
    aid = fake.find_asset("s11_large_plain.jpg")
    assert api.put("/api/assets", json={"ids": [aid], "dateTimeRelative": 90}).status_code == 204
    a = api.get(f"/api/assets/{aid}").json()
    assert a["fileCreatedAt"] == "2015-05-05T16:35:00.000Z"
    assert a["exifInfo"]["timeZone"] == "UTC"
    x, y = fake.find_asset("s03_small_plus0000.jpg"), fake.find_asset("s04_small_desc.jpg")
    new_group = "0d9c1a37-8b1e-4c55-9f4e-3c2a1b0e9d11"
    assert api.put("/api/assets", json={"ids": [x, y], "duplicateId": new_group}).status_code == 204
    assert sorted(group_of(api, new_group)) == ["s03_small_plus0000.jpg", "s04_small_desc.jpg"]
    bad = api.put("/api/assets", json={"ids": ["nope"]})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["path"] == ["ids", 0]


def test_before_2_4_the_put_keeps_the_zone_until_the_jobs_ran() -> None:
    fake = FakeImmich(profile="v1", jobs_mode="manual")
    aid = fake.find_asset("s03_small_plus0000.jpg")
    with client(fake) as api:
        r = api.put(
            f"/api/assets/{aid}", json={"dateTimeOriginal": "2023-07-14T18:30:00+02:00"}
        ).json()
        assert r["exifInfo"]["timeZone"] == "UTC"
        fake.run_jobs()
        assert api.get(f"/api/assets/{aid}").json()["exifInfo"]["timeZone"] == "UTC+2"


def test_warm_prepares_the_listing() -> None:
    fake = FakeImmich(library="synthetic:50")
    fake.warm()
    with client(fake) as api:
        assert len(api.get("/api/duplicates").json()) == len(fake.groups())
