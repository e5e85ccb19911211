"""Fused binomial and beta-binomial (logit link) log densities: the sampler's inner loop.

PyTensor rewrites ``log1p(exp(-|eta|))`` into ``softplus`` and, in the gradient, a separate
``sigmoid``: two ``exp`` and a ``log1p`` per row, in passes of their own. At 50,000 rows that
is most of the cost of a gradient evaluation. :class:`BinomialLogit` computes each row's log
density and its derivative with respect to ``eta`` together, in one pass with one ``exp``
and one ``log1p`` per row; under Numba these are the vectorisable versions of
:mod:`qicstats.models._fastmath`.

:class:`BetaBinomialLogit` does the same for the beta-binomial (mean ``logit^-1(eta)``,
concentration ``phi``), whose PyTensor form costs six ``lgamma`` and, in the gradient, six
``digamma`` library calls per row; the Numba kernel evaluates them as vectorisable series
(:func:`qicstats.models._fastmath.lgamma_digamma`).

Each Op has a NumPy ``perform`` (PyMC's own sampler and the C backend), a Numba
implementation (nutpie) and a JAX one (numpyro), registered on first use by
:func:`register_backend` (so that importing qicstats imports neither Numba nor JAX). Its
gradient is the stored derivative times the incoming gradient; second derivatives are not
provided (NUTS does not need them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op


def binomial_logit_terms(eta: np.ndarray, y: np.ndarray, n: np.ndarray,
                         log_choose: np.ndarray, xp: Any = np) -> tuple[np.ndarray, np.ndarray]:
    """Per row, ``log Binomial(y | n, logit^-1(eta))`` and its derivative in ``eta``, with
    array module ``xp`` (NumPy: the reference and ``perform``; ``jax.numpy``: the JAX
    implementation).
    """
    ex = xp.exp(-xp.abs(eta))
    one_ex = 1.0 + ex
    logp = log_choose + y * eta - n * (xp.maximum(eta, 0.0) + xp.log(one_ex))
    sig = xp.where(eta >= 0, 1.0, ex) / one_ex
    return logp, y - n * sig


class BinomialLogit(Op):
    """``(logp, dlogp/deta)`` of a binomial outcome with logit-scale predictor ``eta``.

    Inputs: ``eta`` (the only differentiable one), ``y``, ``n``, ``log_choose`` (all float64
    vectors of one length). Outputs: the row log densities and their derivatives.
    """

    __props__ = ()

    # pytensor types Op.make_node as (*inputs); an Op names its own inputs
    def make_node(self, eta: Any, y: Any, n: Any, log_choose: Any  # type: ignore[override]
                  ) -> Apply:
        """The Op applied to float64 vectors; ``TypeError`` if an input is not a vector."""
        ins = [pt.as_tensor_variable(v, dtype="float64") for v in (eta, y, n, log_choose)]
        for v in ins:
            if v.type.ndim != 1:
                raise TypeError("BinomialLogit takes vectors")
        out_type = pt.TensorType("float64", shape=(None,))
        return Apply(self, ins, [out_type(), out_type()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], output_storage: list[list[Any]]
                ) -> None:
        """Compute both outputs with NumPy (:func:`binomial_logit_terms`)."""
        logp, d = binomial_logit_terms(*inputs)
        output_storage[0][0] = logp
        output_storage[1][0] = d

    def infer_shape(self, node: Apply, shapes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """Both outputs have ``eta``'s shape."""
        return [shapes[0], shapes[0]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Only ``eta`` is connected to the outputs."""
        return [[True, True], [False, False], [False, False], [False, False]]

    def pullback(self, inputs: Sequence[Any], outputs: Sequence[Any],
                 output_grads: Sequence[Any]) -> list[Any]:
        """Gradient in ``eta``: the incoming gradient of ``logp`` times the stored derivative.

        Gradients through the derivative output (second derivatives) are undefined.
        """
        g_logp, g_d = output_grads
        if not isinstance(g_d.type, DisconnectedType):
            return [grad_undefined(self, 0, inputs[0],
                                   "second derivatives of BinomialLogit are not implemented"),
                    *[DisconnectedType()() for _ in inputs[1:]]]
        if isinstance(g_logp.type, DisconnectedType):
            return [pt.zeros_like(inputs[0]), *[DisconnectedType()() for _ in inputs[1:]]]
        return [g_logp * outputs[1], *[DisconnectedType()() for _ in inputs[1:]]]


binomial_logit = BinomialLogit()


def betabinomial_logit_terms(eta: np.ndarray, phi: Any, y: np.ndarray, n: np.ndarray,
                             log_choose: np.ndarray, xp: Any = np, sp: Any = None
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, ``log BetaBinomial(y | n, mu phi, (1 - mu) phi)`` with ``mu = logit^-1(eta)``,
    and its derivatives in ``eta`` and ``phi``, with array module ``xp`` and special functions
    ``sp`` (default SciPy's; ``jax.scipy.special`` for JAX).
    """
    if sp is None:
        import scipy.special

        sp = scipy.special
    ex = xp.exp(-xp.abs(eta))
    inv = 1.0 / (1.0 + ex)
    mu = xp.where(eta >= 0, inv, ex * inv)
    nu = xp.where(eta >= 0, ex * inv, inv)
    a, b = mu * phi, nu * phi
    lg, dg = sp.gammaln, sp.digamma
    logp = (log_choose + (lg(y + a) - lg(a)) + (lg(n - y + b) - lg(b))
            + (lg(phi) - lg(n + phi)))
    da = dg(y + a) - dg(a)
    db = dg(n - y + b) - dg(b)
    return logp, phi * mu * nu * (da - db), mu * da + nu * db + (dg(phi) - dg(n + phi))


class BetaBinomialLogit(Op):
    """``(logp, dlogp/deta, dlogp/dphi)`` of a beta-binomial outcome with logit-scale mean
    ``eta`` and concentration ``phi`` (a scalar).

    Inputs: ``eta`` (vector) and ``phi`` (scalar), the differentiable ones, then ``y``,
    ``n``, ``log_choose`` (float64 vectors of ``eta``'s length). Outputs: the row log
    densities and their derivatives in ``eta`` and ``phi``.
    """

    __props__ = ()

    # pytensor types Op.make_node as (*inputs); an Op names its own inputs
    def make_node(self, eta: Any, phi: Any, y: Any, n: Any,  # type: ignore[override]
                  log_choose: Any) -> Apply:
        """The Op applied to float64 inputs; ``TypeError`` unless ``phi`` is a scalar and the
        others vectors.
        """
        ins = [pt.as_tensor_variable(v, dtype="float64") for v in (eta, phi, y, n, log_choose)]
        if ins[1].type.ndim != 0:
            raise TypeError("BetaBinomialLogit takes a scalar phi")
        for v in (ins[0], *ins[2:]):
            if v.type.ndim != 1:
                raise TypeError("BetaBinomialLogit takes vectors")
        out_type = pt.TensorType("float64", shape=(None,))
        return Apply(self, ins, [out_type(), out_type(), out_type()])

    def perform(self, node: Apply, inputs: Sequence[np.ndarray], output_storage: list[list[Any]]
                ) -> None:
        """Compute the three outputs with NumPy and SciPy (:func:`betabinomial_logit_terms`)."""
        eta, phi, y, n, lc = inputs
        for k, v in enumerate(betabinomial_logit_terms(eta, float(phi), y, n, lc)):
            output_storage[k][0] = np.asarray(v, dtype="float64")

    def infer_shape(self, node: Apply, shapes: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The three outputs have ``eta``'s shape."""
        return [shapes[0], shapes[0], shapes[0]]

    def connection_pattern(self, node: Apply) -> list[list[bool]]:
        """Only ``eta`` and ``phi`` are connected to the outputs."""
        return [[True, True, True], [True, True, True], *[[False, False, False]] * 3]

    def pullback(self, inputs: Sequence[Any], outputs: Sequence[Any],
                 output_grads: Sequence[Any]) -> list[Any]:
        """Gradients in ``eta`` and ``phi``: the incoming gradient of ``logp`` times the stored
        derivatives (summed over rows for the scalar ``phi``).

        Gradients through the derivative outputs (second derivatives) are undefined.
        """
        g_logp, g_deta, g_dphi = output_grads
        rest = [DisconnectedType()() for _ in inputs[2:]]
        if not (isinstance(g_deta.type, DisconnectedType)
                and isinstance(g_dphi.type, DisconnectedType)):
            return [grad_undefined(self, k, inputs[k], "second derivatives of "
                                   "BetaBinomialLogit are not implemented") for k in (0, 1)] + rest
        if isinstance(g_logp.type, DisconnectedType):
            return [pt.zeros_like(inputs[0]), pt.zeros_like(inputs[1]), *rest]
        return [g_logp * outputs[1], (g_logp * outputs[2]).sum(), *rest]


betabinomial_logit = BetaBinomialLogit()


_REGISTERED: set[str] = set()


def register_backend(backend: str) -> None:
    """Register :class:`BinomialLogit`'s implementation for ``backend`` (``"numba"`` or
    ``"jax"``); idempotent, and a no-op when the backend is not installed.
    """
    if backend in _REGISTERED:
        return
    try:
        {"numba": _register_numba, "jax": _register_jax}[backend]()
    except ImportError:
        return
    _REGISTERED.add(backend)


def _register_numba() -> None:
    from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

    from qicstats.models import _fastmath

    # PyTensor caches compiled kernels on disk by Op type and this integer: derive it from
    # the kernel's source so that a changed kernel is never served from a stale cache
    version = int(hashlib.sha256(Path(_fastmath.__file__).read_bytes()).hexdigest()[:12], 16)

    @register_funcify_default_op_cache_key(BinomialLogit)
    def _funcify(op: Any, node: Any = None, **kwargs: Any) -> Any:
        return _fastmath.binomial_logit_kernel, version

    @register_funcify_default_op_cache_key(BetaBinomialLogit)
    def _funcify_bb(op: Any, node: Any = None, **kwargs: Any) -> Any:
        return _fastmath.betabinomial_logit_kernel, version


def _register_jax() -> None:
    import jax.numpy as jnp
    from pytensor.link.jax.dispatch import jax_funcify

    @jax_funcify.register(BinomialLogit)
    def _jax_funcify(op: Any, **kwargs: Any) -> Any:
        def binomial_logit_jax(eta, y, n, log_choose):  # type: ignore[no-untyped-def]
            return binomial_logit_terms(eta, y, n, log_choose, xp=jnp)

        return binomial_logit_jax

    @jax_funcify.register(BetaBinomialLogit)
    def _jax_funcify_bb(op: Any, **kwargs: Any) -> Any:
        import jax.scipy.special as jsp

        def betabinomial_logit_jax(eta, phi, y, n, log_choose):  # type: ignore[no-untyped-def]
            return betabinomial_logit_terms(eta, phi, y, n, log_choose, xp=jnp, sp=jsp)

        return betabinomial_logit_jax
