"""Identification diagnostics: is the effect told apart from the secular trend?

A sampler can converge perfectly on a posterior that the data barely inform: the effect's
shape over time since joining (a level change plus a slope change, an exposure-time curve)
can trade off against the secular trend, so that the estimate follows the assumed form of
the trend (in one real stepped wedge a level + slope-change model flipped the sign of the
ATT against a constant-effect model with period effects, and nothing warned). Two numbers
per effect parameter, on the link scale, say whether that happened:

**Prior-to-posterior contraction** ``1 - var_post / var_prior`` (Schad, Betancourt &
Vasishth 2021, *Toward a principled Bayesian workflow*): 1 when the data pin the parameter
down, 0 when the posterior is the prior. The prior variance comes from the model's priors
(``QICModel.priors``, the :class:`~qicstats.models.priors.Prior` objects actually used),
analytically: a normal prior's ``sigma**2`` (a Student-t's ``sigma**2 nu / (nu - 2)``, a
Cauchy's or flat prior's infinity); horizon ``h`` of the exposure-time curve, a random walk
whose start has the ``level_change`` prior and whose steps have sd ``sd_curve``, has prior
variance ``var(start) + h * E[sd_curve**2]`` (plus ``sum_k c_k**2 var(ind_level_k)`` with
moderators centred at ``c``). Only where a prior has no closed form here are the variances
estimated from :data:`PRIOR_DRAWS` draws of ``pymc.sample_prior_predictive`` on the model
(seed :data:`PRIOR_SEED`; no MCMC); the table's ``prior_source`` says which.

**Posterior correlation with the trend**: the largest absolute correlation, over the
posterior draws, between the effect parameter and each parameter of the secular trend
(whatever the model's trend creates: ``trend_slope``, the period effects, random-walk and
spline coefficients, seasonal effects, and the trend itself per period, ``secular``) and the
``intercept``.

An effect parameter is **weakly identified** when its contraction is below
:data:`WEAK_CONTRACTION` or its largest absolute correlation exceeds
:data:`STRONG_CORRELATION`; a contraction or correlation that cannot be computed (non-finite
or constant draws) counts as weak. The horizons of the exposure-time curve checked are those
the ATT averages (:attr:`~qicstats.models.structure.Structure.horizons`, ``in_att``); later
ones are left out of the ATT already.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicstats.results.estimands import att_horizons

if TYPE_CHECKING:  # pragma: no cover
    import xarray as xr

    from qicstats.models.build import QICModel
    from qicstats.models.priors import Prior

#: contraction below this is weak: the posterior variance is still more than half the prior's
#: (the posterior sd above 71 % of the prior sd), so the estimate says more about the prior
#: than about the data. Effects the data inform contract by 0.9 and more (a level change with
#: posterior sd 0.1 under the default Normal(0, 1) prior contracts by 0.99)
WEAK_CONTRACTION = 0.5
#: |posterior correlation| with a trend parameter above this is weak: the effect and the trend
#: trade off, so the effect is fixed by the assumed form of the trend rather than by the data
#: (at 0.9 the effect's sd given the trend is 44 % of its marginal sd: a variance inflation
#: of 5.3, the common collinearity alarm)
STRONG_CORRELATION = 0.9
#: prior draws for prior variances without a closed form (``pm.sample_prior_predictive``)
PRIOR_DRAWS = 2000
#: seed of those prior draws (the table is deterministic)
PRIOR_SEED = 20261203

#: posterior variables that carry the secular trend (besides ``intercept``), as ``_secular``
#: and the decorrelated block create them
TREND_VARIABLES: tuple[str, ...] = ("trend_slope", "period_effect", "period_coef", "period_z",
                                    "period_pc",
                                    "trend_rw_z", "trend_spline_z", "season_z", "secular")

#: columns of :attr:`IdentificationReport.table`
IDENTIFICATION_COLUMNS: tuple[str, ...] = (
    "parameter", "term", "exposure_time", "prior_sd", "posterior_mean", "posterior_sd",
    "contraction", "max_abs_corr", "corr", "corr_with", "weak", "flag", "prior_source",
)


@dataclass
class IdentificationReport:
    """Identification of the effect parameters against the secular trend.

    Attributes
    ----------
    table : DataFrame
        One row per effect parameter (columns :data:`IDENTIFICATION_COLUMNS`):
        ``parameter`` (e.g. ``level_change``, ``effect_curve[h=3]``), ``term`` (level,
        slope, curve, phase), ``exposure_time`` (curve horizons), ``prior_sd``,
        ``posterior_mean``, ``posterior_sd``, ``contraction``, ``max_abs_corr`` and ``corr``
        (its signed value) with ``corr_with`` (the trend parameter it is reached with),
        ``weak`` (bool), ``flag`` (``""``, ``"low contraction"``, ``"trend correlation"``,
        both, or ``"not computable"``) and ``prior_source`` (``"analytic"`` or ``"prior
        draws"``).
    warn_reasons : list of str
        One sentence per weakly identified parameter, naming it, its numbers and the remedy.
    assumption : str
        The identifying assumption a single series rests on (empty for other designs).
    horizons : str
        Which exposure times the ATT averages, and why.
    """

    table: pd.DataFrame
    warn_reasons: list[str] = field(default_factory=list)
    assumption: str = ""
    horizons: str = ""

    @property
    def weak(self) -> bool:
        """Whether some effect parameter is weakly identified."""
        return bool(self.warn_reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (non-finite numbers as ``None``)."""
        recs = []
        for r in self.table.to_dict("records"):
            recs.append({k: _plain(v) for k, v in r.items()})
        return {"weak": self.weak, "warn_reasons": list(self.warn_reasons),
                "assumption": self.assumption, "horizons": self.horizons,
                "thresholds": {"contraction": WEAK_CONTRACTION,
                               "correlation": STRONG_CORRELATION},
                "parameters": recs}


def _plain(v: Any) -> Any:
    if v is None or v is pd.NA:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


# --------------------------------------------------------------------------------------
# prior variances
# --------------------------------------------------------------------------------------
def prior_variance(pr: Prior) -> float | None:
    """The variance of a prior on a parameter's value (``inf`` where it has none), or
    ``None`` where there is no closed form here.
    """
    if pr.on != "value":
        return None
    p = {k: float(v) for k, v in pr.params.items() if isinstance(v, (int, float))}
    if pr.dist == "Normal":
        return p.get("sigma", 1.0) ** 2
    if pr.dist == "StudentT":
        nu, s = p.get("nu", 1.0), p.get("sigma", 1.0)
        return s * s * nu / (nu - 2.0) if nu > 2 else math.inf
    if pr.dist in ("Cauchy", "Flat"):
        return math.inf
    if pr.dist == "Uniform":
        return (p.get("upper", 1.0) - p.get("lower", 0.0)) ** 2 / 12.0
    return None


def _second_moment(pr: Prior) -> float | None:
    """``E[x**2]`` of a scale prior (the random walk's step variance), or ``None``."""
    p = {k: float(v) for k, v in pr.params.items() if isinstance(v, (int, float))}
    if pr.on == "variance":  # the distribution is on x**2: its mean
        return {"HalfNormal": lambda: p.get("sigma", 1.0) * math.sqrt(2 / math.pi),
                "Exponential": lambda: 1.0 / p.get("lam", 1.0),
                "Gamma": lambda: p.get("alpha", 1.0) / p.get("beta", 1.0),
                "InverseGamma": lambda: (p.get("beta", 1.0) / (p["alpha"] - 1.0)
                                         if p.get("alpha", 1.0) > 1 else math.inf),
                "HalfCauchy": lambda: math.inf}.get(pr.dist, lambda: None)()
    if pr.on != "value":
        return None
    if pr.dist == "HalfNormal":
        return p.get("sigma", 1.0) ** 2
    if pr.dist == "HalfStudentT":
        nu, s = p.get("nu", 1.0), p.get("sigma", 1.0)
        return s * s * nu / (nu - 2.0) if nu > 2 else math.inf
    if pr.dist == "HalfCauchy":
        return math.inf
    if pr.dist == "Exponential":
        return 2.0 / p.get("lam", 1.0) ** 2
    if pr.dist == "Gamma":
        a, b = p.get("alpha", 1.0), p.get("beta", 1.0)
        return a * (a + 1.0) / (b * b)
    if pr.dist == "LogNormal":
        return math.exp(2 * p.get("mu", 0.0) + 2 * p.get("sigma", 1.0) ** 2)
    if pr.dist == "Uniform":
        lo, hi = p.get("lower", 0.0), p.get("upper", 1.0)
        return (lo * lo + lo * hi + hi * hi) / 3.0
    return None


def _curve_prior_variances(qm: QICModel, horizons: list[int]) -> dict[int, float | None]:
    """Prior variance of ``effect_curve`` at each horizon (``None``: no closed form)."""
    pri = qm.priors
    start = pri.get("level_change")
    v0 = prior_variance(start) if start is not None else None
    n_curve = int(getattr(qm.design, "n_curve", 1) or 1)
    if n_curve > 1:
        sd = pri.get("sd_curve")
        step = _second_moment(sd) if sd is not None else None
    else:
        step = 0.0
    shift: float | None = 0.0
    d = qm.design
    mods = [k for k, ind in enumerate(d.indicators) if ind.is_moderator]
    if mods:
        from qicstats.models.block import moderator_centres

        c = moderator_centres(d, mods)
        shift = 0.0
        for k, ck in zip(mods, c):
            pr = pri.get(f"ind_level_{d.indicators[k].name}") or pri.get("ind_level")
            v = prior_variance(pr) if pr is not None else None
            if v is None:
                shift = None
                break
            shift += float(ck) ** 2 * v
    out: dict[int, float | None] = {}
    for h in horizons:
        if v0 is None or step is None or shift is None:
            out[h] = None
        else:
            out[h] = v0 + h * step + shift
    return out


def _sampled_prior_variances(qm: QICModel, names: list[str]) -> dict[str, np.ndarray]:
    """Prior variances by prior draws (seeded) of the named variables."""
    import pymc as pm
    import pytensor

    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        draws = pm.sample_prior_predictive(draws=PRIOR_DRAWS, model=qm.model, var_names=names,
                                           random_seed=PRIOR_SEED, return_inferencedata=False)
    out = {}
    for n in names:
        x = np.asarray(draws[n], dtype=float)
        x = x.reshape(x.shape[0], -1) if x.ndim > 1 else x[:, None]
        out[n] = np.var(x, axis=0, ddof=1)
    return out


# --------------------------------------------------------------------------------------
# posterior draws
# --------------------------------------------------------------------------------------
def _flat(post: Any, name: str) -> tuple[np.ndarray, list[str]]:
    """Draws ``(S, k)`` of a posterior variable and a label per column."""
    da = post[name]
    extra = [d for d in da.dims if d not in ("chain", "draw")]
    arr = np.asarray(da.values, dtype=float)
    S = arr.shape[0] * arr.shape[1]
    arr = arr.reshape(S, -1)
    if not extra:
        return arr, [name]
    idx = [list(np.asarray(da.coords[d].values)) if d in da.coords else
           list(range(da.sizes[d])) for d in extra]
    labels = [f"{name}[{', '.join(str(v) for v in combo)}]"
              for combo in itertools.product(*idx)]
    return arr, labels


def trend_draws(idata: xr.DataTree) -> tuple[np.ndarray, list[str]]:
    """Posterior draws ``(S, m)`` of the intercept and the secular-trend parameters (columns
    whose draws are non-finite or constant are left out: they cannot trade off).
    """
    post = idata.posterior
    cols, labels = [], []
    for name in ("intercept",) + TREND_VARIABLES:
        if name in post:
            a, lab = _flat(post, name)
            cols.append(a)
            labels += lab
    if not cols:
        return np.zeros((0, 0)), []
    X = np.concatenate(cols, axis=1)
    ok = np.isfinite(X).all(axis=0) & (X.std(axis=0) > 1e-12 * (1 + np.abs(X).max(axis=0)))
    return X[:, ok], [lab for lab, k in zip(labels, ok) if k]


def _max_corr(x: np.ndarray, X: np.ndarray, labels: list[str]) -> tuple[float, float, str]:
    """(largest |corr|, its signed value, the partner) of ``x`` with the columns of ``X``."""
    if not X.size or not labels:
        return float("nan"), float("nan"), ""
    if not np.isfinite(x).all() or x.std() == 0:
        return float("nan"), float("nan"), ""
    xs = (x - x.mean()) / x.std()
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    r = (Xs * xs[:, None]).mean(axis=0)
    # ties (the trend per period is a multiple of trend_slope) go to the named parameter
    j = int(np.argmax(np.round(np.abs(r), 9)))
    return float(abs(r[j])), float(r[j]), labels[j]


# --------------------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------------------
def _effect_parameters(qm: QICModel, post: Any) -> list[tuple[str, str, int | None, str, int]]:
    """``(label, term, exposure_time, variable, column)`` of the effect parameters."""
    out: list[tuple[str, str, int | None, str, int]] = []
    for name, term in (("level_change", "level"), ("slope_change", "slope")):
        if name in post and post[name].ndim == 2:
            out.append((name, term, None, name, 0))
    if "effect_curve" in post:
        da = post["effect_curve"]
        labels = ([str(v) for v in da.coords["exposure_time"].values]
                  if "exposure_time" in da.coords else
                  [str(i) for i in range(int(np.prod(da.shape[2:])))])
        keep = att_horizons(qm)
        for j, lab in enumerate(labels):
            if not lab.isdigit():
                continue  # a pooled ">k" slot: past the identified horizons
            h = int(lab)
            if keep is None or h in keep:
                out.append((f"effect_curve[h={h}]", "curve", h, "effect_curve", j))
    if "phase_change" in post and post["phase_change"].ndim == 2:
        out.append(("phase_change", "phase", None, "phase_change", 0))
    return out


def _remedy(qm: QICModel, term: str, low_contraction: bool) -> str:
    st = qm.structure
    d = qm.design
    single = bool(st.single_series) if st is not None else False
    trend = st.trend if st is not None else qm.spec.trend
    effect = st.effect if st is not None else qm.spec.effect
    no_comparison = not bool((~np.asarray(d.participating, bool)).any())
    opts: list[str] = []
    if term == "phase":
        opts.append("more periods observed after end_period or no separate sustainability "
                    "phase (model.phases: false)")
    elif effect in ("slope", "curve"):
        opts.append("a simpler effect shape (model.effect: step)")
    if not single and trend != "period":
        opts.append("free period effects (model.trend: period)")
    if single or no_comparison:
        opts.append("comparison units (units observed untreated in the same periods)")
    if single or low_contraction or trend in ("linear", "none"):
        opts.append("more pre-join periods")
    if not opts:
        opts.append("comparison units or more pre-join periods")
    text = opts[0] if len(opts) == 1 else ", ".join(opts[:-1]) + " or " + opts[-1]
    return f"Remedy: {text}."


def identification(qmodel: QICModel, idata: xr.DataTree) -> IdentificationReport:
    """Prior-to-posterior contraction of each effect parameter and its largest posterior
    correlation with the secular trend, with warnings for weak identification.

    Parameters
    ----------
    qmodel : QICModel
        The model (its priors, structure and design).
    idata : DataTree
        The posterior (group ``posterior``).

    Returns
    -------
    IdentificationReport
        See the module docstring for the definitions and thresholds.
    """
    post = idata.posterior
    params = _effect_parameters(qmodel, post)
    X, xlab = trend_draws(idata)
    # prior variances: analytic where the prior has a closed form
    pv: dict[str, float | None] = {}
    for label, term, _h, var, _j in params:
        if term == "curve":
            continue
        pr = qmodel.priors.get(var)
        pv[label] = prior_variance(pr) if pr is not None else None
    curve_h = [h for _, term, h, _, _ in params if term == "curve" and h is not None]
    if curve_h:
        cv = _curve_prior_variances(qmodel, curve_h)
        for hc in curve_h:
            pv[f"effect_curve[h={hc}]"] = cv[hc]
    source = {k: "analytic" for k, v in pv.items() if v is not None}
    missing = sorted({var for label, _, _, var, _ in params if pv.get(label) is None})
    if missing:
        try:
            sampled = _sampled_prior_variances(qmodel, missing)
        except Exception:  # noqa: BLE001 - a prior that cannot be drawn: contraction unknown
            sampled = {}
        for label, _, _, var, j in params:
            if pv.get(label) is None and var in sampled and j < len(sampled[var]):
                pv[label] = float(sampled[var][j])
                source[label] = "prior draws"
    recs = []
    reasons: list[str] = []
    for label, term, h, var, j in params:
        x, _ = _flat(post, var)
        x = x[:, j]
        finite = bool(len(x) > 1 and np.isfinite(x).all())
        vpost = float(np.var(x, ddof=1)) if finite else float("nan")
        vprior = pv.get(label)
        vprior = float("nan") if vprior is None else float(vprior)
        if not (math.isfinite(vpost) and vprior > 0):
            contraction = float("nan")
        elif math.isinf(vprior):
            contraction = 1.0
        else:
            contraction = 1.0 - vpost / vprior
        acorr, corr, partner = _max_corr(x, X, xlab) if finite else (float("nan"),) * 2 + ("",)
        low = not (math.isfinite(contraction) and contraction >= WEAK_CONTRACTION)
        has_partners = bool(xlab)
        strong = has_partners and not (math.isfinite(acorr) and acorr <= STRONG_CORRELATION)
        flags = []
        if not finite or not math.isfinite(contraction) or (has_partners
                                                             and not math.isfinite(acorr)):
            flags.append("not computable")
        else:
            if low:
                flags.append("low contraction")
            if strong:
                flags.append("trend correlation")
        weak = bool(flags)
        recs.append({"parameter": label, "term": term, "exposure_time": h,
                     "prior_sd": math.sqrt(vprior) if vprior == vprior else float("nan"),
                     "posterior_mean": float(np.mean(x)) if finite else float("nan"),
                     "posterior_sd": math.sqrt(vpost) if finite else float("nan"),
                     "contraction": contraction, "max_abs_corr": acorr, "corr": corr,
                     "corr_with": partner, "weak": weak, "flag": "; ".join(flags),
                     "prior_source": source.get(label, "")})
        if weak:
            reasons.append(_reason(qmodel, label, term, contraction, corr, partner, low))
    table = pd.DataFrame(recs, columns=list(IDENTIFICATION_COLUMNS))
    table["exposure_time"] = table["exposure_time"].astype("Int64")
    table["weak"] = table["weak"].astype(bool)
    return IdentificationReport(table=table, warn_reasons=reasons,
                                assumption=_assumption(qmodel), horizons=_horizons(qmodel))


def _reason(qm: QICModel, label: str, term: str, contraction: float, corr: float,
            partner: str, low: bool) -> str:
    def num(v: float, signed: bool = False) -> str:
        if not math.isfinite(v):
            return "not computable"
        return f"{v:+.2f}" if signed else f"{v:.2f}"

    bits = []
    if not math.isfinite(contraction) or contraction < WEAK_CONTRACTION:
        bits.append(f"prior-to-posterior contraction {num(contraction)} (below "
                    f"{WEAK_CONTRACTION:g}: the data narrowed its prior by little)")
    if partner and (not math.isfinite(corr) or abs(corr) > STRONG_CORRELATION):
        bits.append(f"posterior correlation {num(corr, True)} with {partner} (beyond "
                    f"±{STRONG_CORRELATION:g}: effect and trend trade off)")
    elif not partner and not math.isfinite(corr) and not bits:
        bits.append("its draws are missing or constant")
    what = " and ".join(bits) if bits else "its draws cannot be checked"
    return (f"weak identification of {label} against the secular trend: {what}. "
            + _remedy(qm, term, low))


def _assumption(qm: QICModel) -> str:
    st = qm.structure
    if st is None or not st.single_series:
        return ""
    why = st.reasons.get("identification") or st.reasons.get("trend") or ""
    text = ("A single series: no unit is observed untreated in the periods after joining, so "
            "the identifying assumption is that the pre-join trend, extrapolated, is the "
            "counterfactual (what would have happened without the collaborative).")
    return text + (f" {why[0].upper()}{why[1:]}." if why else "")


def _horizons(qm: QICModel) -> str:
    st = qm.structure
    if st is None:
        return ""
    why = st.reasons.get("identification", "")
    return f"{why[0].upper()}{why[1:]}." if why else ""


__all__ = [
    "IDENTIFICATION_COLUMNS",
    "IdentificationReport",
    "PRIOR_DRAWS",
    "PRIOR_SEED",
    "STRONG_CORRELATION",
    "TREND_VARIABLES",
    "WEAK_CONTRACTION",
    "identification",
    "prior_variance",
    "trend_draws",
]
