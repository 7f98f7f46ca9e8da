"""Kill-and-resume: ``immich-dupes execute`` SIGKILLed at many points, then run again.

Each case starts a fresh fake Immich (same library, same ids) on a loopback socket, runs the
real CLI in a subprocess, kills it with SIGKILL at a chosen point — just before or just after
the fake processes its N-th request, or right after the journal reaches K entries — and runs
the same command again to completion. The end state (assets, winner metadata, albums, tags,
stacks, backups and manifests) must equal an uninterrupted run's, and every DELETE the fake
receives must find a verified backup of each asset it trashes already on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, Plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import BackupStore, sha1_b64_of
from immich_dupes.engine.journal import read_entries
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import ImmichClient, normalize_base_url

pytestmark = pytest.mark.slow

LIBRARY = "sample"
CLI_TIMEOUT = 60


class _Dropped(Exception):
    """Raised in the fake's handler to drop the request the client was killed at."""


def make_plan() -> Plan:
    """All groups accepted; one dismissed as not duplicates and one stacked, to cover every action."""
    fake = FakeImmich(library=LIBRARY)

    async def go() -> Plan:
        async with ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(),
                                rate_limit=10_000) as c:
            return await analyze(c)

    plan = asyncio.run(go())
    groups = [decide.accept(g) for g in plan.groups]
    by_winner = {g.winner_asset.file_name: i for i, g in enumerate(groups)}
    i = by_winner["s01_large_nogps.jpg"]
    groups[i] = decide.set_action(groups[i], Action.KEEP_ALL)
    i = by_winner["s07_tie_q95_canon.jpg"]
    groups[i] = decide.set_action(groups[i], Action.STACK)
    plan.groups = groups
    plan.refresh_counts()
    return plan


