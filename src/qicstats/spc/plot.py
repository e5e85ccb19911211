"""Drawing run and control charts (small multiples for facets) in qicharts2's style.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state, nothing
shown), so this works under any backend, Agg included.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from qicstats.spc.charts import CHART_NAMES

if TYPE_CHECKING:  # pragma: no cover
    from qicstats.spc.core import QicResult

#: qicharts2's palette: data line, lines, signals
COL_DATA = "#5DA5DA"
COL_LINE = "#8C8C8C"
COL_SIGNAL = "#F15854"
COL_FREEZE = "#BDBDBD"


def _fmt(v: float) -> str:
    if not np.isfinite(v):
        return ""
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.2g}"


def _x_positions(d: pd.DataFrame) -> tuple[np.ndarray, list[str] | None]:
    """Plot coordinates of x: dates and numbers as they are, anything else by category."""
    xs = d["x"]
    if pd.api.types.is_datetime64_any_dtype(xs) or pd.api.types.is_numeric_dtype(xs):
        if pd.api.types.is_bool_dtype(xs):
            xs = xs.astype(int)
        return xs.to_numpy(), None
    cats = list(pd.unique(xs))
    lookup = {c: i for i, c in enumerate(cats)}
    return np.asarray([lookup[v] for v in xs], dtype=float), [str(c) for c in cats]


def _panels(d: pd.DataFrame, facets: list[str], ncol: int | None
            ) -> tuple[list[tuple[str, pd.DataFrame, int, int]], int, int]:
    """Panels (title, rows, grid row, grid column) and the grid shape."""
    if not facets:
        return [("", d, 0, 0)], 1, 1
    if len(facets) == 2:
        f1, f2 = facets
        rows = list(pd.unique(d[f1]))
        cols = list(pd.unique(d[f2]))
        panels = []
        for (a, b), g in d.groupby([f1, f2], sort=False, observed=True):
            panels.append((f"{a} | {b}", g, rows.index(a), cols.index(b)))
        return panels, len(rows), len(cols)
    groups = list(d.groupby(facets, sort=False, observed=True))
    k = len(groups)
    nc = ncol or max(1, math.ceil(math.sqrt(k)))
    nc = min(nc, k)
    nr = math.ceil(k / nc)
    panels = []
    for i, (key, g) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        panels.append((" | ".join(map(str, key)), g, i // nc, i % nc))
    return panels, nr, nc


def _draw(ax: Any, g: pd.DataFrame, xpos: np.ndarray, small: bool, labels: bool) -> None:
    ms = 2.5 if small else 4
    for _, gp in g.groupby("part", sort=True):
        ii = gp.index.to_numpy()
        xv = xpos[ii]
        y = gp["y"].to_numpy(dtype=float)
        ax.plot(xv, y, color=COL_DATA, lw=1, marker="o", ms=ms, zorder=3)
        sig = gp["sigma_signal"].to_numpy(dtype=bool)
        if sig.any():
            ax.plot(xv[sig], y[sig], "o", color=COL_SIGNAL, ms=ms + 0.5, zorder=4)
        excl = ~gp["include"].to_numpy(dtype=bool)
        if excl.any():
            ax.plot(xv[excl], y[excl], "o", mfc="white", mec=COL_DATA, ms=ms + 0.5, zorder=5)
        runs = bool(gp["runs_signal"].iloc[0])
        cl = gp["cl"].to_numpy(dtype=float)
        ax.plot(xv, cl, color=COL_SIGNAL if runs else COL_LINE, ls="--" if runs else "-",
                lw=1.2, zorder=2)
        for lim in ("lcl", "ucl"):
            v = gp[lim].to_numpy(dtype=float)
            if np.isfinite(v).any():
                ax.step(xv, v, where="mid", color=COL_LINE, lw=1, zorder=1)
        if labels:
            lines = [("cl", cl)]
            if not small:
                lines += [("lcl", gp["lcl"].to_numpy(dtype=float)),
                          ("ucl", gp["ucl"].to_numpy(dtype=float))]
            for col, v in lines:
                if np.isfinite(v[-1]):
                    ax.annotate(_fmt(v[-1]), (xv[-1], v[-1]), xytext=(4, 0),
                                textcoords="offset points", va="center", fontsize=7,
                                color=COL_SIGNAL if (col == "cl" and runs) else "#555555")
    base = g["baseline"].to_numpy(dtype=bool)
    if base.any() and not base.all():
        last = np.flatnonzero(base)[-1]
        if last + 1 < len(base):
            ax.axvline(xpos[g.index.to_numpy()[last]], color=COL_FREEZE, ls=":", lw=1, zorder=0)


def chart_title(res: QicResult) -> str:
    """Default title: chart name and y (and n) column."""
    what = res.y_name if res.n_name is None else f"{res.y_name} / {res.n_name}"
    if res.multiply != 1:
        what += f" x {res.multiply:g}"
    return f"{CHART_NAMES[res.chart]} of {what}"


def plot_qic(res: QicResult, ncol: int | None = None, figsize: tuple[float, float] | None = None,
             title: str | None = None, ylab: str | None = None, xlab: str | None = None) -> Figure:
    """Draw a :class:`~qicstats.spc.core.QicResult` (see :meth:`QicResult.plot`).

    Returns
    -------
    matplotlib.figure.Figure
        Data line with dots (blue), points outside the limits in red, centre line grey (red and
        dashed when the Anhøj rules signal non-random variation), limits as grey step lines,
        excluded points hollow and the end of a frozen baseline as a dotted vertical line.
    """
    d = res.data.reset_index(drop=True)
    xpos, cats = _x_positions(d)
    panels, nr, nc = _panels(d, list(res.facets), ncol)
    small = len(panels) > 1
    if figsize is None:
        figsize = (8.0, 4.5) if not small else (max(6.0, 3.0 * nc), max(3.0, 2.2 * nr + 0.8))
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nr, nc, sharex=True, sharey=True, squeeze=False)
    used = np.zeros((nr, nc), dtype=bool)
    for name, g, r, c in panels:
        ax = axes[r, c]
        used[r, c] = True
        _draw(ax, g, xpos, small, labels=len(panels) <= 12)
        if name:
            ax.set_title(name, fontsize=8 if small else 10)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=7 if small else 9)
    for r in range(nr):
        for c in range(nc):
            if not used[r, c]:
                axes[r, c].set_visible(False)
                if r > 0 and used[r - 1, c]:  # the panel above is now the lowest: label its x
                    axes[r - 1, c].xaxis.set_tick_params(labelbottom=True)
    if cats is not None:
        ax0 = axes[0, 0]
        ax0.set_xticks(np.arange(len(cats)))
        ax0.set_xticklabels(cats)
        for ax in axes.flat:
            for lab in ax.get_xticklabels():
                lab.set_rotation(90 if len(cats) > 6 else 0)
    elif pd.api.types.is_datetime64_any_dtype(d["x"]):
        for ax in axes.flat:
            for lab in ax.get_xticklabels():
                lab.set_rotation(45)
                lab.set_ha("right")
    ylab = ylab if ylab is not None else (
        res.y_name if res.n_name is None else f"{res.y_name} / {res.n_name}"
        + (f" x {res.multiply:g}" if res.multiply != 1 else ""))
    xlab = xlab if xlab is not None else res.x_name
    fig.supylabel(ylab, fontsize=9 if small else 10)
    fig.supxlabel(xlab, fontsize=9 if small else 10)
    fig.suptitle(title or res.title or chart_title(res), fontsize=11 if small else 12)
    return fig
