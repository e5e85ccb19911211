"""Writing a complete, commented analysis config from the data (``qicstats init``).

:func:`write_init_config` validates the data (raising their
:class:`~qicstats.errors.DataValidationError` when they are bad), picks defaults from them, and
writes every section and key of :class:`~qicstats.config.schema.AnalysisConfig` with a comment
saying what the key does and its options (the field descriptions of the schema), plus what was
read from the data. The file runs as it is (``qicstats run analysis.yaml``).

Defaults taken from the data
----------------------------
- ``data.family``: ``betabinomial`` for numerator/denominator (or patient 0/1) outcomes,
  ``negbinomial`` for counts, ``gaussian`` for values: the overdispersed families contain the
  binomial and Poisson ones as limits, and unit-period outcomes in QICs are nearly always
  overdispersed.
- ``data.levels``: ``collaborative``, then ``site`` and ``team`` when the units table (or panel)
  has them and they nest.
- ``model``: the trend, the effect's shape, seasonality and phases the design supports
  (:func:`qicstats.models.resolve_structure`, the same code path as ``auto``): free period
  effects when units not yet in a collaborative are observed after joins (comparison units,
  staggered or stepped-wedge starts), a linear trend with seasonality for a single series;
  an exposure-time curve; a sustainability phase when units are observed after their
  ``end_period``. A level with a single group (one collaborative) is left out.
- ``estimands.horizons``: ``[12]`` when the longest follow-up after joining is at least 12
  periods, else half of it.
- ``estimands.direction``: ``increase`` for binomial-type and Gaussian outcomes, ``decrease`` for
  counts (events are usually harms); the comment asks to check it.
- ``indicators``: only when indicators are given; ``consensus: majority``.
"""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from qicstats.config.load import load_config
from qicstats.config.schema import AnalysisConfig, IndicatorsSection
from qicstats.errors import (
    DataValidationError,
    Problem,
    ProblemCollector,
    QicstatsError,
)

#: candidate grouping levels below the collaborative, outermost first
LEVEL_CANDIDATES: tuple[str, ...] = ("site", "team")

_WIDTH = 92


@dataclass(frozen=True)
class InitResult:
    """What :func:`write_init_config` wrote.

    Attributes
    ----------
    path : Path
        The config file written.
    config : AnalysisConfig
        The config as loaded back from that file.
    text : str
        The file's text.
    summary : dict
        :meth:`qicstats.data.PanelData.summary` of the validated data.
    notes : dict
        What was read from the data, by key path (also written as comments).
    warnings : tuple of Problem
        Data warnings found while validating (also listed in the file's header).
    """

    path: Path
    config: AnalysisConfig
    text: str
    summary: dict[str, Any]
    notes: dict[str, list[str]] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()


# ---- helpers ------------------------------------------------------------------------------
def _rel(path: str | os.PathLike[str], out_dir: Path) -> str:
    """``path`` relative to ``out_dir``, with forward slashes (absolute if impossible)."""
    full = os.path.abspath(path)
    try:
        rel = os.path.relpath(full, out_dir)
    except ValueError:  # another drive (Windows)
        return Path(full).as_posix()
    return Path(rel).as_posix()


def _safe_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")
    return name[:100] or "analysis"


def _columns_of(path: Any) -> list[str]:
    """Column names of a table ([] when unreadable: :func:`validate` then reports why)."""
    from qicstats.data import read_table

    try:
        return [str(c) for c in read_table(path).columns]
    except QicstatsError:
        return []


def _validate_levels(panel: Any, units: Any, columns: Mapping[str, str], family: str | None,
                     candidates: list[str]) -> Any:
    """Validate with the longest nesting prefix of ``candidates`` (collaborative first)."""
    from qicstats.data import validate

    levels = ["collaborative"] + candidates
    while True:
        try:
            return validate(panel, units, family=family, columns=dict(columns) or None,
                            levels=tuple(levels))
        except DataValidationError as err:
            rules = {p.rule for p in err.problems}
            if rules == {"groups_not_nested"} and len(levels) > 1:
                levels = levels[:-1]
                continue
            raise


def _follow_up(pdata: Any) -> int:
    """Longest observed time since joining, in periods, over participating units."""
    units = pdata.units
    joined = units[units["join_t"].notna()]
    if joined.empty:
        return 0
    last = pdata.panel.groupby("unit", sort=False)["t"].max()
    join = joined.set_index("unit")["join_t"].astype("int64")
    common = join.index.intersection(last.index)
    if len(common) == 0:
        return 0
    fu = last.loc[common].astype("int64") - join.loc[common]
    return int(max(fu.max(), 0))


