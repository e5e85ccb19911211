"""Tests of period parsing, grids and grid indexing (qicstats.data.periods)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qicstats.data import make_grid, parse_periods, to_grid_index
from qicstats.data.periods import period_label
from qicstats.errors import QicstatsError


def _steps(p):
    o = p.ordinal[np.isfinite(p.ordinal)]
    return np.diff(o).tolist()


@pytest.mark.parametrize("values, freq, labels", [
    ([1, 2, 3], "integer", ["1", "2", "3"]),
    (["1", "2", " 3 "], "integer", ["1", "2", "3"]),
    ([1.0, 2.0, 3.0], "integer", ["1", "2", "3"]),
    (["2023-11", "2023-12", "2024-01"], "month", ["2023-11", "2023-12", "2024-01"]),
    (["2023/11", "2023/12", "2024/1"], "month", ["2023-11", "2023-12", "2024-01"]),
    (["2023-Q4", "2024Q1", "2024 Q2", "2024-q3"], "quarter",
     ["2023-Q4", "2024-Q1", "2024-Q2", "2024-Q3"]),
    (["2020-W52", "2020-W53", "2021-W01"], "week", ["2020-W52", "2020-W53", "2021-W01"]),
    (["2024-02-28", "2024-02-29", "2024-03-01", "2024-03-05"], "day",
     ["2024-02-28", "2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04",
      "2024-03-05"]),
])
def test_formats_parse_to_consecutive_ordinals(values, freq, labels):
    p = parse_periods(pd.Series(values))
    assert p.freq == freq
    assert not p.bad.any()
    assert p.freqs_seen == {freq: len(values)}
    grid = make_grid(p.ordinal, p.freq)
    assert list(grid.labels) == labels


def test_consecutive_periods_differ_by_one_across_year_boundaries():
    assert _steps(parse_periods(pd.Series(["2023-12", "2024-01"]))) == [1.0]
    assert _steps(parse_periods(pd.Series(["2023-Q4", "2024-Q1"]))) == [1.0]
    assert _steps(parse_periods(pd.Series(["2020-W53", "2021-W01"]))) == [1.0]
    assert _steps(parse_periods(pd.Series(["2023-12-31", "2024-01-01"]))) == [1.0]


def test_one_date_per_month_is_monthly():
    first = parse_periods(pd.Series(["2024-01-01", "2024-02-01", "2024-03-01", "2024-03-01"]))
    assert first.freq == "month"
    assert _steps(first) == [1.0, 1.0, 0.0]
    mid = parse_periods(pd.Series(["2024-01-15", "2024-02-14", "2024-04-30"]))
    assert mid.freq == "month"
    grid = make_grid(mid.ordinal, mid.freq)
    assert grid.labels == ("2024-01", "2024-02", "2024-03", "2024-04")
    assert grid.gaps == ("2024-03",)


def test_two_dates_in_a_month_is_daily():
    p = parse_periods(pd.Series(["2024-01-01", "2024-01-02", "2024-02-01"]))
    assert p.freq == "day"
    assert make_grid(p.ordinal, "day").T == 32


def test_datetime_and_period_dtypes():
    dt = pd.Series(pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-05-01"]))
    p = parse_periods(dt)
    assert p.freq == "month"
    assert np.isnan(p.ordinal[2]) and not p.bad[2]
    assert make_grid(p.ordinal, p.freq).labels[-1] == "2024-05"
    q = parse_periods(pd.Series(pd.period_range("2023Q3", periods=3, freq="Q")))
    assert q.freq == "quarter"
    assert make_grid(q.ordinal, q.freq).labels == ("2023-Q3", "2023-Q4", "2024-Q1")
    m = parse_periods(pd.Series(pd.period_range("2023-11", periods=3, freq="M")))
    assert make_grid(m.ordinal, m.freq).labels == ("2023-11", "2023-12", "2024-01")


def test_quarter_start_and_year_start_dates():
    q = parse_periods(pd.Series(["2023-01-01", "2023-04-01", "2023-07-01", "2023-10-01"]))
    assert q.freq == "quarter"
    y = parse_periods(pd.Series(["2021-01-01", "2022-01-01", "2023-01-01"]))
    assert y.freq == "year"
    assert make_grid(y.ordinal, y.freq).labels == ("2021", "2022", "2023")


def test_dates_on_one_weekday_are_weekly():
    p = parse_periods(pd.Series(["2024-01-01", "2024-01-08", "2024-01-22"]))  # Mondays
    assert p.freq == "week"
    g = make_grid(p.ordinal, p.freq)
    assert g.labels == ("2024-W01", "2024-W02", "2024-W03", "2024-W04")
    assert g.gaps == ("2024-W03",)


def test_empty_bad_and_mixed_values():
    p = parse_periods(pd.Series(["2024-01", "", None, "2024-13", "banana", "2024-Q1",
                                 "2024-02"], dtype=object))
    assert p.freq == "month"
    assert p.bad.tolist() == [False, False, False, True, True, False, False]
    assert p.other_freq.tolist() == [False, False, False, False, False, True, False]
    assert p.freqs_seen == {"month": 2, "quarter": 1}
    assert p.mixed
    assert np.isnan(p.ordinal[[1, 2, 3, 4, 5]]).all()
    assert p.ordinal[6] - p.ordinal[0] == 1


def test_fractional_numbers_and_bools_are_bad():
    p = parse_periods(pd.Series([1.5, 2.0, True], dtype=object))
    assert p.bad.tolist() == [True, False, True]


def test_make_grid_labels_for_every_frequency():
    assert period_label(3, "integer") == "3"
    assert period_label(2024 * 12 + 0, "month") == "2024-01"
    assert period_label(2024 * 4 + 3, "quarter") == "2024-Q4"
    assert period_label(2024, "year") == "2024"
    day = parse_periods(pd.Series(["2024-01-15", "2024-01-16"])).ordinal[0]
    assert period_label(day, "day") == "2024-01-15"
    wk = parse_periods(pd.Series(["2024-W03"])).ordinal[0]
    assert period_label(wk, "week") == "2024-W03"


def test_make_grid_gaps_from_observed_and_errors():
    g = make_grid(np.array([1.0, 5.0, np.nan]), "integer", observed=np.array([1.0, 2.0, 5.0]))
    assert g.labels == ("1", "2", "3", "4", "5")
    assert g.values == (1, 2, 3, 4, 5)
    assert g.gaps == ("3", "4")
    with pytest.raises(QicstatsError):
        make_grid(np.array([np.nan]), "integer")
    with pytest.raises(QicstatsError):
        make_grid(np.array([1.0]), "fortnight")


def test_to_grid_index_month_grid():
    p = parse_periods(pd.Series(["2024-01", "2024-02", "2024-03", "2024-04"]))
    grid = make_grid(p.ordinal, p.freq)
    vals = pd.Series(["2024-03", "2023-11", "", None, "2024-03-15", "2024-Q2", "xx",
                      "2025-01"], dtype=object)
    idx, bad = to_grid_index(vals, grid)
    np.testing.assert_array_equal(idx, [2, -2, np.nan, np.nan, 2, np.nan, np.nan, 12])
    assert bad.tolist() == [False, False, False, False, False, True, True, False]


def test_to_grid_index_integer_grid_and_year_grid():
    grid = make_grid(np.array([1.0, 10.0]), "integer")
    idx, bad = to_grid_index(pd.Series([4, "7", 2.5, "2024-01"], dtype=object), grid)
    np.testing.assert_array_equal(idx, [3, 6, np.nan, np.nan])
    assert bad.tolist() == [False, False, True, True]
    ygrid = make_grid(np.array([2020.0, 2023.0]), "year")
    idx, bad = to_grid_index(pd.Series([2022, "2021-06-30"], dtype=object), ygrid)
    np.testing.assert_array_equal(idx, [2, 1])
    assert not bad.any()


def test_long_columns_are_parsed_per_distinct_value():
    s = pd.Series(np.repeat(["2024-01", "2024-02", "2024-03"], 100_000))
    p = parse_periods(s)
    assert p.freq == "month" and p.freqs_seen == {"month": 300_000}
    assert np.unique(p.ordinal).size == 3
