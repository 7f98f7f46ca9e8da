"""Confirmations: every destructive or server-changing action passes through a ModalScreen[bool].

Only ``y`` or a click on (or Enter on a deliberately focused) confirm button says yes. The
focus starts on Cancel, so an Enter pressed out of habit, or one left over from the backup
directory prompt just before, cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmScreen(ModalScreen[bool]):
    """A question with a body; ``y`` confirms; Escape, ``n`` and Enter (on the focused Cancel
    button) cancel."""

    AUTO_FOCUS = "#cancel"

    BINDINGS = [
        Binding("escape,n", "cancel", "Cancel", id="confirm.cancel"),
        Binding("y", "confirm", "Confirm", id="confirm.yes"),
    ]

    def __init__(
        self, title: str, body: Content | str, confirm_label: str = "Yes", danger: bool = False
    ) -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog" + (" danger" if self.danger else "")):
            yield Static(Content.styled(self.title_text, "bold"), classes="dialog-title")
            with VerticalScroll(classes="dialog-body"):
                yield Static(self.body, id="confirm-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (n)", id="cancel", variant="default")
                yield Button(
                    f"{self.confirm_label} (y)",
                    id="confirm",
                    variant="error" if self.danger else "primary",
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)


class ExecuteConfirmScreen(ConfirmScreen):
    """The execute confirmation; ``f`` switches between trash and permanent delete.

    The body is rebuilt by ``describe(force)`` so what the screen says is always what will
    happen; ``force`` is read by the caller after a True answer.
    """

    BINDINGS = [Binding("f", "toggle_force", "Trash / permanent", id="confirm.force")]

    def __init__(self, describe: Callable[[bool], Content]) -> None:
        self.describe = describe
        self.force = False
        super().__init__("Execute the plan?", describe(False), confirm_label="Execute", danger=False)

    def action_toggle_force(self) -> None:
        self.force = not self.force
        self.body = self.describe(self.force)
        self.query_one("#confirm-body", Static).update(self.body)
        self.query_one(".dialog").set_class(self.force, "danger")
        button = self.query_one("#confirm", Button)
        button.variant = "error" if self.force else "primary"
        button.label = "DELETE PERMANENTLY (y)" if self.force else "Execute (y)"


class PathScreen(ModalScreen[Path | None]):
    """Ask for a folder (the backup directory); Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="path.cancel")]

    def __init__(self, title: str, explanation: str, value: str = "") -> None:
        super().__init__(classes="modal")
        self.title_text = title
        self.explanation = explanation
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Content.styled(self.title_text, "bold"), classes="dialog-title")
            yield Static(self.explanation, classes="dialog-body")
            yield Input(self.value, placeholder="/path/to/backup", id="path-input")
            yield Static("Enter to use it, Escape to cancel", classes="dialog-hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(Path(text).expanduser() if text else None)

    def action_cancel(self) -> None:
        self.dismiss(None)
