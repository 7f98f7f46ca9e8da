"""``immich-dupes verify`` through cli.main on a loopback fake: output formats and exit codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from immich_dupes import cli
from immich_dupes.analysis.decide import accept, set_action
from immich_dupes.analysis.plan import Action, Plan, load_plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient

MINUS_0330 = "s20_large_nooffset.jpg"


@pytest.fixture
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:
        yield fake, srv.url


def prepare(url: str, key: str, tmp: Path, run: bool = True) -> tuple[Plan, Path, Path]:
    """Analyze, accept all (the -03:30 group skipped), execute; the plan file and backup dir."""

    path = tmp / "plan.json"

    async def go() -> Plan:
        async with ImmichClient(url, key, rate_limit=10_000, concurrency=8) as c:
            plan = await analyze(c)
            plan.groups = [
                set_action(accept(g), Action.SKIP) if g.winner_asset.file_name == MINUS_0330 else accept(g)
                for g in plan.groups
            ]
            save_plan(plan, path)
            plan = load_plan(path)  # as the execute command does: the backup is bound to the file
            if run:
                rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp / "backup"))
                assert rep.failed == 0
            return plan

    return asyncio.run(go()), path, tmp / "backup"


def verify_cli(url: str, key: str, *args: str) -> int:
    return cli.main(["-u", url, "-a", key, "verify", *args, "--rate-limit", "1000"])


def test_json_output_is_only_json_and_exit_0(served: tuple[FakeImmich, str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    _, plan, backup = prepare(url, fake.api_key, tmp_path)
    fake.run_jobs()
    capsys.readouterr()
    code = verify_cli(url, fake.api_key, str(plan), "--format", "json", "-b", str(backup))
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)  # the whole of stdout is one JSON document
    assert data["ok"] is True
    assert data["anomaly_count"] == 0
    assert data["groups_skipped"] == 2
    assert {f["severity"] for f in data["findings"]} == {"ok", "note"}
    assert "verify" in err  # progress went to stderr


def test_json_with_anomalies_exits_1(served: tuple[FakeImmich, str], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    p, plan, backup = prepare(url, fake.api_key, tmp_path)
    fake.run_jobs()
    winner = next(g for g in p.groups if g.winner_asset.file_name == "s04_large_nodesc.jpg").winner
    fake.trash_asset(winner)
    capsys.readouterr()
    code = verify_cli(url, fake.api_key, str(plan), "--format", "json", "-b", str(backup))
    out, _ = capsys.readouterr()
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert [(f["asset_id"], f["field"]) for f in data["findings"] if f["severity"] == "anomaly"] == [
        (winner, "present")
    ]


def test_text_output_lists_anomalies_and_notes(served: tuple[FakeImmich, str], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    _, plan, _ = prepare(url, fake.api_key, tmp_path, run=False)
    capsys.readouterr()
    code = verify_cli(url, fake.api_key, str(plan))
    out, _ = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert lines[-1] == (
        "verify: 17 groups checked: 0 as planned, 0 with anomalies, 17 not executed, 0 skipped by"
        " execute on purpose; 1 more skipped by the plan, not checked; 17 anomalies, 0 notes — FAILED"
    )
    assert lines[-1].endswith("FAILED")
    assert any(line.startswith("group ") and "winner s01_large_nogps.jpg" in line for line in lines)
    assert "  ANOMALY execute: not executed: no loser is in the trash" in lines


def test_bad_input_exits_2_with_nothing_on_stdout(served: tuple[FakeImmich, str], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    _, plan, backup = prepare(url, fake.api_key, tmp_path, run=False)
    _, key2 = fake.add_user("user2")
    capsys.readouterr()
    assert verify_cli(url, key2, str(plan), "--format", "json") == 2  # another user's plan
    out, err = capsys.readouterr()
    assert out == ""
    assert "belongs to user" in err
    assert verify_cli(url, fake.api_key, str(tmp_path / "missing.json")) == 2
    (tmp_path / "bad.json").write_text("{not json")
    assert verify_cli(url, fake.api_key, str(tmp_path / "bad.json")) == 2
    assert verify_cli(url, fake.api_key, str(plan), "-b", str(tmp_path / "nowhere")) == 2
    (tmp_path / "empty").mkdir()
    assert verify_cli(url, fake.api_key, str(plan), "-b", str(tmp_path / "empty")) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "not an immich-dupes backup" in err


def test_scope_and_connection_errors_exit_3(served: tuple[FakeImmich, str], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    fake, url = served
    _, plan, _ = prepare(url, fake.api_key, tmp_path, run=False)
    scoped = fake.add_api_key(fake.user_id, ["user.read", "asset.read"])
    capsys.readouterr()
    assert verify_cli(url, scoped, str(plan), "--format", "json") == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert "album.read" in err
    assert verify_cli("http://127.0.0.1:9", fake.api_key, str(plan)) == 3
