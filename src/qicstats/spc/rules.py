"""The Anhøj rules for non-random variation in run and control charts.

A *runs signal* is raised when the longest run of consecutive points on the same side of the
centre line is longer than ``round(log2(n_useful) + 3)``, or when the series crosses the centre
line fewer than ``qbinom(0.05, n_useful - 1, 0.5)`` times (Anhøj & Olesen 2014, as in the R
package qicharts2). Points lying exactly on the centre line are not *useful*: they neither break
nor extend a run and are dropped before counting.

Rounding: R's ``round()`` rounds half to even, as :func:`numpy.round` does. ``log2(n) + 3`` is
never exactly ``k + 0.5`` for an integer ``n`` (that would need ``n = 2**k * sqrt(2)``), so
``round(log2(n) + 3)`` and ``round(log2(n)) + 3`` agree for every ``n`` and the rounding mode
cannot matter; we compute ``round(log2(n) + 3)``.

``scipy.stats.binom.ppf(q, size, p)`` returns the smallest ``k`` with ``P(X <= k) >= q``, which
is R's definition of ``qbinom``; with ``p = 0.5`` the cdf is a dyadic rational and never equals
0.05 exactly, so the two agree (the tests check this against exact integer arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["RunsResult", "longest_run_max", "n_crossings_min", "runs_analysis"]


def longest_run_max(n_useful: int) -> int | None:
    """Upper limit for the longest run: ``round(log2(n_useful) + 3)``.

    Parameters
    ----------
    n_useful : int
        Number of useful observations (not on the centre line).

    Returns
    -------
    int or None
        The limit; a longer run is a signal. ``None`` when ``n_useful < 1``.
    """
    if n_useful < 1:
        return None
    return int(np.round(np.log2(n_useful) + 3))


def n_crossings_min(n_useful: int) -> int | None:
    """Lower limit for the number of crossings: ``qbinom(0.05, n_useful - 1, 0.5)``.

    Parameters
    ----------
    n_useful : int
        Number of useful observations (not on the centre line).

    Returns
    -------
    int or None
        The limit; fewer crossings are a signal. ``None`` when ``n_useful < 1``.
    """
    if n_useful < 1:
        return None
    return int(stats.binom.ppf(0.05, max(n_useful - 1, 0), 0.5))


@dataclass(frozen=True)
class RunsResult:
    """Outcome of the Anhøj runs analysis of one series.

    Attributes
    ----------
    n_obs : int
        Non-missing observations analysed.
    n_useful : int
        Observations not on the centre line.
    longest_run, longest_run_max, n_crossings, n_crossings_min : int or None
        The statistics and their limits (``None`` when there are no useful observations).
    runs_signal : bool
        ``longest_run > longest_run_max or n_crossings < n_crossings_min``.
    """

    n_obs: int
    n_useful: int
    longest_run: int | None
    longest_run_max: int | None
    n_crossings: int | None
    n_crossings_min: int | None
    runs_signal: bool

    def as_dict(self) -> dict[str, int | bool | None]:
        """Return the fields as a plain dict."""
        return {
            "n_obs": self.n_obs,
            "n_useful": self.n_useful,
            "longest_run": self.longest_run,
            "longest_run_max": self.longest_run_max,
            "n_crossings": self.n_crossings,
            "n_crossings_min": self.n_crossings_min,
            "runs_signal": self.runs_signal,
        }


def runs_analysis(y: np.ndarray, center: np.ndarray | float) -> RunsResult:
    """Apply the Anhøj rules to a series around its centre line.

    Parameters
    ----------
    y : array_like
        The observations in time order; NaN values are ignored.
    center : array_like or float
        The centre line (a scalar or one value per observation).

    Returns
    -------
    RunsResult
    """
    y = np.asarray(y, dtype=float)
    cl = np.broadcast_to(np.asarray(center, dtype=float), y.shape)
    ok = ~np.isnan(y) & ~np.isnan(cl)
    n_obs = int((~np.isnan(y)).sum())
    side = np.sign(y[ok] - cl[ok])
    side = side[side != 0]
    n_useful = int(side.size)
    if n_useful == 0:
        return RunsResult(n_obs, 0, None, None, None, None, False)
    changes = np.flatnonzero(side[1:] != side[:-1])
    n_cross = int(changes.size)
    bounds = np.concatenate(([0], changes + 1, [n_useful]))
    longest = int(np.diff(bounds).max())
    lmax = longest_run_max(n_useful)
    cmin = n_crossings_min(n_useful)
    assert lmax is not None and cmin is not None  # both limits exist for n_useful >= 1
    signal = bool(longest > lmax or n_cross < cmin)
    return RunsResult(n_obs, n_useful, longest, lmax, n_cross, cmin, signal)