@dataclass
class Case:
    """One fake server, one plan file, one backup directory."""

    root: Path
    plan: Plan
    fake: FakeImmich = field(init=False)
    server: FakeServer = field(init=False)
    plan_path: Path = field(init=False)
    backup: Path = field(init=False)
    requests: int = 0
    changing: int = 0
    violations: list[str] = field(default_factory=list)
    deletes_checked: int = 0
    kill_at: Callable[[int, int | None, str], bool] | None = None
    """(n-th request, k-th changing request or None, "before"/"after") → kill now?"""
    proc: subprocess.Popen[bytes] | None = None
    killed: tuple[Any, ...] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.fake = FakeImmich(library=LIBRARY)
        self.server = FakeServer(self.fake).start()
        plan = self.plan.model_copy(deep=True)
        plan.server_url = normalize_base_url(self.server.url)
        self.plan_path = self.root / "plan.json"
        save_plan(plan, self.plan_path)
        self.backup = self.root / "backup"
        original = self.fake._respond

        def respond(req: ApiRequest, decision: Any) -> Any:
            k: int | None = None
            with self.lock:
                self.requests += 1
                n = self.requests
                if req.method not in ("GET", "HEAD") and req.path != "/api/search/metadata":
                    self.changing += 1
                    k = self.changing
            if req.method == "DELETE" and req.path == "/api/assets":
                self.check_backups(json.loads(req.body)["ids"])
            if self.kill_at is not None and self.kill_at(n, k, "before"):
                self.kill(("before", n, req.method, req.path))
                raise _Dropped
            resp = original(req, decision)
            if self.kill_at is not None and self.kill_at(n, k, "after"):
                self.kill(("after", n, req.method, req.path))
            return resp

        self.fake._respond = respond  # type: ignore[method-assign]

    def check_backups(self, ids: list[str]) -> None:
        """At a DELETE: each asset has its backup on disk, complete and with the right SHA-1."""
        try:
            store = BackupStore.open_existing(self.backup)
            entries = {m_l.asset_id: m_l for m in store.manifests() for m_l in m.losers}
        except Exception as e:  # noqa: BLE001 - reported as a violation
            self.violations.append(f"DELETE with no readable backup: {e}")
            return
        for i in ids:
            entry = entries.get(i)
            if entry is None:
                self.violations.append(f"DELETE of {i} without a manifest entry")
                continue
            path = store.resolve_file(entry.file)
            if not path.is_file():
                self.violations.append(f"DELETE of {i} without its backup file")
                continue
            size, sha1 = sha1_b64_of(path)
            truth = self.fake.file_bytes(i)
            info = self.fake.asset(i)
            if size != len(truth) or (info.get("libraryId") is None and sha1 != info["checksum"]):
                self.violations.append(f"DELETE of {i} with a backup that does not verify")
        self.deletes_checked += 1

    def kill(self, where: tuple[Any, ...]) -> None:
        proc = self.proc
        if proc is None or self.killed is not None:
            return
        self.killed = (*where, self.journal_lines())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def journal_lines(self) -> int:
        return sum(1 for _ in read_entries(self.backup / "journal.jsonl"))

    def start_cli(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ, IMMICH_URL=self.server.url, IMMICH_API_KEY=self.fake.api_key)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "immich_dupes", "execute", "-i", str(self.plan_path),
             "-b", str(self.backup), "--yes", "--rate-limit", "1000", "--concurrent", "4"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        return self.proc

    def run_cli(self) -> tuple[int, str]:
        proc = self.start_cli()
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        return proc.returncode, (out + err).decode("utf-8", "replace")

    def snapshot(self) -> dict[str, Any]:
        assets: dict[str, Any] = {}
        for i in sorted(self.fake.asset_ids()):
            a = self.fake.asset(i)
            e = a.get("exifInfo") or {}
            assets[i] = {
                **{k: a.get(k) for k in ("isTrashed", "isFavorite", "visibility", "livePhotoVideoId", "duplicateId")},
                **{k: e.get(k) for k in ("latitude", "longitude", "dateTimeOriginal", "timeZone", "description", "rating")},
                "tags": sorted(t["id"] for t in a.get("tags") or []),
                "stack": (a.get("stack") or {}).get("primaryAssetId"),
            }
        albums = {al["id"]: sorted(al["assetIds"]) for al in self.fake.albums}
        store = BackupStore.open_existing(self.backup)
        manifests = {m.duplicate_id: _stable(m.model_dump(exclude={"integrity"})) for m in store.manifests()}
        files = {
            p.relative_to(self.backup).as_posix(): sha1_b64_of(p)
            for p in sorted((self.backup / "groups").rglob("*"))
            if p.is_file() and p.name != "manifest.json"  # compared above, minus fake timestamps
        }
        reports = sorted(self.backup.glob("report-*.json"))
        last = json.loads(reports[-1].read_text()) if reports else {"groups": []}
        statuses = {o["duplicate_id"]: o["status"] for o in last["groups"]}
        return {"assets": assets, "albums": albums, "manifests": manifests, "files": files,
                "statuses": statuses}

    def close(self) -> None:
        self.server.stop()


def _stable(data: Any) -> Any:
    """Drop the fake's wall-clock tag timestamps (they differ between two fakes, not between runs)."""
    if isinstance(data, dict):
        return {
            k: _stable(v)
            for k, v in data.items()
            if not (k in ("updatedAt", "createdAt") and "value" in data and "name" in data)
        }
    if isinstance(data, list):
        return [_stable(v) for v in data]
    return data


def kill_at_request(n_target: int, mode: str) -> Callable[[int, int | None, str], bool]:
    return lambda n, _k, when: n == n_target and when == mode


def kill_at_change(k_target: int, mode: str) -> Callable[[int, int | None, str], bool]:
    return lambda _n, k, when: k == k_target and when == mode


def run_killed(case: Case, watch_journal: int | None = None) -> tuple[Any, ...] | None:
    """Start the CLI, let the kill hook (or the journal watcher) kill it; None if it finished first."""
    proc = case.start_cli()
    if watch_journal is not None:
        jpath = case.backup / "journal.jsonl"
        while proc.poll() is None:
            if jpath.exists() and jpath.read_bytes().count(b"\n") >= watch_journal:
                case.kill(("journal", watch_journal, case.requests))
                break
            time.sleep(0.0005)
    proc.communicate(timeout=CLI_TIMEOUT)
    return case.killed


