"""The fused binomial and beta-binomial likelihood Ops and their vectorisable math
(qicstats.models.likelihood, qicstats.models._fastmath)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import digamma, expit, gammaln
from scipy.stats import betabinom, binom

from qicstats.models._fastmath import (
    exp_neg_array,
    lgamma_digamma_array,
    log1p_unit_array,
    log_pos_array,
)
from qicstats.models.likelihood import (
    betabinomial_logit,
    betabinomial_logit_terms,
    binomial_logit,
    binomial_logit_terms,
    register_backend,
)

EPS = np.finfo(float).eps


def _ulps(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.max(np.abs(got - ref) / np.maximum(np.abs(ref), np.finfo(float).tiny)) / EPS)


def test_exp_neg_within_2_ulp_over_its_domain() -> None:
    a = np.concatenate([np.linspace(0.0, 60.0, 200_001), np.linspace(60.0, 700.0, 10_001),
                        np.geomspace(1e-300, 1.0, 1000)])
    assert _ulps(exp_neg_array(a), np.exp(-a)) <= 2.0
    # beyond the clamp the value stays a tiny positive normal number, not 0 or garbage
    far = exp_neg_array(np.array([701.0, 745.0, 1e6]))
    assert np.all(far == np.exp(-700.0))


def test_fma_rounds_once() -> None:
    """The kernels' ``fma`` is a fused multiply-add (the product is not rounded on its own),
    whichever way Numba inlines it: that is what keeps the kernels reproducible without
    fast-math."""
    import numba

    from qicstats.models._fastmath import fma

    fused = numba.njit(lambda a, b, c: fma(a, b, c))
    a, b = 1.0 + 2.0**-30, 1.0 - 2.0**-30          # a * b = 1 - 2^-60 exactly
    assert a * b - 1.0 == 0.0                       # rounded product, then the sum
    assert fused(a, b, -1.0) == -(2.0**-60)         # one rounding of the exact result


def test_log1p_unit_within_2_ulp_over_its_domain() -> None:
    x = np.concatenate([np.linspace(0.0, 1.0, 300_001), np.geomspace(1e-300, 1.0, 2000)])
    assert _ulps(log1p_unit_array(x), np.log1p(x)) <= 2.5
    assert log1p_unit_array(np.zeros(1))[0] == 0.0


def _random_rows(seed: int, m: int, n_max: int, eta_sd: float, eta_edge: list[float],
                 y_edge: list[str]) -> dict[str, np.ndarray]:
    """``m`` random rows (n, y, eta, log C(n, y)); the first rows get the edge cases
    ``eta_edge`` with ``y`` = "0", "1" or "n"."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, n_max, m).astype(float)
    y = np.floor(n * rng.uniform(0, 1, m))
    eta = rng.normal(-0.5, eta_sd, m)
    eta[:len(eta_edge)] = eta_edge
    for i, e in enumerate(y_edge):
        y[i] = n[i] if e == "n" else float(e)
    return {"eta": eta, "y": y, "n": n,
            "lc": gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)}


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    return _random_rows(20261122, 5000, 200, 3.0, [0.0, 1e-12, -1e-12, 40.0, -40.0, -300.0],
                        ["0", "1", "0", "n", "0", "0"])


