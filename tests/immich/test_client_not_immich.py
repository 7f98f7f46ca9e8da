"""The first contact with a URL that is no Immich API: one clear line, never a page.

A wrong sub-path, another web server, a redirect or a proxy's error page must say "no Immich
API at <url>" (or that Immich is not answering) with the answer in a few words, and never quote
an HTML page or a long body into the terminal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from immich_dupes.fake import FakeImmich, Faults
from immich_dupes.immich.client import ImmichClient, normalize_base_url
from immich_dupes.immich.errors import (
    ConnectionFailed,
    ImmichError,
    UnsupportedServer,
    error_for,
    parse_error_body,
)

HTML_404 = b"""<!DOCTYPE HTML>
<html lang="en">
    <head>
        <meta charset="utf-8">
        <title>Error response</title>
    </head>
    <body>
        <h1>Error response</h1>
        <p>Error code: 404</p>
        <p>Message: File not found.</p>
    </body>
</html>
"""

Route = tuple[int, dict[str, str], bytes]


class _Pages:
    """A tiny web server on 127.0.0.1 that answers each path as told (default: HTML 404)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[str] = []
        self.auth: list[str | None] = []
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pages.seen.append(self.path)
                pages.auth.append(self.headers.get("authorization"))
                status, headers, body = pages.routes.get(
                    self.path, (404, {"content-type": "text/html;charset=utf-8"}, HTML_404)
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def pages() -> Iterator[_Pages]:
    p = _Pages()
    t = threading.Thread(target=p.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    t.start()
    try:
        yield p
    finally:
        p.httpd.shutdown()
        p.httpd.server_close()


def client(url: str, **kw: object) -> ImmichClient:
    return ImmichClient(url, "some-key", backoff_base=0.001, **kw)  # type: ignore[arg-type]


def assert_one_clean_line(text: str) -> None:
    assert "\n" not in text
    assert "\r" not in text
    assert "<" not in text, text  # no markup quoted
    assert len(text) < 400, text


async def test_another_web_server_answering_html_is_no_immich_api(pages: _Pages) -> None:
    async with client(pages.url) as c:
        with pytest.raises(UnsupportedServer) as ei:
            await c.connect()
    msg = ei.value.message
    assert msg.startswith(f"no Immich API at {pages.url}/api (GET /server/version answered 404")
    assert 'an HTML page ("Error response")' in msg
    assert_one_clean_line(msg)
    # Both names of the version route were tried (the older one before Immich 1.113).
    assert pages.seen == ["/api/server/version", "/api/server-info/version"]


async def test_the_fake_under_a_wrong_sub_path_is_no_immich_api() -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with ImmichClient("http://fake-immich/immich", fake.api_key, transport=fake.transport()) as c:
        with pytest.raises(UnsupportedServer) as ei:
            await c.connect()
    msg = ei.value.message
    assert msg.startswith("no Immich API at http://fake-immich/immich/api (GET /server/version answered 404")
    assert '"Cannot GET /immich/api/server/version"' in msg
    assert_one_clean_line(msg)


async def test_a_web_app_answering_200_html_is_no_immich_api(pages: _Pages) -> None:
    # Immich's own web app (or any single-page app) answers every unknown path with its page.
    page = b"<!doctype html><html><head><title>Immich</title></head><body>" + b"x" * 5000 + b"</body></html>"
    pages.routes["/photos/api/server/version"] = (200, {"content-type": "text/html"}, page)
    async with client(pages.url + "/photos") as c:
        with pytest.raises(UnsupportedServer) as ei:
            await c.connect()
    assert 'answered 200 with an HTML page ("Immich")' in ei.value.message
    assert_one_clean_line(ei.value.message)


async def test_json_that_is_not_a_version_is_no_immich_api(pages: _Pages) -> None:
    pages.routes["/api/server/version"] = (200, {"content-type": "application/json"}, b'{"major": "new"}')
    async with client(pages.url) as c:
        with pytest.raises(UnsupportedServer) as ei:
            await c.connect()
    assert "answered 200 with JSON that is not a version" in ei.value.message


async def test_a_redirect_is_named_not_followed(pages: _Pages) -> None:
    pages.routes["/api/server/version"] = (
        301, {"location": "https://photos.example.org/api/server/version"}, b"<html>moved</html>",
    )
    async with client(pages.url) as c:
        with pytest.raises(UnsupportedServer) as ei:
            await c.connect()
    assert "answered 301, a redirect to https://photos.example.org/api/server/version" in ei.value.message
    assert pages.seen == ["/api/server/version"]


async def test_a_proxy_error_page_is_a_connection_failure_in_one_line(pages: _Pages) -> None:
    page = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n"
    pages.routes["/api/server/version"] = (502, {"content-type": "text/html"}, page)
    async with client(pages.url) as c:
        with pytest.raises(ConnectionFailed) as ei:
            await c.connect()
    msg = ei.value.message
    assert msg == (
        f"Immich at {pages.url}/api is not answering: "
        'GET /server/version answered 502 with an HTML page ("502 Bad Gateway")'
    )


async def test_an_older_immich_still_answers_at_server_info(pages: _Pages) -> None:
    pages.routes["/api/server-info/version"] = (
        200, {"content-type": "application/json"}, b'{"major": 1, "minor": 110, "patch": 2}',
    )
    async with client(pages.url) as c:
        version = await c.server_version()
    assert str(version) == "1.110.2"


def test_an_html_error_body_is_described_by_its_title_not_quoted() -> None:
    message, details = parse_error_body(HTML_404)
    assert (message, details) == ('an HTML page ("Error response")', [])
    err = error_for(404, HTML_404, "GET", "/assets/x/original")
    assert str(err) == 'GET /assets/x/original: 404 an HTML page ("Error response")'


def test_a_text_body_is_capped_on_one_line_without_control_characters() -> None:
    body = ("line one\r\n\tline two \x1b[31mred\x07 \u202eevil\n" + "y" * 1000).encode()
    message, _ = parse_error_body(body)
    assert message.startswith("line one line two [31mred evil y")
    assert not {"\x1b", "\x07", "\u202e"} & set(message)
    assert len(message) == 200
    assert message.endswith("…")


def test_json_messages_and_details_are_capped_too() -> None:
    body = (
        b'{"message": "bad\\nthing ' + b"z" * 500 + b'", "errors": ['
        + b",".join(b'{"path": ["ids", %d], "message": "must be a UUID"}' % i for i in range(25))
        + b"]}"
    )
    message, details = parse_error_body(body)
    assert message.startswith("bad thing zzz")
    assert len(message) == 200
    assert len(details) == 11
    assert details[0] == "ids.0: must be a UUID"
    assert details[-1] == "and 15 more"
    assert "\n" not in str(ImmichError(message, details=details))


async def test_a_version_answer_cut_off_is_retried_then_a_connection_failure() -> None:
    """Half an answer says nothing about what is at the address: retried like any cut-off
    answer, then "cut off" (exit 3), never "no Immich API" quoting half a version."""
    fake = FakeImmich(library="sample", profile="v3")
    fake.faults = Faults.parse("truncate=1.0@/api/server/version")
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                            backoff_base=0.001, max_retries=3) as c:
        with pytest.raises(ConnectionFailed, match="cut off"):
            await c.server_version()
    tries = [r for r in fake.request_log if r.path == "/api/server/version"]
    assert len(tries) == 4  # the first and 3 retries
    fake.faults = Faults.parse("truncate=0.0")
    async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport()) as c:
        assert (await c.server_version()).major == 3


async def test_a_password_in_the_url_is_sent_as_auth_and_never_shown(pages: _Pages) -> None:
    """A proxy's basic auth written in the URL: sent with every request, but never part of the
    address the plan, the backup and every message carry."""
    url = pages.url.replace("http://", "http://bob:hunter%402@")
    assert normalize_base_url(url) == pages.url + "/api"
    async with client(url) as c:
        assert c.base_url == pages.url + "/api"
        with pytest.raises(UnsupportedServer) as ei:
            await c.connect()
    assert "hunter" not in ei.value.message
    assert "bob" not in ei.value.message
    assert pages.auth
    assert all(a == "Basic Ym9iOmh1bnRlckAy" for a in pages.auth)  # bob:hunter@2
