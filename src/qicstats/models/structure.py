"""Reading the design: which trend and levels the data can support, and which horizons of the
effect are identified.

:func:`resolve_structure` is the one code path that turns ``auto`` settings of a
:class:`~qicstats.models.ModelSpec` into concrete choices for a panel, with the reason for each
(``qicstats init`` writes the same reasons into the config it proposes). It decides from the
*design* only (who is observed untreated when), never from the outcome values.

Identification of the effect over time since joining
----------------------------------------------------
A unit-period after joining at exposure time ``h`` (periods since joining, 0 in the join
period) has a **concurrent comparison** when some unit is observed untreated in the same
period (a comparison unit, or one that has not joined yet). With a flexible secular trend
(free period effects, a random walk, a spline) the trend of a period is learned only from
units untreated in it, so the effect at exposure time ``h`` is identified by concurrent
comparisons at ``h`` (and, for exposure times past them, only by extrapolating the
effect's shape: in a stepped wedge in which every unit eventually joins, horizons past the
last cohort's start have no concurrent comparison). :attr:`Structure.identified_max` is the
largest ``h`` such that every horizon ``0..h`` has concurrent comparisons; the ATT averages
the identified horizons (the exposure-time curve goes on past them as a random walk, so their
rows inform the identified effects as little as possible). With a parametric trend (none,
linear, with or without seasonality) the trend is extrapolated and every observed horizon is
identified by that assumption; a **single series** (no post-join row has a concurrent
comparison) needs one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qicstats.data.panel import PanelData
from qicstats.errors import ModelSpecError
from qicstats.models.spec import ModelSpec

#: trends learned only from units untreated in each period
FLEXIBLE_TRENDS: tuple[str, ...] = ("rw", "spline", "period")
#: trends extrapolated from the pre-join periods (the single-series assumption)
PARAMETRIC_TRENDS: tuple[str, ...] = ("none", "linear")


@dataclass(frozen=True)
class Structure:
    """What the design supports, and the concrete choices for ``auto`` settings.

    Attributes
    ----------
    trend : str
        The secular trend (``auto`` resolved).
    seasonality : bool
    phases : bool
        Whether a sustainability phase (after ``end_period``) is modelled.
    effect : str
        The effect's shape over time since joining.
    levels : tuple of str
        Grouping levels above the unit that carry random effects (levels with fewer than two
        groups of participating units are left out: their spread cannot be learned).
    single_series : bool
        No post-join unit-period has a concurrent comparison (one unit, or every unit
        joining at once with no comparison units): only a parametric trend identifies the
        effect.
    identified_max : int or None
        The largest exposure time identified by concurrent comparisons when the trend is
        flexible (``None``: every observed exposure time is identified).
    max_exposure : int
        The longest observed time since joining (0 when nothing is observed after joining).
    horizons : DataFrame
        One row per observed exposure time: ``exposure_time``, ``rows`` (observed post-join
        unit-periods), ``concurrent_rows`` (of them, with a concurrent comparison),
        ``units``, ``identified`` (bool), ``in_att`` (bool: averaged by the ATT).
    reasons : dict of str to str
        Why each choice was made, by setting (``trend``, ``seasonality``, ``phases``,
        ``levels``, ``effect``, ``identification``, ``unit_changes``).
    unit_changes : bool
        Whether the change effects (level, slope) get unit-level random effects by default:
        not when the median participating unit has fewer than
        :data:`MIN_POST_ROWS_UNIT_CHANGES` post-join rows.
    """

    trend: str
    seasonality: bool
    phases: bool
    effect: str
    levels: tuple[str, ...]
    single_series: bool
    identified_max: int | None
    max_exposure: int
    horizons: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)
    reasons: dict[str, str] = field(default_factory=dict)
    unit_changes: bool = True

    def apply(self, spec: ModelSpec) -> ModelSpec:
        """``spec`` with its ``auto`` settings replaced by this structure's choices."""
        from dataclasses import replace

        random = dict(spec.random)
        if not self.unit_changes:
            for term in (("level", "slope") if self.effect == "slope" else ("level",)):
                if random.get(term) is None:
                    random[term] = tuple(self.levels)
        return replace(spec, trend=self.trend, seasonality=self.seasonality,
                       phases=self.phases, effect=self.effect, random=random)

    @property
    def curve_max(self) -> int:
        """The last exposure time with its own effect in the curve: every observed one (the
        random walk carries the effect on past the identified horizons, so their rows do not
        distort the identified ones; they are left out of the ATT).
        """
        return self.max_exposure


#: fewer post-join rows per participating unit (median) than this and the change effects get
#: no unit-level random effects by default (see :func:`resolve_structure`)
MIN_POST_ROWS_UNIT_CHANGES = 4


