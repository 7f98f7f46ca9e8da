"""The command line: parse, call the engine, print. Thin by design.

Exit codes: 0 done and verified; 1 some items failed or verify found anomalies; 2 bad usage or
bad input (nothing was sent to the server), or a confirmation answered no (nothing was
changed); 3 cannot reach or authenticate.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from immich_dupes import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_DECLINED = EXIT_USAGE
"""A confirmation answered no: nothing failed and nothing was changed, so not 1 ("some items
failed"); the same code as the refusal to act with no terminal to ask on, the scripted case
of the same missing confirmation, and not 0, so ``execute … && verify …`` stops there."""


class UsageError(Exception):
    """Bad usage or bad input: exit 2, one line, nothing sent to the server."""


def _twice(action: argparse.Action) -> str:
    # The values are not repeated: one may be an API key, or a URL with a password in it.
    return f"{'/'.join(action.option_strings)} given twice with different values: give it once"


class _StoreOnce(argparse._StoreAction):
    """An option that takes a value, given twice in one command line with different values, is
    a usage error naming it (argparse lets the last one win: ``-b b1 execute … -b b2`` backed up
    into b2). The same value twice is harmless and accepted."""

    _last: tuple[argparse.Namespace, object] | None = None
    """The namespace of the parse that set this option, and the value it set."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        if self._last is not None and self._last[0] is namespace and self._last[1] != values:
            parser.error(_twice(self))
        self._last = (namespace, values)
        super().__call__(parser, namespace, values, option_string)


if TYPE_CHECKING:
    _SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:  # not subscriptable at run time
    _SubParsers = argparse._SubParsersAction


class _Commands(_SubParsers):
    """The command, parsed into a namespace of its own whose values then replace the top
    parser's: a server option before the command and again after it with another value is
    refused by name, as ``_StoreOnce`` does within one parser."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given = {a.dest: (a, getattr(namespace, a.dest, None)) for a in parser._actions
                 if isinstance(a, _StoreOnce)}
        super().__call__(parser, namespace, values, option_string)
        for dest, (action, before) in given.items():
            after = getattr(namespace, dest, None)
            if before is not None and after != before:
                parser.error(_twice(action))


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (no usage dump) and exits 2, and refuses
    an option given twice with different values (see ``_StoreOnce``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)
        self.register("action", "parsers", _Commands)

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_USAGE)


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return v


def port_number(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {text}")
    return v


def _add_server_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = argparse.SUPPRESS if suppress else None
    p.add_argument("-u", "--url", default=d, help="Immich URL (or IMMICH_URL); with or without /api")
    p.add_argument("-a", "--api-key", default=d, help="API key (or IMMICH_API_KEY)")
    p.add_argument(
        "--insecure",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="do not verify the server's TLS certificate (prints a warning)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="immich-dupes",
        description="Safe duplicate cleanup for Immich: analyze → review → execute → verify → restore.",
    )
    parser.add_argument("--version", action="version", version=f"immich-dupes {__version__}")
    _add_server_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _add_server_options(p, suppress=True)
        return p

    p = command("analyze", "fetch duplicate groups, choose winners, flag conflicts, write a plan")
    p.add_argument("-o", "--output", required=True, metavar="PLAN.json", help="where to write the plan")
    p.add_argument("--gps-tolerance", type=positive_float, default=100.0, metavar="METRES",
                   help="GPS positions further apart than this conflict (default 100 m)")
    p.add_argument("--time-tolerance", type=positive_float, default=2.0, metavar="SECONDS",
                   help="capture times further apart than this conflict (default 2 s)")
    p.add_argument("--rate-limit", type=positive_float, default=10.0, metavar="N", help="requests per second (default 10)")
    p.add_argument("--concurrent", type=positive_int, default=5, metavar="N", help="requests at once (default 5)")

    p = command("review", "review the plan in the terminal app; decisions are saved into PLAN.json")
    p.add_argument("plan", metavar="PLAN.json")
    p.add_argument("--image-protocol", choices=["auto", "kitty", "sixel", "halfcell", "unicode", "none"],
                   default="auto", help="how pictures are drawn (default: detect)")
    p.add_argument("--offline", action="store_true", help="do not contact the server (no pictures)")
    p.add_argument("-b", "--backup-dir", metavar="DIR", help="backup directory for execute/restore from the app")
    p.add_argument("--rate-limit", type=positive_float, default=10.0, metavar="N",
                   help="requests per second, for pictures and for execute/verify/restore from the app (default 10)")
    p.add_argument("--concurrent", type=positive_int, default=5, metavar="N", help="requests at once (default 5)")

    p = command("execute", "back up losers, consolidate metadata onto winners, trash losers")
    p.add_argument("-i", "--input", required=True, metavar="PLAN.json", help="the plan to carry out")
    p.add_argument("-b", "--backup-dir", required=True, metavar="DIR", help="where losers are backed up first")
    p.add_argument("--skip-review", action="store_true", help="leave groups that need review and were not reviewed")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--rate-limit", type=positive_float, default=10.0, metavar="N", help="requests per second (default 10)")
    p.add_argument("--concurrent", type=positive_int, default=5, metavar="N", help="requests at once (default 5)")
    p.add_argument("--dry-run", action="store_true", help="print what would be sent; change nothing")
    p.add_argument("--force", action="store_true", help="delete permanently instead of moving to the trash")

    p = command("verify", "check the server against the plan after execute")
    p.add_argument("plan", metavar="PLAN.json")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text for people, json for scripts (default text)")
    p.add_argument("-b", "--backup-dir", metavar="DIR", help="backup directory (to know which losers were force-deleted)")
    p.add_argument("--rate-limit", type=positive_float, default=10.0, metavar="N", help="requests per second (default 10)")
    p.add_argument("--concurrent", type=positive_int, default=5, metavar="N", help="requests at once (default 5)")

    p = command("restore", "bring back the losers of an execute run from the trash or the backup")
    p.add_argument("-b", "--backup-dir", required=True, metavar="DIR", help="the backup directory of the execute run")
    p.add_argument("--dry-run", action="store_true", help="list what would be done; change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--rate-limit", type=positive_float, default=10.0, metavar="N", help="requests per second (default 10)")
    p.add_argument("--concurrent", type=positive_int, default=5, metavar="N", help="requests at once (default 5)")

    p = command("demo", "the whole workflow on an embedded sample server")
    p.add_argument("--serve-only", action="store_true", help="only run the fake Immich server; print its URL and key")
    p.add_argument("--port", type=port_number, default=0, help="port for the fake server (default: a free one)")
    p.add_argument("--library", default="sample", help="sample | synthetic:N (default sample)")
    p.add_argument("--profile", choices=["v1", "v2", "v3"], default="v3", help="emulated Immich version")
    p.add_argument("--faults", default="", metavar="SPEC", help="inject faults, e.g. latency=50ms,5xx=0.1")
    p.add_argument(
        "--uncached",
        action="store_true",
        help="build every answer anew, as a real server does, instead of keeping serialized answers (benchmarks)",
    )
    p.add_argument("--image-protocol", choices=["auto", "kitty", "sixel", "halfcell", "unicode", "none"],
                   default="auto", help="how pictures are drawn in the review app (default: detect)")

    command("schema", "print the JSON Schema of the plan file")
    return parser


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _resolve(option: str, names: Iterable[str]) -> str | None:
    """The option ``option`` names among ``names``, abbreviations included as argparse allows
    them; None when it names none (or several)."""
    names = list(names)
    if option in names:
        return option
    if option.startswith("--"):
        found = [n for n in names if n.startswith(option)]
        if len(found) == 1:
            return found[0]
    return None


def hoist_command_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``--rate-limit 5 analyze -o p.json`` → ``analyze --rate-limit 5 -o p.json``.

    DESIGN §2: options work before or after the command name. argparse only knows the top
    parser's options before the command, so the command's own options written there are moved
    to just after its name, where its parser reads (or refuses) them. The command is the first
    word that is not an option or an option's value: ``-b restore restore`` is a restore of
    the folder named restore. An option no command knows is refused here, by name.
    """
    top = parser._option_string_actions
    takes_value: dict[str, bool] = {}  # every command's options: whether each takes a value
    for sub in _commands(parser).values():
        for opt, a in sub._option_string_actions.items():
            takes_value[opt] = takes_value.get(opt, False) or a.nargs != 0
    kept: list[str] = []
    moved: list[str] = []
    moved_names: list[str] = []
    asks_help = False
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok in ("-", "--") or not tok.startswith("-"):
            # the command (or a word argparse will refuse as one): the moved options follow it
            return kept + [tok] + moved + list(argv[i + 1 :])
        if tok.startswith("--"):
            name, inline = tok.partition("=")[0], "=" in tok
        else:
            name, inline = tok[:2], len(tok) > 2
        own = _resolve(name, top)
        if own is not None:
            action = top[own]
            asks_help = asks_help or isinstance(action, argparse._HelpAction | argparse._VersionAction)
            into, takes = kept, action.nargs != 0
        else:
            theirs = _resolve(name, takes_value)
            if theirs is None:
                parser.error(f"unrecognized arguments: {name}")  # not its value: it may be a key
            into, takes = moved, takes_value[theirs]
            moved_names.append(name)
        into.append(tok)
        if takes and not inline and i + 1 < len(argv):
            i += 1
            into.append(argv[i])
        i += 1
    if moved and not asks_help:
        parser.error(f"no command given for {', '.join(moved_names)}")
    return kept + moved


def server_credentials(args: argparse.Namespace) -> tuple[str, str]:
    """URL and key from options or the environment; a usage error when either is missing."""
    url = getattr(args, "url", None) or os.environ.get("IMMICH_URL", "")
    key = getattr(args, "api_key", None) or os.environ.get("IMMICH_API_KEY", "")
    if not url:
        raise UsageError("no server URL: use -u URL or set IMMICH_URL")
    if not key:
        raise UsageError("no API key: use -a KEY or set IMMICH_API_KEY")
    if getattr(args, "insecure", False):
        sys.stderr.write("warning: TLS certificate verification is off (--insecure)\n")
    return url, key


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(hoist_command_options(parser, sys.argv[1:] if argv is None else argv))
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    from immich_dupes.commands import dispatch

    try:
        return dispatch(args)
    except UsageError as e:
        sys.stderr.write(f"immich-dupes: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("immich-dupes: interrupted\n")
        return 130
