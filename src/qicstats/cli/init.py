"""``qicstats init``: write a complete, commented analysis config for your data.

Validates the data first (exit 2 with every problem when they are bad), picks defaults from
them (family, levels, trend, horizons, direction of improvement) and writes every key of the
config with a comment saying what it does. Never overwrites a file without ``--overwrite``,
and never an input file (the output must be a ``.yaml``/``.yml`` file).
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK = 0


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``init`` verb."""
    p = sub.add_parser(
        "init",
        help="write a commented analysis config (analysis.yaml) for your data",
        description="Validate your data and write a complete analysis config with a comment "
        "on every key: its meaning, its options, and what was read from your data. The "
        "config runs as written (`qicstats run analysis.yaml`); check at least "
        "estimands.direction and estimands.mid. Paths in it are relative to its folder.",
    )
    p.add_argument("--panel", required=True, help="panel file (CSV, Parquet or .xlsx)")
    p.add_argument("--units", help="units table (unit, collaborative, join_period, ...)")
    p.add_argument("--indicators", help="coded qualitative indicators (needs --codebook)")
    p.add_argument("--codebook", help="codebook declaring the indicators")
    p.add_argument("--indicators-format", choices=["long", "classification", "matrix"],
                   default="long", help="format of the --indicators export (default: long)")
    p.add_argument("--mapping", help="case -> unit mapping CSV for classification/matrix "
                   "exports")
    p.add_argument("--name", help="run name (default: the output folder's name)")
    p.add_argument("--family", choices=["binomial", "betabinomial", "poisson", "negbinomial",
                                        "gaussian"],
                   help="outcome family (default: betabinomial for numerator/denominator, "
                   "negbinomial for counts, gaussian for values)")
    p.add_argument("--map", nargs="+", default=[], metavar="ROLE=COLUMN", dest="mapping_roles",
                   help="map a logical column role to your file's column, e.g. "
                   "unit=afdeling numerator=events")
    p.add_argument("-o", "--output", default="analysis.yaml", metavar="FILE",
                   help="config file to write (default: analysis.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    return p


def run(args: argparse.Namespace) -> int:
    """Write the config and print what was chosen."""
    from qicstats.cli.validate import _parse_mapping
    from qicstats.config.init import write_init_config
    from qicstats.errors import QicstatsError

    if bool(args.indicators) != bool(args.codebook):
        raise QicstatsError("--indicators and --codebook go together: give both")
    from pathlib import Path

    from qicstats.cli.report import check_output_file

    inputs = [Path(p) for p in (args.panel, args.units, args.indicators, args.codebook,
                                args.mapping) if p]
    check_output_file(Path(args.output), suffixes=(".yaml", ".yml"), inputs=inputs,
                      overwrite=args.overwrite, what="config")
    columns = _parse_mapping(args.mapping_roles)
    res = write_init_config(
        args.panel, args.output, units=args.units, indicators=args.indicators,
        codebook=args.codebook, indicators_format=args.indicators_format,
        mapping=args.mapping, name=args.name, family=args.family, columns=columns,
        overwrite=args.overwrite)
    cfg = res.config
    s = res.summary
    out = sys.stdout
    print(f"wrote {res.path}", file=out)
    print(f"  data:       {s['n_units']} units ({s['n_participating']} participating, "
          f"{s['n_comparison']} comparison), {s['n_periods']} {s['freq']} periods", file=out)
    print(f"  family:     {cfg.data.family}", file=out)
    print(f"  levels:     {' > '.join(list(cfg.data.levels) + ['unit'])}", file=out)
    print(f"  trend:      {cfg.model.trend}", file=out)
    print(f"  horizons:   {', '.join(str(h) for h in cfg.estimands.horizons)}", file=out)
    print(f"  direction:  {cfg.estimands.direction}  (check: is "
          f"{'a higher' if cfg.estimands.direction == 'increase' else 'a lower'} outcome "
          f"better?)", file=out)
    if cfg.indicators is not None:
        print(f"  indicators: consensus {cfg.indicators.consensus}", file=out)
    if res.warnings:
        print(f"\n{len(res.warnings)} data warning(s):", file=out)
        for w in res.warnings:
            print("- " + w.format().replace("\n", "\n  "), file=out)
    print(f"\nnext: edit {res.path} if needed, then `qicstats run {res.path}`", file=out)
    return EXIT_OK
