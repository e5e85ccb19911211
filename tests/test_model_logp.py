"""The model's log density equals an independent, hand-written NumPy/SciPy log density.

For every outcome family and every term of the model (trends, seasonality, period effects
non-, partially and fully centred and inside the decorrelated block, random effects at every
level non-, partially and hierarchically centred, random trend slopes, correlated level/slope
changes, the effect shapes step / step plus slope / exposure-time curve (a random walk:
non-centred, centred, or inside the block), the collaboratives' curve deviations, the
sustainability phase, ramp, AR(1), covariates, indicators in every role, latent and uncertain
codes, overdispersion priors on 1/sqrt(phi) and 1/sqrt(alpha)) the compiled PyMC log density
is compared
with :class:`Reference`, written from ``MODEL.md``, the docstrings of
:mod:`qicstats.models.linpred`, :mod:`qicstats.models.priors`, :class:`qicstats.models.ModelSpec`
and :mod:`qicstats.models.build` -- never by calling qicstats' own linear predictor or design.

The reference reads only the data (``PanelData`` tables, the encoded indicator cells) and the
spec. From the model it takes the *names and coordinates* of the free variables (to know which
array element is which group) and their PyMC transforms (to map the unconstrained point back:
the inverse transforms are re-implemented here in NumPy, with their log-Jacobians). It also
checks that it used exactly the model's free variables, so no term can go unaccounted.

The partial-centring weights (``<name>_pc``) are read from the graph too (the sigma of the
free variable at a known sd); the reference writes the prior of the *effects* and adds the
Jacobian of the map from the free variable, so the claim that every weight gives the same model
is what is tested. The location of the innermost centred baseline level (its enclosing
levels, the group means of the main-effect term, and the Fisher-weighted group means of the
secular trend and the population change, with the data pilot's dispersion) is recomputed.

Compiling a PyMC log density costs ~10-20 s here, so there is one model per family (and three
for the effect's shapes) with many terms switched on at once (each compiled function gives
the log density with and without Jacobian and the gradient in one call).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.interpolate import BSpline
from scipy.special import expit, gammaln, logsumexp

from qicstats.data.panel import PanelData
from qicstats.indicators.matrix import EncodedIndicator, IndicatorMatrix
from qicstats.models import ModelSpec, build
from qicstats.models.effects import detrended_basis, zero_sum_basis
from qicstats.testing import tiny_indicators, tiny_panel

RTOL = 1e-6
N_POINTS = 3


# =========================================================================================
# PyMC's transforms, inverted in NumPy (with log |Jacobian| of the inverse map)
# =========================================================================================

def _zerosum_backward(x: np.ndarray) -> np.ndarray:
    """n-1 free coordinates -> n values summing to zero along the last axis (a Householder
    isometry, row by row for a 2-d value)."""
    n = x.shape[-1] + 1
    s = x.sum(axis=-1, keepdims=True)
    norm = s / (np.sqrt(n) + n)
    fill = norm - s / np.sqrt(n)
    return np.concatenate([x, fill], axis=-1) - norm


def _simplex_backward(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Additive log-ratio with a zero-sum anchor -> simplex, and log |det d y[:-1] / dx|."""
    z = np.concatenate([x, [-x.sum()]])
    y = np.exp(z - logsumexp(z))
    n = len(y)
    A = np.vstack([np.eye(n - 1), -np.ones((1, n - 1))])      # dz/dx
    J = (np.diag(y) - np.outer(y, y))[: n - 1] @ A            # d y[:n-1] / dx
    return y, float(np.linalg.slogdet(J)[1])


def constrain(model: Any, point: dict[str, np.ndarray], bounds: dict[str, tuple[float, float]]
              ) -> tuple[dict[str, np.ndarray], float]:
    """Constrained value of every free RV (by name) and the total log-Jacobian."""
    out: dict[str, np.ndarray] = {}
    logj = 0.0
    for rv in model.free_RVs:
        tr = model.rvs_to_transforms.get(rv)
        x = np.asarray(point[model.rvs_to_values[rv].name], dtype=float)
        kind = type(tr).__name__ if tr is not None else None
        if kind is None:
            y, j = x, 0.0
        elif kind == "LogTransform":
            y, j = np.exp(x), float(x.sum())
        elif kind in ("IntervalTransform", "Interval"):
            lo, hi = bounds[rv.name]
            s = expit(x)
            y = lo + (hi - lo) * s
            j = float(np.sum(np.log(hi - lo) + np.log(s) + np.log1p(-s)))
        elif kind == "ZeroSumTransform":
            y, j = _zerosum_backward(x), 0.0
            # an isometry onto the zero-sum subspace: no volume change
            assert np.isclose(np.linalg.norm(y), np.linalg.norm(x))
            assert np.all(np.abs(y.sum(axis=-1)) < 1e-10)
        elif kind == "SimplexTransform":
            y, j = _simplex_backward(x)
        elif kind == "CholeskyCovPacked":
            n = int(round((np.sqrt(8 * len(x) + 1) - 1) / 2))
            diag = np.cumsum(np.arange(1, n + 1)) - 1
            y = x.copy()
            y[diag] = np.exp(x[diag])
            j = float(x[diag].sum())
        else:  # pragma: no cover - a new transform needs a NumPy inverse here
            raise AssertionError(f"no NumPy inverse for transform {kind} of {rv.name}")
        out[rv.name] = y
        logj += j
    return out, logj


