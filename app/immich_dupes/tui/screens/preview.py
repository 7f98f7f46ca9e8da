"""Full-size preview of one asset (Immich's ``preview`` size, ~1440 px), in a modal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from PIL import Image as PILImage
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Static

from immich_dupes.analysis.plan import GroupPlan, PlanAsset
from immich_dupes.tui import format as F
from immich_dupes.tui.widgets.asset_card import card_role

Loader = Callable[[PlanAsset, str], Awaitable[tuple[PILImage.Image | None, str]]]


def caption(g: GroupPlan, a: PlanAsset, position: int) -> str:
    label, _ = card_role(g, a)
    parts = [f"#{position + 1} {label}", a.file_name, F.dims(a), F.human_bytes(a.file_size), F.when(a)]
    if a.has_gps:
        parts.append(F.gps(a))
    return "  ·  ".join(parts)


class PreviewScreen(ModalScreen[int]):
    """Left/right step through the group's assets; Escape returns the one last shown."""

    BINDINGS = [
        Binding("escape,q,f,space", "close", "Close", id="preview.close"),
        Binding("left,h", "step(-1)", "Previous asset", id="preview.prev"),
        Binding("right,l", "step(1)", "Next asset", id="preview.next"),
    ]

    def __init__(
        self,
        group: GroupPlan,
        position: int,
        image_cls: type[Widget] | None,
        load: Loader,
    ) -> None:
        super().__init__(classes="modal")
        self.group = group
        self.position = position
        self.image_cls = image_cls
        self.load = load
        self._note = Static("loading…", id="preview-note")
        self._picture: Widget | None = image_cls(id="preview-pic") if image_cls is not None else None
        if self._picture is not None:
            self._picture.display = False
        self._caption = Static("", id="preview-caption")

    @property
    def assets(self) -> Sequence[PlanAsset]:
        return self.group.assets

    def compose(self) -> ComposeResult:
        with Vertical(id="preview"):
            with Center(id="preview-box"):
                yield self._note
                if self._picture is not None:
                    yield self._picture
            yield self._caption

    def on_mount(self) -> None:
        self.show_asset()

    def show_asset(self) -> None:
        a = self.assets[self.position]
        self._caption.update(caption(self.group, a, self.position))
        if self._picture is None:
            self._set(None, "pictures are off (--image-protocol none)")
            return
        self._set(None, "loading the preview…")
        self.fetch(a)

    @work(group="preview", exclusive=True, exit_on_error=False)
    async def fetch(self, a: PlanAsset) -> None:
        img, why = await self.load(a, "preview")
        if self.assets[self.position].id == a.id:
            self._set(img, why)

    def _set(self, img: PILImage.Image | None, why: str) -> None:
        if img is not None and self._picture is not None:
            self._picture.image = img  # type: ignore[attr-defined]
            self._picture.display = True
            self._note.display = False
        else:
            if self._picture is not None:
                self._picture.display = False
            self._note.update(why)
            self._note.display = True

    def action_step(self, delta: int) -> None:
        target = self.position + delta
        if not 0 <= target < len(self.assets):  # stops at the ends, as in the main screen
            self.notify("Last copy." if delta > 0 else "First copy.", timeout=2)
            return
        self.position = target
        self.show_asset()

    def action_close(self) -> None:
        self.dismiss(self.position)
