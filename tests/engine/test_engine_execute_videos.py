"""Live-photo videos in execute's preview and its free-disk check.

Execute backs up each loser's hidden motion video with its still, but the plan has no size for
those videos (``/duplicates`` never lists them): the preview counts them and estimates each at
the size of its still, and the disk check before anything is sent counts that estimate too
(minus the videos a resumed run already backed up). Against the sample library, with extra
live photos made through the API (a hidden video uploaded, then linked to a loser).
"""

from __future__ import annotations

import shutil
from collections import namedtuple
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from journal_kill import Killed, kill_after

import immich_dupes.engine.execute as execute_module
from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, Plan
from immich_dupes.commands.execute import describe_preview
from immich_dupes.engine.backup import JOURNAL_NAME, BackupStore
from immich_dupes.engine.execute import (
    ExecuteOptions,
    ExecutePreview,
    ExecuteRefused,
    execute,
    load_states,
    preflight,
    preview,
)
from immich_dupes.engine.journal import read_entries
from immich_dupes.fake import FakeImmich
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.jobs import describe_execute

ClientFactory = Callable[..., ImmichClient]
MakePlan = Callable[..., Awaitable[Plan]]

LIVE = "s15_plain_copy.jpg"
"""The sample's live-photo group (by its winner): its loser ``s15_live_still.jpg`` has a video."""
EASY = "s11_large_plain.jpg"
"""A group of two plain copies: its loser is made a live photo here."""
THREE = "s05_a_large_dateonly.jpg"
"""The group of three copies: both its losers are made live photos of one video here."""
Usage = namedtuple("Usage", "total used free")


# --------------------------------------------------------------------------- helpers


def group_of(plan: Plan, winner_file: str) -> GroupPlan:
    return next(g for g in plan.groups if g.winner_asset.file_name == winner_file)


def need_for(remaining: int) -> int:
    """What the disk check asks for ``remaining`` bytes of backups (its margin included)."""
    return int(remaining * (1 + execute_module.DISK_MARGIN_FRACTION)) + execute_module.DISK_MARGIN_BYTES


def set_free(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(10**13, 10**13 - free, free))


async def add_live_video(client: ImmichClient, fake: FakeImmich, stills: Iterable[str], tmp_path: Path,
                         name: str) -> str:
    """A new hidden motion video (the sample's, made unique), linked to each of ``stills``."""
    src = tmp_path / name
    src.write_bytes(fake.file_bytes(fake.find_asset("s15_live_motion.mov")) + name.encode())
    when = datetime(2021, 6, 12, 17, 45, tzinfo=UTC)
    up = await client.upload(src, filename=name, file_created_at=when, file_modified_at=when, visibility="hidden")
    assert up.status == "created"
    for still in stills:
        await client.update_asset(still, livePhotoVideoId=up.id)
    return up.id


async def live_library(fake_client: ClientFactory, tmp_path: Path, *, three: bool = False) -> FakeImmich:
    """The sample library with EASY's loser a live photo too (and, with ``three``, both losers
    of the three-copy group sharing one more video): live-photo losers in several groups."""
    fake = FakeImmich(library="sample")
    client = fake_client(fake)
    await client.connect()
    groups = [[a["originalFileName"] for a in g["assets"]] for g in fake.groups()]

    def losers_of(winner_file: str) -> list[str]:
        names = next(n for n in groups if winner_file in n)
        return [fake.find_asset(n) for n in names if n != winner_file]

    await add_live_video(client, fake, losers_of(EASY), tmp_path, "IMG_0011.MOV")
    if three:
        await add_live_video(client, fake, losers_of(THREE), tmp_path, "IMG_0005.MOV")
    return fake


def expected_videos(fake: FakeImmich, plan: Plan, acted: Iterable[GroupPlan]) -> dict[tuple[str, str], int]:
    """From the server: (group, video id) → the largest size of a loser still linked to it."""
    out: dict[tuple[str, str], int] = {}
    for g in acted:
        for i in g.losers:
            a = fake.asset(i)
            if a.get("livePhotoVideoId"):
                key = (g.duplicate_id, a["livePhotoVideoId"])
                out[key] = max(out.get(key, 0), a["exifInfo"]["fileSizeInByte"])
    return out


def resolved(plan: Plan) -> list[GroupPlan]:
    """The groups an accepted sample plan resolves (external losers stay, as analyze left them)."""
    return [g for g in plan.groups
            if g.action is Action.RESOLVE and not any(g.asset(i).is_external for i in g.losers)]


