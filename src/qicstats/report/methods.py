"""The methods text of a report, generated from the fitted model: the equation (HTML and
Unicode, no MathJax), the priors actually used, estimand definitions, identification, and the
provenance record.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup, escape

if TYPE_CHECKING:  # pragma: no cover
    from qicstats.data.panel import PanelData
    from qicstats.results.fitresult import FitResult

_LINK = {"binomial": "logit", "betabinomial": "logit", "poisson": "log", "negbinomial": "log",
         "gaussian": "identity"}


def link_scale(family: str) -> str:
    """The link scale of ``family`` (``logit``, ``log`` or ``identity``)."""
    return _LINK.get(family, "identity")


def per_words(per: int) -> str:
    """``"per 100,000"`` for a rate multiplier (``"per unit"`` for 1)."""
    from qicstats.results.fitresult import per_label

    return "per unit" if int(per) <= 1 else per_label(per)


def _sub(base: str, sub: Any) -> Markup:
    return Markup("{}<sub>{}</sub>").format(Markup(base), sub)


def _likelihood(family: str, has_se: bool, has_weight: bool) -> Markup:
    y, n, p = _sub("y", "it"), _sub("n", "it"), _sub("p", "it")
    eta = _sub("η", "it")
    if family == "binomial":
        return Markup(f"{y} ~ Binomial({n}, {p}),&nbsp;&nbsp; logit({p}) = {eta}")
    if family == "betabinomial":
        return Markup(f"{y} ~ BetaBinomial({n}, {p}·φ, (1 − {p})·φ),&nbsp;&nbsp; "
                      f"logit({p}) = {eta}")
    lam, E = _sub("λ", "it"), _sub("E", "it")
    if family == "poisson":
        return Markup(f"{y} ~ Poisson({E}·{lam}),&nbsp;&nbsp; log({lam}) = {eta}")
    if family == "negbinomial":
        return Markup(f"{y} ~ NegativeBinomial(mean {E}·{lam}, shape α),&nbsp;&nbsp; "
                      f"log({lam}) = {eta}")
    sd = _sub("se", "it") if has_se else (
        Markup("σ / √(w<sub>it</sub> / w̄)") if has_weight else Markup("σ"))
    return Markup(f"{y} ~ Normal({eta}, {sd})")


def _trend_text(trend: str, seasonal: bool, knots: int | None) -> str:
    txt = {
        "none": "no secular trend (f(t) = 0)",
        "linear": "a linear secular trend, f(t) = θ·τ<sub>t</sub> (τ: centred time)",
        "rw": "a linear trend plus a first-order random walk over periods",
        "spline": ("a linear trend plus a penalised cubic B-spline"
                   + (f" with {int(knots)} interior knots" if knots else "")
                   + " (random-walk prior on the coefficients)"),
        "period": ("free period effects around a line, f(t) = θ·τ<sub>t</sub> + "
                   "σ<sub>period</sub>·z<sub>t</sub> (z: exchangeable deviations orthogonal to "
                   "the constant and to τ, pooled toward the line)"),
    }.get(trend, escape(trend))
    if seasonal:
        txt += ", plus zero-sum seasonal (month or quarter) effects"
    return txt


def equation(result: FitResult) -> dict[str, Any]:
    """The model as HTML: likelihood, linear predictor and the meaning of each term.

    Returns
    -------
    dict
        ``likelihood`` (Markup), ``predictor`` (list of Markup lines), ``where`` (list of
        Markup definitions).
    """
    qm = result.qmodel
    d = qm.design
    spec = qm.spec
    eta = Markup("η<sub>it</sub> = α + f(t)")
    lines: list[Markup] = []
    where: list[Markup] = [
        Markup("i: unit, t: period; D<sub>it</sub> = 1[t ≥ T<sub>i</sub>] with T<sub>i</sub> "
               "the join period of unit i (0 for comparison units, which never join)")
        + (Markup(", phased in linearly over the first {} periods (learning ramp)")
           .format(int(d.ramp)) if d.ramp else Markup("")),
        Markup("e<sub>it</sub> = (t − T<sub>i</sub>)·D<sub>it</sub>: periods since joining"),
        Markup("f(t): ") + Markup(_trend_text(spec.trend, d.season is not None,
                                              spec.spline_knots)),
    ]
    marg = {m.split(".", 1)[1] for m in getattr(qm, "marginalised", ())
            if m.startswith("baseline.")}
    base = [lv for lv in d.base_groups if f"u_{lv}" in qm.param_names or lv in marg]
    for lv in base:
        eta += Markup(" + u<sup>{}</sup><sub>{}(i)</sub>").format(lv, lv)
    if base:
        where.append(Markup("u<sup>l</sup>: baseline random effects at level l ({}), "
                            "normal with scale sd_u_l")
                     .format(", ".join(base)))
    for lv in sorted(marg):
        where.append(Markup("the {} effects u<sup>{}</sup> are integrated out analytically: "
                            "the units' baselines within a {} are jointly normal, "
                            "covariance sd_u_unit² I + sd_u_{}² J (the same model without "
                            "its funnel; the posterior of u<sup>unit</sup> then includes "
                            "them)").format(lv, lv, lv, lv))
    trend_lv = [lv for lv in d.base_groups if f"w_trend_{lv}" in qm.param_names]
    for lv in trend_lv:
        eta += Markup(" + τ<sub>t</sub>·w<sup>{}</sup><sub>{}(i)</sub>").format(lv, lv)
    if d.covariate_names:
        eta += Markup(" + X<sub>it</sub>·β")
        where.append(Markup("X: standardised covariates ({})")
                     .format(", ".join(d.covariate_names)))
    mains = [ind for ind in d.indicators if ind.is_main]
    mods = [ind for ind in d.indicators if ind.is_moderator]
    if mains:
        eta += Markup(" + Σ<sub>k</sub> γ<sub>k</sub>·z<sub>k,it</sub>")
    lines.append(eta)
    effect = getattr(d, "effect", None) or spec.effect
    if d.participating.any():
        lv_levels = [lv for lv in d.change_groups if f"v_level_{lv}" in qm.param_names]
        sl_levels = [lv for lv in d.change_groups if f"v_slope_{lv}" in qm.param_names]
        lvl = (Markup("γ<sub>e<sub>it</sub></sub>") if effect == "curve"
               else Markup("β<sub>L</sub>"))
        for lv in lv_levels:
            lvl += Markup(" + v<sup>L,{}</sup><sub>{}(i)</sub>").format(lv, lv)
        slp = Markup("β<sub>S</sub>")
        for lv in sl_levels:
            slp += Markup(" + v<sup>S,{}</sup><sub>{}(i)</sub>").format(lv, lv)
        if mods:
            lvl += Markup(" + Σ<sub>k</sub> δ<sub>L,k</sub>·z<sub>k,it</sub>")
            slp += Markup(" + Σ<sub>k</sub> δ<sub>S,k</sub>·z<sub>k,it</sub>")
        lines.append(Markup("&emsp;+ D<sub>it</sub>·(") + lvl + Markup(")"))
        if effect == "slope":
            lines.append(Markup("&emsp;+ e<sub>it</sub>·(") + slp + Markup(")"))
            where.append(Markup("β<sub>L</sub>, β<sub>S</sub>: average level and slope change "
                                "at joining (link scale); v<sup>L,l</sup>, v<sup>S,l</sup>: "
                                "their random deviations at level l"))
        elif effect == "curve":
            where.append(Markup(
                "γ<sub>h</sub>: the effect h periods after joining (the exposure-time curve, "
                "link scale), a random walk: γ<sub>0</sub> has the level_change prior and "
                "γ<sub>h</sub> = γ<sub>h−1</sub> + σ<sub>curve</sub>·z<sub>h</sub>, so it may "
                "ramp up, plateau or fade; v<sup>L,l</sup>: random level shifts of the curve "
                "at level l"))
        else:
            where.append(Markup("β<sub>L</sub>: average level change at joining, constant "
                                "afterwards (a step; link scale); v<sup>L,l</sup>: its random "
                                "deviations at level l"))
        if getattr(d, "phases", False):
            lines.append(Markup("&emsp;+ P<sub>it</sub>·β<sub>P</sub>"))
            where.append(Markup("P<sub>it</sub> = 1 after unit i's end period (the "
                                "sustainability phase); β<sub>P</sub>: the further change "
                                "then (phase_change)"))
        if spec.correlated:
            where.append(Markup("level and slope changes correlated (LKJ prior) at: {}")
                         .format(", ".join(spec.correlated)))
    if spec.ar1:
        lines.append(Markup("&emsp;+ ε<sub>it</sub>,&nbsp; ε<sub>it</sub> = "
                            "ρ·ε<sub>i,t−1</sub> + ν<sub>it</sub> (AR(1) per unit)"))
    if d.indicators:
        parts = []
        for ind in d.indicators:
            roles = {"main": "main effect", "moderator": "moderates the change",
                     "both": "main effect and moderator"}.get(ind.role, ind.role)
            kind = {"ordinal": "ordinal, monotonic effect (Dirichlet simplex over the steps)",
                    "binary": "binary 0/1", "continuous": "continuous, standardised"}.get(
                ind.type, ind.type)
            parts.append(Markup("{} ({}; {})").format(ind.label or ind.name, kind, roles))
        where.append(Markup("z<sub>k,it</sub>: coded indicator k at unit i in period t: ")
                     + Markup("; ").join(parts)
                     + Markup(". Missing codes are modelled as latent values, not dropped."))
    return {"likelihood": _likelihood(d.family, "se" in d.y, "weight" in d.y),
            "predictor": lines, "where": where}


#: what each prior describes (shown next to it); level-specific names use the generic entry
PRIOR_ROLES: dict[str, str] = {
    "intercept": "the outcome's level on the link scale",
    "trend_slope": "the linear secular trend, per period",
    "trend_sd": "step sd of the trend's random walk or spline",
    "period_sd": "sd of the period effects' deviations from the line",
    "season_sd": "sd of the seasonal effects",
    "slope_change": "change in slope per period since joining",
    "sd_curve": "step sd of the exposure-time curve (its random walk)",
    "phase_change": "further change in the sustainability phase (after end_period)",
    "sd_u": "sd of the baseline random effects",
    "sd_level": "sd of the level-change random effects",
    "sd_slope": "sd of the slope-change random effects",
    "sd_trend": "sd of unit-specific trend slopes",
    "sd_curve_collaborative": "step sd of the collaboratives' deviations from the curve",
    "phi": "beta-binomial concentration",
    "alpha": "negative-binomial shape",
    "sigma": "residual sd",
}


def _role(name: str, effect: str) -> str:
    if name == "level_change":
        return ("the curve's value in the join period (the start of its random walk)"
                if effect == "curve" else "the level change at joining")
    if name in PRIOR_ROLES:
        return PRIOR_ROLES[name]
    for generic in ("sd_u", "sd_level", "sd_slope", "sd_trend", "sd_curve"):
        if name.startswith(generic + "_"):
            return PRIOR_ROLES[generic] + f" ({name[len(generic) + 1:]})"
    for generic, what in (("ind_main_", "main effect of indicator"),
                          ("ind_level_", "moderation of the level change by indicator"),
                          ("ind_slope_", "moderation of the slope change by indicator")):
        if name.startswith(generic):
            return f"{what} {name[len(generic):]}"
    return ""


def prior_rows(result: FitResult) -> list[tuple[str, str, str]]:
    """``(parameter, prior, what it describes)`` for the priors actually used, in model
    order.
    """
    qm = result.qmodel
    effect = getattr(qm.design, "effect", None) or qm.spec.effect
    fixed = dict(getattr(qm, "fixed_spreads", {}) or {})
    out = [(name, (f"fixed at {fixed[name]:.3g} (the root mean square of {pr.describe()}: "
                   "too few groups to learn it)" if name in fixed else pr.describe()),
            _role(name, effect)) for name, pr in qm.priors.items()]
    if qm.spec.correlated:
        out.append(("chol_<level>", "LKJCholeskyCov(eta=2) with the sd priors above",
                    "correlated level and slope changes"))
    for ind in qm.design.indicators:
        if ind.type == "ordinal" and ind.n_levels > 2:
            out.append((f"mo_{ind.name}", f"Dirichlet(1, …, 1) over {ind.n_levels - 1} steps",
                        "monotonic steps of an ordinal indicator"))
    return out


def design_choices(result: FitResult) -> list[tuple[str, str]]:
    """``(setting, "choice: why")`` rows: the trend, seasonality, effect shape, phases, levels
    and identified horizons the model was built with, and why (``QICModel.structure``).
    """
    qm = result.qmodel
    st = qm.structure
    spec = qm.spec
    reasons = dict(getattr(st, "reasons", {}) or {})
    effect = getattr(st, "effect", None) or spec.effect
    trend_words = {"none": "no secular trend", "linear": "a linear trend",
                   "rw": "a linear trend plus a random walk",
                   "spline": "a linear trend plus a penalised spline",
                   "period": "free period effects"}
    effect_words = {"step": "a step (one level change)",
                    "slope": "a level change plus a linear slope change",
                    "curve": "an exposure-time curve"}

    def why(*keys: str) -> str:
        txt = "; ".join(reasons[k] for k in keys if reasons.get(k))
        return f": {txt}" if txt else ""

    rows = [("secular trend", trend_words.get(spec.trend, str(spec.trend)) + why("trend")),
            ("seasonality", ("yes" if bool(getattr(st, "seasonality", spec.seasonality))
                             else "no") + why("seasonality")),
            ("effect shape", effect_words.get(effect, str(effect))
             + why("effect_choice", "effect")),
            ("phases", ("an intervention and a sustainability phase"
                        if bool(getattr(st, "phases", False)) else "one phase")
             + why("phases"))]
    if reasons.get("levels"):
        rows.append(("grouping levels", reasons["levels"]))
    if reasons.get("unit_changes"):
        rows.append(("unit-level changes", reasons["unit_changes"]))
    if reasons.get("identification"):
        rows.append(("identified horizons", reasons["identification"]))
    fixed = dict(getattr(qm, "fixed_spreads", {}) or {})
    if fixed:
        rows.append(("spreads from few groups", "fixed at their prior's root mean square, "
                     f"because fewer than {spec.spread_min_groups} groups or curve steps "
                     "inform them (no pooling toward a learned spread): "
                     + ", ".join(f"{k} = {v:.3g}" for k, v in fixed.items())))
    marg = [m.split(".", 1)[1] for m in getattr(qm, "marginalised", ())]
    if marg:
        rows.append(("integrated out", ", ".join(f"the {lv} baseline effects" for lv in marg)
                     + ": the units' baselines are centred on their own data, so the level "
                     "above them enters only their prior and is integrated out exactly "
                     "(its spread stays a parameter; docs/model.md, Parameterisation)"))
    return rows


def estimand_definitions(result: FitResult) -> list[tuple[str, str]]:
    """Plain definitions of the estimands in the tables."""
    ip = int(round(100 * result.options.interval_prob))
    direction = "an increase" if result.options.direction == "increase" else "a decrease"
    hz = ", ".join(str(h) for h in result.options.horizons)
    defs = [
        ("att", "Improvement beyond the secular trend: for participating unit-periods after "
                "joining, the fitted mean as observed minus the counterfactual mean with the "
                "collaborative switched off (D = 0, e = 0), averaged over those unit-periods, "
                "draw by draw, on the response scale."),
        ("att_ratio", "The same as a ratio: fitted mean / counterfactual mean."),
        ("att_exposure (h = 0, 1, …)", "The improvement at h periods since joining, averaged "
                                       "over the unit-periods at that exposure time; the ATT "
                                       "averages the exposure times identified by concurrent "
                                       "comparisons."),
        ("att_phase", "The improvement in the intervention phase and in the sustainability "
                      "phase (after a unit's end period), when the model has phases."),
        ("trend_change", "What would have happened anyway: the counterfactual mean after "
                         "joining minus the counterfactual at each unit's join period."),
        (f"att_horizon_<h> (h = {hz})", "The improvement h periods after joining, for the "
                                         "units whose join period + h lies in the data."),
        ("events_gained", "Additional successes (or events) attributable to the collaborative: "
                          "the improvement times the denominator (exposure), summed."),
        ("indicator_contrast", "Difference in improvement between levels of a coded indicator "
                               "(highest vs lowest unless named), with its posterior "
                               "probability."),
        ("att_at_level", "The improvement with every unit's indicator set to one level."),
        ("deviance", "A unit's improvement minus the improvement expected from its "
                     "collaborative; positive deviants beat it with posterior probability ≥ "
                     f"{result.options.positive_deviance_prob:.0%}."),
        ("intervals", f"{ip}% equal-tailed posterior intervals; P(improved) is the posterior "
                      f"probability of {direction} (the configured direction of improvement)."),
    ]
    if result.options.mid is not None:
        defs.append(("P(>MID)", f"Posterior probability of an improvement larger than the "
                                f"minimal important difference {result.options.mid:g}."))
    return defs


def identification(result: FitResult, data: PanelData | None) -> str:
    """How the design separates improvement from the secular trend, with this panel's counts."""
    d = result.qmodel.design
    rows = d.rows
    n_comp = int((~d.participating).sum())
    part_rows = d.participating[rows.unit]
    pre = int((part_rows & (rows.D == 0)).sum())
    post = int((rows.D > 0).sum())
    comp_rows = int((~part_rows).sum())
    txt = (f"The secular trend f(t) is learned from the comparison units ({n_comp} units, "
           f"{comp_rows} unit-periods) and from participating units before they joined "
           f"({pre} unit-periods); improvement is the departure of participating units from "
           f"that trend after joining ({post} unit-periods). Staggered join periods add "
           "identification: units that have not yet joined serve as controls for those that "
           "have. ")
    if n_comp == 0:
        txt += ("There are no comparison units, so the trend rests on pre-join periods and "
                "staggered joining alone: the separation of improvement from the secular trend "
                "is weaker and leans on the assumed form of f(t). ")
    if pre == 0:
        txt += ("No participating unit is observed before joining: the baseline of the "
                "participating units is not observed and the estimates rest on the model. ")
    st = result.qmodel.structure
    if st is not None and st.single_series:
        why = st.reasons.get("identification", "")
        txt += ("This is a single series: no unit is observed untreated in the periods after "
                "joining, so the identifying assumption is that the pre-join trend, "
                "extrapolated, is the counterfactual"
                + (f" ({why})" if why else "") + ". ")
    else:
        txt += ("The estimates assume that, without the collaborative, participating units "
                "would have followed the same secular trend as the comparison units "
                "(conditional on the random effects and covariates in the model). ")
        if st is not None and st.reasons.get("identification"):
            txt += "Horizons: " + st.reasons["identification"] + ". "
    return txt.rstrip()


