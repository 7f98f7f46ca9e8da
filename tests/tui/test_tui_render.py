"""How the review app draws: halfcell pictures and their cache, the diff table, the group list."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from PIL import Image as PILImage
from rich.cells import cell_len
from rich.console import Console
from rich.segment import Segment
from textual.content import Content
from tui_plans import SERVER, build_plan, picture_server, settle_app

from immich_dupes.analysis.plan import save_plan
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui import images
from immich_dupes.tui.app import ReviewApp, make_app
from immich_dupes.tui.screens.main import MainScreen
from immich_dupes.tui.widgets.asset_card import CardRow
from immich_dupes.tui.widgets.diff_table import DiffTable, cell, fit
from immich_dupes.tui.widgets.group_list import GroupList

images.prepare("halfcell")  # picture.py may only be imported after textual-image asked the terminal
from immich_dupes.tui.widgets import picture as P  # noqa: E402

SIZE = (180, 50)


def photo(seed: int = 0) -> PILImage.Image:
    """A picture with many colours (gradients in three directions plus coarse noise)."""
    grad = PILImage.linear_gradient("L").resize((250, 188))
    base = PILImage.merge("RGB", (grad, grad.rotate(90 + seed), grad.transpose(PILImage.Transpose.FLIP_LEFT_RIGHT)))
    noise = PILImage.merge("RGB", [PILImage.effect_noise((32, 24), 60).resize((250, 188)) for _ in range(3)])
    return PILImage.blend(base, noise, 0.3)


# ---------------------------------------------------------------------- halfcell pictures


def test_halfcell_cells_are_textual_images_cells_with_rounded_colours() -> None:
    from textual_image.renderable.halfcell import Image as HalfcellRenderable

    img = photo()
    width, height = 30, 12
    console = Console(width=width, height=height, color_system="truecolor")
    theirs = list(Segment.split_and_crop_lines(
        console.render(HalfcellRenderable(img, width, height), console.options.update(width=width, height=height)),
        width, include_new_lines=False,
    ))
    mine = P.render_halfcell(img, width, height)
    assert len(mine) == len(theirs) == height
    step = 2 ** (8 - P.COLOR_BITS)
    for line_mine, line_theirs in zip(mine, theirs, strict=True):
        # one segment may cover several cells of the same colours: expand to cells
        cells = [seg for seg in line_mine for _ in range(cell_len(seg.text))]
        assert "".join(seg.text for seg in line_mine) == "▀" * width
        assert len(cells) == len(line_theirs) == width
        for a, b in zip(cells, line_theirs, strict=True):
            assert a.style is not None
            assert b.style is not None
            for ca, cb in ((a.style.color, b.style.color), (a.style.bgcolor, b.style.bgcolor)):
                assert ca is not None
                assert cb is not None
                assert ca.triplet is not None
                assert cb.triplet is not None
                assert all(abs(x - y) < step for x, y in zip(ca.triplet, cb.triplet, strict=True))


def test_neighbouring_cells_of_one_colour_share_a_segment() -> None:
    flat = PILImage.new("RGB", (64, 48), (10, 200, 30))
    lines = P.render_halfcell(flat, 20, 5)
    assert all(len(line) == 1 and line[0].text == "▀" * 20 for line in lines)
    style = lines[0][0].style
    assert style is not None
    assert style.color is not None
    assert style.color.triplet is not None
    assert tuple(style.color.triplet) == (8, 203, 28)  # 6 bits per channel, 63 → 255


def test_colour_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "MAX_COLORS", 50)
    monkeypatch.setattr(P, "_COLORS", {})
    P.render_halfcell(photo(1), 30, 12)
    assert 0 < len(P._COLORS) <= 50


def test_strip_cache_hits_the_same_picture_and_size_only() -> None:
    cache = P.StripCache()
    img = photo()
    first = cache.lines(img, 30, 12)
    assert cache.lines(img, 30, 12) is first
    assert (cache.hits, cache.misses) == (1, 1)
    assert cache.lines(img, 20, 8) is not first  # another size is another render
    assert cache.lines(img.copy(), 30, 12) is not first  # an equal picture is not the same one
    strips = cache.get(img, 30, 12)
    assert [s.cell_length for s in strips] == [30] * 12
    assert cache.get(img, 30, 12)[0] is not strips[0]  # new Strips every time (see StripCache)


def test_strip_cache_never_shows_a_dropped_picture_for_another() -> None:
    """Keys are id(picture): a dead picture's entry under an id Python gave to a new picture
    must not be shown for it."""
    cache = P.StripCache()
    dead = photo(1)
    dead_ref = weakref.ref(dead)
    dead_lines = cache.lines(dead, 30, 12)
    del dead
    gc.collect()
    assert dead_ref() is None
    new = photo(2)
    # what an id reuse looks like: the dead picture's entry under the new picture's id
    (key, entry), = cache._entries.items()
    cache._entries[(id(new), key[1], key[2])] = entry
    assert cache.lines(new, 30, 12) != dead_lines
    assert cache.lines(new, 30, 12) == P.render_halfcell(new, 30, 12)


def test_strip_cache_is_bounded_and_does_not_keep_big_pictures() -> None:
    cache = P.StripCache(max_cells=1000)
    pictures = [photo(i) for i in range(6)]
    for img in pictures:
        cache.lines(img, 20, 10)  # 200 cells each
    assert cache.cells <= 1000
    assert len(cache) == 5
    assert cache.lines(pictures[-1], 20, 10) is cache.lines(pictures[-1], 20, 10)
    big = photo(9)
    cache.lines(big, 30, 10)  # 300 cells > a quarter of the budget: drawn, not kept
    assert all(k[0] != id(big) for k in cache._entries)


# ---------------------------------------------------------------------- diff table


def test_cells_have_exactly_their_width() -> None:
    assert fit("abc", 5) == "abc  "
    assert fit("abcdef", 5) == "abcd…"
    assert cell_len(fit("日本語の写真", 7)) == 7  # wide characters are counted as two cells
    for pieces in ([("◆ ", "bold"), ("a long value that does not fit", "")], [("日本語の写真です", "")], [("", "")]):
        out = cell([(t, s) for t, s in pieces], 10)
        assert sum(cell_len(t) for t, _ in out) == 12  # a space either side


def app_for(tmp_path: Path, kinds: list[str], pictures: bool = False) -> ReviewApp:
    save_plan(build_plan(kinds), tmp_path / "plan.json")
    if not pictures:
        return make_app(tmp_path / "plan.json", image_protocol="halfcell", offline=True,
                        cache_dir=tmp_path / "cache")
    transport = picture_server()

    def client() -> ImmichClient:
        return ImmichClient(SERVER, "test-key", transport=transport, rate_limit=1000)

    return make_app(tmp_path / "plan.json", client_factory=client, image_protocol="halfcell",
                    cache_dir=tmp_path / "cache")


def main_of(app: ReviewApp) -> MainScreen:
    main = app.main
    assert main is not None
    return main


async def test_diff_lines_line_up_and_mark_differences(tmp_path: Path) -> None:
    app = app_for(tmp_path, ["tz", "gps"])
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        diff = main_of(app).query_one(DiffTable)
        content = diff.visual
        assert isinstance(content, Content)
        lines = content.split("\n")
        assert len(lines) == diff.row_count + 1 == len(diff.rows_shown) + 1
        assert len({line.cell_length for line in lines}) == 1  # every column lines up
        assert diff.row_count > 10
        assert all(line.cell_length <= diff.size.width for line in lines)

        def styles_of(row_key: str) -> list[str]:
            line = lines[1 + [r.key for r in diff.rows_shown].index(row_key)]
            return [str(span.style) for span in line.spans]

        assert any("$error" in s for s in styles_of("timezone"))  # the blocking conflict
        assert any("$warning" in s for s in styles_of("dimensions"))  # differs, not a conflict
        assert not any("$warning" in s or "$error" in s for s in styles_of("visibility"))
        head = lines[0].plain
        assert "→ keeper gets" in head
        assert "how" in head
        await pilot.press("q")


# ---------------------------------------------------------------------- group list


async def test_group_list_scrolls_and_follows_a_terminal_resize(tmp_path: Path) -> None:
    app = app_for(tmp_path, ["safe"] * 120)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        lst = main_of(app).query_one(GroupList)
        tall = lst.max_scroll_y
        assert tall > 0
        for _ in range(60):
            await pilot.press("j")
        await pilot.pause()
        assert lst.highlighted == 60
        top = round(lst.scroll_y)
        assert top <= 60 < top + lst.scrollable_content_region.height
        await pilot.resize_terminal(180, 30)
        await pilot.pause()
        await pilot.pause()
        assert lst.max_scroll_y > tall  # the scrollbar knows the list got shorter on screen
        await pilot.press("v")  # a filter that lists nothing: the list shrinks to no line
        await pilot.pause()
        assert lst.option_count == 0
        assert lst.max_scroll_y == 0
        await pilot.press("q")


# ---------------------------------------------------------------------- pictures of the next group


async def test_next_groups_pictures_are_drawn_before_it_is_shown(tmp_path: Path) -> None:
    app = app_for(tmp_path, ["safe"] * 6, pictures=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle_app(pilot)  # group 1 shown; the following groups' thumbnails fetched
        await pilot.press("j")  # group 2 shown; group 3 is drawn once the screen is idle
        await settle_app(pilot)
        main = main_of(app)
        assert all(c.has_picture for c in main.query_one(CardRow).cards if c.display)
        third = app.state.group_at(2)
        pictures = [app.pictures.cached(a, "thumbnail") for a in third.assets]
        assert all(p is not None for p in pictures)
        drawn = {key[0] for key in P.STRIPS._entries}
        assert all(id(p) in drawn for p in pictures)  # drawn while group 2 was looked at
        hits = P.STRIPS.hits
        await pilot.press("j")  # group 3 shown: its pictures come from the cache
        await pilot.pause()
        assert main.list_pos == 2
        cards = [c for c in main.query_one(CardRow).cards if c.display]
        assert len(cards) == 2
        assert all(c.has_picture for c in cards)
        assert P.STRIPS.hits >= hits + 2
        await pilot.press("q")


# ---------------------------------------------------------------------- garbage collection


async def test_full_collection_waits_for_a_pause(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc as gc_module
    import time

    from immich_dupes.tui.app import IDLE_GC_AFTER, IDLE_GC_MIN_YOUNG

    app = app_for(tmp_path, ["safe"] * 3)
    collected: list[int] = []

    def collect(generation: int = 2) -> int:
        collected.append(generation)
        return 0

    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.4)  # startup's heap frozen (what the idle collection waits for)
        assert app._gc_threshold is not None
        monkeypatch.setattr(gc_module, "collect", collect)
        monkeypatch.setattr(gc_module, "get_count", lambda: (0, 0, IDLE_GC_MIN_YOUNG))
        await pilot.press("j")  # a group drawn just now: the user is busy
        app._collect_when_idle()
        assert collected == []
        app._last_draw = time.monotonic() - IDLE_GC_AFTER - 0.1  # a pause
        app._collect_when_idle()
        assert collected == [2]
        monkeypatch.setattr(gc_module, "get_count", lambda: (0, 0, 0))  # nothing new since
        app._collect_when_idle()
        assert collected == [2]
        monkeypatch.undo()
        await pilot.press("q")
