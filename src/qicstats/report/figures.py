"""Figures for reports: matplotlib ``Figure`` objects (no pyplot state) turned into inline SVG
(or base64 PNG when an SVG would be too large), plus the report-only figures (join schedule,
SPC small multiples, the headline across runs).
"""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import pandas as pd
from markupsafe import Markup
from matplotlib.figure import Figure

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.typing import RcKeyType

    from qicstats.data.panel import PanelData

#: an inline SVG larger than this is replaced by a PNG (keeps reports small)
SVG_MAX_BYTES = 400_000

#: figures are shown at their natural size times this (never wider than the page)
DISPLAY_SCALE = 1.2

#: rcParams used while saving: text as paths (no fonts needed), fixed id salt (deterministic)
_SAVE_RC: dict[RcKeyType, Any] = {
    "svg.fonttype": "path", "svg.hashsalt": "qicstats-report", "svg.image_inline": True,
    "path.simplify": True}

_PASS, _WARN, _FAIL = "#1b7837", "#b35806", "#b2182b"
VERDICT_COLOURS = {"pass": _PASS, "warn": _WARN, "fail": _FAIL}


def natural_key(text: Any) -> tuple[Any, ...]:
    """Sort key that orders ``C2`` before ``C10`` (digit runs compared as numbers)."""
    parts = re.split(r"(\d+)", str(text))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p)


def natural_sorted(items: Any) -> list[Any]:
    """``sorted(items)`` in natural order (see :func:`natural_key`)."""
    return sorted(items, key=natural_key)


def _attr(text: str) -> str:
    """Escape text for an HTML attribute value."""
    return (text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
            .replace(">", "&gt;"))