def _read_codes(path: Any, fmt: str, codebook: Any, mapping: Any) -> Any:
    from qicstats.indicators import read_classification_sheet, read_coding_matrix

    if fmt == "classification":
        return read_classification_sheet(path, codebook, mapping=mapping)
    if fmt == "matrix":
        return read_coding_matrix(path, codebook, mapping=mapping)
    return path


def _disagreements(codes: Any) -> int:
    """Items (unit, indicator, wave) coded differently by two or more coders."""
    from qicstats.indicators.readers import is_adjudicator

    t = codes.table
    if t.empty:
        return 0
    t = t[t["coder"].notna() & ~t["coder"].map(is_adjudicator).astype(bool)]
    if t.empty:
        return 0
    keys = t[["unit", "indicator", "wave"]].astype(str)
    vals = t["value"].astype(float)
    n = vals.groupby([keys["unit"], keys["indicator"], keys["wave"]]).nunique()
    return int((n > 1).sum())


# ---- proposing values ---------------------------------------------------------------------
def _propose_model(pdata: Any, family: str, levels: list[str], note: Any
                   ) -> tuple[dict[str, Any], list[str], int, int | None]:
    """The model section read from the design (the same code path as ``auto`` in the model:
    :func:`qicstats.models.resolve_structure`), with a note per choice.

    Returns the model values, the levels to keep, ``data.min_periods`` and the largest
    identified exposure time (``None``: all).
    """
    from qicstats.models import ModelSpec, build_design, resolve_structure
    from qicstats.models.parameterisation import pilot

    spec = ModelSpec(family=family)
    st = resolve_structure(pdata, spec)
    summ = pdata.summary()
    T = int(pdata.periods.T)
    n_part, n_comp = summ["n_participating"], summ["n_comparison"]
    joins = pdata.units["join_t"].dropna().nunique()
    if st.single_series:
        design = (f"a single series ({n_part} participating unit(s), no comparison units, "
                  "one join period)")
    elif n_comp == 0:
        design = (f"a stepped-wedge / staggered rollout without comparison units: {n_part} "
                  f"units start in {joins} cohorts and every unit eventually starts")
    else:
        design = (f"a controlled design: {n_part} participating units in {joins} start "
                  f"period(s) and {n_comp} comparison units")
    note("model.trend", f"Design: {design}. Trend: {st.trend}, because {st.reasons['trend']}")
    note("model.effect", f"{st.effect}: {st.reasons['effect']}"
         + (f" ({st.reasons['effect_choice']})" if "effect_choice" in st.reasons else "")
         + "; " + st.reasons.get("identification", ""))
    if "unit_changes" in st.reasons:
        note("model.random", st.reasons["unit_changes"])
    if "seasonality" in st.reasons:
        note("model.seasonality", f"{st.seasonality}: {st.reasons['seasonality']}")
    note("model.phases", f"{st.phases}: {st.reasons['phases']}")
    kept = [lv for lv in levels if lv in st.levels or lv not in pdata.levels]
    if "levels" in st.reasons:
        kept = [lv for lv in levels if lv in st.levels]
        note("data.levels", st.reasons["levels"])
    few = [f"'{lv}' ({pdata.units.loc[pdata.participating, lv].dropna().nunique()} groups "
           "of participating units)" for lv in kept if lv in pdata.units.columns
           and pdata.units.loc[pdata.participating, lv].dropna().nunique() < spec.spread_min_groups]
    if st.effect == "curve" and 0 < st.curve_max < spec.spread_min_groups:
        few.append(f"the exposure-time curve ({st.curve_max} steps)")
    if few:
        note("model.spread_min_groups",
             "spreads learned from fewer than "
             f"{spec.spread_min_groups} values are fixed at their prior's scale: "
             + ", ".join(few) + " (two to four values cannot determine a spread, and "
             "sampling it makes a funnel); lower spread_min_groups to learn them")
    min_periods = min(6, T)
    if T <= 8:
        note("data.min_periods", f"a short panel ({T} periods): every unit has few rows; the "
             "parameterisation of unit effects is chosen from the data")
    if family in ("betabinomial", "negbinomial", "binomial", "poisson"):
        d = build_design(pdata, st.apply(spec), None, structure=st)
        disp = pilot(d).dispersion
        kind = ("little" if disp < 1.3 else "some" if disp < 3 else "much")
        note("data.family", f"residual dispersion of a quick fixed-effects fit {disp:.2f} "
             f"(1 = none): {kind} overdispersion; the overdispersion prior has its mode at "
             "none, so the data decide")
    model: dict[str, Any] = {"trend": st.trend, "effect": st.effect,
                             "seasonality": st.seasonality, "phases": st.phases}
    if not st.unit_changes:
        model["random"] = {"level": list(st.levels)}
    return model, kept, min_periods, st.identified_max


