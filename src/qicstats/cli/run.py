"""`qicstats run` (placeholder: being written)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `run` verb."""
    return sub.add_parser("run", help="(not yet available)")


def run(args: argparse.Namespace) -> int:
    """Run the verb."""
    raise SystemExit("qicstats run: not yet available")
