"""The model specification: which terms, at which grouping levels, with which priors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from qicstats.errors import ModelSpecError

Trend = Literal["auto", "none", "linear", "rw", "spline", "period"]
TRENDS: tuple[str, ...] = ("auto", "none", "linear", "rw", "spline", "period")
TERMS: tuple[str, ...] = ("baseline", "level", "slope", "trend")
Effect = Literal["auto", "step", "slope", "curve"]
#: shapes of the effect over time since joining (see docs/model.md, *Effect shapes*)
EFFECTS: tuple[str, ...] = ("auto", "step", "slope", "curve")
#: keys of ``centered`` besides the levels: the period effects and the exposure-time curve
CENTERED_TERMS: tuple[str, ...] = ("period", "curve")


@dataclass(frozen=True)
class ModelSpec:
    """What to fit. All fields have defaults that suit a typical QIC panel.

    Parameters
    ----------
    family : str or None
        ``binomial``, ``betabinomial``, ``poisson``, ``negbinomial`` or ``gaussian``; ``None``
        takes the data's family.
    trend : {"auto", "none", "linear", "rw", "spline", "period"}
        The secular trend f(t): none; linear in time; a first-order random walk over periods;
        a penalised cubic B-spline (random-walk prior on the coefficients, ``spline_knots``
        interior knots) plus a linear part; or free period effects (a linear part plus
        exchangeable deviations orthogonal to it, partially pooled toward the line).
        ``auto`` (the default) reads the design
        (:func:`qicstats.models.structure.resolve_structure`): free period effects when
        units not (yet) in a collaborative are observed in the periods after joins (comparison
        units, staggered or stepped-wedge starts), a linear trend for a single series.
    effect : {"auto", "step", "slope", "curve"}
        The effect's shape over time since joining: a step (one level change), a step plus a
        linear slope change (segmented regression), or an exposure-time curve (one effect per
        period since joining, partially pooled as a random walk). ``auto`` (the default): the
        curve when post-join rows have concurrent comparisons, else (a single series) the
        step plus slope. Horizons without a concurrent comparison are left out of the ATT
        (see docs/model.md).
    seasonality : bool or "auto"
        Add zero-sum month-of-year (or quarter) effects (monthly/quarterly data only).
        ``auto``: with a parametric or smooth trend over at least two years of monthly or
        quarterly data; never with free period effects (which contain them).
    phases : bool or "auto"
        A sustainability phase: units with an ``end_period`` get a further change
        ``phase_change`` in the periods after it (intervention vs sustainability).
        ``auto``: when some unit has periods observed after its end period.
    random : dict
        For each term (``baseline`` intercept, ``level`` change, ``slope`` change, and
        ``trend``: unit-specific linear secular-trend slopes), the grouping levels that get
        random effects, e.g. ``{"baseline": ["collaborative", "site", "unit"]}``. ``None``
        for a term means "every level of the data" for baseline/level/slope and none for
        trend.
    correlated : tuple of str
        Levels at which the level and slope changes get correlated effects (LKJ prior).
    centered : dict
        ``{key: True | False | "auto"}``. Keys: a level (every term of it), ``<term>.<level>``
        (one term of a level, e.g. ``baseline.unit`` or ``level.site``), ``period`` (the
        period effects), ``curve`` (the exposure-time curve), ``default`` for the rest.
        ``auto`` (the default) chooses per group from the data
        (:mod:`qicstats.models.parameterisation`): each group's effect is partially centred
        with weight ``w = tau^2 / (tau^2 + se^2)`` (``se``: the standard error the group's
        own data give; ``tau``: a pilot estimate of the spread between groups), so well
        determined groups are centred and weakly determined ones non-centred.
    ramp : int
        Learning period: the level change phases in linearly over this many periods.
    ar1 : bool
        AR(1) residuals per unit on the latent scale.
    covariates : tuple of str
        Columns of the units or panel table adjusted for (standardised).
    indicators : tuple of str or None
        Which encoded indicators to use (``None``: all that were supplied).
    zero_sum : bool
        Constrain the collaborative baseline, level-change and slope-change effects to sum to
        zero (separates the intercept and the average change from few collaborative effects,
        improving mixing).
    decorrelate : bool
        Sample the intervention block (``level_change``, ``slope_change``, ``ind_level``,
        ``ind_slope``) in coordinates decorrelated by the design (an exact linear
        reparameterisation; the named parameters are deterministic functions of the free
        ``intervention_xi``). Applies when the block's priors are all normal and no level- or
        slope-change effect is hierarchically centred; see docs/model.md, *Parameterisation*.
    priors : dict
        Overrides by prior name (see :mod:`qicstats.models.priors`), as plain dicts.
    spread_min_groups : int
        A spread is learned from the data only when at least this many values inform it:
        the groups of a level (for its ``sd_u`` / ``sd_level`` / ``sd_slope`` / ``sd_trend``
        and the collaboratives' ``sd_curve_collaborative``) or the steps of the
        exposure-time curve (``sd_curve``). With fewer (three collaboratives, a curve over
        four exposure times), the spread is fixed at the root mean square of its prior
        (``sigma`` for the default half-normal priors): the effects keep the prior variance
        the hierarchical prior gives them, without a spread that two to four values cannot
        determine and whose funnel NUTS cannot sample (docs/model.md, *Few groups*). 2
        learns every spread.
    """

    family: str | None = None
    trend: str = "auto"
    effect: str = "auto"
    spline_knots: int | None = None
    seasonality: bool | str = "auto"
    phases: bool | str = "auto"
    random: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    correlated: tuple[str, ...] = ()
    centered: Mapping[str, Any] = field(default_factory=dict)
    ramp: int = 0
    ar1: bool = False
    covariates: tuple[str, ...] = ()
    indicators: tuple[str, ...] | None = None
    zero_sum: bool = True
    decorrelate: bool = True
    priors: Mapping[str, Any] = field(default_factory=dict)
    spread_min_groups: int = 5

    def __post_init__(self) -> None:
        """Check the settings that need no data.

        Raises :class:`~qicstats.errors.ModelSpecError` on an invalid one (levels are checked
        against the data by :meth:`levels_for`).
        """
        if not isinstance(self.spread_min_groups, int) or self.spread_min_groups < 2:
            raise ModelSpecError(f"spread_min_groups must be an integer >= 2, got "
                                 f"{self.spread_min_groups!r}")
        if self.trend not in TRENDS:
            raise ModelSpecError(f"trend must be one of {TRENDS}, got '{self.trend}'")
        bad = set(self.random) - set(TERMS)
        if bad:
            raise ModelSpecError(f"random effects terms must be among {TERMS}, got {sorted(bad)}")
        if self.ramp < 0:
            raise ModelSpecError("ramp must be >= 0 periods")
        if self.effect not in EFFECTS:
            raise ModelSpecError(f"effect must be one of {EFFECTS}, got '{self.effect}'")
        if self.random.get("slope") and self.effect != "slope":
            raise ModelSpecError(
                f"random slope-change effects need effect='slope' (the effect is "
                f"'{self.effect}'); drop random.slope or set effect: slope")
        for key, val in (("seasonality", self.seasonality), ("phases", self.phases)):
            if not (isinstance(val, bool) or val == "auto"):
                raise ModelSpecError(f"{key} must be true, false or 'auto', got {val!r}")
        for key in self.centered:
            term, _, lv = str(key).partition(".")
            if lv and (term not in TERMS or not lv):
                raise ModelSpecError(
                    f"centered key '{key}': use a level, <term>.<level> with term one of "
                    f"{TERMS}, 'period', 'curve' or 'default'")

    def centring_choice(self, lv: str, term: str) -> bool | str:
        """The ``centered`` setting that applies to ``term`` effects at level ``lv``
        (``term.level`` first, then the level, then ``default``; ``"auto"`` if none).
        """
        c = self.centered
        for key in (f"{term}.{lv}", lv, "default"):
            if key in c:
                return c[key]
        return "auto"
    def levels_for(self, term: str, data_levels: tuple[str, ...]) -> tuple[str, ...]:
        """The grouping levels (outermost first, ``unit`` last) carrying random ``term`` effects.

        Random slope changes exist only with ``effect="slope"``.
        """
        all_levels = tuple(data_levels) + ("unit",)
        if term == "slope" and self.effect != "slope":
            return ()
        chosen = self.random.get(term)
        if chosen is None:
            return () if term == "trend" else all_levels
        unknown = [lv for lv in chosen if lv not in all_levels]
        if unknown:
            raise ModelSpecError(
                f"random {term} effects at unknown level(s) {unknown}; the data's levels are "
                f"{list(all_levels)}")
        return tuple(lv for lv in all_levels if lv in chosen)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (for hashing and provenance)."""
        d = asdict(self)
        d["random"] = {k: (list(v) if v is not None else None) for k, v in self.random.items()}
        d["correlated"] = list(self.correlated)
        d["covariates"] = list(self.covariates)
        d["indicators"] = list(self.indicators) if self.indicators is not None else None
        d["priors"] = dict(self.priors)
        d["centered"] = dict(self.centered)
        return d
