"""The analysis config schema: frozen pydantic models with literal options.

An analysis config (``analysis.yaml``) says which data to read, which model to fit, what to
estimate, how to sample, which diagnostics gate to apply and what to report. Every section
except ``data`` is optional and has defaults; unknown keys are errors (``extra="forbid"``), so
a typo never silently falls back to a default.

Paths (``data.panel``, ``data.units``, ``indicators.codes[].path``, ``indicators.codebook``,
``indicators.mapping``) are kept exactly as written (relative to the config file's folder);
:attr:`AnalysisConfig.paths` gives them resolved to absolute paths for use.

Cross-field rules checked here (besides types, ranges and literal options): prior names
(:data:`qicstats.models.priors.PRIOR_NAMES` and the level- or indicator-specific forms
``sd_u_<level>``, ``sd_level_<level>``, ``sd_slope_<level>``, ``sd_trend_<level>``,
``ind_main_<indicator>``, ``ind_level_<indicator>``, ``ind_slope_<indicator>``) and their
distributions; random-effect terms and the levels they name; consensus rules; the options of
each indicator source format; diagnostics thresholds that contradict each other.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    field_validator,
    model_validator,
)

# ---- option vocabularies (kept equal to the lower layers' by tests) ----------------------
FamilyName = Literal["binomial", "betabinomial", "poisson", "negbinomial", "gaussian"]
FreqName = Literal["week", "month", "quarter", "year"]
TrendName = Literal["auto", "none", "linear", "rw", "spline", "period"]
EffectName = Literal["auto", "step", "slope", "curve"]
TermName = Literal["baseline", "level", "slope", "trend"]
CodesFormat = Literal["long", "classification", "matrix"]
Direction = Literal["increase", "decrease"]
Backend = Literal["nutpie", "pymc", "numpyro"]
ReportSectionName = Literal["diagnostics", "data", "trajectories", "estimands", "units",
                            "indicators", "ppc", "spc", "frequentist", "methods"]

#: every report section, in the default order
REPORT_SECTIONS: tuple[ReportSectionName, ...] = (
    "diagnostics", "data", "trajectories", "estimands", "units", "indicators", "ppc", "spc",
    "frequentist", "methods")
#: the consensus rules of :func:`qicstats.indicators.consensus`
CONSENSUS_RULES: tuple[str, ...] = ("majority", "adjudicated", "uncertain", "coder:<name>")
#: column roles of :class:`qicstats.data.columns.ColumnMap` (kept equal by a test)
COLUMN_ROLES: tuple[str, ...] = (
    "unit", "period", "numerator", "denominator", "count", "exposure", "value", "se", "weight",
    "outcome", "collaborative", "join_period", "end_period", "indicator", "indicator_value",
    "wave", "coder",
)
#: generic prior names with level-specific forms (``sd_u_site``)
LEVEL_PRIORS: tuple[str, ...] = ("sd_u", "sd_level", "sd_slope", "sd_trend", "sd_curve")
#: generic prior names with indicator-specific forms (``ind_level_management_support``)
INDICATOR_PRIORS: tuple[str, ...] = ("ind_main", "ind_level", "ind_slope")

_NAME_RX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONSENSUS_RX = re.compile(r"^(majority|adjudicated|uncertain|coder:\s*\S.*)$")

Probability = Annotated[StrictFloat, Field(gt=0.0, lt=1.0)]
NonEmptyStr = Annotated[str, Field(min_length=1)]


# ---- cross-field problems ----------------------------------------------------------------
@dataclass(frozen=True)
class Issue:
    """One cross-field problem, at a key path relative to the model that found it."""

    path: tuple[str | int, ...]
    message: str
    value: Any = None
    hint: str = ""
    rule: str = "config_invalid_value"


class ConfigIssues(ValueError):
    """Raised inside validators with every cross-field problem of one model.

    :func:`qicstats.config.load_config` turns each :class:`Issue` into a
    :class:`~qicstats.errors.Problem` naming its full key path.
    """

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        super().__init__("; ".join(_issue_text(i) for i in self.issues))


def _issue_text(i: Issue) -> str:
    path = _path_text(i.path)
    return f"{path}: {i.message}" if path else i.message


def _path_text(path: tuple[str | int, ...]) -> str:
    out = ""
    for el in path:
        if isinstance(el, int) and not isinstance(el, bool):
            out += f"[{el}]"
        else:
            out += ("." if out else "") + str(el)
    return out


def _dupes(items: tuple[str, ...] | list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for x in items:
        if x in seen and x not in out:
            out.append(x)
        seen.add(x)
    return out


class _Section(BaseModel):
    """Base of every config section: frozen, unknown keys forbidden."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True,
                              validate_default=True)


