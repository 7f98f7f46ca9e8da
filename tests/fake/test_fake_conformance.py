"""Every kind of answer the fake gives validates against the OpenAPI spec of its profile.

The specs live in ``<repo>/../shared/immich`` (never copied into the project); without them
these tests skip. Error bodies have no schema in the specs: they are checked against the
version's documented shape (``{message[, errors]}`` in v3, ``{message, error, statusCode,
correlationId}`` before).
"""

from __future__ import annotations

import pytest
from fake_support import ERROR_V3, Exchange, Recorder, SpecChecker, client, jpeg, spec_for, upload

from immich_dupes.fake import FakeImmich

PROFILES = ("v1", "v2", "v3")


def run_scenario(profile: str) -> tuple[FakeImmich, list[Exchange]]:
    """Call every endpoint the fake serves, with successes and each kind of error."""
    fake = FakeImmich(library="sample", profile=profile)
    rec = Recorder()
    user2_id, user2 = fake.add_user("user2")
    limited = fake.add_api_key(fake.user_id, ["asset.read"], "limited")
    ids = {
        name: fake.find_asset(name)
        for name in (
            "s01_small_gps.jpg",
            "s01_large_nogps.jpg",
            "s02_small_munich.jpg",
            "s02_large_berlin.jpg",
            "s03_small_plus0000.jpg",
            "s04_small_desc.jpg",
            "s05_c_small_desc.jpg",
            "s09_video_720p.mp4",
            "s11_small_fav_album.jpg",
            "s12_small_rated_tagged.jpg",
            "s13_small_archived.jpg",
            "s16_small_pier.jpg",
            "s16_large_sunset.jpg",
            "s19_small_rome.jpg",
            "s07_tie_q75_pixel_gps.jpg",
        )
    }
    s01, s01l = ids["s01_small_gps.jpg"], ids["s01_large_nogps.jpg"]
    with client(fake, recorder=rec) as c:
        # server
        for path in ("ping", "version", "features", "config", "about"):
            c.get(f"/api/server/{path}")
        c.get("/api/users/me")
        c.get("/api/api-keys/me")
        c.get("/api/assets/statistics")
        # duplicates
        groups = c.get("/api/duplicates").json()
        c.delete(f"/api/duplicates/{fake.asset(ids['s03_small_plus0000.jpg'])['duplicateId']}")
        c.request(
            "DELETE",
            "/api/duplicates",
            json={"ids": [fake.asset(ids["s04_small_desc.jpg"])["duplicateId"]]},
        )
        if profile != "v1":
            s16 = [ids["s16_large_sunset.jpg"], ids["s16_small_pier.jpg"]]
            dup16 = fake.asset(s16[0])["duplicateId"]
            c.post(
                "/api/duplicates/resolve",
                json={
                    "groups": [{"duplicateId": dup16, "keepAssetIds": s16, "trashAssetIds": s16}]
                },
            )
            c.post(
                "/api/duplicates/resolve",
                json={
                    "groups": [
                        {"duplicateId": dup16, "keepAssetIds": s16[:1], "trashAssetIds": s16[1:]}
                    ]
                },
            )
        assert groups
        # assets
        c.get(f"/api/assets/{s01}")
        c.put(
            f"/api/assets/{s01}",
            json={
                "description": "x",
                "rating": 3,
                "isFavorite": True,
                "latitude": 1.5,
                "longitude": 2.5,
            },
        )
        c.put(
            f"/api/assets/{s01}",
            json={"dateTimeOriginal": "2021-03-04T05:06:07+09:00", "visibility": "timeline"},
        )
        c.put(
            "/api/assets",
            json={"ids": [s01, s01l], "isFavorite": False, "timeZone": "Europe/Paris"},
        )
        c.get(f"/api/assets/{s01}/original")
        c.get(f"/api/assets/{s01}/original", headers={"range": "bytes=0-99"})
        c.get(f"/api/assets/{s01}/thumbnail")
        c.get(f"/api/assets/{s01}/thumbnail", params={"size": "preview"})
        c.get(f"/api/assets/{s01}/thumbnail", params={"size": "fullsize"})
        c.get(f"/api/assets/{ids['s09_video_720p.mp4']}/thumbnail")
        c.get(f"/api/assets/{ids['s09_video_720p.mp4']}/video/playback")
        data = jpeg("2019:07:04 18:30:00", 120, (48.8566, 2.3522), "uploaded", "Canon", "EOS R5")
        new = upload(c, data, "conformance.jpg", profile=profile).json()["id"]
        upload(c, data, "conformance.jpg", profile=profile)
        c.post(
            "/api/assets/bulk-upload-check",
            json={
                "assets": [
                    {"id": "a", "checksum": fake.asset(new)["checksum"]},
                    {"id": "b", "checksum": "0" * 40},
                ]
            },
        )
        c.post("/api/search/metadata", json={"page": 1, "size": 5})
        c.post("/api/search/metadata", json={"id": s01, "withExif": True, "withDeleted": True})
        # trash
        s05c = ids["s05_c_small_desc.jpg"]
        c.request("DELETE", "/api/assets", json={"ids": [s05c], "force": False})
        c.get(f"/api/assets/{s05c}")
        c.post("/api/trash/restore/assets", json={"ids": [s05c]})
        c.request("DELETE", "/api/assets", json={"ids": [new]})
        c.post("/api/trash/restore")
        c.request("DELETE", "/api/assets", json={"ids": [new]})
        c.post("/api/trash/empty")
        c.request(
            "DELETE", "/api/assets", json={"ids": [ids["s13_small_archived.jpg"]], "force": True}
        )
        fake.run_jobs()
        c.get(f"/api/assets/{ids['s13_small_archived.jpg']}")  # purged: 400
        # albums
        albums = c.get("/api/albums").json()
        c.get("/api/albums", params={"shared": "true"})
        c.get("/api/albums", params={"assetId": ids["s11_small_fav_album.jpg"]})
        c.get(f"/api/albums/{albums[0]['id']}")
        created = c.post("/api/albums", json={"albumName": "conformance", "assetIds": [s01]}).json()
        c.put(f"/api/albums/{created['id']}/assets", json={"ids": [s01, s01l]})
        c.request(
            "DELETE",
            f"/api/albums/{created['id']}/assets",
            json={"ids": [s01l, ids["s02_small_munich.jpg"]]},
        )
        c.put(
            "/api/albums/assets",
            json={"albumIds": [created["id"]], "assetIds": [ids["s02_large_berlin.jpg"]]},
        )
        # tags
        c.get("/api/tags")
        tag = c.put("/api/tags", json={"tags": ["conformance/child"]}).json()[0]
        c.put(f"/api/tags/{tag['id']}/assets", json={"ids": [s01, s01]})
        c.request("DELETE", f"/api/tags/{tag['id']}/assets", json={"ids": [s01, s01l]})
        c.put("/api/tags/assets", json={"tagIds": [tag["id"]], "assetIds": [s01l]})
        c.get(f"/api/assets/{s01l}")
        # stacks
        stack = c.post(
            "/api/stacks",
            json={"assetIds": [ids["s19_small_rome.jpg"], ids["s07_tie_q75_pixel_gps.jpg"]]},
        ).json()
        c.get(f"/api/stacks/{stack['id']}")
        c.get(f"/api/assets/{ids['s19_small_rome.jpg']}")
        c.delete(f"/api/stacks/{stack['id']}")
        # errors
        fake.remove_file(ids["s02_small_munich.jpg"])
        c.get(f"/api/assets/{ids['s02_small_munich.jpg']}/original")  # 404 media
        c.get(f"/api/assets/{s01}/original", headers={"range": "bytes=99999999-"})  # 416
        c.get("/api/assets/not-a-uuid")
        c.get("/api/assets/399eb182-afea-4389-be45-bdcf674ccfa0")
        c.put(f"/api/assets/{s01}", json={"latitude": "abc"})
        c.put(f"/api/assets/{s01}", json={"latitude": 123.0, "longitude": 10.0})
        c.put(f"/api/assets/{s01}", json={"rating": 0})
        c.put(f"/api/assets/{s01}", json={"visibility": "nope"})
        c.put(f"/api/assets/{s01}", json={"dateTimeOriginal": "not a date"})
        c.put(
            f"/api/assets/{s01}", content=b"{not json", headers={"content-type": "application/json"}
        )
        c.request("DELETE", "/api/assets", json={"ids": "x"})
        c.get("/api/this-route-does-not-exist")
        c.post("/api/stacks", json={"assetIds": [s01]})
        c.post("/api/search/metadata", json={"size": 5000})
        c.get("/api/duplicates", headers={"x-api-key": "bad"})
        c.get(f"/api/assets/{s01}", headers={"x-api-key": user2})
        c.get("/api/duplicates", headers={"x-api-key": limited})
    with client(fake, None, rec) as anonymous:
        anonymous.get("/api/duplicates")
    assert user2_id
    return fake, rec.exchanges


