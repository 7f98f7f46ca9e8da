"""Halfcell pictures that are drawn once per picture and size, not on every repaint.

textual-image's HalfcellImage builds a Rich renderable on every render: a copy of the
picture, a resize, then one Style and two Colors per cell, run through Rich's line
splitting (~4 ms a card, most of the cost of showing a group, and ~1,500 objects left for
the cyclic GC to walk). Here the cells are made directly (~0.7 ms), colours are shared
between pictures and equal neighbours share a segment (~600 objects), and the result is
kept per (picture, size) in a small LRU: going back to a group, or drawing the next group's
pictures ahead while the user looks at this one (``warm``), makes showing them a lookup.

Import this module only through :func:`immich_dupes.tui.images.prepare`: importing
textual-image's widgets asks the terminal for its cell size, which is only possible before
Textual owns the terminal.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import Any

from PIL import Image as PILImage
from rich.color import Color, ColorType
from rich.color_triplet import ColorTriplet
from rich.segment import Segment
from rich.style import Style as RichStyle
from textual.css.styles import RulesMap
from textual.strip import Strip
from textual.style import Style
from textual.visual import RenderOptions, Visual
from textual.widget import Widget
from textual_image._geometry import ImageSize
from textual_image._terminal import get_cell_size
from textual_image.renderable.halfcell import Image as HalfcellRenderable
from textual_image.widget import HalfcellImage

HALF_BLOCK = "▀"
"""Upper half block: the foreground is the upper pixel, the background the lower one."""

MAX_CELLS = 12_000
"""Cells of rendered pictures kept (~200 bytes each): ~30 card pictures (ten groups back
and forth). A picture larger than a quarter of this (the full-size preview) is not kept."""


Lines = tuple[tuple[Segment, ...], ...]

COLOR_BITS = 6
"""Bits per channel drawn (262,144 colours): the same picture to the eye at two pixels per
terminal cell (5 bits starts to band in skies), and far more colours shared between pictures."""

MAX_COLORS = 16_384
"""Colours kept for reuse (~3 MB at most; the table starts over when full)."""

_COLORS: dict[bytes, Color] = {}
"""Colours drawn so far, shared by all pictures. A Rich colour is two objects the cyclic GC
walks: a picture made ~700 of them, most of what a group switch left for the GC to walk;
now only the colours not seen before."""


def _color(key: bytes) -> Color:
    c = _COLORS.get(key)
    if c is None:
        if len(_COLORS) >= MAX_COLORS:
            _COLORS.clear()
        shift = 8 - COLOR_BITS
        r, g, b = ((v << shift) | (v >> (COLOR_BITS - shift)) for v in key)  # 63 → 255
        c = Color(f"#{r:02x}{g:02x}{b:02x}", ColorType.TRUECOLOR, triplet=ColorTriplet(r, g, b))
        _COLORS[key] = c
    return c


def render_halfcell(image: PILImage.Image, width: int, height: int) -> Lines:
    """``image`` as ``height`` lines of ``width`` half-block cells (two pixels per cell).

    Scaled like textual-image's halfcell renderable (same resize); colours rounded to
    :data:`COLOR_BITS`; neighbouring cells of the same colours share one segment.
    """
    if width <= 0 or height <= 0:
        return ()
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    shift = 8 - COLOR_BITS
    data = rgb.resize((width, 2 * height)).point(lambda v: v >> shift).tobytes()
    styles: dict[bytes, RichStyle] = {}
    from_color = RichStyle.from_color
    row = 3 * width
    lines: list[tuple[Segment, ...]] = []
    for y in range(height):
        top = 2 * y * row
        segments: list[Segment] = []
        last: bytes = b""
        run = 0
        for x in range(top, top + row, 3):
            key = data[x : x + 3] + data[x + row : x + row + 3]
            if key == last:
                run += 1
                continue
            if run:
                segments.append(Segment(HALF_BLOCK * run, styles[last]))
            if key not in styles:
                styles[key] = from_color(_color(key[:3]), _color(key[3:]))
            last = key
            run = 1
        if run:
            segments.append(Segment(HALF_BLOCK * run, styles[last]))
        lines.append(tuple(segments))
    return tuple(lines)


class StripCache:
    """Rendered pictures by (picture, width, height), least recently used dropped first.

    Keyed by ``id(image)`` and checked against a weak reference to the picture, so a picture
    that was dropped (and whose id Python may give to another one) is never shown again.

    What is kept is the cells, not Strips: Textual caches a Strip inside itself (a reference
    cycle only the cyclic GC frees), so a Strip kept here for long would, once dropped, hold
    its picture's ~600 objects until the next full collection. Each use gets new Strips
    (12 cheap wrappers) and a dropped picture is freed at once.
    """

    def __init__(self, max_cells: int = MAX_CELLS) -> None:
        self.max_cells = max_cells
        self._entries: OrderedDict[tuple[int, int, int], tuple[weakref.ref[PILImage.Image], Lines]] = OrderedDict()
        self._cells = 0
        self.hits = 0
        self.misses = 0

    def get(self, image: PILImage.Image, width: int, height: int) -> list[Strip]:
        """The picture's lines as new Strips (rendered now only if not kept)."""
        return [Strip(line, width) for line in self.lines(image, width, height)]

    def lines(self, image: PILImage.Image, width: int, height: int) -> Lines:
        key = (id(image), width, height)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is image:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]
        self.misses += 1
        lines = render_halfcell(image, width, height)
        if entry is not None:  # a dead picture's entry under a reused id
            del self._entries[key]
            self._cells -= key[1] * key[2]
        if width * height <= self.max_cells // 4:
            self._entries[key] = (weakref.ref(image), lines)
            self._cells += width * height
            while self._cells > self.max_cells:
                (_, w, h), _ = self._entries.popitem(last=False)
                self._cells -= w * h
        return lines

    @property
    def cells(self) -> int:
        return self._cells

    def __len__(self) -> int:
        return len(self._entries)


