"""Tests of reading analysts' files (qicstats.data.read_table)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qicstats.data import read_table
from qicstats.errors import DataValidationError, QicstatsError

DATA = Path(__file__).parent / "data" / "validate"


def _rule(err: DataValidationError) -> str:
    assert len(err.problems) == 1
    return err.problems[0].rule


def test_plain_utf8_comma():
    df = read_table(DATA / "panel.csv")
    assert list(df.columns) == ["unit", "period", "numerator", "denominator"]
    assert len(df) == 72
    assert df["numerator"].dtype == np.int64
    assert df.iloc[0].tolist() == ["U1", "2023-01", 3, 20]


def test_danish_excel_cp1252_semicolon_decimal_comma_crlf():
    df = read_table(DATA / "danish_cp1252.csv")
    assert list(df.columns) == ["afdeling", "periode", "antal", "rate"]
    assert df["afdeling"].tolist() == ["Kirurgi Ø", "Kirurgi Ø", "Medicin Å"]
    assert df["antal"].tolist() == [3, 4, 5]
    assert df["rate"].tolist() == [0.25, 1234.5, 0.5]


def test_bom_crlf_tab():
    df = read_table(DATA / "bom_crlf_tab.tsv")
    assert list(df.columns) == ["unit", "period", "value"]
    assert df["value"].tolist() == [1.5, 2.0]
    assert df["period"].tolist() == ["2023-Q1", "2023-Q2"]


def test_pipe_blank_rows_dropped_index_keeps_file_lines_and_leading_zeros():
    df = read_table(DATA / "pipe_leading_zero.txt")
    assert df["id"].tolist() == ["007", "010"]  # identifiers stay text
    assert df.index.tolist() == [0, 2]  # data row 2 (file line 4) after the blank line
    assert df["count"].tolist() == [3, 4]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1252", "latin-1", "utf-16"])
@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
def test_delimiters_and_encodings(tmp_path, encoding, sep):
    text = sep.join([" unit ", "period", "numerator"]) + "\r\n"
    text += sep.join(["Århus sygehus", "2024-01", "5"]) + "\r\n"
    text += sep.join(["Næstved", "2024-02", "7"]) + "\r\n"
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode(encoding))
    df = read_table(path)
    assert list(df.columns) == ["unit", "period", "numerator"]
    assert df["unit"].tolist() == ["Århus sygehus", "Næstved"]
    assert df["numerator"].tolist() == [5, 7]


def test_missing_tokens_and_mixed_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("unit,x,y\nA,1,NA\nB,,2\nC,3,abc\n")
    df = read_table(path)
    assert df["x"].dtype == np.float64 and np.isnan(df["x"][1])
    assert df["y"].tolist()[1:] == ["2", "abc"] and pd.isna(df["y"][0])


def test_quoted_fields_with_delimiters(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('unit,note\n"A, ward 3","said ""hi"""\nB,x\n')
    df = read_table(path)
    assert df["unit"].tolist() == ["A, ward 3", "B"]
    assert df["note"].tolist() == ['said "hi"', "x"]


def test_excel_and_sheet_option(tmp_path):
    path = tmp_path / "book.xlsx"
    first = pd.DataFrame({"unit": ["A", "B"], "period": pd.to_datetime(["2024-01-01",
                                                                        "2024-02-01"])})
    second = pd.DataFrame({" unit ": ["C"], "numerator": [3]})
    with pd.ExcelWriter(path) as xw:
        first.to_excel(xw, sheet_name="panel", index=False)
        second.to_excel(xw, sheet_name="other", index=False)
    df = read_table(path)
    assert df["unit"].tolist() == ["A", "B"]
    assert pd.api.types.is_datetime64_any_dtype(df["period"])
    other = read_table(path, sheet="other")
    assert list(other.columns) == ["unit", "numerator"]
    assert other["numerator"].tolist() == [3]
    assert read_table(path, sheet=1).shape == (1, 2)
    with pytest.raises(QicstatsError, match="no sheet 'nope'.*panel"):
        read_table(path, sheet="nope")


def test_parquet_and_mislabelled_parquet(tmp_path):
    df = pd.DataFrame({"unit": ["A", "B"], "period": pd.period_range("2024-01", periods=2,
                                                                     freq="M").astype(str),
                       "count": [1, 2]})
    path = tmp_path / "p.parquet"
    df.to_parquet(path)
    back = read_table(path)
    assert back["count"].tolist() == [1, 2]
    wrong = tmp_path / "p.csv"
    wrong.write_bytes(path.read_bytes())
    assert read_table(wrong)["unit"].tolist() == ["A", "B"]


@pytest.mark.parametrize("name, rule", [
    ("empty.csv", "empty_file"),
    ("header_only.csv", "empty_file"),
    ("garbage.csv", "not_tabular"),
    ("prose.csv", "not_tabular"),
    ("ragged.csv", "not_tabular"),
])
def test_broken_files(name, rule):
    with pytest.raises(DataValidationError) as info:
        read_table(DATA / name)
    assert _rule(info.value) == rule
    assert name in info.value.problems[0].file
    assert name in str(info.value)


def test_blank_rows_only_is_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("unit;period\n;\n\n;\n")
    with pytest.raises(DataValidationError) as info:
        read_table(path)
    assert _rule(info.value) == "empty_file"


def test_corrupt_excel_and_parquet(tmp_path):
    x = tmp_path / "bad.xlsx"
    x.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataValidationError) as info:
        read_table(x)
    assert _rule(info.value) == "not_tabular"
    q = tmp_path / "bad.parquet"
    q.write_bytes(b"PAR1 truncated")
    with pytest.raises(DataValidationError) as info:
        read_table(q)
    assert _rule(info.value) == "not_tabular"


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere" / "panel.csv"
    with pytest.raises(QicstatsError, match="panel.csv") as info:
        read_table(path)
    assert not isinstance(info.value, DataValidationError)
    assert str(path) in str(info.value)


def test_reading_never_changes_the_file():
    for name in ("danish_cp1252.csv", "bom_crlf_tab.tsv", "panel.csv"):
        path = DATA / name
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        read_table(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before
