"""Hostile data files (issue 17): duplicate headers, one column for two roles, absurd counts,
data that carry no information, files that are not files, invisible characters, messages that
name the unit, period and value, Latin-1 codebooks.

Each case asserts the exact rule id (and what the message must name) and that every input
file is byte-identical afterwards; none samples.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _hostile import FIXTURES, Untouched, rule_of

from qicstats.data import read_table, validate
from qicstats.errors import ConfigError, DataValidationError, Problem, QicstatsError

LEVELS = ("collaborative", "site")


@pytest.fixture
def files(tmp_path) -> Path:
    """A scratch copy of the fixture panel and units table."""
    for f in ("panel.csv", "units.csv"):
        shutil.copy(FIXTURES / f, tmp_path / f)
    return tmp_path


def edit(path: Path, fn) -> None:
    """Rewrite a CSV through pandas, as text (nothing reformatted but what ``fn`` changes;
    ``fn`` may return a new frame)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    new = fn(df)
    (new if isinstance(new, pd.DataFrame) else df).to_csv(path, index=False)


def problems(files: Path, **kw) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of validating the scratch files; inputs checked unchanged."""
    guard = Untouched(files)
    try:
        data = validate(files / "panel.csv", files / "units.csv", family=kw.pop("family",
                                                                               "binomial"),
                        levels=kw.pop("levels", LEVELS), **kw)
        out: tuple[list[Problem], list[Problem]] = ([], list(data.warnings))
    except DataValidationError as err:
        out = (list(err.problems), list(err.warnings))
    guard.check()
    return out


def the_error(files: Path, **kw) -> Problem:
    errs, _ = problems(files, **kw)
    assert len(errs) == 1, [e.format() for e in errs]
    return errs[0]


def warning(files: Path, rule: str, **kw) -> Problem:
    errs, warns = problems(files, **kw)
    assert not errs, [e.format() for e in errs]
    found = [w for w in warns if w.rule == rule]
    assert found, [w.rule for w in warns]
    return found[0]


# ---- duplicate header columns -------------------------------------------------------------
def test_two_numerator_columns_in_a_csv_header(files):
    text = (files / "panel.csv").read_text().splitlines()
    text[0] = "unit,period,numerator,numerator"
    (files / "panel.csv").write_text("\n".join(text) + "\n")
    p = the_error(files)
    assert p.rule == "duplicate_columns"
    assert "'numerator' (columns 3 and 4)" in p.message and p.column == "numerator"


def test_duplicate_header_after_stripping_spaces(files):
    text = (files / "panel.csv").read_text().splitlines()
    text[0] = "unit, period,numerator,period "
    (files / "panel.csv").write_text("\n".join(text) + "\n")
    assert the_error(files).rule == "duplicate_columns"


def test_duplicate_header_in_a_semicolon_file_with_bom(files):
    df = pd.read_csv(files / "panel.csv")
    text = "\ufeffunit;period;numerator;denominator;unit\n" + "".join(
        f"{r.unit};{r.period};{r.numerator};{r.denominator};{r.unit}\n" for r in df.itertuples())
    (files / "panel.csv").write_bytes(text.encode("utf-8"))
    p = the_error(files)
    assert p.rule == "duplicate_columns" and "'unit'" in p.message


def test_duplicate_header_in_excel(files):
    df = pd.read_csv(files / "panel.csv")
    df.insert(4, "x", df["numerator"])
    df.columns = ["unit", "period", "numerator", "denominator", "numerator"]
    df.to_excel(files / "panel.xlsx", index=False)
    (files / "panel.csv").unlink()
    guard = Untouched(files)
    with pytest.raises(DataValidationError) as info:
        validate(files / "panel.xlsx", files / "units.csv", levels=LEVELS)
    guard.check()
    assert rule_of(info.value) == "duplicate_columns"


def test_read_table_refuses_duplicate_headers_too(files):
    (files / "t.csv").write_text("a,b,a\n1,2,3\n")
    with pytest.raises(DataValidationError) as info:
        read_table(files / "t.csv")
    assert rule_of(info.value) == "duplicate_columns"


# ---- two roles from one column -------------------------------------------------------------
def test_numerator_mapped_to_the_denominator_column(files):
    p = the_error(files, columns={"numerator": "denominator"})
    assert p.rule == "column_mapped_twice"
    assert "'numerator' and 'denominator'" in p.message and p.column == "denominator"


def test_unit_mapped_to_the_period_column(files):
    errs, _ = problems(files, columns={"unit": "period"})
    assert "column_mapped_twice" in [e.rule for e in errs]


def test_cli_map_two_roles_one_column(files, capsys):
    from qicstats.cli import main

    guard = Untouched(files)
    code = main(["validate", "--panel", str(files / "panel.csv"), "--units",
                 str(files / "units.csv"), "--levels", "collaborative", "site", "--map",
                 "denominator=numerator"])
    guard.check()
    assert code == 2
    assert "[column_mapped_twice]" in capsys.readouterr().out


# ---- absurd counts -------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1e20", str(2**63), "1e308", "9223372036854775807",
                                   "1500000000"])
def test_huge_counts_are_refused_not_overflowed(files, value):
    edit(files / "panel.csv", lambda df: df.__setitem__("denominator", value))
    errs, _ = problems(files)
    assert [e.rule for e in errs] == ["count_too_large"]
    assert "1,000,000,000" in errs[0].message and errs[0].count == 72
    assert "unit U1" in errs[0].message  # the row detail names the unit


def test_infinite_count_is_not_numeric(files):
    edit(files / "panel.csv", lambda df: df.loc.__setitem__((0, "numerator"), "1e400"))
    assert the_error(files).rule == "count_not_numeric"


def test_huge_exposure(files):
    df = pd.read_csv(files / "panel.csv").rename(columns={"numerator": "count",
                                                          "denominator": "exposure"})
    df["exposure"] = df["exposure"].astype(float)
    df.loc[2, "exposure"] = 1e300
    df.to_csv(files / "panel.csv", index=False)
    p = the_error(files, family="poisson")
    assert p.rule == "exposure_too_large" and p.examples == (4,)


def test_huge_gaussian_value(files):
    df = pd.read_csv(files / "panel.csv").rename(columns={"numerator": "value"})
    df["value"] = df["value"].astype(float)
    df.loc[5, "value"] = -1e300
    df.drop(columns="denominator").to_csv(files / "panel.csv", index=False)
    assert the_error(files, family="gaussian").rule == "value_too_large"


# ---- data that carry no information -------------------------------------------------------
def test_all_denominators_zero(files):
    edit(files / "panel.csv", lambda df: (df.__setitem__("denominator", "0"),
                                          df.__setitem__("numerator", "0")))
    p = the_error(files)
    assert p.rule == "no_information" and "prior" in p.message


def test_every_join_after_the_data_end(files):
    edit(files / "units.csv", lambda df: df.__setitem__(
        "join_period", ["2025-01" if c else "" for c in df["collaborative"]]))
    p = the_error(files)
    assert p.rule == "no_post_join_data"
    assert "joins 2025-01" in p.message and "last observed 2023-12" in p.message


def test_post_join_denominators_all_zero(files):
    def zero_after(df):
        join = {"U1": "2023-04", "U2": "2023-06", "U3": "2023-05", "U4": "2023-07"}
        m = [u in join and p >= join[u] for u, p in zip(df["unit"], df["period"])]
        df.loc[m, "denominator"] = "0"
        df.loc[m, "numerator"] = "0"
    edit(files / "panel.csv", zero_after)
    p = the_error(files)
    assert p.rule == "no_post_join_data" and "denominator of 0" in p.message


# ---- files that are not files -------------------------------------------------------------
def test_panel_fifo_is_refused_without_blocking(files):
    os.mkfifo(files / "pipe.csv")
    guard = Untouched(files)
    with pytest.raises(DataValidationError) as info:
        validate(files / "pipe.csv", files / "units.csv")
    guard.check()
    assert rule_of(info.value) == "not_regular_file" and "named pipe" in str(info.value)


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_device_as_panel(files, dev):
    if not os.path.exists(dev):
        pytest.skip(f"no {dev}")
    with pytest.raises(DataValidationError) as info:
        validate(dev, files / "units.csv")
    assert rule_of(info.value) == "not_regular_file"
    assert "not found" not in str(info.value)


def test_folder_as_panel(files):
    with pytest.raises(DataValidationError) as info:
        validate(files, files / "units.csv")
    assert rule_of(info.value) == "file_not_found" and "folder" in str(info.value)


def test_file_over_the_size_limit(files, monkeypatch):
    monkeypatch.setenv("QICSTATS_MAX_INPUT_BYTES", "100")
    with pytest.raises(DataValidationError) as info:
        read_table(files / "panel.csv")
    assert rule_of(info.value) == "file_too_large"
    assert "QICSTATS_MAX_INPUT_BYTES" in info.value.problems[0].hint


def test_symlink_to_a_regular_file_is_read(files):
    os.symlink(files / "panel.csv", files / "link.csv")
    assert len(read_table(files / "link.csv")) == 72


# ---- messages that say enough -------------------------------------------------------------
def test_numerator_above_denominator_names_unit_period_and_values(files):
    edit(files / "panel.csv", lambda df: df.loc.__setitem__((5, "numerator"), "45"))
    p = the_error(files)
    assert p.rule == "numerator_gt_denominator" and p.examples == (7,)
    assert "line 7: unit U1, period 2023-06, numerator 45 > denominator 20" in p.message


def test_text_n_a_in_a_count_column_is_named(files):
    edit(files / "panel.csv", lambda df: df.loc.__setitem__((3, "denominator"), "n/a"))
    p = the_error(files)
    assert p.rule == "count_missing"
    assert "'n/a', which is read as missing" in p.message
    assert "line 5: unit U1, period 2023-04" in p.message


def test_non_numeric_count_names_the_value(files):
    edit(files / "panel.csv", lambda df: df.loc.__setitem__((8, "numerator"), "12 pts"))
    p = the_error(files)
    assert p.rule == "count_not_numeric" and "numerator '12 pts'" in p.message


def test_unit_in_two_collaboratives_names_both(files):
    with open(files / "units.csv", "a") as fh:
        fh.write("U1,B,2023-05,South\n")
    errs, _ = problems(files)
    p = next(e for e in errs if e.rule == "duplicate_unit")
    assert "'A' (line 2)" in p.message and "'B' (line 8)" in p.message


def test_unit_in_two_collaboratives_on_the_panel_names_both(files):
    df = pd.read_csv(files / "panel.csv")
    u = pd.read_csv(files / "units.csv", dtype=str, keep_default_na=False)
    df = df.merge(u, on="unit")
    df.loc[3, "collaborative"] = "B"
    df.to_csv(files / "panel.csv", index=False)
    guard = Untouched(files)
    with pytest.raises(DataValidationError) as info:
        validate(files / "panel.csv", levels=LEVELS)
    guard.check()
    p = info.value.problems[0]
    assert p.rule == "not_constant_within_unit"
    assert "'A'" in p.message and "'B'" in p.message


def test_units_table_without_collaborative_warns(files):
    edit(files / "units.csv", lambda df: df.drop(columns=["collaborative"]))
    w = warning(files, "no_collaborative_column")
    assert "'(collaborative)'" in w.message


# ---- invisible characters -----------------------------------------------------------------
def test_zero_width_space_in_a_unit_name_is_shown_escaped(files):
    for f in ("panel.csv", "units.csv"):
        text = (files / f).read_text(encoding="utf-8").replace("U6,", "U6\u200b,")
        (files / f).write_text(text, encoding="utf-8")
    w = warning(files, "invisible_characters")
    assert "\\u200b" in w.format() and "\u200b" not in w.format()


def test_units_differing_only_by_a_zero_width_space(files):
    text = (files / "panel.csv").read_text(encoding="utf-8").splitlines()
    text[1] = text[1].replace("U1,", "U1\u200b,")
    (files / "panel.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    errs, _ = problems(files)
    rules = [e.rule for e in errs]
    assert "names_differ_by_invisible_characters" in rules
    p = errs[rules.index("names_differ_by_invisible_characters")]
    assert "\\u200b" in p.format()


def test_nul_byte_in_a_unit_name_is_text_and_shown(files):
    raw = (files / "panel.csv").read_bytes().replace(b"U6,", b"U6\x00,")
    (files / "panel.csv").write_bytes(raw)
    raw = (files / "units.csv").read_bytes().replace(b"U6,", b"U6\x00,")
    (files / "units.csv").write_bytes(raw)
    w = warning(files, "invisible_characters")
    assert "\\x00" in w.format()


def test_mostly_nul_file_is_binary(files):
    (files / "panel.csv").write_bytes(b"unit,period\x00\x00\x00" * 500)
    with pytest.raises(DataValidationError) as info:
        read_table(files / "panel.csv")
    assert rule_of(info.value) == "not_tabular"


def test_problem_text_escapes_every_invisible_character():
    p = Problem("r", "unit 'A\u202eB' and 'C\x07'", examples=("D\ufeff",), count=1)
    text = p.format()
    assert "\\u202e" in text and "\\x07" in text and "\\ufeff" in text
    assert text.isprintable() or all(ch == "\n" or ch.isprintable() for ch in text)


# ---- encodings ------------------------------------------------------------------------------
def test_latin1_codebook_is_read(tmp_path):
    from qicstats.indicators import load_codebook

    text = ("indicators:\n  støtte:\n    type: ordinal\n    levels: [lav, mellem, høj]\n"
            "    role: moderator\n    label: 'Ledelsens støtte (Århus)'\n")
    path = tmp_path / "codebook.yaml"
    path.write_bytes(text.encode("latin-1"))
    guard = Untouched(tmp_path)
    cb = load_codebook(path)
    guard.check()
    assert "støtte" in cb.indicators


def test_codebook_alias_bomb_is_refused(tmp_path):
    from test_hostile_config import BOMB

    from qicstats.indicators import load_codebook

    path = tmp_path / "codebook.yaml"
    path.write_text(BOMB.replace("data: {panel: data/panel.csv}", "indicators: {}"))
    with pytest.raises(ConfigError) as info:
        load_codebook(path)
    assert rule_of(info.value) == "malformed_codebook"
    assert "alias bomb" in str(info.value)


def test_codebook_fifo_is_refused(tmp_path):
    from qicstats.indicators import load_codebook

    os.mkfifo(tmp_path / "codebook.yaml")
    with pytest.raises(ConfigError) as info:
        load_codebook(tmp_path / "codebook.yaml")
    assert "named pipe" in str(info.value)


def test_cp1252_panel_with_danish_units_validates(files):
    df = pd.read_csv(files / "panel.csv")
    u = pd.read_csv(files / "units.csv", dtype=str, keep_default_na=False)
    df["unit"] = df["unit"].str.replace("U1", "Århus")
    u["unit"] = u["unit"].str.replace("U1", "Århus")
    df.to_csv(files / "panel.csv", index=False, sep=";", encoding="cp1252")
    u.to_csv(files / "units.csv", index=False, sep=";", encoding="cp1252")
    _, warns = problems(files)
    assert "invisible_characters" not in [w.rule for w in warns]


def test_fast_and_general_reader_agree(files):
    """The pyarrow path and the pandas path read the same table the same way."""
    from qicstats.data import io as qio

    fast = read_table(files / "panel.csv")
    orig = qio._read_csv_arrow
    try:
        qio._read_csv_arrow = lambda *a, **k: None  # force the general reader
        slow = read_table(files / "panel.csv")
    finally:
        qio._read_csv_arrow = orig
    pd.testing.assert_frame_equal(fast, slow)


def test_ragged_rows_still_name_the_line(files):
    with open(files / "panel.csv", "a") as fh:
        fh.write("U9,2023-01,1,2,3\n")
    with pytest.raises(DataValidationError) as info:
        read_table(files / "panel.csv")
    assert rule_of(info.value) == "not_tabular"


def test_missing_file_is_a_qicstats_error(tmp_path):
    with pytest.raises(QicstatsError, match="file not found"):
        read_table(tmp_path / "nope.csv")
