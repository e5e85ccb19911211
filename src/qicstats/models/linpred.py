"""The linear predictor, written once for both PyTensor (the model) and NumPy (estimands).

``p`` maps parameter names to arrays whose *last* axis indexes groups/periods/indicators and
whose leading axes (if any) index posterior draws. Scalars therefore have shape ``(...)`` and
are broadcast against rows with ``[..., None]``. ``xp`` is ``numpy`` or ``pytensor.tensor``.

    eta = intercept + secular[t] + sum_l u_l[g_l(i)] + tau[t] * sum_l w_trend_l[g_l(i)]
          + X . beta + sum_k ind_main_k z_k
          + D * (level_change + sum_l v_level_l[g_l(i)] + sum_k ind_level_k z_k)
          + e * (slope_change + sum_l v_slope_l[g_l(i)] + sum_k ind_slope_k z_k)
          + P * phase_change
          + ar_eps[i, t]

with the effect's shape (``Design.effect``): ``step`` has no ``e`` term; ``slope`` is as
written; ``curve`` replaces ``level_change`` by ``effect_curve[slot(e)]``, one effect per
period since joining (:meth:`~qicstats.models.design.Design.curve_slot`), and has no ``e``
term; each collaborative's deviation from the curve, ``v_curve_collaborative[c, slot(e)]``,
is added to it. ``P`` is 1 after a unit's end period when the model has a sustainability
phase.

where ``z_k`` is the code of indicator ``k`` at the row: 0/1 (binary), the monotonic transform
``mo_k[level]`` in [0, 1] (ordinal), or the standardised value (continuous).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from qicstats.models.design import Design, Rows

#: parts of the change that can be switched off in counterfactual queries
CHANGE_PARTS = ("fixed", "indicators")


def _col(x: Any, xp: Any) -> Any:
    return xp.expand_dims(x, -1)


def mo_table(simplex: Any, xp: Any) -> Any:
    """``[0, s_1, s_1 + s_2, ..., 1]`` along the last axis."""
    zero = simplex[..., :1] * 0.0
    return xp.concatenate([zero, xp.cumsum(simplex, axis=-1)], axis=-1)


def indicator_values(p: Mapping[str, Any], d: Design, rows: Rows, xp: Any) -> list[Any]:
    """The per-row value ``z_k`` of each indicator (see module docstring)."""
    out = []
    for k, ind in enumerate(d.indicators):
        zk = rows.Z[:, k]
        if ind.type == "ordinal":
            table = mo_table(p[f"mo_{ind.name}"], xp)
            idx = np.nan_to_num(zk, nan=0.0).astype(int)
            out.append(table[..., idx])
        elif ind.type == "binary":
            out.append(np.nan_to_num(zk, nan=0.0))
        else:
            base = np.nan_to_num(zk, nan=0.0)
            lat = rows.Zlat[:, k]
            if (lat >= 0).any():
                vals = p[f"latent_{ind.name}"][..., np.clip(lat, 0, None)]
                out.append(xp.where(lat >= 0, vals, base))
            else:
                out.append(base)
    return out


def linear_predictor(p: Mapping[str, Any], d: Design, rows: Rows, xp: Any, *,
                     change_levels: tuple[str, ...] | None = None) -> Any:
    """Evaluate the linear predictor at ``rows``.

    Parameters
    ----------
    p : mapping
        Parameter arrays (PyTensor variables, or NumPy arrays with leading draw axes).
    d : Design
    rows : Rows
        Where to evaluate; set ``rows.D``/``rows.e`` to zero for the counterfactual.
    xp : module
        ``numpy`` or ``pytensor.tensor``.
    change_levels : tuple of str, optional
        Grouping levels whose random level/slope-change effects are included (default all);
        positive deviance uses the collaborative-level expectation.
    """
    u, t = rows.unit, rows.t
    # random effects are summed per unit first (N values), then gathered once per row
    eff = unit_effects(p, d, change_levels=change_levels)
    eta = _col(p["intercept"], xp) + p["secular"][..., t]
    if eff["base"] is not None:
        eta = eta + eff["base"][..., u]
    if eff["trend"] is not None:
        eta = eta + eff["trend"][..., u] * d.tau[t]
    if rows.X.shape[1]:
        eta = eta + _dot(rows.X, p["beta"], xp)
    z = indicator_values(p, d, rows, xp)
    for j, k in enumerate(_role_index(d, "main")):
        eta = eta + _col(p["ind_main"][..., j], xp) * z[k]
    if "ar_eps" in p:
        eta = eta + p["ar_eps"][..., u, t]
    if not d.participating.any():
        return eta
    if "effect_curve" in p:
        slot = d.curve_slot(rows.e)
        lvl = p["effect_curve"][..., slot]
        if "v_curve_collaborative" in p and (change_levels is None
                                             or "collaborative" in change_levels):
            cg = d.change_groups["collaborative"].of_unit[u]
            lvl = lvl + p["v_curve_collaborative"][..., cg, slot]
    else:
        lvl = _col(p["level_change"], xp)
    if eff["level"] is not None:
        lvl = lvl + eff["level"][..., u]
    slope = "slope_change" in p
    if slope:
        slp = _col(p["slope_change"], xp)
        if eff["slope"] is not None:
            slp = slp + eff["slope"][..., u]
    for j, k in enumerate(_role_index(d, "moderator")):
        lvl = lvl + _col(p["ind_level"][..., j], xp) * z[k]
        if slope:
            slp = slp + _col(p["ind_slope"][..., j], xp) * z[k]
    eta = eta + rows.D * lvl
    if slope:
        eta = eta + rows.e * slp
    if "phase_change" in p:
        eta = eta + rows.P * _col(p["phase_change"], xp)
    return eta


def unit_effects(p: Mapping[str, Any], d: Design, *,
                 change_levels: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Random effects summed over the grouping levels, one value per unit.

    Returns
    -------
    dict
        ``base`` (baseline), ``trend`` (unit-specific trend slope), ``level`` and ``slope``
        (change effects; only the levels in ``change_levels`` when given): arrays whose last
        axis has length ``d.n_units``, or ``None`` where the model has no such effect.
    """
    units = np.arange(d.n_units)
    out: dict[str, Any] = {"base": None, "trend": None, "level": None, "slope": None}

    def add(key: str, term: Any) -> None:
        out[key] = term if out[key] is None else out[key] + term

    for lv, g in d.base_groups.items():
        if f"u_{lv}" in p:
            add("base", p[f"u_{lv}"][..., g.of_unit[units]] if lv != "unit" else p[f"u_{lv}"])
        if f"w_trend_{lv}" in p:
            add("trend", p[f"w_trend_{lv}"][..., g.of_unit[units]])
    if d.participating.any():
        for lv, g in d.change_groups.items():
            if change_levels is not None and lv not in change_levels:
                continue
            if f"v_level_{lv}" in p:
                add("level", p[f"v_level_{lv}"][..., g.of_unit[units]])
            if f"v_slope_{lv}" in p:
                add("slope", p[f"v_slope_{lv}"][..., g.of_unit[units]])
    return out


def _dot(X: np.ndarray, beta: Any, xp: Any) -> Any:
    # (n, P) x (..., P) -> (..., n)
    if xp is np:
        return np.einsum("np,...p->...n", X, beta)
    return xp.dot(X, beta)


def _role_index(d: Design, role: str) -> list[int]:
    if role == "main":
        return [k for k, ind in enumerate(d.indicators) if ind.is_main]
    return [k for k, ind in enumerate(d.indicators) if ind.is_moderator]


def inverse_link(eta: Any, family: str, xp: Any) -> Any:
    """Mean on the response scale per unit of exposure (probability, rate, or value)."""
    if family in ("binomial", "betabinomial"):
        return 1.0 / (1.0 + xp.exp(-eta))
    if family in ("poisson", "negbinomial"):
        return xp.exp(eta)
    return eta


def role_indices(d: Design) -> dict[str, list[int]]:
    """Indicator indices (into ``d.indicators``) entering as main effects and as moderators."""
    return {"main": _role_index(d, "main"), "moderator": _role_index(d, "moderator")}