# ---- data -------------------------------------------------------------------------------
class DataSection(_Section):
    """The panel and units table, and how to read them (see ``qicstats validate``)."""

    panel: NonEmptyStr = Field(
        description="Panel file (CSV, TSV, Excel .xlsx or Parquet): one row per unit and period "
        "(or one 0/1 `outcome` row per patient). Path relative to the config file's folder.")
    units: NonEmptyStr | None = Field(
        default=None,
        description="Units table (unit, collaborative, join_period, optional end_period, site/"
        "team, unit covariates), relative to the config file's folder. null: unit-level columns "
        "are taken from the panel.")
    family: FamilyName | None = Field(
        default=None,
        description="Outcome family: binomial | betabinomial (numerator/denominator) | poisson | "
        "negbinomial (count/exposure) | gaussian (value). null: inferred from the outcome "
        "columns (binomial, poisson or gaussian).")
    columns: dict[str, NonEmptyStr] = Field(
        default_factory=dict,
        description="Column names of your files by logical role, {role: column}, for the roles "
        "that differ from the contract's names, e.g. {unit: afdeling, numerator: events}. "
        "Roles: " + ", ".join(COLUMN_ROLES) + ".")
    levels: tuple[NonEmptyStr, ...] = Field(
        default=("collaborative",),
        description="Grouping levels above the unit, outermost first, e.g. [collaborative, "
        "site]; each is a column of the units table (collaborative first when present). The "
        "unit is always the innermost level.")
    covariates: tuple[NonEmptyStr, ...] = Field(
        default=(),
        description="Covariate columns to adjust for (unit covariates from the units table, "
        "else panel columns); standardised before modelling.")
    freq: FreqName | None = Field(
        default=None,
        description="Coarsen dated periods to week | month | quarter | year (e.g. patient "
        "admission dates to months). null: the frequency the period values imply.")
    min_periods: StrictInt = Field(
        default=6, ge=1,
        description="Warn about units observed in fewer periods than this.")

    @field_validator("columns")
    @classmethod
    def _roles(cls, v: dict[str, str]) -> dict[str, str]:
        issues = [Issue((role,), f"unknown column role '{role}'", role,
                        hint="roles: " + ", ".join(COLUMN_ROLES), rule="config_unknown_key")
                  for role in v if role not in COLUMN_ROLES]
        if issues:
            raise ConfigIssues(issues)
        return v

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        issues = []
        for i, lv in enumerate(v):
            if lv == "unit":
                issues.append(Issue((i,), "'unit' is always the innermost level; do not list "
                                    "it", lv, hint="list only the levels above the unit"))
        if "collaborative" in v and v[0] != "collaborative":
            issues.append(Issue((), "'collaborative' must be the first (outermost) level",
                                list(v), hint="write e.g. [collaborative, site]"))
        for d in _dupes(v):
            issues.append(Issue((), f"level '{d}' is listed twice", list(v)))
        if issues:
            raise ConfigIssues(issues)
        return v

    @field_validator("covariates")
    @classmethod
    def _covariates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        d = _dupes(v)
        if d:
            raise ConfigIssues([Issue((), f"covariate(s) listed twice: {d}", list(v))])
        return v


# ---- indicators -------------------------------------------------------------------------
class CodesSource(_Section):
    """One export of coded qualitative indicators."""

    path: NonEmptyStr = Field(
        description="The coding export, relative to the config file's folder.")
    format: CodesFormat = Field(
        default="long",
        description="long: a table unit, indicator, value[, wave][, coder]; classification: a "
        "case-classification sheet (one row per case, one column per attribute; NVivo, "
        "ATLAS.ti, MAXQDA); matrix: a cases x codes matrix of coded-reference counts "
        "(MAXQDA Code Matrix Browser, NVivo matrix query).")
    wave: NonEmptyStr | None = Field(
        default=None,
        description="classification/matrix only: the wave (period from which the codes hold) "
        "of every row of this export, e.g. '2024-03' (quote it). A wave column wins.")
    coder: NonEmptyStr | None = Field(
        default=None,
        description="classification/matrix only: the coder of every row of this export. A "
        "coder column wins.")
    sheet: StrictInt | NonEmptyStr | None = Field(
        default=None,
        description="Excel only: sheet name or 0-based position (default: the first sheet).")
    case_column: NonEmptyStr | None = Field(
        default=None,
        description="classification only: the column holding the case names (default: the "
        "first column).")

    @model_validator(mode="after")
    def _format_options(self) -> CodesSource:
        issues = []
        if self.format == "long":
            for key in ("wave", "coder"):
                if getattr(self, key) is not None:
                    issues.append(Issue((key,), f"'{key}' applies to classification and matrix "
                                        "exports only", getattr(self, key),
                                        hint=f"a long table carries a {key} column; remove "
                                        f"'{key}' or set format: classification|matrix"))
        if self.case_column is not None and self.format != "classification":
            issues.append(Issue(("case_column",), "'case_column' applies to classification "
                                "sheets only", self.case_column,
                                hint="remove it or set format: classification"))
        if issues:
            raise ConfigIssues(issues)
        return self


