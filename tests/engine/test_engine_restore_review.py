"""restore: duplicate upload answers, the restore records' integrity and one-time metadata,
and the same photo under another asset (review fixes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from immich_dupes import cli
from immich_dupes.analysis.decide import accept
from immich_dupes.analysis.plan import Action, GroupPlan, Plan
from immich_dupes.engine import restore as restore_mod
from immich_dupes.engine.analyze import analyze
from immich_dupes.engine.backup import BackupError, BackupStore, ManifestAsset
from immich_dupes.engine.execute import ExecuteOptions, execute
from immich_dupes.engine.restore import RestoreReport, read_mapping, read_records, restore
from immich_dupes.fake import FakeImmich, FakeServer, RequestRecord
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import ImmichError
from immich_dupes.immich.models import Asset, BulkUploadCheckItem, UploadResult, Visibility

URL = "http://fake-immich"
EXTERNAL = "s10_upload_large.jpg"
READ_ONLY_POSTS = {"/api/assets/bulk-upload-check", "/api/search/metadata"}


@asynccontextmanager
async def connected(fake: FakeImmich) -> AsyncIterator[ImmichClient]:
    async with ImmichClient(
        URL, fake.api_key, transport=fake.transport(), rate_limit=10_000, concurrency=8,
        max_retries=1, backoff_base=0.0,
    ) as c:
        await c.connect()
        yield c


async def executed(c: ImmichClient, backup: Path, force: bool = False) -> Plan:
    plan = await analyze(c)
    plan.groups = [accept(g) for g in plan.groups]
    rep = await execute(c, plan, ExecuteOptions(backup_dir=backup, force=force))
    assert rep.failed == 0
    return plan


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


def losers_of(plan: Plan) -> list[str]:
    return [
        i for g in plan.groups
        if g.action is Action.RESOLVE and g.winner_asset.file_name != EXTERNAL
        for i in g.losers
    ]


def changing(log: Sequence[RequestRecord]) -> list[tuple[str, str]]:
    return [
        (r.method, r.path) for r in log
        if r.method != "GET" and not (r.method == "POST" and r.path in READ_ONLY_POSTS)
    ]


def act_of(rep: RestoreReport, asset_id: str) -> tuple[str, str | None, str]:
    a = next(x for x in rep.actions if x.asset_id == asset_id)
    return a.action, a.new_asset_id, a.detail


def album_ids_of(fake: FakeImmich, asset_id: str) -> set[str]:
    return {al["id"] for al in fake.albums if asset_id in al["assetIds"]}


def manifest_asset(backup: Path, asset_id: str) -> ManifestAsset:
    store = BackupStore.open_existing(backup)
    return next(x for m in store.manifests() for x in m.losers if x.asset_id == asset_id)


def record_files(backup: Path) -> list[Path]:
    return sorted(backup.glob("restore-*.json"))


def accept_everything(c: ImmichClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checksum check that misses what the server holds: the upload itself answers duplicate."""

    async def check(items: Sequence[tuple[str, str]]) -> list[BulkUploadCheckItem]:
        return [BulkUploadCheckItem(id=i, action="accept") for i, _ in items]

    monkeypatch.setattr(c, "bulk_upload_check", check)


# --------------------------------------------------------------------------- a: upload answered duplicate


async def test_upload_answered_duplicate_of_our_trashed_copy_restores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        loser = group_of(plan, "s11_large_plain.jpg").losers[0]
        first = await restore(c, tmp_path / "b")
        _, new, _ = act_of(first, loser)
        assert new is not None
        fake.run_jobs()
        fake.trash_asset(new)
        for p in record_files(tmp_path / "b"):
            p.unlink()  # the record is lost: only the checksum knows the copy
        accept_everything(c, monkeypatch)
        rep = await restore(c, tmp_path / "b")
    action, got_new, detail = act_of(rep, loser)
    assert (action, got_new) == ("from_trash", new), detail
    assert fake.asset(new)["isTrashed"] is False
    assert read_mapping(tmp_path / "b")[loser] == new
    assert rep.failed == 0, [a for a in rep.actions if a.action == "failed"]


