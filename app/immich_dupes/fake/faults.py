"""Fault injection for the fake server: latency, 5xx, 429, resets, truncation, corruption, downtime.

Spec text, items separated by commas, each ``name=value[:option=value][@path]``::

    latency=50ms            fixed latency per request (bare number: milliseconds)
    latency=10ms-200ms      uniform range
    5xx=0.1                 10 % of requests answer 500/502/503 (not processed)
    503=0.2                 a specific status
    429=0.05:retry-after=1  5 % answer 429 with ``Retry-After: 1`` (not processed)
    reset=0.02              2 % are processed, then the connection drops mid-body
    truncate=0.02           2 % are processed, then the body is cut short (Content-Length lies)
    corrupt=<asset id>      /original of that asset serves altered bytes (repeatable)
    corrupt=0.1             ... of 10 % of assets (decided per asset id)
    down=2s                 refuse every request for 2 s from the first request that sees it
    seed=1                  decisions are deterministic for a seed

``@/path`` limits an item to request paths (without ``/api``) starting with ``/path``; a
pattern with ``*`` is matched with fnmatch, e.g. ``reset=0.5@/assets/*/original``.
Decisions hash (seed, fault, method, path, n-th request to that path), so they do not depend
on how concurrent requests interleave.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field

DEFAULT_5XX = (500, 502, 503)


@dataclass
class FaultDecision:
    down: bool = False
    latency: float = 0.0
    status: int | None = None  # injected error status (request not processed)
    retry_after: float | None = None
    reset: bool = False
    truncate: bool = False

    @property
    def name(self) -> str | None:
        if self.down:
            return "down"
        if self.status is not None:
            return str(self.status)
        if self.reset:
            return "reset"
        if self.truncate:
            return "truncate"
        return None


@dataclass
class Faults:
    """What to inject; ``Faults()`` injects nothing. Assign to ``FakeImmich.faults`` at any time."""

    latency: tuple[float, float] | None = None  # seconds (low, high)
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = DEFAULT_5XX
    throttle_rate: float = 0.0
    retry_after: float = 1.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    corrupt_ids: frozenset[str] = frozenset()
    corrupt_rate: float = 0.0
    down_for: float = 0.0  # seconds
    seed: int = 0
    paths: dict[str, str] = field(default_factory=dict)  # fault name → path pattern

    # ------------------------------------------------------------------ parsing

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Build from the spec text described in the module docstring (empty → no faults)."""
        f = cls()
        if not spec:
            return f
        corrupt: set[str] = set()
        statuses: list[int] = []
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                continue
            item, _, where = item.partition("@")
            name, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"fault {raw!r}: expected name=value")
            name = name.strip().lower()
            value, *options = value.split(":")
            opts = dict(_option(o, raw) for o in options)
            if where:
                f.paths[_fault_key(name)] = where.strip()
            if name == "latency":
                f.latency = _latency(value, raw)
            elif name == "5xx":
                f.error_rate = _rate(value, raw)
                statuses.extend(DEFAULT_5XX)
            elif re.fullmatch(r"5\d\d", name):
                f.error_rate = _rate(value, raw)
                statuses.append(int(name))
            elif name == "429":
                f.throttle_rate = _rate(value, raw)
                if "retry-after" in opts:
                    f.retry_after = _seconds(opts["retry-after"], raw)
            elif name == "reset":
                f.reset_rate = _rate(value, raw)
            elif name == "truncate":
                f.truncate_rate = _rate(value, raw)
            elif name == "corrupt":
                v = value.strip()
                if re.fullmatch(r"[0-9a-fA-F-]{36}", v):
                    corrupt.add(v.lower())
                else:
                    f.corrupt_rate = _rate(v, raw)
            elif name == "down":
                f.down_for = _seconds(value, raw)
            elif name == "seed":
                f.seed = int(value)
            else:
                raise ValueError(f"unknown fault {name!r} in {raw!r}")
        if statuses:
            f.error_statuses = tuple(dict.fromkeys(statuses))
        f.corrupt_ids = frozenset(corrupt)
        return f

    @property
    def active(self) -> bool:
        return bool(
            self.latency
            or self.error_rate
            or self.throttle_rate
            or self.reset_rate
            or self.truncate_rate
            or self.corrupt_ids
            or self.corrupt_rate
            or self.down_for
        )

    # ------------------------------------------------------------------ decisions

    def applies(self, fault: str, path: str) -> bool:
        """Whether ``fault`` applies to ``path`` (with or without the ``/api`` prefix)."""
        pattern = self.paths.get(fault)
        if not pattern:
            return True
        p = path[4:] if path.startswith("/api/") else path
        if "*" in pattern or "?" in pattern:
            return fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(path, pattern)
        return p.startswith(pattern) or path.startswith(pattern)

    def draw(self, fault: str, key: str, n: int) -> float:
        """A uniform number in [0, 1) fixed by (seed, fault, key, n)."""
        h = hashlib.blake2b(f"{self.seed}|{fault}|{key}|{n}".encode(), digest_size=8).digest()
        return int.from_bytes(h, "big") / 2**64

    def decide(self, method: str, path: str, n: int) -> FaultDecision:
        """The faults for the ``n``-th request of ``method path`` (down is decided by the caller)."""
        d = FaultDecision()
        key = f"{method} {path}"
        if self.latency and self.applies("latency", path):
            lo, hi = self.latency
            d.latency = lo if hi <= lo else lo + (hi - lo) * self.draw("latency", key, n)
        if (
            self.error_rate
            and self.applies("5xx", path)
            and self.draw("5xx", key, n) < self.error_rate
        ):
            statuses = self.error_statuses
            d.status = statuses[int(self.draw("5xx-status", key, n) * len(statuses))]
            return d
        if (
            self.throttle_rate
            and self.applies("429", path)
            and self.draw("429", key, n) < self.throttle_rate
        ):
            d.status = 429
            d.retry_after = self.retry_after
            return d
        if (
            self.reset_rate
            and self.applies("reset", path)
            and self.draw("reset", key, n) < self.reset_rate
        ):
            d.reset = True
        elif (
            self.truncate_rate
            and self.applies("truncate", path)
            and self.draw("truncate", key, n) < self.truncate_rate
        ):
            d.truncate = True
        return d

    def corrupts(self, asset_id: str, path: str) -> bool:
        """Whether downloads of ``asset_id`` serve altered bytes (fixed per asset)."""
        if not self.applies("corrupt", path):
            return False
        if asset_id.lower() in self.corrupt_ids:
            return True
        return bool(self.corrupt_rate) and self.draw("corrupt", asset_id, 0) < self.corrupt_rate


