"""Bad input is refused with exit 2, one clear line and nothing sent that changes the server.

Three families, all through the real command line (``cli.main`` in-process, and a
representative subset as ``python -m immich_dupes`` subprocesses) against a fake Immich on a
loopback socket whose request log shows what reached it:

* plan files broken in every way (the corpus in ``bad_plans/``, built by make_bad_plans.py,
  plus a 10 MB description built here): execute, verify and review refuse them before any
  request; a plan of another server is refused before any request, one of another user
  after read-only requests only. Plans with hostile file names are accepted: execute
  sanitises what it writes (tested with such names coming from the server);
* backup directories that cannot or must not be used (execute and restore);
* command lines with unknown options, missing or bad values.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from make_bad_plans import (
    ACCEPT,
    BOUND,
    CASES,
    CORPUS,
    OTHER_USER,
    base_plan,
    build_all,
    ten_mb_description,
)
from safety_support import FIGURES, arrivals, changing, client_for, env_for, mixed_plan

from immich_dupes.analysis.plan import PlanError, load_plan, save_plan
from immich_dupes.cli import main
from immich_dupes.engine.backup import BackupStore
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.fake import FakeImmich, FakeServer, Faults
from immich_dupes.immich.client import normalize_base_url

REFUSED = sorted(n for n, (_, expect) in CASES.items() if expect != ACCEPT)
ACCEPTED = sorted(n for n, (_, expect) in CASES.items() if expect == ACCEPT)
LOCAL = [n for n in REFUSED if n not in BOUND]


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FakeImmich, str]]:
    fake = FakeImmich(library="sample")
    with FakeServer(fake) as srv:
        yield fake, srv.url


@pytest.fixture(scope="module")
def good_plan(served: tuple[FakeImmich, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid plan of the served fake (made for its URL)."""
    _, url = served
    p = tmp_path_factory.mktemp("plan") / "plan.json"
    save_plan(mixed_plan(server_url=normalize_base_url(url)), p)
    return p


# --------------------------------------------------------------------------- running the CLI


class Ran:
    def __init__(self, code: int, out: str, err: str, fake: FakeImmich, since: int) -> None:
        self.code = code
        self.out = out
        self.err = err
        self.requests = arrivals(fake)[since:]
        self.changes = changing(self.requests)

    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if "error" in ln.lower()]

    def refused(self, fragment: str, *, local: bool = True, kind: str, what: str) -> None:
        """Exit 2, one error line naming ``fragment``, no traceback, nothing changed.

        ``local``: the refusal needs no server — stderr is that one line and no request at all
        reached the server.
        """
        assert self.code == 2, (self.code, self.err[-1500:])
        assert "Traceback" not in self.err + self.out
        lines = self.error_lines()
        assert len(lines) == 1, self.err
        assert self.err.rstrip("\n").splitlines()[-1] == lines[0], "the error is not the last line"
        assert fragment in lines[0], (fragment, lines[0])
        assert len(lines[0]) < 600, lines[0]
        assert self.changes == []
        if local:
            assert self.err.strip().count("\n") == 0, self.err
            assert self.requests == [], self.requests
        FIGURES.refused(kind, what)


def cli(
    capsys: pytest.CaptureFixture[str], fake: FakeImmich, argv: list[str]
) -> Ran:
    since = len(arrivals(fake))
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return Ran(code, out, err, fake, since)


def subproc(fake: FakeImmich, url: str, argv: list[str], env: dict[str, str] | None = None) -> Ran:
    since = len(arrivals(fake))
    r = subprocess.run(
        [sys.executable, "-m", "immich_dupes", *argv],
        env=env or env_for(url, fake.api_key), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=60, check=False,
    )
    return Ran(r.returncode, r.stdout, r.stderr, fake, since)


def server_args(fake: FakeImmich, url: str) -> list[str]:
    return ["-u", url, "-a", fake.api_key]


def bound_copy(name: str, url: str, tmp: Path) -> Path:
    """A corpus plan made for the served fake's URL (the corpus says http://fake-immich)."""
    data = json.loads((CORPUS / name).read_bytes())
    if data.get("server_url") == "http://fake-immich/api":
        data["server_url"] = normalize_base_url(url)
    p = tmp / name
    p.write_text(json.dumps(data), encoding="utf-8")
    return p