def video_backups(backup: Path) -> set[tuple[str, str]]:
    """(group, video id) of every live-photo video backup the journal records."""
    return {(str(e["group"]), str(e["asset"])) for e in read_entries(backup / JOURNAL_NAME)
            if e["kind"] == "backed_up" and e.get("video_of")}


# --------------------------------------------------------------------------- the preview


async def test_the_preview_counts_the_live_photo_videos_execute_backs_up(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = await live_library(fake_client, tmp_path, three=True)
    plan = await make_plan(fake)
    backup = tmp_path / "backup"
    pv = preview(plan, ExecuteOptions(backup))

    want = expected_videos(fake, plan, resolved(plan))
    assert len(want) == 3  # s15's own, EASY's, and one shared by both losers of THREE
    assert pv.live_videos == len(want)
    assert pv.video_bytes_estimate == sum(want.values())
    # The stills' bytes are as before: the videos are counted apart.
    assert pv.bytes_to_backup == sum(g.asset(i).file_size or 0 for g in resolved(plan) for i in g.losers)

    events: list[Any] = []
    rep = await execute(fake_client(fake), plan, ExecuteOptions(backup), report=events.append)
    assert rep.failed == 0, [o.reason for o in rep.outcomes if o.status == "failed"]
    assert video_backups(backup) == set(want)
    # The progress total counts the videos too, as estimated in the preview.
    totals = {e.bytes_total for e in events if e.phase == "backup" and e.bytes_total}
    assert totals == {pv.bytes_to_backup + pv.video_bytes_estimate}
    manifests = {m.duplicate_id: m for m in BackupStore.open_existing(backup).manifests()}
    for gid, vid in want:
        assert vid in {a.live_photo_video.asset_id for a in manifests[gid].losers if a.live_photo_video}


async def test_the_preview_counts_only_videos_of_groups_this_run_acts_on(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = await live_library(fake_client, tmp_path)
    plan = await make_plan(fake)
    options = ExecuteOptions(tmp_path / "backup", skip_review=True)
    live, easy = group_of(plan, LIVE), group_of(plan, EASY)
    est = {g.duplicate_id: sum(g.asset(i).file_size or 0 for i in g.losers) for g in (live, easy)}
    assert all(est.values())
    full = preview(plan, options)
    assert (full.live_videos, full.video_bytes_estimate) == (2, sum(est.values()))

    skip_live = plan.model_copy(deep=True)
    skip_live.groups = [decide.set_action(g, Action.SKIP) if g.duplicate_id == live.duplicate_id else g
                        for g in skip_live.groups]
    pv = preview(skip_live, options)
    assert (pv.live_videos, pv.video_bytes_estimate) == (1, est[easy.duplicate_id])

    # Live-photo groups need review: unreviewed, --skip-review leaves them (and their videos) alone.
    unreviewed = await make_plan(fake, accept=False)
    assert group_of(unreviewed, LIVE).needs_review
    assert group_of(unreviewed, EASY).needs_review
    pv = preview(unreviewed, options)
    assert (pv.live_videos, pv.video_bytes_estimate) == (0, 0)
    assert pv.bytes_to_backup > 0


# --------------------------------------------------------------------------- the disk check


async def test_room_for_the_stills_but_not_the_videos_is_refused_before_any_request(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await live_library(fake_client, tmp_path)
    plan = await make_plan(fake)
    backup = tmp_path / "backup"
    pv = preview(plan, ExecuteOptions(backup))
    assert pv.live_videos == 2
    need = need_for(pv.bytes_to_backup + pv.video_bytes_estimate)
    assert need_for(pv.bytes_to_backup) < need - 1  # the stills alone would fit

    set_free(monkeypatch, need - 1)
    before = len(fake.request_log)
    with pytest.raises(ExecuteRefused, match="not enough free disk space") as e:
        await execute(fake_client(fake), plan, ExecuteOptions(backup))
    assert fake.request_log[before:] == []
    assert not backup.exists()
    msg = str(e.value)
    assert "\n" not in msg
    assert "2 live-photo video(s), estimated at the size of their stills" in msg

    # Room for both: it runs, and backs up every video.
    set_free(monkeypatch, need)
    rep = await execute(fake_client(fake), plan, ExecuteOptions(backup))
    assert rep.failed == 0, [o.reason for o in rep.outcomes if o.status == "failed"]
    assert len(video_backups(backup)) == 2


async def test_a_refusal_without_live_photo_videos_says_nothing_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_client: ClientFactory, make_plan: MakePlan
) -> None:
    fake = FakeImmich(library="sample")
    plan = await make_plan(fake)
    plan.groups = [decide.set_action(g, Action.SKIP) if g.winner_asset.file_name == LIVE else g
                   for g in plan.groups]
    options = ExecuteOptions(tmp_path / "backup")
    pv = preview(plan, options)
    assert pv.live_videos == 0
    set_free(monkeypatch, need_for(pv.bytes_to_backup) - 1)
    with pytest.raises(ExecuteRefused, match=r"\(losers plus a margin\)") as e:
        preflight(plan, options)
    assert "live-photo" not in str(e.value)
    set_free(monkeypatch, need_for(pv.bytes_to_backup))
    assert preflight(plan, options).live_videos == 0


async def test_a_resumed_run_subtracts_the_live_photo_videos_it_already_backed_up(
    tmp_path: Path, fake_client: ClientFactory, make_plan: MakePlan, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = await live_library(fake_client, tmp_path)
    plan = await make_plan(fake)
    backup = tmp_path / "backup"
    live, easy = group_of(plan, LIVE), group_of(plan, EASY)
    (still,) = live.losers
    vid = live.asset(still).live_photo_video_id
    assert vid
    # A first run that only gets as far as the live group's backups (still and video).
    only_live = plan.model_copy(deep=True)
    only_live.groups = [g if g.duplicate_id == live.duplicate_id else decide.set_action(g, Action.SKIP)
                        for g in only_live.groups]
    with monkeypatch.context() as m:
        kill_after(m, "backed_up", live.duplicate_id)
        with pytest.raises(Killed):
            await execute(fake_client(fake), only_live, ExecuteOptions(backup))
    st = load_states(read_entries(backup / JOURNAL_NAME))[live.duplicate_id]
    assert set(st.backed_up) == {still, vid}
    video = st.backed_up[vid]
    assert video.video_of == still
    assert 0 < video.size <= (live.asset(still).file_size or 0)

    options = ExecuteOptions(backup)
    pv = preflight(plan, options)
    assert pv.live_videos == 2  # the preview counts the whole run; the check what is left
    assert pv.video_bytes_estimate == (live.asset(still).file_size or 0) + (easy.asset(easy.losers[0]).file_size or 0)
    remaining = (
        pv.bytes_to_backup - st.backed_up[still].size  # the still is on disk
        + pv.video_bytes_estimate - video.size  # so is the video: never more than its estimate off
    )
    assert remaining > (easy.asset(easy.losers[0]).file_size or 0)
    set_free(monkeypatch, need_for(remaining) - 1)
    with pytest.raises(ExecuteRefused, match="not enough free disk space") as e:
        preflight(plan, options)
    assert "1 live-photo video(s), estimated" in str(e.value)  # EASY's: s15's is on disk
    set_free(monkeypatch, need_for(remaining))
    assert preflight(plan, options).live_videos == 2

    rep = await execute(fake_client(fake), plan, options)
    assert rep.failed == 0, [o.reason for o in rep.outcomes if o.status == "failed"]
    assert len(video_backups(backup)) == 2


# --------------------------------------------------------------------------- the confirmation texts


def _pv(videos: int, video_bytes: int) -> ExecutePreview:
    return ExecutePreview(groups_to_resolve=3, groups_to_dismiss=0, groups_to_stack=0, groups_skipped=0,
                          losers=4, bytes_to_backup=1_200_000_000, backup_dir=Path("/b"), force=False,
                          unreviewed=0, live_videos=videos, video_bytes_estimate=video_bytes)


def test_the_confirmation_texts_mention_the_videos_only_when_there_are_any() -> None:
    plain = _pv(0, 0)
    assert describe_preview(plain, False).splitlines()[0] == (
        "3 group(s) to resolve: back up and move to the Immich trash 4 loser(s) (1.2 GB of originals)"
    )
    assert " backed up to /b (1.2 GB),\n" in describe_execute(plain, "http://h/api", "me").plain

    live = _pv(340, 900_000_000)
    assert describe_preview(live, False).splitlines()[0] == (
        "3 group(s) to resolve: back up and move to the Immich trash 4 loser(s) "
        "(1.2 GB of originals, plus 340 live-photo video(s), about 900.0 MB estimated)"
    )
    assert (" backed up to /b (1.2 GB, plus 340 live-photo videos, about 900.0 MB estimated),\n"
            in describe_execute(live, "http://h/api", "me").plain)
    assert "plus 1 live-photo video, about" in describe_execute(_pv(1, 5), "http://h/api", "me").plain
