"""Kills under faults: ``immich-dupes execute`` and ``restore`` SIGKILLed mid-run on a flaky server.

tests/safety/test_safety_resume_points.py kills execute at every step of a clean run. Here the
server misbehaves at the same time (5xx, 429, cut downloads, corrupt bytes, latency): each case
kills the real CLI (a subprocess) just before or just after its k-th request that changes the
server, runs it again on the still-flaky server, then once more on a healthy one. At every
``DELETE /assets`` the fake receives, each asset must already have its backup on disk with the
bytes the server holds; the end state must equal one clean run's. Restore is killed after an
upload and run again: every loser comes back exactly once.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

import pytest
from safety_support import (
    FIGURES,
    KillHarness,
    backup_state,
    client_for,
    deep_diff,
    fault_counts,
    is_changing,
    path_matches,
    reference,
)

from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, Faults
from immich_dupes.fake.http import ApiRequest

pytestmark = pytest.mark.slow

FLAKY = (
    "latency=0ms-1ms,5xx=0.05,429=0.05:retry-after=0,reset=0.1@/assets/*/original,"
    "truncate=0.1@/assets/*/original,corrupt=0.1"
)


@dataclass
class KillCase(KillHarness):
    seed: int
    target: tuple[str, str, int] | None = None
    """Kill at the n-th processed ``(method, path, n)`` that changes the server (a path ending
    in ``/``: a prefix), just ``when`` (``before`` or ``after``) the fake processes it."""
    _: KW_ONLY
    command: str = "execute"
    force: bool = False
    seen: dict[tuple[str, str], int] = field(default_factory=dict)

    def is_target(self, req: ApiRequest, processed: bool) -> bool:
        if not processed or not is_changing(req.method, req.path) or self.target is None:
            return False
        method, path, nth = self.target
        if not path_matches(req, method, path):
            return False
        with self.lock:
            n = self.seen[(method, path)] = self.seen.get((method, path), 0) + 1
        return n == nth

    def argv(self) -> list[str]:
        """The command line run by ``run_cli`` (which adds ``--yes`` and the rates)."""
        if self.command == "restore":
            return ["restore", "-b", str(self.backup)]
        args = self.execute_args()
        return [*args, "--force"] if self.force else args


def _faults(seed: int) -> Faults:
    return Faults.parse(f"{FLAKY},seed={seed}")


def execute_case(
    root: Path, seed: int, target: tuple[str, str, int], when: str
) -> tuple[str | None, list[str]]:
    """Kill execute at (target, when) on a flaky server; re-run flaky; re-run healthy; compare."""
    case = KillCase(root, seed, target, when=when)
    k = f"{target[0]} {target[1]}#{target[2]}"
    problems: list[str] = []
    try:
        case.fake.faults = _faults(seed)
        code, out = case.run_cli(*case.argv())
        if case.killed_at is None:
            problems.append(f"k={k} {when}: not killed (exit {code})")
        elif code != -signal.SIGKILL:
            problems.append(f"k={k} {when}: exit {code} after the kill")
        case.target = None
        code, out = case.run_cli(*case.argv())  # still flaky: may fail groups, never loses one
        if code not in (0, 1, 3) or "Traceback" in out:
            problems.append(f"k={k} {when}: flaky re-run exit {code}: {out[-800:]}")
        FIGURES.add_faults(fault_counts(case.fake, case.fake.faults))
        case.fake.faults = Faults()
        code, out = case.run_cli(*case.argv())
        if code != 0:
            problems.append(f"k={k} {when}: healthy re-run exit {code}: {out[-800:]}")
        problems += [f"k={k} {when}: {v}" for v in case.violations]
        if case.deletes == 0:
            problems.append(f"k={k} {when}: no DELETE /api/assets reached the fake: no backup was checked")
        ref = asyncio.run(reference("v3", (), False))
        diff = deep_diff(case.fake.state(), ref.state)
        if diff:
            problems.append(f"k={k} {when}: the server differs from a clean run's: {diff}")
        diff = deep_diff(backup_state(case.backup), ref.backup)
        if diff:
            problems.append(f"k={k} {when}: the backup differs from a clean run's: {diff}")
        return case.killed_at, problems
    finally:
        case.close()


def _warm() -> None:
    """Build the sample library and the reference run once, before the threads start.

    The pictures are deterministic now (their grain comes from the scene's seed, see
    ``fake.media.render_scene``); building them and the reference here, once, keeps that work
    out of every thread.
    """
    FakeImmich(library="sample")
    asyncio.run(reference("v3", (), False))


def test_execute_killed_on_a_flaky_server_resumes_to_a_clean_runs_end(tmp_path: Path) -> None:
    _warm()
    points = [
        (("PUT", "/api/assets/", 1), "before"),  # consolidating a winner
        (("PUT", "/api/assets/", 4), "after"),
        (("PUT", "/api/assets", 1), "after"),  # a bulk update of winners
        (("PUT", "/api/albums/", 1), "after"),
        (("PUT", "/api/tags/", 1), "before"),
        (("DELETE", "/api/assets", 1), "before"),  # the trash
        (("DELETE", "/api/assets", 1), "after"),
        (("PUT", "/api/assets", 2), "after"),  # clearing duplicate membership
        (("DELETE", "/api/duplicates", 1), "before"),  # dismissing
        (("DELETE", "/api/duplicates", 1), "after"),
        (("POST", "/api/stacks", 1), "before"),  # stacking
        (("POST", "/api/stacks", 1), "after"),
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(
            lambda ip: execute_case(tmp_path / f"case{ip[0]:02d}", 40 + ip[0], *ip[1]),
            enumerate(points),
        ))
    problems = [p for _, ps in results for p in ps]
    kills = [k for k, _ in results if k is not None]
    FIGURES.killed(len(kills))
    assert problems == []
    assert len(kills) == len(points)
    # The kills landed on different steps: downloads are reads, these are the changes.


def restore_case(root: Path, seed: int, k: int) -> tuple[str | None, list[str]]:
    """After execute --force, kill restore after its k-th upload; run it again; all back once."""
    case = KillCase(root, seed, command="restore", force=True)
    target = ("POST", "/api/assets", k)
    problems: list[str] = []
    try:
        async def run_execute() -> None:
            async with client_for(case.fake, url=case.server.url) as c:
                rep = await execute(c, case.plan, ExecuteOptions(backup_dir=case.backup, force=True))
            assert rep.failed == 0
        asyncio.run(run_execute())
        FIGURES.run("execute")
        removed = {i for i in case.before.assets if i not in set(case.fake.asset_ids())}
        assert removed, "execute --force purged nothing"
        case.target, case.when = target, "after"
        case.fake.faults = _faults(seed)
        code, out = case.run_cli(*case.argv())
        if case.killed_at is None:
            problems.append(f"restore k={k}: not killed (exit {code}): {out[-500:]}")
        case.target = None
        case.fake.faults = Faults()
        code, out = case.run_cli(*case.argv())
        if code != 0:
            problems.append(f"restore k={k}: re-run exit {code}: {out[-800:]}")
        live: dict[str, int] = {}
        for i in case.fake.asset_ids():
            a = case.fake.asset(i)
            if not a["isTrashed"]:
                live[a["checksum"]] = live.get(a["checksum"], 0) + 1
        for i in removed:
            if live.get(case.before.sha1[i], 0) != 1:
                problems.append(f"restore k={k}: {i} is back {live.get(case.before.sha1[i], 0)} times")
        return case.killed_at, problems
    finally:
        case.close()


def test_restore_killed_mid_upload_resumes_without_duplicates(tmp_path: Path) -> None:
    _warm()
    points = [1, 2, 4]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda k: restore_case(tmp_path / f"restore{k}", 60 + k, k), points))
    problems = [p for _, ps in results for p in ps]
    kills = [k for k, _ in results if k is not None]
    FIGURES.killed(len(kills))
    assert problems == []
    assert len(kills) == len(points)
    assert all("POST /api/assets" in k for k in kills), kills
