"""The review app's pure parts: session state, formatting, the thumbnail cache, job texts."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage
from tui_plans import asset, build_plan

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action
from immich_dupes.engine.execute import ExecutePreview, ExecuteReport, GroupOutcome
from immich_dupes.engine.restore import KeeperValue, RestoreReport
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui import format as F
from immich_dupes.tui import images
from immich_dupes.tui.jobs import describe_execute, summarize_execute, summarize_restore
from immich_dupes.tui.screens.run import PhaseState, eta_text
from immich_dupes.tui.state import Filter, ReviewState, Sort, Status, group_status, is_safe
from immich_dupes.tui.thumbs import Pictures, ThumbnailCache, cache_key
from immich_dupes.tui.widgets.group_list import group_line, reason_codes


def state_for(kinds: list[str], tmp_path: Path) -> ReviewState:
    return ReviewState.open(build_plan(kinds), tmp_path / "plan.json")


# ---------------------------------------------------------------------- state


def test_open_starts_on_the_todo_list(tmp_path: Path) -> None:
    assert state_for(["safe", "gps"], tmp_path).filter is Filter.NEEDS_REVIEW
    assert state_for(["safe", "safe"], tmp_path).filter is Filter.ALL


def test_filters_and_statuses(tmp_path: Path) -> None:
    st = state_for(["gps", "safe", "tz"], tmp_path)
    st.edit(2, decide.accept, "accept")
    assert [group_status(g) for g in st.plan.groups] == [Status.NEEDS_REVIEW, Status.AUTO, Status.REVIEWED]
    for flt, expected in [
        (Filter.NEEDS_REVIEW, [0]),
        (Filter.UNDECIDED, [0, 1]),
        (Filter.DECIDED, [2]),  # the safe group nobody confirmed is undecided, not decided
        (Filter.ALL, [0, 1, 2]),
    ]:
        st.filter = flt
        st.sort = Sort.DATE
        assert st.recompute() == expected, flt
    st.edit(0, lambda g: decide.set_action(g, Action.SKIP), "skip")
    assert group_status(st.plan.groups[0]) is Status.SKIPPED
    assert not is_safe(st.plan.groups[0])
    assert is_safe(st.plan.groups[1])


def test_sort_conflicts_first_then_plan_order(tmp_path: Path) -> None:
    st = state_for(["safe", "gps", "safe", "tz"], tmp_path)
    st.filter = Filter.ALL
    assert st.recompute() == [1, 3, 0, 2]


def test_undo_is_a_stack_and_bulk_edits_undo_together(tmp_path: Path) -> None:
    st = state_for(["gps", "safe", "safe"], tmp_path)
    original = list(st.plan.groups)
    st.edit(0, lambda g: decide.set_action(g, Action.KEEP_ALL), "not dupes")
    changed = st.edit_many(range(3), lambda g: decide.accept(g) if is_safe(g) else g, "accept safe")
    assert changed == [1, 2]
    assert st.version == 2
    entry = st.undo()
    assert entry is not None
    assert entry.label == "accept safe"
    assert st.plan.groups[1:] == original[1:]
    assert st.plan.groups[0].action is Action.KEEP_ALL
    st.undo()
    assert st.plan.groups == original
    assert st.undo() is None


def test_an_edit_that_changes_nothing_is_not_recorded(tmp_path: Path) -> None:
    st = state_for(["gps"], tmp_path)
    g = st.plan.groups[0]
    st.edit(0, lambda x: decide.toggle_keep(x, g.winner), "noop")
    assert st.undo_stack == []
    assert not st.dirty


def test_snapshot_is_not_changed_by_later_edits(tmp_path: Path) -> None:
    st = state_for(["gps"], tmp_path)
    snap, version = st.snapshot()
    st.edit(0, decide.accept, "accept")
    assert not snap.groups[0].reviewed
    st.write(snap, st.path)
    st.mark_saved(version)
    assert st.dirty  # the accept came after the snapshot
    st.save()
    assert not st.dirty


def test_next_needing_review_wraps(tmp_path: Path) -> None:
    st = state_for(["gps", "safe", "tz"], tmp_path)
    st.filter, st.sort = Filter.ALL, Sort.DATE
    st.recompute()
    assert st.next_needing_review(0) == 2
    assert st.next_needing_review(2) == 0
    st.edit(0, decide.accept, "a")
    st.edit(2, decide.accept, "a")
    assert st.next_needing_review(1) is None


# ---------------------------------------------------------------------- formatting


def test_dates_are_shown_as_local_time_with_offset() -> None:
    a = asset(0, 0, captured_at=datetime(2019, 7, 4, 16, 30, tzinfo=UTC), utc_offset_minutes=120)
    assert F.when(a) == "2019-07-04 18:30:00 +02:00"
    b = asset(0, 1, time_zone=None, utc_offset_minutes=None)
    assert F.when(b).endswith("UTC?")
    assert F.zone(a) == "Europe/Berlin (+02:00)"


def test_diff_rows_mark_differences_conflicts_and_sources(tmp_path: Path) -> None:
    g = build_plan(["gps"]).groups[0]
    rows = {r.key: r for r in F.diff_rows(g)}
    assert rows["gps"].conflict
    assert rows["gps"].differs
    assert rows["gps"].values[1].startswith("↔504.3 km 52.5200, 13.4050 Berlin")
    assert rows["gps"].source == 0
    assert rows["description"].source == 1
    assert rows["description"].result == "Brandenburg Gate"
    assert not rows["date"].differs
    assert rows["dimensions"].differs
    assert rows["albums"].values == ("—", "Trip")
    assert rows["library"].result == F.NONE
    ext = {r.key: r for r in F.diff_rows(build_plan(["external"]).groups[0])}
    assert ext["library"].result == "external copies kept"


def test_group_line_and_codes() -> None:
    plan = build_plan(["gps", "tz", "safe", "external"])
    assert [reason_codes(g) for g in plan.groups] == ["G", "Z", "", "E"]
    line = group_line(plan.groups[0]).plain
    assert line.startswith("● G")
    assert "IMG_0000_0.jpg" in line
    assert "×2" in line
    assert "2019-07-04" in line


def test_badges() -> None:
    a = asset(0, 0, is_favorite=True, rating=3, library_id="22222222-2222-4222-8222-222222222222",
              live_photo_video_id="33333333-3333-4333-8333-333333333333", visibility="archive")
    assert F.badges(a) == ["external library", "live photo", "♥ favorite", "★★★", "archive"]


def test_eta() -> None:
    st = PhaseState(started=100.0, done=25, total=100)
    assert eta_text(st, 110.0) == "ETA 30s"
    st.bytes_total, st.bytes_done = 1000, 900
    assert eta_text(st, 110.0) == "ETA 1s"
    assert eta_text(PhaseState(started=0.0, done=0, total=10), 5.0) == "ETA …"


def test_image_protocols_map_to_textual_image_classes() -> None:
    assert images.prepare("none") is None
    cls = images.prepare("halfcell")
    assert cls is not None
    assert images.describe(cls) == "halfcell"
    assert images.describe(images.prepare("kitty")) == "kitty"
    with pytest.raises(images.ImageProtocolError):
        images.prepare("ascii-art")


# ---------------------------------------------------------------------- job texts


def test_execute_description_says_trash_or_permanent() -> None:
    pv = ExecutePreview(groups_to_resolve=3, groups_to_dismiss=1, groups_to_stack=0, groups_skipped=2,
                        losers=4, bytes_to_backup=12_000_000, backup_dir=Path("/b"), force=False,
                        unreviewed=2)
    text = describe_execute(pv, "http://h/api", "me@x").plain
    assert "3 groups resolved" in text
    assert "4 copies" in text
    assert "/b (12.0 MB)" in text
    assert "moved to the Immich trash" in text
    assert "2 still need review" in text
    pv.force = True
    assert "PERMANENTLY DELETED" in describe_execute(pv, "http://h/api", "").plain


def test_execute_summary_lists_failures() -> None:
    rep = ExecuteReport(outcomes=[
        GroupOutcome("g1", "done", trashed=["a", "b"]),
        GroupOutcome("g2", "failed", "backup checksum mismatch"),
        GroupOutcome("g3", "skipped", "the plan says skip"),
    ], requests=12, bytes_backed_up=2_000_000, seconds=1.5)
    text = summarize_execute(rep).plain
    assert "1 group failed" in text
    assert "1 group done, 1 skipped, 1 failed · 2 copies moved to the trash" in text
    assert "g2: backup checksum mismatch" in text


def test_execute_texts_count_one_in_the_singular() -> None:
    pv = ExecutePreview(groups_to_resolve=1, groups_to_dismiss=1, groups_to_stack=0, groups_skipped=0,
                        losers=1, bytes_to_backup=1_000, backup_dir=Path("/b"), force=False,
                        unreviewed=0)
    text = describe_execute(pv, "http://h/api", "").plain
    assert "1 group resolved: 1 copy backed up" in text
    assert "1 group dismissed as not duplicates" in text


def test_execute_confirmation_names_the_external_copies_it_deletes() -> None:
    """Walkthrough 4b: with f (permanent delete) and a copy allowed with X, the dialog said
    nothing of the file on the user's disk, nor that restore brings it back as an upload."""
    pv = ExecutePreview(groups_to_resolve=14, groups_to_dismiss=0, groups_to_stack=0, groups_skipped=0,
                        losers=15, bytes_to_backup=1_000, backup_dir=Path("/b"), force=True,
                        unreviewed=0, external_losers=1)
    text = describe_execute(pv, "http://h/api", "").plain
    assert ("PERMANENTLY DELETED (not the trash: only the backup can bring them back).\n"
            "  1 of them is an external-library copy: Immich deletes its file from the library "
            "folder on your disk now") in text
    assert "restore brings such a copy back only as an ordinary upload, not into its external library" in text
    pv.force, pv.external_losers = False, 2
    text = describe_execute(pv, "http://h/api", "").plain
    assert ("2 of them are external-library copies: when the trash is emptied, Immich deletes their "
            "files from the library folder on your disk") in text
    pv.external_losers = 0
    assert "external" not in describe_execute(pv, "http://h/api", "").plain


