"""The fake over a real loopback socket: keep-alive, concurrency, big downloads, Range, faults."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from immich_dupes.fake import FakeImmich, FakeServer, Faults, serve_forever


@pytest.fixture
def served(fake: FakeImmich) -> Iterator[tuple[FakeServer, httpx.Client]]:
    with (
        FakeServer(fake, port=0) as srv,
        httpx.Client(base_url=srv.url, headers={"x-api-key": fake.api_key}, timeout=10) as c,
    ):
        yield srv, c


def test_url_ping_and_keep_alive(served: tuple[FakeServer, httpx.Client]) -> None:
    srv, c = served
    assert srv.url.startswith("http://127.0.0.1:")
    assert srv.port > 0
    for _ in range(20):
        assert c.get("/api/server/ping").json() == {"res": "pong"}
    assert c.get("/api/duplicates").status_code == 200
    assert srv.connections_accepted == 1, "one keep-alive connection for 21 requests"
    assert c.get("/.well-known/immich").json() == {"api": {"endpoint": "/api"}}
    r = c.get("/api/nope")
    assert (r.status_code, r.json()) == (404, {"message": "Cannot GET /api/nope"})


def test_concurrent_clients(fake: FakeImmich, served: tuple[FakeServer, httpx.Client]) -> None:
    srv, _ = served
    ids = fake.asset_ids()[:16]

    def worker(aid: str) -> list[int]:
        with httpx.Client(base_url=srv.url, headers={"x-api-key": fake.api_key}) as c:
            return [c.get(f"/api/assets/{aid}").status_code for _ in range(5)]

    with ThreadPoolExecutor(8) as pool:
        results = [s for statuses in pool.map(worker, ids) for s in statuses]
    assert results == [200] * 80

    async def many() -> list[int]:
        async with httpx.AsyncClient(base_url=srv.url, headers={"x-api-key": fake.api_key}) as c:
            rs = await asyncio.gather(
                *(c.get(f"/api/assets/{ids[i % 16]}/thumbnail") for i in range(32))
            )
            return [r.status_code for r in rs]

    assert asyncio.run(many()) == [200] * 32


def test_five_megabyte_original_and_ranges() -> None:
    fake = FakeImmich(library="synthetic:2", original_size=5_000_000)
    aid = fake.groups()[0]["assets"][0]["id"]
    expected = fake.asset(aid)
    with (
        FakeServer(fake) as srv,
        httpx.Client(base_url=srv.url, headers={"x-api-key": fake.api_key}) as c,
    ):
        h = hashlib.sha1()
        n = 0
        with c.stream("GET", f"/api/assets/{aid}/original") as r:
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                h.update(chunk)
                n += len(chunk)
        assert n == expected["exifInfo"]["fileSizeInByte"]
        assert n >= 4_900_000
        assert base64.b64encode(h.digest()).decode() == expected["checksum"]
        part = c.get(f"/api/assets/{aid}/original", headers={"range": "bytes=1000000-1000099"})
        assert part.status_code == 206
        assert part.content == fake.file_bytes(aid)[1_000_000:1_000_100]
        assert (
            c.get(f"/api/assets/{aid}/original", headers={"range": "bytes=99999999-"}).status_code
            == 416
        )


def test_reset_and_truncate_are_real_connection_errors(
    fake: FakeImmich, served: tuple[FakeServer, httpx.Client]
) -> None:
    srv, c = served
    aid = fake.find_asset("s01_large_nogps.jpg")
    fake.faults = Faults.parse("truncate=1@/assets/*/original")
    with pytest.raises(httpx.RemoteProtocolError):
        c.get(f"/api/assets/{aid}/original")
    fake.faults = Faults.parse("reset=1@/assets/*/original")
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        c.get(f"/api/assets/{aid}/original")
    assert fake.request_log[-1].fault == "reset"
    fake.faults = Faults()
    assert c.get(f"/api/assets/{aid}/original").status_code == 200, "the client reconnects"


def test_down_and_5xx_over_the_socket(
    fake: FakeImmich, served: tuple[FakeServer, httpx.Client]
) -> None:
    _, c = served
    fake.faults = Faults.parse("down=0.3s")
    with pytest.raises(httpx.TransportError):
        c.get("/api/server/ping")
    time.sleep(0.35)
    assert c.get("/api/server/ping").status_code == 200
    fake.faults = Faults.parse("503=1@/duplicates")
    r = c.get("/api/duplicates")
    assert r.status_code == 503
    assert c.get("/api/server/ping").status_code == 200


def test_stop_closes_the_port_and_serve_forever_helper() -> None:
    url, key, srv = serve_forever("empty", "v2", 0, "latency=1ms")
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": key}) as c:
            assert c.get("/api/server/version").json() == {"major": 2, "minor": 7, "patch": 5}
            assert c.get("/api/users/me").json()["id"] == srv.fake.user_id
    finally:
        srv.stop()
    assert srv.wait(0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/server/ping", timeout=2)


def test_upload_over_the_socket(fake: FakeImmich, served: tuple[FakeServer, httpx.Client]) -> None:
    _, c = served
    data = fake.file_bytes(fake.find_asset("s01_small_gps.jpg"))
    r = c.post(
        "/api/assets",
        data={"fileCreatedAt": "2020-01-01T00:00:00Z", "fileModifiedAt": "2020-01-01T00:00:00Z"},
        files={"assetData": ("copy.jpg", data + b"x", "image/jpeg")},
    )
    assert r.status_code == 201
    assert fake.asset(r.json()["id"])["exifInfo"]["city"] == "Paris 04 Hôtel-de-Ville"


def test_clients_that_vanish_are_not_errors(
    fake: FakeImmich, served: tuple[FakeServer, httpx.Client]
) -> None:
    import socket
    import struct

    srv, c = served
    for payload in (b"", b"GET /api/server/ping HTTP/1.1\r\nHost: x\r\n"):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(payload)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.1)
    assert c.get("/api/server/ping").status_code == 200
    assert fake.errors == []
