"""Fixtures for the review app tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_plans import build_plan, settle_app

from immich_dupes.analysis.plan import save_plan


@pytest.fixture
def plan_file(tmp_path: Path) -> Callable[[list[str]], Path]:
    def make(kinds: list[str]) -> Path:
        path = tmp_path / "plan.json"
        save_plan(build_plan(kinds), path)
        return path

    return make


@pytest.fixture
def settle() -> Callable[[Pilot[Any]], Awaitable[None]]:
    return settle_app
