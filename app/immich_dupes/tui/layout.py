"""How the main screen fits a terminal: pure arithmetic (no textual), so it is unit-tested.

The rule the layout keeps: every copy of the shown group is on screen (its card with
KEEP/TRASH, its column of the field table) whenever a key can act on it. So the group list
gives way to the cards on narrow terminals, the cards drop their pictures on short ones,
and a terminal too small for even that says so instead of showing part of a group.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

LIST_WIDTH = 50
"""Width of the group list (app.tcss ``#groups``)."""
LIST_MIN_SCREEN = 120
"""Below this many columns the group list is hidden (j/k/n still move through it)."""
CARD_MIN_WIDTH = 20
"""A card narrower than this cuts its facts to nothing (app.tcss ``.card`` min-width)."""

TITLE_ROWS = 1
FOOTER_ROWS = 1
HEAD_ROWS = 3
"""The group's head: status, conflicts, keeper (app.tcss ``#group-head``)."""


class Cards(StrEnum):
    """How tall the cards are (app.tcss: ``-cards-<value>`` on the screen)."""

    FULL = "full"
    """Picture (12 rows) and facts."""
    SMALL = "small"
    """A smaller picture (6 rows) and facts."""
    FACTS = "facts"
    """Facts only: the field table below still has every value."""


CARD_ROWS: dict[Cards, int] = {Cards.FULL: 22, Cards.SMALL: 15, Cards.FACTS: 9}

DIFF_ROWS_WANTED = 10
"""Rows of the field table (its rule, header and 8 fields: through the camera) a bigger
card must leave; otherwise the next smaller card is used."""
DIFF_ROWS_MIN = 4
"""Rows of the field table (rule, header, 2 fields) below which the screen is too small."""

# the field table's columns; each cell has one space either side
FIELD_WIDTH = 11
RULE_WIDTH = 10
RESULT_WIDTH = 26
RESULT_MIN_WIDTH = 12
RESULT_MAX_WIDTH = 44
ASSET_WIDTH = 18
ASSET_MIN_WIDTH = 8
SCROLLBAR = 2


def diff_widths(box_width: int, copies: int) -> tuple[int, int]:
    """(width of a copy's column, width of the result column) for a table ``box_width``
    wide: the field and rule columns whole, the rest shared, never below the minimums."""
    n = max(1, copies)
    avail = box_width - (FIELD_WIDTH + 2) - (RULE_WIDTH + 2) - 2 * (n + 1)
    result = max(RESULT_MIN_WIDTH, min(RESULT_MAX_WIDTH, avail // (n + 1)))
    if result < RESULT_WIDTH:
        # the result column grows to its usual width as long as the copies keep theirs
        result = max(result, min(RESULT_WIDTH, avail - n * ASSET_WIDTH))
    asset = max(ASSET_MIN_WIDTH, (avail - result) // n)
    return asset, result


def diff_min_width(copies: int) -> int:
    """Columns the field table needs to show every copy (its scrollbar included)."""
    n = max(1, copies)
    return (FIELD_WIDTH + 2) + (RULE_WIDTH + 2) + n * (ASSET_MIN_WIDTH + 2) + RESULT_MIN_WIDTH + 2 + SCROLLBAR


def detail_min_width(copies: int) -> int:
    """Columns the cards and the field table of a group of ``copies`` need."""
    return max(copies * CARD_MIN_WIDTH, diff_min_width(copies))


@dataclass(frozen=True)
class Layout:
    show_list: bool
    cards: Cards
    too_small: str
    """Why the group cannot be shown safely ('' when it can)."""

    @property
    def fits(self) -> bool:
        return not self.too_small


def plan_layout(width: int, height: int, copies: int, notice_rows: int = 0) -> Layout:
    """The layout for a ``width`` × ``height`` terminal showing a group of ``copies``."""
    copies = max(1, copies)
    need_width = detail_min_width(copies)
    show_list = width >= LIST_MIN_SCREEN and width - LIST_WIDTH >= need_width
    rows = height - TITLE_ROWS - FOOTER_ROWS - notice_rows - HEAD_ROWS
    cards = next((c for c in Cards if rows - CARD_ROWS[c] >= DIFF_ROWS_WANTED), Cards.FACTS)
    need_rows = TITLE_ROWS + FOOTER_ROWS + notice_rows + HEAD_ROWS + CARD_ROWS[Cards.FACTS] + DIFF_ROWS_MIN
    too_small = ""
    if width < need_width or height < need_rows:
        too_small = (
            f"The window is too small to show all {copies} copies of this group and their fields: "
            f"it needs at least {max(width, need_width)}×{max(height, need_rows)} "
            f"(it is {width}×{height}). Make it larger (or the font smaller); until then the keys "
            "that act on copies or decide the group do nothing."
        )
    return Layout(show_list, cards, too_small)
