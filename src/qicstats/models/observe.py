"""The likelihood of a QIC panel: the outcome families' observed variables and the exact
marginalisation of latent indicator codes.

Binomial, beta-binomial and Poisson rows use lean log densities (the binomial and
beta-binomial as the fused Ops of :mod:`qicstats.models.likelihood`); rows of units with
latent codes are expanded over their code configurations and marginalised unit by unit
(:func:`mixture_likelihood`).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from qicstats.models.design import Design
from qicstats.models.likelihood import (
    betabinomial_logit,
    binomial_logit,
    register_backend,
)
from qicstats.models.linpred import linear_predictor


def family_params(d: Design, prior: Any) -> dict[str, Any]:
    """The outcome family's own parameter, by name: ``phi`` (beta-binomial), ``alpha``
    (negative binomial) or ``sigma`` (Gaussian without known standard errors); none otherwise.

    ``prior`` maps a parameter name to its :class:`~qicstats.models.priors.Prior`.
    """
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
        return pm.NegativeBinomial.dist(mu=pt.exp(eta + y["log_exposure"][idx]),
                                        alpha=extra["alpha"])
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
    # the Op has two outputs, so the call gives a list (typed Variable | list[Variable])
    return cast(list[Any], binomial_logit(eta, value, n, log_choose))[0]


def _binomial_random(n: np.ndarray, log_choose: np.ndarray, eta: np.ndarray,
                     rng: np.random.Generator | None = None, size: Any = None) -> np.ndarray:
    rng = rng if rng is not None else np.random.default_rng()
    return rng.binomial(np.asarray(n).astype(np.int64), 1.0 / (1.0 + np.exp(-eta)),
                        size=size).astype(float)


def _betabinomial_logp(value: Any, n: Any, log_choose: Any, eta: Any, phi: Any) -> Any:
    # log C(n, y) + log B(y + a, n - y + b) - log B(a, b), a = mu phi, b = (1 - mu) phi, and
    # its gradient in one fused pass (qicstats.models.likelihood). PyMC hands the scalar phi
    # over expanded to the value's dimensions (shape (1,)): squeeze it back
    return cast(list[Any], betabinomial_logit(eta, pt.squeeze(phi), value, n, log_choose))[0]


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
    Ops, whose Numba kernels are registered here).
    """
    n = d.y["denominator"][idx].astype(float)
    y = np.asarray(obs, dtype=float)
    register_backend("numba")
    return n, y, gammaln(n + 1.0) - gammaln(y + 1.0) - gammaln(n - y + 1.0)


def observe(d: Design, eta: Any, idx: np.ndarray, extra: dict[str, Any]) -> None:
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


def mixture_likelihood(d: Design, p: dict[str, Any], extra: dict[str, Any]) -> None:
    """Marginalise latent discrete codes unit by unit (exact enumeration)."""
    mix = d.mixture
    # called only for a design with a mixture, whose regular rows build_design marks
    assert mix is not None and d.regular is not None
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


__all__ = ["family_dist", "family_params", "mixture_likelihood", "observe", "observed_values"]
