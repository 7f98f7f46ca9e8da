"""Options before or after the command name (DESIGN §2), help texts, and a URL that is no
Immich API: exit 3 with one line."""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_support import usage_error

from immich_dupes import cli
from immich_dupes.analysis.decide import accept
from immich_dupes.analysis.plan import load_plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient


def hoist(*argv: str) -> list[str]:
    return cli.hoist_command_options(cli.build_parser(), argv)


# ---------------------------------------------------------------- moving options after the command


def test_command_options_before_the_name_move_after_it() -> None:
    assert hoist("--rate-limit", "5", "analyze", "-o", "y.json") == ["analyze", "--rate-limit", "5", "-o", "y.json"]
    assert hoist("--format", "json", "verify", "plan.json") == ["verify", "--format", "json", "plan.json"]
    assert hoist("-b", "backup", "restore", "--dry-run") == ["restore", "-b", "backup", "--dry-run"]
    # The top parser's own options stay where they are; inline values are one word.
    assert hoist("-u", "http://h", "--rate-limit=5", "-bDIR", "--insecure", "restore") == [
        "-u", "http://h", "--insecure", "restore", "--rate-limit=5", "-bDIR",
    ]
    # Options after the command are left alone.
    assert hoist("analyze", "-o", "x", "--rate-limit", "5") == ["analyze", "-o", "x", "--rate-limit", "5"]


def test_an_option_value_that_is_a_command_name_is_not_the_command() -> None:
    assert hoist("-b", "restore", "restore", "--dry-run") == ["restore", "-b", "restore", "--dry-run"]
    assert hoist("-u", "verify", "-a", "analyze", "--format", "json", "verify", "p.json") == [
        "-u", "verify", "-a", "analyze", "verify", "--format", "json", "p.json",
    ]
    args = cli.build_parser().parse_args(hoist("-b", "restore", "--yes", "restore"))
    assert (args.command, args.backup_dir, args.yes) == ("restore", "restore", True)


def test_abbreviated_options_before_the_command_work_as_after_it() -> None:
    args = cli.build_parser().parse_args(hoist("--rate", "7", "--form", "json", "verify", "p.json"))
    assert (args.command, args.rate_limit, args.format, args.plan) == ("verify", 7.0, "json", "p.json")


def test_an_unknown_option_before_the_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "--bogus", "5", "analyze", "-o", "y.json")
    assert "unrecognized arguments: --bogus" in err


def test_a_misspelt_option_before_the_command_is_named_without_its_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = usage_error(capsys, "--api-kye=SECRET-KEY-123", "analyze", "-o", "y.json")
    assert "unrecognized arguments: --api-kye" in err
    assert "SECRET" not in err


def test_another_commands_option_before_the_command_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "--format", "json", "analyze", "-o", "y.json")
    assert "unrecognized arguments: --format json" in err


def test_a_command_option_without_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert "no command given for --rate-limit" in usage_error(capsys, "--rate-limit", "5")
    # A misspelt command is named as such, not the option's value.
    assert "invalid choice: 'analyse'" in usage_error(capsys, "--rate-limit", "5", "analyse")


