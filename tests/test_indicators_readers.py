"""Readers of coding exports: long tables, classification sheets, coding matrices, mappings."""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
import pytest

from qicstats.data.columns import ColumnMap
from qicstats.errors import DataValidationError
from qicstats.indicators import (
    CODE_COLUMNS,
    load_codebook,
    read_classification_sheet,
    read_coding_matrix,
    read_long,
    read_mapping,
)

DATA = Path(__file__).parent / "data" / "indicators"


@pytest.fixture()
def cb():
    return load_codebook(DATA / "codebook.yaml")


def rows(df: pd.DataFrame, *cols: str) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in r)
            for r in df[list(cols)].itertuples(index=False)]


def test_read_long_semicolon_csv() -> None:
    df = read_long(DATA / "long.csv")
    assert tuple(df.columns) == CODE_COLUMNS
    assert len(df) == 8
    assert rows(df.head(4), "unit", "indicator", "value", "wave", "coder", "line") == [
        ("Ward 1", "management_support", "Strong", "2024-01", "AB", 2),
        ("Ward 1", "management_support", "high", "2024-01", "CD", 3),
        ("Ward 1", "management_support", "moderate", "2024-04", "AB", 4),
        ("Ward 2", "management_support", "low", None, "AB", 5),
    ]
    assert set(df["source"]) == {str(DATA / "long.csv")}


def test_read_long_dataframe_with_column_map_does_not_modify_input() -> None:
    raw = pd.DataFrame({"afdeling": ["A", "B"], "indikator": ["x", "x"], "kode": ["ja", "nej"],
                        "bølge": [3, None]})
    before = raw.copy()
    df = read_long(raw, ColumnMap(unit="afdeling", indicator="indikator",
                                  indicator_value="kode", wave="bølge"))
    pd.testing.assert_frame_equal(raw, before)
    assert rows(df, "unit", "indicator", "value", "wave", "coder", "line") == [
        ("A", "x", "ja", "3", None, 2), ("B", "x", "nej", None, None, 3)]
    # a mapping dict works too
    df2 = read_long(raw, {"unit": "afdeling", "indicator": "indikator",
                          "indicator_value": "kode", "wave": "bølge"})
    pd.testing.assert_frame_equal(df, df2)


def test_read_long_missing_columns_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError) as info:
        read_long(pd.DataFrame({"unit": ["A"], "code": ["x"]}))
    (p,) = info.value.problems
    assert p.rule == "indicator_columns_missing"
    assert "indicator" in p.message and "value" in p.message
    with pytest.raises(DataValidationError) as info:
        read_long(tmp_path / "nope.csv")
    assert info.value.problems[0].rule == "indicator_file_unreadable"


