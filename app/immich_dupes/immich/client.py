"""The async Immich client: one ``httpx.AsyncClient``, auth, version detection, limits, retries.

Built like httpx itself: one object, explicit timeouts, a transport you can swap (the fake
Immich's in-process transport in tests), and one exception family (``errors``).

Rate limit and concurrency are real: every request holds one of ``concurrency`` permits until
its body is consumed, and its start waits for a place in a sliding window (never more than
``rate_limit`` starts in any second as the server sees them; a burst up to that is allowed).
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import email.utils
import hashlib
import json
import os
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from immich_dupes import __version__
from immich_dupes.immich.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ImmichError,
    IntegrityError,
    NotFound,
    PermissionMissing,
    ServerError,
    UnsupportedServer,
    describe_html,
    error_for,
    looks_like_html,
    parse_error_body,
    quote_text,
)
from immich_dupes.immich.models import (
    Album,
    ApiKeyInfo,
    Asset,
    BulkIdResult,
    BulkUploadCheckItem,
    DuplicateGroup,
    ServerConfig,
    ServerVersion,
    Tag,
    UploadResult,
    User,
)
from immich_dupes.immich.multipart import StreamingMultipart, sha1_of_checksum

DEFAULT_RATE_LIMIT = 10.0
DEFAULT_CONCURRENCY = 5
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 120.0
CHUNK = 1 << 20


def normalize_base_url(url: str) -> str:
    """``https://host``, ``https://host/``, ``https://host/api`` and ``https://host/sub/api/`` → the /api base.

    Raises ValueError with a plain sentence for something that is not an http(s) URL.
    """
    raw = url.strip()
    if not raw:
        raise ValueError("the server URL is empty (use -u URL or IMMICH_URL)")
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the server URL must start with http:// or https:// (got {parts.scheme}://)")
    if not parts.hostname:
        raise ValueError("the server URL has no host name")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("the server URL has an invalid port") from None
    path = parts.path.rstrip("/")
    if not path.endswith("/api"):
        path = path + "/api"
    # A user name and password in the URL (a proxy's basic auth) never become part of the
    # address: it is written into plans, backups and messages. The client sends them as auth.
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def url_credentials(url: str) -> tuple[str, str] | None:
    """The user name and password written in ``url`` (``https://user:pw@host``), if any."""
    raw = url.strip()
    parts = urlsplit(raw if "://" in raw else "http://" + raw)
    if parts.username is None:
        return None
    return unquote(parts.username), unquote(parts.password or "")


def checksum_b64(sha1_digest: bytes) -> str:
    return base64.b64encode(sha1_digest).decode("ascii")


class _Start:
    """One request's start as the rate limiter sees it."""

    __slots__ = ("known", "t")

    def __init__(self, t: float) -> None:
        self.t = t
        self.known = asyncio.Event()
        """Set once the request has really left (its headers are sent) or has failed to."""


class RateLimiter:
    """At most ``rate`` request starts in any one-second window, as the server sees them.

    A sliding window over the *actual* start times: the ``k``-th previous start (``k`` =
    the rate, rounded down) must be a whole window in the past, the window being one second
    (or ``k/rate`` for a rate under one) plus 3 % for jitter in transit. So the first ``k``
    requests go at once (a review screen's few thumbnails are not spaced 100 ms apart).

    A start counts from the moment the request's headers have been sent (``started``), not
    from when it was allowed to go: a first request that still has to open its connection
    reaches the server tens of ms later, and timing the window from the earlier moment let
    one more request into that second (measured from the fake's log at ``--rate-limit 5``).
    A request waiting on the window also waits for that moment of the start it counts from.
    """

    MARGIN = 1.03

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate limit must be a positive number of requests per second")
        self._k = max(1, min(int(rate), 100_000))  # beyond that: no limit to speak of
        self.window = max(1.0, self._k / rate) * self.MARGIN
        self._starts: deque[_Start] = deque(maxlen=self._k)
        self._lock = asyncio.Lock()
        self._clock = clock
        self._sleep = sleep

    async def wait(self) -> _Start:
        """Wait for a free place in the window; the caller must then call ``started``."""
        async with self._lock:
            if len(self._starts) == self._k:
                first = self._starts[0]
                await first.known.wait()
                delay = first.t + self.window - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            start = _Start(self._clock())
            self._starts.append(start)
            return start

    def started(self, start: _Start) -> None:
        """The request has left (headers sent), or will never leave (it failed): once only."""
        if not start.known.is_set():
            start.t = max(start.t, self._clock())
            start.known.set()


@dataclass
class ClientStats:
    """What the client sent: for benchmarks and the execute report."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    bytes_downloaded: int = 0

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@dataclass
class ServerInfo:
    version: ServerVersion
    user: User
    key: ApiKeyInfo | None
    """None on servers before 1.139 (no ``/api-keys/me``): permissions cannot be pre-checked."""

    def missing(self, needed: Iterable[str]) -> list[str]:
        if self.key is None:
            return []
        have = set(self.key.permissions)
        if "all" in have:
            return []
        return [p for p in needed if p not in have]

    def require(self, needed: Iterable[str]) -> None:
        """Raise PermissionMissing naming every permission of ``needed`` the key lacks."""
        missing = self.missing(needed)
        if missing:
            raise PermissionMissing(
                "the API key lacks permission: " + ", ".join(missing)
                + " (edit the key in Immich: Account Settings → API Keys)",
                permission=missing[0],
                status=403,
            )


def _template(path: str) -> str:
    """``/assets/<uuid>/original`` → ``/assets/{id}/original`` for request statistics."""
    out = []
    for seg in path.split("/"):
        out.append("{id}" if len(seg) == 36 and seg.count("-") == 4 else seg)
    return "/".join(out)


class ImmichClient:
    """Talks to one Immich server as one user (the owner of the API key)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        rate_limit: float = DEFAULT_RATE_LIMIT,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        verify_tls: bool = True,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        # Keys copied from a file often carry a newline or a CR: strip them. Anything else that
        # cannot go in a header is refused here, in words that never repeat the key (httpx's
        # own error would print it).
        api_key = api_key.strip()
        if not api_key:
            raise ValueError("no API key (use -a KEY or IMMICH_API_KEY)")
        if not all(33 <= ord(c) < 127 for c in api_key):
            raise ValueError(
                "the API key contains spaces, control characters or non-ASCII characters; "
                "copy it again from Immich (Account Settings → API Keys)"
            )
        self.base_url = normalize_base_url(url)
        self._origin = urlsplit(self.base_url)[:2]
        self._key = api_key
        self.rate = RateLimiter(rate_limit)
        self.rate_limit = rate_limit
        self.concurrency = concurrency
        self._sem = asyncio.Semaphore(concurrency)
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.stats = ClientStats()
        self.info: ServerInfo | None = None
        # Reads wait up to 120 s between bytes, never for a whole body: a 2 GB original
        # streams for as long as it keeps coming.
        credentials = url_credentials(url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            auth=httpx.BasicAuth(*credentials) if credentials is not None else None,
            headers={"user-agent": f"immich-dupes/{__version__}", "accept": "application/json"},
            timeout=timeout or httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=None),
            transport=transport,
            verify=verify_tls,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=max(concurrency, 1) + 2, max_keepalive_connections=concurrency + 2),
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> ImmichClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ core request

    def _url(self, path: str) -> str:
        return path.lstrip("/")

    def _same_origin(self, url: httpx.URL) -> bool:
        return (url.scheme, url.netloc.decode("ascii")) == tuple(self._origin)

    async def _backoff(self, attempt: int, response: httpx.Response | None) -> None:
        self.stats.retries += 1
        delay: float | None = None
        if response is not None:
            ra = response.headers.get("retry-after")
            if ra:
                try:
                    delay = float(ra)
                except ValueError:
                    when = email.utils.parsedate_to_datetime(ra) if ra else None
                    if when is not None:
                        if when.tzinfo is None:
                            when = when.replace(tzinfo=UTC)
                        delay = (when - datetime.now(UTC)).total_seconds()
                if delay is not None:
                    delay = min(max(delay, 0.0), MAX_RETRY_AFTER_S)
        if delay is None:
            delay = min(self.backoff_cap, self.backoff_base * (2**attempt)) * (0.5 + random.random() / 2)
        await asyncio.sleep(delay)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | AsyncIterable[bytes] | None = None,
        files: Any = None,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool | None = None,
        ok: Sequence[int] = (200, 201, 204),
        http_timeout: httpx.Timeout | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send one request (with retries where safe) and yield the open response.

        The concurrency permit is held until the body has been read by the caller, so
        ``concurrency`` bounds open transfers, not just request starts.
        """
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        attempt = 0
        self.stats.requests[f"{method} {_template(path)}"] += 1
        while True:
            # The permit first, then the rate: the start the limiter counts is the moment the
            # request really leaves, not a moment before a wait for a free connection.
            async with self._sem:
                start = await self.rate.wait()
                try:
                    try:
                        response = await self._send(
                            start, method, path, params, headers, json_body, content, files, data,
                            http_timeout,
                        )
                    finally:
                        # Every start is marked, whatever happened: a start never marked would
                        # hold every later request at the window forever. (Transports without
                        # the trace hook, in-process ones, are marked here on return.)
                        self.rate.started(start)
                except httpx.HTTPError as e:
                    # Every httpx failure becomes our error type with our own words: str(e) of
                    # a header error would carry the key.
                    transient = isinstance(
                        e, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
                    )
                    if not transient:
                        raise ConnectionFailed(
                            f"the request could not be sent ({type(e).__name__})",
                            method=method,
                            path=path,
                        ) from None
                    retriable = idempotent or isinstance(e, httpx.ConnectError)
                    if retriable and attempt < self.max_retries:
                        attempt += 1
                        retry_response = None
                    else:
                        raise ConnectionFailed(
                            _describe_transport_error(e, self.base_url), method=method, path=path
                        ) from None
                else:
                    try:
                        if response.status_code in RETRY_STATUSES and (
                            idempotent or response.status_code == 429
                        ) and attempt < self.max_retries:
                            await response.aclose()
                            attempt += 1
                            retry_response = response
                        elif response.status_code not in ok:
                            body = await _read_limited(response)
                            raise error_for(response.status_code, body, method, path)
                        else:
                            yield response
                            return
                    finally:
                        await response.aclose()
            await self._backoff(attempt - 1, retry_response)

    async def _send(
        self,
        start: _Start,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
        json_body: Any,
        content: bytes | AsyncIterable[bytes] | None,
        files: Any,
        data: dict[str, Any] | None,
        http_timeout: httpx.Timeout | None,
    ) -> httpx.Response:
        """Build and send one attempt; its start is marked once its headers have left."""

        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith("send_request_headers.complete"):
                self.rate.started(start)

        req_kw: dict[str, Any] = {
            "params": params,
            "headers": {"x-api-key": self._key, **(headers or {})},
            "extensions": {"trace": trace},
        }
        if json_body is not None:
            req_kw["json"] = json_body
        if content is not None:
            req_kw["content"] = content
        if files is not None:
            req_kw["files"] = files
        if data is not None:
            req_kw["data"] = data
        if http_timeout is not None:
            req_kw["timeout"] = http_timeout
        request = self._http.build_request(method, self._url(path), **req_kw)
        return await self._http.send(request, stream=True)

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send, read the whole body, return parsed JSON (None for an empty body).

        A body cut off after the headers is retried like a broken connection when the request
        is safe to repeat.
        """
        idempotent = kw.get("idempotent")
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        attempt = 0
        while True:
            cut: ConnectionFailed | None = None
            async with self.stream(method, path, **kw) as r:
                try:
                    body = await r.aread()
                except (httpx.TransportError, httpx.StreamError) as e:
                    cut = ConnectionFailed(
                        f"the answer was cut off ({type(e).__name__})", method=method, path=path
                    )
            if cut is not None:
                if idempotent and attempt < self.max_retries:
                    await self._backoff(attempt, None)
                    attempt += 1
                    continue
                raise cut
            if not body:
                return None
            try:
                return json.loads(body)
            except ValueError:
                raise ImmichError(
                    "the server's answer is not JSON: is this an Immich server?",
                    status=r.status_code,
                    method=method,
                    path=path,
                ) from None

    # ------------------------------------------------------------------ server, user, key

    async def ping(self) -> bool:
        data = await self.request("GET", "/server/ping")
        return isinstance(data, dict) and data.get("res") == "pong"

    async def server_version(self) -> ServerVersion:
        """The server's version; as the first contact, also whether an Immich API answers here.

        ``GET /server/version`` (``/server-info/version`` before 1.113). Any other answer (a
        wrong sub-path, another web server, a redirect, a login page) is UnsupportedServer
        "no Immich API at <url>", one line that describes the answer and never quotes a page;
        a 5xx or 429 after the retries is ConnectionFailed. 401 and 403 keep their own errors.
        """
        answer = await self._version_answer("/server/version")
        if isinstance(answer, ServerVersion):
            return answer
        if answer.status == 404:
            older = await self._version_answer("/server-info/version")
            if isinstance(older, ServerVersion):
                return older
        raise UnsupportedServer(
            f"no Immich API at {self.base_url} (GET /server/version answered {answer.text}); "
            "use the address you open Immich at in a browser, with or without /api"
        )

    async def _version_answer(self, path: str) -> ServerVersion | _Answer:
        """The version at ``path``, or what answered instead, described in a few words.

        A body cut off after the headers is retried, then ConnectionFailed, as in ``request``:
        half an answer says nothing about what is at the address."""
        attempt = 0
        while True:
            cut: ConnectionFailed | None = None
            async with self.stream("GET", path, ok=range(100, 600)) as r:
                try:
                    body = await _read_limited(r, strict=True)
                except (httpx.TransportError, httpx.StreamError) as e:
                    cut = ConnectionFailed(
                        f"the answer was cut off ({type(e).__name__})", method="GET", path=path
                    )
            if cut is None:
                break
            if attempt >= self.max_retries:
                raise cut
            await self._backoff(attempt, None)
            attempt += 1
        status = r.status_code
        if status in (401, 403):
            raise error_for(status, body, "GET", path)
        if status >= 500 or status == 429:
            raise ConnectionFailed(
                f"Immich at {self.base_url} is not answering: GET {path} answered "
                f"{_describe_answer(r, body)}"
            )
        if status == 200:
            try:
                data = json.loads(body)
                if isinstance(data, dict):
                    return ServerVersion.model_validate(data)
            except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
                pass
        return _Answer(status, _describe_answer(r, body))

    async def me(self) -> User:
        return User.model_validate(await self.request("GET", "/users/me"))

    async def api_key_info(self) -> ApiKeyInfo | None:
        try:
            data = await self.request("GET", "/api-keys/me")
        except ImmichError as e:
            if e.status in (404, 400):
                return None
            raise
        return ApiKeyInfo.model_validate(data)

    async def server_config(self) -> ServerConfig:
        return ServerConfig.model_validate(await self.request("GET", "/server/config"))

    async def connect(self, needed: Iterable[str] = ()) -> ServerInfo:
        """Version, user and key scopes; refuses servers older than 1.106 and missing scopes."""
        # The first contact fails fast: a wrong URL should not sit through a full backoff.
        retries, self.max_retries = self.max_retries, min(self.max_retries, 1)
        try:
            version = await self.server_version()
        finally:
            self.max_retries = retries
        if not version.at_least(1, 106):
            raise UnsupportedServer(
                f"Immich {version} is too old: immich-dupes needs 1.106 or newer (the /duplicates API)"
            )
        key = await self.api_key_info() if version.at_least(1, 139) else None
        needed = list(needed)
        info = ServerInfo(version=version, user=User(id="00000000-0000-0000-0000-000000000000"), key=key)
        info.require(needed)
        try:
            info.user = await self.me()
        except PermissionMissing as e:
            raise PermissionMissing(
                "the API key lacks permission: user.read (needed to know whose library this is)",
                permission=e.permission or "user.read",
                status=403,
            ) from None
        self.info = info
        return info

    @property
    def version(self) -> ServerVersion:
        if self.info is None:
            raise RuntimeError("call connect() first")
        return self.info.version

    # ------------------------------------------------------------------ duplicates

    async def duplicates(
        self, on_progress: Callable[[int, int | None], None] | None = None
    ) -> list[DuplicateGroup]:
        """All duplicate groups, parsed group by group while the body streams in.

        The list comes back in one response of up to tens of MB: we never hold the parsed JSON
        of the whole thing, only the typed groups (and at most one network chunk of text).
        """
        groups: list[DuplicateGroup] = []
        async for g in self.iter_duplicates(on_progress):
            groups.append(g)
        return groups

    async def iter_duplicates(
        self, on_progress: Callable[[int, int | None], None] | None = None
    ) -> AsyncIterator[DuplicateGroup]:
        async for item in self.iter_duplicates_raw(on_progress):
            yield DuplicateGroup.model_validate(item)

    async def iter_duplicates_raw(
        self, on_progress: Callable[[int, int | None], None] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """The duplicate groups as the server sent them (plain JSON objects), streamed.

        Execute keeps the losers' full ``AssetResponseDto`` JSON for the backup manifest,
        including fields the typed models drop.
        """
        long_read = httpx.Timeout(connect=15.0, read=600.0, write=60.0, pool=None)
        async with self.stream("GET", "/duplicates", http_timeout=long_read) as r:
            total = _plain_length(r)
            parser = _ArrayStreamParser()
            received = 0
            try:
                async for chunk in r.aiter_bytes(CHUNK):
                    received += len(chunk)
                    for item in parser.feed(chunk):
                        yield _expect_object(item)
                    if on_progress is not None:
                        on_progress(received, total)
            except (httpx.TransportError, httpx.StreamError) as e:
                raise ConnectionFailed(
                    f"the duplicates list was cut off after {received} bytes ({type(e).__name__})",
                    method="GET",
                    path="/duplicates",
                ) from None
            if total is not None and received < total:
                raise ConnectionFailed(
                    f"the duplicates list was cut off ({received} of {total} bytes)",
                    method="GET",
                    path="/duplicates",
                )
            for item in parser.close():
                yield _expect_object(item)
            self.stats.bytes_downloaded += received

    async def dismiss_duplicates(self, duplicate_ids: Sequence[str], asset_ids: Sequence[str] = ()) -> None:
        """Not duplicates: unlink the groups, keep every asset.

        ≥1.135 has ``DELETE /duplicates``; before, the only way is to clear each asset's
        ``duplicateId`` with a bulk ``PUT /assets``.
        """
        if not duplicate_ids:
            return
        if self.version.at_least(1, 135):
            await self.request("DELETE", "/duplicates", json_body={"ids": list(duplicate_ids)})
        else:
            await self.bulk_update(asset_ids, duplicateId=None)

    # ------------------------------------------------------------------ assets

    async def get_asset(self, asset_id: str) -> Asset:
        return Asset.model_validate(await self.request("GET", f"/assets/{asset_id}"))

    async def get_asset_json(self, asset_id: str) -> dict[str, Any]:
        """``GET /assets/{id}`` as the server sent it (for backup manifests)."""
        data = await self.request("GET", f"/assets/{asset_id}")
        if not isinstance(data, dict):
            raise ImmichError("the asset answer is not a JSON object", method="GET", path=f"/assets/{asset_id}")
        return data

    async def asset_or_none(self, asset_id: str) -> Asset | None:
        """None when Immich says it is gone (400 'Not found', as it answers for a purged id)."""
        try:
            return await self.get_asset(asset_id)
        except NotFound:
            return None

    async def update_asset(self, asset_id: str, **fields: Any) -> Asset:
        return Asset.model_validate(await self.request("PUT", f"/assets/{asset_id}", json_body=fields))

    async def bulk_update(self, asset_ids: Sequence[str], **fields: Any) -> None:
        if not asset_ids:
            return
        await self.request("PUT", "/assets", json_body={"ids": list(asset_ids), **fields})

    async def delete_assets(self, asset_ids: Sequence[str], *, force: bool = False) -> None:
        if not asset_ids:
            return
        await self.request("DELETE", "/assets", json_body={"ids": list(asset_ids), "force": force})

    async def restore_from_trash(self, asset_ids: Sequence[str]) -> int:
        if not asset_ids:
            return 0
        data = await self.request(
            "POST", "/trash/restore/assets", json_body={"ids": list(asset_ids)}, idempotent=True
        )
        return int(data.get("count", 0)) if isinstance(data, dict) else 0

    async def thumbnail(self, asset_id: str, size: str = "thumbnail") -> bytes:
        """Bytes of a thumbnail; follows Immich's redirect for ``fullsize`` within the server only."""
        path = f"/assets/{asset_id}/thumbnail"
        params: dict[str, Any] = {"size": size}
        for _ in range(3):
            async with self.stream("GET", path, params=params, ok=(200, 301, 302, 303, 307, 308)) as r:
                if r.status_code in (301, 302, 303, 307, 308):
                    loc = r.headers.get("location", "")
                    target = r.url.join(loc)
                    if not self._same_origin(target):
                        raise ImmichError(
                            "the server redirected the thumbnail to another host; not following with the key",
                            status=r.status_code,
                            method="GET",
                            path=path,
                        )
                    base_path = urlsplit(self.base_url).path
                    path = target.path[len(base_path) :] if target.path.startswith(base_path) else target.path
                    params = dict(target.params)
                    continue
                body = await r.aread()
                self.stats.bytes_downloaded += len(body)
                return body
        raise ImmichError("too many redirects", method="GET", path=path)

    async def download_original(
        self,
        asset_id: str,
        dest: Path,
        *,
        expected_size: int | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> tuple[int, str]:
        """Stream the untouched original to ``dest`` (fsynced). Returns (size, base64 SHA-1).

        Retries from scratch on a broken transfer; raises IntegrityError when the body is
        shorter than ``Content-Length`` says.
        """
        path = f"/assets/{asset_id}/original"
        last: Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                return await self._download_once(path, dest, expected_size, on_bytes)
            except (ConnectionFailed, IntegrityError) as e:
                last = e
                if attempt < self.max_retries:
                    await self._backoff(attempt, None)
        assert last is not None
        raise last

    async def _download_once(
        self,
        path: str,
        dest: Path,
        expected_size: int | None,
        on_bytes: Callable[[int], None] | None,
    ) -> tuple[int, str]:
        sha1 = hashlib.sha1()
        size = 0
        async with self.stream("GET", path) as r:
            declared = _plain_length(r)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                try:
                    async for chunk in r.aiter_bytes(CHUNK):
                        f.write(chunk)
                        sha1.update(chunk)
                        size += len(chunk)
                        if on_bytes is not None:
                            on_bytes(len(chunk))
                except (httpx.TransportError, httpx.StreamError) as e:
                    raise ConnectionFailed(
                        f"download cut off after {size} bytes ({type(e).__name__})",
                        method="GET",
                        path=path,
                    ) from None
                f.flush()
                os.fsync(f.fileno())
            if declared is not None and size != declared:
                raise IntegrityError(
                    f"download incomplete: {size} of {declared} bytes", method="GET", path=path
                )
        if expected_size is not None and size != expected_size:
            raise IntegrityError(
                f"download is {size} bytes but the server reports {expected_size}",
                method="GET",
                path=path,
            )
        self.stats.bytes_downloaded += size
        return size, checksum_b64(sha1.digest())

    async def upload(
        self,
        file: Path,
        *,
        filename: str,
        file_created_at: datetime,
        file_modified_at: datetime,
        checksum: str | None = None,
        is_favorite: bool = False,
        visibility: str | None = None,
        live_photo_video_id: str | None = None,
        duration_ms: int | None = None,
    ) -> UploadResult:
        """Upload a file; the server answers ``created`` or ``duplicate`` (trashed copies count)."""
        v = self.version
        data: dict[str, Any] = {
            "fileCreatedAt": _iso(file_created_at),
            "fileModifiedAt": _iso(file_modified_at),
            "isFavorite": "true" if is_favorite else "false",
        }
        if v.at_least(1, 135):
            data["filename"] = filename
        if not v.at_least(3):
            # Required strings before v3; the server ignores them from v3 on.
            data["deviceAssetId"] = f"immich-dupes-{checksum or filename}"
            data["deviceId"] = "immich-dupes"
        if visibility is not None:
            if v.at_least(1, 133):
                data["visibility"] = visibility
            else:
                data["isArchived"] = "true" if visibility == "archive" else "false"
        if live_photo_video_id:
            data["livePhotoVideoId"] = live_photo_video_id
        if duration_ms is not None:
            if v.at_least(3):
                data["duration"] = str(duration_ms)
            else:
                s = duration_ms / 1000
                data["duration"] = f"{int(s // 3600)}:{int(s % 3600 // 60):02d}:{s % 60:09.6f}"
        # Streamed from disk with an exact Content-Length: memory stays flat for a multi-GB
        # video. Each attempt resends from the first byte; a file that changes size (or, with a
        # checksum, bytes) while it is sent raises SourceChanged before the body is complete.
        form = await asyncio.to_thread(
            StreamingMultipart,
            data,
            file_field="assetData",
            path=file,
            filename=filename,
            expected_sha1=sha1_of_checksum(checksum),
            url_path="/assets",
        )
        headers = {**form.headers, **({"x-immich-checksum": checksum} if checksum else {})}
        body = await self.request(
            "POST",
            "/assets",
            content=form,
            headers=headers,
            idempotent=bool(checksum),  # with a checksum a repeat answers 'duplicate'
        )
        return UploadResult.model_validate(body)

    async def bulk_upload_check(self, items: Sequence[tuple[str, str]]) -> list[BulkUploadCheckItem]:
        """(client tag, checksum) pairs → accept/reject; matches trashed assets too."""
        if not items:
            return []
        body = await self.request(
            "POST",
            "/assets/bulk-upload-check",
            json_body={"assets": [{"id": i, "checksum": c} for i, c in items]},
            idempotent=True,
        )
        return [BulkUploadCheckItem.model_validate(x) for x in body.get("results", [])]

    # ------------------------------------------------------------------ albums, tags, stacks

    async def albums(self) -> list[Album]:
        """Albums the user owns and albums shared with them, once each."""
        owned = await self.request("GET", "/albums")
        shared = await self.request("GET", "/albums", params={"shared": "true"})
        out: dict[str, Album] = {}
        for raw in [*(owned or []), *(shared or [])]:
            a = Album.model_validate(raw)
            out.setdefault(a.id, a)
        return list(out.values())

    async def albums_for_asset(self, asset_id: str) -> list[Album]:
        data = await self.request("GET", "/albums", params={"assetId": asset_id})
        return [Album.model_validate(x) for x in data or []]

    async def album_asset_ids(self, album_id: str) -> list[str]:
        """Ids of an album's assets. v3's album no longer lists them: search by album then."""
        if self.version.at_least(3):
            ids: list[str] = []
            page: int | None = 1
            while page is not None:
                body = await self.request(
                    "POST",
                    "/search/metadata",
                    json_body={"albumIds": [album_id], "size": 1000, "page": page},
                    idempotent=True,
                )
                assets = (body or {}).get("assets", {})
                ids.extend(str(x["id"]) for x in assets.get("items", []))
                nxt = assets.get("nextPage")
                page = int(nxt) if nxt else None
            return ids
        data = await self.request("GET", f"/albums/{album_id}")
        return [str(x["id"]) for x in (data or {}).get("assets", [])]

    async def add_to_album(self, album_id: str, asset_ids: Sequence[str]) -> list[BulkIdResult]:
        if not asset_ids:
            return []
        body = await self.request("PUT", f"/albums/{album_id}/assets", json_body={"ids": list(asset_ids)})
        return [BulkIdResult.model_validate(x) for x in body or []]

    async def tags(self) -> list[Tag]:
        return [Tag.model_validate(x) for x in await self.request("GET", "/tags") or []]

    async def tag_assets(self, tag_id: str, asset_ids: Sequence[str]) -> list[BulkIdResult]:
        if not asset_ids:
            return []
        body = await self.request("PUT", f"/tags/{tag_id}/assets", json_body={"ids": list(asset_ids)})
        return [BulkIdResult.model_validate(x) for x in body or []]

    async def create_stack(self, asset_ids: Sequence[str]) -> str:
        """Stack the assets; the first becomes the primary. Returns the stack id."""
        body = await self.request(
            "POST", "/stacks", json_body={"assetIds": list(asset_ids)}, idempotent=False
        )
        return str((body or {}).get("id", ""))


# ---------------------------------------------------------------------- helpers


async def _read_limited(response: httpx.Response, limit: int = 64 * 1024, strict: bool = False) -> bytes:
    """Up to ``limit`` bytes of the body. What a broken transfer delivered is returned as it is,
    unless ``strict``, when its error is raised."""
    out = b""
    try:
        async for chunk in response.aiter_bytes():
            out += chunk
            if len(out) >= limit:
                break
    except (httpx.TransportError, httpx.StreamError):
        if strict:
            raise
    return out


@dataclass(frozen=True)
class _Answer:
    """What answered a request in place of what was expected: its status and a few words."""

    status: int
    text: str


def _describe_answer(r: httpx.Response, body: bytes) -> str:
    """``404 "Cannot GET /x"``, ``200 with an HTML page ("Title")``, ``301, a redirect to …``:
    an answer in a few words on one line; a page or a long body is never quoted whole."""
    status = r.status_code
    location = r.headers.get("location")
    if 300 <= status < 400 and location:
        return f"{status}, a redirect to {quote_text(location, 120)}"
    if not body.strip():
        return f"{status} with an empty body"
    if looks_like_html(body, r.headers.get("content-type", "")):
        return f"{status} with {describe_html(body)}"
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return f'{status} with text, not JSON ("{quote_text(body[:400].decode("utf-8", "replace"), 80)}")'
    if status < 300 or not isinstance(data, dict):
        return f"{status} with JSON that is not a version"
    message, _ = parse_error_body(body)
    return f'{status} "{quote_text(message, 120)}"'


def _plain_length(r: httpx.Response) -> int | None:
    """Content-Length, when it counts the bytes we see (no content-encoding such as gzip)."""
    if r.headers.get("content-encoding", "identity") not in ("identity", ""):
        return None
    return _int_or_none(r.headers.get("content-length"))


def _expect_object(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ImmichError("the duplicates list holds something that is not a group", path="/duplicates")
    return item


def _int_or_none(v: str | None) -> int | None:
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None


def _iso(d: datetime) -> str:
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _describe_transport_error(e: Exception, base_url: str) -> str:
    host = urlsplit(base_url).netloc
    if isinstance(e, httpx.ConnectTimeout):
        return f"cannot reach {host}: the connection timed out"
    if isinstance(e, httpx.ConnectError):
        text = str(e).lower()
        if "certificate" in text or "ssl" in text:
            return f"cannot reach {host}: TLS certificate not trusted (use --insecure only if you know why)"
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
            return f"cannot reach {host}: unknown host name"
        return f"cannot reach {host}: connection refused or unreachable"
    if isinstance(e, httpx.TimeoutException):
        return f"{host} did not answer in time"
    return f"the connection to {host} broke ({type(e).__name__})"


class _ArrayStreamParser:
    """Parse a top-level JSON array element by element as bytes arrive.

    Uses the C JSON decoder on each complete element (``raw_decode``), so it is as fast as
    ``json.loads`` while holding only the current unparsed tail in memory.
    """

    def __init__(self) -> None:
        self._decoder = json.JSONDecoder()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""
        self._pos = 0
        self._state = "start"  # start → items → done

    def feed(self, chunk: bytes) -> list[Any]:
        self._buf = self._buf[self._pos :] + self._utf8.decode(chunk)
        self._pos = 0
        return self._drain(final=False)

    def close(self) -> list[Any]:
        self._buf = self._buf[self._pos :] + self._utf8.decode(b"", final=True)
        self._pos = 0
        items = self._drain(final=True)
        if self._state != "done":
            raise ImmichError("the duplicates list ended early (incomplete JSON)", path="/duplicates")
        return items

    def _skip_ws(self) -> None:
        buf, i, n = self._buf, self._pos, len(self._buf)
        while i < n and buf[i] in " \t\r\n":
            i += 1
        self._pos = i

    def _drain(self, final: bool) -> list[Any]:
        out: list[Any] = []
        while True:
            self._skip_ws()
            if self._pos >= len(self._buf):
                return out
            ch = self._buf[self._pos]
            if self._state == "start":
                if ch != "[":
                    raise ImmichError("the duplicates list is not a JSON array", path="/duplicates")
                self._pos += 1
                self._state = "first"
                continue
            if self._state in ("first", "items"):
                if ch == "]":
                    self._pos += 1
                    self._state = "done"
                    continue
                if self._state == "items":
                    if ch != ",":
                        raise ImmichError("malformed duplicates list", path="/duplicates")
                    self._pos += 1
                    self._skip_ws()
                    if self._pos >= len(self._buf):
                        self._state = "value"
                        return out
                try:
                    item, end = self._decoder.raw_decode(self._buf, self._pos)
                except json.JSONDecodeError:
                    if final:
                        raise ImmichError("the duplicates list is not valid JSON", path="/duplicates") from None
                    if self._state == "items":
                        self._state = "value"
                    return out
                out.append(item)
                self._pos = end
                self._state = "items"
                continue
            if self._state == "value":
                try:
                    item, end = self._decoder.raw_decode(self._buf, self._pos)
                except json.JSONDecodeError:
                    if final:
                        raise ImmichError("the duplicates list is not valid JSON", path="/duplicates") from None
                    return out
                out.append(item)
                self._pos = end
                self._state = "items"
                continue
            if self._state == "done":
                raise ImmichError("unexpected data after the duplicates list", path="/duplicates")


__all__ = [
    "AuthenticationFailed",
    "ConnectionFailed",
    "ImmichClient",
    "ImmichError",
    "NotFound",
    "PermissionMissing",
    "ServerError",
    "ServerInfo",
    "normalize_base_url",
]