def propose_config(panel: str | os.PathLike[str], *, out_dir: str | os.PathLike[str] = ".",
                   units: str | os.PathLike[str] | None = None,
                   indicators: str | os.PathLike[str] | None = None,
                   codebook: str | os.PathLike[str] | None = None,
                   indicators_format: str = "long",
                   mapping: str | os.PathLike[str] | None = None,
                   name: str | None = None, family: str | None = None,
                   columns: Mapping[str, str] | None = None
                   ) -> tuple[dict[str, Any], dict[str, list[str]], Any, list[Problem]]:
    """Validate the data and choose a config's values from them.

    Parameters
    ----------
    panel, units : path
        The panel and (optional) units table.
    out_dir : path
        The folder the config will be written to (paths are made relative to it).
    indicators, codebook : path, optional
        Coded indicators (one export) and their codebook; give both or neither.
    indicators_format : {"long", "classification", "matrix"}
    mapping : path, optional
        Case -> unit mapping for classification/matrix exports.
    name : str, optional
        Run name (default: the output folder's name).
    family : str, optional
        Outcome family (default: an overdispersed family chosen from the outcome columns).
    columns : dict, optional
        ``{role: column}`` for files whose column names differ from the contract's.

    Returns
    -------
    values : dict
        The config as a plain mapping (validates as :class:`AnalysisConfig`).
    notes : dict
        What was read from the data, by key path.
    panel_data : PanelData
    warnings : list of Problem
        Data (and indicator) warnings.

    Raises
    ------
    DataValidationError
        The data (or indicators) break the data contract.
    QicstatsError
        Indicators without a codebook or vice versa.
    """
    if (indicators is None) != (codebook is None):
        raise QicstatsError("indicators and their codebook go together: give both")
    out = Path(os.path.abspath(out_dir))
    columns = dict(columns or {})
    notes: dict[str, list[str]] = {}

    def note(key: str, text: str) -> None:
        notes.setdefault(key, []).append(text)

    table_cols = _columns_of(units if units is not None else panel)
    candidates = [c for c in LEVEL_CANDIDATES if c in table_cols]
    pdata = _validate_levels(panel, units, columns, family, candidates)
    warnings = list(pdata.warnings)
    levels = list(pdata.levels)
    dropped = [c for c in candidates if c not in levels]
    if dropped:
        note("data.levels", f"{', '.join(dropped)} left out: not nested in the level above")
    if levels:
        note("data.levels", " > ".join(levels + ["unit"]))

    inferred = pdata.family
    if family is None:
        fam = {"binomial": "betabinomial", "poisson": "negbinomial"}.get(inferred, inferred)
        outcome = {"binomial": "numerator/denominator", "poisson": "count",
                   "gaussian": "value"}.get(inferred, inferred)
        if fam != inferred:
            note("data.family", f"{outcome} outcomes: {fam} chosen; it allows more variation "
                 f"between unit-periods than the {inferred} (its limit), which QIC data "
                 f"nearly always show")
        else:
            note("data.family", f"{outcome} outcomes")
    else:
        fam = pdata.family

    model, levels, min_periods, ident_max = _propose_model(pdata, fam, levels, note)
    fu = _follow_up(pdata)
    horizons = [12] if fu >= 12 else [fu // 2]
    note("estimands.horizons", f"the longest follow-up after joining is {fu} periods")
    if ident_max is not None and horizons[0] > ident_max:
        horizons = [ident_max]
        note("estimands.horizons", f"exposure times past {ident_max} have no concurrent "
             "comparison, so the horizon is at most that")

    if fam in ("poisson", "negbinomial"):
        direction = "decrease"
        note("estimands.direction", "CHECK THIS: decrease assumes the counted events are "
             "harms (infections, falls, readmissions); write increase if more is better")
    else:
        direction = "increase"
        note("estimands.direction", "CHECK THIS: increase assumes a higher "
             + ("share" if fam in ("binomial", "betabinomial") else "value")
             + " is better; write decrease if it is a harm")

    data: dict[str, Any] = {
        "panel": _rel(panel, out),
        "units": _rel(units, out) if units is not None else None,
        "family": fam,
        "columns": columns,
        "levels": levels,
        "covariates": [],
        "freq": None,
        "min_periods": min_periods,
    }
    role_cols = set(columns.values()) | {"unit", "collaborative", "join_period", "end_period",
                                         "period"}
    extra = [c for c in table_cols if c not in role_cols and c not in levels]
    if units is not None and extra:
        note("data.covariates", "other columns of your units table: " + ", ".join(extra))

    values: dict[str, Any] = {
        "name": _safe_name(name) if name else _safe_name(out.name),
        "description": "",
        "data": data,
        "indicators": None,
        "model": model,
        "estimands": {"horizons": horizons, "direction": direction},
    }

    if indicators is not None:
        assert codebook is not None  # checked above: indicators and codebook go together
        from qicstats.indicators import check_indicators

        codes_in = _read_codes(indicators, indicators_format, codebook, mapping)
        codes, problems = check_indicators(codes_in, codebook, pdata, columns=columns or None)
        col = ProblemCollector(list(problems))
        col.raise_if_errors(DataValidationError)
        warnings += col.warnings
        names = codes.indicators
        coder_names = codes.coders()
        n_adj = int(codes.table["coder"].dropna().astype(str).str.lower()
                    .isin(["adjudicated", "consensus"]).sum())
        values["indicators"] = {
            "codes": [{"path": _rel(indicators, out), "format": indicators_format}],
            "codebook": _rel(codebook, out),
            "mapping": _rel(mapping, out) if mapping is not None else None,
            "consensus": "majority",
            "use": None,
            "sensitivity_by_coder": False,
        }
        note("indicators.use", "indicators with codes: " + (", ".join(names) or "none"))
        if len(coder_names) >= 2:
            n_dis = _disagreements(codes)
            note("indicators.consensus",
                 f"{len(coder_names)} coders ({', '.join(coder_names)}) disagree on {n_dis} "
                 "item(s): `uncertain` carries their disagreement into the model"
                 + (f"; {n_adj} adjudicated code(s) are present: `adjudicated` uses them"
                    if n_adj else ""))
            note("indicators.sensitivity_by_coder",
                 "true refits with each coder's codes alone: " + ", ".join(coder_names))
        elif n_adj:
            note("indicators.consensus", f"{n_adj} adjudicated code(s) are present: "
                 "`adjudicated` uses them")
    return values, notes, pdata, warnings


# ---- rendering ----------------------------------------------------------------------------
def _scalar(v: Any) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, allow_unicode=True, width=10_000,
                          sort_keys=False)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[:-4].rstrip()
    elif text.endswith("..."):
        text = text[:-3].rstrip()
    return text


