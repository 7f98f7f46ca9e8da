"""Secrets and permissions: the API key stays in memory and on the wire to the server only.

* After runs that succeed and runs that fail in every way (bad key, missing permission,
  faults, a kill, bad input), no file the tool wrote — plan, backup directory with its
  journal, manifests and reports, restore records, thumbnail cache — and no output or error
  text (stdout, stderr, exception messages and formatted tracebacks) holds the key.
* Backup files are 0600 and directories 0700; the plan file is 0600.
* TLS is verified by default (a self-signed server is refused); ``--insecure`` connects and
  warns on stderr.
* A redirect to another origin never carries the key (thumbnails follow same-origin
  redirects only; nothing else follows any).
* A key without a needed permission is reported before anything changes, naming it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import ssl
import stat
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from safety_support import (
    FIGURES,
    api_key_leaks,
    arrivals,
    changing,
    client_for,
    env_for,
    mixed_plan,
)

from immich_dupes.analysis.plan import save_plan
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer, Faults
from immich_dupes.immich.client import ImmichClient, normalize_base_url
from immich_dupes.immich.errors import ImmichError

TLS_DIR = Path(__file__).resolve().parent / "tls"
BAD_KEY = "wrong-key-6f1d0c77e1b14d5f9a0b3c2d1e0f9a8b"


def run_cli(url: str, key: str | None, argv: list[str], **env_extra: str) -> tuple[int, str, str]:
    env = env_for(url, key or "")
    if key is None:
        env.pop("IMMICH_API_KEY")
    env.update(env_extra)
    r = subprocess.run(
        [sys.executable, "-m", "immich_dupes", *argv], env=env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=90, check=False,
    )
    return r.returncode, r.stdout, r.stderr


# --------------------------------------------------------------------------- the key is never written


def test_the_key_is_in_no_file_and_no_output_after_runs_that_fail_every_way(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample")
    limited = fake.add_api_key(fake.user_id, ["user.read", "duplicate.read", "asset.read", "album.read"])
    secrets = [fake.api_key, limited, BAD_KEY]
    texts: list[str] = []
    work = tmp_path / "work"
    work.mkdir()
    plan_path = work / "plan.json"
    backup = work / "backup"

    def cli(key: str | None, *argv: str, expect: tuple[int, ...]) -> None:
        if argv[0] in ("analyze", "verify", "restore"):
            argv = (*argv, "--rate-limit", "1000")
        code, out, err = run_cli(url, key, list(argv), XDG_CACHE_HOME=str(work / "cache"))
        texts.extend((out, err))
        assert code in expect, (argv, code, err[-800:])
        assert "Traceback" not in err

    srv = FakeServer(fake).start()
    url = srv.url
    try:
        # analyze: fine, bad key, missing permission, server down
        cli(fake.api_key, "analyze", "-o", str(plan_path), expect=(0,))
        cli(BAD_KEY, "analyze", "-o", str(work / "p2.json"), expect=(3,))
        cli(fake.add_api_key(fake.user_id, ["asset.read"]), "analyze", "-o", str(work / "p3.json"), expect=(3,))
        from immich_dupes.analysis.plan import load_plan

        plan = load_plan(plan_path)
        plan = mixed_plan(server_url=plan.server_url)
        save_plan(plan, plan_path)
        # execute: bad key, missing permission, faults, a kill, then to the end
        ex = ("execute", "-i", str(plan_path), "-b", str(backup), "--yes", "--rate-limit", "1000")
        cli(BAD_KEY, *ex, expect=(3,))
        cli(limited, *ex, expect=(3,))
        fake.faults = Faults.parse("5xx=0.1,reset=0.05,truncate=0.05,corrupt=0.3,latency=1ms,seed=3")
        cli(fake.api_key, *ex, expect=(1, 3))
        fake.faults = Faults.parse("latency=20ms")
        env = env_for(url, fake.api_key)
        proc = subprocess.Popen([sys.executable, "-m", "immich_dupes", *ex], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not (backup / "journal.jsonl").exists() or (backup / "journal.jsonl").stat().st_size < 2000:
            assert time.monotonic() < deadline, "the journal never grew"
            assert proc.poll() is None, "execute ended before the kill"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        out_b, err_b = proc.communicate()
        texts.extend((out_b.decode(), err_b.decode()))
        FIGURES.killed()
        fake.faults = Faults()
        cli(fake.api_key, *ex, expect=(0,))
        # verify, restore: bad key, faults, dry run, for real
        cli(BAD_KEY, "verify", str(plan_path), expect=(3,))
        # (1: the sample's -03:30 offset is dropped by Immich, which verify reports)
        cli(fake.api_key, "verify", str(plan_path), "--format", "json", "-b", str(backup), expect=(0, 1))
        cli(BAD_KEY, "restore", "-b", str(backup), "--yes", expect=(3,))
        cli(fake.api_key, "restore", "-b", str(backup), "--dry-run", expect=(0,))
        fake.faults = Faults.parse("5xx=0.5,reset=0.2,seed=9")
        cli(fake.api_key, "restore", "-b", str(backup), "--yes", expect=(0, 1, 3))
        fake.faults = Faults()
        cli(fake.api_key, "restore", "-b", str(backup), "--yes", expect=(0,))
        # bad input
        cli(fake.api_key, "execute", "-i", str(work), "-b", str(backup), "--yes", expect=(2,))
        cli(fake.api_key, "verify", str(plan_path), "-u", "ftp://nowhere", expect=(2,))
        # the thumbnail cache the review app fills
        asyncio.run(_fill_thumbnail_cache(fake, url, plan_path, work / "cache" / "thumbs"))
    finally:
        srv.stop()
    # the server gone
    cli(fake.api_key, "verify", str(plan_path), expect=(3,))

    assert list(backup.glob("report-*.json"))
    assert list(backup.glob("restore-*.json"))
    assert any((work / "cache" / "thumbs").rglob("*"))
    for key in secrets:
        assert api_key_leaks(key, [work], texts) == []
    FIGURES.run("CLI runs (secrets)", len(texts) // 2)


async def _fill_thumbnail_cache(fake: FakeImmich, url: str, plan_path: Path, cache_dir: Path) -> None:
    from immich_dupes.analysis.plan import load_plan
    from immich_dupes.tui.thumbs import Pictures, ThumbnailCache

    plan = load_plan(plan_path)
    pictures = Pictures(ThumbnailCache(cache_dir))
    async with client_for(fake, url=url) as c:
        pictures.client = c
        for g in plan.groups[:4]:
            for a in g.assets:
                img, why = await pictures.get(a, "thumbnail")
                assert img is not None, why
    assert pictures.fetched >= 8


async def test_error_messages_and_tracebacks_hold_no_key() -> None:
    """Every kind of client error, formatted as a user or a crash report would see it."""
    fake = FakeImmich(library="sample")
    errors: list[BaseException] = []
    limited = fake.add_api_key(fake.user_id, ["asset.read"])
    for key, faults in ((BAD_KEY, ""), (limited, ""), (fake.api_key, "5xx=1"), (fake.api_key, "reset=1"),
                        (fake.api_key, "truncate=1"), (fake.api_key, "down=60s"), (fake.api_key, "429=1:retry-after=0")):
        fake.faults = Faults.parse(faults)
        async with client_for(fake, key=key, max_retries=1) as c:
            for call in (c.connect(), c.duplicates(), c.get_asset("00000000-0000-4000-8000-000000000000"),
                         c.delete_assets(["00000000-0000-4000-8000-000000000000"])):
                try:
                    await call
                except ImmichError as e:
                    errors.append(e)
    with FakeServer(FakeImmich(library="empty")) as srv:
        url = srv.url
    async with ImmichClient(url, fake.api_key, max_retries=0) as c:  # nothing listens there now
        try:
            await c.connect()
        except ImmichError as e:
            errors.append(e)
    assert len(errors) >= 20
    kinds = {type(x).__name__ for x in errors}
    assert {"AuthenticationFailed", "PermissionMissing", "ServerError", "ConnectionFailed"} <= kinds
    for err in errors:
        text = "".join(traceback.format_exception(err)) + repr(err) + str(err)
        for key in (fake.api_key, limited, BAD_KEY):
            assert key not in text, text[-500:]


# --------------------------------------------------------------------------- permissions of what is written


def _modes(root: Path) -> list[tuple[str, str]]:
    out = []
    for p in [root, *sorted(root.rglob("*"))]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        want = 0o700 if p.is_dir() else 0o600
        if mode != want:
            out.append((p.relative_to(root).as_posix() or ".", oct(mode)))
    return out


@pytest.mark.parametrize("force", [False, True], ids=["trash", "force"])
def test_backup_files_are_0600_and_directories_0700(tmp_path: Path, force: bool) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    old = os.umask(0o022)  # a usual umask: the tool must not rely on a strict one
    try:
        with FakeServer(fake) as srv:
            plan_path = tmp_path / "plan.json"
            code, _, err = run_cli(srv.url, fake.api_key, ["analyze", "-o", str(plan_path), "--rate-limit", "1000"])
            assert code == 0, err
            from immich_dupes.analysis.plan import load_plan

            save_plan(mixed_plan(server_url=load_plan(plan_path).server_url), plan_path)
            fake.faults = Faults.parse(f"corrupt={mixed_plan().groups[0].losers[0]}")  # a .part is tried
            args = ["execute", "-i", str(plan_path), "-b", str(backup), "--yes", "--rate-limit", "1000"]
            code, _, err = run_cli(srv.url, fake.api_key, [*args, *(["--force"] if force else [])])
            assert code == 1, err
            fake.faults = Faults()
            code, _, err = run_cli(srv.url, fake.api_key, [*args, *(["--force"] if force else [])])
            assert code == 0, err
            code, _, err = run_cli(srv.url, fake.api_key, ["restore", "-b", str(backup), "--yes", "--rate-limit", "1000"])
            assert code == 0, err
    finally:
        os.umask(old)
    names = {p.name for p in backup.rglob("*")}
    assert {"immich-dupes-backup.json", "journal.jsonl", "manifest.json"} <= names
    assert any(n.startswith("report-") for n in names)
    assert any(n.startswith("restore-") for n in names)
    assert _modes(backup) == []
    assert stat.S_IMODE(plan_path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- TLS


@contextlib.contextmanager
def tls_server(fake: FakeImmich) -> Iterator[str]:
    """The fake behind TLS with a self-signed certificate for 127.0.0.1 (tests/safety/tls)."""
    srv = FakeServer(fake).start()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS_DIR / "cert.pem", TLS_DIR / "key.pem")
    httpd = srv._httpd  # the listening socket is swapped for a TLS one (same descriptor)
    assert httpd is not None
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    try:
        yield f"https://127.0.0.1:{srv.port}"
    finally:
        srv.stop()


def test_tls_is_verified_by_default_and_insecure_warns(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample")
    with tls_server(fake) as url:
        code, out, err = run_cli(url, fake.api_key, ["analyze", "-o", str(tmp_path / "p.json"), "--rate-limit", "1000"])
        assert code == 3, err
        assert err.strip().splitlines()[-1] == (
            "immich-dupes: error: cannot reach 127.0.0.1:" + url.rsplit(":", 1)[1]
            + ": TLS certificate not trusted (use --insecure only if you know why)"
        )
        assert fake.request_log == []  # the handshake failed: no request was read, no key sent
        assert "warning" not in err
        code, out, err = run_cli(url, fake.api_key, ["--insecure", "analyze", "-o", str(tmp_path / "p.json"), "--rate-limit", "1000"])
        assert code == 0, err
        assert "warning: TLS certificate verification is off (--insecure)" in err.splitlines()[0]
        assert len(fake.request_log) > 0
        # the option works after the command name too
        code, _, err = run_cli(url, fake.api_key, ["verify", str(tmp_path / "p.json"), "--insecure", "--rate-limit", "1000"])
        assert code in (0, 1), err
        assert "warning: TLS certificate verification is off" in err


# --------------------------------------------------------------------------- redirects


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], target: str = "") -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.target = target
        super().__init__(("127.0.0.1", 0), handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Sink(BaseHTTPRequestHandler):
    """Another host: records what reaches it and answers a small picture."""

    server: _Recorder

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        body = b"\x89PNG not really"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT = do_DELETE = do_GET


class _Redirector(_Sink):
    """"Immich" that redirects: thumbnails of asset 'same' within itself, everything else away."""

    def do_GET(self) -> None:  # noqa: N802
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        if self.path.startswith("/api/assets/same/thumbnail"):
            where = "/api/assets/same/original"
        elif self.path.startswith("/api/assets/same/original"):
            body = b"same-origin picture"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            where = self.server.target + self.path
        self.send_response(302)
        self.send_header("Location", where)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_DELETE = do_GET


@contextlib.contextmanager
def serve(server: _Recorder) -> Iterator[_Recorder]:
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_redirects_to_another_origin_never_carry_the_key(tmp_path: Path) -> None:
    key = "redirect-test-key-0123456789abcdef"
    with serve(_Recorder(_Sink)) as sink, serve(_Recorder(_Redirector, "")) as front:
        # another origin: another port of the same host, and the same port by another scheme
        for target in (sink.url, f"https://127.0.0.1:{front.server_address[1]}"):
            front.target = target
            async with ImmichClient(front.url, key, max_retries=0) as c:
                for call in (c.thumbnail("away", "fullsize"), c.thumbnail("away"), c.server_version(),
                             c.get_asset("00000000-0000-4000-8000-000000000000"),
                             c.download_original("away", tmp_path / "x.bin"),
                             c.delete_assets(["00000000-0000-4000-8000-000000000000"])):
                    with pytest.raises(ImmichError) as e:
                        await call
                    assert key not in str(e.value)
        assert sink.seen == []
        # within the server, a thumbnail redirect is followed, with the key
        async with ImmichClient(front.url, key, max_retries=0) as c:
            assert await c.thumbnail("same", "fullsize") == b"same-origin picture"
        assert [p for p, h in front.seen if h.get("x-api-key") == key][-2:] == [
            "/api/assets/same/thumbnail?size=fullsize", "/api/assets/same/original"]
    # the CLI, pointed at a server that redirects everything away: one error line, no key away
    with serve(_Recorder(_Sink)) as sink, serve(_Recorder(_Redirector, "")) as front:
        front.target = sink.url
        code, out, err = run_cli(front.url, key, ["analyze", "-o", str(tmp_path / "p.json")])
        assert code in (1, 3)
        assert "Traceback" not in err
        assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
        assert key not in out + err
        assert sink.seen == []


# --------------------------------------------------------------------------- missing permissions


ALL_NEEDED = [
    "user.read", "duplicate.read", "duplicate.delete", "asset.read", "asset.update", "asset.delete",
    "asset.download", "asset.upload", "asset.view", "album.read", "albumAsset.create", "tag.asset",
    "tag.read", "stack.create", "stack.read",
]


@pytest.mark.parametrize(
    ("command", "missing"),
    [("execute", "asset.delete"), ("execute", "asset.download"), ("execute", "duplicate.read"),
     ("execute", "stack.create"), ("analyze", "duplicate.read"), ("verify", "album.read"),
     ("restore", "asset.upload"), ("restore", "asset.delete")],
)
def test_a_missing_permission_is_named_before_anything_changes(
    command: str, missing: str, tmp_path: Path
) -> None:
    fake = FakeImmich(library="sample")
    backup = tmp_path / "backup"
    with FakeServer(fake) as srv:
        plan = mixed_plan(server_url=normalize_base_url(srv.url))
        plan_path = tmp_path / "plan.json"
        save_plan(plan, plan_path)
        if command == "restore":
            async def first() -> None:
                async with client_for(fake, url=srv.url) as c:
                    assert (await execute(c, plan, ExecuteOptions(backup_dir=backup))).failed == 0
            asyncio.run(first())
        key = fake.add_api_key(fake.user_id, [p for p in ALL_NEEDED if p != missing])
        argv = {
            "execute": ["execute", "-i", str(plan_path), "-b", str(backup), "--yes"],
            "analyze": ["analyze", "-o", str(tmp_path / "p.json")],
            "verify": ["verify", str(plan_path)],
            "restore": ["restore", "-b", str(backup), "--yes"],
        }[command]
        since = len(arrivals(fake))
        before = [fake.asset(i) for i in fake.asset_ids()]
        code, out, err = run_cli(srv.url, key, argv)
        requests = arrivals(fake)[since:]
    assert code == 3, err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1
    assert lines[0] == err.strip().splitlines()[-1]
    assert missing in lines[0]
    assert "permission" in lines[0]
    assert requests
    assert changing(requests) == []
    assert [fake.asset(i) for i in fake.asset_ids()] == before
    assert not (backup / "journal.jsonl").exists() or command == "restore"
    FIGURES.refused("missing permission", f"{command} without {missing}")
