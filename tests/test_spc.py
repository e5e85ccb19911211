"""Tests of qicstats.spc: qicharts2-compatible run and control charts with the Anhøj rules."""

from __future__ import annotations

import io
import math
import os
from math import comb
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from qicstats.errors import ConfigError, DataValidationError, QicstatsError  # noqa: E402
from qicstats.spc import (  # noqa: E402
    SUMMARY_COLUMNS,
    a3,
    b3,
    b4,
    c4,
    longest_run_max,
    n_crossings_min,
    qic,
    residual_signals,
    runs_analysis,
    small_multiples,
)

DATA = Path(__file__).resolve().parent / "data" / "spc"


def _reference_dir() -> Path:
    env = os.environ.get("QICSTATS_REFERENCE_DIR")
    if env:
        p = Path(env)
        return p / "qicharts2" if (p / "qicharts2").is_dir() else p
    return Path(__file__).resolve().parents[2] / "shared" / "reference" / "qicharts2"


REF = _reference_dir()
needs_ref = pytest.mark.skipif(not (REF / "hospital_infections.csv").is_file(),
                               reason="qicharts2 reference data not available")

# --------------------------------------------------------------------------------------------
# Anhøj rules


def test_crossings_limit_equals_r_qbinom():
    for n in range(1, 301):
        cum, total, k = 0, 2 ** (n - 1), 0
        while True:  # exact: smallest k with 20 * sum_{i<=k} C(n-1, i) >= 2^(n-1)
            cum += comb(n - 1, k)
            if 20 * cum >= total:
                break
            k += 1
        assert n_crossings_min(n) == k, n


def test_anhoej_limits_known_values():
    # Anhøj & Olesen (2014), table 1 / qicharts2: n useful -> (longest run max, crossings min)
    known = {10: (6, 2), 11: (6, 2), 12: (7, 3), 14: (7, 4), 16: (7, 4), 20: (7, 6),
             22: (7, 7), 23: (8, 7), 24: (8, 8), 30: (8, 10), 36: (8, 13), 46: (9, 17),
             100: (10, 41)}
    for n, (lr, cr) in known.items():
        assert longest_run_max(n) == lr, n
        assert n_crossings_min(n) == cr, n
    # round(log2 n + 3) is never a tie: round-half-even vs half-up cannot differ
    for n in range(1, 10_000):
        v = math.log2(n) + 3
        assert abs(v - math.floor(v) - 0.5) > 1e-6
        assert longest_run_max(n) == math.floor(v + 0.5)
    assert longest_run_max(0) is None and n_crossings_min(0) is None


def test_runs_analysis_points_on_centre_are_not_useful():
    r = runs_analysis([1, 2, 3, 3, 3, 4, 5, np.nan], 3.0)
    assert (r.n_obs, r.n_useful, r.longest_run, r.n_crossings) == (7, 4, 2, 1)
    assert r.longest_run_max == 5 and r.n_crossings_min == 0 and not r.runs_signal


def test_runs_analysis_shift_and_alternation():
    shift = np.r_[np.full(12, -1.0), np.full(12, 1.0)]
    r = runs_analysis(shift, 0.0)
    assert (r.longest_run, r.longest_run_max, r.n_crossings, r.n_crossings_min) == (12, 8, 1, 8)
    assert r.runs_signal
    alt = np.tile([-1.0, 1.0], 12)
    r = runs_analysis(alt, 0.0)
    assert (r.longest_run, r.n_crossings, r.runs_signal) == (1, 23, False)
    # exactly at the limits: no signal; one more / one fewer: signal
    y = np.r_[np.ones(8), -np.ones(2), np.tile([1.0, -1.0], 7)]  # 24 points, longest run 8
    r = runs_analysis(y, 0.0)
    assert r.n_useful == 24 and r.longest_run == 8 and not r.runs_signal
    y = np.r_[np.ones(9), -np.ones(1), np.tile([1.0, -1.0], 7)]
    assert runs_analysis(y, 0.0).runs_signal
    empty = runs_analysis([2.0, 2.0], 2.0)
    assert empty.n_useful == 0 and empty.longest_run is None and not empty.runs_signal


# --------------------------------------------------------------------------------------------
# Chart types, on small hand-computable data


