"""Make the README screenshots of the review app from the demo library.

    /work/venv/bin/python scripts/make_screenshots.py [--out screenshots] [--size 180x50]

Runs the app headless against the fake Immich (``sample`` library, in-process), with halfcell
pictures so they show in SVG, and writes ``<name>.svg`` and ``<name>.png`` (PNG via CairoSVG,
with the SVG's Fira Code swapped for a monospace font CairoSVG can find).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import re
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.cells import cell_len
from textual.pilot import Pilot

from immich_dupes.analysis.plan import save_plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.fake import FakeImmich
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.app import ReviewApp, make_app
from immich_dupes.tui.screens.run import RunScreen

SHOTS = {
    "review-main": "the main screen on a group that needs review",
    "review-diff-conflict": "the metadata diff of a GPS conflict, the other copy's position chosen",
    "review-preview": "the full-size preview",
    "review-execute-confirm": "the execute confirmation",
    "review-execute-progress": "execute running",
    "review-execute-result": "execute finished",
    "review-help": "the help screen",
}


SVG_CELL = 12.2
"""Cell width in Rich's SVG export (font size 20 × 0.61)."""

_TEXT = re.compile(r'<text ([^>]*?)x="([0-9.]+)"([^>]*?) textLength="[0-9.]+"([^>]*)>([^<]*)</text>')


def _split_runs(match: re.Match[str]) -> str:
    """One <text> per word, each placed at its own cell.

    Rich's SVG relies on ``textLength`` to keep a run of text on the cell grid; CairoSVG
    ignores it and advances by the font's own (pixel-rounded) width, so a long run drifts by
    about a cell per 60 and table columns come out crooked. Placing every word at its cell
    keeps the columns straight whatever the font.
    """
    before, x, middle, after, body = match.groups()
    text = html.unescape(body)
    out: list[str] = []
    column = 0
    for word in re.split(r"([^\s\u00a0]+)", text):
        width = cell_len(word)
        if word and not word.isspace() and word.replace("\u00a0", ""):
            out.append(f'<text {before}x="{float(x) + column * SVG_CELL:.1f}"{middle}{after}>'
                       f"{html.escape(word, quote=False)}</text>")
        column += width
    return "".join(out)


def to_png(svg: Path, png: Path) -> None:
    import cairosvg  # type: ignore[import-untyped]

    text = svg.read_text(encoding="utf-8").replace(
        "font-family: Fira Code, monospace", "font-family: DejaVu Sans Mono, Menlo, monospace"
    )
    text = _TEXT.sub(_split_runs, text)
    cairosvg.svg2png(bytestring=text.encode("utf-8"), write_to=str(png))


async def settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    for _ in range(50):
        await pilot.pause()
        busy = [w for w in app.workers if w.is_running]
        if not busy:
            break
        await asyncio.sleep(0.05)
    app.clear_notifications()
    await pilot.pause()


async def make(out: Path, size: tuple[int, int], work: Path) -> list[Path]:
    fake = FakeImmich(library="sample")

    def client() -> ImmichClient:
        return ImmichClient("http://fake-immich", fake.api_key, transport=fake.transport(), rate_limit=1000)

    async with client() as c:
        plan = await analyze(c)
    plan_path = work / "plan.json"
    save_plan(plan, plan_path)
    backup = work / "backup"
    written: list[Path] = []

    def new_app() -> ReviewApp:
        return make_app(plan_path, client_factory=client, image_protocol="halfcell",
                        cache_dir=work / "thumbs", backup_dir=backup)

    async def shot(app: ReviewApp, name: str) -> None:
        svg = out / f"{name}.svg"
        svg.write_text(app.export_screenshot(), encoding="utf-8")
        to_png(svg, out / f"{name}.png")
        written.extend([svg, out / f"{name}.png"])
        print(f"{name}: {SHOTS[name]}", file=sys.stderr)

    async def session(steps: Callable[[ReviewApp, Pilot[Any]], Awaitable[None]]) -> None:
        app = new_app()
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await steps(app, pilot)
            await pilot.press("escape", "escape")
            app.exit(0)

    async def main_and_help(app: ReviewApp, pilot: Pilot[Any]) -> None:
        await shot(app, "review-main")
        await pilot.press("question_mark")
        await settle(pilot)
        await shot(app, "review-help")

    async def diff(app: ReviewApp, pilot: Pilot[Any]) -> None:
        main = app.main
        assert main is not None
        state = app.state
        berlin = next(p for p in range(len(state.order))
                      if state.group_at(p).winner_asset.file_name == "s02_large_berlin.jpg")
        main.group_list.highlighted = berlin
        await settle(pilot)
        await pilot.press("l", "g")
        await settle(pilot)
        await shot(app, "review-diff-conflict")
        await pilot.press("f")
        await settle(pilot)
        await shot(app, "review-preview")

    async def execute(app: ReviewApp, pilot: Pilot[Any]) -> None:
        await pilot.press("A", "E")
        await settle(pilot)
        await shot(app, "review-execute-confirm")
        fake.faults = "latency=150ms"  # slow enough to catch it running
        await pilot.press("y")
        for _ in range(200):
            await asyncio.sleep(0.05)
            screen = app.screen
            if isinstance(screen, RunScreen) and "backup" in screen.rows:
                break
        await pilot.pause()
        await shot(app, "review-execute-progress")
        fake.faults = ""
        for _ in range(400):
            await asyncio.sleep(0.05)
            screen = app.screen
            if isinstance(screen, RunScreen) and screen.finished:
                break
        await settle(pilot)
        await shot(app, "review-execute-result")

    await session(main_and_help)
    await session(diff)
    await session(execute)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "screenshots")
    ap.add_argument("--size", default="180x50", help="terminal COLUMNSxROWS (default 180x50)")
    args = ap.parse_args()
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    # a fixed, readable path: it is shown in the execute screens
    work = Path(tempfile.gettempdir()) / "immich-dupes-demo"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        written = asyncio.run(make(args.out, (cols, rows), work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
