"""Settings of the review app: one pydantic model, a docstring per field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ImageProtocol = Literal["auto", "kitty", "sixel", "halfcell", "unicode", "none"]


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "immich-dupes"


class ReviewSettings(BaseModel):
    """Everything the review app is configured with (the server comes as a client factory)."""

    model_config = ConfigDict(extra="forbid")

    plan_path: Path
    """The plan file under review; decisions are saved into it (atomically)."""
    image_protocol: ImageProtocol = "auto"
    """How pictures are drawn: detect, kitty, sixel, halfcell (colour blocks, works anywhere),
    unicode, or none (metadata only)."""
    offline: bool = False
    """Never contact the server: no pictures (unless cached), no execute."""
    backup_dir: Path | None = None
    """Where execute backs losers up and restore reads them; asked for when missing."""
    cache_dir: Path | None = None
    """Thumbnail cache on disk; None means ``~/.cache/immich-dupes/thumbs``."""
    keymap: dict[str, str] = Field(default_factory=dict)
    """Binding id → keys, e.g. ``{"review.accept": "enter,a"}`` (see the help screen for ids)."""
    autosave_seconds: float = Field(default=30.0, gt=0)
    """Unsaved decisions are written this often (and always on quit)."""
    memory_cache_mb: int = Field(default=32, ge=8)
    """Decoded thumbnails kept in memory, in megabytes (32 MB: ~200 thumbnails, ~90 groups)."""


def load_keymap(path: Path | None = None) -> tuple[dict[str, str], str]:
    """The user's keymap file, or {} — with a warning when the file exists but is unusable."""
    p = path or config_dir() / "keymap.json"
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except (OSError, ValueError) as e:
        return {}, f"{p}: not used ({e})"
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        return {}, f'{p}: not used (expected {{"binding id": "keys"}})'
    return dict(raw), ""