def _one(y, n=None, **kw):
    d = {"x": np.arange(len(y)), "y": y}
    if n is not None:
        d["n"] = n
    return pd.DataFrame(d)


def test_run_chart_median_no_limits():
    res = qic(_one([3, 1, 4, 1, 5, 9, 2, 6]), "x", "y")
    assert np.allclose(res.data["cl"], 3.5)
    assert res.data["lcl"].isna().all() and res.data["ucl"].isna().all()
    s = res.summary()
    assert list(s.columns) == list(SUMMARY_COLUMNS)
    assert s.loc[0, "n_useful"] == 8 and s.loc[0, "center"] == 3.5
    assert s.loc[0, "sigma_signal"] == 0


def test_p_chart_limits():
    y = np.array([10, 20, 12, 14, 2])
    n = np.array([100, 200, 100, 200, 20])
    res = qic(_one(y, n), "x", "y", "n", chart="p")
    pbar = y.sum() / n.sum()
    sd = np.sqrt(pbar * (1 - pbar) / n)
    d = res.data
    assert np.allclose(d["y"], y / n, rtol=0, atol=1e-15)
    assert np.allclose(d["cl"], pbar)
    assert np.allclose(d["ucl"], pbar + 3 * sd)
    assert np.allclose(d["lcl"], np.maximum(pbar - 3 * sd, 0))  # negative LCL drawn at 0
    assert d["lcl"].iloc[-1] == 0.0


def test_p_chart_ucl_capped_at_one():
    res = qic(_one([9, 1, 2], [10, 2, 4]), "x", "y", "n", chart="p")
    assert res.data["ucl"].max() == 1.0


def test_u_chart_limits():
    y = np.array([3, 5, 4, 8])
    n = np.array([100.0, 200.0, 150.0, 250.0])
    res = qic(_one(y, n), "x", "y", "n", chart="u", multiply=1000)
    ubar = y.sum() / n.sum()
    d = res.data
    assert np.allclose(d["cl"], 1000 * ubar)
    assert np.allclose(d["ucl"], 1000 * (ubar + 3 * np.sqrt(ubar / n)))
    assert np.allclose(d["lcl"], 1000 * np.maximum(0, ubar - 3 * np.sqrt(ubar / n)))
    assert np.allclose(d["y"], 1000 * y / n)


def test_i_chart_limits():
    y = [10, 12, 11, 13, 12, 14, 13, 15]  # moving ranges 2,1,2,1,2,1,2: mean 11/7
    res = qic(_one(y), "x", "y", chart="i")
    sigma = (11 / 7) / 1.128
    d = res.data
    assert np.allclose(d["cl"], 12.5)
    assert np.allclose(d["ucl"], 12.5 + 3 * sigma)
    assert np.allclose(d["lcl"], 12.5 - 3 * sigma)


def test_i_chart_screens_large_moving_ranges():
    # MRs: eight of 1 and one of 30; mean 38/9 -> UL 3.267 * 38/9 = 13.8, so 30 is dropped
    y = [10, 11, 10, 11, 10, 11, 10, 11, 10, 40]
    res = qic(_one(y), "x", "y", chart="i")
    d = res.data
    assert np.allclose(d["cl"], 13.4)
    assert np.allclose(d["ucl"], 13.4 + 3 / 1.128)
    assert np.allclose(d["lcl"], 13.4 - 3 / 1.128)  # 10.74: the 10s fall below it
    assert d["sigma_signal"].tolist() == [True, False] * 4 + [True, True]


def test_mr_chart():
    res = qic(_one([10, 12, 11, 13]), "x", "y", chart="mr")
    d = res.data
    assert np.isnan(d["y"].iloc[0]) and d["y"].iloc[1:].tolist() == [2, 1, 2]
    assert np.allclose(d["cl"], 5 / 3)
    assert np.allclose(d["ucl"], 3.267 * 5 / 3)
    assert (d["lcl"] == 0).all()


def test_c_chart_limits():
    res = qic(_one([4, 6, 5, 3, 7, 5]), "x", "y", chart="c")
    d = res.data
    assert np.allclose(d["cl"], 5)
    assert np.allclose(d["ucl"], 5 + 3 * np.sqrt(5))
    assert (d["lcl"] == 0).all()  # 5 - 3 sqrt(5) < 0


