"""Posterior predictive draws, pointwise log likelihood and standardised residuals (NumPy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from qicstats.models.build import QICModel, observed_values
from qicstats.results.draws import Predictor, param_chunks

_EXTRA = {"betabinomial": "phi", "negbinomial": "alpha"}


def _extra(idata: xr.DataTree, family: str, sl: slice) -> np.ndarray | None:
    name = _EXTRA.get(family) or ("sigma" if family == "gaussian" else None)
    if name and name in idata.posterior:
        a = np.asarray(idata.posterior[name].values).reshape(-1)
        return a[sl]
    return None


def _gauss_sd(qm: QICModel, sig: np.ndarray | None) -> np.ndarray:
    y = qm.design.y
    if "se" in y:
        return y["se"][None, :]
    assert sig is not None  # without known standard errors the model has sigma
    s = sig[:, None]
    if "weight" in y:
        w = y["weight"]
        s = s / np.sqrt(w / w.mean())[None, :]
    return s


def predictive(qm: QICModel, idata: xr.DataTree, *, seed: int = 0, max_draws: int = 400
               ) -> dict[str, np.ndarray]:
    """Posterior predictive draws of the observed outcome at every observed row.

    Returns ``{"mean": (S, n) expected outcome, "yrep": (S, n) simulated outcome}`` on the
    outcome's own scale (numerator, count or value), for at most ``max_draws`` evenly thinned
    draws. Seeded: same posterior + seed -> same draws.
    """
    d = qm.design
    rng = np.random.default_rng(seed)
    pred = Predictor(qm, d.rows)
    means, reps = [], []
    total = int(idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"])
    keep = np.unique(np.linspace(0, total - 1, min(max_draws, total)).astype(int))
    for sl, p in param_chunks(qm, idata):
        idx = keep[(keep >= sl.start) & (keep < sl.stop)] - sl.start
        if not len(idx):
            continue
        p = {k: v[idx] for k, v in p.items()}
        mu = pred.mean(p)
        extra = _extra(idata, d.family, sl)
        extra = extra[idx] if extra is not None else None
        m, r = _simulate(qm, mu, extra, rng)
        means.append(m)
        reps.append(r)
    return {"mean": np.concatenate(means), "yrep": np.concatenate(reps)}


def _simulate(qm: QICModel, mu: np.ndarray, extra: np.ndarray | None,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    d = qm.design
    fam = d.family
    if fam in ("binomial", "betabinomial"):
        n = d.y["denominator"][None, :].astype(np.int64)
        p = np.clip(mu, 1e-12, 1 - 1e-12)
        if fam == "betabinomial":
            assert extra is not None  # a beta-binomial model has phi
            phi = extra[:, None]
            p = rng.beta(p * phi, (1 - p) * phi)
        return mu * n, rng.binomial(np.broadcast_to(n, p.shape), p)
    if fam in ("poisson", "negbinomial"):
        lam = mu * d.y["exposure"][None, :]
        if fam == "negbinomial":
            assert extra is not None  # a negative binomial model has alpha
            a = extra[:, None]
            lam_g = rng.gamma(a, lam / a)
            return lam, rng.poisson(lam_g)
        return lam, rng.poisson(lam)
    sd = _gauss_sd(qm, extra)
    return mu, mu + rng.normal(size=mu.shape) * sd


def pointwise_loglik(qm: QICModel, idata: xr.DataTree) -> tuple[np.ndarray, list[str]]:
    """Log likelihood per draw and observation, for PSIS-LOO.

    Observations are the observed rows of units without latent codes, plus one entry per unit
    with latent codes (its rows' likelihood, marginalised over the codes). Returns an array
    ``(chains, draws, n_obs)`` and the unit of each observation.
    """
    d = qm.design
    assert d.regular is not None  # build_design marks the regular rows
    reg = np.flatnonzero(d.regular)
    rows = d.rows.subset(reg)
    pred = Predictor(qm, rows)
    y = observed_values(d, reg)
    out = []
    for sl, p in param_chunks(qm, idata):
        mu = pred.mean(p)
        extra = _extra(idata, d.family, sl)
        ll = _logpmf(qm, reg, y, mu, extra)
        if "mix_unit_loglik" in idata.posterior:
            mix = np.asarray(idata.posterior["mix_unit_loglik"].values)
            mix = mix.reshape((-1,) + mix.shape[2:])[sl]
            ll = np.concatenate([ll, mix], axis=1)
        out.append(ll)
    ll = np.concatenate(out)
    ch = int(idata.posterior.sizes["chain"])
    units = [d.unit_names[u] for u in d.rows.unit[reg]]
    if d.mixture is not None:
        units += [d.unit_names[u] for u in d.mixture.units]
    return ll.reshape(ch, -1, ll.shape[1]), units


def _logpmf(qm: QICModel, idx: np.ndarray, y: np.ndarray, mu: np.ndarray,
            extra: np.ndarray | None) -> np.ndarray:
    d = qm.design
    fam = d.family
    if fam in ("binomial", "betabinomial"):
        n = d.y["denominator"][idx][None, :]
        p = np.clip(mu, 1e-12, 1 - 1e-12)
        if fam == "binomial":
            return stats.binom.logpmf(y[None, :], n, p)
        assert extra is not None  # a beta-binomial model has phi
        phi = extra[:, None]
        return stats.betabinom.logpmf(y[None, :], n, p * phi, (1 - p) * phi)
    if fam in ("poisson", "negbinomial"):
        lam = mu * d.y["exposure"][idx][None, :]
        if fam == "poisson":
            return stats.poisson.logpmf(y[None, :], lam)
        assert extra is not None  # a negative binomial model has alpha
        a = extra[:, None]
        return (special.gammaln(y + a) - special.gammaln(a) - special.gammaln(y + 1)
                + a * np.log(a / (a + lam)) + y * np.log(lam / (a + lam)))
    sd = _gauss_sd(qm, extra)
    if sd.shape[1] != len(idx) and sd.shape[1] != 1:
        sd = sd[:, idx]
    return stats.norm.logpdf(y[None, :], mu, sd)


def residual_frame(qm: QICModel, ppc: dict[str, np.ndarray]) -> pd.DataFrame:
    """Standardised posterior predictive residuals per observed row.

    ``residual = (y - E[y_rep]) / sd(y_rep)``, with ``coverage`` flags for the central 90 %
    predictive interval; columns ``unit``, ``period``, ``t``, ``observed``, ``expected``,
    ``lower``, ``upper``, ``residual``, ``outside``.
    """
    d = qm.design
    y = observed_values(d, np.arange(d.rows.n))
    yrep = ppc["yrep"]
    ex = yrep.mean(axis=0)
    sd = yrep.std(axis=0, ddof=1)
    sd[sd == 0] = np.nan
    lo, hi = np.quantile(yrep, [0.05, 0.95], axis=0)
    return pd.DataFrame({
        "unit": [d.unit_names[u] for u in d.rows.unit],
        "period": [d.period_labels[t] for t in d.rows.t],
        "t": d.rows.t,
        "observed": y,
        "expected": ex,
        "lower": lo,
        "upper": hi,
        "residual": (y - ex) / sd,
        "outside": (y < lo) | (y > hi),
    })
