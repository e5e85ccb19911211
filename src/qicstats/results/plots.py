"""Figures of a fit (matplotlib, no global pyplot state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from qicstats.results.fitresult import FitResult

OBS, FIT, CF = "#222222", "#2166ac", "#b2182b"


def _pct(fr: FitResult) -> float:
    return 100.0 if fr.qmodel.design.family in ("binomial", "betabinomial") else 1.0


def plot_trajectories(fr: FitResult, axis: str = "period", scope: str = "overall") -> Figure:
    """Observed, fitted and counterfactual (no-intervention) trajectories with intervals."""
    df = fr.trajectories(axis=axis, scope=scope)
    groups = list(dict.fromkeys(df["group"]))
    comp = fr.trajectories(axis="period", scope="comparison") if axis == "period" else None
    n = max(len(groups), 1)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig = Figure(figsize=(4.2 * ncol, 3.0 * nrow + 0.4), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False)
    k = _pct(fr)
    for i, g in enumerate(groups):
        ax = axes[i // ncol][i % ncol]
        s = df[df["group"] == g]
        x = (np.arange(len(s)) if axis == "period"
             else s["event_time"].to_numpy(dtype=float, na_value=np.nan))
        ax.fill_between(x, k * s["cf_lower"], k * s["cf_upper"], color=CF, alpha=0.15, lw=0)
        ax.plot(x, k * s["counterfactual"], color=CF, ls="--", lw=1.4,
                label="without the collaborative (counterfactual)")
        ax.fill_between(x, k * s["fitted_lower"], k * s["fitted_upper"], color=FIT, alpha=0.2,
                        lw=0)
        ax.plot(x, k * s["fitted"], color=FIT, lw=1.6, label="fitted")
        ax.plot(x, k * s["observed"], "o", color=OBS, ms=2.5, label="observed")
        if comp is not None and scope == "overall" and len(comp):
            cx = np.searchsorted(s["t"].to_numpy(), comp["t"].to_numpy())
            ax.plot(cx, k * comp["observed"], "s", color="#7f7f7f", ms=2, alpha=0.6,
                    label="comparison units (observed)")
        if axis == "period":
            ticks = np.linspace(0, len(s) - 1, min(6, len(s))).astype(int)
            ax.set_xticks(ticks, [str(s["period"].iloc[t]) for t in ticks], rotation=30,
                          fontsize=7)
        else:
            ax.axvline(-0.5, color="#555555", lw=0.8)
            ax.set_xlabel("periods since joining")
        ax.set_title(str(g), fontsize=9)
        ax.tick_params(labelsize=7)
    for j in range(len(groups), nrow * ncol):
        axes[j // ncol][j % ncol].set_visible(False)
    axes[0][0].legend(fontsize=6, loc="best")
    ylab = "percent" if k == 100 else "outcome"
    axes[0][0].set_ylabel(ylab)
    return fig


def plot_units(fr: FitResult) -> Figure:
    """Caterpillar plot of each unit's improvement beyond the trend."""
    est = fr.estimands("att", "unit").sort_values("mean")
    pdv = fr.positive_deviance().set_index("unit")
    k = _pct(fr)
    n = len(est)
    fig = Figure(figsize=(6.5, max(2.5, 0.16 * n + 1.0)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)
    colours = []
    for u in est["group"]:
        if u in pdv.index and bool(pdv.at[u, "positive_deviant"]):
            colours.append("#1b7837")
        elif u in pdv.index and bool(pdv.at[u, "negative_deviant"]):
            colours.append("#b2182b")
        else:
            colours.append("#4d4d4d")
    ax.hlines(y, k * est["lower"], k * est["upper"], colors=colours, lw=1.2)
    ax.scatter(k * est["mean"], y, c=colours, s=10, zorder=3)
    ax.axvline(0, color="#888888", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{u}  ({p:.0%})" for u, p in zip(est["group"], est["prob_improved"])],
                  fontsize=6)
    ax.set_xlabel("improvement beyond the secular trend"
                  + (" (percentage points)" if k == 100 else ""))
    ax.set_title("Units: improvement, P(improved); green/red = beats/falls short of its "
                 "collaborative", fontsize=8)
    return fig


def plot_ppc(fr: FitResult) -> Figure:
    """Observed outcome against its 90 % posterior predictive interval, per row (sorted)."""
    r = fr.residuals()
    d = fr.qmodel.design
    scale = d.y["denominator"] if "denominator" in d.y else (
        d.y["exposure"] if "exposure" in d.y else np.ones(len(r)))
    scale = np.where(scale > 0, scale, np.nan)
    k = _pct(fr)
    obs = k * r["observed"] / scale
    lo = k * r["lower"] / scale
    hi = k * r["upper"] / scale
    order = np.argsort(np.nan_to_num(r["expected"] / scale))
    fig = Figure(figsize=(7, 3.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, width_ratios=[2, 1])
    x = np.arange(len(r))
    ax1.vlines(x, lo.to_numpy()[order], hi.to_numpy()[order], color=FIT, alpha=0.3, lw=0.6)
    ax1.plot(x, obs.to_numpy()[order], ".", ms=1.5, color=OBS)
    ax1.set_xlabel("unit-periods (sorted by prediction)")
    ax1.set_title("Observed vs 90% predictive interval", fontsize=9)
    res = r["residual"].dropna().to_numpy()
    ax2.hist(res, bins=40, color=FIT, alpha=0.7, density=True)
    xs = np.linspace(-4, 4, 100)
    ax2.plot(xs, np.exp(-xs**2 / 2) / np.sqrt(2 * np.pi), color=OBS, lw=1)
    ax2.set_title("Standardised residuals", fontsize=9)
    return fig
