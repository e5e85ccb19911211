"""``qicstats report RUN [RUN ...] -o FILE.html``: (re)render one run or compare several."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``report`` verb."""
    p = sub.add_parser(
        "report", help="render a run's report, or a comparison report across runs",
        description="With one RUN folder: re-render its report. With several: a comparison "
        "report (config differences, PSIS-LOO with Pareto-k diagnostics, estimands side by "
        "side). The data the runs name must be unchanged (their hashes are checked).")
    p.add_argument("runs", nargs="+", help="run folders written by 'qicstats run'")
    p.add_argument("-o", "--output", required=True, help="the HTML file to write")
    p.add_argument("--title", help="report title")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def run(args: argparse.Namespace) -> int:
    """Load the runs and write the report."""
    from qicstats.errors import RunExistsError
    from qicstats.pipeline import load_run, render_runs_report

    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise RunExistsError(f"{out} exists; use --overwrite to replace it")
    runs = [load_run(r) for r in args.runs]
    html = render_runs_report(runs, title=args.title)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    print(f"wrote {out}")
    return 0
