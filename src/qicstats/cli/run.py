"""``qicstats run CONFIG [--out DIR] [--overwrite]``: fit an analysis and write its run folder."""

from __future__ import annotations

import argparse
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``run`` verb."""
    p = sub.add_parser(
        "run", help="run an analysis config: validate, fit, write a run folder and report",
        description="Run the analysis described by CONFIG (YAML). The run folder (default "
        "runs/<name> next to the config) gets config.resolved.yaml, manifest.json, "
        "posterior.nc, summary.csv, estimands.csv, diagnostics.csv and report.html, among "
        "others. Exit codes: 0 done (diagnostics passed, or warned without strict mode), "
        "1 diagnostics failed (or warned under diagnostics.strict), 2 invalid input or config "
        "(or an output that cannot be written; checked before sampling), 3 internal error, "
        "130 interrupted (Ctrl-C, SIGTERM: nothing is written). --fast gives a quick, "
        "short-chain run (not for conclusions), recorded as such.")
    p.add_argument("config", help="the analysis config (YAML)")
    p.add_argument("--out", "-o", help="run folder (default: runs/<name> next to the config)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder (only one written by qicstats run)")
    p.add_argument("--fast", action="store_true",
                   help="sampler.preset fast: 2 chains x (200 tune + 150 draws), for trying "
                   "things out, never for conclusions (recorded in the resolved config, its "
                   "hash, the manifest and the report)")
    p.add_argument("--no-report", action="store_true", help="skip report.html")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


def run(args: argparse.Namespace) -> int:
    """Run the analysis; print progress to stderr and the headline to stdout."""
    from qicstats.pipeline import run as run_analysis

    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    res = run_analysis(args.config, out=args.out, overwrite=args.overwrite, progress=progress,
                       report=not args.no_report, fast=args.fast)
    dg = res.result.diagnostics()
    banner = {"pass": "PASS", "warn": "WARN", "fail": "FAIL"}[dg.verdict]
    print(f"diagnostics: {banner} - {dg.headline()}")
    print(res.result.headline())
    print(f"run folder: {res.folder}")
    if res.exit_code:
        print("qicstats: the diagnostics gate did not pass; do not trust these estimates yet "
              "(see report.html)", file=sys.stderr)
    return res.exit_code
