"""`qicstats validate` (placeholder: being written)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `validate` verb."""
    return sub.add_parser("validate", help="(not yet available)")


def run(args: argparse.Namespace) -> int:
    """Run the verb."""
    raise SystemExit("qicstats validate: not yet available")
