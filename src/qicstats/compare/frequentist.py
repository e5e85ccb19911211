"""Frequentist cross-checks of the Bayesian QIC model (statsmodels, linearmodels).

Each baseline estimates the average change at joining a collaborative with a standard,
fast, non-Bayesian method, so an analyst can see whether the posterior agrees with what a
reviewer would compute first.  For each panel row let ``D = 1[t >= join_t]`` (0 for comparison
units) and ``e = (t - join_t) * D`` (periods since joining).

=================  =====================================================================
method             what it estimates
=================  =====================================================================
``glm_fe``         GLM (binomial logit, Poisson log, Gaussian identity) with unit and period
                   fixed effects plus ``D`` and ``e``, cluster-robust by unit: level and
                   slope change on the link scale, conditional on unit and period.
``twfe_did``       two-way fixed-effects difference in differences (linearmodels
                   ``PanelOLS``) on the observed proportion / rate / value with ``D`` only:
                   one number that mixes the level change with the slope change.
``twfe_did_trend`` the same with ``D`` and ``e``: level and slope change on the response
                   scale.
``mixedlm``        linear mixed model (statsmodels ``MixedLM``) on the empirical logit (log
                   rate; value) with period fixed effects, ``D``, ``e`` and a random intercept
                   and random ``D`` slope by unit.
=================  =====================================================================

A baseline that cannot be estimated (collinear design, too few units, a library error) gives
rows with ``status = "failed: <reason>"`` instead of raising, so a report never breaks on it.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qicstats.data.panel import PanelData

__all__ = ["frequentist_baselines", "agreement_sentence", "BASELINE_COLUMNS", "METHODS"]

#: the columns of :func:`frequentist_baselines`' table, in order
BASELINE_COLUMNS: tuple[str, ...] = (
    "method", "term", "scale", "estimate", "se", "lower", "upper", "p_value", "n_obs",
    "n_clusters", "seconds", "note", "status",
)

#: the baselines and the terms each reports, in output order
METHODS: dict[str, tuple[str, ...]] = {
    "glm_fe": ("level_change", "slope_change"),
    "twfe_did": ("did",),
    "twfe_did_trend": ("level_change", "slope_change"),
    "mixedlm": ("level_change", "slope_change"),
}

_BINOMIAL = ("binomial", "betabinomial")
_COUNT = ("poisson", "negbinomial")
_GAUSSIAN = ("gaussian",)

_LINK_SCALE = {"binomial": "logit", "betabinomial": "logit", "poisson": "log",
               "negbinomial": "log", "gaussian": "identity"}
_RESPONSE_SCALE = {"binomial": "probability", "betabinomial": "probability",
                   "poisson": "identity", "negbinomial": "identity", "gaussian": "identity"}

_TERM_COLUMN = {"level_change": "D", "slope_change": "e", "did": "D"}


class _NotEstimable(Exception):
    """A baseline cannot be computed from these data (reported as ``failed: <message>``)."""


@dataclass
class _Prepared:
    """The modelling frame shared by all baselines."""

    frame: pd.DataFrame  # unit (str), ucode (int), t (int), D, e, y, n (binomial) / exposure
    family: str
    dropped_note: str = ""  # rows dropped or assumptions made, appended to every note


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def frequentist_baselines(data: PanelData, *, interval_prob: float = 0.95) -> pd.DataFrame:
    """Estimate the level and slope change with standard frequentist methods.

    Parameters
    ----------
    data : PanelData
        A validated QIC panel. ``data.panel`` needs ``unit``, ``t`` and the family's outcome
        columns; ``data.units`` needs ``unit`` and ``join_t`` (``<NA>`` for comparison units).
    interval_prob : float, default 0.95
        Coverage of the confidence intervals (``lower``, ``upper``).

    Returns
    -------
    DataFrame
        One row per (method, term), columns :data:`BASELINE_COLUMNS`: ``method``
        (``glm_fe``, ``twfe_did``, ``twfe_did_trend``, ``mixedlm``), ``term``
        (``level_change``, ``slope_change``, ``did``), ``scale`` (``logit``, ``log``,
        ``probability``, ``identity``), ``estimate``, ``se``, ``lower``, ``upper``,
        ``p_value``, ``n_obs`` (rows used), ``n_clusters`` (units used), ``seconds`` (wall
        time of the fit), ``note`` (what the baseline estimates, and any rows dropped or
        fallbacks taken) and ``status`` (``"ok"`` or ``"failed: <reason>"``). A failed
        baseline has missing numbers; it never raises.

    Raises
    ------
    ValueError
        If ``interval_prob`` is not strictly between 0 and 1 (a programming error).

    Notes
    -----
    Rows with a zero (or missing) denominator or exposure, or a missing outcome, are dropped
    before every method and the note says how many. Beta-binomial and negative-binomial
    panels are fitted with the binomial / Poisson mean model; the cluster-robust (``glm_fe``,
    ``twfe_*``) standard errors stay valid under overdispersion.
    """
    if not (isinstance(interval_prob, (int, float)) and 0.0 < float(interval_prob) < 1.0):
        raise ValueError(f"interval_prob must lie strictly between 0 and 1, got {interval_prob!r}")
    fitters: dict[str, Callable[[_Prepared, float], list[dict[str, Any]]]] = {
        "glm_fe": _glm_fe,
        "twfe_did": _twfe_did,
        "twfe_did_trend": _twfe_did_trend,
        "mixedlm": _mixedlm,
    }
    try:
        prep: _Prepared | None = _prepare(data)
        prep_error = ""
    except Exception as exc:  # noqa: BLE001 - a baseline must never break the report
        prep, prep_error = None, _reason(exc)

    family = getattr(data, "family", "")
    for module in ("statsmodels.api", "linearmodels.panel"):  # keep imports out of `seconds`
        with contextlib.suppress(Exception):  # the method using it reports the failure
            importlib.import_module(module)
    rows: list[dict[str, Any]] = []
    for method, terms in METHODS.items():
        scale = _scale(method, family)
        if prep is None:
            note = _method_note(method, family) if family in _LINK_SCALE else ""
            rows.extend(_failed_rows(method, terms, scale, prep_error, note))
            continue
        start = time.perf_counter()
        try:
            with _one_blas_thread(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                got = fitters[method](prep, float(interval_prob))
            seconds = time.perf_counter() - start
            extra = _warning_note(caught)
            for r in got:
                r["seconds"] = seconds
                r["note"] = _join_notes(r["note"], prep.dropped_note, extra)
            rows.extend(got)
        except Exception as exc:  # noqa: BLE001 - a baseline must never break the report
            seconds = time.perf_counter() - start
            base_note = _method_note(method, prep.family)
            failed = _failed_rows(method, terms, scale, _reason(exc),
                                  _join_notes(base_note, prep.dropped_note))
            for r in failed:
                r["seconds"] = seconds
            rows.extend(failed)
    out = pd.DataFrame(rows, columns=list(BASELINE_COLUMNS))
    for col in ("estimate", "se", "lower", "upper", "p_value", "seconds"):
        out[col] = out[col].astype("float64")
    for col in ("n_obs", "n_clusters"):
        out[col] = out[col].astype("Int64")
    return out


def agreement_sentence(bayes_estimate: float, bayes_lower: float, bayes_upper: float,
                       baselines: pd.DataFrame, term: str = "level_change",
                       scale: str = "logit") -> str:
    """Say in one plain-English sentence whether the frequentist baselines agree.

    Parameters
    ----------
    bayes_estimate, bayes_lower, bayes_upper : float
        Posterior point estimate and interval bounds of ``term`` on ``scale``.
    baselines : DataFrame
        The output of :func:`frequentist_baselines`.
    term : {"level_change", "slope_change", "did"}
        Which term to compare.
    scale : {"logit", "log", "probability", "identity"}
        Only baselines on this scale are compared (a logit estimate cannot be compared with a
        probability difference).

    Returns
    -------
    str
        One sentence: which frequentist estimates lie within the Bayesian interval, which lie
        outside it but have a confidence interval that overlaps it, and which do not overlap
        it at all.

    Raises
    ------
    ValueError
        If the Bayesian numbers are not finite, ``bayes_lower > bayes_upper``, or
        ``baselines`` lacks the columns of :data:`BASELINE_COLUMNS`.
    """
    vals = (bayes_estimate, bayes_lower, bayes_upper)
    if not all(isinstance(v, (int, float, np.floating, np.integer)) and math.isfinite(v)
               for v in vals):
        raise ValueError(f"the Bayesian estimate and interval must be finite numbers, got {vals}")
    if bayes_lower > bayes_upper:
        raise ValueError(f"bayes_lower ({bayes_lower}) is above bayes_upper ({bayes_upper})")
    missing = [c for c in ("method", "term", "scale", "estimate", "lower", "upper", "status")
               if c not in baselines.columns]
    if missing:
        raise ValueError(f"baselines lacks column(s) {missing}; "
                         "pass the output of frequentist_baselines()")

    label = {"level_change": "level change", "slope_change": "slope change",
             "did": "difference-in-differences effect"}.get(term, term.replace("_", " "))
    head = (f"The Bayesian {label} on the {scale} scale is {_fmt(bayes_estimate)} "
            f"(interval {_fmt(bayes_lower)} to {_fmt(bayes_upper)})")
    sel = baselines[(baselines["term"] == term) & (baselines["scale"] == scale)
                    & (baselines["status"] == "ok")]
    sel = sel[np.isfinite(sel["estimate"].to_numpy(dtype="float64", na_value=np.nan))]
    if sel.empty:
        return (head + f"; no frequentist baseline estimated the {label} on the {scale} scale, "
                "so it could not be cross-checked.")

    inside: list[str] = []
    overlap: list[str] = []
    apart: list[str] = []
    for row in sel.itertuples(index=False):
        est = float(row.estimate)
        lo = float(row.lower) if pd.notna(row.lower) else float("nan")
        hi = float(row.upper) if pd.notna(row.upper) else float("nan")
        if bayes_lower <= est <= bayes_upper:
            inside.append(f"{row.method} ({_fmt(est)})")
        elif math.isfinite(lo) and math.isfinite(hi) and lo <= bayes_upper and hi >= bayes_lower:
            overlap.append(f"{row.method} ({_fmt(est)}, interval {_fmt(lo)} to {_fmt(hi)})")
        elif math.isfinite(lo) and math.isfinite(hi):
            apart.append(f"{row.method} ({_fmt(est)}, interval {_fmt(lo)} to {_fmt(hi)})")
        else:
            apart.append(f"{row.method} ({_fmt(est)}, no interval)")

    clauses = []
    if inside:
        if len(inside) == len(sel) and len(sel) > 1:
            every = "both" if len(sel) == 2 else f"all {len(sel)}"
            clauses.append(f"{every} frequentist estimates lie within it: "
                           f"{_and_list(inside)}")
        else:
            clauses.append(f"{_and_list(inside)} {_verb(inside, 'lies', 'lie')} within it")
    if overlap:
        clauses.append(f"{_and_list(overlap)} {_verb(overlap, 'lies', 'lie')} outside it but "
                       f"{_verb(overlap, 'its interval overlaps', 'their intervals overlap')} it")
    if apart:
        clauses.append(f"{_and_list(apart)} {_verb(apart, 'lies', 'lie')} outside it and "
                       f"{_verb(apart, 'its interval does', 'their intervals do')} not overlap it")
    body = clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + ", while " + clauses[-1]
    return f"{head}; {body}."


# --------------------------------------------------------------------------------------
# preparation
# --------------------------------------------------------------------------------------
def _prepare(data: PanelData) -> _Prepared:
    """Build the shared modelling frame (unit codes, D, e, outcome), dropping unusable rows."""
    family = data.family
    if family not in _LINK_SCALE:
        raise _NotEstimable(f"family '{family}' has no frequentist baseline")
    panel, units = data.panel, data.units
    for col in ("unit", "t"):
        if col not in panel.columns:
            raise _NotEstimable(f"the panel has no '{col}' column")
    for col in ("unit", "join_t"):
        if col not in units.columns:
            raise _NotEstimable(f"the unit table has no '{col}' column")
    need = {"binomial": ("numerator", "denominator"), "betabinomial": ("numerator", "denominator"),
            "poisson": ("count",), "negbinomial": ("count",), "gaussian": ("value",)}[family]
    absent = [c for c in need if c not in panel.columns]
    if absent:
        raise _NotEstimable(f"the panel has no {absent} column(s) for family '{family}'")

    unit = panel["unit"].astype(str).to_numpy()
    join_by_unit = pd.Series(
        pd.to_numeric(units["join_t"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan),
        index=units["unit"].astype(str).to_numpy(),
    )
    if join_by_unit.index.has_duplicates:
        raise _NotEstimable("the unit table lists a unit more than once")
    unknown = sorted(set(unit) - set(join_by_unit.index))
    if unknown:
        raise _NotEstimable(f"{len(unknown)} panel unit(s) are not in the unit table, "
                            f"e.g. {unknown[:5]}")
    join = join_by_unit.reindex(unit).to_numpy()
    t = pd.to_numeric(panel["t"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    joined = ~np.isnan(join)
    D = np.where(joined & (t >= np.where(joined, join, 0.0)), 1.0, 0.0)
    e = np.where(D > 0, t - np.where(joined, join, 0.0), 0.0)

    frame = pd.DataFrame({"unit": unit, "t": t, "D": D, "e": e})
    keep = ~np.isnan(t)
    reasons: list[str] = []

    def num(col: str) -> np.ndarray:
        return pd.to_numeric(panel[col], errors="coerce").to_numpy(dtype="float64",
                                                                   na_value=np.nan)

    if family in _BINOMIAL:
        y, n = num("numerator"), num("denominator")
        zero_den = ~np.isnan(n) & (n <= 0)
        miss = np.isnan(y) | np.isnan(n)
        frame["y"], frame["n"] = y, n
        if zero_den.sum():
            reasons.append(f"{int(zero_den.sum())} row(s) with a zero denominator")
        keep &= ~zero_den
    elif family in _COUNT:
        y = num("count")
        expo = num("exposure") if "exposure" in panel.columns else np.ones(len(panel))
        zero_den = ~np.isnan(expo) & (expo <= 0)
        miss = np.isnan(y) | np.isnan(expo)
        frame["y"], frame["exposure"] = y, expo
        if zero_den.sum():
            reasons.append(f"{int(zero_den.sum())} row(s) with zero exposure")
        keep &= ~zero_den
    else:
        y = num("value")
        miss = np.isnan(y)
        frame["y"] = y
        if "weight" in panel.columns:
            frame["weight"] = num("weight")
    if (miss & keep).sum():
        reasons.append(f"{int((miss & keep).sum())} row(s) with a missing outcome")
    keep &= ~miss
    frame = frame.loc[keep].reset_index(drop=True)
    frame["t"] = frame["t"].astype("int64")
    if frame.empty:
        raise _NotEstimable("no usable rows (every row has a missing outcome or zero denominator)")
    frame["ucode"] = pd.factorize(frame["unit"], sort=True)[0]
    dropped = ("Dropped " + " and ".join(reasons) + " before fitting.") if reasons else ""
    if family in _COUNT and "exposure" not in panel.columns:
        dropped = _join_notes(dropped, "The panel has no exposure column, so every row's "
                                       "exposure is taken as 1.")
    return _Prepared(frame=frame, family=family, dropped_note=dropped)


# --------------------------------------------------------------------------------------
# the baselines
# --------------------------------------------------------------------------------------
_NOTES = {
    "glm_fe": "",  # family-specific, see _method_note
    "twfe_did": ("Two-way fixed-effects DiD with a single post-joining dummy: the average "
                 "change on the response scale, which mixes the level change with the slope "
                 "change (and is biased by staggered joins with changing effects); unweighted, "
                 "clustered by unit."),
    "twfe_did_trend": ("Two-way fixed-effects DiD with D and e: the level change at joining "
                       "and the change in slope per period afterwards on the response scale; "
                       "unweighted, clustered by unit."),
    "mixedlm": "",  # family-specific
}


def _method_note(method: str, family: str) -> str:
    """One sentence saying what the baseline estimates for this family."""
    if method == "glm_fe":
        model = {"binomial": "Binomial logit GLM", "betabinomial": "Binomial logit GLM "
                 "(quasi-likelihood for the beta-binomial panel)", "poisson": "Poisson log GLM "
                 "with offset log(exposure)", "negbinomial": "Poisson log GLM with offset "
                 "log(exposure) (quasi-likelihood for the negative-binomial panel)",
                 "gaussian": "Linear regression"}[family]
        return (f"{model} with unit and period fixed effects: the level change (D) and slope "
                f"change per period since joining (e) on the {_LINK_SCALE[family]} scale, "
                "conditional on unit and period, with cluster-robust SEs by unit.")
    if method == "mixedlm":
        outcome = {"logit": "the empirical logit log((y+0.5)/(n-y+0.5))",
                   "log": "the empirical log rate log((count+0.5)/exposure)",
                   "identity": "the value"}[_LINK_SCALE.get(family, "identity")]
        return (f"Linear mixed model on {outcome} with period fixed effects, D and e, and a "
                "random intercept and random D slope by unit: the average level and slope "
                "change on that scale (model-based SEs, unweighted).")
    return _NOTES[method]


def _scale(method: str, family: str) -> str:
    if method.startswith("twfe"):
        return _RESPONSE_SCALE.get(family, "identity")
    return _LINK_SCALE.get(family, "identity")


def _glm_fe(prep: _Prepared, interval_prob: float) -> list[dict[str, Any]]:
    """GLM with unit and period fixed effects (dense dummies), cluster-robust by unit."""
    import statsmodels.api as sm

    fam = prep.family
    frame, dropped_units, dropped_periods = _drop_uninformative(prep.frame, fam)
    notes = [_method_note("glm_fe", fam)]
    if dropped_units or dropped_periods:
        what = []
        if dropped_units:
            what.append(f"{dropped_units} unit(s)")
        if dropped_periods:
            what.append(f"{dropped_periods} period(s)")
        notes.append(f"Dropped {' and '.join(what)} whose outcome never varies (all zero or "
                     "all events): their fixed effect is infinite and they carry no "
                     "information on the change.")
    ucode = pd.factorize(frame["unit"], sort=True)[0]
    tcode = pd.factorize(frame["t"], sort=True)[0]
    _require_clusters(ucode)
    X_terms = frame[["D", "e"]].to_numpy(dtype="float64")
    _check_identified(X_terms, [ucode, tcode], "unit and period fixed effects")

    n_units, n_t = int(ucode.max()) + 1, int(tcode.max()) + 1
    nrow = len(frame)
    X = np.zeros((nrow, n_units + n_t - 1 + 2))
    X[np.arange(nrow), ucode] = 1.0
    later = tcode > 0
    X[np.flatnonzero(later), n_units + tcode[later] - 1] = 1.0
    X[:, -2:] = X_terms
    cov = {"groups": ucode}
    y = frame["y"].to_numpy(dtype="float64")
    if fam in _BINOMIAL:
        n = frame["n"].to_numpy(dtype="float64")
        model = sm.GLM(np.column_stack([y, n - y]), X, family=sm.families.Binomial(),
                       hasconst=True)
        res = model.fit(cov_type="cluster", cov_kwds=cov)
    elif fam in _COUNT:
        offset = np.log(frame["exposure"].to_numpy(dtype="float64"))
        model = sm.GLM(y, X, family=sm.families.Poisson(), offset=offset, hasconst=True)
        res = model.fit(cov_type="cluster", cov_kwds=cov)
    else:
        if "weight" in frame.columns and frame["weight"].notna().all():
            res = sm.WLS(y, X, weights=frame["weight"].to_numpy(dtype="float64"),
                         hasconst=True).fit(cov_type="cluster", cov_kwds=cov)
            notes.append("Weighted by the panel's weight column.")
        else:
            res = sm.OLS(y, X, hasconst=True).fit(cov_type="cluster", cov_kwds=cov)
    if fam not in _GAUSSIAN and not bool(getattr(res, "converged", True)):
        raise _NotEstimable("the GLM's IRLS iterations did not converge")
    params = np.asarray(res.params)
    bse = np.asarray(res.bse)
    pvals = np.asarray(res.pvalues)
    ci = np.asarray(res.conf_int(alpha=1.0 - interval_prob))
    out = []
    for term, j in (("level_change", X.shape[1] - 2), ("slope_change", X.shape[1] - 1)):
        out.append(_row("glm_fe", term, _LINK_SCALE[fam], params[j], bse[j], ci[j, 0],
                        ci[j, 1], pvals[j], nrow, n_units, " ".join(notes)))
    return out


def _twfe_frame(prep: _Prepared) -> tuple[pd.DataFrame, np.ndarray]:
    """Response-scale outcome indexed by (unit, t) for PanelOLS."""
    f = prep.frame
    if prep.family in _BINOMIAL:
        resp = f["y"] / f["n"]
    elif prep.family in _COUNT:
        resp = f["y"] / f["exposure"]
    else:
        resp = f["y"]
    df = pd.DataFrame({"y": resp.to_numpy(dtype="float64"), "D": f["D"].to_numpy(),
                       "e": f["e"].to_numpy()},
                      index=pd.MultiIndex.from_arrays([f["unit"].to_numpy(dtype=object),
                                                       f["t"].to_numpy()],
                                                      names=["unit", "t"]))
    return df, f["ucode"].to_numpy()


def _fit_panelols(prep: _Prepared, regressors: list[str], method: str,
                  interval_prob: float) -> list[dict[str, Any]]:
    from linearmodels.panel import PanelOLS

    df, ucode = _twfe_frame(prep)
    _require_clusters(ucode)
    tcode = pd.factorize(prep.frame["t"], sort=True)[0]
    _check_identified(df[regressors].to_numpy(dtype="float64"), [ucode, tcode],
                      "unit and period fixed effects")
    mod = PanelOLS(df["y"], df[regressors], entity_effects=True, time_effects=True)
    res = mod.fit(cov_type="clustered", cluster_entity=True)
    ci = res.conf_int(level=interval_prob)
    scale = _RESPONSE_SCALE[prep.family]
    note = _method_note(method, prep.family)
    if prep.family in _COUNT:
        note += " The response is the rate count/exposure."
    terms = ("did",) if method == "twfe_did" else ("level_change", "slope_change")
    out = []
    for term in terms:
        col = _TERM_COLUMN[term]
        out.append(_row(method, term, scale, res.params[col], res.std_errors[col],
                        ci.loc[col, "lower"], ci.loc[col, "upper"], res.pvalues[col],
                        int(res.nobs), int(len(np.unique(ucode))), note))
    return out


def _twfe_did(prep: _Prepared, interval_prob: float) -> list[dict[str, Any]]:
    """Two-way fixed-effects DiD with the single dummy D."""
    return _fit_panelols(prep, ["D"], "twfe_did", interval_prob)


def _twfe_did_trend(prep: _Prepared, interval_prob: float) -> list[dict[str, Any]]:
    """Two-way fixed-effects DiD with D and e."""
    return _fit_panelols(prep, ["D", "e"], "twfe_did_trend", interval_prob)


def _mixedlm(prep: _Prepared, interval_prob: float) -> list[dict[str, Any]]:
    """MixedLM on the empirical logit / log rate / value, random intercept and D slope."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    f = prep.frame
    fam = prep.family
    if fam in _BINOMIAL:
        z = np.log((f["y"] + 0.5) / (f["n"] - f["y"] + 0.5)).to_numpy(dtype="float64")
    elif fam in _COUNT:
        z = np.log((f["y"] + 0.5) / f["exposure"]).to_numpy(dtype="float64")
    else:
        z = f["y"].to_numpy(dtype="float64")
    ucode = f["ucode"].to_numpy()
    _require_clusters(ucode)
    tcode = pd.factorize(f["t"], sort=True)[0]
    X_terms = f[["D", "e"]].to_numpy(dtype="float64")
    _check_identified(X_terms, [tcode], "period fixed effects")

    n_t = int(tcode.max()) + 1
    exog = np.zeros((len(f), n_t + 2))
    exog[:, 0] = 1.0
    later = tcode > 0
    exog[np.flatnonzero(later), tcode[later]] = 1.0
    exog[:, -2:] = X_terms
    names = ["const"] + [f"period_{k}" for k in range(1, n_t)] + ["D", "e"]
    exog_df = pd.DataFrame(exog, columns=names)

    note = _method_note("mixedlm", fam)

    def fit(re_cols: np.ndarray) -> tuple[Any, list[str]]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = sm.MixedLM(z, exog_df, groups=ucode, exog_re=re_cols)
            res = model.fit(reml=True, method=["lbfgs"])
        problems = [str(w.message).split("\n")[0] for w in caught
                    if issubclass(w.category, (ConvergenceWarning, RuntimeWarning))]
        if not bool(getattr(res, "converged", True)):
            problems.insert(0, "the optimiser did not converge")
        return res, problems

    ones = np.ones((len(f), 1))
    try:
        res, problems = fit(np.column_stack([ones, f["D"].to_numpy(dtype="float64")]))
    except Exception as exc:  # noqa: BLE001 - fall back below
        res, problems = None, [_reason(exc)]
    if res is None or problems or not np.all(np.isfinite(np.asarray(res.bse_fe))):
        why = "; ".join(problems) if problems else "non-finite standard errors"
        res, problems2 = fit(ones)
        note += (f" The random-D-slope model did not converge cleanly ({why}), so this fit "
                 "uses a random intercept only.")
        if problems2:
            note += " The random-intercept fit also warned: " + "; ".join(problems2) + "."
    ci = res.conf_int(alpha=1.0 - interval_prob)
    out = []
    for term in ("level_change", "slope_change"):
        col = _TERM_COLUMN[term]
        out.append(_row("mixedlm", term, _LINK_SCALE[fam], res.fe_params[col],
                        res.bse_fe[col], ci.loc[col, 0], ci.loc[col, 1], res.pvalues[col],
                        len(f), int(len(np.unique(ucode))), note))
    return out


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _drop_uninformative(frame: pd.DataFrame, family: str) -> tuple[pd.DataFrame, int, int]:
    """Drop units and periods whose outcome never varies (infinite fixed effects), iteratively."""
    if family in _GAUSSIAN:
        return frame, 0, 0
    dropped_u: set[str] = set()
    dropped_t: set[int] = set()
    cur = frame
    while True:
        y = cur["y"].to_numpy(dtype="float64")
        if family in _BINOMIAL:
            fail = cur["n"].to_numpy(dtype="float64") - y
            flags = pd.DataFrame({"unit": cur["unit"].to_numpy(), "t": cur["t"].to_numpy(),
                                  "s": y > 0, "f": fail > 0})
        else:
            flags = pd.DataFrame({"unit": cur["unit"].to_numpy(), "t": cur["t"].to_numpy(),
                                  "s": y > 0, "f": True})
        by_u = flags.groupby("unit", sort=False)[["s", "f"]].any()
        by_t = flags.groupby("t", sort=False)[["s", "f"]].any()
        bad_u = set(by_u.index[~(by_u["s"] & by_u["f"])])
        bad_t = set(by_t.index[~(by_t["s"] & by_t["f"])])
        if not bad_u and not bad_t:
            break
        dropped_u |= bad_u
        dropped_t |= bad_t
        keep = ~cur["unit"].isin(bad_u) & ~cur["t"].isin(bad_t)
        cur = cur.loc[keep.to_numpy()]
        if cur.empty:
            raise _NotEstimable("the outcome never varies within any unit or period "
                                "(all zero or all events)")
    return cur.reset_index(drop=True), len(dropped_u), len(dropped_t)


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS to one thread during a fit.

    The dense fixed-effects designs are small enough that one thread is nearly as fast as
    many on an idle machine, and multi-threaded OpenBLAS slows down 5-10x when the cores are
    shared (measured: 1.5 s single-threaded vs 12 s threaded for glm_fe at 7,200 rows under
    load). ``threadpoolctl`` comes with PyMC; without it nothing is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a PyMC dependency
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _require_clusters(ucode: np.ndarray) -> None:
    k = len(np.unique(ucode))
    if k < 2:
        raise _NotEstimable(f"only {k} unit(s) with usable rows; clustering by unit needs at "
                            "least two")


