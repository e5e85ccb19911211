"""encode(): cells partitioning each unit's timeline, carry-back, sites, continuous scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qicstats.errors import ConfigError, ModelSpecError
from qicstats.indicators import IndicatorMatrix, encode, load_codebook, load_indicators

CB = load_codebook({"indicators": {
    "support": {"type": "ordinal", "levels": ["weak", "moderate", "strong"], "role": "moderator",
                "label": "Management support"},
    "coord": {"type": "binary", "levels": ["no", "yes"], "role": "both", "carry_back": False},
    "talk": {"type": "continuous", "role": "main"},
    "feedback": {"type": "binary", "describes": "site"},
}})
from _indicator_panel import make_panel  # noqa: E402

PANEL = make_panel()


def load(rows: list[tuple]) -> object:
    df = pd.DataFrame(rows, columns=["unit", "indicator", "value", "wave", "coder"])
    return load_indicators(df, CB, PANEL)


HAND = [
    ("Ward 1", "support", "weak", "2024-02", "x"), ("Ward 1", "support", "strong", "2024-05", "x"),
    ("Ward 2", "support", "moderate", "2024-01", "x"),
    ("Ward 2", "support", "moderate", "2024-04", "x"),
    ("Ward 1", "coord", "yes", "2024-03", "x"), ("Ward 1", "coord", "no", "2024-05", "x"),
    ("Ward 2", "coord", "no", "2024-01", "x"), ("Ward 2", "coord", "yes", "2024-06", "x"),
    ("Ward 3", "coord", "yes", "2024-02", "x"), ("Ward 3", "coord", "no", "2024-02", "y"),
    ("Ward 3", "coord", "yes", "2024-04", "x"),
]


def cells_of(m: IndicatorMatrix, indicator: str | None = None) -> list[tuple]:
    c = m.cells if indicator is None else m.cells[m.cells["indicator"] == indicator]
    return [(r.unit, r.indicator, r.t_start, r.t_end, r.status,
             None if np.isnan(r.value) else r.value, None if pd.isna(r.wave) else r.wave)
            for r in c.itertuples()]


def test_hand_made_three_units_two_indicators_two_waves() -> None:
    m = encode(load(HAND), PANEL, indicators=["support", "coord"])
    assert isinstance(m, IndicatorMatrix) and m.n_periods == 6 and m.consensus == "majority"
    assert m.names == ["support", "coord"]
    assert cells_of(m) == [
        # support (carry_back): the first wave also holds before it
        ("Ward 1", "support", 0, 3, "observed", 0.0, "2024-02"),
        ("Ward 1", "support", 4, 5, "observed", 2.0, "2024-05"),
        ("Ward 2", "support", 0, 2, "observed", 1.0, "2024-01"),
        ("Ward 2", "support", 3, 5, "observed", 1.0, "2024-04"),
        ("Ward 3", "support", 0, 5, "missing", None, None),          # never coded
        # coord (carry_back: false): before the first wave is missing
        ("Ward 1", "coord", 0, 1, "missing", None, None),
        ("Ward 1", "coord", 2, 3, "observed", 1.0, "2024-03"),
        ("Ward 1", "coord", 4, 5, "observed", 0.0, "2024-05"),
        ("Ward 2", "coord", 0, 4, "observed", 0.0, "2024-01"),
        ("Ward 2", "coord", 5, 5, "observed", 1.0, "2024-06"),
        ("Ward 3", "coord", 0, 0, "missing", None, None),
        ("Ward 3", "coord", 1, 2, "observed", 0.0, "2024-02"),        # x yes / y no: tie -> no
        ("Ward 3", "coord", 3, 5, "observed", 1.0, "2024-04"),
    ]
    assert m.cells["tie"].tolist() == [False] * 11 + [True, False]
    assert m.cells["probs"].isna().all()
    sup = m.get("support")
    assert (sup.type, sup.levels, sup.role, sup.label) == (
        "ordinal", ("weak", "moderate", "strong"), "moderator", "Management support")
    assert m.get("coord").is_main and m.get("coord").is_moderator
    assert m.n_imputed().to_dict() == {"support": 1, "coord": 2}
    # two coders -> the agreement table is attached
    assert m.agreement is not None and m.agreement["indicator"].tolist() == ["support", "coord"]
    assert m.agreement.set_index("indicator").loc["coord", "n_double_coded"] == 1


def test_unit_period_frame_on_the_result() -> None:
    m = encode(load(HAND), PANEL, indicators=["support", "coord"])
    wide = m.unit_period_frame()
    assert list(wide.columns) == ["unit", "t", "coord", "support", "coord_status",
                                  "support_status"]
    assert len(wide) == 18
    w1 = wide[wide["unit"] == "Ward 1"]
    assert w1["support"].tolist() == ["weak"] * 4 + ["strong"] * 2
    assert w1["coord_status"].tolist() == ["missing"] * 2 + ["observed"] * 4
    assert w1["coord"].tolist()[2:] == ["yes", "yes", "no", "no"]


def test_every_unit_gets_a_partition_of_the_grid() -> None:
    m = encode(load(HAND[:2] + HAND[4:5]), PANEL, indicators=["support", "coord"])
    for (unit, ind), grp in m.cells.groupby(["unit", "indicator"]):
        covered = [t for r in grp.itertuples() for t in range(r.t_start, r.t_end + 1)]
        assert covered == list(range(6)), (unit, ind)
    assert set(m.cells["unit"]) == {"Ward 1", "Ward 2", "Ward 3"}
    assert m.agreement is None                       # one coder: no agreement table


def test_waves_outside_the_grid_are_clipped() -> None:
    rows = [
        ("Ward 1", "support", "weak", "2023-10", "x"),       # before the data: from t = 0
        ("Ward 1", "support", "strong", "2023-12", "x"),     # later wave, still before: wins
        ("Ward 1", "support", "moderate", "2024-03", "x"),
        ("Ward 2", "support", "strong", "2024-09", "x"),     # after the data, carried back
        ("Ward 2", "coord", "yes", "2024-09", "x"),          # after the data, no carry-back
        ("Ward 3", "support", "weak", None, "x"),            # no wave = from the start
        ("Ward 3", "support", "strong", "2024-06", "x"),
    ]
    m = encode(load(rows), PANEL, indicators=["support", "coord"])
    assert cells_of(m, "support") == [
        ("Ward 1", "support", 0, 1, "observed", 2.0, "2023-12"),
        ("Ward 1", "support", 2, 5, "observed", 1.0, "2024-03"),
        ("Ward 2", "support", 0, 5, "observed", 2.0, "2024-09"),
        ("Ward 3", "support", 0, 4, "observed", 0.0, None),
        ("Ward 3", "support", 5, 5, "observed", 2.0, "2024-06"),
    ]
    assert cells_of(m, "coord")[1] == ("Ward 2", "coord", 0, 5, "missing", None, None)


def test_site_codes_apply_to_all_units_of_the_site() -> None:
    m = encode(load([("North", "feedback", "yes", "2024-02", "x")]), PANEL)
    assert cells_of(m) == [
        ("Ward 1", "feedback", 0, 5, "observed", 1.0, "2024-02"),
        ("Ward 2", "feedback", 0, 5, "observed", 1.0, "2024-02"),
        ("Ward 3", "feedback", 0, 5, "missing", None, None),
    ]


def test_continuous_center_and_scale() -> None:
    m = encode(load([("Ward 1", "talk", "0.2", None, "x"), ("Ward 2", "talk", "0,4", None, "x")]),
               PANEL)
    talk = m.get("talk")
    assert talk.center == pytest.approx(0.3)
    assert talk.scale == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert cells_of(m) == [("Ward 1", "talk", 0, 5, "observed", 0.2, None),
                           ("Ward 2", "talk", 0, 5, "observed", 0.4, None),
                           ("Ward 3", "talk", 0, 5, "missing", None, None)]
    one = encode(load([("Ward 1", "talk", "0.2", None, "x")]), PANEL).get("talk")
    assert (one.center, one.scale) == (pytest.approx(0.2), 1.0)


def test_uncertain_consensus_gives_uncertain_cells() -> None:
    m = encode(load(HAND), PANEL, consensus="uncertain", indicators=["coord"])
    cell = m.cells[(m.cells["unit"] == "Ward 3") & (m.cells["t_start"] == 1)].iloc[0]
    assert cell.status == "uncertain" and np.isnan(cell.value)
    assert cell.probs == pytest.approx((0.5, 0.5))
    assert m.consensus == "uncertain"
    wide = m.unit_period_frame()
    assert wide.loc[(wide["unit"] == "Ward 3") & (wide["t"] == 1), "coord_status"].item() == \
        "uncertain"
    # per-coder sensitivity: coder y's code where y coded
    y = encode(load(HAND), PANEL, consensus="coder:y", indicators=["coord"])
    assert y.cells[(y.cells["unit"] == "Ward 3")]["value"].tolist()[1:] == [0.0, 1.0]


def test_indicator_selection_errors() -> None:
    codes = load(HAND)
    with pytest.raises(ConfigError) as info:
        encode(codes, PANEL, indicators=["suport"])
    assert "did you mean 'support'" in info.value.problems[0].message
    with pytest.raises(ModelSpecError):
        encode(codes, PANEL, indicators=["talk"])
    assert encode(codes, PANEL).names == ["support", "coord"]    # default: those with codes
