"""``immich-dupes restore`` through cli.main on a loopback fake: output, exit codes, refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from immich_dupes import cli
from immich_dupes.analysis.decide import accept
from immich_dupes.analysis.plan import Plan, load_plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:
        yield fake, srv.url


def executed(url: str, key: str, tmp: Path, force: bool = False) -> tuple[Plan, Path]:
    async def go() -> Plan:
        async with ImmichClient(url, key, rate_limit=10_000, concurrency=8) as c:
            plan = await analyze(c)
            plan.groups = [accept(g) for g in plan.groups]
            save_plan(plan, tmp / "plan.json")
            plan = load_plan(tmp / "plan.json")
            rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp / "backup", force=force))
            assert rep.failed == 0
            return plan

    return asyncio.run(go()), tmp / "backup"


def restore_cli(url: str, key: str, *args: str) -> int:
    return cli.main(["-u", url, "-a", key, "restore", *args, "--rate-limit", "1000"])


def test_restore_prints_each_asset_and_is_idempotent(served: tuple[FakeImmich, str], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    _, backup = executed(url, fake.api_key, tmp_path, force=True)
    fake.run_jobs()
    capsys.readouterr()
    assert restore_cli(url, fake.api_key, "-b", str(backup), "--dry-run") == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert sum(1 for line in lines if line.startswith("would re-upload")) == 18
    assert lines[-1].startswith("restore (dry run): 0 from the trash, 18 re-uploaded")

    assert restore_cli(url, fake.api_key, "-b", str(backup), "--yes") == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert sum(1 for line in lines if line.startswith("re-uploaded")) == 18
    assert any(line.startswith("re-uploaded") and "s11_small_fav_album.jpg" in line and "→" in line
               for line in lines)
    assert lines[-2] == "restore: 0 from the trash, 18 re-uploaded, 1 already present, 0 failed"
    assert lines[-1].startswith("record written to ")
    record = json.loads(Path(lines[-1].removeprefix("record written to ")).read_text())
    assert len(record["mapping"]) == 18

    fake.run_jobs()
    n = len(fake.request_log)
    assert restore_cli(url, fake.api_key, "-b", str(backup), "--yes") == 0
    out, _ = capsys.readouterr()
    assert out.splitlines()[-2] == "restore: 0 from the trash, 0 re-uploaded, 19 already present, 0 failed"
    assert [r for r in fake.request_log[n:] if r.method not in ("GET",)
            and r.path != "/api/assets/bulk-upload-check"] == []


def test_failure_exits_1(served: tuple[FakeImmich, str], tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    plan, backup = executed(url, fake.api_key, tmp_path)
    loser = plan.groups[0].losers[0]
    fake.purge(loser)
    for p in (backup / "groups").glob(f"*/{loser}-*"):
        p.write_bytes(b"truncated")
    capsys.readouterr()
    assert restore_cli(url, fake.api_key, "-b", str(backup), "--yes") == 1
    out, _ = capsys.readouterr()
    failed = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1
    assert loser in failed[0]
    assert "missing or damaged" in failed[0]


def test_bad_backups_exit_2_and_send_nothing(served: tuple[FakeImmich, str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    _, backup = executed(url, fake.api_key, tmp_path)
    _, key2 = fake.add_user("user2")
    n = len(fake.request_log)
    assert restore_cli(url, fake.api_key, "-b", str(tmp_path / "nowhere"), "--yes") == 2
    (tmp_path / "plain").mkdir()
    assert restore_cli(url, fake.api_key, "-b", str(tmp_path / "plain"), "--yes") == 2
    # No terminal to confirm on and no --yes: refused before contacting the server.
    assert restore_cli(url, fake.api_key, "-b", str(backup)) == 2
    assert fake.request_log[n:] == []
    _, err = capsys.readouterr()
    assert "does not exist" in err
    assert "no terminal" in err

    assert restore_cli(url, key2, "-b", str(backup), "--yes") == 2  # another user's backup
    out, err = capsys.readouterr()
    assert out == ""
    assert "belongs to user" in err
    assert [r.method for r in fake.request_log[n:]] == ["GET"] * len(fake.request_log[n:])

    manifest = next((backup / "groups").glob("*/manifest.json"))
    body = json.loads(manifest.read_text())
    body["losers"][0]["albums"].append({"id": "00000000-0000-4000-8000-000000000000", "name": "x"})
    manifest.write_text(json.dumps(body))
    n = len(fake.request_log)
    assert restore_cli(url, fake.api_key, "-b", str(backup), "--yes") == 2
    _, err = capsys.readouterr()
    assert "edited or damaged" in err
    assert fake.request_log[n:] == []
