"""Identification diagnostics (``qicstats.results.identification``) on fabricated posteriors
with a known contraction and correlation: the flags, the remedies, NaN draws, and the merge
into the diagnostics gate. No sampling: models are built (not fitted) from tiny panels."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from qicstats.models import ModelSpec, build
from qicstats.models.priors import Prior
from qicstats.results import FitResult
from qicstats.results.diagnostics import (
    IDENTIFICATION_CHECK,
    compute_diagnostics,
    with_identification,
)
from qicstats.results.identification import (
    IDENTIFICATION_COLUMNS,
    STRONG_CORRELATION,
    WEAK_CONTRACTION,
    identification,
    prior_variance,
)
from qicstats.testing import tiny_panel

CHAINS, DRAWS = 4, 500


@pytest.fixture(scope="module")
def step_model():
    """Staggered joins with comparison units, a linear trend and a step effect."""
    return build(tiny_panel(sites=False), ModelSpec(trend="linear", effect="step"))


@pytest.fixture(scope="module")
def curve_model():
    """A stepped wedge (every unit joins, no comparison units) with period effects and the
    exposure-time curve: late horizons have no concurrent comparison."""
    return build(tiny_panel(sites=False, n_comparison=0),
                 ModelSpec(trend="period", effect="curve"))


@pytest.fixture(scope="module")
def single_model():
    """One unit: a single series (linear trend, level + slope change)."""
    return build(tiny_panel(n_collaboratives=1, units_per_collab=1, n_comparison=0,
                            sites=False), ModelSpec())


def _tree(variables: dict[str, np.ndarray], coords: dict[str, list] | None = None,
          dims: dict[str, tuple[str, ...]] | None = None, stats: bool = False) -> xr.DataTree:
    """A posterior of ``(CHAINS * DRAWS, ...)`` draws per variable."""
    coords = dict(coords or {})
    dims = dict(dims or {})
    ds = {}
    for name, x in variables.items():
        x = np.asarray(x, dtype=float)
        x = x.reshape((CHAINS, DRAWS) + x.shape[1:])
        ds[name] = (("chain", "draw") + dims.get(name, ()), x)
    tree = {"posterior": xr.Dataset(ds, coords={"chain": range(CHAINS), "draw": range(DRAWS),
                                                **coords})}
    if stats:
        tree["sample_stats"] = xr.Dataset(
            {"diverging": (("chain", "draw"), np.zeros((CHAINS, DRAWS), bool))})
    return xr.DataTree.from_dict(tree)


def _correlated(rng, sd: float, partner: np.ndarray, rho: float) -> np.ndarray:
    """Draws with sd ``sd`` and correlation ``rho`` with ``partner``."""
    z = (partner - partner.mean()) / partner.std()
    return sd * (rho * z + math.sqrt(1 - rho**2) * rng.standard_normal(len(z)))


def _row(rep, name: str) -> pd.Series:
    t = rep.table
    return t[t["parameter"] == name].iloc[0]


# --------------------------------------------------------------------------------------
def test_well_identified_step_is_not_flagged(step_model):
    rng = np.random.default_rng(1)
    S = CHAINS * DRAWS
    slope = rng.normal(0.02, 0.01, S)
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": slope,
                   "level_change": 0.5 + _correlated(rng, 0.1, slope, 0.3)})
    rep = identification(step_model, idata)
    assert list(rep.table.columns) == list(IDENTIFICATION_COLUMNS)
    r = _row(rep, "level_change")
    # prior Normal(0, 1): contraction 1 - 0.01 / 1
    assert r["prior_sd"] == pytest.approx(1.0)
    assert r["contraction"] == pytest.approx(0.99, abs=0.002)
    assert r["max_abs_corr"] == pytest.approx(0.3, abs=0.05)
    assert r["corr_with"] == "trend_slope" and r["prior_source"] == "analytic"
    assert not r["weak"] and r["flag"] == "" and not rep.weak and rep.warn_reasons == []
    d = rep.to_dict()
    assert d["weak"] is False and d["thresholds"] == {"contraction": WEAK_CONTRACTION,
                                                      "correlation": STRONG_CORRELATION}
    assert d["parameters"][0]["parameter"] == "level_change"


def test_correlation_with_the_trend_flags_and_names_the_remedy(step_model):
    rng = np.random.default_rng(2)
    S = CHAINS * DRAWS
    slope = rng.normal(0.02, 0.01, S)
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": slope,
                   "level_change": 0.5 + _correlated(rng, 0.1, slope, -0.95)})
    rep = identification(step_model, idata)
    r = _row(rep, "level_change")
    assert r["weak"] and r["flag"] == "trend correlation"
    assert r["corr"] == pytest.approx(-0.95, abs=0.01) and r["corr_with"] == "trend_slope"
    (reason,) = rep.warn_reasons
    assert reason.startswith("weak identification of level_change against the secular trend")
    assert f"posterior correlation {r['corr']:+.2f} with trend_slope" in reason
    # a linear trend with comparison units: period effects are the remedy (the effect is
    # already a step, so no simpler shape is offered)
    assert "free period effects (model.trend: period)" in reason
    assert "more pre-join periods" in reason
    assert "model.effect: step" not in reason


def test_little_contraction_flags(step_model):
    rng = np.random.default_rng(3)
    S = CHAINS * DRAWS
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": rng.normal(0, .01, S),
                   "level_change": rng.normal(0.3, 0.9, S)})
    rep = identification(step_model, idata)
    r = _row(rep, "level_change")
    assert r["contraction"] == pytest.approx(1 - 0.81, abs=0.03)
    assert r["weak"] and r["flag"] == "low contraction"
    assert f"contraction {r['contraction']:.2f} (below 0.5" in rep.warn_reasons[0]


def test_nan_draws_count_as_weak(step_model):
    rng = np.random.default_rng(4)
    S = CHAINS * DRAWS
    lc = rng.normal(0.3, 0.1, S)
    lc[17] = np.nan
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": rng.normal(0, .01, S),
                   "level_change": lc})
    rep = identification(step_model, idata)
    r = _row(rep, "level_change")
    assert r["weak"] and r["flag"] == "not computable"
    assert math.isnan(r["contraction"]) and math.isnan(r["max_abs_corr"])
    assert "not computable" in rep.warn_reasons[0]
    assert rep.to_dict()["parameters"][0]["contraction"] is None


def test_constant_trend_columns_are_no_partners(step_model):
    # secular[t] at the centre of time is 0 in every draw: not a partner (not NaN)
    rng = np.random.default_rng(5)
    S = CHAINS * DRAWS
    slope = rng.normal(0.02, 0.01, S)
    sec = np.outer(slope, np.arange(-2, 3))
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": slope,
                   "secular": sec, "level_change": rng.normal(0.3, 0.1, S)},
                  coords={"period": ["a", "b", "c", "d", "e"]},
                  dims={"secular": ("period",)})
    rep = identification(step_model, idata)
    assert not _row(rep, "level_change")["weak"]


def test_curve_horizons_use_the_random_walk_prior_and_only_att_horizons(curve_model):
    st = curve_model.structure
    assert st.identified_max is not None and st.identified_max < st.max_exposure
    rng = np.random.default_rng(6)
    S = CHAINS * DRAWS
    T = curve_model.design.T
    H = st.max_exposure + 1
    period = rng.normal(0, 0.1, (S, T))
    period -= period.mean(axis=1, keepdims=True)
    curve = rng.normal(0.3, 0.1, (S, H))
    # horizon 1 trades off against the last period effect
    curve[:, 1] = 0.3 + _correlated(rng, 0.1, period[:, -1], 0.97)
    labels = [str(h) for h in range(H)]
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "period_effect": period,
                   "effect_curve": curve},
                  coords={"period": list(curve_model.design.period_labels),
                          "exposure_time": labels},
                  dims={"period_effect": ("period",), "effect_curve": ("exposure_time",)})
    rep = identification(curve_model, idata)
    hs = rep.table["exposure_time"].dropna().astype(int).tolist()
    assert hs == list(range(st.identified_max + 1))       # horizons in the ATT only
    s0 = curve_model.priors["level_change"].params["sigma"]
    sc = curve_model.priors["sd_curve"].params["sigma"]
    for h in hs:
        r = _row(rep, f"effect_curve[h={h}]")
        assert r["prior_sd"] == pytest.approx(math.sqrt(s0**2 + h * sc**2))
        assert r["contraction"] == pytest.approx(1 - 0.01 / (s0**2 + h * sc**2), abs=0.01)
    r1 = _row(rep, "effect_curve[h=1]")
    last = curve_model.design.period_labels[-1]
    assert r1["weak"] and r1["corr_with"] == f"period_effect[{last}]"
    assert [r for r in rep.warn_reasons if "effect_curve[h=1]" in r]
    reason = rep.warn_reasons[0]
    # the curve: a simpler shape; no comparison units in a stepped wedge: add them
    assert "a simpler effect shape (model.effect: step)" in reason
    assert "comparison units" in reason and "model.trend: period" not in reason
    assert "concurrent comparisons" in rep.horizons and "the ATT averages" in rep.horizons
    assert rep.assumption == ""


def test_single_series_states_its_assumption(single_model):
    st = single_model.structure
    assert st.single_series and st.effect == "slope"
    rng = np.random.default_rng(7)
    S = CHAINS * DRAWS
    slope = rng.normal(0.02, 0.01, S)
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": slope,
                   "level_change": rng.normal(0.4, 0.1, S),
                   "slope_change": 0.01 + _correlated(rng, 0.01, slope, -0.96)})
    rep = identification(single_model, idata)
    assert "pre-join trend, extrapolated, is the counterfactual" in rep.assumption
    assert "extrapolating the linear trend" in rep.assumption
    assert not _row(rep, "level_change")["weak"]
    (reason,) = rep.warn_reasons
    assert "slope_change" in reason and "trend_slope" in reason
    for remedy in ("model.effect: step", "comparison units", "more pre-join periods"):
        assert remedy in reason


def test_prior_variances():
    assert prior_variance(Prior("Normal", {"mu": 0, "sigma": 2.0})) == 4.0
    assert prior_variance(Prior("StudentT", {"nu": 4.0, "mu": 0, "sigma": 1.0})) == 2.0
    assert math.isinf(prior_variance(Prior("Cauchy", {"alpha": 0, "beta": 1.0})))
    assert prior_variance(Prior("Uniform", {"lower": -1.0, "upper": 1.0})) == pytest.approx(1 / 3)
    assert prior_variance(Prior("HalfNormal", {"sigma": 1.0}, on="variance")) is None


# --------------------------------------------------------------------------------------
# the gate
# --------------------------------------------------------------------------------------
def test_identification_turns_a_pass_into_a_warn_and_comes_first(step_model):
    rng = np.random.default_rng(8)
    S = CHAINS * DRAWS
    slope = rng.normal(0.02, 0.01, S)
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": slope,
                   "level_change": 0.5 + _correlated(rng, 0.1, slope, 0.95)}, stats=True)
    names = ["intercept", "trend_slope", "level_change"]
    dg = compute_diagnostics(idata, names)
    assert dg.verdict == "pass"
    rep = identification(step_model, idata)
    merged = with_identification(dg, rep.warn_reasons)
    assert merged.verdict == "warn"
    assert merged.reasons[0].startswith("weak identification of level_change")
    assert merged.warn_reasons == merged.reasons and merged.fail_reasons == []
    assert merged.identification_reasons == rep.warn_reasons
    assert merged.headline().startswith("Diagnostics raised warnings: weak identification")
    frame = merged.to_frame()
    assert frame.iloc[-1]["check"] == IDENTIFICATION_CHECK
    assert frame.iloc[-1]["status"] == "warn" and frame.iloc[-1]["value"] == 1
    # nothing weak: the verdict stands, the row passes
    clean = with_identification(dg, [])
    assert clean.verdict == "pass" and clean.to_frame().iloc[-1]["status"] == "pass"
    # a failing gate stays failed, its fail reasons keep their level
    failed = with_identification(
        compute_diagnostics(idata, names, expected_draws=DRAWS * 2), rep.warn_reasons)
    assert failed.verdict == "fail"
    assert failed.warn_reasons[0].startswith("weak identification")
    assert failed.fail_reasons and "weak identification" not in " ".join(failed.fail_reasons)


def test_fitresult_gate_includes_identification(step_model, monkeypatch):
    rng = np.random.default_rng(9)
    S = CHAINS * DRAWS
    slope = rng.normal(0.02, 0.01, S)
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": slope,
                   "level_change": 0.5 + _correlated(rng, 0.1, slope, 0.95)}, stats=True)
    fr = FitResult(step_model, idata)
    # the fabricated posterior lacks the random effects the estimands need: no estimands
    fr.__dict__["_estimands"] = pd.DataFrame(columns=["estimand", "scope", "mcse"])
    monkeypatch.setattr(step_model, "free_parameter_names",
                        lambda: ["intercept", "trend_slope", "level_change"])
    dg = fr.diagnostics()
    assert dg.verdict == "warn"
    assert dg.reasons[0] == fr.identification().warn_reasons[0]


def test_identification_that_cannot_be_computed_warns(step_model, monkeypatch):
    rng = np.random.default_rng(10)
    S = CHAINS * DRAWS
    idata = _tree({"intercept": rng.normal(-0.5, 0.1, S), "trend_slope": rng.normal(0, .01, S),
                   "level_change": rng.normal(0.3, 0.1, S)}, stats=True)
    fr = FitResult(step_model, idata)
    fr.__dict__["_estimands"] = pd.DataFrame(columns=["estimand", "scope", "mcse"])
    monkeypatch.setattr(step_model, "free_parameter_names",
                        lambda: ["intercept", "trend_slope", "level_change"])

    def boom():
        raise RuntimeError("no priors")

    monkeypatch.setattr(fr, "identification", boom)
    dg = fr.diagnostics()
    assert dg.verdict == "warn"
    assert "could not be computed (RuntimeError: no priors)" in dg.reasons[0]
    assert dg.to_frame().iloc[-1]["status"] == "warn"