@pytest.mark.parametrize(
    ("argv", "expect"),
    [
        (["--rate-limit", "5", "--help"], "COMMAND"),
        (["--rate-limit", "5", "verify", "--help"], "PLAN.json"),
        (["-b", "backup", "restore", "-h"], "--dry-run"),
    ],
)
def test_help_works_with_options_before_the_command(
    argv: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as ei:
        cli.main(argv)
    assert ei.value.code == 0
    assert expect in capsys.readouterr().out


def test_every_option_of_every_command_says_what_it_does() -> None:
    parser = cli.build_parser()
    commands = cli._commands(parser)
    missing = [
        f"{name} {a.option_strings[-1]}"
        for name, sub in commands.items()
        for a in sub._actions
        if a.option_strings and not a.help
    ]
    assert missing == []
    assert "requests per second" in commands["verify"].format_help()
    assert "requests at once" in commands["restore"].format_help()


def test_an_option_takes_a_value_in_every_command_or_in_none() -> None:
    # hoist_command_options relies on it to know whether the next word is a value.
    kinds: dict[str, set[bool]] = {}
    for sub in cli._commands(cli.build_parser()).values():
        for opt, a in sub._option_string_actions.items():
            kinds.setdefault(opt, set()).add(a.nargs != 0)
    assert {opt for opt, k in kinds.items() if len(k) > 1} == set()


# ---------------------------------------------------------------- end to end on a loopback fake


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:
        yield fake, srv.url


def test_analyze_and_verify_with_options_before_the_command(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    plan = tmp_path / "plan.json"
    base = ["-u", url, "-a", fake.api_key]
    assert cli.main([*base, "--rate-limit", "1000", "--concurrent", "8", "analyze", "-o", str(plan)]) == 0
    assert load_plan(plan).total_groups == len(fake.groups())
    capsys.readouterr()
    # Nothing executed yet: verify finds the groups not executed (exit 1), in JSON.
    assert cli.main([*base, "--format", "json", "--rate-limit", "1000", "verify", str(plan)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["groups_checked"] == len(fake.groups())


@pytest.fixture(scope="module")
def forced_backup(served: tuple[FakeImmich, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An execute with --force: the losers are gone, so restore must re-upload them."""
    fake, url = served
    tmp = tmp_path_factory.mktemp("forced")

    async def go() -> None:
        async with ImmichClient(url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
            plan = await analyze(c)
            plan.groups = [accept(g) for g in plan.groups]
            save_plan(plan, tmp / "plan.json")
            rep = await execute(c, load_plan(tmp / "plan.json"), ExecuteOptions(backup_dir=tmp / "backup", force=True))
            assert rep.failed == 0

    asyncio.run(go())
    fake.run_jobs()
    return tmp / "backup"


def test_restore_with_its_backup_folder_before_the_command(
    served: tuple[FakeImmich, str], forced_backup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    argv = ["-u", url, "-a", fake.api_key, "-b", str(forced_backup), "--rate-limit", "1000", "restore", "--dry-run"]
    assert cli.main(argv) == 0
    assert "would re-upload" in capsys.readouterr().out


def test_restore_dry_run_says_visibility_is_re_applied(
    served: tuple[FakeImmich, str], forced_backup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    argv = ["-u", url, "-a", fake.api_key, "restore", "-b", str(forced_backup), "--dry-run", "--rate-limit", "1000"]
    assert cli.main(argv) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("would re-upload")]
    assert lines
    for line in lines:
        assert "description, GPS, date, favorite, rating, visibility, albums and tags are re-applied" in line


# ---------------------------------------------------------------- a URL that is no Immich API


def analyze_at(url: str, key: str, tmp: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(["-u", url, "-a", key, "analyze", "-o", str(tmp / "x.json")])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert not (tmp / "x.json").exists()
    return code, err


def test_a_wrong_sub_path_exits_3_in_one_line(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    code, err = analyze_at(url + "/immich", fake.api_key, tmp_path, capsys)
    assert code == cli.EXIT_CONNECT
    assert err.splitlines() == [
        f"immich-dupes: error: no Immich API at {url}/immich/api (GET /server/version answered 404 "
        f'"Cannot GET /immich/api/server/version"); use the address you open Immich at in a browser, '
        "with or without /api"
    ]


def test_a_plain_web_server_exits_3_in_one_line_without_its_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `python3 -m http.server` answers: an HTML page for a 404.
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        code, err = analyze_at(url, "some-key", tmp_path, capsys)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == cli.EXIT_CONNECT
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"immich-dupes: error: no Immich API at {url}/api (GET /server/version answered 404")
    assert "<" not in lines[0]
