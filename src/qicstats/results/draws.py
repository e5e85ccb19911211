"""Posterior draws -> predictions on the response scale, in memory-bounded chunks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from qicstats.models.build import QICModel
from qicstats.models.design import Rows
from qicstats.models.linpred import inverse_link, linear_predictor

#: draws processed at once (bounds memory for large panels)
CHUNK = 250


def n_draws(idata: xr.DataTree) -> tuple[int, int]:
    """``(chains, draws)`` of the posterior."""
    post = idata.posterior
    return int(post.sizes["chain"]), int(post.sizes["draw"])


def param_chunks(qm: QICModel, idata: xr.DataTree, chunk: int = CHUNK
                 ) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """Yield ``(slice of flattened draws, {name: array (s, ...)})`` over the posterior."""
    post = idata.posterior
    names = list(qm.param_names)
    if "mix_weights" in post:
        names.append("mix_weights")
    arrays = {}
    for n in names:
        a = np.asarray(post[n].values)
        arrays[n] = a.reshape((-1,) + a.shape[2:])
    S = next(iter(arrays.values())).shape[0] if arrays else 0
    for start in range(0, S, chunk):
        sl = slice(start, min(start + chunk, S))
        yield sl, {n: a[sl] for n, a in arrays.items()}


class Predictor:
    """Mean response at a fixed set of rows, for many draws.

    Rows of units with latent indicator codes are expanded once into their code
    configurations; predictions are averaged over configurations with the posterior
    configuration weights of each draw (``mix_weights``), i.e. the latent code is integrated
    out draw by draw.
    """

    def __init__(self, qm: QICModel, rows: Rows):
        self.qm = qm
        self.rows = rows
        d = qm.design
        self.ex, self.src, self.uc = d.expand(rows)
        self.mixed = d.mixture is not None and (self.uc >= 0).any()
        if self.mixed:
            self.starts = np.flatnonzero(np.r_[True, np.diff(self.src) != 0])

    def mean(self, p: dict[str, np.ndarray], *, counterfactual: bool = False,
             indicator: tuple[int, float] | None = None,
             change_levels: tuple[str, ...] | None = None) -> np.ndarray:
        """Mean response ``(s, n_rows)``.

        Parameters
        ----------
        p : dict
            Parameter draws from :func:`param_chunks`.
        counterfactual : bool
            Switch the intervention off (D = 0, e = 0).
        indicator : (k, value), optional
            Set indicator ``k`` to a level index (or standardised value) everywhere.
        change_levels : tuple of str, optional
            Random change effects to include (default all levels).
        """
        ex = self.ex
        if counterfactual:
            ex = ex.with_intervention(0.0, 0.0)
        if indicator is not None:
            ex = ex.with_indicator(*indicator)
        eta = linear_predictor(p, self.qm.design, ex, np, change_levels=change_levels)
        mu = inverse_link(eta, self.qm.design.family, np)
        mu = np.broadcast_to(mu, (next(iter(p.values())).shape[0], ex.n)) if mu.ndim == 1 else mu
        if not self.mixed:
            return mu
        s = mu.shape[0]
        w = np.ones((s, ex.n))
        m = self.uc >= 0
        w[:, m] = p["mix_weights"].reshape(s, -1)[:, self.uc[m]]
        return np.add.reduceat(mu * w, self.starts, axis=1)


def group_matrix(labels: np.ndarray, order: list[Any]) -> np.ndarray:
    """``(n, G)`` averaging matrix: column g averages the rows labelled ``order[g]``."""
    M = np.zeros((len(labels), len(order)))
    pos = {g: j for j, g in enumerate(order)}
    for i, lab in enumerate(labels):
        if lab in pos:
            M[i, pos[lab]] = 1.0
    counts = M.sum(axis=0)
    counts[counts == 0] = 1.0
    return M / counts


def subset_rows(rows: Rows, mask: np.ndarray) -> Rows:
    """Rows where ``mask`` is true."""
    return rows.subset(np.flatnonzero(mask))


__all__ = ["Predictor", "param_chunks", "group_matrix", "subset_rows", "n_draws", "replace"]
