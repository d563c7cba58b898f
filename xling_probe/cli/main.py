"""The ``xling-probe`` command.

Each sub-command lives in its own module of :mod:`xling_probe.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``; this file only
collects them, so adding a command never touches the others.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from .. import __version__
from ..errors import XlingProbeError


#: Modules of this package that are not sub-commands.
NOT_COMMANDS = frozenset({"main", "options"})


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``xling-probe extract: error: argument --limit: ...; see --help``.

    The default prints the full usage block first, which buries the one line that matters. Sub-command
    parsers inherit the class (``add_subparsers`` uses the parent's type). Exit status stays 2.
    """

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="xling-probe",
        description="Cross-lingual interpretability of language models: where do languages meet inside a model?",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'xling-probe COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"xling-probe {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    package = importlib.import_module(__package__)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in NOT_COMMANDS:
            continue
        importlib.import_module(f"{__package__}.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except XlingProbeError as exc:
        print(f"xling-probe {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished cache parts are kept and the next run resumes from them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
