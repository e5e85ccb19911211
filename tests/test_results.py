"""Tests of ``qicstats.results`` on the stored posterior: trajectories and the diagnostics gate.

No sampling: the fit is ``tests/data/posteriors/tiny_binomial.nc`` (11 units, 12 months
2024-01 to 2024-12; C1 joins in months 3-4, C2 in 5-6 (0-based); k1-k3 never join).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from _stored_posterior import load_tiny_binomial  # noqa: E402

from qicstats.errors import ConvergenceError
from qicstats.results import FitResult
from qicstats.results.diagnostics import Diagnostics, Thresholds, compute_diagnostics

LABELS = [f"2024-{m:02d}" for m in range(1, 13)]


@pytest.fixture(scope="module")
def tiny():
    data, _, qm, idata = load_tiny_binomial()
    return data, qm, idata


@pytest.fixture(scope="module")
def fr(tiny) -> FitResult:
    _, qm, idata = tiny
    return FitResult(qm, idata, name="tiny")


# --------------------------------------------------------------------------------------
# trajectories
# --------------------------------------------------------------------------------------
def _observed(panel: pd.DataFrame) -> float:
    return panel["numerator"].sum() / panel["denominator"].sum()


def test_trajectory_columns_are_typed(fr):
    for axis in ("period", "event_time"):
        df = fr.trajectories(axis=axis)
        assert list(df.columns) == [
            "scope", "group", "axis", "period", "t", "event_time", "observed", "fitted",
            "fitted_lower", "fitted_upper", "counterfactual", "cf_lower", "cf_upper",
            "n_units", "x"]
        assert isinstance(df["period"].dtype, pd.StringDtype)
        assert df["period"].dtype.na_value is pd.NA
        assert df["event_time"].dtype == "Int64"
        assert df["t"].dtype == np.float64
        assert df["n_units"].dtype == np.int64
        assert df["x"].dtype == object


def test_period_axis_has_labels_and_no_event_time(fr, tiny):
    data = tiny[0]
    df = fr.trajectories(axis="period")
    assert df["event_time"].isna().all()
    for scope, groups, n in (("overall", ["participating"], 8),
                             ("comparison", ["comparison"], 3),
                             ("collaborative", ["C1", "C2"], 4)):
        sub = df[df["scope"] == scope]
        assert list(dict.fromkeys(sub["group"])) == groups
        for g in groups:
            s = sub[sub["group"] == g]
            assert s["period"].tolist() == LABELS
            assert s["t"].tolist() == list(map(float, range(12)))
            assert (s["n_units"] == n).all()
    comp = df[df["scope"] == "comparison"].set_index("period")
    panel = data.panel[data.panel["unit"].isin(["k1", "k2", "k3"])]
    assert comp.loc["2024-01", "observed"] == pytest.approx(
        _observed(panel[panel["period"] == "2024-01"]))
    assert comp.loc["2024-01", "observed"] == pytest.approx(45 / 151)
    # the legacy column repeats the label
    assert df["x"].tolist() == df["period"].tolist()


def test_event_time_axis_has_integers_and_no_period(fr, tiny):
    data = tiny[0]
    df = fr.trajectories(axis="event_time")
    assert df["period"].isna().all() and df["t"].isna().all()
    assert set(df["scope"]) == {"overall", "collaborative"}  # comparison units never join
    ov = df[df["scope"] == "overall"]
    assert ov["event_time"].tolist() == list(range(-6, 9))
    assert ov["n_units"].tolist() == [2, 4, 6, 8, 8, 8, 8, 8, 8, 8, 8, 8, 6, 4, 2]
    c1 = df[(df["scope"] == "collaborative") & (df["group"] == "C1")]
    assert c1["event_time"].tolist() == list(range(-4, 9))
    c2 = df[(df["scope"] == "collaborative") & (df["group"] == "C2")]
    assert c2["event_time"].tolist() == list(range(-6, 7))
    # the observed mean pools the units' rows at the same time since joining
    join = data.units.set_index("unit")["join_t"].dropna().astype(int)
    p = data.panel[data.panel["unit"].isin(join.index)].copy()
    p["e"] = p["t"].to_numpy() - join.loc[p["unit"]].to_numpy()
    for e in (-6, 0, 8):
        got = ov.loc[ov["event_time"] == e, "observed"].iloc[0]
        assert got == pytest.approx(_observed(p[p["e"] == e]))
    assert ov.loc[ov["event_time"] == -6, "observed"].iloc[0] == pytest.approx(0.423729, abs=1e-6)
    # before joining the counterfactual is the fit; after, the fit lies above it
    pre, post = ov[ov["event_time"] < 0], ov[ov["event_time"] >= 0]
    np.testing.assert_allclose(pre["fitted"], pre["counterfactual"])
    assert (post["fitted"] > post["counterfactual"]).all()
    # the legacy column repeats the event time
    assert df["x"].tolist() == df["event_time"].astype(int).tolist()


def test_trajectories_returns_a_copy(fr):
    a = fr.trajectories(axis="event_time", scope="overall")
    a.loc[0, "event_time"] = 99
    assert fr.trajectories(axis="event_time", scope="overall").loc[0, "event_time"] == -6


def test_plot_trajectories_uses_the_typed_columns(fr):
    fig = fr.plot_trajectories("period", "overall")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["2024-01", "2024-03", "2024-05", "2024-07", "2024-09", "2024-12"]
    fig = fr.plot_trajectories("event_time", "collaborative")
    xs = fig.axes[0].lines[0].get_xdata()  # C1's counterfactual line
    np.testing.assert_array_equal(xs, np.arange(-4, 9, dtype=float))


# --------------------------------------------------------------------------------------
# the diagnostics gate: fail-level reasons first, warnings labelled
# --------------------------------------------------------------------------------------
def test_failing_headline_separates_fail_and_warn_reasons(tiny):
    _, qm, idata = tiny
    # stored fit: max R-hat 1.053, min bulk ESS 79, min tail ESS 51, min E-BFMI 0.84
    th = Thresholds(rhat_warn=1.01, rhat_fail=1.2, ess_warn=400, ess_fail=60, bfmi_warn=0.9)
    dg = compute_diagnostics(idata, qm.free_parameter_names(), thresholds=th)
    assert dg.verdict == "fail"
    assert dg.reasons == [
        "max R-hat 1.053 > 1.01 (v_slope_unit_z)",
        "min bulk ESS 79 < 400 (sd_level_unit)",
        "min tail ESS 51 < 60 (v_slope_unit_z)",
        "E-BFMI 0.84 < 0.9",
    ]
    assert dg.reason_levels == ["warn", "warn", "fail", "warn"]
    assert dg.fail_reasons == ["min tail ESS 51 < 60 (v_slope_unit_z)"]
    assert dg.warn_reasons == [dg.reasons[0], dg.reasons[1], dg.reasons[3]]
    assert dg.headline() == (
        "Diagnostics FAILED: min tail ESS 51 < 60 (v_slope_unit_z). Warnings: max R-hat "
        "1.053 > 1.01 (v_slope_unit_z); min bulk ESS 79 < 400 (sd_level_unit); E-BFMI "
        "0.84 < 0.9.")
    assert dg.to_dict()["reason_levels"] == ["warn", "warn", "fail", "warn"]
    # only warnings: the verdict warns and the headline lists them all
    warn = compute_diagnostics(idata, qm.free_parameter_names(),
                               thresholds=dataclasses.replace(th, ess_fail=40))
    assert warn.verdict == "warn" and warn.fail_reasons == []
    assert warn.headline() == ("Diagnostics raised warnings: " + "; ".join(warn.reasons)
                               + ".")


def test_constructed_diagnostics_headline_and_fallback():
    dg = Diagnostics("fail", 1.02, 50.0, 300.0, 3, 1000, 0, 0.8,
                     reasons=["max R-hat 1.020 > 1.01 (a)", "min bulk ESS 50 < 100 (b)",
                              "3 divergent transitions"],
                     reason_levels=["warn", "fail", "warn"])
    assert dg.headline() == ("Diagnostics FAILED: min bulk ESS 50 < 100 (b). Warnings: max "
                             "R-hat 1.020 > 1.01 (a); 3 divergent transitions.")
    with pytest.raises(ConvergenceError) as ei:
        FitResult.check(type("Stub", (), {"diagnostics": lambda self: dg})())
    assert str(ei.value).startswith("Diagnostics FAILED: min bulk ESS 50 < 100 (b). Warnings:")
    # levels that do not match the reasons (built or replaced by hand): the verdict's level
    old = dataclasses.replace(dg, reasons=["x", "y"])
    assert old.fail_reasons == ["x", "y"] and old.warn_reasons == []
    assert old.headline() == "Diagnostics FAILED: x; y."
    warned = dataclasses.replace(dg, verdict="warn", reasons=["3 divergent transitions"])
    assert warned.warn_reasons == ["3 divergent transitions"]
    assert warned.headline() == "Diagnostics raised warnings: 3 divergent transitions."
    passed = Diagnostics("pass", 1.001, 800.0, 700.0, 0, 4000, 0, 0.9)
    assert passed.fail_reasons == passed.warn_reasons == []
    assert passed.headline().startswith("Diagnostics passed: max R-hat 1.001")