class IndicatorsSection(_Section):
    """Coded qualitative indicators (interviews, observations) and how to combine coders."""

    codes: tuple[CodesSource, ...] = Field(
        description="One or more coding exports, each {path: FILE, format: long|classification|"
        "matrix}. A plain path means a long table.")
    codebook: NonEmptyStr = Field(
        description="Codebook (YAML) declaring each indicator: type (binary, ordinal, "
        "continuous), levels, role (main, moderator, both), the level it describes.")
    mapping: NonEmptyStr | None = Field(
        default=None,
        description="Optional CSV mapping case names of classification/matrix exports to "
        "units (columns case, unit).")
    consensus: str = Field(
        default="majority",
        description="How codes of several coders become one value: majority (most frequent "
        "level; ties keep the uncertainty) | adjudicated (the adjudicated/consensus rows where "
        "present, else majority) | uncertain (each coder's level with equal weight: the "
        "disagreement is modelled) | coder:<name> (one coder's codes alone).")
    use: tuple[NonEmptyStr, ...] | None = Field(
        default=None,
        description="Indicators to put in the model (names of the codebook). null: every "
        "indicator with codes.")
    sensitivity_by_coder: StrictBool = Field(
        default=False,
        description="Also refit with each coder's codes alone (consensus coder:<name>), to "
        "show how much the conclusions depend on who coded.")

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [{"path": v}]
        if isinstance(v, Mapping):
            return [v]
        if isinstance(v, (list, tuple)):
            return [{"path": x} if isinstance(x, str) else x for x in v]
        return v

    @field_validator("codes")
    @classmethod
    def _codes_given(cls, v: tuple[CodesSource, ...]) -> tuple[CodesSource, ...]:
        if not v:
            raise ConfigIssues([Issue((), "no coding export given", [],
                                      hint="give at least one {path: FILE, format: long}, or "
                                      "remove the indicators section")])
        return v

    @field_validator("consensus")
    @classmethod
    def _consensus(cls, v: str) -> str:
        v = v.strip()
        if not _CONSENSUS_RX.match(v):
            raise ConfigIssues([Issue((), f"unknown consensus rule '{v}'", v,
                                      hint="use one of " + ", ".join(CONSENSUS_RULES),
                                      rule="config_bad_option")])
        return v

    @field_validator("use")
    @classmethod
    def _use(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None and _dupes(v):
            raise ConfigIssues([Issue((), f"indicator(s) listed twice: {_dupes(v)}", list(v))])
        return v


# ---- model ------------------------------------------------------------------------------
class ModelSection(_Section):
    """The model's terms, levels and priors (maps 1:1 onto :class:`qicstats.models.ModelSpec`)."""

    trend: TrendName = Field(
        default="auto",
        description="Secular trend f(t), learned from comparison units and pre-join periods: "
        "auto (from the design: period when units not yet in a collaborative are observed "
        "after joins, linear for a single series) | none | linear | rw (random walk over "
        "periods) | spline (penalised cubic B-spline plus a linear part) | period (free "
        "period effects: a linear part plus deviations from it, partially pooled toward the "
        "line).")
    effect: EffectName = Field(
        default="auto",
        description="The effect's shape over time since joining: auto (curve when post-join "
        "rows have concurrent comparisons, slope for a single series) | curve (one effect per "
        "period since joining, partially pooled as a random walk: it may ramp up, plateau or fade; "
        "the ATT averages it) | step (one level change) | slope (a level change plus a "
        "linear change per period since joining: segmented regression). Exposure times "
        "without a concurrent comparison are pooled and left out of the ATT.")
    spline_knots: StrictInt | None = Field(
        default=None, ge=1,
        description="spline only: number of interior knots. null: chosen from the number of "
        "periods.")
    seasonality: StrictBool | Literal["auto"] = Field(
        default="auto",
        description="Add zero-sum month-of-year (or quarter) effects; monthly or quarterly "
        "data only. auto: with a parametric or smooth trend over at least two years of "
        "such data; not with period effects (which contain them).")
    phases: StrictBool | Literal["auto"] = Field(
        default="auto",
        description="A sustainability phase: units' periods after their end_period get a "
        "further change (phase_change), and att_phase reports the improvement in each phase. "
        "auto: when some unit is observed after its end_period.")
    random: dict[TermName, tuple[NonEmptyStr, ...] | None] = Field(
        default_factory=dict,
        description="Grouping levels with random effects, per term: {baseline|level|slope|"
        "trend: [levels]}, levels from data.levels plus 'unit'; [] for none. Unlisted terms: "
        "baseline, level and slope at every level, trend (unit-specific trend slopes) at none.")
    correlated: tuple[NonEmptyStr, ...] = Field(
        default=(),
        description="Levels at which the level and slope changes get correlated effects (LKJ "
        "prior).")
    centered: dict[NonEmptyStr, StrictBool | Literal["auto"]] = Field(
        default_factory=dict,
        description="Centred (true), non-centred (false) or chosen from the data (auto) random "
        "effects. Keys: a level (every term of it), <term>.<level> (one term, e.g. "
        "baseline.unit, level.site), period (the period effects), curve (the exposure-time "
        "curve), default (the rest). Unlisted: auto (each group partially centred by how well "
        "its data pin it down; see docs/model.md).")
    ramp: StrictInt = Field(
        default=0, ge=0,
        description="Learning period: the level change phases in linearly over this many "
        "periods after joining (0: a step).")
    ar1: StrictBool = Field(
        default=False,
        description="AR(1) residuals per unit on the latent scale.")
    zero_sum: StrictBool = Field(
        default=True,
        description="Constrain the collaborative baseline effects to sum to zero (separates the "
        "intercept from few collaborative effects; better mixing).")
    spread_min_groups: StrictInt = Field(
        default=5, ge=2,
        description="A spread between groups (sd_u/sd_level/sd_slope/sd_trend of a level, "
        "sd_curve_collaborative) or of the exposure-time curve's steps (sd_curve) is learned "
        "only from at least this many groups or steps; with fewer it is fixed at its prior's "
        "root mean square (no funnel; see docs/model.md, Few groups). 2: learn every spread.")
    decorrelate: StrictBool = Field(
        default=True,
        description="Sample the level change, slope change, indicator-moderator "
        "coefficients and secular slope in design-decorrelated coordinates (same model, faster "
        "mixing; applies when their priors are normal; see docs/model.md).")
    priors: dict[NonEmptyStr, dict[str, Any]] = Field(
        default_factory=dict,
        description="Prior overrides by name, e.g. {level_change: {dist: Normal, mu: 0, sigma: "
        "0.5}, sd_u_site: {dist: HalfNormal, sigma: 0.3}}. Names: intercept, trend_slope, "
        "trend_sd, period_sd, season_sd, level_change, slope_change, sd_curve, phase_change, "
        "sd_u, sd_level, sd_slope, sd_trend (also per level: sd_u_<level>, ...), ind_main, "
        "ind_level, ind_slope (also per indicator: ind_level_<indicator>, ...), beta, phi, "
        "alpha, sigma, ar_rho, ar_sd. Add 'on: variance' to put the distribution on the "
        "variance, 'on: inverse_sqrt' to put it on 1/sqrt (phi, alpha).")

    @field_validator("priors", mode="before")
    @classmethod
    def _on_key(cls, v: Any) -> Any:
        # YAML 1.1 reads the key `on` (of `on: variance`) as the boolean true
        if isinstance(v, Mapping):
            return {name: ({("on" if k is True else k): x for k, x in spec.items()}
                           if isinstance(spec, Mapping) else spec) for name, spec in v.items()}
        return v

    @field_validator("priors")
    @classmethod
    def _priors(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not v:
            return v
        issues = prior_issues(v)
        if issues:
            raise ConfigIssues(issues)
        from qicstats.models.priors import Prior

        # canonical form ({dist, params as floats[, on]}): `mu: 0` and `mu: 0.0` hash alike
        return {name: Prior.from_dict(spec).to_dict() for name, spec in v.items()}

    @field_validator("correlated")
    @classmethod
    def _correlated(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if _dupes(v):
            raise ConfigIssues([Issue((), f"level(s) listed twice: {_dupes(v)}", list(v))])
        return v


def _prior_vocabulary() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """(PRIOR_NAMES, allowed distributions with their parameters), imported lazily (PyMC)."""
    from qicstats.models.priors import ALLOWED_PARAMS, PRIOR_NAMES

    return tuple(PRIOR_NAMES), dict(ALLOWED_PARAMS)


def split_prior_name(name: str) -> tuple[str, str | None]:
    """Split a prior name into ``(generic, suffix)``: ``sd_u_site`` -> ``("sd_u", "site")``.

    Names without a level or indicator suffix give ``(name, None)``.
    """
    for gen in LEVEL_PRIORS + INDICATOR_PRIORS:
        if name.startswith(gen + "_") and len(name) > len(gen) + 1:
            return gen, name[len(gen) + 1:]
    return name, None


def prior_issues(priors: Mapping[str, Any]) -> list[Issue]:
    """Problems with prior overrides: unknown names, unknown distributions or parameters.

    Level and indicator suffixes are checked against the data's levels and the indicators by
    :class:`AnalysisConfig` and :func:`qicstats.config.load_config`.
    """
    import difflib

    from qicstats.errors import QicstatsError

    names, dists = _prior_vocabulary()
    from qicstats.models.priors import Prior

    issues: list[Issue] = []
    for name, spec in priors.items():
        gen, _suffix = split_prior_name(name)
        if gen not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            issues.append(Issue(
                (name,), f"unknown prior name '{name}'", name,
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + "prior names: " + ", ".join(names)
                + " (and per level/indicator: sd_u_<level>, ind_level_<indicator>, ...)",
                rule="config_unknown_prior"))
            continue
        if not isinstance(spec, Mapping):
            issues.append(Issue((name,), "a prior is a mapping such as {dist: Normal, mu: 0, "
                                "sigma: 1}", spec, rule="config_invalid_prior"))
            continue
        dist = spec.get("dist")
        if dist not in dists:
            close = difflib.get_close_matches(str(dist), list(dists), n=1)
            issues.append(Issue(
                (name, "dist"), f"unknown prior distribution {dist!r}", dist,
                hint=(f"did you mean '{close[0]}'? " if close else "")
                + "allowed: " + ", ".join(sorted(dists)), rule="config_invalid_prior"))
            continue
        try:
            prior = Prior.from_dict(spec)
        except (QicstatsError, TypeError, ValueError) as err:
            issues.append(Issue((name,), str(err), dict(spec), rule="config_invalid_prior"))
            continue
        for k, val in prior.params.items():
            vals = val if isinstance(val, (list, tuple)) else [val]
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
                issues.append(Issue((name, k), f"prior parameter '{k}' must be a number", val,
                                    rule="config_invalid_prior"))
        issues += _prior_value_issues(name, prior.dist, prior.params)
    return issues


#: prior parameters that must be > 0, by distribution (scales, shapes, rates)
_POSITIVE_PARAMS: dict[str, tuple[str, ...]] = {
    "Normal": ("sigma",), "StudentT": ("nu", "sigma"), "Cauchy": ("beta",),
    "HalfNormal": ("sigma",), "HalfCauchy": ("beta",), "HalfStudentT": ("nu", "sigma"),
    "Exponential": ("lam",), "Gamma": ("alpha", "beta"), "InverseGamma": ("alpha", "beta"),
    "LogNormal": ("sigma",), "Beta": ("alpha", "beta"), "Dirichlet": ("a",),
}


def _prior_value_issues(name: str, dist: str, params: Mapping[str, Any]) -> list[Issue]:
    """Parameter values outside their distribution's domain (``sigma: -1``, ``inf``,
    ``Uniform`` with ``lower >= upper``): a prior PyMC would accept until sampling fails.
    """
    import math

    def numbers(v: Any) -> list[float] | None:
        vals = v if isinstance(v, (list, tuple)) else [v]
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
            return None  # reported as "must be a number"
        return [float(x) for x in vals]

    out: list[Issue] = []
    for k, v in params.items():
        vals = numbers(v)
        if vals is None:
            continue
        if not all(math.isfinite(x) for x in vals):
            out.append(Issue((name, k), f"prior parameter '{k}' must be a finite number", v,
                             hint="give a number such as 1 or 2.5", rule="config_invalid_prior"))
        elif k in _POSITIVE_PARAMS.get(dist, ()) and not all(x > 0 for x in vals):
            out.append(Issue((name, k), f"prior parameter '{k}' of {dist} must be > 0, given "
                             f"{v}", v, hint=f"{k} is a scale or shape: give a positive "
                             "number, e.g. 1", rule="config_invalid_prior"))
    if dist == "Uniform":
        lo, hi = numbers(params.get("lower", 0.0)), numbers(params.get("upper", 1.0))
        if lo and hi and len(lo) == len(hi) == 1 and not lo[0] < hi[0]:
            out.append(Issue((name,), f"Uniform prior needs lower < upper, given lower "
                             f"{lo[0]:g} and upper {hi[0]:g}", dict(params),
                             hint="swap them, or widen the interval",
                             rule="config_invalid_prior"))
    return out


# ---- estimands, sampler, diagnostics, report ---------------------------------------------
class EstimandsSection(_Section):
    """What to estimate from the posterior draws (response scale)."""

    horizons: tuple[Annotated[StrictInt, Field(ge=0)], ...] = Field(
        default=(12,),
        description="Periods after joining at which to report the improvement beyond the "
        "secular trend (att_horizon_<h>); 0 is the join period.")
    mid: StrictFloat | None = Field(
        default=None, gt=0,
        description="Minimal important difference on the response scale (e.g. 0.02 = 2 "
        "percentage points; events per exposure unit for counts), in the direction of "
        "improvement: P(improvement > mid) is reported. null: not reported.")
    direction: Direction = Field(
        default="increase",
        description="Which direction is improvement: increase (e.g. share of patients given "
        "the recommended care) | decrease (e.g. harms, infections, falls).")
    interval_prob: Probability = Field(
        default=0.95,
        description="Probability of every (equal-tailed) credible interval and of the "
        "frequentist confidence intervals, in (0, 1).")
    positive_deviance_prob: Probability = Field(
        default=0.9,
        description="A unit is a positive deviant when its improvement beats its "
        "collaborative's expected improvement with at least this posterior probability.")

    @field_validator("horizons")
    @classmethod
    def _horizons(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ConfigIssues([Issue((), "give at least one horizon", [], hint="e.g. [12]")])
        if _dupes([str(h) for h in v]):
            raise ConfigIssues([Issue((), "a horizon is listed twice", list(v))])
        return v


#: upper bounds of the sampler settings (beyond them a run would not finish or not fit in
#: memory; a typo such as ``draws: 1000000000000`` is caught before anything is sampled)
MAX_CHAINS = 64
MAX_DRAWS = 100_000
MAX_TUNE = 100_000
MAX_TOTAL_DRAWS = 1_000_000
#: what ``sampler.preset: fast`` (``qicstats run --fast``) sets: 2 chains, at most these
FAST_PRESET: dict[str, int] = {"chains": 2, "draws": 150, "tune": 200}
Preset = Literal["default", "fast"]


class SamplerSection(_Section):
    """The MCMC sampler."""

    preset: Preset = Field(
        default="default",
        description="default | fast: 2 chains x (at most 200 tune + 150 draws), for trying "
        "things out, never for conclusions (the report and the diagnostics gate say so). "
        "The chains, draws and tune written here are the ones used, so the resolved config, "
        "its hash and the manifest record the short run. `qicstats run --fast` sets it.")
    backend: Backend = Field(
        default="nutpie",
        description="nutpie (fast compiled NUTS; the default) | pymc (PyMC's own NUTS) | "
        "numpyro (JAX; needs the qicstats[jax] extra).")
    chains: StrictInt = Field(default=4, ge=1, le=MAX_CHAINS,
                              description="Number of chains (>= 4 for reliable R-hat).")
    draws: StrictInt = Field(default=1000, ge=1, le=MAX_DRAWS,
                             description="Kept draws per chain.")
    tune: StrictInt = Field(default=500, ge=0, le=MAX_TUNE,
                            description="Warm-up (tuning) draws per chain, discarded; raise it "
                            "(e.g. 1000) when R-hat or ESS warn.")
    target_accept: Probability | Literal["auto"] = Field(
        default="auto",
        description="Target acceptance rate of NUTS in (0, 1), or auto (0.8, or 0.9 when few "
        "groups carry non-centred effects); raise it (e.g. 0.95) when there are divergences.")
    seed: StrictInt = Field(default=20261122, ge=0, lt=2**32,
                      description="Random seed (0 .. 2^32-1): the same config, data and seed "
                      "give the same draws.")
    progress: StrictBool = Field(default=True, description="Show a progress bar while sampling.")

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """``preset: fast`` shortens the chains here, so every record shows what was run."""
        if not isinstance(data, Mapping) or data.get("preset") != "fast":
            return data
        out = dict(data)
        out["chains"] = FAST_PRESET["chains"]
        for key, default in (("draws", 1000), ("tune", 500)):
            v = out.get(key, default)
            if isinstance(v, int) and not isinstance(v, bool):
                out[key] = min(v, FAST_PRESET[key])
        return out

    @model_validator(mode="after")
    def _total(self) -> SamplerSection:
        total = self.chains * self.draws
        if total > MAX_TOTAL_DRAWS:
            raise ConfigIssues([Issue(
                ("draws",), f"chains x draws = {self.chains} x {self.draws} = {total:,} kept "
                f"draws, more than the {MAX_TOTAL_DRAWS:,} a run may keep", self.draws,
                hint="4 chains x 1000 draws is usually plenty; raise draws only when the "
                "gate asks for more ESS")])
        return self


class DiagnosticsSection(_Section):
    """The diagnostics gate, reported first in every output."""

    strict: StrictBool = Field(
        default=False,
        description="true: a failed diagnostics gate is an error (exit code 1) instead of a "
        "warning at the top of the report.")
    rhat_warn: StrictFloat = Field(default=1.01, ge=1.0,
                             description="Warn when any R-hat exceeds this.")
    rhat_fail: StrictFloat = Field(default=1.05, ge=1.0,
                             description="Fail when any R-hat exceeds this.")
    ess_warn: StrictInt = Field(default=400, ge=1,
                            description="Warn when any bulk or tail ESS is below this.")
    ess_fail: StrictInt = Field(default=100, ge=1,
                            description="Fail when any bulk or tail ESS is below this.")
    divergences_fail_share: StrictFloat = Field(
        default=0.005, ge=0.0, le=1.0,
        description="Fail when the share of divergent transitions exceeds this (0.005 = "
        "0.5%); any divergence warns.")

    @model_validator(mode="after")
    def _order(self) -> DiagnosticsSection:
        issues = []
        if self.rhat_fail < self.rhat_warn:
            issues.append(Issue(("rhat_fail",), f"rhat_fail ({self.rhat_fail}) is below "
                                f"rhat_warn ({self.rhat_warn})", self.rhat_fail,
                                hint="rhat_fail must be >= rhat_warn"))
        if self.ess_fail > self.ess_warn:
            issues.append(Issue(("ess_fail",), f"ess_fail ({self.ess_fail}) is above ess_warn "
                                f"({self.ess_warn})", self.ess_fail,
                                hint="ess_fail must be <= ess_warn"))
        if issues:
            raise ConfigIssues(issues)
        return self


class ReportSection(_Section):
    """The HTML report."""

    title: str | None = Field(
        default=None,
        description="Report title. null: 'qicstats analysis: <name>'.")
    sections: tuple[ReportSectionName, ...] = Field(
        default=REPORT_SECTIONS,
        description="Sections to include, in order: " + " | ".join(REPORT_SECTIONS) + ".")
    frequentist: StrictBool = Field(
        default=True,
        description="Fit the frequentist cross-checks (binomial GLM with fixed effects, "
        "two-way fixed-effects DiD, mixed model) and compare them with the posterior.")

    @field_validator("sections")
    @classmethod
    def _sections(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if _dupes(v):
            raise ConfigIssues([Issue((), f"section(s) listed twice: {_dupes(v)}", list(v))])
        return v


# ---- resolved paths -----------------------------------------------------------------------
@dataclass(frozen=True)
class ResolvedPaths:
    """The config's data files as absolute paths (``None`` where not given)."""

    panel: Path
    units: Path | None = None
    codes: tuple[Path, ...] = ()
    codebook: Path | None = None
    mapping: Path | None = None

    def items(self) -> list[tuple[str, Path]]:
        """``[(key path, absolute path), ...]`` for every file given, in config order."""
        out: list[tuple[str, Path]] = [("data.panel", self.panel)]
        if self.units is not None:
            out.append(("data.units", self.units))
        out += [(f"indicators.codes[{i}].path", p) for i, p in enumerate(self.codes)]
        if self.codebook is not None:
            out.append(("indicators.codebook", self.codebook))
        if self.mapping is not None:
            out.append(("indicators.mapping", self.mapping))
        return out


def resolve_path(path: str, base_dir: str | os.PathLike[str] | None) -> Path:
    """``path`` as an absolute path: itself if absolute, else relative to ``base_dir`` (or cwd)."""
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return p
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return Path(os.path.abspath(base / p))


# ---- the config ---------------------------------------------------------------------------
class AnalysisConfig(_Section):
    """A qicstats analysis: data, model, estimands, sampler, diagnostics gate and report.

    Build it with :func:`qicstats.config.load_config` (from YAML, with errors naming each key
    path), or directly from keyword arguments. Frozen: change it with ``model_copy(update=...)``.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, validate_default=True,
        title="qicstats analysis config",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    name: str = Field(
        default="analysis", min_length=1, max_length=100,
        description="Run name: letters, digits, '.', '_' or '-'. The default run folder is "
        "runs/<name>.")
    description: str = Field(default="", description="Free text describing the analysis.")
    data: DataSection = Field(description="The panel and units table and how to read them.")
    indicators: IndicatorsSection | None = Field(
        default=None,
        description="Coded qualitative indicators (optional; null: none).")
    model: ModelSection = Field(default_factory=ModelSection,
                                description="The model's terms, levels and priors.")
    estimands: EstimandsSection = Field(default_factory=EstimandsSection,
                                        description="What to estimate from the draws.")
    sampler: SamplerSection = Field(default_factory=SamplerSection,
                                    description="MCMC sampler settings: backend, chains, draws, "
                                    "seed.")
    diagnostics: DiagnosticsSection = Field(default_factory=DiagnosticsSection,
                                            description="The diagnostics gate.")
    report: ReportSection = Field(default_factory=ReportSection,
                                  description="The HTML report: title, sections, frequentist "
                                  "cross-checks.")

    _base_dir: Path | None = PrivateAttr(default=None)
    _source: Path | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RX.match(v):
            raise ConfigIssues([Issue((), f"'{v}' is not a valid run name", v,
                                      hint="use letters, digits, '.', '_' or '-' (it names "
                                      "the run folder), starting with a letter or digit")])
        return v

    @model_validator(mode="after")
    def _cross_sections(self) -> AnalysisConfig:
        issues: list[Issue] = []
        levels = tuple(self.data.levels) + ("unit",)
        allowed_levels = ", ".join(levels)
        m = self.model
        for term, lvs in m.random.items():
            for i, lv in enumerate(lvs or ()):
                if lv not in levels:
                    issues.append(Issue(("model", "random", term, i),
                                        f"unknown level '{lv}' for random {term} effects", lv,
                                        hint=f"levels: {allowed_levels} (data.levels + unit)",
                                        rule="config_unknown_level"))
        for i, lv in enumerate(m.correlated):
            if lv not in levels:
                issues.append(Issue(("model", "correlated", i), f"unknown level '{lv}'", lv,
                                    hint=f"levels: {allowed_levels}",
                                    rule="config_unknown_level"))
        for key in m.centered:
            head, dot, lv = key.partition(".")
            if dot:
                ok = head in ("baseline", "level", "slope", "trend") and lv in levels
            else:
                ok = key in levels or key in ("default", "period", "curve")
            if not ok:
                issues.append(Issue(("model", "centered", key), f"unknown level or term "
                                    f"'{key}'", key,
                                    hint=f"levels: {allowed_levels}; or <term>.<level> with "
                                    "term baseline|level|slope|trend; or period, curve, "
                                    "default", rule="config_unknown_level"))
        slope_levels = m.random.get("slope")
        if slope_levels and m.effect != "slope":
            issues.append(Issue(("model", "random", "slope"), "random slope changes need "
                                "effect: slope", list(slope_levels),
                                hint="set model.effect: slope, or remove random.slope",
                                rule="config_invalid_value"))
        use = self.indicators.use if self.indicators is not None else None
        for name in m.priors:
            gen, suffix = split_prior_name(name)
            if suffix is None:
                continue
            if gen in LEVEL_PRIORS and suffix not in levels:
                issues.append(Issue(("model", "priors", name),
                                    f"prior '{name}' names unknown level '{suffix}'", name,
                                    hint=f"per-level forms: {gen}_<level> with level one of "
                                    f"{allowed_levels}; or {gen} for every level",
                                    rule="config_unknown_prior"))
            if gen in INDICATOR_PRIORS:
                if self.indicators is None:
                    issues.append(Issue(("model", "priors", name),
                                        f"prior '{name}' is for an indicator, but the config "
                                        "has no indicators section", name,
                                        rule="config_unknown_prior"))
                elif use is not None and suffix not in use:
                    issues.append(Issue(("model", "priors", name),
                                        f"prior '{name}' names indicator '{suffix}', which is "
                                        "not in indicators.use", name,
                                        hint="indicators used: " + ", ".join(use),
                                        rule="config_unknown_prior"))
        if issues:
            raise ConfigIssues(issues)
        return self

    def __eq__(self, other: object) -> bool:
        """Equal content (as :func:`~qicstats.config.config_hash` sees it), wherever loaded from."""
        if not isinstance(other, AnalysisConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # holds dicts: not hashable; use config_hash

    # ---- paths -----------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against (the config file's folder)."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    @property
    def source(self) -> Path | None:
        """The config file this config was loaded from (``None`` for a dict)."""
        return self._source

    def resolve(self, path: str) -> Path:
        """A path of the config resolved against :attr:`base_dir`."""
        return resolve_path(path, self.base_dir)

    @property
    def paths(self) -> ResolvedPaths:
        """Every data file of the config as an absolute path."""
        ind = self.indicators
        return ResolvedPaths(
            panel=self.resolve(self.data.panel),
            units=self.resolve(self.data.units) if self.data.units else None,
            codes=tuple(self.resolve(c.path) for c in ind.codes) if ind else (),
            codebook=self.resolve(ind.codebook) if ind else None,
            mapping=self.resolve(ind.mapping) if ind and ind.mapping else None,
        )

    def with_base_dir(self, base_dir: str | os.PathLike[str], source: str | os.PathLike[str]
                      | None = None) -> AnalysisConfig:
        """A copy whose relative paths resolve against ``base_dir``."""
        new = self.model_copy()
        new._base_dir = Path(os.path.abspath(base_dir))
        new._source = Path(os.path.abspath(source)) if source is not None else None
        return new

    @property
    def run_title(self) -> str:
        """The report title (``report.title`` or one made from the name)."""
        return self.report.title or f"qicstats analysis: {self.name}"


__all__ = [
    "COLUMN_ROLES",
    "CONSENSUS_RULES",
    "REPORT_SECTIONS",
    "AnalysisConfig",
    "CodesSource",
    "ConfigIssues",
    "DataSection",
    "DiagnosticsSection",
    "EstimandsSection",
    "IndicatorsSection",
    "Issue",
    "ModelSection",
    "ReportSection",
    "ResolvedPaths",
    "SamplerSection",
    "prior_issues",
    "resolve_path",
    "split_prior_name",
]
