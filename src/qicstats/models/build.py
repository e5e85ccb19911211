"""Build the PyMC model of a QIC panel (no sampling here; ``qicstats validate`` stops after this)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from qicstats.data.panel import PanelData
from qicstats.errors import ModelSpecError
from qicstats.indicators.matrix import IndicatorMatrix
from qicstats.models.design import Design, Rows, build_design
from qicstats.models.grid import grid_linear_predictor
from qicstats.models.likelihood import betabinomial_logit, binomial_logit, register_backend
from qicstats.models.linpred import _mo_table, linear_predictor, role_indices
from qicstats.models.priors import PRIOR_NAMES, Prior, default_priors, resolve_prior
from qicstats.models.spec import ModelSpec


@dataclass(frozen=True)
class InterventionBlock:
    """The decorrelated parameterisation of the intervention block (see
    :func:`_intervention_block`): ``theta = mu + B @ intervention_xi``.

    Attributes
    ----------
    names : tuple of str
        The prior names of ``theta``'s elements, in order (``trend_slope``,
        ``level_change``, ``slope_change``, ``ind_level_<indicator>``...,
        ``ind_slope_<indicator>``...).
    mu : ndarray
        Their prior means.
    B : ndarray
        Lower-triangular, the Cholesky factor of the block's approximate posterior
        covariance.
    """

    names: tuple[str, ...]
    mu: np.ndarray
    B: np.ndarray


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
    """

    spec: ModelSpec
    design: Design
    model: pm.Model
    param_names: list[str]
    priors: dict[str, Prior] = field(default_factory=dict)
    data_hash: str = ""
    target_accept: float = 0.8
    intervention: InterventionBlock | None = None

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
        named parameters a decorrelated block (``intervention_xi``) stands for."""
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


def _prior_table_check(overrides: dict[str, Any], design: Design) -> None:
    allowed = set(PRIOR_NAMES)
    levels = list(design.levels) + ["unit"]
    for gen in ("sd_u", "sd_level", "sd_slope", "sd_trend"):
        allowed |= {f"{gen}_{lv}" for lv in levels}
    for ind in design.indicators:
        allowed |= {f"ind_main_{ind.name}", f"ind_level_{ind.name}", f"ind_slope_{ind.name}"}
    bad = sorted(set(overrides) - allowed)
    if bad:
        raise ModelSpecError(f"unknown prior name(s) {bad}; allowed: {sorted(allowed)}")


def build(data: PanelData, spec: ModelSpec | None = None,
          indicators: IndicatorMatrix | None = None) -> QICModel:
    """Build the hierarchical controlled interrupted time-series model of ``data``.

    Parameters
    ----------
    data : PanelData
        A validated panel (see :func:`qicstats.data.validate`).
    spec : ModelSpec, optional
        Terms, levels and priors (defaults: linear trend, random baseline, level and slope
        change at every level, non-centred, zero-sum collaborative baselines).
    indicators : IndicatorMatrix, optional
        Encoded qualitative indicators (main effects and/or moderators).

    Returns
    -------
    QICModel
        Nothing is sampled.
    """
    spec = spec or ModelSpec()
    d = build_design(data, spec, indicators)
    overrides = {k: v for k, v in dict(spec.priors).items()}
    _prior_table_check(overrides, d)
    defaults = default_priors(family=d.family, T=d.T, H=d.H, link_mean=d.link_mean, y_sd=d.y_sd)
    used: dict[str, Prior] = {}

    def prior(name: str) -> Prior:
        pr = resolve_prior(name, defaults, overrides)
        used[name] = pr
        return pr

    coords: dict[str, Any] = {"period": list(d.period_labels), "obs": np.arange(int(d.regular.sum()))}
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

    p: dict[str, Any] = {}
    centered = dict(spec.centered)
    few_group_noncentred: list[str] = []

    def sd_scale(lv: str, term: str) -> float:
        gen = {"baseline": "sd_u", "level": "sd_level", "slope": "sd_slope", "trend": "sd_trend"}
        return _prior_scale(resolve_prior(f"{gen[term]}_{lv}", defaults, overrides))

    def is_centered(lv: str, term: str, sd_prior: Prior) -> bool:
        c = centered.get(lv, centered.get("default", "auto"))
        groups = d.change_groups if term in ("level", "slope") else d.base_groups
        if c == "auto":
            zero_sum = term != "trend" and _zero_sum_level(spec, lv, groups[lv].n)
            out = _auto_centered(d, spec, lv, term, sd_scale, zero_sum)
        else:
            out = bool(c)
        if not out and groups[lv].n < FEW_GROUPS:
            few_group_noncentred.append(f"{term}@{lv}")
        return out

    with pm.Model(coords=coords) as model:
        p["intercept"] = prior("intercept").create("intercept")

        # ---- secular trend -----------------------------------------------------------
        T = d.T
        tau = pt.as_tensor_variable(d.tau)
        f = pt.zeros(T)
        has_slope = spec.trend in ("linear", "rw", "spline")
        block = None
        if d.participating.any():
            # the intervention block (with the secular slope, which trades off against the
            # slope change, unless unit-specific trends are centred around it)
            lv_levels = spec.levels_for("level", d.levels)
            sl_levels = spec.levels_for("slope", d.levels)
            change_centred = {
                (lv, term): is_centered(lv, term, prior(f"sd_{term}_{lv}"))
                for lv in d.change_groups if lv not in spec.correlated
                for term, chosen in (("level", lv_levels), ("slope", sl_levels))
                if lv in chosen}
            # hierarchically centred change effects take level_change / slope_change as their
            # location: the block is then left in its plain form
            nested = any(c and not _zero_sum_level(spec, lv, d.change_groups[lv].n)
                         for (lv, _), c in change_centred.items())
            mods = [d.indicators[k].name for k in roles["moderator"]]
            block = _intervention_block(d, p, prior, mods, roles["moderator"],
                                with_trend=has_slope and not spec.levels_for("trend", d.levels),
                                decorrelate=spec.decorrelate and not nested)
        if has_slope:
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
            sd = prior("trend_sd").create("trend_sd")
            z = pm.Normal("trend_spline_z", 0.0, 1.0, shape=B.shape[1])
            coef = pt.cumsum(sd * z * np.sqrt(max(T, 1) / B.shape[1]))
            wig = pt.dot(B, coef)
            f = f + wig - wig.mean()
        if spec.trend == "period":
            sd = prior("period_sd").create("period_sd")
            zp = pm.ZeroSumNormal("period_z", sigma=1.0, dims="period")
            f = f + sd * zp
        if d.season is not None:
            n_season = int(d.season.max()) + 1
            sd = prior("season_sd").create("season_sd")
            zs = pm.ZeroSumNormal("season_z", sigma=1.0, shape=n_season)
            f = f + sd * zs[d.season]
        p["secular"] = pm.Deterministic("secular", f, dims="period")

        if d.covariate_names:
            p["beta"] = prior("beta").create("beta", dims="covariate")

        # ---- indicators ---------------------------------------------------------------
        for k, ind in enumerate(d.indicators):
            if ind.type == "ordinal":
                L = ind.n_levels
                if L < 2:
                    raise ModelSpecError(f"ordinal indicator '{ind.name}' needs >= 2 levels")
                if L == 2:
                    p[f"mo_{ind.name}"] = pm.Deterministic(f"mo_{ind.name}", pt.ones(1))
                else:
                    p[f"mo_{ind.name}"] = pm.Dirichlet(f"mo_{ind.name}", a=np.ones(L - 1))
        if roles["main"]:
            p["ind_main"] = _indicator_coefs("ind_main", [d.indicators[k].name for k in roles["main"]],
                                             prior, "indicator_main")
        _latent_codes(d, p)

        # ---- baseline random effects and unit-specific trends ----------------------
        base_levels = spec.levels_for("baseline", d.levels)
        base_centred = {lv: is_centered(lv, "baseline", prior(f"sd_u_{lv}"))
                        for lv in base_levels}
        # the innermost hierarchically centred baseline level also carries the group means of
        # the indicators' main-effect term in its location (same model, see _random_effect)
        nested_base = [lv for lv in base_levels if base_centred[lv]
                       and not _zero_sum_level(spec, lv, d.base_groups[lv].n)]
        shift_level = nested_base[-1] if nested_base and roles["main"] else None
        for lv in base_levels:
            g = d.base_groups[lv]
            loc = _parent_sum(p, "u", lv, d.base_groups, None, p["intercept"])
            if lv == shift_level and loc is not None:
                loc = loc + _main_effect_means(p, d, roles["main"], g.of_unit, g.n)
            p[f"u_{lv}"] = _random_effect(
                f"u_{lv}", prior(f"sd_u_{lv}"), lv, g.n,
                zero_sum=_zero_sum_level(spec, lv, g.n),
                centered=base_centred[lv], loc=loc)
        for lv in spec.levels_for("trend", d.levels):
            g = d.base_groups[lv]
            pr = prior(f"sd_trend_{lv}")
            p[f"w_trend_{lv}"] = _random_effect(
                f"w_trend_{lv}", pr, lv, g.n, centered=is_centered(lv, "trend", pr),
                loc=_parent_sum(p, "w_trend", lv, d.base_groups, None, p.get("trend_slope")))

        # ---- intervention: level- and slope-change effects -----------------------------
        if d.participating.any():
            for lv in d.change_groups:
                g = d.change_groups[lv]
                dim = f"{lv}_joined"
                if lv in spec.correlated and lv in lv_levels and lv in sl_levels:
                    p[f"v_level_{lv}"], p[f"v_slope_{lv}"] = _correlated(
                        lv, g.n, prior(f"sd_level_{lv}"), prior(f"sd_slope_{lv}"), dim)
                    continue
                # zero-sum collaborative effects: with few collaboratives the average change
                # is then level_change itself, not confounded with the group effects
                zs = _zero_sum_level(spec, lv, g.n)
                for term, chosen in (("level", lv_levels), ("slope", sl_levels)):
                    if lv not in chosen:
                        continue
                    pr = prior(f"sd_{term}_{lv}")
                    p[f"v_{term}_{lv}"] = _random_effect(
                        f"v_{term}_{lv}", pr, dim, g.n, zero_sum=zs,
                        centered=change_centred[(lv, term)],
                        loc=_parent_sum(p, f"v_{term}", lv, d.change_groups, d.participating,
                                        p[f"{term}_change"]))

        # ---- AR(1) latent residuals -----------------------------------------------------
        if spec.ar1:
            p["ar_eps"] = _ar1(d, prior("ar_rho"), prior("ar_sd"))

        # ---- likelihood -------------------------------------------------------------------
        extra = _family_params(d, prior)
        reg = d.rows.subset(np.flatnonzero(d.regular))
        eta = grid_linear_predictor(p, d, reg)
        _observe(d, eta, np.flatnonzero(d.regular), extra)
        if d.mixture is not None:
            _mixture_likelihood(d, p, extra)

    names = [n for n in p if n in model.named_vars]
    h = hashlib.sha256(data.data_hash().encode())
    if indicators is not None:
        canon = indicators.cells.astype(str).to_csv(index=False, lineterminator="\n")
        h.update(canon.encode())
    return QICModel(spec=spec, design=d, model=model, param_names=names, priors=used,
                    data_hash=h.hexdigest(),
                    target_accept=0.9 if few_group_noncentred or spec.correlated else 0.8,
                    intervention=block)


# ------------------------------------------------------------------------------------------
#: ``centered="auto"``: centre a level's effects of a term when the data pin 90 % of its
#: groups down to within this fraction of the prior scale of the level's sd. Baseline (and
#: trend) effects of units and sites are nearly always pinned down by their many periods;
#: level and slope changes rest on the post-join periods of a few units and their true
#: spread is usually far below the prior scale, so they are centred only when overwhelmingly
#: determined. Measured on the benchmark presets: docs/performance.md.
AUTO_CENTRE_RATIO = {"baseline": 0.25, "trend": 0.25, "level": 0.05, "slope": 0.05}
#: zero-sum collaborative effects: their children are whole sites, whose totals the data pin
#: down, so a looser ratio applies, but only with enough groups to identify the sd (with
#: fewer, the non-centred form avoids the funnel)
AUTO_CENTRE_RATIO_ZERO_SUM = 0.45
AUTO_CENTRE_MIN_GROUPS = 8
#: non-centred effects on fewer groups than this make the model ask for target_accept 0.9
FEW_GROUPS = 10


def _prior_scale(pr: Prior) -> float:
    return float(pr.params.get("sigma", pr.params.get("beta", 0.0)) or 0.0)


def _unit_information(d: Design, term: str) -> np.ndarray:
    """Fisher information of each unit's data about a unit-specific ``term`` coefficient (a
    normal approximation at the pooled mean: binomial n p (1 - p), Poisson counts, Gaussian
    1 / sd^2), summed over the unit's rows. Zero for units without rows."""
    w = _row_weights(d)
    x = {"baseline": np.ones(d.rows.n), "level": d.rows.D, "slope": d.rows.e,
         "trend": d.tau[d.rows.t]}[term]
    return np.bincount(d.rows.unit, weights=w * x**2, minlength=d.n_units)


