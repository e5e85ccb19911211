"""The model specification: which terms, at which grouping levels, with which priors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping

from qicstats.errors import ModelSpecError

Trend = Literal["none", "linear", "rw", "spline", "period"]
TRENDS: tuple[str, ...] = ("none", "linear", "rw", "spline", "period")
TERMS: tuple[str, ...] = ("baseline", "level", "slope", "trend")


@dataclass(frozen=True)
class ModelSpec:
    """What to fit. All fields have defaults that suit a typical QIC panel.

    Parameters
    ----------
    family : str or None
        ``binomial``, ``betabinomial``, ``poisson``, ``negbinomial`` or ``gaussian``; ``None``
        takes the data's family.
    trend : {"none", "linear", "rw", "spline", "period"}
        The secular trend f(t): none; linear in time; a first-order random walk over periods;
        a penalised cubic B-spline (random-walk prior on the coefficients, ``spline_knots``
        interior knots) plus a linear part; or free period effects (zero-sum).
    seasonality : bool
        Add zero-sum month-of-year (or quarter) effects (monthly/quarterly data only).
    random : dict
        For each term (``baseline`` intercept, ``level`` change, ``slope`` change, and
        ``trend``: unit-specific linear secular-trend slopes), the grouping levels that get
        random effects, e.g. ``{"baseline": ["collaborative", "site", "unit"]}``. ``None``
        for a term means "every level of the data" for baseline/level/slope and none for
        trend.
    correlated : tuple of str
        Levels at which the level and slope changes get correlated effects (LKJ prior).
    centered : dict
        ``{level: True | False | "auto"}`` per level, ``"default"`` for unlisted levels
        (default ``"auto"``, chosen per level and term from the data: unit-level effects are
        centred when the data of at least 90 % of the units pin them down to within a
        quarter of the prior scale of their sd; effects at a grouping level (site,
        collaborative) are centred when there are at least 8 groups and the information
        accumulated from the units and levels below pins 90 % of the groups down to within
        0.45 of that scale; everything else is non-centred). Zero-sum collaborative effects
        are centred as a zero-sum normal with the level's sd.
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
    """

    family: str | None = None
    trend: str = "linear"
    spline_knots: int | None = None
    seasonality: bool = False
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

    def __post_init__(self) -> None:
        if self.trend not in TRENDS:
            raise ModelSpecError(f"trend must be one of {TRENDS}, got '{self.trend}'")
        bad = set(self.random) - set(TERMS)
        if bad:
            raise ModelSpecError(f"random effects terms must be among {TERMS}, got {sorted(bad)}")
        if self.ramp < 0:
            raise ModelSpecError("ramp must be >= 0 periods")

    def levels_for(self, term: str, data_levels: tuple[str, ...]) -> tuple[str, ...]:
        """The grouping levels (outermost first, ``unit`` last) carrying random ``term`` effects."""
        all_levels = tuple(data_levels) + ("unit",)
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
