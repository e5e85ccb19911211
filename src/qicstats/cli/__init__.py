"""The ``qicstats`` command line.

Each verb lives in its own module of this package, exposing ``add_parser(subparsers)`` and
``run(args) -> int``. Exit codes: 0 done/valid, 1 diagnostics failed under ``--strict``,
2 invalid input or config. Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from qicstats.errors import ConvergenceError, QicstatsError, _ProblemsError

#: verbs, in the order ``--help`` lists them (public contract: extend, don't rename)
COMMANDS: tuple[str, ...] = ("validate", "init", "run", "report", "simulate", "spc", "schema")

EXIT_OK = 0
EXIT_DIAGNOSTICS = 1
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every verb registered."""
    from qicstats import __version__

    parser = argparse.ArgumentParser(
        prog="qicstats",
        description="Bayesian evaluation of quality improvement collaboratives "
        "(improvement beyond the secular trend).",
    )
    parser.add_argument("--version", action="version", version=f"qicstats {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"qicstats.cli.{name}")
        p = mod.add_parser(sub)
        p.set_defaults(_handler=mod.run)
    return parser


def print_problems(err: _ProblemsError, file=None) -> None:
    """Print every problem and warning of a validation error, readably."""
    file = file or sys.stderr
    print(str(err), file=file)
    if err.warnings:
        print(f"\n{len(err.warnings)} warning(s):", file=file)
        for w in err.warnings:
            print("- " + w.format().replace("\n", "\n  "), file=file)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qicstats`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_handler", None):
        parser.print_help()
        return EXIT_INVALID
    try:
        return int(args._handler(args) or 0)
    except _ProblemsError as err:
        print_problems(err)
        return EXIT_INVALID
    except ConvergenceError as err:
        print(f"qicstats: diagnostics failed: {err}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except QicstatsError as err:
        print(f"qicstats: error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:  # pragma: no cover
        print("qicstats: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
