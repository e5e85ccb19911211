"""The diagnostics gate: pass / warn / fail, with the numbers behind it.

Besides R-hat, ESS, divergences, tree depth and E-BFMI, the gate fails a posterior that is
not whole: missing (NaN or infinite) draws, an R-hat or ESS that could not be computed, no
parameter to check at all, or fewer chains or draws than were asked for (what an interrupted
sampler returns: nutpie hands back the draws made so far, padded with NaN). A run made with
the fast preset (short chains) warns, so its report says so at the top.

:func:`with_identification` adds the identification diagnostics
(:mod:`qicstats.results.identification`): an effect weakly identified against the secular
trend makes a passing gate warn, with its reason (and remedy) first.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr


@dataclass(frozen=True)
class Thresholds:
    """Limits of the gate (the config's ``diagnostics`` section).

    A fit **fails** when max R-hat > ``rhat_fail``, min bulk or tail ESS < ``ess_fail``, or
    the share of divergent transitions > ``divergences_fail_share``. It **warns** when max
    R-hat > ``rhat_warn``, min ESS < ``ess_warn``, any divergence, any tree-depth hit in more
    than 1 % of draws, or an E-BFMI below 0.3 in any chain. Otherwise it **passes**.
    """

    rhat_warn: float = 1.01
    rhat_fail: float = 1.05
    ess_warn: float = 400.0
    ess_fail: float = 100.0
    divergences_fail_share: float = 0.005
    bfmi_warn: float = 0.3
    treedepth_warn_share: float = 0.01


@dataclass(frozen=True)
class Diagnostics:
    """Result of the gate.

    Attributes
    ----------
    verdict : {"pass", "warn", "fail"}
    max_rhat, min_ess_bulk, min_ess_tail : float
    divergences : int
    n_draws : int
        Post-warmup draws over all chains.
    treedepth_hits : int
    min_bfmi : float
    headline_mcse : float
        MCSE of the overall ``att``.
    reasons : list of str
        Why the verdict is not "pass" (empty when it passes), in the order checked.
    worst : DataFrame
        Parameters with the largest R-hat / smallest ESS.
    identification_reasons : list of str
        The warnings of weak identification of the effect against the secular trend
        (:mod:`qicstats.results.identification`), each with its remedy; they also open
        ``reasons`` (at warn level). See :func:`with_identification`.
    reason_levels : list of str
        The severity (``"fail"`` or ``"warn"``) of each entry of ``reasons``, in the same
        order. When it does not match ``reasons`` in length (a ``Diagnostics`` built or
        replaced by hand with other reasons), every reason counts at the verdict's level;
        see :attr:`fail_reasons` and :attr:`warn_reasons`.
    """

    verdict: str
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float
    divergences: int
    n_draws: int
    treedepth_hits: int
    min_bfmi: float
    headline_mcse: float = float("nan")
    reasons: list[str] = field(default_factory=list)
    worst: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def ok(self) -> bool:
        """True when the verdict is "pass"."""
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (without the ``worst`` table)."""
        d = asdict(self)
        d.pop("worst")
        d.pop("_checks", None)
        return {k: (float(v) if isinstance(v, (np.floating,)) else v) for k, v in d.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per check: ``check``, ``value``, ``threshold``, ``status``."""
        return pd.DataFrame(self._checks, columns=["check", "value", "threshold", "status"])

    _checks: list[tuple[str, float, str, str]] = field(default_factory=list, repr=False)
    reason_levels: list[str] = field(default_factory=list)
    identification_reasons: list[str] = field(default_factory=list)

    def _levels(self) -> list[str]:
        if len(self.reason_levels) == len(self.reasons):
            return list(self.reason_levels)
        level = "fail" if self.verdict == "fail" else "warn"
        return [level] * len(self.reasons)

    @property
    def fail_reasons(self) -> list[str]:
        """The reasons at fail level (the checks that make the verdict "fail")."""
        return [r for r, lv in zip(self.reasons, self._levels()) if lv == "fail"]

    @property
    def warn_reasons(self) -> list[str]:
        """The reasons at warn level (shown as warnings, also when the verdict is "fail")."""
        return [r for r, lv in zip(self.reasons, self._levels()) if lv != "fail"]

    def headline(self) -> str:
        """One sentence for banners and the CLI.

        A failing gate lists the fail-level reasons after "FAILED" and then, labelled as
        warnings, the warn-level ones.
        """
        if self.verdict == "pass":
            return (f"Diagnostics passed: max R-hat {self.max_rhat:.3f}, min bulk ESS "
                    f"{self.min_ess_bulk:.0f}, min tail ESS {self.min_ess_tail:.0f}, "
                    f"{self.divergences} divergences.")
        if self.verdict == "fail":
            fails, warns = self.fail_reasons, self.warn_reasons
            text = "Diagnostics FAILED: " + "; ".join(fails) + "."
            if warns:
                text += " Warnings: " + "; ".join(warns) + "."
            return text
        return "Diagnostics raised warnings: " + "; ".join(self.reasons) + "."


def _max_over(ds: Any) -> tuple[float, str]:
    best, name = -np.inf, ""
    for v in ds.data_vars:
        arr = np.asarray(ds[v].values, dtype=float)
        if arr.size and np.isfinite(arr).any():
            m = float(np.nanmax(arr))
            if m > best:
                best, name = m, v
    return best, name


def _min_over(ds: Any) -> tuple[float, str]:
    best, name = np.inf, ""
    for v in ds.data_vars:
        arr = np.asarray(ds[v].values, dtype=float)
        if arr.size and np.isfinite(arr).any():
            m = float(np.nanmin(arr))
            if m < best:
                best, name = m, v
    return best, name


def _asked(idata: xr.DataTree) -> tuple[int | None, int | None, str | None]:
    """(draws per chain, chains, preset) that :func:`qicstats.inference.fit` recorded."""
    attrs = getattr(idata, "attrs", {}) or {}
    draws = chains = None
    try:
        s = json.loads(attrs.get("qicstats_sampler", "{}"))
        draws = int(s["draws"]) if "draws" in s else None
        chains = int(s["chains"]) if "chains" in s else None
    except (TypeError, ValueError, KeyError):
        pass
    preset = attrs.get("qicstats_preset")
    return draws, chains, (str(preset) if preset else None)


def _not_whole(post: Any, var_names: list[str]) -> tuple[list[str], list[str]]:
    """(parameters with non-finite draws, parameters left out as constant)."""
    bad, const = [], []
    for v in var_names:
        arr = np.asarray(post[v].values, dtype=float)
        if arr.size == 0 or not np.isfinite(arr).all():
            bad.append(v)
        elif float(np.std(arr)) == 0.0:
            const.append(v)
    return bad, const


def _undefined(ds: Any, post: Any) -> list[str]:
    """Parameters with an R-hat/ESS that is NaN on an element whose draws vary."""
    out = []
    for v in ds.data_vars:
        vals = np.atleast_1d(np.asarray(ds[v].values, dtype=float)).ravel()
        draws = np.asarray(post[v].values, dtype=float)
        varies = (draws.reshape(draws.shape[0] * draws.shape[1], -1).std(axis=0) > 0)
        if ((vals.size == varies.size and np.any(~np.isfinite(vals) & varies))
                or (vals.size != varies.size and not np.isfinite(vals).all())):
            out.append(v)
    return out


def compute_diagnostics(idata: xr.DataTree, var_names: list[str], *,
                        thresholds: Thresholds | None = None,
                        headline_mcse: float = float("nan"),
                        expected_draws: int | None = None,
                        expected_chains: int | None = None) -> Diagnostics:
    """Run the gate over the free parameters ``var_names``.

    Parameters
    ----------
    idata : DataTree
        The posterior (with ``sample_stats``).
    var_names : list of str
        The free parameters to check.
    thresholds : Thresholds, optional
    headline_mcse : float
        MCSE of the overall ``att`` (reported).
    expected_draws, expected_chains : int, optional
        The draws per chain and chains that were asked for; fewer fail the gate (an
        interrupted sampler returns the draws made so far). Default: what
        :func:`qicstats.inference.fit` recorded in ``idata.attrs["qicstats_sampler"]``
        (unchecked when absent).

    Returns
    -------
    Diagnostics
        ``fail`` also when draws are missing (NaN), R-hat or ESS cannot be computed, or
        there is no parameter to check; ``warn`` (at least) for the fast preset.
    """
    th = thresholds or Thresholds()
    post = idata.posterior
    asked_draws, asked_chains, preset = _asked(idata)
    expected_draws = asked_draws if expected_draws is None else int(expected_draws)
    expected_chains = asked_chains if expected_chains is None else int(expected_chains)
    var_names = [v for v in var_names if v in post]
    nan_vars, const_vars = _not_whole(post, var_names)
    # constant parameters (e.g. a fixed simplex) have undefined R-hat/ESS: leave them out;
    # parameters with missing draws cannot be checked: they fail the gate below
    var_names = [v for v in var_names if v not in const_vars and v not in nan_vars]
    if var_names:
        rhat = az.rhat(idata, var_names=var_names)
        ess_b = az.ess(idata, var_names=var_names, method="bulk")
        ess_t = az.ess(idata, var_names=var_names, method="tail")
    else:
        rhat = ess_b = ess_t = xr.Dataset()
    rhat_ds = rhat.dataset if hasattr(rhat, "dataset") else rhat
    ess_b_ds = ess_b.dataset if hasattr(ess_b, "dataset") else ess_b
    ess_t_ds = ess_t.dataset if hasattr(ess_t, "dataset") else ess_t
    undefined = sorted(set(_undefined(rhat_ds, post)) | set(_undefined(ess_b_ds, post))
                       | set(_undefined(ess_t_ds, post))) if var_names else []
    max_rhat, rhat_at = _max_over(rhat_ds)
    min_b, b_at = _min_over(ess_b_ds)
    min_t, t_at = _min_over(ess_t_ds)
    if not var_names or not np.isfinite(max_rhat):
        max_rhat = float("nan")
    if not var_names or not np.isfinite(min_b):
        min_b = float("nan")
    if not var_names or not np.isfinite(min_t):
        min_t = float("nan")
    ss = idata.sample_stats
    n_chains, n_per_chain = int(post.sizes["chain"]), int(post.sizes["draw"])
    n = int(n_chains * n_per_chain)
    div = int(np.asarray(ss["diverging"].values).sum()) if "diverging" in ss else 0
    depth_key = next((k for k in ("maxdepth_reached", "reached_max_treedepth") if k in ss), None)
    hits = int(np.asarray(ss[depth_key].values).sum()) if depth_key else 0
    try:
        bf = az.bfmi(idata)
        bfv = bf["energy"] if "energy" in bf else bf  # noqa: SIM401 - an array has no .get
        min_bfmi = float(np.min(np.asarray(bfv.values if hasattr(bfv, "values") else bfv)))
    except Exception:  # energy not recorded by every backend
        min_bfmi = float("nan")
    reasons: list[str] = []
    levels: list[str] = []

    def add(level: str, reason: str) -> None:
        reasons.append(reason)
        levels.append(level)

    def names(vs: list[str]) -> str:
        return ", ".join(vs[:5]) + (f" and {len(vs) - 5} more" if len(vs) > 5 else "")

    if expected_chains is not None and n_chains < expected_chains:
        add("fail", f"only {n_chains} of {expected_chains} chains were sampled (interrupted?)")
    if expected_draws is not None and n_per_chain < expected_draws:
        add("fail", f"only {n_per_chain} of {expected_draws} draws per chain were sampled "
                    "(interrupted?)")
    if nan_vars:
        add("fail", f"missing (NaN or infinite) draws in {names(nan_vars)}: the sampling was "
                    "interrupted or failed")
    if undefined:
        add("fail", f"R-hat or ESS could not be computed for {names(undefined)}")
    if not var_names and not nan_vars:
        add("fail", "no parameter could be checked (no varying free parameter in the "
                    "posterior)")
    if max_rhat > th.rhat_fail:
        add("fail", f"max R-hat {max_rhat:.3f} > {th.rhat_fail} ({rhat_at})")
    elif max_rhat > th.rhat_warn:
        add("warn", f"max R-hat {max_rhat:.3f} > {th.rhat_warn} ({rhat_at})")
    for label, val, at in (("bulk", min_b, b_at), ("tail", min_t, t_at)):
        if val < th.ess_fail:
            add("fail", f"min {label} ESS {val:.0f} < {th.ess_fail:.0f} ({at})")
        elif val < th.ess_warn:
            add("warn", f"min {label} ESS {val:.0f} < {th.ess_warn:.0f} ({at})")
    if div > th.divergences_fail_share * n:
        add("fail", f"{div} divergent transitions ({div / n:.1%} of draws)")
    elif div > 0:
        add("warn", f"{div} divergent transitions")
    if hits > th.treedepth_warn_share * n:
        add("warn", f"maximum tree depth reached in {hits} draws")
    if np.isfinite(min_bfmi) and min_bfmi < th.bfmi_warn:
        add("warn", f"E-BFMI {min_bfmi:.2f} < {th.bfmi_warn}")
    if preset == "fast":
        add("warn", f"fast preset (sampler.preset: fast, {n_chains} chains x {n_per_chain} "
                    "draws): for trying things out, never for conclusions")
    verdict = "fail" if "fail" in levels else ("warn" if levels else "pass")
    incomplete = bool(nan_vars or undefined or not var_names)
    checks = [
        ("max R-hat", max_rhat, f"warn > {th.rhat_warn}, fail > {th.rhat_fail}",
         _st(incomplete or max_rhat > th.rhat_fail, max_rhat > th.rhat_warn)),
        ("min bulk ESS", min_b, f"warn < {th.ess_warn:.0f}, fail < {th.ess_fail:.0f}",
         _st(incomplete or min_b < th.ess_fail, min_b < th.ess_warn)),
        ("min tail ESS", min_t, f"warn < {th.ess_warn:.0f}, fail < {th.ess_fail:.0f}",
         _st(incomplete or min_t < th.ess_fail, min_t < th.ess_warn)),
        ("draws per chain", float(n_per_chain),
         "fail < asked" + (f" ({expected_draws})" if expected_draws is not None else ""),
         _st(expected_draws is not None and n_per_chain < expected_draws, False)),
        ("divergences", float(div), f"warn > 0, fail > {th.divergences_fail_share:.1%} of draws",
         _st(div > th.divergences_fail_share * n, div > 0)),
        ("tree-depth hits", float(hits), f"warn > {th.treedepth_warn_share:.0%} of draws",
         _st(False, hits > th.treedepth_warn_share * n)),
        ("min E-BFMI", min_bfmi, f"warn < {th.bfmi_warn}",
         _st(False, bool(np.isfinite(min_bfmi) and min_bfmi < th.bfmi_warn))),
        ("MCSE of overall att", headline_mcse, "reported", "info"),
    ]
    worst = _worst_table(rhat, ess_b, ess_t)
    return Diagnostics(verdict, max_rhat, min_b, min_t, div, n, hits, min_bfmi, headline_mcse,
                       reasons, worst, checks, reason_levels=levels)


def _st(fail: bool, warn: bool) -> str:
    return "fail" if fail else ("warn" if warn else "pass")


def _worst_table(rhat: Any, ess_b: Any, ess_t: Any, k: int = 10) -> pd.DataFrame:
    recs = []
    for v in rhat.data_vars:
        r = np.atleast_1d(np.asarray(rhat[v].values, dtype=float)).ravel()
        b = np.atleast_1d(np.asarray(ess_b[v].values, dtype=float)).ravel()
        t = np.atleast_1d(np.asarray(ess_t[v].values, dtype=float)).ravel()
        for i in range(r.size):
            recs.append((v if r.size == 1 else f"{v}[{i}]", r[i], b[i], t[i]))
    df = pd.DataFrame(recs, columns=["parameter", "r_hat", "ess_bulk", "ess_tail"])
    return df.sort_values(["ess_bulk"]).head(k).reset_index(drop=True)


#: the row of :meth:`Diagnostics.to_frame` that counts weakly identified effect parameters
IDENTIFICATION_CHECK = "weakly identified effects"


def with_identification(dg: Diagnostics, reasons: list[str], *, checked: bool = True
                        ) -> Diagnostics:
    """``dg`` with the identification warnings ``reasons`` merged in.

    The reasons open :attr:`Diagnostics.reasons` at warn level (a weakly identified effect is
    the first thing to fix: converged draws of it still follow the assumed trend, not the
    data), a passing verdict becomes ``"warn"`` (a failing one stays ``"fail"``), and
    :meth:`Diagnostics.to_frame` gains the row :data:`IDENTIFICATION_CHECK`. ``checked``
    False (the diagnostics could not be computed) records the row as not checked.
    """
    reasons = [str(r) for r in reasons]
    levels = dg._levels()
    verdict = dg.verdict if (dg.verdict == "fail" or not reasons) else "warn"
    status = "warn" if reasons else ("pass" if checked else "info")
    from qicstats.results.identification import STRONG_CORRELATION, WEAK_CONTRACTION

    row = (IDENTIFICATION_CHECK, float(len(reasons)),
           f"warn > 0 (contraction < {WEAK_CONTRACTION:g} or |corr with trend| > "
           f"{STRONG_CORRELATION:g})", status)
    checks = [c for c in dg._checks if c[0] != IDENTIFICATION_CHECK]
    return replace(dg, verdict=verdict, reasons=reasons + list(dg.reasons),
                   reason_levels=["warn"] * len(reasons) + levels,
                   identification_reasons=reasons, _checks=checks + [row])
