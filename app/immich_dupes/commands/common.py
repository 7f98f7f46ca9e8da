"""What every command shares: credentials → client, errors → exit codes, progress on stderr."""

from __future__ import annotations

import argparse
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import httpx

from immich_dupes.analysis.plan import PlanError
from immich_dupes.cli import EXIT_CONNECT, EXIT_FAILED, EXIT_USAGE, UsageError, server_credentials
from immich_dupes.engine.events import Event
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ImmichError,
    PermissionMissing,
    UnsupportedServer,
)
from immich_dupes.units import human_bytes


class CommandFailed(Exception):
    """Carries an exit code and one line for the user."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


def make_client(
    args: argparse.Namespace, transport: httpx.AsyncBaseTransport | None = None
) -> ImmichClient:
    url, key = server_credentials(args)
    try:
        return ImmichClient(
            url,
            key,
            rate_limit=getattr(args, "rate_limit", 10.0),
            concurrency=getattr(args, "concurrent", 5),
            transport=transport,
            verify_tls=not getattr(args, "insecure", False),
        )
    except ValueError as e:
        raise UsageError(str(e)) from None


def exit_code_for(e: BaseException) -> tuple[int, str]:
    """The exit code and the one line to print for an error."""
    if isinstance(e, UsageError | PlanError):
        return EXIT_USAGE, str(e)
    if isinstance(e, CommandFailed):
        return e.code, str(e)
    if isinstance(e, AuthenticationFailed):
        return EXIT_CONNECT, f"the server refused the API key ({e.message})"
    if isinstance(e, PermissionMissing):
        perm = f" '{e.permission}'" if e.permission else ""
        if e.message.startswith("the API key lacks"):
            return EXIT_CONNECT, e.message
        return EXIT_CONNECT, f"the API key lacks the permission{perm} ({e})"
    if isinstance(e, ConnectionFailed | UnsupportedServer):
        return EXIT_CONNECT, str(e.message)
    if isinstance(e, ImmichError):
        return EXIT_FAILED, str(e)
    raise e


@contextmanager
def errors_to_exit() -> Iterator[list[int]]:
    """``with errors_to_exit() as code:`` — on an error prints one line and sets code[0]."""
    holder = [0]
    try:
        yield holder
    except (UsageError, PlanError, CommandFailed, ImmichError) as e:
        code, line = exit_code_for(e)
        sys.stderr.write(f"immich-dupes: error: {terminal_safe(line)}\n")
        holder[0] = code


def terminal_safe(text: str) -> str:
    """Escape control and format characters (ESC, NUL, BEL, bidi overrides, …) in text that
    may carry names from the server, so a file name cannot drive or disguise the terminal.
    Newlines and tabs stay."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


class ProgressPrinter:
    """Renders engine events on stderr: a redrawn line on a terminal, sparse lines otherwise."""

    def __init__(self, stream: TextIO | None = None, min_interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.min_interval = min_interval if self.tty else 2.0
        self._starts: dict[str, float] = {}
        self._shown: dict[str, float] = {}
        """When each phase was first seen and last shown: phases interleave (albums load
        during the download), and each keeps its own clock and pace."""
        self._dirty = False

    def __call__(self, ev: Event) -> None:
        if ev.level in ("warning", "error"):
            self._clear()
            self.stream.write(f"{ev.level}: {terminal_safe(ev.message)}\n")
            self.stream.flush()
            return
        now = time.monotonic()
        start = self._starts.get(ev.phase)
        if start is None:
            start = self._starts[ev.phase] = now
        elif now - self._shown[ev.phase] < self.min_interval and not (ev.total and ev.done >= ev.total):
            return
        self._shown[ev.phase] = now
        line = terminal_safe(self._line(ev, now - start))
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._dirty = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _line(self, ev: Event, elapsed: float) -> str:
        parts = [f"{ev.phase}:"]
        if ev.total:
            frac = min(1.0, ev.done / ev.total)
            bar = "█" * int(frac * 24) + "░" * (24 - int(frac * 24))
            parts.append(f"{bar} {ev.done}/{ev.total}")
            if 0 < frac < 1 and elapsed > 1:
                parts.append(f"ETA {elapsed / frac - elapsed:.0f}s")
        elif ev.done:
            parts.append(str(ev.done))
        if ev.bytes_done:
            total = f"/{human_bytes(ev.bytes_total)}" if ev.bytes_total else ""
            # A rate from the first moments of a phase is noise (the first line read "0 B/s").
            rate = f" ({human_bytes(ev.bytes_done / elapsed)}/s)" if elapsed >= 0.5 else ""
            parts.append(f"{human_bytes(ev.bytes_done)}{total}{rate}")
        if ev.message:
            parts.append(ev.message)
        return " ".join(parts)

    def _clear(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\r\x1b[2K")
            self._dirty = False

    def finish(self) -> None:
        if self.tty and self._dirty:
            self.stream.write("\n")
            self._dirty = False
        self.stream.flush()


def confirm(question: str, assume_yes: bool, ask: Callable[[str], str] = input) -> bool:
    """Ask on the terminal; with no terminal and no --yes, refuse rather than guess.

    A command answered no stops with ``EXIT_DECLINED`` (2), as the refusal does."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError("refusing to act without confirmation: no terminal to ask on (use --yes)")
    answer = ask(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")