def _zero_sum_level(spec: ModelSpec, lv: str, n_groups: int) -> bool:
    """Whether the effects of level ``lv`` are zero-sum (collaboratives, ``spec.zero_sum``)."""
    return spec.zero_sum and lv == "collaborative" and n_groups > 1


def _row_weights(d: Design) -> np.ndarray:
    """Per observed row, the Fisher information about the linear predictor (a normal
    approximation at the pooled mean: binomial n p (1 - p), Poisson counts, Gaussian
    1 / sd^2)."""
    fam = d.family
    if fam in ("binomial", "betabinomial"):
        num, den = d.y["numerator"], d.y["denominator"]
        pbar = (num.sum() + 0.5) / (den.sum() + 1.0)
        w = den * pbar * (1 - pbar)
        if fam == "betabinomial":
            w = w / (1 + den / 100.0)
    elif fam in ("poisson", "negbinomial"):
        w = d.y["count"].astype(float) + 0.5
    else:
        w = np.full(d.rows.n, 1.0 / max(d.y_sd, 1e-9) ** 2)
    return w


def _intervention_block(d: Design, p: dict[str, Any], prior: Any, mods: list[str],
                        mod_k: list[int], *, with_trend: bool, decorrelate: bool
                        ) -> InterventionBlock | None:
    """``level_change``, ``slope_change``, with moderators ``ind_level`` and ``ind_slope``,
    and with ``with_trend`` the secular ``trend_slope`` (into ``p``).

    Their design columns (the post-join step ``D``, the time since joining ``e``, those
    times the moderators, and time itself) are strongly collinear: an indicator's
    coefficient trades off against the average change, the level against the slope, the
    slope change against the secular slope. With ``decorrelate`` (and normal priors) the
    block ``theta`` is sampled as ``theta = mu + B xi``, where ``B`` is the Cholesky factor
    of the block's approximate posterior covariance ``(X' W X + prior precision)^-1``
    (``W``: :func:`_row_weights`; moderators at their values under a uniform monotonic
    simplex). The free ``intervention_xi`` gets the implied prior
    ``MvNormal(0, B^-1 S B^-T)`` (``S``: the prior variances), so this is the same model in
    roughly uncorrelated coordinates, which a diagonal mass matrix handles. The named
    parameters stay in the posterior as deterministics.
    """
    m = len(mods)
    names = (["trend_slope"] if with_trend else []) + ["level_change", "slope_change"]
    names += [f"ind_level_{n}" for n in mods] + [f"ind_slope_{n}" for n in mods]
    priors = [prior(n) for n in names]
    if not (decorrelate and all(pr.dist == "Normal" and pr.on != "variance" for pr in priors)):
        for n, pr in zip(names[:len(names) - 2 * m], priors):
            p[n] = pr.create(n)
        if m:
            p["ind_level"] = _indicator_coefs("ind_level", mods, prior, "indicator_moderator")
            p["ind_slope"] = _indicator_coefs("ind_slope", mods, prior, "indicator_moderator")
        return None
    mu = np.array([float(pr.params.get("mu", 0.0)) for pr in priors])
    sd = np.array([float(pr.params.get("sigma", 1.0)) for pr in priors])
    B = _intervention_basis(d, mod_k, sd, with_trend)
    pm.modelcontext(None).add_coords({"intervention_param": names})
    # the MvNormal(0, B^-1 S B^-T) density of xi, written as the normal density of theta
    # (plus the constant log |det B|): compiles far faster than PyMC's MvNormal
    xi = pm.CustomDist("intervention_xi", mu, sd, B, logp=_block_logp, random=_block_random,
                       signature="(k),(k),(k,k)->(k)", dims="intervention_param")
    theta = mu + _matvec(B, xi)
    j = len(names) - 2 * m
    for i, n in enumerate(names[:j]):
        p[n] = pm.Deterministic(n, theta[i])
    if m:
        p["ind_level"] = pm.Deterministic("ind_level", theta[j:j + m], dims="indicator_moderator")
        p["ind_slope"] = pm.Deterministic("ind_slope", theta[j + m:], dims="indicator_moderator")
    return InterventionBlock(tuple(names), mu, B)