def test_reference_terms_equal_scipy_and_the_analytic_derivative(rows) -> None:
    logp, d = binomial_logit_terms(rows["eta"], rows["y"], rows["n"], rows["lc"])
    ref = binom.logpmf(rows["y"], rows["n"], expit(rows["eta"]))
    ok = np.isfinite(ref)          # scipy underflows to -inf where the Op stays finite
    assert ok.mean() > 0.99
    np.testing.assert_allclose(logp[ok], ref[ok], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(d, rows["y"] - rows["n"] * expit(rows["eta"]), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_op_value_and_gradient_in_each_backend(rows, mode) -> None:
    register_backend("numba")
    eta = pt.vector("eta")
    total = binomial_logit(eta, rows["y"], rows["n"], rows["lc"])[0].sum()
    f = pytensor.function([eta], [total, pytensor.grad(total, eta)], mode=mode)
    value, grad = f(rows["eta"])
    logp, d = binomial_logit_terms(rows["eta"], rows["y"], rows["n"], rows["lc"])
    # the Numba kernel's exp/log1p are within 2 ulp of NumPy's: relative 1e-13 on the sum
    assert value == pytest.approx(logp.sum(), rel=1e-13)
    np.testing.assert_allclose(grad, d, rtol=1e-13, atol=1e-12)


def test_op_gradient_matches_finite_differences(rows) -> None:
    sl = slice(6, 40)
    pytensor.gradient.verify_grad(
        lambda e: binomial_logit(e, rows["y"][sl], rows["n"][sl], rows["lc"][sl])[0].sum(),
        [rows["eta"][sl]], rng=np.random.default_rng(1))


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_nan_predictor_gives_nan_density(mode) -> None:
    register_backend("numba")
    eta = pt.vector("eta")
    f = pytensor.function([eta], binomial_logit(eta, [3.0, 0.0], [10.0, 10.0], [0.0, 0.0])[0],
                          mode=mode)
    assert np.isnan(f(np.array([np.nan, np.nan]))).all()


def test_op_in_jax_mode(rows) -> None:
    pytest.importorskip("jax")
    register_backend("jax")
    eta = pt.vector("eta")
    total = binomial_logit(eta, rows["y"], rows["n"], rows["lc"])[0].sum()
    f = pytensor.function([eta], [total, pytensor.grad(total, eta)], mode="JAX")
    value, grad = f(rows["eta"])
    logp, d = binomial_logit_terms(rows["eta"], rows["y"], rows["n"], rows["lc"])
    assert float(value) == pytest.approx(logp.sum(), rel=1e-12)
    np.testing.assert_allclose(np.asarray(grad), d, rtol=1e-12, atol=1e-12)


def test_log_pos_within_2_ulp_over_its_domain() -> None:
    x = np.concatenate([np.geomspace(1e-300, 1e300, 200_001), np.linspace(0.5, 2.5, 200_001)])
    ref = np.log(x)
    got = log_pos_array(x)
    off = ref != 0
    assert _ulps(got[off], ref[off]) <= 2.0
    assert log_pos_array(np.ones(1))[0] == 0.0


def test_lgamma_digamma_absolute_error_below_1e_14() -> None:
    """Absolute error relative to max(1, |value|): the log density needs absolute accuracy
    (the sampler compares sums of thousands of rows); near the zeros of lgamma (x = 1, 2) the
    shift by 8 leaves a few ulp of lgamma(x + 8)."""
    x = np.concatenate([np.geomspace(1e-300, 1e250, 100_001), np.linspace(1e-3, 30.0, 300_001),
                        np.arange(1.0, 200.0)])
    lg, dg = lgamma_digamma_array(x)
    for got, ref in ((lg, gammaln(x)), (dg, digamma(x))):
        assert np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref))) < 1e-14
    # at integers the values are lgamma(k) = log((k-1)!) and digamma(k) = H(k-1) - gamma
    k = np.arange(1, 20)
    np.testing.assert_allclose(lgamma_digamma_array(k.astype(float))[0],
                               [np.log(float(np.prod(np.arange(1, j)))) for j in k],
                               rtol=0, atol=1e-14)


@pytest.fixture(scope="module")
def bb_rows() -> dict[str, Any]:
    return {**_random_rows(20261123, 4000, 300, 2.5, [0.0, 1e-12, 30.0, -30.0, -300.0, 5.0],
                           ["0", "1", "n", "0", "0", "n"]), "phi": 23.7}


