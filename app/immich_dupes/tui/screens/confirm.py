"""Confirmations: every destructive or server-changing action passes through a ModalScreen[bool].

Only ``y`` or a click on (or Enter on a deliberately focused) confirm button says yes. The
focus starts on Cancel, so an Enter pressed out of habit, or one left over from the backup
directory prompt just before, cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

BODY_MAX_ROWS = 34
DIALOG_CHROME_ROWS = 10


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
        self._fit_body(self.app.size.height)

    def on_resize(self, event: events.Resize) -> None:
        self._fit_body(event.size.height)

    def _fit_body(self, height: int) -> None:
        """The body scrolls so the buttons stay on screen on a short terminal: the dialog
        (90% of the height) less its border, padding, title and buttons (10 rows)."""
        body = self.query_one(".dialog-body", VerticalScroll)
        body.styles.max_height = max(3, min(BODY_MAX_ROWS, height * 9 // 10 - DIALOG_CHROME_ROWS))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_confirm(self) -> None:
        self.dismiss(True)


class ExecuteConfirmScreen(ConfirmScreen):
    """The execute confirmation; ``f`` switches between trash and permanent delete.

    The body is rebuilt by ``describe(force)`` so what the screen says is always what will
    happen; ``force`` is read by the caller after a True answer. ``describe`` raises
    ValueError (the engine's ExecuteRefused) when execute would refuse that mode: the dialog
    then says why, stays open (``f`` may switch to a mode that is allowed) and ``y`` does
    nothing.
    """

    BINDINGS = [Binding("f", "toggle_force", "Trash / permanent", id="confirm.force")]

    def __init__(self, describe: Callable[[bool], Content], force: bool = False) -> None:
        self.describe = describe
        self.force = force
        self.refused = ""
        """Why execute refuses the mode shown ('' when it does not)."""
        super().__init__("Execute the plan?", self._describe(), confirm_label="Execute", danger=force)

    def _describe(self) -> Content:
        try:
            body = self.describe(self.force)
        except ValueError as e:
            self.refused = str(e)
            mode = "permanent delete" if self.force else "moving to the trash"
            return Content.assemble(
                (f"Execute refuses {mode} here:", "bold $error"), "\n\n", self.refused, ".\n\n",
                ("f switches between the trash and permanent delete · n cancels", "$text-muted"),
            )
        self.refused = ""
        return body

    def on_mount(self) -> None:
        self._show_mode()

    def _show_mode(self) -> None:
        self.query_one(".dialog").set_class(self.force, "danger")
        button = self.query_one("#confirm", Button)
        button.variant = "error" if self.force else "primary"
        button.label = "DELETE PERMANENTLY (y)" if self.force else "Execute (y)"
        button.disabled = bool(self.refused)
        button.refresh(layout=True)  # a longer label needs a wider button

    def action_toggle_force(self) -> None:
        self.force = not self.force
        self.body = self._describe()
        self.query_one("#confirm-body", Static).update(self.body)
        self._show_mode()

    def action_confirm(self) -> None:
        if self.refused:
            self.notify(self.refused, title="Execute refused", severity="error", timeout=8)
            return
        super().action_confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm" and self.refused:
            event.prevent_default()  # the base class would dismiss with True


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
