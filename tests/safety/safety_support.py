"""Shared helpers of the safety suite: clients on the fake, state snapshots, invariant checks, figures.

The invariants checked after every run (``check_run``) are the promises of DESIGN §8 that
matter when something goes wrong:

* no asset is trashed or deleted by us unless the backup directory holds its original, with
  the size and SHA-1 of the bytes the fake held (``check_backups``);
* each trashed loser's manifest agrees with what the fake held right before the run:
  favorite, rating, description, GPS, date and zone, visibility, live-photo link, albums, tags
  (``check_manifests``);
* every group has an outcome; every failure names its group and gives a plain reason
  (``check_outcomes``).

``FIGURES`` adds up what the suite did (faults injected by kind, runs, kills, bad inputs
refused, assets checked and lost); ``conftest.py`` prints it at the end of the session and,
with ``SAFETY_FIGURES=path``, writes it as JSON for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, Plan, save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import BackupError, BackupStore, GroupManifest, sha1_b64_of
from immich_dupes.engine.execute import ExecuteOptions, ExecuteReport, execute
from immich_dupes.engine.journal import read_entries
from immich_dupes.engine.verify import verify
from immich_dupes.fake import FakeImmich, FakeServer, Faults
from immich_dupes.fake.faults import FaultDecision
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import ImmichClient, normalize_base_url

FAKE_URL = "http://fake-immich"
READ_ONLY_POSTS = frozenset(
    {"/api/search/metadata", "/api/assets/bulk-upload-check", "/api/download/info"}
)
REPO = Path(__file__).resolve().parents[2]


def is_changing(method: str, path: str) -> bool:
    """Would this request change the server? (Some POSTs are searches.)"""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not (method == "POST" and path in READ_ONLY_POSTS)


def changing_requests(fake: FakeImmich, since: int = 0) -> list[str]:
    return [
        f"{r.method} {r.path}" for r in fake.request_log[since:] if is_changing(r.method, r.path)
    ]


# --------------------------------------------------------------------------- figures


@dataclass
class Figures:
    """What the safety suite did, summed over the session."""

    faults: Counter[str] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    scenarios: int = 0
    kills: int = 0
    bad_inputs: Counter[str] = field(default_factory=Counter)
    distinct_inputs: dict[str, set[str]] = field(default_factory=dict)
    assets_checked: int = 0
    assets_lost: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_faults(self, counts: Counter[str]) -> None:
        with self.lock:
            self.faults.update(counts)

    def run(self, command: str, n: int = 1) -> None:
        with self.lock:
            self.runs[command] += n

    def refused(self, kind: str, what: str) -> None:
        """One refusal checked of the bad input ``what`` (the same input may go to several commands)."""
        with self.lock:
            self.bad_inputs[kind] += 1
            self.distinct_inputs.setdefault(kind, set()).add(what)

    def killed(self, n: int = 1) -> None:
        with self.lock:
            self.kills += n

    def checked(self, assets: int, lost: int) -> None:
        with self.lock:
            self.assets_checked += assets
            self.assets_lost += lost

    def to_json(self) -> dict[str, Any]:
        return {
            "faults_injected": dict(sorted(self.faults.items())),
            "faults_injected_total": sum(self.faults.values()),
            "fault_scenarios": self.scenarios,
            "runs": dict(sorted(self.runs.items())),
            "runs_total": sum(self.runs.values()),
            "kills_survived": self.kills,
            "bad_inputs": {k: len(v) for k, v in sorted(self.distinct_inputs.items())},
            "bad_inputs_total": sum(len(v) for v in self.distinct_inputs.values()),
            "refusals_checked": dict(sorted(self.bad_inputs.items())),
            "refusals_checked_total": sum(self.bad_inputs.values()),
            "assets_checked": self.assets_checked,
            "assets_lost": self.assets_lost,
        }

    def table(self) -> str:
        d = self.to_json()
        rows = [
            ("fault scenarios", str(d["fault_scenarios"])),
            ("faults injected", f"{d['faults_injected_total']} "
             + ", ".join(f"{k} {v}" for k, v in d["faults_injected"].items())),
            ("runs", f"{d['runs_total']} " + ", ".join(f"{k} {v}" for k, v in d["runs"].items())),
            ("kills survived", str(d["kills_survived"])),
            ("bad inputs refused (distinct)", f"{d['bad_inputs_total']} "
             + ", ".join(f"{k} {v}" for k, v in d["bad_inputs"].items())),
            ("refusals checked", f"{d['refusals_checked_total']} "
             + ", ".join(f"{k} {v}" for k, v in d["refusals_checked"].items())),
            ("assets checked against backups", str(d["assets_checked"])),
            ("assets lost", str(d["assets_lost"])),
        ]
        return "\n".join(f"  {k:<32} {v}" for k, v in rows)


FIGURES = Figures()


def fault_counts(fake: FakeImmich, faults: Faults, since: int = 0) -> Counter[str]:
    """Faults the fake injected into ``request_log[since:]``, by kind.

    Status faults, resets, truncations and downtime are recorded by the fake; latency and
    corrupted downloads are not, so they are recomputed from the spec.
    """
    out: Counter[str] = Counter()
    for r in fake.request_log[since:]:
        if r.fault is None:
            pass
        elif r.fault in ("500", "502", "503", "504"):
            out["5xx"] += 1
        else:
            out[r.fault] += 1
        if faults.latency and faults.latency[1] > 0 and faults.applies("latency", r.path) and r.fault != "down":
            out["latency"] += 1
        if r.method == "GET" and r.path.endswith("/original") and r.status == 200:
            asset_id = r.path.split("/")[-2]
            if faults.corrupts(asset_id, r.path):
                out["corrupt"] += 1
    return out


# --------------------------------------------------------------------------- clients and plans


def client_for(
    fake: FakeImmich,
    *,
    url: str | None = None,
    key: str | None = None,
    max_retries: int = 5,
    backoff_base: float = 0.01,
    backoff_cap: float = 0.1,
    concurrency: int = 6,
) -> ImmichClient:
    """A fast client: on the in-process transport, or on ``url`` (a FakeServer) when given."""
    return ImmichClient(
        url or FAKE_URL,
        key or fake.api_key,
        transport=None if url else fake.transport(),
        rate_limit=10_000,
        concurrency=concurrency,
        max_retries=max_retries,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
    )


@functools.lru_cache(maxsize=8)
def _base_plan_json(library: str, profile: str) -> str:
    fake = FakeImmich(library=library, profile=profile)

    async def go() -> Plan:
        async with client_for(fake) as c:
            return await analyze(c)

    # A thread of its own: callers may be inside a running event loop (async tests).
    with ThreadPoolExecutor(max_workers=1) as pool:
        plan = pool.submit(asyncio.run, go()).result()
    plan.groups = [decide.accept(g) for g in plan.groups]
    plan.refresh_counts()
    return plan.model_dump_json()


def base_plan(library: str = "sample", profile: str = "v3", server_url: str | None = None) -> Plan:
    """Every group of the library accepted as analyze decided (a fresh copy each call).

    The fake's ids are deterministic, so the plan fits every fresh fake of the same library.
    """
    plan = Plan.model_validate_json(_base_plan_json(library, profile))
    if server_url is not None:
        plan.server_url = server_url
    return plan


def mixed_plan(profile: str = "v3", server_url: str | None = None) -> Plan:
    """The sample plan with every action: one group dismissed as not duplicates, one stacked."""
    plan = base_plan("sample", profile, server_url)
    groups = list(plan.groups)
    for i, g in enumerate(groups):
        if g.winner_asset.file_name == "s01_large_nogps.jpg":
            groups[i] = decide.set_action(g, Action.KEEP_ALL)
        elif g.winner_asset.file_name == "s07_tie_q95_canon.jpg":
            groups[i] = decide.set_action(g, Action.STACK)
    plan.groups = groups
    plan.refresh_counts()
    return plan


def group_by_winner(plan: Plan, file_name: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == file_name)


def resolve_groups(plan: Plan) -> list[GroupPlan]:
    """Groups execute resolves (external losers stay untouched without a review that allows it)."""
    return [
        g
        for g in plan.groups
        if g.action is Action.RESOLVE and not any(g.asset(i).is_external for i in g.losers)
    ]


def hook_requests(fake: FakeImmich, hook: Callable[[ApiRequest], None]) -> None:
    """Call ``hook(request)`` before the fake processes each request (in-process and sockets)."""
    original = fake._respond

    def wrapped(req: ApiRequest, decision: Any) -> Any:
        hook(req)
        return original(req, decision)

    fake._respond = wrapped  # type: ignore[method-assign]


def arrivals(fake: FakeImmich) -> list[str]:
    """``"METHOD /path"`` of every request as it reaches the fake, before it is processed.

    Unlike ``request_log`` (written once the answer is sent, so on a socket a client can see
    its answer first), this list already holds a request when the client gets the answer.
    Requests turned away while the server is "down" are not processed and not listed.
    """
    got: list[str] | None = getattr(fake, "_safety_arrivals", None)
    if got is None:
        seen: list[str] = []
        hook_requests(fake, lambda req: seen.append(f"{req.method} {req.path}"))
        fake._safety_arrivals = seen  # type: ignore[attr-defined]
        got = seen
    return got


def changing(requests: Iterable[str]) -> list[str]:
    return [r for r in requests if is_changing(*r.split(" ", 1))]


# --------------------------------------------------------------------------- snapshots


def _sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


@dataclass
class Before:
    """What the fake held right before a run: full asset JSON, bytes, albums and tags per asset."""

    assets: dict[str, dict[str, Any]]
    sizes: dict[str, int]
    sha1: dict[str, str]
    albums: dict[str, set[str]]
    tags: dict[str, set[str]]

    @property
    def trashed(self) -> set[str]:
        return {i for i, a in self.assets.items() if a.get("isTrashed")}


def capture(fake: FakeImmich) -> Before:
    assets: dict[str, dict[str, Any]] = {}
    sizes: dict[str, int] = {}
    sha1: dict[str, str] = {}
    for i in fake.asset_ids():
        try:
            assets[i] = fake.asset(i)
        except KeyError:
            continue
        try:
            data = fake.file_bytes(i)
        except KeyError:
            continue
        sizes[i] = len(data)
        sha1[i] = _sha1_b64(data)
    albums: dict[str, set[str]] = {i: set() for i in assets}
    for al in fake.albums:
        for i in al["assetIds"]:
            albums.setdefault(i, set()).add(al["id"])
    tags = {i: {t["id"] for t in a.get("tags") or []} for i, a in assets.items()}
    return Before(assets, sizes, sha1, albums, tags)


def gone_or_trashed(fake: FakeImmich, before: Before) -> set[str]:
    """Assets present and not trashed before that are now trashed, deleted or purged."""
    out: set[str] = set()
    for i, a in before.assets.items():
        if a.get("isTrashed"):
            continue
        try:
            now = fake.asset(i)
        except KeyError:
            out.add(i)
            continue
        if now.get("isTrashed"):
            out.add(i)
    return out


def _stable(data: Any, asset_times: bool = False) -> Any:
    """Drop the fake's wall-clock timestamps: those of tags, and ``updatedAt`` of assets (an edit
    made by a test stamps the time of day) unless ``asset_times``; they differ between two fakes,
    not between runs."""
    if isinstance(data, dict):
        return {
            k: _stable(v, asset_times)
            for k, v in data.items()
            if not (k in ("updatedAt", "createdAt") and "value" in data and "name" in data)
            and not (k == "updatedAt" and "originalFileName" in data and not asset_times)
        }
    if isinstance(data, list):
        return [_stable(v, asset_times) for v in data]
    return data


def backup_state(backup: Path, *, asset_times: bool = False) -> dict[str, Any]:
    """Manifests (minus their integrity field) and every file under groups/ with its SHA-1.

    ``asset_times``: keep each asset's ``updatedAt`` in the manifests (two fresh fakes that
    nobody edited agree on it).
    """
    store = BackupStore.open_existing(backup)
    manifests = {
        m.duplicate_id: _stable(m.model_dump(mode="json", exclude={"integrity"}), asset_times)
        for m in store.manifests()
    }
    files = {
        p.relative_to(backup).as_posix(): sha1_b64_of(p)
        for p in sorted((backup / "groups").rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    return {"manifests": manifests, "files": files}


# --------------------------------------------------------------------------- outside changes

ALL_CHANGES = ("trash_winner", "trash_loser", "edit_loser", "edit_winner", "purge_loser", "lose_file")



def change_library(fake: FakeImmich, plan: Plan, name: str) -> set[str]:
    """Change the library as another person would; returns the assets they trashed or purged."""
    if name == "trash_winner":
        g = group_by_winner(plan, "s04_large_nodesc.jpg")
        fake.trash_asset(g.winner)
        return {g.winner}
    if name == "trash_loser":
        g = group_by_winner(plan, "s05_a_large_dateonly.jpg")
        fake.trash_asset(g.losers[0])
        return {g.losers[0]}
    if name == "edit_loser":
        g = group_by_winner(plan, "s11_large_plain.jpg")
        fake.update_asset_metadata(
            g.losers[0], isFavorite=True, rating=3, description="edited by someone else after the plan"
        )
        return set()
    if name == "edit_winner":
        g = group_by_winner(plan, "s16_large_sunset.jpg")
        fake.update_asset_metadata(g.winner, description="winner edited elsewhere", latitude=10.5, longitude=20.25)
        return set()
    if name == "purge_loser":
        g = group_by_winner(plan, "s12_large_plain.jpg")
        fake.purge(g.losers[0])
        return {g.losers[0]}
    if name == "lose_file":
        g = group_by_winner(plan, "s19_large_rome.jpg")
        fake.remove_file(g.losers[0])
        return set()
    raise ValueError(name)


# --------------------------------------------------------------------------- the clean reference


@dataclass
class Reference:
    state: dict[str, Any]
    backup: dict[str, Any]
    statuses: dict[str, str]
    anomalies: list[tuple[str, str]]


_REFERENCES: dict[tuple[str, tuple[str, ...], bool], Reference] = {}


async def reference(profile: str, changes: tuple[str, ...], force: bool) -> Reference:
    """One clean run on a fresh fake with the same outside changes (cached per combination)."""
    key = (profile, changes, force)
    if key in _REFERENCES:
        return _REFERENCES[key]
    plan = mixed_plan(profile)
    fake = FakeImmich(library="sample", profile=profile)
    for change in changes:
        change_library(fake, plan, change)
    with tempfile.TemporaryDirectory() as d:
        backup = Path(d) / "backup"
        async with client_for(fake) as c:
            rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=force))
        async with client_for(fake) as c:
            vrep = await verify(c, plan, backup_dir=backup)
        ref = Reference(
            state=fake.state(),
            backup=backup_state(backup),
            statuses={o.duplicate_id: o.status for o in rep.outcomes},
            anomalies=sorted((f.duplicate_id, f.field) for f in vrep.anomalies),
        )
    _REFERENCES[key] = ref
    return ref


# --------------------------------------------------------------------------- invariants


def _manifest_entries(backup: Path) -> tuple[BackupStore | None, dict[str, Any], list[str]]:
    """asset id → (manifest loser entry or its live-photo entry); problems reading the backup."""
    try:
        store = BackupStore.open_existing(backup)
        manifests: list[GroupManifest] = list(store.manifests())
    except (BackupError, OSError) as e:
        return None, {}, [f"backup directory unreadable: {e}"]
    entries: dict[str, Any] = {}
    for m in manifests:
        for loser in m.losers:
            entries[loser.asset_id] = loser
            if loser.live_photo_video is not None:
                entries[loser.live_photo_video.asset_id] = loser.live_photo_video
    return store, entries, []


def check_backups(fake: FakeImmich, before: Before, backup: Path, exempt: Iterable[str] = ()) -> tuple[int, list[str]]:
    """Every asset we trashed or deleted has its original in the backup: size and SHA-1 equal.

    ``exempt``: assets someone else trashed or purged during the run (a test's doing).
    Returns (assets checked, problems).
    """
    removed = gone_or_trashed(fake, before) - set(exempt)
    if not removed:
        return 0, []
    store, entries, problems = _manifest_entries(backup)
    if store is None:
        return len(removed), [f"{len(removed)} assets removed, but {problems[0]}"]
    for i in sorted(removed):
        entry = entries.get(i)
        if entry is None:
            problems.append(f"{i} was removed without a manifest entry")
            continue
        try:
            p = store.resolve_file(entry.file)
        except BackupError as e:
            problems.append(f"{i}: {e}")
            continue
        if not p.is_file():
            problems.append(f"{i} was removed but its backup file {entry.file} is missing")
            continue
        size, sha1 = sha1_b64_of(p)
        if size != before.sizes.get(i) or sha1 != before.sha1.get(i):
            problems.append(
                f"{i} was removed but its backup differs: {size} bytes {sha1}, "
                f"server had {before.sizes.get(i)} bytes {before.sha1.get(i)}"
            )
        if size != entry.size or sha1 != entry.sha1_b64 or not entry.verified:
            problems.append(f"{i}: the manifest's size/SHA-1 do not describe the file")
    return len(removed), problems


def _exif(a: dict[str, Any]) -> dict[str, Any]:
    e = a.get("exifInfo")
    return e if isinstance(e, dict) else {}


def metadata_of(a: dict[str, Any]) -> dict[str, Any]:
    """The fields a restore needs, from an AssetResponseDto."""
    e = _exif(a)
    return {
        "isFavorite": a.get("isFavorite"),
        "visibility": a.get("visibility"),
        "livePhotoVideoId": a.get("livePhotoVideoId"),
        "rating": e.get("rating"),
        "description": e.get("description"),
        "latitude": e.get("latitude"),
        "longitude": e.get("longitude"),
        "dateTimeOriginal": e.get("dateTimeOriginal"),
        "timeZone": e.get("timeZone"),
    }


def check_manifests(fake: FakeImmich, before: Before, backup: Path, exempt: Iterable[str] = ()) -> list[str]:
    """Each loser we trashed: its manifest holds the metadata, albums and tags it had before."""
    removed = gone_or_trashed(fake, before) - set(exempt)
    if not removed:
        return []
    store, entries, problems = _manifest_entries(backup)
    if store is None:
        return problems
    for i in sorted(removed):
        entry = entries.get(i)
        if entry is None:
            continue  # reported by check_backups
        want = metadata_of(before.assets[i])
        got = metadata_of(entry.asset)
        for k, v in want.items():
            if got[k] != v:
                problems.append(f"{i}: manifest {k}={got[k]!r}, server had {v!r}")
        albums = {al.id for al in entry.albums}
        if albums != before.albums.get(i, set()):
            problems.append(f"{i}: manifest albums {sorted(albums)} != {sorted(before.albums.get(i, set()))}")
        tags = {t.id for t in entry.tags}
        if tags != before.tags.get(i, set()):
            problems.append(f"{i}: manifest tags {sorted(tags)} != {sorted(before.tags.get(i, set()))}")
        video = before.assets[i].get("livePhotoVideoId")
        if video and video in before.sizes and (entry.live_photo_video is None or entry.live_photo_video.asset_id != video):
            problems.append(f"{i}: its live-photo video {video} is not in the manifest")
    return problems


_TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "', "Error:")


def check_outcomes(plan: Plan, rep: ExecuteReport, fake: FakeImmich, before: Before) -> list[str]:
    """Every group has one outcome; failures say which group and why in one plain sentence."""
    problems: list[str] = []
    ids = [g.duplicate_id for g in plan.groups]
    got = [o.duplicate_id for o in rep.outcomes]
    if sorted(got) != sorted(ids):
        problems.append(f"outcomes for {len(got)} groups, the plan has {len(ids)}")
    removed = gone_or_trashed(fake, before)
    for o in rep.outcomes:
        if o.status in ("failed", "skipped"):
            if not o.reason.strip():
                problems.append(f"{o.duplicate_id}: {o.status} without a reason")
            if "\n" in o.reason or any(m in o.reason for m in _TRACEBACK_MARKERS[:2]):
                problems.append(f"{o.duplicate_id}: reason is not one plain line: {o.reason!r}")
            if fake.api_key in o.reason:
                problems.append(f"{o.duplicate_id}: the API key is in the reason")
        if o.status == "done":
            g = plan.group(o.duplicate_id)
            if g.action is Action.RESOLVE:
                for loser in g.losers:
                    if loser not in removed and loser not in before.trashed and loser in before.assets:
                        problems.append(f"{o.duplicate_id}: done but loser {loser} is not trashed")
    return problems


def outcome_reasons(rep: ExecuteReport) -> list[str]:
    return [f"{o.status}: {o.reason}" for o in rep.outcomes if o.status == "failed"]


def api_key_leaks(key: str, roots: Iterable[Path], texts: Iterable[str] = ()) -> list[str]:
    """Every file under ``roots`` and every text that holds ``key`` (raw, or base64/URL-encoded)."""
    forms = {key.encode(), base64.b64encode(key.encode()), key.encode().hex().encode()}
    out: list[str] = []
    for root in roots:
        if not root.exists():
            continue
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for p in paths:
            data = p.read_bytes()
            if any(f in data for f in forms):
                out.append(str(p))
    for t in texts:
        if key in t:
            out.append(f"text: {t[:120]!r}")
    return out


def env_for(url: str, key: str) -> dict[str, str]:
    """The environment of a CLI subprocess: the repo's package, the fake's URL and key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMICH_")}
    env["IMMICH_URL"] = url
    env["IMMICH_API_KEY"] = key
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def deep_diff(got: Any, want: Any, path: str = "", limit: int = 12) -> list[str]:
    """Where two JSON-like values differ, as ``path: got != want`` lines (at most ``limit``)."""
    out: list[str] = []

    def walk(a: Any, b: Any, p: str) -> None:
        if len(out) >= limit or a == b:
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b), key=str):
                walk(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{p}.{k}")
            return
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for n, (x, y) in enumerate(zip(a, b, strict=True)):
                walk(x, y, f"{p}[{n}]")
            return
        out.append(f"{p}: {str(a)[:200]} != {str(b)[:200]}")

    walk(got, want, path)
    return out


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, default=str)[:3000]