def test_execute_summary_counts_groups_done_before_apart() -> None:
    """Run again after a restore: this run did nothing, whatever the earlier one trashed."""
    rep = ExecuteReport(outcomes=[
        GroupOutcome("g1", "done", trashed=["a", "b"], earlier=True),
        GroupOutcome("g2", "done", trashed=["c"], earlier=True),
        GroupOutcome("g3", "skipped", "the plan says skip"),
    ], requests=0, bytes_backed_up=0, seconds=0.1)
    text = summarize_execute(rep).plain
    assert "0 groups done, 1 skipped, 0 failed · 0 copies moved to the trash" in text
    assert "2 groups done by an earlier run into this backup folder: left as they are" in text


def test_execute_summary_says_why_the_run_stopped() -> None:
    why = "stopped before this group finished: the backup disk is full; run again to resume"
    rep = ExecuteReport(outcomes=[
        GroupOutcome("g1", "done", trashed=["a"]),
        GroupOutcome("g2", "skipped", why),
        GroupOutcome("g3", "skipped", why),
    ], requests=5, bytes_backed_up=1_000, seconds=0.5)
    rep.stopped = "execute stopped early: the backup disk is full (…); 1 group(s) done, 2 left"
    rep.stopped_reason = why
    text = summarize_execute(rep).plain
    assert text.startswith("Execute stopped early")
    assert "the backup disk is full (…); 1 group(s) done, 2 left" in text
    assert "skipped 2" not in text  # said once, in the stop message