def config_hash(config_text: str | None, provenance: dict[str, Any]) -> str:
    """The configuration hash: ``provenance['config_hash']``, else SHA-256 of ``config_text``."""
    if provenance.get("config_hash"):
        return str(provenance["config_hash"])
    if config_text:
        return hashlib.sha256(config_text.encode("utf-8")).hexdigest()
    return "not recorded"


def _hash_check(saved: str, model: str) -> str:
    if saved == "not recorded" or not model:
        return "not possible (hash not recorded)"
    if saved == model:
        return "the posterior was fitted to the model's data"
    return "MISMATCH: the posterior was fitted to other data than the model's"


def provenance_rows(result: FitResult, provenance: dict[str, Any] | None,
                    config_text: str | None) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """``(record, versions)``: key/value rows of the run's provenance and package versions.

    Values passed in ``provenance`` take precedence over those stamped in the posterior.
    """
    prov = dict(provenance or {})
    attrs = dict(getattr(result.idata, "attrs", {}) or {})
    versions: dict[str, str] = {}
    raw = prov.get("versions", attrs.get("qicstats_versions"))
    if isinstance(raw, str):
        try:
            versions = {str(k): str(v) for k, v in json.loads(raw).items()}
        except (ValueError, AttributeError):
            versions = {"(unparsed)": raw}
    elif isinstance(raw, dict):
        versions = {str(k): str(v) for k, v in raw.items()}

    def val(key: str, attr: str) -> str:
        v = prov.get(key, attrs.get(attr))
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return "not recorded"
        if isinstance(v, np.generic):
            v = v.item()
        return str(v)

    sampler = prov.get("sampler", attrs.get("qicstats_sampler"))
    if isinstance(sampler, str):
        with contextlib.suppress(ValueError):
            sampler = json.loads(sampler)
    if isinstance(sampler, dict):
        sampler = ", ".join(f"{k}={v}" for k, v in sorted(sampler.items()))
    seconds = prov.get("sampling_seconds", attrs.get("qicstats_sampling_seconds"))
    record = [
        ("run", str(prov.get("run", result.name))),
        ("date", str(prov.get("date", "not recorded"))),
        ("qicstats", versions.get("qicstats", "not recorded")),
        ("data hash (fit)", val("data_hash", "qicstats_data_hash")),
        ("data hash check", _hash_check(val("data_hash", "qicstats_data_hash"),
                                        str(result.qmodel.data_hash or ""))),
        ("config hash", config_hash(config_text, prov)),
        ("seed", val("seed", "qicstats_seed")),
        ("sampler", str(sampler) if sampler else "not recorded"),
        ("sampling time", f"{float(seconds):.1f} s" if seconds is not None else "not recorded"),
        ("draws", f"{int(result.idata.posterior.sizes['chain'])} chains × "
                  f"{int(result.idata.posterior.sizes['draw'])} draws"),
    ]
    if prov.get("panel_data_hash"):
        record.insert(5, ("panel data hash", str(prov["panel_data_hash"])))
    extra = {k: v for k, v in prov.items() if k not in
             {"run", "date", "versions", "data_hash", "config_hash", "seed", "sampler",
              "sampling_seconds", "panel_data_hash"}}
    record += [(str(k), str(v)) for k, v in sorted(extra.items())]
    return record, sorted(versions.items())