def test_c_chart_sums_rows_sharing_x():
    df = pd.DataFrame({"x": [1, 1, 2, 2, 3], "y": [1, 2, 3, 4, 5]})
    res = qic(df, "x", "y", chart="c")
    assert res.data["y"].tolist() == [3, 7, 5]
    assert np.allclose(res.data["cl"], 5)


def test_control_chart_constants_match_tables():
    # Montgomery, appendix VI (3 decimals)
    table = {2: (0.7979, 2.659, 0.0, 3.267), 4: (0.9213, 1.628, 0.0, 2.266),
             5: (0.9400, 1.427, 0.0, 2.089), 10: (0.9727, 0.975, 0.284, 1.716),
             25: (0.9896, 0.606, 0.565, 1.435)}
    for n, (c, a, lo, hi) in table.items():
        assert abs(float(c4(n)) - c) < 5e-5
        assert abs(float(a3(n)) - a) < 5e-4
        assert abs(float(b3(n)) - lo) < 5e-4
        assert abs(float(b4(n)) - hi) < 5e-4


def test_xbar_and_s_charts():
    df = pd.DataFrame({"x": np.repeat([1, 2, 3], 4),
                       "y": [1, 2, 3, 4, 2, 3, 4, 5, 3, 4, 5, 6]})
    sd = np.sqrt(5 / 3)  # every subgroup
    xb = qic(df, "x", "y", chart="xbar").data
    assert xb["y"].tolist() == [2.5, 3.5, 4.5]
    assert np.allclose(xb["cl"], 3.5)
    assert np.allclose(xb["ucl"], 3.5 + a3(4) * sd)
    assert np.allclose(xb["ucl"], 3.5 + 1.628 * sd, atol=2e-3)
    assert np.allclose(xb["lcl"], 3.5 - a3(4) * sd)
    assert xb["n"].tolist() == [4, 4, 4]
    s = qic(df, "x", "y", chart="s").data
    assert np.allclose(s["y"], sd)
    assert np.allclose(s["cl"], sd)
    assert np.allclose(s["ucl"], 2.266 * sd, atol=2e-3)
    assert (s["lcl"] == 0).all()


def test_s_chart_uses_pooled_standard_deviation():
    # qicharts2 (Montgomery, variable subgroup sizes): sqrt(sum((n_i - 1) s_i^2) / sum(n_i - 1))
    df = pd.DataFrame({"x": [1, 1, 1, 2, 2, 2], "y": [1, 2, 3, 2, 4, 6]})  # s = 1 and 2
    s = qic(df, "x", "y", chart="s").data
    assert np.allclose(s["cl"], math.sqrt(2.5))
    xb = qic(df, "x", "y", chart="xbar").data
    assert np.allclose(xb["cl"], 3.0)  # weighted by subgroup size
    assert np.allclose(xb["ucl"], 3.0 + a3(3) * math.sqrt(2.5))


def test_t_chart_transforms():
    y = np.array([5.0, 10.0, 3.0, 8.0, 12.0, 6.0])
    yt = y ** (1 / 3.6)
    mr = np.abs(np.diff(yt))
    assert (mr < 3.267 * mr.mean()).all()  # no screening in this example
    cl, sig = yt.mean(), mr.mean() / 1.128
    d = qic(_one(y), "x", "y", chart="t").data
    assert np.allclose(d["y"], y)
    assert np.allclose(d["cl"], cl**3.6)
    assert np.allclose(d["ucl"], (cl + 3 * sig) ** 3.6)
    lo = cl - 3 * sig
    assert np.allclose(d["lcl"], lo**3.6 if lo > 0 else 0.0)


def test_g_chart():
    y = np.array([10, 25, 3, 40, 15, 7])
    m = y.mean()
    d = qic(_one(y), "x", "y", chart="g").data
    assert np.allclose(d["cl"], 0.693 * m)  # theoretical median, as qicharts2
    assert np.allclose(d["ucl"], m + 3 * np.sqrt(m * (m + 1)))
    assert (d["lcl"] == 0).all()