def test_betabinomial_reference_terms_equal_scipy_and_finite_differences(bb_rows) -> None:
    r = bb_rows
    logp, d_eta, d_phi = betabinomial_logit_terms(r["eta"], r["phi"], r["y"], r["n"], r["lc"])
    mu = expit(r["eta"])
    ref = betabinom.logpmf(r["y"], r["n"], mu * r["phi"], (1 - mu) * r["phi"])
    ok = np.isfinite(ref)
    assert ok.mean() > 0.99
    np.testing.assert_allclose(logp[ok], ref[ok], rtol=1e-9, atol=1e-9)
    # central differences (step 1e-6: truncation ~1e-12, rounding ~1e-10 relative)
    h = 1e-6
    sl = slice(6, None)
    up = betabinomial_logit_terms(r["eta"] + h, r["phi"], r["y"], r["n"], r["lc"])[0]
    dn = betabinomial_logit_terms(r["eta"] - h, r["phi"], r["y"], r["n"], r["lc"])[0]
    np.testing.assert_allclose(d_eta[sl], ((up - dn) / (2 * h))[sl], rtol=1e-5, atol=1e-6)
    up = betabinomial_logit_terms(r["eta"], r["phi"] + h, r["y"], r["n"], r["lc"])[0]
    dn = betabinomial_logit_terms(r["eta"], r["phi"] - h, r["y"], r["n"], r["lc"])[0]
    np.testing.assert_allclose(d_phi[sl], ((up - dn) / (2 * h))[sl], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_betabinomial_op_value_and_gradients_in_each_backend(bb_rows, mode) -> None:
    r = bb_rows
    register_backend("numba")
    eta, phi = pt.vector("eta"), pt.scalar("phi")
    total = betabinomial_logit(eta, phi, r["y"], r["n"], r["lc"])[0].sum()
    f = pytensor.function([eta, phi], [total, *pytensor.grad(total, [eta, phi])], mode=mode)
    value, g_eta, g_phi = f(r["eta"], r["phi"])
    logp, d_eta, d_phi = betabinomial_logit_terms(r["eta"], r["phi"], r["y"], r["n"], r["lc"])
    # lgamma/digamma within 1e-14 absolute per row; the sum is about -1e4: rel 1e-13
    assert value == pytest.approx(logp.sum(), rel=1e-13)
    np.testing.assert_allclose(g_eta, d_eta, rtol=1e-10, atol=1e-11)
    assert float(g_phi) == pytest.approx(d_phi.sum(), rel=1e-10, abs=1e-9)


def test_betabinomial_kernel_equals_the_reference_terms(bb_rows) -> None:
    from qicstats.models._fastmath import betabinomial_logit_kernel

    r = bb_rows
    got = betabinomial_logit_kernel(r["eta"], np.array(r["phi"]), r["y"], r["n"], r["lc"])
    ref = betabinomial_logit_terms(r["eta"], r["phi"], r["y"], r["n"], r["lc"])
    for g, e in zip(got, ref):
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-11)
    # y = 0 and y = n: the matching lgamma/digamma differences are exactly zero
    y0 = np.zeros(3)
    n = np.array([5.0, 50.0, 500.0])
    lp, d_eta, _ = betabinomial_logit_kernel(np.zeros(3), np.array(2.0), y0, n, np.zeros(3))
    np.testing.assert_allclose(lp, betabinom.logpmf(0, n, 1.0, 1.0), rtol=1e-13)


def test_betabinomial_op_gradient_matches_finite_differences(bb_rows) -> None:
    r = bb_rows
    sl = slice(6, 40)
    pytensor.gradient.verify_grad(
        lambda e, p: betabinomial_logit(e, p, r["y"][sl], r["n"][sl], r["lc"][sl])[0].sum(),
        [r["eta"][sl], np.array(r["phi"])], rng=np.random.default_rng(1))


def test_betabinomial_op_rejects_a_vector_phi() -> None:
    with pytest.raises(TypeError, match="scalar phi"):
        betabinomial_logit(pt.vector("eta"), pt.vector("phi"), [1.0], [2.0], [0.0])


def test_betabinomial_op_in_jax_mode(bb_rows) -> None:
    pytest.importorskip("jax")
    r = bb_rows
    register_backend("jax")
    eta, phi = pt.vector("eta"), pt.scalar("phi")
    total = betabinomial_logit(eta, phi, r["y"], r["n"], r["lc"])[0].sum()
    f = pytensor.function([eta, phi], [total, *pytensor.grad(total, [eta, phi])], mode="JAX")
    value, g_eta, g_phi = f(r["eta"], r["phi"])
    logp, d_eta, d_phi = betabinomial_logit_terms(r["eta"], r["phi"], r["y"], r["n"], r["lc"])
    assert float(value) == pytest.approx(logp.sum(), rel=1e-10)
    np.testing.assert_allclose(np.asarray(g_eta), d_eta, rtol=1e-8, atol=1e-8)
