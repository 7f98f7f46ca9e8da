"""The help screen: every key (as currently mapped), the list marks, and how to remap."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Static

from immich_dupes.tui.widgets.group_list import CODE_HELP, MARKS


def help_text(rows: Sequence[tuple[str, str, str]], extra: Sequence[str]) -> Content:
    """rows: (keys, what it does, binding id)."""
    key_width = max((len(k) for k, _, _ in rows), default=8) + 2
    what_width = max((len(w) for _, w, _ in rows), default=40) + 2
    # the legends first, each mark on the one line: the keys are long and scroll
    lines: list[Content] = [Content.styled("Marks in the group list", "bold $accent")]
    marks: list[Content] = []
    for status, (mark, style) in MARKS.items():
        marks.append(Content.assemble((mark, style), f" {status.value}"))
    lines.append(Content.assemble("  ", Content("  ·  ").join(marks)))
    lines.append(Content(f"  codes: {CODE_HELP}"))
    lines.append(Content(""))
    lines.append(Content.styled("Keys", "bold $accent"))
    for keys, what, binding_id in rows:
        lines.append(
            Content.assemble(
                (f"  {keys:<{key_width}}", "bold $warning"),
                f"{what:<{what_width}}",
                (binding_id, "$text-muted"),
            )
        )
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
            '  e.g. {"review.accept": "enter,a", "review.next_group": "j,down"}.'
        )
    )
    for line in extra:
        lines.append(Content(line))
    return Content("\n").join(lines)


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
                yield Static(help_text(self.rows, self.extra), id="help-text")
            yield Static("Escape closes · ↑ ↓ PgUp PgDn scroll", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
