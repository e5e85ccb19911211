"""The linear predictor on the dense unit x period grid (PyTensor only; the sampler's hot path).

:func:`qicstats.models.linpred.linear_predictor` evaluates the predictor row by row: every
per-unit and per-period term is gathered to the rows, and the gradient of each gather is a
scatter-add over all rows. On a site-period panel almost every unit-period is observed, so the
same predictor can be written on the ``(units, periods)`` grid by broadcasting per-unit
columns against per-period rows; the gradient of a broadcast is a row or column sum, which is
far cheaper than a scatter-add. The grid values at the observed rows are then taken with one
gather (none when the rows are exactly the complete grid in order).

The result equals :func:`~qicstats.models.linpred.linear_predictor` at the same rows (the
model's log-density tests check it); cells of the grid without an observation get zero
covariates and do not enter the likelihood. :func:`grid_linear_predictor` falls back to the
row-wise form where the grid does not apply (latent continuous indicator values, repeated
unit-periods) or would be mostly empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytensor.tensor as pt

from qicstats.models.design import Design, Rows
from qicstats.models.linpred import (
    indicator_values,
    linear_predictor,
    role_indices,
    unit_effects,
)

#: use the grid when at least this share of its cells is observed
MIN_GRID_FILL = 0.5


def grid_applies(d: Design, rows: Rows) -> bool:
    """Whether ``rows`` can be evaluated on the dense grid (see module docstring)."""
    n_cells = d.n_units * d.T
    if rows.n == 0 or n_cells == 0 or rows.n < MIN_GRID_FILL * n_cells:
        return False
    if (rows.Zlat >= 0).any():
        return False
    flat = _flat_index(d, rows)
    return len(np.unique(flat)) == len(flat)


def _flat_index(d: Design, rows: Rows) -> np.ndarray:
    return rows.unit.astype(np.int64) * d.T + rows.t.astype(np.int64)


def grid_linear_predictor(p: Mapping[str, Any], d: Design, rows: Rows) -> Any:
    """The linear predictor at ``rows`` (PyTensor), computed on the unit x period grid.

    Parameters
    ----------
    p : mapping
        Parameter tensors, as for :func:`~qicstats.models.linpred.linear_predictor`.
    d : Design
    rows : Rows
        Observed unit-periods, each at most once.

    Returns
    -------
    TensorVariable
        ``eta`` of shape ``(rows.n,)`` in the order of ``rows``.
    """
    if not grid_applies(d, rows):
        return linear_predictor(p, d, rows, pt)
    N, T = d.n_units, d.T
    flat = _flat_index(d, rows)

    def grid(values: np.ndarray) -> np.ndarray:
        g = np.zeros(N * T)
        g[flat] = values
        return g.reshape(N, T)

    eff = unit_effects(p, d)
    eta = p["intercept"] + p["secular"][None, :]
    if eff["base"] is not None:
        eta = eta + eff["base"][:, None]
    if eff["trend"] is not None:
        eta = eta + eff["trend"][:, None] * d.tau[None, :]
    if rows.X.shape[1]:
        Xg = np.stack([grid(rows.X[:, j]) for j in range(rows.X.shape[1])], axis=-1)
        # a broadcast product, not a BLAS dot: same cost here, seconds less Numba compilation
        eta = eta + (Xg * p["beta"]).sum(axis=-1)
    z = _indicator_grids(p, d, rows, grid)
    roles = role_indices(d)
    for j, k in enumerate(roles["main"]):
        eta = eta + p["ind_main"][j] * z[k]
    if "ar_eps" in p:
        eta = eta + p["ar_eps"]
    if d.participating.any():
        eta = eta + _fixed_change(p, d, rows, grid, z)
        if "v_curve_collaborative" in p:
            slots = grid(d.curve_slot(rows.e).astype(float)).astype("int64")
            cg = d.change_groups["collaborative"].of_unit
            eta = eta + grid(rows.D) * p["v_curve_collaborative"][
                pt.constant(np.broadcast_to(cg[:, None], slots.shape).astype("int64")),
                pt.constant(slots)]
        if eff["level"] is not None:
            eta = eta + grid(rows.D) * eff["level"][:, None]
        if eff["slope"] is not None:
            eta = eta + grid(rows.e) * eff["slope"][:, None]
    eta = pt.broadcast_to(eta, (N, T)).reshape((-1,))
    if len(flat) == N * T and np.array_equal(flat, np.arange(N * T)):
        return eta
    return eta[flat]


def _fixed_change(p: Mapping[str, Any], d: Design, rows: Rows, grid: Any, z: dict[int, Any]
                  ) -> Any:
    """The population part of the change on the grid: ``D * (effect_curve[slot] or
    level_change + sum_k ind_level_k z_k) + e * (slope_change + sum_k ind_slope_k z_k) +
    P * phase_change`` (no random effects).
    """
    roles = role_indices(d)
    if "effect_curve" in p:
        slots = grid(d.curve_slot(rows.e).astype(float)).astype("int64")
        lvl = p["effect_curve"][pt.constant(slots, dtype="int64")]
    else:
        lvl = p["level_change"]
    slope = "slope_change" in p
    slp = p["slope_change"] if slope else None
    for j, k in enumerate(roles["moderator"]):
        lvl = lvl + p["ind_level"][j] * z[k]
        if slope:
            slp = slp + p["ind_slope"][j] * z[k]
    out = grid(rows.D) * lvl
    if slope:
        out = out + grid(rows.e) * slp
    if "phase_change" in p:
        out = out + grid(rows.P) * p["phase_change"]
    return out


def unit_means_of_time_terms(p: Mapping[str, Any], d: Design, rows: Rows,
                             weights: np.ndarray) -> Any:
    """Per unit, the ``weights``-weighted mean over its ``rows`` of the terms that vary over
    time without being unit effects: the secular trend and the population part of the change
    (PyTensor, ``(N,)``; 0 for a unit without rows).

    Added to the location of hierarchically centred unit baselines it makes each unit's free
    total the part of its level that the trend and the effect do not explain, so the totals
    and those terms are nearly independent a posteriori (the same model for any weights).
    """
    N, T = d.n_units, d.T
    wsum = np.bincount(rows.unit, weights=weights, minlength=N)
    wn = np.where(wsum[rows.unit] > 0, weights / np.maximum(wsum[rows.unit], 1e-300), 0.0)
    if grid_applies(d, rows):
        flat = _flat_index(d, rows)

        def grid(values: np.ndarray) -> np.ndarray:
            g = np.zeros(N * T)
            g[flat] = values
            return g.reshape(N, T)

        W = grid(wn)
        out = (W * p["secular"][None, :]).sum(axis=1)
        if d.participating.any():
            z = _indicator_grids(p, d, rows, grid)
            out = out + (W * _fixed_change(p, d, rows, grid, z)).sum(axis=1)
        return out
    vals = p["secular"][rows.t]
    if d.participating.any():
        zr = indicator_values(p, d, rows, pt)
        vals = vals + _fixed_change(p, d, rows, lambda v: v, dict(enumerate(zr)))
    return pt.inc_subtensor(pt.zeros(N)[rows.unit], vals * wn)


def _indicator_grids(p: Mapping[str, Any], d: Design, rows: Rows, grid: Any) -> dict[int, Any]:
    """Per indicator, its value on the grid. An ordinal code ``l`` with monotonic simplex ``s``
    has value ``s_1 + ... + s_l``, written as ``sum_j s_j * [l >= j]`` (no gather).
    """
    out: dict[int, Any] = {}
    for k, ind in enumerate(d.indicators):
        zk = np.nan_to_num(rows.Z[:, k], nan=0.0)
        if ind.type == "ordinal":
            idx = zk.astype(int)
            s = p[f"mo_{ind.name}"]
            terms = [s[j - 1] * grid((idx >= j).astype(float)) for j in range(1, ind.n_levels)]
            out[k] = sum(terms[1:], terms[0])
        else:
            out[k] = grid(zk)
    return out
