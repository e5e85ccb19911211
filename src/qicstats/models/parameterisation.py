"""How the sampler sees the model: centring chosen per group and term from the data.

The same hierarchical model can be written in coordinates NUTS explores easily or badly. For
a group effect ``theta_g ~ Normal(loc_g, tau)`` whose own data determine it with standard
error ``se_g``, the centred form (free ``theta_g``) mixes well when ``se_g << tau`` and the
non-centred form (free ``z_g``, ``theta_g = loc_g + tau z_g``) when ``se_g >> tau``. qicstats
uses the *partially* centred form between them (Papaspiliopoulos, Roberts & Skold 2007;
Gorinova, Moore & Hoffman 2020)::

    free  theta~_g ~ Normal(w_g loc_g, tau ** w_g)
    theta_g = loc_g + tau ** (1 - w_g) * (theta~_g - w_g loc_g)

which is the same model for any ``w_g`` in [0, 1] (``w = 1`` centred, ``w = 0`` non-centred).
For a normal likelihood the choice ``w_g = tau^2 / (tau^2 + se_g^2)`` makes ``theta~_g`` and
``(loc, tau)`` uncorrelated a posteriori; :func:`centring_weights` computes it per group from

- ``se_g``: the Fisher information of the group's data about its effect (binomial
  ``n p (1 - p)``, Poisson counts, Gaussian ``1 / sigma^2``, weighted by the term's covariate:
  1, the post-join indicator or the time since joining), corrected for overdispersion, and
  accumulated through the levels below it (a child contributes ``1 / (1 / info + s^2)`` with
  ``s`` its level's spread);
- ``tau``: a **pilot** estimate of the spread between groups (:func:`pilot`): a weighted
  two-way fixed-effects fit on the link scale (empirical logits or logs), whose unit effects,
  unit-specific changes and period effects give method-of-moments spreads (variance of the
  estimates minus their mean sampling variance), and whose residuals give the dispersion.

Weights above :data:`SNAP_HIGH` are set to 1 and below :data:`SNAP_LOW` to 0, so clear cases
keep the classic centred or non-centred graphs. Everything here is computed once from the
data with NumPy; nothing is sampled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qicstats.models.design import Design
from qicstats.models.spec import ModelSpec

#: weights at or above this are rounded to 1 (centred), at or below SNAP_LOW to 0
SNAP_HIGH = 0.9
SNAP_LOW = 0.1
#: iterations of the alternating least squares of the pilot fit
PILOT_ITERATIONS = 60


@dataclass(frozen=True)
class Pilot:
    """Moment estimates from a quick fixed-effects fit on the link scale.

    Attributes
    ----------
    dispersion : float
        Residual variance relative to the family's nominal variance (1 = as binomial /
        Poisson); for the Gaussian family the residual variance itself.
    tau : dict of (term, level) to float
        Estimated spread between groups of ``term`` effects (baseline, level) at ``level``,
        and ``("period", "")`` for period effects.
    """

    dispersion: float = 1.0
    tau: dict[tuple[str, str], float] = field(default_factory=dict)


def row_weights(d: Design, dispersion: float | None = None) -> np.ndarray:
    """Per observed row, the Fisher information about the linear predictor (normal
    approximation at the pooled mean: binomial ``n p (1 - p)``, Poisson counts, Gaussian
    ``1 / sd^2``), divided by the overdispersion when it is known.
    """
    fam = d.family
    if fam in ("binomial", "betabinomial"):
        num, den = d.y["numerator"], d.y["denominator"]
        pbar = (num.sum() + 0.5) / (den.sum() + 1.0)
        w = den * pbar * (1 - pbar)
        if dispersion is None and fam == "betabinomial":
            w = w / (1 + den / 100.0)
    elif fam in ("poisson", "negbinomial"):
        w = d.y["count"].astype(float) + 0.5
    else:
        var = dispersion if dispersion is not None else max(d.y_sd, 1e-9) ** 2
        return np.full(d.rows.n, 1.0 / max(var, 1e-12))
    if dispersion is not None:
        w = w / max(dispersion, 1.0)
    return w


def _link_values(d: Design) -> tuple[np.ndarray, np.ndarray]:
    """Empirical link-scale values per row and their nominal variances."""
    fam = d.family
    if fam in ("binomial", "betabinomial"):
        y, n = d.y["numerator"], d.y["denominator"]
        p = (y + 0.5) / (n + 1.0)
        return np.log(p / (1 - p)), 1.0 / ((n + 1.0) * p * (1 - p))
    if fam in ("poisson", "negbinomial"):
        y = d.y["count"]
        return np.log((y + 0.5) / d.y["exposure"]), 1.0 / (y + 0.5)
    return d.y["value"].astype(float), np.ones(d.rows.n)


def pilot(d: Design) -> Pilot:
    """Moment estimates of the dispersion and of the spreads between units, their changes
    after joining and the periods (see the module docstring).

    The fit is ``y~_it = a_i + f_t + D_it (c_h + b_i)`` by weighted alternating least
    squares (``c_h`` per exposure time, slightly shrunk; ``b_i``, centred, for participating
    units with rows before and after joining), on the link-scale values of the rows; spreads
    are ``max(0, var(estimates) - mean(sampling variance))``.
    """
    rows = d.rows
    if rows.n < 3:
        return Pilot()
    y, v = _link_values(d)
    w = 1.0 / v
    u, t = rows.unit, rows.t
    N, T = d.n_units, d.T
    D = (rows.D > 0).astype(float)
    pre = np.bincount(u, weights=(D == 0).astype(float), minlength=N)
    postn = np.bincount(u, weights=D, minlength=N)
    has_b = (pre > 0) & (postn > 0)
    Db = D * has_b[u]
    # a common effect per exposure time (shrunk a little: a stepped wedge identifies late
    # exposure times only through the others), so that unit changes b are deviations from it
    h = np.where(D > 0, np.rint(rows.e), 0).astype(int)
    Hn = int(h.max()) + 1 if rows.n else 1
    a, f, b, c = np.zeros(N), np.zeros(T), np.zeros(N), np.zeros(Hn)
    wu = np.maximum(np.bincount(u, weights=w, minlength=N), 1e-300)
    wt = np.maximum(np.bincount(t, weights=w, minlength=T), 1e-300)
    wb = np.maximum(np.bincount(u, weights=w * Db, minlength=N), 1e-300)
    wh = np.bincount(h, weights=w * D, minlength=Hn)
    ridge = 0.05 * np.median(wh[wh > 0]) if (wh > 0).any() else 1.0
    for _ in range(PILOT_ITERATIONS):
        a = np.bincount(u, weights=w * (y - f[t] - D * c[h] - Db * b[u]), minlength=N) / wu
        f = np.bincount(t, weights=w * (y - a[u] - D * c[h] - Db * b[u]), minlength=T) / wt
        f = f - np.average(f, weights=wt)
        c = np.bincount(h, weights=w * D * (y - a[u] - f[t] - Db * b[u]), minlength=Hn) / (
            wh + ridge)
        b = np.where(has_b, np.bincount(u, weights=w * Db * (y - a[u] - f[t] - D * c[h]),
                                        minlength=N) / wb, 0.0)
        if has_b.any():
            b = b - np.average(b[has_b], weights=wb[has_b]) * has_b
    r = y - a[u] - f[t] - D * c[h] - Db * b[u]
    n_par = N + T + Hn + int(has_b.sum())
    dof = max(rows.n - n_par, 1)
    if d.family == "gaussian":
        disp = float(np.sum(r**2) / dof)
        var_scale = disp
    else:
        disp = float(max(np.sum(w * r**2) / dof, 1.0))
        var_scale = disp
    se2_a = var_scale / wu if d.family != "gaussian" else var_scale / np.bincount(
        u, minlength=N).clip(1)
    tau: dict[tuple[str, str], float] = {}
    seen = np.bincount(u, minlength=N) > 0
    tau[("baseline", "unit")] = _spread(a[seen], se2_a[seen])
    if has_b.sum() >= 3:
        se2_b = (var_scale / wb if d.family != "gaussian"
                 else var_scale / np.bincount(u, weights=Db, minlength=N).clip(1))
        se2_b = se2_b + se2_a  # b is a difference of post and pre means
        tau[("level", "unit")] = _spread(b[has_b], se2_b[has_b])
    if T >= 3:
        se2_f = (var_scale / wt if d.family != "gaussian"
                 else var_scale / np.bincount(t, minlength=T).clip(1))
        obs_t = np.bincount(t, minlength=T) > 0
        # the period effects' spread around a line (the model pools them toward
        # trend_slope * tau, not toward a constant)
        A = np.stack([np.ones(int(obs_t.sum())), d.tau[obs_t]], axis=1)
        dev = f[obs_t] - A @ np.linalg.lstsq(A, f[obs_t], rcond=None)[0]
        tau[("period", "")] = _spread(dev, se2_f[obs_t])
    # grouping levels: spreads of the groups' mean unit effects
    for lv, g in d.base_groups.items():
        if lv == "unit" or g.n < 3:
            continue
        gm, gv = _group_means(a[seen], se2_a[seen] + tau[("baseline", "unit")] ** 2,
                              g.of_unit[seen], g.n)
        ok = np.isfinite(gm)
        tau[("baseline", lv)] = _spread(gm[ok], gv[ok])
    for lv, g in d.change_groups.items():
        if lv == "unit" or g.n < 3 or has_b.sum() < 3:
            continue
        se2 = (se2_b[has_b] if has_b.sum() else np.zeros(0)) + tau.get(("level", "unit"), 0) ** 2
        gm, gv = _group_means(b[has_b], se2, g.of_unit[has_b], g.n)
        ok = np.isfinite(gm)
        tau[("level", lv)] = _spread(gm[ok], gv[ok])
    return Pilot(dispersion=disp, tau=tau)


def _spread(est: np.ndarray, se2: np.ndarray) -> float:
    if len(est) < 2:
        return 0.0
    return float(np.sqrt(max(np.var(est, ddof=1) - np.mean(se2), 0.0)))


def _group_means(est: np.ndarray, var: np.ndarray, of: np.ndarray, n: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    w = 1.0 / np.maximum(var, 1e-12)
    sw = np.bincount(of, weights=w, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.bincount(of, weights=w * est, minlength=n) / sw
        return m, 1.0 / sw


def unit_information(d: Design, term: str, w: np.ndarray) -> np.ndarray:
    """Fisher information of each unit's data about a unit-specific ``term`` coefficient
    (row weights ``w`` times the term's covariate squared, summed over the unit's rows).
    """
    x = {"baseline": np.ones(d.rows.n), "level": d.rows.D, "slope": d.rows.e,
         "trend": d.tau[d.rows.t]}[term]
    return np.bincount(d.rows.unit, weights=w * x**2, minlength=d.n_units)


def group_information(d: Design, spec: ModelSpec, lv: str, term: str, w: np.ndarray,
                      spread: Callable[[str, str], float]) -> np.ndarray:
    """Information about each group's effect of ``term`` at level ``lv``, accumulated from
    its units through the levels below it that carry ``term`` effects (a child contributes
    ``1 / (1 / info + s^2)``, ``s = spread(child level, term)``).
    """
    info = unit_information(d, term, w)
    mask = d.participating if term in ("level", "slope") else np.ones(d.n_units, bool)
    if lv == "unit":
        return info[mask]
    groups = d.change_groups if term in ("level", "slope") else d.base_groups
    levels = spec.levels_for(term, d.levels)
    below = list(levels[levels.index(lv) + 1:]) if lv in levels else []
    child_info = info[mask]
    child_spread = spread("unit", term) if "unit" in below else 0.0
    child_units = np.flatnonzero(mask)
    for level in [x for x in reversed(below) if x != "unit"] + [lv]:
        of_unit = groups[level].of_unit[child_units]
        contrib = np.where(child_info > 0,
                           1.0 / (1.0 / np.maximum(child_info, 1e-300) + child_spread**2), 0.0)
        n_groups = int(of_unit.max()) + 1 if len(of_unit) else 0
        group_info = np.bincount(of_unit, weights=contrib, minlength=n_groups)
        first = np.unique(of_unit, return_index=True)[1]
        child_units = child_units[first]
        child_info = group_info[np.unique(of_unit)]
        child_spread = spread(level, term)
    return child_info


def kappa(info: np.ndarray, tau: float) -> np.ndarray:
    """``tau^2 / (tau^2 + 1 / info)`` per group (0 where a group has no information)."""
    info = np.asarray(info, dtype=float)
    with np.errstate(divide="ignore"):
        se2 = np.where(info > 0, 1.0 / np.maximum(info, 1e-300), np.inf)
    k = np.where(np.isfinite(se2), tau**2 / (tau**2 + se2), 0.0) if tau > 0 else np.zeros_like(info)
    return k


def snap(w: np.ndarray | float) -> np.ndarray:
    """Round weights near 0 or 1 to exactly 0 or 1."""
    w = np.atleast_1d(np.asarray(w, dtype=float))
    return np.where(w >= SNAP_HIGH, 1.0, np.where(w <= SNAP_LOW, 0.0, w))


def choose_tau(pilot_tau: float | None, prior_scale: float) -> float:
    """The spread the centring weights assume: the pilot's estimate, bounded to 2 % to
    twice the prior scale of the sd (a pilot of a few groups is noisy; the prior scale is a
    generous upper guess).
    """
    if pilot_tau is None or not np.isfinite(pilot_tau):
        return 0.5 * prior_scale
    return float(np.clip(pilot_tau, 0.02 * prior_scale, 2.0 * prior_scale))


__all__ = [
    "SNAP_HIGH",
    "SNAP_LOW",
    "Pilot",
    "choose_tau",
    "group_information",
    "kappa",
    "pilot",
    "row_weights",
    "snap",
    "unit_information",
]
