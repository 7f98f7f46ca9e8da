"""One module per CLI command; each has ``run(args) -> exit code``."""

from __future__ import annotations

import argparse
import importlib


def dispatch(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"immich_dupes.commands.{args.command}")
    code: int = module.run(args)
    return code