def expand_block(qm: Any, vals: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    """Replace a decorrelated ``intervention_xi`` by the named parameters it stands for,
    ``theta = mu + B xi`` (the parameterisation is taken from the model, like the transforms
    above; ``test_model_build`` checks ``B`` independently), and return ``log |det B|``: the
    density of ``xi`` is that of ``theta`` times ``|det B|``."""
    blk = qm.intervention
    if blk is None:
        return vals, 0.0
    vals = dict(vals)
    theta = blk.mu + blk.B @ vals.pop("intervention_xi")
    k_f, n_p, n_c = len(blk.names), blk.n_period, blk.n_curve
    assert len(theta) == k_f + n_p + n_c
    for name, t in zip(blk.names, theta[:k_f]):
        vals[name] = np.asarray(t)
    if n_p:
        # the period deviations are Q @ theta_P with Q an orthonormal basis of the vectors
        # orthogonal to 1 and tau (checked in Reference.period_basis)
        Q = blk.Q
        assert Q.shape == (n_p + 2, n_p)
        vals["period_effect"] = Q @ theta[k_f:k_f + n_p]
    if n_c:
        assert "ind_level" not in qm.model.named_vars, "curve with moderators: not covered"
        vals["effect_curve"] = theta[k_f + n_p:]
    for kind in ("ind_level", "ind_slope"):
        if kind in qm.model.named_vars:
            labels = list(qm.model.coords["indicator_moderator"])
            vals[kind] = np.array([vals[f"{kind}_{n}"] for n in labels])
    return vals, float(np.sum(np.log(np.diag(blk.B))))


def used_free(qm: Any, used: set[str]) -> set[str]:
    """The reference's used names in terms of the model's free variables."""
    blk = qm.intervention
    if blk is None:
        return used
    derived = set(blk.names) | {"ind_level", "ind_slope"}
    if blk.n_period:
        derived.add("period_effect")
    if blk.n_curve:
        derived.add("effect_curve")
    out = used - derived
    if used & derived:
        out.add("intervention_xi")
    return out


# =========================================================================================
# priors as SciPy log densities
# =========================================================================================

LogPdf = Callable[[np.ndarray], float]


def zsn_logpdf(x: np.ndarray, sd: float) -> float:
    """ZeroSumNormal(sd) of a vector ``x`` summing to zero: N(0, sd^2) on the
    (n-1)-dimensional zero-sum subspace."""
    x = np.asarray(x, dtype=float)
    assert abs(x.sum()) < 1e-9
    return float(-0.5 * np.sum((x / sd) ** 2)
                 - (x.size - 1) * (0.5 * np.log(2 * np.pi) + np.log(sd)))


def scipy_prior(d: dict[str, Any]) -> LogPdf:
    """``{"dist": ..., params}`` (PyMC parametrisation) as a summed SciPy log density."""
    dist = d["dist"]
    p = {k: v for k, v in d.items() if k not in ("dist", "on")}
    if dist == "Normal":
        f = lambda x: stats.norm.logpdf(x, p["mu"], p["sigma"])  # noqa: E731
    elif dist == "HalfNormal":
        f = lambda x: stats.halfnorm.logpdf(x, scale=p["sigma"])  # noqa: E731
    elif dist == "Exponential":
        f = lambda x: stats.expon.logpdf(x, scale=1.0 / p["lam"])  # noqa: E731
    elif dist == "HalfCauchy":
        f = lambda x: stats.halfcauchy.logpdf(x, scale=p["beta"])  # noqa: E731
    elif dist == "Gamma":  # PyMC: shape alpha, rate beta
        f = lambda x: stats.gamma.logpdf(x, p["alpha"], scale=1.0 / p["beta"])  # noqa: E731
    elif dist == "InverseGamma":  # shape alpha, scale beta
        f = lambda x: stats.invgamma.logpdf(x, p["alpha"], scale=p["beta"])  # noqa: E731
    elif dist == "Uniform":
        f = lambda x: stats.uniform.logpdf(x, p["lower"], p["upper"] - p["lower"])  # noqa: E731
    elif dist == "StudentT":
        f = lambda x: stats.t.logpdf(x, p["nu"], p["mu"], p["sigma"])  # noqa: E731
    elif dist in ("Flat", "HalfFlat"):
        f = lambda x: np.zeros_like(x)  # noqa: E731
    else:  # pragma: no cover
        raise AssertionError(dist)
    return lambda x: float(np.sum(f(np.asarray(x, dtype=float))))


def documented_priors(family: str, T: int, H: float, m: float, s_y: float
                      ) -> dict[str, dict[str, Any]]:
    """The default-prior table of :mod:`qicstats.models.priors`, typed in again.

    ``s`` multiplies every link-scale scale for a Gaussian outcome (its priors are in units of
    the outcome's sd) and is 1 otherwise.
    """
    s = s_y if family == "gaussian" else 1.0
    H = max(H, 1.0)
    return {
        "intercept": {"dist": "Normal", "mu": m, "sigma": 2.5 * s},
        "trend_slope": {"dist": "Normal", "mu": 0.0, "sigma": s / (T - 1)},
        "trend_sd": {"dist": "HalfNormal", "sigma": 0.5 * s / np.sqrt(T)},
        "period_sd": {"dist": "HalfNormal", "sigma": 0.5 * s},
        "season_sd": {"dist": "HalfNormal", "sigma": 0.3 * s},
        "level_change": {"dist": "Normal", "mu": 0.0, "sigma": 1.0 * s},
        "slope_change": {"dist": "Normal", "mu": 0.0, "sigma": s / H},
        "sd_curve": {"dist": "HalfNormal", "sigma": 0.5 * s / np.sqrt(H)},
        "phase_change": {"dist": "Normal", "mu": 0.0, "sigma": 1.0 * s},
        "sd_u": {"dist": "HalfNormal", "sigma": 1.0 * s},
        "sd_level": {"dist": "HalfNormal", "sigma": 0.5 * s},
        "sd_slope": {"dist": "HalfNormal", "sigma": 0.5 * s / H},
        "sd_trend": {"dist": "HalfNormal", "sigma": 0.5 * s / (T - 1)},
        "ind_main": {"dist": "Normal", "mu": 0.0, "sigma": 1.0 * s},
        "ind_level": {"dist": "Normal", "mu": 0.0, "sigma": 1.0 * s},
        "ind_slope": {"dist": "Normal", "mu": 0.0, "sigma": s / H},
        "beta": {"dist": "Normal", "mu": 0.0, "sigma": 1.0 * s},
        # on 1 / sqrt(phi), 1 / sqrt(alpha): the coefficient of variation of the overdispersion
        "phi": {"dist": "HalfNormal", "sigma": 0.3, "on": "inverse_sqrt"},
        "alpha": {"dist": "HalfNormal", "sigma": 0.5, "on": "inverse_sqrt"},
        "sigma": {"dist": "HalfNormal", "sigma": s_y},
        "ar_rho": {"dist": "Uniform", "lower": -0.95, "upper": 0.95},
        "ar_sd": {"dist": "HalfNormal", "sigma": 0.5 * s},
    }


# =========================================================================================
# the reference model
# =========================================================================================

COMPARISON = "(comparison)"


class Reference:
    """Independent log density of the QIC model for one (data, indicators, spec).

    Everything positional is computed here from the tables: unit order = ``data.units`` rows;
    groups of a level are its sorted names (comparison units in a ``(comparison)``
    collaborative for the baseline; only participating units for the changes).
    """

    def __init__(self, data: PanelData, im: IndicatorMatrix | None, spec: ModelSpec,
                 model: Any, dispersion: float = 1.0):
        self.data, self.im, self.spec, self.model = data, im, spec, model
        units = data.units.reset_index(drop=True)
        panel = data.panel
        self.family = spec.family or data.family
        self.N = len(units)
        self.unit_names = list(units["unit"].astype(str))
        pos = {u: i for i, u in enumerate(self.unit_names)}
        self.u = np.array([pos[str(u)] for u in panel["unit"]])
        self.t = panel["t"].to_numpy(dtype=int)
        self.T = data.periods.T
        vals = np.asarray(data.periods.values, dtype=float)
        self.tau = vals - (vals.min() + vals.max()) / 2.0
        join = np.array([np.nan if pd.isna(j) else float(j) for j in units["join_t"]])
        self.join = join
        self.part = ~np.isnan(join)
        jr = join[self.u]
        post = self.part[self.u] & (self.t >= np.where(np.isnan(jr), np.inf, jr))
        self.e = np.where(post, self.t - np.nan_to_num(jr), 0.0)
        if spec.ramp > 0:
            self.D = np.where(post, np.minimum(1.0, (self.e + 1.0) / spec.ramp), 0.0)
        else:
            self.D = post.astype(float)
        self.H = max(1.0, float(self.e.max()))
        # the design's "auto" choices (docs of ModelSpec): concurrent comparisons are rows
        # untreated in a period in which some unit is past its join
        untreated = set(self.t[~post].tolist())
        concurrent = bool(np.isin(self.t[post], list(untreated)).any())
        single = bool(self.part.any() and post.any() and not concurrent)
        self.trend = spec.trend if spec.trend != "auto" else ("linear" if single else "period")
        self.effect = spec.effect if spec.effect != "auto" else ("slope" if single else "curve")
        per_year = {"month": 12, "quarter": 4}.get(data.periods.freq)
        season = spec.seasonality
        if season == "auto":
            season = bool(per_year and self.trend != "period" and self.T >= 2 * per_year)
        self.season = bool(season)
        end = np.array([np.nan if pd.isna(x) else float(x) for x in units["end_t"]]) \
            if "end_t" in units.columns else np.full(len(units), np.nan)
        er = end[self.u]
        after = self.part[self.u] & ~np.isnan(er) & (self.t > np.nan_to_num(er, nan=np.inf))
        self.phases = bool(after.any()) and (spec.phases == "auto" or bool(spec.phases))
        self.P = after.astype(float) if self.phases else np.zeros(len(self.t))
        self.n_curve = int(self.e[post].max()) + 1 if post.any() else 1
        self.dispersion = dispersion
        self._weights: dict[str, np.ndarray] = {}
        # groups
        self.levels = tuple(lv for lv in data.levels if lv in units.columns) + ("unit",)
        self.base_of: dict[str, np.ndarray] = {}
        self.change_of: dict[str, np.ndarray] = {}
        for lv in self.levels:
            if lv == "unit":
                lab = np.array(self.unit_names, dtype=object)
            else:
                lab = np.array([COMPARISON if pd.isna(v) else str(v) for v in units[lv]],
                               dtype=object)
            names = sorted(set(lab))
            self.base_of[lv] = np.array([names.index(x) for x in lab])
            cnames = sorted(set(lab[self.part]))
            self.change_of[lv] = np.array([cnames.index(x) if p else -1
                                           for x, p in zip(lab, self.part)])
        # outcome
        self.y = {c: panel[c].to_numpy(dtype=float) for c in
                  ("numerator", "denominator", "count", "exposure", "value", "se", "weight")
                  if c in panel.columns}
        if self.family in ("binomial", "betabinomial"):
            p = (self.y["numerator"].sum() + 0.5) / (self.y["denominator"].sum() + 1.0)
            self.m, self.s_y = float(np.log(p / (1 - p))), 1.0
        elif self.family in ("poisson", "negbinomial"):
            ex = self.y.get("exposure", np.ones(len(panel)))
            self.m = float(np.log((self.y["count"].sum() + 0.5) / ex.sum()))
            self.s_y = 1.0
        else:
            v = self.y["value"]
            self.m, self.s_y = float(v.mean()), float(v.std())
        self.priors = documented_priors(self.family, self.T, self.H, self.m, self.s_y)
        # covariates (standardised over the panel rows)
        X = []
        for c in spec.covariates:
            if c in panel.columns:
                x = panel[c].to_numpy(dtype=float)
            else:
                x = units[c].to_numpy(dtype=float)[self.u]
            X.append((x - x.mean()) / x.std())
        self.X = np.column_stack(X) if X else np.zeros((len(panel), 0))
        # indicators
        self.inds: list[EncodedIndicator] = []
        if im is not None and len(im.indicators):
            names = list(spec.indicators) if spec.indicators is not None else im.names
            self.inds = [im.get(n) for n in names]
        self._cells()

    # ---- indicator cells -------------------------------------------------------------------
    def _cells(self) -> None:
        """Per (unit, indicator): the cell governing each grid period."""
        self.cell_at: dict[tuple[int, int], np.ndarray] = {}
        self.cells: list[dict[str, Any]] = []
        self.latent_pos: dict[int, int] = {}
        if not self.inds:
            return
        names = [i.name for i in self.inds]
        c = self.im.cells
        n_lat = {k: 0 for k in range(len(names))}
        for rec in c.itertuples(index=False):
            if rec.indicator not in names or str(rec.unit) not in self.unit_names:
                continue
            k = names.index(rec.indicator)
            i = self.unit_names.index(str(rec.unit))
            cid = len(self.cells)
            status, value, reference = rec.status, rec.value, False
            if not self.part[i] and status != "observed":
                # comparison units are not coded: their indicators sit at the reference level
                # (0 for continuous); these placeholders are not observed codes
                ind = self.inds[k]
                status, reference = "observed", True
                value = ind.center if ind.type == "continuous" else 0.0
            self.cells.append({"k": k, "u": i, "status": status, "value": value,
                               "probs": rec.probs, "reference": reference})
            if status != "observed" and self.inds[k].type == "continuous":
                self.latent_pos[cid] = n_lat[k]
                n_lat[k] += 1
            arr = self.cell_at.setdefault((k, i), np.full(self.T, -1))
            arr[int(rec.t_start): int(rec.t_end) + 1] = cid
        for key, arr in self.cell_at.items():
            assert (arr >= 0).all(), key

    def latent_discrete(self, unit: int) -> list[int]:
        """Ids of the unit's binary/ordinal cells whose code is not observed."""
        return [cid for cid, c in enumerate(self.cells)
                if c["u"] == unit and c["status"] != "observed"
                and self.inds[c["k"]].type != "continuous"]

    # ---- helpers -----------------------------------------------------------------------------
    def prior(self, name: str) -> dict[str, Any]:
        """Override by exact name, then by the generic name, else the documented default."""
        ov = dict(self.spec.priors)
        if name in ov:
            return dict(ov[name])
        for gen in ("sd_u", "sd_level", "sd_slope", "sd_trend", "sd_curve", "ind_main",
                    "ind_level", "ind_slope"):
            if name.startswith(gen + "_"):
                return dict(ov.get(gen, self.priors[gen]))
        return dict(ov.get(name, self.priors[name]))

    def weight_of(self, name: str, sd_name: str) -> np.ndarray:
        """The centring weights of a partially centred ``<name>`` (free ``Normal(w loc,
        sd^w)``), read from the graph like the transforms: its sigma at ``sd = 2`` is
        ``2^w``."""
        if name not in self._weights:
            from pytensor.graph.traversal import ancestors

            rv, sd = self.model[name], self.model[sd_name]
            # the distribution's parameter that depends on sd: its sigma
            sigma = next(i for i in reversed(rv.owner.inputs) if sd in set(ancestors([i])))
            val = np.asarray(sigma.eval({sd: np.array(2.0)}), dtype=float)
            w = np.atleast_1d(np.log2(val)).ravel()
            # per group in [0, 1]; a partially centred term has some strictly inside
            assert ((w >= 0) & (w <= 1)).all() and ((w > 0) & (w < 1)).any(), name
            self._weights[name] = w
        return self._weights[name]

    def mixture_units(self) -> list[int]:
        """Units with latent discrete codes (their rows are marginalised, not regular)."""
        return [i for i in range(self.N) if self.latent_discrete(i)]

    def fisher_weights(self) -> np.ndarray:
        """Per row, the information about the linear predictor at the pooled mean
        (binomial n p (1 - p), counts + 1/2, Gaussian constant), divided by the
        overdispersion of the data pilot (at least 1)."""
        y, fam = self.y, self.family
        disp = max(self.dispersion, 1.0)
        if fam in ("binomial", "betabinomial"):
            n = y["denominator"]
            pbar = (y["numerator"].sum() + 0.5) / (n.sum() + 1.0)
            return n * pbar * (1 - pbar) / disp
        if fam in ("poisson", "negbinomial"):
            return (y["count"] + 0.5) / disp
        return np.ones(len(self.t))

    def period_basis(self) -> np.ndarray:
        """The model's basis of the period deviations
        (:func:`qicstats.models.effects.detrended_basis`), checked: orthonormal, orthogonal
        to the constant and to tau (any such basis gives the same density of the deviations;
        the map from the free coordinates needs the model's)."""
        Q = detrended_basis(self.tau)
        T = self.T
        assert Q.shape == (T, T - 2)
        np.testing.assert_allclose(Q.T @ Q, np.eye(T - 2), atol=1e-12)
        np.testing.assert_allclose(Q.sum(axis=0), 0.0, atol=1e-12)
        np.testing.assert_allclose(self.tau @ Q, 0.0, atol=1e-9)
        return Q

    def labels(self, name: str) -> list[Any]:
        dims = self.model.named_vars_to_dims.get(name)
        return list(self.model.coords[dims[0]])

    # ---- the log density ---------------------------------------------------------------------
    def logp(self, v: dict[str, np.ndarray]) -> float:
        """Log density (no Jacobian) at constrained values ``v`` (by free RV name)."""
        spec, T = self.spec, self.T
        used: set[str] = set()
        lp = 0.0

        def take(name: str) -> np.ndarray:
            used.add(name)
            return np.asarray(v[name], dtype=float)

        def add_prior(name: str, prior_name: str | None = None) -> np.ndarray:
            nonlocal lp
            pr = self.prior(prior_name or name)
            if pr.get("on") == "variance":
                var = take(name + "_variance")
                lp += scipy_prior(pr)(var)
                return np.sqrt(var)
            if pr.get("on") == "inverse_sqrt":
                # the free variable is x = 1 / sqrt(q); the density of q by change of
                # variables, p(q) = p_x(q^-1/2) |dx/dq| = p_x(q^-1/2) q^-3/2 / 2, times
                # |dq/dx| = 2 x^-3 back to x
                x = take(name + "_inv_sqrt")
                q = x ** -2.0
                lp += (scipy_prior(pr)(q ** -0.5) + float(np.sum(np.log(0.5 * q ** -1.5)))
                       + float(np.sum(np.log(2.0 * x ** -3.0))))
                return q
            x = take(name)
            lp += scipy_prior(pr)(x)
            return x

        def std_normal(name: str) -> np.ndarray:
            nonlocal lp
            x = take(name)
            lp += float(stats.norm.logpdf(x).sum())
            return x

        def zero_sum_normal(name: str) -> np.ndarray:
            # N(0, 1) on the (n-1)-dimensional zero-sum subspace
            nonlocal lp
            x = take(name)
            lp += float(-0.5 * np.sum(x ** 2) - 0.5 * (x.size - 1) * np.log(2 * np.pi))
            return x

        intercept = add_prior("intercept")
        # ---- secular trend f(t) ----
        f = np.zeros(T)
        trend_slope = 0.0
        free = {rv.name for rv in self.model.free_RVs}
        if self.trend in ("linear", "rw", "spline", "period"):
            trend_slope = add_prior("trend_slope")
            f += trend_slope * self.tau
        if self.trend == "rw":
            sd = add_prior("trend_sd")
            walk = np.concatenate([[0.0], np.cumsum(sd * std_normal("trend_rw_z"))])
            f += walk - walk.mean()
        if self.trend == "spline":
            nk = spec.spline_knots or max(2, min(12, T // 6))
            inner = np.linspace(0, T - 1, nk + 2)
            knots = np.r_[[inner[0]] * 3, inner, [inner[-1]] * 3]
            B = BSpline.design_matrix(np.arange(T, dtype=float), knots, 3).toarray()
            sd = add_prior("trend_sd")
            coef = np.cumsum(sd * std_normal("trend_spline_z") * np.sqrt(T / B.shape[1]))
            w = B @ coef
            f += w - w.mean()
        if self.trend == "period":
            # period effects around the line trend_slope * tau: deviations pe = Q x with Q an
            # orthonormal (T, T - 2) basis of the vectors orthogonal to 1 and tau (checked:
            # then x ~ N(0, sd^2 I) is the normal of the deviations on that subspace),
            # non-centred (period_z), partially centred (pc = x / sd^(1 - w): the Jacobian
            # sd^((1 - w)(T - 2))), centred (period_coef), or in the decorrelated block
            # (period_effect from intervention_xi)
            sd = add_prior("period_sd")
            Q = self.period_basis()
            if "period_z" in free:
                pe = sd * Q @ std_normal("period_z")
            elif "period_pc" in free:
                w = float(self.weight_of("period_pc", "period_sd").mean())
                x = sd ** (1.0 - w) * take("period_pc")
                lp += float(stats.norm.logpdf(x, 0.0, sd).sum()) + (T - 2) * (1.0 - w) * np.log(sd)
                pe = Q @ x
            elif "period_coef" in free:
                x = take("period_coef")
                lp += float(stats.norm.logpdf(x, 0.0, sd).sum())
                pe = Q @ x
            else:
                pe = take("period_effect")
                np.testing.assert_allclose(Q @ (Q.T @ pe), pe, atol=1e-9)
                lp += float(stats.norm.logpdf(Q.T @ pe, 0.0, sd).sum())
            f += pe
        if self.season:
            season = np.array([int(lab[5:7]) - 1 for lab in self.data.periods.labels])
            f += add_prior("season_sd") * zero_sum_normal("season_z")[season]
        eta = intercept + f[self.t]

        # ---- indicators: coefficients, monotonic simplexes, latent codes ----
        main = [k for k, ind in enumerate(self.inds) if ind.role in ("main", "both")]
        mods = [k for k, ind in enumerate(self.inds) if ind.role in ("moderator", "both")]
        mo: dict[int, np.ndarray] = {}
        for k, ind in enumerate(self.inds):
            if ind.type == "ordinal":
                if ind.n_levels == 2:
                    mo[k] = np.array([0.0, 1.0])
                else:
                    s = take(f"mo_{ind.name}")
                    lp += float(stats.dirichlet.logpdf(s, np.ones(ind.n_levels - 1)))
                    mo[k] = np.concatenate([[0.0], np.cumsum(s)])

        def coefs(kind: str, ks: list[int]) -> dict[int, float]:
            if not ks:
                return {}
            names = [self.inds[k].name for k in ks]
            prs = [self.prior(f"{kind}_{n}") for n in names]
            nonlocal lp
            if all(p == prs[0] for p in prs):
                x = take(kind)
                lp += scipy_prior(prs[0])(x)
                lab = self.labels(kind)
                return {k: float(x[lab.index(self.inds[k].name)]) for k in ks}
            return {k: float(add_prior(f"{kind}_{self.inds[k].name}")) for k in ks}

        c_main = coefs("ind_main", main)
        c_lvl = coefs("ind_level", mods) if self.part.any() else {}
        c_slp = coefs("ind_slope", mods) if self.part.any() and self.effect == "slope" else {}
        latent_val: dict[int, float] = {}
        log_pi: dict[int, np.ndarray] = {}
        for k, ind in enumerate(self.inds):
            ck = [c for c in self.cells if c["k"] == k]
            obs = [c for c in ck if c["status"] == "observed" and not c["reference"]]
            if ind.type == "continuous":
                lat = [cid for cid, c in enumerate(self.cells)
                       if c["k"] == k and c["status"] != "observed"]
                if not lat:
                    continue
                mu = take(f"latent_{ind.name}_mu")
                sd = take(f"latent_{ind.name}_sd")
                lp += float(stats.norm.logpdf(mu) + stats.halfnorm.logpdf(sd))
                zobs = np.array([(float(c["value"]) - ind.center) / (ind.scale or 1.0)
                                 for c in obs])
                lp += float(stats.norm.logpdf(zobs, mu, sd).sum())
                x = take(f"latent_{ind.name}")
                lp += float(stats.norm.logpdf(x, mu, sd).sum())
                for cid in lat:
                    latent_val[cid] = float(x[self.latent_pos[cid]])
            elif any(c["status"] == "missing" for c in ck):
                pi = take(f"pi_{ind.name}")
                lp += float(stats.dirichlet.logpdf(pi, np.ones(ind.n_levels)))
                counts = np.bincount([int(c["value"]) for c in obs], minlength=ind.n_levels)
                if counts.sum():
                    lp += float(stats.multinomial.logpmf(counts, counts.sum(), pi))
                log_pi[k] = np.log(pi)

        def z_value(cid: int, fill: dict[int, int]) -> float:
            c = self.cells[cid]
            ind = self.inds[c["k"]]
            if ind.type == "continuous":
                if c["status"] == "observed":
                    return (float(c["value"]) - ind.center) / (ind.scale or 1.0)
                return latent_val[cid]
            level = int(c["value"]) if c["status"] == "observed" else fill[cid]
            return float(mo[c["k"]][level]) if ind.type == "ordinal" else float(level)

        # ---- the population part of the change (step, step + slope, or the curve) ----
        # created before the random effects: the location of the innermost centred baseline
        # level contains it (see below)
        n_rows = len(self.t)
        fix_lvl = np.zeros(n_rows)   # D * (...) part without random effects
        fix_slp = np.zeros(n_rows)   # e * (...) part without random effects
        slot = np.clip(np.rint(self.e).astype(int), 0, None)
        base_lvl = base_slp = phase = 0.0   # population values the change effects centre on
        if self.part.any():
            if self.effect in ("step", "slope"):
                base_lvl = add_prior("level_change")
                fix_lvl += base_lvl
            if self.effect == "slope":
                base_slp = add_prior("slope_change")
                fix_slp += base_slp
            if self.effect == "curve":
                # one effect per exposure time 0..max, a random walk whose start has the
                # level_change prior and whose steps have sd sd_curve
                start = self.prior("level_change")
                mu0, s0 = start["mu"], start["sigma"]
                if "effect_curve_z" in free:
                    # non-centred: mu0 + s0 z_0, then the steps sd_curve * z_h
                    sdc = add_prior("sd_curve")
                    z = std_normal("effect_curve_z")
                    curve = mu0 + s0 * z[0] + np.concatenate([[0.0], np.cumsum(sdc * z[1:])])
                else:
                    # the values themselves (free, or from the decorrelated block)
                    curve = take("effect_curve")
                    assert curve.shape == (self.n_curve,)
                    lp += float(stats.norm.logpdf(curve[0], mu0, s0))
                    if self.n_curve > 1:
                        sdc = add_prior("sd_curve")
                        lp += float(stats.norm.logpdf(np.diff(curve), 0.0, sdc).sum())
                fix_lvl += curve[slot]
            if self.phases:
                phase = add_prior("phase_change")

        def moderated(rows: np.ndarray, fill: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
            lv_r, sl_r = fix_lvl[rows].copy(), fix_slp[rows].copy()
            for k in range(len(self.inds)):
                if k not in c_lvl:
                    continue
                zk = np.array([z_value(self.cell_at[(k, self.u[r])][self.t[r]], fill)
                               for r in rows])
                lv_r += c_lvl[k] * zk
                if k in c_slp:
                    sl_r += c_slp[k] * zk
            return lv_r, sl_r

        # ---- random effects ----
        def levels(term: str) -> tuple[str, ...]:
            if term == "slope" and self.effect != "slope":
                return ()
            chosen = spec.random.get(term)
            cand = (() if term == "trend" else self.levels) if chosen is None else tuple(
                lv for lv in self.levels if lv in chosen)
            # a level needs two groups (of participating units for the changes)
            of = self.change_of if term in ("level", "slope") else self.base_of
            return tuple(lv for lv in cand if of[lv].max() + 1 >= 2)

        def centred(term: str, lv: str, name: str) -> bool:
            # centred or not is a parameterisation (same prior): an explicit setting must be
            # obeyed; under "auto" the builder decides from the data, so read its choice
            chosen = name in free or f"{name}_nested" in free
            c = spec.centered
            explicit = next((c[k] for k in (f"{term}.{lv}", lv, "default") if k in c), "auto")
            if explicit != "auto":
                assert chosen == bool(explicit), name
                assert f"{name}_pc" not in free, name
            return chosen

        def enclosing_sum(of: dict[str, np.ndarray], lv: str, effects: dict[str, np.ndarray],
                          base: float) -> np.ndarray:
            # the term's population value plus the enclosing levels' effects at each group
            # of lv (levels are nested, so any unit of a group finds its enclosing groups)
            grp = of[lv]
            rep = np.array([np.flatnonzero(grp == j)[0] for j in range(grp.max() + 1)])
            return base + sum((e[of[hl][rep]] for hl, e in effects.items()),
                              np.zeros(len(rep)))

        def random_effect(name: str, sd_name: str, term: str, lv: str, zero_sum: bool = False,
                          loc: np.ndarray | None = None) -> np.ndarray:
            nonlocal lp
            sd = add_prior(sd_name)
            if f"{name}_pc" in free:
                # partially centred with weight w (per group): the free value
                # pc = eff / sd^(1 - w) + w loc, so the effect eff ~ Normal(0, sd) (zero-sum:
                # ZeroSumNormal(sd)) times the Jacobian |d eff / d pc| = sd^(1 - w) per
                # coordinate: the same prior for any w and loc
                w = self.weight_of(f"{name}_pc", sd_name)
                pc = take(f"{name}_pc")
                if zero_sum:
                    assert np.ptp(w) < 1e-12, name
                    eff = sd ** (1.0 - w[0]) * pc
                    lp += zsn_logpdf(eff, sd) + (eff.size - 1) * (1.0 - w[0]) * np.log(sd)
                    return eff
                eff = sd ** (1.0 - w) * (pc - w * loc)
                lp += float(stats.norm.logpdf(eff, 0.0, sd).sum()
                            + np.sum((1.0 - w) * np.log(sd)))
                return eff
            if centred(term, lv, name):
                if f"{name}_nested" in free:
                    # hierarchical centring: the free value is the total with the enclosing
                    # levels, Normal(enclosing sum, sd); the level's own effect is the rest
                    assert not zero_sum, name
                    x = take(f"{name}_nested")
                    lp += float(stats.norm.logpdf(x, loc, sd).sum())
                    return x - loc
                x = take(name)
                if zero_sum:
                    lp += zsn_logpdf(x, sd)
                else:
                    lp += float(stats.norm.logpdf(x, 0.0, sd).sum())
                return x
            z = zero_sum_normal(name + "_z") if zero_sum else std_normal(name + "_z")
            return sd * z

        def main_means(lv: str) -> np.ndarray:
            # per group of lv: the mean, over its unit-periods with an observed code, of the
            # indicators' main-effect term sum_k ind_main_k z_k (0 for a group without any)
            grp = self.base_of[lv][self.u]
            n = grp.max() + 1
            out = np.zeros(n)
            for k, coef in c_main.items():
                cids = [self.cell_at[(k, self.u[r])][self.t[r]] for r in range(len(self.t))]
                obs = [r for r, cid in enumerate(cids) if self.cells[cid]["status"] == "observed"]
                z = np.array([z_value(cids[r], {}) for r in obs])
                s_ = np.bincount(grp[obs], weights=z, minlength=n)
                cnt = np.bincount(grp[obs], minlength=n)
                out += coef * np.where(cnt > 0, s_ / np.maximum(cnt, 1), 0.0)
            return out

        def time_term_means(lv: str) -> np.ndarray:
            # per group of lv: the Fisher-weighted mean, over its rows outside the
            # latent-code mixture, of the secular trend and the population part of the change
            reg = np.flatnonzero(~np.isin(self.u, self.mixture_units()))
            lv_r, sl_r = moderated(reg, {})
            vals = f[self.t[reg]] + self.D[reg] * lv_r + self.e[reg] * sl_r + self.P[reg] * phase
            w = self.fisher_weights()[reg]
            grp = self.base_of[lv][self.u[reg]]
            n = self.base_of[lv].max() + 1
            sw = np.bincount(grp, weights=w, minlength=n)
            return np.where(sw > 0, np.bincount(grp, weights=w * vals, minlength=n)
                            / np.maximum(sw, 1e-300), 0.0)

        # hierarchical (or partial, weight >= 1/2) centring of the innermost centred baseline
        # level that is not zero-sum is around its enclosing levels plus the group means of
        # the indicators' main-effect term and of the secular trend and population change
        # (build's _baseline_effects): the same model in other coordinates
        def zs_base(lv: str) -> bool:
            return spec.zero_sum and lv == "collaborative" and self.base_of[lv].max() + 1 > 1

        nested_base = [lv for lv in levels("baseline") if not zs_base(lv) and (
            f"u_{lv}_nested" in free or (f"u_{lv}_pc" in free
                                         and self.weight_of(f"u_{lv}_pc", f"sd_u_{lv}").mean()
                                         >= 0.5))]
        shift_level = nested_base[-1] if nested_base else None
        base_effects: dict[str, np.ndarray] = {}
        # a level with none of the free forms is integrated out of the centred totals of the
        # level below it (build's _marginal_parent): those totals are then jointly normal
        # within each of its groups, covariance sd^2 I + sd_parent^2 J
        marg: tuple[str, np.ndarray] | None = None
        for lv in levels("baseline"):
            zs = zs_base(lv)
            if not any(n in free for n in (f"u_{lv}", f"u_{lv}_z", f"u_{lv}_pc",
                                           f"u_{lv}_nested")):
                c = spec.centered
                assert next((c[k] for k in (f"baseline.{lv}", lv, "default") if k in c),
                            "auto") == "auto", lv
                assert marg is None and not zs, lv
                marg = (lv, add_prior(f"sd_u_{lv}"))
                continue
            loc = enclosing_sum(self.base_of, lv, base_effects, intercept)
            if lv == shift_level:
                if c_main:
                    loc = loc + main_means(lv)
                loc = loc + time_term_means(lv)
            if marg is not None:
                assert f"u_{lv}_nested" in free and lv == levels("baseline")[-1], lv
                sd, (plv, sd_p) = add_prior(f"sd_u_{lv}"), marg
                x = take(f"u_{lv}_nested")
                grp = self.base_of[lv]
                rep = np.array([np.flatnonzero(grp == j)[0] for j in range(grp.max() + 1)])
                par = self.base_of[plv][rep]
                cov = sd**2 * np.eye(len(x)) + sd_p**2 * (par[:, None] == par[None, :])
                lp += float(stats.multivariate_normal(loc, cov).logpdf(x))
                u_l = x - loc
                base_effects[lv] = u_l
                eta = eta + u_l[self.base_of[lv][self.u]]
                continue
            u_l = random_effect(f"u_{lv}", f"sd_u_{lv}", "baseline", lv, zero_sum=zs, loc=loc)
            base_effects[lv] = u_l
            eta = eta + u_l[self.base_of[lv][self.u]]
        trend_effects: dict[str, np.ndarray] = {}
        for lv in levels("trend"):
            w_l = random_effect(f"w_trend_{lv}", f"sd_trend_{lv}", "trend", lv,
                                loc=enclosing_sum(self.base_of, lv, trend_effects, trend_slope))
            trend_effects[lv] = w_l
            eta = eta + w_l[self.base_of[lv][self.u]] * self.tau[self.t]
        if spec.covariates:
            beta = add_prior("beta")
            eta = eta + self.X @ beta

        # ---- random changes ----
        lvl = np.zeros(n_rows)   # random parts of the change, per row
        slp = np.zeros(n_rows)
        if self.part.any():
            lv_levels, sl_levels = levels("level"), levels("slope")
            level_effects: dict[str, np.ndarray] = {}
            slope_effects: dict[str, np.ndarray] = {}
            for lv in self.levels:
                g = self.change_of[lv][self.u]
                g0 = np.maximum(g, 0)  # non-participating rows have D = e = 0
                if lv in spec.correlated and lv in lv_levels and lv in sl_levels:
                    L_packed = take(f"chol_{lv}")
                    l11, l21, l22 = L_packed
                    s1, s2 = l11, np.hypot(l21, l22)
                    r = l21 / s2
                    sig = [self.prior(f"sd_level_{lv}")["sigma"],
                           self.prior(f"sd_slope_{lv}")["sigma"]]
                    # sds ~ HalfNormal, correlation ~ LKJ(2) = (1 - r^2) / (4/3) on (-1, 1);
                    # |d(s1, s2, r) / d(l11, l21, l22)| = l22 / s2^2
                    lp += float(stats.halfnorm.logpdf(s1, scale=sig[0])
                                + stats.halfnorm.logpdf(s2, scale=sig[1])
                                + np.log1p(-r ** 2) - np.log(4.0 / 3.0)
                                + np.log(l22) - 2 * np.log(s2))
                    Z = std_normal(f"v_change_{lv}_z")
                    vl = Z[:, 0] * l11
                    vs = Z[:, 0] * l21 + Z[:, 1] * l22
                    lvl += vl[g0]
                    slp += vs[g0]
                    continue
                # zero-sum change effects (spec.zero_sum) at every level with two or more
                # groups: the population change is then the average change itself
                zs = spec.zero_sum and self.change_of[lv].max() + 1 > 1
                for term, chosen, effects, mean in (
                        ("level", lv_levels, level_effects, base_lvl),
                        ("slope", sl_levels, slope_effects, base_slp)):
                    if lv not in chosen:
                        continue
                    eff = random_effect(f"v_{term}_{lv}", f"sd_{term}_{lv}", term, lv, zs,
                                        loc=enclosing_sum(self.change_of, lv, effects, mean))
                    effects[lv] = eff
                    if term == "level":
                        lvl += eff[g0]
                    else:
                        slp += eff[g0]
                if (lv == "collaborative" and self.effect == "curve" and lv in lv_levels
                        and self.n_curve > 1):
                    # each collaborative's own curve: a random walk from 0 over the exposure
                    # steps, step sd sd_curve_collaborative, each step zero-sum over the
                    # collaboratives with rows at that exposure time (an orthonormal
                    # zero-sum basis per step, coordinates in step order), then centred
                    # over those collaboratives at every exposure time
                    sdc = add_prior("sd_curve_collaborative")
                    Zc = take("v_curve_collaborative_z")      # flat: sum_h (n_h - 1)
                    n_g = self.change_of[lv].max() + 1
                    post_r = self.D > 0
                    seen = np.zeros((self.n_curve, n_g), bool)
                    seen[slot[post_r], g0[post_r]] = True
                    steps = np.zeros((self.n_curve - 1, n_g))
                    k = 0
                    for h in range(1, self.n_curve):
                        obs = np.flatnonzero(seen[h])
                        if len(obs) >= 2:
                            steps[h - 1, obs] = sdc * (zero_sum_basis(len(obs))
                                                       @ Zc[k:k + len(obs) - 1])
                            k += len(obs) - 1
                    assert Zc.shape == (k,)
                    lp += float(-0.5 * np.sum(Zc ** 2) - 0.5 * k * np.log(2 * np.pi))
                    walk = np.vstack([np.zeros((1, n_g)), np.cumsum(steps, axis=0)])
                    cnt = seen.sum(axis=1)
                    for h in range(self.n_curve):
                        if cnt[h]:
                            walk[h] -= walk[h, seen[h]].mean()
                    lvl += walk[slot, g0]

        # ---- AR(1) ----
        if spec.ar1:
            rho = add_prior("ar_rho")
            sd = add_prior("ar_sd")
            Zar = std_normal("ar_z")
            eps = np.zeros((self.N, T))
            eps[:, 0] = sd * Zar[:, 0] / np.sqrt(1 - rho ** 2)
            for tt in range(1, T):
                eps[:, tt] = rho * eps[:, tt - 1] + sd * Zar[:, tt]
            eta = eta + eps[self.u, self.t]

        # ---- family parameters ----
        extra = {}
        if self.family == "betabinomial":
            extra["phi"] = add_prior("phi")
        elif self.family == "negbinomial":
            extra["alpha"] = add_prior("alpha")
        elif self.family == "gaussian" and "se" not in self.y:
            extra["sigma"] = add_prior("sigma")

        # ---- likelihood, marginalising latent discrete codes unit by unit ----
        def eta_rows(rows: np.ndarray, fill: dict[int, int]) -> np.ndarray:
            out = eta[rows].copy()
            for k in c_main:
                zk = np.array([z_value(self.cell_at[(k, self.u[r])][self.t[r]], fill)
                               for r in rows])
                out += c_main[k] * zk
            lv_r, sl_r = moderated(rows, fill)
            return (out + self.D[rows] * (lv_r + lvl[rows]) + self.e[rows] * (sl_r + slp[rows])
                    + self.P[rows] * phase)

        for i in range(self.N):
            rows = np.flatnonzero(self.u == i)
            if not len(rows):
                continue
            lat = self.latent_discrete(i)
            if not lat:
                lp += float(self.loglik(eta_rows(rows, {}), rows, extra).sum())
                continue
            terms = []
            for levels_ in itertools.product(
                    *[range(self.inds[self.cells[c]["k"]].n_levels) for c in lat]):
                fill = dict(zip(lat, levels_))
                lw = 0.0
                for cid, lev in fill.items():
                    c = self.cells[cid]
                    if c["status"] == "missing":
                        lw += log_pi[c["k"]][lev]
                    else:  # uncertain: the coders' votes
                        lw += np.log(max(float(c["probs"][lev]), 1e-12))
                terms.append(lw + self.loglik(eta_rows(rows, fill), rows, extra).sum())
            lp += float(logsumexp(terms))

        self.used = used
        return lp

    def loglik(self, eta: np.ndarray, rows: np.ndarray, extra: dict[str, Any]) -> np.ndarray:
        y = self.y
        fam = self.family
        if fam == "binomial":
            return stats.binom.logpmf(y["numerator"][rows], y["denominator"][rows], expit(eta))
        if fam == "betabinomial":
            p, phi = expit(eta), extra["phi"]
            return stats.betabinom.logpmf(y["numerator"][rows], y["denominator"][rows],
                                          p * phi, (1 - p) * phi)
        ex = y.get("exposure", np.ones(len(self.t)))[rows]
        if fam == "poisson":
            return stats.poisson.logpmf(y["count"][rows], ex * np.exp(eta))
        if fam == "negbinomial":
            mu, a = ex * np.exp(eta), extra["alpha"]  # variance mu + mu^2 / alpha
            return stats.nbinom.logpmf(y["count"][rows], a, a / (a + mu))
        if "se" in y:
            sd = y["se"][rows]
        elif "weight" in y:  # weights normalised to mean 1 scale the residual variance
            sd = extra["sigma"] / np.sqrt(y["weight"][rows] / y["weight"].mean())
        else:
            sd = extra["sigma"]
        return stats.norm.logpdf(y["value"][rows], eta, sd)


# =========================================================================================
# the models under test (one per family, many terms each)
# =========================================================================================

def rich_indicators(data: PanelData) -> IndicatorMatrix:
    """Binary (both roles), ordinal (moderator) and continuous (main) indicators with every
    kind of non-observed code: missing for the whole series, missing from a wave on,
    uncertain with unequal coder votes (whole series and from a wave on), a unit with a
    missing ordinal *and* an uncertain binary code (joint enumeration), and uncoded
    comparison units (reference level)."""
    base = tiny_indicators(data, missing_units=0, uncertain_units=0, continuous=True, seed=5)
    cells = base.cells.copy()
    T = data.periods.T
    half = T // 2
    keep = ~(((cells["unit"] == "c1u1") & cells["indicator"].isin(["coordinator", "support"]))
             | ((cells["unit"] == "c1u3") & (cells["indicator"] == "coordinator"))
             | ((cells["unit"] == "c2u1") & (cells["indicator"] == "support"))
             | ((cells["unit"] == "k2") & (cells["indicator"] == "coordinator"))
             | ((cells["unit"] == "c2u3") & (cells["indicator"] == "coordinator"))
             | (cells["indicator"] == "density") & cells["unit"].isin(["k1", "c2u2"]))
    cells = cells[keep]
    new = [
        ("c1u1", "coordinator", 0, T - 1, "uncertain", np.nan, (0.2, 0.8), pd.NA),
        ("c1u1", "support", 0, T - 1, "missing", np.nan, None, pd.NA),
        ("c1u3", "coordinator", 0, half - 1, "observed", 1.0, None, pd.NA),
        ("c1u3", "coordinator", half, T - 1, "uncertain", np.nan, (0.65, 0.35), pd.NA),
        ("c2u1", "support", 0, half - 1, "observed", 2.0, None, pd.NA),
        ("c2u1", "support", half, T - 1, "missing", np.nan, None, pd.NA),
        ("c2u3", "coordinator", 0, half - 1, "observed", 0.0, None, pd.NA),
        ("c2u3", "coordinator", half, T - 1, "missing", np.nan, None, pd.NA),
        ("k2", "coordinator", 0, T - 1, "missing", np.nan, None, pd.NA),
        ("k1", "density", 0, T - 1, "missing", np.nan, None, pd.NA),
        ("c2u2", "density", 0, half - 1, "observed", 3.1, None, pd.NA),
        ("c2u2", "density", half, T - 1, "missing", np.nan, None, pd.NA),
    ]
    cells = pd.concat([cells, pd.DataFrame(new, columns=cells.columns)], ignore_index=True)
    return IndicatorMatrix(base.indicators, cells, T)


def roles_indicators(data: PanelData) -> IndicatorMatrix:
    """All codes observed; ordinal in both roles, binary main only, continuous moderator."""
    base = tiny_indicators(data, missing_units=0, uncertain_units=0, continuous=True, seed=9)
    inds = (replace(base.indicators[0], role="main"), replace(base.indicators[1], role="both"),
            replace(base.indicators[2], role="moderator"))
    return IndicatorMatrix(inds, base.cells, base.n_periods)


def with_columns(data: PanelData, **cols: np.ndarray) -> PanelData:
    panel = data.panel.copy()
    for k, v in cols.items():
        panel[k] = v
    return replace(data, panel=panel)


def _case_binomial():
    data = tiny_panel("binomial", covariate=True, drop_rows=6, seed=3)
    spec = ModelSpec(
        trend="linear", effect="slope", seasonality=True, ramp=3, covariates=("beds",),
        random={"baseline": ("collaborative", "site", "unit"),
                "level": ("collaborative", "site", "unit"),
                "slope": ("collaborative", "site", "unit"), "trend": ("site",)},
        centered={"site": True},
        priors={"sd_u_unit": {"dist": "Exponential", "lam": 2.0},
                "ind_level_support": {"dist": "Normal", "mu": 0.1, "sigma": 0.5}})
    return data, rich_indicators(data), spec, {}


def _case_betabinomial():
    data = tiny_panel("betabinomial", sites=False, T=10, seed=4)
    spec = ModelSpec(trend="rw", effect="slope", correlated=("unit",), ar1=True, zero_sum=False,
                     random={"baseline": ("collaborative", "unit"), "level": ("unit",),
                             "slope": ("unit",)},
                     priors={"phi": {"dist": "Gamma", "alpha": 3.0, "beta": 0.05}})
    return data, None, spec, {"ar_rho": (-0.95, 0.95)}


def _case_poisson():
    data = tiny_panel("poisson", T=14, drop_rows=3, seed=5)
    spec = ModelSpec(trend="spline", effect="slope", spline_knots=3,
                     random={"baseline": ("unit",), "level": ("collaborative",), "slope": ()},
                     priors={"sd_u": {"dist": "HalfCauchy", "beta": 1.0}})
    return data, roles_indicators(data), spec, {}


def _case_negbinomial():
    data = tiny_panel("negbinomial", T=9, seed=6)
    spec = ModelSpec(trend="period", effect="slope", centered={"default": True},
                     random={"baseline": ("collaborative", "site"), "level": ("site",),
                             "slope": ("collaborative",), "trend": ("unit",)})
    return data, None, spec, {}


def _case_gaussian_weights():
    data = tiny_panel("gaussian", sites=False, seed=7)
    rng = np.random.default_rng(70)
    n = len(data.panel)
    data = with_columns(data, weight=rng.uniform(0.5, 3.0, n), load=rng.normal(5, 2, n))
    spec = ModelSpec(trend="linear", effect="slope", covariates=("load",), ramp=2)
    return data, None, spec, {}


def _case_gaussian_se():
    data = tiny_panel("gaussian", n_collaboratives=1, n_comparison=2, T=8, seed=8)
    rng = np.random.default_rng(80)
    data = with_columns(data, se=rng.uniform(0.1, 0.5, len(data.panel)))
    spec = ModelSpec(trend="none", effect="step",
                     random={"baseline": ("unit",), "level": (), "slope": ()},
                     priors={"intercept": {"dist": "Normal", "mu": 0.0, "sigma": 5.0},
                             "sd_u_unit": {"dist": "InverseGamma", "alpha": 2.0, "beta": 0.5,
                                           "on": "variance"}})
    return data, None, spec, {}


def with_end(data: PanelData, ends: dict[str, int]) -> PanelData:
    """``data`` with end periods (grid indices) for some units."""
    units = data.units.copy()
    units["end_t"] = pd.array([ends.get(str(u), pd.NA) for u in units["unit"]], dtype="Int64")
    return replace(data, units=units)


def _case_curve_block():
    """The defaults on a controlled panel (trend and effect "auto": period effects and the
    exposure-time curve, phases from end periods), with the period effects and the curve
    centred, so both are in the decorrelated block; collaborative curve deviations; the
    default 1/sqrt(phi) prior; baselines partially / hierarchically centred from the data."""
    data = with_end(tiny_panel("betabinomial", T=12, seed=11), {"c1u1": 8, "c1u2": 8, "c2u1": 9})
    return data, None, ModelSpec(centered={"period": True, "curve": True}), {}


def _case_curve_plain():
    """The curve non-centred outside the block (effect_curve_z), with a ramp; the period
    deviations non-centred (period_z: partially centred only with a fixed sd, which the
    reference does not write) and unit baselines partially centred (weights read from the
    data)."""
    data = tiny_panel("binomial", seed=1)
    return data, None, ModelSpec(ramp=2, centered={"curve": False}), {}


def _case_curve_walk():
    """The curve centred outside the block (a free GaussianRandomWalk), with a linear trend
    and seasonality (a parametric trend: every exposure time identified)."""
    data = tiny_panel("poisson", T=14, seed=13, sites=False)
    spec = ModelSpec(trend="linear", effect="curve", seasonality=True, decorrelate=False,
                     centered={"curve": True})
    return data, None, spec, {}


CASES = {
    "binomial": _case_binomial,
    "betabinomial": _case_betabinomial,
    "poisson": _case_poisson,
    "negbinomial": _case_negbinomial,
    "gaussian_weights": _case_gaussian_weights,
    "gaussian_se": _case_gaussian_se,
    "curve_block": _case_curve_block,
    "curve_plain": _case_curve_plain,
    "curve_walk": _case_curve_walk,
}
#: the free variables each new case must have (the term it is there for is really in it)
CASE_TERMS = {
    "curve_block": {"intervention_xi", "period_sd", "sd_curve", "v_curve_collaborative_z",
                    "sd_curve_collaborative", "phase_change", "phi_inv_sqrt"},
    "curve_plain": {"effect_curve_z", "period_z", "u_unit_pc", "v_curve_collaborative_z"},
    "curve_walk": {"effect_curve", "trend_slope", "season_z", "v_curve_collaborative_z"},
    "negbinomial": {"alpha_inv_sqrt"},
    "gaussian_se": {"intervention_xi"},
}


@dataclass(repr=False)
class Compiled:
    name: str
    qm: Any
    ref: Reference
    bounds: dict[str, tuple[float, float]]
    fn: Any   # point -> [logp with Jacobian, logp without, gradient]
    ip: dict[str, np.ndarray]  # the model's initial point (unconstrained)

    def __repr__(self) -> str:  # keep pytest's failure reports short
        return f"<Compiled {self.name}>"


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> Compiled:
    data, im, spec, bounds = CASES[request.param]()
    # the tiny panels have two collaboratives and a few sites: spread_min_groups=2 keeps
    # their spreads learned, the form the reference writes out (the fixed spreads of fewer
    # groups are constants: tests/test_model_build.py)
    spec = replace(spec, spread_min_groups=2)
    qm = build(data, spec, im)
    m = qm.model
    fn = m.compile_fn([m.logp(jacobian=True), m.logp(jacobian=False), m.dlogp(jacobian=True)],
                      inputs=m.value_vars, point_fn=True)
    return Compiled(request.param, qm, Reference(data, im, spec, m, qm.pilot.dispersion),
                    bounds, fn, m.initial_point())


def _points(case: Compiled, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Random points: the initial point plus N(0, 0.4) jitter on every unconstrained value."""
    rng = np.random.default_rng(seed)
    return [{k: v + rng.normal(0, 0.4, np.shape(v)) for k, v in case.ip.items()}
            for _ in range(n)]


def test_logp_matches_reference(case: Compiled) -> None:
    """log density (with and without Jacobian) at random points; finite gradient."""
    m = case.qm.model
    free = {rv.name for rv in m.free_RVs}
    assert CASE_TERMS.get(case.name, set()) <= free, CASE_TERMS[case.name] - free
    if case.name == "curve_block":   # period effects and the whole curve in the block
        blk = case.qm.intervention
        assert (blk.names, blk.n_period, blk.n_curve) == (('trend_slope',), case.ref.T - 2,
                                                              case.ref.n_curve)
    for point in _points(case, N_POINTS, seed=123):
        lp_jac, lp_nojac, grad = case.fn(point)
        vals, logj = constrain(m, point, case.bounds)
        vals, logdet = expand_block(case.qm, vals)
        ref = case.ref.logp(vals) + logdet
        assert used_free(case.qm, case.ref.used) == {rv.name for rv in m.free_RVs}
        np.testing.assert_allclose(lp_nojac, ref, rtol=RTOL)
        np.testing.assert_allclose(lp_jac, ref + logj, rtol=RTOL)
        assert np.all(np.isfinite(grad))


def test_gradient_matches_reference_finite_difference(case: Compiled) -> None:
    """The model's gradient along a random direction equals a central difference of the
    reference (step 1e-5: truncation error ~1e-10 * third derivative, far below the 1e-4
    relative tolerance)."""
    m = case.qm.model
    point = _points(case, 1, seed=7)[0]
    _, _, grad = case.fn(point)
    rng = np.random.default_rng(8)
    direction = {k: rng.normal(size=np.shape(v)) for k, v in point.items()}
    # the gradient vector is ordered like model.value_vars
    dvec = np.concatenate([np.ravel(direction[v.name]) for v in m.value_vars])
    h = 1e-5

    def f(sign: float) -> float:
        p = {k: v + sign * h * direction[k] for k, v in point.items()}
        vals, logj = constrain(m, p, case.bounds)
        vals, logdet = expand_block(case.qm, vals)
        return case.ref.logp(vals) + logdet + logj

    fd = (f(1.0) - f(-1.0)) / (2 * h)
    np.testing.assert_allclose(float(grad @ dvec), fd, rtol=1e-4, atol=1e-6)


def test_documented_defaults_are_the_priors_used() -> None:
    """Every default prior the builder records equals the documented table (no compile)."""
    for name, make in CASES.items():
        data, im, spec, _ = make()
        spec = replace(spec, priors={})
        qm = build(data, spec, im)
        ref = Reference(data, im, spec, qm.model, qm.pilot.dispersion)
        assert qm.priors
        for pname, pr in qm.priors.items():
            want = ref.prior(pname)
            got = pr.to_dict()
            assert got["dist"] == want["dist"], (name, pname)
            assert got.get("on", "value") == want.get("on", "value"), (name, pname)
            for k, v in want.items():
                if k not in ("dist", "on"):
                    np.testing.assert_allclose(got[k], v, rtol=1e-12, err_msg=f"{name} {pname}")


def test_reference_transform_inverses() -> None:
    """The NumPy simplex inverse's log-Jacobian agrees with a finite-difference Jacobian."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=3)
    y, lj = _simplex_backward(x)
    h = 1e-6
    J = np.column_stack([(_simplex_backward(x + h * e)[0] - _simplex_backward(x - h * e)[0])
                         [:3] / (2 * h) for e in np.eye(3)])
    np.testing.assert_allclose(lj, np.linalg.slogdet(J)[1], rtol=1e-7)
    assert np.isclose(y.sum(), 1.0)
    # log-gamma constant of a flat Dirichlet (sanity of SciPy's parametrisation)
    np.testing.assert_allclose(stats.dirichlet.logpdf(y, np.ones(4)), gammaln(4.0))


@pytest.mark.parametrize("family, name, scale", [("betabinomial", "phi", 0.3),
                                                 ("negbinomial", "alpha", 0.5)])
def test_inverse_sqrt_prior_implies_the_documented_density(family: str, name: str,
                                                           scale: float) -> None:
    """HalfNormal(s) on x = 1/sqrt(q): the model's q has density p_x(q^-1/2) q^-3/2 / 2
    (the Jacobian |dx/dq|), which integrates to 1, and its draws follow the implied CDF
    P(q <= c) = 1 - (2 Phi(c^-1/2 / s) - 1). No compile of the model's log density."""
    import pymc as pm
    from scipy.integrate import quad

    qm = build(tiny_panel(family, sites=False), ModelSpec(trend="linear", effect="step"))
    m = qm.model
    x = m[f"{name}_inv_sqrt"]
    assert type(m.rvs_to_transforms[x]).__name__ == "LogTransform"
    assert qm.priors[name].to_dict() == {"dist": "HalfNormal", "sigma": scale,
                                         "on": "inverse_sqrt"}

    def dens(q: float) -> float:
        return float(stats.halfnorm.pdf(q ** -0.5, scale=scale) * 0.5 * q ** -1.5)

    # split at 1/s^2 (the bulk) so that quad sees the peak; its error estimate is ~1e-10
    total = quad(dens, 0, 1 / scale**2, limit=200)[0] + quad(dens, 1 / scale**2, np.inf,
                                                            limit=200)[0]
    assert total == pytest.approx(1.0, abs=1e-7)
    # the model's prior log density of x at a point is HalfNormal(s)'s (no compile: eval)
    val = np.array(0.37)   # float64: a Python float would be autocast to float32
    # (double precision throughout: Prior.create passes its parameters as float64 arrays, so
    # a parameter float32 holds exactly, like sigma = 0.5, is no float32 constant)
    assert float(pm.logp(x, val).eval(mode="FAST_COMPILE")) == pytest.approx(
        stats.halfnorm.logpdf(val, scale=scale), rel=1e-12)
    draws = pm.draw(m[name], 4000, random_seed=3)
    np.testing.assert_allclose(draws, pm.draw(x, 4000, random_seed=3) ** -2.0, rtol=1e-12)

    def cdf(c: np.ndarray) -> np.ndarray:
        return 1.0 - (2.0 * stats.norm.cdf(c ** -0.5 / scale) - 1.0)

    # a fixed seed: deterministic; a prior placed on q itself (no Jacobian) gives p ~ 0
    assert stats.kstest(draws, cdf).pvalue > 1e-3