def _prefix_ids(svg: str, prefix: str) -> str:
    """Make every ``id`` of one SVG unique within the page (figures share a document)."""
    ids = sorted(set(re.findall(r'\bid="([^"]+)"', svg)), key=len, reverse=True)
    if not ids:
        return svg
    alt = "|".join(re.escape(i) for i in ids)
    svg = re.sub(rf'\bid="({alt})"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(rf'url\(#({alt})\)', lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = re.sub(rf'href="#({alt})"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
    return svg


def _clean_svg(svg: str, prefix: str, alt: str) -> str:
    """Strip the XML prolog, doctype and metadata (they hold URLs) and make the SVG inline."""
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", svg)
    # scale with the page: drop the fixed width/height (keep the viewBox), show the figure at
    # its natural size times DISPLAY_SCALE, never wider than the page
    m = re.search(r'<svg[^>]*?\swidth="([\d.]+)pt"', svg)
    width_px = float(m.group(1)) * 4 / 3 * DISPLAY_SCALE if m else 800.0
    svg = re.sub(r'(<svg[^>]*?)\s+width="[^"]*"', r"\1", svg, count=1)
    svg = re.sub(r'(<svg[^>]*?)\s+height="[^"]*"', r"\1", svg, count=1)
    title = _attr(alt)
    svg = svg.replace("<svg", f'<svg role="img" aria-label="{title}" class="fig" '
                      f'style="width:{width_px:.0f}px"', 1)
    return _prefix_ids(svg, prefix).strip()


def figure_html(fig: Figure, *, key: str, alt: str = "figure", max_svg_bytes: int = SVG_MAX_BYTES,
                dpi: int = 110) -> Markup:
    """Render ``fig`` as an inline ``<svg>`` (or ``<img>`` with a base64 PNG if the SVG is large).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    key : str
        A page-unique prefix for the SVG's element ids (letters, digits, ``-``).
    alt : str
        Text alternative (escaped here).
    max_svg_bytes : int
        Above this size the figure is embedded as PNG instead.
    dpi : int
        Resolution of the PNG fallback.

    Returns
    -------
    markupsafe.Markup
        HTML safe to insert into an autoescaped template.
    """
    with matplotlib.rc_context(_SAVE_RC):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        svg = buf.getvalue()
        if len(svg.encode("utf-8")) <= max_svg_bytes:
            return Markup(_clean_svg(svg, f"{key}-", alt))
        pbuf = io.BytesIO()
        fig.savefig(pbuf, format="png", dpi=dpi, metadata={"Software": None})
    data = base64.b64encode(pbuf.getvalue()).decode("ascii")
    width_px = fig.get_figwidth() * 96 * DISPLAY_SCALE
    return Markup(f'<img class="fig" alt="{_attr(alt)}" style="width:{width_px:.0f}px" '
                  f'src="data:image/png;base64,{data}">')


# --------------------------------------------------------------------------------------
# report-only figures
# --------------------------------------------------------------------------------------
def join_schedule_figure(data: PanelData) -> Figure:
    """A strip chart of join periods per collaborative (marker area = units joining then).

    Each collaborative is one row; a thin line spans the periods its units are observed; a
    dot at each join period is sized and labelled by the number of units joining then.
    Comparison units are one grey row at the bottom.
    """
    units = data.units
    labels = list(data.periods.labels)
    T = len(labels)
    obs = data.panel.groupby("unit")["t"].agg(["min", "max"])
    colls = natural_sorted(data.collaboratives())
    rows = colls + (["comparison units"] if (~data.participating).any() else [])
    joins = pd.to_numeric(units["join_t"], errors="coerce")
    per = units.assign(_j=joins).dropna(subset=["_j"]).groupby(["collaborative", "_j"]).size()
    max_join = float(per.max()) if len(per) else 1.0
    fig = Figure(figsize=(7.0, 0.42 * len(rows) + 1.1), layout="constrained")
    ax = fig.subplots()
    for i, name in enumerate(rows):
        y = len(rows) - 1 - i
        if name == "comparison units" and i == len(colls):
            members = units[units["collaborative"].isna()]
        else:
            members = units[units["collaborative"] == name]
        span = obs.reindex(members["unit"]).dropna()
        if len(span):
            ax.hlines(y, span["min"].min(), span["max"].max(), color="#bbbbbb", lw=3, zorder=1)
        jt = pd.to_numeric(members["join_t"], errors="coerce").dropna().astype(int)
        if len(jt):
            counts = jt.value_counts().sort_index()
            ax.scatter(counts.index, np.full(len(counts), y),
                       s=18 + 90 * counts.to_numpy() / max_join, color="#2166ac", zorder=3,
                       alpha=0.85)
            for x, c in counts.items():
                ax.annotate(str(int(c)), (x, y), xytext=(0, 7), textcoords="offset points",
                            ha="center", fontsize=7, color="#2166ac")
        elif name == "comparison units":
            ax.annotate(f"{len(members)} units, never join", (0, y), xytext=(2, 5),
                        textcoords="offset points", fontsize=7, color="#555555")
    ax.set_yticks(range(len(rows)), list(reversed(rows)), fontsize=8)
    ticks = np.unique(np.linspace(0, T - 1, min(8, T)).astype(int))
    ax.set_xticks(ticks, [labels[t] for t in ticks], fontsize=7, rotation=30)
    ax.set_xlim(-0.7, T - 0.3)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel("period (dots: units joining, number above)", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


def sample_units(data: PanelData, max_units: int = 12) -> list[str]:
    """A deterministic, balanced sample of units: round-robin over collaboratives (sorted),
    comparison units last in each round, first units by name within each group.
    """
    units = data.units
    groups: list[list[str]] = []
    for c in natural_sorted(data.collaboratives()):
        groups.append(natural_sorted(units.loc[units["collaborative"] == c, "unit"].astype(str)))
    comp = natural_sorted(units.loc[units["collaborative"].isna(), "unit"].astype(str))
    if comp:
        groups.append(comp)
    out: list[str] = []
    k = 0
    while len(out) < max_units and any(k < len(g) for g in groups):
        for g in groups:
            if k < len(g) and len(out) < max_units:
                out.append(g[k])
        k += 1
    return out


#: SPC chart by outcome family: (chart, y column, n column)
SPC_CHART = {"binomial": ("p", "numerator", "denominator"),
             "betabinomial": ("p", "numerator", "denominator"),
             "poisson": ("u", "count", "exposure"),
             "negbinomial": ("u", "count", "exposure"),
             "gaussian": ("i", "value", None)}


def spc_frame(data: PanelData, units: Sequence[str] | None = None) -> tuple[pd.DataFrame, str,
                                                                         str, str | None]:
    """The panel as qic input: ``unit``, the x column, the outcome (and denominator) columns
    under their logical names, and ``phase`` (before / after joining).

    Returns
    -------
    (DataFrame, chart, y column, n column or None)
    """
    chart, y, n = SPC_CHART[data.family]
    p = data.panel if units is None else data.panel[data.panel["unit"].isin(list(units))]
    join = data.units.set_index("unit")["join_t"]
    jt = pd.to_numeric(p["unit"].map(join), errors="coerce").to_numpy(dtype=float)
    tt = p["t"].to_numpy(dtype=float)
    frame = pd.DataFrame({
        "unit": p["unit"].astype(str).to_numpy(),
        SPC_X: p["t"].to_numpy(dtype=int),
        y: pd.to_numeric(p[y], errors="coerce").to_numpy(dtype=float),
        "phase": np.where(np.isfinite(jt) & (tt >= np.nan_to_num(jt, nan=np.inf)),
                          "after joining", "before joining"),
    })
    if n is not None:
        frame[n] = pd.to_numeric(p[n], errors="coerce").to_numpy(dtype=float)
    return frame, chart, y, n


#: the x column of the SPC charts
SPC_X = "period (index from 0)"


def spc_small_multiples(data: PanelData, units: Sequence[str]) -> tuple[Figure, str]:
    """SPC charts (p / u / i by family) of ``units``, split into before/after joining.

    Returns
    -------
    (Figure, str)
        The figure and the chart type used.
    """
    from qicstats.spc import small_multiples

    frame, chart, y, n = spc_frame(data, units)
    ncol = min(4, max(1, len(units)))
    what = f"{y} / {n}" if n else y
    fig = small_multiples(frame, "unit", SPC_X, y, n=n, chart=chart, ncol=ncol, part="phase",
                          title=f"{chart}-charts of {what}, before and after joining")
    return fig, chart


def spc_table(data: PanelData) -> tuple[pd.DataFrame, str]:
    """Runs-rules summary of every unit's observed series, before and after joining.

    Returns
    -------
    (DataFrame, chart)
        One row per unit and phase: ``unit``, ``phase``, ``n_obs``, ``center``,
        ``longest_run`` / ``longest_run_max``, ``n_crossings`` / ``n_crossings_min``,
        ``runs_signal`` (non-random variation by the Anhøj rules) and ``sigma_signal``
        (points outside the control limits).
    """
    from qicstats.spc import qic

    frame, chart, y, n = spc_frame(data)
    res = qic(frame, SPC_X, y, n, chart=chart, facet="unit", part="phase")
    summ = res.summary()
    labels = (res.data.groupby(["unit", "part"], observed=True)["part_label"].first()
              if "part_label" in res.data.columns else None)
    if labels is not None:
        summ["phase"] = [str(labels.get((u, p), "")) for u, p in zip(summ["unit"], summ["part"])]
    else:  # pragma: no cover - older spc without part labels
        summ["phase"] = summ["part"].astype(str)
    cols = ["unit", "phase", "n_obs", "center", "longest_run", "longest_run_max", "n_crossings",
            "n_crossings_min", "runs_signal", "sigma_signal"]
    order = {u: i for i, u in enumerate(natural_sorted(summ["unit"].unique()))}
    summ = summ.assign(_o=summ["unit"].map(order)).sort_values(["_o", "part"], kind="stable")
    return summ[cols].reset_index(drop=True), chart


def headline_across_runs_figure(rows: pd.DataFrame, *, percent: bool, label: str) -> Figure:
    """Forest plot of the overall ``att`` per run (rows: ``run``, ``mean``, ``lower``,
    ``upper``, ``verdict``), coloured by each run's diagnostics verdict.
    """
    k = 100.0 if percent else 1.0
    n = len(rows)
    fig = Figure(figsize=(6.5, 0.45 * n + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1]
    for yi, r in zip(y, rows.itertuples(index=False)):
        col = VERDICT_COLOURS.get(str(r.verdict), "#4d4d4d")
        if np.isfinite(r.mean):
            ax.hlines(yi, k * r.lower, k * r.upper, color=col, lw=2)
            ax.plot([k * r.mean], [yi], "o", color=col, ms=6)
    ax.axvline(0, color="#888888", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{r} ({v})" for r, v in zip(rows["run"], rows["verdict"])], fontsize=8)
    ax.set_xlabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylim(-0.7, n - 0.3)
    return fig


def effect_curve_figure(rows: pd.DataFrame, *, factor: float, label: str,
                        att: tuple[float, float, float] | None = None,
                        not_identified: Sequence[int] = ()) -> Figure:
    """The effect by exposure time (periods since joining) with its intervals.

    Parameters
    ----------
    rows : DataFrame
        ``att_exposure`` rows with ``exposure_time``, ``mean``, ``lower``, ``upper`` and
        ``in_att`` (see :meth:`~qicstats.results.FitResult.att_rows`).
    factor : float
        Multiplies every value (100 for percentage points, 100,000 for "per 100,000").
    label : str
        The y-axis label.
    att : (mean, lower, upper), optional
        The overall ATT, drawn as a band (the average of the horizons in the ATT).
    not_identified : sequence of int
        Observed exposure times without concurrent comparison (marked, not estimated).

    Horizons in the ATT are filled dots, others open circles.
    """
    r = rows.sort_values("exposure_time")
    h = r["exposure_time"].astype(float).to_numpy()
    m = factor * r["mean"].to_numpy(dtype=float)
    lo = factor * r["lower"].to_numpy(dtype=float)
    hi = factor * r["upper"].to_numpy(dtype=float)
    ins = r["in_att"].astype(bool).to_numpy() if "in_att" in r.columns else np.ones(len(r), bool)
    fig = Figure(figsize=(6.8, 3.3), layout="constrained")
    ax = fig.subplots()
    if att is not None and all(np.isfinite(att)):
        ax.axhspan(factor * att[1], factor * att[2], color="#92c5de", alpha=0.35, lw=0,
                   label="ATT (average over the horizons in it), interval")
        ax.axhline(factor * att[0], color="#2166ac", lw=1, ls="--")
    ax.axhline(0, color="#888888", lw=0.8, ls=":")
    ax.vlines(h, lo, hi, color="#2166ac", lw=1.6)
    if ins.any():
        ax.plot(h[ins], m[ins], "o", color="#2166ac", ms=5, label="in the ATT")
    if (~ins).any():
        ax.plot(h[~ins], m[~ins], "o", mfc="white", mec="#2166ac", ms=5,
                label="not in the ATT")
    gone = [x for x in not_identified if x not in set(h.astype(int).tolist())]
    if gone:
        y0 = ax.get_ylim()[0]
        ax.plot(gone, np.full(len(gone), y0), "x", color="#b35806", ms=5, clip_on=False,
                label="no concurrent comparison (not estimated)")
    ax.set_xlabel("periods since joining (exposure time)", fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    ax.tick_params(labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=7, frameon=False, loc="best")
    return fig


def figure_or_note(make: Any, *, key: str, alt: str) -> tuple[Markup | None, str]:
    """Call ``make()`` for a Figure and render it; on failure return ``(None, reason)``."""
    try:
        fig = make()
    except Exception as exc:  # noqa: BLE001 - a figure must never break the report
        return None, f"{type(exc).__name__}: {exc}"
    return figure_html(fig, key=key, alt=alt), ""
