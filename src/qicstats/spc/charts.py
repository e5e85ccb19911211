"""Centre lines and control limits of each chart type, one part of one series at a time.

The algorithms follow the R package qicharts2 (``qic.run``, ``qic.i``, ... in its source):

========  =====================================================================================
run       centre = median of the baseline values; no limits.
i         centre = mean; sigma = mean moving range / 1.128, after dropping moving ranges above
          3.267 x the first mean moving range (Nelson's screening, as qicharts2 does).
mr        y = |moving range|; centre = mean MR; UCL = 3.267 x centre; LCL = 0.
xbar      y = subgroup mean; centre = mean weighted by subgroup size; limits
          centre +- A3(n_i) x pooled standard deviation.
s         y = subgroup sd; centre = pooled sd; limits B3(n_i), B4(n_i) x centre.
t         i chart of y^(1/3.6), back-transformed (y, centre and limits ^3.6).
g         centre = 0.693 x mean (the theoretical median of the geometric distribution, Provost &
          Murray 2011 p. 228); limits mean +- 3 sqrt(mean (mean + 1)).
c         centre = mean count; limits centre +- 3 sqrt(centre).
u         centre = sum(y) / sum(n); limits centre +- 3 sqrt(centre / n_i).
p         centre = sum(y) / sum(n); limits centre +- 3 sqrt(centre (1 - centre) / n_i).
pp, up    Laney's p' and u': the p / u sigma multiplied by sigma_z, the mean moving range of
          the baseline z-scores divided by 1.128.
========  =====================================================================================

Every calculation uses only the *baseline* points (``freeze``) that are not excluded
(``exclude``); limits are then drawn for every point of the part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

#: d2 for moving ranges of two observations
D2 = 1.128
#: D4 for moving ranges of two observations
D4 = 3.267
#: exponent of the t chart's transformation (Nelson)
T_EXPONENT = 3.6
#: ratio of the geometric distribution's median to its mean used by qicharts2's g chart
G_MEDIAN_FACTOR = 0.693

CHART_TYPES: tuple[str, ...] = ("run", "i", "mr", "xbar", "s", "t", "g", "c", "u", "p", "pp", "up")
#: charts whose values cannot be negative: a negative LCL is drawn at 0
NONNEGATIVE_CHARTS = frozenset({"mr", "s", "t", "g", "c", "u", "p", "pp", "up"})
#: charts of proportions: an UCL above 1 is drawn at 1
PROPORTION_CHARTS = frozenset({"p", "pp"})
#: charts that need a denominator
DENOMINATOR_CHARTS = frozenset({"u", "p", "pp", "up"})

CHART_NAMES: dict[str, str] = {
    "run": "Run chart",
    "i": "I chart",
    "mr": "MR chart",
    "xbar": "Xbar chart",
    "s": "S chart",
    "t": "T chart",
    "g": "G chart",
    "c": "C chart",
    "u": "U chart",
    "p": "P chart",
    "pp": "P' chart",
    "up": "U' chart",
}


def c4(n: np.ndarray | float) -> np.ndarray:
    """Bias correction constant c4(n) of the sample standard deviation (NaN for n < 2)."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt(2.0 / (n - 1)) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2))
    return np.where(n >= 2, out, np.nan)


def a3(n: np.ndarray | float) -> np.ndarray:
    """Xbar chart constant A3(n) = 3 / (c4(n) sqrt(n))."""
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 3.0 / (c4(n) * np.sqrt(n))


def b3(n: np.ndarray | float) -> np.ndarray:
    """S chart constant B3(n) = max(0, 1 - 3 sqrt(1 - c4^2) / c4)."""
    c = c4(n)
    with np.errstate(invalid="ignore"):
        return np.maximum(0.0, 1 - 3 * np.sqrt(1 - c**2) / c)


def b4(n: np.ndarray | float) -> np.ndarray:
    """S chart constant B4(n) = 1 + 3 sqrt(1 - c4^2) / c4."""
    c = c4(n)
    with np.errstate(invalid="ignore"):
        return 1 + 3 * np.sqrt(1 - c**2) / c


@dataclass
class PartInput:
    """The aggregated values of one part of one series (arrays of equal length).

    Attributes
    ----------
    y : values to chart (ratio ``y_sum / n`` when a denominator is given, else the subgroup
        mean, or the subgroup sum for c and g charts)
    n : denominators (NaN when none)
    y_sum, y_len, y_sd : subgroup sum, count of non-missing values and standard deviation
    base : points used to compute centre and limits (baseline, not excluded, y present)
    """

    y: np.ndarray
    n: np.ndarray
    y_sum: np.ndarray
    y_len: np.ndarray
    y_sd: np.ndarray
    base: np.ndarray


@dataclass
class PartLimits:
    """Charted values with their centre line and limits (all arrays)."""

    y: np.ndarray
    cl: np.ndarray
    lcl: np.ndarray
    ucl: np.ndarray


def _full(value: float, size: int) -> np.ndarray:
    return np.full(size, value, dtype=float)


def _nanmean(a: np.ndarray) -> float:
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")


def _limits_i(y: np.ndarray, base: np.ndarray) -> tuple[float, float]:
    """Centre and sigma of an individuals chart (qicharts2 ``qic.i``)."""
    yb = y[base]
    cl = _nanmean(yb)
    mr = np.abs(np.diff(yb))
    amr = _nanmean(mr)
    mr = mr[mr < D4 * amr]  # Nelson (1982): drop moving ranges above the MR chart's UCL
    amr = _nanmean(mr)
    return cl, amr / D2


