"""``qicstats validate``: check a panel (and units, indicators) against the data contract.

Prints every problem and warning found in one pass and, when the data are valid, a short
summary. Exit 0 when valid (warnings allowed), 2 when not.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from qicstats.errors import Problem, ProblemsError, QicstatsError

EXIT_OK = 0
EXIT_INVALID = 2


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``validate`` verb."""
    p = sub.add_parser(
        "validate",
        help="check data files against the QIC data contract",
        description="Check a panel (one row per unit and period, or one 0/1 row per patient), "
        "an optional units table and optional coded indicators against the data contract. "
        "Every problem is listed at once; exit status 0 when the data are valid (warnings "
        "allowed), 2 when not.",
    )
    p.add_argument("config", nargs="?", default=None,
                   help="an analysis config (YAML) to validate instead of --panel/--units")
    p.add_argument("--panel", help="panel file (CSV, Parquet or .xlsx)")
    p.add_argument("--units", help="units table (unit, collaborative, join_period, ...)")
    p.add_argument("--indicators", help="coded qualitative indicators (needs --codebook)")
    p.add_argument("--codebook", help="codebook declaring the indicators")
    p.add_argument("--family", help="outcome family: binomial, betabinomial, poisson, "
                   "negbinomial or gaussian (default: inferred from the columns)")
    p.add_argument("--levels", nargs="+", default=["collaborative"], metavar="COLUMN",
                   help="grouping columns above the unit, outermost first "
                   "(default: collaborative)")
    p.add_argument("--covariates", nargs="+", default=[], metavar="COLUMN",
                   help="covariate columns (units table or panel)")
    p.add_argument("--freq", choices=["week", "month", "quarter", "year"],
                   help="aggregate dated periods to this frequency (e.g. patient admission "
                   "dates to months); default: the frequency the periods imply")
    p.add_argument("--min-periods", type=int, default=6,
                   help="warn about units with fewer observed periods (default 6)")
    p.add_argument("--map", nargs="+", default=[], metavar="ROLE=COLUMN", dest="mapping",
                   help="map a logical column role to your file's column, e.g. "
                   "unit=afdeling numerator=events")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (valid, errors, warnings, summary)")
    return p


def _parse_mapping(items: list[str]) -> dict[str, str]:
    from qicstats.data.columns import ColumnMap

    known = set(ColumnMap().as_dict())
    out: dict[str, str] = {}
    for item in items:
        role, sep, col = item.partition("=")
        role, col = role.strip(), col.strip().strip("'\"")
        if not sep or not role or not col:
            raise QicstatsError(f"--map expects ROLE=COLUMN, got {item!r}")
        if role not in known:
            raise QicstatsError(f"--map: unknown column role {role!r}; known roles: "
                                f"{', '.join(sorted(known))}")
        out[role] = col
    return out


def _validate_config(path: str) -> Any:
    try:
        from qicstats.config import load_config
        from qicstats.pipeline import validate_config
    except ImportError:
        raise QicstatsError("validating a config file is not available in this version; "
                            "use `qicstats validate --panel FILE [--units FILE]`") from None
    return validate_config(load_config(path))


def _check_indicators(args: argparse.Namespace, panel_data: Any, cmap: Any) -> list[Problem]:
    """Problems from :func:`qicstats.indicators.check_indicators` (or one saying why not)."""
    try:
        from qicstats.indicators import check_indicators
    except ImportError:
        return [Problem("indicators_not_checked",
                        "the indicators could not be checked: indicator validation "
                        "(qicstats.indicators.check_indicators) is not available in this "
                        "version", file=args.indicators,
                        hint="Validate the panel without --indicators, or update qicstats.")]
    try:
        _obj, problems = check_indicators(args.indicators, args.codebook, panel_data,
                                          columns=cmap)
    except ProblemsError as err:
        return list(err.problems) + list(err.warnings)
    except QicstatsError as err:
        return [Problem("indicators_invalid", str(err), file=args.indicators)]
    return list(problems)


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    gaps = summary.get("gaps") or []
    lines = [
        f"family:          {summary['family']}",
        f"rows:            {summary['n_rows']}",
        f"units:           {summary['n_units']} ({summary['n_participating']} participating, "
        f"{summary['n_comparison']} comparison)",
        f"collaboratives:  {summary['n_collaboratives']}",
        f"periods:         {summary['n_periods']} {summary['freq']} "
        f"({summary['first_period']} .. {summary['last_period']})",
        f"gaps:            {', '.join(gaps) if gaps else 'none'}",
        f"levels:          {' > '.join(summary['levels'] + ['unit'])}",
    ]
    return lines


def run(args: argparse.Namespace) -> int:
    """Validate the files named on the command line and print the result."""
    from qicstats.data import validate
    from qicstats.data.columns import ColumnMap

    if args.config:
        result = _validate_config(args.config)
        summary = result.summary() if hasattr(result, "summary") else None
        if args.json:
            print(json.dumps({"valid": True, "errors": [], "warnings": [],
                              "summary": summary}, indent=2, default=str))
        else:
            print(f"{args.config}: valid")
            if isinstance(summary, dict) and "n_units" in summary:
                print("\n".join(_summary_lines(summary)))
        return EXIT_OK
    if not args.panel:
        raise QicstatsError("give a panel file (--panel FILE) or a config file")
    if bool(args.indicators) != bool(args.codebook):
        raise QicstatsError("--indicators and --codebook go together: give both")

    cmap = ColumnMap.from_mapping(_parse_mapping(args.mapping))
    errors: list[Problem] = []
    warnings: list[Problem] = []
    panel_data = None
    try:
        panel_data = validate(args.panel, args.units, family=args.family, columns=cmap,
                              levels=tuple(args.levels), covariates=tuple(args.covariates),
                              min_periods=args.min_periods, freq=args.freq)
        warnings += list(panel_data.warnings)
    except ProblemsError as err:
        errors += err.problems
        warnings += err.warnings

    if args.indicators:
        if panel_data is None:
            warnings.append(Problem(
                "indicators_not_checked",
                "the indicators were not checked because the panel is invalid",
                file=args.indicators, severity="warning",
                hint="Fix the panel's problems and run validate again."))
        else:
            for p in _check_indicators(args, panel_data, cmap):
                (errors if p.severity == "error" else warnings).append(p)

    valid = not errors
    summary = panel_data.summary() if (panel_data is not None and valid) else None
    if args.json:
        out = {
            "valid": valid,
            "errors": [p.to_dict() for p in errors],
            "warnings": [p.to_dict() for p in warnings],
            "summary": summary,
            "sources": {k: v for k, v in (("panel", args.panel), ("units", args.units),
                                          ("indicators", args.indicators),
                                          ("codebook", args.codebook)) if v},
        }
        print(json.dumps(out, indent=2, default=str))
        return EXIT_OK if valid else EXIT_INVALID

    stream = sys.stdout
    if errors:
        n = len(errors)
        print(f"INVALID: {n} problem{'s' if n != 1 else ''} found", file=stream)
        for p in errors:
            print("- " + p.format().replace("\n", "\n  "), file=stream)
    if warnings:
        if errors:
            print(file=stream)
        print(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}:", file=stream)
        for p in warnings:
            print("- " + p.format().replace("\n", "\n  "), file=stream)
    if valid:
        if warnings:
            print(file=stream)
        print("VALID" + (" (with warnings)" if warnings else ""), file=stream)
        assert summary is not None
        print("\n".join("  " + ln for ln in _summary_lines(summary)), file=stream)
    return EXIT_OK if valid else EXIT_INVALID
