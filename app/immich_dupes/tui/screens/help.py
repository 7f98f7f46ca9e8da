"""The help screen: every key (as currently mapped), the list marks, and how to remap."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from immich_dupes.tui.widgets.group_list import CODE_HELP, MARKS


def key_lines(rows: Sequence[tuple[str, str, str]], width: int | None = None) -> list[Content]:
    """One line per key (keys, what it does, binding id) in columns; when ``width`` is too
    narrow for that, the description wraps inside its column, under itself, and the id stays
    on the first line (or, narrower still, goes under the description), never at the margin."""
    key_width = max((len(k) for k, _, _ in rows), default=8) + 2
    what_width = max((len(w) for _, w, _ in rows), default=40) + 2
    id_width = max((len(b) for _, _, b in rows), default=12)
    indent = 2 + key_width
    if width is not None and indent + what_width + id_width > width:
        what_width = width - indent - id_width - 2
    three_columns = what_width >= 24
    lines: list[Content] = []
    for keys, what, binding_id in rows:
        key_cell = (f"  {keys:<{key_width}}", "bold $warning")
        id_cell = (binding_id, "$text-muted")
        if three_columns:
            parts = textwrap.wrap(what, what_width - 2) or [""]
            lines.append(Content.assemble(key_cell, f"{parts[0]:<{what_width}}", id_cell))
        else:  # too narrow for three columns: the id goes under the description
            parts = textwrap.wrap(what, max(10, (width or 80) - indent)) or [""]
            lines.append(Content.assemble(key_cell, parts[0]))
        lines.extend(Content(" " * indent + part) for part in parts[1:])
        if not three_columns:
            lines.append(Content.assemble(" " * indent, id_cell))
    return lines


def help_text(
    rows: Sequence[tuple[str, str, str]], extra: Sequence[str], width: int | None = None
) -> Content:
    """rows: (keys, what it does, binding id); ``width``: the columns the text has."""
    # the legends first, each mark on the one line: the keys are long and scroll
    lines: list[Content] = [Content.styled("Marks in the group list", "bold $accent")]
    marks: list[Content] = []
    for status, (mark, style) in MARKS.items():
        marks.append(Content.assemble((mark, style), f" {status.value}"))
    lines.append(Content.assemble("  ", Content("  ·  ").join(marks)))
    lines.append(Content(f"  codes: {CODE_HELP}"))
    lines.append(Content(""))
    lines.append(Content.styled("Keys", "bold $accent"))
    lines.extend(key_lines(rows, width))
    lines.append(Content(""))
    lines.append(Content.styled("In the cards and the diff", "bold $accent"))
    lines.append(Content("  KEEP (green border) stays; TRASH (red border) is backed up, then moved to the trash."))
    lines.append(Content("  ◆ marks the copy that supplies a value; the last column is what the keeper ends up with."))
    lines.append(Content("  Yellow: the copies differ. Red: a conflict a person must settle."))
    lines.append(Content(
        "  how: keeper = its own value · from #N = taken from copy N · union / highest / any copy /"
        " strictest = combined from all copies · read-only = Immich cannot change it"
    ))
    lines.append(Content(""))
    lines.append(Content.styled("Remapping keys", "bold $accent"))
    lines.append(
        Content(
            "  Put a JSON object {binding id: \"keys\"} in ~/.config/immich-dupes/keymap.json,\n"
            '  e.g. {"review.accept": "enter,a", "review.next_group": "j,down"}.\n'
            "  A key given to an action is taken from every other action of the same screen;\n"
            "  the app says at start what the file takes away or does not understand."
        )
    )
    for line in extra:
        lines.append(Content(line))
    return Content("\n").join(lines)


class HelpText(Static):
    """The help, laid out again for the width it gets (a narrow terminal wraps the keys'
    descriptions in their column instead of pushing the ids to the margin)."""

    def __init__(self, rows: Sequence[tuple[str, str, str]], extra: Sequence[str], id: str) -> None:
        super().__init__(help_text(rows, extra), id=id)
        self.rows = rows
        self.extra = extra
        self._laid_out_for = 0

    def on_resize(self, event: events.Resize) -> None:
        width = self.content_region.width
        if width > 0 and width != self._laid_out_for:
            self._laid_out_for = width
            self.update(help_text(self.rows, self.extra, width))


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help.close")]

    def __init__(self, rows: Sequence[tuple[str, str, str]], extra: Sequence[str] = ()) -> None:
        super().__init__(classes="modal")
        self.rows = list(rows)
        self.extra = list(extra)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Static(Content.styled("immich-dupes review — help", "bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield HelpText(self.rows, self.extra, id="help-text")
            yield Static("Escape closes · ↑ ↓ PgUp PgDn scroll", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