def _demean(X: np.ndarray, groupings: list[np.ndarray], tol: float = 1e-12,
            max_iter: int = 5000) -> np.ndarray:
    """Residuals of ``X`` after projecting out the fixed effects of ``groupings``.

    Alternating projections (one pass is exact for a single grouping or a balanced panel).
    """
    R = X.copy()
    for _ in range(max_iter):
        change = 0.0
        for g in groupings:
            counts = np.bincount(g).astype("float64")
            counts[counts == 0] = 1.0
            for j in range(R.shape[1]):
                means = np.bincount(g, weights=R[:, j]) / counts
                R[:, j] -= means[g]
                change = max(change, float(np.max(np.abs(means))))
        if len(groupings) == 1 or change < tol * max(1.0, float(np.max(np.abs(X)))):
            break
    return R


def _check_identified(X: np.ndarray, groupings: list[np.ndarray], what: str) -> None:
    """Raise :class:`_NotEstimable` when D or e are absorbed by the fixed effects."""
    names = ["the level change (D)", "the slope change (e)"][: X.shape[1]]
    R = _demean(X, groupings)
    scale = np.sqrt(np.sum((X - X.mean(axis=0)) ** 2, axis=0))
    resid = np.sqrt(np.sum(R ** 2, axis=0))
    for j, name in enumerate(names):
        if scale[j] == 0 or resid[j] <= 1e-8 * max(scale[j], 1.0):
            raise _NotEstimable(
                f"{name} is not identified: it is collinear with the {what} (this happens "
                "when every unit joins in the same period and there are no comparison units, "
                "or when no row is observed after joining)")
    if R.shape[1] == 2:
        s = np.linalg.svd(R / resid, compute_uv=False)
        if s[-1] < 1e-6:
            raise _NotEstimable(f"the level change (D) and slope change (e) are not separately "
                                f"identified given the {what}")


