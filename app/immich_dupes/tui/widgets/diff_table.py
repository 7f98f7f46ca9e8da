"""The metadata diff: one row per field, one column per asset, and what the keeper ends up with.

Values that differ between copies are highlighted, a blocking conflict more strongly; the
asset that supplies a consolidated value carries a ◆ marker, and the last columns say the
resulting value and the rule (``keeper``, ``from #2``, ``highest``, ``union``, ``read-only``).

Drawn as lines of fixed-width cells in one Static: the table is rebuilt for every group and
only shown, and a DataTable (cells, cursor, scrolling, measuring) costs ~3x as much to draw.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from textual import events
from textual.containers import ScrollableContainer
from textual.content import Content
from textual.style import Style
from textual.widgets import Static

from immich_dupes.analysis.plan import GroupPlan
from immich_dupes.tui import format as F
from immich_dupes.tui.layout import FIELD_WIDTH, RULE_WIDTH, SCROLLBAR, diff_widths

SOURCE_MARK = "◆ "

Piece = tuple[str, str | Style]


def fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` cells: cut with an ellipsis, or padded with spaces."""
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    return set_cell_size(text, width - 1) + "…"


def cell(pieces: list[Piece], width: int) -> list[Piece]:
    """A cell of ``width`` cells plus one space either side; the pieces are cut to fit."""
    out: list[Piece] = [(" ", "")]
    left = width
    for text, style in pieces:
        if left <= 0:
            break
        if cell_len(text) > left:
            text = fit(text, left)
        out.append((text, style))
        left -= cell_len(text)
    out.append((" " * (left + 1), ""))
    return out


class DiffBox(ScrollableContainer, can_focus=False):
    """Scrolls the diff (mouse, J/K) when the terminal is too small for all of it."""

    def on_resize(self, event: events.Resize) -> None:
        """Wider or narrower (a new layout, a terminal resize, shown again): the columns are
        shared out anew, so the table never runs past the box."""
        for table in self.query_children(DiffTable):
            table.show_again()


class DiffTable(Static):
    """The diff of the shown group (not focusable: the keys act on the group and the ◆ asset)."""

    COMPONENT_CLASSES = {"diff--header", "diff--even-row"}

    DEFAULT_CSS = """
    DiffTable {
        width: auto;
        min-width: 100%;
        height: auto;
        background: $surface;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: clip;
        & > .diff--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .diff--even-row {
            background: $surface-lighten-1 50%;
        }
        &:dark > .diff--even-row {
            background: $surface-darken-1 40%;
        }
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.can_focus = False
        self.rows_shown: list[F.DiffRow] = []
        self._width = 0
        self._shown: tuple[GroupPlan, int] | None = None

    @property
    def row_count(self) -> int:
        """Fields shown (the header not counted)."""
        return len(self.rows_shown)

    def show_again(self) -> None:
        if self._shown is not None:
            self.show(*self._shown)

    def show(self, g: GroupPlan, focused: int) -> None:
        self._shown = (g, focused)
        rows = F.diff_rows(g)
        self.rows_shown = rows
        # the copies and the result share what the field and rule columns leave: the whole
        # table fits the box (down to the minimums of layout.diff_min_width)
        # (room for the vertical scrollbar is kept whether it shows or not: the table must not
        # grow wider than the box when it appears)
        box = self.parent.content_region.width - SCROLLBAR if isinstance(self.parent, DiffBox) else 0
        asset_width, result_width = diff_widths(box if box > 0 else 100, len(g.assets))

        head: list[Piece] = cell([("field", "")], FIELD_WIDTH)
        for i, a in enumerate(g.assets):
            role = "KEEP" if a.id in g.keep else "TRASH"
            name = F.short(a.file_name, 200)
            head += cell([(f"#{i + 1} {role} {name}", "underline $accent" if i == focused else "")], asset_width)
        head += cell([("→ keeper gets", "")], result_width)
        head += cell([("how", "")], RULE_WIDTH)
        lines = [Content.assemble(*head).stylize_before(self.get_visual_style("diff--header", partial=True))]

        even = self.get_visual_style("diff--even-row", partial=True)
        for r, row in enumerate(rows):
            pieces = cell([(row.label, "bold" if row.conflict else "")], FIELD_WIDTH)
            for i, value in enumerate(row.values):
                style = ""
                if row.conflict and value != F.NONE:
                    style = "bold $error"
                elif row.differs:
                    style = "$warning"
                parts: list[Piece] = []
                if row.source == i and value != F.NONE:
                    parts.append((SOURCE_MARK, "bold $success"))
                parts.append((F.short(value, 200), style))
                pieces += cell(parts, asset_width)
            pieces += cell([(F.short(row.result, 200), "")], result_width)
            pieces += cell([(row.rule, "$text-muted")], RULE_WIDTH)
            line = Content.assemble(*pieces)
            lines.append(line.stylize_before(even) if r % 2 == 0 else line)
        # a new layout only when the table's width changes (its height never does)
        width = lines[0].cell_length
        self.update(Content("\n").join(lines), layout=width != self._width)
        self._width = width
