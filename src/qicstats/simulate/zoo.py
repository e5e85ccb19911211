"""The design zoo: QIC evaluations whose data-generating processes lie outside qicstats' model.

:func:`qicstats.simulate.simulate` with the preset of a design here (``stepped_wedge``,
``short_panel``, ``single_series``, ``collaborative``, ``collaborative_200``, ``large``,
``few_collaboratives``, ``counts``) draws a panel from :func:`simulate_design`. The point of
the zoo is that **passing on it is not a tautology**: nothing here is drawn from the model
qicstats fits. The generator has

- secular trends the model's trend terms do not contain (a logistic rise, a kink, a quadratic
  with a sine), with **period shocks** common to every unit, and seasonality as harmonics;
- **effects that ramp up and fade** over time since joining (or ramp and stay, or a step),
  with heterogeneity that *multiplies* the effect's shape per collaborative and unit (the
  model's heterogeneity is additive);
- **heavy-tailed** unit baselines (Student-t, 3 or 4 degrees of freedom) and large
  between-unit spreads;
- overdispersion outside the beta-binomial / negative-binomial families: logit-normal and
  log-normal noise per unit-period, Student-t residuals for Gaussian outcomes;
- **unbalanced cohorts** (unequal cohort sizes, units whose series start late or end early,
  gaps), stepped-wedge schedules in which every unit eventually joins, single series;
- coded indicators from two coders with **coder errors** and missing codes, whose codebook
  describes each code (``description``, ``definition``, ``examples`` keys), as qualitative
  codebooks do.

The truth is the expected response of each unit-period given the unit's effects, averaged
over the unit-period noise (Gauss-Hermite quadrature), as observed and with the effect
switched off; ``SimulatedQIC.truth_rows`` holds both per observed row with the time since
joining, so that any estimand averaging a set of rows (the ATT over identified horizons, a
collaborative's ATT, the effect at exposure time h) has an exact true value
(:func:`true_att`). ``truth["estimands"]`` holds the usual records (``att`` overall, per
collaborative and unit, ``att_exposure`` per time since joining).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from qicstats.errors import ConfigError, ProblemCollector

__all__ = ["ZOO", "ZooDesign", "design_names", "simulate_design", "true_att"]

_BINOMIAL = ("binomial", "betabinomial")
_COUNTS = ("poisson", "negbinomial")
_ADJUDICATED = "adjudicated"


@dataclass(frozen=True)
class ZooDesign:
    """The settings of one zoo design (every field can be overridden in ``simulate``).

    Structure: ``n_units`` (comparison units included) of which ``comparison_share`` never
    join, in ``n_collaboratives`` collaboratives (``sites_per_collaborative`` sites each when
    given), over ``n_periods`` periods of ``freq`` from ``start``. Participating units join at
    one of the ``cohorts`` (grid indices; with at least as many collaboratives as cohorts each
    collaborative has a cohort, else units are spread over cohorts with ``cohort_weights``)
    plus ``0..join_jitter`` periods. ``late_entry_share`` of the units enter the panel late
    or leave early (up to a third of the window), ``row_drop_share`` of rows are missing.

    Outcome: ``eta = intercept + f(t) + baseline_i + D_it * g_i(h_it) + main_i(t)`` with
    ``f`` the ``trend`` shape scaled by ``trend_size`` plus ``N(0, period_shock_sd)`` shocks
    and ``season_amp`` harmonics; baselines ``collab_sd``, ``site_sd`` (normal) and
    ``unit_sd`` (Student-t with ``unit_df``, scaled to that sd); the effect
    ``g_i(h) = (effect_size * exp(v_c + v_i - c) + moderators) * shape(h)`` with ``shape``
    from ``effect`` (``step``, ``ramp``, ``ramp_fade``, ``linear``), ``ramp`` periods to the
    peak, half-life ``fade`` periods after it down to ``floor`` of the peak; ``v`` normal with
    sds ``effect_sd_collab`` and ``effect_sd_unit`` (relative spreads; ``c`` keeps the
    multiplier's mean at 1); the moderators add ``coordinator_effect`` (coordinator active)
    and ``management_effect`` times the monotonic level of management support (0, 0.6, 1).
    Noise per unit-period: logit- or log-normal with sd ``row_sd`` (binomial, counts),
    Student-t residuals with ``noise_df`` and sd ``sigma`` (Gaussian).
    """

    name: str
    description: str
    family: str = "binomial"
    n_units: int = 126
    n_periods: int = 36
    freq: str = "month"
    start: str = "2022-01"
    n_collaboratives: int = 6
    sites_per_collaborative: int | None = None
    comparison_share: float = 0.2
    cohorts: tuple[int, ...] = (6, 9, 12, 15, 18, 21)
    cohort_weights: tuple[float, ...] | None = None
    join_jitter: int = 2
    late_entry_share: float = 0.1
    row_drop_share: float = 0.02
    trend: str = "sigmoid"
    trend_size: float = 0.6
    period_shock_sd: float = 0.05
    season_amp: float = 0.0
    intercept: float = -0.3
    unit_sd: float = 0.5
    unit_df: float = 4.0
    collab_sd: float = 0.3
    site_sd: float = 0.0
    effect: str = "ramp_fade"
    effect_size: float = 0.4
    ramp: int = 4
    fade: float = 8.0
    floor: float = 0.4
    effect_sd_collab: float = 0.3
    effect_sd_unit: float = 0.3
    row_sd: float = 0.15
    sigma: float = 0.2
    noise_df: float = 5.0
    denominator_mean: float = 40.0
    denominator_sd: float = 0.5
    exposure_mean: float = 1000.0
    exposure_sd: float = 0.4
    indicators: bool = True
    coordinator_effect: float = 0.25
    management_effect: float = 0.3
    coordinator_main: float = 0.1
    missing_code_share: float = 0.10
    double_code_share: float = 0.3
    coder_accuracy: tuple[float, ...] = (0.88, 0.92)
    direction: str = "increase"
    horizons: tuple[int, ...] = (6,)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-friendly settings."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


#: the zoo: shapes of real evaluations, with data-generating processes outside the model
ZOO: dict[str, ZooDesign] = {
    "stepped_wedge": ZooDesign(
        name="stepped_wedge",
        description="A stepped-wedge rollout: 220 practices x 11 quarters, 6 start cohorts of "
        "unequal size, every practice eventually starts, no comparison practices, one "
        "programme; binomial with logit-normal noise; between-practice sd 2.3 on the logit "
        "scale (Student-t, 3 df); a logistic secular rise with period shocks; an effect that "
        "rises for 4 quarters and then fades.",
        family="binomial", n_units=220, n_periods=11, freq="quarter", start="2016-Q1",
        n_collaboratives=1, comparison_share=0.0, cohorts=(1, 2, 3, 4, 5, 6),
        cohort_weights=(0.2, 0.15, 0.2, 0.15, 0.15, 0.15), join_jitter=0,
        late_entry_share=0.05, row_drop_share=0.03, trend="sigmoid", trend_size=0.5,
        period_shock_sd=0.08, intercept=-0.8, unit_sd=2.3, unit_df=3.0, collab_sd=0.0,
        effect="ramp_fade", effect_size=0.45, ramp=4, fade=3.0, floor=0.25,
        effect_sd_collab=0.0, effect_sd_unit=0.25, row_sd=0.2, denominator_mean=60.0,
        denominator_sd=0.6, indicators=False, horizons=(2,)),
    "short_panel": ZooDesign(
        name="short_panel",
        description="A short Gaussian panel: 500 units x 5 years, 60 % never treated, 3 "
        "cohorts (years 2, 4 and 5) in 3 collaboratives; a kinked trend with year shocks; "
        "heavy-tailed unit baselines (sd 1.5) and Student-t residuals; an effect that "
        "deepens with exposure (a decrease is the improvement).",
        family="gaussian", n_units=500, n_periods=5, freq="year", start="2003",
        n_collaboratives=3, comparison_share=0.6, cohorts=(1, 3, 4),
        cohort_weights=(0.2, 0.4, 0.4), join_jitter=0, late_entry_share=0.0,
        row_drop_share=0.0, trend="kink", trend_size=-0.08, period_shock_sd=0.02,
        intercept=5.8, unit_sd=1.5, unit_df=4.0, collab_sd=0.1, effect="ramp",
        effect_size=-0.06, ramp=3, effect_sd_collab=0.3, effect_sd_unit=0.3, sigma=0.15,
        noise_df=5.0, indicators=False, direction="decrease", horizons=(1,)),
    "single_series": ZooDesign(
        name="single_series",
        description="A single-series interrupted time series: one region, 59 months, counts "
        "of events with a population offset, seasonal (annual harmonics), little "
        "overdispersion, no comparison series; a level drop of about 12 % from month 37 "
        "that phases in over 3 months.",
        family="poisson", n_units=1, n_periods=59, freq="month", start="2002-01",
        n_collaboratives=1, comparison_share=0.0, cohorts=(36,), join_jitter=0,
        late_entry_share=0.0, row_drop_share=0.0, trend="linear", trend_size=0.12,
        period_shock_sd=0.0, season_amp=0.06, intercept=-6.1, unit_sd=0.0, collab_sd=0.0,
        effect="ramp", effect_size=-0.13, ramp=3, effect_sd_collab=0.0, effect_sd_unit=0.0,
        row_sd=0.02, exposure_mean=360000.0, exposure_sd=0.0, indicators=False,
        direction="decrease", horizons=(12,)),
    "collaborative": ZooDesign(
        name="collaborative",
        description="A typical multi-collaborative QIC: 126 units x 36 months, 6 "
        "collaboratives with staggered starts, 20 % comparison units; a logistic secular "
        "rise with shocks; effects that ramp up and fade, heterogeneous by collaborative and "
        "unit; binary and ordinal codes from two coders with errors, 10 % missing codes.",
        family="binomial", n_units=126, n_periods=36),
    "collaborative_200": ZooDesign(
        name="collaborative_200",
        description="The collaborative design at 200 units (10 collaboratives).",
        family="binomial", n_units=200, n_periods=36, n_collaboratives=10,
        cohorts=(6, 8, 10, 12, 14, 16, 18, 20, 22, 24)),
    "large": ZooDesign(
        name="large",
        description="The collaborative design at scale: 1000 units x 48 months in 20 "
        "collaboratives of 5 sites.",
        family="binomial", n_units=1000, n_periods=48, n_collaboratives=20,
        sites_per_collaborative=5, site_sd=0.2,
        cohorts=tuple(int(x) for x in np.linspace(6, 30, 20).round())),
    "few_collaboratives": ZooDesign(
        name="few_collaboratives",
        description="Two collaboratives of 4 sites: 60 units x 30 months, 25 % comparison "
        "units, heavy-tailed unit baselines, a kinked trend, an effect that ramps up over 6 "
        "months and stays.",
        family="binomial", n_units=60, n_periods=30, n_collaboratives=2,
        sites_per_collaborative=4, site_sd=0.25, comparison_share=0.25, cohorts=(8, 14),
        trend="kink", trend_size=0.5, unit_sd=0.7, unit_df=3.0, effect="ramp",
        effect_size=0.35, ramp=6, effect_sd_collab=0.2, effect_sd_unit=0.25),
    "counts": ZooDesign(
        name="counts",
        description="Infection counts per bed-days: 80 wards x 36 months in 4 collaboratives, "
        "30 % comparison wards; log-normal overdispersion and period shocks, a quadratic "
        "trend with a sine, seasonality; a reduction that ramps in over 6 months "
        "(a decrease is the improvement).",
        family="poisson", n_units=80, n_periods=36, n_collaboratives=4,
        comparison_share=0.3, cohorts=(8, 12, 16, 20), trend="quadratic_sine",
        trend_size=-0.3, period_shock_sd=0.06, season_amp=0.08, intercept=-5.2,
        unit_sd=0.4, unit_df=4.0, collab_sd=0.2, effect="ramp", effect_size=-0.3, ramp=6,
        effect_sd_collab=0.1, effect_sd_unit=0.15, row_sd=0.15, exposure_mean=900.0,
        exposure_sd=0.4, indicators=True, coordinator_effect=-0.15,
        management_effect=-0.2, coordinator_main=0.0, direction="decrease", horizons=(6,)),
}

_TRENDS = ("sigmoid", "kink", "quadratic_sine", "linear")
_EFFECTS = ("step", "ramp", "ramp_fade", "linear")
_FREQS = ("month", "quarter", "year")


def design_names() -> list[str]:
    """The zoo's design names, in the order of :data:`ZOO`."""
    return list(ZOO)


# ---- settings ----------------------------------------------------------------------------
def _resolve(name: str, overrides: Mapping[str, Any]) -> ZooDesign:
    col = ProblemCollector()
    base = ZOO[name]
    allowed = {f.name for f in fields(ZooDesign)} - {"name", "description"}
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        col.add("unknown_setting", f"unknown setting(s) of zoo design {name!r}",
                count=len(unknown), examples=unknown,
                hint="settings are: " + ", ".join(sorted(allowed)))
    clean: dict[str, Any] = {}
    for k, v in overrides.items():
        if k in allowed:
            default = getattr(base, k)
            clean[k] = tuple(v) if isinstance(default, tuple) and isinstance(v, list) else v
    col.raise_if_errors(ConfigError)
    d = replace(base, **clean)
    checks = [
        (d.family in _BINOMIAL + _COUNTS + ("gaussian",), "family", d.family),
        (d.trend in _TRENDS, "trend", d.trend), (d.effect in _EFFECTS, "effect", d.effect),
        (d.freq in _FREQS, "freq", d.freq),
        (isinstance(d.n_units, int) and d.n_units >= 1, "n_units", d.n_units),
        (isinstance(d.n_periods, int) and d.n_periods >= 3, "n_periods", d.n_periods),
        (0.0 <= d.comparison_share < 1.0, "comparison_share", d.comparison_share),
        (len(d.cohorts) >= 1 and all(0 <= c < d.n_periods for c in d.cohorts), "cohorts",
         d.cohorts),
        (d.cohort_weights is None or len(d.cohort_weights) == len(d.cohorts),
         "cohort_weights", d.cohort_weights),
        (d.n_collaboratives >= 1, "n_collaboratives", d.n_collaboratives),
        (d.ramp >= 1, "ramp", d.ramp), (d.fade > 0, "fade", d.fade),
        (0.0 <= d.row_drop_share < 0.5, "row_drop_share", d.row_drop_share),
        (0.0 <= d.late_entry_share <= 1.0, "late_entry_share", d.late_entry_share),
        (len(d.coder_accuracy) >= 1 and all(0 < a <= 1 for a in d.coder_accuracy),
         "coder_accuracy", d.coder_accuracy),
    ]
    for ok, key, val in checks:
        if not ok:
            col.add("bad_setting", f"zoo setting {key!r} is out of range", column=key, count=1,
                    examples=[repr(val)], hint=f"see qicstats.simulate.zoo.ZooDesign ({name})")
    col.raise_if_errors(ConfigError)
    return d


# ---- pieces --------------------------------------------------------------------------------
def _labels(start: str, n: int, freq: str) -> list[str]:
    from qicstats.data.periods import period_label

    if freq == "month":
        y, m = start.split("-")
        o = int(y) * 12 + int(m) - 1
    elif freq == "quarter":
        y, q = start.split("-Q")
        o = int(y) * 4 + int(q) - 1
    else:
        o = int(start)
    return [period_label(o + t, freq) for t in range(n)]


def _trend(d: ZooDesign, T: int) -> np.ndarray:
    x = np.arange(T) / max(T - 1, 1)
    if d.trend == "sigmoid":
        f = 1.0 / (1.0 + np.exp(-10.0 * (x - 0.5))) - 0.5
    elif d.trend == "kink":
        f = np.maximum(0.0, x - 0.4) / 0.6
    elif d.trend == "quadratic_sine":
        f = x**2 + 0.15 * np.sin(3 * np.pi * x)
    else:
        f = x - 0.5
    return d.trend_size * f


def _season(d: ZooDesign, T: int) -> np.ndarray:
    if d.season_amp == 0 or d.freq == "year":
        return np.zeros(T)
    per = 12 if d.freq == "month" else 4
    ang = 2 * np.pi * np.arange(T) / per
    return d.season_amp * (np.sin(ang) + 0.5 * np.cos(2 * ang))


def _shape(d: ZooDesign, h: np.ndarray) -> np.ndarray:
    """The effect's shape over time since joining ``h`` (0 in the join period), peak 1."""
    h = np.asarray(h, dtype=float)
    up = np.minimum(1.0, (h + 1.0) / d.ramp)
    if d.effect == "step":
        return np.ones_like(h)
    if d.effect == "ramp":
        return up
    if d.effect == "linear":
        return (h + 1.0) / d.ramp
    after = np.maximum(0.0, h + 1.0 - d.ramp)
    return up * (d.floor + (1.0 - d.floor) * 0.5 ** (after / d.fade))


def _t_scaled(rng: np.random.Generator, df: float, sd: float, size: Any) -> np.ndarray:
    if sd == 0:
        return np.zeros(size)
    if not math.isfinite(df) or df > 100:
        return rng.normal(0.0, sd, size)
    return rng.standard_t(df, size) * sd * math.sqrt((df - 2.0) / df)


_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(31)
_GH_W = _GH_W / _GH_W.sum()


def _expected(eta: np.ndarray, family: str, row_sd: float) -> np.ndarray:
    """Mean response given ``eta``, averaged over the unit-period noise ``N(0, row_sd)``."""
    if family == "gaussian":
        return np.asarray(eta, dtype=float)
    if family in _COUNTS:
        return np.exp(eta + 0.5 * row_sd**2)
    if row_sd == 0:
        return 1.0 / (1.0 + np.exp(-eta))
    x = eta[..., None] + row_sd * _GH_X
    return (1.0 / (1.0 + np.exp(-x))) @ _GH_W


# ---- codebook and codes ------------------------------------------------------------------
def _codebook() -> dict[str, Any]:
    return {
        "description": "Interview and observation codes of the zoo's simulated QIC.",
        "indicators": {
            "coordinator_active": {
                "label": "Local coordinator active", "type": "binary", "levels": ["no", "yes"],
                "role": "both", "describes": "unit", "carry_back": True,
                "description": "A named local coordinator ran the improvement work in the "
                "unit during the wave.",
                "examples": ["coordinator chairs weekly huddles"],
            },
            "management_support": {
                "label": "Management support", "type": "ordinal",
                "levels": ["weak", "moderate", "strong"], "role": "moderator",
                "describes": "unit", "carry_back": True,
                "definition": "How much unit and hospital management backed the work.",
                "notes": "Coded from interviews with staff and managers.",
            },
        },
    }


def _record(rng: np.random.Generator, v: int, K: int, acc: float) -> int:
    """What one coder records for the true level ``v`` of ``K`` (the core simulator's coder:
    right with probability ``acc``, else a neighbouring level).
    """
    from qicstats.simulate.core import _code

    return int(_code(rng, v, "ordinal", K, acc))


# ---- the generator -------------------------------------------------------------------------
def simulate_design(name: str, *, seed: int, **overrides: Any) -> Any:
    """Simulate zoo design ``name`` (see the module docstring and :data:`ZOO`).

    Parameters
    ----------
    name : str
        A key of :data:`ZOO`.
    seed : int
        Seed of the one ``numpy.random.default_rng`` everything is drawn from.
    **overrides
        Fields of :class:`ZooDesign` to change (e.g. ``n_units=300``).

    Returns
    -------
    SimulatedQIC
        With ``truth_rows`` (one row per panel row: ``unit``, ``period``, ``t``,
        ``exposure_time`` (periods since joining, -1 before), ``mean_observed``,
        ``mean_counterfactual``, ``effect``) and ``truth`` (``design``, settings, the
        effect's shape per exposure time, random effects, estimands).
    """
    from qicstats.simulate.core import SimulatedQIC, panel_rows

    d = _resolve(name, overrides)
    rng = np.random.default_rng(int(seed))
    T, N = d.n_periods, d.n_units
    labels = _labels(d.start, T, d.freq)
    n_comp = int(round(d.comparison_share * N)) if N > 1 else 0
    n_part = N - n_comp

    # structure -------------------------------------------------------------------------
    C = d.n_collaboratives
    cw = len(str(C))
    collabs = [f"C{c + 1:0{cw}d}" for c in range(C)]
    sizes = rng.dirichlet(np.full(C, 6.0)) if C > 1 else np.ones(1)
    coll_of = np.sort(rng.choice(C, size=n_part, p=sizes)) if C > 1 else np.zeros(n_part, int)
    for c in range(C):  # every collaborative has a unit
        if n_part >= C and not (coll_of == c).any():
            coll_of[np.argmax(np.bincount(coll_of, minlength=C))] = c
    coll_of = np.sort(coll_of)
    spc = d.sites_per_collaborative
    site_of = (np.array([f"{collabs[c]}-S{int(rng.integers(spc)) + 1}" for c in coll_of],
                        dtype=object) if spc else None)
    uw = len(str(N))
    names = [f"U{i + 1:0{uw}d}" for i in range(N)]
    if N == 1:
        names = ["region"]
    is_part = np.zeros(N, bool)
    is_part[:n_part] = True
    unit_coll = [collabs[c] for c in coll_of] + [None] * n_comp
    if spc:
        n_comp_sites = max(1, n_comp // 6) if n_comp else 0
        comp_sites = [f"CMP-S{int(rng.integers(n_comp_sites)) + 1}" for _ in range(n_comp)]
        assert site_of is not None  # made whenever sites_per_collaborative is set
        unit_site = list(site_of) + comp_sites
    else:
        unit_site = None

    # joins ------------------------------------------------------------------------------
    K = len(d.cohorts)
    if C >= K:
        cohort_of_coll = np.arange(C) % K
        cohort = cohort_of_coll[coll_of]
    else:
        w = np.asarray(d.cohort_weights or np.ones(K), float)
        cohort = np.sort(rng.choice(K, size=n_part, p=w / w.sum()))
        counts = np.bincount(cohort, minlength=K)
        for k in np.flatnonzero(counts == 0):  # every cohort has a unit when possible
            if n_part >= K:
                cohort[np.argmax(np.bincount(cohort, minlength=K))] = k
        cohort = np.sort(cohort)
    join = np.full(N, -1)
    jit = rng.integers(0, d.join_jitter + 1, size=n_part)
    join[:n_part] = np.minimum(T - 1, np.asarray(d.cohorts)[cohort] + jit)

    # observation window per unit (late entry / early exit) --------------------------------
    first = np.zeros(N, int)
    last = np.full(N, T - 1)
    late = rng.random(N) < d.late_entry_share
    for i in np.flatnonzero(late):
        cut = int(rng.integers(1, max(2, T // 3)))
        if rng.random() < 0.5:
            first[i] = min(cut, join[i] if join[i] >= 0 else T - 2)
        else:
            last[i] = max(T - 1 - cut, max(join[i], 1) + 1 if join[i] >= 0 else 1)
    first = np.minimum(first, np.maximum(join, 0))

    # random effects ---------------------------------------------------------------------
    u_coll = dict(zip(collabs, rng.normal(0, d.collab_sd, C) if d.collab_sd else np.zeros(C)))
    u_unit = _t_scaled(rng, d.unit_df, d.unit_sd, N)
    site_names = sorted(set(unit_site)) if unit_site else []
    u_site = dict(zip(site_names, rng.normal(0, d.site_sd, len(site_names))
                      if d.site_sd else np.zeros(len(site_names))))
    v_coll = dict(zip(collabs, rng.normal(0, d.effect_sd_collab, C)
                      if d.effect_sd_collab else np.zeros(C)))
    v_unit = rng.normal(0, d.effect_sd_unit, N) if d.effect_sd_unit else np.zeros(N)
    base = np.array([(u_coll[c] if c else 0.0) + (u_site[s] if unit_site else 0.0) + u_unit[i]
                     for i, (c, s) in enumerate(zip(unit_coll, unit_site or [None] * N))])
    comp_offset = rng.normal(0, d.collab_sd) if (n_comp and d.collab_sd) else 0.0
    base[~is_part] += comp_offset

    # indicators -------------------------------------------------------------------------
    zc = np.zeros((N, T))   # coordinator active (0/1), by period
    zm = np.zeros((N, T))   # management support (mo value in [0, 1]), by period
    code_rows: list[tuple[str, str, str, str, str]] = []
    true_rows: list[dict[str, Any]] = []
    mo = np.array([0.0, 0.6, 1.0])
    if d.indicators:
        lev_c, lev_m = ["no", "yes"], ["weak", "moderate", "strong"]
        coders = ["A", "B"][:max(1, len(d.coder_accuracy))]
        miss_c = rng.random(N) < d.missing_code_share
        miss_m = rng.random(N) < d.missing_code_share
        for i in np.flatnonzero(is_part):
            vc = int(rng.random() < 0.65)
            zc[i, :] = vc
            waves_m = [join[i], join[i] + 12]
            vm = [int(rng.choice(3, p=[0.3, 0.45, 0.25]))]
            if rng.random() < 0.35:
                vm.append(int(np.clip(vm[0] + (1 if rng.random() < 0.7 else -1), 0, 2)))
            else:
                vm.append(vm[0])
            zm[i, :] = mo[vm[0]]
            if waves_m[1] < T:
                zm[i, waves_m[1]:] = mo[vm[1]]
            items = [("coordinator_active", join[i], vc, 2, lev_c, miss_c[i])]
            items += [("management_support", w, v, 3, lev_m, miss_m[i])
                      for w, v in zip(waves_m, vm) if w < T]
            for ind, w, v, nlev, levs, missing in items:
                true_rows.append({"unit": names[i], "indicator": ind, "wave": labels[w],
                                  "value": levs[v], "coded": not missing})
                if missing:
                    continue
                double = len(coders) > 1 and rng.random() < d.double_code_share
                for k_c, coder in enumerate(coders if double else coders[:1]):
                    rec = _record(rng, v, nlev, d.coder_accuracy[k_c])
                    code_rows.append((names[i], ind, levs[rec], labels[w], coder))

    # linear predictor -------------------------------------------------------------------
    t = np.arange(T)
    f = _trend(d, T) + _season(d, T)
    if d.period_shock_sd:
        f = f + rng.normal(0, d.period_shock_sd, T)
    post = is_part[:, None] & (t[None, :] >= join[:, None])
    h = np.where(post, t[None, :] - join[:, None], -1)
    shape = np.where(post, _shape(d, np.maximum(h, 0)), 0.0)
    # heterogeneity multiplies the effect (log-normal, mean 1): the model's is additive
    corr = 0.5 * (d.effect_sd_collab**2 + d.effect_sd_unit**2)
    size = np.array([d.effect_size * math.exp(v_coll[c] + v_unit[i] - corr) if c else 0.0
                     for i, c in enumerate(unit_coll)])
    mods = d.coordinator_effect * zc + d.management_effect * zm
    g = (size[:, None] + mods) * shape
    eta_cf = d.intercept + f[None, :] + base[:, None] + d.coordinator_main * zc
    eta = eta_cf + g

    # observations -----------------------------------------------------------------------
    keep = (t[None, :] >= first[:, None]) & (t[None, :] <= last[:, None])
    keep &= rng.random((N, T)) >= d.row_drop_share
    keep[:, 0] |= ~keep.any(axis=1)   # nobody unobserved
    cols: dict[str, np.ndarray] = {}
    if d.family in _BINOMIAL:
        m_i = np.exp(rng.normal(0, d.denominator_sd, N))
        n = rng.poisson(d.denominator_mean * m_i[:, None], (N, T)) + 5
        p = 1.0 / (1.0 + np.exp(-(eta + rng.normal(0, d.row_sd, (N, T)))))
        cols = {"numerator": rng.binomial(n, p), "denominator": n}
    elif d.family in _COUNTS:
        m_i = np.exp(rng.normal(0, d.exposure_sd, N)) if d.exposure_sd else np.ones(N)
        expo = np.maximum(1, np.round(d.exposure_mean * m_i[:, None]
                                      * np.exp(rng.normal(0, 0.05, (N, T)))))
        lam = expo * np.exp(eta + rng.normal(0, d.row_sd, (N, T)))
        cols = {"count": rng.poisson(lam), "exposure": expo.astype(np.int64)}
    else:
        noise = _t_scaled(rng, d.noise_df, d.sigma, (N, T))
        cols = {"value": np.round(eta + noise, 6)}
    panel = panel_rows(keep, names, labels, cols)
    ii, tt = np.nonzero(keep)

    units = pd.DataFrame({
        "unit": pd.array(names, dtype="string"),
        "collaborative": pd.array(unit_coll, dtype="string"),
        "join_period": pd.array([labels[j] if j >= 0 else None for j in join], dtype="string"),
    })
    if unit_site:
        units.insert(2, "site", pd.array(unit_site, dtype="string"))
    indicators = pd.DataFrame(code_rows, columns=["unit", "indicator", "value", "wave", "coder"]
                              ).astype("string")

    # truth ------------------------------------------------------------------------------
    mu_obs = _expected(eta, d.family, d.row_sd)
    mu_cf = _expected(eta_cf, d.family, d.row_sd)
    truth_rows = pd.DataFrame({
        "unit": pd.array([names[i] for i in ii], dtype="string"),
        "period": pd.array([labels[k] for k in tt], dtype="string"),
        "t": tt.astype(int), "exposure_time": h[ii, tt].astype(int),
        "mean_observed": mu_obs[ii, tt], "mean_counterfactual": mu_cf[ii, tt],
    })
    truth_rows["effect"] = truth_rows["mean_observed"] - truth_rows["mean_counterfactual"]
    coll_col = pd.Series([unit_coll[i] for i in ii], dtype="string")
    estimands = _estimand_records(truth_rows, coll_col)
    scale = ("probability" if d.family in _BINOMIAL else
             "rate per exposure unit" if d.family in _COUNTS else "value")
    H = int(max(h.max(), 0))
    truth = {
        "preset": name, "design": name, "seed": int(seed), "family": d.family,
        "description": d.description, "n_units": N, "n_periods": T,
        "link": {"binomial": "logit", "betabinomial": "logit", "poisson": "log",
                 "negbinomial": "log", "gaussian": "identity"}[d.family],
        "response_scale": scale, "direction": d.direction,
        "periods": {"first": labels[0], "last": labels[-1], "freq": d.freq},
        "trend": {"shape": d.trend, "values": [float(x) for x in f]},
        "effect_shape": {"shape": d.effect,
                         "values": [float(x) for x in _shape(d, np.arange(H + 1))],
                         "size": float(d.effect_size)},
        "effects": {"u_unit": dict(zip(names, map(float, u_unit))),
                    "u_collaborative": {k: float(v) for k, v in u_coll.items()},
                    "v_collaborative": {k: float(v) for k, v in v_coll.items()},
                    "v_unit": dict(zip(names, map(float, v_unit)))},
        "cohorts": {labels[int(c)]: int((join == c).sum()) for c in sorted(set(join[:n_part]))},
        "true_indicator_levels": true_rows,
        "estimands": estimands,
        "settings": d.to_dict(),
        "overrides": {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()},
    }
    sim = SimulatedQIC(panel=panel, units=units, indicators=indicators,
                       codebook=_codebook() if d.indicators else {"indicators": {}},
                       truth=truth, truth_rows=truth_rows, readme=_readme(d, truth, seed))
    return sim


def _estimand_records(tr: pd.DataFrame, coll: pd.Series) -> list[dict[str, Any]]:
    post = (tr["exposure_time"] >= 0).to_numpy()
    out: list[dict[str, Any]] = []

    def rec(est: str, scope: str, group: str, m: np.ndarray) -> None:
        if m.any():
            out.append({"estimand": est, "scope": scope, "group": group,
                        "value": float(tr["effect"].to_numpy()[m].mean()), "n": int(m.sum())})

    rec("att", "overall", "all", post)
    for c in sorted(coll[post].dropna().unique()):
        rec("att", "collaborative", str(c), post & coll.eq(c).fillna(False).to_numpy(bool))
    for u in sorted(tr.loc[post, "unit"].unique()):
        rec("att", "unit", str(u), post & (tr["unit"] == u).to_numpy())
    for hz in sorted(tr.loc[post, "exposure_time"].unique()):
        rec("att_exposure", "exposure", f"h={int(hz)}",
            post & (tr["exposure_time"] == hz).to_numpy())
    return out


def true_att(sim: Any, rows: pd.DataFrame | None = None, *, collaborative: str | None = None,
             max_exposure: int | None = None) -> float:
    """The true ATT over a set of rows of a zoo simulation.

    Parameters
    ----------
    sim : SimulatedQIC
        A zoo simulation (with ``truth_rows``).
    rows : DataFrame, optional
        ``unit`` and ``period`` of the rows to average (default: every post-join row).
    collaborative : str, optional
        Only the units of this collaborative.
    max_exposure : int, optional
        Only rows at most this many periods after joining (e.g. the identified horizons).

    Returns
    -------
    float
        Mean of ``mean_observed - mean_counterfactual`` over those rows.
    """
    tr = sim.truth_rows
    m = tr["exposure_time"] >= 0
    if rows is not None:
        key = pd.MultiIndex.from_frame(rows[["unit", "period"]].astype(str))
        m &= pd.MultiIndex.from_frame(tr[["unit", "period"]].astype(str)).isin(key)
    if collaborative is not None:
        coll = sim.units.set_index("unit")["collaborative"]
        m &= tr["unit"].map(coll).astype("string").eq(collaborative).fillna(False)
    if max_exposure is not None:
        m &= tr["exposure_time"] <= max_exposure
    return float(tr.loc[m, "effect"].mean())


def _readme(d: ZooDesign, truth: Mapping[str, Any], seed: int) -> str:
    est = {e["estimand"]: e["value"] for e in truth["estimands"]
           if e["scope"] == "overall"}
    lines = [
        f"# Zoo design `{d.name}`, seed {seed}",
        "",
        d.description,
        "",
        f"Made with `qicstats simulate --preset {d.name} --seed {seed} -o DIR` (or "
        f"`qicstats.simulate.simulate({d.name!r}, seed={seed})`). Nothing here is real, and "
        "the data-generating process is deliberately *not* qicstats' model (see "
        "`qicstats.simulate.zoo`).",
        "",
        "## Files",
        "",
        "- `panel.csv`, `units.csv` (and `indicators.csv`, `codebook.yaml` when coded): the "
        "data an analyst would have.",
        "- `truth.json`: the settings, the true trend and effect shape, random effects and the "
        "true estimands; `truth_rows.csv`: per panel row, the true mean as observed and "
        "without the intervention, and the periods since joining.",
        "",
        f"True ATT over every post-join row: {est.get('att', float('nan')):.4g} "
        f"({truth['response_scale']}).",
        "",
    ]
    return "\n".join(lines)


def settings_of(name: str) -> dict[str, Any]:
    """The settings of zoo design ``name`` as a plain dict (a copy)."""
    return copy.deepcopy(ZOO[name].to_dict())

