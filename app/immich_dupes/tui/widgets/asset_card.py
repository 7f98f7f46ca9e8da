"""Asset cards, side by side: picture, KEEP/TRASH by border and label, facts and badges.

Keep and trash are told apart by the border colour and the border label, never by dimming:
opacity cannot dim Kitty or Sixel pixels. Cards are pooled and reused from group to group so
switching groups mounts nothing.
"""

from __future__ import annotations

from PIL import Image as PILImage
from textual import events
from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from immich_dupes.analysis.plan import Action, GroupPlan, PlanAsset
from immich_dupes.tui import format as F


def card_role(g: GroupPlan, asset: PlanAsset) -> tuple[str, str]:
    """(border label, css class) for an asset under the group's current decision."""
    if g.action is Action.SKIP:
        return "SKIPPED · untouched", "skip"
    if g.action is Action.KEEP_ALL:
        return "KEEP · not a duplicate", "keep"
    if g.action is Action.STACK:
        return ("KEEP · stack top" if asset.id == g.winner else "KEEP · stacked"), "keep"
    if asset.id == g.winner:
        return "KEEP · keeper", "keep"
    if asset.id in g.keep:
        return "KEEP too", "keep"
    if asset.is_external and not g.allow_external_delete:
        return "TRASH · external: kept unless allowed", "trash"
    return "TRASH", "trash"


def card_facts(g: GroupPlan, asset: PlanAsset, width: int) -> Content:
    lines: list[Content] = []
    lines.append(Content.styled(F.short(asset.file_name, width), "bold"))
    mp = F.megapixels(asset)
    lines.append(Content(f"{F.dims(asset)}" + (f" · {mp}" if mp else "")))
    lines.append(Content(f"{F.human_bytes(asset.file_size)} · {F.fmt(asset)}"))
    lines.append(Content(F.short(F.when(asset), width)))
    where = F.place(asset)
    if asset.has_gps:
        assert asset.latitude is not None
        assert asset.longitude is not None
        lines.append(Content(F.short(f"{asset.latitude:.4f}, {asset.longitude:.4f}", width)))
        lines.append(Content(F.short(where or "(no place name)", width)))
    else:
        lines.append(Content.styled("no GPS", "$text-muted"))
        lines.append(Content(""))
    badges = F.badges(asset)
    lines.append(
        Content.styled(F.short(" · ".join(badges), width), "$accent")
        if badges
        else Content.styled("no badges", "$text-muted")
    )
    return Content("\n").join(lines)


class AssetCard(Vertical):
    """One asset of the shown group."""

    def __init__(self, image_cls: type[Widget] | None, position: int) -> None:
        super().__init__(classes="card")
        self.image_cls = image_cls
        self.position = position
        self.asset_id: str | None = None
        # Children exist before mounting, so a card can be filled in the moment it is created.
        self._note = Static("", classes="pic-note")
        self._facts = Static("", classes="facts")
        self._picture: Widget | None = None
        if image_cls is not None:
            self._picture = image_cls(classes="pic")
            self._picture.display = False
        self._has_image = False
        self._title = ""
        self._subtitle = ""
        self._shown: tuple[GroupPlan, PlanAsset] | None = None

    def compose(self) -> ComposeResult:
        with Center(classes="pic-box"):
            yield self._note
            if self._picture is not None:
                yield self._picture
        yield self._facts

    def show(self, g: GroupPlan, asset: PlanAsset, focused: bool) -> None:
        changed = asset.id != self.asset_id
        self.asset_id = asset.id
        label, role = card_role(g, asset)
        title = f"#{self.position + 1} {label}"
        subtitle = "◆ focused" if focused else ""
        # setting a border title repaints the whole card, even to the same text
        if title != self._title:
            self.border_title = self._title = title
        if subtitle != self._subtitle:
            self.border_subtitle = self._subtitle = subtitle
        self.set_class(role == "keep", "keep")
        self.set_class(role == "trash", "trash")
        self.set_class(role == "skip", "skipped")
        self.set_class(asset.id == g.winner, "winner")
        self.set_class(focused, "focused")
        self._shown = (g, asset)
        self._facts.update(card_facts(g, asset, self._facts_width()), layout=False)  # fixed height
        if changed:
            # the old picture stays until the caller sets the new one or a note (one repaint)
            self._has_image = False

    def _facts_width(self) -> int:
        return max(10, self.size.width) if self.size.width else 30  # size: inside border and padding

    def on_resize(self, event: events.Resize) -> None:
        """The card got wider or narrower (a new layout, a terminal resize): facts cut anew."""
        if self._shown is not None and self.display:
            self._facts.update(card_facts(*self._shown, self._facts_width()), layout=False)

    def set_picture(self, image: PILImage.Image | None, note: str) -> None:
        """Show a decoded picture, or a note saying why there is none."""
        note_widget = self._note
        if image is not None and self._picture is not None:
            if self._picture.image is not image:  # type: ignore[attr-defined]
                self._picture.image = image  # type: ignore[attr-defined]
            self._picture.display = True
            note_widget.display = False
            self._has_image = True
            return
        if self._picture is not None:
            self._picture.display = False
        self._has_image = False
        note_widget.update(note, layout=False)
        note_widget.display = True

    def warm(self, image: PILImage.Image) -> None:
        """Prepare ``image`` to be shown here next (when the picture widget can: halfcell)."""
        warm = getattr(self._picture, "warm", None)
        if warm is not None and self.display:
            warm(image)

    @property
    def has_picture(self) -> bool:
        return self._has_image


class CardRow(Horizontal):
    """The cards of the shown group; grows its pool when a group has more assets."""

    def __init__(self, image_cls: type[Widget] | None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.image_cls = image_cls
        self.cards: list[AssetCard] = []

    def show(self, g: GroupPlan, focused: int) -> list[AssetCard]:
        needed = len(g.assets)
        if len(self.cards) < needed:
            new = [AssetCard(self.image_cls, i) for i in range(len(self.cards), needed)]
            self.cards.extend(new)
            self.mount_all(new)
        for i, card in enumerate(self.cards):
            if i < needed:
                card.display = True
                card.show(g, g.assets[i], focused == i)
            else:
                card.display = False
                card.asset_id = None
        return self.cards[:needed]

    def card_for(self, asset_id: str) -> AssetCard | None:
        for card in self.cards:
            if card.display and card.asset_id == asset_id:
                return card
        return None
