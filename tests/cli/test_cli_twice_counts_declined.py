"""Walkthrough 4b, the command line: an option given twice with different values is refused by
name (``-b b1 execute … -b b2`` backed up into b2); a confirmation answered no exits 2, not 1
("some items failed"); analyze counts in the singular and does not count as freed what execute
leaves alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cli_support import usage_error

import immich_dupes.commands.restore as restore_command
from immich_dupes import cli
from immich_dupes.analysis.decide import accept, allow_external_delete, build_group
from immich_dupes.analysis.plan import Plan, PlanAsset, PlanSettings, save_plan
from immich_dupes.commands.analyze import summary
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient

# --------------------------------------------------------------------------- an option twice


@pytest.mark.parametrize(
    "argv",
    [
        ["-b", "b1", "execute", "-i", "p.json", "-b", "b2"],
        ["execute", "-i", "p.json", "-b", "b1", "-b", "b2"],
        ["execute", "-i", "p.json", "--backup-dir=b1", "-bb2"],
        ["-b", "b1", "-b", "b2", "restore"],
    ],
    ids=["before-and-after", "after", "long-and-inline", "before"],
)
def test_a_backup_folder_given_twice_is_refused_by_name(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(capsys, "-u", "http://127.0.0.1:9", "-a", "k", *argv)
    assert "-b/--backup-dir given twice with different values" in err


def test_a_server_option_before_and_after_the_command_is_refused_without_its_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(capsys, "-a", "SECRET-ONE", "analyze", "-o", "x.json", "-a", "SECRET-TWO")
    assert "-a/--api-key given twice with different values" in err
    assert "SECRET" not in err  # an API key is never echoed
    err = usage_error(capsys, "-u", "http://me:pw@h", "-a", "k", "verify", "p.json", "-u", "http://h2")
    assert "-u/--url given twice" in err
    assert "pw" not in err


def test_a_number_given_twice_is_refused_even_when_the_first_is_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(capsys, "--rate-limit", "10", "analyze", "-o", "x.json", "--rate-limit", "5")
    assert "--rate-limit given twice with different values" in err


def test_the_same_value_twice_is_accepted() -> None:
    parser = cli.build_parser()
    argv = ["-u", "http://h", "-b", "b1", "execute", "-i", "p.json", "-b", "b1", "-u", "http://h"]
    args = parser.parse_args(cli.hoist_command_options(parser, argv))
    assert (args.backup_dir, args.url) == ("b1", "http://h")
    # A second parse with the same parser starts afresh.
    args = parser.parse_args(["execute", "-i", "p.json", "-b", "b2"])
    assert args.backup_dir == "b2"


# --------------------------------------------------------------------------- analyze's summary


def asset(n: int, size: int, library_id: str | None = None) -> PlanAsset:
    return PlanAsset(
        id=f"00000000-0000-4000-8000-{n:012d}", file_name=f"IMG_{n}.jpg", width=100 * n, height=100 * n,
        file_size=size, checksum=f"c{n}", library_id=library_id,
    )


def plan_of(*groups: list[PlanAsset]) -> Plan:
    plan = Plan(
        created_at=datetime(2026, 1, 1, tzinfo=UTC), server_url="http://h/api",
        user_id="00000000-0000-4000-8000-00000000ffff", total_groups=0, total_assets=0,
        needs_review_count=0,
        groups=[build_group(f"00000000-0000-4000-9000-{k:012d}", g, PlanSettings())
                for k, g in enumerate(groups)],
    )
    plan.refresh_counts()
    return plan


def test_one_group_is_counted_in_the_singular() -> None:
    first = summary(plan_of([asset(2, 5_000), asset(1, 3_000)])).splitlines()[0]
    assert first.startswith("1 group, 2 assets; 0 need review; 3.0 KB would be freed")
    first = summary(plan_of([asset(2, 5_000), asset(1, 3_000)], [asset(4, 1), asset(3, 1)])).splitlines()[0]
    assert first.startswith("2 groups, 4 assets;")


def test_an_external_loser_kept_until_allowed_is_not_counted_as_freed() -> None:
    ext = "00000000-0000-4000-8000-0000000000ee"
    plan = plan_of([asset(2, 5_000), asset(1, 3_000)], [asset(4, 70_000), asset(3, 40_000, library_id=ext)])
    first = summary(plan).splitlines()[0]
    assert "3.0 KB would be freed (not counting 1 group with an external-library copy among the losers" in first
    plan.groups[1] = allow_external_delete(accept(plan.groups[1]), True)
    first = summary(plan).splitlines()[0]
    assert first.endswith("43.0 KB would be freed")


# --------------------------------------------------------------------------- declined


@pytest.fixture
def backup(tmp_path: Path) -> Iterator[tuple[FakeImmich, str, Path]]:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:

        async def go() -> None:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
                plan = await analyze(c)
                plan.groups = [accept(g) for g in plan.groups]
                save_plan(plan, tmp_path / "plan.json")
                rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "backup"))
                assert rep.failed == 0

        asyncio.run(go())
        yield fake, srv.url, tmp_path / "backup"


def test_a_restore_answered_no_exits_2_and_restores_nothing(
    backup: tuple[FakeImmich, str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake, url, folder = backup
    asked: list[str] = []

    def no(question: str, assume_yes: bool) -> bool:
        asked.append(question)
        return False

    monkeypatch.setattr(restore_command, "confirm", no)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    since = len(fake.request_log)
    capsys.readouterr()
    code = cli.main(["-u", url, "-a", fake.api_key, "restore", "-b", str(folder), "--rate-limit", "1000"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_DECLINED == 2, err
    assert len(asked) == 1
    assert "restore: nothing done" in err
    assert all(r.method == "GET" for r in fake.request_log[since:])  # nothing restored