def _row(method: str, term: str, scale: str, est: Any, se: Any, lo: Any, hi: Any, p: Any,
         n_obs: int, n_clusters: int, note: str) -> dict[str, Any]:
    return {"method": method, "term": term, "scale": scale, "estimate": float(est),
            "se": float(se), "lower": float(lo), "upper": float(hi), "p_value": float(p),
            "n_obs": int(n_obs), "n_clusters": int(n_clusters), "seconds": float("nan"),
            "note": note, "status": "ok"}


def _failed_rows(method: str, terms: tuple[str, ...], scale: str, reason: str,
                 note: str) -> list[dict[str, Any]]:
    return [{"method": method, "term": term, "scale": scale, "estimate": np.nan, "se": np.nan,
             "lower": np.nan, "upper": np.nan, "p_value": np.nan, "n_obs": pd.NA,
             "n_clusters": pd.NA, "seconds": np.nan, "note": note,
             "status": f"failed: {reason}"} for term in terms]


def _reason(exc: BaseException) -> str:
    """One-line reason for a failure."""
    msg = " ".join(str(exc).split())
    if isinstance(exc, _NotEstimable):
        return msg
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _warning_note(caught: list[warnings.WarningMessage]) -> str:
    msgs: list[str] = []
    for w in caught:
        m = " ".join(str(w.message).split())
        if m and m not in msgs:
            msgs.append(m)
    if not msgs:
        return ""
    shown = "; ".join(msgs[:2]) + (f" (and {len(msgs) - 2} more)" if len(msgs) > 2 else "")
    return f"Library warnings: {shown}."


def _join_notes(*parts: str) -> str:
    return " ".join(p.strip() for p in parts if p and p.strip())


def _fmt(x: float) -> str:
    x = float(x)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _and_list(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _verb(items: list[str], one: str, many: str) -> str:
    return one if len(items) == 1 else many

