"""The ``qicstats`` command line.

Each verb lives in its own module of this package, exposing ``add_parser(subparsers)`` and
``run(args) -> int``. Exit codes (a public contract, documented in the README):

===  =====================================================================================
0    done (valid; diagnostics passed, or warned without ``diagnostics.strict``)
1    the diagnostics gate failed (or warned under ``diagnostics.strict``)
2    invalid input or config, or an output that cannot be written (nothing was sampled)
3    internal error: a bug in qicstats (a short message, where it happened, and how to
     report it; ``QICSTATS_DEBUG=1`` prints the whole traceback)
130  interrupted (Ctrl-C, SIGTERM): nothing was written as complete
===  =====================================================================================

Bad input never produces a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from qicstats.errors import (
    ConvergenceError,
    ProblemsError,
    QicstatsError,
    RunInterrupted,
    visible,
)

#: verbs, in the order ``--help`` lists them (public contract: extend, don't rename)
COMMANDS: tuple[str, ...] = ("validate", "init", "run", "report", "simulate", "spc", "schema")

EXIT_OK = 0
EXIT_DIAGNOSTICS = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130

#: where to report an internal error
REPORT_BUG = ("this is a bug in qicstats: please report it to the qicstats developers (the "
              "issue tracker of the repository you installed it from) with the command line, "
              "`qicstats --version` and this message; rerun with QICSTATS_DEBUG=1 for the full "
              "traceback")


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


def print_problems(err: ProblemsError, file: TextIO | None = None) -> None:
    """Print every problem and warning of a validation error, readably."""
    file = file or sys.stderr
    print(str(err), file=file)
    if err.warnings:
        print(f"\n{len(err.warnings)} warning(s):", file=file)
        for w in err.warnings:
            print("- " + w.format().replace("\n", "\n  "), file=file)


def internal_error(err: BaseException, file: TextIO | None = None) -> int:
    """Print a short account of an unexpected exception (where it happened, how to report
    it) and return :data:`EXIT_INTERNAL`; the whole traceback with ``QICSTATS_DEBUG=1``.
    """
    file = file or sys.stderr
    frames = traceback.extract_tb(err.__traceback__)

    def show(f: traceback.FrameSummary) -> str:
        path = f.filename.replace("\\", "/")
        for mark in ("site-packages/", "src/"):
            if mark in path:
                path = path[path.rfind(mark) + len(mark):]
                break
        else:
            path = os.path.basename(path)
        return f"{path}:{f.lineno} in {f.name}()"

    where = ""
    if frames:
        # where it happened, and the innermost qicstats frame on the way when that differs
        ours = [f for f in frames if "/qicstats/" in f.filename.replace("\\", "/")]
        where = f"\n  at {show(frames[-1])}"
        if ours and ours[-1] is not frames[-1]:
            where += f" (called from {show(ours[-1])})"
    msg = visible(str(err).strip().splitlines()[0][:300]) if str(err).strip() else ""
    print(f"qicstats: internal error: {type(err).__name__}" + (f": {msg}" if msg else "")
          + where + f"\n  {REPORT_BUG}", file=file)
    if os.environ.get("QICSTATS_DEBUG") == "1":
        traceback.print_exception(err, file=file)
    return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qicstats`` console script (exit codes: see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_handler", None):
        parser.print_help()
        return EXIT_INVALID
    try:
        return int(args._handler(args) or 0)
    except ProblemsError as err:
        print_problems(err)
        return EXIT_INVALID
    except ConvergenceError as err:
        print(f"qicstats: diagnostics failed: {visible(str(err))}", file=sys.stderr)
        return EXIT_DIAGNOSTICS
    except RunInterrupted as err:
        print(f"qicstats: interrupted: {visible(str(err))}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except QicstatsError as err:
        print(f"qicstats: error: {visible(str(err))}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("qicstats: interrupted; nothing was written as complete", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `qicstats schema | head`: the reader left
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        return EXIT_OK
    except Exception as err:  # noqa: BLE001 - anything else is a bug: say so, exit 3
        return internal_error(err)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