# --------------------------------------------------------------------------- the CLI killed at a request


CLI_TIMEOUT = 90
_PYCACHE: list[Path] = []
_PYCACHE_LOCK = threading.Lock()


def _pycache() -> Path:
    """A bytecode cache for the session's CLI subprocesses, outside the repo (removed at exit).

    With bytecode writing off (``PYTHONDONTWRITEBYTECODE``), each ``python -m immich_dupes``
    compiles the whole package again: about 0.03 s of CPU a run, 3 s over the resume points.
    Python checks each cached file against its source's size and time.
    """
    with _PYCACHE_LOCK:
        if not _PYCACHE:
            _PYCACHE.append(Path(tempfile.mkdtemp(prefix="immich-dupes-pyc-")))
            atexit.register(shutil.rmtree, _PYCACHE[0], ignore_errors=True)
        return _PYCACHE[0]


class Dropped(Exception):
    """Raised inside the fake to drop the request the client was killed at."""


def path_matches(req: ApiRequest, method: str, path: str) -> bool:
    """``req`` is ``method path`` (a ``path`` ending in ``/``: any path it starts)."""
    return req.method == method and (
        req.path == path or (path.endswith("/") and req.path.startswith(path))
    )


@dataclass
class KillHarness:
    """The real CLI (a subprocess) on a loopback fake, SIGKILLed at a chosen point.

    A ``FakeImmich("sample")`` behind a ``FakeServer``, ``mixed_plan`` saved to ``root/plan.json``,
    the backup folder ``root/backup`` and what the fake held before (``before``). The kill point
    is ``at`` — ``("request", n)``: the n-th request the fake receives, ``("change", k)``: the
    k-th that changes the server (counted over every run of the harness), ``("journal", k)``:
    as soon as the journal holds k entries — or, for subclasses, the request ``is_target``
    picks (called for every request, under no lock). The CLI is killed just ``before`` the fake
    processes a target request (which is then dropped) or just ``after``. At every
    ``DELETE /api/assets`` the fake receives (processed or answered with an injected fault),
    each asset must already have its backup on disk with the size and SHA-1 the server held:
    else a line in ``violations``.
    """

    root: Path
    _: KW_ONLY
    when: str = "before"
    """Kill just ``before`` the fake processes the target request, or just ``after``."""
    at: tuple[str, int] | None = None
    """``("request" | "change" | "journal", n)``: the kill point; None for none (or ``is_target``)."""
    fake: FakeImmich = field(init=False)
    server: FakeServer = field(init=False)
    plan: Plan = field(init=False)
    plan_path: Path = field(init=False)
    backup: Path = field(init=False)
    before: Before = field(init=False)
    violations: list[str] = field(default_factory=list)
    deletes: int = 0
    """``DELETE /api/assets`` requests checked by ``check_backups``."""
    requests: int = 0
    """Requests the fake received, over every run of the harness."""
    changes: int = 0
    """Of those, the requests that change the server (``is_changing``)."""
    proc: subprocess.Popen[bytes] | None = None
    killed_at: str | None = None
    """``"before|after METHOD /path"`` or ``"journal k"``: where the kill landed."""
    kill_request: int | None = None
    """Requests received when the kill landed (for ``before``/``after``: the target's number)."""
    kill_journal: int | None = None
    """Journal entries the kill left on disk."""
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
            with self.lock:
                self.requests += 1
                n = self.requests
                k: int | None = None
                if is_changing(req.method, req.path):
                    self.changes += 1
                    k = self.changes
                counted = self.at in (("request", n), ("change", k))
            hit = self.is_target(req, processed=decision.status is None) or counted
            if req.method == "DELETE" and req.path == "/api/assets":
                self.check_backups(json.loads(req.body)["ids"])
            if hit and self.when == "before":
                self.kill(f"before {req.method} {req.path}", n)
                raise Dropped
            resp = original(req, decision)
            if hit and self.when == "after":
                self.kill(f"after {req.method} {req.path}", n)
            return resp

        self.fake._respond = respond  # type: ignore[method-assign]

    def is_target(self, req: ApiRequest, processed: bool) -> bool:
        """Is ``req`` the request to kill at? ``processed``: no injected fault answers it.

        Subclasses pick their own; by default only ``at`` picks.
        """
        return False

    def check_backups(self, ids: list[str]) -> None:
        """At a DELETE: each asset has its backup on disk, complete, with the server's bytes."""
        with self.lock:
            self.deletes += 1
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
            try:
                p = store.resolve_file(entry.file)
            except BackupError as e:
                self.violations.append(f"DELETE of {i} with a backup path out of the folder: {e}")
                continue
            if not p.is_file():
                self.violations.append(f"DELETE of {i} without its backup file")
                continue
            if sha1_b64_of(p) != (self.before.sizes.get(i), self.before.sha1.get(i)):
                self.violations.append(f"DELETE of {i} with a backup that differs from the server's bytes")

    def kill(self, where: str, request: int | None = None) -> None:
        """SIGKILL the running CLI (once per harness) and note where."""
        with self.lock:
            proc = self.proc
            if proc is None or self.killed_at is not None:
                return
            self.killed_at = where
            self.kill_request = self.requests if request is None else request
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()

    def journal_entries(self) -> int:
        """Complete entries in the backup folder's journal."""
        return sum(1 for _ in read_entries(self.backup / "journal.jsonl"))

    def _watch_journal(self, proc: subprocess.Popen[bytes], k: int) -> None:
        """Kill ``proc`` as soon as the journal holds ``k`` lines."""
        path = self.backup / "journal.jsonl"
        while proc.poll() is None:
            try:
                if path.read_bytes().count(b"\n") >= k:
                    self.kill(f"journal {k}")
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.0005)

    def execute_args(self) -> list[str]:
        """``execute`` of the harness's plan into its backup folder (``run_cli`` adds the rest)."""
        return ["execute", "-i", str(self.plan_path), "-b", str(self.backup)]

    def run_cli(self, *args: str) -> tuple[int, str]:
        """Run ``immich-dupes *args`` to its end (or its kill): exit code, stdout and stderr."""
        killed_before = self.killed_at is not None
        self.proc = proc = subprocess.Popen(
            [sys.executable, "-m", "immich_dupes", *args, "--yes", "--rate-limit", "1000",
             "--concurrent", "4"],
            env={**env_for(self.server.url, self.fake.api_key), "PYTHONDONTWRITEBYTECODE": "",
                 "PYTHONPYCACHEPREFIX": str(_pycache())},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        )
        watcher: threading.Thread | None = None
        if self.at is not None and self.at[0] == "journal":
            watcher = threading.Thread(target=self._watch_journal, args=(proc, self.at[1]), daemon=True)
            watcher.start()
        out, err = proc.communicate(timeout=CLI_TIMEOUT)
        if watcher is not None:
            watcher.join()
        if self.killed_at is not None and not killed_before:
            self.kill_journal = self.journal_entries()  # the CLI is gone: what the kill left
        FIGURES.run(f"{args[0]} (CLI)")
        return proc.returncode, (out + err).decode("utf-8", "replace")

    def end_state(self) -> dict[str, Any]:
        """What a run ends with: the server (``FakeImmich.state``), the backup (``backup_state``,
        assets' times kept) and each group's status in the last report."""
        reports = sorted(self.backup.glob("report-*.json"))
        last = json.loads(reports[-1].read_text()) if reports else {"groups": []}
        return {
            "server": self.fake.state(),
            "backup": backup_state(self.backup, asset_times=True),
            "statuses": {o["duplicate_id"]: o["status"] for o in last["groups"]},
        }

    def close(self) -> None:
        self.server.stop()