# ---------------------------------------------------------------------- thumbnails


def png(color: str, size: tuple[int, int] = (400, 300)) -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def test_cache_key_includes_size_and_checksum() -> None:
    a = asset(0, 0)
    assert cache_key(a, "thumbnail") != cache_key(a, "preview")
    assert cache_key(a, "thumbnail") != cache_key(a.model_copy(update={"checksum": "other"}), "thumbnail")


async def test_memory_lru_is_bounded(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path, memory_bytes=3 * 320 * 240 * 3)
    assets = [asset(i, 0) for i in range(5)]
    for a in assets:
        await cache.store(a, "thumbnail", png("red"))
    assert len(cache) == 3
    assert cache.memory_used <= cache.memory_bytes
    assert cache.get(assets[0], "thumbnail") is None
    assert cache.get(assets[4], "thumbnail") is not None
    # evicted from memory, still on disk
    img = await cache.from_disk(assets[0], "thumbnail")
    assert img is not None
    assert max(img.size) <= 320


async def test_corrupt_cache_file_is_dropped(tmp_path: Path) -> None:
    cache = ThumbnailCache(tmp_path)
    a = asset(0, 0)
    path = cache.path_for(a, "thumbnail")
    assert path is not None
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a picture")
    assert await cache.from_disk(a, "thumbnail") is None
    assert not path.exists()


