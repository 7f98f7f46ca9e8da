"""The help screen's legend: every mark the group list shows, on screen when help opens."""

from __future__ import annotations

from pathlib import Path

from textual.containers import VerticalScroll
from tui_plans import build_plan, settle_app

from immich_dupes.analysis.plan import save_plan
from immich_dupes.tui.app import make_app
from immich_dupes.tui.screens.help import HelpScreen, help_text
from immich_dupes.tui.widgets.group_list import MARKS


def test_the_legend_names_every_mark_before_the_keys() -> None:
    rows = [(f"k{i}", f"key number {i}", f"review.k{i}") for i in range(30)]
    lines = help_text(rows, []).plain.split("\n")
    keys_at = lines.index("Keys")
    legend = "\n".join(lines[:keys_at])
    for mark, _ in MARKS.values():
        assert mark in legend
    for mark in ("●", "○", "✓", "»", "≠", "≡"):
        assert mark in legend


async def test_the_legend_is_on_screen_when_help_opens_at_80x24(tmp_path: Path) -> None:
    save_plan(build_plan(["gps", "safe"]), tmp_path / "plan.json")
    app = make_app(tmp_path / "plan.json", image_protocol="halfcell", offline=True, cache_dir=tmp_path / "cache")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle_app(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        body = screen.query_one(VerticalScroll)
        assert body.scroll_y == 0
        # the text as wrapped into the visible rows of the dialog's body
        shown = [strip.text for strip in body.query_one("#help-text").render_lines(body.scrollable_content_region.reset_offset)]
        visible = "\n".join(shown[: body.scrollable_content_region.height])
        for mark in ("●", "○", "✓", "»", "≠", "≡"):
            assert mark in visible, visible
        await pilot.press("escape", "q")
