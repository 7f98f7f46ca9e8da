"""Killed, then edited, then run again into the SAME backup folder: one group never gets two decisions.

A backup folder belongs to one analysis, so a reviewed version of the plan may resume into it.
Each case SIGKILLs the real CLI (a subprocess on a loopback fake) at a chosen request, edits the
plan file as a reviewer would — the group under way gets another decision — and runs execute
again with the same folder. Checked every time: at each ``DELETE /assets`` every asset has its
verified backup on disk; a group that may already have had a request sent for it (its manifest
or a later step is journaled) is refused alone (exit 1, the rest done) and keeps its first
decision's keeper; a group that only had backups is carried out with the new decision; the
version that started a refused group finishes it and the server then equals one clean run; and
restore brings every removed asset back.
"""

from __future__ import annotations

import asyncio
import json
import signal
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass
from pathlib import Path
from typing import Any

import pytest
from safety_support import (
    FIGURES,
    KillHarness,
    client_for,
    deep_diff,
    group_by_winner,
    path_matches,
    reference,
)

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, Plan, save_plan
from immich_dupes.engine.execute import ExecuteOptions, execute, load_states
from immich_dupes.engine.journal import read_entries
from immich_dupes.fake import FakeImmich
from immich_dupes.fake.http import ApiRequest

pytestmark = pytest.mark.slow

RESOLVED = "s11_large_plain.jpg"
DISMISSED = "s01_large_nogps.jpg"  # dismissed as not duplicates in mixed_plan


def edited(plan: Plan, winner_file: str) -> Plan:
    """The reviewer's second thoughts about one group: keep the other copy / resolve it after all."""
    out = plan.model_copy(deep=True)
    i = next(n for n, g in enumerate(out.groups) if g.winner_asset.file_name == winner_file)
    g = out.groups[i]
    if g.action is Action.RESOLVE:
        out.groups[i] = decide.accept(decide.set_winner(g, g.losers[0]))
    else:
        out.groups[i] = decide.set_action(g, Action.RESOLVE)
    out.refresh_counts()
    return out


@dataclass
class RerunCase(KillHarness):
    target: tuple[str, str]
    """Kill at the first ``(method, path)`` the fake receives (a path ending in ``/``: a prefix),
    just ``when`` (``before`` or ``after``) it processes it."""
    group: str
    """The winner file of the group edited after the kill."""
    _: KW_ONLY
    armed: bool = True

    def is_target(self, req: ApiRequest, processed: bool) -> bool:
        method, path = self.target
        with self.lock:
            hit = self.armed and path_matches(req, method, path)
            if hit:
                self.armed = False
        return hit

    def execute(self, plan: Plan) -> tuple[int, str]:
        save_plan(plan, self.plan_path)
        return self.run_cli("execute", "-i", str(self.plan_path), "-b", str(self.backup))

    def last_report(self) -> dict[str, tuple[str, str]]:
        body = json.loads(sorted(self.backup.glob("report-*.json"))[-1].read_text())
        return {o["duplicate_id"]: (o["status"], o["reason"]) for o in body["groups"]}

    def trashed(self) -> set[str]:
        out = set()
        for i in self.fake.asset_ids():
            try:
                if self.fake.asset(i)["isTrashed"]:
                    out.add(i)
            except KeyError:
                out.add(i)
        return out


async def _one_clean_run(plan: Plan) -> dict[str, Any]:
    """The server after one uninterrupted run of ``plan`` on a fresh fake."""
    fake = FakeImmich(library="sample")
    ref = plan.model_copy(deep=True)
    ref.server_url = "http://fake-immich"
    with tempfile.TemporaryDirectory() as d:
        async with client_for(fake) as c:
            rep = await execute(c, ref, ExecuteOptions(backup_dir=Path(d) / "backup"))
    assert rep.failed == 0
    return fake.state()


def run_case(root: Path, target: tuple[str, str], when: str, group: str) -> tuple[str, bool | None, list[str]]:
    """Kill, edit ``group``, run again, then finish and restore; the problems found."""
    case = RerunCase(root, target, group, when=when)
    p: list[str] = []
    name = f"{when} {target[0]} {target[1]} / {group}"
    try:
        code, out = case.execute(case.plan)
        if case.killed_at is None or code != -signal.SIGKILL:
            return name, None, [f"{name}: not killed (exit {code}): {out[-600:]}"]
        FIGURES.killed()
        g = group_by_winner(case.plan, group)
        st = load_states(read_entries(case.backup / "journal.jsonl")).get(g.duplicate_id)
        committed = st is not None and st.committed
        keeper = g.winner
        gone_at_kill = case.trashed()

        second = edited(case.plan, group)
        code, out = case.execute(second)
        status, reason = case.last_report()[g.duplicate_id]
        others = {s for gid, (s, _) in case.last_report().items() if gid != g.duplicate_id}
        if "Traceback" in out:
            p.append(f"{name}: traceback in the edited run: {out[-800:]}")
        if committed:
            if code != 1 or status != "failed" or "another version" not in reason:
                p.append(f"{name}: the edited group was not refused alone (exit {code}, {status}: {reason})")
            if not others <= {"done", "skipped"} or "failed" in others:
                p.append(f"{name}: other groups {others}")
            if keeper in case.trashed():
                p.append(f"{name}: the first decision's keeper {keeper} was trashed")
            touched = (case.trashed() - gone_at_kill) & {a.id for a in g.assets}
            if touched:
                p.append(f"{name}: the edited run trashed {touched} of the refused group")
            # The version that started it finishes it: one clean run's server.
            code, out = case.execute(case.plan)
            if code != 0:
                p.append(f"{name}: the first version's re-run exit {code}: {out[-800:]}")
            want = asyncio.run(reference("v3", (), False)).state
        else:
            if code != 0 or status != "done":
                p.append(f"{name}: the edited group (only backed up) was not done (exit {code}, {status}: {reason})")
            want = asyncio.run(_one_clean_run(second))
        diff = deep_diff(case.fake.state(), want)
        if diff:
            p.append(f"{name}: the server differs from one clean run's: {diff}")
        p += [f"{name}: {v}" for v in case.violations]
        if case.deletes == 0:
            p.append(f"{name}: no DELETE /api/assets reached the fake: no backup was checked")

        code, out = case.run_cli("restore", "-b", str(case.backup))
        if code != 0:
            p.append(f"{name}: restore exit {code}: {out[-800:]}")
        back = case.trashed() - case.before.trashed
        if back:
            p.append(f"{name}: not brought back by restore: {sorted(back)}")
        return name, committed, p
    finally:
        case.close()


POINTS: list[tuple[tuple[str, str], str, str]] = [
    (("GET", "/api/assets/"), "before", RESOLVED),  # the first download: no step journaled yet
    (("PUT", "/api/assets"), "before", RESOLVED),  # manifests journaled, consolidation under way
    (("DELETE", "/api/assets"), "before", RESOLVED),  # consolidated, trash_sent journaled
    (("DELETE", "/api/assets"), "after", RESOLVED),  # losers trashed, the run not finished
    (("DELETE", "/api/duplicates"), "after", DISMISSED),  # dismissed; now "resolve it after all"
]


def test_killed_then_edited_then_run_again_into_the_same_folder(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(
            lambda ip: run_case(tmp_path / f"case{ip[0]}", *ip[1]), enumerate(POINTS)))
    problems = [x for _, _, p in results for x in p]
    assert problems == []
    # Both kinds of kill point were reached: refused groups and groups with only backups.
    assert {c for _, c, _ in results} == {True, False}, results
