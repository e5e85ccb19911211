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


def _bitcast(src: types.Type, dst: types.Type):  # type: ignore[no-untyped-def]
    """An intrinsic reading the bits of a ``src`` value as a ``dst`` value (same width)."""

    def bits(typingctx, x):  # type: ignore[no-untyped-def]
        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.bitcast(args[0], context.get_value_type(dst))

        return dst(src), codegen

    return intrinsic(bits)


_int64_bits_as_float64 = _bitcast(types.int64, types.float64)
_float64_bits_as_int64 = _bitcast(types.float64, types.int64)


@intrinsic
def fma(typingctx, a, b, c):  # type: ignore[no-untyped-def]
    """``a * b + c`` rounded once (the ``llvm.fma`` intrinsic: one instruction on CPUs with
    FMA, the same result everywhere). Written out, because without fast-math LLVM does not
    contract ``a * b + c`` on its own, and with it the choice would depend on inlining.
    """
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


_SQRT2 = 1.4142135623730951
_MANT = np.int64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.int64(0x3FF0000000000000)


@numba.njit(inline="always", fastmath=FLAGS, error_model="numpy")
def log_pos(x: float) -> float:  # pragma: no cover - compiled
    """``log(x)`` for a positive normal ``x`` (1e-300 .. 1e300): ``x = 2^k m`` with ``m`` in
    ``[sqrt(2)/2, sqrt(2))`` read from the bits, ``log m = 2 atanh(s)``, ``s = (m-1)/(m+1)``.
    """
    bits = _float64_bits_as_int64(x)
    k = (bits >> 52) - 1023
    m = _int64_bits_as_float64((bits & _MANT) | _ONE_BITS)      # in [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    k = k + 1 if big else k
    f = m - 1.0                                                  # exact (Sterbenz)
    s = f / (2.0 + f)
    s2 = s * s                                   # |s| <= 0.1716: the series to s^21
    p = 1.0 / 21.0
    for j in range(19, 0, -2):
        p = fma(p, s2, 1.0 / j)
    kf = float(k)
    return fma(kf, _LN2_HI, fma(2.0 * s, p, kf * _LN2_LO))


_HALF_LOG_2PI = 0.91893853320467274178
#: Stirling series of lgamma(z) - (z - 1/2) log z + z - log(2 pi) / 2, times z, in w = 1/z^2:
#: B_{2k} / (2k (2k - 1)), k = 8 .. 1 (Horner order)
_LGAMMA_COEF = (-3617.0 / 122400.0, 1.0 / 156.0, -691.0 / 360360.0, 1.0 / 1188.0,
                -1.0 / 1680.0, 1.0 / 1260.0, -1.0 / 360.0, 1.0 / 12.0)
#: asymptotic series of log z - 1/(2z) - digamma(z), divided by w = 1/z^2: B_{2k} / (2k),
#: k = 8 .. 1 (Horner order)
_DIGAMMA_COEF = (-3617.0 / 8160.0, 1.0 / 12.0, -691.0 / 32760.0, 1.0 / 132.0,
                 -1.0 / 240.0, 1.0 / 252.0, -1.0 / 120.0, 1.0 / 12.0)


@numba.njit(inline="always", fastmath=FLAGS, error_model="numpy")
def lgamma_digamma(x: float) -> tuple[float, float]:  # pragma: no cover - compiled
    """``(log Gamma(x), digamma(x))`` for ``x`` in ``[1e-300, 1e300]``, absolute errors
    below ``1e-14 * max(1, |value|)``: arguments below 8 are shifted up by 8 (``Gamma(x) =
    Gamma(x + 8) / prod(x + j)``, the product and its log-derivative computed together), then
    the Stirling and digamma asymptotic series to ``z^-15`` / ``z^-16``. One code path for
    every ``x``, so the loops using it vectorise.
    """
    small = x < 8.0
    p = 1.0
    dp = 0.0
    for j in range(8):
        t = x + j if small else 1.0
        dp = fma(dp, t, p)           # d/dx of the product so far
        p = p * t
    dp = dp if small else 0.0
    z = x + 8.0 if small else x
    iz = 1.0 / z
    w = iz * iz
    logz = log_pos(z)
    a = 0.0
    for c in _LGAMMA_COEF:
        a = fma(a, w, c)
    b = 0.0
    for c in _DIGAMMA_COEF:
        b = fma(b, w, c)
    lg = fma(z - 0.5, logz, _HALF_LOG_2PI - z) + fma(a, iz, -log_pos(p))
    dg = logz - fma(0.5, iz, fma(b, w, dp / p))
    return lg, dg


