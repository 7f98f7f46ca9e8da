"""Glue between the app and the engine's execute / verify / restore: what the confirmations
say and how results read. The engine does the work; nothing here talks to the server.

The engine modules are imported lazily (inside functions), so the review app opens and
reviews even in a build where one of them is broken; starting that job then says so.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from textual.content import Content

from immich_dupes.tui.format import human_bytes
from immich_dupes.units import counted

if TYPE_CHECKING:
    from immich_dupes.engine.execute import ExecutePreview, ExecuteReport
    from immich_dupes.engine.restore import RestoreReport
    from immich_dupes.engine.verify import VerifyReport

LIST_LIMIT = 20
"""Failed groups / findings listed in a result; the rest are counted (the report has all)."""


def describe_execute(pv: ExecutePreview, server: str, who: str) -> Content:
    """What execute will do (from ``engine.execute.preflight``): groups, losers, bytes, where, how."""
    videos = (
        f", plus {pv.live_videos} live-photo video{'' if pv.live_videos == 1 else 's'}, "
        f"about {human_bytes(pv.video_bytes_estimate)} estimated"
        if pv.live_videos else ""
    )
    parts: list[Content] = [
        Content.assemble("On ", (server, "bold"), f" as {who}:\n\n" if who else ":\n\n"),
        Content.assemble(
            "• ", (f"{counted(pv.groups_to_resolve, 'group')} resolved", "bold"), ": ",
            (counted(pv.losers, "copy", "copies"), "bold"), " backed up to ", (str(pv.backup_dir), "bold"),
            f" ({human_bytes(pv.bytes_to_backup)}{videos}),\n"
            "  each checked against the server's checksum; metadata carried to the keepers;\n"
            "  then the copies are ",
        ),
    ]
    if pv.force:
        parts.append(Content.styled(
            "PERMANENTLY DELETED (not the trash: only the backup can bring them back)", "bold $error"
        ))
    else:
        parts.append(Content.assemble(("moved to the Immich trash", "bold $success"),
                                      " (restorable from the trash or the backup)"))
    if pv.external_losers:
        parts.append(Content(".\n  "))
        parts.append(external_copies(pv))
    parts.append(Content(
        f".\n• {counted(pv.groups_to_dismiss, 'group')} dismissed as not duplicates, "
        f"{pv.groups_to_stack} stacked: nothing deleted.\n"
        f"• {pv.groups_skipped} left alone"
    ))
    if pv.unreviewed:
        parts.append(Content.assemble(" (", (f"{pv.unreviewed} still need review", "bold $warning"), ")"))
    if pv.groups_done_before:
        parts.append(Content(
            f".\n• {pv.groups_done_before} done by an earlier run into this backup folder: left as they are"
        ))
    parts.append(Content(".\n\nEvery step is journaled: if it stops, running it again resumes.\n\n"))
    parts.append(Content.styled(
        "f switches between the trash and permanent delete · y executes · n cancels", "$text-muted"
    ))
    return Content("").join(parts)


def external_copies(pv: ExecutePreview) -> Content:
    """What happens to the external-library copies among the losers (allowed with X): files on
    the user's own disk, which a restore cannot put back into their library."""
    n = pv.external_losers
    which = f"{n} of them {'is an external-library copy' if n == 1 else 'are external-library copies'}"
    back = "restore brings such a copy back only as an ordinary upload, not into its external library"
    if pv.force:
        return Content.styled(
            f"{which}: Immich deletes {'its file' if n == 1 else 'their files'} from the library "
            f"folder on your disk now, if the folder is writable; {back}",
            "bold $error",
        )
    return Content.styled(
        f"{which}: when the trash is emptied, Immich deletes {'its file' if n == 1 else 'their files'} "
        f"from the library folder on your disk, if the folder is writable; after that, {back}",
        "bold $warning",
    )


