"""Hostile indicator files and codebooks (issue 17): exports that are not files, duplicate
headers, codebooks in Latin-1, too deep, too large or full of aliases, invisible characters
in codes. Each case asserts the exact rule and that every input file is byte-identical
afterwards; none samples.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _hostile import Untouched
from _indicator_panel import make_panel

from qicstats.errors import ConfigError, DataValidationError
from qicstats.indicators import check_indicators, load_codebook, read_long

IND = Path(__file__).parent / "data" / "indicators"


@pytest.fixture
def files(tmp_path) -> Path:
    for f in ("long.csv", "codebook.yaml"):
        shutil.copy(IND / f, tmp_path / f)
    return tmp_path


def test_indicator_export_that_is_a_fifo(files):
    os.mkfifo(files / "codes.csv")
    guard = Untouched(files)
    with pytest.raises(DataValidationError) as info:
        read_long(files / "codes.csv")
    guard.check()
    assert [p.rule for p in info.value.problems] == ["not_regular_file"]


def test_indicator_export_that_is_a_device():
    with pytest.raises(DataValidationError) as info:
        read_long("/dev/zero")
    assert [p.rule for p in info.value.problems] == ["not_regular_file"]


def test_indicator_export_with_a_duplicate_header(files):
    lines = (files / "long.csv").read_text(encoding="utf-8").splitlines()
    lines[0] = "unit;indicator;value;wave;value"
    (files / "long.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    guard = Untouched(files)
    with pytest.raises(DataValidationError) as info:
        read_long(files / "long.csv")
    guard.check()
    assert [p.rule for p in info.value.problems] == ["duplicate_columns"]
    assert "'value' (columns 3 and 5)" in info.value.problems[0].message


def test_check_indicators_reports_a_fifo_without_raising(files):
    os.mkfifo(files / "codes.csv")
    _codes, problems = check_indicators(files / "codes.csv", files / "codebook.yaml",
                                        make_panel())
    assert "not_regular_file" in [p.rule for p in problems]


def test_codebook_too_deep(files):
    (files / "deep.yaml").write_text("indicators: " + "[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError) as info:
        load_codebook(files / "deep.yaml")
    assert [p.rule for p in info.value.problems] == ["malformed_codebook"]
    assert "64 levels" in str(info.value)


def test_codebook_too_large(files):
    (files / "big.yaml").write_text("description: '" + "x" * (2 << 20) + "'\nindicators: {}\n")
    with pytest.raises(ConfigError) as info:
        load_codebook(files / "big.yaml")
    assert "more than the 1,048,576" in str(info.value)


def test_codebook_in_cp1252_with_a_euro_sign(files):
    text = (files / "codebook.yaml").read_text(encoding="utf-8").replace(
        "Management support\n", "Management support (budget €)\n", 1)
    (files / "codebook.yaml").write_bytes(text.encode("cp1252"))
    guard = Untouched(files)
    cb = load_codebook(files / "codebook.yaml")
    guard.check()
    assert "€" in cb.indicators["management_support"].label


def test_codebook_that_is_binary(files):
    (files / "codebook.yaml").write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError) as info:
        load_codebook(files / "codebook.yaml")
    assert [p.rule for p in info.value.problems] == ["malformed_codebook"]


def test_zero_width_space_in_a_code_is_shown_escaped(files):
    text = (files / "long.csv").read_text(encoding="utf-8").replace("Strong", "Str\u200bong", 1)
    (files / "long.csv").write_text(text, encoding="utf-8")
    guard = Untouched(files)
    _codes, problems = check_indicators(files / "long.csv", files / "codebook.yaml",
                                        make_panel())
    guard.check()
    bad = [p for p in problems if p.rule == "indicator_value_invalid"]
    assert bad and "\\u200b" in bad[0].format() and "\u200b" not in bad[0].format()
