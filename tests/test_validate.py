"""Tests of the QIC data contract (qicstats.data.validate): one test per rule, and the output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qicstats.data import ColumnMap, PanelData, aggregate_patient_rows, read_table, validate
from qicstats.errors import ConfigError, DataValidationError, Problem

DATA = Path(__file__).parent / "data" / "validate"


# ---- helpers -----------------------------------------------------------------------------
def base() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fixture panel (6 units x 12 months) and units table as DataFrames."""
    return read_table(DATA / "panel.csv"), read_table(DATA / "units.csv")


def errors(panel, units=None, **kw) -> dict[str, Problem]:
    with pytest.raises(DataValidationError) as info:
        validate(panel, units, **kw)
    return {p.rule: p for p in info.value.problems}


def warnings(panel, units=None, **kw) -> dict[str, Problem]:
    return {p.rule: p for p in validate(panel, units, **kw).warnings}


def only(panel, units=None, **kw) -> Problem:
    """The single error raised (asserts it is the only one)."""
    errs = errors(panel, units, **kw)
    assert len(errs) == 1, list(errs)
    return next(iter(errs.values()))


def with_object(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    return df.astype({c: object for c in cols})


def poisson_panel() -> pd.DataFrame:
    p, _ = base()
    return p.rename(columns={"numerator": "count", "denominator": "exposure"}).astype(
        {"exposure": float})


# ---- the valid case ----------------------------------------------------------------------
def test_valid_files_give_panel_data():
    pdata = validate(DATA / "panel.csv", DATA / "units.csv", levels=("collaborative", "site"))
    assert isinstance(pdata, PanelData)
    assert pdata.family == "binomial"
    assert pdata.levels == ("collaborative", "site")
    assert pdata.warnings == ()
    p = pdata.panel
    assert list(p.columns) == ["unit", "period", "t", "numerator", "denominator"]
    assert len(p) == 72
    assert p["unit"].tolist()[:13] == ["U1"] * 12 + ["U2"]
    assert p["t"].tolist()[:12] == list(range(12))
    assert p["period"].iloc[11] == "2023-12"
    assert p["numerator"].dtype == np.int64
    assert p.loc[13, ["numerator", "denominator"]].tolist() == [8, 21]  # U2, 2023-02
    u = pdata.units
    assert list(u.columns) == ["unit", "collaborative", "join_period", "join_t", "end_period",
                               "end_t", "site"]
    assert u["unit"].tolist() == ["U1", "U2", "U3", "U4", "U5", "U6"]
    assert u["join_t"].tolist()[:4] == [3, 5, 4, 6]
    assert u["join_t"].isna().tolist() == [False] * 4 + [True] * 2
    assert str(u["join_t"].dtype) == "Int64"
    assert u["collaborative"].isna().tolist() == [False] * 4 + [True] * 2
    assert u["site"].tolist() == ["North", "North", "South", "U4", "North", "East"]
    assert u["join_period"].tolist()[:4] == ["2023-04", "2023-06", "2023-05", "2023-07"]
    assert pdata.periods.labels[0] == "2023-01" and pdata.periods.T == 12
    assert pdata.summary()["n_comparison"] == 2
    assert pdata.sources == {"panel": str(DATA / "panel.csv"), "units": str(DATA / "units.csv")}
    assert pdata.unit_index[:13].tolist() == [0] * 12 + [1]


def test_dataframes_are_not_modified_and_files_unchanged():
    p, u = base()
    p2 = with_object(p, "numerator")
    p2.loc[0, "numerator"] = " 3 "
    p_copy, u_copy = p2.copy(deep=True), u.copy(deep=True)
    validate(p2, u)
    pd.testing.assert_frame_equal(p2, p_copy)
    pd.testing.assert_frame_equal(u, u_copy)
    files = [DATA / "panel.csv", DATA / "units.csv"]
    before = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    validate(*files)
    assert [hashlib.sha256(f.read_bytes()).hexdigest() for f in files] == before


def test_shuffled_input_gives_the_same_result():
    p, u = base()
    a = validate(p, u)
    b = validate(p.sample(frac=1, random_state=1), u.iloc[::-1])
    assert a.data_hash() == b.data_hash()
    pd.testing.assert_frame_equal(a.panel, b.panel)


def test_column_mapping_dict_and_columnmap():
    p, u = base()
    p = p.rename(columns={"unit": "afdeling", "numerator": "events"})
    u = u.rename(columns={"unit": "afdeling", "collaborative": "samarbejde"})
    mapping = {"unit": "afdeling", "numerator": "events", "collaborative": "samarbejde"}
    a = validate(p, u, columns=mapping)
    b = validate(p, u, columns=ColumnMap(**mapping))
    assert a.data_hash() == b.data_hash() == validate(*base()).data_hash()
    assert "numerator" in a.panel.columns and "collaborative" in a.units.columns


def test_unit_level_columns_on_the_panel_need_no_units_table():
    p, u = base()
    merged = p.merge(u, on="unit")
    pdata = validate(merged, levels=("collaborative", "site"))
    ref = validate(p, u, levels=("collaborative", "site"))
    assert pdata.data_hash() == ref.data_hash()


def test_collaborative_is_put_first_in_levels():
    pdata = validate(*base(), levels=("site",))
    assert pdata.levels == ("collaborative", "site")


def test_design_without_collaborative_column():
    p, u = base()
    u = u.drop(columns="collaborative")
    pdata = validate(p, u)
    assert pdata.levels == ()
    assert pdata.participating.tolist() == [True] * 4 + [False] * 2
    assert pdata.units["collaborative"].isna().tolist() == [False] * 4 + [True] * 2


def test_zero_denominators_in_some_rows_are_kept():
    p, u = base()
    p.loc[[0, 1], ["numerator", "denominator"]] = 0
    pdata = validate(p, u)
    assert pdata.panel["denominator"].iloc[:2].tolist() == [0, 0]
    assert len(pdata.panel) == 72


def test_poisson_with_and_without_exposure_and_gaussian_with_se():
    _, u = base()
    pdata = validate(poisson_panel(), u)
    assert pdata.family == "poisson"
    assert pdata.panel["exposure"].iloc[0] == 20.0
    no_exp = validate(poisson_panel().drop(columns="exposure"), u, family="negative-binomial")
    assert no_exp.family == "negbinomial"
    assert (no_exp.panel["exposure"] == 1.0).all()
    g = poisson_panel().rename(columns={"count": "value", "exposure": "se"})
    gd = validate(g, u)
    assert gd.family == "gaussian"
    assert list(gd.panel.columns) == ["unit", "period", "t", "value", "se"]


def test_date_periods_and_date_joins():
    p, u = base()
    p = p.assign(period=pd.to_datetime(p["period"] + "-01"))
    u = u.assign(join_period=u["join_period"].where(u["join_period"].isna(),
                                                    u["join_period"] + "-15"))
    pdata = validate(p, u)
    assert pdata.periods.freq == "month"
    assert pdata.units["join_t"].tolist()[:4] == [3, 5, 4, 6]
    assert pdata.panel["period"].iloc[0] == "2023-01"


def test_covariates_unit_and_panel():
    p, u = base()
    u = u.assign(beds=[10, 20, 30, 40, 50, 60])
    p = p.assign(staff=np.arange(len(p), dtype=float))
    pdata = validate(p, u, covariates=("beds", "staff"))
    assert pdata.covariates == ("beds", "staff")
    assert pdata.units["beds"].tolist() == [10, 20, 30, 40, 50, 60]
    assert pdata.panel["staff"].tolist()[:2] == [0.0, 1.0]


def test_patient_level_rows_are_aggregated():
    p, u = base()
    rows = []
    for r in p.itertuples():
        rows += [(r.unit, r.period, 1)] * r.numerator
        rows += [(r.unit, r.period, 0)] * (r.denominator - r.numerator)
    pat = pd.DataFrame(rows, columns=["unit", "period", "outcome"]).sample(frac=1,
                                                                          random_state=0)
    pdata = validate(pat, u)
    ref = validate(p, u)
    assert pdata.family == "binomial"
    pd.testing.assert_frame_equal(pdata.panel, ref.panel)


def test_aggregate_patient_rows_exact():
    df = pd.DataFrame({"u": ["b", "a", "a", "b", "a"], "p": [2, 1, 1, 2, 2],
                       "y": [True, False, True, True, True]})
    out = aggregate_patient_rows(df, "u", "p", "y")
    assert out.to_dict("list") == {"u": ["a", "a", "b"], "p": [1, 2, 2],
                                   "numerator": [1, 1, 2], "denominator": [2, 1, 2]}
    with pytest.raises(DataValidationError) as info:
        aggregate_patient_rows(df.assign(y=[1, 0, 2, None, 1]), "u", "p", "y")
    assert info.value.problems[0].rule == "outcome_not_binary"
    assert info.value.problems[0].count == 2


def test_every_problem_in_one_pass(tmp_path):
    p, u = base()
    p = with_object(p, "denominator")
    p.loc[2, "denominator"] = "many"
    p.loc[5, "numerator"] = 99
    p.loc[7, "period"] = "2023-13"
    u.loc[0, "join_period"] = "soon"
    errs = errors(p, u)
    assert {"count_not_numeric", "numerator_gt_denominator", "unparseable_period",
            "unparseable_join_period"} <= set(errs)


def test_examples_are_file_line_numbers(tmp_path):
    p, u = base()
    p.loc[[4, 9], "numerator"] = -1
    path = tmp_path / "panel.csv"
    p.to_csv(path, index=False)
    prob = only(path, DATA / "units.csv")
    assert prob.rule == "count_negative"
    assert prob.examples == (6, 11)  # header is line 1, so data row i is line i + 2
    assert prob.file == str(path)


# ---- one test per error rule -------------------------------------------------------------
def test_rule_file_not_found(tmp_path):
    errs = errors(tmp_path / "nope.csv", DATA / "empty.csv")
    assert errs["file_not_found"].file == str(tmp_path / "nope.csv")
    assert "empty_file" in errs  # the other file's problem is reported in the same error


def test_rule_empty_file():
    assert only(DATA / "header_only.csv", DATA / "units.csv").rule == "empty_file"


def test_rule_not_tabular():
    prob = only(DATA / "garbage.csv", DATA / "units.csv")
    assert prob.rule == "not_tabular" and "garbage.csv" in prob.file


def test_rule_missing_columns_with_mapping_suggestion():
    p, u = base()
    p = p.rename(columns={"numerator": "Numerator ", "denominator": "denominatr"})
    prob = only(p, u)
    assert prob.rule == "missing_columns"
    assert prob.examples == ("numerator", "denominator")
    assert "family binomial" in prob.message
    assert "family binomial" in prob.message
    # header whitespace is stripped, then the case-only difference is suggested as a mapping
    assert "present: unit, period, Numerator, denominatr" in prob.message
    assert "numerator='Numerator'" in prob.hint and "denominator='denominatr'" in prob.hint


def test_rule_missing_columns_when_no_outcome():
    p, u = base()
    prob = only(p.rename(columns={"numerator": "a", "denominator": "b"}), u)
    assert prob.rule == "missing_columns"
    assert "numerator + denominator (binomial)" in prob.message


def test_rule_missing_unit():
    p, u = base()
    p.loc[3, "unit"] = None
    prob = only(p, u)
    assert (prob.rule, prob.count, prob.examples) == ("missing_unit", 1, (3,))


def test_rule_missing_period():
    p, u = base()
    p.loc[[3, 4], "period"] = "  "
    prob = only(p, u)
    assert (prob.rule, prob.count, prob.examples) == ("missing_period", 2, (3, 4))


def test_rule_unparseable_period():
    p, u = base()
    p.loc[6, "period"] = "June 2023"
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("unparseable_period", (6,))
    assert "'June 2023'" in prob.message


def test_rule_mixed_period_frequency():
    p, u = base()
    p.loc[[1, 2], "period"] = "2023-Q1"
    prob = only(p, u)
    assert prob.rule == "mixed_period_frequency"
    assert prob.examples == (1, 2)
    assert "month: 70, quarter: 2" in prob.message


def test_rule_period_range_too_large():
    p, u = base()
    p = p.assign(period=np.tile(np.arange(1, 13), 6))
    p.loc[5, "period"] = 100_000
    errs = errors(p, u.assign(join_period=[4, 6, 5, 7, None, None]))
    assert "period_range_too_large" in errs


def test_rule_count_not_numeric():
    p, u = base()
    p = with_object(p, "numerator")
    p.loc[0, "numerator"] = "3 pts"
    prob = only(p, u)
    assert (prob.rule, prob.column, prob.examples) == ("count_not_numeric", "numerator", (0,))


def test_rule_count_missing():
    p, u = base()
    p = p.astype({"denominator": float})
    p.loc[8, "denominator"] = np.nan
    prob = only(p, u)
    assert (prob.rule, prob.column, prob.examples) == ("count_missing", "denominator", (8,))


def test_rule_count_negative():
    p, u = base()
    p.loc[8, "numerator"] = -2
    assert only(p, u).rule == "count_negative"


def test_rule_count_fractional():
    p, u = base()
    p = p.astype({"numerator": float})
    p.loc[8, "numerator"] = 2.5
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("count_fractional", (8,))


def test_rule_numerator_gt_denominator():
    p, u = base()
    p.loc[[10, 11], "numerator"] = 50
    prob = only(p, u)
    assert (prob.rule, prob.count, prob.examples) == ("numerator_gt_denominator", 2, (10, 11))


def test_rule_exposure_not_positive():
    _, u = base()
    p = poisson_panel()
    p.loc[[2, 3], "exposure"] = [0.0, -1.0]
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("exposure_not_positive", (2, 3))


def test_rule_exposure_missing():
    _, u = base()
    p = poisson_panel()
    p.loc[2, "exposure"] = np.nan
    assert only(p, u).rule == "exposure_missing"


def test_rule_exposure_not_numeric():
    _, u = base()
    p = with_object(poisson_panel(), "exposure")
    p.loc[2, "exposure"] = "lots"
    assert only(p, u).rule == "exposure_not_numeric"


def test_rule_value_not_numeric():
    _, u = base()
    g = with_object(poisson_panel().rename(columns={"count": "value", "exposure": "se"}),
                    "value")
    g.loc[1, "value"] = "high"
    prob = only(g, u)
    assert (prob.rule, prob.column) == ("value_not_numeric", "value")


def test_rule_value_missing():
    _, u = base()
    g = poisson_panel().rename(columns={"count": "value", "exposure": "se"}).astype(
        {"value": float})
    g.loc[1, "value"] = np.nan
    assert only(g, u).rule == "value_missing"


def test_rule_se_not_positive():
    _, u = base()
    g = poisson_panel().rename(columns={"count": "value", "exposure": "se"})
    g.loc[1, "se"] = 0.0
    prob = only(g, u)
    assert (prob.rule, prob.column, prob.examples) == ("se_not_positive", "se", (1,))


def test_rule_weight_not_positive():
    _, u = base()
    g = poisson_panel().rename(columns={"count": "value", "exposure": "weight"})
    g.loc[1, "weight"] = -1.0
    assert only(g, u).rule == "weight_not_positive"


def test_rule_outcome_not_binary():
    _, u = base()
    pat = pd.DataFrame({"unit": np.repeat(["U1", "U2", "U3", "U4", "U5", "U6"], 12),
                        "period": np.tile([f"2023-{m:02d}" for m in range(1, 13)], 6),
                        "outcome": 1}).astype({"outcome": object})
    pat.loc[[3, 7], "outcome"] = [2, "yes"]
    prob = only(pat, u)
    assert (prob.rule, prob.count, prob.examples) == ("outcome_not_binary", 2, (3, 7))


def test_rule_duplicate_unit_period():
    p, u = base()
    p = pd.concat([p, p.iloc[[4]]], ignore_index=True)
    prob = only(p, u)
    assert prob.rule == "duplicate_unit_period"
    assert prob.examples == (4, 72)
    assert "aggregate them first" in prob.hint.lower()
    assert "two rows for the same month" in prob.hint


def test_rule_duplicate_unit():
    p, u = base()
    u = pd.concat([u, u.iloc[[1]].assign(collaborative="B")], ignore_index=True)
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("duplicate_unit", ("U2",))


def test_rule_not_constant_within_unit():
    p, u = base()
    merged = p.merge(u, on="unit")
    merged.loc[merged["unit"] == "U2", "collaborative"] = ["A"] * 6 + ["B"] * 6
    prob = only(merged)
    assert prob.rule == "not_constant_within_unit"
    assert prob.examples == ("U2",)
    assert "more than one collaborative" in prob.message


def test_rule_groups_not_nested():
    p, u = base()
    u.loc[u["unit"] == "U3", "site"] = "North"  # North already holds units of A
    prob = only(p, u, levels=("collaborative", "site"))
    assert (prob.rule, prob.column, prob.examples) == ("groups_not_nested", "site", ("North",))
    assert "'A', 'B'" in prob.message


def test_rule_unit_not_in_units_table():
    p, u = base()
    u = u[u["unit"] != "U6"]
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("unit_not_in_units_table", ("U6",))


def test_rule_unparseable_join_period():
    p, u = base()
    u.loc[0, "join_period"] = "2023-Q2"
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("unparseable_join_period", ("U1",))


def test_rule_unparseable_end_period():
    p, u = base()
    u = u.assign(end_period=["2023-10", "later", None, None, None, None])
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("unparseable_end_period", ("U2",))


def test_rule_end_before_join():
    p, u = base()
    u = u.assign(end_period=["2023-02", "2023-12", None, None, None, None])
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("end_before_join", ("U1",))


def test_rule_missing_join_period():
    p, u = base()
    u.loc[2, "join_period"] = None
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("missing_join_period", ("U3",))


def test_rule_comparison_with_join_period():
    p, u = base()
    u.loc[4, "join_period"] = "2023-05"
    prob = only(p, u)
    assert (prob.rule, prob.examples) == ("comparison_with_join_period", ("U5",))


def test_rule_missing_covariate():
    p, u = base()
    u = u.assign(beds=[10, np.nan, 30, 40, 50, 60])
    prob = only(p, u, covariates=("beds",))
    assert (prob.rule, prob.examples) == ("missing_covariate", ("U2",))


def test_rule_covariate_not_numeric():
    _, u = base()
    pat = pd.DataFrame({"unit": np.repeat(["U1", "U2", "U3", "U4", "U5", "U6"], 12),
                        "period": np.tile([f"2023-{m:02d}" for m in range(1, 13)], 6),
                        "outcome": 1, "sex": "f"})
    prob = only(pat, u, covariates=("sex",))
    assert prob.rule == "covariate_not_numeric"


def test_rule_single_series_same_join_and_no_comparison_is_a_warning():
    """Every unit joining at once without comparison units is a single-series interrupted
    time series: fitted (with a parametric trend), so a warning, not an error."""
    p, u = base()
    p = p[p["unit"].isin(["U1", "U2", "U3", "U4"])]
    u = u[u["unit"].isin(["U1", "U2", "U3", "U4"])].assign(join_period="2023-06")
    pdata = validate(p, u)
    w = {q.rule: q for q in pdata.warnings}
    assert "single_series" in w and "not_identified" not in w
    prob = w["single_series"]
    assert prob.severity == "warning"
    assert "same period (2023-06)" in prob.message
    assert "extrapolating a parametric trend" in prob.message
    assert "model.trend: linear" in prob.hint
    assert set(prob.examples) == {"U1", "U2", "U3", "U4"} and prob.count == 4
    # one participating unit alone (no comparison) is a single series too
    one_u = validate(p[p["unit"] == "U1"], u[u["unit"] == "U1"])
    assert "single_series" in {q.rule for q in one_u.warnings}
    # staggered joins without comparison units: no warning
    st = validate(p, u.assign(join_period=["2023-04", "2023-06", "2023-06", "2023-08"]))
    assert "single_series" not in {q.rule for q in st.warnings}
    # with comparison units: no warning either
    p6, u6 = base()
    assert "single_series" not in {q.rule for q in validate(p6, u6).warnings}


def test_rule_not_identified_without_participating_units():
    p, u = base()
    prob = only(p, u.assign(collaborative=None, join_period=None))
    assert prob.rule == "not_identified"


def test_rule_unknown_family():
    assert only(*base(), family="lognormal").rule == "unknown_family"


def test_rule_duplicate_columns():
    p, u = base()
    p = p.rename(columns={"denominator": "numerator "})
    errs = errors(p, u)
    assert "duplicate_columns" in errs


def test_rule_unknown_column_role_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        validate(*base(), columns={"patients": "n"})
    assert info.value.problems[0].rule == "unknown_column_role"


# ---- one test per warning rule -----------------------------------------------------------
def test_warning_unit_without_data():
    p, u = base()
    u = pd.concat([u, pd.DataFrame({"unit": ["U9"], "collaborative": ["A"],
                                    "join_period": ["2023-05"], "site": ["West"]})])
    w = warnings(p, u)
    assert w["unit_without_data"].examples == ("U9",)
    assert validate(p, u).n_units == 6


def test_warning_no_pre_periods_and_join_outside_window():
    p, u = base()
    u.loc[0, "join_period"] = "2022-11"
    w = warnings(p, u)
    assert w["no_pre_periods"].examples == ("U1",)
    assert w["join_outside_window"].examples == ("U1",)
    assert validate(p, u).units["join_t"].iloc[0] == -2


def test_warning_no_post_periods():
    p, u = base()
    u.loc[1, "join_period"] = "2024-02"
    w = warnings(p, u)
    assert w["no_post_periods"].examples == ("U2",)
    assert w["join_outside_window"].examples == ("U2",)


def test_warning_all_zero_denominator():
    p, u = base()
    p.loc[p["unit"] == "U6", ["numerator", "denominator"]] = 0
    assert warnings(p, u)["all_zero_denominator"].examples == ("U6",)


def test_warning_short_series():
    p, u = base()
    p = p[(p["unit"] != "U5") | (p["period"] < "2023-04")]
    w = warnings(p, u)
    assert w["short_series"].examples == ("U5",)
    assert set(warnings(p, u, min_periods=3)) == set()


def test_warning_single_collaborative():
    p, u = base()
    u["collaborative"] = u["collaborative"].replace({"B": "A"})
    assert warnings(p, u)["single_collaborative"].examples == ("A",)


def test_warning_period_gaps():
    p, u = base()
    p = p[~p["period"].isin(["2023-03", "2023-08"])]
    pdata = validate(p, u)
    w = {x.rule: x for x in pdata.warnings}
    assert pdata.periods.gaps == ("2023-03", "2023-08")
    assert "2023-03, 2023-08" in w["period_gaps"].message
    assert pdata.periods.T == 12


# ---- frequencies and file formats -------------------------------------------------------
def _patients_with_dates() -> pd.DataFrame:
    p, _ = base()
    rows = []
    for r in p.itertuples():
        for k in range(r.denominator):
            day = 1 + (k % 28)
            rows.append((r.unit, f"{r.period}-{day:02d}", int(k < r.numerator)))
    return pd.DataFrame(rows, columns=["unit", "admitted", "died"])


def test_patient_admission_dates_aggregated_to_months():
    _, u = base()
    pat = _patients_with_dates()
    cols = {"period": "admitted", "outcome": "died"}
    u_days = u.assign(join_period=u["join_period"] + "-01")
    daily = validate(pat, u_days, columns=cols, min_periods=1)
    assert daily.periods.freq == "day"
    assert daily.units["join_period"].tolist()[:2] == ["2023-04-01", "2023-06-01"]
    monthly = validate(pat, u, columns=cols, freq="month")
    assert monthly.periods.freq == "month"
    pd.testing.assert_frame_equal(monthly.panel, validate(*base()).panel)


def test_rule_period_freq_mismatch():
    p, u = base()
    p = p.assign(period=np.tile(np.arange(1, 13), 6))
    errs = errors(p, u.assign(join_period=[4, 6, 5, 7, None, None]), freq="month")
    assert "period_freq_mismatch" in errs


def test_excel_panel_with_dates_and_integer_unit_ids(tmp_path):
    p, u = base()
    ids = {f"U{i}": i for i in range(1, 7)}
    p = p.assign(unit=p["unit"].map(ids), period=pd.to_datetime(p["period"] + "-01"))
    u = u.assign(unit=u["unit"].map(ids),
                 join_period=pd.to_datetime(u["join_period"] + "-10"))
    path = tmp_path / "qic.xlsx"
    with pd.ExcelWriter(path) as xw:
        p.to_excel(xw, sheet_name="panel", index=False)
    upath = tmp_path / "units.parquet"
    u.to_parquet(upath)
    pdata = validate(path, upath)
    assert pdata.units["unit"].tolist() == ["1", "2", "3", "4", "5", "6"]
    assert pdata.units["join_t"].tolist()[:4] == [3, 5, 4, 6]
    assert pdata.periods.labels[0] == "2023-01" and pdata.periods.freq == "month"
