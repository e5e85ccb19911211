"""The report comparing runs: ``render_comparison_report``.

Diagnostics banners first (one per run), then what differs between the runs' configurations,
PSIS-LOO by observation and by unit with Pareto-k checks, ``arviz.compare``, the estimands
side by side, and a figure of how the headline improvement moves with model choice.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicstats.errors import ConfigError, ProblemCollector
from qicstats.report import figures as figs
from qicstats.report._render import render
from qicstats.report.blocks import Block, figure_block, h3, note, para, table_block
from qicstats.report.gate import banner, headline
from qicstats.report.tables import estimand_label, fmt_num, fmt_prob, html_table, value_formatter

if TYPE_CHECKING:  # pragma: no cover
    from qicstats.results.fitresult import FitResult

#: Pareto k above which PSIS-LOO is unreliable for an observation (the brief's rule)
PARETO_K_BAD = 0.7


@dataclass(frozen=True)
class RunView:
    """One run in a comparison.

    Parameters
    ----------
    name : str
        The label shown for the run (escaped in the report).
    result : FitResult
    config : dict, optional
        The run's resolved configuration (nested dicts); keys that differ between runs are
        tabulated. Without it the model specification and sampler settings stamped in the
        posterior are used.
    """

    name: str
    result: FitResult
    config: dict[str, Any] | None = None


# --------------------------------------------------------------------------------------
# config differences
# --------------------------------------------------------------------------------------
def _flatten(d: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(d, dict):
        if not d and prefix:
            out[prefix] = "{}"
        for k in sorted(d, key=str):
            out.update(_flatten(d[k], f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = d if isinstance(d, str) else json.dumps(d, sort_keys=True, default=str)
    return out


def _config_of(run: RunView) -> tuple[dict[str, Any], bool]:
    """The run's config, or (``False``) the spec and sampler recorded in its posterior."""
    if run.config is not None:
        return dict(run.config), True
    attrs = dict(getattr(run.result.idata, "attrs", {}) or {})
    cfg: dict[str, Any] = {"model": run.result.qmodel.spec.to_dict()}
    smp = attrs.get("qicstats_sampler")
    if isinstance(smp, str):
        try:
            cfg["sampler"] = json.loads(smp)
        except ValueError:
            cfg["sampler"] = smp
    cfg["estimands"] = {"interval_prob": run.result.options.interval_prob,
                        "horizons": list(run.result.options.horizons),
                        "mid": run.result.options.mid,
                        "direction": run.result.options.direction}
    return cfg, False


def config_differences(runs: Sequence[RunView]) -> pd.DataFrame:
    """Keys (dotted paths) whose values differ between runs: one column per run.

    A key missing from a run shows as ``"(not set)"``.
    """
    flat = [_flatten(_config_of(r)[0]) for r in runs]
    keys = sorted(set().union(*flat))
    recs = []
    for k in keys:
        vals = [f.get(k, "(not set)") for f in flat]
        if len(set(vals)) > 1:
            recs.append({"key": k, **{r.name: v for r, v in zip(runs, vals)}})
    return pd.DataFrame(recs, columns=["key"] + [r.name for r in runs])


# --------------------------------------------------------------------------------------
# LOO
# --------------------------------------------------------------------------------------
def _loo(result: FitResult, by: str) -> Any:
    with warnings.catch_warnings():
        # the Pareto-k warning is reported in the table, not as a Python warning
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return result.loo(by=by)


def _loo_row(run: str, by: str, elpd: Any) -> dict[str, Any]:
    k = np.asarray(getattr(elpd, "pareto_k", np.array([])), dtype=float).ravel()
    good = float(getattr(elpd, "good_k", PARETO_K_BAD) or PARETO_K_BAD)
    good = min(good, PARETO_K_BAD)
    return {"run": run, "left out": "one unit-period" if by == "observation" else "one unit",
            "ELPD": fmt_num(elpd.elpd, 5), "SE": fmt_num(elpd.se, 3),
            "p_loo": fmt_num(elpd.p, 3), "n": int(getattr(elpd, "n_data_points", k.size)),
            "good-k threshold": f"{good:.2f}",
            "k good": int((k <= good).sum()),
            f"threshold < k ≤ {PARETO_K_BAD}": int(((k > good) & (k <= PARETO_K_BAD)).sum()),
            f"{PARETO_K_BAD} < k ≤ 1": int(((k > PARETO_K_BAD) & (k <= 1)).sum()),
            "k > 1": int((k > 1).sum()), "_bad": int((k > PARETO_K_BAD).sum())}


