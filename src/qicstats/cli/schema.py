"""``qicstats schema``: print the JSON Schema of the analysis config (for editors and tools)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qicstats.errors import QicstatsError


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``schema`` verb."""
    p = sub.add_parser(
        "schema",
        help="print the JSON Schema of the analysis config",
        description="Print the JSON Schema of the analysis config (analysis.yaml): every "
        "section and key with its type, default, allowed values and description. Point your "
        "editor at it for completion and checking, e.g. with the first line "
        "`# yaml-language-server: $schema=qicstats.schema.json`.",
    )
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the schema to FILE instead of printing it")
    return p


def schema_text() -> str:
    """The JSON Schema of :class:`~qicstats.config.AnalysisConfig`, as indented JSON."""
    from qicstats.config import AnalysisConfig

    return json.dumps(AnalysisConfig.model_json_schema(), indent=2, ensure_ascii=False) + "\n"


def run(args: argparse.Namespace) -> int:
    """Print (or write) the schema."""
    text = schema_text()
    if args.output:
        out = Path(args.output)
        try:
            if out.parent != Path(""):
                out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        except OSError as err:
            raise QicstatsError(f"cannot write {out}: {err.strerror or err}") from None
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
