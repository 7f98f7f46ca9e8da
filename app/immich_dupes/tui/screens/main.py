"""The main review screen: group list, asset cards, metadata diff, and every review key.

Every edit goes through :mod:`immich_dupes.analysis.decide` (via ReviewState.edit), so the
app never writes a plan field twice or differently from the tests.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, cast

from PIL import Image as PILImage
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Action, GroupPlan, PlanAsset
from immich_dupes.tui import format as F
from immich_dupes.tui.layout import Cards, Layout, plan_layout
from immich_dupes.tui.messages import ThumbnailReady
from immich_dupes.tui.screens.confirm import ConfirmScreen
from immich_dupes.tui.screens.help import HelpScreen
from immich_dupes.tui.screens.preview import PreviewScreen
from immich_dupes.tui.state import Filter, Sort, Status, group_status, is_safe
from immich_dupes.tui.widgets.asset_card import AssetCard, CardRow
from immich_dupes.tui.widgets.diff_table import DiffBox, DiffTable
from immich_dupes.tui.widgets.group_list import MARKS, GroupList

if TYPE_CHECKING:
    from immich_dupes.tui.app import ReviewApp

PREFETCH_GROUPS = 3
"""Groups after the shown one whose thumbnails are fetched in the background."""

_G_GROUP = Binding.Group("group", compact=True)
_G_ASSET = Binding.Group("asset", compact=True)
_G_SOURCE = Binding.Group("from ◆", compact=True)

def _has_field(a: PlanAsset, field: str) -> bool:
    if field == "gps":
        return a.has_gps
    if field == "datetime":
        return a.captured_at is not None and a.utc_offset_minutes is not None
    return bool(a.description.strip())


FIELD_NAMES = {"gps": "GPS position", "datetime": "date and time zone", "description": "description"}

COPY_ACTIONS = frozenset({
    "make_keeper", "toggle_keep", "take", "accept", "skip", "not_duplicates", "stack", "external",
    "preview", "focus_asset",
})
"""Actions on the shown group or its focused copy: only while every copy is on screen."""


class MainScreen(Screen[None]):
    """Keys act on the highlighted group and the focused asset (◆).

    Every binding is a priority binding: a key the user gives a review action (Enter, say)
    reaches it even though the focused group list has its own use for that key."""

    BINDINGS = [
        Binding("question_mark,f1", "help", "help", id="review.help", priority=True),
        Binding("q", "quit", "quit", id="review.quit", priority=True),
        Binding("j", "next_group", "next", id="review.next_group", priority=True, group=_G_GROUP),
        Binding("k", "prev_group", "previous group", id="review.prev_group", priority=True, group=_G_GROUP),
        Binding("n", "next_review", "review", id="review.next_review", priority=True),
        Binding("h,left", "focus_asset(-1)", "previous asset", id="review.asset_left", priority=True, group=_G_ASSET),
        Binding("l,right", "focus_asset(1)", "next asset", id="review.asset_right", priority=True, group=_G_ASSET),
        Binding("w", "make_keeper", "keeper", id="review.make_keeper", priority=True),
        Binding("t", "toggle_keep", "keep/trash", id="review.toggle_keep", priority=True),
        Binding("g", "take('gps')", "GPS", id="review.source_gps", priority=True, group=_G_SOURCE),
        Binding("d", "take('datetime')", "date", id="review.source_date", priority=True, group=_G_SOURCE),
        Binding("e", "take('description')", "caption", id="review.source_description", priority=True, group=_G_SOURCE),
        Binding("a", "accept", "accept", id="review.accept", priority=True),
        Binding("A", "accept_safe", "all safe", id="review.accept_safe", priority=True),
        Binding("s", "skip", "skip", id="review.skip", priority=True),
        Binding("x", "not_duplicates", "not dup", id="review.not_duplicates", priority=True),
        Binding("S", "stack", "stack", id="review.stack", priority=True),
        Binding("X", "external", "allow trashing external copies", id="review.external", priority=True, show=False),
        Binding("u,ctrl+z", "undo", "undo", id="review.undo", priority=True),
        Binding("f,space", "preview", "view", id="review.preview", priority=True),
        Binding("J", "scroll_fields(1)", "fields ↓", id="review.fields_down", priority=True, show=False),
        Binding("K", "scroll_fields(-1)", "fields ↑", id="review.fields_up", priority=True, show=False),
        Binding("v", "cycle_filter", "filter", id="review.filter", priority=True),
        Binding("o", "cycle_sort", "sort", id="review.sort", priority=True),
        Binding("ctrl+s", "save", "save", id="review.save", priority=True, show=False),
        Binding("E", "execute", "execute", id="review.execute", priority=True),
        Binding("V", "verify", "verify", id="review.verify", priority=True),
        Binding("R", "restore", "restore", id="review.restore", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.list_pos: int | None = None
        """Position of the shown group in the visible list."""
        self.asset_pos = 0
        """Index of the focused asset in the shown group."""
        self.shown_id: str | None = None
        self._notice = Static("", id="notice")
        self._title = Static("", id="title-bar")
        self._head = Static("", id="group-head")
        self._empty = Static("", id="empty")
        self._notice_text = ""
        self.fit = Layout(show_list=True, cards=Cards.FULL, too_small="")
        """How the screen fits the terminal for the shown group (see tui.layout)."""

    @property
    def rapp(self) -> ReviewApp:
        return cast("ReviewApp", self.app)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        app = self.rapp
        yield self._title
        yield self._notice
        with Horizontal(id="body"):
            yield GroupList(id="groups")
            with Vertical(id="detail"):
                yield self._head
                yield self._empty
                yield CardRow(app.image_cls, id="cards")
                with DiffBox(id="diff-box"):
                    yield DiffTable(id="diff")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._empty.display = False
        self.set_notice(self.rapp.server_notice)
        self.fit_layout()
        self.reload_list(keep_current=False)
        self.query_one(GroupList).focus()

    @property
    def group_list(self) -> GroupList:
        return self.query_one(GroupList)

    @property
    def current(self) -> GroupPlan | None:
        state = self.rapp.state
        if self.list_pos is None or not (0 <= self.list_pos < len(state.order)):
            return None
        return state.group_at(self.list_pos)

    @property
    def current_index(self) -> int | None:
        if self.list_pos is None or not (0 <= self.list_pos < len(self.rapp.state.order)):
            return None
        return self.rapp.state.order[self.list_pos]

    # ------------------------------------------------------------------ showing

    def reload_list(self, keep_current: bool = True) -> None:
        """Re-filter and re-sort, staying on the same group when it is still listed."""
        state = self.rapp.state
        current = self.current_index if keep_current else None
        state.recompute()
        pos = state.position_of(current) if current is not None else None
        self.list_pos = None
        self.shown_id = None
        self.group_list.show(state.plan.groups, state.order, pos if pos is not None else 0)
        if not state.order:
            self.show_empty()
        self.update_title()

    def show_empty(self) -> None:
        self.list_pos = None
        self.shown_id = None
        self.fit_layout()
        flt = self.rapp.state.filter
        self._empty.update(
            f"No group matches the filter '{flt.value}'. Press v to change the filter."
            if self.rapp.state.plan.groups
            else "This plan has no duplicate groups."
        )
        self._empty.display = True
        self.query_one(CardRow).display = False
        self.query_one(DiffBox).display = False
        self._head.update("")

    @on(OptionList.OptionHighlighted, "#groups")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_index != self.group_list.highlighted:
            return  # stale: the list was rebuilt or moved on since
        self.show_position(event.option_index)

    def show_position(self, position: int) -> None:
        state = self.rapp.state
        if not (0 <= position < len(state.order)):
            return
        g = state.group_at(position)
        if g.duplicate_id != self.shown_id:
            self.asset_pos = 0
        self.list_pos = position
        self.shown_id = g.duplicate_id
        self.render_group(g)
        self.request_pictures(g, position)
        # once this group is on screen, prepare the next one's pictures while the user looks
        self.call_after_refresh(self._warm_next, g.duplicate_id)

    def render_group(self, g: GroupPlan) -> None:
        self.rapp.note_drawing()
        self.asset_pos = max(0, min(self.asset_pos, len(g.assets) - 1))
        self._head.update(self.head_text(g), layout=False)  # fixed height: no re-layout
        if not self.fit_layout(len(g.assets)):
            return
        self._empty.display = False
        cards = self.query_one(CardRow)
        diff = self.query_one(DiffTable)
        cards.display = True
        self.query_one(DiffBox).display = True
        for card in cards.show(g, self.asset_pos):
            if card.has_picture or card.asset_id is None:
                continue  # same asset as before: its picture stays
            asset = g.asset(card.asset_id)
            img = self.rapp.pictures.cached(asset, "thumbnail")
            if img is not None:
                card.set_picture(img, "")
            else:
                card.set_picture(None, self.picture_note())
        diff.show(g, self.asset_pos)

    def picture_note(self) -> str:
        app = self.rapp
        if app.image_cls is None:
            return "pictures are off (--image-protocol none)"
        if app.pictures.client is None:
            return f"no picture: {app.pictures.unavailable}"
        return "loading…"

    def head_text(self, g: GroupPlan) -> Content:
        state = self.rapp.state
        status = group_status(g)
        mark, style = MARKS[status]
        pos = (self.list_pos or 0) + 1
        head = Content.assemble(
            (f"{mark} {status.value}", f"bold {style}"),
            f"  ·  group {pos} of {len(state.order)} shown  ·  {len(g.assets)} assets  ·  ",
            f"frees {F.human_bytes(g.bytes_freed)}" if g.bytes_freed else "frees nothing",
        )
        lines = [head]
        summary = F.conflict_summary(g)
        if summary:
            lines.append(Content.assemble(("needs a look: ", "bold $warning"), summary))
        else:
            lines.append(Content.styled("no conflicts between the copies", "$text-muted"))
        keeper = g.winner_asset
        lines.append(
            Content.assemble(
                ("keeper: ", "bold $success"),
                f"#{g.assets.index(keeper) + 1} {keeper.file_name} — {g.winner_reason}",
                (f"   ({g.note})", "$text-muted") if g.note else "",
            )
        )
        return Content("\n").join(lines)

    def update_title(self) -> None:
        state = self.rapp.state
        counts = state.counts()
        todo = counts[Status.NEEDS_REVIEW]
        saved = "unsaved changes" if state.dirty else "saved"
        title = Content.assemble(
            ("immich-dupes review", "bold"),
            f"  {state.path.name}  ·  ",
            (f"{todo} need review", "bold $warning" if todo else "$success"),
            f" of {len(state.plan.groups)} groups  ·  filter: ",
            (state.filter.value, "bold"),
            f" ({len(state.order)} shown)  ·  sort: ",
            (state.sort.value, "bold"),
            f"  ·  {saved}",
        )
        self._title.update(title, layout=False)  # one fixed line

    def set_notice(self, notice: str) -> None:
        self._notice_text = notice
        self._notice.update(Content.styled(notice, "bold"))
        self._notice.display = bool(notice)

    # ------------------------------------------------------------------ fitting the terminal

    def fit_layout(self, copies: int | None = None) -> bool:
        """Fit the screen to the terminal for a group of ``copies`` (the shown group's when
        None): list shown or not, card size, or too small. True when the group can be shown:
        every copy on screen, so the keys that act on copies are allowed."""
        if copies is None:
            g = self.current
            copies = len(g.assets) if g is not None else 2
        width, height = self.app.size
        notice = self._notice_text
        notice_rows = len(textwrap.wrap(notice, max(1, width - 2))) if notice else 0
        new = plan_layout(width, height, copies, notice_rows)
        old, self.fit = self.fit, new
        self.set_class(not new.show_list, "-no-list")
        for c in Cards:
            self.set_class(new.cards is c and c is not Cards.FULL, f"-cards-{c.value}")
        if new.too_small:
            self._empty.update(Content.styled(new.too_small, "bold $warning"))
            self._empty.display = True
            self.query_one(CardRow).display = False
            self.query_one(DiffBox).display = False
        if new.show_list and not old.show_list and self.focused is None:
            self.group_list.focus()
        if new.fits != old.fits:
            self.refresh_bindings()
        if new.fits and not old.fits:
            self.call_after_refresh(self._redraw)  # (cards and table follow their sizes themselves)
        return new.fits

    def on_resize(self, event: events.Resize) -> None:
        self.fit_layout()

    def _redraw(self) -> None:
        g = self.current
        if g is not None:
            self.render_group(g)
        elif not self.rapp.state.order:
            self.show_empty()  # (the too-small note gives way to the empty list's)

    def server_changed(self) -> None:
        """The app connected (or gave up): show the notice and fetch what is missing."""
        self.set_notice(self.rapp.server_notice)
        g = self.current
        if g is not None and self.list_pos is not None:
            self.render_group(g)
            self.request_pictures(g, self.list_pos)

    # ------------------------------------------------------------------ pictures

    def request_pictures(self, g: GroupPlan, position: int) -> None:
        app = self.rapp
        if app.image_cls is None:
            return
        missing = [a for a in g.assets if app.pictures.cached(a, "thumbnail") is None]
        state = app.state
        upcoming = [
            state.group_at(p) for p in range(position + 1, min(position + 1 + PREFETCH_GROUPS, len(state.order)))
        ]
        if missing or upcoming:
            self.load_pictures(g, upcoming)

    def _warm_next(self, shown_id: str) -> None:
        """Draw the next group's pictures (those in memory) into the picture cache while the
        user looks at this one: one picture per message, each queued behind whatever came in
        meanwhile, so a key pressed now waits for one picture at most (~1 ms)."""
        if shown_id != self.shown_id or self.list_pos is None:
            return
        state = self.rapp.state
        if self.list_pos + 1 >= len(state.order):
            return
        g = state.group_at(self.list_pos + 1)
        pictures = self.rapp.pictures
        todo = [
            (card, image)
            for card, asset in zip(self.query_one(CardRow).cards, g.assets, strict=False)
            if (image := pictures.cached(asset, "thumbnail")) is not None
        ]
        if todo:
            self.call_later(self._warm_step, shown_id, todo)

    def _warm_step(self, shown_id: str, todo: list[tuple[AssetCard, PILImage.Image]]) -> None:
        if shown_id != self.shown_id:  # moved on: the next group is another one now
            return
        card, image = todo.pop(0)
        card.warm(image)
        if todo:
            self.call_later(self._warm_step, shown_id, todo)

    @work(group="thumbs", exclusive=True, exit_on_error=False)
    async def load_pictures(self, g: GroupPlan, upcoming: list[GroupPlan]) -> None:
        """Latest request wins: switching groups cancels this and starts again."""
        pictures = self.rapp.pictures
        for a in g.assets:
            if pictures.cached(a, "thumbnail") is not None:
                continue
            img, why = await pictures.get(a, "thumbnail")
            self.post_message(ThumbnailReady(a.id, "thumbnail", img, why))
        if pictures.client is None:
            return
        for other in upcoming:
            for a in other.assets:
                if pictures.cached(a, "thumbnail") is None:
                    await pictures.get(a, "thumbnail")

    def on_thumbnail_ready(self, message: ThumbnailReady) -> None:
        card = self.query_one(CardRow).card_for(message.asset_id)
        if card is not None:
            card.set_picture(message.image, message.error or "")

    # ------------------------------------------------------------------ navigation

    def action_next_group(self) -> None:
        self._step(1)

    def action_prev_group(self) -> None:
        self._step(-1)

    def _step(self, delta: int) -> None:
        """Move through the list without wrapping around (the ends say so)."""
        lst = self.group_list
        if lst.option_count == 0:
            return
        current = lst.highlighted if lst.highlighted is not None else 0
        target = current + delta
        if not 0 <= target < lst.option_count:
            self.notify("End of the list." if delta > 0 else "Start of the list.", timeout=2)
            return
        lst.highlighted = target

    def action_next_review(self) -> None:
        nxt = self.rapp.state.next_needing_review(self.list_pos)
        if nxt is None:
            self.notify("Nothing left to review in this list.", title="All done")
            return
        self.group_list.highlighted = nxt

    def _all_copies_shown(self) -> bool:
        """Every copy of the shown group is on screen; otherwise say why nothing happens."""
        if self.fit.too_small:
            self.notify("The window is too small to show every copy of this group: make it larger.",
                        severity="warning")
            return False
        return True

    def action_focus_asset(self, delta: int) -> None:
        g = self.current
        if g is None or not self._all_copies_shown():
            return
        target = self.asset_pos + delta
        if not 0 <= target < len(g.assets):  # no wrapping: the keeper is not one key from the last copy
            self.notify("Last copy." if delta > 0 else "First copy.", timeout=2)
            return
        self.asset_pos = target
        self.render_group(g)

    # ------------------------------------------------------------------ edits

    def edit(self, change: Callable[[GroupPlan], GroupPlan], label: str, advance: bool = False) -> bool:
        """Apply a decide.py edit to the shown group; refresh its line and the view."""
        index = self.current_index
        if index is None or self.list_pos is None or not self._all_copies_shown():
            return False
        try:
            self.rapp.state.edit(index, change, label)
        except (ValueError, KeyError) as e:
            self.notify(str(e), title="Not possible", severity="warning")
            return False
        moving_on = (
            advance and self.list_pos is not None and self.list_pos + 1 < len(self.rapp.state.order)
        )
        # when moving on, the edited group is not drawn again: the next one replaces it
        self.refresh_after_edit([index], render_current=not moving_on)
        if moving_on and self.list_pos is not None:
            self.group_list.highlighted = self.list_pos + 1
        return True

    def refresh_after_edit(self, indices: list[int], render_current: bool = True) -> None:
        state = self.rapp.state
        groups = state.plan.groups
        if len(indices) > 50:
            pos = self.list_pos
            self.group_list.show(groups, state.order, pos)
        else:
            positions = {idx: p for p, idx in enumerate(state.order)} if len(indices) > 1 else {}
            for idx in indices:
                p = positions.get(idx) if positions else state.position_of(idx)
                if p is not None:
                    self.group_list.update_line(p, groups[idx])
        g = self.current
        if g is not None and render_current:
            self.render_group(g)
        self.update_title()

    def focused_asset_id(self) -> str | None:
        g = self.current
        if g is None:
            return None
        return g.assets[self.asset_pos].id

    def action_make_keeper(self) -> None:
        aid = self.focused_asset_id()
        if aid is not None:
            self.edit(partial(decide.set_winner, asset_id=aid), "keeper")

    def action_toggle_keep(self) -> None:
        g = self.current
        aid = self.focused_asset_id()
        if g is None or aid is None:
            return
        if aid == g.winner:
            self.notify("The keeper is always kept; make another copy the keeper with w.", severity="warning")
            return
        self.edit(partial(decide.toggle_keep, asset_id=aid), "keep/trash")

    def action_take(self, field: str) -> None:
        """The focused asset supplies ``field``. On the keeper: its own value, or (when it has
        none) nothing at all, which leaves the field as it is on the server."""
        g = self.current
        aid = self.focused_asset_id()
        if g is None or aid is None:
            return
        what = FIELD_NAMES.get(field, field)
        target: str | None = aid
        if aid == g.winner and not _has_field(g.winner_asset, field):
            target = None
        if self.edit(partial(decide.set_source, field=field, asset_id=target), f"{what} source"):
            if target is None:
                self.notify(f"{what}: not carried over (the keeper stays without)")
            elif target == g.winner:
                self.notify(f"{what}: the keeper keeps its own")
            else:
                self.notify(f"{what} taken from #{self.asset_pos + 1}")

    def action_accept(self) -> None:
        self.edit(decide.accept, "accept", advance=True)

    def action_skip(self) -> None:
        self.edit(partial(decide.set_action, action=Action.SKIP), "skip", advance=True)

    def action_not_duplicates(self) -> None:
        self.edit(partial(decide.set_action, action=Action.KEEP_ALL), "not duplicates", advance=True)

    def action_stack(self) -> None:
        self.edit(partial(decide.set_action, action=Action.STACK), "stack", advance=True)

    def action_accept_safe(self) -> None:
        state = self.rapp.state
        safe = [i for i, g in enumerate(state.plan.groups) if is_safe(g)]
        if not safe:
            self.notify("No group is waiting that needs no review.")
            return
        changed = state.edit_many(safe, decide.accept, f"accept {len(safe)} safe groups")
        self.refresh_after_edit(changed)
        self.notify(f"Accepted {len(changed)} groups that need no review (u undoes it).")

    def action_external(self) -> None:
        g = self.current
        if g is None:
            return
        external = [a for a in g.assets if a.is_external and a.id in g.losers]
        if g.allow_external_delete:
            self.edit(partial(decide.allow_external_delete, allow=False), "external copies")
            self.notify("External-library copies in this group will be kept.")
            return
        if not external:
            self.notify("No external-library copy is in the trash list of this group.")
            return
        names = ", ".join(a.file_name for a in external)
        body = Content.assemble(
            "Allow deleting these external-library copies?\n\n",
            (names, "bold"),
            "\n\nThey are files in a library folder on your own disk. Execute backs them up, then "
            "moves them to the Immich trash (with f, permanent delete: deleted at once). When "
            "Immich purges one, it deletes the file from the library folder if that folder is "
            "writable. A restore from the backup brings such a copy back only as an ordinary "
            "upload, not into its external library.",
        )

        def done(ok: bool | None) -> None:
            if ok:
                self.edit(partial(decide.allow_external_delete, allow=True), "external copies")

        self.app.push_screen(ConfirmScreen("External library", body, "Allow", danger=True), done)

    def action_undo(self) -> None:
        entry = self.rapp.state.undo()
        if entry is None:
            self.notify("Nothing to undo.")
            return
        self.refresh_after_edit([i for i, _ in entry.before])
        if len(entry.before) == 1:
            index = entry.before[0][0]
            pos = self.rapp.state.position_of(index)
            if pos is not None and pos != self.list_pos:
                self.group_list.highlighted = pos
        self.notify(f"Undone: {entry.label}")

    # ------------------------------------------------------------------ view

    def action_cycle_filter(self) -> None:
        state = self.rapp.state
        filters = list(Filter)
        state.filter = filters[(filters.index(state.filter) + 1) % len(filters)]
        self.reload_list()
        self.notify(f"Showing: {state.filter.value} ({len(state.order)} groups)")

    def action_cycle_sort(self) -> None:
        state = self.rapp.state
        sorts = list(Sort)
        state.sort = sorts[(sorts.index(state.sort) + 1) % len(sorts)]
        self.reload_list()
        self.notify(f"Sorted by {state.sort.value}")

    def action_preview(self) -> None:
        g = self.current
        if g is None or not self._all_copies_shown():
            return

        def back(position: int | None) -> None:
            if position is not None and self.current is g:
                self.asset_pos = position
                self.render_group(g)

        self.app.push_screen(
            PreviewScreen(g, self.asset_pos, self.rapp.image_cls, self.rapp.pictures.get), back
        )

    def action_scroll_fields(self, pages: int) -> None:
        box = self.query_one(DiffBox)
        step = max(1, box.scrollable_content_region.height - 1)
        box.scroll_relative(y=pages * step, animate=False)

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen(self.binding_rows(), self.rapp.help_extra()))

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        """As Screen's, with this screen's keys in the order of BINDINGS and of their keys
        (the footer's order): a key the group list also binds (←, Enter) would otherwise be
        listed where the list has it, ahead of everything."""
        active = super().active_bindings
        rank: dict[tuple[str | None, str], int] = {}
        for b in self.BINDINGS:
            if isinstance(b, Binding) and b.id is not None:
                for key in self.rapp.keys_by_id.get(b.id, ()):
                    rank.setdefault((b.id, key), len(rank))
        mine = sorted(
            (item for item in active.items() if item[1].node is self),
            key=lambda item: rank.get((item[1].binding.id, item[0]), len(rank)),
        )
        before = {k: v for k, v in active.items() if v.node is not self and v.node is not self.app}
        after = {k: v for k, v in active.items() if v.node is self.app}
        return {**before, **dict(mine), **after}

    def binding_rows(self) -> list[tuple[str, str, str]]:
        """(keys as mapped now, description, binding id) for every key of this screen, in the
        order of BINDINGS: from the keymap as applied, so a key the focused widget also uses
        (Enter) and an action left without a key are listed too."""
        rows: list[tuple[str, str, str]] = []
        for b in self.BINDINGS:
            if not isinstance(b, Binding) or b.id is None:
                continue
            keys = self.rapp.keys_by_id.get(b.id, ())
            shown = [self.app.get_key_display(Binding(key, b.action)) for key in keys]
            rows.append(("/".join(dict.fromkeys(shown)) or "(no key)", _LONG.get(b.id, b.description), b.id))
        return rows

    # ------------------------------------------------------------------ app-level actions

    def action_save(self) -> None:
        self.rapp.save_in_background(notify=True)

    async def action_quit(self) -> None:
        await self.rapp.action_quit()

    def action_execute(self) -> None:
        self.rapp.start_execute()

    def action_verify(self) -> None:
        self.rapp.start_verify()

    def action_restore(self) -> None:
        self.rapp.start_restore()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in COPY_ACTIONS:
            return True if self.current is not None and self.fit.fits else None
        return True


_LONG: dict[str, str] = {
    "review.next_group": "next group",
    "review.prev_group": "previous group",
    "review.next_review": "next group that needs review",
    "review.asset_left": "focus the previous asset (◆)",
    "review.asset_right": "focus the next asset (◆)",
    "review.make_keeper": "make the focused asset the keeper",
    "review.toggle_keep": "keep the focused asset too / trash it again (partial keep)",
    "review.source_gps": "take the GPS position from the focused asset (on a keeper without: none)",
    "review.source_date": "take date + time zone from the focused asset (same on the keeper)",
    "review.source_description": "take the description from the focused asset (same on the keeper)",
    "review.accept": "accept the group as shown (marks it reviewed), go to the next",
    "review.accept_safe": "accept every group that needs no review",
    "review.skip": "skip: leave the group alone this time",
    "review.not_duplicates": "not duplicates: keep every copy, dismiss the group",
    "review.stack": "stack: keep every copy, stacked under the keeper",
    "review.external": "allow trashing this group's external-library copies (asks first)",
    "review.undo": "undo the last decision",
    "review.preview": "full-size preview of the focused asset",
    "review.fields_down": "scroll the field table down (when it does not fit)",
    "review.fields_up": "scroll the field table up",
    "review.filter": "filter: needs review → undecided (nobody decided) → decided (a s x S A) → all",
    "review.sort": "sort: conflicts first → bytes saved → date",
    "review.save": "save the plan now (also saved on quit and every 30 s)",
    "review.execute": "execute the plan (asks first: backup, then trash)",
    "review.verify": "verify the server against the plan",
    "review.restore": "restore losers from the backup (asks first)",
    "review.help": "this help",
    "review.quit": "save and quit",
}
