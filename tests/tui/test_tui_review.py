"""Pilot tests: press the review keys, then assert the plan that was saved to disk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot

from immich_dupes.analysis.plan import Action, load_plan
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.app import ReviewApp, make_app
from immich_dupes.tui.screens.confirm import ConfirmScreen
from immich_dupes.tui.screens.help import HelpScreen
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.state import Filter, ReviewState, Sort
from immich_dupes.tui.widgets.asset_card import CardRow
from immich_dupes.tui.widgets.diff_table import DiffTable
from immich_dupes.tui.widgets.group_list import GroupList

SIZE = (180, 50)
PlanFile = Callable[[list[str]], Path]
Settle = Callable[[Pilot[int]], Awaitable[None]]


def offline_app(path: Path, tmp_path: Path, **kw: object) -> ReviewApp:
    return make_app(path, image_protocol="halfcell", offline=True, cache_dir=tmp_path / "cache", **kw)  # type: ignore[arg-type]


def flt(app: ReviewApp) -> Filter:
    return app.state.filter


def srt(app: ReviewApp) -> Sort:
    return app.state.sort


def main_screen(app: ReviewApp) -> MainScreen:
    screen = app.main
    assert screen is not None
    return screen


async def test_keeper_override_is_saved(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    before = load_plan(path).groups[0]
    second = before.assets[1].id
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "w")
        await pilot.pause()
        assert main_screen(app).current is not None
        await pilot.press("q")
    saved = load_plan(path).groups[0]
    assert before.winner != second
    assert saved.winner == second
    assert saved.keep == [second]
    assert saved.losers == [before.winner]
    assert saved.winner_reason == "chosen in review"


async def test_field_source_choice_then_accept(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    g = load_plan(path).groups[0]
    berlin = g.assets[1]
    assert g.sources.gps == g.winner  # default: the keeper's own position
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "g", "a")
        await pilot.press("q")
    saved = load_plan(path).groups[0]
    assert saved.sources.gps == berlin.id
    assert saved.consolidated.latitude == berlin.latitude
    assert saved.consolidated.longitude == berlin.longitude
    assert saved.reviewed
    assert saved.winner == g.winner


async def test_source_on_the_keeper(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    g = load_plan(path).groups[0]
    assert g.sources.description == g.assets[1].id  # the keeper has none: the loser's by default
    assert g.consolidated.description == "Brandenburg Gate"
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "g")  # GPS from the loser…
        await pilot.press("h", "g")  # …then back to the keeper's own
        await pilot.press("e")  # the keeper has no description: carry none over
        await pilot.press("q")
    saved = load_plan(path).groups[0]
    assert saved.sources.gps == g.winner
    assert saved.consolidated.latitude == g.winner_asset.latitude
    assert saved.sources.description is None
    assert saved.consolidated.description is None


async def test_source_from_an_asset_without_the_field_is_refused(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["safe"])  # no GPS anywhere
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("l", "g")
        await pilot.pause()
        assert any("no GPS" in n.message for n in app._notifications)
        assert not app.state.dirty
        await pilot.press("q")
    assert load_plan(path).groups[0].sources.gps is None


async def test_not_duplicates_skip_and_stack(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps", "tz", "external"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        order = list(app.state.order)
        # each decision moves on to the next group in the list
        await pilot.press("x", "s", "S", "q")
    groups = load_plan(path).groups
    actions = [groups[i].action for i in order]
    assert actions == [Action.KEEP_ALL, Action.SKIP, Action.STACK]
    assert all(groups[i].reviewed for i in order)
    assert all(g.bytes_freed == 0 for g in groups)


async def test_partial_keep_toggle(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["tz"])  # three assets
    g = load_plan(path).groups[0]
    second, third = g.assets[1].id, g.assets[2].id
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("l", "t")
        await pilot.pause()
        cards = main_screen(app).query_one(CardRow).cards
        assert "KEEP" in str(cards[1].border_title)
        assert "TRASH" in str(cards[2].border_title)
        assert cards[1].has_class("keep")
        assert cards[2].has_class("trash")
        await pilot.press("q")
    saved = load_plan(path).groups[0]
    assert saved.keep == [g.winner, second]
    assert saved.losers == [third]
    assert saved.bytes_freed == g.asset(third).file_size


async def test_toggle_on_the_keeper_changes_nothing(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("t")
        assert not app.state.dirty
        await pilot.press("q")


async def test_accept_all_safe_and_undo(plan_file: PlanFile, tmp_path: Path, settle: Settle) -> None:
    path = plan_file(["gps", "safe", "safe", "tz"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("A")
        await pilot.pause()
        assert [g.reviewed for g in app.state.plan.groups] == [False, True, True, False]
        await pilot.press("ctrl+s")
        await settle(pilot)
        on_disk = load_plan(path)
        assert [g.reviewed for g in on_disk.groups] == [False, True, True, False]
        await pilot.press("u", "q")
    assert [g.reviewed for g in load_plan(path).groups] == [False, False, False, False]


async def test_undo_restores_the_previous_decision(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps", "tz"])
    original = load_plan(path)
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        first = app.state.order[0]
        await pilot.press("l", "w")  # keeper override
        await pilot.press("x")  # not duplicates (moves on)
        await pilot.press("u")  # back to the override
        await pilot.pause()
        assert main_screen(app).current_index == first
        await pilot.press("q")
    g = load_plan(path).groups[first]
    assert g.action is Action.RESOLVE
    assert g.winner == original.groups[first].assets[1].id
    assert not g.reviewed


async def test_filters(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps", "safe", "tz", "safe", "external"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        lst = main_screen(app).query_one(GroupList)
        assert flt(app) is Filter.NEEDS_REVIEW
        assert lst.option_count == 3
        await pilot.press("a")  # accept the first flagged group
        await pilot.press("v")
        assert flt(app) is Filter.UNDECIDED
        assert lst.option_count == 4
        await pilot.press("v")
        assert flt(app) is Filter.DECIDED
        assert lst.option_count == 1  # the accepted one; the safe ones nobody confirmed are undecided
        await pilot.press("v")
        assert flt(app) is Filter.ALL
        assert lst.option_count == 5
        await pilot.press("v")
        assert flt(app) is Filter.NEEDS_REVIEW
        assert lst.option_count == 2
        await pilot.press("q")


async def test_sorts(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["safe", "tz", "gps", "safe"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v", "v", "v")  # all
        groups = app.state.plan.groups
        assert srt(app) is Sort.CONFLICTS
        assert [groups[i].needs_review for i in app.state.order] == [True, True, False, False]
        await pilot.press("o")
        assert srt(app) is Sort.BYTES
        freed = [groups[i].bytes_freed for i in app.state.order]
        assert freed == sorted(freed, reverse=True)
        assert freed[0] > freed[-1]
        await pilot.press("o")
        assert srt(app) is Sort.DATE
        dates = [groups[i].winner_asset.captured_at for i in app.state.order]
        assert dates == sorted(d for d in dates if d is not None)
        assert app.state.order == [0, 1, 2, 3]
        lst = main_screen(app).query_one(GroupList)
        assert "IMG_0000_0.jpg" in lst.line_text(0)
        await pilot.press("q")


async def test_next_needing_review_skips_decided(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps", "safe", "tz"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("v", "v", "v", "o", "o")  # all, by date: gps, safe, tz
        assert app.state.order == [0, 1, 2]
        await pilot.press("home")
        await pilot.pause()
        screen = main_screen(app)
        assert screen.current_index == 0
        await pilot.press("n")
        assert screen.current_index == 2
        await pilot.press("j", "j")
        await pilot.pause()
        assert screen.current_index == 2  # the end of the list
        await pilot.press("k")
        await pilot.pause()
        assert screen.current_index == 1
        await pilot.press("q")


async def test_diff_table_shows_sources_and_conflicts(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        diff = main_screen(app).query_one(DiffTable)
        gps = next(r for r in diff.rows_shown if r.key == "gps")
        assert gps.conflict
        assert gps.source == 0
        assert "504" in gps.values[1]  # Munich ↔ Berlin distance on the loser's cell
        await pilot.press("l", "g")
        await pilot.pause()
        gps = next(r for r in diff.rows_shown if r.key == "gps")
        assert gps.source == 1
        assert gps.result.startswith("52.5200, 13.4050")
        assert gps.rule == "from #2"
        await pilot.press("q")


async def test_external_copies_need_confirmation(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["external"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("X")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not app.state.plan.groups[0].allow_external_delete
        await pilot.press("X")
        await pilot.pause()
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen)
        assert confirm.focused is confirm.query_one("#cancel")
        await pilot.press("enter")  # Enter answers Cancel
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert not app.state.plan.groups[0].allow_external_delete
        await pilot.press("X")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert app.state.plan.groups[0].allow_external_delete
        await pilot.press("q")
    assert load_plan(path).groups[0].allow_external_delete


async def test_keymap_remaps_and_help_shows_it(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    app = offline_app(path, tmp_path, keymap={"review.skip": "z"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        assert not app.state.dirty
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        rows = {bid: keys for keys, _, bid in app.screen.rows}
        assert rows["review.skip"] == "z"
        assert rows["review.accept"] == "a"
        assert rows["review.undo"] == "u/^z"
        await pilot.press("escape")
        await pilot.press("z")
        await pilot.press("q")
    assert load_plan(path).groups[0].action is Action.SKIP


async def test_autosave(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    app = offline_app(path, tmp_path)
    app.settings.autosave_seconds = 0.1
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("x")
        for _ in range(50):
            await pilot.pause(0.05)
            if not app.state.dirty:
                break
        assert load_plan(path).groups[0].action is Action.KEEP_ALL
        await pilot.press("q")


async def test_save_failure_keeps_the_app_open(
    plan_file: PlanFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = plan_file(["gps"])
    app = offline_app(path, tmp_path)

    def disk_full(snapshot: object, where: Path) -> None:
        raise OSError(28, "No space left on device")

    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.press("x")
        monkeypatch.setattr(ReviewState, "write", staticmethod(disk_full))
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        assert app.state.dirty
        assert any("Could not save" in n.message for n in app._notifications)
        monkeypatch.undo()
        await pilot.press("ctrl+s")
        for _ in range(40):
            await pilot.pause(0.05)
            if not app.state.dirty:
                break
        await pilot.press("q")
    assert load_plan(path).groups[0].action is Action.KEEP_ALL


# ---------------------------------------------------------------------- without a (good) server


async def test_offline_shows_metadata_and_a_notice(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        screen = main_screen(app)
        assert "Offline" in app.server_notice
        assert screen.query_one("#notice").display
        cards = screen.query_one(CardRow).cards
        assert not any(c.has_picture for c in cards)
        assert "offline" in str(cards[0]._note.render())
        assert screen.query_one(DiffTable).row_count > 10
        await pilot.press("a", "q")
    assert load_plan(path).groups[0].reviewed


async def test_bad_api_key_degrades_gracefully(
    plan_file: PlanFile, tmp_path: Path, settle: Settle
) -> None:
    from immich_dupes.fake import FakeImmich

    fake = FakeImmich(library="empty")
    path = plan_file(["gps"])

    def client() -> ImmichClient:
        return ImmichClient("http://fake-immich", "not-the-key", transport=fake.transport())

    app = make_app(path, client_factory=client, image_protocol="halfcell", cache_dir=tmp_path / "c")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "refused the API key" in app.server_notice
        assert app.client is None
        cards = main_screen(app).query_one(CardRow).cards
        assert "API key" in str(cards[0]._note.render())
        await pilot.press("s", "q")
    assert load_plan(path).groups[0].action is Action.SKIP


async def test_unreachable_server_degrades_gracefully(
    plan_file: PlanFile, tmp_path: Path, settle: Settle
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def client() -> ImmichClient:
        return ImmichClient("http://nowhere.invalid", "key", transport=httpx.MockTransport(refuse),
                            backoff_base=0.01)

    path = plan_file(["gps"])
    app = make_app(path, client_factory=client, image_protocol="halfcell", cache_dir=tmp_path / "c")
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        assert "Cannot reach the server" in app.server_notice
        await pilot.press("E")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)  # no confirmation without a server
        assert any("needs the server" in n.message for n in app._notifications)
        await pilot.press("q")


async def test_no_pictures_protocol_none(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["gps"])
    app = make_app(path, image_protocol="none", offline=True, cache_dir=tmp_path / "c")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        cards = main_screen(app).query_one(CardRow).cards
        assert "pictures are off" in str(cards[0]._note.render())
        await pilot.press("q")


async def test_empty_filter_says_so(plan_file: PlanFile, tmp_path: Path) -> None:
    path = plan_file(["safe"])
    app = offline_app(path, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        assert flt(app) is Filter.ALL  # nothing needs review: start on everything
        await pilot.press("v")  # needs review: nothing
        await pilot.pause()
        screen = main_screen(app)
        assert screen.query_one("#empty").display
        await pilot.press("a", "w", "t", "g", "f")  # no group: the keys do nothing, no crash
        assert not app.state.dirty
        await pilot.press("q")