def _matvec(B: Any, x: Any) -> Any:
    # B @ x for the small block as a broadcast product and a sum: a BLAS dot would cost
    # seconds of Numba compilation per model for a product of at most a few dozen terms
    return (pt.as_tensor_variable(B) * x[None, :]).sum(axis=1)


def _block_logp(value: Any, mu: Any, sd: Any, B: Any) -> Any:
    z = _matvec(B, value) / sd
    return (-0.5 * pt.sum(z**2) - pt.sum(pt.log(sd)) - 0.5 * np.log(2 * np.pi) * z.shape[0]
            + pt.sum(pt.log(pt.diagonal(B))))


def _block_random(mu: np.ndarray, sd: np.ndarray, B: np.ndarray,
                  rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng()
    shape = tuple(np.atleast_1d(size)) if size is not None else ()
    dev = rng.normal(0.0, 1.0, shape + mu.shape[-1:]) * sd    # theta - mu ~ N(0, S)
    return np.linalg.solve(B, dev[..., None])[..., 0]


def _intervention_basis(d: Design, mod_k: list[int], sd: np.ndarray, with_trend: bool
                        ) -> np.ndarray:
    """``B = chol((X' W X + diag(1 / sd^2))^-1)`` for :func:`_intervention_block`."""
    rows = d.rows
    keep = np.asarray(d.regular, bool) if d.regular is not None else np.ones(rows.n, bool)
    w = _row_weights(d)[keep]
    D, e = rows.D[keep], rows.e[keep]
    cols = ([d.tau[rows.t[keep]]] if with_trend else []) + [D, e]
    zs = []
    for k in mod_k:
        ind = d.indicators[k]
        z = np.nan_to_num(rows.Z[keep, k], nan=0.0)
        if ind.type == "ordinal":
            z = z / max(ind.n_levels - 1, 1)
        zs.append(z)
    cols += [D * z for z in zs] + [e * z for z in zs]
    X = np.stack(cols, axis=1)
    H = (X * w[:, None]).T @ X + np.diag(1.0 / sd**2)
    return np.linalg.cholesky(np.linalg.inv(H))


def _auto_centered(d: Design, spec: ModelSpec, lv: str, term: str, sd_scale: Any,
                   zero_sum: bool = False) -> bool:
    """Choose the centred form of ``term`` effects at level ``lv`` from the data.

    Non-centred effects mix better when the data say little about each group (the posterior
    is then prior-shaped, a funnel in the sd); centred effects mix better when the data pin
    every group down far more tightly than the prior scale of the sd. A group's information
    is accumulated bottom-up: units contribute their data information; a group at a level
    with random effects below it gets ``sum_children 1 / (1 / info_child + s_child^2)``,
    where ``s_child`` is the prior scale of the child level's sd (a conservative guess of
    the spread between children). See docs/performance.md for the measurements behind the
    thresholds.
    """
    scale = sd_scale(lv, term)
    if scale <= 0 or d.rows.n == 0:
        return False
    info = _unit_information(d, term)
    mask = d.participating if term in ("level", "slope") else np.ones(d.n_units, bool)
    if lv == "unit":
        info = info[mask]
        if not len(info) or info.min() <= 0:
            return False
        return bool(1.0 / np.sqrt(np.quantile(info, 0.1)) < AUTO_CENTRE_RATIO[term] * scale)
    groups = d.change_groups if term in ("level", "slope") else d.base_groups
    levels = spec.levels_for(term, d.levels)
    below = [x for x in levels[levels.index(lv) + 1:]] if lv in levels else []
    # walk up from the units: child information, the spread between children, their groups
    child_info = info[mask]
    child_spread = sd_scale("unit", term) if "unit" in below else 0.0
    child_units = np.flatnonzero(mask)   # one representative unit per child
    for level in [x for x in reversed(below) if x != "unit"] + [lv]:
        of_unit = groups[level].of_unit[child_units]
        contrib = np.where(child_info > 0,
                           1.0 / (1.0 / np.maximum(child_info, 1e-300) + child_spread**2), 0.0)
        n_groups = int(of_unit.max()) + 1 if len(of_unit) else 0
        group_info = np.bincount(of_unit, weights=contrib, minlength=n_groups)
        first = np.unique(of_unit, return_index=True)[1]
        child_units = child_units[first]
        child_info = group_info[np.unique(of_unit)]
        child_spread = sd_scale(level, term)
    if not len(child_info) or child_info.min() <= 0:
        return False
    se = 1.0 / np.sqrt(np.quantile(child_info, 0.1))
    if zero_sum:
        return bool(len(child_info) >= AUTO_CENTRE_MIN_GROUPS
                    and se < AUTO_CENTRE_RATIO_ZERO_SUM * scale)
    return bool(se < AUTO_CENTRE_RATIO[term] * scale)


def _random_effect(name: str, sd_prior: Prior, dim: str, n: int, *, zero_sum: bool = False,
                   centered: bool = False, loc: Any = None) -> Any:
    """Effects ``name ~ Normal(0, sd)`` per group (zero-sum: ``ZeroSumNormal(sd)``).

    Non-centred: ``sd * z`` with standard normal ``z`` (free variable ``<name>_z``).
    Centred zero-sum: the effects themselves, ``ZeroSumNormal(sd)``. Centred otherwise:
    hierarchical centring around ``loc`` (the term's population value plus the enclosing
    levels' effects at each group): the free variable ``<name>_nested ~ Normal(loc, sd)`` is
    the group's total and ``name = <name>_nested - loc``. This is the same model (a shift
    with unit Jacobian, whatever ``loc`` is as a function of other parameters) in the
    coordinates that informative data pin down directly (the data see totals, not their
    split between levels). ``build`` also adds the group means of the indicators'
    main-effect term to the location of the innermost such baseline level
    (:func:`_main_effect_means`).
    """
    sd = sd_prior.create(_sd_name(name))
    if centered:
        if zero_sum:
            return pm.ZeroSumNormal(name, sigma=sd, dims=dim)
        if loc is None:
            return pm.Normal(name, 0.0, sd, dims=dim)
        loc = pt.broadcast_to(loc, (n,))
        total = pm.Normal(f"{name}_nested", loc, sd, dims=dim)
        return pm.Deterministic(name, total - loc, dims=dim)
    if zero_sum:
        z = pm.ZeroSumNormal(f"{name}_z", sigma=1.0, dims=dim)
    else:
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dim)
    return pm.Deterministic(name, sd * z, dims=dim)