@pytest.mark.parametrize("profile", PROFILES)
def test_every_answer_validates_against_the_spec(profile: str) -> None:
    checker = SpecChecker(profile)
    fake, exchanges = run_scenario(profile)
    problems = []
    for ex in exchanges:
        for p in checker.errors(ex):
            problems.append(f"{ex.method} {ex.path} → {ex.status}: {p}")
    assert problems == []
    seen = {
        (ex.method, checker.template(ex.method, ex.path) or ex.path, ex.status) for ex in exchanges
    }
    statuses = {ex.status for ex in exchanges}
    assert {200, 201, 204, 206, 302, 400, 401, 403, 404, 416, 500} <= statuses
    expected_ok = {
        ("GET", "/server/ping", 200),
        ("GET", "/server/version", 200),
        ("GET", "/server/features", 200),
        ("GET", "/server/config", 200),
        ("GET", "/users/me", 200),
        ("GET", "/api-keys/me", 200),
        ("GET", "/duplicates", 200),
        ("DELETE", "/duplicates/{id}", 204),
        ("DELETE", "/duplicates", 204),
        ("GET", "/assets/{id}", 200),
        ("PUT", "/assets/{id}", 200),
        ("PUT", "/assets", 204),
        ("DELETE", "/assets", 204),
        ("GET", "/assets/{id}/original", 200),
        ("GET", "/assets/{id}/thumbnail", 200),
        ("POST", "/assets", 201),
        ("POST", "/assets", 200),
        ("POST", "/assets/bulk-upload-check", 200),
        ("POST", "/search/metadata", 200),
        ("POST", "/trash/restore/assets", 200),
        ("POST", "/trash/empty", 200),
        ("GET", "/albums", 200),
        ("GET", "/albums/{id}", 200),
        ("PUT", "/albums/{id}/assets", 200),
        ("DELETE", "/albums/{id}/assets", 200),
        ("PUT", "/albums/assets", 200),
        ("POST", "/albums", 201),
        ("GET", "/tags", 200),
        ("PUT", "/tags", 200),
        ("PUT", "/tags/{id}/assets", 200),
        ("DELETE", "/tags/{id}/assets", 200),
        ("PUT", "/tags/assets", 200),
        ("POST", "/stacks", 201),
        ("GET", "/stacks/{id}", 200),
        ("DELETE", "/stacks/{id}", 204),
    }
    if profile != "v1":
        expected_ok.add(("POST", "/duplicates/resolve", 200))
    assert expected_ok <= seen, sorted(expected_ok - seen)
    assert fake.request_log, "the fake logs what it answered"