def _elementwise(f):  # type: ignore[no-untyped-def]
    @numba.njit(fastmath=FLAGS, error_model="numpy")
    def apply(a: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
        out = np.empty_like(a)
        for i in range(a.shape[0]):
            out[i] = f(a[i])
        return out

    return apply


#: :func:`exp_neg`, :func:`log1p_unit` and :func:`log_pos` elementwise over a 1-d array (for
#: tests)
exp_neg_array = _elementwise(exp_neg)
log1p_unit_array = _elementwise(log1p_unit)
log_pos_array = _elementwise(log_pos)


@numba.njit(fastmath=FLAGS, error_model="numpy")
def lgamma_digamma_array(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """:func:`lgamma_digamma` elementwise over a 1-d array (for tests)."""
    lg = np.empty_like(x)
    dg = np.empty_like(x)
    for i in range(x.shape[0]):
        lg[i], dg[i] = lgamma_digamma(x[i])
    return lg, dg


@numba.njit(fastmath=FLAGS, error_model="numpy")
def binomial_logit_kernel(eta: np.ndarray, y: np.ndarray, n: np.ndarray, log_choose: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
    """Row log densities of ``Binomial(y | n, logit^-1(eta))`` and their ``eta``
    derivatives ``y - n * sigmoid(eta)``.
    """
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


#: smallest shape parameter the beta-binomial kernel evaluates: ``mu * phi`` below it (a
#: predictor beyond about -690 on the logit scale) is taken as this
_TINY_SHAPE = 1e-300


@numba.njit(fastmath=FLAGS, error_model="numpy")
def betabinomial_logit_kernel(eta: np.ndarray, phi0: np.ndarray, y: np.ndarray, n: np.ndarray,
                              log_choose: np.ndarray
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """Row log densities of ``BetaBinomial(y | n, mu phi, (1 - mu) phi)`` with ``mu =
    logit^-1(eta)``, and their derivatives in ``eta`` and in ``phi`` (``phi0``: a 0-d array,
    as PyTensor passes a scalar).

    ``log C(n, y) + lgB(y + a, n - y + b) - lgB(a, b)`` with ``lgB`` the log beta function,
    ``a = mu phi``, ``b = (1 - mu) phi`` (``mu`` and ``1 - mu`` both from ``exp(-|eta|)``, so
    neither tail loses precision).
    """
    m = eta.shape[0]
    logp = np.empty(m)
    d_eta = np.empty(m)
    d_phi = np.empty(m)
    phi = phi0[()]
    lg_phi, dg_phi = lgamma_digamma(phi)
    for i in range(m):
        e = eta[i]
        ex = exp_neg(abs(e))
        inv = 1.0 / (1.0 + ex)
        mu = inv if e >= 0.0 else ex * inv
        nu = ex * inv if e >= 0.0 else inv                    # 1 - mu
        a = mu * phi
        b = nu * phi
        a = a if a > _TINY_SHAPE else _TINY_SHAPE
        b = b if b > _TINY_SHAPE else _TINY_SHAPE
        yi = y[i]
        ni = n[i]
        lg_ya, dg_ya = lgamma_digamma(yi + a)
        lg_a, dg_a = lgamma_digamma(a)
        lg_yb, dg_yb = lgamma_digamma(ni - yi + b)
        lg_b, dg_b = lgamma_digamma(b)
        lg_n, dg_n = lgamma_digamma(ni + phi)
        # y = 0 (or y = n) gives exactly 0 for the matching differences
        da = dg_ya - dg_a
        db = dg_yb - dg_b
        logp[i] = log_choose[i] + ((lg_ya - lg_a) + (lg_yb - lg_b)) + (lg_phi - lg_n)
        d_eta[i] = phi * mu * nu * (da - db)
        d_phi[i] = mu * da + nu * db + (dg_phi - dg_n)
    return logp, d_eta, d_phi

