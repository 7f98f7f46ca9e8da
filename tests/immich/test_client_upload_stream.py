"""``ImmichClient.upload`` streams the file from disk: exact bytes and fields, exact length, flat memory.

A tap transport sits between the client and the fake: it reads each upload body chunk by chunk
(a hook can change the file, or break the connection, between chunks), records what arrived,
then hands the complete body to the fake, which parses it like Immich.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.fake.http import parse_multipart
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import ConnectionFailed, ServerError
from immich_dupes.immich.multipart import SourceChanged, sha1_of_checksum

BASE = "http://fake-immich"
MB = 1 << 20
WHEN = datetime(2019, 7, 4, 16, 30, 15, tzinfo=UTC)
MODIFIED = datetime(2019, 7, 5, 8, 0, tzinfo=UTC)
Hook = Callable[[int, int, int], None]  # (attempt, bytes received so far, Content-Length)


class Tap(httpx.AsyncBaseTransport):
    """Reads ``POST /api/assets`` bodies chunk by chunk, then forwards complete ones to ``inner``."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        hook: Hook | None = None,
        first_status: int | None = None,
    ) -> None:
        self.inner = inner
        self.hook = hook
        self.first_status = first_status
        self.received: list[int] = []  # bytes that arrived, per attempt
        self.declared: list[int] = []  # Content-Length, per attempt
        self.complete: list[tuple[httpx.Headers, bytes]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not (request.method == "POST" and request.url.path == "/api/assets"):
            return await self.inner.handle_async_request(request)
        attempt = len(self.received)
        self.received.append(0)
        self.declared.append(int(request.headers["content-length"]))
        buf = bytearray()
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            buf += chunk
            self.received[attempt] = len(buf)
            if self.hook is not None:
                self.hook(attempt, len(buf), self.declared[attempt])
        self.complete.append((request.headers, bytes(buf)))
        if attempt == 0 and self.first_status is not None:
            return httpx.Response(self.first_status, json={"message": "busy"}, request=request)
        forward = httpx.Request(request.method, request.url, headers=request.headers, content=bytes(buf))
        return await self.inner.handle_async_request(forward)


@asynccontextmanager
async def connected(
    fake: FakeImmich, transport: httpx.AsyncBaseTransport | None = None, url: str = BASE
) -> AsyncIterator[ImmichClient]:
    c = ImmichClient(
        url,
        fake.api_key,
        transport=transport if transport is not None else fake.transport(),
        rate_limit=1000.0,
        backoff_base=0.001,
        backoff_cap=0.01,
        max_retries=2,
    )
    async with c:
        await c.connect()
        yield c


def sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def random_file(path: Path, size: int, seed: int = 1) -> bytes:
    """Incompressible, non-repeating bytes (a size that is not a multiple of the 1 MiB chunk)."""
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def uploads_to_fake(fake: FakeImmich) -> int:
    return sum(1 for r in fake.request_log if r.method == "POST" and r.path == "/api/assets")


def fields_of(body: bytes, headers: httpx.Headers) -> tuple[dict[str, str], bytes, str | None]:
    parts = parse_multipart(headers["content-type"], body)
    assert parts is not None
    files = [p for p in parts if p.filename is not None]
    assert [p.name for p in files] == ["assetData"]
    fields = {p.name: p.data.decode() for p in parts if p.filename is None}
    return fields, files[0].data, files[0].filename


# --------------------------------------------------------------------------- bytes and fields


@pytest.mark.parametrize("profile", ["v1", "v2", "v3"])
async def test_streamed_upload_sends_exact_bytes_and_profile_fields(profile: str, tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile=profile)
    src = tmp_path / "clip.mp4"
    data = random_file(src, 3 * MB + 12_345)
    tap = Tap(fake.transport())
    async with connected(fake, tap) as c:
        res = await c.upload(
            src, filename="Holiday clip.mp4", file_created_at=WHEN, file_modified_at=MODIFIED,
            checksum=sha1_b64(data), is_favorite=True, visibility="archive", duration_ms=83_250,
        )
    assert res.status == "created"
    assert hashlib.sha1(fake.file_bytes(res.id)).digest() == hashlib.sha1(data).digest()
    asset = fake.asset(res.id)
    assert asset["checksum"] == sha1_b64(data)
    assert asset["originalFileName"] == "Holiday clip.mp4"
    assert asset["isFavorite"] is True
    assert asset["type"] == "VIDEO"

    [(headers, body)] = tap.complete
    assert int(headers["content-length"]) == len(body)
    assert "transfer-encoding" not in headers
    assert headers["x-immich-checksum"] == sha1_b64(data)
    fields, file_data, filename = fields_of(body, headers)
    assert file_data == data
    assert filename == "Holiday clip.mp4"
    expected = {
        "fileCreatedAt": "2019-07-04T16:30:15Z",
        "fileModifiedAt": "2019-07-05T08:00:00Z",
        "isFavorite": "true",
        "filename": "Holiday clip.mp4",
        "visibility": "archive",
        "duration": "83250" if profile == "v3" else "0:01:23.250000",
    }
    if profile != "v3":  # required strings before v3, gone from v3 on
        expected["deviceAssetId"] = f"immich-dupes-{sha1_b64(data)}"
        expected["deviceId"] = "immich-dupes"
    assert fields == expected


async def test_body_is_byte_identical_to_httpx_own_multipart_encoding(tmp_path: Path) -> None:
    """Same wire format as the in-memory ``files=`` upload it replaces, hostile file name included."""
    fake = FakeImmich(library="empty", profile="v2")
    src = tmp_path / "a.jpg"
    data = random_file(src, MB + 7, seed=2)
    name = 'we"ird\\name\x07\x00\x1b\u202e été.jpg'
    tap = Tap(fake.transport())
    async with connected(fake, tap) as c:
        await c.upload(src, filename=name, file_created_at=WHEN, file_modified_at=WHEN)
    [(headers, body)] = tap.complete
    fields, _, _ = fields_of(body, headers)
    m = re.fullmatch(r"multipart/form-data; boundary=([0-9a-f]{32})", headers["content-type"])
    assert m is not None
    ref = httpx.Request(
        "POST", "http://x/api/assets", data=fields,
        files={"assetData": (name, data, "application/octet-stream")},
        headers={"Content-Type": headers["content-type"]},
    )
    assert ref.read() == body
    assert ref.headers["content-length"] == headers["content-length"]


async def test_created_then_duplicate_with_and_without_checksum(tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "p.jpg"
    data = random_file(src, 2 * MB + 1, seed=3)
    async with connected(fake) as c:
        first = await c.upload(src, filename="p.jpg", file_created_at=WHEN, file_modified_at=WHEN,
                               checksum=sha1_b64(data))
        again = await c.upload(src, filename="p.jpg", file_created_at=WHEN, file_modified_at=WHEN,
                               checksum=sha1_b64(data))
        plain = await c.upload(src, filename="other.jpg", file_created_at=WHEN, file_modified_at=WHEN)
    assert first.status == "created"
    assert (again.status, again.id) == ("duplicate", first.id)
    assert (plain.status, plain.id) == ("duplicate", first.id)
    assert fake.asset_ids() == [first.id]


async def test_empty_file_uploads_with_exact_length(tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "empty.bin"
    src.write_bytes(b"")
    tap = Tap(fake.transport())
    async with connected(fake, tap) as c:
        res = await c.upload(src, filename="empty.bin", file_created_at=WHEN, file_modified_at=WHEN,
                             checksum=sha1_b64(b""))
    [(headers, body)] = tap.complete
    assert int(headers["content-length"]) == len(body)
    assert fake.file_bytes(res.id) == b""


async def test_over_a_real_socket_the_length_is_exact_and_bytes_arrive(tmp_path: Path) -> None:
    """h11 refuses to send a body that differs from Content-Length: this is the real check."""
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "big.jpg"
    data = random_file(src, 4 * MB + 3, seed=4)
    with FakeServer(fake, port=0) as srv:
        async with connected(fake, url=srv.url) as c:
            res = await c.upload(src, filename="big.jpg", file_created_at=WHEN, file_modified_at=WHEN,
                                 checksum=sha1_b64(data))
    assert res.status == "created"
    assert fake.file_bytes(res.id) == data


# --------------------------------------------------------------------------- the file changes


def _shrink(path: Path, to: int) -> Hook:
    def hook(attempt: int, received: int, declared: int) -> None:
        if received > MB and path.stat().st_size > to:
            with path.open("r+b") as f:
                f.truncate(to)
    return hook


def _grow(path: Path) -> Hook:
    done: list[bool] = []

    def hook(attempt: int, received: int, declared: int) -> None:
        if received > MB and not done:
            done.append(True)
            with path.open("ab") as f:
                f.write(b"more bytes")
    return hook


def _rewrite_same_size(path: Path) -> Hook:
    done: list[bool] = []

    def hook(attempt: int, received: int, declared: int) -> None:
        if received > MB and not done:
            done.append(True)
            with path.open("r+b") as f:
                f.seek(-5, 2)
                f.write(b"XXXXX")
    return hook


@pytest.mark.parametrize(
    ("change", "words"),
    [("shrink", "shrank"), ("grow", "grew beyond"), ("same_size", "expected SHA-1")],
)
async def test_file_changing_during_upload_fails_before_the_body_is_complete(
    change: str, words: str, tmp_path: Path
) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "v.mp4"
    data = random_file(src, 3 * MB + 100, seed=5)
    hook = {"shrink": _shrink(src, 2 * MB + 10), "grow": _grow(src), "same_size": _rewrite_same_size(src)}[change]
    tap = Tap(fake.transport(), hook=hook)
    async with connected(fake, tap) as c:
        with pytest.raises(SourceChanged) as e:
            await c.upload(src, filename="v.mp4", file_created_at=WHEN, file_modified_at=WHEN,
                           checksum=sha1_b64(data))
    assert words in str(e.value)
    assert str(src) in str(e.value)
    assert e.value.path == "/assets"
    assert tap.complete == []  # the body never reached its announced length
    assert len(tap.received) == 1  # not retried: the file is what changed, not the network
    assert tap.received[0] < tap.declared[0]
    assert uploads_to_fake(fake) == 0
    assert fake.asset_ids() == []


async def test_file_changing_between_attempts_fails_at_the_retry(tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "v.mp4"
    data = random_file(src, MB + 100, seed=6)

    def hook(attempt: int, received: int, declared: int) -> None:
        if attempt == 0 and received == declared:
            with src.open("ab") as f:  # after the whole first attempt went out
                f.write(b"!")

    tap = Tap(fake.transport(), hook=hook, first_status=503)
    async with connected(fake, tap) as c:
        with pytest.raises(SourceChanged, match="changed size from"):
            await c.upload(src, filename="v.mp4", file_created_at=WHEN, file_modified_at=WHEN,
                           checksum=sha1_b64(data))
    assert len(tap.received) == 2
    assert tap.received[1] == 0  # the retry sent nothing at all
    assert fake.asset_ids() == []


async def test_file_shrinking_over_a_real_socket_raises_source_changed(tmp_path: Path) -> None:
    """The error comes out of the real httpx/h11 stack as ours, not as a protocol error."""
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "v.mp4"
    data = random_file(src, 3 * MB, seed=7)

    class Shrinking(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.real = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST" and request.url.path == "/api/assets":
                inner = request.stream
                assert isinstance(inner, httpx.AsyncByteStream)

                class Body(httpx.AsyncByteStream):
                    async def __aiter__(self) -> AsyncIterator[bytes]:
                        sent = 0
                        async for chunk in inner:
                            sent += len(chunk)
                            if sent > MB:
                                with src.open("r+b") as f:
                                    f.truncate(MB + 1)
                            yield chunk

                request.stream = Body()
            return await self.real.handle_async_request(request)

        async def aclose(self) -> None:
            await self.real.aclose()

    with FakeServer(fake, port=0) as srv:
        async with connected(fake, Shrinking(), url=srv.url) as c:
            with pytest.raises(SourceChanged, match="shrank"):
                await c.upload(src, filename="v.mp4", file_created_at=WHEN, file_modified_at=WHEN,
                               checksum=sha1_b64(data))
    # Like a real server, the fake aborts a request whose body was cut off: nothing stored.
    assert fake.asset_ids() == []


# --------------------------------------------------------------------------- retry policy (unchanged)


async def test_with_checksum_a_failed_attempt_is_resent_from_the_first_byte(tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "p.jpg"
    data = random_file(src, 2 * MB + 5, seed=8)
    tap = Tap(fake.transport(), first_status=503)
    async with connected(fake, tap) as c:
        res = await c.upload(src, filename="p.jpg", file_created_at=WHEN, file_modified_at=WHEN,
                             checksum=sha1_b64(data))
    assert res.status == "created"
    assert len(tap.complete) == 2
    (h1, b1), (h2, b2) = tap.complete
    assert b1 == b2
    assert int(h2["content-length"]) == len(b2)
    assert fake.file_bytes(res.id) == data


async def test_with_checksum_a_connection_broken_mid_body_is_resent(tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "p.jpg"
    data = random_file(src, 2 * MB + 5, seed=9)

    def hook(attempt: int, received: int, declared: int) -> None:
        if attempt == 0 and received > MB:
            raise httpx.WriteError("connection reset while sending (test)")

    tap = Tap(fake.transport(), hook=hook)
    async with connected(fake, tap) as c:
        res = await c.upload(src, filename="p.jpg", file_created_at=WHEN, file_modified_at=WHEN,
                             checksum=sha1_b64(data))
    assert res.status == "created"
    assert len(tap.received) == 2
    assert fake.file_bytes(res.id) == data


async def test_without_checksum_an_upload_is_never_repeated(tmp_path: Path) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    src = tmp_path / "p.jpg"
    random_file(src, MB + 5, seed=10)

    def hook(attempt: int, received: int, declared: int) -> None:
        if received > MB // 2:
            raise httpx.WriteError("connection reset while sending (test)")

    broken = Tap(fake.transport(), hook=hook)
    async with connected(fake, broken) as c:
        with pytest.raises(ConnectionFailed):
            await c.upload(src, filename="p.jpg", file_created_at=WHEN, file_modified_at=WHEN)
    assert len(broken.received) == 1

    busy = Tap(fake.transport(), first_status=503)
    async with connected(fake, busy) as c:
        with pytest.raises(ServerError):
            await c.upload(src, filename="p.jpg", file_created_at=WHEN, file_modified_at=WHEN)
    assert len(busy.received) == 1
    assert fake.asset_ids() == []


# --------------------------------------------------------------------------- memory


class Sink(httpx.AsyncBaseTransport):
    """Answers ``POST /api/assets`` itself, hashing the file part as it streams by (nothing kept)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.total = 0
        self.declared = -1
        self.file_sha1 = ""
        self.file_size = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not (request.method == "POST" and request.url.path == "/api/assets"):
            return await self.inner.handle_async_request(request)
        self.declared = int(request.headers["content-length"])
        boundary = request.headers["content-type"].split("boundary=", 1)[1].encode()
        tail_len = len(b"\r\n--" + boundary + b"--\r\n")
        head = bytearray()
        held = b""  # the last tail_len bytes seen, which may be the closing boundary
        sha1 = hashlib.sha1()
        in_file = False
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for chunk in request.stream:
            self.total += len(chunk)
            if not in_file:
                head += chunk
                i = head.find(b'name="assetData"')
                j = head.find(b"\r\n\r\n", i) if i >= 0 else -1
                if j < 0:
                    assert len(head) < 64 * 1024
                    continue
                in_file = True
                chunk = bytes(head[j + 4 :])
            data = held + chunk
            cut = max(0, len(data) - tail_len)
            sha1.update(data[:cut])
            self.file_size += cut
            held = data[cut:]
        assert held == b"\r\n--" + boundary + b"--\r\n"
        self.file_sha1 = base64.b64encode(sha1.digest()).decode()
        return httpx.Response(201, json={"id": "00000000-0000-4000-8000-000000000001", "status": "created"},
                              request=request)


async def test_memory_stays_flat_for_a_200_mb_file(tmp_path: Path) -> None:
    size = 200 * MB
    src = tmp_path / "huge.mp4"
    with src.open("wb") as f:  # sparse, with distinct bytes at both ends
        f.write(b"start of the video")
        f.seek(size - 16)
        f.write(b"end of the video")
    digest = hashlib.sha1()
    with src.open("rb") as f:
        while block := f.read(4 * MB):
            digest.update(block)
    checksum = base64.b64encode(digest.digest()).decode()

    fake = FakeImmich(library="empty", profile="v3")
    sink = Sink(fake.transport())
    async with connected(fake, sink) as c:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            res = await c.upload(src, filename="huge.mp4", file_created_at=WHEN, file_modified_at=WHEN,
                                 checksum=checksum)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert res.status == "created"
    assert sink.total == sink.declared
    assert sink.file_size == size
    assert sink.file_sha1 == checksum
    assert peak < 16 * MB, f"upload of a {size // MB} MB file peaked at {peak / MB:.1f} MB"


# --------------------------------------------------------------------------- checksum parsing


def test_checksum_in_either_form_gives_the_raw_sha1() -> None:
    raw = hashlib.sha1(b"photo").digest()
    assert sha1_of_checksum(base64.b64encode(raw).decode()) == raw
    assert sha1_of_checksum(raw.hex()) == raw
    assert sha1_of_checksum(raw.hex().upper()) == raw
    assert sha1_of_checksum(None) is None
    assert sha1_of_checksum("") is None
    assert sha1_of_checksum("not a checksum") is None
    assert sha1_of_checksum(base64.b64encode(b"short").decode()) is None
