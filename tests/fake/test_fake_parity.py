"""The fake answers like the recorded Immich 3.1 server: same keys, types, statuses and values."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import httpx
import pytest
from fake_support import client, jpeg, recorded, upload

from immich_dupes.fake import FakeImmich


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def compatible(ours: Any, real: Any, where: str = "") -> list[str]:
    """Same keys everywhere, same JSON type wherever both sides have a value."""
    if isinstance(real, dict):
        if not isinstance(ours, dict):
            return [f"{where}: expected an object"]
        problems = []
        if set(ours) != set(real):
            problems.append(
                f"{where}: keys differ: +{sorted(set(ours) - set(real))} -{sorted(set(real) - set(ours))}"
            )
        for k in set(ours) & set(real):
            problems += compatible(ours[k], real[k], f"{where}.{k}")
        return problems
    if isinstance(real, list):
        if not isinstance(ours, list):
            return [f"{where}: expected a list"]
        if ours and real:
            return compatible(ours[0], real[0], f"{where}[0]")
        return []
    if real is None or ours is None:
        return []
    kinds = (bool, int | float, str)
    for kind in kinds:
        if isinstance(real, kind):
            return (
                []
                if isinstance(ours, kind) and not (kind is not bool and isinstance(ours, bool))
                else [f"{where}: {type(ours).__name__} vs {type(real).__name__}"]
            )
    return []


# ----------------------------------------------------------------------------- duplicates


def _by_name(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["originalFileName"]: a for g in groups for a in g["assets"]}


def test_duplicates_group_and_asset_shape_match_the_recording(api: httpx.Client) -> None:
    real = recorded("duplicates-admin.json")
    ours = api.get("/api/duplicates").json()
    assert [set(g) for g in ours] == [set(real[0])] * len(ours)
    real_asset = real[0]["assets"][0]
    for g in ours:
        for a in g["assets"]:
            assert list(a) == list(real_asset), "asset keys (and their order) as recorded"
            assert list(a["exifInfo"]) == list(real_asset["exifInfo"])
            assert compatible(a, real_asset) == []


def test_sample_mirrors_the_recorded_scenes(api: httpx.Client) -> None:
    real = _by_name(recorded("duplicates-admin.json"))
    ours = _by_name(api.get("/api/duplicates").json())
    assert set(real) <= set(ours), "every recorded scene file exists in the sample"
    for name, r in real.items():
        o = ours[name]
        for key in (
            "type",
            "originalMimeType",
            "isFavorite",
            "visibility",
            "isArchived",
            "duration",
        ):
            assert o[key] == r[key], (name, key)
        assert (o["libraryId"] is None) == (r["libraryId"] is None), name
        assert o["originalPath"].startswith(r["originalPath"].rsplit("/", 4)[0][:12]), name
        assert when(o["fileCreatedAt"]) == when(r["fileCreatedAt"]), name
        assert when(o["localDateTime"]) == when(r["localDateTime"]), name
        oe, re_ = o["exifInfo"], r["exifInfo"]
        assert when(oe["dateTimeOriginal"]) == when(re_["dateTimeOriginal"]), name
        for key in (
            "timeZone",
            "latitude",
            "longitude",
            "city",
            "state",
            "country",
            "description",
            "rating",
        ):
            assert oe[key] == re_[key], (name, key)
        assert [t["value"] for t in o["tags"]] == [t["value"] for t in r["tags"]], name


def test_suggested_keeper_per_scene_matches_the_recording(api: httpx.Client) -> None:
    def suggestions(groups: list[dict[str, Any]]) -> dict[str, str]:
        out = {}
        for g in groups:
            names = {a["id"]: a["originalFileName"] for a in g["assets"]}
            out[min(names.values())[:3]] = names[g["suggestedKeepAssetIds"][0]]
        return out

    real = suggestions(recorded("duplicates-admin.json"))
    ours = suggestions(api.get("/api/duplicates").json())
    assert {k: ours[k] for k in real} == real


def test_trashed_asset_leaves_duplicates_keeps_its_id_and_restore_brings_it_back(
    fake: FakeImmich, api: httpx.Client
) -> None:
    s05c = fake.find_asset("s05_c_small_desc.jpg")
    dup = fake.asset(s05c)["duplicateId"]
    assert (
        api.request("DELETE", "/api/assets", json={"ids": [s05c], "force": False}).status_code
        == 204
    )
    trashed = api.get(f"/api/assets/{s05c}").json()
    assert compatible(trashed, recorded("asset-trashed-s05c.json")) == []
    assert trashed["isTrashed"] is True
    assert trashed["duplicateId"] == dup

    def s05_members() -> list[str]:
        groups = api.get("/api/duplicates").json()
        return sorted(
            a["originalFileName"] for g in groups if g["duplicateId"] == dup for a in g["assets"]
        )

    real_while = _by_name(recorded("duplicates-admin-while-s05c-trashed.json"))
    assert s05_members() == sorted(n for n in real_while if n.startswith("s05"))
    r = api.post("/api/trash/restore/assets", json={"ids": [s05c]})
    assert (r.status_code, r.json()) == (200, recorded("trash-restore-assets.json"))
    assert (
        compatible(api.get(f"/api/assets/{s05c}").json(), recorded("asset-restored-s05c.json"))
        == []
    )
    real_after = _by_name(recorded("duplicates-admin-after-restore.json"))
    assert s05_members() == sorted(n for n in real_after if n.startswith("s05"))


# ----------------------------------------------------------------------------- errors


@pytest.fixture
def limited(fake: FakeImmich) -> str:
    return fake.add_api_key(fake.user_id, ["asset.read"], "real-immich admin (asset.read only)")


@pytest.fixture
def user2(fake: FakeImmich) -> str:
    return fake.add_user("Second User")[1]


def _error_cases(
    fake: FakeImmich, limited: str, user2: str
) -> list[tuple[str, str, str, str | None, Any]]:
    s01 = fake.find_asset("s01_small_gps.jpg")
    s06_group = fake.asset(fake.find_asset("s06_png_nometa.png"))["duplicateId"]
    s06 = [fake.find_asset("s06_png_nometa.png"), fake.find_asset("s06_jpeg_exif.jpg")]
    return [
        ("error-401-bad-api-key.json", "GET", "/api/users/me", "this-is-not-a-valid-api-key", None),
        ("error-401-no-credentials.json", "GET", "/api/duplicates", None, None),
        (
            "error-asset-id-does-not-exist.json",
            "GET",
            "/api/assets/399eb182-afea-4389-be45-bdcf674ccfa0",
            "admin",
            None,
        ),
        ("error-asset-id-malformed.json", "GET", "/api/assets/not-a-uuid", "admin", None),
        ("error-403-limited-key-get-duplicates.json", "GET", "/api/duplicates", limited, None),
        (
            "error-403-limited-key-put-asset.json",
            "PUT",
            f"/api/assets/{s01}",
            limited,
            {"description": "x"},
        ),
        (
            "error-403-limited-key-delete-assets.json",
            "DELETE",
            "/api/assets",
            limited,
            {"ids": [s01]},
        ),
        ("error-user2-get-admin-asset.json", "GET", f"/api/assets/{s01}", user2, None),
        (
            "error-user2-put-admin-asset.json",
            "PUT",
            f"/api/assets/{s01}",
            user2,
            {"description": "x"},
        ),
        (
            "error-user2-delete-admin-asset.json",
            "DELETE",
            "/api/assets",
            user2,
            {"ids": [s01], "force": False},
        ),
        (
            "error-user2-delete-admin-duplicate-group.json",
            "DELETE",
            f"/api/duplicates/{s06_group}",
            user2,
            None,
        ),
        (
            "error-user2-resolve-admin-duplicate-group.json",
            "POST",
            "/api/duplicates/resolve",
            user2,
            {
                "groups": [
                    {"duplicateId": s06_group, "keepAssetIds": s06[:1], "trashAssetIds": s06[1:]}
                ]
            },
        ),
        (
            "error-400-put-asset-latitude-string.json",
            "PUT",
            f"/api/assets/{s01}",
            "admin",
            {"latitude": "abc"},
        ),
        (
            "error-400-put-asset-latitude-out-of-range.json",
            "PUT",
            f"/api/assets/{s01}",
            "admin",
            {"latitude": 123.0, "longitude": 10.0},
        ),
        (
            "error-400-put-asset-rating-zero.json",
            "PUT",
            f"/api/assets/{s01}",
            "admin",
            {"rating": 0},
        ),
        (
            "error-put-asset-dateTimeOriginal-garbage.json",
            "PUT",
            f"/api/assets/{s01}",
            "admin",
            {"dateTimeOriginal": "not a date"},
        ),
        (
            "error-400-delete-assets-ids-not-array.json",
            "DELETE",
            "/api/assets",
            "admin",
            {"ids": "x"},
        ),
        ("error-404-unknown-route.json", "GET", "/api/this-route-does-not-exist", "admin", None),
    ]


def test_every_recorded_error_body_is_reproduced_exactly(
    fake: FakeImmich, limited: str, user2: str
) -> None:
    index = {r["file"]: r for r in recorded("index.json")["recordings"]}
    cases = _error_cases(fake, limited, user2)
    assert len(cases) >= 18
    for file, method, path, key, body in cases:
        with client(fake, key) as c:
            r = c.request(method, path, json=body) if body is not None else c.request(method, path)
        assert r.status_code == index[file]["status"], file
        assert r.json() == recorded(file), file
        assert r.headers["x-correlation-id"], file


def test_body_that_is_not_json_gives_nodes_parse_message(
    fake: FakeImmich, api: httpx.Client
) -> None:
    s01 = fake.find_asset("s01_small_gps.jpg")
    r = api.put(
        f"/api/assets/{s01}", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()) == (400, recorded("error-put-asset-not-json.json"))


# ----------------------------------------------------------------------------- upload


def test_upload_created_then_duplicate_like_the_recording(api: httpx.Client) -> None:
    data = jpeg("2020:01:02 03:04:05", -180, make="Nikon", model="Z 6")
    first = upload(api, data, "rec_edit_target.jpg")
    second = upload(api, data, "rec_edit_target.jpg")
    real_first, real_second = (
        recorded("upload-new-file-201.json"),
        recorded("upload-same-file-again-200-duplicate.json"),
    )
    assert first.status_code == 201
    assert list(first.json()) == list(real_first)
    assert second.status_code == 200
    assert list(second.json()) == list(real_second), "key order as recorded"
    assert first.json()["status"] == "created"
    assert second.json() == {
        "status": "duplicate",
        "id": first.json()["id"],
    }
    check = api.post(
        "/api/assets/bulk-upload-check",
        json={
            "assets": [
                {"id": "rec_edit_target.jpg", "checksum": hashlib.sha1(data).hexdigest()},
                {"id": "never-uploaded.jpg", "checksum": "0" * 40},
            ]
        },
    )
    real = recorded("bulk-upload-check-existing-and-new.json")
    assert check.status_code == 200
    got = check.json()
    assert [list(x) for x in got["results"]] == [list(x) for x in real["results"]]
    assert got["results"][0] | {"assetId": "x"} == real["results"][0] | {"assetId": "x"}
    assert got["results"][0]["assetId"] == first.json()["id"]
    assert got["results"][1] == real["results"][1]


# ----------------------------------------------------------------------------- albums, tags, server


def test_albums_containing_an_asset_have_the_recorded_shape(
    fake: FakeImmich, api: httpx.Client
) -> None:
    s11 = fake.find_asset("s11_small_fav_album.jpg")
    ours = api.get("/api/albums", params={"assetId": s11}).json()
    real = recorded("albums-containing-s11-small.json")
    assert len(ours) == 1
    assert list(ours[0]) == list(real[0])
    assert compatible(ours, real) == []
    assert ours[0]["albumName"] == real[0]["albumName"]
    assert ours[0]["albumUsers"][0]["role"] == "owner"
    assert ours[0]["albumUsers"][0]["user"]["id"] == fake.user_id
    assert when(ours[0]["startDate"]) == when(real[0]["startDate"])


def test_tags_have_the_recorded_shape_and_hierarchy(api: httpx.Client) -> None:
    ours = {t["value"]: t for t in api.get("/api/tags").json()}
    real = {t["value"]: t for t in recorded("tags-admin.json")}
    for value, r in real.items():
        assert list(ours[value]) == list(r)
    assert ours["seed/keep-me"]["parentId"] == ours["seed"]["id"]


@pytest.mark.parametrize(
    ("path", "file", "exact"),
    [
        ("/api/server/version", "server-version.json", True),
        ("/api/server/features", "server-features.json", True),
        ("/api/server/config", "server-config.json", True),
        ("/api/server/ping", "server-ping.json", True),
        ("/api/users/me", "users-me-admin.json", False),
    ],
)
def test_server_endpoints_match_the_recording(
    api: httpx.Client, path: str, file: str, exact: bool
) -> None:
    r = api.get(path)
    assert r.status_code == 200
    if exact:
        assert r.json() == recorded(file)
    else:
        assert list(r.json()) == list(recorded(file))
        assert compatible(r.json(), recorded(file)) == []


def test_ping_version_features_config_need_no_key(fake: FakeImmich) -> None:
    with client(fake, None) as c:
        for path in (
            "/api/server/ping",
            "/api/server/version",
            "/api/server/features",
            "/api/server/config",
        ):
            assert c.get(path).status_code == 200, path
        assert c.get("/.well-known/immich").json() == {"api": {"endpoint": "/api"}}


def test_api_keys_me_of_a_limited_key(fake: FakeImmich, limited: str) -> None:
    with client(fake, limited) as c:
        r = c.get("/api/api-keys/me")
        assert r.status_code == 200
        assert list(r.json()) == list(recorded("api-keys-me-limited.json"))
        assert r.json()["permissions"] == ["asset.read"]
        assert r.json()["name"] == recorded("api-keys-me-limited.json")["name"]
        s01 = fake.find_asset("s01_small_gps.jpg")
        assert (
            compatible(
                c.get(f"/api/assets/{s01}").json(), recorded("limited-key-get-asset-allowed.json")
            )
            == []
        )


# ----------------------------------------------------------------------------- dates and zones


TZ_FIELDS = ("fileCreatedAt", "fileModifiedAt", "localDateTime")
EXIF_FIELDS = (
    "dateTimeOriginal",
    "timeZone",
    "latitude",
    "longitude",
    "city",
    "state",
    "country",
    "description",
    "rating",
)


def assert_like(ours: dict[str, Any], file: str) -> None:
    real = recorded(file)
    assert list(ours) == list(real), f"{file}: keys"
    for key in TZ_FIELDS:
        assert when(ours[key]) == when(real[key]), f"{file}: {key} {ours[key]} != {real[key]}"
    for key in EXIF_FIELDS:
        o, r = ours["exifInfo"][key], real["exifInfo"][key]
        if key == "dateTimeOriginal":
            o, r = when(o), when(r)
        assert o == r, f"{file}: exifInfo.{key} {o!r} != {r!r}"


def test_timezone_sequence_of_the_recording_is_replayed() -> None:
    fake = FakeImmich(library="empty", jobs_mode="manual")
    with client(fake) as c:
        data = jpeg("2020:01:02 03:04:05", -180, make="Nikon", model="Z 6")
        aid = upload(c, data, "rec_edit_target.jpg").json()["id"]
        url = f"/api/assets/{aid}"
        assert_like(c.get(url).json(), "asset-edit-target-before-put.json")

        steps: list[tuple[dict[str, Any], str, str]] = [
            (
                {
                    "latitude": 35.6762,
                    "longitude": 139.6503,
                    "description": "edited via API",
                    "dateTimeOriginal": "2021-03-04T05:06:07.000+09:00",
                },
                "put-asset-metadata-offset-plus0900-response.json",
                "asset-edit-target-after-put-jobs-done.json",
            ),
            (
                {"dateTimeOriginal": "2021-03-04T05:06:07.000Z"},
                "put-asset-dateTimeOriginal-Z-response.json",
                "asset-edit-target-after-put-Z.json",
            ),
            (
                {"dateTimeOriginal": "2021-03-04T05:06:07"},
                "put-asset-dateTimeOriginal-no-offset-response.json",
                "asset-edit-target-after-put-no-offset.json",
            ),
            (
                {"dateTimeOriginal": "2021-03-04T05:06:07.000-04:30"},
                "put-asset-dateTimeOriginal-minus0430-response.json",
                "asset-edit-target-after-put-minus0430.json",
            ),
        ]
        for body, immediate, after in steps:
            r = c.put(url, json=body)
            assert r.status_code == 200
            assert_like(r.json(), immediate)
            if immediate.startswith("put-asset-metadata"):
                assert_like(c.get(url).json(), "asset-edit-target-after-put-immediate.json")
            assert fake.run_jobs() >= 1
            assert_like(c.get(url).json(), after)

        assert (
            c.put("/api/assets", json={"ids": [aid], "timeZone": "Europe/Paris"}).status_code == 204
        )
        fake.run_jobs()
        assert_like(c.get(url).json(), "asset-edit-target-after-bulk-timezone.json")
        assert_like(c.put(url, json={"notAField": 1}).json(), "put-asset-unknown-field.json")
        assert_like(
            c.put(url, json={"description": "", "rating": None}).json(),
            "put-asset-clear-description-and-rating-null.json",
        )


@pytest.mark.parametrize(
    ("offset", "name"),
    [("+05:30", "plus0530"), ("-04:30", "minus0430"), ("+02:00", "plus0200")],
)
def test_offset_probes_stick_or_revert_like_the_recording(offset: str, name: str) -> None:
    fake = FakeImmich(library="empty", jobs_mode="manual")
    with client(fake) as c:
        aid = upload(
            c, jpeg("2020:01:02 03:04:05", -180, seed=hash(name) % 100), f"probe_{name}.jpg"
        ).json()["id"]
        r = c.put(
            f"/api/assets/{aid}", json={"dateTimeOriginal": f"2021-03-04T05:06:07.000{offset}"}
        )
        assert_like(r.json(), f"put-probe-{name}-response.json")
        fake.run_jobs()
        assert_like(c.get(f"/api/assets/{aid}").json(), f"asset-probe-{name}-after-jobs.json")


def test_resolve_merges_unique_gps_and_trashes_like_the_recording(
    fake: FakeImmich, api: httpx.Client
) -> None:
    large, small = fake.find_asset("s01_large_nogps.jpg"), fake.find_asset("s01_small_gps.jpg")
    dup = fake.asset(large)["duplicateId"]
    r = api.post(
        "/api/duplicates/resolve",
        json={"groups": [{"duplicateId": dup, "keepAssetIds": [large], "trashAssetIds": [small]}]},
    )
    real = recorded("duplicates-resolve-user2-response.json")
    assert r.status_code == 200
    assert [list(x) for x in r.json()] == [list(x) for x in real]
    assert r.json() == [{"id": dup, "success": True}]
    kept, trashed = api.get(f"/api/assets/{large}").json(), api.get(f"/api/assets/{small}").json()
    assert compatible(kept, recorded("asset-user2-kept-after-resolve.json")) == []
    assert (kept["exifInfo"]["latitude"], kept["exifInfo"]["longitude"]) == (48.8566, 2.3522)
    assert kept["duplicateId"] is None
    assert kept["isTrashed"] is False
    assert trashed["isTrashed"] is True
    assert trashed["duplicateId"] is None
    assert dup not in {g["duplicateId"] for g in api.get("/api/duplicates").json()}