async def test_upload_answered_duplicate_of_another_asset_writes_nothing_onto_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        loser = group_of(plan, "s11_large_plain.jpg").losers[0]  # a favorite, in an album
        ma = manifest_asset(tmp_path / "b", loser)
        assert ma.albums
        other = await c.upload(
            BackupStore.open_existing(tmp_path / "b").resolve_file(ma.file), filename="imported-again.jpg",
            file_created_at=datetime(2020, 1, 1, tzinfo=UTC), file_modified_at=datetime(2020, 1, 1, tzinfo=UTC),
            checksum=ma.sha1_b64,
        )
        accept_everything(c, monkeypatch)
        n = len(fake.request_log)
        rep = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    action, new, detail = act_of(rep, loser)
    assert action == "failed"
    assert new is None
    assert other.id in detail
    assert "check it by hand" in detail
    assert not [r for r in log if r.method == "PUT" and other.id in r.path]
    assert album_ids_of(fake, other.id) == set()
    assert fake.asset(other.id)["isFavorite"] is False
    assert loser not in read_mapping(tmp_path / "b")


async def test_upload_answered_duplicate_of_a_winner_never_touches_the_winner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        g = group_of(plan, "s11_large_plain.jpg")
        loser, winner = g.losers[0], g.winner
        before, albums_before = fake.asset(winner), album_ids_of(fake, winner)
        real_upload = c.upload

        async def upload(path: Path, **kw: Any) -> UploadResult:
            if kw.get("filename") == manifest_asset(tmp_path / "b", loser).asset.get("originalFileName"):
                return UploadResult(id=winner, status="duplicate")  # a server answering the winner's id
            return await real_upload(path, **kw)

        monkeypatch.setattr(c, "upload", upload)
        n = len(fake.request_log)
        rep = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    action, new, detail = act_of(rep, loser)
    assert action == "failed", detail
    assert new is None
    assert winner in detail
    assert [r for r in log if r.method != "GET" and winner in r.path] == []
    assert fake.asset(winner) == before
    assert album_ids_of(fake, winner) == albums_before
    assert loser not in read_mapping(tmp_path / "b")


# --------------------------------------------------------------------------- b: createdAt missing


async def test_copy_without_created_at_is_not_taken_as_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        loser = group_of(plan, "s11_large_plain.jpg").losers[0]
        first = await restore(c, tmp_path / "b")
        _, new, _ = act_of(first, loser)
        assert new is not None
        for p in record_files(tmp_path / "b"):
            p.unlink()
        fake.run_jobs()
        real_read = c.asset_or_none

        async def read(asset_id: str) -> Asset | None:
            got = await real_read(asset_id)
            return got.model_copy(update={"createdAt": None}) if got is not None else None

        monkeypatch.setattr(c, "asset_or_none", read)
        n = len(fake.request_log)
        rep = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    action, got_new, detail = act_of(rep, loser)
    assert action == "failed"
    assert got_new is None
    assert new in detail
    assert changing(log) == []


# --------------------------------------------------------------------------- c: the records


def rewrite_record(path: Path, change: Any, keep_integrity: bool) -> None:
    body = json.loads(path.read_text())
    change(body)
    if keep_integrity:
        body["integrity"] = restore_mod._record_sha256(body)
    path.write_text(json.dumps(body))


