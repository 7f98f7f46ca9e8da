"""``immich-dupes execute -i PLAN.json -b BACKUP_DIR [--force] [--skip-review] [--yes] [--dry-run]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import signal
import sys
from pathlib import Path

import httpx

from immich_dupes.analysis.plan import Plan, load_plan
from immich_dupes.cli import EXIT_DECLINED, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from immich_dupes.commands.common import (
    ProgressPrinter,
    confirm,
    errors_to_exit,
    make_client,
    terminal_safe,
)
from immich_dupes.engine.backup import free_bytes
from immich_dupes.engine.events import Event, Reporter
from immich_dupes.engine.execute import (
    EARLIER_VERSION_DONE,
    ExecuteOptions,
    ExecutePreview,
    ExecuteRefused,
    ExecuteReport,
    check_binding,
    execute,
    preflight,
)
from immich_dupes.units import human_bytes

EXIT_INTERRUPTED = 130
_SHOWN_PHASES = frozenset({"connect", "recheck", "albums", "progress", "finished"})


def describe_preview(pv: ExecutePreview, dry_run: bool) -> str:
    how = "PERMANENTLY DELETE" if pv.force else "move to the Immich trash"
    videos = (
        f", plus {pv.live_videos} live-photo video(s), about {human_bytes(pv.video_bytes_estimate)} estimated"
        if pv.live_videos else ""
    )
    lines = [
        f"{pv.groups_to_resolve} group(s) to resolve: back up and {how} {pv.losers} loser(s) "
        f"({human_bytes(pv.bytes_to_backup)} of originals{videos})",
    ]
    if pv.groups_to_dismiss:
        lines.append(f"{pv.groups_to_dismiss} group(s) to dismiss as not duplicates")
    if pv.groups_to_stack:
        lines.append(f"{pv.groups_to_stack} group(s) to stack")
    if pv.groups_skipped:
        extra = f", {pv.unreviewed} of them unreviewed" if pv.unreviewed else ""
        lines.append(f"{pv.groups_skipped} group(s) left alone{extra}")
    if pv.groups_done_before:
        lines.append(f"{pv.groups_done_before} group(s) done by an earlier run into this folder, left as they are")
    lines.append(f"backups go to {pv.backup_dir}")
    if pv.force:
        lines.append("--force: losers are deleted permanently, not moved to the trash")
    if pv.external_losers:
        lines.append(external_warning(pv))
    if dry_run:
        lines.append("dry run: nothing will be changed on the server and no backup is written")
    return "\n".join(lines)


def external_warning(pv: ExecutePreview) -> str:
    """What happens to the external-library copies among the losers (allowed in review): files
    on the user's own disk, which a restore cannot put back into their library."""
    n = pv.external_losers
    which = (f"{n} of the {pv.losers} loser(s) "
             f"{'is an external-library copy' if n == 1 else 'are external-library copies'}")
    files = "its file" if n == 1 else "their files"
    back = "restore brings such a copy back only as an ordinary upload, not into its external library"
    if pv.force:
        return (f"EXTERNAL LIBRARY: {which}: Immich deletes {files} from the library folder on "
                f"your disk now, if the folder is writable; {back}")
    return (f"external library: {which}: when the trash is emptied, Immich deletes {files} from "
            f"the library folder on your disk, if the folder is writable; after that, {back}")


def question_for(pv: ExecutePreview) -> str:
    """The confirmation question: it names the external-library files a run deletes for good."""
    if not pv.force:
        return "Back up the losers and move them to the trash?"
    if pv.external_losers:
        n = pv.external_losers
        return (
            f"Permanently delete the losers after backing them up, including {n} external-library "
            f"file{'' if n == 1 else 's'} on your disk?"
        )
    return "Permanently delete the losers after backing them up?"


def describe_report(rep: ExecuteReport, max_ids: int = 10) -> str:
    lines = []
    for o in rep.outcomes:
        if o.status == "failed":
            lines.append(f"FAILED  {o.duplicate_id}: {o.reason}")
    by_reason: dict[str, list[str]] = {}
    quiet = {"the plan says skip"}
    if rep.stopped:
        quiet.add(rep.stopped_reason)  # counted once in the stop message
    for o in rep.outcomes:
        if o.status == "skipped" and o.reason not in quiet:
            by_reason.setdefault(o.reason, []).append(o.duplicate_id)
    for reason, ids in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        if len(ids) <= max_ids:
            lines.extend(f"skipped {i}: {reason}" for i in ids)
        else:
            lines.append(f"skipped {len(ids)} groups: {reason} (ids in the report)")
    # Done by an earlier run into this folder: nothing was sent for them now, whatever happened
    # to them since (a restore brings their losers back: they stay back).
    if rep.done_before:
        lines.append(
            f"{rep.done_before} group(s) done by an earlier run into this backup folder: left as they are "
            "(a done group is never done again: to redo one, analyze again and use a new backup folder)"
        )
    # Done before with another version of the group: the edits made since were not applied.
    edited = [o.duplicate_id for o in rep.outcomes if o.status == "done" and o.reason == EARLIER_VERSION_DONE]
    if edited:
        shown = ", ".join(edited[:max_ids]) + (" … (all in the report)" if len(edited) > max_ids else "")
        lines.append(f"not redone ({len(edited)}): {EARLIER_VERSION_DONE}: {shown}")
    verb = "would be " if rep.dry_run else ""
    gone = "deleted" if rep.force else "trashed"
    done = rep.would_do if rep.dry_run else rep.done_now
    losers = sum(len(o.trashed) for o in rep.outcomes if o.status == "dry-run") if rep.dry_run else rep.trashed
    lines.append(
        f"{done} group(s) {'to do' if rep.dry_run else 'done'}, {rep.skipped} skipped, "
        f"{rep.failed} failed; "
        f"{losers} loser(s) {verb}{gone}; "
        f"{human_bytes(rep.bytes_backed_up)} {'to back up' if rep.dry_run else 'backed up'}; "
        f"{rep.requests} requests in {rep.seconds:.1f} s"
    )
    if rep.report_path is not None:
        lines.append(f"report: {rep.report_path}")
    return "\n".join(lines)


