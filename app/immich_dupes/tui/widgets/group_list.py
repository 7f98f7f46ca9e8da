"""The group list: an OptionList whose lines are built only when they are drawn.

With 10,000 groups, building every line's text up front and letting OptionList measure each
one costs most of a second. Each line here is a one-line Visual that knows its height without
measuring and formats its text the first time it is actually on screen.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.css.styles import RulesMap
from textual.geometry import Region, Size
from textual.reactive import reactive
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual
from textual.widgets import OptionList

from immich_dupes.analysis.plan import ConflictType, GroupPlan, ReviewReason
from immich_dupes.tui.format import human_bytes
from immich_dupes.tui.state import Status, group_status

LINE_WIDTH = 44

MARKS: dict[Status, tuple[str, str]] = {
    Status.NEEDS_REVIEW: ("●", "$warning"),
    Status.AUTO: ("○", "$text-muted"),
    Status.REVIEWED: ("✓", "$success"),
    Status.SKIPPED: ("»", "$text-muted"),
    Status.NOT_DUPLICATES: ("≠", "$accent"),
    Status.STACK: ("≡", "$primary"),
}

_CODES: dict[ConflictType | ReviewReason, str] = {
    ConflictType.GPS: "G",
    ConflictType.CAPTURE_TIME: "T",
    ConflictType.TIMEZONE: "Z",
    ConflictType.DESCRIPTION: "D",
    ReviewReason.EXTERNAL_LIBRARY: "E",
    ReviewReason.LIVE_PHOTO: "L",
    ReviewReason.MIXED_TYPES: "M",
    ReviewReason.NO_DIMENSIONS: "?",
    ReviewReason.SAME_ORIGINAL_PATH: "P",
}
CODE_HELP = (
    "G gps · T time · Z zone · D description · E external library · L live photo · "
    "M images+videos · ? no size · P same path"
)


def reason_codes(g: GroupPlan) -> str:
    codes: list[str] = []
    for c in g.conflicts:
        if c.blocking and c.type in _CODES:
            codes.append(_CODES[c.type])
    for r in g.review_reasons:
        if r in _CODES:
            codes.append(_CODES[r])
    return "".join(dict.fromkeys(codes))


def group_line(g: GroupPlan) -> Content:
    mark, style = MARKS[group_status(g)]
    codes = reason_codes(g)[:4]
    w = g.winner_asset
    name = w.file_name if len(w.file_name) <= 16 else w.file_name[:15] + "…"
    date = w.captured_at.strftime("%Y-%m-%d") if w.captured_at else "    -     "
    saved = human_bytes(g.bytes_freed) if g.bytes_freed else "-"
    return Content.assemble(
        (mark, style),
        " ",
        (f"{codes:<4}", "$warning"),
        f"{name:<16} ×{len(g.assets):<2}{saved:>9} {date}",
    )


class GroupLine(Visual):
    """One list line; formats its text on first draw and never wraps."""

    __slots__ = ("group", "_content")

    def __init__(self, group: GroupPlan) -> None:
        self.group = group
        self._content: Content | None = None

    @property
    def content(self) -> Content:
        if self._content is None:
            self._content = group_line(self.group)
        return self._content

    def render_strips(
        self, width: int, height: int | None, style: Style, options: RenderOptions
    ) -> list[Strip]:
        return self.content.render_strips(width, 1, style, options)

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return LINE_WIDTH

    def get_height(self, rules: RulesMap, width: int) -> int:
        return 1

    def __str__(self) -> str:
        return self.content.plain


class GroupList(OptionList):
    """Shows ``order`` (indices into the plan's groups); the option index is the list position.

    Every line is one row high (see GroupLine), so the option index is also the line number.
    """

    highlighted: reactive[int | None] = reactive(None, repaint=False)
    """As in OptionList, but moving the highlight repaints the two lines it concerns, not the
    whole list and its scrollbar (a third of a group switch otherwise)."""

    _shown_highlight: int | None = None

    def watch_highlighted(self, highlighted: int | None) -> None:
        # the text only (refresh_line's region reaches into the scrollbar, which then redraws)
        width = self.scrollable_content_region.width
        top = round(self.scroll_y)
        for line in (self._shown_highlight, highlighted):
            if line is not None and 0 <= line < self.option_count:
                self.refresh(Region(0, line - top, width, 1))
        self._shown_highlight = highlighted
        super().watch_highlighted(highlighted)

    _last_sizes: tuple[Size, Size, Size] | None = None

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        """Skip what Textual's ScrollView does on every layout of the screen even when the
        list's place did not change: it compares its own sizes with the arguments (never
        equal for a scroll view) and so redraws the scrollbar each time (~1.5 ms)."""
        sizes = (size, virtual_size, container_size)
        if sizes == self._last_sizes:
            return False
        self._last_sizes = sizes
        return super()._size_updated(size, virtual_size, container_size, layout)

    def scroll_to_highlight(self, top: bool = False) -> None:
        """Scroll by half a page when the highlight leaves the view, not line by line:
        stepping through groups then repaints the whole list once every ~20 groups instead
        of on every key."""
        highlighted = self.highlighted
        if highlighted is None or not self.is_mounted:
            return
        height = self.scrollable_content_region.height
        if height <= 0:
            super().scroll_to_highlight(top)
            return
        first = round(self.scroll_y)
        if top or not first <= highlighted < first + height:
            target = highlighted if top else max(0, highlighted - height // 2)
            self.scroll_to(y=target, animate=False, immediate=True, force=True)

    def show(self, groups: Sequence[GroupPlan], order: Sequence[int], position: int | None) -> None:
        self.set_options([GroupLine(groups[i]) for i in order])
        if order:
            self.highlighted = 0 if position is None else max(0, min(position, len(order) - 1))

    def update_line(self, position: int, group: GroupPlan) -> None:
        if 0 <= position < self.option_count:
            self.replace_option_prompt_at_index(position, GroupLine(group))

    def line_text(self, position: int) -> str:
        """The text of a line as shown (for tests and the help screen)."""
        return str(self.get_option_at_index(position).prompt)