# --------------------------------------------------------------------------- a disk that fills up


class Charger(Protocol):
    def charge(self, fd: int, n: int) -> None:
        """Account ``n`` bytes written to ``fd``; raise OSError to refuse the write."""


class _ChargedFile:
    def __init__(self, f: Any, disk: Charger) -> None:
        self._f = f
        self._disk = disk

    def write(self, data: Any) -> int:
        n = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        self._disk.charge(self._f.fileno(), n)
        return int(self._f.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)

    def __enter__(self) -> _ChargedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()


class _ChargingOs:
    """The ``os`` module, except that writes are charged to the disk."""

    def __init__(self, disk: Charger) -> None:
        self._disk = disk

    def fdopen(self, fd: int, *a: Any, **k: Any) -> _ChargedFile:
        return _ChargedFile(os.fdopen(fd, *a, **k), self._disk)

    def write(self, fd: int, data: Any) -> int:
        self._disk.charge(fd, len(data))
        return os.write(fd, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def charge_writes(monkeypatch: Any, disk: Charger) -> None:
    """Route every write of the client (downloads), the plan/atomic writes and the journal
    through ``disk.charge``: a simulated disk that can fill up (or refuse) mid-run."""
    import immich_dupes.analysis.plan as plan_module
    import immich_dupes.engine.journal as journal_module
    import immich_dupes.immich.client as client_module

    proxy = _ChargingOs(disk)
    for module in (client_module, plan_module, journal_module):
        monkeypatch.setattr(module, "os", proxy)
