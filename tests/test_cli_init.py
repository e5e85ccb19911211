"""Tests of `qicstats init` and :func:`qicstats.config.write_init_config`."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from qicstats.cli import main
from qicstats.config import AnalysisConfig, load_config, write_init_config
from qicstats.config import schema as S
from qicstats.errors import DataValidationError, QicstatsError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "synthetic" / "demo"
VAL = Path(__file__).parent / "data" / "validate"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["init", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def demo_args(out: Path) -> list[str]:
    return ["--panel", str(DEMO / "panel.csv"), "--units", str(DEMO / "units.csv"),
            "--indicators", str(DEMO / "indicators.csv"), "--codebook",
            str(DEMO / "codebook.yaml"), "-o", str(out)]


@pytest.fixture(scope="module")
def demo_init(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("init") / "demo" / "analysis.yaml"
    code = main(["init", *demo_args(out)])
    assert code == 0
    return out, out.read_text(encoding="utf-8")


def test_init_on_the_demo_writes_a_config_that_loads(demo_init):
    out, _text = demo_init
    cfg = load_config(out)
    assert cfg.name == "demo"  # the output folder's name
    assert cfg.data.family == "betabinomial"
    assert cfg.data.levels == ("collaborative", "site")
    # 25 comparison units observed throughout: free period effects (which contain the
    # seasons) and the exposure-time curve, read from the design
    assert (cfg.model.trend, cfg.model.effect) == ("period", "curve")
    assert cfg.model.seasonality is False and cfg.model.phases is False
    assert cfg.estimands.horizons == (12,)  # follow-up up to 29 periods
    assert cfg.estimands.direction == "increase"
    assert cfg.indicators is not None and cfg.indicators.consensus == "majority"
    assert cfg.indicators.use is None and cfg.indicators.sensitivity_by_coder is False
    assert [c.format for c in cfg.indicators.codes] == ["long"]
    # paths are written relative to the output folder and resolve to the demo files
    assert not Path(cfg.data.panel).is_absolute()
    assert cfg.data.panel == Path(os.path.relpath(DEMO / "panel.csv", out.parent)).as_posix()
    assert cfg.paths.panel == DEMO / "panel.csv"
    assert cfg.paths.units == DEMO / "units.csv"
    assert cfg.paths.codes == (DEMO / "indicators.csv",)
    assert cfg.paths.codebook == DEMO / "codebook.yaml"
    # everything else takes the schema's defaults
    d = AnalysisConfig(data={"panel": "x"})
    assert cfg.sampler == d.sampler and cfg.diagnostics == d.diagnostics
    assert cfg.report == d.report


def test_init_output_is_commented_key_by_key(demo_init):
    _out, text = demo_init
    lines = text.splitlines()

    def preceded_by_comment(prefix: str) -> bool:
        idx = [i for i, ln in enumerate(lines) if ln.startswith(prefix)]
        assert len(idx) == 1, prefix
        return lines[idx[0] - 1].lstrip().startswith("#")

    for key in AnalysisConfig.model_fields:
        assert preceded_by_comment(f"{key}:"), key
        sub = S.AnalysisConfig.model_fields[key].annotation
        for model in (S.DataSection, S.IndicatorsSection, S.ModelSection, S.EstimandsSection,
                      S.SamplerSection, S.DiagnosticsSection, S.ReportSection):
            if model.__name__ in str(sub):
                for k in model.model_fields:
                    assert preceded_by_comment(f"  {k}:"), f"{key}.{k}"
    # the options are spelled out, and what was read from the data
    assert "none | linear | rw (random walk over periods) | spline" in text.replace("\n  #   ",
                                                                                   " ")
    assert "# From your data: collaborative > site > unit" in text
    assert "CHECK THIS" in text
    assert "2 coders (A, B)" in text and "`uncertain`" in text
    assert "qicstats run analysis.yaml" in text
    assert "100 units (75 participating, 25 comparison)" in text


def test_init_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "a.yaml"
    code, stdout, _ = run(capsys, *demo_args(out), "--name", "my-demo")
    assert code == 0
    assert f"wrote {out}" in stdout and "family:     betabinomial" in stdout
    assert "levels:     collaborative > site > unit" in stdout
    assert load_config(out).name == "my-demo"


def test_never_overwrites_without_flag(tmp_path, capsys):
    out = tmp_path / "analysis.yaml"
    out.write_text("# mine\n", encoding="utf-8")
    code, _o, err = run(capsys, "--panel", str(VAL / "panel.csv"), "--units",
                        str(VAL / "units.csv"), "-o", str(out))
    assert code == 2 and "--overwrite" in err
    assert out.read_text() == "# mine\n"
    code, _o, _e = run(capsys, "--panel", str(VAL / "panel.csv"), "--units",
                       str(VAL / "units.csv"), "-o", str(out), "--overwrite")
    assert code == 0 and load_config(out).data.units is not None
    with pytest.raises(QicstatsError, match="overwrite"):
        write_init_config(VAL / "panel.csv", out, units=VAL / "units.csv")


def test_bad_data_exit_2_with_the_problems_and_no_file(tmp_path, capsys):
    p = pd.read_csv(VAL / "panel.csv")
    p.loc[3, "numerator"] = 99
    (tmp_path / "panel.csv").write_text(p.to_csv(index=False))
    out = tmp_path / "analysis.yaml"
    code, stdout, err = run(capsys, "--panel", str(tmp_path / "panel.csv"), "--units",
                            str(VAL / "units.csv"), "-o", str(out))
    assert code == 2
    assert "[numerator_gt_denominator]" in stdout + err and "e.g. 5" in stdout + err
    assert not out.exists()
    with pytest.raises(DataValidationError):
        write_init_config(tmp_path / "panel.csv", out, units=VAL / "units.csv")


def test_short_panel_gets_linear_trend_and_half_follow_up(tmp_path):
    res = write_init_config(VAL / "panel.csv", tmp_path / "analysis.yaml",
                            units=VAL / "units.csv")
    cfg = res.config
    panel = pd.read_csv(VAL / "panel.csv")
    units = pd.read_csv(VAL / "units.csv").dropna(subset=["join_period"])
    months = lambda s: pd.PeriodIndex(s, freq="M").astype("int64")  # noqa: E731
    last = panel.groupby("unit")["period"].max()
    fu = max(int(months([last[u]])[0] - months([j])[0])
             for u, j in zip(units["unit"], units["join_period"]))
    assert fu < 12
    # two comparison units observed throughout and staggered joins: period effects and the
    # curve; every exposure time has concurrent comparisons, so the horizon is half the
    # follow-up
    assert (cfg.model.trend, cfg.model.effect, cfg.model.seasonality) == ("period", "curve",
                                                                          False)
    assert cfg.estimands.horizons == (fu // 2,)
    assert "2 comparison units" in " ".join(res.notes["model.trend"])
    assert cfg.data.family == "betabinomial" and cfg.estimands.direction == "increase"
    assert cfg.data.levels == ("collaborative", "site")
    assert cfg.indicators is None and "indicators: null" in res.text
    assert cfg.data.panel == Path(os.path.relpath(VAL / "panel.csv", tmp_path)).as_posix()
    assert res.summary["n_units"] == 6


def test_count_outcome_gets_negbinomial_and_decrease(tmp_path):
    p = pd.read_csv(VAL / "panel.csv").rename(columns={"numerator": "count",
                                                        "denominator": "exposure"})
    p.to_csv(tmp_path / "events.csv", index=False)
    res = write_init_config(tmp_path / "events.csv", tmp_path / "cfg" / "analysis.yaml",
                            units=VAL / "units.csv")
    assert res.config.data.family == "negbinomial"
    assert res.config.estimands.direction == "decrease"
    assert "harms" in res.text and "CHECK THIS" in res.text
    assert res.config.data.panel == "../events.csv"
    assert res.config.name == "cfg"


def test_levels_not_nested_are_left_out(tmp_path):
    u = pd.read_csv(VAL / "units.csv")
    u.loc[u["unit"] == "U3", "site"] = "North"  # North now spans collaboratives A and B
    u.to_csv(tmp_path / "units.csv", index=False)
    res = write_init_config(VAL / "panel.csv", tmp_path / "analysis.yaml",
                            units=tmp_path / "units.csv")
    assert res.config.data.levels == ("collaborative",)
    assert "site left out: not nested" in res.text


def test_column_map_and_family_options(tmp_path, capsys):
    p = pd.read_csv(VAL / "panel.csv").rename(columns={"unit": "afdeling"})
    p.to_csv(tmp_path / "panel.csv", index=False)
    u = pd.read_csv(VAL / "units.csv").rename(columns={"unit": "afdeling"})
    u.to_csv(tmp_path / "units.csv", index=False)
    out = tmp_path / "analysis.yaml"
    code, _o, _e = run(capsys, "--panel", str(tmp_path / "panel.csv"), "--units",
                       str(tmp_path / "units.csv"), "--map", "unit=afdeling", "--family",
                       "binomial", "-o", str(out))
    assert code == 0
    cfg = load_config(out)
    assert cfg.data.columns == {"unit": "afdeling"} and cfg.data.family == "binomial"
    assert cfg.data.panel == "panel.csv"


def test_indicators_need_a_codebook(tmp_path, capsys):
    code, _o, err = run(capsys, "--panel", str(DEMO / "panel.csv"), "--indicators",
                        str(DEMO / "indicators.csv"), "-o", str(tmp_path / "a.yaml"))
    assert code == 2 and "--codebook" in err


# ---- design-aware choices on zoo designs ---------------------------------------------------
def _zoo_init(tmp_path, name: str, **overrides):
    from qicstats.data import validate
    from qicstats.models import resolve_structure
    from qicstats.simulate import simulate

    sim = simulate(name, seed=1, **overrides)
    paths = sim.write(tmp_path / name)
    res = write_init_config(paths["panel"], tmp_path / name / "analysis.yaml",
                            units=paths["units"])
    data = validate(paths["panel"], paths["units"], family=res.config.data.family,
                    levels=res.config.data.levels)
    return res, resolve_structure(data)


def test_init_on_a_stepped_wedge_names_its_choices_and_why(tmp_path):
    # 20 quarters: a follow-up of 12 periods and more, past the identified exposure times
    res, st = _zoo_init(tmp_path, "stepped_wedge", n_periods=20)
    m = res.config.model
    assert (m.trend, m.effect) == ("period", "curve") == (st.trend, st.effect)
    trend_note = " ".join(res.notes["model.trend"])
    assert "stepped-wedge" in trend_note and "Trend: period" in trend_note
    assert st.reasons["trend"] in trend_note                 # the same reasons as the model
    effect_note = " ".join(res.notes["model.effect"])
    assert effect_note.startswith("curve") and st.reasons["identification"] in effect_note
    assert f"0..{st.identified_max}" in effect_note
    # horizons past the identified ones have no concurrent comparison: the horizon is capped
    assert st.max_exposure >= ZOO_HORIZON_CAP > st.identified_max
    assert res.config.estimands.horizons == (st.identified_max,)
    assert any("no concurrent" in n and str(st.identified_max) in n
               for n in res.notes["estimands.horizons"])
    # the notes are written into the file as comments
    flat = res.text.replace("\n  #   ", " ").replace("\n  # ", " ")
    assert "Trend: period, because" in flat
    assert "trend: period" in res.text and "effect: curve" in res.text


#: the init horizon: 12 periods when the follow-up allows (see config/init.py)
ZOO_HORIZON_CAP = 12


def test_init_on_a_single_series_names_its_choices_and_why(tmp_path):
    res, st = _zoo_init(tmp_path, "single_series")
    m = res.config.model
    assert (m.trend, m.effect, m.seasonality) == ("linear", "slope", True)
    assert st.single_series
    trend_note = " ".join(res.notes["model.trend"])
    assert "single series" in trend_note and "Trend: linear" in trend_note
    assert "interrupted time series" in trend_note
    effect_note = " ".join(res.notes["model.effect"])
    assert effect_note.startswith("slope") and "extrapolating the linear trend" in effect_note
    assert "two years" in " ".join(res.notes["model.seasonality"])
    assert any(w.rule == "single_series" for w in res.warnings)
    # the file it wrote runs as written: loading it gives the same choices
    cfg = load_config(res.path)
    assert (cfg.model.trend, cfg.model.effect, cfg.model.seasonality) == (
        "linear", "slope", True)
