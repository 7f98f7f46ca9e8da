"""The fake injects every fault the safety suite relies on, as a real client sees it on a socket.

Latency, a share of 5xx, 429 with ``Retry-After``, a connection reset mid-body, a body short
of its ``Content-Length``, a download whose bytes do not match the checksum, an asset trashed
or changed by someone else, the server going away and coming back — each observed over a
loopback FakeServer with a plain httpx client (no retries), and through
``immich-dupes demo --serve-only --faults SPEC``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from immich_dupes.fake import FakeImmich, FakeServer, Faults


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, httpx.Client]]:
    fake = FakeImmich(library="sample")
    with FakeServer(fake) as srv, httpx.Client(
        base_url=srv.url, headers={"x-api-key": fake.api_key}, timeout=10
    ) as c:
        yield fake, c


def _sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def _stream(c: httpx.Client, path: str) -> tuple[int, dict[str, str], bytes, BaseException | None]:
    """Status, headers, the bytes that arrived, and the transport error that cut them off."""
    got = bytearray()
    status, headers = 0, {}
    try:
        with c.stream("GET", path) as r:
            status, headers = r.status_code, dict(r.headers)
            for chunk in r.iter_raw():
                got += chunk
    except httpx.TransportError as e:
        return status, headers, bytes(got), e
    return status, headers, bytes(got), None


def _settle(fake: FakeImmich, n: int) -> None:
    """The socket server logs a request once its answer is sent: wait for the last ``n``."""
    deadline = time.monotonic() + 5
    while len(fake.request_log) < n:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_latency(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    fake.faults = Faults.parse("latency=120ms@/server/version")
    assert c.get("/api/server/version").status_code == 200
    assert c.get("/api/server/ping").status_code == 200
    _settle(fake, 2)
    version, ping = fake.request_log[-2:]
    assert version.t_end - version.t_start >= 0.12  # the fake slept that long before answering
    assert (version.path, ping.path) == ("/api/server/version", "/api/server/ping")
    assert not fake.faults.applies("latency", ping.path)  # the @path limits it


def test_a_share_of_5xx_is_answered_without_processing(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    aid = fake.find_asset("s01_small_gps.jpg")
    fake.faults = Faults.parse("5xx=0.5,seed=4")
    codes = [c.get(f"/api/assets/{aid}").status_code for _ in range(60)]
    errors = [s for s in codes if s != 200]
    assert set(errors) <= {500, 502, 503}
    assert 15 <= len(errors) <= 45
    fake.faults = Faults.parse("5xx=1")
    assert c.put(f"/api/assets/{aid}", json={"description": "must not stick"}).status_code >= 500
    fake.faults = Faults()
    assert fake.asset(aid)["exifInfo"]["description"] != "must not stick"


def test_429_carries_retry_after(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    fake.faults = Faults.parse("429=1:retry-after=7@/duplicates")
    r = c.get("/api/duplicates")
    assert r.status_code == 429
    assert r.headers["retry-after"] == "7"
    assert c.get("/api/server/ping").status_code == 200


def test_reset_mid_body(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    aid = fake.find_asset("s01_small_gps.jpg")
    fake.faults = Faults.parse("reset=1@/assets/*/original")
    status, _, got, error = _stream(c, f"/api/assets/{aid}/original")
    assert status == 200
    assert isinstance(error, httpx.ReadError | httpx.RemoteProtocolError)
    assert 0 < len(got) < len(fake.file_bytes(aid))
    _settle(fake, 1)
    assert fake.request_log[-1].fault == "reset"


def test_truncated_body_short_of_content_length(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    aid = fake.find_asset("s01_small_gps.jpg")
    fake.faults = Faults.parse("truncate=1@/assets/*/original")
    status, headers, got, error = _stream(c, f"/api/assets/{aid}/original")
    assert status == 200
    assert isinstance(error, httpx.RemoteProtocolError)
    declared = int(headers["content-length"])
    assert declared == len(fake.file_bytes(aid))
    assert len(got) < declared


def test_corrupt_download_has_the_right_length_and_the_wrong_checksum(
    served: tuple[FakeImmich, httpx.Client],
) -> None:
    fake, c = served
    aid = fake.find_asset("s01_small_gps.jpg")
    other = fake.find_asset("s02_small_munich.jpg")
    fake.faults = Faults.parse(f"corrupt={aid}")
    bad = c.get(f"/api/assets/{aid}/original").content
    assert len(bad) == len(fake.file_bytes(aid))
    assert _sha1_b64(bad) != fake.asset(aid)["checksum"]
    assert _sha1_b64(c.get(f"/api/assets/{other}/original").content) == fake.asset(other)["checksum"]


def test_someone_else_trashes_or_edits_an_asset(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    aid = fake.find_asset("s01_small_gps.jpg")
    listed = {a["id"] for g in c.get("/api/duplicates").json() for a in g["assets"]}
    assert aid in listed
    fake.trash_asset(aid)
    assert c.get(f"/api/assets/{aid}").json()["isTrashed"] is True
    listed = {a["id"] for g in c.get("/api/duplicates").json() for a in g["assets"]}
    assert aid not in listed
    other = fake.find_asset("s04_small_desc.jpg")
    fake.update_asset_metadata(other, description="changed elsewhere", isFavorite=True, rating=2)
    a = c.get(f"/api/assets/{other}").json()
    assert (a["exifInfo"]["description"], a["isFavorite"], a["exifInfo"]["rating"]) == (
        "changed elsewhere", True, 2)


def test_server_goes_away_and_comes_back(served: tuple[FakeImmich, httpx.Client]) -> None:
    fake, c = served
    fake.faults = Faults.parse("down=0.4s")
    with pytest.raises(httpx.TransportError):
        c.get("/api/server/ping")
    deadline = time.monotonic() + 10
    while True:
        try:
            r = c.get("/api/server/ping")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert r.json() == {"res": "pong"}
    _settle(fake, 2)
    downs = [x for x in fake.request_log if x.fault == "down"]
    assert downs
    assert all(x.status == 0 for x in downs)


def test_demo_serve_only_takes_a_fault_spec() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "immich_dupes", "demo", "--serve-only",
         "--faults", "503=1@/duplicates,429=1:retry-after=3@/albums"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("IMMICH_")},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("IMMICH_URL=")
        key = proc.stdout.readline().strip().removeprefix("IMMICH_API_KEY=")
        with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=10) as c:
            assert c.get("/api/duplicates").status_code == 503
            r = c.get("/api/albums")
            assert (r.status_code, r.headers.get("retry-after")) == (429, "3")
            assert c.get("/api/users/me").status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
