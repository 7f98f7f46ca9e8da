"""``immich-dupes restore -b BACKUP_DIR [--dry-run] [--yes]``.

Prints one line per asset (what was done, or would be done with ``--dry-run``). Exit 0 when
everything is back, 1 when something could not be restored, 2 for a missing, foreign, invalid or
edited backup or restore record, or a backup another execute or restore is using (nothing is sent
then), 3 when the server cannot be reached or refuses the key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import httpx

from immich_dupes.cli import EXIT_DECLINED, EXIT_FAILED, EXIT_OK, UsageError
from immich_dupes.commands.common import (
    ProgressPrinter,
    confirm,
    errors_to_exit,
    make_client,
    terminal_safe,
)
from immich_dupes.engine.restore import (
    DRY_RUN_PERMISSIONS,
    RESTORE_PERMISSIONS,
    RestoreAction,
    RestoreReport,
    open_backup,
    restore,
)
from immich_dupes.engine.verify import check_binding
from immich_dupes.units import counted

_LABEL = {
    "from_trash": "restored from trash",
    "reupload": "re-uploaded",
    "already_present": "already present",
    "failed": "FAILED",
}
_DRY_LABEL = {
    "from_trash": "would restore from trash",
    "reupload": "would re-upload",
    "already_present": "already present",
    "failed": "CANNOT restore",
}


def render_line(a: RestoreAction, dry_run: bool) -> str:
    label = (_DRY_LABEL if dry_run else _LABEL)[a.action]
    new = f" → {a.new_asset_id}" if a.new_asset_id else ""
    detail = f": {a.detail}" if a.detail else ""
    return f"{label:<24} {a.file_name} ({a.asset_id}{new}){detail}"


KEEPERS_SHOWN = 10


def render_keepers(rep: RestoreReport) -> list[str]:
    """The keepers' own values execute wrote over: restore leaves keepers as they are."""
    if not rep.keepers:
        return []
    n = len({k.winner_id for k in rep.keepers})
    lines = [
        f"Keepers are not touched: execute wrote over {counted(len(rep.keepers), 'value')} of their"
        f" own on {counted(n, 'keeper')} (restore brings back the losers); what each held before:"
    ]
    for k in rep.keepers[:KEEPERS_SHOWN]:
        lines.append(f"  {k.file_name} ({k.winner_id}): {k.field} was {k.before!r}")
    if len(rep.keepers) > KEEPERS_SHOWN:
        where = f" in {rep.record_file}" if rep.record_file is not None else " in the restore record"
        lines.append(f"  … and {len(rep.keepers) - KEEPERS_SHOWN} more{where} (keepers_written_over)")
    return lines


def render_summary(rep: RestoreReport) -> str:
    head = "restore (dry run)" if rep.dry_run else "restore"
    return (
        f"{head}: {rep.count('from_trash')} from the trash, {rep.count('reupload')} re-uploaded, "
        f"{rep.count('already_present')} already present, {rep.failed} failed"
    )


class _Declined(Exception):
    pass


async def run_restore(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None
) -> RestoreReport:
    backup = Path(args.backup_dir)
    if not (args.yes or args.dry_run) and not sys.stdin.isatty():
        raise UsageError("refusing to restore without confirmation: no terminal to ask on (use --yes)")
    try:
        # refuses a bad backup before the server is contacted (a dry run: read-only)
        store, count = open_backup(backup, dry_run=args.dry_run)
    except ValueError as e:
        raise UsageError(str(e)) from None
    progress = ProgressPrinter()
    try:
        async with make_client(args, transport) as client:
            await client.connect(DRY_RUN_PERMISSIONS if args.dry_run else RESTORE_PERMISSIONS)
            try:
                await check_binding(
                    client, store.header.server_url, store.header.user_id, f"the backup in {backup}"
                )
            except ValueError as e:
                raise UsageError(str(e)) from None
            if not args.dry_run:
                question = (f"Restore up to {counted(count, 'asset')} from {backup} to {client.base_url}?"
                            " (the keepers stay as execute left them)")
                if not await asyncio.to_thread(confirm, question, args.yes):
                    raise _Declined()
            try:
                return await restore(client, backup, progress, dry_run=args.dry_run)
            except ValueError as e:
                raise UsageError(str(e)) from None
    finally:
        progress.finish()


def run(args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None) -> int:
    with errors_to_exit() as code:
        try:
            rep = asyncio.run(run_restore(args, transport))
        except _Declined:
            sys.stderr.write("restore: nothing done\n")
            return EXIT_DECLINED
        except OSError as e:  # the disk filled up while writing the record: one line, no traceback
            where = f": {e.filename}" if e.filename else ""
            sys.stderr.write(
                f"immich-dupes: error: cannot write the restore record ({e.strerror or e}{where}); "
                "what was restored stays restored: make room and run restore again to finish\n"
            )
            return EXIT_FAILED
        for a in rep.actions:
            sys.stdout.write(terminal_safe(render_line(a, rep.dry_run)) + "\n")
        for line in render_keepers(rep):
            sys.stdout.write(terminal_safe(line) + "\n")
        if rep.count("from_trash") and not rep.dry_run:
            sys.stdout.write(
                "Immich no longer lists these copies as duplicates (execute cleared that): to find"
                " them again, run Immich's Duplicate Detection job on all assets (Administration →"
                " Jobs), then analyze\n"
            )
        sys.stdout.write(terminal_safe(render_summary(rep)) + "\n")
        if rep.record_file is not None:
            sys.stdout.write(f"record written to {rep.record_file}\n")
        sys.stdout.flush()
        return EXIT_FAILED if rep.failed else EXIT_OK
    return code[0]
