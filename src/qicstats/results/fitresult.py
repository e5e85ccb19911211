"""``FitResult``: diagnostics, estimands, trajectories, checks and plots of one fit.

Results objects return data (DataFrames, figures); they never print.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from functools import cached_property
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from qicstats.errors import ConvergenceError, IdentityError
from qicstats.models.build import QICModel
from qicstats.results.diagnostics import (
    Diagnostics,
    Thresholds,
    compute_diagnostics,
    with_identification,
)
from qicstats.results.draws import Predictor, param_chunks
from qicstats.results.estimands import (
    EstimandDraws,
    EstimandOptions,
    att_horizons,
    chains_of,
    compute_estimand_draws,
    positive_deviance,
    summarise,
    unit_ranks,
)
from qicstats.results.identification import IdentificationReport, identification
from qicstats.results.ppc import pointwise_loglik, predictive, residual_frame

#: posterior variables never shown in the parameter summary (raw non-centred draws etc.)
_HIDDEN_SUFFIXES = ("_z", "_variance")
_HIDDEN = {"mix_weights", "mix_unit_loglik", "ar_eps", "secular"}
#: columns of :meth:`FitResult.trajectories`, in order
_TRAJECTORY_COLUMNS = ["scope", "group", "axis", "period", "t", "event_time", "observed",
                       "fitted", "fitted_lower", "fitted_upper", "counterfactual", "cf_lower",
                       "cf_upper", "n_units", "x"]


class FitResult:
    """The outcome of fitting a :class:`~qicstats.models.QICModel`.

    Parameters
    ----------
    qmodel : QICModel
        The built model (its design maps draws to predictions).
    idata : xarray.DataTree
        The posterior from :func:`qicstats.inference.fit`.
    options : EstimandOptions, optional
    thresholds : Thresholds, optional
        Limits of the diagnostics gate.
    name : str
        A label for comparisons (e.g. the run name).
    """

    def __init__(self, qmodel: QICModel, idata: xr.DataTree, *,
                 options: EstimandOptions | None = None, thresholds: Thresholds | None = None,
                 name: str = "fit"):
        self.qmodel = qmodel
        self.idata = idata
        self.options = options or EstimandOptions()
        self.thresholds = thresholds or Thresholds()
        self.name = name

    # ---- the gate ----------------------------------------------------------------------
    @cached_property
    def _diagnostics(self) -> Diagnostics:
        att = self.estimands()
        head = att[(att["estimand"] == "att") & (att["scope"] == "overall")]
        mcse = float(head["mcse"].iloc[0]) if len(head) else float("nan")
        dg = compute_diagnostics(self.idata, self.qmodel.free_parameter_names(),
                                 thresholds=self.thresholds, headline_mcse=mcse)
        try:
            reasons, checked = self.identification().warn_reasons, True
        except Exception as exc:  # noqa: BLE001 - unknown identification is reported as weak
            reasons = [f"weak identification cannot be ruled out: the identification "
                       f"diagnostics could not be computed ({type(exc).__name__}: {exc})"]
            checked = False
        return with_identification(dg, reasons, checked=checked)

    def diagnostics(self) -> Diagnostics:
        """The diagnostics gate (verdict pass/warn/fail and the numbers behind it).

        Weak identification of the effect against the secular trend
        (:meth:`identification`) is a warning, listed first with its remedy: a gate that
        would pass warns.
        """
        return self._diagnostics

    @cached_property
    def _identification(self) -> IdentificationReport:
        return identification(self.qmodel, self.idata)

    def identification(self) -> IdentificationReport:
        """Identification of the effect parameters against the secular trend: contraction
        from prior to posterior and the largest posterior correlation with the trend, with
        warnings and remedies (:mod:`qicstats.results.identification`).
        """
        return self._identification

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"warn"`` or ``"fail"``."""
        return self.diagnostics().verdict

    def check(self, strict: bool = False) -> Diagnostics:
        """Raise :class:`ConvergenceError` if the gate fails (or, with ``strict``, warns)."""
        dg = self.diagnostics()
        if dg.verdict == "fail" or (strict and dg.verdict == "warn"):
            raise ConvergenceError(dg.headline(), dg)
        return dg

    # ---- parameters ------------------------------------------------------------------------
    def summary(self, var_names: list[str] | None = None) -> pd.DataFrame:
        """Posterior summary of the model parameters (ArviZ, the package's interval).

        Columns: ``parameter``, ``mean``, ``sd``, ``lower``, ``upper``, ``ess_bulk``,
        ``ess_tail``, ``r_hat``, ``mcse_mean``, ``mcse_sd``.
        """
        post = self.idata.posterior
        if var_names is None:
            var_names = [v for v in post.data_vars
                         if v not in _HIDDEN and not v.endswith(_HIDDEN_SUFFIXES)
                         and not v.startswith(("u_unit", "v_level_unit", "v_slope_unit",
                                               "latent_"))
                         and float(np.nanstd(post[v].values)) > 0]
        with warnings.catch_warnings():
            # elements constant over the draws (a curve deviation at exposure time 0, a
            # collaborative not observed at an exposure time) have no R-hat or ESS: NaN in
            # the table, without arviz-stats' division warnings on the console
            warnings.filterwarnings("ignore", category=RuntimeWarning, module="arviz_stats")
            s = az.summary(self.idata, var_names=var_names,
                           ci_prob=self.options.interval_prob, ci_kind="eti", round_to="none")
        s = s.reset_index().rename(columns={"index": "parameter", "label": "parameter"})
        if "parameter" not in s.columns:
            s = s.rename(columns={s.columns[0]: "parameter"})
        lb = [c for c in s.columns if c.endswith("_lb")]
        ub = [c for c in s.columns if c.endswith("_ub")]
        if lb and ub:
            s = s.rename(columns={lb[0]: "lower", ub[0]: "upper"})
        cols = ["parameter", "mean", "sd", "lower", "upper", "ess_bulk", "ess_tail", "r_hat",
                "mcse_mean", "mcse_sd"]
        s = s[[c for c in cols if c in s.columns]]
        for c in cols[1:]:
            if c in s.columns:
                s[c] = pd.to_numeric(s[c], errors="coerce")
        return s.reset_index(drop=True)

    # ---- estimands -------------------------------------------------------------------------
    @cached_property
    def _estimand_draws(self) -> EstimandDraws:
        return compute_estimand_draws(self.qmodel, self.idata, self.options)

    def estimand_draws(self) -> EstimandDraws:
        """Per-draw values of every estimand (for custom summaries)."""
        return self._estimand_draws

    @cached_property
    def _estimands(self) -> pd.DataFrame:
        return summarise(self._estimand_draws, chains_of(self.idata), self.options)

    def estimands(self, estimand: str | None = None, scope: str | None = None) -> pd.DataFrame:
        """The tidy estimands table, optionally filtered by ``estimand`` and ``scope``."""
        df = self._estimands
        if estimand is not None:
            df = df[df["estimand"] == estimand]
        if scope is not None:
            df = df[df["scope"] == scope]
        return df.reset_index(drop=True).copy()

    def att_rows(self) -> pd.DataFrame:
        """The tidy ATT rows: overall, per collaborative, by exposure time (``att_exposure``)
        and by phase (``att_phase``), with ``exposure_time`` (``Int64``; ``<NA>`` off the
        exposure rows) and ``in_att`` (whether the ATT averages that row's unit-periods:
        always for the overall, collaborative and phase rows; for an exposure time, whether
        it is identified, see :attr:`~qicstats.models.structure.Structure.horizons`).
        """
        est = self.estimands()
        keep = (((est["estimand"] == "att") & est["scope"].isin(["overall", "collaborative"]))
                | (est["estimand"] == "att_exposure") | (est["estimand"] == "att_phase"))
        out = est[keep].reset_index(drop=True)
        h = [int(g[2:]) if e == "att_exposure" and str(g)[2:].isdigit() else None
             for e, g in zip(out["estimand"], out["group"].astype(str))]
        out["exposure_time"] = pd.array(h, dtype="Int64")
        in_att = att_horizons(self.qmodel)
        out["in_att"] = [True if v is None or in_att is None else (v in in_att) for v in h]
        return out

    def unit_ranks(self) -> pd.DataFrame:
        """Rank distributions of unit improvement (1 = most improved)."""
        return unit_ranks(self._estimand_draws, self.options)

    def positive_deviance(self) -> pd.DataFrame:
        """Units beating (or falling short of) their collaborative's expected improvement."""
        return positive_deviance(self._estimands, self.options)

    def headline(self) -> str:
        """A plain-language answer to "did it beat the secular trend?"."""
        est = self.estimands()
        row = est[(est["estimand"] == "att") & (est["scope"] == "overall")]
        if row.empty:
            return "No participating unit-periods after joining: nothing to estimate."
        r = row.iloc[0]
        pct = self.qmodel.design.family in ("binomial", "betabinomial")
        per = rate_multiplier(est) if str(r["scale"]) == "rate" else 1
        if pct:
            f, unit = (lambda v: f"{100 * v:+.1f}"), " percentage points"
        elif per > 1:
            f, unit = (lambda v: f"{per * v:+.3g}"), f" {per_label(per)} of exposure"
        else:
            f, unit = (lambda v: f"{v:+.3g}"), ""
        better = "improvement" if self.options.direction == "increase" else "reduction"
        tr = est[(est["estimand"] == "trend_change") & (est["scope"] == "overall")]
        trend = (f" Over the same periods the secular trend alone changed the outcome by "
                 f"{f(tr.iloc[0]['mean'])}{unit}." if len(tr) else "")
        ip = int(round(100 * self.options.interval_prob))
        return (f"Beyond the secular trend, participating units changed by {f(r['mean'])}{unit} "
                f"({ip}% interval {f(r['lower'])} to {f(r['upper'])}); the posterior "
                f"probability of an {better} is {_pct(r['prob_improved'])}.{trend}")

    # ---- trajectories ----------------------------------------------------------------------
    @cached_property
    def _trajectories(self) -> pd.DataFrame:
        return _trajectories(self.qmodel, self.idata, self.options.interval_prob)

    def trajectories(self, axis: str = "period", scope: str | None = None) -> pd.DataFrame:
        """Observed, fitted and counterfactual series, aggregated over units.

        Parameters
        ----------
        axis : {"period", "event_time"}
            Calendar periods, or periods since joining (participating units only).
        scope : {"overall", "collaborative", "comparison"}, optional
            ``overall``: all participating units; ``collaborative``: one group per
            collaborative; ``comparison``: the comparison units (calendar periods only).
            Default: every scope.

        Returns
        -------
        DataFrame
            One row per scope, group and point of the axis, with columns

            - ``scope``, ``group`` (``"participating"``, ``"comparison"`` or the
              collaborative), ``axis`` (``"period"`` or ``"event_time"``);
            - ``period`` (string): the calendar period label on the period axis; ``<NA>`` on
              the event-time axis, whose points pool several calendar periods;
            - ``t`` (float): the 0-based index of ``period`` on the period grid; NaN on the
              event-time axis;
            - ``event_time`` (``Int64``): periods since the units joined (months for monthly
              data; 0 = the joining period, negative = before joining) on the event-time
              axis; ``<NA>`` on the period axis, which pools units that joined at different
              times, and for comparison units, which never join;
            - ``observed`` (the weighted observed mean: proportion, rate or mean),
              ``fitted``, ``fitted_lower``, ``fitted_upper`` (posterior mean and interval of
              the model's mean), ``counterfactual``, ``cf_lower``, ``cf_upper`` (the same
              without the collaborative), ``n_units`` (units observed at that point);
            - ``x`` (object): ``period`` on the period axis and ``event_time`` on the
              event-time axis, in one column of mixed type. Kept for code written before
              ``period`` and ``event_time`` existed; prefer those.
        """
        df = self._trajectories
        df = df[df["axis"] == axis]
        if scope is not None:
            df = df[df["scope"] == scope]
        return df.reset_index(drop=True).copy()

    # ---- checks ----------------------------------------------------------------------------
    @cached_property
    def _ppc(self) -> dict[str, np.ndarray]:
        seed = int(self.idata.attrs.get("qicstats_seed", 0))
        return predictive(self.qmodel, self.idata, seed=seed)

    def posterior_predictive(self) -> dict[str, np.ndarray]:
        """Posterior predictive draws (``mean`` and ``yrep``, thinned, seeded)."""
        return self._ppc

    def residuals(self) -> pd.DataFrame:
        """Standardised posterior predictive residuals per observed unit-period."""
        return residual_frame(self.qmodel, self._ppc)

    def ppc_summary(self) -> pd.DataFrame:
        """Share of observations outside their 90 % predictive interval, overall and by unit
        type, with the expected 10 %.
        """
        r = self.residuals()
        part = {self.qmodel.design.unit_names[u] for u in
                np.flatnonzero(self.qmodel.design.participating)}
        r["group"] = np.where(r["unit"].isin(part), "participating", "comparison")
        out = (r.groupby("group")["outside"].agg(["mean", "size"])
               .rename(columns={"mean": "share_outside_90", "size": "n"}).reset_index())
        tot = pd.DataFrame({"group": ["all"], "share_outside_90": [r["outside"].mean()],
                            "n": [len(r)]})
        return pd.concat([tot, out], ignore_index=True)

    def residual_signals(self) -> pd.DataFrame:
        """Anhøj runs rules on each unit's standardised residuals (special-cause variation
        the model does not explain).
        """
        from qicstats.spc import residual_signals

        r = self.residuals().dropna(subset=["residual"])
        return residual_signals(r, group="unit", x="t", y="residual", center=0.0)

    def loo(self, by: str = "observation") -> Any:
        """PSIS-LOO (ArviZ).

        Parameters
        ----------
        by : {"observation", "unit"}
            Leave out one unit-period, or one whole unit (its log likelihood summed).
        """
        ll, units = self._loglik
        if by == "unit":
            u = np.array(units)
            names = sorted(set(units))
            ll = np.stack([ll[..., u == n].sum(axis=-1) for n in names], axis=-1)
        tree = xr.DataTree.from_dict({
            "posterior": self.idata.posterior.to_dataset(),
            "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), ll)}),
        })
        return az.loo(tree, var_name="y")

    @cached_property
    def _loglik(self) -> tuple[np.ndarray, list[str]]:
        return pointwise_loglik(self.qmodel, self.idata)

    # ---- plots -------------------------------------------------------------------------------
    def plot_trajectories(self, axis: str = "period", scope: str = "overall") -> Any:
        """Observed vs counterfactual trajectories (a matplotlib Figure)."""
        from qicstats.results.plots import plot_trajectories

        return plot_trajectories(self, axis=axis, scope=scope)

    def plot_units(self) -> Any:
        """Caterpillar plot of unit improvement with P(improvement) and deviance flags."""
        from qicstats.results.plots import plot_units

        return plot_units(self)

    def plot_ppc(self) -> Any:
        """Observed vs posterior predictive intervals (a matplotlib Figure)."""
        from qicstats.results.plots import plot_ppc

        return plot_ppc(self)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the posterior (NetCDF) with the options needed to rebuild this result."""
        path = Path(path)
        idata = self.idata.copy()
        idata.attrs["qicstats_options"] = json.dumps(asdict(self.options), sort_keys=True)
        idata.attrs["qicstats_thresholds"] = json.dumps(asdict(self.thresholds), sort_keys=True)
        idata.attrs["qicstats_name"] = self.name
        idata.attrs.setdefault("qicstats_data_hash", self.qmodel.data_hash)
        tmp = path.with_name(path.name + ".partial")
        idata.to_netcdf(tmp, engine="h5netcdf")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, qmodel: QICModel) -> FitResult:
        """Read a saved posterior for ``qmodel``; refuses one fitted to other data or spec.

        Raises
        ------
        IdentityError
            When the saved data hash or model spec differs from ``qmodel``'s.
        """
        idata = xr.open_datatree(Path(path), engine="h5netcdf").load()
        saved = idata.attrs.get("qicstats_data_hash")
        if saved != qmodel.data_hash:
            raise IdentityError(
                f"{path} was fitted to other data (data hash {str(saved)[:12]}... vs "
                f"{qmodel.data_hash[:12]}...); refit, or load it with the data it was fitted to")
        spec = json.dumps(qmodel.spec.to_dict(), sort_keys=True, default=str)
        if idata.attrs.get("qicstats_spec") != spec:
            raise IdentityError(f"{path} was fitted with another model specification")
        opts = json.loads(idata.attrs.get("qicstats_options", "{}"))
        if "horizons" in opts:
            opts["horizons"] = tuple(opts["horizons"])
        th = json.loads(idata.attrs.get("qicstats_thresholds", "{}"))
        return cls(qmodel, idata, options=EstimandOptions(**opts), thresholds=Thresholds(**th),
                   name=str(idata.attrs.get("qicstats_name", "fit")))

    # ---- notebooks ---------------------------------------------------------------------------
    def _repr_html_(self) -> str:
        dg = self.diagnostics()
        colour = {"pass": "#1b7837", "warn": "#b35806", "fail": "#b2182b"}[dg.verdict]
        est = self.estimands(scope="overall")
        import html

        return (f"<div><p style='color:{colour};font-weight:bold'>{html.escape(dg.headline())}"
                f"</p><p>{html.escape(self.headline())}</p>"
                f"{est.to_html(index=False, float_format=lambda v: f'{v:.4g}')}</div>")

    def __repr__(self) -> str:
        """One line: the fit's name, family and diagnostics verdict."""
        return f"<FitResult {self.name!r}: family={self.qmodel.family}, verdict={self.verdict}>"