@pytest.mark.parametrize("chart", ["pp", "up"])
def test_laney_prime_charts(chart):
    y = np.array([10, 20, 12, 14, 30, 18])
    n = np.array([100.0, 200.0, 100.0, 200.0, 250.0, 150.0])
    cl = y.sum() / n.sum()
    sd = np.sqrt(cl * (1 - cl) / n) if chart == "pp" else np.sqrt(cl / n)
    z = (y / n - cl) / sd
    sigma_z = np.abs(np.diff(z)).mean() / 1.128
    d = qic(_one(y, n), "x", "y", "n", chart=chart).data
    assert np.allclose(d["cl"], cl)
    assert np.allclose(d["ucl"], cl + 3 * sd * sigma_z)
    assert np.allclose(d["lcl"], np.maximum(0, cl - 3 * sd * sigma_z))


# --------------------------------------------------------------------------------------------
# Aggregation, facets, part, freeze, exclude, multiply


def test_rows_sharing_x_are_summed_with_denominator():
    df = pd.DataFrame({"unit": ["a", "b", "c", "a"], "x": ["h1", "h1", "h2", "h3"],
                       "y": [1, 2, 3, 4], "n": [10, 20, 30, 40]})
    d = qic(df, "x", "y", "n", chart="p").data
    assert d["x"].tolist() == ["h1", "h2", "h3"]
    assert np.allclose(d["y"], [3 / 30, 3 / 30, 4 / 40])
    assert d["n"].tolist() == [30, 30, 40]
    # funnel: limits vary with n
    assert d["ucl"].iloc[0] > d["ucl"].iloc[2]


def test_rows_sharing_x_are_averaged_without_denominator():
    df = pd.DataFrame({"x": [2, 1, 1, 2], "y": [4.0, 1.0, 3.0, 8.0]})
    d = qic(df, "x", "y", chart="i").data
    assert d["x"].tolist() == [1, 2] and d["y"].tolist() == [2.0, 6.0]


def test_facets_equal_separate_charts():
    df = pd.read_csv(DATA / "wards.csv")
    both = qic(df, "month", "falls", "bed_days", chart="u", facet="ward")
    s = both.summary()
    assert list(s.columns) == ["ward", *SUMMARY_COLUMNS]
    assert s["ward"].tolist() == ["A", "B"]
    for ward in ("A", "B"):
        one = qic(df[df["ward"] == ward], "month", "falls", "bed_days", chart="u").summary()
        row = s[s["ward"] == ward].drop(columns="ward").reset_index(drop=True)
        pd.testing.assert_frame_equal(row, one)


def test_two_facet_columns():
    df = pd.read_csv(DATA / "wards.csv")
    df = df.assign(half=np.where(df["month"] < "2024-07-01", "H1", "H2"))
    s = qic(df, "month", "falls", "bed_days", chart="u", facet=["ward", "half"]).summary()
    assert list(s.columns) == ["ward", "half", *SUMMARY_COLUMNS]
    assert list(zip(s["ward"], s["half"])) == [("A", "H1"), ("A", "H2"), ("B", "H1"), ("B", "H2")]
    assert (s["n_obs"] == 6).all()


def test_part_positions_xvalues_and_column_agree():
    df = pd.read_csv(DATA / "wards.csv")
    b = df[df["ward"] == "B"].assign(month=lambda d: pd.to_datetime(d["month"]))
    b = b.assign(phase=np.where(b["month"] >= "2024-09-01", "post", "pre"))
    by_pos = qic(b, "month", "falls", "bed_days", chart="u", part=8).summary()
    by_x = qic(b, "month", "falls", "bed_days", chart="u", part="2024-09-01").summary()
    by_col = qic(b, "month", "falls", "bed_days", chart="u", part="phase").summary()
    pd.testing.assert_frame_equal(by_pos, by_x)
    pd.testing.assert_frame_equal(by_pos, by_col)
    assert by_pos["part"].tolist() == [1, 2] and by_pos["n_obs"].tolist() == [8, 4]
    post = b[b["month"] >= "2024-09-01"]
    assert np.isclose(by_pos.loc[1, "center"], post["falls"].sum() / post["bed_days"].sum())