def _fault_key(name: str) -> str:
    return "5xx" if re.fullmatch(r"5(xx|\d\d)", name) else name


def _option(text: str, raw: str) -> tuple[str, str]:
    k, eq, v = text.partition("=")
    if not eq:
        raise ValueError(f"fault option {text!r} in {raw!r}: expected key=value")
    return k.strip().lower(), v.strip()


def _rate(text: str, raw: str) -> float:
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ValueError(f"fault {raw!r}: {text!r} is not a rate") from None
    if not 0 <= value <= 1:
        raise ValueError(f"fault {raw!r}: rate must be between 0 and 1")
    return value


def _seconds(text: str, raw: str, bare_unit: float = 1.0) -> float:
    t = text.strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|m)?", t)
    if not m:
        raise ValueError(f"fault {raw!r}: {text!r} is not a duration")
    value = float(m.group(1))
    unit = m.group(2)
    if unit == "ms":
        return value / 1000
    if unit == "s":
        return value
    if unit == "m":
        return value * 60
    return value * bare_unit


def _latency(text: str, raw: str) -> tuple[float, float]:
    t = text.strip().lower()
    m = re.fullmatch(r"([\d.]+\s*(?:ms|s)?)\s*-\s*([\d.]+\s*(?:ms|s)?)", t)
    if m:
        lo_text, hi_text = m.group(1), m.group(2)
        if not re.search(r"(ms|s)$", lo_text) and (unit := re.search(r"(ms|s)$", hi_text)):
            lo_text += unit.group(1)
        lo, hi = _seconds(lo_text, raw, 0.001), _seconds(hi_text, raw, 0.001)
        return (min(lo, hi), max(lo, hi))
    v = _seconds(t, raw, 0.001)
    return (v, v)