async def test_damaged_record_is_refused_before_the_server_is_contacted(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        g = group_of(plan, "s11_large_plain.jpg")
        await restore(c, tmp_path / "b")
        (rec,) = record_files(tmp_path / "b")
        assert read_records(tmp_path / "b").pending == set()

        def point_at_winner(body: dict[str, Any]) -> None:
            body["mapping"][g.losers[0]] = g.winner

        rewrite_record(rec, point_at_winner, keep_integrity=False)
        n = len(fake.request_log)
        with pytest.raises(BackupError, match="edited or damaged"):
            await restore(c, tmp_path / "b")
        assert fake.request_log[n:] == []
        rec.write_text("{not json")
        with pytest.raises(BackupError, match="edited or damaged"):
            await restore(c, tmp_path / "b")
        assert fake.request_log[n:] == []


def test_damaged_record_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:

        async def go() -> None:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
                await executed(c, tmp_path / "b", force=True)
                fake.run_jobs()
                await restore(c, tmp_path / "b")

        asyncio.run(go())
        (rec,) = record_files(tmp_path / "b")
        rewrite_record(rec, lambda body: body.update(failed=0, actions=[]), keep_integrity=False)
        n = len(fake.request_log)
        code = cli.main(["-u", srv.url, "-a", fake.api_key, "restore", "-b", str(tmp_path / "b"), "--yes"])
        assert code == 2
        _, err = capsys.readouterr()
        assert "edited or damaged" in err
        assert str(rec) in err
        assert fake.request_log[n:] == []


async def test_recorded_winner_or_other_bytes_are_not_taken_as_the_copy(tmp_path: Path) -> None:
    """Even with a valid integrity: a recorded id that is a winner, or holds other bytes, is not used."""
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b")  # trash mode: the losers are in the trash
        g1, g2 = group_of(plan, "s11_large_plain.jpg"), group_of(plan, "s04_large_nodesc.jpg")
        l1, l2 = g1.losers[0], g2.losers[0]
        stranger = fake.find_asset("s10_upload_large.jpg")  # not in any backed-up group
        await restore(c, tmp_path / "b", dry_run=True)
        # A record (with a correct integrity) pointing one loser at its winner, one at a stranger.
        body: dict[str, Any] = {
            "created_at": "2000-01-01T00:00:00Z",
            "mapping": {l1: g1.winner, l2: stranger},
            "metadata_pending": [l1, l2],
        }
        body["integrity"] = restore_mod._record_sha256(body)
        (tmp_path / "b" / "restore-20000101T000000.000000Z.json").write_text(json.dumps(body))
        winner_before, stranger_before = fake.asset(g1.winner), fake.asset(stranger)
        stranger_albums = album_ids_of(fake, stranger)
        rep = await restore(c, tmp_path / "b")
    assert act_of(rep, l1)[:2] == ("from_trash", None)
    assert act_of(rep, l2)[:2] == ("from_trash", None)
    assert fake.asset(g1.winner) == winner_before
    assert fake.asset(stranger) == stranger_before
    assert album_ids_of(fake, stranger) == stranger_albums
    assert rep.failed == 0
    last = json.loads(record_files(tmp_path / "b")[-1].read_text())
    assert l1 not in last["mapping"]
    assert l2 not in last["mapping"]


async def test_later_restore_keeps_the_users_edits(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        loser = group_of(plan, "s11_large_plain.jpg").losers[0]  # a favorite, in an album
        first = await restore(c, tmp_path / "b")
        assert first.failed == 0
        _, new, _ = act_of(first, loser)
        assert new is not None
        assert fake.asset(new)["isFavorite"] is True
        fake.run_jobs()
        # The user edits the re-uploaded copy afterwards.
        fake.update_asset_metadata(new, isFavorite=False, description="my own words", visibility="archive")
        n = len(fake.request_log)
        again = await restore(c, tmp_path / "b")
        log = fake.request_log[n:]
    assert act_of(again, loser)[:2] == ("already_present", new)
    assert changing(log) == []
    a = fake.asset(new)
    assert a["isFavorite"] is False
    assert a["exifInfo"]["description"] == "my own words"
    assert a["visibility"] == "archive"


async def test_metadata_not_applied_is_applied_by_a_later_run_but_never_unlocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    async with connected(fake) as c:
        plan = await executed(c, tmp_path / "b", force=True)
        fake.run_jobs()
        loser = group_of(plan, "s11_large_plain.jpg").losers[0]  # a favorite, in an album
        album = manifest_asset(tmp_path / "b", loser).albums[0].id
        real_update, real_add = c.update_asset, c.add_to_album

        async def broken(album_id: str, ids: Sequence[str]) -> Any:
            raise ImmichError("album add refused (test)")

        monkeypatch.setattr(c, "add_to_album", broken)
        first = await restore(c, tmp_path / "b")
        action, new, detail = act_of(first, loser)
        assert action == "failed", detail
        records = read_records(tmp_path / "b")
        assert new is not None
        assert records.mapping[loser] == new  # uploaded and recorded, its metadata still to apply
        assert loser in records.pending
        monkeypatch.setattr(c, "add_to_album", real_add)
        assert album not in album_ids_of(fake, new)
        fake.run_jobs()
        # Meanwhile the user moved the copy to the Locked folder (reads still show it here).
        real_read = c.asset_or_none

        async def read(asset_id: str) -> Asset | None:
            got = await real_read(asset_id)
            if got is not None and asset_id == new:
                return got.model_copy(update={"visibility": Visibility.LOCKED})
            return got

        monkeypatch.setattr(c, "asset_or_none", read)
        sent: list[dict[str, Any]] = []

        async def update(asset_id: str, **fields: Any) -> Any:
            sent.append({"id": asset_id, **fields})
            return await real_update(asset_id, **fields)

        monkeypatch.setattr(c, "update_asset", update)
        second = await restore(c, tmp_path / "b")
        fake.run_jobs()
        n = len(sent)
        third = await restore(c, tmp_path / "b")
    assert act_of(second, loser)[:2] == ("already_present", new)
    assert second.failed == 0, [a for a in second.actions if a.action == "failed"]
    assert album in album_ids_of(fake, new)  # applied by the second run
    assert not [s for s in sent if "visibility" in s]  # the Locked copy stays locked
    assert loser not in read_records(tmp_path / "b").pending
    assert sent[n:] == []  # the third run applies nothing
    assert third.failed == 0


# --------------------------------------------------------------------------- d: same photo elsewhere


async def test_same_photo_under_another_asset_fails_with_exit_1(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:
        async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
            plan = await executed(c, tmp_path / "b", force=True)
            fake.run_jobs()
            loser = group_of(plan, "s11_large_plain.jpg").losers[0]
            ma = manifest_asset(tmp_path / "b", loser)
            other = await c.upload(
                BackupStore.open_existing(tmp_path / "b").resolve_file(ma.file), filename="again.jpg",
                file_created_at=datetime(2020, 1, 1, tzinfo=UTC),
                file_modified_at=datetime(2020, 1, 1, tzinfo=UTC), checksum=ma.sha1_b64,
            )
        code = await _cli_in_thread(srv.url, fake.api_key, tmp_path / "b")
    assert code == 1
    assert fake.asset(other.id)["isFavorite"] is False
    assert album_ids_of(fake, other.id) == set()
    assert len(losers_of(plan)) > 1


async def _cli_in_thread(url: str, key: str, backup: Path) -> int:

    return await asyncio.to_thread(cli.main, ["-u", url, "-a", key, "restore", "-b", str(backup), "--yes"])


# --------------------------------------------------------------------------- the backup directory's lock


def test_restore_refuses_a_backup_another_run_is_using(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    from immich_dupes.engine.backup import BackupLocked, lock_backup_dir

    fake = FakeImmich(library="sample", profile="v3")
    with FakeServer(fake, port=0) as srv:

        async def go() -> None:
            async with ImmichClient(srv.url, fake.api_key, rate_limit=10_000, concurrency=8) as c:
                await executed(c, tmp_path / "b", force=True)
                fake.run_jobs()
                with lock_backup_dir(tmp_path / "b"):  # an execute or restore still running
                    with pytest.raises(BackupLocked, match="another execute or restore"):
                        await restore(c, tmp_path / "b")
                    with pytest.raises(BackupLocked):
                        await restore(c, tmp_path / "b", dry_run=True)

        asyncio.run(go())
        n = len(fake.request_log)
        with lock_backup_dir(tmp_path / "b"):
            code = cli.main(["-u", srv.url, "-a", fake.api_key, "restore", "-b", str(tmp_path / "b"), "--yes"])
        assert code == 2
        _, err = capsys.readouterr()
        assert "another execute or restore" in err
        assert fake.request_log[n:] == []  # refused before the server is contacted
        assert record_files(tmp_path / "b") == []
        # Released: the restore runs.
        assert cli.main(["-u", srv.url, "-a", fake.api_key, "restore", "-b", str(tmp_path / "b"), "--yes"]) == 0
