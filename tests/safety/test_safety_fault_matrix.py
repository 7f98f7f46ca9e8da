"""The fault matrix: analyze, execute, verify and restore under every fault and under combinations.

Each scenario runs on a fresh fake Immich (sample library, every action: resolve, keep_all,
stack) with the same all-accepted plan:

1. analyze under the faults: the same groups and decisions as a clean analysis, or an error
   naming what went wrong; never a request that changes the server;
2. someone else changes the library (trashes a winner or a loser, edits one, purges one, loses
   an original) — the plan is not told;
3. execute under the faults (once or several times), and after each run: nothing we trashed
   or deleted lacks a verified backup (size and SHA-1 of the bytes the fake held), each
   trashed loser's manifest holds the metadata, albums and tags it had, every group has an
   outcome and every failure a one-line reason;
4. verify under the faults: a report or an error, never a change;
5. faults off, execute again: the server, the backups and the outcomes equal those of one
   clean run on a fresh fake with the same outside changes, and verify agrees with it;
6. restore under the faults, then without: every loser is back, with its bytes, metadata,
   albums and tags, once (no duplicate uploads).

Most scenarios use the in-process transport (fast); the ``socket-*`` ones run over a real
loopback FakeServer, where resets are TCP RSTs and truncated bodies really stop short.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from safety_support import (
    ALL_CHANGES,
    FIGURES,
    Before,
    arrivals,
    backup_state,
    capture,
    change_library,
    changing,
    check_backups,
    check_manifests,
    check_outcomes,
    client_for,
    deep_diff,
    fault_counts,
    group_by_winner,
    hook_requests,
    metadata_of,
    mixed_plan,
    reference,
)

from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.execute import ExecuteOptions, ExecuteReport, execute
from immich_dupes.engine.restore import RestoreReport, restore
from immich_dupes.engine.verify import verify
from immich_dupes.fake import FakeImmich, FakeServer, Faults
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import normalize_base_url
from immich_dupes.immich.errors import ImmichError

COMBO = "latency=0ms-2ms,5xx=0.1,429=0.1:retry-after=0,reset=0.03,truncate=0.03,corrupt=0.15"


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    spec: str = ""
    changes: tuple[str, ...] = ()
    force: bool = False
    profile: str = "v3"
    socket: bool = False
    max_retries: int = 5
    down_at: str | None = None
    """``"METHOD path-suffix"``: the server goes away at the first such request..."""
    down_for: float = 0.0
    """...for this many seconds, then comes back."""
    faulty_runs: int = 1
    expect_trouble: bool = False
    """The faults are heavy enough that some group must fail or the run must stop."""


SCENARIOS = [
    # one fault at a time
    Scenario("latency", "latency=1ms-5ms,seed=1"),
    Scenario("5xx", "5xx=0.25,seed=2"),
    Scenario("503", "503=0.3,seed=3"),
    Scenario("5xx-beyond-retries", "5xx=0.5,seed=4", max_retries=1, expect_trouble=True),
    Scenario("429", "429=0.3:retry-after=0,seed=5"),
    Scenario("429-retry-after-1s", "429=0.3:retry-after=1@/assets/*/original,seed=6"),
    Scenario("reset", "reset=0.08,seed=7"),
    Scenario("reset-downloads", "reset=0.4@/assets/*/original,seed=8"),
    Scenario("truncate", "truncate=0.08,seed=9"),
    Scenario("truncate-downloads", "truncate=0.5@/assets/*/original,seed=10"),
    Scenario("corrupt-some", "corrupt=0.4,seed=11", expect_trouble=True),
    Scenario("corrupt-all", "corrupt=1", expect_trouble=True),
    Scenario("down-at-start", "down=30s", expect_trouble=True),
    Scenario("down-briefly-at-trash", down_at="DELETE /assets", down_for=0.02),
    Scenario("down-during-downloads", down_at="GET /original", down_for=30, max_retries=2,
             expect_trouble=True),
    Scenario("down-during-trash", down_at="DELETE /assets", down_for=30, max_retries=2,
             expect_trouble=True),
    Scenario("down-during-consolidate", down_at="PUT /assets", down_for=30, max_retries=1,
             expect_trouble=True),
    # someone else changes the library between analyze and execute
    *(Scenario(f"outside-{c}", changes=(c,)) for c in ALL_CHANGES),
    # combinations
    Scenario("combo", COMBO + ",seed=21"),
    Scenario("combo-outside-changes", COMBO + ",seed=22", changes=ALL_CHANGES),
    Scenario("combo-force", COMBO + ",seed=23", force=True),
    Scenario("combo-force-outside-changes", COMBO + ",seed=24", changes=ALL_CHANGES, force=True),
    Scenario("combo-v1", COMBO + ",seed=25", profile="v1"),
    Scenario("combo-v2", COMBO + ",seed=26", profile="v2"),
    Scenario("combo-three-faulty-runs", "5xx=0.3,reset=0.1,truncate=0.1,corrupt=0.3,seed=27",
             faulty_runs=3, max_retries=1, expect_trouble=True),
    Scenario("combo-down-mid-run", COMBO + ",seed=28", down_at="PUT /assets", down_for=30,
             max_retries=1, changes=("edit_loser", "trash_winner"), expect_trouble=True),
    # over a real socket
    Scenario("socket-reset-truncate", "reset=0.1,truncate=0.1,seed=31", socket=True),
    Scenario("socket-combo-down", COMBO + ",seed=34", socket=True, down_at="DELETE /assets",
             down_for=0.05),
    Scenario("socket-force", "reset=0.2@/assets/*/original,truncate=0.2@/assets/*/original,5xx=0.1,seed=33",
             socket=True, force=True),
    Scenario("socket-down-long", "latency=1ms", socket=True, down_at="GET /original", down_for=30,
             max_retries=1, expect_trouble=True),
]


# --------------------------------------------------------------------------- one scenario


class DownSwitch:
    """Takes the server away at the first matching request, for ``seconds``."""

    def __init__(self, fake: FakeImmich, sc: Scenario) -> None:
        self.fake = fake
        self.sc = sc
        self.armed = False
        self.fired = 0
        method, _, suffix = (sc.down_at or "").partition(" ")
        self.method = method
        self.suffix = suffix
        hook_requests(fake, self)

    def __call__(self, req: ApiRequest) -> None:
        if not self.armed or req.method != self.method:
            return
        if self.suffix == "/original" and not req.path.endswith("/original"):
            return
        if self.suffix != "/original" and req.path != "/api" + self.suffix:
            return
        self.armed = False
        self.fired += 1
        spec = ",".join(x for x in (self.sc.spec, f"down={self.sc.down_for}s") if x)
        self.fake.faults = Faults.parse(spec)


@dataclass
class Tally:
    problems: list[str]
    faults: Counter[str]
    trouble: int = 0
    """Failed groups plus runs stopped by an error."""

    def one_line(self, what: str, e: BaseException, key: str) -> None:
        text = str(e)
        if not text.strip() or "\n" in text or key in text:
            self.problems.append(f"{what}: error is not one clean line: {text!r}")


async def run_scenario(sc: Scenario, tmp: Path) -> Tally:
    fake = FakeImmich(library="sample", profile=sc.profile)
    server = FakeServer(fake).start() if sc.socket else None
    url = server.url if server is not None else None
    try:
        return await _run(sc, tmp, fake, url)
    finally:
        if server is not None:
            server.stop()


async def _run(sc: Scenario, tmp: Path, fake: FakeImmich, url: str | None) -> Tally:
    plan = mixed_plan(sc.profile, normalize_base_url(url) if url else None)
    faults = Faults.parse(sc.spec)
    t = Tally([], Counter())
    key = fake.api_key
    backup = tmp / "backup"
    switch = DownSwitch(fake, sc) if sc.down_at else None

    def client(retries: int | None = None) -> Any:
        return client_for(fake, url=url, max_retries=sc.max_retries if retries is None else retries)

    def faults_on() -> int:
        fake.faults = faults
        if switch is not None:
            switch.armed = True
        return len(fake.request_log)

    def faults_off(since: int) -> None:
        t.faults.update(fault_counts(fake, fake.faults, since))
        if switch is not None:
            switch.armed = False
        fake.faults = Faults()

    seen = arrivals(fake)

    def no_changes(what: str, since: int) -> None:
        changed = changing(seen[since:])
        if changed:
            t.problems.append(f"{what} changed the server: {changed[:5]}")

    # 1. analyze under the faults
    since = faults_on()
    arrived = len(seen)
    try:
        async with client() as c:
            got = await analyze(c)
        FIGURES.run("analyze")
        want = {g.duplicate_id: (g.winner, g.losers, [a.model_dump() for a in g.assets]) for g in plan.groups}
        have = {g.duplicate_id: (g.winner, g.losers, [a.model_dump() for a in g.assets]) for g in got.groups}
        if have != want:
            t.problems.append("analyze under faults gave a different plan than a clean analysis")
    except ImmichError as e:
        FIGURES.run("analyze")
        t.trouble += 1
        t.one_line("analyze", e, key)
    no_changes("analyze", arrived)
    faults_off(since)

    # 2. someone else changes the library; what the fake holds now is what must be kept
    exempt: set[str] = set()
    for change in sc.changes:
        exempt |= change_library(fake, plan, change)
    t.faults["outside change"] += len(sc.changes)
    before = capture(fake)

    # 3. execute under the faults
    options = ExecuteOptions(backup_dir=backup, force=sc.force)
    for _ in range(sc.faulty_runs):
        since = faults_on()
        try:
            async with client() as c:
                rep = await execute(c, plan, options)
            t.problems += check_outcomes(plan, rep, fake, before)
            t.trouble += rep.failed
        except ImmichError as e:
            t.trouble += 1
            t.one_line("execute", e, key)
        FIGURES.run("execute")
        faults_off(since)
        _check_kept(t, fake, before, backup, exempt)

    # 4. verify under the faults: a report or an error, never a change
    if backup.exists():
        since = faults_on()
        arrived = len(seen)
        try:
            async with client() as c:
                await verify(c, plan, backup_dir=backup)
        except ImmichError as e:
            t.one_line("verify", e, key)
        FIGURES.run("verify")
        no_changes("verify", arrived)
        faults_off(since)

    # 5. faults off: execute again finishes the job, as one clean run would have
    async with client() as c:
        final = await execute(c, plan, options)
    FIGURES.run("execute")
    t.problems += check_outcomes(plan, final, fake, before)
    _check_kept(t, fake, before, backup, exempt)
    if final.report_path is None:
        t.problems.append("no report written")
    else:
        written = json.loads(final.report_path.read_text())
        if sorted(o["duplicate_id"] for o in written["groups"]) != sorted(g.duplicate_id for g in plan.groups):
            t.problems.append("the report does not list every group")
    ref = await reference(sc.profile, sc.changes, sc.force)
    _compare(t, "final statuses", {o.duplicate_id: o.status for o in final.outcomes}, ref.statuses)
    _compare(t, "server state", fake.state(), ref.state)
    _compare(t, "backup", backup_state(backup), ref.backup)
    async with client() as c:
        vrep = await verify(c, plan, backup_dir=backup)
    FIGURES.run("verify")
    _compare(t, "verify anomalies", sorted((f.duplicate_id, f.field) for f in vrep.anomalies), ref.anomalies)

    # 6. restore under the faults, then without: every loser back, once, as it was
    removed = _removed_by_us(final, before, exempt)
    since = faults_on()
    try:
        async with client() as c:
            await restore(c, backup)
    except ImmichError as e:
        t.one_line("restore", e, key)
    FIGURES.run("restore")
    faults_off(since)
    async with client() as c:
        rrep = await restore(c, backup)
    FIGURES.run("restore")
    if rrep.failed:
        t.problems.append(f"clean restore failed: {[a.detail for a in rrep.actions if a.action == 'failed']}")
    _check_restored(t, fake, before, rrep, removed, sc.force)
    if switch is not None and switch.fired == 0:
        t.problems.append(f"the server never went away at {sc.down_at}")
    return t


def _removed_by_us(rep: ExecuteReport, before: Before, exempt: set[str]) -> set[str]:
    return {i for o in rep.outcomes if o.status == "done" for i in o.trashed} - exempt - before.trashed


def _check_kept(t: Tally, fake: FakeImmich, before: Before, backup: Path, exempt: set[str]) -> None:
    checked, problems = check_backups(fake, before, backup, exempt)
    FIGURES.checked(checked, len({p.split(" ")[0] for p in problems}))
    t.problems += problems
    t.problems += check_manifests(fake, before, backup, exempt)


def _compare(t: Tally, what: str, got: Any, want: Any) -> None:
    if got == want:
        return
    t.problems.append(f"{what} differs from a clean run: " + "; ".join(deep_diff(got, want)))


def _instant(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check_restored(
    t: Tally, fake: FakeImmich, before: Before, rrep: RestoreReport, removed: set[str], force: bool
) -> None:
    new_id = {a.asset_id: a.new_asset_id or a.asset_id for a in rrep.actions}
    live_checksums: Counter[str | None] = Counter()
    for i in fake.asset_ids():
        try:
            a = fake.asset(i)
        except KeyError:
            continue
        if not a.get("isTrashed"):
            live_checksums[a.get("checksum")] += 1
    albums: dict[str, set[str]] = {}
    for al in fake.albums:
        for i in al["assetIds"]:
            albums.setdefault(i, set()).add(al["id"])
    for old in sorted(removed):
        now_id = new_id.get(old)
        if now_id is None:
            t.problems.append(f"restore did not consider {old}")
            continue
        try:
            now = fake.asset(now_id)
        except KeyError:
            t.problems.append(f"{old} is not back after restore")
            continue
        if now.get("isTrashed"):
            t.problems.append(f"{old} is still trashed after restore")
        if now.get("checksum") != before.sha1.get(old):
            t.problems.append(f"{old} came back with other bytes")
        if live_checksums[before.sha1.get(old)] != 1:
            t.problems.append(f"{old}: {live_checksums[before.sha1.get(old)]} live copies after restore")
        want, got = metadata_of(before.assets[old]), metadata_of(now)
        want["dateTimeOriginal"] = _instant(want["dateTimeOriginal"])
        got["dateTimeOriginal"] = _instant(got["dateTimeOriginal"])
        if want["livePhotoVideoId"]:
            want["livePhotoVideoId"] = new_id.get(want["livePhotoVideoId"], want["livePhotoVideoId"])
        if force:
            # A re-upload gets its zone re-derived by the server (GPS position or the offset).
            want.pop("timeZone")
            got.pop("timeZone")
        for k in want:
            if got[k] != want[k]:
                t.problems.append(f"{old} restored with {k}={got[k]!r}, had {want[k]!r}")
        if albums.get(now_id, set()) != before.albums.get(old, set()):
            t.problems.append(f"{old} restored into albums {albums.get(now_id)}, was in {before.albums.get(old)}")
        tags = {x["id"] for x in now.get("tags") or []}
        if tags != before.tags.get(old, set()):
            t.problems.append(f"{old} restored with tags {tags}, had {before.tags.get(old)}")


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("sc", [pytest.param(sc, id=sc.name) for sc in SCENARIOS])
async def test_fault_scenario(sc: Scenario, tmp_path: Path) -> None:
    t = await run_scenario(sc, tmp_path)
    FIGURES.add_faults(t.faults)
    with FIGURES.lock:
        FIGURES.scenarios += 1
    assert t.problems == []
    injected = sum(n for k, n in t.faults.items() if k != "outside change")
    if sc.spec or sc.down_at:
        assert injected > 0, f"no fault was injected: {t.faults}"
    if sc.expect_trouble:
        assert t.trouble > 0, "faults this heavy must make some group fail (or the run stop)"


async def test_client_waits_for_retry_after(tmp_path: Path) -> None:
    """A 429 with ``Retry-After: 1`` is asked again no sooner than a second later."""
    fake = FakeImmich(library="sample")
    plan = mixed_plan()
    fake.faults = Faults.parse("429=0.5:retry-after=1@/assets/*/original,seed=6")
    async with client_for(fake) as c:
        rep = await execute(c, plan, ExecuteOptions(backup_dir=tmp_path / "b"))
    FIGURES.run("execute")
    FIGURES.add_faults(fault_counts(fake, fake.faults))
    assert rep.failed == 0
    log = fake.request_log
    gaps = []
    for n, r in enumerate(log):
        if r.fault == "429":
            nxt = next(x for x in log[n + 1 :] if x.path == r.path and x.method == r.method)
            gaps.append(nxt.t_start - r.t_end)
    assert gaps, "no 429 was injected"
    # asyncio may wake a timer up to one clock tick early; the floor is still ~1 s.
    assert min(gaps) >= 0.95, gaps


def test_every_fault_kind_is_in_the_matrix() -> None:
    """The matrix covers each fault the fake can inject, alone and combined, and the outside changes."""
    kinds: Counter[str] = Counter()
    for sc in SCENARIOS:
        f = Faults.parse(sc.spec)
        kinds["latency"] += bool(f.latency)
        kinds["5xx"] += bool(f.error_rate)
        kinds["429"] += bool(f.throttle_rate)
        kinds["reset"] += bool(f.reset_rate)
        kinds["truncate"] += bool(f.truncate_rate)
        kinds["corrupt"] += bool(f.corrupt_rate or f.corrupt_ids)
        kinds["down"] += bool(f.down_for or sc.down_at)
        kinds["socket"] += sc.socket
        kinds["force"] += sc.force
        for c in sc.changes:
            kinds[c] += 1
    for k in ("latency", "5xx", "429", "reset", "truncate", "corrupt", "down", "socket", "force", *ALL_CHANGES):
        assert kinds[k] >= 2, (k, kinds)



async def test_the_checks_catch_a_loss_and_a_wrong_manifest(tmp_path: Path) -> None:
    """The invariant checks are not vacuous: a trash without backup and an edited manifest show."""
    fake = FakeImmich(library="sample")
    plan = mixed_plan()
    before = capture(fake)
    backup = tmp_path / "backup"
    async with client_for(fake) as c:
        rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
    assert check_outcomes(plan, rep, fake, before) == []
    assert check_backups(fake, before, backup)[1] == []
    assert check_manifests(fake, before, backup) == []

    # A winner trashed behind the tool's back has no backup: reported.
    winner = group_by_winner(plan, "s13_large_timeline.jpg").winner
    fake.trash_asset(winner)
    checked, problems = check_backups(fake, before, backup)
    assert any(winner in p and "without a manifest entry" in p for p in problems)

    # A manifest whose record of a loser lost its favorite flag: reported.
    from immich_dupes.engine.backup import BackupStore

    g = group_by_winner(plan, "s11_large_plain.jpg")
    store = BackupStore.open_existing(backup)
    m = store.read_manifest(g.duplicate_id)
    assert m is not None
    m.losers[0].asset["isFavorite"] = not m.losers[0].asset.get("isFavorite")
    m.losers[0].albums = []
    store.write_manifest(m)
    problems = check_manifests(fake, before, backup, exempt={winner})
    assert any("isFavorite" in p for p in problems)
    assert any("albums" in p for p in problems)

    # A "done" group whose loser is not trashed: reported.
    fake.faults = Faults()
    rep.outcomes[0].status = "done"
    loser = plan.group(rep.outcomes[0].duplicate_id).losers[0]
    async with client_for(fake) as c:
        await c.restore_from_trash([loser])
    assert any("is not trashed" in p for p in check_outcomes(plan, rep, fake, before))
