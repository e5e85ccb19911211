"""Vectorisable ``exp(-a)`` and ``log1p(x)`` for the Numba likelihood kernels.

Numba compiles ``math.exp`` and ``math.log1p`` to calls into the C library, one element at a
time (LLVM cannot vectorise a loop around a call, and the PyPI builds of llvmlite have no
vector math library). These are written in plain arithmetic, so LLVM vectorises the loops
that use them (AVX2 / AVX-512 where the CPU has them): a binomial log density and its
gradient over 50,000 rows take about a quarter of the time they take with the library calls.
Their polynomials are evaluated with explicit fused multiply-adds (:func:`fma`), which
without fast-math LLVM would not form: a quarter less time again, with a result that does
not depend on how the kernel was compiled.

Accuracy over their domains (checked against NumPy in ``tests/test_likelihood.py``): within
2 ulp. Only used inside ``@njit`` kernels (:mod:`qicstats.models.likelihood`); importing this
module imports Numba.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

#: no fast-math: LLVM vectorises these elementwise loops without it, and fast-math
#: (contraction into FMA, reassociation) lets the rounding depend on where a kernel gets
#: inlined, so a freshly compiled and a disk-cached model would give different draws
FLAGS = False

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LOG2E = 1.4426950408889634
#: exp(-a) is evaluated at min(a, _EXP_CLAMP): exp(-700) ~ 1e-304 is still a normal double
_EXP_CLAMP = 700.0
#: Taylor coefficients 1/12!, ..., 1/1!, 1/0! (Horner order after the leading 1/13!)
_EXP_COEF = (1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
             1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0,
             0.5, 1.0, 1.0)


@intrinsic
def _int64_bits_as_float64(typingctx, x):  # type: ignore[no-untyped-def]
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``a * b + c`` rounded once (the ``llvm.fma`` intrinsic: one instruction on CPUs with
    FMA, the same result everywhere). Written out, because without fast-math LLVM does not
    contract ``a * b + c`` on its own, and with it the choice would depend on inlining."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.fma(*args)

    return sig, codegen


@numba.njit(inline="always", fastmath=FLAGS, error_model="numpy")
def exp_neg(a: float) -> float:  # pragma: no cover - compiled
    """``exp(-a)`` for ``a >= 0`` (``a`` above 700 is taken as 700)."""
    a = a if a < _EXP_CLAMP else _EXP_CLAMP
    k = math.floor(a * _LOG2E + 0.5)
    r = k * _LN2_HI - a + k * _LN2_LO          # -a + k ln 2, |r| <= ln(2) / 2
    p = 1.0 / 6227020800.0                      # Taylor series of exp(r) to r^13
    for c in _EXP_COEF:
        p = fma(p, r, c)
    return p * _int64_bits_as_float64((1023 - np.int64(k)) << 52)   # times 2^-k


@numba.njit(inline="always", fastmath=FLAGS, error_model="numpy")
def log1p_unit(x: float) -> float:  # pragma: no cover - compiled
    """``log(1 + x)`` for ``0 <= x <= 1``, as ``2 atanh(s)`` with ``s = x / (2 + x)``."""
    s = x / (2.0 + x)
    s2 = s * s                                   # s <= 1/3: the series to s^37
    p = 1.0 / 37.0
    for j in range(35, 0, -2):
        p = fma(p, s2, 1.0 / j)
    return 2.0 * s * p


def _elementwise(f):  # type: ignore[no-untyped-def]
    @numba.njit(fastmath=FLAGS, error_model="numpy")
    def apply(a: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = f(a[i])
        return out

    return apply


#: :func:`exp_neg` and :func:`log1p_unit` elementwise over a 1-d array (for tests)
exp_neg_array = _elementwise(exp_neg)
log1p_unit_array = _elementwise(log1p_unit)


@numba.njit(fastmath=FLAGS, error_model="numpy")
def binomial_logit_kernel(eta: np.ndarray, y: np.ndarray, n: np.ndarray,
                          log_choose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Row log densities of ``Binomial(y | n, logit^-1(eta))`` and their ``eta``
    derivatives ``y - n * sigmoid(eta)``."""
    m = eta.shape[0]
    logp = np.empty(m)
    d = np.empty(m)
    for i in range(m):
        e = eta[i]
        ex = exp_neg(abs(e))
        pos = e if e > 0.0 else 0.0
        logp[i] = log_choose[i] + y[i] * e - n[i] * (pos + log1p_unit(ex))
        sig = (1.0 if e >= 0.0 else ex) / (1.0 + ex)
        d[i] = y[i] - n[i] * sig
    return logp, d
