"""``immich-dupes verify PLAN.json [--format text|json] [-b BACKUP_DIR]``.

Exit 0: every group carried out and as planned; 1: any anomaly; 2: bad input (the plan, the
backup directory, a plan of another server/user, a backup directory of another analysis);
3: cannot reach or authenticate.
With ``--format json`` stdout holds only the JSON report; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path

import httpx

from immich_dupes.analysis.plan import Plan, load_plan
from immich_dupes.cli import EXIT_FAILED, EXIT_OK, UsageError
from immich_dupes.commands.common import ProgressPrinter, errors_to_exit, make_client, terminal_safe
from immich_dupes.engine.verify import (
    VERIFY_PERMISSIONS,
    Finding,
    VerifyReport,
    open_backup_of,
    verify,
)


def _name(plan: Plan, duplicate_id: str, asset_id: str | None) -> str:
    if asset_id is None:
        return ""
    try:
        return plan.group(duplicate_id).asset(asset_id).file_name
    except KeyError:
        return asset_id


def render_text(plan: Plan, rep: VerifyReport) -> str:
    """Per group: its anomalies and notes; then one summary line (``VerifyReport.counts_text``)."""
    by_group: dict[str, list[Finding]] = defaultdict(list)
    for f in rep.findings:
        if f.severity != "ok":
            by_group[f.duplicate_id].append(f)
    lines: list[str] = []
    for g in plan.groups:
        found = by_group.get(g.duplicate_id)
        if not found:
            continue
        winner = g.winner_asset.file_name
        lines.append(f"group {g.duplicate_id} ({g.action.value}, winner {winner}):")
        for f in sorted(found, key=lambda f: f.severity != "anomaly"):
            label = "ANOMALY" if f.severity == "anomaly" else "note   "
            lines.append(f"  {label} {f.field}: {f.message}")
    lines.append(f"verify: {rep.counts_text()}" + (" — FAILED" if rep.anomalies else " — OK"))
    return "\n".join(lines)


async def run_verify(
    args: argparse.Namespace,
    plan: Plan,
    transport: httpx.AsyncBaseTransport | None = None,
) -> VerifyReport:
    progress = ProgressPrinter()
    backup = Path(args.backup_dir) if getattr(args, "backup_dir", None) else None
    try:
        async with make_client(args, transport) as client:
            await client.connect(VERIFY_PERMISSIONS)
            try:
                return await verify(client, plan, progress, backup)
            except ValueError as e:  # another server/user, or an unusable backup directory
                raise UsageError(str(e)) from None
    finally:
        progress.finish()


def run(args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None) -> int:
    with errors_to_exit() as code:
        plan = load_plan(args.plan)
        if getattr(args, "backup_dir", None):
            try:  # before any request: a missing folder, a file, no backup, another analysis
                open_backup_of(Path(args.backup_dir), plan)
            except ValueError as e:
                raise UsageError(str(e)) from None
        rep = asyncio.run(run_verify(args, plan, transport))
        if args.format == "json":
            sys.stdout.write(json.dumps(rep.to_json(), indent=1, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(terminal_safe(render_text(plan, rep)) + "\n")
        sys.stdout.flush()
        return EXIT_FAILED if rep.anomalies else EXIT_OK
    return code[0]