def _main_effect_means(p: dict[str, Any], d: Design, main: list[int], of_unit: np.ndarray,
                       n: int) -> Any:
    """Per group (``of_unit`` maps units to ``n`` groups), the mean over the group's
    unit-periods with an observed code of the indicators' main-effect term
    ``sum_j ind_main_j z_k`` (0 for a group without any).

    Added to a hierarchically centred baseline level's location it moves the between-group
    part of the indicators' main effects into the group totals the data pin down, leaving
    ``ind_main`` to the codes' deviations from their group means (in the demo, ``ind_main``
    had correlations of -0.7 with dozens of centred unit baselines). Any function of the
    other parameters gives the same model, so using observed codes only is exact.
    """
    rows = d.rows
    grp = of_unit[rows.unit]
    total: Any = 0.0
    for j, k in enumerate(main):
        ind = d.indicators[k]
        zk = rows.Z[:, k]
        ok = ~np.isnan(zk)
        cnt = np.maximum(np.bincount(grp[ok], minlength=n), 1).astype(float)
        if ind.type == "ordinal":
            freq = np.zeros((n, ind.n_levels))
            np.add.at(freq, (grp[ok], zk[ok].astype(int)), 1.0)
            table = _mo_table(p[f"mo_{ind.name}"], pt)
            m = ((freq / cnt[:, None]) * table[None, :]).sum(axis=1)
        else:
            m = np.bincount(grp[ok], weights=zk[ok], minlength=n) / cnt
        total = total + p["ind_main"][j] * m
    return total


