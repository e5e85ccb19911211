"""Draw-based estimands on the response scale (see ``docs/model.md`` for definitions).

All estimands compare the fitted model *as observed* with the counterfactual in which the
intervention is switched off (``D = 0``, ``e = 0``) for the same units and periods, computed
draw by draw, then summarised with one interval probability.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from qicstats.models.build import QICModel
from qicstats.results.draws import Predictor, group_matrix, n_draws, param_chunks

#: columns of the tidy estimands table (a public contract: extend, never rename)
ESTIMAND_COLUMNS: tuple[str, ...] = (
    "estimand", "scope", "group", "mean", "sd", "lower", "upper", "prob_positive",
    "prob_improved", "prob_above_mid", "mcse", "ess_bulk", "n_rows", "scale",
)


@dataclass(frozen=True)
class EstimandOptions:
    """How estimands are computed and summarised.

    Parameters
    ----------
    interval_prob : float
        Probability of every equal-tailed interval in qicstats' outputs.
    horizons : tuple of int
        Periods after joining for ``att_horizon_<h>``.
    mid : float or None
        Minimal important difference on the response scale (``prob_above_mid``).
    direction : {"increase", "decrease"}
        Which direction of change is an improvement (``prob_improved``, ranks, deviance).
    positive_deviance_prob : float
        Posterior probability above which a unit is flagged a positive deviant.
    """

    interval_prob: float = 0.95
    horizons: tuple[int, ...] = (12,)
    mid: float | None = None
    direction: str = "increase"
    positive_deviance_prob: float = 0.9


@dataclass
class EstimandDraws:
    """Per-draw values of every estimand, before summarising."""

    draws: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)
    n_rows: dict[tuple[str, str, str], int] = field(default_factory=dict)
    scale: dict[str, str] = field(default_factory=dict)
    unit_att: np.ndarray | None = None          # (S, U_part)
    unit_names: list[str] = field(default_factory=list)


def _scale_name(family: str) -> str:
    return {"binomial": "probability", "betabinomial": "probability", "poisson": "rate",
            "negbinomial": "rate", "gaussian": "value"}[family]


def compute_estimand_draws(qm: QICModel, idata: xr.DataTree, opts: EstimandOptions
                           ) -> EstimandDraws:
    """Compute every estimand for every posterior draw (chunked over draws)."""
    d = qm.design
    out = EstimandDraws()
    if not d.participating.any():
        return out
    rows = d.rows
    scale = _scale_name(d.family)
    post = estimand_rows(qm)
    R = rows.subset(np.flatnonzero(post))
    unit_of_R = R.unit
    part_units = np.flatnonzero(d.participating)
    unit_names = [d.unit_names[u] for u in part_units]
    collab_of_unit = np.array([d.collaborative[u] or "" for u in range(d.n_units)], dtype=object)
    collabs = sorted({c for c in collab_of_unit[part_units] if c})
    G_unit = group_matrix(unit_of_R, list(part_units))
    G_coll = group_matrix(collab_of_unit[unit_of_R], collabs)
    w_events = None
    if d.family in ("binomial", "betabinomial"):
        w_events = d.y["denominator"][post]
    elif d.family in ("poisson", "negbinomial"):
        w_events = d.y["exposure"][post]
    pred_R = Predictor(qm, R)
    # the counterfactual at the join period of each participating unit (trend change)
    jt = np.clip(d.join_t[part_units], 0, d.T - 1).astype(int)
    pred_J = Predictor(qm, d.query_rows(part_units, jt))
    J_of_R = np.searchsorted(part_units, unit_of_R)
    exp_levels = tuple(lv for lv in ("collaborative",) if lv in d.change_groups)
    # horizons: model-based, every participating unit whose join + h lies in the grid
    hz = {}
    for h in opts.horizons:
        if d.identified_max is not None and h > d.identified_max:
            continue  # no concurrent comparison: not identified (docs/model.md)
        tgt = d.join_t[part_units] + h
        ok = (tgt >= 0) & (tgt <= d.T - 1)
        if ok.any():
            u_h = part_units[ok]
            hz[h] = (Predictor(qm, d.query_rows(u_h, tgt[ok].astype(int))),
                     collab_of_unit[u_h])
    mods = [k for k, ind in enumerate(d.indicators) if ind.is_moderator]
    mains = [k for k, ind in enumerate(d.indicators) if ind.is_main]
    pred_all = Predictor(qm, rows) if mains else None

    acc: dict[tuple[str, str, str], list[np.ndarray]] = {}

    def put(est: str, scope: str, groups: list[str], vals: np.ndarray, n: list[int]) -> None:
        vals = np.asarray(vals)
        if vals.ndim == 1:
            vals = vals[:, None]
        for j, g in enumerate(groups):
            acc.setdefault((est, scope, g), []).append(vals[:, j])
            out.n_rows[(est, scope, g)] = int(n[j])
            out.scale[est] = "events" if est == "events_gained" else scale

    h_of_R = np.rint(R.e).astype(int)
    hs = sorted(set(h_of_R.tolist()))
    G_h = group_matrix(h_of_R, hs)
    n_h = [int((h_of_R == h).sum()) for h in hs]
    phase_groups: list[str] = []
    if d.phases:
        assert R.P is not None  # the design's rows carry their phase
        ph = np.where(R.P > 0, "sustainability", "intervention")
        phase_groups = [g for g in ("intervention", "sustainability") if (ph == g).any()]
        G_ph = group_matrix(ph, phase_groups)
        n_ph = [int((ph == g).sum()) for g in phase_groups]
    n_coll = [int((collab_of_unit[unit_of_R] == c).sum()) for c in collabs]
    n_unit = [int((unit_of_R == u).sum()) for u in part_units]
    unit_chunks = []
    for _, p in param_chunks(qm, idata):
        mu_obs = pred_R.mean(p)
        mu_cf = pred_R.mean(p, counterfactual=True)
        diff = mu_obs - mu_cf
        put("att", "overall", ["all"], diff.mean(axis=1), [R.n])
        put("att", "collaborative", collabs, diff @ G_coll, n_coll)
        att_u = diff @ G_unit
        put("att", "unit", unit_names, att_u, n_unit)
        put("att_exposure", "exposure", [f"h={h}" for h in hs], diff @ G_h, n_h)
        if phase_groups:
            put("att_phase", "phase", phase_groups, diff @ G_ph, n_ph)
        unit_chunks.append(att_u)
        if d.family != "gaussian":  # a ratio of means needs a positive scale
            put("att_ratio", "overall", ["all"], mu_obs.mean(axis=1) / mu_cf.mean(axis=1), [R.n])
            put("att_ratio", "collaborative", collabs, (mu_obs @ G_coll) / (mu_cf @ G_coll),
                n_coll)
        put("fitted_mean", "overall", ["all"], mu_obs.mean(axis=1), [R.n])
        put("counterfactual_mean", "overall", ["all"], mu_cf.mean(axis=1), [R.n])
        put("fitted_mean", "collaborative", collabs, mu_obs @ G_coll, n_coll)
        put("counterfactual_mean", "collaborative", collabs, mu_cf @ G_coll, n_coll)
        cf_join = pred_J.mean(p, counterfactual=True)
        trend = mu_cf - cf_join[:, J_of_R]
        put("trend_change", "overall", ["all"], trend.mean(axis=1), [R.n])
        put("trend_change", "collaborative", collabs, trend @ G_coll, n_coll)
        if w_events is not None:
            ev = diff * w_events
            put("events_gained", "overall", ["all"], ev.sum(axis=1), [R.n])
            put("events_gained", "collaborative", collabs,
                ev @ (G_coll > 0).astype(float), n_coll)
            put("events_gained", "unit", unit_names, ev @ (G_unit > 0).astype(float), n_unit)
        # positive deviance: each unit's improvement minus its collaborative's expectation
        mu_exp = pred_R.mean(p, change_levels=exp_levels)
        expected_u = (mu_exp - mu_cf) @ G_unit
        put("deviance", "unit", unit_names, att_u - expected_u, n_unit)
        for h, (pred_h, coll_h) in hz.items():
            dh = pred_h.mean(p) - pred_h.mean(p, counterfactual=True)
            put(f"att_horizon_{h}", "overall", ["all"], dh.mean(axis=1), [dh.shape[1]])
            cs = [c for c in collabs if (coll_h == c).any()]
            put(f"att_horizon_{h}", "collaborative", cs, dh @ group_matrix(coll_h, cs),
                [int((coll_h == c).sum()) for c in cs])
        # indicators: improvement at each level (moderators) and contrasts with the reference
        for k in mods:
            ind = d.indicators[k]
            settings = _indicator_settings(ind)
            att_at = {}
            for lab, val in settings:
                a = (pred_R.mean(p, indicator=(k, val))
                     - pred_R.mean(p, counterfactual=True, indicator=(k, val))).mean(axis=1)
                att_at[lab] = a
                put("att_at_level", "indicator", [f"{ind.name}={lab}"], a, [R.n])
            ref = settings[0][0]
            for lab, _ in settings[1:]:
                put("indicator_contrast", "indicator", [f"{ind.name}: {lab} vs {ref}"],
                    att_at[lab] - att_at[ref], [R.n])
        for k in mains:
            ind = d.indicators[k]
            settings = _indicator_settings(ind)
            assert pred_all is not None  # made whenever there are main-effect indicators
            base = pred_all.mean(p, counterfactual=True, indicator=(k, settings[0][1]))
            for lab, val in settings[1:]:
                alt = pred_all.mean(p, counterfactual=True, indicator=(k, val))
                put("indicator_main_contrast", "indicator",
                    [f"{ind.name}: {lab} vs {settings[0][0]}"], (alt - base).mean(axis=1),
                    [rows.n])
    out.draws = {k: np.concatenate(v) for k, v in acc.items()}
    out.unit_att = np.concatenate(unit_chunks) if unit_chunks else None
    out.unit_names = unit_names
    return out


def att_horizons(qm: QICModel) -> set[int] | None:
    """The exposure times the ATT averages (``None``: every one), as :func:`estimand_rows`
    selects them: 0..``identified_max`` when the design leaves later ones unidentified.
    """
    im = qm.design.identified_max
    return None if im is None else set(range(int(im) + 1))


def estimand_rows(qm: QICModel) -> np.ndarray:
    """Which observed rows the ATT (and every estimand over "the post-join rows") averages:
    participating units' rows after joining, at exposure times identified by concurrent
    comparisons (all of them unless the design leaves some unidentified; see
    :mod:`qicstats.models.structure`).
    """
    d = qm.design
    return (d.rows.D > 0) & d.in_estimand(d.rows.e)


def _indicator_settings(ind: Any) -> list[tuple[str, float]]:
    if ind.type == "continuous":
        return [("-1sd", -1.0), ("+1sd", 1.0)]
    return [(lab, float(i)) for i, lab in enumerate(ind.levels)]


def _monte_carlo_error(by_chain: np.ndarray) -> dict[str, float]:
    """MCSE and bulk ESS of one estimand's draws (chains x draws). An estimand constant over
    the draws (e.g. the change in a group and horizon without rows) has no Monte Carlo error
    (MCSE 0) and no defined ESS (NaN), without arviz-stats' division warnings; fewer than
    four draws per chain: both NaN.
    """
    if by_chain.shape[1] <= 3:
        return {"mcse": np.nan, "ess_bulk": np.nan}
    if not np.isfinite(by_chain).all() or np.ptp(by_chain) == 0:
        return {"mcse": 0.0 if np.isfinite(by_chain).all() else np.nan, "ess_bulk": np.nan}
    return {"mcse": float(az.mcse(by_chain)), "ess_bulk": float(az.ess(by_chain))}


def summarise(ed: EstimandDraws, chains: int, opts: EstimandOptions) -> pd.DataFrame:
    """The tidy estimands table (columns :data:`ESTIMAND_COLUMNS`)."""
    lo_q, hi_q = (1 - opts.interval_prob) / 2, 1 - (1 - opts.interval_prob) / 2
    sign = -1.0 if opts.direction == "decrease" else 1.0
    recs = []
    for (est, scope, grp), x in ed.draws.items():
        x = np.asarray(x, dtype=float)
        ratio = est == "att_ratio"
        improve = (np.log(x) if ratio else x) * sign
        mid = opts.mid
        by_chain = x.reshape(chains, -1)
        comparable = est not in ("fitted_mean", "counterfactual_mean")
        recs.append({
            "estimand": est, "scope": scope, "group": grp,
            "mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "lower": float(np.quantile(x, lo_q)), "upper": float(np.quantile(x, hi_q)),
            "prob_positive": float(((x > 1) if ratio else (x > 0)).mean()),
            "prob_improved": float((improve > 0).mean()) if comparable else np.nan,
            "prob_above_mid": (float((x * sign > mid).mean())
                               if (mid is not None and comparable and not ratio
                                   and est != "events_gained") else np.nan),
            **_monte_carlo_error(by_chain),
            "n_rows": ed.n_rows.get((est, scope, grp), 0),
            "scale": "ratio" if ratio else ed.scale.get(est, ""),
        })
    df = pd.DataFrame(recs, columns=list(ESTIMAND_COLUMNS))
    order = {e: i for i, e in enumerate(
        ["att", "att_ratio", "att_exposure", "att_phase", "trend_change", "fitted_mean",
         "counterfactual_mean"]
        + [f"att_horizon_{h}" for h in opts.horizons]
        + ["events_gained", "indicator_contrast", "att_at_level", "indicator_main_contrast",
           "deviance"])}
    sc = {"overall": 0, "collaborative": 1, "exposure": 2, "phase": 2, "indicator": 2,
          "unit": 3}
    df["_o1"] = df["estimand"].map(order).fillna(99)
    df["_o2"] = df["scope"].map(sc).fillna(9)
    df["_o3"] = [int(g[2:]) if e == "att_exposure" and g[2:].isdigit() else 0
                 for e, g in zip(df["estimand"], df["group"])]
    df = df.sort_values(["_o1", "_o2", "_o3", "group"], kind="stable").drop(
        columns=["_o1", "_o2", "_o3"])
    return df.reset_index(drop=True)


def unit_ranks(ed: EstimandDraws, opts: EstimandOptions) -> pd.DataFrame:
    """Rank distribution of units by improvement (rank 1 = most improved, per draw)."""
    if ed.unit_att is None or not len(ed.unit_names):
        return pd.DataFrame(columns=["unit", "rank_mean", "rank_median", "rank_lower",
                                     "rank_upper", "prob_top", "prob_bottom"])
    sign = -1.0 if opts.direction == "decrease" else 1.0
    x = ed.unit_att * sign
    ranks = (-x).argsort(axis=1).argsort(axis=1) + 1
    n = ranks.shape[1]
    top = max(1, int(np.ceil(0.1 * n)))
    lo_q, hi_q = (1 - opts.interval_prob) / 2, 1 - (1 - opts.interval_prob) / 2
    df = pd.DataFrame({
        "unit": ed.unit_names,
        "rank_mean": ranks.mean(axis=0),
        "rank_median": np.median(ranks, axis=0),
        "rank_lower": np.quantile(ranks, lo_q, axis=0),
        "rank_upper": np.quantile(ranks, hi_q, axis=0),
        "prob_top": (ranks <= top).mean(axis=0),
        "prob_bottom": (ranks > n - top).mean(axis=0),
    })
    return df.sort_values("rank_mean", kind="stable").reset_index(drop=True)


def positive_deviance(table: pd.DataFrame, opts: EstimandOptions) -> pd.DataFrame:
    """Units whose improvement beats their collaborative's expectation.

    ``prob_beats_expectation`` is the posterior probability that the unit's deviance is in
    the improvement direction; ``positive_deviant`` flags it at ``positive_deviance_prob``.
    """
    dev = table[(table["estimand"] == "deviance")].copy()
    dev = dev.rename(columns={"group": "unit", "prob_improved": "prob_beats_expectation"})
    dev["positive_deviant"] = dev["prob_beats_expectation"] >= opts.positive_deviance_prob
    dev["negative_deviant"] = dev["prob_beats_expectation"] <= 1 - opts.positive_deviance_prob
    return dev[["unit", "mean", "lower", "upper", "prob_beats_expectation", "positive_deviant",
                "negative_deviant"]].reset_index(drop=True)


def chains_of(idata: xr.DataTree) -> int:
    """Number of chains."""
    return n_draws(idata)[0]