async def test_pictures_remember_a_missing_thumbnail(tmp_path: Path) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path.endswith("/thumbnail"):
            return httpx.Response(404, json={"message": "Asset media not found", "statusCode": 404})
        return httpx.Response(404)

    pictures = Pictures(ThumbnailCache(tmp_path))
    async with ImmichClient("http://h", "k", transport=httpx.MockTransport(handler)) as client:
        pictures.client = client
        a = asset(0, 0)
        img, why = await pictures.get(a, "thumbnail")
        assert img is None
        assert "404" in why
        again, why2 = await pictures.get(a, "thumbnail")
        assert again is None
        assert why2 == why
    assert len(calls) == 1


async def test_pictures_without_a_server_say_why(tmp_path: Path) -> None:
    pictures = Pictures(ThumbnailCache(None))
    pictures.unavailable = "offline mode"
    img, why = await pictures.get(asset(0, 0), "thumbnail")
    assert img is None
    assert why == "no picture: offline mode"


def test_counts_follow_edits_and_undo(tmp_path: Path) -> None:
    st = state_for(["gps", "safe", "tz"], tmp_path)

    def walk() -> dict[Status, int]:
        out = dict.fromkeys(Status, 0)
        for g in st.plan.groups:
            out[group_status(g)] += 1
        return out

    assert st.counts() == walk()
    st.edit(0, lambda g: decide.set_action(g, Action.STACK), "stack")
    st.edit_many([1, 2], decide.accept, "accept")
    assert st.counts() == walk()
    assert st.counts()[Status.REVIEWED] == 2
    st.undo()
    st.undo()
    assert st.counts() == walk()
    assert st.counts()[Status.NEEDS_REVIEW] == 2


def test_read_plan_refuses_what_load_plan_refuses(tmp_path: Path) -> None:
    import json

    from immich_dupes.analysis.plan import PlanError, save_plan
    from immich_dupes.tui.app import read_plan

    good = tmp_path / "plan.json"
    save_plan(build_plan(["gps", "safe"]), good)
    assert read_plan(good).total_groups == 2
    raw = json.loads(good.read_text())
    edits: dict[str, Callable[[dict[str, Any]], object]] = {
        "no_version": lambda d: d.pop("schema_version"),
        "string_version": lambda d: d.__setitem__("schema_version", "1"),
        "extra_field": lambda d: d.__setitem__("delete_everything", True),
        "bad_winner": lambda d: d["groups"][0].__setitem__("winner", d["groups"][1]["winner"]),
    }
    for name, edit in edits.items():
        broken = json.loads(json.dumps(raw))
        edit(broken)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(broken))
        with pytest.raises(PlanError):
            read_plan(path)


def test_restore_summary_lists_the_keepers_values_execute_wrote_over() -> None:
    rep = RestoreReport(keepers=[
        KeeperValue("g1", "w1", "sunset.jpg", "description", "Sunset over the bay"),
        KeeperValue("g1", "w1", "sunset.jpg", "GPS", "52.520000, 13.405000"),
    ])
    text = summarize_restore(rep).plain
    assert "execute wrote over 2 values of their own on 1 keeper" in text
    assert "sunset.jpg: description was 'Sunset over the bay'" in text
    assert "sunset.jpg: GPS was '52.520000, 13.405000'" in text
    assert "wrote over" not in summarize_restore(RestoreReport()).plain