STRIPS = StripCache()
"""Shared by every picture widget of the app (cards and preview)."""


class _PictureVisual(Visual):
    """What the widget renders: the cached strips at the size Textual gives it."""

    def __init__(self, image: PILImage.Image, size: ImageSize) -> None:
        self.image = image
        self.size = size

    def _cells(self, width: int, height: int | None) -> tuple[int, int]:
        return self.size.get_cell_size(width, height or 2**32, get_cell_size())

    def render_strips(
        self, width: int, height: int | None, style: Style, options: RenderOptions
    ) -> list[Strip]:
        # ``style`` is not applied: every cell sets both its colours, and a picture has no
        # text style
        w, h = self._cells(width, height)
        return STRIPS.get(self.image, w, h)

    def get_optimal_width(self, rules: RulesMap, container_width: int) -> int:
        return self._cells(container_width, None)[0]

    def get_height(self, rules: RulesMap, width: int) -> int:
        return self._cells(width, None)[1]


class HalfcellPicture(HalfcellImage, Renderable=HalfcellRenderable):
    """HalfcellImage for decoded PIL pictures, drawn from :data:`STRIPS`.

    Setting a picture of the same pixel size as the one shown repaints without a new layout
    (the cell size cannot change); textual-image's widget lays out the screen every time.
    """

    def __init__(self, image: PILImage.Image | None = None, *, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(image, name=name, id=id, classes=classes)
        self.auto_links = False  # a picture has no links: skip restyling every line for them

    @property
    def image(self) -> Any:
        return self._image

    @image.setter
    def image(self, value: Any) -> None:
        if value is not None and not isinstance(value, PILImage.Image):
            raise TypeError("HalfcellPicture shows decoded PIL pictures only")
        before = (self._image_width, self._image_height)
        self._image = value
        self._image_width, self._image_height = (value.width, value.height) if value is not None else (0, 0)
        self.refresh(layout=(self._image_width, self._image_height) != before)

    def warm(self, image: PILImage.Image) -> None:
        """Render ``image`` into the cache at the size this widget would show it now.

        Mirrors the sizing above (content width, then height, then the render's own fit), so
        showing the picture here next is a cache hit. Called when the user is idle, for the
        group after the shown one.
        """
        box = self.parent.size if isinstance(self.parent, Widget) else None
        if not box:
            return
        cells = get_cell_size()
        size = ImageSize(image.width, image.height, *self._get_styled_size())
        width, _ = size.get_cell_size(box.width, box.height or 2**32, cells)
        _, height = size.get_cell_size(width, box.height or 2**32, cells)
        STRIPS.lines(image, *size.get_cell_size(width, height, cells))

    def render(self) -> Any:
        image = self._image
        if not isinstance(image, PILImage.Image):
            return ""
        width, height = self._get_styled_size()
        return _PictureVisual(image, ImageSize(image.width, image.height, width, height))
