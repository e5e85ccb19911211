"""``qicstats spc``: a run or control chart (qicharts2 style, Anhøj rules) from a table."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from qicstats.errors import RunExistsError

CHART_FILE = "spc_chart"
SUMMARY_FILE = "spc_summary.csv"


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``spc`` verb."""
    from qicstats.spc.charts import CHART_TYPES

    p = sub.add_parser(
        "spc",
        help="run and control charts with the Anhøj rules (like R's qicharts2)",
        description="Draw a run or control chart from a CSV, Excel or Parquet table, apply the "
        "Anhøj runs rules and the 3-sigma rule, write OUTDIR/spc_chart.png (or .svg) and "
        "OUTDIR/spc_summary.csv, and print the summary (one row per facet and part).",
    )
    p.add_argument("data", metavar="DATA", help="CSV, Excel (.xlsx) or Parquet file")
    p.add_argument("--x", required=True, metavar="COL", help="subgroup column (time, or unit)")
    p.add_argument("--y", required=True, metavar="COL", help="value or count column")
    p.add_argument("--n", metavar="COL", help="denominator column (p, pp, u, up charts)")
    p.add_argument("--chart", default="run", choices=CHART_TYPES, help="chart type (default run)")
    p.add_argument("--facet", nargs="+", metavar="COL", help="one or two facet columns")
    p.add_argument("--part", nargs="+", metavar="POS|X|COL",
                   help="new part(s) start at these 0-based positions or x values, or at each "
                   "change of a column's value")
    p.add_argument("--freeze", metavar="K|X",
                   help="baseline: the first K points, or the points up to x value X")
    p.add_argument("--exclude", nargs="+", metavar="POS|X|COL",
                   help="0-based positions or x values (or a boolean column) left out of the "
                   "calculations")
    p.add_argument("--multiply", type=float, default=1.0, metavar="K",
                   help="multiply y and limits by K (e.g. 10000 for per 10,000 days)")
    p.add_argument("--title", help="chart title")
    p.add_argument("--format", choices=("png", "svg"), default="png", help="figure format")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def _read(path: Path) -> pd.DataFrame:
    """Read CSV (delimiter and encoding sniffed), Excel or Parquet with qicstats' reader."""
    from qicstats.data.io import read_table

    return read_table(path)


def _parse_values(tokens: list[str] | None, columns: pd.Index) -> Any:
    """Integers become positions; a single column name stays a name; else x values."""
    if not tokens:
        return None
    if len(tokens) == 1 and tokens[0] in columns:
        return tokens[0]
    out: list[Any] = []
    for t in tokens:
        try:
            out.append(int(t))
        except ValueError:
            out.append(t)
    return out


def _coerce_x(df: pd.DataFrame, x: str) -> pd.DataFrame:
    """Turn an x column of ISO date strings into dates (sorting and axes then work as dates)."""
    if x not in df.columns:
        return df
    col = df[x]
    if pd.api.types.is_string_dtype(col) or col.dtype == object:
        try:
            parsed = pd.to_datetime(col, format="ISO8601")
        except (ValueError, TypeError):
            return df
        if parsed.notna().sum() == col.notna().sum():
            df = df.copy()
            df[x] = parsed
    return df


def run(args: argparse.Namespace) -> int:
    """Run ``qicstats spc``; returns 0 (2 on invalid input, via the dispatcher)."""
    from qicstats.spc import qic

    path = Path(args.data)
    outdir = Path(args.outdir)
    chart_path = outdir / f"{CHART_FILE}.{args.format}"
    summary_path = outdir / SUMMARY_FILE
    import os

    from qicstats.data.io import csv_safe
    from qicstats.errors import OutputError

    for out in (chart_path, summary_path):
        if os.path.abspath(out) == os.path.abspath(path) or (
                out.exists() and path.exists() and os.path.samefile(out, path)):
            raise OutputError(f"{out} is the input file; choose another -o folder")
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"-o {outdir} is not a folder")
    existing = [str(p) for p in (chart_path, summary_path) if p.exists()]
    if existing and not args.overwrite:
        raise RunExistsError(f"output file(s) already exist: {', '.join(existing)}; "
                             "pass --overwrite to replace them")
    df = _read(path)
    df = _coerce_x(df, args.x)
    freeze: Any = None
    if args.freeze is not None:
        try:
            freeze = int(args.freeze)
        except ValueError:
            freeze = args.freeze
    res = qic(df, args.x, args.y, args.n, chart=args.chart, facet=args.facet,
              part=_parse_values(args.part, df.columns), freeze=freeze,
              exclude=_parse_values(args.exclude, df.columns), multiply=args.multiply,
              title=args.title, source=str(path))
    summary = res.summary()
    fig = res.plot()
    outdir.mkdir(parents=True, exist_ok=True)
    fig.savefig(chart_path, dpi=150)
    csv_safe(summary).to_csv(summary_path, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(summary.to_string(index=False))
    print(f"\nwrote {chart_path} and {summary_path}")
    return 0
