"""``immich-dupes analyze -o PLAN.json``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections import Counter
from pathlib import Path

import httpx

from immich_dupes.analysis.decide import held_for_external
from immich_dupes.analysis.plan import Plan, PlanSettings, save_plan
from immich_dupes.cli import EXIT_FAILED
from immich_dupes.commands.common import ProgressPrinter, errors_to_exit, make_client
from immich_dupes.engine.analyze import ANALYZE_PERMISSIONS, analyze
from immich_dupes.engine.events import Event
from immich_dupes.units import counted, human_bytes


def summary(plan: Plan) -> str:
    reasons: Counter[str] = Counter()
    for g in plan.groups:
        for r in g.review_reasons:
            reasons[r.value] += 1
    # What execute would free as the plan stands (GroupPlan.bytes_freed): a group whose loser is
    # an external-library copy is left alone until a person allows deleting it in review.
    freed = sum(g.bytes_freed for g in plan.groups)
    held = sum(1 for g in plan.groups if held_for_external(g))
    not_counted = (
        f" (not counting {counted(held, 'group')} with an external-library copy among the losers:"
        " left alone unless allowed in review)" if held else ""
    )
    lines = [
        f"{counted(plan.total_groups, 'group')}, {counted(plan.total_assets, 'asset')}; "
        f"{plan.needs_review_count} need{'s' if plan.needs_review_count == 1 else ''} review; {human_bytes(freed)} would be freed{not_counted}",
    ]
    for reason, n in reasons.most_common():
        lines.append(f"  needs review: {reason.replace('_', ' ')}: {n}")
    return "\n".join(lines)


async def run_analyze(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None
) -> tuple[str, int]:
    """Analyze, write the plan, return the summary and how many groups were left out.

    The plan is written inside the coroutine on purpose: a large object returned from the
    main task gets repr()'d during loop shutdown (seconds for tens of thousands of groups).
    """
    settings = PlanSettings(gps_tolerance_m=args.gps_tolerance, time_tolerance_s=args.time_tolerance)
    progress = ProgressPrinter()
    left_out = 0

    def report(e: Event) -> None:
        nonlocal left_out
        if e.phase == "analyze" and "skipped" in e.data:
            left_out = int(e.data["skipped"])
        progress(e)

    try:
        async with make_client(args, transport) as client:
            await client.connect(ANALYZE_PERMISSIONS)
            plan = await analyze(client, settings, report)
        progress(Event("plan", f"writing {args.output}"))
        await asyncio.to_thread(save_plan, plan, Path(args.output))
    finally:
        progress.finish()  # an error message then starts on a line of its own
    text = summary(plan)
    if left_out:
        text += (
            f"\n  left out: {counted(left_out, 'group')} the plan cannot hold, as the "
            "warnings above say; Immich keeps them as they are"
        )
    return text, left_out


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if out.is_dir():
        sys.stderr.write(f"immich-dupes: error: {out} is a directory; give a file name for the plan\n")
        return 2
    if not out.parent.exists():
        sys.stderr.write(f"immich-dupes: error: the folder {out.parent} does not exist\n")
        return 2
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        sys.stderr.write(f"immich-dupes: error: cannot write the plan into {out.parent}\n")
        return 2
    with errors_to_exit() as code:
        try:
            text, left_out = asyncio.run(run_analyze(args))
        except OSError as e:  # e.g. the disk filled up while the plan was written
            sys.stderr.write(f"immich-dupes: error: cannot write the plan {out} ({e.strerror or e})\n")
            return EXIT_FAILED
        print(text)
        print(f"plan written to {out}")
        if left_out:
            code[0] = EXIT_FAILED
    return code[0]
