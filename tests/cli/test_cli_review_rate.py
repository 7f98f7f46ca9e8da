"""``immich-dupes review --rate-limit N --concurrent N``: parsed and checked like execute's, and
carried to the one client the review app sends everything through (pictures, and the execute,
verify and restore started from the app). Measured from the fake's request log, upper bounds
only: a slow machine can only make a run slower, never break a bound."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from immich_dupes import cli
from immich_dupes.analysis.plan import save_plan
from immich_dupes.commands import review
from immich_dupes.engine.analyze import analyze
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.fake.measure import max_in_window, max_overlap
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.app import ReviewApp, make_app
from immich_dupes.tui.screens.run import RunScreen

SIZE = (160, 48)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[FakeServer, Path]]:
    """The sample library on loopback (the review command's client takes no transport) and a
    plan of it made on that URL."""
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:

        async def plan() -> None:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
                save_plan(await analyze(c), tmp_path / "plan.json")

        asyncio.run(plan())
        yield srv, tmp_path / "plan.json"


def review_args(srv: FakeServer, plan: Path, *extra: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["-u", srv.url, "-a", srv.fake.api_key, "review", str(plan), *extra])


def review_app(args: argparse.Namespace, tmp: Path) -> ReviewApp:
    """The app as ``review.run`` builds it, with the command's own client factory (only the
    picture protocol and the cache folder are fixed for the test)."""
    factory = review.client_factory(args, "")
    assert factory is not None
    return make_app(args.plan, client_factory=factory, image_protocol="halfcell", cache_dir=tmp / "cache")


async def connected(pilot: Pilot[Any]) -> ImmichClient:
    app = pilot.app
    assert isinstance(app, ReviewApp)
    for _ in range(200):
        await pilot.pause(0.02)
        if app.client is not None:
            return app.client
    raise AssertionError(f"the app did not connect: {app.server_notice}")


# --------------------------------------------------------------------------- parsing


def test_review_takes_the_options_with_executes_defaults(tmp_path: Path) -> None:
    parse = cli.build_parser().parse_args
    plan = str(tmp_path / "plan.json")
    plain = parse(["review", plan])
    execute = parse(["execute", "-i", plan, "-b", str(tmp_path / "b")])
    assert (plain.rate_limit, plain.concurrent) == (execute.rate_limit, execute.concurrent) == (10.0, 5)
    given = parse(["review", plan, "--rate-limit", "2.5", "--concurrent", "12"])
    assert (given.rate_limit, given.concurrent) == (2.5, 12)
    # before the plan, and with = , as argparse allows elsewhere
    given = parse(["review", "--rate-limit=40", "--concurrent=1", plan])
    assert (given.rate_limit, given.concurrent, given.plan) == (40.0, 1, plan)


BAD = [
    (["--rate-limit", "0"], "--rate-limit: must be a positive number"),
    (["--rate-limit", "-1"], "--rate-limit: must be a positive number"),
    (["--rate-limit", "nan"], "--rate-limit: must be a positive number"),
    (["--rate-limit", "inf"], "--rate-limit: must be a positive number"),
    (["--rate-limit", "abc"], "'abc' is not a number"),
    (["--rate-limit"], "--rate-limit: expected one argument"),
    (["--concurrent", "0"], "--concurrent: must be 1 or more"),
    (["--concurrent", "-3"], "--concurrent: must be 1 or more"),
    (["--concurrent", "2.5"], "'2.5' is not a whole number"),
]


@pytest.mark.parametrize(("extra", "fragment"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_values_exit_2_with_one_line_and_send_nothing(
    served: tuple[FakeServer, Path], extra: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    srv, plan = served
    before = len(srv.fake.request_log)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        cli.main(["-u", srv.url, "-a", srv.fake.api_key, "review", str(plan), *extra])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err
    assert fragment in err
    assert err.startswith("immich-dupes review: error:")
    assert srv.fake.request_log[before:] == []


def test_a_zero_rate_limit_exits_2_at_once_as_a_process(tmp_path: Path) -> None:
    """The real command line, in a process with a deadline: the app never opens, nothing hangs."""
    plan = tmp_path / "plan.json"
    plan.write_text("{}")  # never read: the option is refused first
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMICH_")}
    r = subprocess.run(
        [sys.executable, "-m", "immich_dupes", "review", str(plan), "--rate-limit", "0"],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60, check=False,
    )
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        "immich-dupes review: error: argument --rate-limit: must be a positive number, got 0 "
        "(see immich-dupes review --help)"
    ]


# --------------------------------------------------------------------------- reaching the client


def test_the_commands_client_factory_carries_the_options(served: tuple[FakeServer, Path]) -> None:
    srv, plan = served

    async def made(args: argparse.Namespace) -> tuple[float, int]:
        factory = review.client_factory(args, "")
        assert factory is not None
        async with factory() as c:
            return c.rate_limit, c.concurrency

    assert asyncio.run(made(review_args(srv, plan, "--rate-limit", "3", "--concurrent", "7"))) == (3.0, 7)
    assert asyncio.run(made(review_args(srv, plan))) == (10.0, 5)


async def test_pictures_are_fetched_within_the_rate_limit(
    served: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    """At 5 requests/s, no stretch of 0.95 s in the server's log holds more than 5 starts; at the
    default 10/s the first ~11 requests (connect, then the first groups' thumbnails) fall in
    about one. The client counts each start from when its headers left and keeps a 3 % margin;
    the 0.05 s here is for the server's side, which logs a start when its thread gets to it: on
    a starved machine (this server shares the test's process) that can lag by tens of ms."""
    srv, plan = served
    fake = srv.fake
    args = review_args(srv, plan, "--rate-limit", "5", "--concurrent", "3")
    before = len(fake.request_log)
    app = review_app(args, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        client = await connected(pilot)
        assert (client.rate_limit, client.concurrency) == (5.0, 3)
        for _ in range(400):
            if sum(1 for r in fake.request_log[before:] if r.path.endswith("/thumbnail")) >= 8:
                break
            await pilot.pause(0.02)
        log = fake.request_log[before:]
    thumbs = [r for r in log if r.path.endswith("/thumbnail")]
    assert len(thumbs) >= 8, [r.path for r in log]  # the pictures really came from the server
    assert len(log) >= 11
    assert max_in_window((r.t_start for r in log), 0.95) <= 5


async def test_verify_from_the_app_stays_within_concurrent(
    served: tuple[FakeServer, Path], tmp_path: Path
) -> None:
    """Verify started from the app reads many assets at once: with --concurrent 2 (and a rate
    limit that is no bound) the server never sees more than 2 requests at a time; with the
    default 5 it sees more under the same latency."""
    srv, plan = served
    fake = srv.fake
    args = review_args(srv, plan, "--rate-limit", "1000", "--concurrent", "2")
    app = review_app(args, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        fake.faults = "latency=30ms"
        before = len(fake.request_log)
        await pilot.press("V")
        for _ in range(500):
            await pilot.pause(0.02)
            screen = app.screen
            if isinstance(screen, RunScreen) and screen.finished:
                break
        else:
            raise AssertionError(f"verify did not finish; screen is {app.screen!r}")
        fake.faults = None
        log = fake.request_log[before:]
    assert len(log) >= 6, [r.path for r in log]
    assert max_overlap(log) <= 2