def _post_rows(data: PanelData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(unit index, t, join t, post-join mask)`` per panel row."""
    units = data.units.reset_index(drop=True)
    join = pd.to_numeric(units["join_t"], errors="coerce").to_numpy(dtype=float)
    uidx = data.unit_index
    t = data.panel["t"].to_numpy(dtype=int)
    jt = join[uidx]
    post = np.isfinite(jt) & (t >= np.nan_to_num(jt, nan=np.inf))
    return uidx, t, jt, post


def _post_rows_per_unit(data: PanelData) -> np.ndarray:
    uidx, _, _, post = _post_rows(data)
    n = np.bincount(uidx[post], minlength=len(data.units))
    return n[n > 0]


def exposure_table(data: PanelData) -> tuple[pd.DataFrame, bool]:
    """Per observed exposure time, its rows and how many have a concurrent comparison.

    Returns
    -------
    table : DataFrame
        ``exposure_time``, ``rows``, ``concurrent_rows``, ``units``.
    any_concurrent : bool
        Whether any post-join row has a concurrent comparison.
    """
    uidx, t, jt, post = _post_rows(data)
    T = int(data.periods.T)
    untreated = np.bincount(t[~post], minlength=T) if T else np.zeros(0, int)
    h = np.where(post, t - np.nan_to_num(jt), -1).astype(int)
    conc = post & (untreated[t] > 0)
    if not post.any():
        return pd.DataFrame(columns=["exposure_time", "rows", "concurrent_rows", "units"]), False
    hp = h[post]
    H = int(hp.max())
    rows = np.bincount(hp, minlength=H + 1)
    crow = np.bincount(h[conc], minlength=H + 1) if conc.any() else np.zeros(H + 1, int)
    nun = np.array([len(np.unique(uidx[post & (h == k)])) for k in range(H + 1)])
    tab = pd.DataFrame({"exposure_time": np.arange(H + 1), "rows": rows,
                        "concurrent_rows": crow, "units": nun})
    return tab[tab["rows"] > 0].reset_index(drop=True), bool(conc.any())


def _levels(data: PanelData, spec: ModelSpec) -> tuple[tuple[str, ...], str]:
    units = data.units
    part = data.participating
    keep: list[tuple[str, int]] = []
    dropped: list[tuple[str, int]] = []
    for lv in data.levels:
        if lv not in units.columns:
            continue
        n = units.loc[part, lv].dropna().nunique()
        (keep if n >= 2 else dropped).append((lv, n))
    text = ""
    if dropped:
        text = "; ".join(f"'{lv}' left out: {n} group(s) of participating units, so the "
                         "spread between them cannot be learned" for lv, n in dropped)
    return tuple(lv for lv, _ in keep), text


def resolve_structure(data: PanelData, spec: ModelSpec | None = None) -> Structure:
    """Resolve the ``auto`` settings of ``spec`` for ``data`` and check identification.

    Parameters
    ----------
    data : PanelData
    spec : ModelSpec, optional

    Returns
    -------
    Structure

    Raises
    ------
    ModelSpecError
        A flexible trend was asked for a single series (no post-join row has a concurrent
        comparison), or nobody is observed after joining.
    """
    spec = spec or ModelSpec()
    reasons: dict[str, str] = {}
    tab, any_conc = exposure_table(data)
    part = data.participating
    single = bool(part.any() and len(tab) and not any_conc)
    freq = data.periods.freq
    T = int(data.periods.T)

    # ---- trend ----------------------------------------------------------------------------
    trend = spec.trend
    if trend == "auto":
        if single:
            trend = "linear"
            reasons["trend"] = ("no unit is observed untreated in the periods after the join "
                                "(a single series): a linear trend fitted to the periods "
                                "before it is extrapolated, the identifying assumption of an "
                                "interrupted time series")
        else:
            trend = "period"
            reasons["trend"] = ("units not (yet) in a collaborative are observed in the "
                                "periods after joins, so free period effects are identified: "
                                "they absorb any shock common to all units (the two-way "
                                "design of difference-in-differences and stepped-wedge "
                                "analyses)")
    if single and trend in FLEXIBLE_TRENDS:
        raise ModelSpecError(
            f"trend '{trend}' cannot be separated from the effect: no unit is observed "
            "untreated in the periods after the join (a single series, or every unit joining "
            "at once without comparison units). Use trend: linear (with seasonality for "
            "monthly or quarterly data), the interrupted-time-series assumption, or add "
            "comparison units")

    # ---- seasonality ----------------------------------------------------------------------
    season = spec.seasonality
    per_year = {"month": 12, "quarter": 4}.get(freq)
    if season == "auto":
        season = bool(per_year and trend != "period" and T >= 2 * per_year)
        if per_year and trend == "period":
            reasons["seasonality"] = "contained in the free period effects"
        elif season:
            reasons["seasonality"] = (f"{T} {freq}s cover at least two years: zero-sum "
                                      f"{freq}-of-year effects")
        else:
            reasons["seasonality"] = ("fewer than two years of monthly or quarterly data"
                                      if per_year else f"{freq} periods have no season")
    season = bool(season)

    # ---- phases ---------------------------------------------------------------------------
    phases = spec.phases
    end = pd.to_numeric(data.units["end_t"], errors="coerce").to_numpy(dtype=float) \
        if "end_t" in data.units.columns else np.full(data.n_units, np.nan)
    uidx = data.unit_index
    t = data.panel["t"].to_numpy(dtype=int)
    after_end = np.isfinite(end[uidx]) & (t > np.nan_to_num(end[uidx], nan=np.inf)) & part[uidx]
    if phases == "auto":
        phases = bool(after_end.any())
        reasons["phases"] = (f"{int(after_end.sum())} unit-periods lie after their unit's "
                             "end_period: a sustainability phase with its own change"
                             if phases else "no unit is observed after an end_period")
    phases = bool(phases) and bool(after_end.any())

    # ---- levels, effect, identified horizons ---------------------------------------------
    levels, why_levels = _levels(data, spec)
    if why_levels:
        reasons["levels"] = why_levels
    # unit-specific changes need several post-join rows per unit to be told apart from row
    # noise; with fewer, their spread is learned from nothing but the residual variance (a
    # funnel: R-hat 1.02, ESS 228 and 101 divergences on the 5-period zoo panel)
    unit_changes = True
    post_rows = _post_rows_per_unit(data)
    if (spec.random.get("level") is None and len(post_rows)
            and float(np.median(post_rows)) < MIN_POST_ROWS_UNIT_CHANGES):
        unit_changes = False
        reasons["unit_changes"] = (
            f"participating units have a median of {float(np.median(post_rows)):g} periods "
            f"after joining (fewer than {MIN_POST_ROWS_UNIT_CHANGES}): too few to tell a "
            "unit's own change from row noise, so the change varies by "
            + (", ".join(levels) if levels else "nothing") + " but not by unit (add 'unit' "
            "to model.random.level to ask for it)")
    effect = spec.effect
    if effect == "auto":
        # the curve needs concurrent comparisons: against a trend extrapolated from the
        # periods before one join, per-horizon effects are weakly identified (funnels), and
        # the classic segmented regression (level + slope change) is the standard ITS
        effect = "slope" if single else "curve"
        reasons["effect_choice"] = (
            "a single series: a level change plus a slope change (segmented regression), the "
            "standard interrupted time series; an exposure-time curve would rest on the "
            "extrapolated trend alone" if single else
            "concurrent comparisons identify an effect per period since joining")
    H = int(tab["exposure_time"].max()) if len(tab) else 0
    ident_max: int | None = None
    if len(tab):
        if trend in FLEXIBLE_TRENDS:
            ok = (tab.set_index("exposure_time")["concurrent_rows"]
                  .reindex(range(H + 1), fill_value=0) > 0).to_numpy()
            first_bad = int(np.argmin(ok)) if not ok.all() else None
            if first_bad is not None:
                ident_max = max(first_bad - 1, 0)
            identified = tab["exposure_time"].to_numpy() <= (H if ident_max is None
                                                             else ident_max)
        else:
            identified = np.ones(len(tab), bool)
        tab = tab.assign(identified=identified, in_att=identified)
        if ident_max is not None:
            reasons["identification"] = (
                f"exposure times 0..{ident_max} have concurrent comparisons (units observed "
                f"untreated in the same periods); {ident_max + 1}..{H} have none: their effects "
                "rest on the assumption that the effect depends on time since joining only, "
                f"so the ATT averages exposure times 0..{ident_max}")
        elif trend in PARAMETRIC_TRENDS and single:
            reasons["identification"] = (
                f"a single series: exposure times 0..{H} are identified only by extrapolating "
                f"the {trend} trend of the periods before joining")
        else:
            reasons["identification"] = (f"every observed exposure time (0..{H}) has "
                                         "concurrent comparisons")
    reasons["effect"] = {
        "curve": "an effect per period since joining, partially pooled as a random walk: it "
                 "may ramp up, plateau or fade; the ATT averages it",
        "step": "one level change after joining",
        "slope": "a level change and a linear change per period since joining",
    }[effect]
    return Structure(trend=trend, seasonality=season, phases=phases, effect=effect,
                     levels=levels, single_series=single, identified_max=ident_max,
                     max_exposure=H, horizons=tab, reasons=reasons,
                     unit_changes=unit_changes)


__all__ = [
    "FLEXIBLE_TRENDS",
    "MIN_POST_ROWS_UNIT_CHANGES",
    "PARAMETRIC_TRENDS",
    "Structure",
    "exposure_table",
    "resolve_structure",
]