@pytest.mark.parametrize("profile", PROFILES)
def test_checker_rejects_a_broken_answer(profile: str) -> None:
    """The validation is real: a body missing a required field or with a bad type fails."""
    checker = SpecChecker(profile)
    fake = FakeImmich(profile=profile)
    rec = Recorder()
    with client(fake, recorder=rec) as c:
        c.get(f"/api/assets/{fake.find_asset('s01_small_gps.jpg')}")
        c.get("/api/assets/not-a-uuid")
    good, error = rec.exchanges
    assert checker.errors(good) == []
    import json

    broken = json.loads(good.body)
    del broken["checksum"]
    broken["isFavorite"] = "yes"
    bad = Exchange(good.method, good.path, good.status, good.headers, json.dumps(broken).encode())
    assert len(checker.errors(bad)) >= 2
    wrong_shape = Exchange(error.method, error.path, 400, error.headers, b'{"msg": "nope"}')
    assert checker.errors(wrong_shape)


def test_recorded_real_answers_pass_the_checker() -> None:
    """The checker accepts what the real 3.1 server sent (so a failure above is the fake's)."""
    import json

    from fake_support import RECORDED, recorded

    checker = SpecChecker("v3")
    index = recorded("index.json")["recordings"]
    checked = 0
    for rec in index:
        path = rec["path"].split("?")[0]
        body = (RECORDED / rec["file"]).read_bytes()
        payload = b"" if json.loads(body) is None else body
        ex = Exchange(rec["method"], path, rec["status"], _headers(), payload)
        if rec["status"] == 403 and rec["file"] == "error-user2-jobs-admin-only.json":
            continue  # /queues is outside what the fake serves; the body shape is still the v3 one
        assert checker.errors(ex) == [], rec["file"]
        checked += 1
    assert checked > 60
    assert ERROR_V3["required"] == ["message"]


def _headers() -> object:
    import httpx

    return httpx.Headers({"x-correlation-id": "recorded"})


def test_missing_specs_skip_cleanly(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import fake_support

    fake_support._load_spec.cache_clear()
    monkeypatch.setattr(fake_support, "SHARED", tmp_path)
    with pytest.raises(
        pytest.skip.Exception, match="conformance needs the Immich specs beside the repo"
    ):
        spec_for("v3")
    fake_support._load_spec.cache_clear()
