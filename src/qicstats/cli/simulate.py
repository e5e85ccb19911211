"""`qicstats simulate`: write a seeded synthetic QIC dataset with its truth."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from qicstats.errors import ConfigError, ProblemCollector

DESCRIPTION = """\
Simulate a quality improvement collaborative with every parameter known and write it as
files: panel.csv, units.csv, indicators.csv, codebook.yaml, truth.json (true parameters,
random effects and estimands) and README.md (how it was made). The same preset, seed and
settings always give byte-identical files.

Presets: demo (100 units x 36 months, beta-binomial, two coded indicators), small (24 x 18,
fast tests), S / M / L (40 x 24, 200 x 36, 1000 x 48: the performance benchmark).

Change any setting with --set key=value (the value is read as YAML), e.g.
  --set n_units=60 --set ramp=3 --set ind_level.management_support=0.5
  --set coders=[A,B,C] --set 'missing_code_share={management_support: 0.2}'
See `help(qicstats.simulate.simulate)` for every setting."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the `simulate` verb."""
    p = sub.add_parser(
        "simulate",
        help="write a synthetic QIC dataset with known truth",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", default="demo",
                   help="demo, small, S, M or L (qicstats' own generator), or a design-zoo "
                        "preset whose data lie outside qicstats' model: stepped_wedge, "
                        "short_panel, single_series, collaborative, collaborative_200, large, "
                        "few_collaboratives, counts (see qicstats.simulate.ZOO; default: demo)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (default: 20261122)")
    p.add_argument("--family", default=None,
                   help="binomial, betabinomial, poisson, negbinomial or gaussian "
                        "(default: the preset's)")
    p.add_argument("--set", dest="settings", action="append", default=[],
                   metavar="KEY=VALUE",
                   help="override a setting; KEY may be dotted into a mapping "
                        "(ind_level.management_support=0.5); repeatable")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="folder to write (must not exist or be empty unless --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the dataset files in an existing folder (other files there "
                        "are kept)")
    return p


def parse_settings(items: list[str]) -> dict[str, Any]:
    """Turn ``["key=value", "a.b=1"]`` into an overrides dict (values read as YAML).

    Raises
    ------
    ConfigError
        An item has no ``=``, an empty key, or a value that is not valid YAML.
    """
    col = ProblemCollector()
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            col.add("bad_set", "a --set item is not KEY=VALUE", count=1, examples=[item],
                    hint="e.g. --set n_units=60")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            col.add("bad_set", f"the value of --set {key} is not valid YAML", count=1,
                    examples=[item], hint="quote lists and mappings, e.g. --set 'coders=[A,B]'")
            continue
        parts = key.split(".")
        if len(parts) > 2 or not all(parts):
            col.add("bad_set", "a --set key has more than one dot or an empty part", count=1,
                    examples=[item], hint="use KEY=VALUE or KEY.NAME=VALUE")
            continue
        if len(parts) == 2:
            inner = out.setdefault(parts[0], {})
            if not isinstance(inner, dict):
                col.add("bad_set", f"--set {parts[0]} is given both whole and by key", count=1,
                        examples=[item], hint="give it one way")
                continue
            inner[parts[1]] = value
        else:
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key].update(value)
            else:
                out[key] = value
    col.raise_if_errors(ConfigError)
    return out


def run(args: argparse.Namespace) -> int:
    """Simulate and write the dataset; print where the files went."""
    from qicstats.simulate import DEFAULT_SEED, simulate

    overrides = parse_settings(list(args.settings))
    if args.family is not None:
        overrides["family"] = args.family
    seed = DEFAULT_SEED if args.seed is None else args.seed
    sim = simulate(args.preset, seed=seed, **overrides)
    paths = sim.write(args.out, overwrite=args.overwrite)
    t = sim.truth
    n_part = int(sim.units["collaborative"].notna().sum())
    print(f"Simulated preset {t['preset']!r} (seed {t['seed']}, {t['family']}): "
          f"{t['n_units']} units ({n_part} participating, {t['n_units'] - n_part} comparison) "
          f"x {t['n_periods']} periods, {len(sim.panel)} panel rows, "
          f"{len(sim.indicators)} indicator codes.")
    for e in t["estimands"]:
        if e["scope"] == "overall":
            print(f"  true {e['estimand']}: {e['value']:.4f} ({t['response_scale']})")
    print(f"Wrote {len(paths)} files to {args.out}:")
    for path in paths.values():
        print(f"  {path}")
    return 0
