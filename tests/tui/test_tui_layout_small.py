"""The main screen on small and mid-size terminals: every copy of the shown group and the
field table on screen whenever a key can act on a copy; a terminal too small says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.content import Content
from textual.widget import Widget
from tui_plans import build_plan, settle_app

from immich_dupes.analysis.plan import load_plan, save_plan
from immich_dupes.tui.app import ReviewApp, make_app
from immich_dupes.tui.layout import (
    CARD_ROWS,
    FIELD_WIDTH,
    RULE_WIDTH,
    Cards,
    diff_min_width,
    diff_widths,
    plan_layout,
)
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.widgets.asset_card import CardRow
from immich_dupes.tui.widgets.diff_table import DiffBox, DiffTable
from immich_dupes.tui.widgets.group_list import GroupList

# ---------------------------------------------------------------------- the arithmetic


def test_layout_at_the_walkthrough_sizes() -> None:
    small = plan_layout(80, 24, 3)
    assert small.fits
    assert not small.show_list  # 30 columns beside the list cannot hold three cards
    assert small.cards is Cards.FACTS
    mid = plan_layout(100, 30, 3)
    assert mid.fits
    assert not mid.show_list
    assert mid.cards is Cards.SMALL
    big = plan_layout(160, 45, 3)
    assert big.fits
    assert big.show_list
    assert big.cards is Cards.FULL


def test_layout_gives_the_list_up_for_a_big_group_and_refuses_what_cannot_fit() -> None:
    assert plan_layout(160, 45, 5).show_list
    assert not plan_layout(160, 45, 6).show_list  # 110 columns beside the list: 5 cards at most
    assert plan_layout(160, 45, 8).fits
    too_many = plan_layout(160, 45, 9)
    assert not too_many.fits
    assert "all 9 copies" in too_many.too_small
    assert "180×45" in too_many.too_small  # how big it would have to be
    narrow = plan_layout(60, 24, 3)
    assert not narrow.fits
    assert "71×24" in narrow.too_small
    short = plan_layout(80, 17, 2)
    assert not short.fits
    assert plan_layout(80, 18, 2).fits
    # a notice line (offline, no server) takes a row from the table
    assert not plan_layout(80, 18, 2, notice_rows=1).fits


@pytest.mark.parametrize("copies", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("box", [60, 78, 98, 108, 128, 200])
def test_diff_columns_fit_the_box(box: int, copies: int) -> None:
    asset, result = diff_widths(box, copies)
    total = (FIELD_WIDTH + 2) + copies * (asset + 2) + (result + 2) + (RULE_WIDTH + 2)
    if box + 2 >= diff_min_width(copies):  # (box: without the scrollbar)
        assert total <= box
    assert asset >= 8
    assert result >= 12


def test_diff_columns_at_160_with_three_copies_keep_their_usual_widths() -> None:
    # 160 columns, list shown: 110 for the detail, 108 without the scrollbar
    asset, result = diff_widths(108, 3)
    assert asset == 18
    assert result >= 20


# ---------------------------------------------------------------------- the app


def app_for(tmp_path: Path, kinds: list[str]) -> ReviewApp:
    save_plan(build_plan(kinds), tmp_path / "plan.json")
    return make_app(tmp_path / "plan.json", image_protocol="halfcell", offline=True,
                    cache_dir=tmp_path / "cache")


def main_of(app: ReviewApp) -> MainScreen:
    main = app.main
    assert main is not None
    return main


def on_screen(app: ReviewApp, widget: Widget) -> bool:
    """Drawn, and wholly inside the screen and inside its scrolling parent's view."""
    region = widget.region
    if not widget.display or region.area == 0:
        return False
    if not app.screen.region.contains_region(region):
        return False
    parent = widget.parent
    return not isinstance(parent, Widget) or parent.region.contains_region(region)


def diff_text(app: ReviewApp) -> list[str]:
    diff = main_of(app).query_one(DiffTable)
    assert isinstance(diff.visual, Content)
    return diff.visual.plain.split("\n")


def assert_group_fully_shown(app: ReviewApp) -> None:
    main = main_of(app)
    g = main.current
    assert g is not None
    row = main.query_one(CardRow)
    cards = [c for c in row.cards if c.display]
    assert len(cards) == len(g.assets)
    for card in cards:
        assert on_screen(app, card), f"card {card.border_title} is off screen: {card.region}"
    assert row.max_scroll_x == 0
    box = main.query_one(DiffBox)
    assert on_screen(app, box)
    assert box.region.height >= 4
    # the whole width of the table is in the box: every copy's column and the rule column
    assert box.max_scroll_x == 0
    lines = diff_text(app)
    assert all(f"#{i + 1} " in lines[0] for i in range(len(g.assets)))
    assert lines[0].rstrip().endswith("how")


