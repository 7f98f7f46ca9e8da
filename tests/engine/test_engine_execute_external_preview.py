"""Walkthrough 4b: with --force and an external-library copy allowed in review (X), execute asked
"back up and PERMANENTLY DELETE 15 loser(s)" without saying that one of them is a file on the
user's own disk that Immich deletes, and that a restore brings it back only as an ordinary upload.
The preview (``ExecutePreview.external_losers``), the CLI's lines and question say it now; the
bytes a plan says it frees count only what execute removes as the plan stands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from confirm_stub import Asked

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, Plan, save_plan
from immich_dupes.cli import main
from immich_dupes.commands.execute import describe_preview, question_for
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import SKIPPED_EXTERNAL, ExecuteOptions, left_alone, preflight
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient

EXTERNAL_GROUP = "s10_upload_large.jpg"
"""The sample library's group whose loser is an external-library copy."""


def external_group(plan: Plan) -> int:
    for k, g in enumerate(plan.groups):
        if any(EXTERNAL_GROUP in a.file_name for a in g.assets):
            assert any(g.asset(i).is_external for i in g.losers)
            return k
    raise AssertionError(EXTERNAL_GROUP)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeImmich, str, Plan, Path]]:
    """The sample on a loopback socket; its plan with every group accepted, and saved with the
    external-library copy allowed (as X in review does)."""
    fake = FakeImmich(library="sample")
    with FakeServer(fake) as srv:

        async def go() -> Plan:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000) as c:
                return await analyze(c)

        plan = asyncio.run(go())
        plan.groups = [decide.accept(g) for g in plan.groups]
        allowed = plan.model_copy(deep=True)
        k = external_group(allowed)
        allowed.groups[k] = decide.allow_external_delete(allowed.groups[k], True)
        path = tmp_path_factory.mktemp("external") / "plan.json"
        save_plan(allowed, path)
        yield fake, srv.url, plan, path


def allowed_plan(plan: Plan) -> Plan:
    out = plan.model_copy(deep=True)
    k = external_group(out)
    out.groups[k] = decide.allow_external_delete(out.groups[k], True)
    return out


# --------------------------------------------------------------------------- the preview


def test_the_preview_counts_the_external_copies_it_deletes(
    served: tuple[FakeImmich, str, Plan, Path], tmp_path: Path
) -> None:
    _, _, plan, _ = served
    # Not allowed: execute leaves the whole group alone, so no external copy is among the losers.
    pv = preflight(plan, ExecuteOptions(backup_dir=tmp_path / "a", force=True))
    assert pv.external_losers == 0
    pv2 = preflight(allowed_plan(plan), ExecuteOptions(backup_dir=tmp_path / "b", force=True))
    assert pv2.external_losers == 1
    assert pv2.losers == pv.losers + 1


def test_force_says_the_external_copy_is_deleted_from_disk_and_how_restore_brings_it_back(
    served: tuple[FakeImmich, str, Plan, Path], tmp_path: Path
) -> None:
    _, _, plan, _ = served
    pv = preflight(allowed_plan(plan), ExecuteOptions(backup_dir=tmp_path / "b", force=True))
    text = describe_preview(pv, dry_run=False)
    line = next(ln for ln in text.splitlines() if "external library" in ln.lower())
    assert line.startswith(f"EXTERNAL LIBRARY: 1 of the {pv.losers} loser(s) is an external-library copy: ")
    assert "deletes its file from the library folder on your disk now" in line
    assert "restore brings such a copy back only as an ordinary upload, not into its external library" in line
    assert question_for(pv) == (
        "Permanently delete the losers after backing them up, including 1 external-library file on your disk?"
    )


def test_to_the_trash_the_external_copy_is_named_with_when_it_goes(
    served: tuple[FakeImmich, str, Plan, Path], tmp_path: Path
) -> None:
    _, _, plan, _ = served
    pv = preflight(allowed_plan(plan), ExecuteOptions(backup_dir=tmp_path / "b"))
    text = describe_preview(pv, dry_run=False)
    assert "external library: 1 of the" in text
    assert "when the trash is emptied, Immich deletes its file from the library folder" in text
    assert question_for(pv) == "Back up the losers and move them to the trash?"


def test_without_an_external_copy_nothing_is_said_about_one(
    served: tuple[FakeImmich, str, Plan, Path], tmp_path: Path
) -> None:
    _, _, plan, _ = served
    pv = preflight(plan, ExecuteOptions(backup_dir=tmp_path / "b", force=True))
    assert "external library" not in describe_preview(pv, dry_run=False).lower()
    assert question_for(pv) == "Permanently delete the losers after backing them up?"


def test_the_command_asks_about_the_external_file_and_a_no_exits_2(
    served: tuple[FakeImmich, str, Plan, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], asked: Asked,
) -> None:
    fake, url, _, path = served
    since = len(fake.request_log)
    capsys.readouterr()
    code = main(["-u", url, "-a", fake.api_key, "execute", "-i", str(path), "-b", str(tmp_path / "b"),
                 "--force", "--rate-limit", "1000"])
    _, err = capsys.readouterr()
    assert code == 2, err  # declined: nothing failed, nothing changed
    assert asked.questions == [
        "Permanently delete the losers after backing them up, including 1 external-library file on your disk?"
    ]
    assert "EXTERNAL LIBRARY: 1 of the" in err
    assert "not into its external library" in err
    assert "nothing done" in err
    assert all(r.method == "GET" for r in fake.request_log[since:])
    assert not (tmp_path / "b").exists()


# --------------------------------------------------------------------------- bytes freed


def resolving(g: GroupPlan) -> bool:
    return g.action is Action.RESOLVE and any(g.asset(i).file_size for i in g.losers)


def test_bytes_freed_counts_what_execute_removes_as_the_plan_stands(
    served: tuple[FakeImmich, str, Plan, Path],
) -> None:
    """A group execute leaves alone for an external-library loser frees nothing; allowed, its
    losers count; every other resolved group counts its losers (the plan's and execute's rules
    agree group by group)."""
    _, _, plan, _ = served
    for p in (plan, allowed_plan(plan)):
        for g in p.groups:
            assert resolving(g)
            held = left_alone(g) == SKIPPED_EXTERNAL
            assert decide.held_for_external(g) is held
            expected = 0 if held else sum(g.asset(i).file_size or 0 for i in g.losers)
            assert g.bytes_freed == expected, g.duplicate_id
    k = external_group(plan)
    assert plan.groups[k].bytes_freed == 0
    assert allowed_plan(plan).groups[k].bytes_freed > 0