def _parent_sum(p: dict[str, Any], prefix: str, lv: str, groups: dict[str, Any],
                mask: np.ndarray | None, base: Any = None) -> Any:
    """``base`` (the term's population value) plus the already-built effects
    ``<prefix>_<level>`` of the levels enclosing ``lv``, at each group of ``lv`` (``None``
    when there is neither). Levels are nested, so any unit of a group identifies its
    enclosing groups."""
    g = groups[lv]
    units = np.flatnonzero(mask) if mask is not None else np.arange(len(g.of_unit))
    idx, first = np.unique(g.of_unit[units], return_index=True)
    if len(idx) != g.n:
        return None
    rep = units[first]
    total = base
    for other, og in groups.items():
        if other == lv:
            break
        key = f"{prefix}_{other}"
        if key in p:
            term = p[key][og.of_unit[rep]]
            total = term if total is None else total + term
    return total


def _sd_name(name: str) -> str:
    # u_site -> sd_u_site; v_level_site -> sd_level_site; w_trend_unit -> sd_trend_unit
    return "sd_u_" + name[2:] if name.startswith("u_") else "sd_" + name.split("_", 1)[1]


def _indicator_coefs(name: str, ind_names: list[str], prior: Any, dim: str) -> Any:
    priors = [prior(f"{name}_{n}") for n in ind_names]
    if all(pr == priors[0] for pr in priors):
        return priors[0].create(name, dims=dim)
    parts = [pr.create(f"{name}_{n}") for pr, n in zip(priors, ind_names)]
    return pm.Deterministic(name, pt.stack(parts), dims=dim)