def test_read_mapping(tmp_path: Path) -> None:
    assert read_mapping(DATA / "mapping.csv") == {
        "W1 (interview 2024)": "Ward 1", "W2 (interview 2024)": "Ward 2",
        "W3 (interview 2024)": "Ward 3"}
    f = tmp_path / "m.csv"
    f.write_text("case,unit\nx,Ward 1\nx,Ward 2\ny,\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_mapping(f)
    probs = {p.message: p for p in info.value.problems}
    clash = probs["a case is mapped to more than one unit"]
    assert clash.examples == ("line 3: 'x' -> 'Ward 2' (before: 'Ward 1')",)
    assert probs["rows with a case but no unit (or the reverse)"].examples == ("line 4",)
    g = tmp_path / "g.csv"
    g.write_text("name,ward\nx,y\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_mapping(g)
    assert info.value.problems[0].rule == "indicator_columns_missing"


def test_nvivo_classification_sheet_csv(cb) -> None:
    with pytest.warns(UserWarning, match="'Interviewee role'"):
        df = read_classification_sheet(DATA / "nvivo_classification.csv", cb,
                                       mapping=DATA / "mapping.csv", wave="2024-01")
    assert rows(df, "unit", "indicator", "value", "wave", "coder", "line") == [
        ("Ward 1", "management_support", "High", "2024-01", "AB", 2),
        ("Ward 1", "coordinator_active", "Yes", "2024-01", "AB", 2),
        ("Ward 2", "coordinator_active", "No", "2024-01", "AB", 3),   # "Unassigned" skipped
        ("Ward 3", "management_support", "medium", "2024-01", "CD", 4),
    ]
    assert df.attrs["ignored_columns"] == ["Interviewee role"]


def test_nvivo_classification_sheet_xlsx(cb) -> None:
    with pytest.warns(UserWarning, match="'Interviewee role'"):
        df = read_classification_sheet(DATA / "nvivo_classification.xlsx", cb,
                                       mapping={"W1 (interview 2024)": "Ward 1",
                                                "W2 (interview 2024)": "Ward 2"})
    # Excel dates in the Wave column become ISO dates; numbers lose the '.0'; unmapped case
    # names are kept (check_indicators reports them with suggestions)
    assert rows(df, "unit", "indicator", "value", "wave", "coder", "line") == [
        ("Ward 1", "management_support", "High", "2024-01-01", "AB", 2),
        ("Ward 1", "coordinator_active", "Yes", "2024-01-01", "AB", 2),
        ("Ward 2", "coordinator_active", "No", "2024-01-01", "AB", 3),
        ("W3 (interview 2024)", "management_support", "2", "2024-01-01", "CD", 4),
        ("Ward 1", "management_support", "low", "2024-04-01", "AB", 5),
        ("Ward 1", "coordinator_active", "Yes", "2024-04-01", "AB", 5),
    ]


def test_classification_sheet_case_column_and_errors(cb, tmp_path: Path) -> None:
    f = tmp_path / "sheet.csv"
    f.write_text("Role,Case,Management support\nnurse,Ward 1,high\nnurse,,low\n",
                 encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_classification_sheet(f, cb, case_column="Case")
    (p,) = info.value.problems
    assert p.rule == "indicator_case_missing" and p.examples == ("line 3",)
    with pytest.raises(DataValidationError) as info:
        read_classification_sheet(f, cb, case_column="Ward")
    assert info.value.problems[0].rule == "indicator_columns_missing"
    g = tmp_path / "other.csv"
    g.write_text("Name,Age\nWard 1,3\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_classification_sheet(g, cb)
    assert "no column of the sheet matches" in info.value.problems[0].message


def test_classification_sheet_matches_codebook_labels(cb, tmp_path: Path) -> None:
    # coordinator_active: label "Active QI coordinator", source "Implementation\Coordinator
    # active"; data_feedback: label "Data feedback culture", no source
    f = tmp_path / "labels.csv"
    f.write_text("Case,  active QI   COORDINATOR ,DATA FEEDBACK CULTURE,management_support\n"
                 "Ward 1,yes,regular,high\nWard 2,no,,low\n", encoding="utf-8")
    before = f.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every column matched: no warning
        df = read_classification_sheet(f, cb)
    assert rows(df, "unit", "indicator", "value", "line") == [
        ("Ward 1", "coordinator_active", "yes", 2),
        ("Ward 1", "data_feedback", "regular", 2),
        ("Ward 1", "management_support", "high", 2),
        ("Ward 2", "coordinator_active", "no", 3),
        ("Ward 2", "management_support", "low", 3),
    ]
    assert df.attrs["ignored_columns"] == []
    assert f.read_bytes() == before
    # a source or name wins over another indicator's label
    g = tmp_path / "clash.csv"
    g.write_text("Case,Leadership,Data feedback culture\nWard 1,0.5,rare\n", encoding="utf-8")
    cb2 = load_codebook({"indicators": {
        "leadership_talk": {"type": "continuous", "source": "Leadership"},
        "climate": {"type": "continuous", "label": "Leadership"},
        "data_feedback": {"type": "ordinal", "levels": ["rare", "regular"],
                          "label": "Data feedback culture"}}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df2 = read_classification_sheet(g, cb2)
    assert rows(df2, "indicator", "value") == [("leadership_talk", 0.5),
                                               ("data_feedback", "rare")]


def test_classification_sheet_warns_about_ignored_columns(cb, tmp_path: Path) -> None:
    f = tmp_path / "typos.csv"
    f.write_text("Case,Managment support,Coordinator active,Region,Wave,Coder\n"
                 "Ward 1,high,yes,North,2024-01,AB\n", encoding="utf-8")
    with pytest.warns(UserWarning) as record:
        df = read_classification_sheet(f, cb)
    (w,) = [r for r in record if issubclass(r.category, UserWarning)]
    msg = str(w.message)
    assert msg.startswith(f"{f}: 2 column(s) of the classification sheet match no indicator")
    assert "ignored: 'Managment support', 'Region'." in msg
    assert "`source:`" in msg and "rename the column" in msg
    assert w.filename == __file__  # points at the caller, not at the reader
    # wave and coder columns are used, not ignored; the misspelt column loses its codes
    assert df.attrs["ignored_columns"] == ["Managment support", "Region"]
    assert rows(df, "unit", "indicator", "value", "wave", "coder") == [
        ("Ward 1", "coordinator_active", "yes", "2024-01", "AB")]


def test_maxqda_coding_matrix_xlsx(cb) -> None:
    df = read_coding_matrix(DATA / "maxqda_matrix.xlsx", cb, mapping=DATA / "mapping.csv",
                            wave="2024-02", coder="AB")
    got = {(r.unit, r.indicator): r.value for r in df.itertuples()}
    assert got == {
        # binary: count >= threshold (2 in the codebook); the empty cell counts 0
        ("Ward 1", "coordinator_active"): "yes", ("Ward 2", "coordinator_active"): "no",
        ("Ward 3", "coordinator_active"): "no",
        # continuous: coding density = count / the Total column
        ("Ward 1", "leadership_talk"): 0.2, ("Ward 2", "leadership_talk"): 0.0,
        ("Ward 3", "leadership_talk"): 0.5,
        # ordinal: the count as text (map it with aliases)
        ("Ward 1", "management_support"): "1", ("Ward 2", "management_support"): "3",
        ("Ward 3", "management_support"): "2",
    }
    assert set(df["wave"]) == {"2024-02"} and set(df["coder"]) == {"AB"}
    assert sorted(set(df["line"])) == [2, 3, 4]      # the Total row is not a case
    assert df.attrs["transposed"] is False


def test_transposed_coding_matrix_csv_without_total_column(cb, tmp_path: Path) -> None:
    df = read_coding_matrix(DATA / "maxqda_matrix_transposed.csv", cb,
                            mapping=DATA / "mapping.csv")
    assert df.attrs["transposed"] is True
    got = {(r.unit, r.indicator): r.value for r in df.itertuples()}
    assert got == {("Ward 1", "coordinator_active"): "yes", ("Ward 1", "leadership_talk"): 0.2,
                   ("Ward 2", "coordinator_active"): "no", ("Ward 2", "leadership_talk"): 0.0,
                   ("Ward 3", "coordinator_active"): "no", ("Ward 3", "leadership_talk"): 0.5}
    # without a total column the density divides by the sum over all codes; all-zero cases
    # are not coded
    f = tmp_path / "m.csv"
    f.write_text("case,Leadership,Other\nWard 1,1,3\nWard 2,0,0\n", encoding="utf-8")
    df = read_coding_matrix(f, cb)
    assert rows(df, "unit", "indicator", "value") == [("Ward 1", "leadership_talk", 0.25)]
    assert df.attrs["uncoded_cases"] == ["Ward 2"]


def test_coding_matrix_non_numeric_counts(cb, tmp_path: Path) -> None:
    f = tmp_path / "m.csv"
    f.write_text("case,Leadership,Other\nWard 1,many,3\nWard 2,2,x\n", encoding="utf-8")
    with pytest.raises(DataValidationError) as info:
        read_coding_matrix(f, cb)
    (p,) = info.value.problems      # 'Other' is not an indicator: its text is not checked
    assert p.rule == "indicator_value_not_numeric" and p.column == "Leadership"
    assert p.examples == ("line 2 (Ward 1): 'many'",)
