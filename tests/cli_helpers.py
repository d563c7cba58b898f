"""Helpers shared by the command-line tests."""

from __future__ import annotations

import argparse

from xling_probe.cli.main import build_parser


def one_line_error(capsys) -> str:
    """The error line of stderr (progress bars of a model load may come before it): exactly one, no traceback."""
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err and "usage:" not in err, err
    assert lines[0].startswith("xling-probe ") and err.rstrip().endswith(lines[0]), err
    return lines[0]


def subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)