def _correlated(lv: str, n: int, sd_level: Prior, sd_slope: Prior, dim: str) -> tuple[Any, Any]:
    if sd_level.dist != "HalfNormal" or sd_slope.dist != "HalfNormal":
        raise ModelSpecError("correlated level/slope effects need HalfNormal scale priors")
    sd_dist = pm.HalfNormal.dist(sigma=np.array([sd_level.params["sigma"], sd_slope.params["sigma"]]),
                                 shape=2)
    chol, corr, sds = pm.LKJCholeskyCov(f"chol_{lv}", n=2, eta=2.0, sd_dist=sd_dist,
                                        compute_corr=True)
    pm.Deterministic(f"sd_level_{lv}", sds[0])
    pm.Deterministic(f"sd_slope_{lv}", sds[1])
    pm.Deterministic(f"corr_level_slope_{lv}", corr[0, 1])
    z = pm.Normal(f"v_change_{lv}_z", 0.0, 1.0, shape=(n, 2))
    eff = pt.dot(z, chol.T)
    return (pm.Deterministic(f"v_level_{lv}", eff[:, 0], dims=dim),
            pm.Deterministic(f"v_slope_{lv}", eff[:, 1], dims=dim))


def _ar1(d: Design, rho_prior: Prior, sd_prior: Prior) -> Any:
    T, N = d.T, d.n_units
    rho = rho_prior.create("ar_rho")
    sd = sd_prior.create("ar_sd")
    z = pm.Normal("ar_z", 0.0, 1.0, shape=(N, T))
    E = np.subtract.outer(np.arange(T), np.arange(T))
    lower = (E >= 0).astype(float)
    # rho**k by repeated products: finite gradients at rho = 0 (unlike pt.power)
    pows = [pt.ones(()), rho]
    for _ in range(2, T):
        pows.append(pows[-1] * rho)
    A = pt.stack(pows[:T])[np.maximum(E, 0)] * lower
    first = pt.concatenate([pt.ones(1) / pt.sqrt(1.0 - rho**2), pt.ones(T - 1)])
    A = A * first[None, :]
    eps = pt.dot(sd * z, A.T)
    return pm.Deterministic("ar_eps", eps)