def _compare_table(loos: dict[str, Any]) -> pd.DataFrame:
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cmp = az.compare(loos, round_to="none")
    cmp = cmp.reset_index().rename(columns={"index": "run"})
    if "run" not in cmp.columns:
        cmp = cmp.rename(columns={cmp.columns[0]: "run"})
    keep = [c for c in ("run", "rank", "elpd", "se", "elpd_diff", "dse", "p", "weight",
                        "diag_elpd") if c in cmp.columns]
    out = cmp[keep].copy()
    for c in ("elpd", "se", "elpd_diff", "dse", "p"):
        if c in out.columns:
            out[c] = [fmt_num(v, 4) for v in out[c]]
    if "weight" in out.columns:
        out["weight"] = [fmt_num(v, 2) for v in out["weight"]]
    return out


def _sec_loo(runs: Sequence[RunView]) -> list[Block]:
    blocks: list[Block] = [para(
        "Expected log predictive density (ELPD, higher is better) by Pareto-smoothed importance "
        "sampling leave-one-out cross-validation (PSIS-LOO), leaving out one unit-period and, "
        "closer to the question of generalising to new teams, one whole unit. Pareto k "
        "diagnoses each left-out piece: above 0.7 the importance-sampling estimate is "
        "unreliable.")]
    rows: list[dict[str, Any]] = []
    loos: dict[str, dict[str, Any]] = {"observation": {}, "unit": {}}
    for r in runs:
        for by in ("observation", "unit"):
            try:
                e = _loo(r.result, by)
            except Exception as exc:  # noqa: BLE001 - report, don't fail
                blocks.append(note(f"PSIS-LOO by {by} failed for run {r.name} "
                                   f"({type(exc).__name__}: {exc}).", "error"))
                continue
            loos[by][r.name] = e
            rows.append(_loo_row(r.name, by, e))
    if rows:
        df = pd.DataFrame(rows)
        bad_obs = df[(df["left out"] == "one unit-period") & (df["_bad"] > 0)]
        bad_unit = df[(df["left out"] == "one unit") & (df["_bad"] > 0)]
        blocks.append(table_block(html_table(
            df.drop(columns="_bad"),
            caption="Pareto k counts: 'k good' are at most ArviZ's sample-size dependent "
                    "threshold (good_k); k above 0.7 makes the PSIS estimate unreliable.")))
        if len(bad_obs):
            blocks.append(note(
                f"Pareto k > {PARETO_K_BAD} for some unit-periods in run(s) "
                f"{', '.join(map(str, bad_obs['run']))}: leave-one-observation-out PSIS is "
                "unreliable there. Leave-one-unit-out is then the reliable comparison (if its "
                "own k values are acceptable), and leave-one-collaborative-out refits are the "
                "gold standard for judging how a model generalises to a new collaborative.",
                "warn"))
        if len(bad_unit):
            blocks.append(note(
                f"Leave-one-unit-out PSIS also has Pareto k > {PARETO_K_BAD} in run(s) "
                f"{', '.join(map(str, bad_unit['run']))}: refit with the units (or whole "
                "collaboratives) left out (exact K-fold cross-validation) before choosing a "
                "model on ELPD.", "warn"))
    for by, title in (("observation", "arviz.compare, leaving out one unit-period"),
                      ("unit", "arviz.compare, leaving out one unit")):
        if len(loos[by]) < 2:
            continue
        blocks.append(h3(title))
        try:
            blocks.append(table_block(html_table(_compare_table(loos[by]),
                                            caption="elpd_diff and dse relative to the best "
                                                    "run; weights by stacking.")))
        except Exception as exc:  # noqa: BLE001 - e.g. runs fitted to different data
            blocks.append(note(f"arviz.compare could not compare these runs "
                               f"({type(exc).__name__}: {exc}); runs fitted to different data "
                               "cannot be compared by ELPD.", "warn"))
    return blocks


# --------------------------------------------------------------------------------------
# estimands side by side
# --------------------------------------------------------------------------------------
_SIDE = ("att", "att_ratio", "trend_change", "indicator_contrast", "indicator_main_contrast")


