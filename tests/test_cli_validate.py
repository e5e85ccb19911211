"""Tests of `qicstats validate` (exit codes, output, no tracebacks for bad input)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest

from qicstats.cli import main
from qicstats.errors import Problem

DATA = Path(__file__).parent / "data" / "validate"
PANEL, UNITS = str(DATA / "panel.csv"), str(DATA / "units.csv")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_valid_prints_summary_and_exits_0(capsys):
    code, out, _ = run(capsys, "--panel", PANEL, "--units", UNITS, "--levels", "collaborative",
                       "site")
    assert code == 0
    assert out.startswith("VALID")
    assert "units:           6 (4 participating, 2 comparison)" in out
    assert "periods:         12 month (2023-01 .. 2023-12)" in out
    assert "levels:          collaborative > site > unit" in out


def test_invalid_lists_every_problem_and_exits_2(tmp_path, capsys):
    p = pd.read_csv(PANEL)
    p.loc[3, "numerator"] = 99
    p.loc[5, "period"] = "2023-13"
    path = tmp_path / "panel.csv"
    p.to_csv(path, index=False)
    code, out, _ = run(capsys, "--panel", str(path), "--units", UNITS)
    assert code == 2
    assert out.startswith("INVALID: 2 problems found")
    assert "[numerator_gt_denominator]" in out and "e.g. 5" in out  # file line 5
    assert "[unparseable_period]" in out


def test_warnings_are_shown_and_still_valid(tmp_path, capsys):
    p = pd.read_csv(PANEL)
    p = p[p["period"] != "2023-05"]
    path = tmp_path / "panel.csv"
    p.to_csv(path, index=False)
    code, out, _ = run(capsys, "--panel", str(path), "--units", UNITS)
    assert code == 0
    assert "1 warning:" in out and "[period_gaps]" in out and "VALID (with warnings)" in out


def test_corrupt_file(capsys):
    code, out, _ = run(capsys, "--panel", str(DATA / "garbage.csv"), "--units", UNITS)
    assert code == 2
    assert "[not_tabular]" in out and "garbage.csv" in out


def test_missing_file(tmp_path, capsys):
    code, out, _ = run(capsys, "--panel", str(tmp_path / "nope.csv"))
    assert code == 2
    assert "[file_not_found]" in out and "nope.csv" in out


def test_wrong_column_suggests_a_mapping_and_map_fixes_it(tmp_path, capsys):
    p = pd.read_csv(PANEL).rename(columns={"unit": "Afdeling"})
    path = tmp_path / "panel.csv"
    p.to_csv(path, index=False)
    code, out, _ = run(capsys, "--panel", str(path), "--units", UNITS)
    assert code == 2
    assert "[missing_columns]" in out
    u = pd.read_csv(UNITS).rename(columns={"unit": "Afdeling"})
    upath = tmp_path / "units.csv"
    u.to_csv(upath, index=False)
    code, out, _ = run(capsys, "--panel", str(path), "--units", str(upath), "--map",
                       "unit=Afdeling")
    assert code == 0, out


def test_bad_map_argument(capsys):
    code, _, err = run(capsys, "--panel", PANEL, "--map", "patients")
    assert code == 2 and "ROLE=COLUMN" in err
    code, _, err = run(capsys, "--panel", PANEL, "--map", "patients=n")
    assert code == 2 and "unknown column role" in err


def test_json_output(capsys):
    code, out, _ = run(capsys, "--panel", PANEL, "--units", UNITS, "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["valid"] is True and doc["errors"] == []
    assert doc["summary"]["n_units"] == 6
    code, out, _ = run(capsys, "--panel", str(DATA / "empty.csv"), "--json")
    doc = json.loads(out)
    assert code == 2 and doc["valid"] is False
    assert doc["errors"][0]["rule"] == "empty_file"


def test_family_option(capsys):
    code, out, _ = run(capsys, "--panel", PANEL, "--units", UNITS, "--family", "gaussian")
    assert code == 2 and "family gaussian" in out


def test_no_panel_and_no_config(capsys):
    code, _, err = run(capsys)
    assert code == 2 and "--panel" in err


def test_config_validation_not_available(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "qicstats.pipeline", None)  # import fails
    cfg = tmp_path / "analysis.yaml"
    cfg.write_text("panel: p.csv\n")
    code, _, err = run(capsys, str(cfg))
    assert code == 2 and "not available" in err


def test_indicators_unavailable_is_reported(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "qicstats.indicators", types.ModuleType("qicstats.indicators"))
    code, out, _ = run(capsys, "--panel", PANEL, "--units", UNITS, "--indicators", "i.csv",
                       "--codebook", "c.yaml")
    assert code == 2
    assert "[indicators_not_checked]" in out and "not available" in out


def test_indicator_problems_are_merged(capsys, monkeypatch):
    seen = {}

    def check_indicators(codes, codebook, panel_data, columns=None):
        seen["args"] = (codes, codebook, panel_data.n_units, type(columns).__name__)
        return None, [Problem("unknown_level", "2 codes use a level not in the codebook",
                              file=codes, count=2, examples=("U1", "U3")),
                      Problem("indicator_gap", "a wave is missing", severity="warning")]

    mod = types.ModuleType("qicstats.indicators")
    mod.check_indicators = check_indicators
    monkeypatch.setitem(sys.modules, "qicstats.indicators", mod)
    code, out, _ = run(capsys, "--panel", PANEL, "--units", UNITS, "--indicators", "i.csv",
                       "--codebook", "c.yaml")
    assert code == 2
    assert seen["args"] == ("i.csv", "c.yaml", 6, "ColumnMap")
    assert "[unknown_level]" in out and "[indicator_gap]" in out


def test_indicators_need_codebook(capsys):
    code, _, err = run(capsys, "--panel", PANEL, "--indicators", "i.csv")
    assert code == 2 and "--codebook" in err


def test_help_has_description(capsys):
    with pytest.raises(SystemExit) as info:
        main(["validate", "--help"])
    assert info.value.code == 0
    assert "data contract" in capsys.readouterr().out
