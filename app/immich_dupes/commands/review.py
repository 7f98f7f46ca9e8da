"""``immich-dupes review PLAN.json [--image-protocol P] [--offline] [-b BACKUP_DIR] [--rate-limit N] [--concurrent N]``.

Opens the review app. The server (``-u/-a`` or ``IMMICH_URL``/``IMMICH_API_KEY``; the URL
defaults to the plan's server) is only needed for pictures and for execute/verify/restore:
without it the plan is reviewed from its own data.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from immich_dupes.analysis.plan import PlanError
from immich_dupes.cli import EXIT_OK, EXIT_USAGE
from immich_dupes.immich.client import DEFAULT_CONCURRENCY, DEFAULT_RATE_LIMIT, ImmichClient
from immich_dupes.tui.app import ClientFactory, make_app, read_plan
from immich_dupes.tui.settings import load_keymap
from immich_dupes.tui.state import Status


def client_factory(args: argparse.Namespace, plan_server: str) -> ClientFactory | None:
    """How the app makes its client; None without a URL and a key (the app says so).

    The URL must come from the user (-u or IMMICH_URL), never from the plan file alone: a
    plan received from someone else would otherwise send the API key to their server.
    """
    url = getattr(args, "url", None) or os.environ.get("IMMICH_URL", "")
    key = getattr(args, "api_key", None) or os.environ.get("IMMICH_API_KEY", "")
    if key and not url:
        sys.stderr.write(
            f"note: no server URL given; pictures need -u URL or IMMICH_URL (the plan was made on {plan_server})\n"
        )
    if not key or not url:
        return None
    verify_tls = not getattr(args, "insecure", False)
    if not verify_tls:
        sys.stderr.write("warning: TLS certificate verification is off (--insecure)\n")

    # One client for everything the app sends: pictures, and execute/verify/restore from it.
    rate_limit: float = getattr(args, "rate_limit", DEFAULT_RATE_LIMIT)
    concurrency: int = getattr(args, "concurrent", DEFAULT_CONCURRENCY)

    def make() -> ImmichClient:
        return ImmichClient(url, key, rate_limit=rate_limit, concurrency=concurrency, verify_tls=verify_tls)

    return make


def run(args: argparse.Namespace) -> int:
    path = Path(args.plan)
    try:
        plan = read_plan(path)
    except PlanError as e:
        sys.stderr.write(f"immich-dupes: error: {e}\n")
        return EXIT_USAGE
    keymap, warning = load_keymap()
    factory = None if args.offline else client_factory(args, plan.server_url)
    app = make_app(
        path,
        client_factory=factory,
        image_protocol=args.image_protocol,
        offline=args.offline,
        backup_dir=args.backup_dir,
        keymap=keymap,
        plan=plan,
    )
    app.keymap_warning = warning
    app.run()
    state = app.state
    if state.dirty:
        sys.stderr.write(f"immich-dupes: the last decisions could not be saved to {path}\n")
        return 1
    todo = state.counts()[Status.NEEDS_REVIEW]
    still = "1 group still needs" if todo == 1 else f"{todo} groups still need"
    sys.stderr.write(f"decisions saved to {path}: {still} review\n")
    return EXIT_OK if app.return_code in (None, 0) else int(app.return_code)