def _pct(p: Any) -> str:
    """A posterior probability in percent; never exactly 0 % or 100 % from finite draws."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        return "unknown"
    if not np.isfinite(p):
        return "unknown"
    return "<1%" if p < 0.005 else (">99%" if p > 0.995 else f"{p:.0%}")


def rate_multiplier(est: pd.DataFrame) -> int:
    """A power of ten that makes rates per unit of exposure readable ("per 100,000").

    Chosen from the overall counterfactual mean (else the largest absolute ATT): 1 when the
    rate is at least 1 per unit of exposure, otherwise the smallest of 1,000, 10,000, ...,
    10**9 that shows it as 100 or more (an ATT of -0.00019 per person-month against a rate
    of 0.0015 is -19 against 150 per 100,000). One multiplier per fit, so that every number
    shown is on the same footing; tables written as CSV keep the raw units.
    """
    if est is None or not len(est) or "scale" not in est.columns:
        return 1
    rates = est[est["scale"] == "rate"]
    base = float("nan")
    cf = rates[(rates["estimand"] == "counterfactual_mean") & (rates["scope"] == "overall")]
    if len(cf):
        base = abs(float(cf["mean"].iloc[0]))
    if not (np.isfinite(base) and base > 0):
        att = rates[rates["estimand"] == "att"]["mean"].abs()
        base = float(att.max()) * 10 if len(att) else float("nan")
    if not (np.isfinite(base) and base > 0) or base >= 1:
        return 1
    for k in range(3, 10):
        if base * 10**k >= 100:
            return 10**k
    return 10**9


def per_label(per: int) -> str:
    """``"per 100,000"`` (``"per million"``, ``"per billion"``) for a rate multiplier."""
    return {10**6: "per million", 10**9: "per billion"}.get(int(per), f"per {int(per):,}")


def _trajectories(qm: QICModel, idata: xr.DataTree, prob: float) -> pd.DataFrame:
    d = qm.design
    rows = d.rows
    pred = Predictor(qm, rows)
    w = {"binomial": "denominator", "betabinomial": "denominator", "poisson": "exposure",
         "negbinomial": "exposure"}.get(d.family)
    weight = d.y[w] if w else np.ones(rows.n)
    y = {"binomial": "numerator", "betabinomial": "numerator", "poisson": "count",
         "negbinomial": "count", "gaussian": "value"}[d.family]
    yv = d.y[y]
    part = d.participating[rows.unit]
    coll = np.array([d.collaborative[u] or "" for u in rows.unit], dtype=object)
    jt = d.join_t[rows.unit]
    event = np.where(part, rows.t - np.nan_to_num(jt), np.nan)
    specs = []  # (scope, group, axis, mask, key)
    specs.append(("overall", "participating", "period", part, rows.t))
    specs.append(("comparison", "comparison", "period", ~part, rows.t))
    specs.append(("overall", "participating", "event_time", part, event))
    for c in sorted(set(coll[part])):
        m = part & (coll == c)
        specs.append(("collaborative", c, "period", m, rows.t))
        specs.append(("collaborative", c, "event_time", m, event))
    groups = []
    for scope, grp, axis, mask, key in specs:
        if not mask.any():
            continue
        keys = np.unique(key[mask])
        M = np.zeros((rows.n, len(keys)))
        pos = {k: i for i, k in enumerate(keys)}
        for ri in np.flatnonzero(mask):
            M[ri, pos[key[ri]]] = weight[ri]
        tot = M.sum(axis=0)
        tot[tot == 0] = np.nan
        obs = (yv @ (M > 0)) / tot
        n_units = [len(set(rows.unit[mask & (key == k)])) for k in keys]
        groups.append((scope, grp, axis, keys, M, tot, obs, n_units))
    fit_acc: list[list[np.ndarray]] = [[] for _ in groups]
    cf_acc: list[list[np.ndarray]] = [[] for _ in groups]
    for _, p in param_chunks(qm, idata):
        mu = pred.mean(p)
        cf = pred.mean(p, counterfactual=True)
        for j, g in enumerate(groups):
            M, tot = g[4], g[5]
            fit_acc[j].append((mu @ M) / tot)
            cf_acc[j].append((cf @ M) / tot)
    lo, hi = (1 - prob) / 2, 1 - (1 - prob) / 2
    recs = []
    for j, (scope, grp, axis, keys, _M, _tot, obs, n_units) in enumerate(groups):
        F = np.concatenate(fit_acc[j])
        C = np.concatenate(cf_acc[j])
        for i, k in enumerate(keys):
            on_period = axis == "period"
            label = str(d.period_labels[int(k)]) if on_period else None
            recs.append({"scope": scope, "group": grp, "axis": axis,
                         "period": label,
                         "t": int(k) if on_period else np.nan,
                         "event_time": None if on_period else int(k),
                         "observed": obs[i], "fitted": F[:, i].mean(),
                         "fitted_lower": np.quantile(F[:, i], lo),
                         "fitted_upper": np.quantile(F[:, i], hi),
                         "counterfactual": C[:, i].mean(),
                         "cf_lower": np.quantile(C[:, i], lo),
                         "cf_upper": np.quantile(C[:, i], hi), "n_units": n_units[i],
                         # legacy mixed column: the label or the event time
                         "x": label if on_period else int(k)})
    out = pd.DataFrame(recs, columns=_TRAJECTORY_COLUMNS)
    out["period"] = out["period"].astype("string")
    out["t"] = out["t"].astype(float)
    out["event_time"] = out["event_time"].astype("Int64")
    out["n_units"] = out["n_units"].astype(int)
    out["x"] = out["x"].astype(object)
    return out