def _comment(text: str, indent: str) -> list[str]:
    return textwrap.wrap(text, width=_WIDTH, initial_indent=indent + "# ",
                         subsequent_indent=indent + "#   ", break_on_hyphens=False,
                         break_long_words=False)


def _section_model(cls: type[BaseModel], key: str) -> type[BaseModel] | None:
    from qicstats.config.load import _unwrap

    ann = _unwrap(cls.model_fields[key].annotation)
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _render_value(key: str, v: Any, indent: str) -> list[str]:
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        lines = [f"{indent}{key}:"]
        for x in v:
            lines.append(f"{indent}  - " + _scalar({k: y for k, y in x.items() if y is not None}))
        return lines
    if isinstance(v, dict) and v and any(isinstance(y, dict) for y in v.values()):
        lines = [f"{indent}{key}:"]
        for k, y in v.items():
            lines.append(f"{indent}  {_scalar(k)}: {_scalar(y)}")
        return lines
    return [f"{indent}{key}: {_scalar(v)}"]


def render_config(cfg: AnalysisConfig, notes: Mapping[str, list[str]] | None = None,
                  header: list[str] | None = None) -> str:
    """The config as commented YAML: every section and key, each with what it does.

    Parameters
    ----------
    cfg : AnalysisConfig
    notes : dict, optional
        Extra comment lines by key path (``"data.family"``), written after the key's
        description, prefixed "From your data:".
    header : list of str, optional
        Comment lines for the top of the file.

    Returns
    -------
    str
        YAML that :func:`~qicstats.config.load_config` reads back as ``cfg``.
    """
    notes = dict(notes or {})
    values = cfg.model_dump(mode="json")
    lines: list[str] = []
    for h in header or []:
        lines += _comment(h, "") if h else ["#"]
    lines.append("")

    def key_lines(model: type[BaseModel], key: str, v: Any, prefix: str, indent: str) -> None:
        f = model.model_fields[key]
        lines.extend(_comment(f.description or "", indent))
        for n in notes.get(prefix + key, []):
            lines.extend(_comment("From your data: " + n, indent))
        lines.extend(_render_value(key, v, indent))

    for key in AnalysisConfig.model_fields:
        v = values[key]
        sub = _section_model(AnalysisConfig, key)
        if sub is None:
            key_lines(AnalysisConfig, key, v, "", "")
            lines.append("")
            continue
        desc = AnalysisConfig.model_fields[key].description or ""
        bar = f"# ---- {key} " + "-" * max(4, _WIDTH - 8 - len(key))
        lines.append(bar)
        if v is None:
            lines.extend(_comment(desc, ""))
            if sub is IndicatorsSection:
                lines += ["# To add them, replace `indicators: null` by:",
                          "# indicators:",
                          "#   codes:",
                          "#     - {path: indicators.csv, format: long}",
                          "#   codebook: codebook.yaml",
                          "#   consensus: majority"]
            lines.append(f"{key}: null")
            lines.append("")
            continue
        lines.extend(_comment(desc, ""))
        lines.append(f"{key}:")
        for k in sub.model_fields:
            key_lines(sub, k, v[k], f"{key}.", "  ")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _header(cfg: AnalysisConfig, summary: Mapping[str, Any], warnings: list[Problem],
            out_name: str) -> list[str]:
    from qicstats import __version__

    h = [
        f"qicstats analysis config '{cfg.name}', written by `qicstats init` (qicstats "
        f"{__version__}). Every key is listed with what it does; edit, then run it with: "
        f"qicstats run {out_name}",
        "",
        f"Data: {summary['n_units']} units ({summary['n_participating']} participating, "
        f"{summary['n_comparison']} comparison) in {summary['n_collaboratives']} "
        f"collaborative(s); {summary['n_periods']} {summary['freq']} periods "
        f"({summary['first_period']} .. {summary['last_period']}); {summary['n_rows']} "
        f"unit-period rows.",
    ]
    if warnings:
        h.append("Data warnings (see `qicstats validate`): "
                 + "; ".join(f"[{w.rule}] {w.message}" for w in warnings[:6])
                 + (" ..." if len(warnings) > 6 else ""))
    h += ["", "Paths are relative to this file's folder. Editor completion: `qicstats schema "
          "-o qicstats.schema.json`, then add `# yaml-language-server: "
          "$schema=qicstats.schema.json` as the first line."]
    return h


