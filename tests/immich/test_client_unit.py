"""Client behaviour that needs no server: URLs, error shapes, the streaming parser, retries."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from immich_dupes.immich.client import ImmichClient, _ArrayStreamParser, normalize_base_url
from immich_dupes.immich.errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ImmichError,
    NotFound,
    PermissionMissing,
    ServerError,
    error_for,
    parse_error_body,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"
KEY = "secret-key-never-printed-0123456789"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://host:2283", "http://host:2283/api"),
        ("http://host:2283/", "http://host:2283/api"),
        ("http://host:2283/api", "http://host:2283/api"),
        ("http://host:2283/api/", "http://host:2283/api"),
        ("https://host/immich", "https://host/immich/api"),
        ("https://host/immich/api/", "https://host/immich/api"),
        ("photos.example.org", "http://photos.example.org/api"),
    ],
)
def test_base_url_with_or_without_api_and_with_a_sub_path(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize("bad", ["", "ftp://host", "http://", "http://host:99999"])
def test_bad_urls_are_refused_in_plain_words(bad: str) -> None:
    with pytest.raises(ValueError, match=r"URL|port"):
        normalize_base_url(bad)


def test_both_error_body_shapes() -> None:
    v3 = json.dumps(
        {"message": "Validation failed", "errors": [{"path": ["latitude"], "message": "Too big"}]}
    ).encode()
    assert parse_error_body(v3) == ("Validation failed", ["latitude: Too big"])
    v2 = json.dumps(
        {"message": ["latitude must not be greater than 90"], "error": "Bad Request", "statusCode": 400}
    ).encode()
    assert parse_error_body(v2) == ("Validation failed", ["latitude must not be greater than 90"])
    v1_plain = json.dumps({"message": "Not found or no asset.read access", "error": "Bad Request", "statusCode": 400})
    e = error_for(400, v1_plain.encode(), "GET", "/assets/x")
    assert isinstance(e, NotFound)
    # A proxy's page is described, never quoted into the terminal.
    assert parse_error_body(b"<html>bad gateway</html>")[0] == "an HTML page"


@pytest.mark.parametrize(
    ("file", "status", "kind"),
    [
        ("error-401-bad-api-key.json", 401, AuthenticationFailed),
        ("error-401-no-credentials.json", 401, AuthenticationFailed),
        ("error-403-limited-key-get-duplicates.json", 403, PermissionMissing),
        ("error-asset-id-does-not-exist.json", 400, NotFound),
        ("error-asset-id-malformed.json", 400, BadRequest),
        ("error-put-asset-dateTimeOriginal-garbage.json", 500, ServerError),
    ],
)
def test_recorded_error_bodies_map_to_the_right_exception(file: str, status: int, kind: type) -> None:
    body = (FIXTURES / file).read_bytes()
    e = error_for(status, body, "GET", "/x")
    assert isinstance(e, kind)
    assert e.status == status
    if isinstance(e, PermissionMissing):
        assert e.permission == "duplicate.read"
    if file == "error-asset-id-malformed.json":
        assert e.details == ["id: Invalid UUID"]


def _groups(n: int) -> list[dict[str, object]]:
    return [
        {
            "duplicateId": f"{i:08d}-0000-4000-8000-000000000000",
            "assets": [{"id": f"{i:08d}-0000-4000-8000-00000000000{k}", "originalFileName": "é ✓ \"q\" [x]"} for k in (1, 2)],
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 4096])
def test_streaming_parser_at_every_chunk_boundary(chunk: int) -> None:
    data = json.dumps(_groups(5), indent=1).encode("utf-8")
    p = _ArrayStreamParser()
    out = []
    for i in range(0, len(data), chunk):
        out.extend(p.feed(data[i : i + chunk]))
    out.extend(p.close())
    assert out == _groups(5)


def test_streaming_parser_empty_list_and_truncation() -> None:
    p = _ArrayStreamParser()
    assert p.feed(b" [ ] ") == []
    assert p.close() == []
    p = _ArrayStreamParser()
    p.feed(json.dumps(_groups(3)).encode()[:-40])
    with pytest.raises(ImmichError, match="ended early|not valid"):
        p.close()
    p = _ArrayStreamParser()
    with pytest.raises(ImmichError, match="not a JSON array"):
        p.feed(b'{"message": "x"}')


def client_with(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> ImmichClient:
    return ImmichClient(
        "http://immich.test", KEY, transport=httpx.MockTransport(handler), backoff_base=0.001, **kw  # type: ignore[arg-type]
    )


async def test_retries_5xx_and_429_honouring_retry_after() -> None:
    seen: list[float] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return httpx.Response(503, json={"message": "busy"})
        if len(seen) == 2:
            return httpx.Response(429, json={"message": "slow down"}, headers={"retry-after": "0.3"})
        return httpx.Response(200, json={"res": "pong"})

    async with client_with(handler, rate_limit=1000) as c:
        assert await c.ping()
    assert len(seen) == 3
    assert seen[2] - seen[1] >= 0.29  # waited what Retry-After said
    assert c.stats.retries == 2


async def test_gives_up_after_max_retries_with_the_servers_message() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json={"message": "Internal server error"})

    async with client_with(handler, rate_limit=1000, max_retries=2) as c:
        with pytest.raises(ServerError, match="Internal server error") as e:
            await c.ping()
    assert e.value.status == 500


async def test_non_idempotent_post_is_not_retried_on_5xx() -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(502, json={"message": "bad gateway"})

    async with client_with(handler, rate_limit=1000) as c:
        with pytest.raises(ServerError):
            await c.create_stack(["a", "b"])
    assert calls == 1


async def test_connection_errors_are_retried_then_reported_without_the_key() -> None:
    calls = 0

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("refused", request=req)

    async with client_with(handler, rate_limit=1000, max_retries=3) as c:
        with pytest.raises(ConnectionFailed) as e:
            await c.ping()
    assert calls == 4
    assert KEY not in str(e.value)
    assert KEY not in repr(e.value)


async def test_key_sent_as_header_not_in_the_url() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"res": "pong"})

    async with client_with(handler) as c:
        await c.ping()
    assert seen[0].headers["x-api-key"] == KEY
    assert KEY not in str(seen[0].url)
    assert seen[0].url.path == "/api/server/ping"


async def test_thumbnail_redirect_to_another_host_is_not_followed_with_the_key() -> None:
    hosts: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hosts.append(req.url.host)
        return httpx.Response(302, headers={"location": "http://evil.example/steal"})

    async with client_with(handler) as c:
        with pytest.raises(ImmichError, match="another host"):
            await c.thumbnail("00000000-0000-4000-8000-000000000001", "fullsize")
    assert hosts == ["immich.test"]


async def test_thumbnail_redirect_within_the_server_is_followed() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/thumbnail"):
            return httpx.Response(302, headers={"location": "/api/assets/abc/original"})
        assert req.headers["x-api-key"] == KEY
        return httpx.Response(200, content=b"JPEGDATA")

    async with client_with(handler) as c:
        assert await c.thumbnail("abc", "fullsize") == b"JPEGDATA"


async def test_truncated_download_is_an_integrity_error(tmp_path: Path) -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"x" * 10)

    async with client_with(handler, max_retries=0) as c:
        with pytest.raises(ImmichError, match="server reports 20"):
            await c.download_original("abc", tmp_path / "f", expected_size=20)


def test_zero_or_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        ImmichClient("http://x", KEY, rate_limit=0)
    with pytest.raises(ValueError, match="rate limit"):
        ImmichClient("http://x", KEY, rate_limit=-1)
    with pytest.raises(ValueError, match="concurrency"):
        ImmichClient("http://x", KEY, concurrency=0)


async def test_a_body_cut_off_after_the_headers_is_retried_when_safe() -> None:
    calls = 0

    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            yield b'{"res": "po'
            raise httpx.ReadError("connection reset")

    def handler(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return httpx.Response(200, stream=Broken())
        return httpx.Response(200, json={"res": "pong"})

    async with client_with(handler, rate_limit=1000) as c:
        assert await c.ping()
    assert calls == 2

    calls = 0

    def always_broken(req: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, stream=Broken())

    async with client_with(always_broken, rate_limit=1000) as c:
        with pytest.raises(ConnectionFailed, match="cut off"):
            await c.create_stack(["a", "b"])  # not safe to repeat: one try only
    assert calls == 1


@pytest.mark.parametrize("bad", ["abc\r", "abc\n", " abc "])
def test_a_key_with_surrounding_whitespace_is_stripped(bad: str) -> None:
    seen: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers["x-api-key"])
        return httpx.Response(200, json={"res": "pong"})

    async def go() -> None:
        async with ImmichClient("http://immich.test", bad, transport=httpx.MockTransport(handler)) as c:
            await c.ping()

    import asyncio

    asyncio.run(go())
    assert seen == ["abc"]


@pytest.mark.parametrize("bad", ["ab\rcd-SECRET", "ab cd-SECRET", "ab\x00cd-SECRET", "äbcd-SECRET"])
def test_a_key_that_cannot_be_a_header_is_refused_without_repeating_it(bad: str) -> None:
    with pytest.raises(ValueError, match="API key") as e:
        ImmichClient("http://immich.test", bad)
    assert "SECRET" not in str(e.value)
