"""Kill-and-resume at every step of a clean run: ``immich-dupes execute`` SIGKILLed, then run again.

Each case is a ``KillHarness``: the real CLI (a subprocess) on a fresh loopback fake of the
sample library, with ``mixed_plan`` (every group accepted, one dismissed as not duplicates, one
stacked, one left alone because its loser is in an external library). It is killed just before
or just after the fake processes its k-th request that changes the server (every k), its n-th
request of any kind (every third n: reads and downloads too), or right after the journal
reaches K entries; then the same command runs again to completion. The end state (server:
assets, winner metadata, albums, tags, stacks; backup: manifests and files; each group's
status) must equal an uninterrupted run's, and at every ``DELETE /api/assets`` each asset it
trashes must already have its backup on disk with the size and SHA-1 the server held. Every
third case runs once more: that run changes nothing. tests/safety/test_safety_kills.py does
the same on a flaky server at a few points.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from safety_support import FIGURES, KillHarness, deep_diff

pytestmark = pytest.mark.slow

Point = tuple[str, int, str]
"""``("change" | "request" | "journal", n, "before" | "after")``: a ``KillHarness.at`` and ``when``."""


def kill_points(requests: int, changes: int, journal: int) -> list[Point]:
    """The kill points of a run that sends ``requests`` (``changes`` of them change the server)
    and journals ``journal`` entries."""
    points: list[Point] = []
    # Just before and just after every request that changes the server...
    for k in range(1, changes + 1):
        points += [("change", k, "before"), ("change", k, "after")]
    # ...at every third request of the whole run (downloads, reads)...
    for n in range(1, requests + 1, 3):
        points.append(("request", n, "before" if n % 2 else "after"))
    # ...and right after journal writes.
    for j in sorted({1, journal // 3, (2 * journal) // 3}):
        points.append(("journal", j, "after"))
    return points


@dataclass
class Result:
    point: Point
    killed_at: str | None = None
    kill_request: int | None = None
    kill_journal: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def distinct(self) -> tuple[str, int | None, int | None]:
        """(before/after/journal, request number or K, journal entries left): where it landed."""
        if self.point[0] == "journal":
            return "journal", self.point[1], self.kill_journal
        return self.point[2], self.kill_request, self.kill_journal


def resume_case(root: Path, point: Point, expected: dict[str, Any], run_twice: bool) -> Result:
    """Kill execute at ``point``, run it again, compare with ``expected``; maybe run once more."""
    kind, n, when = point
    case = KillHarness(root, at=(kind, n), when=when)
    res = Result(point)
    name = f"{kind} {n} {when}"
    try:
        code, out = case.run_cli(*case.execute_args())
        res.killed_at, res.kill_request, res.kill_journal = case.killed_at, case.kill_request, case.kill_journal
        if case.killed_at is None or code != -signal.SIGKILL:
            res.problems.append(f"{name}: not killed (exit {code}): {out[-600:]}")
        case.at = None
        code, out = case.run_cli(*case.execute_args())
        if code != 0:
            res.problems.append(f"{name}: re-run exit {code}: {out[-1500:]}")
        res.problems += [f"{name}: {v}" for v in case.violations]
        if case.deletes == 0:
            res.problems.append(f"{name}: no DELETE /api/assets reached the fake: no backup was checked")
        got = case.end_state()
        diff = deep_diff(got, expected)
        if diff:
            res.problems.append(f"{name}: differs from an uninterrupted run: {diff}")
        if not run_twice or res.problems:
            return res
        # A second re-run changes nothing.
        changes = case.changes
        code, out = case.run_cli(*case.execute_args())
        if code != 0:
            res.problems.append(f"{name}: second re-run exit {code}: {out[-800:]}")
        if case.changes != changes:
            res.problems.append(f"{name}: a second re-run sent {case.changes - changes} changing requests")
        again = case.end_state()
        diff = deep_diff({**again, "statuses": None}, {**got, "statuses": None})
        diff += deep_diff(again["statuses"], expected["statuses"], ".statuses")
        if diff:
            res.problems.append(f"{name}: a second re-run changed the state: {diff}")
        return res
    finally:
        case.close()


def test_kill_at_many_points_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    ref = KillHarness(tmp_path / "reference")
    try:
        code, out = ref.run_cli(*ref.execute_args())
        assert code == 0, out
        expected = ref.end_state()
        requests, changes, journal = ref.requests, ref.changes, ref.journal_entries()
        assert ref.violations == []
        assert ref.deletes >= 1
        # Never deleted unless the plan says so: a group with an external-library loser stays.
        external = [
            g for g in ref.plan.groups
            if any(g.asset(i).is_external for i in g.losers) and not g.allow_external_delete
        ]
        assert external
        for g in external:
            assert expected["statuses"][g.duplicate_id] == "skipped", g.duplicate_id
            assert not any(expected["server"]["assets"][a.id]["isTrashed"] for a in g.assets)
    finally:
        ref.close()
    trashed = [i for i, a in expected["server"]["assets"].items() if a["isTrashed"]]
    assert len(trashed) >= 10
    assert requests >= 30
    assert changes >= 8

    points = kill_points(requests, changes, journal)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(
            lambda ip: resume_case(tmp_path / f"case{ip[0]:02d}", ip[1], expected, ip[0] % 3 == 0),
            enumerate(points),
        ))

    FIGURES.killed(sum(r.killed_at is not None for r in results))
    problems = [p for r in results for p in r.problems]
    assert problems == []
    distinct = {r.distinct for r in results}
    assert len(distinct) >= 20, sorted(distinct, key=str)
    # Kills landed in every phase: before the first backup, among backups, after a DELETE.
    kinds = {tuple(r.killed_at.split(" ")) for r in results if r.killed_at and r.point[0] != "journal"}
    assert any(path.endswith("/original") for _, _, path in kinds), kinds
    for when in ("before", "after"):
        for method, path in (("DELETE", "/api/assets"), ("PUT", "/api/assets"), ("POST", "/api/stacks"),
                             ("DELETE", "/api/duplicates")):
            assert (when, method, path) in kinds, (when, method, path)
