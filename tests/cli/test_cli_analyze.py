"""``immich-dupes analyze`` end to end: a real process against the fake over a loopback socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from immich_dupes.analysis.plan import load_plan
from immich_dupes.fake import FakeImmich, FakeServer


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("IMMICH_")}
    return subprocess.run(
        [sys.executable, "-m", "immich_dupes", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:
        yield srv


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip() and not ln.startswith("\r")]
    errors = [ln for ln in lines if "error" in ln.lower()]
    assert "Traceback" not in stderr
    assert len(errors) == 1, stderr
    return errors[0]


def test_analyze_over_loopback_writes_a_valid_plan(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    # Options after the command name, URL with /api and a trailing slash: all accepted.
    r = run_cli("analyze", "-o", str(out), "-u", server.url + "/api/", "-a", server.fake.api_key)
    assert r.returncode == 0, r.stderr
    plan = load_plan(out)
    assert plan.total_groups == len(server.fake.groups())
    assert plan.user_id == server.fake.user_id
    assert plan.server_url == server.url + "/api"
    assert f"{plan.total_groups} groups" in r.stdout
    assert "need review" in r.stdout
    # The key is never written into the plan.
    assert server.fake.api_key not in out.read_text()
    # Albums are part of the offline record: the favorite-in-album copy knows its album.
    assert any(a.albums for g in plan.groups for a in g.assets)


def test_options_before_the_command_and_from_the_environment(server: FakeServer, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    r = run_cli("-u", server.url, "analyze", "-o", str(out), env={"IMMICH_API_KEY": server.fake.api_key})
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["schema_version"] == 1


def test_bad_key_exits_3_with_one_line(server: FakeServer, tmp_path: Path) -> None:
    r = run_cli("analyze", "-o", str(tmp_path / "p.json"), "-u", server.url, "-a", "wrong-key")
    assert r.returncode == 3
    assert "Invalid API key" in one_error_line(r.stderr)
    assert not (tmp_path / "p.json").exists()


def test_missing_permission_is_named(server: FakeServer, tmp_path: Path) -> None:
    key = server.fake.add_api_key(server.fake.user_id, permissions=["asset.read"], name="limited")
    r = run_cli("analyze", "-o", str(tmp_path / "p.json"), "-u", server.url, "-a", key)
    assert r.returncode == 3
    line = one_error_line(r.stderr)
    assert "duplicate.read" in line
    assert key not in r.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_exits_3_with_one_line(tmp_path: Path) -> None:
    r = run_cli("analyze", "-o", str(tmp_path / "p.json"), "-u", f"http://127.0.0.1:{free_port()}", "-a", "k")
    assert r.returncode == 3
    assert "cannot reach" in one_error_line(r.stderr)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["analyze", "-o", "{tmp}/p.json", "-u", "ftp://host", "-a", "k"], "http"),
        (["analyze", "-o", "{tmp}/p.json", "-a", "k"], "no server URL"),
        (["analyze", "-o", "{tmp}/p.json", "-u", "http://127.0.0.1:1"], "no API key"),
        (["analyze", "-o", "{tmp}/p.json", "--rate-limit", "0"], "positive"),
        (["analyze", "-o", "{tmp}/p.json", "--concurrent", "-3"], "1 or more"),
        (["analyze", "-o", "{tmp}/missing/dir/p.json", "-u", "http://x", "-a", "k"], "does not exist"),
        (["analyze"], "required"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    r = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert r.returncode == 2, r.stderr
    assert needle in one_error_line(r.stderr)


def test_schema_command_prints_the_json_schema() -> None:
    r = run_cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "Plan"