def test_freeze_uses_baseline_only():
    y = [4, 6, 5, 5, 12, 13, 14, 15]
    res = qic(_one(y), "x", "y", chart="c", freeze=4)
    d = res.data
    assert np.allclose(d["cl"], 5.0)
    assert np.allclose(d["ucl"], 5 + 3 * np.sqrt(5))
    assert d["baseline"].tolist() == [True] * 4 + [False] * 4
    assert d["sigma_signal"].sum() == 4
    # the runs analysis covers all points of the part, not only the baseline
    assert res.summary().loc[0, "n_useful"] == 6
    # freeze as an x value: the points with x <= value form the baseline
    x_dates = pd.DataFrame({"x": pd.date_range("2024-01-01", periods=8, freq="MS"), "y": y})
    by_x = qic(x_dates, "x", "y", chart="c", freeze="2024-04-01").data
    assert np.allclose(by_x["cl"], 5.0) and by_x["baseline"].sum() == 4


def test_exclude_positions_and_xvalues():
    y = [10.0, 11.0, 10.0, 11.0, 30.0, 11.0, 10.0, 11.0]
    res = qic(_one(y), "x", "y", chart="i", exclude=4)
    d = res.data
    kept = np.array(y)[[0, 1, 2, 3, 5, 6, 7]]
    mr = np.abs(np.diff(kept))  # moving ranges bridge the excluded point, as in qicharts2
    assert np.allclose(d["cl"], kept.mean())
    assert np.allclose(d["ucl"], kept.mean() + 3 * mr.mean() / 1.128)
    assert d["include"].tolist() == [True] * 4 + [False] + [True] * 3
    assert d["sigma_signal"].iloc[4]  # still drawn and flagged
    assert res.summary().loc[0, "n_obs"] == 7
    by_col = qic(_one(y).assign(skip=lambda t: t["x"] == 4), "x", "y", chart="i",
                 exclude="skip").data
    pd.testing.assert_frame_equal(by_col, d)
    funnel = pd.DataFrame({"h": ["a", "b", "c", "d"], "y": [5, 6, 40, 5], "n": [100] * 4})
    f = qic(funnel, "h", "y", "n", chart="p", exclude=["c"]).data
    assert np.allclose(f["cl"], 16 / 300)


def test_multiply_scales_values_not_signals():
    df = pd.read_csv(DATA / "wards.csv")
    a = qic(df, "month", "falls", "bed_days", chart="u", facet="ward")
    b = qic(df, "month", "falls", "bed_days", chart="u", facet="ward", multiply=1000)
    for c in ("y", "cl", "lcl", "ucl"):
        assert np.allclose(b.data[c], 1000 * a.data[c], equal_nan=True)
    pd.testing.assert_series_equal(a.data["sigma_signal"], b.data["sigma_signal"])
    pd.testing.assert_series_equal(a.data["runs_signal"], b.data["runs_signal"])


def test_input_is_not_modified():
    df = pd.read_csv(DATA / "wards.csv")
    before = df.copy()
    qic(df, "month", "falls", "bed_days", chart="u", facet="ward", part=6, exclude=[1])
    pd.testing.assert_frame_equal(df, before)


# --------------------------------------------------------------------------------------------
# Errors an analyst can cause


def test_missing_column_names_available_columns():
    df = pd.read_csv(DATA / "wards.csv")
    with pytest.raises(DataValidationError) as exc:
        qic(df, "month", "falls", "beddays", chart="u", facet="site")
    msg = str(exc.value)
    assert "'beddays'" in msg and "'site'" in msg
    assert "ward, month, falls, bed_days" in msg
    assert len(exc.value.problems) == 2


def test_bad_values_are_collected_with_file_lines():
    df = pd.DataFrame({"x": [1, 2, 3, 4], "y": [1, "two", 5, 3], "n": [2, 2, 4, -1]})
    with pytest.raises(DataValidationError) as exc:
        qic(df, "x", "y", "n", chart="p", source="counts.csv")
    rules = {p.rule: p for p in exc.value.problems}
    assert set(rules) == {"non_numeric", "negative_denominator", "numerator_gt_denominator"}
    assert rules["non_numeric"].examples == (3,)  # data row 1 is file line 3
    assert rules["numerator_gt_denominator"].examples == (4, 5)
    assert rules["non_numeric"].file == "counts.csv"


