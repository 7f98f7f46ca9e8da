"""``immich-dupes demo`` and ``immich-dupes review``: the commands around the app."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from tui_plans import build_plan

from immich_dupes.analysis.plan import save_plan
from immich_dupes.cli import build_parser
from immich_dupes.commands import demo, review
from immich_dupes.tui.app import ReviewApp


def test_demo_serve_only_prints_url_and_key_then_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "immich_dupes", "demo", "--serve-only", "--library", "synthetic:3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "0"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        second = proc.stdout.readline().strip()
        assert first.startswith("IMMICH_URL=http://127.0.0.1:")
        assert second.startswith("IMMICH_API_KEY=")
        url = first.split("=", 1)[1]
        key = second.split("=", 1)[1]
        r = httpx.get(f"{url}/api/duplicates", headers={"x-api-key": key}, timeout=10)
        assert r.status_code == 200
        assert len(r.json()) == 3
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_demo_analyzes_and_opens_the_app_with_a_backup_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(self: ReviewApp, *a: Any, **kw: Any) -> None:
        seen["app"] = self

        async def contact() -> None:
            assert self.client_factory is not None
            async with self.client_factory() as client:
                info = await client.connect()
                seen["user"] = info.user.id

        asyncio.run(contact())  # the server is up while the app "runs"

    monkeypatch.setattr(ReviewApp, "run", fake_run)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    args = build_parser().parse_args(["demo", "--image-protocol", "halfcell"])
    assert demo.run(args) == 0
    app: ReviewApp = seen["app"]
    assert app.state.plan.total_groups > 0
    assert app.state.path.is_file()
    assert app.backup_dir is not None
    assert app.backup_dir.parent == app.state.path.parent
    assert app.state.path.is_relative_to(tmp_path)
    assert seen["user"] == app.state.plan.user_id


def test_review_refuses_a_bad_plan_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text('{"schema_version": 1, "groups": "nope"}')
    args = build_parser().parse_args(["review", str(bad)])
    assert review.run(args) == 2
    assert "plan.json" in capsys.readouterr().err


def test_review_without_a_key_opens_offline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plan.json"
    save_plan(build_plan(["gps", "safe"]), path)
    monkeypatch.delenv("IMMICH_API_KEY", raising=False)
    monkeypatch.delenv("IMMICH_URL", raising=False)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(ReviewApp, "run", lambda self, *a, **kw: seen.setdefault("app", self))
    args = build_parser().parse_args(["review", str(path), "--image-protocol", "none"])
    assert review.run(args) == 0
    app: ReviewApp = seen["app"]
    assert app.client_factory is None
    assert "1 group still needs review" in capsys.readouterr().err


def test_review_never_sends_the_key_to_a_server_named_only_by_the_plan(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A plan file from someone else must not be able to collect the user's API key.
    monkeypatch.delenv("IMMICH_URL", raising=False)
    monkeypatch.setenv("IMMICH_API_KEY", "k")
    args = build_parser().parse_args(["review", "plan.json"])
    assert review.client_factory(args, "https://photos.example.org/api") is None
    assert "IMMICH_URL" in capsys.readouterr().err
    monkeypatch.setenv("IMMICH_URL", "https://mine.example.org")
    factory = review.client_factory(args, "https://photos.example.org/api")
    assert factory is not None
    client = factory()
    try:
        assert client.base_url == "https://mine.example.org/api"
    finally:
        asyncio.run(client.aclose())
