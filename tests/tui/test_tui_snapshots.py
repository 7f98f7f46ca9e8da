"""SVG snapshots at a fixed terminal size (180x50), halfcell pictures.

Sync tests (``snap_compare`` cannot run inside an async test). The plan and the pictures are
built here, deterministically (tui_plans: decide.build_group + a tiny picture server), so a
snapshot only changes when the app's look does. Update the baselines with
``pytest tests/tui/test_tui_snapshots.py --snapshot-update`` and look at them before committing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_plans import SERVER, build_plan, picture_server, settle_app

from immich_dupes.analysis.plan import save_plan
from immich_dupes.immich.client import ImmichClient
from immich_dupes.tui.app import ReviewApp, make_app

SIZE = (180, 50)
SnapCompare = Callable[..., bool]
KINDS = ["gps", "tz", "safe", "external", "safe"]


def review_app(tmp_path: Path, offline: bool = False) -> ReviewApp:
    save_plan(build_plan(KINDS), tmp_path / "plan.json")
    transport = picture_server()

    def client() -> ImmichClient:
        return ImmichClient(SERVER, "test-key", transport=transport, rate_limit=1000)

    app = make_app(tmp_path / "plan.json", client_factory=client, image_protocol="halfcell",
                   offline=offline, cache_dir=tmp_path / "cache", backup_dir=tmp_path / "backup")
    # paths differ from run to run: keep them out of the pictures
    app.help_extra = lambda: ["", "  plan: plan.json · pictures: halfcell"]  # type: ignore[method-assign]
    return app


def keys(*presses: str) -> Callable[[Pilot[Any]], Any]:
    async def run(pilot: Pilot[Any]) -> None:
        await settle_app(pilot)
        for key in presses:
            await pilot.press(key)
            await settle_app(pilot)
        pilot.app.clear_notifications()  # toasts time out: keep them out of the pictures
        await pilot.pause()

    return run


@pytest.fixture(autouse=True)
def _no_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """No blinking cursor in the pictures (an Input only appears in the backup-dir prompt)."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "cursor_blink", False)


def test_snapshot_main_needs_review(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """The first flagged group: a GPS conflict, pictures, KEEP/TRASH borders, the diff."""
    assert snap_compare(review_app(tmp_path), terminal_size=SIZE, run_before=keys())


def test_snapshot_three_copies_source_and_partial_keep(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """Time-zone conflict over three copies: date+zone from #2, #2 kept too (partial keep)."""
    presses = ["j", "l", "d", "t"]
    assert snap_compare(review_app(tmp_path), terminal_size=SIZE, run_before=keys(*presses))


def test_snapshot_help(snap_compare: SnapCompare, tmp_path: Path) -> None:
    assert snap_compare(review_app(tmp_path), terminal_size=SIZE, run_before=keys("question_mark"))


def test_snapshot_offline_all_groups(snap_compare: SnapCompare, tmp_path: Path) -> None:
    """No server: the notice, metadata only; every group listed with its mark."""
    app = review_app(tmp_path, offline=True)
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("A", "v", "v", "v", "home"))