# --------------------------------------------------------------------------- the plan corpus


def test_corpus_is_what_make_bad_plans_builds() -> None:
    """The committed files are the script's output (regenerate: python tests/safety/make_bad_plans.py)."""
    built = build_all()
    on_disk = {p.name: p.read_bytes() for p in CORPUS.glob("*.json")}
    assert sorted(on_disk) == sorted(built)
    for name, data in built.items():
        assert on_disk[name] == data, f"{name} is stale: run tests/safety/make_bad_plans.py"
    assert len(REFUSED) >= 30


@pytest.mark.parametrize("name", LOCAL)
def test_bad_plan_is_refused_by_load_with_the_field_named(name: str) -> None:
    with pytest.raises(PlanError) as e:
        load_plan(CORPUS / name)
    line = str(e.value)
    assert CASES[name][1] in line
    assert "\n" not in line
    assert line.startswith(str(CORPUS / name))


@pytest.mark.parametrize("name", LOCAL)
def test_bad_plan_execute_exits_2_before_any_request(
    name: str, served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    ran = cli(capsys, fake, [*server_args(fake, url), "execute", "-i", str(CORPUS / name),
                             "-b", str(tmp_path / "b"), "--yes"])
    ran.refused(CASES[name][1], kind="plan file", what=name)
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", LOCAL)
def test_bad_plan_verify_and_review_exit_2_before_any_request(
    name: str, served: tuple[FakeImmich, str], capsys: pytest.CaptureFixture[str]
) -> None:
    from immich_dupes.tui.app import read_plan

    fake, url = served
    cli(capsys, fake, [*server_args(fake, url), "verify", str(CORPUS / name)]).refused(
        CASES[name][1], kind="plan file", what=name)
    # review reads plans its own (faster) way: it must refuse what load_plan refuses, else
    # the review app would open on the file (and this test would wait on it forever).
    try:
        read_plan(CORPUS / name)
    except PlanError:
        pass
    else:
        pytest.fail(f"review's read_plan accepts {name}, which load_plan refuses")
    cli(capsys, fake, [*server_args(fake, url), "review", str(CORPUS / name)]).refused(
        CASES[name][1], kind="plan file", what=name)


def test_plan_of_another_server_is_refused_before_any_request(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    plan = str(CORPUS / "another_server.json")
    cli(capsys, fake, [*server_args(fake, url), "execute", "-i", plan, "-b", str(tmp_path / "b"),
                       "--yes"]).refused("other-immich.example", kind="plan file", what="another_server.json")
    # verify has to ask the server who the key belongs to, but changes nothing
    cli(capsys, fake, [*server_args(fake, url), "verify", plan]).refused(
        "other-immich.example", local=False, kind="plan file", what="another_server.json")


def test_plan_of_another_user_is_refused_with_reads_only(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    plan = str(bound_copy("another_user.json", url, tmp_path))
    ran = cli(capsys, fake, [*server_args(fake, url), "execute", "-i", plan, "-b", str(tmp_path / "b"),
                             "--yes"])
    ran.refused("another user", local=False, kind="plan file", what="another_user.json")
    assert all(r.startswith("GET ") for r in ran.requests), ran.requests
    ran = cli(capsys, fake, [*server_args(fake, url), "verify", plan])
    ran.refused(OTHER_USER, local=False, kind="plan file", what="another_user.json")


def test_ten_megabyte_description_is_refused(
    served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    p = tmp_path / "ten_mb_description.json"
    p.write_bytes(ten_mb_description(base_plan()))
    assert p.stat().st_size > 10_000_000
    ran = cli(capsys, fake, [*server_args(fake, url), "execute", "-i", str(p), "-b", str(tmp_path / "b"), "--yes"])
    ran.refused("groups[0].assets[0].description: String should have at most 65535 characters",
                kind="plan file", what="ten_mb_description")


@pytest.mark.parametrize("name", ACCEPTED)
def test_plans_with_hostile_names_or_a_bom_are_accepted(
    name: str, served: tuple[FakeImmich, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Names are data in a plan; a dry run takes the plan and changes nothing."""
    fake, url = served
    plan = bound_copy(name, url, tmp_path)
    if name == "utf8_bom.json":
        plan.write_bytes(b"\xef\xbb\xbf" + plan.read_bytes())
    loaded = load_plan(plan)
    assert loaded.groups
    ran = cli(capsys, fake, [*server_args(fake, url), "execute", "-i", str(plan), "-b",
                             str(tmp_path / "b"), "--dry-run"])
    assert ran.code == 0, ran.err
    assert ran.changes == []


def test_subprocess_refusals_of_bad_plans(served: tuple[FakeImmich, str], tmp_path: Path) -> None:
    """The same through ``python -m immich_dupes``: exit 2, one line, no request, no traceback."""
    fake, url = served
    for name in ("empty.json", "truncated_half.json", "binary_garbage.json", "json_array.json",
                 "deeply_nested.json", "schema_version_2.json", "winner_is_also_a_loser.json",
                 "asset_in_two_groups.json", "nan_latitude.json", "another_server.json"):
        ran = subproc(fake, url, ["execute", "-i", str(CORPUS / name), "-b", str(tmp_path / "b"), "--yes"])
        ran.refused(CASES[name][1], kind="plan file", what=name)
    ran = subproc(fake, url, ["verify", str(CORPUS / "invalid_uuid_asset.json")])
    ran.refused("groups[0].assets[0].id", kind="plan file", what="invalid_uuid_asset.json")


# --------------------------------------------------------------------------- hostile names from the server


HOSTILE = (
    "../../../../../tmp/immich-dupes-evil.jpg",
    "evil\u0007\u001b[2J\u202egpj.exe\u0000.jpg",
    "C:\\Windows\\..\\CON.jpg",
)


def test_hostile_names_from_the_server_are_sanitised_in_the_backup(tmp_path: Path) -> None:
    """Server-side names with traversal, control characters and device names: kept in the plan
    and the manifest as they are, written to disk as one safe name inside the group's folder."""
    from PIL import Image

    fake = FakeImmich(library="sample")
    plan0 = mixed_plan()
    targets = [g for g in plan0.groups if g.winner_asset.file_name in
               ("s13_large_timeline.jpg", "s16_large_sunset.jpg", "s20_large_nooffset.jpg")]
    buf = io.BytesIO()

    async def upload() -> list[str]:
        ids = []
        async with client_for(fake) as c:
            await c.connect()
            for n, name in enumerate(HOSTILE):
                buf.seek(0)
                buf.truncate()
                Image.new("RGB", (40, 30), (n * 60, 10, 10)).save(buf, "JPEG")
                src = tmp_path / f"src{n}.jpg"
                src.write_bytes(buf.getvalue())
                when = datetime(2020, 1, 1, tzinfo=UTC)
                up = await c.upload(src, filename=name, file_created_at=when, file_modified_at=when)
                ids.append(up.id)
        return ids

    ids = asyncio.run(upload())
    for aid, g in zip(ids, targets, strict=True):
        fake.update_asset_metadata(aid, duplicateId=g.duplicate_id)

    with FakeServer(fake) as srv:
        async def analyze_plan() -> Any:
            from immich_dupes.analysis import decide
            from immich_dupes.engine.analyze import analyze

            async with client_for(fake, url=srv.url) as c:
                p = await analyze(c)
            p.groups = [decide.accept(g) for g in p.groups]
            return p

        plan = asyncio.run(analyze_plan())
        plan_path = tmp_path / "plan.json"
        save_plan(plan, plan_path)
        # the plan side: the names are kept as the server has them
        names = {a.id: a.file_name for g in load_plan(plan_path).groups for a in g.assets}
        assert [names[i] for i in ids] == list(HOSTILE)
        # one of them fails its backup, so its name also shows up in a failure line
        fake.faults = Faults.parse(f"corrupt={ids[1]}")
        ran = subproc(fake, srv.url, ["execute", "-i", str(plan_path), "-b", str(tmp_path / "b"), "--yes",
                                      "--rate-limit", "1000"])
    assert ran.code == 1, ran.err
    for where, text in (("stdout", ran.out), ("stderr", ran.err)):
        bad = [ln for ln in text.splitlines() if any(ch in ln for ch in "\x00\x07\x1b\u202e")]
        assert bad == [], f"a file name's control characters reached the terminal ({where})"
    store = BackupStore.open_existing(tmp_path / "b")
    entries = {x.asset_id: x for m in store.manifests() for x in m.losers}
    for aid, name in zip(ids, HOSTILE, strict=True):
        if aid == ids[1]:
            assert aid not in entries
            continue
        entry = entries[aid]
        assert entry.asset["originalFileName"] == name
        p = store.resolve_file(entry.file)
        gdir = (tmp_path / "b" / "groups").resolve()
        assert p.parent.parent == gdir
        assert p.name.startswith(aid + "-")
        assert p.name.endswith(".jpg")
        assert not any(ord(ch) < 32 or ch in "/\\\u202e" for ch in p.name)
        assert ".." not in p.name
        assert "CON.jpg" not in p.name.removeprefix(aid + "-") or p.name.endswith("_CON.jpg")
        assert p.read_bytes() == fake.file_bytes(aid)
    assert not Path("/tmp/immich-dupes-evil.jpg").exists()


# --------------------------------------------------------------------------- bad backup directories


def _prepared(tmp_path: Path) -> tuple[FakeImmich, FakeServer, Path, Path]:
    """A fake on a socket, a plan file for it, and a backup of a first run that backed up and
    wrote every manifest but trashed nothing (the trash and bulk updates answered 503)."""
    fake = FakeImmich(library="sample")
    srv = FakeServer(fake).start()
    plan = mixed_plan(server_url=normalize_base_url(srv.url))
    plan_path = tmp_path / "plan.json"
    save_plan(plan, plan_path)
    backup = tmp_path / "backup"
    fake.faults = Faults.parse("503=1@/asset?")  # exactly /assets: bulk PUT and DELETE

    async def first() -> None:
        async with client_for(fake, url=srv.url, max_retries=0) as c:
            rep = await execute(c, plan, ExecuteOptions(backup_dir=backup))
        assert rep.failed > 0

    asyncio.run(first())
    fake.faults = Faults()
    assert not any(fake.asset(i)["isTrashed"] for i in fake.asset_ids())
    assert list(BackupStore.open_existing(backup).manifests())
    return fake, srv, plan_path, backup


def _edit_header(backup: Path, **fields: Any) -> None:
    h = backup / "immich-dupes-backup.json"
    data = json.loads(h.read_text())
    data.update(fields)
    h.write_text(json.dumps(data))


def _first_manifest(backup: Path) -> Path:
    return sorted((backup / "groups").glob("*/manifest.json"))[0]


def _edit_manifest(backup: Path) -> None:
    """A person 'fixes' a loser's favorite flag by hand: the integrity check no longer holds."""
    p = _first_manifest(backup)
    m = json.loads(p.read_text())
    m["losers"][0]["asset"]["isFavorite"] = not m["losers"][0]["asset"].get("isFavorite")
    p.write_text(json.dumps(m, indent=1))


def _traversal_manifest(backup: Path) -> None:
    """A manifest (with a recomputed checksum) whose file points outside the backup."""
    store = BackupStore.open_existing(backup)
    m = next(iter(store.manifests()))
    m.losers[0].file = "../../../../etc/passwd"
    store.write_manifest(m)


BackupSetup = Callable[[Path, Path], Path]
"""(tmp dir, prepared backup) → the -b to pass."""


def _is_a_file(tmp: Path, backup: Path) -> Path:
    f = tmp / "a-file"
    f.write_text("not a directory")
    return f


def _foreign(tmp: Path, backup: Path) -> Path:
    d = tmp / "photos"
    d.mkdir()
    (d / "holiday.jpg").write_bytes(b"\xff\xd8 my own photo")
    return d


def _garbage_header(tmp: Path, backup: Path) -> Path:
    (backup / "immich-dupes-backup.json").write_text("{not json")
    return backup


def _other_server(tmp: Path, backup: Path) -> Path:
    _edit_header(backup, server_url="http://other-immich.example/api")
    return backup


def _other_user(tmp: Path, backup: Path) -> Path:
    _edit_header(backup, user_id=OTHER_USER)
    return backup


def _other_plan(tmp: Path, backup: Path) -> Path:
    # A folder is bound to one analysis (the plan's created_at), not to one plan's bytes.
    _edit_header(backup, plan_sha256="0" * 64, analysis_created_at="2001-01-01T00:00:00Z")
    return backup


def _edited(tmp: Path, backup: Path) -> Path:
    _edit_manifest(backup)
    return backup


EXECUTE_BACKUPS: dict[str, tuple[BackupSetup, str]] = {
    "is_a_file": (_is_a_file, "is a file, not a directory"),
    "foreign_files": (_foreign, "is not empty and is not an immich-dupes backup"),
    "garbage_header": (_garbage_header, "invalid backup header"),
    "other_server": (_other_server, "another server"),
    "other_user": (_other_user, "another user"),
    "other_plan": (_other_plan, "a different plan"),
    "edited_manifest": (_edited, "manifest"),
}


@pytest.mark.parametrize("case", sorted(EXECUTE_BACKUPS))
def test_execute_refuses_a_bad_backup_directory(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, srv, plan_path, backup = _prepared(tmp_path)
    try:
        setup, fragment = EXECUTE_BACKUPS[case]
        target = setup(tmp_path, backup)
        ran = cli(capsys, fake, [*server_args(fake, srv.url), "execute", "-i", str(plan_path),
                                 "-b", str(target), "--yes"])
        ran.refused(fragment, kind="backup directory", what=f"execute {case}")
        assert not any(fake.asset(i)["isTrashed"] for i in fake.asset_ids())
    finally:
        srv.stop()


def test_execute_refuses_a_read_only_backup_directory(
    tmp_path: Path, served: tuple[FakeImmich, str], good_plan: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = served
    ro = tmp_path / "read-only"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:  # root writes anywhere: answer as the kernel would for a user
        real = os.access

        def access(path: Any, mode: int, *a: Any, **k: Any) -> bool:
            p = Path(path).absolute()
            if mode & os.W_OK and (p == ro or ro in p.parents):
                return False
            return real(path, mode, *a, **k)

        monkeypatch.setattr(os, "access", access)
    try:
        for target, fragment in ((ro, "is not writable"), (ro / "backup", "cannot be created")):
            ran = cli(capsys, fake, [*server_args(fake, url), "execute", "-i", str(good_plan),
                                     "-b", str(target), "--yes"])
            ran.refused(fragment, kind="backup directory", what=f"execute read-only {target.name}")
    finally:
        ro.chmod(stat.S_IRWXU)


def test_edited_manifest_is_refused_with_subprocess(tmp_path: Path) -> None:
    fake, srv, plan_path, backup = _prepared(tmp_path)
    try:
        _edit_manifest(backup)
        ran = subproc(fake, srv.url, ["restore", "-b", str(backup), "--yes"])
        ran.refused("edited or damaged", kind="backup directory", what="restore edited_manifest")
        ran = subproc(fake, srv.url, ["execute", "-i", str(plan_path), "-b", str(backup), "--yes"])
        ran.refused("manifest", kind="backup directory", what="execute edited_manifest")
    finally:
        srv.stop()


def _missing(tmp: Path, backup: Path) -> Path:
    return tmp / "no-such-backup"


def _empty(tmp: Path, backup: Path) -> Path:
    d = tmp / "empty"
    d.mkdir()
    return d


def _garbage_manifest(tmp: Path, backup: Path) -> Path:
    _first_manifest(backup).write_bytes(b"\x00\x01 not a manifest")
    return backup


def _traversal(tmp: Path, backup: Path) -> Path:
    _traversal_manifest(backup)
    return backup


def _moved_manifest(tmp: Path, backup: Path) -> Path:
    a, b = sorted((backup / "groups").glob("*/manifest.json"))[:2]
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)
    return backup


RESTORE_BACKUPS: dict[str, tuple[BackupSetup, str, bool]] = {
    "missing": (_missing, "does not exist", True),
    "is_a_file": (_is_a_file, "is a file, not a backup directory", True),
    "empty": (_empty, "is not an immich-dupes backup", True),
    "foreign_files": (_foreign, "is not an immich-dupes backup", True),
    "garbage_header": (_garbage_header, "invalid backup header", True),
    "edited_manifest": (_edited, "edited or damaged", True),
    "garbage_manifest": (_garbage_manifest, "invalid manifest", True),
    "path_traversal_in_manifest": (_traversal, "points outside the backup directory", True),
    "manifest_of_another_group": (_moved_manifest, "manifest is for group", True),
    "other_server": (_other_server, "other-immich.example", False),
    "other_user": (_other_user, OTHER_USER, False),
}


@pytest.mark.parametrize("case", sorted(RESTORE_BACKUPS))
def test_restore_refuses_a_bad_backup_directory(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, srv, _, backup = _prepared(tmp_path)
    try:
        setup, fragment, local = RESTORE_BACKUPS[case]
        target = setup(tmp_path, backup)
        ran = cli(capsys, fake, [*server_args(fake, srv.url), "restore", "-b", str(target), "--yes"])
        ran.refused(fragment, local=local, kind="backup directory", what=f"restore {case}")
    finally:
        srv.stop()


def test_verify_refuses_a_missing_backup_directory(
    served: tuple[FakeImmich, str], good_plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    ran = cli(capsys, fake, [*server_args(fake, url), "verify", str(good_plan), "-b", str(tmp_path / "nope")])
    ran.refused("does not exist", kind="backup directory", what="verify missing")


# --------------------------------------------------------------------------- bad command lines


def _command_lines(plan: str, tmp: Path) -> list[tuple[list[str], str]]:
    b = str(tmp / "b")
    folder = str(tmp)
    return [
        (["execute"], "the following arguments are required: -i/--input, -b/--backup-dir"),
        (["execute", "-i", plan], "the following arguments are required: -b/--backup-dir"),
        (["execute", "-b", b], "the following arguments are required: -i/--input"),
        (["execute", "-i"], "argument -i/--input: expected one argument"),
        (["execute", "-i", plan, "-b", b, "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["execute", "-i", plan, "-b", b, "--rate-limit", "0"], "--rate-limit: must be a positive number"),
        (["execute", "-i", plan, "-b", b, "--rate-limit", "-1"], "--rate-limit"),
        (["execute", "-i", plan, "-b", b, "--rate-limit", "abc"], "'abc' is not a number"),
        (["execute", "-i", plan, "-b", b, "--rate-limit", "nan"], "--rate-limit: must be a positive number"),
        (["execute", "-i", plan, "-b", b, "--rate-limit", "inf"], "--rate-limit: must be a positive number"),
        (["execute", "-i", plan, "-b", b, "--rate-limit"], "--rate-limit: expected one argument"),
        (["execute", "-i", plan, "-b", b, "--concurrent", "0"], "--concurrent: must be 1 or more"),
        (["execute", "-i", plan, "-b", b, "--concurrent", "-3"], "--concurrent"),
        (["execute", "-i", plan, "-b", b, "--concurrent", "2.5"], "'2.5' is not a whole number"),
        (["execute", "-i", folder, "-b", b, "--yes"], "is a directory, not a plan file"),
        (["execute", "-i", str(tmp / "nope.json"), "-b", b, "--yes"], "no such file"),
        (["execute", "-i", plan, "-b", plan, "--yes"], "is a file, not a directory"),
        (["analyze"], "the following arguments are required: -o/--output"),
        (["analyze", "-o", folder], "is a directory"),
        (["analyze", "-o", str(tmp / "no" / "such" / "plan.json")], "does not exist"),
        (["analyze", "-o", plan + "/p.json"], "cannot write the plan into"),
        (["analyze", "-o", str(tmp / "p.json"), "--gps-tolerance", "-5"], "--gps-tolerance"),
        (["analyze", "-o", str(tmp / "p.json"), "--time-tolerance", "x"], "--time-tolerance"),
        (["verify"], "the following arguments are required: PLAN.json"),
        (["verify", plan, "--format", "xml"], "invalid choice: 'xml'"),
        (["verify", folder], "is a directory, not a plan file"),
        (["verify", plan, "--concurrent", "0"], "--concurrent: must be 1 or more"),
        (["restore"], "the following arguments are required: -b/--backup-dir"),
        (["restore", "-b"], "argument -b/--backup-dir: expected one argument"),
        (["restore", "-b", b, "--rate-limit", "-1"], "--rate-limit"),
        (["review"], "the following arguments are required: PLAN.json"),
        (["review", plan, "--image-protocol", "png"], "invalid choice: 'png'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["demo", "--port", "70000"], "port must be 0..65535"),
        (["demo", "--serve-only", "--faults", "explode=1"], "unknown fault 'explode'"),
        (["demo", "--serve-only", "--faults", "5xx=2"], "rate must be between 0 and 1"),
        (["demo", "--serve-only", "--library", "huge"], "unknown library 'huge'"),
    ]


def test_bad_command_lines_exit_2_with_one_line(
    served: tuple[FakeImmich, str], good_plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = served
    for i, (argv, fragment) in enumerate(_command_lines(str(good_plan), tmp_path)):
        ran = cli(capsys, fake, [*server_args(fake, url), *argv])
        try:
            ran.refused(fragment, kind="command line", what=f"line {i}")
        except AssertionError as e:
            raise AssertionError(f"{argv}: {e}") from None


def test_bad_urls_and_missing_credentials_exit_2(
    served: tuple[FakeImmich, str], good_plan: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, url = served
    monkeypatch.delenv("IMMICH_URL", raising=False)
    monkeypatch.delenv("IMMICH_API_KEY", raising=False)
    plan = str(good_plan)
    cases: list[tuple[list[str], str]] = [
        (["-a", fake.api_key, "verify", plan], "no server URL"),
        (["-u", url, "verify", plan], "no API key"),
        (["-u", url, "-a", "", "verify", plan], "no API key"),
        (["-u", "ftp://host", "-a", fake.api_key, "verify", plan], "must start with http:// or https://"),
        (["-u", "http://host:99999", "-a", fake.api_key, "verify", plan], "invalid port"),
        (["-u", "http://", "-a", fake.api_key, "verify", plan], "no host name"),
        (["-a", fake.api_key, "execute", "-i", plan, "-b", str(tmp_path / "b"), "--yes"], "no server URL"),
        (["-u", url, "analyze", "-o", str(tmp_path / "p.json")], "no API key"),
        (["--url"], "argument -u/--url: expected one argument"),
    ]
    for i, (argv, fragment) in enumerate(cases):
        ran = cli(capsys, fake, argv)
        try:
            ran.refused(fragment, kind="command line", what=f"credentials {i}")
        except AssertionError as e:
            raise AssertionError(f"{argv}: {e}") from None


def test_execute_without_yes_and_without_a_terminal_refuses(
    served: tuple[FakeImmich, str], good_plan: Path, tmp_path: Path
) -> None:
    """No --yes and nothing to ask on: refuse (exit 2) rather than guess; nothing changes."""
    fake, url = served
    ran = subproc(fake, url, ["execute", "-i", str(good_plan), "-b", str(tmp_path / "b")])
    assert ran.code == 2
    assert ran.error_lines()[-1].endswith("no terminal to ask on (use --yes)")
    assert "Traceback" not in ran.err
    assert ran.requests == []
    ran = subproc(fake, url, ["restore", "-b", str(tmp_path)])
    ran.refused("no terminal to ask on (use --yes)", kind="command line", what="restore without --yes")


def test_subprocess_refusals_of_bad_command_lines(
    served: tuple[FakeImmich, str], good_plan: Path, tmp_path: Path
) -> None:
    fake, url = served
    lines = _command_lines(str(good_plan), tmp_path)
    for i in (0, 5, 7, 11, 14, 16, 23, 31, 33):
        argv, fragment = lines[i]
        ran = subproc(fake, url, argv)
        try:
            ran.refused(fragment, kind="command line", what=f"line {i}")
        except AssertionError as e:
            raise AssertionError(f"{argv}: {e}") from None
    env = {k: v for k, v in env_for(url, fake.api_key).items() if k != "IMMICH_API_KEY"}
    subproc(fake, url, ["verify", str(good_plan)], env=env).refused(
        "no API key", kind="command line", what="credentials 1")