def _cell(r: pd.Series | None, ip: int) -> str:
    if r is None:
        return "–"
    f, _ = value_formatter(str(r["estimand"]), str(r["scale"]))
    p = "" if not math.isfinite(float(r["prob_improved"])) else \
        f", {fmt_prob(r['prob_improved'])}"
    return f"{f(r['mean'])} ({f(r['lower'])} to {f(r['upper'])}){p}"


def estimands_side_by_side(runs: Sequence[RunView]) -> pd.DataFrame:
    """The main estimands (overall and per collaborative ``att``, ``att_ratio``,
    ``trend_change``; indicator contrasts) of each run, one column per run, formatted.
    """
    tabs = {r.name: r.result.estimands() for r in runs}
    keys: list[tuple[str, str, str]] = []
    for est in tabs.values():
        sel = est[est["estimand"].isin(_SIDE) & est["scope"].isin(
            ["overall", "collaborative", "indicator"])]
        for k in zip(sel["estimand"].astype(str), sel["scope"].astype(str),
                     sel["group"].astype(str)):
            if k not in keys:
                keys.append(k)
    order = {n: i for i, n in enumerate(_SIDE)}
    scope_order = {"overall": 0, "collaborative": 1, "indicator": 2}
    keys.sort(key=lambda k: (order[k[0]], scope_order.get(k[1], 3), k[2]))
    recs = []
    for est_name, scope, group in keys:
        rec = {"estimand": estimand_label(est_name), "scope": scope, "group": group}
        for r in runs:
            e = tabs[r.name]
            m = e[(e["estimand"] == est_name) & (e["scope"] == scope) & (e["group"] == group)]
            ip = int(round(100 * r.result.options.interval_prob))
            rec[r.name] = _cell(m.iloc[0] if len(m) else None, ip)
        recs.append(rec)
    return pd.DataFrame(recs, columns=["estimand", "scope", "group"] + [r.name for r in runs])


