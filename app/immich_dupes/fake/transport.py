"""In-process httpx transports over a ``FakeImmich`` (no sockets; faults still apply).

A dropped connection surfaces the way httpx reports it for a real socket: ``down`` raises
``httpx.ConnectError``; ``reset`` yields part of the body then raises ``httpx.ReadError``;
``truncate`` yields part of the body then raises ``httpx.RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import httpx

from immich_dupes.fake.core import FakeImmich
from immich_dupes.fake.faults import FaultDecision
from immich_dupes.fake.http import ApiRequest, ApiResponse


def _api_request(request: httpx.Request, body: bytes) -> ApiRequest:
    return ApiRequest(
        method=request.method,
        path=request.url.path,
        query=request.url.query.decode("ascii", errors="replace"),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
    )


class _SyncCut(httpx.SyncByteStream):
    def __init__(self, data: bytes, error: Exception) -> None:
        self._data = data
        self._error = error

    def __iter__(self) -> Iterator[bytes]:
        if self._data:
            yield self._data
        raise self._error


class _AsyncCut(httpx.AsyncByteStream):
    def __init__(self, data: bytes, error: Exception) -> None:
        self._data = data
        self._error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._data:
            yield self._data
        raise self._error


def _headers(resp: ApiResponse, data: bytes) -> list[tuple[str, str]]:
    headers = list(resp.headers)
    if resp.status != 204 and resp.header("content-length") is None:
        headers.append(("Content-Length", str(len(data))))
    return headers


def _cut_error(decision: FaultDecision, request: httpx.Request) -> Exception:
    if decision.reset:
        return httpx.ReadError(
            "[Errno 104] Connection reset by peer (fake Immich)", request=request
        )
    return httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body (fake Immich)",
        request=request,
    )


def _finish(
    fake: FakeImmich,
    request: httpx.Request,
    req: ApiRequest,
    decision: FaultDecision,
    resp: ApiResponse,
    user_id: str | None,
    data: bytes,
    t0: float,
) -> tuple[list[tuple[str, str]], bytes, bool]:
    cut = decision.reset or decision.truncate
    sent = data[: len(data) // 2] if cut else data
    fake._record(req, t0, resp.status, user_id, len(sent), decision.name)
    return _headers(resp, data), sent, cut


def _refused(fake: FakeImmich, request: httpx.Request, req: ApiRequest, t0: float) -> httpx.ConnectError:
    """While the fake is 'down': log the attempt and refuse it as a closed port would."""
    fake._record(req, t0, 0, None, 0, "down")
    return httpx.ConnectError("[Errno 111] Connection refused (fake Immich is down)", request=request)


class FakeSyncTransport(httpx.BaseTransport):
    def __init__(self, fake: FakeImmich) -> None:
        self.fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        t0 = time.monotonic()
        req = _api_request(request, request.read())
        decision = self.fake._decide(req.method, req.path)
        if decision.down:
            raise _refused(self.fake, request, req, t0)
        if decision.latency:
            time.sleep(decision.latency)
        resp, user_id = self.fake._respond(req, decision)
        data = resp.materialize()
        headers, sent, cut = _finish(self.fake, request, req, decision, resp, user_id, data, t0)
        if cut:
            return httpx.Response(
                resp.status,
                headers=headers,
                stream=_SyncCut(sent, _cut_error(decision, request)),
                request=request,
            )
        return httpx.Response(resp.status, headers=headers, content=data, request=request)


class FakeAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, fake: FakeImmich) -> None:
        self.fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        t0 = time.monotonic()
        req = _api_request(request, await request.aread())
        decision = self.fake._decide(req.method, req.path)
        if decision.down:
            raise _refused(self.fake, request, req, t0)
        if decision.latency:
            await asyncio.sleep(decision.latency)
        resp, user_id = self.fake._respond(req, decision)
        data = (
            await asyncio.to_thread(resp.materialize) if callable(resp.body) else resp.materialize()
        )
        headers, sent, cut = _finish(self.fake, request, req, decision, resp, user_id, data, t0)
        if cut:
            return httpx.Response(
                resp.status,
                headers=headers,
                stream=_AsyncCut(sent, _cut_error(decision, request)),
                request=request,
            )
        return httpx.Response(resp.status, headers=headers, content=data, request=request)