def summarize_execute(rep: ExecuteReport) -> Content:
    """How the run went; groups an earlier run into the folder did are counted apart: this run
    sent nothing for them, and their losers may be back since (a restore)."""
    gone = "deleted permanently" if rep.force else "moved to the trash"
    if rep.stopped:
        headline = "Execute stopped early"
    elif rep.failed:
        headline = f"Execute finished: {counted(rep.failed, 'group')} failed"
    else:
        headline = "Execute finished"
    lines: list[Content] = [Content.styled(
        headline, "bold $error" if rep.failed or rep.stopped else "bold $success"
    )]
    if rep.stopped:
        lines.append(Content.styled(rep.stopped, "$error"))
    lines.append(Content(
        f"{counted(rep.done_now, 'group')} done, {rep.skipped} skipped, "
        f"{rep.failed} failed · {counted(rep.trashed, 'copy', 'copies')} {gone}"
    ))
    if rep.done_before:
        lines.append(Content(
            f"{counted(rep.done_before, 'group')} done by an earlier run into this backup folder:"
            " left as they are"
        ))
    lines.append(Content(
        f"backed up {human_bytes(rep.bytes_backed_up)} · {rep.requests} requests · {rep.seconds:.1f} s"
    ))
    if rep.report_path is not None:
        lines.append(Content(f"report: {rep.report_path}"))
    failed = [o for o in rep.outcomes if o.status == "failed"]
    for o in failed[:LIST_LIMIT]:
        lines.append(Content.styled(f"  ✗ {o.duplicate_id}: {o.reason}", "$error"))
    if len(failed) > LIST_LIMIT:
        lines.append(Content(f"  … and {len(failed) - LIST_LIMIT} more (see the report)"))
    quiet = {"the plan says skip", rep.stopped_reason} if rep.stopped else {"the plan says skip"}
    skipped = [o for o in rep.outcomes if o.status == "skipped" and o.reason not in quiet]
    reasons = Counter(o.reason for o in skipped)
    for reason, n in reasons.most_common(5):
        lines.append(Content.styled(f"  skipped {n}: {reason}", "$text-muted"))
    lines.append(Content.styled(
        "Next: V verifies the server against the plan; R restores from the backup.", "$text-muted"
    ))
    return Content("\n").join(lines)


def summarize_verify(rep: VerifyReport) -> Content:
    anomalies = rep.anomalies
    good = not anomalies
    lines = [
        Content.styled(
            "Verify: everything is as planned" if good else f"Verify found {len(anomalies)} anomalies",
            "bold $success" if good else "bold $error",
        ),
        Content(rep.counts_text()),
    ]
    for f in anomalies[:LIST_LIMIT]:
        lines.append(Content.styled(f"  ✗ {f.duplicate_id[:8]} {f.field}: {f.message}", "$error"))
    if len(anomalies) > LIST_LIMIT:
        lines.append(Content(f"  … and {len(anomalies) - LIST_LIMIT} more"))
    for f in rep.notes[: max(0, LIST_LIMIT - len(anomalies))]:
        lines.append(Content.styled(f"  • {f.duplicate_id[:8]} {f.field}: {f.message}", "$text-muted"))
    return Content("\n").join(lines)


def summarize_restore(rep: RestoreReport) -> Content:
    lines = [
        Content.styled(
            f"Restore finished: {counted(len(rep.actions), 'asset')}" + (f", {rep.failed} failed" if rep.failed else ""),
            "bold $error" if rep.failed else "bold $success",
        ),
        Content(
            f"{rep.count('from_trash')} back from the trash, {rep.count('reupload')} re-uploaded, "
            f"{rep.count('already_present')} already present"
        ),
    ]
    if rep.record_file is not None:
        lines.append(Content(f"record: {rep.record_file}"))
    for a in [a for a in rep.actions if a.action == "failed"][:LIST_LIMIT]:
        lines.append(Content.styled(f"  ✗ {a.file_name}: {a.detail}", "$error"))
    if rep.keepers:
        keepers = len({k.winner_id for k in rep.keepers})
        lines.append(Content.styled(
            f"Keepers are not touched: execute wrote over {counted(len(rep.keepers), 'value')} of"
            f" their own on {counted(keepers, 'keeper')}; what each held before:", "$warning"
        ))
        for k in rep.keepers[:LIST_LIMIT]:
            lines.append(Content(f"  {k.file_name}: {k.field} was {k.before!r}"))
        if len(rep.keepers) > LIST_LIMIT:
            lines.append(Content(f"  … and {len(rep.keepers) - LIST_LIMIT} more (see the record)"))
    return Content("\n").join(lines)


def describe_restore(backup_dir: Path, server: str, assets: int) -> Content:
    return Content.assemble(
        "Bring back the ", (counted(assets, "copy", "copies"), "bold"), " recorded in ", (str(backup_dir), "bold"),
        " on ", (server, "bold"), ":\n\n"
        "• copies still in the Immich trash are restored (same ids, faces and albums);\n"
        "• copies that were deleted for good are uploaded again from the backup, with their dates,\n"
        "  then their metadata and albums are re-applied from the backup's manifest.\n\n"
        "Keepers are not touched. Running it twice does no harm.",
    )