def _latent_codes(d: Design, p: dict[str, Any]) -> None:
    """Priors (learned from the observed codes) for latent indicator values."""
    info = d.cell_info
    if info is None:
        return
    for k, ind in enumerate(d.indicators):
        cells_k = info[info["k"] == k]
        obs = cells_k[(cells_k["status"] == "observed") & ~cells_k["uncoded_comparison"]]
        if ind.type == "continuous":
            if d.n_latent.get(k):
                mu = pm.Normal(f"latent_{ind.name}_mu", 0.0, 1.0)
                sd = pm.HalfNormal(f"latent_{ind.name}_sd", 1.0)
                if len(obs):
                    pm.Normal(f"codes_{ind.name}", mu, sd, observed=obs["zvalue"].to_numpy())
                p[f"latent_{ind.name}"] = pm.Normal(f"latent_{ind.name}", mu, sd,
                                                    shape=d.n_latent[k])
            continue
        has_missing = (cells_k["status"] == "missing").any()
        if has_missing:
            L = ind.n_levels
            pi = pm.Dirichlet(f"pi_{ind.name}", a=np.ones(L))
            counts = np.bincount(obs["zvalue"].to_numpy(dtype=int), minlength=L)
            if counts.sum():
                pm.Multinomial(f"codes_{ind.name}", n=int(counts.sum()), p=pi, observed=counts)
            p[f"pi_{ind.name}"] = pi


def _family_params(d: Design, prior: Any) -> dict[str, Any]:
    fam = d.family
    if fam == "betabinomial":
        return {"phi": prior("phi").create("phi")}
    if fam == "negbinomial":
        return {"alpha": prior("alpha").create("alpha")}
    if fam == "gaussian" and "se" not in d.y:
        return {"sigma": prior("sigma").create("sigma")}
    return {}


def family_dist(d: Design, eta: Any, idx: np.ndarray, extra: dict[str, Any]) -> Any:
    """An unnamed PyMC distribution of the outcome at observed rows ``idx`` given ``eta``."""
    fam = d.family
    y = d.y
    if fam == "binomial":
        return pm.Binomial.dist(n=y["denominator"][idx], logit_p=eta)
    if fam == "betabinomial":
        pr = pm.math.sigmoid(eta)
        phi = extra["phi"]
        return pm.BetaBinomial.dist(alpha=pr * phi, beta=(1 - pr) * phi, n=y["denominator"][idx])
    if fam == "poisson":
        return pm.Poisson.dist(mu=pt.exp(eta + y["log_exposure"][idx]))
    if fam == "negbinomial":
        return pm.NegativeBinomial.dist(mu=pt.exp(eta + y["log_exposure"][idx]), alpha=extra["alpha"])
    sigma = _gauss_sigma(d, idx, extra)
    return pm.Normal.dist(mu=eta, sigma=sigma)


def _gauss_sigma(d: Design, idx: np.ndarray, extra: dict[str, Any]) -> Any:
    if "se" in d.y:
        return d.y["se"][idx]
    sigma = extra["sigma"]
    if "weight" in d.y:
        w = d.y["weight"]
        return sigma / np.sqrt(w[idx] / w.mean())
    return sigma


def observed_values(d: Design, idx: np.ndarray) -> np.ndarray:
    """The observed outcome at rows ``idx`` (numerator, count or value)."""
    key = {"binomial": "numerator", "betabinomial": "numerator", "poisson": "count",
           "negbinomial": "count", "gaussian": "value"}[d.family]
    return d.y[key][idx]


def _binomial_logp(value: Any, n: Any, log_choose: Any, eta: Any) -> Any:
    # log C(n, y) + y * eta - n * log(1 + exp(eta)) and its gradient in one fused pass
    # (qicstats.models.likelihood)
    return binomial_logit(eta, value, n, log_choose)[0]


