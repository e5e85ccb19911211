"""Random effects of the model graph: group effects in the parameterisation chosen from the
data (:mod:`qicstats.models.parameterisation`), correlated level/slope changes, AR(1)
residuals and the priors of latent indicator codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.linalg import null_space

from qicstats.errors import ModelSpecError
from qicstats.models.design import Design
from qicstats.models.linpred import mo_table
from qicstats.models.priors import Prior


def random_effect(name: str, sd_prior: Prior, dim: str, n: int, *, zero_sum: bool = False,
                  weight: np.ndarray | float = 0.0, loc: Any = None,
                  fixed_sd: float | None = None) -> Any:
    """Effects ``name ~ Normal(0, sd)`` per group (zero-sum: ``ZeroSumNormal(sd)``), in the
    parameterisation given by the centring ``weight`` (per group, in [0, 1]).

    - weight 0 (non-centred): ``name = sd * z``, free ``<name>_z ~ Normal(0, 1)``
      (``ZeroSumNormal(1)`` for zero-sum effects);
    - weight 1 (centred): zero-sum effects are the free ``name ~ ZeroSumNormal(sd)``;
      otherwise hierarchical centring around ``loc`` (the term's population value plus the
      enclosing levels' effects at each group): the free ``<name>_nested ~ Normal(loc, sd)``
      is the group's total and ``name = <name>_nested - loc``;
    - weights in between (partially centred): free ``<name>_pc ~ Normal(w loc, sd^w)`` and
      ``name = sd^(1 - w) (<name>_pc - w loc)`` (zero-sum effects: one weight,
      ``<name>_pc ~ ZeroSumNormal(sd^w)``, ``name = sd^(1 - w) <name>_pc``).

    Each is the same model (shifts and scalings whose Jacobian does not depend on the free
    variable), whatever ``loc`` is as a function of other parameters. ``build`` also adds
    the group means of the indicators' main-effect term to the location of the innermost
    centred baseline level (:func:`main_effect_means`).

    ``fixed_sd`` (a level with too few groups to learn its spread,
    :attr:`~qicstats.models.spec.ModelSpec.spread_min_groups`) replaces the sd parameter by
    that constant: the same forms, without a funnel.
    """
    sd = (np.float64(fixed_sd) if fixed_sd is not None
          else sd_prior.create(sd_name(name)))
    w = np.broadcast_to(np.asarray(weight, dtype=float), (n,)).astype(float)
    if zero_sum:
        wz = float(w.mean())
        if wz >= 1.0:
            return pm.ZeroSumNormal(name, sigma=sd, dims=dim)
        if wz <= 0.0:
            z = pm.ZeroSumNormal(f"{name}_z", sigma=1.0, dims=dim)
            return pm.Deterministic(name, sd * z, dims=dim)
        pc = pm.ZeroSumNormal(f"{name}_pc", sigma=sd**wz, dims=dim)
        return pm.Deterministic(name, sd ** (1.0 - wz) * pc, dims=dim)
    if (w >= 1.0).all():
        if loc is None:
            return pm.Normal(name, 0.0, sd, dims=dim)
        loc = pt.broadcast_to(loc, (n,))
        total = pm.Normal(f"{name}_nested", loc, sd, dims=dim)
        return pm.Deterministic(name, total - loc, dims=dim)
    if (w <= 0.0).all():
        z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=dim)
        return pm.Deterministic(name, sd * z, dims=dim)
    loc = pt.zeros(n) if loc is None else pt.broadcast_to(loc, (n,))
    pc = pm.Normal(f"{name}_pc", w * loc, sd**w, dims=dim)
    return pm.Deterministic(name, sd ** (1.0 - w) * (pc - w * loc), dims=dim)


def nested_totals_marginal(name: str, loc: Any, sd: Any, parent_sd: Any,
                           parent_of: np.ndarray, n_parent: int, dim: str) -> Any:
    """Centred group totals (``<name>_nested``) with the enclosing level's effects
    integrated out analytically.

    In the centred form the totals ``t_g ~ Normal(loc_g + a_{s(g)}, sd)`` are free and the
    enclosing (parent) level's effects ``a_s ~ Normal(0, parent_sd)`` enter the model only
    through this prior. Integrating them out leaves, per parent group ``s`` with ``n_s``
    members, a multivariate normal with covariance ``sd^2 I + parent_sd^2 J`` (compound
    symmetry), whose log density has the closed form (``r = t - loc``)::

        -1/2 [ (n_s - 1) log sd^2 + log(sd^2 + n_s parent_sd^2)
               + sum r^2 / sd^2 - parent_sd^2 (sum r)^2 / (sd^2 (sd^2 + n_s parent_sd^2)) ]

    The same model without the ``(a_s, parent_sd)`` funnel, which no centring weight removes
    when a parent's few members split the variance with it (three or four units per site).
    ``name`` (``t - loc``) then carries the parent's effect too; the sum of the levels'
    effects, which is what the predictor uses, is unchanged.

    Parameters
    ----------
    name : str
        The effects' name (``u_unit``); the free totals are ``<name>_nested``.
    loc : tensor
        Per group, the location without the parent level's effect.
    sd, parent_sd : tensor
        The spreads of this level and of the parent level (parameters or constants).
    parent_of : ndarray of int
        The parent group of each group.
    n_parent : int
        The number of parent groups.
    dim : str
        The groups' dimension.
    """
    parent_of = np.asarray(parent_of, dtype=np.int64)
    n = len(parent_of)
    size = np.bincount(parent_of, minlength=n_parent).astype(float)
    loc = pt.broadcast_to(loc, (n,))

    def _logp(value: Any, mu: Any, s: Any, sp: Any) -> Any:
        r = value - mu
        tot = pt.inc_subtensor(pt.zeros(n_parent)[parent_of], r)
        sq = pt.inc_subtensor(pt.zeros(n_parent)[parent_of], r**2)
        v, vp = s**2, sp**2
        big = v + size * vp
        quad = sq / v - vp * tot**2 / (v * big)
        return (-0.5 * ((size - 1.0) * pt.log(v) + pt.log(big) + quad
                        + size * np.log(2.0 * np.pi))).sum()

    def _random(mu: Any, s: Any, sp: Any, size: Any) -> Any:
        a = pm.Normal.dist(0.0, sp, shape=(n_parent,))
        return mu + a[parent_of] + s * pm.Normal.dist(0.0, 1.0, shape=(n,))

    total = pm.CustomDist(f"{name}_nested", loc, sd, parent_sd, dist=_random, logp=_logp,
                          dims=dim)
    return pm.Deterministic(name, total - loc, dims=dim)


def zero_sum_basis(T: int) -> np.ndarray:
    """An orthonormal ``(T, T - 1)`` basis of the vectors summing to zero."""
    M = np.eye(T) - 1.0 / T
    q, _ = np.linalg.qr(M[:, : T - 1])
    return q


def detrended_basis(tau: np.ndarray) -> np.ndarray:
    """An orthonormal ``(T, T - 2)`` basis of the period deviations from a line: the vectors
    orthogonal to the constant and to ``tau`` (``(T, 0)`` for fewer than three periods).
    """
    T = len(tau)
    if T < 3:
        return np.zeros((T, 0))
    A = np.stack([np.ones(T), np.asarray(tau, float) - np.mean(tau)], axis=1)
    return null_space(A.T)[:, : T - 2]


def curve_deviation_map(observed: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The free coordinates of the groups' exposure-time curve deviations.

    Parameters
    ----------
    observed : ndarray of bool, shape (m, n)
        Whether group ``g`` has any row at curve element ``h`` (exposure time).

    Returns
    -------
    basis : ndarray, shape (m - 1, n, n - 1)
        Per exposure step ``h = 1 .. m - 1``, an orthonormal zero-sum basis over the groups
        observed at ``h``, embedded in those groups' rows (zeros elsewhere).
    index : ndarray of int, shape (m - 1, n - 1)
        Which free coordinate each basis column takes (``K``: none, a zero).
    K : int
        The number of free coordinates, ``sum_h (n_h - 1)`` over the steps observed in two
        or more groups.
    """
    m, n = observed.shape
    basis = np.zeros((max(m - 1, 0), n, max(n - 1, 0)))
    index = np.zeros((max(m - 1, 0), max(n - 1, 0)), dtype=int)
    k = 0
    slots = []
    for h in range(1, m):
        obs = np.flatnonzero(observed[h])
        q = len(obs)
        if q >= 2:
            basis[h - 1][np.ix_(obs, np.arange(q - 1))] = zero_sum_basis(q)
            slots.append((h - 1, q - 1, k))
            k += q - 1
    index[:] = k
    for row, q1, start in slots:
        index[row, :q1] = np.arange(start, start + q1)
    return basis, index, k


def curve_deviations(name: str, sd: Any, observed: np.ndarray, dim: str) -> Any:
    """Each group's own exposure-time curve as a deviation from the common one (``name``:
    ``v_curve_<level>``, dims ``(dim, "exposure_time")``).

    A random walk from 0 over the exposure steps whose step at ``h`` is ``sd`` times a
    standard normal vector **zero-sum over the groups observed at h** (free
    ``<name>_z``, :func:`curve_deviation_map`), and whose value at each ``h`` is then
    centred over those groups: the common curve is the average of the curves of the
    groups that have rows at that exposure time, and no free coordinate is a group's step at
    an exposure time it has no row at (those only moved the common curve through the
    zero-sum constraint: a ridge under the likelihood). When every group is observed at
    every exposure time this is the zero-sum random walk. At an exposure time a group has
    no row at, its walk stays at its last value (less the observed groups' mean): no data
    speak to it.
    """
    m, n = observed.shape
    basis, index, K = curve_deviation_map(observed)
    if K == 0:
        return pm.Deterministic(name, pt.zeros((n, m)), dims=(dim, "exposure_time"))
    pm.modelcontext(None).add_coords({f"{name}_free": list(range(K))})
    z = pm.Normal(f"{name}_z", 0.0, 1.0, dims=f"{name}_free")
    zpad = pt.concatenate([z, pt.zeros(1)])[index]                     # (m - 1, n - 1)
    steps = sd * (pt.as_tensor_variable(basis) * zpad[:, None, :]).sum(axis=2)  # (m - 1, n)
    walk = pt.concatenate([pt.zeros((1, n)), pt.cumsum(steps, axis=0)], axis=0)
    cnt = observed.sum(axis=1, keepdims=True)
    W = np.where(cnt > 0, observed / np.maximum(cnt, 1), 0.0)
    walk = walk - (walk * W).sum(axis=1, keepdims=True)
    return pm.Deterministic(name, walk.T, dims=(dim, "exposure_time"))


def main_effect_means(p: dict[str, Any], d: Design, main: list[int], of_unit: np.ndarray,
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
            table = mo_table(p[f"mo_{ind.name}"], pt)
            m = ((freq / cnt[:, None]) * table[None, :]).sum(axis=1)
        else:
            m = np.bincount(grp[ok], weights=zk[ok], minlength=n) / cnt
        total = total + p["ind_main"][j] * m
    return total


def parent_sum(p: dict[str, Any], prefix: str, lv: str, groups: dict[str, Any],
                mask: np.ndarray | None, base: Any = None) -> Any:
    """``base`` (the term's population value) plus the already-built effects
    ``<prefix>_<level>`` of the levels enclosing ``lv``, at each group of ``lv`` (``None``
    when there is neither). Levels are nested, so any unit of a group identifies its
    enclosing groups.
    """
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


def sd_name(name: str) -> str:
    """The name of the spread (sd) parameter of the random effects named ``name``."""
    # u_site -> sd_u_site; v_level_site -> sd_level_site; w_trend_unit -> sd_trend_unit
    return "sd_u_" + name[2:] if name.startswith("u_") else "sd_" + name.split("_", 1)[1]


def indicator_coefs(name: str, ind_names: list[str], prior: Any, dim: str) -> Any:
    """Coefficients ``name`` over ``dim``, one per indicator of ``ind_names``.

    ``prior`` maps a parameter name to its :class:`~qicstats.models.priors.Prior`
    (``{name}_{indicator}``). When every indicator has the same prior the coefficients are one
    vector variable; otherwise each is its own variable and ``name`` their stacked
    deterministic.
    """
    priors = [prior(f"{name}_{n}") for n in ind_names]
    if all(pr == priors[0] for pr in priors):
        return priors[0].create(name, dims=dim)
    parts = [pr.create(f"{name}_{n}") for pr, n in zip(priors, ind_names)]
    return pm.Deterministic(name, pt.stack(parts), dims=dim)


def correlated_changes(lv: str, n: int, sd_level: Prior, sd_slope: Prior,
                       dim: str) -> tuple[Any, Any]:
    """Correlated level- and slope-change effects of the ``n`` groups of level ``lv``.

    Non-centred, with an LKJ(2) Cholesky prior on their correlation and the HalfNormal
    ``sd_level`` and ``sd_slope`` on their sds (recorded as ``sd_level_{lv}``,
    ``sd_slope_{lv}`` and ``corr_level_slope_{lv}``). Returns ``(v_level_{lv},
    v_slope_{lv})``; raises :class:`~qicstats.errors.ModelSpecError` if either scale prior is
    not HalfNormal.
    """
    if sd_level.dist != "HalfNormal" or sd_slope.dist != "HalfNormal":
        raise ModelSpecError("correlated level/slope effects need HalfNormal scale priors")
    sd_dist = pm.HalfNormal.dist(
        sigma=np.array([sd_level.params["sigma"], sd_slope.params["sigma"]]), shape=2)
    chol, corr, sds = pm.LKJCholeskyCov(f"chol_{lv}", n=2, eta=2.0, sd_dist=sd_dist,
                                        compute_corr=True)
    pm.Deterministic(f"sd_level_{lv}", sds[0])
    pm.Deterministic(f"sd_slope_{lv}", sds[1])
    pm.Deterministic(f"corr_level_slope_{lv}", corr[0, 1])
    z = pm.Normal(f"v_change_{lv}_z", 0.0, 1.0, shape=(n, 2))
    eff = pt.dot(z, chol.T)
    return (pm.Deterministic(f"v_level_{lv}", eff[:, 0], dims=dim),
            pm.Deterministic(f"v_slope_{lv}", eff[:, 1], dims=dim))


def ar1(d: Design, rho_prior: Prior, sd_prior: Prior) -> Any:
    """Stationary AR(1) residuals per unit and period, ``ar_eps`` (units x periods).

    ``ar_rho`` (the autocorrelation) and ``ar_sd`` (the innovation sd) take the given priors;
    the first period is drawn from the stationary distribution (sd ``ar_sd / sqrt(1 -
    ar_rho^2)``), and the residuals are built non-centred from standard normals ``ar_z``.
    """
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


def latent_codes(d: Design, p: dict[str, Any]) -> None:
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


__all__ = [
    "ar1",
    "correlated_changes",
    "curve_deviation_map",
    "curve_deviations",
    "indicator_coefs",
    "latent_codes",
    "main_effect_means",
    "parent_sum",
    "random_effect",
    "sd_name",
    "detrended_basis",
    "zero_sum_basis",
]
