"""Fault injection: parsing, deterministic decisions, and what clients see in-process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

import httpx
import pytest
from fake_support import BASE, client

from immich_dupes.fake import FakeImmich, Faults


def test_parse_the_full_spec() -> None:
    f = Faults.parse(
        "latency=50ms,5xx=0.1,429=0.05:retry-after=1,reset=0.02,truncate=0.02,corrupt=0.1,down=2s,seed=1"
    )
    assert f.latency == (0.05, 0.05)
    assert (f.error_rate, f.error_statuses) == (0.1, (500, 502, 503))
    assert (f.throttle_rate, f.retry_after) == (0.05, 1.0)
    assert (f.reset_rate, f.truncate_rate, f.corrupt_rate, f.down_for, f.seed) == (
        0.02,
        0.02,
        0.1,
        2.0,
        1,
    )
    assert f.active


def test_parse_details() -> None:
    assert Faults.parse("latency=10ms-200ms").latency == (0.01, 0.2)
    assert Faults.parse("latency=10-200ms").latency == (0.01, 0.2)
    assert Faults.parse("latency=30").latency == (0.03, 0.03), "bare latency is milliseconds"
    assert Faults.parse("down=1.5").down_for == 1.5
    assert Faults.parse("503=20%").error_statuses == (503,)
    assert Faults.parse("503=20%").error_rate == 0.2
    aid = "470c0831-d5c2-4b9b-8653-33beb4b2e805"
    f = Faults.parse(f"corrupt={aid},corrupt=3bb24a96-5e0e-4542-ba87-8e7703c41888")
    assert aid in f.corrupt_ids
    assert len(f.corrupt_ids) == 2
    assert f.corrupt_rate == 0
    assert Faults.parse("5xx=0.2@/duplicates").paths == {"5xx": "/duplicates"}
    assert not Faults.parse("").active
    assert not Faults().active
    for bad in ("nonsense=1", "5xx=2", "latency=fast", "reset", "429=0.1:retry-after"):
        with pytest.raises(ValueError, match="fault"):
            Faults.parse(bad)


def test_decisions_are_deterministic_and_near_the_rate() -> None:
    a, b, c = (
        Faults.parse("5xx=0.1,seed=1"),
        Faults.parse("5xx=0.1,seed=1"),
        Faults.parse("5xx=0.1,seed=2"),
    )
    seq_a = [a.decide("GET", "/api/duplicates", n).status for n in range(2000)]
    assert seq_a == [b.decide("GET", "/api/duplicates", n).status for n in range(2000)]
    assert seq_a != [c.decide("GET", "/api/duplicates", n).status for n in range(2000)]
    share = sum(s is not None for s in seq_a) / len(seq_a)
    assert 0.07 < share < 0.13
    assert {s for s in seq_a if s} == {500, 502, 503}


def test_path_filters() -> None:
    f = Faults.parse("5xx=1@/duplicates,reset=1@/assets/*/original")
    assert f.decide("GET", "/api/duplicates", 0).status is not None
    assert f.decide("GET", "/api/server/ping", 0).status is None
    assert f.decide("GET", "/api/assets/x/original", 0).reset
    assert not f.decide("GET", "/api/assets/x/thumbnail", 0).reset


def test_injected_5xx_is_not_processed(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s01_large_nogps.jpg")
    fake.faults = Faults.parse("5xx=1@/assets/")
    r = api.put(f"/api/assets/{aid}", json={"description": "lost"})
    assert r.status_code in (500, 502, 503)
    assert r.headers["x-correlation-id"]
    assert fake.asset(aid)["exifInfo"]["description"] == ""
    assert api.get("/api/server/ping").status_code == 200
    assert fake.request_log[-2].fault == str(r.status_code)
    fake.faults = Faults()
    assert api.put(f"/api/assets/{aid}", json={"description": "kept"}).status_code == 200


def test_429_carries_retry_after(fake: FakeImmich, api: httpx.Client) -> None:
    fake.faults = "429=1:retry-after=3"
    r = api.get("/api/duplicates")
    assert (r.status_code, r.headers["retry-after"], r.json()) == (
        429,
        "3",
        {"message": "Too Many Requests"},
    )


def test_reset_after_processing_raises_read_error(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s01_large_nogps.jpg")
    fake.faults = Faults.parse("reset=1@/assets/")
    with pytest.raises(httpx.ReadError):
        api.put(f"/api/assets/{aid}", json={"description": "applied"})
    assert fake.asset(aid)["exifInfo"]["description"] == "applied", "the server did the work"
    assert fake.request_log[-1].fault == "reset"


def test_truncate_raises_protocol_error_mid_body(fake: FakeImmich, api: httpx.Client) -> None:
    aid = fake.find_asset("s01_large_nogps.jpg")
    fake.faults = "truncate=1@/assets/*/original"
    received = bytearray()

    def drain(r: httpx.Response) -> None:
        for chunk in r.iter_bytes():
            received.extend(chunk)

    with api.stream("GET", f"/api/assets/{aid}/original") as r:
        assert int(r.headers["content-length"]) == len(fake.file_bytes(aid))
        with pytest.raises(httpx.RemoteProtocolError):
            drain(r)
    assert 0 < len(received) < len(fake.file_bytes(aid))


def test_corrupt_one_asset_only(fake: FakeImmich, api: httpx.Client) -> None:
    bad, good = fake.find_asset("s01_small_gps.jpg"), fake.find_asset("s01_large_nogps.jpg")
    fake.faults = Faults.parse(f"corrupt={bad}")

    def ok(aid: str) -> bool:
        body = api.get(f"/api/assets/{aid}/original").content
        return base64.b64encode(hashlib.sha1(body).digest()).decode() == fake.asset(aid)["checksum"]

    assert not ok(bad)
    assert ok(good)
    assert len(api.get(f"/api/assets/{bad}/original").content) == len(fake.file_bytes(bad))
    fake.faults = Faults.parse("corrupt=0.5,seed=3")
    ids = [a for a in fake.asset_ids() if fake.asset(a)["libraryId"] is None][:20]
    verdicts = [ok(a) for a in ids]
    assert 0 < verdicts.count(False) < len(ids)
    assert verdicts == [ok(a) for a in ids], "fixed per asset"


def test_down_then_back(fake: FakeImmich, api: httpx.Client) -> None:
    fake.faults = Faults.parse("down=0.3s")
    with pytest.raises(httpx.ConnectError):
        api.get("/api/server/ping")
    assert fake.request_log[-1].status == 0
    assert fake.request_log[-1].fault == "down"
    time.sleep(0.35)
    assert api.get("/api/server/ping").status_code == 200


def test_latency(fake: FakeImmich, api: httpx.Client) -> None:
    fake.faults = Faults(latency=(0.05, 0.05))
    t = time.monotonic()
    api.get("/api/server/ping")
    assert time.monotonic() - t >= 0.05


async def test_async_transport_faults_and_concurrency(fake: FakeImmich) -> None:
    fake.faults = Faults.parse("reset=1@/duplicates,latency=20ms")
    async with httpx.AsyncClient(
        transport=fake.transport(), base_url=BASE, headers={"x-api-key": fake.api_key}
    ) as c:
        with pytest.raises(httpx.ReadError):
            await c.get("/api/duplicates")
        t = time.monotonic()
        results = await asyncio.gather(*(c.get("/api/server/ping") for _ in range(20)))
        assert all(r.status_code == 200 for r in results)
        assert time.monotonic() - t < 0.02 * 20, "latency sleeps do not serialize requests"
        fake.faults = Faults()
        aid = fake.find_asset("s01_small_gps.jpg")
        thumbs = await asyncio.gather(*(c.get(f"/api/assets/{aid}/thumbnail") for _ in range(4)))
        assert len({t.content for t in thumbs}) == 1


def test_faults_accept_text_in_constructor() -> None:
    fake = FakeImmich(library="empty", faults="5xx=1,seed=4")
    with client(fake) as api:
        assert api.get("/api/server/ping").status_code >= 500