@pytest.mark.parametrize(("width", "height"), [(80, 24), (100, 30), (160, 45)])
async def test_every_copy_and_the_table_are_on_screen(tmp_path: Path, width: int, height: int) -> None:
    app = app_for(tmp_path, ["tz", "gps", "safe"])  # the first group has three copies
    async with app.run_test(size=(width, height)) as pilot:
        await settle_app(pilot)
        main = main_of(app)
        assert len(main.current.assets) == 3  # type: ignore[union-attr]
        assert_group_fully_shown(app)
        assert main.query_one(GroupList).display == (width >= 120)
        for _ in range(3):  # the focus walks over every copy; each stays in view
            await pilot.press("l")
            await pilot.pause()
            focused = main.query_one(CardRow).cards[main.asset_pos]
            assert focused.has_class("focused")
            assert on_screen(app, focused)
        await pilot.press("q")


async def test_80x24_keeps_its_cards_when_offline_notice_and_pictures_are_off(tmp_path: Path) -> None:
    """The offline notice takes rows; the cards show their facts only and the table keeps
    enough rows to scroll through with J/K."""
    app = app_for(tmp_path, ["tz"])
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_app(pilot)
        main = main_of(app)
        assert main.fit.cards is Cards.FACTS
        assert main.query_one(CardRow).region.height == CARD_ROWS[Cards.FACTS]
        assert_group_fully_shown(app)
        box = main.query_one(DiffBox)
        assert box.max_scroll_y > 0  # sixteen fields do not fit under the cards here
        await pilot.press("J")
        await pilot.pause()
        assert box.scroll_y > 0
        await pilot.press("K")
        await pilot.pause()
        assert box.scroll_y == 0
        await pilot.press("q")


async def test_too_small_says_so_and_no_key_acts_on_a_copy(tmp_path: Path) -> None:
    app = app_for(tmp_path, ["tz", "gps"])
    async with app.run_test(size=(60, 24), notifications=True) as pilot:
        await settle_app(pilot)
        main = main_of(app)
        g = main.current
        assert g is not None
        for key in ("l", "w", "t", "g", "d", "e", "a", "s", "x", "S", "X"):
            await pilot.press(key)
            await pilot.pause()
        assert main.asset_pos == 0
        assert main.current is not None
        assert main.current.duplicate_id == g.duplicate_id  # nothing accepted or skipped
        assert main.current == g
        assert isinstance(app.screen, MainScreen)  # X asked nothing
        assert not app.state.dirty
        assert app.state.plan.groups == load_plan(tmp_path / "plan.json").groups
        assert not main.fit.fits
        empty = str(main.query_one("#empty").render())
        assert "too small" in empty
        assert not main.query_one(CardRow).display
        assert not main.query_one(DiffBox).display

        # made larger: the group is shown and the keys work again
        await pilot.resize_terminal(80, 24)
        await settle_app(pilot)
        await pilot.pause()
        assert main.fit.fits
        assert_group_fully_shown(app)
        await pilot.press("l", "w")
        await pilot.pause()
        assert main.current.winner == g.assets[1].id
        await pilot.press("q")
    assert load_plan(tmp_path / "plan.json").groups[0].winner == g.assets[1].id


async def test_a_group_with_more_copies_than_fit_is_refused_on_its_own(tmp_path: Path) -> None:
    """A group too big for the window says so; a smaller group next to it is shown."""
    app = app_for(tmp_path, ["tz", "safe"])
    async with app.run_test(size=(64, 30)) as pilot:  # two copies fit (need 61), three do not (71)
        await settle_app(pilot)
        main = main_of(app)
        before = main.current
        assert before is not None
        assert len(before.assets) == 3
        await pilot.press("a")
        await pilot.pause()
        assert main.current is before
        assert not before.reviewed
        assert not main.fit.fits
        assert not main.query_one(CardRow).display
        await pilot.press("v", "v", "v")  # all groups: the two-copy group comes second
        await pilot.pause()
        await pilot.press("j")
        await pilot.pause()
        assert len(main.current.assets) == 2  # type: ignore[union-attr]
        assert main.fit.fits
        assert_group_fully_shown(app)
        await pilot.press("k")
        await pilot.pause()
        assert main.current is before
        assert not main.fit.fits
        assert not main.query_one(CardRow).display
        await pilot.press("q")


async def test_diff_rule_column_is_whole_at_160_with_three_copies(tmp_path: Path) -> None:
    """The walkthrough saw 'from #', 'read-o', 'any co', 'strict' at 160 columns."""
    app = app_for(tmp_path, ["tz"])
    async with app.run_test(size=(160, 45)) as pilot:
        await settle_app(pilot)
        main = main_of(app)
        assert main.query_one(GroupList).display
        box = main.query_one(DiffBox)
        width = box.scrollable_content_region.width
        lines = diff_text(app)
        assert all(len(line) <= width for line in lines)
        rules = {line[-(RULE_WIDTH + 1):].strip() for line in lines[1:]}
        assert {"from #2", "read-only", "any copy", "strictest", "highest", "union"} <= rules
        await pilot.press("l", "l", "d")  # date and zone from #3
        await pilot.pause()
        lines = diff_text(app)
        assert "from #3" in {line[-(RULE_WIDTH + 1):].strip() for line in lines[1:]}
        assert all(len(line) <= box.scrollable_content_region.width for line in lines)
        await pilot.press("q")