# --------------------------------------------------------------------------------------
def _check_runs(runs: Any) -> list[RunView]:
    pc = ProblemCollector()
    try:
        runs = list(runs)
    except TypeError:
        runs = []
        pc.add("not_runs", "runs must be a sequence of RunView",
               hint="pass [RunView(name, result, config), ...]")
    if not runs and not pc.problems:
        pc.add("no_runs", "no run to compare", hint="pass at least one RunView")
    bad = [i for i, r in enumerate(runs) if not isinstance(r, RunView)]
    if bad:
        pc.add("not_a_runview", "every run must be a RunView", count=len(bad),
               examples=[f"position {i + 1}" for i in bad],
               hint="wrap each FitResult: RunView(name, result, config)")
    names = [str(r.name) for r in runs if isinstance(r, RunView)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        pc.add("duplicate_run_name", "run names must be unique", column="name",
               count=len(dup), examples=dup, hint="give each run its own name")
    pc.raise_if_errors(ConfigError)
    return runs


def render_comparison_report(runs: Sequence[RunView], *, title: str | None = None,
                             date: str | None = None) -> str:
    """Render a self-contained HTML page comparing runs.

    Parameters
    ----------
    runs : sequence of RunView
        The runs, in the order to show them (names unique).
    title : str, optional
        Page title (escaped).
    date : str, optional
        The report date (default today); fixed dates give identical pages for identical
        inputs.

    Returns
    -------
    str
        One HTML page (inline CSS and SVG, no scripts, no network references). Sections:
        diagnostics per run (first), configuration differences, PSIS-LOO by unit-period and
        by unit with Pareto-k counts, ``arviz.compare``, estimands side by side, and the
        headline improvement across runs.

    Raises
    ------
    ConfigError
        For an empty list, non-RunView entries or duplicate names.
    """
    runs = _check_runs(runs)
    date = date or _dt.date.today().isoformat()
    banners: list[dict[str, Any]] = []
    verdicts = []
    for r in runs:
        fr = r.result
        dg = fr.diagnostics()
        scale = "probability" if fr.qmodel.family in ("binomial", "betabinomial") else "other"
        b = banner(dg, interval_prob=fr.options.interval_prob, scale=scale,
                   thresholds=fr.thresholds)
        try:
            h = headline(fr)
        except Exception as exc:  # noqa: BLE001
            h = {"answer": "Unknown", "lead": f"({type(exc).__name__}: {exc})", "items": []}
        banners.append({"name": r.name, "banner": b, "headline": h})
        verdicts.append(dg.verdict)
    worst = "fail" if "fail" in verdicts else ("warn" if "warn" in verdicts else "pass")
    overall = {
        "verdict": worst,
        "title": {"pass": "Every run passed its diagnostics",
                  "warn": "Some runs raised diagnostic warnings",
                  "fail": "Some runs FAILED their diagnostics"}[worst],
        "trust": ("All runs converged: their estimates and ELPDs can be compared."
                  if worst == "pass" else
                  _trust_sentence(runs, verdicts)),
        "numbers": [], "reasons": [],
        "remedies": list(dict.fromkeys(x for b in banners for x in b["banner"]["remedies"])),
        "interval": 0,
    }
    sections: list[dict[str, Any]] = []

    def section(name: str, title_: str, make: Any) -> None:
        try:
            blocks = make()
        except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others
            blocks = [note(f"This section could not be rendered ({type(exc).__name__}: "
                           f"{exc}).", "error")]
        sections.append({"id": f"sec-{name}", "name": name, "title": title_, "blocks": blocks})

    def config_blocks() -> list[Block]:
        from_posterior = [r.name for r in runs if r.config is None]
        diff = config_differences(runs)
        out: list[Block] = []
        if from_posterior:
            out.append(note(f"No configuration given for {', '.join(from_posterior)}: the "
                            "model specification, sampler and estimand settings recorded with "
                            "the fit are compared instead.", "info"))
        if diff.empty:
            out.append(para("The configurations do not differ."))
        else:
            out.append(table_block(html_table(diff)))
        return out

    def estimand_blocks() -> list[Block]:
        tab = estimands_side_by_side(runs)
        if tab.empty:
            return [note("No estimands to compare.")]
        return [para("Each cell: posterior mean (interval), then the posterior probability of "
                   "improvement. Differences on a probability scale in percentage points."),
                table_block(html_table(tab))]

    def headline_blocks() -> list[Block]:
        recs = []
        for r, v in zip(runs, verdicts):
            a = r.result.estimands("att", "overall")
            if a.empty:
                recs.append({"run": r.name, "mean": np.nan, "lower": np.nan, "upper": np.nan,
                             "verdict": v})
            else:
                recs.append({"run": r.name, "mean": float(a["mean"].iloc[0]),
                             "lower": float(a["lower"].iloc[0]),
                             "upper": float(a["upper"].iloc[0]), "verdict": v})
        df = pd.DataFrame(recs)
        pct = all(r.result.qmodel.family in ("binomial", "betabinomial") for r in runs)
        label = ("improvement beyond the secular trend" +
                 (" (percentage points)" if pct else ""))
        return [figure_block(
            lambda: figs.headline_across_runs_figure(df, percent=pct, label=label),
            key="cmp-head", alt="Headline improvement by run",
            caption="The overall improvement beyond the secular trend in each run, with its "
                    "interval; colour shows the run's diagnostics verdict (green pass, amber "
                    "warn, red fail). If the runs disagree, the conclusion depends on model "
                    "choice.")]

    section("config", "What differs between the runs", config_blocks)
    section("loo", "Predictive accuracy (PSIS-LOO)", lambda: _sec_loo(runs))
    section("estimands", "Estimands side by side", estimand_blocks)
    section("headline", "How the headline moves with model choice", headline_blocks)
    page_title = title if title is not None else \
        "qicstats comparison: " + ", ".join(str(r.name) for r in runs)
    return render("comparison.html.j2", title=page_title, date=date, overall=overall,
                  runs=banners, sections=sections)


def _trust_sentence(runs: Sequence[Any], verdicts: list[str]) -> str:
    """Which runs failed (not to be trusted) and which only warned (read with care)."""
    failed = [r.name for r, v in zip(runs, verdicts) if v == "fail"]
    warned = [r.name for r, v in zip(runs, verdicts) if v == "warn"]
    parts = []
    if failed:
        parts.append(f"The estimates of {', '.join(failed)} must not be trusted yet, and their "
                     "ELPDs are not a sound basis for choosing a model: refit them first.")
    if warned:
        parts.append(f"{', '.join(warned)} raised warnings: read their estimates with care and "
                     "check the numbers behind the warning.")
    return " ".join(parts)