def write_init_config(panel: str | os.PathLike[str], output: str | os.PathLike[str] =
                      "analysis.yaml", *, units: str | os.PathLike[str] | None = None,
                      indicators: str | os.PathLike[str] | None = None,
                      codebook: str | os.PathLike[str] | None = None,
                      indicators_format: str = "long",
                      mapping: str | os.PathLike[str] | None = None,
                      name: str | None = None, family: str | None = None,
                      columns: Mapping[str, str] | None = None,
                      overwrite: bool = False) -> InitResult:
    """Validate the data and write a complete, commented analysis config for them.

    Parameters
    ----------
    panel : path
        The panel file.
    output : path
        The config file to write (its folder is created when missing).
    units : path, optional
        The units table.
    indicators, codebook : path, optional
        Coded indicators and their codebook (both or neither).
    indicators_format : {"long", "classification", "matrix"}
        The format of the indicators export.
    mapping : path, optional
        Case -> unit mapping for classification/matrix exports.
    name : str, optional
        Run name (default: the output folder's name).
    family : str, optional
        Outcome family (default: chosen from the outcome columns; see the module docstring).
    columns : dict, optional
        ``{role: column}`` for files whose column names differ from the contract's.
    overwrite : bool
        Replace an existing file (otherwise an existing file is an error).

    Returns
    -------
    InitResult

    Raises
    ------
    DataValidationError
        The data break the data contract (every problem listed).
    QicstatsError
        The output exists and ``overwrite`` is false, or indicators lack a codebook.
    """
    out = Path(output)
    if out.exists() and not overwrite:
        raise QicstatsError(f"{out} exists; give --overwrite (overwrite=True) to replace it")
    if out.exists() and out.is_dir():
        raise QicstatsError(f"{out} is a folder; give a file name such as {out}/analysis.yaml")
    out_dir = Path(os.path.abspath(out.parent))
    values, notes, pdata, warnings = propose_config(
        panel, out_dir=out_dir, units=units, indicators=indicators, codebook=codebook,
        indicators_format=indicators_format, mapping=mapping, name=name, family=family,
        columns=columns)
    cfg = load_config(values, base_dir=out_dir)
    text = render_config(cfg, notes, _header(cfg, pdata.summary(), warnings, out.name))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    loaded = load_config(out)
    return InitResult(out, loaded, text, pdata.summary(), notes, tuple(warnings))


__all__ = [
    "LEVEL_CANDIDATES",
    "InitResult",
    "propose_config",
    "render_config",
    "write_init_config",
]
