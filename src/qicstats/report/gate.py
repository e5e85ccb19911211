"""What a reader sees first: the diagnostics banner (can the fit be trusted?) and the headline
box (did it beat the secular trend, where, and with what?).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import pandas as pd

from qicstats.report.tables import fmt_int, fmt_num, fmt_prob, rate_per, value_formatter

if TYPE_CHECKING:  # pragma: no cover
    from qicstats.results.diagnostics import Diagnostics
    from qicstats.results.fitresult import FitResult

VERDICT_WORDS = {"pass": "Diagnostics passed", "warn": "Diagnostics raised warnings",
                 "fail": "Diagnostics FAILED"}


def _ident(dg: Diagnostics) -> list[str]:
    """The identification warnings of ``dg`` (none for a ``Diagnostics`` without them)."""
    return list(getattr(dg, "identification_reasons", []) or [])


#: identification warnings shown in full in the banner (the rest are counted)
BANNER_IDENT_SHOWN = 3


def _shown(ident: list[str]) -> list[str]:
    out = [r[:1].upper() + r[1:] for r in ident[:BANNER_IDENT_SHOWN]]
    if len(ident) > BANNER_IDENT_SHOWN:
        k = len(ident) - BANNER_IDENT_SHOWN
        out.append(f"And {k} more weakly identified effect parameter{'s' if k > 1 else ''} "
                   "(see 'Identification' below).")
    return out


def _sampler_reasons(reasons: list[str], ident: list[str]) -> list[str]:
    return [r for r in reasons if r not in set(ident)]


def _remedies(dg: Diagnostics, thresholds: Any = None) -> list[str]:
    """What to do about each failed or warned check, in plain words: weak identification
    first (its own remedy), then the sampler's checks.
    """
    ident = _ident(dg)
    out: list[str] = []
    seen: set[str] = set()
    for r in ident:
        _, _, remedy = r.partition("Remedy: ")
        remedy = remedy.strip() or "use a simpler effect shape or add comparison units."
        if remedy not in seen:
            seen.add(remedy)
            out.append("The effect is weakly identified against the secular trend (see "
                       "'Identification' below): " + remedy[0].lower() + remedy[1:])
    sampler = _sampler_reasons(list(dg.reasons), ident)
    if ident and not sampler:
        return out
    th_text = " ".join(sampler).lower()
    rhat = getattr(thresholds, "rhat_warn", 1.01)
    ess = getattr(thresholds, "ess_warn", 400.0)
    if "r-hat" in th_text or " ess " in f" {th_text} ".replace("(", " ").replace(")", " "):
        out.append("Run more draws and a longer warm-up (e.g. double the draws and the tuning "
                   "steps in the sampler settings) and more chains if you can; R-hat must "
                   f"fall below {rhat:g} and bulk/tail ESS rise above {ess:.0f}.")
    if "divergent" in th_text:
        out.append("Raise the target acceptance rate (target_accept, e.g. 0.95 or 0.99) so the "
                   "sampler takes smaller steps; if divergences remain, the geometry is the "
                   "problem: reparameterise.")
    if "tree depth" in th_text:
        out.append("The sampler hit its maximum tree depth: raise the maximum tree depth, or "
                   "reparameterise so steps need not be so many.")
    if "e-bfmi" in th_text:
        out.append("Low E-BFMI means the sampler explores the scale parameters poorly: "
                   "reparameterise.")
    out.append("Reparameterise where mixing is worst (see the parameters with the smallest "
               "ESS): switch between centred and non-centred random effects (centered: auto), "
               "keep zero-sum collaborative effects, or drop a random-effect level with too few "
               "groups to estimate its scale.")
    return out


def banner(dg: Diagnostics, *, interval_prob: float, scale: str,
           thresholds: Any = None) -> dict[str, Any]:
    """The diagnostics banner: verdict, the numbers, and what to do when not passed.

    ``thresholds`` (a :class:`~qicstats.results.Thresholds`) sets the targets named in the
    advice.

    Returns
    -------
    dict
        ``verdict`` (pass/warn/fail, also the CSS class), ``title``, ``numbers`` (list of
        ``(label, value, status)``), ``trust`` (sentence or ""), ``ident_reasons`` (weak
        identification of the effect, shown first), ``reasons`` (the sampler's, in the
        order checked), ``fail_reasons`` and ``warn_reasons`` (when the verdict is "fail":
        the fail-level reasons, shown first, and the warn-level ones, shown as warnings; both
        empty otherwise), ``remedies``.
    """
    checks = dg.to_frame()
    status = dict(zip(checks["check"], checks["status"])) if len(checks) else {}
    mcse = dg.headline_mcse
    if scale == "probability" and math.isfinite(mcse):
        mcse_txt = f"{100 * mcse:.2f} pp"
    else:
        mcse_txt = fmt_num(mcse, 2)
    numbers = [
        ("max R-hat", f"{dg.max_rhat:.3f}" if math.isfinite(dg.max_rhat) else "–",
         status.get("max R-hat", "")),
        ("min bulk ESS", fmt_int(dg.min_ess_bulk), status.get("min bulk ESS", "")),
        ("min tail ESS", fmt_int(dg.min_ess_tail), status.get("min tail ESS", "")),
        ("divergences", f"{dg.divergences} of {dg.n_draws:,} draws",
         status.get("divergences", "")),
        ("tree-depth hits", f"{dg.treedepth_hits}", status.get("tree-depth hits", "")),
        ("min E-BFMI", fmt_num(dg.min_bfmi, 2), status.get("min E-BFMI", "")),
        ("MCSE of headline", mcse_txt, "info"),
    ]
    if "weakly identified effects" in status:
        numbers.append(("weakly identified effects", str(len(_ident(dg))),
                        status["weakly identified effects"]))
    ident = _ident(dg)
    sampler = _sampler_reasons(list(dg.reasons), ident)
    if dg.verdict == "pass":
        trust = ("The sampler converged by every check: the estimates below can be "
                 "interpreted.")
    elif dg.verdict == "warn" and ident and not sampler:
        trust = ("The estimates below must not be trusted yet: the sampler converged, but "
                 "the effect is weakly identified against the secular trend, so the "
                 "estimates follow the assumed form of the trend more than the data. Apply "
                 "the remedy below and refit before quoting any number.")
    elif dg.verdict == "warn":
        trust = ("The estimates below must not be trusted yet: the sampler shows warning signs "
                 "that can bias them or understate their uncertainty. Fix the warnings and "
                 "refit before quoting any number.")
    else:
        trust = ("The estimates below must not be trusted yet: the sampler has not converged, "
                 "so the numbers may be wrong, not merely imprecise. Refit before reading them.")
    return {
        "verdict": dg.verdict,
        "title": VERDICT_WORDS.get(dg.verdict, dg.verdict),
        "numbers": numbers,
        "trust": trust,
        "reasons": sampler,
        "ident_reasons": _shown(ident),
        "fail_reasons": list(dg.fail_reasons) if dg.verdict == "fail" else [],
        "warn_reasons": (_sampler_reasons(list(dg.warn_reasons), ident)
                         if dg.verdict == "fail" else []),
        "remedies": [] if dg.verdict == "pass" else _remedies(dg, thresholds),
        "interval": int(round(100 * interval_prob)),
    }


def answer_word(p: float) -> str:
    """A plain answer from the posterior probability of improvement."""
    if not math.isfinite(p):
        return "Unknown"
    if p >= 0.95:
        return "Yes"
    if p >= 0.8:
        return "Probably"
    if p > 0.2:
        return "Unclear"
    if p > 0.05:
        return "Probably not"
    return "No"


def _row(est: pd.DataFrame, name: str, scope: str = "overall") -> dict[str, Any] | None:
    r = est[(est["estimand"] == name) & (est["scope"] == scope)]
    return None if r.empty else r.iloc[0].to_dict()


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 unit"``, ``"2 units"`` (``many``: an irregular plural)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def _describe(r: dict[str, Any], ip: int, per: int = 1) -> tuple[str, str]:
    """``(value with unit, "interval a to b")`` for one estimand row (rates stated per
    ``per`` units of exposure).
    """
    f, unit = value_formatter(str(r["estimand"]), str(r["scale"]), per)
    if unit.startswith("per "):
        u = f" {unit} of exposure"
    else:
        u = {"pp": " percentage points", "%": "%", "ratio": "", "events": " events"}.get(
            unit, f" ({unit})" if unit not in ("value", "rate") else "")
    return f"{f(r['mean'])}{u}", f"{ip}% interval {f(r['lower'])} to {f(r['upper'])}"


def _events_sentence(ev: dict[str, Any], att: dict[str, Any], ip: int) -> str:
    """Events gained, in words that agree with the ATT: "N more events" / "N fewer events",
    and why the two can differ in sign (the ATT weighs unit-periods equally, events weigh
    them by their denominator or exposure).
    """
    f, _ = value_formatter("events_gained", "events")
    mean = float(ev["mean"])
    n = f(abs(mean)).lstrip("+")
    more = "more" if mean >= 0 else "fewer"
    word = "event" if n.replace(",", "") == "1" else "events"
    text = (f"{n} {more} {word} in total than without the collaborative ({ip}% interval "
            f"{f(ev['lower'])} to {f(ev['upper'])})")
    a = float(att.get("mean", float("nan")))
    if math.isfinite(a) and a != 0 and mean != 0 and (a > 0) != (mean > 0):
        text += (" (the sign differs from the improvement above because it weighs each "
                 "unit-period by its denominator or exposure, while the improvement averages "
                 "unit-periods equally: the larger units changed the other way)")
    return text


def headline(result: FitResult) -> dict[str, Any]:
    """The headline box: did it beat the secular trend, by how much, where, and with what.

    Returns
    -------
    dict
        ``answer`` (Yes/Probably/Unclear/Probably not/No), ``lead`` (one sentence), and
        ``items``: list of ``(question, answer)`` pairs of plain sentences.
    """
    est = result.estimands()
    ip = int(round(100 * result.options.interval_prob))
    better = "improvement" if result.options.direction == "increase" else "reduction"
    att = _row(est, "att")
    if att is None:
        return {"answer": "Unknown", "lead": "No participating unit-periods after joining: "
                                             "there is no improvement to estimate.", "items": []}
    p = float(att.get("prob_improved", float("nan")))
    per = rate_per(est)
    v, iv = _describe(att, ip, per)
    lead = (f"Beyond the secular trend, participating units changed by {v} ({iv}); "
            f"the posterior probability of an {better} is {fmt_prob(p)}.")
    items: list[tuple[str, str]] = []
    ratio = _row(est, "att_ratio")
    extra = []
    if ratio is not None:
        rv, riv = _describe(ratio, ip, per)
        extra.append(f"the outcome was {rv} times what it would have been ({riv})")
    ev = _row(est, "events_gained")
    if ev is not None:
        extra.append(_events_sentence(ev, att, ip))
    hz = [c for c in est["estimand"].unique() if str(c).startswith("att_horizon_")
          and str(c).rsplit("_", 1)[-1].isdigit()]
    for c in sorted(hz, key=lambda c: int(str(c).rsplit("_", 1)[-1])):
        hr = _row(est, c)
        if hr is not None:
            hv, hiv = _describe(hr, ip, per)
            h = int(str(c).rsplit("_", 1)[-1])
            extra.append(f"{hv} {plural(h, 'period')} after joining ({hiv})")
    if extra:
        items.append(("How much?", "In other words: " + "; ".join(extra) + "."))
    tr = _row(est, "trend_change")
    if tr is not None:
        tv, tiv = _describe(tr, ip, per)
        items.append(("What would have happened anyway?",
                      f"Over the same periods the secular trend alone changed the outcome by "
                      f"{tv} ({tiv}); the improvement above is on top of this."))
    coll = est[(est["estimand"] == "att") & (est["scope"] == "collaborative")]
    if len(coll) >= 1:
        srt = coll.sort_values("mean", ascending=result.options.direction != "increase")
        f, _ = value_formatter("att", str(att["scale"]), per)

        def one(r: Any) -> str:
            return (f"{r['group']} ({f(r['mean'])}, {ip}% interval {f(r['lower'])} to "
                    f"{f(r['upper'])}, P({better}) {fmt_prob(r['prob_improved'])})")
        if len(srt) == 1:
            where = f"One collaborative: {one(srt.iloc[0])}."
        else:
            sure = int((coll["prob_improved"] >= 0.9).sum())
            where = (f"Most: {one(srt.iloc[0])}; least: {one(srt.iloc[-1])}. "
                     f"{sure} of {len(coll)} collaboratives improved with probability ≥ 90%.")
        units = est[(est["estimand"] == "att") & (est["scope"] == "unit")]
        if len(units) == 1:
            u0 = units.iloc[0]
            where += (f" The one participating unit improved with probability "
                      f"{fmt_prob(u0['prob_improved'])}.")
        elif len(units):
            su = int((units["prob_improved"] >= 0.9).sum())
            where += (f" {su} of {len(units)} participating units improved with probability "
                      "≥ 90%.")
        try:
            pdv = result.positive_deviance()
            pos = pdv.loc[pdv["positive_deviant"].astype(bool), "unit"].astype(str).tolist()
        except Exception:  # noqa: BLE001 - optional detail
            pos = []
        if pos:
            shown = ", ".join(pos[:8]) + (f" and {len(pos) - 8} more" if len(pos) > 8 else "")
            where += f" Positive deviants (beat their collaborative's expectation): {shown}."
        items.append(("Where?", where))
    con = est[est["estimand"].isin(["indicator_contrast", "indicator_main_contrast"])]
    if len(con):
        strength = (con["prob_positive"] - 0.5).abs()
        r = con.loc[strength.sort_values(ascending=False, kind="stable").index[0]].to_dict()
        cv, civ = _describe(r, ip, per)
        what = ("difference in improvement" if r["estimand"] == "indicator_contrast"
                else "difference in the outcome itself (main effect)")
        pp = float(r["prob_positive"])
        items.append(("With what?",
                      f"The strongest indicator contrast is “{r['group']}”, a {what} of "
                      f"{cv} ({civ}); P(difference > 0) {fmt_prob(pp)}."
                      + (" No indicator contrast is clear (all posterior probabilities "
                         "between 10% and 90%)." if 0.1 < pp < 0.9 else "")))
    return {"answer": answer_word(p), "lead": lead, "items": items}
