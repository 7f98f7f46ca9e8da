"""The safety suite's figures: printed after the run, written as JSON with ``SAFETY_FIGURES=path``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from safety_support import FIGURES


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    d = FIGURES.to_json()
    if not (d["runs_total"] or d["refusals_checked_total"] or d["kills_survived"]):
        return
    terminalreporter.write_sep("-", "immich-dupes safety figures")
    terminalreporter.write_line(FIGURES.table())
    out = os.environ.get("SAFETY_FIGURES")
    if out:
        Path(out).write_text(json.dumps(d, indent=1) + "\n", encoding="utf-8")
        terminalreporter.write_line(f"  figures written to {out}")
