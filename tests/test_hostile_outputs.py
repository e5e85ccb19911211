"""Outputs that are safe to open and records that cannot lie (issue 17): spreadsheet formula
injection neutralised in every CSV a run writes, Markdown/LaTeX/HTML escaped, the fast preset
recorded everywhere, no absolute paths in a run folder.

One mock-sampled run (prior draws, no MCMC) of the fixture panel whose units are named like
attacks; every input file is byte-identical afterwards.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from _hostile import Untouched, mock_sampler, project

from qicstats.config import config_hash, load_config
from qicstats.data.io import csv_safe
from qicstats.pipeline import load_run, run
from qicstats.report.tables import latex_escape, markdown_table, md_escape

pytestmark = pytest.mark.filterwarnings("ignore:The effect of Potentials:UserWarning")

NAMES = {"U1": "=cmd|' /C calc'!A0", "U2": "<script>alert(1)</script>", "U3": "-2+3",
         "U4": "-1", "U5": "@SUM(A1:A9)", "U6": "+HYPERLINK(x)"}  # U5, U6: comparison units
FORMULA = ("=", "+", "-", "@", "\t", "\r")
NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_outputs")
    cfg = project(root)
    for f in ("panel.csv", "units.csv"):
        df = pd.read_csv(root / "data" / f, dtype=str, keep_default_na=False)
        df["unit"] = df["unit"].map(NAMES)
        if "site" in df:
            df["site"] = df["site"].replace({"North": "=North", "South": "@South"})
        df.to_csv(root / "data" / f, index=False)
    guard = Untouched(root, ignore=("runs",))
    with pytest.MonkeyPatch.context() as mp:
        mock_sampler(mp)
        res = run(cfg, out=root / "runs" / "x", fast=True)
    return root, res, guard


def _cells(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [c for row in csv.reader(fh) for c in row]


def test_inputs_unchanged(hostile_run):
    _root, _res, guard = hostile_run
    guard.check()


def test_no_csv_cell_starts_a_formula(hostile_run):
    _root, res, _ = hostile_run
    csvs = sorted(res.folder.glob("*.csv"))
    assert len(csvs) >= 6
    for path in csvs:
        bad = [c for c in _cells(path) if c.startswith(FORMULA) and not NUMBER.match(c)]
        assert not bad, (path.name, bad[:3])


def test_the_attack_names_are_kept_readable(hostile_run):
    _root, res, _ = hostile_run
    est = pd.read_csv(res.folder / "estimands.csv", dtype={"group": str})
    groups = set(est["group"].dropna())
    assert "'=cmd|' /C calc'!A0" in groups and "'-2+3" in groups
    assert "-1" in groups  # a plain number is left as it is
    signals = set(_cells(res.folder / "residual_signals.csv"))  # every unit, comparison too
    assert {"'@SUM(A1:A9)", "'+HYPERLINK(x)", "'=cmd|' /C calc'!A0"} <= signals


def test_numbers_stay_numbers(hostile_run):
    _root, res, _ = hostile_run
    est = pd.read_csv(res.folder / "estimands.csv")
    for col in ("mean", "lower", "upper", "prob_positive"):
        assert pd.api.types.is_float_dtype(est[col]), col
    assert (est["lower"] < 0).any()  # negative numbers written as numbers, not '-0.5


def test_markdown_and_latex_are_escaped(hostile_run):
    _root, res, _ = hostile_run
    md = (res.folder / "estimands.md").read_text(encoding="utf-8")
    assert "<script>" not in md and "&lt;script&gt;" in md
    tex = (res.folder / "estimands.tex").read_text(encoding="utf-8")
    assert "<script>" not in tex and "\\textless{}script\\textgreater{}" in tex


def test_html_report_is_escaped(hostile_run):
    _root, res, _ = hostile_run
    html = (res.folder / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_fast_preset_is_recorded_everywhere(hostile_run):
    root, res, _ = hostile_run
    resolved = (res.folder / "config.resolved.yaml").read_text()
    assert "preset: fast" in resolved and "chains: 2" in resolved
    m = json.loads((res.folder / "manifest.json").read_text())
    assert m["fast"]["preset"] is True and m["fast"]["source"] == "--fast"
    assert m["sampler"]["preset"] == "fast" and m["sampler"]["chains"] == 2
    slow = load_config(root / "analysis.yaml")
    assert m["config_hash"] != config_hash(slow)
    assert m["config_hash"] == config_hash(load_config(res.folder / "config.resolved.yaml",
                                                       base_dir=root))
    html = (res.folder / "report.html").read_text(encoding="utf-8")
    assert "fast preset" in html and "never for conclusions" in html
    assert any("fast preset" in r for r in res.result.diagnostics().warn_reasons)


def test_no_absolute_paths_in_the_run_folder(hostile_run):
    root, res, _ = hostile_run
    m = json.loads((res.folder / "manifest.json").read_text())
    assert m["config_base_dir"] == "../.."
    needle = str(root).encode()
    for p in res.folder.iterdir():
        assert needle not in p.read_bytes(), p.name


def test_a_moved_project_still_loads(hostile_run, tmp_path):
    root, res, _ = hostile_run
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    back = load_run(moved / "runs" / "x")
    assert back.analysis.config.base_dir == moved
    pd.testing.assert_frame_equal(back.result.estimands(), res.result.estimands())


# pytest.warns re-emits the other warnings of its block from here, where the arviz-stats
# filter of pyproject no longer matches: the mock draws' NaN diagnostics, as elsewhere
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_deprecated_env_alias_is_recorded_the_same_way(tmp_path, monkeypatch):
    cfg = project(tmp_path)
    mock_sampler(monkeypatch)
    monkeypatch.setenv("QICSTATS_FAST", "1")
    with pytest.warns(DeprecationWarning, match="QICSTATS_FAST"):
        res = run(cfg, out=tmp_path / "runs" / "env", report=False)
    m = res.manifest
    assert m["fast"] == {"preset": True, "source": "QICSTATS_FAST=1 (deprecated)",
                         "settings": {"chains": 2, "draws": 150, "tune": 200}}
    assert "preset: fast" in (res.folder / "config.resolved.yaml").read_text()
    monkeypatch.delenv("QICSTATS_FAST")
    res2 = run(cfg, out=tmp_path / "runs" / "flag", report=False, fast=True)
    assert res2.manifest["config_hash"] == m["config_hash"]


# ---- the escaping helpers themselves --------------------------------------------------------
@pytest.mark.parametrize("cell, out", [
    ("=1+1", "'=1+1"), ("+1 555", "'+1 555"), ("-A", "'-A"), ("@x", "'@x"),
    ("\tx", "'\tx"), ("\rx", "'\rx"), ("-0.5", "-0.5"), ("+3", "+3"), ("1e-3", "1e-3"),
    ("ok", "ok"), ("a=b", "a=b"), ("", ""),
])
def test_csv_safe_cells(cell, out):
    df = pd.DataFrame({"g": [cell], "x": [-0.5]})
    safe = csv_safe(df)
    assert safe["g"].iloc[0] == out and safe["x"].iloc[0] == -0.5
    assert df["g"].iloc[0] == cell  # not modified in place


def test_csv_safe_header_and_categorical():
    df = pd.DataFrame({"=h": pd.Categorical(["=a", "b"])})
    safe = csv_safe(df)
    assert list(safe.columns) == ["'=h"] and safe.iloc[0, 0] == "'=a"


@pytest.mark.parametrize("text, must, mustnt", [
    ("<img src=x onerror=alert(1)>", "&lt;img", "<img"),
    ("a|b", "a\\|b", None),
    ("[click](http://x)", "\\[click\\]", "[click]"),
    ("line\nbreak", "line break", "\n"),
    ("`code`", "\\`code\\`", None),
    ("nul\x00byte", "nulbyte", "\x00"),
])
def test_markdown_cells(text, must, mustnt):
    out = md_escape(text)
    assert must in out
    if mustnt:
        assert mustnt not in out


def test_markdown_table_escapes_headers_and_cells():
    t = markdown_table(pd.DataFrame({"<b>": ["|x|"]}))
    assert "&lt;b&gt;" in t and "\\|x\\|" in t


@pytest.mark.parametrize("text, must", [
    ("\\end{tabular}", "\\textbackslash{}end\\{tabular\\}"),
    ("50% & $5", "50\\% \\& \\$5"),
    ("a\nb", "a b"),
])
def test_latex_cells(text, must):
    assert must in latex_escape(text)