def _binomial_random(n: np.ndarray, log_choose: np.ndarray, eta: np.ndarray,
                     rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng()
    return rng.binomial(np.asarray(n).astype(np.int64), 1.0 / (1.0 + np.exp(-eta)),
                        size=size).astype(float)


def _betabinomial_logp(value: Any, n: Any, log_choose: Any, eta: Any, phi: Any) -> Any:
    # log C(n, y) + log B(y + a, n - y + b) - log B(a, b), a = mu phi, b = (1 - mu) phi, and
    # its gradient in one fused pass (qicstats.models.likelihood). PyMC hands the scalar phi
    # over expanded to the value's dimensions (shape (1,)): squeeze it back
    return betabinomial_logit(eta, pt.squeeze(phi), value, n, log_choose)[0]


def _betabinomial_random(n: np.ndarray, log_choose: np.ndarray, eta: np.ndarray, phi: Any,
                         rng: np.random.Generator | None = None, size: Any = None
                         ) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng()
    mu = 1.0 / (1.0 + np.exp(-np.asarray(eta)))
    p = rng.beta(mu * phi, (1.0 - mu) * phi, size=size)
    return rng.binomial(np.asarray(n).astype(np.int64), p, size=size).astype(float)


def _poisson_random(log_exposure: np.ndarray, log_fact: np.ndarray, eta: np.ndarray,
                    rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng()
    return rng.poisson(np.exp(eta + log_exposure), size=size).astype(float)


def _poisson_logp(value: Any, log_exposure: Any, log_fact: Any, eta: Any) -> Any:
    lin = eta + log_exposure
    return value * lin - pt.exp(lin) - log_fact


def _binomial_constants(d: Design, idx: np.ndarray, obs: Any
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trials, successes and ``log C(n, y)`` of the rows ``idx`` (for the fused likelihood
    Ops, whose Numba kernels are registered here)."""
    n = d.y["denominator"][idx].astype(float)
    y = np.asarray(obs, dtype=float)
    register_backend("numba")
    return n, y, gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)


def _observe(d: Design, eta: Any, idx: np.ndarray, extra: dict[str, Any]) -> None:
    """The likelihood of the regular rows as a named observed variable ``y`` (dims ``obs``).

    Binomial, beta-binomial and Poisson use lean log densities (the constants are
    precomputed; the data are validated, so PyMC's parameter checks are not needed in the
    sampler's inner loop); they equal PyMC's ``Binomial(n, logit_p=eta)``,
    ``BetaBinomial(n, mu phi, (1 - mu) phi)`` with ``mu = sigmoid(eta)``, and
    ``Poisson(exp(eta + log_exposure))``.
    """
    if len(idx) == 0:
        return
    obs = observed_values(d, idx)
    if d.family == "binomial":
        n, y, log_choose = _binomial_constants(d, idx, obs)
        pm.CustomDist("y", n, log_choose, eta, logp=_binomial_logp,
                      random=_binomial_random, observed=y, dims="obs")
    elif d.family == "betabinomial" and getattr(extra["phi"], "ndim", 0) == 0:
        n, y, log_choose = _binomial_constants(d, idx, obs)
        pm.CustomDist("y", n, log_choose, eta, extra["phi"], logp=_betabinomial_logp,
                      random=_betabinomial_random, observed=y, dims="obs")
    elif d.family == "betabinomial":
        pr = pm.math.sigmoid(eta)
        pm.BetaBinomial("y", alpha=pr * extra["phi"], beta=(1 - pr) * extra["phi"],
                        n=d.y["denominator"][idx], observed=obs, dims="obs")
    elif d.family == "poisson":
        y = np.asarray(obs, dtype=float)
        pm.CustomDist("y", d.y["log_exposure"][idx].astype(float), gammaln(y + 1.0), eta,
                      logp=_poisson_logp,
                      random=_poisson_random, observed=y, dims="obs")
    elif d.family == "negbinomial":
        pm.NegativeBinomial("y", mu=pt.exp(eta + d.y["log_exposure"][idx]), alpha=extra["alpha"],
                            observed=obs, dims="obs")
    else:
        pm.Normal("y", mu=eta, sigma=_gauss_sigma(d, idx, extra), observed=obs, dims="obs")


def _mixture_likelihood(d: Design, p: dict[str, Any], extra: dict[str, Any]) -> None:
    """Marginalise latent discrete codes unit by unit (exact enumeration)."""
    mix = d.mixture
    rows_idx = np.flatnonzero(~d.regular)
    rows = d.rows.subset(rows_idx)
    ex, src, uc = d.expand(rows)
    eta = linear_predictor(p, d, ex, pt)
    obs_idx = rows_idx[src]
    dist = family_dist(d, eta, obs_idx, extra)
    ll = pm.logp(dist, observed_values(d, obs_idx))
    n_uc = len(mix.units) * mix.C
    ll_uc = pt.zeros(n_uc)
    ll_uc = pt.inc_subtensor(ll_uc[uc], ll)
    # log prior weight of each configuration
    lp = pt.zeros(n_uc)
    is_k = mix.prior_ind >= 0
    const = np.where(is_k, 0.0, mix.prior_const)
    lp = pt.inc_subtensor(lp[mix.prior_uc], pt.as_tensor_variable(const))
    if is_k.any():
        pieces = []
        for k in np.unique(mix.prior_ind[is_k]):
            ind = d.indicators[int(k)]
            m = mix.prior_ind == k
            logpi = pt.log(p[f"pi_{ind.name}"])
            pieces.append((np.flatnonzero(m), logpi[mix.prior_level[m]]))
        for pos, vals in pieces:
            lp = pt.inc_subtensor(lp[mix.prior_uc[pos]], vals)
    joint = pt.where(mix.pad_mask, -np.inf, lp + ll_uc).reshape((len(mix.units), mix.C))
    unit_ll = pt.logsumexp(joint, axis=1)
    pm.Potential("mixture_loglik", unit_ll.sum())
    pm.Deterministic("mix_unit_loglik", unit_ll)
    pm.Deterministic("mix_weights", pt.exp(joint - unit_ll[:, None]))
