"""The fused binomial likelihood Op and its vectorisable math (qicstats.models.likelihood)."""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import expit, gammaln
from scipy.stats import binom

from qicstats.models._fastmath import exp_neg_array, log1p_unit_array
from qicstats.models.likelihood import binomial_logit, binomial_logit_terms, register_backend

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


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261122)
    m = 5000
    n = rng.integers(1, 200, m).astype(float)
    y = np.floor(n * rng.uniform(0, 1, m))
    eta = rng.normal(-0.5, 3.0, m)
    eta[:6] = [0.0, 1e-12, -1e-12, 40.0, -40.0, -300.0]
    y[:6] = [0.0, 1.0, 0.0, n[3], 0.0, 0.0]
    return {"eta": eta, "y": y, "n": n,
            "lc": gammaln(n + 1) - gammaln(y + 1) - gammaln(n - y + 1)}


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
