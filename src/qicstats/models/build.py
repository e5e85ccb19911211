"""Build the PyMC model of a QIC panel (no sampling here; ``qicstats validate`` stops after this).

:func:`build` orchestrates: it resolves the design's ``auto`` choices
(:mod:`qicstats.models.structure`), computes the numeric design (:mod:`~qicstats.models.design`)
and a pilot of the data (:mod:`~qicstats.models.parameterisation`), then writes the graph:
the secular trend, the indicator terms, the baseline random effects
(:mod:`~qicstats.models.effects`), the intervention block (:mod:`~qicstats.models.block`),
the effect's shape over time since joining (step, step plus slope, exposure-time curve) and
the likelihood (:mod:`~qicstats.models.observe`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from qicstats.data.panel import PanelData
from qicstats.errors import ModelSpecError
from qicstats.indicators.matrix import IndicatorMatrix
from qicstats.models.block import (
    HierarchicalParts,
    InterventionBlock,
    block_names,
    intervention_block,
    moderator_centres,
)
from qicstats.models.design import Design, build_design
from qicstats.models.effects import (
    ar1,
    correlated_changes,
    curve_deviations,
    detrended_basis,
    indicator_coefs,
    latent_codes,
    main_effect_means,
    nested_totals_marginal,
    parent_sum,
    random_effect,
)
from qicstats.models.grid import grid_linear_predictor, unit_means_of_time_terms
from qicstats.models.linpred import role_indices
from qicstats.models.observe import (
    family_dist,
    family_params,
    mixture_likelihood,
    observe,
    observed_values,
)
from qicstats.models.parameterisation import (
    SNAP_HIGH,
    Pilot,
    choose_tau,
    group_information,
    kappa,
    pilot,
    row_weights,
    snap,
)
from qicstats.models.priors import PRIOR_NAMES, Prior, default_priors, resolve_prior
from qicstats.models.spec import ModelSpec
from qicstats.models.structure import Structure, resolve_structure

#: zero-sum collaborative effects are centred (as a whole) only with at least this many groups
ZERO_SUM_MIN_GROUPS = 8
#: non-centred effects on fewer groups than this make the model ask for target_accept 0.9
FEW_GROUPS = 10
#: change effects are centred where their standard error is below this share of the prior
#: scale of their sd
CHANGE_CENTRE_RATIO = 0.05


@dataclass
class QICModel:
    """A built (unsampled) model: the PyMC model plus the design that produced it.

    Attributes
    ----------
    spec : ModelSpec
    design : Design
    model : pymc.Model
    param_names : list of str
        Posterior variables the linear predictor reads (see :mod:`qicstats.models.linpred`).
    priors : dict of str to Prior
        The prior actually used for each model parameter (for the methods text).
    data_hash : str
        SHA-256 of the panel (and encoded indicators) the model was built from.
    target_accept : float
        The NUTS target acceptance rate this model's geometry suggests (used when the sampler
        config leaves it open): 0.9 when some level has non-centred effects on fewer than
        ``FEW_GROUPS`` groups (a weakly identified sd: small steps avoid divergences), else
        0.8 (longer trajectories per gradient; at M this doubles the ESS per second).
    intervention : InterventionBlock or None
        The decorrelated parameterisation of the intervention block, when it applies
        (``spec.decorrelate``).
    structure : Structure or None
        What the design supports and the resolved ``auto`` choices, with reasons.
    centring : dict
        The centring weight chosen for each random-effect term (``"<term>.<level>"``,
        ``"period"``, ``"curve"``): the mean weight over its groups (0 non-centred, 1
        centred).
    pilot : Pilot or None
        The data pilot the centring weights were computed from.
    fixed_spreads : dict of str to float
        The spreads fixed at their prior's root mean square because fewer than
        ``spec.spread_min_groups`` values inform them (``{"sd_level_collaborative": 0.5}``).
    marginalised : tuple of str
        Random-effect terms integrated out analytically (``"baseline.site"``: the site
        effects, whose spread stays a parameter, live in the units' centred totals;
        :func:`~qicstats.models.effects.nested_totals_marginal`).
    """

    spec: ModelSpec
    design: Design
    model: pm.Model
    param_names: list[str]
    priors: dict[str, Prior] = field(default_factory=dict)
    data_hash: str = ""
    target_accept: float = 0.8
    intervention: InterventionBlock | None = None
    structure: Structure | None = None
    centring: dict[str, float] = field(default_factory=dict)
    pilot: Pilot | None = None
    fixed_spreads: dict[str, float] = field(default_factory=dict)
    marginalised: tuple[str, ...] = ()

    @property
    def family(self) -> str:
        """The outcome family."""
        return self.design.family

    @property
    def design_hash(self) -> str:
        """Hash of the data and indicators this model was built from (identity checks)."""
        return self.data_hash

    def free_parameter_names(self) -> list[str]:
        """Names of the free random variables (what diagnostics are computed over), plus the
        named parameters a decorrelated block (``intervention_xi``) stands for.
        """
        names = [v.name for v in self.model.free_RVs]
        if self.intervention is not None:
            named = {"ind_level" if n.startswith("ind_level_") else
                     "ind_slope" if n.startswith("ind_slope_") else n
                     for n in self.intervention.names}
            names += [n for n in self.model.named_vars if n in named]
        return names

    def initial_point_logp(self) -> tuple[float, np.ndarray]:
        """Log density and its gradient at the initial point (a cheap build check)."""
        ip = self.model.initial_point()
        f = self.model.compile_logp()
        g = self.model.compile_dlogp()
        return float(f(ip)), np.asarray(g(ip))




def _prior_table_check(overrides: dict[str, Any], design: Design, data_levels: tuple[str, ...]
                       ) -> None:
    allowed = set(PRIOR_NAMES)
    levels = list(dict.fromkeys(list(data_levels) + list(design.levels) + ["unit"]))
    for gen in ("sd_u", "sd_level", "sd_slope", "sd_trend", "sd_curve"):
        allowed |= {f"{gen}_{lv}" for lv in levels}
    for ind in design.indicators:
        allowed |= {f"ind_main_{ind.name}", f"ind_level_{ind.name}", f"ind_slope_{ind.name}"}
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise ModelSpecError(f"unknown prior name(s) {bad}; allowed: {sorted(allowed)}")


def _prior_scale(pr: Prior) -> float:
    return float(pr.params.get("sigma", pr.params.get("beta", 0.0)) or 0.0)


def zero_sum_level(spec: ModelSpec, lv: str, n_groups: int, term: str = "baseline") -> bool:
    """Whether the effects of level ``lv`` are zero-sum (``spec.zero_sum``): the
    collaboratives' baseline effects, and the change effects of every level (the average
    change is then the population value itself, which the random effects cannot trade
    off against; in a stepped wedge this doubled the ESS of the units' change sd).
    """
    if not spec.zero_sum or n_groups < 2:
        return False
    return lv == "collaborative" or term in ("level", "slope")


def curve_labels(d: Design) -> list[str]:
    """Coordinate labels of the exposure-time curve: ``"0"``, ``"1"``, ..."""
    return [str(h) for h in range(d.curve_max + 1)]


class _Builder:
    """The graph under construction: data, priors used and centring decisions."""

    def __init__(self, data: PanelData, spec: ModelSpec, d: Design, st: Structure):
        self.data, self.spec, self.d, self.st = data, spec, d, st
        self.overrides = dict(spec.priors)
        self.defaults = default_priors(family=d.family, T=d.T, H=d.H,
                                       link_mean=d.link_mean, y_sd=d.y_sd)
        self.used: dict[str, Prior] = {}
        self.pilot = pilot(d)
        disp = self.pilot.dispersion
        self.weights = row_weights(d, disp)
        self.centring: dict[str, float] = {}
        self.few_group_noncentred: list[str] = []
        self.fixed: dict[str, float] = {}
        self.marginalised: list[str] = []

    def fixed_sd(self, name: str, n_values: int) -> float | None:
        """The constant the spread ``name`` is fixed at when fewer than
        ``spec.spread_min_groups`` values (groups, curve steps) inform it, else ``None``.
        """
        if n_values >= self.spec.spread_min_groups:
            return None
        self.fixed[name] = self.prior(name).rms()
        return self.fixed[name]

    def spread_sd(self, name: str, n_values: int) -> Any:
        """The spread ``name`` for the graph: its :meth:`fixed_sd` constant, or the
        parameter with its prior.
        """
        fixed = self.fixed_sd(name, n_values)
        if fixed is not None:
            return pt.as_tensor_variable(np.float64(fixed))
        return self.prior(name).create(name)

    def levels(self, term: str) -> tuple[str, ...]:
        """The levels carrying random ``term`` effects that have at least two groups (the
        spread between groups cannot be learned from one: a single unit has no unit
        effects, a single participating unit no unit-level change effects).
        """
        groups = self.d.change_groups if term in ("level", "slope") else self.d.base_groups
        return tuple(lv for lv in self.spec.levels_for(term, self.d.levels)
                     if groups[lv].n >= 2)

    def prior(self, name: str) -> Prior:
        pr = resolve_prior(name, self.defaults, self.overrides)
        self.used[name] = pr
        return pr

    def scale(self, lv: str, term: str) -> float:
        gen = {"baseline": "sd_u", "level": "sd_level", "slope": "sd_slope", "trend": "sd_trend"}
        return _prior_scale(resolve_prior(f"{gen[term]}_{lv}", self.defaults, self.overrides))

    def spread(self, lv: str, term: str) -> float:
        return choose_tau(self.pilot.tau.get((term, lv)), self.scale(lv, term))

    def weight(self, lv: str, term: str) -> np.ndarray:
        """Centring weight per group of ``term`` effects at level ``lv``."""
        d, spec = self.d, self.spec
        groups = d.change_groups if term in ("level", "slope") else d.base_groups
        n = groups[lv].n
        choice = spec.centring_choice(lv, term)
        zs = term != "trend" and zero_sum_level(spec, lv, n, term)
        gen = {"baseline": "sd_u", "level": "sd_level", "slope": "sd_slope", "trend": "sd_trend"}
        fixed = self.fixed_sd(f"{gen[term]}_{lv}", n)
        if choice is True or choice is False:
            w = np.full(n, float(choice))
        elif d.rows.n == 0 or self.scale(lv, term) <= 0:
            w = np.zeros(n)
        else:
            info = group_information(d, spec, lv, term, self.weights, self.spread)
            if len(info) != n:
                info = np.full(n, float(np.mean(info)) if len(info) else 0.0)
            if fixed is not None:
                # a known sd: the weight that decorrelates each effect from its location
                # exactly (no funnel to avoid)
                w = snap(kappa(info, fixed))
            elif term in ("level", "slope"):
                # change effects: their spread is usually far below any estimate a pilot
                # can make (it absorbs the effect's misfit), and centring them with a small
                # true spread makes a funnel: centred only where the data pin a group down
                # to a twentieth of the sd's prior scale (measured: docs/performance.md)
                with np.errstate(divide="ignore"):
                    se = np.where(info > 0, 1.0 / np.sqrt(np.maximum(info, 1e-300)), np.inf)
                w = (se < CHANGE_CENTRE_RATIO * self.scale(lv, term)).astype(float)
            else:
                w = snap(kappa(info, self.spread(lv, term)))
            if zs:
                w = np.full(n, float(snap(w.mean())[0])
                            if n >= ZERO_SUM_MIN_GROUPS or fixed is not None else 0.0)
        if (w < 0.5).any() and n < FEW_GROUPS and fixed is None:
            self.few_group_noncentred.append(f"{term}@{lv}")
        self.centring[f"{term}.{lv}"] = float(w.mean()) if n else 0.0
        return w

    def period_weight(self) -> float:
        """Centring weight of the period deviations from the line (one for all periods):
        centred (1, in the decorrelated block) when the pilot's weight reaches
        :data:`SNAP_HIGH` (clear period shocks), else non-centred (0). The deviations around
        a line are usually small and their sd's posterior reaches zero, where any partial
        weight leaves a funnel: the demo's period deviations, partially centred at the
        pilot's weight, warned at ``period_sd`` (tail ESS 148) and pass non-centred (min
        bulk ESS 862); the pilot's per-period information (all rows of the period) overstates
        what the data say about each deviation.
        """
        if "period" not in self.centring:
            d = self.d
            info = np.bincount(d.rows.t, weights=self.weights, minlength=d.T)
            fixed = self.fixed_sd("period_sd", max(d.T - 2, 0))
            w = self.scalar_weight("period", info[info > 0],
                                   fixed if fixed is not None else self.period_tau())
            if self.spec.centered.get("period", self.spec.centered.get("default", "auto")) \
                    == "auto" and fixed is None:
                # with a fixed sd (fewer than spread_min_groups deviations) there is no
                # funnel and the partial weight is exact
                self.centring["period"] = 1.0 if w >= SNAP_HIGH else 0.0
        return self.centring["period"]

    def period_tau(self) -> float:
        if "period_sd" in self.fixed:
            return self.fixed["period_sd"]
        return choose_tau(self.pilot.tau.get(("period", "")),
                          _prior_scale(resolve_prior("period_sd", self.defaults, self.overrides)))

    def curve_tau(self) -> float:
        if self.d.effect == "curve" and self.d.n_curve > 1:
            fixed = self.fixed_sd("sd_curve", self.d.n_curve - 1)
            if fixed is not None:
                return fixed
        return 0.5 * _prior_scale(resolve_prior("sd_curve", self.defaults, self.overrides))

    def curve_weight(self) -> float:
        """Centring weight of the exposure-time curve (1 when its horizons' data pin them
        down, else 0: a random walk is centred or non-centred as a whole).
        """
        if "curve" not in self.centring:
            d = self.d
            n = d.n_curve
            if n == 1:
                self.centring["curve"] = 1.0
            else:
                post = d.rows.D > 0
                slots = d.curve_slot(d.rows.e[post])
                info = np.bincount(slots, weights=self.weights[post] * d.rows.D[post] ** 2,
                                   minlength=n)
                w = self.scalar_weight("curve", info[1:], self.curve_tau())
                self.centring["curve"] = 1.0 if w >= 0.5 else 0.0
        return self.centring["curve"]

    def scalar_weight(self, key: str, info: np.ndarray, tau: float) -> float:
        choice = self.spec.centered.get(key, self.spec.centered.get("default", "auto"))
        if choice is True or choice is False:
            w = float(choice)
        else:
            k = kappa(info, tau)
            w = float(snap(float(np.median(k)) if len(k) else 0.0)[0])
        self.centring[key] = w
        return w


def build(data: PanelData, spec: ModelSpec | None = None,
          indicators: IndicatorMatrix | None = None) -> QICModel:
    """Build the hierarchical controlled interrupted time-series model of ``data``.

    Parameters
    ----------
    data : PanelData
        A validated panel (see :func:`qicstats.data.validate`).
    spec : ModelSpec, optional
        Terms, levels, the effect's shape and priors (defaults: the trend and seasonality
        the design supports, an exposure-time curve, random baseline and level-change
        effects at every level with at least two groups, parameterisation from the data).
    indicators : IndicatorMatrix, optional
        Encoded qualitative indicators (main effects and/or moderators).

    Returns
    -------
    QICModel
        Nothing is sampled. ``spec`` is the resolved spec (no ``auto`` left).

    Raises
    ------
    ModelSpecError
        The spec asks for something the data cannot support (e.g. a flexible trend for a
        single series).
    """
    spec = spec or ModelSpec()
    st = resolve_structure(data, spec)
    spec = st.apply(spec)
    d = build_design(data, spec, indicators, structure=st)
    assert d.regular is not None  # build_design marks the regular rows
    _prior_table_check(dict(spec.priors), d, tuple(data.levels))
    b = _Builder(data, spec, d, st)
    prior = b.prior

    coords: dict[str, Any] = {"period": list(d.period_labels),
                              "obs": np.arange(int(d.regular.sum()))}
    for lv, g in d.base_groups.items():
        coords[lv] = list(g.names)
    for lv, g in d.change_groups.items():
        coords[f"{lv}_joined"] = list(g.names)
    if d.covariate_names:
        coords["covariate"] = list(d.covariate_names)
    roles = role_indices(d)
    if roles["main"]:
        coords["indicator_main"] = [d.indicators[k].name for k in roles["main"]]
    if roles["moderator"]:
        coords["indicator_moderator"] = [d.indicators[k].name for k in roles["moderator"]]
    if d.effect == "curve" and d.participating.any():
        coords["exposure_time"] = curve_labels(d)

    p: dict[str, Any] = {}
    block = None
    with pm.Model(coords=coords) as model:
        p["intercept"] = prior("intercept").create("intercept")
        has_slope = spec.trend in ("linear", "rw", "spline", "period")
        lv_levels = b.levels("level")
        sl_levels = b.levels("slope")
        change_w: dict[tuple[str, str], np.ndarray] = {}
        if d.participating.any():
            for lv in d.change_groups:
                if lv in spec.correlated:
                    continue
                for term, chosen in (("level", lv_levels), ("slope", sl_levels)):
                    if lv in chosen:
                        change_w[(lv, term)] = b.weight(lv, term)
            # change effects centred around level_change / slope_change: the block then stays
            # in its plain form
            nested = d.effect != "curve" and any(
                (w > 0).any() and not zero_sum_level(spec, lv, d.change_groups[lv].n, term)
                for (lv, term), w in change_w.items())
            mods = [d.indicators[k].name for k in roles["moderator"]]
            with_trend = has_slope and not b.levels("trend")
            decorrelate = spec.decorrelate and not nested and all(
                prior(n).dist == "Normal" and prior(n).on == "value"
                for n in block_names(d, mods, with_trend))
            block = intervention_block(
                d, p, prior, mods, roles["moderator"], with_trend=with_trend,
                decorrelate=decorrelate, weights=b.weights,
                parts=_hierarchical_parts(b) if decorrelate else None)
        _secular(b, p)
        if d.covariate_names:
            p["beta"] = prior("beta").create("beta", dims="covariate")
        _indicator_terms(b, p, roles)
        if d.participating.any():
            if d.effect == "curve":
                _effect_curve(b, p, roles["moderator"])
            if d.phases:
                p["phase_change"] = prior("phase_change").create("phase_change")
        _baseline_effects(b, p, roles)
        if d.participating.any():
            _change_effects(b, p, change_w, lv_levels, sl_levels)
        if spec.ar1:
            p["ar_eps"] = ar1(d, prior("ar_rho"), prior("ar_sd"))
        extra = family_params(d, prior)
        reg = d.rows.subset(np.flatnonzero(d.regular))
        eta = grid_linear_predictor(p, d, reg)
        observe(d, eta, np.flatnonzero(d.regular), extra)
        if d.mixture is not None:
            mixture_likelihood(d, p, extra)

    names = [n for n in p if n in model.named_vars]
    h = hashlib.sha256(data.data_hash().encode())
    if indicators is not None:
        canon = indicators.cells.astype(str).to_csv(index=False, lineterminator="\n")
        h.update(canon.encode())
    return QICModel(spec=spec, design=d, model=model, param_names=names, priors=b.used,
                    data_hash=h.hexdigest(),
                    target_accept=0.9 if b.few_group_noncentred or spec.correlated else 0.8,
                    intervention=block, structure=st, centring=b.centring, pilot=b.pilot,
                    fixed_spreads=dict(b.fixed), marginalised=tuple(b.marginalised))


def _hierarchical_parts(b: _Builder) -> HierarchicalParts | None:
    """The period effects and the curve join the decorrelated block when their data pin them
    down (centred): their sds are created here, before the block.
    """
    d, spec, prior = b.d, b.spec, b.prior
    period = spec.trend == "period" and b.period_weight() >= 1.0
    curve = d.effect == "curve" and b.curve_weight() >= 1.0
    if not (period or curve):
        return None
    start = prior("level_change")
    if curve and (start.dist != "Normal" or start.on != "value"):
        curve = False
    tau_unit = (b.spread("unit", "baseline") if "unit" in b.levels("baseline") else None)
    return HierarchicalParts(
        period_sd=b.spread_sd("period_sd", d.T - 2) if period else None,
        curve_sd=(b.spread_sd("sd_curve", d.n_curve - 1) if curve and d.n_curve > 1
                  else None),
        curve=((float(start.params.get("mu", 0.0)), float(start.params.get("sigma", 1.0)))
               if curve else None),
        n_curve=d.n_curve if curve else 0, tau_period=b.period_tau(), tau_curve=b.curve_tau(),
        tau_unit=tau_unit)


def _secular(b: _Builder, p: dict[str, Any]) -> None:
    """The secular trend f(t) and seasonality, as the deterministic ``secular``."""
    d, spec, prior = b.d, b.spec, b.prior
    T = d.T
    tau = pt.as_tensor_variable(d.tau)
    f = pt.zeros(T)
    if spec.trend in ("linear", "rw", "spline", "period"):
        if "trend_slope" not in p:
            p["trend_slope"] = prior("trend_slope").create("trend_slope")
        f = f + p["trend_slope"] * tau
    if spec.trend == "rw" and T > 1:
        sd = prior("trend_sd").create("trend_sd")
        z = pm.Normal("trend_rw_z", 0.0, 1.0, shape=T - 1)
        walk = pt.concatenate([pt.zeros(1), pt.cumsum(sd * z)])
        f = f + walk - walk.mean()
    if spec.trend == "spline":
        B = d.spline_basis
        assert B is not None  # build_design makes the basis for a spline trend
        sd = prior("trend_sd").create("trend_sd")
        z = pm.Normal("trend_spline_z", 0.0, 1.0, shape=B.shape[1])
        coef = pt.cumsum(sd * z * np.sqrt(max(T, 1) / B.shape[1]))
        wig = pt.dot(B, coef)
        f = f + wig - wig.mean()
    if spec.trend == "period" and "period_effect" in p:   # in the decorrelated block
        f = f + p["period_effect"]
    elif spec.trend == "period" and T >= 3:
        # the deviations of the period effects from the line trend_slope * tau: coordinates
        # x ~ Normal(0, period_sd) in an orthonormal basis Q of the vectors orthogonal to the
        # constant and to tau (exchangeable effects pooled toward a line, not toward a flat
        # trend, which shrank the demo's secular slope by a quarter and raised its ATT)
        w = b.period_weight()
        sd = b.spread_sd("period_sd", T - 2)
        Q = pt.as_tensor_variable(detrended_basis(d.tau))
        if w >= 1.0:
            x = pm.Normal("period_coef", 0.0, sd, shape=T - 2)
        elif w <= 0.0:
            x = sd * pm.Normal("period_z", 0.0, 1.0, shape=T - 2)
        else:
            x = sd ** (1.0 - w) * pm.Normal("period_pc", 0.0, sd**w, shape=T - 2)
        p["period_effect"] = pm.Deterministic("period_effect", pt.dot(Q, x), dims="period")
        f = f + p["period_effect"]
    if d.season is not None:
        n_season = int(d.season.max()) + 1
        sd = prior("season_sd").create("season_sd")
        zs = pm.ZeroSumNormal("season_z", sigma=1.0, shape=n_season)
        f = f + sd * zs[d.season]
    p["secular"] = pm.Deterministic("secular", f, dims="period")


def _indicator_terms(b: _Builder, p: dict[str, Any], roles: dict[str, list[int]]) -> None:
    d, prior = b.d, b.prior
    for ind in d.indicators:
        if ind.type == "ordinal":
            L = ind.n_levels
            if L < 2:
                raise ModelSpecError(f"ordinal indicator '{ind.name}' needs >= 2 levels")
            if L == 2:
                p[f"mo_{ind.name}"] = pm.Deterministic(f"mo_{ind.name}", pt.ones(1))
            else:
                p[f"mo_{ind.name}"] = pm.Dirichlet(f"mo_{ind.name}", a=np.ones(L - 1))
    if roles["main"]:
        p["ind_main"] = indicator_coefs("ind_main", [d.indicators[k].name for k in roles["main"]],
                                        prior, "indicator_main")
    latent_codes(d, p)


def _baseline_effects(b: _Builder, p: dict[str, Any], roles: dict[str, list[int]]) -> None:
    """Baseline random effects per level, and unit-specific trend slopes."""
    d, spec, prior = b.d, b.spec, b.prior
    base_levels = b.levels("baseline")
    base_w = {lv: b.weight(lv, "baseline") for lv in base_levels}
    # the innermost centred baseline level also carries in its location the group means of
    # the indicators' main-effect term and of the terms varying over time (trend, effect):
    # the same model (see effects.random_effect), in which the free group totals are what
    # those terms do not explain
    nested_base = [lv for lv in base_levels if base_w[lv].mean() >= 0.5
                   and not zero_sum_level(spec, lv, d.base_groups[lv].n)]
    shift_level = nested_base[-1] if nested_base else None
    marg = _marginal_parent(b, base_levels, base_w, shift_level)
    for lv in base_levels:
        if lv == marg:
            continue    # integrated out of the centred totals below it
        g = d.base_groups[lv]
        loc = parent_sum(p, "u", lv, d.base_groups, None, p["intercept"])
        if lv == shift_level and loc is not None:
            if roles["main"]:
                loc = loc + main_effect_means(p, d, roles["main"], g.of_unit, g.n)
            loc = loc + _time_term_means(b, p, g.of_unit, g.n)
        if marg is not None and lv == shift_level:
            pg = d.base_groups[marg]
            rep = np.unique(g.of_unit, return_index=True)[1]
            p[f"u_{lv}"] = nested_totals_marginal(
                f"u_{lv}", loc, b.spread_sd(f"sd_u_{lv}", g.n),
                b.spread_sd(f"sd_u_{marg}", pg.n), pg.of_unit[rep], pg.n, lv)
            continue
        p[f"u_{lv}"] = random_effect(
            f"u_{lv}", prior(f"sd_u_{lv}"), lv, g.n,
            zero_sum=zero_sum_level(spec, lv, g.n), weight=base_w[lv], loc=loc,
            fixed_sd=b.fixed_sd(f"sd_u_{lv}", g.n))
    for lv in b.levels("trend"):
        g = d.base_groups[lv]
        pr = prior(f"sd_trend_{lv}")
        p[f"w_trend_{lv}"] = random_effect(
            f"w_trend_{lv}", pr, lv, g.n, weight=b.weight(lv, "trend"),
            loc=parent_sum(p, "w_trend", lv, d.base_groups, None, p.get("trend_slope")),
            fixed_sd=b.fixed_sd(f"sd_trend_{lv}", g.n))


def _marginal_parent(b: _Builder, base_levels: tuple[str, ...],
                     base_w: dict[str, np.ndarray], shift_level: str | None) -> str | None:
    """The baseline level integrated out analytically
    (:func:`~qicstats.models.effects.nested_totals_marginal`), or ``None``.

    The level just above the innermost one, when the innermost level's totals are centred
    in every group (the parent's effects then enter only their prior), the parent's effects
    are not zero-sum and its centring is ``auto``. Recorded in ``b.marginalised``.
    """
    if shift_level is None or len(base_levels) < 2 or shift_level != base_levels[-1]:
        return None
    parent = base_levels[-2]
    if not (base_w[shift_level] >= 1.0).all() or parent not in b.d.base_groups:
        return None
    if (zero_sum_level(b.spec, parent, b.d.base_groups[parent].n)
            or b.spec.centring_choice(parent, "baseline") != "auto"):
        return None
    b.marginalised.append(f"baseline.{parent}")
    return parent


def _curve_deviations(b: _Builder, lv: str, n: int) -> Any:
    """Each collaborative's own exposure-time curve, as a deviation from the common one
    (:func:`~qicstats.models.effects.curve_deviations`: a random walk from 0, the level
    shift being ``v_level_<lv>``, with step sd ``sd_curve_<lv>``, zero-sum over the
    collaboratives observed at each exposure time). Collaboratives usually start at
    different times, so they are the cohorts of a staggered design: a common curve with only
    level shifts would let cohort-specific effect shapes leak into the period effects through
    the units that have already joined (the bias of two-way fixed-effects event studies
    under heterogeneous effects, Sun & Abraham 2021).
    """
    d = b.d
    sd = b.spread_sd(f"sd_curve_{lv}", n)
    rows = d.rows
    post = rows.D > 0
    observed = np.zeros((d.n_curve, n), dtype=bool)
    observed[d.curve_slot(rows.e[post]), d.change_groups[lv].of_unit[rows.unit[post]]] = True
    return curve_deviations(f"v_curve_{lv}", sd, observed, f"{lv}_joined")


def _time_term_means(b: _Builder, p: dict[str, Any], of_unit: np.ndarray, n: int) -> Any:
    """Per group, the Fisher-weighted mean over its regular rows of the secular trend and
    the population part of the change (:func:`~qicstats.models.grid.unit_means_of_time_terms`).
    """
    d = b.d
    assert d.regular is not None  # build_design marks the regular rows
    reg = np.flatnonzero(d.regular)
    rows = d.rows.subset(reg)
    w = b.weights[reg]
    m = unit_means_of_time_terms(p, d, rows, w)
    if n == d.n_units and np.array_equal(of_unit, np.arange(d.n_units)):
        return m
    wu = np.bincount(rows.unit, weights=w, minlength=d.n_units)
    wg = np.bincount(of_unit, weights=wu, minlength=n)
    G = np.zeros((n, d.n_units))
    G[of_unit, np.arange(d.n_units)] = np.where(wg[of_unit] > 0, wu / np.maximum(
        wg[of_unit], 1e-300), 0.0)
    return (pt.as_tensor_variable(G) * m[None, :]).sum(axis=1)


def _effect_curve(b: _Builder, p: dict[str, Any], mod_k: list[int]) -> None:
    """The exposure-time curve ``effect_curve`` (one effect per period since joining up to
    ``curve_max``, plus one pooled effect for later horizons), a random walk with step sd
    ``sd_curve`` whose start has the ``level_change`` prior.

    With moderators the walk describes the effect at the participating units' mean codes
    (``effect_curve_mean``; :func:`~qicstats.models.block.moderator_centres`) and
    ``effect_curve`` (at the reference codes) is ``effect_curve_mean - sum_k ind_level_k c_k``:
    the moderators then do not trade off against every exposure-time effect.
    """
    d, prior = b.d, b.prior
    n = d.n_curve
    start = prior("level_change")
    if start.dist != "Normal" or start.on != "value":
        raise ModelSpecError("the exposure-time curve needs a Normal level_change prior (the "
                             "prior of its value in the join period)")
    mu0, s0 = float(start.params.get("mu", 0.0)), float(start.params.get("sigma", 1.0))
    shift = None
    if mod_k:
        c = moderator_centres(d, mod_k)
        shift = (p["ind_level"] * c).sum()
    name = "effect_curve_mean" if shift is not None else "effect_curve"
    if name in p:   # in the decorrelated block
        star = p[name]
    elif n == 1:
        star = pm.Normal(name, mu0, s0, dims="exposure_time")
        b.centring["curve"] = 1.0
    else:
        tau = b.spread_sd("sd_curve", n - 1)
        if b.curve_weight() >= 0.5:
            star = pm.GaussianRandomWalk(name, mu=0.0, sigma=tau,
                                         init_dist=pm.Normal.dist(mu0, s0), steps=n - 1,
                                         dims="exposure_time")
        else:
            z = pm.Normal(f"{name}_z", 0.0, 1.0, dims="exposure_time")
            walk = pt.concatenate([pt.zeros(1), pt.cumsum(tau * z[1:])])
            star = pm.Deterministic(name, mu0 + s0 * z[0] + walk, dims="exposure_time")
    p["effect_curve"] = (star if shift is None else
                         pm.Deterministic("effect_curve", star - shift, dims="exposure_time"))


def _change_effects(b: _Builder, p: dict[str, Any], change_w: dict[tuple[str, str], np.ndarray],
                    lv_levels: tuple[str, ...], sl_levels: tuple[str, ...]) -> None:
    """Random level- and slope-change effects per level."""
    d, spec, prior = b.d, b.spec, b.prior
    for lv in d.change_groups:
        g = d.change_groups[lv]
        dim = f"{lv}_joined"
        if lv in spec.correlated and lv in lv_levels and lv in sl_levels:
            p[f"v_level_{lv}"], p[f"v_slope_{lv}"] = correlated_changes(
                lv, g.n, prior(f"sd_level_{lv}"), prior(f"sd_slope_{lv}"), dim)
            continue
        # zero-sum collaborative effects: with few collaboratives the average change is then
        # the population value itself, not confounded with the group effects
        for term, chosen in (("level", lv_levels), ("slope", sl_levels)):
            if lv not in chosen:
                continue
            zs = zero_sum_level(spec, lv, g.n, term)
            base = p.get(f"{term}_change") if d.effect != "curve" else None
            p[f"v_{term}_{lv}"] = random_effect(
                f"v_{term}_{lv}", prior(f"sd_{term}_{lv}"), dim, g.n, zero_sum=zs,
                weight=change_w[(lv, term)],
                loc=parent_sum(p, f"v_{term}", lv, d.change_groups, d.participating, base),
                fixed_sd=b.fixed_sd(f"sd_{term}_{lv}", g.n))
        if (d.effect == "curve" and lv == "collaborative" and lv in lv_levels
                and d.n_curve > 1 and g.n >= 2):
            p["v_curve_collaborative"] = _curve_deviations(b, lv, g.n)


__all__ = [
    "FEW_GROUPS",
    "ZERO_SUM_MIN_GROUPS",
    "InterventionBlock",
    "QICModel",
    "build",
    "curve_labels",
    "family_dist",
    "observed_values",
    "zero_sum_level",
]