class _Filtered:
    """Shows the overall progress line and warnings; the detailed per-step events are for the TUI.

    The overall line counts groups, and a group counts only once it is finished: a batch of
    large files is backed up before its first group finishes. So the bytes of each "backup"
    event move the overall line too, with the group count it last had.
    """

    def __init__(self, printer: Reporter) -> None:
        self.printer = printer
        self.overall = Event("progress")

    def __call__(self, ev: Event) -> None:
        if ev.phase == "progress" and ev.level == "info":
            self.overall = ev
        elif ev.phase == "backup" and ev.level == "info" and ev.bytes_done:
            ev = self.overall = Event(
                "progress", done=self.overall.done, total=self.overall.total,
                bytes_done=ev.bytes_done, bytes_total=ev.bytes_total,
            )
        if ev.level in ("warning", "error") or ev.phase in _SHOWN_PHASES:
            self.printer(ev)


async def run_execute(
    args: argparse.Namespace,
    plan: Plan,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int:
    options = ExecuteOptions(
        backup_dir=Path(args.backup_dir),
        force=bool(args.force),
        skip_review=bool(args.skip_review),
        dry_run=bool(args.dry_run),
    )
    cancel = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupted = False

    installed = False

    def on_sigint() -> None:
        nonlocal interrupted, installed
        interrupted = True
        cancel.set()
        # A second Ctrl-C gets Python's default handler: KeyboardInterrupt, exit 130.
        loop.remove_signal_handler(signal.SIGINT)
        installed = False
        sys.stderr.write("\nimmich-dupes: stopping after the current step (Ctrl-C again to abort)\n")

    async with make_client(args, transport) as client:
        pv = preflight(plan, options, client.base_url)
        question = question_for(pv)
        if not options.dry_run and not args.yes and not sys.stdin.isatty():
            confirm(question, False)  # nothing to ask on: refused (exit 2) before any request
        # Server, user and key before the preview: nobody is asked to confirm a run that the
        # server binding then refuses (a dry run too). Read-only requests only.
        await check_binding(client, plan, options)
        sys.stderr.write(describe_preview(pv, options.dry_run) + "\n")
        if not options.dry_run and not confirm(question, bool(args.yes)):
            sys.stderr.write("immich-dupes: nothing done\n")
            return EXIT_DECLINED
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            installed = True
        progress = ProgressPrinter()
        try:
            rep = await execute(client, plan, options, _Filtered(progress), cancel)
        finally:
            progress.finish()
            if installed:
                loop.remove_signal_handler(signal.SIGINT)
    if options.dry_run:
        for line in rep.planned_requests:
            print(terminal_safe(line))
    print(terminal_safe(describe_report(rep)))
    if rep.stopped:
        sys.stderr.write(f"immich-dupes: {terminal_safe(rep.stopped)}\n")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if rep.failed or rep.stopped else EXIT_OK


def run(args: argparse.Namespace) -> int:
    with errors_to_exit() as code:
        try:
            plan = load_plan(args.input)
            code[0] = asyncio.run(run_execute(args, plan))
        except ExecuteRefused as e:
            sys.stderr.write(f"immich-dupes: error: {terminal_safe(str(e))}\n")
            code[0] = EXIT_USAGE
        except OSError as e:  # the backup disk filled up (or failed) mid-run: one line, not a traceback
            where = f": {e.filename}" if e.filename else ""
            room = ""
            free = free_bytes(Path(args.backup_dir)) if e.errno in (errno.ENOSPC, errno.EDQUOT) else None
            if free is not None:
                room = f", {human_bytes(free)} free"
            sys.stderr.write(
                f"immich-dupes: error: cannot write to the backup directory ({e.strerror or e}{where}{room}); "
                "execute stopped there: make room and run the same command again to finish\n"
            )
            code[0] = EXIT_FAILED
    return code[0]