def _run(p: PartInput) -> PartLimits:
    yb = p.y[p.base]
    yb = yb[~np.isnan(yb)]
    cl = float(np.median(yb)) if yb.size else float("nan")
    m = p.y.size
    return PartLimits(p.y, _full(cl, m), _full(np.nan, m), _full(np.nan, m))


def _i(p: PartInput) -> PartLimits:
    cl, sd = _limits_i(p.y, p.base)
    m = p.y.size
    return PartLimits(p.y, _full(cl, m), _full(cl - 3 * sd, m), _full(cl + 3 * sd, m))


def _mr(p: PartInput) -> PartLimits:
    y = np.concatenate(([np.nan], np.abs(np.diff(p.y))))
    cl = _nanmean(y[p.base])
    m = y.size
    return PartLimits(y, _full(cl, m), _full(0.0, m), _full(D4 * cl, m))


def _pooled_sd(p: PartInput) -> float:
    use = p.base & (p.y_len >= 2) & ~np.isnan(p.y_sd)
    df = (p.y_len[use] - 1).sum()
    if df <= 0:
        return float("nan")
    return float(np.sqrt((p.y_sd[use] ** 2 * (p.y_len[use] - 1)).sum() / df))


def _xbar(p: PartInput) -> PartLimits:
    use = p.base & ~np.isnan(p.y) & (p.y_len > 0)
    w = p.y_len[use]
    cl = float((w * p.y[use]).sum() / w.sum()) if w.sum() > 0 else float("nan")
    sbar = _pooled_sd(p)
    half = a3(p.y_len) * sbar
    return PartLimits(p.y, _full(cl, p.y.size), cl - half, cl + half)


def _s(p: PartInput) -> PartLimits:
    sbar = _pooled_sd(p)
    y = p.y_sd.astype(float).copy()
    return PartLimits(y, _full(sbar, y.size), b3(p.y_len) * sbar, b4(p.y_len) * sbar)


def _t(p: PartInput) -> PartLimits:
    with np.errstate(invalid="ignore"):
        yt = p.y ** (1 / T_EXPONENT)
    cl, sd = _limits_i(yt, p.base)
    lo, hi = cl - 3 * sd, cl + 3 * sd
    m = p.y.size
    lcl = 0.0 if lo < 0 else lo**T_EXPONENT
    return PartLimits(p.y.copy(), _full(cl**T_EXPONENT, m), _full(lcl, m),
                      _full(hi**T_EXPONENT, m))


def _g(p: PartInput) -> PartLimits:
    mean = _nanmean(p.y[p.base])
    sd = np.sqrt(mean * (mean + 1))
    m = p.y.size
    return PartLimits(p.y, _full(G_MEDIAN_FACTOR * mean, m), _full(mean - 3 * sd, m),
                      _full(mean + 3 * sd, m))


def _c(p: PartInput) -> PartLimits:
    cl = _nanmean(p.y[p.base])
    m = p.y.size
    sd = np.sqrt(cl)
    return PartLimits(p.y, _full(cl, m), _full(cl - 3 * sd, m), _full(cl + 3 * sd, m))


def _rate_centre(p: PartInput) -> float:
    use = p.base & ~np.isnan(p.y) & (p.y_len > 0)
    den = p.n[use].sum()
    return float(p.y_sum[use].sum() / den) if den > 0 else float("nan")


def _sigma_z(p: PartInput, cl: float, sd: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (p.y - cl) / sd
    zb = z[p.base]
    return _nanmean(np.abs(np.diff(zb))) / D2


def _rate(p: PartInput, proportion: bool, laney: bool) -> PartLimits:
    cl = _rate_centre(p)
    var = cl * (1 - cl) if proportion else cl
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.sqrt(var / p.n)
    if laney:
        sd = sd * _sigma_z(p, cl, sd)
    return PartLimits(p.y, _full(cl, p.y.size), cl - 3 * sd, cl + 3 * sd)


_DISPATCH = {
    "run": _run,
    "i": _i,
    "mr": _mr,
    "xbar": _xbar,
    "s": _s,
    "t": _t,
    "g": _g,
    "c": _c,
    "u": lambda p: _rate(p, proportion=False, laney=False),
    "p": lambda p: _rate(p, proportion=True, laney=False),
    "up": lambda p: _rate(p, proportion=False, laney=True),
    "pp": lambda p: _rate(p, proportion=True, laney=True),
}


def part_limits(chart: str, part: PartInput) -> PartLimits:
    """Return the charted values, centre line and limits of one part.

    Parameters
    ----------
    chart : str
        One of :data:`CHART_TYPES`.
    part : PartInput
        The aggregated values of the part.

    Returns
    -------
    PartLimits
        Non-finite limits are NaN; for :data:`NONNEGATIVE_CHARTS` a negative LCL is 0 and for
        :data:`PROPORTION_CHARTS` an UCL above 1 is 1.
    """
    out = _DISPATCH[chart](part)
    lcl = np.asarray(out.lcl, dtype=float).copy()
    ucl = np.asarray(out.ucl, dtype=float).copy()
    lcl[~np.isfinite(lcl)] = np.nan
    ucl[~np.isfinite(ucl)] = np.nan
    if chart in NONNEGATIVE_CHARTS:
        lcl = np.where(lcl < 0, 0.0, lcl)
    if chart in PROPORTION_CHARTS:
        ucl = np.where(ucl > 1, 1.0, ucl)
    return PartLimits(np.asarray(out.y, dtype=float), np.asarray(out.cl, dtype=float), lcl, ucl)
