"""The metadata diff: one row per field, one column per asset, and what the keeper ends up with.

Values that differ between copies are highlighted, a blocking conflict more strongly; the
asset that supplies a consolidated value carries a ◆ marker, and the last column says the
resulting value and the rule (``keeper``, ``from #2``, ``highest``, ``union``, ``read-only``).
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from immich_dupes.analysis.plan import GroupPlan
from immich_dupes.tui import format as F

FIELD_WIDTH = 11
RESULT_WIDTH = 26
RULE_WIDTH = 10
MIN_ASSET_WIDTH = 18


class DiffTable(DataTable[Text]):
    """Rebuilt for every group (a few dozen cells: cheaper than diffing)."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", zebra_stripes=True, show_cursor=False)
        self.can_focus = False
        self.rows_shown: list[F.DiffRow] = []

    def _colors(self) -> dict[str, str]:
        v = self.app.theme_variables
        return {
            "differs": v.get("warning", "yellow"),
            "conflict": v.get("error", "red"),
            "source": v.get("success", "green"),
            "muted": v.get("text-muted", "grey50"),
            "accent": v.get("accent", "cyan"),
        }

    def show(self, g: GroupPlan, focused: int) -> None:
        colors = self._colors()
        rows = F.diff_rows(g)
        self.rows_shown = rows
        n = len(g.assets)
        # the assets and the result share what is left after the field and rule columns
        avail = max(self.size.width, 100) - FIELD_WIDTH - RULE_WIDTH - 2 * (n + 3) - 2
        share = avail // (n + 1)
        result_width = max(RESULT_WIDTH, min(share, 44))
        asset_width = max(MIN_ASSET_WIDTH, (avail - result_width) // n)
        self.clear(columns=True)
        self.add_column(Text("field", style="bold"), width=FIELD_WIDTH, key="field")
        for i, a in enumerate(g.assets):
            role = "KEEP" if a.id in g.keep else "TRASH"
            head = Text(f"#{i + 1} {role} ", style="bold")
            head.append(F.short(a.file_name, asset_width - len(head)), style="bold" if i == focused else "")
            if i == focused:
                head.stylize(f"underline {colors['accent']}")
            self.add_column(head, width=asset_width, key=a.id)
        self.add_column(Text("→ keeper gets", style="bold"), width=result_width, key="result")
        self.add_column(Text("how", style="bold"), width=RULE_WIDTH, key="rule")
        for row in rows:
            cells: list[Text] = [Text(row.label, style="bold" if row.conflict else "")]
            for i, value in enumerate(row.values):
                style = ""
                if row.conflict and value != F.NONE:
                    style = f"bold {colors['conflict']}"
                elif row.differs:
                    style = colors["differs"]
                cell = Text()
                if row.source == i and value != F.NONE:
                    cell.append("◆ ", style=f"bold {colors['source']}")
                cell.append(F.short(value, 200), style=style)
                cells.append(cell)
            cells.append(Text(F.short(row.result, 200)))
            cells.append(Text(row.rule, style=colors["muted"]))
            self.add_row(*cells, key=row.key)
