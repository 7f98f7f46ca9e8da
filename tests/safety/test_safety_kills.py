"""Kills under faults: ``immich-dupes execute`` and ``restore`` SIGKILLed mid-run on a flaky server.

tests/engine/test_engine_resume_kill.py kills execute at every step of a clean run. Here the
server misbehaves at the same time (5xx, 429, cut downloads, corrupt bytes, latency): each case
kills the real CLI (a subprocess) just before or just after its k-th request that changes the
server, runs it again on the still-flaky server, then once more on a healthy one. At every
``DELETE /assets`` the fake receives, each asset must already have its backup on disk with the
bytes the server holds; the end state must equal one clean run's. Restore is killed after an
upload and run again: every loser comes back exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from safety_support import (
    FIGURES,
    backup_state,
    capture,
    client_for,
    deep_diff,
    env_for,
    fault_counts,
    final_state,
    is_changing,
    mixed_plan,
    reference,
)

from immich_dupes.analysis.plan import save_plan
from immich_dupes.engine.backup import BackupStore, sha1_b64_of
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer, Faults
from immich_dupes.fake.faults import FaultDecision
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import normalize_base_url

pytestmark = pytest.mark.slow

FLAKY = (
    "latency=0ms-1ms,5xx=0.05,429=0.05:retry-after=0,reset=0.1@/assets/*/original,"
    "truncate=0.1@/assets/*/original,corrupt=0.1"
)
CLI_TIMEOUT = 90


class _Dropped(Exception):
    """Raised inside the fake to drop the request the client was killed at."""


@dataclass
class KillCase:
    root: Path
    seed: int
    target: tuple[str, str, int] | None = None
    """Kill at the n-th processed ``(method, path, n)`` (a path ending in ``/``: a prefix)..."""
    when: str = "before"
    """...just ``before`` the fake processes it, or just ``after``."""
    command: str = "execute"
    force: bool = False
    fake: FakeImmich = field(init=False)
    server: FakeServer = field(init=False)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    killed_at: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.fake = FakeImmich(library="sample")
        self.server = FakeServer(self.fake).start()
        self.plan = mixed_plan(server_url=normalize_base_url(self.server.url))
        self.plan_path = self.root / "plan.json"
        save_plan(self.plan, self.plan_path)
        self.backup = self.root / "backup"
        self.before = capture(self.fake)
        original = self.fake._respond

        def respond(req: ApiRequest, decision: FaultDecision) -> Any:
            hit = False
            processed = decision.status is None
            if processed and is_changing(req.method, req.path) and self.target is not None:
                method, path, nth = self.target
                if req.method == method and (
                    req.path == path or (path.endswith("/") and req.path.startswith(path))
                ):
                    with self.lock:
                        n = self.seen[(method, path)] = self.seen.get((method, path), 0) + 1
                    hit = n == nth
            if processed and req.method == "DELETE" and req.path == "/api/assets":
                self.check_backups(json.loads(req.body)["ids"])
            if hit and self.when == "before":
                self.kill(f"before {req.method} {req.path}")
                raise _Dropped
            resp = original(req, decision)
            if hit and self.when == "after":
                self.kill(f"after {req.method} {req.path}")
            return resp

        self.fake._respond = respond  # type: ignore[method-assign]

    def check_backups(self, ids: list[str]) -> None:
        """At a DELETE: each asset has its backup on disk, complete, with the server's bytes."""
        try:
            store = BackupStore.open_existing(self.backup)
            entries = {x.asset_id: x for m in store.manifests() for x in m.losers}
        except Exception as e:  # noqa: BLE001 - a violation to report, not a crash of the fake
            self.violations.append(f"DELETE with no readable backup: {e}")
            return
        for i in ids:
            entry = entries.get(i)
            if entry is None:
                self.violations.append(f"DELETE of {i} without a manifest entry")
                continue
            p = store.resolve_file(entry.file)
            if not p.is_file():
                self.violations.append(f"DELETE of {i} without its backup file")
                continue
            if sha1_b64_of(p) != (self.before.sizes[i], self.before.sha1[i]):
                self.violations.append(f"DELETE of {i} with a backup that differs from the server's bytes")

    def kill(self, where: str) -> None:
        proc = self.proc
        if proc is None or self.killed_at is not None:
            return
        self.killed_at = where
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def argv(self) -> list[str]:
        if self.command == "restore":
            return ["restore", "-b", str(self.backup), "--yes", "--rate-limit", "1000", "--concurrent", "4"]
        args = ["execute", "-i", str(self.plan_path), "-b", str(self.backup), "--yes",
                "--rate-limit", "1000", "--concurrent", "4"]
        return [*args, "--force"] if self.force else args

    def run_cli(self) -> tuple[int, str]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "immich_dupes", *self.argv()],
            env=env_for(self.server.url, self.fake.api_key),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        out, err = self.proc.communicate(timeout=CLI_TIMEOUT)
        FIGURES.run(f"{self.command} (CLI)")
        return self.proc.returncode, (out + err).decode("utf-8", "replace")

    def close(self) -> None:
        self.server.stop()


def _faults(seed: int) -> Faults:
    return Faults.parse(f"{FLAKY},seed={seed}")


def execute_case(
    root: Path, seed: int, target: tuple[str, str, int], when: str
) -> tuple[str | None, list[str]]:
    """Kill execute at (target, when) on a flaky server; re-run flaky; re-run healthy; compare."""
    case = KillCase(root, seed, target, when)
    k = f"{target[0]} {target[1]}#{target[2]}"
    problems: list[str] = []
    try:
        case.fake.faults = _faults(seed)
        code, out = case.run_cli()
        if case.killed_at is None:
            problems.append(f"k={k} {when}: not killed (exit {code})")
        elif code != -signal.SIGKILL:
            problems.append(f"k={k} {when}: exit {code} after the kill")
        case.target = None
        code, out = case.run_cli()  # still flaky: may fail groups, never loses one
        if code not in (0, 1, 3) or "Traceback" in out:
            problems.append(f"k={k} {when}: flaky re-run exit {code}: {out[-800:]}")
        FIGURES.add_faults(fault_counts(case.fake, case.fake.faults))
        case.fake.faults = Faults()
        code, out = case.run_cli()
        if code != 0:
            problems.append(f"k={k} {when}: healthy re-run exit {code}: {out[-800:]}")
        problems += [f"k={k} {when}: {v}" for v in case.violations]
        ref = asyncio.run(reference("v3", (), False))
        diff = deep_diff(final_state(case.fake), ref.state)
        if diff:
            problems.append(f"k={k} {when}: the server differs from a clean run's: {diff}")
        diff = deep_diff(backup_state(case.backup), ref.backup)
        if diff:
            problems.append(f"k={k} {when}: the backup differs from a clean run's: {diff}")
        return case.killed_at, problems
    finally:
        case.close()


def _warm() -> None:
    """Build the sample library once before the threads start.

    The fake renders its pictures with ``Image.effect_noise`` (the C library's rand(), not the
    scene's seed) behind an ``lru_cache`` that is no lock: fakes first built in parallel threads
    get other bytes than the reference (reported to the lead). Built once here, every fake of
    this process shares the same bytes.
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
        code, out = case.run_cli()
        if case.killed_at is None:
            problems.append(f"restore k={k}: not killed (exit {code}): {out[-500:]}")
        case.target = None
        case.fake.faults = Faults()
        code, out = case.run_cli()
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
