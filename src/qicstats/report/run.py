"""The report of one run: ``render_run_report``.

The page says first whether the fit can be trusted (the diagnostics banner), then answers
"did it beat the secular trend, where, and with what" in a headline box, then gives the
evidence section by section. Every section whose inputs are missing says so instead of
failing, and a section that cannot be drawn shows why while the rest of the report renders.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from qicstats.errors import ConfigError, ProblemCollector
from qicstats.report import figures as figs
from qicstats.report import methods as meth
from qicstats.report._render import render
from qicstats.report.blocks import Block, figure_block, h3, name_list, note, para, table_block
from qicstats.report.gate import banner, headline
from qicstats.report.tables import (
    fmt_int,
    fmt_num,
    fmt_prob,
    format_estimands,
    html_table,
    rate_per,
    value_formatter,
)

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from qicstats.data.panel import PanelData
    from qicstats.indicators.matrix import IndicatorMatrix
    from qicstats.results.fitresult import FitResult

#: the sections of a run report, in page order
SECTIONS: tuple[str, ...] = ("diagnostics", "data", "trajectories", "estimands", "units",
                             "indicators", "ppc", "spc", "frequentist", "methods")

SECTION_TITLES = {
    "diagnostics": "Can the fit be trusted?",
    "data": "Data",
    "trajectories": "Trajectories: observed, fitted and counterfactual",
    "estimands": "Estimands",
    "units": "Units: improvement, ranks and positive deviance",
    "indicators": "Indicators",
    "ppc": "Posterior predictive check",
    "spc": "Statistical process control",
    "frequentist": "Frequentist cross-checks",
    "methods": "Methods",
}

# --------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------
def _sec_diagnostics(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    dg = fr.diagnostics()
    blocks: list[Block] = [h3("The diagnostics gate")]
    frame = dg.to_frame().copy()
    frame["value"] = [fmt_num(v, 4) if c != "MCSE of overall att" else fmt_num(v, 3)
                      for c, v in zip(frame["check"], frame["value"])]
    blocks.append(table_block(html_table(frame, row_classes=[f"st-{s}" for s in frame["status"]])))
    if dg.worst is not None and len(dg.worst):
        w = dg.worst.copy()
        blocks.append(h3("Parameters that mix worst"))
        blocks.append(table_block(html_table(w, caption="Smallest bulk ESS first.")))
    blocks.extend(_identification_blocks(fr))
    return blocks


def _identification_blocks(fr: FitResult) -> list[Block]:
    """Is the effect told apart from the secular trend? The identification table, its
    warnings, the horizons the ATT averages and (a single series) the identifying
    assumption.
    """
    from qicstats.results.identification import STRONG_CORRELATION, WEAK_CONTRACTION

    blocks: list[Block] = [h3("Identification: is the effect told apart from the secular "
                              "trend?")]
    try:
        rep = fr.identification()
    except Exception as exc:  # noqa: BLE001 - said, not hidden
        return blocks + [note(f"The identification diagnostics could not be computed "
                              f"({type(exc).__name__}: {exc}): weak identification cannot "
                              "be ruled out.", "warn")]
    scale = meth.link_scale(fr.qmodel.family)
    blocks.append(para(
        f"For each effect parameter (on the {scale} scale): how much the data narrowed its "
        f"prior (contraction 1 − posterior variance / prior variance; below "
        f"{WEAK_CONTRACTION:g} the estimate says more about the prior than about the data) "
        "and its largest posterior correlation with a parameter of the secular trend or the "
        f"intercept (beyond ±{STRONG_CORRELATION:g} the effect and the trend trade off, so "
        "the assumed form of the trend decides the effect). Either makes the gate warn."))
    if rep.assumption:
        blocks.append(note(rep.assumption, "info"))
    if rep.horizons:
        blocks.append(para("Which horizons the ATT averages: " + rep.horizons))
    for r in rep.warn_reasons:
        blocks.append(note(r[:1].upper() + r[1:], "warn"))
    t = rep.table
    if t.empty:
        blocks.append(note("No effect parameter in the posterior: nothing to check.", "info"))
        return blocks
    show = pd.DataFrame({
        "parameter": t["parameter"].astype(str),
        "prior sd": [fmt_num(v, 3) for v in t["prior_sd"]],
        "posterior mean (sd)": [f"{fmt_num(m, 3)} ({fmt_num(v, 2)})"
                                for m, v in zip(t["posterior_mean"], t["posterior_sd"])],
        "contraction": [fmt_num(v, 2) for v in t["contraction"]],
        "largest |correlation| with the trend": [
            (f"{c:+.2f} ({w})" if math.isfinite(float(c)) else "–")
            for c, w in zip(t["corr"].astype(float), t["corr_with"])],
        "verdict": [("weak: " + f) if bool(wk) else "identified"
                    for wk, f in zip(t["weak"], t["flag"])],
    })
    blocks.append(table_block(html_table(
        show, row_classes=["st-warn" if bool(v) else "" for v in t["weak"]],
        collapse_over=30)))
    return blocks


def _sec_data(ctx: dict[str, Any]) -> list[Block]:
    data: PanelData | None = ctx["data"]
    if data is None:
        return [note("No panel data were supplied (pass data=PanelData), so the data "
                     "description is missing.")]
    s = data.summary()
    units = data.units
    blocks: list[Block] = []
    kv = [("outcome family", s["family"]), ("unit-periods (rows)", fmt_int(s["n_rows"])),
          ("units", f"{s['n_units']} ({s['n_participating']} participating, "
                    f"{s['n_comparison']} comparison)"),
          ("collaboratives", str(s["n_collaboratives"])),
          ("periods", f"{s['n_periods']} {s['freq']} periods, {s['first_period']} to "
                      f"{s['last_period']}"),
          ("grouping levels", " > ".join(list(s["levels"]) + ["unit"]))]
    blocks.append({"kind": "kv", "rows": kv})
    # collaboratives
    labels = list(data.periods.labels)
    recs = []
    n_rows = data.panel.groupby("unit").size()
    for c in figs.natural_sorted(data.collaboratives()):
        m = units[units["collaborative"] == c]
        jt = pd.to_numeric(m["join_t"], errors="coerce").dropna().astype(int)

        def lab(t: int) -> str:
            return labels[t] if 0 <= t < len(labels) else f"{t} (outside the data)"
        recs.append({"collaborative": c, "units": len(m),
                     "first join": lab(int(jt.min())) if len(jt) else "–",
                     "last join": lab(int(jt.max())) if len(jt) else "–",
                     "unit-periods": int(n_rows.reindex(m["unit"]).fillna(0).sum())})
    if recs:
        blocks.append(h3("Collaboratives and join schedule"))
        blocks.append(table_block(html_table(pd.DataFrame(recs))))
        blocks.append(figure_block(lambda: figs.join_schedule_figure(data), key="join",
                                   alt="Join schedule per collaborative",
                                   caption="Join periods per collaborative: each dot is a "
                                           "period in which units joined (number of units "
                                           "above it); the grey line spans the periods "
                                           "observed."))
    else:
        blocks.append(note("No collaborative: no unit has a join period, so there is no "
                           "improvement to estimate.", "warn"))
    comp = figs.natural_sorted(units.loc[units["collaborative"].isna(), "unit"].astype(str))
    blocks.append(h3("Comparison units"))
    if comp:
        blocks.append(para(
            (f"{len(comp)} comparison units never join a collaborative and carry the secular "
             f"trend: {name_list(comp)}.") if len(comp) > 1 else
            (f"One comparison unit never joins a collaborative and carries the secular "
             f"trend: {name_list(comp)}.")))
    else:
        blocks.append(note("There are no comparison units: the secular trend is learned from "
                           "pre-join periods and staggered joining only.", "warn"))
    # missing periods
    blocks.append(h3("Missing periods"))
    gaps = list(data.periods.gaps)
    T = data.periods.T
    miss = []
    obs = data.panel.groupby("unit")["t"].apply(lambda s: set(int(v) for v in s))
    for u in units["unit"].astype(str):
        have = obs.get(u, set())
        lost = [labels[t] for t in range(T) if t not in have]
        if lost:
            miss.append({"unit": u, "missing periods": len(lost),
                         "examples": ", ".join(lost[:5]) + (" …" if len(lost) > 5 else "")})
    if gaps:
        blocks.append(para(f"{len(gaps)} periods of the grid have no data at all: "
                           f"{name_list(gaps)}."))
    if miss:
        df = pd.DataFrame(miss).sort_values(["missing periods", "unit"],
                                            ascending=[False, True], kind="stable")
        blocks.append(para(f"{len(miss)} of {len(units)} units miss at least one of the "
                         f"{T} periods (the model uses the periods they have)."))
        blocks.append(table_block(html_table(df, collapse_over=15)))
    elif not gaps:
        blocks.append(para(f"None: every unit is observed in all {T} periods."))
    if data.warnings:
        blocks.append(h3("Validation warnings"))
        blocks.append({"kind": "list", "items": [w.message + (f" ({w.count} affected)"
                                                               if w.count else "")
                                                 for w in data.warnings]})
    if "spc" in ctx.get("chosen", ()):
        blocks.append(para("Control charts of the units are in the section "
                           "'Statistical process control' below."))
        return blocks
    blocks.extend(_spc_figure(data))
    return blocks


def _spc_figure(data: PanelData) -> list[Block]:
    sample = figs.sample_units(data, 12)
    chart = figs.SPC_CHART.get(data.family, ("run",))[0]
    return [h3("Control charts of a sample of units"),
            figure_block(lambda: figs.spc_small_multiples(data, sample)[0], key="spc",
                         alt="SPC small multiples",
                         caption=f"{chart}-charts (qicharts2 conventions, Anhøj rules) of "
                                 f"{len(sample)} of {len(data.units)} units, chosen evenly "
                                 "across collaboratives and comparison units; centre and "
                                 "limits are computed separately before and after joining. A "
                                 "red dashed centre line marks non-random variation.")]


def _sec_spc(ctx: dict[str, Any]) -> list[Block]:
    data: PanelData | None = ctx["data"]
    if data is None:
        return [note("No panel data were supplied (pass data=PanelData), so there are no "
                     "control charts.")]
    blocks: list[Block] = [para(
        "The practitioner's view of the observed data, without the model: run and control "
        "charts (qicharts2 conventions) with the Anhøj rules, separately before and after each "
        "unit joined. A runs signal (longest run too long or too few crossings of the centre "
        "line) marks non-random variation: a shift or trend within the phase.")]
    blocks.extend(_spc_figure(data))
    tab, chart = figs.spc_table(data)
    pct = chart == "p"
    blocks.append(h3("Runs analysis of every unit"))
    after = tab[tab["phase"] == "after joining"]
    before = tab[tab["phase"] == "before joining"]
    blocks.append(para(
        f"Before joining (or throughout, for comparison units), {int(before['runs_signal'].sum())}"
        f" of {len(before)} series show a runs signal; after joining "
        f"{int(after['runs_signal'].sum())} of {len(after)}. Points outside the control limits: "
        f"{int(before['sigma_signal'].sum())} before and {int(after['sigma_signal'].sum())} "
        "after joining."))
    show = pd.DataFrame({
        "unit": tab["unit"], "phase": tab["phase"], "points": tab["n_obs"],
        "centre": [(f"{100 * v:.1f}%" if pct else fmt_num(v, 3)) if math.isfinite(v) else "–"
                   for v in tab["center"].astype(float)],
        "longest run (max)": [f"{_int(a)} ({_int(b)})" for a, b in
                              zip(tab["longest_run"], tab["longest_run_max"])],
        "crossings (min)": [f"{_int(a)} ({_int(b)})" for a, b in
                            zip(tab["n_crossings"], tab["n_crossings_min"])],
        "runs signal": ["yes" if bool(v) else "no" for v in tab["runs_signal"]],
        "outside limits": tab["sigma_signal"].astype(int),
    })
    blocks.append(table_block(html_table(
        show, row_classes=["st-warn" if bool(v) else "" for v in tab["runs_signal"]],
        collapse_over=30)))
    return blocks


def _int(v: Any) -> str:
    try:
        return "–" if v is None or v is pd.NA or not math.isfinite(float(v)) else str(int(v))
    except (TypeError, ValueError):
        return "–"


def _sec_trajectories(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    blocks: list[Block] = [para(
        "Blue: the fitted mean with its interval; red dashed: the counterfactual, what the model "
        "expects without the collaborative (the secular trend and the units' baselines only); "
        "dots: observed. The gap between blue and red after joining is the improvement beyond "
        "the secular trend.")]
    views = [("period", "overall", "Calendar time, all participating units",
              "Grey squares: comparison units (observed)."),
             ("period", "collaborative", "Calendar time, per collaborative", ""),
             ("event_time", "overall", "Event time (periods since joining), all participating "
                                       "units", "The vertical line marks joining."),
             ("event_time", "collaborative", "Event time, per collaborative", "")]
    for i, (axis, scope, title, extra) in enumerate(views):
        if fr.trajectories(axis=axis, scope=scope).empty:
            blocks.append(note(f"{title}: nothing to show (no participating units).", "missing"))
            continue
        blocks.append(h3(title))

        def draw(a: str = axis, s: str = scope) -> Figure:
            return fr.plot_trajectories(a, s)

        blocks.append(figure_block(draw, key=f"traj{i}", alt=title, caption=extra))
    return blocks


def _est_order(df: pd.DataFrame) -> pd.DataFrame:
    order = {n: i for i, n in enumerate(
        ["att", "att_ratio", "trend_change", "fitted_mean", "counterfactual_mean",
         "events_gained"])}
    key = df["estimand"].map(lambda n: order.get(n, 6 if str(n).startswith("att_horizon_")
                                                 else 10))
    return df.assign(_k=key).sort_values(["_k"], kind="stable").drop(columns="_k")


def _sec_estimands(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    est = fr.estimands()
    if est.empty:
        return [note("No estimands: there are no participating unit-periods after joining.")]
    ip = int(round(100 * fr.options.interval_prob))
    per = rate_per(est)
    rates = (f" Rates are stated {meth.per_words(per)} of exposure (the CSV tables keep "
             "the rate per unit of exposure)." if per > 1 else "")
    blocks: list[Block] = [para(
        f"Posterior means with {ip}% equal-tailed intervals, computed draw by draw on the "
        "response scale. Differences on a probability scale are in percentage points (pp), "
        "levels in percent; P(>0) is the posterior probability that the value is positive and "
        "P(improved) that it moves in the direction of improvement." + rates)]
    overall = _est_order(est[est["scope"] == "overall"])
    blocks.append(h3("Overall"))
    blocks.append(table_block(html_table(
        format_estimands(overall, per=per).drop(columns=["Scope", "Group"]))))
    blocks.extend(_effect_curve_blocks(fr, est, per, ip))
    coll = est[est["scope"] == "collaborative"]
    if len(coll):
        blocks.append(h3("Per collaborative"))
        recs = []
        for g in figs.natural_sorted(coll["group"].astype(str).unique()):
            rec: dict[str, str] = {"collaborative": g}
            for name in ("att", "att_ratio", "trend_change", "events_gained"):
                r = coll[(coll["estimand"] == name) & (coll["group"] == g)]
                if r.empty:
                    continue
                r0 = r.iloc[0]
                f, unit = value_formatter(name, str(r0["scale"]), per)
                lab = {"att": f"improvement ({unit})", "att_ratio": "ratio",
                       "trend_change": f"secular trend ({unit})",
                       "events_gained": "events gained"}[name]
                rec[lab] = f"{f(r0['mean'])} ({f(r0['lower'])} to {f(r0['upper'])})"
                if name == "att":
                    rec["P(improved)"] = fmt_prob(r0["prob_improved"])
            recs.append(rec)
        blocks.append(table_block(html_table(pd.DataFrame(recs))))
    rest = est[~est["scope"].isin(["overall", "collaborative", "exposure", "phase"])]
    if len(rest):
        blocks.append(h3("All other estimands (units and indicators)"))
        blocks.append(table_block(html_table(format_estimands(_est_order(rest), per=per),
                                             collapse_over=0)))
    if fr.options.mid is None:
        blocks.append(note("No minimal important difference was configured, so P(>MID) is "
                           "not reported.", "info"))
    return blocks


def _effect_curve_blocks(fr: FitResult, est: pd.DataFrame, per: int, ip: int
                         ) -> list[Block]:
    """The effect by exposure time (figure and table) and by phase (table)."""
    blocks: list[Block] = []
    rows = fr.att_rows()
    exp = rows[rows["estimand"] == "att_exposure"].dropna(subset=["exposure_time"])
    st = fr.qmodel.structure
    if len(exp):
        scale = str(exp["scale"].iloc[0])
        f, unit = value_formatter("att_exposure", scale, per)
        factor = 100.0 if scale == "probability" else (float(per) if scale == "rate" else 1.0)
        ylab = {"pp": "improvement (percentage points)"}.get(
            unit, f"improvement ({unit})" if unit not in ("value",) else "improvement")
        head = rows[(rows["estimand"] == "att") & (rows["scope"] == "overall")]
        att = (cast(tuple[float, float, float],
                    tuple(float(head[c].iloc[0]) for c in ("mean", "lower", "upper")))
               if len(head) else None)
        gone: list[int] = []
        if st is not None and len(st.horizons) and "in_att" in st.horizons.columns:
            gone = [int(h) for h, k in zip(st.horizons["exposure_time"], st.horizons["in_att"])
                    if not bool(k)]
        shape = {"curve": "an exposure-time curve (one effect per period since joining, "
                          "partially pooled as a random walk)",
                 "step": "a step (one level change)",
                 "slope": "a level change plus a linear slope change"}.get(
            getattr(st, "effect", "") or fr.qmodel.spec.effect, "the model's effect shape")
        in_att = sorted(int(h) for h, k in zip(exp["exposure_time"], exp["in_att"]) if bool(k))
        span = (f"{in_att[0]}..{in_att[-1]}" if len(in_att) > 1 else
                (str(in_att[0]) if in_att else "none"))
        blocks.append(h3("Improvement by time since joining"))
        text = (f"The improvement at each exposure time (periods since joining; 0 is the join "
                f"period) with its {ip}% interval, from the fitted effect shape, {shape}. The "
                f"ATT averages exposure times {span} (filled dots; its interval is the band).")
        if gone:
            text += (f" Exposure times {_span(gone)} have no concurrent comparison (no unit "
                     "is observed untreated in those periods): they are left out of the ATT "
                     "and not estimated here.")
        blocks.append(para(text))
        blocks.append(figure_block(
            lambda: figs.effect_curve_figure(exp, factor=factor, label=ylab, att=att,
                                             not_identified=gone),
            key="curve", alt="Improvement by exposure time",
            caption=f"Improvement by periods since joining, {ip}% intervals."))
        tab = pd.DataFrame({
            "exposure time": exp["exposure_time"].astype(int).astype(str),
            f"improvement ({unit})": [f"{f(m)} ({f(lo)} to {f(hi)})" for m, lo, hi in
                                      zip(exp["mean"], exp["lower"], exp["upper"])],
            "P(improved)": [fmt_prob(v) for v in exp["prob_improved"]],
            "unit-periods": [fmt_int(v) for v in exp["n_rows"]],
            "in the ATT": ["yes" if bool(v) else "no" for v in exp["in_att"]],
        })
        blocks.append(table_block(html_table(tab, collapse_over=24)))
    ph = rows[rows["estimand"] == "att_phase"]
    if len(ph):
        f, unit = value_formatter("att_phase", str(ph["scale"].iloc[0]), per)
        blocks.append(h3("Improvement by phase"))
        blocks.append(para("The intervention phase (from joining to the end period) and the "
                           "sustainability phase (after it), averaged over their "
                           "unit-periods."))
        blocks.append(table_block(html_table(pd.DataFrame({
            "phase": ph["group"].astype(str),
            f"improvement ({unit})": [f"{f(m)} ({f(lo)} to {f(hi)})" for m, lo, hi in
                                      zip(ph["mean"], ph["lower"], ph["upper"])],
            "P(improved)": [fmt_prob(v) for v in ph["prob_improved"]],
            "unit-periods": [fmt_int(v) for v in ph["n_rows"]],
        }))))
    return blocks


def _span(hs: list[int]) -> str:
    hs = sorted(hs)
    if len(hs) > 1 and hs == list(range(hs[0], hs[-1] + 1)):
        return f"{hs[0]}..{hs[-1]}"
    return ", ".join(str(h) for h in hs)


def _sec_units(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    att = fr.estimands("att", "unit")
    if att.empty:
        return [note("No participating units: there are no unit estimates.")]
    blocks: list[Block] = []
    n = len(att)
    if n <= 300:
        blocks.append(figure_block(fr.plot_units, key="units", alt="Caterpillar plot of units",
                                   caption="Each unit's improvement beyond the secular trend "
                                           "with its interval; P(improved) in brackets. Green: "
                                           "positive deviant (beats its collaborative's "
                                           "expectation), red: falls short of it."))
    else:
        blocks.append(note(f"{n} units are too many for a legible caterpillar plot; see the "
                           "table below.", "info"))
    ranks = fr.unit_ranks()
    pdv = fr.positive_deviance()
    d = fr.qmodel.design
    coll = {d.unit_names[i]: (d.collaborative[i] or "") for i in range(d.n_units)}
    f, unit = value_formatter("att", str(att["scale"].iloc[0]), rate_per(fr.estimands()))
    a = att.set_index("group")
    pv = pdv.set_index("unit") if len(pdv) else pd.DataFrame()
    recs = []
    classes = []
    for r in ranks.itertuples(index=False):
        u = str(r.unit)
        row = a.loc[u] if u in a.index else None
        flag = ""
        pbe = float("nan")
        if u in pv.index:
            pbe = float(pv.at[u, "prob_beats_expectation"])
            if bool(pv.at[u, "positive_deviant"]):
                flag = "positive deviant"
            elif bool(pv.at[u, "negative_deviant"]):
                flag = "negative deviant"
        recs.append({
            "unit": u, "collaborative": coll.get(u, ""),
            f"improvement, {unit} (interval)":
                f"{f(row['mean'])} ({f(row['lower'])} to {f(row['upper'])})"
                if row is not None else "–",
            "P(improved)": fmt_prob(row["prob_improved"]) if row is not None else "–",
            "rank (interval)": f"{_rank(r.rank_median)} ({_rank(r.rank_lower)} to "
                               f"{_rank(r.rank_upper)})",
            "P(top)": fmt_prob(r.prob_top), "P(bottom)": fmt_prob(r.prob_bottom),
            "P(beats collaborative)": fmt_prob(pbe), "flag": flag or "–",
        })
        classes.append({"positive deviant": "pos", "negative deviant": "neg"}.get(flag, ""))
    blocks.append(h3("Ranks (1 = most improved) with their uncertainty"))
    n_pos = sum(c == "pos" for c in classes)
    n_neg = sum(c == "neg" for c in classes)
    blocks.append(para(
        f"Ranks are distributions, not points: the rank interval is where each unit's rank "
        f"lies with {int(round(100 * fr.options.interval_prob))}% probability. "
        f"{n_pos} positive and {n_neg} negative deviants "
        f"(probability threshold {fr.options.positive_deviance_prob:.0%})."))
    blocks.append(table_block(html_table(pd.DataFrame(recs), row_classes=classes,
                                         collapse_over=40)))
    return blocks


def _rank(v: Any) -> str:
    if not isinstance(v, (int, float, np.number)) or not math.isfinite(float(v)):
        return "–"
    return f"{float(v):.1f}".removesuffix(".0")


def _sec_indicators(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    im: IndicatorMatrix | None = ctx["indicators"]
    inds = fr.qmodel.design.indicators
    if not inds and im is None:
        return [note("The model has no coded indicators, so there are no indicator contrasts.")]
    blocks: list[Block] = []
    if inds:
        recs = [{"indicator": i.name, "label": i.label or i.name, "type": i.type,
                 "levels (lowest first)": " < ".join(i.levels) if i.levels else "continuous",
                 "role": i.role} for i in inds]
        blocks.append(table_block(html_table(pd.DataFrame(recs))))
    est = fr.estimands()
    con = est[est["estimand"].isin(["indicator_contrast", "indicator_main_contrast"])]
    lvl = est[est["estimand"] == "att_at_level"]
    blocks.append(h3("Contrasts between indicator levels"))
    if len(con):
        blocks.append(para("Indicator contrasts (moderators) compare the improvement between "
                         "levels; main-effect contrasts compare the outcome itself."))
        blocks.append(table_block(html_table(format_estimands(
            con, per=rate_per(est)).drop(columns=["Scope"]))))
    else:
        blocks.append(note("No indicator contrasts were estimated."))
    blocks.append(h3("Improvement at each level"))
    if len(lvl):
        blocks.append(table_block(html_table(format_estimands(
            lvl, per=rate_per(est)).drop(columns=["Scope"]))))
    else:
        blocks.append(note("No moderating indicator: improvement is not estimated by level."))
    blocks.append(h3("Coding: agreement and imputed codes"))
    if im is None:
        blocks.append(note("The indicator matrix was not supplied (pass indicators=), so coder "
                           "agreement and the number of imputed codes are not shown."))
        return blocks
    if im.agreement is not None and len(im.agreement):
        blocks.append(para(f"Coder agreement on double-coded items (consensus rule: "
                         f"{im.consensus})."))
        blocks.append(table_block(html_table(im.agreement)))
    else:
        blocks.append(note("No coder agreement: the codes carried no coder column or no item "
                           f"was double-coded (consensus rule: {im.consensus}).", "info"))
    counts = fr.qmodel.design.code_status_counts()
    tab = pd.DataFrame({
        "indicator": counts["indicator"],
        "coded cells": counts["observed"],
        "imputed in the model (missing codes, latent)": counts["imputed"],
        "uncertain (coders disagree, marginalised)": counts["uncertain"],
        "comparison units (reference level)": counts["comparison_reference"]})
    blocks.append(para("A cell is a span of a unit's timeline over which one code holds (from "
                       "its wave to the next). Missing codes of participating units are imputed "
                       "inside the model; their outcome data are always used."))
    blocks.append(table_block(html_table(tab)))
    return blocks


def _sec_ppc(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    blocks: list[Block] = [figure_block(fr.plot_ppc, key="ppc", alt="Posterior predictive check",
                                        caption="Left: each observation against its 90% "
                                                "posterior predictive interval; right: "
                                                "standardised residuals against a standard "
                                                "normal curve.")]
    s = fr.ppc_summary()
    tab = pd.DataFrame({"unit-periods": s["group"].astype(str),
                        "n": s["n"].astype(int),
                        "outside the 90% interval": [fmt_prob(v) for v in s["share_outside_90"]],
                        "expected": "10%"})
    blocks.append(table_block(html_table(tab)))
    tot = float(s["share_outside_90"].iloc[0]) if len(s) else float("nan")
    if math.isfinite(tot):
        if tot > 0.15:
            blocks.append(note(f"{tot:.0%} of observations fall outside their 90% predictive "
                               "interval (about 10% expected): the model understates the "
                               "variation; consider an overdispersed family (beta-binomial, "
                               "negative binomial) or AR(1) residuals.", "warn"))
        elif tot < 0.05:
            blocks.append(para(f"Only {tot:.0%} outside (about 10% expected): the predictive "
                             "intervals are wide for these data (conservative)."))
        else:
            blocks.append(para(f"{tot:.0%} outside, close to the 10% expected: the model "
                             "reproduces the spread of the data."))
    blocks.append(h3("Special-cause signals in the residuals"))
    sig = fr.residual_signals()
    flagged = sig[sig["runs_signal"].astype(bool) | (sig["sigma_signal"] > 0)]
    if flagged.empty:
        blocks.append(para(f"No unit's residuals show special-cause variation (Anhøj runs rules, "
                         f"|residual| > 3) among {len(sig)} units."))
    else:
        blocks.append(para(f"{len(flagged)} of {len(sig)} units show special-cause variation the "
                         "model does not explain (a runs signal: a shift or trend in the "
                         "residuals; a sigma signal: residuals beyond ±3). Look at these units' "
                         "series before trusting their estimates."))
        blocks.append(table_block(html_table(flagged.reset_index(drop=True), collapse_over=20)))
    return blocks


def _interval(lo: Any, hi: Any) -> str:
    a, b = fmt_num(lo, 3), fmt_num(hi, 3)
    return "–" if a == "–" and b == "–" else f"{a} to {b}"


def _sec_frequentist(ctx: dict[str, Any]) -> list[Block]:
    from qicstats.compare.frequentist import agreement_sentence

    fr: FitResult = ctx["result"]
    base: pd.DataFrame | None = ctx["baselines"]
    if base is None:
        return [note("Frequentist baselines were not supplied: compute them with "
                     "qicstats.compare.frequentist_baselines(data) and pass baselines= to "
                     "show the cross-check.")]
    scale = meth.link_scale(fr.qmodel.family)
    st = fr.qmodel.structure
    effect = (getattr(st, "effect", None) or fr.qmodel.spec.effect)
    post = fr.idata.posterior
    names = [v for v in ("level_change", "slope_change") if v in post]
    summ = (fr.summary(var_names=names) if names else
            pd.DataFrame(columns=["parameter", "mean", "lower", "upper"]))
    summ = summ[["parameter", "mean", "lower", "upper"]]
    if effect == "curve" and "effect_curve" in post:
        x = np.asarray(post["effect_curve"].values, dtype=float)
        x0 = x.reshape(x.shape[0] * x.shape[1], -1)[:, 0]
        q = (1 - fr.options.interval_prob) / 2
        if np.isfinite(x0).all():
            summ = pd.concat([summ, pd.DataFrame({
                "parameter": ["effect_curve[0]"], "mean": [float(x0.mean())],
                "lower": [float(np.quantile(x0, q))],
                "upper": [float(np.quantile(x0, 1 - q))]})], ignore_index=True)
    # the ATT on the response scale: comparable with the two-way fixed-effects DiD
    resp = {"binomial": "probability", "betabinomial": "probability"}.get(
        fr.qmodel.family, "identity")
    att = fr.estimands("att", "overall")
    intro = {
        "step": (f"The Bayesian level change on the {scale} scale (posterior mean and interval "
                 "of β_L; the model has a step, no slope change) next to standard frequentist "
                 "estimates. The segmented regressions also estimate a slope change, which "
                 "this model does not have: only their level change is compared, and it is "
                 "the same quantity only if their slope change is near zero."),
        "slope": (f"The Bayesian average level and slope change on the {scale} scale "
                  "(posterior mean and interval of the fixed effects β_L and β_S) next to "
                  "standard frequentist estimates."),
        "curve": (f"The model's effect is an exposure-time curve, not a level plus slope "
                  f"change, so the segmented regressions' level and slope changes are not the "
                  f"same quantity; shown for reference are the curve's value in the join "
                  f"period (effect_curve[0], {scale} scale) and the ATT on the response "
                  "scale, whose closest frequentist counterpart is the two-way fixed-effects "
                  "difference-in-differences effect (a constant effect)."),
    }.get(effect, "The Bayesian effect next to standard frequentist estimates.")
    blocks: list[Block] = [para(
        intro + " Only estimates on the same scale are directly comparable; the two-way "
        "fixed-effects DiD on the response scale is compared with the Bayesian ATT.")]
    recs = []
    for r in summ.itertuples(index=False):
        recs.append({"method": "Bayesian (this model)", "term": r.parameter, "scale": scale,
                     "estimate": fmt_num(r.mean, 3),
                     "interval": _interval(r.lower, r.upper),
                     "status": "ok", "note": "posterior mean, equal-tailed interval"})
    if len(att):
        a = att.iloc[0]
        recs.append({"method": "Bayesian (this model)", "term": "att", "scale": resp,
                     "estimate": fmt_num(a["mean"], 3),
                     "interval": _interval(a["lower"], a["upper"]), "status": "ok",
                     "note": "improvement beyond the secular trend, averaged over the "
                             "post-join unit-periods in the ATT"})
    n_bayes = len(recs)
    for r in base.itertuples(index=False):
        recs.append({"method": str(r.method), "term": str(r.term), "scale": str(r.scale),
                     "estimate": fmt_num(r.estimate, 3),
                     "interval": _interval(r.lower, r.upper),
                     "status": str(r.status), "note": str(r.note)})
    classes = ["bayes" if i < n_bayes else "" for i in range(len(recs))]
    blocks.append(table_block(html_table(pd.DataFrame(recs), row_classes=classes)))
    sentences = []
    for r in summ.itertuples(index=False):
        if r.parameter in ("level_change", "slope_change") and all(
                math.isfinite(float(v)) for v in (r.mean, r.lower, r.upper)):
            try:
                sentences.append(agreement_sentence(float(r.mean), float(r.lower),
                                                    float(r.upper), base, term=r.parameter,
                                                    scale=scale))
            except ValueError as exc:
                sentences.append(f"The {r.parameter} could not be cross-checked: {exc}")
    if len(att) and all(math.isfinite(float(att.iloc[0][c])) for c in ("mean", "lower",
                                                                         "upper")):
        a = att.iloc[0]
        try:
            text = agreement_sentence(float(a["mean"]), float(a["lower"]), float(a["upper"]),
                                      base, term="did", scale=resp)
            text = text.replace("The Bayesian difference-in-differences effect",
                                "The Bayesian ATT (improvement beyond the secular trend)", 1)
            sentences.append(text)
        except ValueError as exc:
            sentences.append(f"The ATT could not be cross-checked: {exc}")
    if sentences:
        blocks.append({"kind": "list", "items": sentences})
    return blocks


def _sec_methods(ctx: dict[str, Any]) -> list[Block]:
    fr: FitResult = ctx["result"]
    eq = meth.equation(fr)
    blocks: list[Block] = [h3("Model"), {"kind": "equation", **eq}]
    blocks.append(h3("Design choices and why"))
    blocks.append(para("What the model was built with, read from the design (never from the "
                       "outcome values): the secular trend, the effect's shape over time since "
                       "joining, phases, and which exposure times the ATT averages."))
    blocks.append({"kind": "kv", "rows": meth.design_choices(fr)})
    blocks.append(h3("Priors actually used"))
    blocks.append(para("Weakly informative on the link scale; level- and indicator-specific "
                     "priors fall back to the generic ones unless overridden in the config."))
    blocks.append(table_block(html_table(pd.DataFrame(
        meth.prior_rows(fr), columns=["parameter", "prior", "describes"]))))
    blocks.append(h3("Estimands"))
    blocks.append({"kind": "kv", "rows": meth.estimand_definitions(fr)})
    blocks.append(h3("Identification"))
    blocks.append(para(meth.identification(fr, ctx["data"])))
    if ctx["config_text"]:
        blocks.append({"kind": "pre", "summary": "The resolved configuration",
                       "text": ctx["config_text"]})
    return blocks


_BUILDERS: dict[str, Callable[[dict[str, Any]], list[Block]]] = {
    "diagnostics": _sec_diagnostics,
    "data": _sec_data,
    "trajectories": _sec_trajectories,
    "estimands": _sec_estimands,
    "units": _sec_units,
    "indicators": _sec_indicators,
    "ppc": _sec_ppc,
    "spc": _sec_spc,
    "frequentist": _sec_frequentist,
    "methods": _sec_methods,
}


def _build_section(name: str, ctx: dict[str, Any]) -> dict[str, Any]:
    try:
        blocks = _BUILDERS[name](ctx)
    except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
        blocks = [note(f"This section could not be rendered ({type(exc).__name__}: {exc}).",
                       "error")]
    return {"id": f"sec-{name}", "name": name, "title": SECTION_TITLES[name], "blocks": blocks}


def check_sections(sections: Sequence[str] | None, allowed: Sequence[str] = SECTIONS
                   ) -> list[str]:
    """Validate a ``sections`` selection; returns the chosen sections in page order.

    Raises
    ------
    ConfigError
        For unknown section names or an empty selection.
    """
    if sections is None:
        return list(allowed)
    pc = ProblemCollector()
    if isinstance(sections, str):
        sections = [sections]
    chosen = [str(s) for s in sections]
    bad = [s for s in chosen if s not in allowed]
    if bad:
        pc.add("unknown_section", f"unknown report section(s): {', '.join(bad)}",
               column="sections", count=len(bad), examples=bad,
               hint=f"choose among: {', '.join(allowed)}")
    elif not chosen:
        pc.add("no_sections", "no report section was selected", column="sections",
               hint=f"choose among: {', '.join(allowed)} (or leave sections unset for all)")
    pc.raise_if_errors(ConfigError)
    return [s for s in allowed if s in chosen]


def render_run_report(result: FitResult, *, data: PanelData | None = None,
                      indicators: IndicatorMatrix | None = None,
                      baselines: pd.DataFrame | None = None, title: str | None = None,
                      sections: Sequence[str] | None = None,
                      provenance: dict[str, Any] | None = None,
                      config_text: str | None = None) -> str:
    """Render the self-contained HTML report of one fit.

    The page opens with the diagnostics banner (green / amber / red for pass / warn / fail,
    with the numbers and, unless passed, a plain warning not to trust the estimates yet and
    what to do), then a headline box answering "did it beat the secular trend, where, and with
    what", then the sections.

    Parameters
    ----------
    result : FitResult
    data : PanelData
        The panel the model was fitted to (the ``data`` section; optional for the others).
    indicators : IndicatorMatrix, optional
        Encoded indicators (coder agreement and imputed codes in ``indicators``).
    baselines : DataFrame, optional
        :func:`qicstats.compare.frequentist_baselines` output (the ``frequentist`` section).
    title : str, optional
        Page title (default: ``"qicstats report: <run name>"``); escaped.
    sections : sequence of str, optional
        A subset of :data:`SECTIONS` (shown in page order). The trust verdict is shown at the
        top even when ``diagnostics`` is not selected.
    provenance : dict, optional
        Overrides and additions to the provenance stamped in the posterior: ``date`` (the
        report date; default today), ``run``, ``data_hash``, ``config_hash``, ``seed``,
        ``sampler``, ``versions`` and any other key/value to list.
    config_text : str, optional
        The resolved configuration (YAML text); shown in ``methods`` and hashed.

    Returns
    -------
    str
        One HTML page: inline CSS, inline SVG (or base64 PNG) figures, no scripts and no
        network references; the same inputs (and ``provenance['date']``) give the same page.

    Raises
    ------
    ConfigError
        For unknown section names.
    """
    chosen = check_sections(sections)
    prov = {k: v for k, v in dict(provenance or {}).items() if v is not None}
    if "date" not in prov:
        prov["date"] = str(prov.pop("created", "")) or _dt.date.today().isoformat()
    if "name" in prov and "run" not in prov:
        prov["run"] = prov.pop("name")
    ctx = {"result": result, "data": data, "indicators": indicators, "baselines": baselines,
           "config_text": config_text, "chosen": tuple(chosen)}
    dg = result.diagnostics()
    scale = "probability" if result.qmodel.family in ("binomial", "betabinomial") else "other"
    ban = banner(dg, interval_prob=result.options.interval_prob, scale=scale,
                 thresholds=result.thresholds)
    try:
        head = headline(result)
    except Exception as exc:  # noqa: BLE001 - the banner must render regardless
        head = {"answer": "Unknown", "lead": f"The headline could not be computed "
                                             f"({type(exc).__name__}: {exc}).", "items": []}
    body = [_build_section(name, ctx) for name in chosen]
    if data is not None and "panel_data_hash" not in prov:
        with contextlib.suppress(Exception):  # provenance detail only
            prov["panel_data_hash"] = data.data_hash()
    record, versions = meth.provenance_rows(result, prov, config_text)
    page_title = title if title is not None else f"qicstats report: {result.name}"
    fam = result.qmodel.family
    return render("run.html.j2", title=page_title, run_name=result.name, family=fam,
                  date=str(prov["date"]), banner=ban, headline=head,
                  show_full_diagnostics="diagnostics" in chosen, sections=body,
                  provenance=record, versions=versions,
                  show_provenance="methods" in chosen)
