"""Coder agreement: equal to statsmodels' / krippendorff's own results, and textbook values."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa, to_table

from qicstats.data.periods import make_grid
from qicstats.indicators import IndicatorCodes, agreement_table, load_codebook, ratings_matrix

CB = load_codebook({"indicators": {
    "support": {"type": "ordinal", "levels": ["weak", "moderate", "strong"]},
    "coord": {"type": "binary"},
    "density": {"type": "continuous"},
    "five": {"type": "ordinal", "levels": ["a", "b", "c", "d", "e"]},
}})
GRID = make_grid(np.arange(24288, 24300), "month")


def make_codes(indicator: str, ratings: list[list[float | None]], coders: list[str]
               ) -> IndicatorCodes:
    """Codes from an items x coders matrix of level indices / values (None: not coded)."""
    spec = CB[indicator]
    rows = []
    for i, item in enumerate(ratings):
        for coder, v in zip(coders, item):
            if v is None:
                continue
            level = spec.levels[int(v)] if spec.levels else pd.NA
            rows.append(dict(unit=f"u{i:03d}", indicator=indicator, level=level, value=float(v),
                             wave=pd.NA, wave_t=np.nan, coder=coder, source="<test>", line=i + 2))
    return IndicatorCodes(pd.DataFrame(rows).astype({"level": "string", "wave": "string"}),
                          CB, GRID)


def test_textbook_2x2_cohen_kappa() -> None:
    """Wikipedia's 'Cohen's kappa' example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10,
    no/no 15: p_o = 0.7, p_e = 0.5, kappa = 0.4."""
    items = [[1, 1]] * 20 + [[1, 0]] * 5 + [[0, 1]] * 10 + [[0, 0]] * 15
    row = agreement_table(make_codes("coord", items, ["A", "B"])).iloc[0]
    assert row["kappa_type"] == "cohen"
    assert row["kappa"] == pytest.approx(0.4, abs=1e-12)
    assert row["kappa_unweighted"] == pytest.approx(0.4, abs=1e-12)
    assert row["percent_agreement"] == pytest.approx(70.0)
    assert (row["n_items"], row["n_double_coded"], row["n_coders"], row["n_items_kappa"]) == (
        50, 50, 2, 50)
    assert row["alpha_level"] == "nominal"
    assert row["alpha"] == pytest.approx(krippendorff.alpha(
        reliability_data=np.array(items, float).T, level_of_measurement="nominal"))


def test_perfect_agreement_is_one() -> None:
    items = [[0, 0], [1, 1], [2, 2], [1, 1], [0, 0]]
    row = agreement_table(make_codes("support", items, ["A", "B"])).iloc[0]
    assert row["kappa"] == pytest.approx(1.0)
    assert row["kappa_unweighted"] == pytest.approx(1.0)
    assert row["alpha"] == pytest.approx(1.0)
    assert row["percent_agreement"] == 100.0


def test_ordinal_two_coders_equal_statsmodels_and_krippendorff() -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 3, 40)
    b = np.clip(a + rng.integers(-1, 2, 40), 0, 2)
    items = [[float(x), float(y)] for x, y in zip(a, b)]
    items += [[1.0, None], [None, 2.0]]                      # single-coded: not counted
    row = agreement_table(make_codes("support", items, ["A", "B"])).iloc[0]
    table = to_table(np.c_[a, b], bins=3)[0]
    assert row["kappa_type"] == "cohen_weighted_linear"
    assert row["kappa"] == pytest.approx(cohens_kappa(table, wt="linear").kappa, abs=1e-12)
    assert row["kappa_unweighted"] == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)
    assert row["alpha"] == pytest.approx(krippendorff.alpha(
        reliability_data=np.c_[a, b].T.astype(float), level_of_measurement="ordinal",
        value_domain=[0, 1, 2]), abs=1e-12)
    assert (row["n_items"], row["n_double_coded"], row["n_coders"]) == (42, 40, 2)
    assert row["percent_agreement"] == pytest.approx(100 * np.mean(a == b))


def test_fleiss_textbook_example() -> None:
    """Wikipedia's 'Fleiss' kappa' example: 14 raters, 10 subjects, 5 categories: 0.210."""
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
                       [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
                       [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    items = [[float(k) for k in np.repeat(np.arange(5), c)] for c in counts]
    coders = [f"c{j:02d}" for j in range(14)]
    row = agreement_table(make_codes("five", items, coders)).iloc[0]
    assert row["kappa_type"] == "fleiss"
    assert row["kappa"] == pytest.approx(0.20993070442195522, abs=1e-12)
    assert round(row["kappa"], 3) == 0.210
    assert row["n_coders"] == 14 and row["n_items_kappa"] == 10


def test_three_coders_equal_statsmodels_fleiss_and_skip_adjudication() -> None:
    items = [[0, 0, 1], [1, 1, 1], [2, 1, 2], [0, 0, 0], [2, 2, 2], [1, 0, 1], [2, 2, None]]
    codes = make_codes("support", items, ["A", "B", "C"])
    adj = codes.table.iloc[:3].assign(coder=["adjudicated", "Consensus", "adjudicated"])
    codes = IndicatorCodes(pd.concat([codes.table, adj], ignore_index=True), CB, GRID)
    row = agreement_table(codes).iloc[0]
    full = np.array(items[:6], dtype=int)
    want = fleiss_kappa(aggregate_raters(full, n_cat=3)[0])
    assert row["kappa_type"] == "fleiss"
    assert row["kappa"] == pytest.approx(want, abs=1e-12)
    assert row["n_items_kappa"] == 6            # items coded by all three
    assert row["n_double_coded"] == 7 and row["n_coders"] == 3
    assert list(ratings_matrix(codes, "support").columns) == ["A", "B", "C"]
    mat = np.array([[np.nan if v is None else v for v in it] for it in items]).T
    assert row["alpha"] == pytest.approx(krippendorff.alpha(
        reliability_data=mat, level_of_measurement="ordinal", value_domain=[0, 1, 2]))


def test_continuous_interval_alpha_and_no_kappa() -> None:
    items = [[0.1, 0.12], [0.3, 0.25], [0.5, 0.5], [0.05, 0.0]]
    row = agreement_table(make_codes("density", items, ["A", "B"])).iloc[0]
    assert np.isnan(row["kappa"]) and pd.isna(row["kappa_type"])
    assert row["alpha_level"] == "interval"
    assert row["alpha"] == pytest.approx(krippendorff.alpha(
        reliability_data=np.array(items).T, level_of_measurement="interval"))
    assert row["percent_agreement"] == pytest.approx(25.0)


def test_no_double_coding_gives_nan_row() -> None:
    row = agreement_table(make_codes("coord", [[1, None], [None, 0]], ["A", "B"])).iloc[0]
    assert (row["n_items"], row["n_double_coded"], row["n_coders"]) == (2, 0, 0)
    assert np.isnan(row["kappa"]) and np.isnan(row["alpha"])
