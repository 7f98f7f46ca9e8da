"""``immich-dupes demo``: the whole workflow on an embedded fake Immich, touching nothing of yours.

Starts the fake Immich with the ``sample`` library on a free loopback port, analyzes it into a
plan in a temporary folder and opens the review app on it, with a backup folder next to it, so
execute, verify and restore can be tried for real. ``--serve-only`` only runs the server and
prints its URL and key (first two lines of stdout) until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from immich_dupes.analysis.plan import Plan, save_plan
from immich_dupes.cli import EXIT_OK, EXIT_USAGE
from immich_dupes.commands.common import ProgressPrinter
from immich_dupes.engine.analyze import ANALYZE_PERMISSIONS, analyze
from immich_dupes.immich.client import ImmichClient

if TYPE_CHECKING:
    from immich_dupes.fake import FakeImmich

DEMO_RATE_LIMIT = 100.0
"""The fake is on loopback: no need to be as gentle as with a real server."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _fake(args: argparse.Namespace) -> FakeImmich | None:
    """The fake Immich the options ask for; None (after one line on stderr) for a bad library."""
    from immich_dupes.fake import FakeImmich

    try:
        return FakeImmich(
            library=args.library,
            profile=args.profile,
            faults=args.faults or None,
            cache_responses=not args.uncached,
        )
    except ValueError as e:
        sys.stderr.write(f"immich-dupes: error: {e}\n")
        return None


def serve(args: argparse.Namespace) -> int:
    from immich_dupes.fake import FakeServer

    fake = _fake(args)
    if fake is None:
        return EXIT_USAGE
    server = FakeServer(fake, port=args.port)
    try:
        server.start()
    except OSError as e:
        sys.stderr.write(f"immich-dupes: error: cannot listen on 127.0.0.1:{args.port} ({e.strerror})\n")
        return EXIT_USAGE
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sys.stdout.write(f"IMMICH_URL={server.url}\n")
        sys.stdout.write(f"IMMICH_API_KEY={fake.api_key}\n")
        sys.stdout.flush()
        sys.stderr.write(
            f"fake Immich ({args.library}, profile {args.profile}) on {server.url}; Ctrl-C stops it\n"
        )
        sys.stderr.flush()
        while not server.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return EXIT_OK


async def analyze_demo(url: str, key: str) -> Plan:
    progress = ProgressPrinter()
    async with ImmichClient(url, key, rate_limit=DEMO_RATE_LIMIT) as client:
        await client.connect(ANALYZE_PERMISSIONS)
        plan = await analyze(client, report=progress)
    progress.finish()
    return plan


def run(args: argparse.Namespace) -> int:
    if args.serve_only:
        return serve(args)
    from immich_dupes.fake import FakeServer
    from immich_dupes.tui.app import make_app
    from immich_dupes.tui.settings import load_keymap

    fake = _fake(args)
    if fake is None:
        return EXIT_USAGE
    work = Path(tempfile.mkdtemp(prefix="immich-dupes-demo-"))
    plan_path = work / "plan.json"
    backup = work / "backup"
    try:
        server = FakeServer(fake, port=args.port).start()
    except OSError as e:
        sys.stderr.write(f"immich-dupes: error: cannot listen on 127.0.0.1:{args.port} ({e.strerror})\n")
        return EXIT_USAGE
    try:
        sys.stderr.write(f"demo: a fake Immich with the {args.library} library on {server.url}\n")
        plan = asyncio.run(analyze_demo(server.url, fake.api_key))
        save_plan(plan, plan_path)
        sys.stderr.write(
            f"demo: {plan.total_groups} duplicate groups, {plan.needs_review_count} need review; "
            f"plan in {plan_path}\n"
        )
        url, key = server.url, fake.api_key

        def client() -> ImmichClient:
            return ImmichClient(url, key, rate_limit=DEMO_RATE_LIMIT, concurrency=8)

        keymap, keymap_warning = load_keymap()  # the user's keys, as in review
        app = make_app(
            plan_path,
            client_factory=client,
            image_protocol=args.image_protocol,
            backup_dir=backup,
            cache_dir=work / "thumbs",
            keymap=keymap,
            plan=plan,
        )
        app.keymap_warning = keymap_warning
        app.run()
    finally:
        server.stop()
    sys.stderr.write(
        f"demo: done. The plan, backups and reports are in {work} (delete it when you like).\n"
        "Nothing outside that folder was touched. For your own library:\n"
        "  immich-dupes -u URL -a KEY analyze -o plan.json && immich-dupes review plan.json\n"
    )
    return EXIT_OK
