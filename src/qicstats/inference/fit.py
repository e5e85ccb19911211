"""Run NUTS on a :class:`~qicstats.models.QICModel` and stamp the posterior with provenance."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor
import xarray as xr

from qicstats.errors import MissingDependencyError, QicstatsError
from qicstats.models.build import QICModel
from qicstats.models.likelihood import register_backend

BACKENDS: tuple[str, ...] = ("nutpie", "pymc", "numpyro")
#: nutpie's mass-matrix adaptations qicstats offers
ADAPTATIONS: tuple[str, ...] = ("diag", "low_rank")
Backend = Literal["nutpie", "pymc", "numpyro"]


@dataclass(frozen=True)
class SamplerConfig:
    """NUTS settings.

    Parameters
    ----------
    backend : {"nutpie", "pymc", "numpyro"}
        nutpie (Rust NUTS on a Numba-compiled density; the default: fastest to a converged
        fit on the benchmark), PyMC's own NUTS, or numpyro (JAX; needs the ``jax`` extra).
    chains, draws : int
    tune : int
        Warm-up iterations per chain (discarded), in which nutpie adapts the step size and the
        mass matrix. 500 by default: nutpie's adaptation settles within a few hundred
        iterations on qicstats' models (at L, 500 instead of 1000 cost no ESS and saved a
        quarter of the sampling time; docs/performance.md). Raise it when R-hat or ESS warn.
    target_accept : float, optional
        NUTS target acceptance rate; ``None`` (the default): the model's own suggestion,
        ``QICModel.target_accept`` (0.8, or 0.9 when few groups carry non-centred effects).
        Raise it (0.95, 0.99) when a fit reports divergences.
    seed : int
        One seed determines every chain (same config + seed on the same machine -> same draws).
    progress : bool
        Show a progress display while sampling.
    cores : int, optional
        Chains run in parallel on this many CPU cores (default: every core this process may
        use, at most one per chain). The draws do not depend on it. PyMC's own default
        assumes hyper-threading and halves the count, which left one of two cores idle.
    adaptation : {"diag", "low_rank"}
        nutpie's mass-matrix adaptation: a diagonal mass matrix, or a diagonal plus a
        low-rank correction learned from the draws and gradients of the warm-up (follows
        strong posterior correlations, e.g. an effect trading off against the trend).
        Ignored by the other backends.
    fastmath : bool
        Compile the Numba kernels with fast-math (FMA contraction, reassociation). Faster
        (sampling at L took 122 s; 181 s without, docs/performance.md), but the rounding, and
        so the draws, then depend on whether a kernel was compiled in this run or loaded from
        PyTensor's disk cache: the first run of a model on a machine does not reproduce
        later ones.
        Off by default (reproducibility first).
    """

    backend: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 500
    target_accept: float | None = None
    seed: int = 20261122
    progress: bool = True
    cores: int | None = None
    adaptation: str = "diag"
    fastmath: bool = False

    def __post_init__(self) -> None:
        """Check the settings: raise :class:`~qicstats.errors.QicstatsError` on an invalid one."""
        if self.backend not in BACKENDS:
            raise QicstatsError(f"sampler backend must be one of {BACKENDS}, got '{self.backend}'")
        if self.chains < 1 or self.draws < 1 or self.tune < 0:
            raise QicstatsError("chains and draws must be >= 1 and tune >= 0")
        if self.cores is not None and self.cores < 1:
            raise QicstatsError("cores must be >= 1")
        if self.target_accept is not None and not 0.5 <= self.target_accept < 1:
            raise QicstatsError("target_accept must be in [0.5, 1)")
        if self.adaptation not in ADAPTATIONS:
            raise QicstatsError(f"adaptation must be one of {ADAPTATIONS}, got "
                                f"'{self.adaptation}'")


def package_versions() -> dict[str, str]:
    """Versions of qicstats and the libraries that determine its numbers."""
    out = {}
    for pkg in ("qicstats", "pymc", "pytensor", "arviz", "arviz-stats", "arviz-base", "nutpie",
                "numpy", "scipy", "pandas", "xarray", "statsmodels", "linearmodels", "numpyro",
                "jax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return out


def available_cores() -> int:
    """CPU cores this process may run on (affinity-aware where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_backend(backend: str) -> None:
    need = {"nutpie": ["nutpie"], "numpyro": ["numpyro", "jax"], "pymc": []}[backend]
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if missing:
        extra = " (pip install 'qicstats[jax]')" if backend == "numpyro" else ""
        raise MissingDependencyError(
            f"sampler backend '{backend}' needs {', '.join(missing)}, which is not "
            f"installed{extra}")


def fit(qmodel: QICModel, sampler: SamplerConfig | None = None, *,
        provenance: dict[str, Any] | None = None) -> xr.DataTree:
    """Sample the posterior of ``qmodel``.

    Parameters
    ----------
    qmodel : QICModel
        A built model (:func:`qicstats.models.build`).
    sampler : SamplerConfig, optional
    provenance : dict, optional
        Extra attributes to stamp (config hash, config text, ...).

    Returns
    -------
    xarray.DataTree
        The posterior with ``sample_stats`` and ``observed_data``; its root attributes hold
        package versions, the data hash, the model spec, the seed and timings.
    """
    s = sampler or SamplerConfig()
    if s.target_accept is None:
        s = replace(s, target_accept=float(qmodel.target_accept))
    _check_backend(s.backend)
    if s.backend == "numpyro":
        register_backend("jax")
    kw: dict[str, Any] = dict(draws=s.draws, tune=s.tune, chains=s.chains, random_seed=s.seed,
                              progressbar=s.progress, target_accept=s.target_accept,
                              nuts_sampler=s.backend, compute_convergence_checks=False,
                              model=qmodel.model)
    if s.backend in ("nutpie", "pymc"):
        kw["cores"] = min(s.chains, s.cores or available_cores())
    if s.backend == "nutpie" and s.adaptation != "diag":
        kw["nuts"] = {"adaptation": s.adaptation}
    t0 = time.perf_counter()
    # PyTensor's Numba kernels use fast-math by default, which makes the rounding (and so
    # the draws) depend on whether a kernel was compiled now or loaded from the disk cache:
    # the first run of a model on a machine would not reproduce (SamplerConfig.fastmath)
    with pytensor.config.change_flags(numba__fastmath=bool(s.fastmath)):
        idata = pm.sample(**kw)
    seconds = time.perf_counter() - t0
    attrs = {
        "qicstats_versions": json.dumps(package_versions(), sort_keys=True),
        "qicstats_data_hash": qmodel.design_hash,
        "qicstats_spec": json.dumps(qmodel.spec.to_dict(), sort_keys=True, default=str),
        "qicstats_sampler": json.dumps(asdict(s), sort_keys=True),
        "qicstats_seed": int(s.seed),
        "qicstats_sampling_seconds": float(seconds),
    }
    for k, v in (provenance or {}).items():
        attrs[f"qicstats_{k}"] = (v if isinstance(v, (str, int, float))
                                  else json.dumps(v, default=str))
    idata.attrs.update(attrs)
    return idata


def draws_array(idata: xr.DataTree, name: str) -> np.ndarray:
    """Posterior draws of ``name`` as ``(chain * draw, ...)``."""
    da = idata.posterior[name]
    arr = np.asarray(da.values)
    return arr.reshape((-1,) + arr.shape[2:])