def test_config_errors():
    df = _one([1, 2, 3], [4, 5, 6])
    with pytest.raises(ConfigError, match="unknown chart"):
        qic(df, "x", "y", chart="np")
    with pytest.raises(ConfigError, match="needs a denominator"):
        qic(df, "x", "y", chart="u")
    with pytest.raises(ConfigError, match="outside the series"):
        qic(df, "x", "y", chart="i", part=7)
    with pytest.raises(QicstatsError):
        qic(df, "x", "y", chart="i", multiply=0)
    with pytest.raises(QicstatsError):
        qic([1, 2, 3], "x", "y")


# --------------------------------------------------------------------------------------------
# qicharts2's own fixtures (GPL-3, read from the shared folder, never copied)


_MAP = {"n_obs": "n.obs", "n_useful": "n.useful", "longest_run": "longest.run",
        "longest_run_max": "longest.run.max", "n_crossings": "n.crossings",
        "n_crossings_min": "n.crossings.min", "runs_signal": "runs.signal",
        "sigma_signal": "sigma.signal", "part": "part"}


@needs_ref
@pytest.mark.parametrize("case,facet",
                         [(1, None), (2, "infection"), (3, ["hospital", "infection"])])
def test_matches_qicharts2_hai_fixtures(case, facet):
    hi = pd.read_csv(REF / "hospital_infections.csv")
    ref = pd.read_csv(REF / f"hai_{case}.csv")
    got = qic(hi, "month", "n", "days", chart="u", facet=facet).summary()
    assert len(got) == len(ref)
    facets = [] if facet is None else ([facet] if isinstance(facet, str) else facet)
    for i, f in enumerate(facets):
        assert got[f].tolist() == ref[f"facet{i + 1}"].tolist()
    for ours, theirs in _MAP.items():
        assert got[ours].astype(float).tolist() == ref[theirs].astype(float).tolist(), ours
    for ours, theirs in (("lcl", "aLCL"), ("center", "CL"), ("ucl", "aUCL")):
        np.testing.assert_allclose(got[ours], ref[theirs], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got[ours], ref[theirs], rtol=1e-9, atol=1e-15)


@needs_ref
def test_cdi_u_chart_with_intervention_part():
    cdi = pd.read_csv(REF / "cdi.csv")
    assert {"month", "n", "days", "period"} <= set(cdi.columns)
    res = qic(cdi, "month", "n", "days", chart="u", multiply=10000, part="period")
    s = res.summary()
    assert s["part"].tolist() == [1, 2] and s["n_obs"].tolist() == [24, 12]
    assert s["center"].round(1).tolist() == [13.0, 5.0]
    pre, post = cdi.iloc[:24], cdi.iloc[24:]
    np.testing.assert_allclose(s["center"], [1e4 * pre["n"].sum() / pre["days"].sum(),
                                             1e4 * post["n"].sum() / post["days"].sum()])
    pd.testing.assert_frame_equal(
        qic(cdi, "month", "n", "days", chart="u", multiply=10000, part=24).summary(), s)
    assert res.data["part_label"].iloc[[0, -1]].tolist() == ["pre", "post"]


# --------------------------------------------------------------------------------------------
# Plots


def test_plot_single_and_facets():
    df = pd.read_csv(DATA / "wards.csv").assign(month=lambda d: pd.to_datetime(d["month"]))
    fig = qic(df[df["ward"] == "A"], "month", "falls", "bed_days", chart="u").plot()
    assert isinstance(fig, Figure)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:4] == b"\x89PNG"
    fig = qic(df, "month", "falls", "bed_days", chart="u", facet="ward", part=8).plot(ncol=1)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["A", "B"]


def test_plot_marks_signals():
    y = np.r_[np.full(12, 1.0), np.full(11, 3.0), 30.0]
    fig = qic(_one(y), "x", "y", chart="c").plot()
    ax = fig.axes[0]
    red = "#F15854"
    dashed_red = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"
                  and matplotlib.colors.same_color(ln.get_color(), red)]
    assert len(dashed_red) == 1  # runs signal: centre line red and dashed
    red_dots = [ln for ln in ax.get_lines() if ln.get_linestyle() == "None"
                and matplotlib.colors.same_color(ln.get_color(), red)]
    assert len(red_dots) == 1 and len(red_dots[0].get_xdata()) == 1


def test_small_multiples_one_panel_per_unit():
    df = pd.read_csv(DATA / "wards.csv")
    fig = small_multiples(df, "ward", "month", "falls", n="bed_days", chart="u", ncol=2)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2


