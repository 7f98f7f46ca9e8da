"""Shared by the command-line tests: the one line of a usage error."""

from __future__ import annotations

import pytest

from immich_dupes import cli


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """The one line of a usage error (exit 2) for ``argv``, raised before anything is sent."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as ei:
        cli.main(list(argv))
    assert ei.value.code == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err
