"""Consensus rules: majority (ties to the lower level), adjudicated, uncertain, coder:NAME."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qicstats.data.periods import make_grid
from qicstats.errors import ConfigError
from qicstats.indicators import IndicatorCodes, coders, consensus, load_codebook

CB = load_codebook({"indicators": {
    "support": {"type": "ordinal", "levels": ["weak", "moderate", "strong"]},
    "density": {"type": "continuous"},
}})
GRID = make_grid(np.arange(24288, 24294), "month")


def make_codes(rows: list[tuple]) -> IndicatorCodes:
    """rows: (unit, indicator, level-or-value, wave_t, coder)."""
    recs = []
    for i, (unit, ind, v, t, coder) in enumerate(rows):
        spec = CB[ind]
        level = v if spec.levels else pd.NA
        value = float(spec.levels.index(v)) if spec.levels else float(v)
        wave = GRID.labels[t] if t is not None else pd.NA
        recs.append(dict(unit=unit, indicator=ind, level=level, value=value, wave=wave,
                         wave_t=np.nan if t is None else float(t), coder=coder,
                         source="<test>", line=i + 2))
    table = pd.DataFrame(recs).astype({"level": "string", "wave": "string", "coder": "string"})
    return IndicatorCodes(table, CB, GRID)


CODES = make_codes([
    ("A", "support", "strong", 0, "x"), ("A", "support", "strong", 0, "y"),
    ("A", "support", "moderate", 0, "z"),                                   # 2 of 3 strong
    ("B", "support", "strong", None, "x"), ("B", "support", "weak", None, "y"),   # tie
    ("B", "support", "moderate", None, "adjudicated"),
    ("C", "support", "moderate", 3, "y"),                                   # single coder
    ("C", "support", "weak", 3, "z"), ("C", "support", "weak", 3, "x"),
    ("A", "density", 0.2, None, "x"), ("A", "density", 0.4, None, "y"),
])


def pick(df: pd.DataFrame, unit: str, indicator: str = "support") -> pd.Series:
    (i,) = np.flatnonzero((df["unit"] == unit) & (df["indicator"] == indicator))
    return df.iloc[i]


def test_majority_with_tie_to_lower_level() -> None:
    df = consensus(CODES, "majority")
    assert len(df) == 4
    a = pick(df, "A")
    assert (a.status, a.level, a.value, a.n_coders, a.tie, a.basis) == (
        "observed", "strong", 2.0, 3, False, "majority")
    b = pick(df, "B")   # strong vs weak: tie -> weak (the lower level); adjudication ignored
    assert (b.level, b.value, b.tie, b.basis, b.n_coders) == ("weak", 0.0, True, "tie", 2)
    c = pick(df, "C")
    assert (c.level, c.n_coders, c.basis) == ("weak", 3, "majority")
    d = pick(df, "A", "density")
    assert d.value == pytest.approx(0.3) and pd.isna(d.level) and d.basis == "mean"
    # sorted: codebook order, unit, wave
    assert df[["indicator", "unit"]].values.tolist() == [
        ["support", "A"], ["support", "B"], ["support", "C"], ["density", "A"]]


def test_uncertain_keeps_vote_shares() -> None:
    df = consensus(CODES, "uncertain")
    a = pick(df, "A")
    assert a.status == "uncertain" and np.isnan(a.value) and pd.isna(a.level)
    assert a.probs == pytest.approx((0.0, 1 / 3, 2 / 3))
    b = pick(df, "B")
    assert b.probs == pytest.approx((0.5, 0.0, 0.5))
    unanimous = consensus(make_codes([("A", "support", "weak", 0, "x"),
                                      ("A", "support", "weak", 0, "y")]), "uncertain").iloc[0]
    assert (unanimous.status, unanimous.level, unanimous.probs) == ("observed", "weak", None)
    assert pick(df, "A", "density").value == pytest.approx(0.3)


def test_adjudicated_then_majority() -> None:
    df = consensus(CODES, "adjudicated")
    b = pick(df, "B")
    assert (b.level, b.basis, b.tie) == ("moderate", "adjudicated", False)
    a = pick(df, "A")
    assert (a.level, a.basis) == ("strong", "majority")     # no adjudication row: majority


def test_coder_rule_with_fallback() -> None:
    df = consensus(CODES, "coder:y")
    assert pick(df, "A").level == "strong" and pick(df, "A").basis == "coder"
    assert pick(df, "B").level == "weak"
    assert pick(df, "C").level == "moderate"
    assert pick(df, "A", "density").value == pytest.approx(0.4)
    z = consensus(CODES, "coder:z")
    b = pick(z, "B")          # z did not code B: majority of the others (a tie -> weak)
    assert (b.level, b.basis) == ("weak", "fallback_tie")


def test_coders_and_bad_rules() -> None:
    assert coders(CODES) == ["x", "y", "z"]
    with pytest.raises(ConfigError) as info:
        consensus(CODES, "coder:yy")
    assert info.value.problems[0].rule == "indicator_consensus_invalid"
    assert "did you mean 'y'" in info.value.problems[0].message
    with pytest.raises(ConfigError):
        consensus(CODES, "vote")


def test_only_adjudicated_rows_count_when_no_coder_coded() -> None:
    codes = make_codes([("A", "support", "moderate", None, "consensus")])
    row = consensus(codes, "majority").iloc[0]
    assert (row.level, row.basis) == ("moderate", "adjudicated")