# --------------------------------------------------------------------------------------------
# Residual signals (bridge to fitted models)


def test_residual_signals_per_group():
    a = [0.5, -0.2, 0.3, -1.0, 0.0, 4.0]
    b = list(np.linspace(0.1, 1.2, 12))
    df = pd.DataFrame({"unit": ["A"] * 6 + ["B"] * 12,
                       "t": list(range(6)) + list(range(12)),
                       "residual": a + b}).sample(frac=1.0, random_state=1)
    before = df.copy()
    out = residual_signals(df)
    pd.testing.assert_frame_equal(df, before)
    assert out["unit"].tolist() == ["A", "B"]
    ra, rb = out.iloc[0], out.iloc[1]
    assert (ra["n_obs"], ra["n_useful"], ra["longest_run"], ra["n_crossings"]) == (6, 5, 1, 4)
    assert ra["sigma_signal"] == 1 and not ra["runs_signal"]
    assert (rb["longest_run"], rb["longest_run_max"], rb["n_crossings"]) == (12, 7, 0)
    assert rb["runs_signal"] and rb["sigma_signal"] == 0
    assert list(out.columns) == ["unit", "n_obs", "n_useful", "longest_run", "longest_run_max",
                                 "n_crossings", "n_crossings_min", "runs_signal", "sigma_signal"]


def test_residual_signals_missing_column():
    with pytest.raises(DataValidationError, match="columns available: unit, t, r"):
        residual_signals(pd.DataFrame({"unit": [1], "t": [1], "r": [0.1]}))


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_writes_outputs_and_refuses_overwrite(tmp_path, capsys):
    from qicstats.cli import main

    out = tmp_path / "out"
    argv = [str(DATA / "wards.csv"), "--x", "month", "--y", "falls", "--n", "bed_days",
            "--chart", "u", "--facet", "ward", "--part", "8", "--multiply", "1000", "-o", str(out)]
    assert main(["spc", *argv]) == 0
    printed = capsys.readouterr().out
    assert "longest_run_max" in printed
    s = pd.read_csv(out / "spc_summary.csv")
    assert list(s.columns) == ["ward", *SUMMARY_COLUMNS]
    assert len(s) == 4
    assert (out / "spc_chart.png").stat().st_size > 1000
    assert main(["spc", *argv]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["spc", *argv, "--overwrite", "--format", "svg"]) == 0
    assert (out / "spc_chart.svg").is_file()


def test_cli_missing_column_is_a_clear_error(tmp_path, capsys):
    from qicstats.cli import main

    rc = main(["spc", str(DATA / "wards.csv"), "--x", "month", "--y", "fallz", "--chart", "c",
               "-o", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "'fallz'" in err and "ward, month, falls, bed_days" in err
    assert not (tmp_path / "o").exists()


def test_cli_reports_file_lines_and_reads_parquet(tmp_path, capsys):
    from qicstats.cli import main

    bad = tmp_path / "bad.csv"
    bad.write_text("x,y,n\n1,2,10\n\n2,abc,10\n3,12,10\n")
    assert main(["spc", str(bad), "--x", "x", "--y", "y", "--n", "n", "--chart", "p",
                 "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "[non_numeric]" in err and "e.g. 4" in err  # 'abc' sits on line 4 of the file
    assert "[numerator_gt_denominator]" in err and "e.g. 5" in err
    pq = tmp_path / "wards.parquet"
    pd.read_csv(DATA / "wards.csv").to_parquet(pq)
    assert main(["spc", str(pq), "--x", "month", "--y", "falls", "--chart", "c",
                 "--facet", "ward", "-o", str(tmp_path / "p")]) == 0
    assert len(pd.read_csv(tmp_path / "p" / "spc_summary.csv")) == 2


@needs_ref
def test_cli_cdi_part_at_date(tmp_path, capsys):
    from qicstats.cli import main

    assert main(["spc", str(REF / "cdi.csv"), "--x", "month", "--y", "n", "--n", "days",
                 "--chart", "u", "--part", "2014-11-01", "--multiply", "10000",
                 "-o", str(tmp_path)]) == 0
    s = pd.read_csv(tmp_path / "spc_summary.csv")
    assert s["center"].round(1).tolist() == [13.0, 5.0]
