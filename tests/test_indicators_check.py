"""check_indicators / load_indicators: one test per rule, and the normalised result."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from _indicator_panel import make_panel  # noqa: E402

from qicstats.data.panel import PanelData
from qicstats.errors import DataValidationError
from qicstats.indicators import (
    IndicatorCodes,
    check_indicators,
    load_codebook,
    load_indicators,
    read_classification_sheet,
    read_long,
)

DATA = Path(__file__).parent / "data" / "indicators"




@pytest.fixture()
def panel() -> PanelData:
    return make_panel()


@pytest.fixture()
def cb():
    return load_codebook(DATA / "codebook.yaml")


def codes(*rows: tuple) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["unit", "indicator", "value", "wave", "coder"])


def rules(problems) -> list[str]:
    return sorted(p.rule for p in problems if p.severity == "error")


def test_clean_fixture_is_normalised(cb, panel) -> None:
    result, problems = check_indicators(DATA / "long.csv", cb, panel)
    assert problems == []
    assert isinstance(result, IndicatorCodes)
    t = result.table
    assert list(t.columns) == ["unit", "indicator", "level", "value", "wave", "wave_t", "coder",
                               "source", "line"]
    first = t.iloc[0]
    assert (first.unit, first.indicator, first.level, first.value, first.wave, first.wave_t,
            first.coder, first.line) == ("Ward 1", "management_support", "strong", 2.0,
                                         "2024-01", 0.0, "AB", 2)
    ward2 = t[(t.unit == "Ward 2") & (t.indicator == "management_support")]
    assert ward2["level"].tolist() == ["weak", "moderate"]         # aliases low / "2"
    assert ward2["wave"].isna().all() and ward2["wave_t"].isna().all()
    assert t.loc[t.indicator == "coordinator_active", "value"].tolist() == [1.0]   # "ja"
    cont = t[t.indicator == "leadership_talk"]
    assert cont["value"].tolist() == [0.25] and cont["level"].isna().all()
    site = t[t.indicator == "data_feedback"]
    assert site["unit"].tolist() == ["North"] and site["wave_t"].tolist() == [1.0]
    assert result.coders() == ["AB", "CD"]
    assert result.indicators == cb.names


def test_rule_indicator_value_invalid(cb, panel) -> None:
    _, problems = check_indicators(codes(("Ward 1", "management_support", "very high", None,
                                          "AB")), cb, panel)
    (p,) = problems
    assert p.rule == "indicator_value_invalid"
    assert p.examples == ("line 2: 'very high'",)
    # the message lists the levels and their aliases
    assert "weak (also low, 1); moderate (also medium, 2); strong (also high, 3)" in p.message


def test_rule_indicator_not_in_codebook(cb, panel) -> None:
    _, problems = check_indicators(codes(("Ward 1", "management_suport", "high", None, "AB")),
                                   cb, panel)
    (p,) = problems
    assert p.rule == "indicator_not_in_codebook"
    assert "did you mean 'management_support'" in p.message and p.examples == ("line 2",)


def test_rule_indicator_unknown_unit(cb, panel) -> None:
    df = codes(("ward 1", "management_support", "high", None, "AB"),
               ("Ward 9", "management_support", "high", None, "AB"),
               ("Nort", "data_feedback", "rare", None, "AB"))
    _, problems = check_indicators(df, cb, panel)
    assert rules(problems) == ["indicator_unknown_unit", "indicator_unknown_unit"]
    by_msg = {p.message: p for p in problems}
    units = by_msg["codes for units that are not in the panel"]
    assert units.count == 2
    assert units.examples[0].startswith("line 2: 'ward 1' (did you mean 'Ward 1'")
    assert units.examples[1] == "line 3: 'Ward 9' (did you mean 'Ward 3' or 'Ward 2' or 'Ward 1'?)"
    sites = by_msg["codes for sites that are not in the units table"]
    assert sites.examples == ("line 4: 'Nort' (did you mean 'North'?)",)


def test_rule_unknown_unit_from_unmapped_sheet_case(cb, panel) -> None:
    with pytest.warns(UserWarning, match="Interviewee role"):  # an unused attribute column
        sheet = read_classification_sheet(DATA / "nvivo_classification.csv", cb)  # no mapping
    _, problems = check_indicators(sheet, cb, panel)
    (p,) = problems
    assert p.rule == "indicator_unknown_unit" and p.file.endswith("nvivo_classification.csv")
    assert p.count == 4


def test_rule_malformed_codebook(panel) -> None:
    bad = {"indicators": {"management_support": {"type": "ordinal"},
                          "coordinator_active": {"type": "binary"}}}
    df = codes(("Ward 1", "management_support", "high", None, "AB"),
               ("Ward 1", "coordinator_active", "yes", None, "AB"))
    result, problems = check_indicators(df, bad, panel)
    # codes of the malformed indicator are not reported again as "not in the codebook"
    assert rules(problems) == ["malformed_codebook"]
    assert result.table["indicator"].tolist() == ["coordinator_active"]


def test_rule_indicator_wave_invalid(cb, panel) -> None:
    df = codes(("Ward 1", "management_support", "high", "spring", "AB"),
               ("Ward 2", "management_support", "high", "2024-Q2", "AB"),   # quarter, not month
               ("Ward 3", "management_support", "high", "2024-03-15", "AB"))  # a date is fine
    result, problems = check_indicators(df, cb, panel)
    (p,) = problems
    assert p.rule == "indicator_wave_invalid" and p.count == 2
    assert p.examples == ("line 2: 'spring'", "line 3: '2024-Q2'")
    assert result.table[["unit", "wave", "wave_t"]].values.tolist() == [
        ["Ward 3", "2024-03", 2.0]]


def test_rule_indicator_conflicting_codes(cb, panel) -> None:
    df = codes(("Ward 1", "management_support", "high", "2024-01", "AB"),
               ("Ward 1", "management_support", "low", "2024-01", "AB"),
               ("Ward 1", "management_support", "strong", "2024-01", "AB"),  # same as 'high'
               ("Ward 1", "management_support", "low", "2024-01", "CD"))     # other coder: fine
    _, problems = check_indicators(df, cb, panel)
    assert rules(problems) == ["indicator_conflicting_codes"]
    p = next(p for p in problems if p.rule == "indicator_conflicting_codes")
    assert p.count == 3
    assert p.examples[0] == ("line 2: Ward 1 / management_support / wave 2024-01 / coder AB = "
                             "strong")


def test_rule_indicator_value_not_numeric(cb, panel) -> None:
    df = codes(("Ward 1", "leadership_talk", "a lot", None, "AB"),
               ("Ward 2", "leadership_talk", "0,4", None, "AB"))
    result, problems = check_indicators(df, cb, panel)
    (p,) = problems
    assert p.rule == "indicator_value_not_numeric" and p.examples == ("line 2: 'a lot'",)
    assert result.table["value"].tolist() == [0.4]


def test_rule_indicator_columns_missing(cb, panel) -> None:
    result, problems = check_indicators(pd.DataFrame({"unit": ["Ward 1"], "code": ["x"]}),
                                        cb, panel)
    (p,) = problems
    assert p.rule == "indicator_columns_missing"
    assert "'indicator'" in p.message and "'value'" in p.message
    assert result.table.empty


def test_warnings_do_not_block(cb, panel) -> None:
    df = codes(("Ward 1", "management_support", None, None, "AB"),          # empty value
               ("Ward 1", "coordinator_active", "yes", "2023-11", "AB"),    # before the data
               ("Ward 2", "coordinator_active", "yes", None, "AB"),
               ("Ward 2", "coordinator_active", "Yes", None, "AB"))         # identical repeat
    result, problems = check_indicators(df, cb, panel)
    assert rules(problems) == []
    assert sorted(p.rule for p in problems) == [
        "indicator_duplicate_codes", "indicator_value_empty", "indicator_wave_outside_grid"]
    assert len(result.table) == 2
    assert result.table["wave_t"].tolist()[0] == -2.0


def test_load_indicators_raises_all_errors_at_once(cb, panel, tmp_path: Path) -> None:
    df = codes(("Ward 1", "management_support", "very high", None, "AB"),
               ("Ward 9", "coordinator_active", "yes", None, "AB"))
    with pytest.raises(DataValidationError) as info:
        load_indicators(df, cb, panel)
    assert sorted(p.rule for p in info.value.problems) == [
        "indicator_unknown_unit", "indicator_value_invalid"]
    ok = load_indicators([read_long(DATA / "long.csv"), df.iloc[:0]], cb, panel)
    assert len(ok.table) == 8
    # a missing file is a problem, not a traceback
    _, problems = check_indicators(tmp_path / "absent.csv", cb, panel)
    assert [p.rule for p in problems] == ["indicator_file_unreadable"]


def test_column_map_and_input_not_modified(cb, panel) -> None:
    raw = pd.DataFrame({"afdeling": ["Ward 1"], "indikator": ["coordinator_active"],
                        "kode": ["nej"]})
    before = raw.copy()
    result, problems = check_indicators(raw, cb, panel, columns={
        "unit": "afdeling", "indicator": "indikator", "indicator_value": "kode"})
    assert problems == [] and result.table["level"].tolist() == ["no"]
    pd.testing.assert_frame_equal(raw, before)
