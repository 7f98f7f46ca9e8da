"""The fake over a real socket: a threaded HTTP/1.1 keep-alive server on loopback.

Faults that concern the connection are real here: ``reset`` sends half the body and then a
TCP RST, ``truncate`` announces the full ``Content-Length``, sends half and closes, ``down``
reads the request and resets the connection without answering.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from immich_dupes.fake.core import FakeImmich
from immich_dupes.fake.faults import Faults
from immich_dupes.fake.http import ApiRequest

_CHUNK = 256 * 1024


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], fake: FakeImmich) -> None:
        self.fake = fake
        self.conns: set[socket.socket] = set()
        self.to_reset: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        self.accepted = 0
        super().__init__(addr, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            self.conns.add(request)
            self.accepted += 1
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.conn_lock:
            self.conns.discard(request)
            reset = request in self.to_reset
            self.to_reset.discard(request)
        if reset:
            with contextlib.suppress(OSError):
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_request(request)
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that vanish (killed, reset) are normal here; anything else is kept for tests."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        self.fake.errors.append(traceback.format_exc())

    def close_all(self) -> None:
        with self.conn_lock:
            conns = list(self.conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


class _IncompleteBody(Exception):
    """The client closed before sending the whole body it announced."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "immich-dupes-fake"
    sys_version = ""
    timeout = 120
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        return

    def _read_body(self) -> bytes:
        """The request body; raises _IncompleteBody when the client stops sending before its
        end (a real server aborts such a request: a cut-off upload stores nothing)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise _IncompleteBody
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _IncompleteBody
                parts.append(chunk)
                self.rfile.readline(65537)
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0:
            return b""
        body = self.rfile.read(length)
        if len(body) < length:
            raise _IncompleteBody
        return body

    def _drop(self) -> None:
        """Abort the connection with an RST once the handler returns."""
        self.close_connection = True
        with self.server.conn_lock:
            self.server.to_reset.add(self.connection)

    def _serve(self) -> None:
        fake = self.server.fake
        t0 = time.monotonic()
        try:
            body = self._read_body()
        except _IncompleteBody:
            self.close_connection = True
            return
        url = urlsplit(self.path)
        req = ApiRequest(
            method=self.command,
            path=url.path,
            query=url.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
        )
        decision = fake._decide(req.method, req.path)
        if decision.down:
            fake._record(req, t0, 0, None, 0, "down")
            self._drop()
            return
        if decision.latency:
            time.sleep(decision.latency)
        resp, user_id = fake._respond(req, decision)
        data = resp.materialize()
        head_only = self.command == "HEAD"
        self.send_response(resp.status)
        has_length = False
        for k, v in resp.headers:
            if k.lower() == "content-length":
                has_length = True
            self.send_header(k, v)
        if not has_length and resp.status != 204:
            self.send_header("Content-Length", str(len(data)))
        cut = decision.reset or decision.truncate
        if cut:
            self.send_header("Connection", "close")
        self.end_headers()
        sent = data[: len(data) // 2] if cut else data
        try:
            if not head_only:
                view = memoryview(sent)
                for i in range(0, len(view), _CHUNK):
                    self.wfile.write(view[i : i + _CHUNK])
            self.wfile.flush()
        except OSError:
            self.close_connection = True
        fake._record(req, t0, resp.status, user_id, 0 if head_only else len(sent), decision.name)
        if decision.reset:
            self._drop()
        elif decision.truncate:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve


class FakeServer:
    """Serve ``fake`` on ``http://host:port`` from a background thread (port 0: any free port)."""

    def __init__(self, fake: FakeImmich, port: int = 0, host: str = "127.0.0.1") -> None:
        self.fake = fake
        self.host = host
        self._requested_port = port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (keep-alive reuses one per client connection)."""
        return self._httpd.accepted if self._httpd is not None else 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeServer:
        if self._httpd is None:
            self._httpd = _HTTPServer((self.host, self._requested_port), self.fake)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fake-immich",
                daemon=True,
            )
            self._stopped.clear()
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = None
        self._thread = None
        httpd.shutdown()
        httpd.server_close()
        httpd.close_all()
        if thread is not None:
            thread.join(timeout=5)
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until ``stop()`` is called (or ``timeout``); True if stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serve_forever(
    library: str = "sample",
    profile: str = "v3",
    port: int = 0,
    faults: Faults | str | None = None,
    host: str = "127.0.0.1",
    *,
    original_size: int | None = None,
) -> tuple[str, str, FakeServer]:
    """Start a fake server in the background; returns ``(url, api_key, server)``.

    Prints nothing. The caller prints the URL and key and then waits, e.g. ``server.wait()``
    until interrupted, then ``server.stop()``.
    """
    fake = FakeImmich(library=library, profile=profile, faults=faults, original_size=original_size)
    server = FakeServer(fake, port=port, host=host).start()
    return server.url, fake.api_key, server
