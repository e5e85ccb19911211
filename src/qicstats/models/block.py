"""The intervention block, sampled in design-decorrelated coordinates.

The block ``theta`` holds, in this order, the secular ``trend_slope`` (a linear trend without
unit-specific trends), the change parameters of the effect's shape (``level_change`` for a
step; ``level_change`` and ``slope_change`` for a step plus slope; none for the exposure-time
curve, whose effects are hierarchical), the indicator moderators of the level
(``ind_level_<indicator>``) and, with a slope, of the slope (``ind_slope_<indicator>``).
Their design columns are strongly collinear (an indicator's coefficient trades off against the
average change, the level change against the slope change, the slope change against the
secular slope). With normal priors the block is sampled as ``theta = mu + B xi`` where ``B``
is the Cholesky factor of the block's approximate posterior covariance
``(X' W X + diag(1 / sd^2))^-1`` (``W``: :func:`qicstats.models.parameterisation.row_weights`;
moderators at their values under a uniform monotonic simplex; with the curve, moderators
centred at :func:`moderator_centres`, as the curve is). The free ``intervention_xi`` gets the
implied prior ``MvNormal(0, B^-1 S B^-T)``: the same model (a linear map with a constant
Jacobian) in roughly uncorrelated coordinates, which a diagonal mass matrix handles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from qicstats.models.design import Design
from qicstats.models.effects import detrended_basis, indicator_coefs, zero_sum_basis


@dataclass(frozen=True)
class InterventionBlock:
    """The decorrelated parameterisation of the intervention block:
    ``theta = mu + B @ intervention_xi``.

    ``theta`` is laid out as the fixed-prior parameters (:attr:`names`), then, when the period
    effects are in the block, their ``T - 2`` coordinates in the orthonormal basis :attr:`Q`
    of the deviations from a line (``period_effect = Q @ theta_P``, orthogonal to the
    constant and to ``trend_slope``'s time; the secular trend is
    ``trend_slope * tau + period_effect``), then, when the
    exposure-time curve is in the block, its :attr:`n_curve` values.

    Attributes
    ----------
    names : tuple of str
        The prior names of the fixed-prior elements, in order (``trend_slope``,
        ``level_change``, ``slope_change``, ``ind_level_<indicator>``...,
        ``ind_slope_<indicator>``...; those the model has).
    mu : ndarray
        The prior means of all of ``theta`` (0 for period coordinates; the curve's start
        value for the curve).
    B : ndarray
        Lower-triangular, the Cholesky factor of the block's approximate posterior
        covariance.
    n_period : int
        Period coordinates in the block (0: the period effects are not in it).
    n_curve : int
        Curve values in the block (0: the curve is not in it).
    Q : ndarray or None
        ``(T, T - 2)`` orthonormal basis of the period deviations from a line
        (:func:`~qicstats.models.effects.detrended_basis`).
    """

    names: tuple[str, ...]
    mu: np.ndarray
    B: np.ndarray
    n_period: int = 0
    n_curve: int = 0
    Q: np.ndarray | None = None


#: the change parameters of each effect shape that enter the block
CHANGE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "step": ("level_change",), "slope": ("level_change", "slope_change"), "curve": ()}


@dataclass(frozen=True)
class HierarchicalParts:
    """Hierarchical terms that join the block when the data pin them down (their priors
    depend on a learned sd, so the block's density takes the sds as inputs).

    Attributes
    ----------
    period_sd : TensorVariable or None
        The sd of the period deviations from the line (``None``: not in the block).
    curve_sd : TensorVariable or None
        The random-walk step sd of the curve (``None`` with a single curve value).
    curve : tuple of (float, float) or None
        Mean and sd of the curve's start value (``None``: the curve is not in the block).
    n_curve : int
    tau_period, tau_curve : float
        Pilot spreads used for the block's basis.
    tau_unit : float or None
        Pilot spread of unit baselines: the basis is marginal over them (``None``: no unit
        baseline effects).
    """

    period_sd: Any = None
    curve_sd: Any = None
    curve: tuple[float, float] | None = None
    n_curve: int = 0
    tau_period: float = 0.3
    tau_curve: float = 0.1
    tau_unit: float | None = None


def moderator_values(d: Design, k: int, rows: np.ndarray) -> np.ndarray:
    """Indicator ``k``'s value at ``rows`` for the block's design (latent codes at 0; ordinal
    levels scaled to [0, 1], i.e. a uniform monotonic simplex).
    """
    ind = d.indicators[k]
    z = np.nan_to_num(d.rows.Z[rows, k], nan=0.0)
    if ind.type == "ordinal":
        z = z / max(ind.n_levels - 1, 1)
    return z


def moderator_centres(d: Design, mod_k: list[int]) -> np.ndarray:
    """Per moderator, its mean value over the observed post-join rows (the curve describes
    the effect at these codes, so that the moderators do not trade off against every
    exposure-time effect).
    """
    post = np.flatnonzero(d.rows.D > 0)
    if not len(post):
        return np.zeros(len(mod_k))
    return np.array([float(moderator_values(d, k, post).mean()) for k in mod_k])


def block_names(d: Design, mods: list[str], with_trend: bool) -> list[str]:
    """The fixed-prior parameters of the block, in order."""
    names = (["trend_slope"] if with_trend else []) + list(CHANGE_PARAMETERS[d.effect])
    names += [f"ind_level_{n}" for n in mods]
    if d.effect == "slope":
        names += [f"ind_slope_{n}" for n in mods]
    return names


def intervention_block(d: Design, p: dict[str, Any], prior: Callable[[str], Any],
                       mods: list[str], mod_k: list[int], *, with_trend: bool,
                       decorrelate: bool, weights: np.ndarray,
                       parts: HierarchicalParts | None = None) -> InterventionBlock | None:
    """Create the block's parameters (into ``p``) and return the decorrelation, if it applies.

    Parameters
    ----------
    d : Design
    p : dict
        Parameters built so far; ``trend_slope``, the change parameters, ``ind_level``,
        ``ind_slope`` and, with ``parts``, ``period_effect`` and the curve
        (``effect_curve``, or ``effect_curve_mean`` with moderators) are added.
    prior : callable
        Prior by name (records the prior used).
    mods, mod_k : list
        Names and indicator indices of the moderators.
    with_trend : bool
        Include the secular ``trend_slope``.
    decorrelate : bool
        Use the decorrelated coordinates (when every fixed prior of the block is normal).
    weights : ndarray
        Fisher weights of the observed rows.
    parts : HierarchicalParts, optional
        Period effects and curve to include (only with ``decorrelate``).
    """
    m = len(mods)
    slope = d.effect == "slope"
    names = block_names(d, mods, with_trend)
    parts = parts if (parts is not None and decorrelate) else HierarchicalParts()
    n_p = max(d.T - 2, 0) if parts.period_sd is not None else 0
    n_c = parts.n_curve if parts.curve is not None else 0
    if not names and not (n_p or n_c):
        return None
    n_mod = m * (2 if slope else 1)
    priors = [prior(n) for n in names]
    if not (decorrelate and all(pr.dist == "Normal" and pr.on == "value" for pr in priors)):
        for n, pr in zip(names[:len(names) - n_mod], priors):
            p[n] = pr.create(n)
        if m:
            p["ind_level"] = indicator_coefs("ind_level", mods, prior, "indicator_moderator")
            if slope:
                p["ind_slope"] = indicator_coefs("ind_slope", mods, prior, "indicator_moderator")
        return None
    k_f = len(names)
    mu_f = np.array([float(pr.params.get("mu", 0.0)) for pr in priors])
    sd_f = np.array([float(pr.params.get("sigma", 1.0)) for pr in priors])
    # n_c > 0 only with a curve
    mu0, s0 = cast(tuple[float, float], parts.curve) if n_c else (0.0, 1.0)
    mu = np.concatenate([mu_f, np.zeros(n_p), np.full(n_c, mu0)])
    Q = detrended_basis(d.tau) if n_p else None
    B = intervention_basis(d, mod_k, sd_f, with_trend, weights, parts=parts, Q=Q)
    model = pm.modelcontext(None)
    model.add_coords({"intervention_param": names + [f"period[{lab}]" for lab in
                                                     d.period_labels[:n_p]]
                      + [f"effect_curve[{h}]" for h in range(n_c)]})
    period_sd = parts.period_sd if n_p else pt.ones(())
    curve_sd = parts.curve_sd if (n_c > 1 and parts.curve_sd is not None) else pt.ones(())
    sizes = (k_f, n_p, n_c, float(mu0), float(s0))
    # the density of xi, written as the prior density of theta (plus the constant log |det B|):
    # compiles far faster than PyMC's MvNormal, and takes the hierarchical sds as inputs
    xi = pm.CustomDist("intervention_xi", pt.as_tensor_variable(mu), pt.as_tensor_variable(sd_f),
                       pt.as_tensor_variable(B), period_sd, curve_sd,
                       logp=functools.partial(_block_logp, sizes=sizes),
                       random=functools.partial(_block_random, sizes=sizes),
                       signature="(k),(f),(k,k),(),()->(k)", dims="intervention_param")
    theta = mu + _matvec(B, xi)
    j = k_f - n_mod
    for i, n in enumerate(names[:j]):
        p[n] = pm.Deterministic(n, theta[i])
    if m:
        p["ind_level"] = pm.Deterministic("ind_level", theta[j:j + m], dims="indicator_moderator")
        if slope:
            p["ind_slope"] = pm.Deterministic("ind_slope", theta[j + m:k_f],
                                              dims="indicator_moderator")
    if n_p:
        p["period_effect"] = pm.Deterministic(
            "period_effect", _matvec(Q, theta[k_f:k_f + n_p]), dims="period")
    if n_c:
        name = "effect_curve_mean" if m else "effect_curve"
        p[name] = pm.Deterministic(name, theta[k_f + n_p:], dims="exposure_time")
    return InterventionBlock(tuple(names), mu, B, n_p, n_c, Q)


def block_design(d: Design, mod_k: list[int], with_trend: bool, n_period: int, n_curve: int,
                 Q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The block's design columns on the regular observed rows, and those rows' indices."""
    rows = d.rows
    keep = np.asarray(d.regular, bool) if d.regular is not None else np.ones(rows.n, bool)
    idx = np.flatnonzero(keep)
    D, e = rows.D[keep], rows.e[keep]
    cols = [d.tau[rows.t[keep]]] if with_trend else []
    cols += {"step": [D], "slope": [D, e], "curve": []}[d.effect]
    zs = [moderator_values(d, k, idx) for k in mod_k]
    if d.effect == "curve":
        zs = [z - c for z, c in zip(zs, moderator_centres(d, mod_k))]
    cols += [D * z for z in zs]
    if d.effect == "slope":
        cols += [e * z for z in zs]
    X = np.stack(cols, axis=1) if cols else np.zeros((len(idx), 0))
    if n_period:
        assert Q is not None  # the caller makes the basis whenever there are period effects
        X = np.hstack([X, Q[rows.t[keep]]])
    if n_curve:
        C = np.zeros((len(idx), n_curve))
        slot = d.curve_slot(e)
        C[np.arange(len(idx)), np.clip(slot, 0, n_curve - 1)] = D
        X = np.hstack([X, C])
    return X, idx


def intervention_basis(d: Design, mod_k: list[int], sd: np.ndarray, with_trend: bool,
                       weights: np.ndarray, *, parts: HierarchicalParts | None = None,
                       Q: np.ndarray | None = None) -> np.ndarray:
    """``B = chol(H^-1)`` with ``H = X' W X + prior precision``, marginal over the unit
    baselines (a Schur complement: the block is identified by changes within units) when the
    model has them, for :func:`intervention_block`. The prior precision of the period
    effects and the curve uses the pilot spreads.
    """
    parts = parts or HierarchicalParts()
    n_p = max(d.T - 2, 0) if parts.period_sd is not None else 0
    n_c = parts.n_curve if parts.curve is not None else 0
    X, idx = block_design(d, mod_k, with_trend, n_p, n_c, Q)
    w = weights[idx]
    prec = [np.diag(1.0 / sd**2)] if len(sd) else []
    if n_p:
        prec.append(np.eye(n_p) / max(parts.tau_period, 1e-6) ** 2)
    if n_c:
        assert parts.curve is not None  # n_c > 0 only with a curve
        _, s0 = parts.curve
        Dm = np.diff(np.eye(n_c), axis=0)
        P = Dm.T @ Dm / max(parts.tau_curve, 1e-6) ** 2
        P[0, 0] += 1.0 / s0**2
        prec.append(P)
    k = X.shape[1]
    Pr = np.zeros((k, k))
    i = 0
    for blk in prec:
        n = blk.shape[0]
        Pr[i:i + n, i:i + n] = blk
        i += n
    H = (X * w[:, None]).T @ X + Pr
    if parts.tau_unit is not None and d.n_units > 1:
        u = d.rows.unit[idx]
        A = np.zeros((d.n_units, k))
        np.add.at(A, u, w[:, None] * X)
        c = np.bincount(u, weights=w, minlength=d.n_units) + 1.0 / max(parts.tau_unit, 1e-6) ** 2
        H = H - (A / c[:, None]).T @ A
    H = 0.5 * (H + H.T)
    return np.linalg.cholesky(np.linalg.inv(H))


def _matvec(B: Any, x: Any) -> Any:
    # B @ x for the small block as a broadcast product and a sum: a BLAS dot would cost
    # seconds of Numba compilation per model for a product of at most a few dozen terms
    return (pt.as_tensor_variable(B) * x[None, :]).sum(axis=1)


def _block_logp(value: Any, mu: Any, sd: Any, B: Any, period_sd: Any, curve_sd: Any, *,
                sizes: tuple[int, int, int, float, float]) -> Any:
    k_f, n_p, n_c, mu0, s0 = sizes
    theta = mu + _matvec(B, value)
    lp = pt.sum(pt.log(pt.diagonal(B))) - 0.5 * np.log(2 * np.pi) * (k_f + n_p + n_c)
    if k_f:
        z = (theta[:k_f] - mu[:k_f]) / sd
        lp = lp - 0.5 * pt.sum(z**2) - pt.sum(pt.log(sd))
    if n_p:
        zp = theta[k_f:k_f + n_p] / period_sd
        lp = lp - 0.5 * pt.sum(zp**2) - n_p * pt.log(period_sd)
    if n_c:
        c = theta[k_f + n_p:]
        lp = lp - 0.5 * ((c[0] - mu0) / s0) ** 2 - np.log(s0)
        if n_c > 1:
            steps = (c[1:] - c[:-1]) / curve_sd
            lp = lp - 0.5 * pt.sum(steps**2) - (n_c - 1) * pt.log(curve_sd)
    return lp


def _block_random(mu: np.ndarray, sd: np.ndarray, B: np.ndarray, period_sd: Any, curve_sd: Any,
                  rng: np.random.Generator | None = None, size: Any = None, *,
                  sizes: tuple[int, int, int, float, float]) -> np.ndarray:
    k_f, n_p, n_c, mu0, s0 = sizes
    rng = rng if rng is not None else np.random.default_rng()
    shape = tuple(np.atleast_1d(size)) if size is not None else ()
    dev = rng.normal(0.0, 1.0, shape + (k_f + n_p + n_c,))
    dev[..., :k_f] *= sd
    dev[..., k_f:k_f + n_p] *= np.asarray(period_sd)[..., None] if n_p else 1.0
    if n_c:
        steps = dev[..., k_f + n_p:].copy()
        steps[..., 0] *= s0
        steps[..., 1:] *= np.asarray(curve_sd)[..., None] if n_c > 1 else 1.0
        dev[..., k_f + n_p:] = np.cumsum(steps, axis=-1)   # theta - mu: the walk from mu0
    return np.linalg.solve(B, dev[..., None])[..., 0]


__all__ = [
    "CHANGE_PARAMETERS",
    "HierarchicalParts",
    "InterventionBlock",
    "block_design",
    "block_names",
    "intervention_basis",
    "intervention_block",
    "moderator_centres",
    "moderator_values",
    "zero_sum_basis",
]