def test_kill_at_many_points_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    plan = make_plan()

    reference = Case(tmp_path / "reference", plan)
    try:
        code, out = reference.run_cli()
        assert code == 0, out
        expected = reference.snapshot()
        total = reference.requests
        total_changes = reference.changing
        journal_total = reference.journal_lines()
        assert reference.violations == []
        assert reference.deletes_checked >= 1
    finally:
        reference.close()
    trashed = [i for i, a in expected["assets"].items() if a["isTrashed"]]
    assert len(trashed) >= 10
    assert total >= 30

    assert total_changes >= 8
    points: list[tuple[str, int]] = []
    # Just before and just after every request that changes the server...
    for k in range(1, total_changes + 1):
        points += [("change-before", k), ("change-after", k)]
    # ...at every other request of the whole run (downloads, reads)...
    for n in range(1, total + 1, 3):
        points.append(("before" if n % 2 else "after", n))
    # ...and right after journal writes.
    for j in sorted({1, journal_total // 3, (2 * journal_total) // 3}):
        points.append(("journal", j))

    def one(i: int, point: tuple[str, int]) -> tuple[tuple[Any, ...] | None, str | None]:
        mode, n = point
        case = Case(tmp_path / f"case{i:02d}", plan)
        try:
            if mode == "journal":
                killed = run_killed(case, watch_journal=n)
            elif mode.startswith("change-"):
                case.kill_at = kill_at_change(n, mode.removeprefix("change-"))
                killed = run_killed(case)
            else:
                case.kill_at = kill_at_request(n, mode)
                killed = run_killed(case)
            case.kill_at = None
            code, out = case.run_cli()
            if code != 0:
                return killed, f"{point}: re-run exit {code}: {out[-1500:]}"
            if case.violations:
                return killed, f"{point}: {case.violations}"
            got = case.snapshot()
            for part in ("assets", "albums", "manifests", "files", "statuses"):
                if got[part] != expected[part]:
                    diff = {k: (got[part].get(k), expected[part].get(k))
                            for k in set(got[part]) | set(expected[part])
                            if got[part].get(k) != expected[part].get(k)}
                    return killed, f"{point}: {part} differ: {str(diff)[:1500]}"
            if i % 3:
                return killed, None
            # A second re-run changes nothing.
            before = case.changing
            code, out = case.run_cli()
            if code != 0:
                return killed, f"{point}: second re-run exit {code}"
            if case.changing != before:
                return killed, f"{point}: a second re-run sent {case.changing - before} changing requests"
            again = case.snapshot()
            if {k: v for k, v in again.items() if k != "statuses"} != {
                k: v for k, v in got.items() if k != "statuses"
            } or again["statuses"] != expected["statuses"]:
                return killed, f"{point}: a second re-run changed the state"
            return killed, None
        finally:
            case.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda ip: one(*ip), enumerate(points)))

    problems = [err for _, err in results if err]
    assert problems == []
    distinct = {(k[0], k[1], k[-1]) for k, _ in results if k is not None}
    assert len(distinct) >= 20, sorted(distinct)
    print(f"{len(distinct)} distinct kill points:", sorted(distinct, key=str))
    # Kills landed in every phase: before the first backup, among backups, after a DELETE.
    kinds = {(k[0], k[2], k[3]) for k, _ in results if k is not None and k[0] != "journal"}
    assert any(path.endswith("/original") for _, _, path in kinds)
    for mode in ("before", "after"):
        for method, path in (("DELETE", "/api/assets"), ("PUT", "/api/assets"), ("POST", "/api/stacks"),
                             ("DELETE", "/api/duplicates")):
            assert (mode, method, path) in kinds, (mode, method, path)
