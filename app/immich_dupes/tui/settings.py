"""Settings of the review app: one pydantic model, a docstring per field."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from textual.binding import Binding
from textual.keys import _normalize_key_list

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


@dataclass
class KeymapCheck:
    """A keymap as it will act: what is handed to Textual, the keys of every binding id, and
    what the user should be told at start."""

    keymap: dict[str, str]
    """Known ids only, keys normalized, none given twice: ready for ``App.set_keymap``."""
    keys: dict[str, tuple[str, ...]]
    """Binding id → its keys once the keymap is applied (Textual's names: ``question_mark``)."""
    warnings: list[str] = field(default_factory=list)


def _split(keys: str) -> list[str]:
    return list(dict.fromkeys(k for k in _normalize_key_list(keys).split(",") if k))


def check_keymap(keymap: Mapping[str, str], scopes: Mapping[str, Sequence[Binding]]) -> KeymapCheck:
    """Apply ``keymap`` to the bindings of each scope (a screen) as Textual does, and say what
    it breaks.

    Textual gives a key a remapped binding takes to that binding alone: every other binding of
    the same screen loses it, and a remapped binding's old keys go with it. Textual says nothing
    about that, nor about an id it does not know; this names each in a warning. A key given to
    two ids of one screen goes to the first in the file (Textual would pick by binding order).
    """
    known: dict[str, str] = {}  # id -> scope
    for scope, bindings in scopes.items():
        for b in bindings:
            if b.id is not None:
                known.setdefault(b.id, scope)
    warnings: list[str] = []
    clean: dict[str, list[str]] = {}
    claimed: dict[tuple[str, str], str] = {}  # (scope, key) -> the id the keymap gave it to
    for bid, value in keymap.items():
        if bid not in known:
            warnings.append(f"{bid!r} is not a binding id: ignored (the help screen, ?, lists the ids).")
            continue
        keys: list[str] = []
        for key in _split(value):
            first = claimed.setdefault((known[bid], key), bid)
            if first == bid:
                keys.append(key)
            else:
                warnings.append(f"{key!r} is given to {first} and to {bid}: it does {first}.")
        if not keys:
            warnings.append(f"{bid}: no usable key given ({value!r}): keeps its own.")
            continue
        clean[bid] = keys

    result: dict[str, tuple[str, ...]] = {}
    for bindings in scopes.values():
        defaults: dict[str, list[str]] = {}
        for b in bindings:
            if b.id is not None:
                defaults.setdefault(b.id, []).extend(_split(b.key))
        remapped = [bid for bid in defaults if bid in clean]
        taken = {k for bid in remapped for k in clean[bid]}
        dropped = {k for bid in remapped for k in defaults[bid]}
        for bid, own in defaults.items():
            if bid in clean:
                result[bid] = tuple(clean[bid])
                continue
            kept = tuple(k for k in own if k not in taken and k not in dropped)
            result[bid] = kept
            for key in own:
                if key in taken:
                    to = next(r for r in remapped if key in clean[r])
                    warnings.append(f"{key!r} now does {to}, no longer {bid}.")
                elif key in dropped:
                    by = next(r for r in remapped if key in defaults[r])
                    warnings.append(f"{key!r} no longer does {bid}: it went with {by}'s old keys.")
            if own and not kept:
                warnings.append(f"{bid} has no key left: give it one in keymap.json.")
    return KeymapCheck({bid: ",".join(keys) for bid, keys in clean.items()}, result, warnings)
