"""Tests of the analysis config: schema, loading, errors, dumping, hashing, `qicstats schema`."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import fields
from pathlib import Path

import pydantic
import pytest
import yaml

from qicstats.cli import main
from qicstats.config import (
    AnalysisConfig,
    config_hash,
    data_file_hashes,
    dump_config,
    load_config,
    model_spec,
)
from qicstats.config import schema as S
from qicstats.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "synthetic" / "demo"
DATA = Path(__file__).parent / "data" / "config"
PANEL = (DATA / ".." / "validate" / "panel.csv").resolve()


def write(tmp_path: Path, text: str, name: str = "analysis.yaml") -> Path:
    """A config file in tmp_path whose data paths point at the validate fixtures."""
    shutil.copy(PANEL, tmp_path / "panel.csv")
    shutil.copy(PANEL.parent / "units.csv", tmp_path / "units.csv")
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def problems_of(source, **kw) -> list:
    with pytest.raises(ConfigError) as ei:
        load_config(source, **kw)
    return ei.value.problems


def one(problems: list, key: str):
    """The single problem whose message starts with the key path ``key``."""
    hits = [p for p in problems if p.message.split(" ")[0].rstrip(":") == key]
    assert len(hits) == 1, [p.message for p in problems]
    return hits[0]


# ---- the demo config ----------------------------------------------------------------------
def test_demo_config_loads_with_its_values():
    cfg = load_config(DEMO / "analysis.yaml")
    assert cfg.name == "demo"
    assert cfg.data.panel == "panel.csv" and cfg.data.units == "units.csv"
    assert cfg.data.family == "betabinomial"
    assert cfg.data.levels == ("collaborative", "site")
    assert cfg.indicators is not None
    assert [(c.path, c.format) for c in cfg.indicators.codes] == [("indicators.csv", "long")]
    assert cfg.indicators.codebook == "codebook.yaml"
    assert cfg.indicators.consensus == "adjudicated"
    # init's choices for the design (session 9), nothing edited
    assert (cfg.model.trend, cfg.model.effect) == ("period", "curve")
    assert cfg.estimands.horizons == (12,) and cfg.estimands.mid == 0.02
    s = cfg.sampler
    assert (s.backend, s.chains, s.draws, s.tune, s.seed) == ("nutpie", 4, 1000, 500, 20261122)
    assert cfg.report.title == "Demo QIC: did the collaboratives beat the secular trend?"
    # resolved paths are absolute, next to the config
    assert cfg.paths.panel == DEMO / "panel.csv"
    assert cfg.paths.units == DEMO / "units.csv"
    assert cfg.paths.codes == (DEMO / "indicators.csv",)
    assert cfg.paths.codebook == DEMO / "codebook.yaml"
    assert cfg.source == DEMO / "analysis.yaml" and cfg.base_dir == DEMO
    text = (DEMO / "analysis.yaml").read_text()
    assert text.count("\n  # ") > 40  # commented, key by key


def test_defaults_are_the_documented_ones(tmp_path):
    cfg = load_config(DATA / "minimal.yaml")
    assert cfg.name == "analysis" and cfg.description == ""
    d = cfg.data
    assert (d.units, d.family, d.columns, d.levels, d.covariates, d.freq, d.min_periods) == (
        None, None, {}, ("collaborative",), (), None, 6)
    assert cfg.indicators is None
    m = cfg.model
    # trend, effect, seasonality and phases are read from the design ("auto"; see
    # qicstats.models.resolve_structure and tests/test_structure.py)
    assert (m.trend, m.effect, m.spline_knots, m.seasonality, m.phases, m.random,
            m.correlated, m.centered, m.ramp, m.ar1, m.zero_sum, m.priors) == (
        "auto", "auto", None, "auto", "auto", {}, (), {}, 0, False, True, {})
    e = cfg.estimands
    assert (e.horizons, e.mid, e.direction, e.interval_prob, e.positive_deviance_prob) == (
        (12,), None, "increase", 0.95, 0.9)
    s = cfg.sampler
    assert (s.backend, s.chains, s.draws, s.tune, s.target_accept, s.seed, s.progress) == (
        "nutpie", 4, 1000, 500, "auto", 20261122, True)
    g = cfg.diagnostics
    assert (g.strict, g.rhat_warn, g.rhat_fail, g.ess_warn, g.ess_fail,
            g.divergences_fail_share) == (False, 1.01, 1.05, 400, 100, 0.005)
    r = cfg.report
    assert r.title is None and r.frequentist is True
    assert r.sections == ("diagnostics", "data", "trajectories", "estimands", "units",
                          "indicators", "ppc", "spc", "frequentist", "methods")
    assert cfg.run_title == "qicstats analysis: analysis"


def test_every_key_of_the_full_fixture(tmp_path):
    cfg = load_config(DATA / "full.yaml")
    assert cfg.data.columns == {"coder": "rater"} and cfg.data.freq == "quarter"
    codes = cfg.indicators.codes
    assert [c.format for c in codes] == ["long", "classification", "matrix"]
    assert (codes[1].wave, codes[1].coder, codes[1].case_column) == ("2024-03", "AB", "Case")
    assert codes[2].sheet == 0
    assert cfg.indicators.consensus == "coder:AB"
    assert cfg.model.random == {"baseline": ("collaborative", "site", "unit"),
                                "level": ("site", "unit"), "slope": (), "trend": ("unit",)}
    assert cfg.model.centered == {"default": "auto", "unit": False}
    # priors are kept in canonical form; YAML's `on` (read as true) is the key "on"
    assert cfg.model.priors["sd_u"] == {"dist": "InverseGamma", "alpha": 0.001, "beta": 0.001,
                                        "on": "variance"}
    assert cfg.model.priors["level_change"] == {"dist": "Normal", "mu": 0.0, "sigma": 0.5}
    assert cfg.paths.mapping == (DATA / ".." / "indicators" / "mapping.csv").resolve()


def test_config_is_frozen():
    cfg = load_config(DATA / "minimal.yaml")
    with pytest.raises(pydantic.ValidationError):
        cfg.name = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        cfg.model.trend = "linear"  # type: ignore[misc]


def test_codes_shorthand_is_a_long_table(tmp_path):
    (tmp_path / "codes.csv").write_text("unit,indicator,value\n")
    (tmp_path / "cb.yaml").write_text("indicators: {}\n")
    cfg = load_config({"data": {"panel": str(PANEL)},
                       "indicators": {"codes": "codes.csv", "codebook": "cb.yaml"}},
                      base_dir=tmp_path)
    assert [(c.path, c.format) for c in cfg.indicators.codes] == [("codes.csv", "long")]
    assert cfg.paths.codes == (tmp_path / "codes.csv",)


# ---- round trip and hashing ---------------------------------------------------------------
@pytest.mark.parametrize("src", [DEMO / "analysis.yaml", DATA / "full.yaml",
                                 DATA / "minimal.yaml"])
def test_load_dump_load_round_trip(src):
    cfg = load_config(src)
    text = dump_config(cfg)
    again = load_config(yaml.safe_load(text), base_dir=src.parent)
    assert again == cfg
    assert again.model_dump() == cfg.model_dump()
    assert config_hash(again) == config_hash(cfg)
    assert dump_config(again) == text  # stable text


def test_dumped_file_round_trips_from_disk(tmp_path):
    cfg = load_config(DEMO / "analysis.yaml")
    for f in ("panel.csv", "units.csv", "indicators.csv", "codebook.yaml"):
        shutil.copy(DEMO / f, tmp_path / f)
    out = tmp_path / "resolved.yaml"
    out.write_text(dump_config(cfg), encoding="utf-8")
    again = load_config(out)
    assert again.model_dump() == cfg.model_dump()
    # the hash covers paths as written, so the moved analysis keeps its hash
    assert config_hash(again) == config_hash(cfg)
    assert again.paths.panel == tmp_path / "panel.csv"


def test_hash_is_sha256_of_canonical_json():
    cfg = load_config(DATA / "minimal.yaml")
    d = cfg.model_dump(mode="json")
    del d["sampler"]["progress"]
    canon = json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert config_hash(cfg) == hashlib.sha256(canon.encode()).hexdigest()


def test_hash_changes_with_values_not_with_progress_or_number_spelling():
    base = {"data": {"panel": str(PANEL)}}
    h0 = config_hash(load_config(base))
    assert config_hash(load_config({**base, "sampler": {"seed": 1}})) != h0
    assert config_hash(load_config({**base, "model": {"trend": "linear"}})) != h0
    assert config_hash(load_config({**base, "sampler": {"progress": False}})) == h0
    p_int = {"level_change": {"dist": "Normal", "mu": 0, "sigma": 1}}
    p_float = {"level_change": {"dist": "Normal", "mu": 0.0, "sigma": 1.0}}
    assert (config_hash(load_config({**base, "model": {"priors": p_int}}))
            == config_hash(load_config({**base, "model": {"priors": p_float}})))


def test_data_file_hashes_are_of_the_bytes():
    cfg = load_config(DEMO / "analysis.yaml")
    h = data_file_hashes(cfg)
    assert list(h) == ["data.panel", "data.units", "indicators.codes[0].path",
                       "indicators.codebook"]
    assert h["data.panel"] == hashlib.sha256((DEMO / "panel.csv").read_bytes()).hexdigest()


# ---- model_spec ---------------------------------------------------------------------------
def test_model_spec_maps_one_to_one():
    from qicstats.models import ModelSpec

    cfg = load_config(DATA / "full.yaml")
    spec = model_spec(cfg)
    assert isinstance(spec, ModelSpec)
    assert spec.family == "binomial" and spec.trend == "rw" and spec.spline_knots == 4
    assert spec.seasonality and spec.ar1 and not spec.zero_sum and spec.ramp == 3
    assert spec.random == {"baseline": ("collaborative", "site", "unit"),
                           "level": ("site", "unit"), "slope": (), "trend": ("unit",)}
    assert spec.correlated == ("unit",) and spec.centered == {"default": "auto", "unit": False}
    assert spec.covariates == ("beds",)
    assert spec.indicators == ("management_support", "coordinator_active")
    assert spec.priors["sd_u_site"] == {"dist": "HalfNormal", "sigma": 0.3}
    assert spec.levels_for("level", cfg.data.levels) == ("site", "unit")
    # the defaults: every level for baseline/level/slope, none for the trend
    spec0 = model_spec(load_config(DATA / "minimal.yaml"))
    assert spec0.random == {} and spec0.indicators is None
    assert (spec0.trend, spec0.effect, spec0.seasonality, spec0.phases) == ("auto",) * 4


def test_vocabularies_match_the_lower_layers():
    from typing import get_args

    from qicstats.data.columns import FAMILIES, ColumnMap
    from qicstats.data.periods import FREQS
    from qicstats.indicators.consensus import RULES
    from qicstats.models.priors import PRIOR_NAMES
    from qicstats.models.spec import EFFECTS, TERMS, TRENDS

    assert get_args(S.TrendName) == TRENDS
    assert get_args(S.EffectName) == EFFECTS
    assert get_args(S.TermName) == TERMS
    assert get_args(S.FamilyName) == FAMILIES
    assert S.COLUMN_ROLES == tuple(f.name for f in fields(ColumnMap))
    assert set(get_args(S.FreqName)) <= set(FREQS)
    assert S.CONSENSUS_RULES == RULES
    assert set(S.LEVEL_PRIORS + S.INDICATOR_PRIORS) <= set(PRIOR_NAMES)


# ---- errors -------------------------------------------------------------------------------
def test_unknown_key_suggests_the_closest(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodle:\n  trend: spline\n")
    probs = problems_of(p)
    pr = one(probs, "modle")
    assert pr.rule == "config_unknown_key"
    assert "(line 3)" in pr.message and "did you mean 'model'?" in pr.hint
    assert pr.file == str(p)


def test_nested_unknown_key(tmp_path):
    p = write(tmp_path, "data:\n  pannel: panel.csv\n")
    probs = problems_of(p)
    pr = one(probs, "data.pannel")
    assert pr.rule == "config_unknown_key" and "did you mean 'panel'?" in pr.hint
    miss = one(probs, "data.panel")
    assert miss.rule == "config_missing_key"


def test_wrong_type(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\nsampler:\n  chains: four\n"
              "  progress: 1\nmodel:\n  ar1: 'yes'\n")
    probs = problems_of(p)
    pr = one(probs, "sampler.chains")
    assert pr.rule == "config_wrong_type" and "'four'" in pr.message and "(line 4)" in pr.message
    assert one(probs, "sampler.progress").rule == "config_wrong_type"
    assert one(probs, "model.ar1").rule == "config_wrong_type"


def test_wrong_type_for_bool_or_auto(tmp_path):
    """``seasonality`` and ``phases`` take true, false or auto: a wrong value is reported
    with its key, line and the allowed 'auto'."""
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodel:\n  seasonality: 'yes'\n"
              "  phases: 3\n")
    probs = problems_of(p)
    for key, line in (("model.seasonality", 4), ("model.phases", 5)):
        hits = [q for q in probs if q.message.split(" ")[0] == key]
        assert hits and all(f"(line {line})" in q.message for q in hits), key
        assert any(q.rule == "config_wrong_type" for q in hits)
        assert any("auto" in (q.hint or "") for q in hits)


def test_wrong_type_for_bool_or_auto_is_one_problem(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodel:\n  seasonality: 'yes'\n")
    one(problems_of(p), "model.seasonality")


def test_yaml_booleans_and_dates_get_a_quoting_hint(tmp_path):
    p = write(tmp_path, "name: on\ndata:\n  panel: panel.csv\nreport:\n  title: 2024-01-01\n")
    probs = problems_of(p)
    assert "quotes" in one(probs, "name").hint
    assert "quotes" in one(probs, "report.title").hint


def test_bad_literal_lists_allowed_values(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodel:\n  trend: splien\n"
              "report:\n  sections: [diagnostics, dat]\n")
    probs = problems_of(p)
    pr = one(probs, "model.trend")
    assert pr.rule == "config_bad_option" and "'splien'" in pr.message
    assert "allowed: auto, none, linear, rw, spline, period" in pr.hint
    assert "did you mean 'spline'?" in pr.hint
    assert "did you mean 'data'?" in one(probs, "report.sections[1]").hint


def test_unknown_dict_key_with_literal_keys(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodel:\n  random: {levle: [unit]}\n")
    pr = one(problems_of(p), "model.random.levle")
    assert pr.rule == "config_unknown_key" and "did you mean 'level'?" in pr.hint


def test_bad_prior_name_and_distribution(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\n  levels: [collaborative, site]\n"
              "model:\n  priors:\n"
              "    level_chnage: {dist: Normal, mu: 0, sigma: 1}\n"
              "    slope_change: {dist: Normall, mu: 0, sigma: 1}\n"
              "    intercept: {dist: Normal, muu: 0}\n"
              "    phi: {dist: Gamma, alpha: two, beta: 1}\n")
    probs = problems_of(p)
    pr = one(probs, "model.priors.level_chnage")
    assert pr.rule == "config_unknown_prior" and "did you mean 'level_change'?" in pr.hint
    assert "(line 6)" in pr.message
    pr = one(probs, "model.priors.slope_change.dist")
    assert pr.rule == "config_invalid_prior" and "did you mean 'Normal'?" in pr.hint
    assert "muu" in one(probs, "model.priors.intercept").message
    assert one(probs, "model.priors.phi.alpha").rule == "config_invalid_prior"


def test_level_and_indicator_specific_prior_names(tmp_path):
    good = {"data": {"panel": str(PANEL), "levels": ["collaborative", "site"]},
            "model": {"priors": {"sd_u_site": {"dist": "HalfNormal", "sigma": 1},
                                 "sd_slope_unit": {"dist": "HalfNormal", "sigma": 1}}}}
    assert set(load_config(good).model.priors) == {"sd_u_site", "sd_slope_unit"}
    bad = {"data": {"panel": str(PANEL)},
           "model": {"priors": {"sd_u_site": {"dist": "HalfNormal", "sigma": 1},
                                "ind_level_x": {"dist": "Normal", "sigma": 1}}}}
    probs = problems_of(bad)
    assert "unknown level 'site'" in one(probs, "model.priors.sd_u_site").message
    assert "no indicators section" in one(probs, "model.priors.ind_level_x").message


def test_indicator_names_are_checked_against_the_codebook(tmp_path):
    ind = {"codes": str(DEMO / "indicators.csv"), "codebook": str(DEMO / "codebook.yaml")}
    probs = problems_of({"data": {"panel": str(DEMO / "panel.csv")},
                         "indicators": {**ind, "use": ["management_suport"]}})
    pr = one(probs, "indicators.use[0]")
    assert pr.rule == "config_unknown_indicator"
    assert "did you mean 'management_support'?" in pr.hint
    prior = {"ind_level_coordinator_activ": {"dist": "Normal", "sigma": 1}}
    probs = problems_of({"data": {"panel": str(DEMO / "panel.csv")}, "indicators": ind,
                         "model": {"priors": prior}})
    pr = one(probs, "model.priors.ind_level_coordinator_activ")
    assert pr.rule == "config_unknown_prior"
    assert "did you mean 'coordinator_active'?" in pr.hint
    # with `use`, the prior must name a used indicator
    probs = problems_of({"data": {"panel": str(DEMO / "panel.csv")},
                         "indicators": {**ind, "use": ["management_support"]},
                         "model": {"priors": {"ind_main_coordinator_active":
                                              {"dist": "Normal", "sigma": 1}}}})
    assert "not in indicators.use" in one(probs, "model.priors.ind_main_coordinator_active").message


def test_random_levels_must_exist(tmp_path):
    probs = problems_of({"data": {"panel": str(PANEL), "levels": ["collaborative"]},
                         "model": {"random": {"level": ["collaborative", "site"]},
                                   "correlated": ["team"], "centered": {"wards": True}}})
    assert one(probs, "model.random.level[1]").rule == "config_unknown_level"
    assert one(probs, "model.correlated[0]").rule == "config_unknown_level"
    assert one(probs, "model.centered.wards").rule == "config_unknown_level"


@pytest.mark.parametrize("key,value,rule", [
    ("estimands.interval_prob", 1.5, "config_invalid_value"),
    ("estimands.interval_prob", 0, "config_invalid_value"),
    ("sampler.chains", 0, "config_invalid_value"),
    ("sampler.draws", 0, "config_invalid_value"),
    ("sampler.seed", -1, "config_invalid_value"),
    ("model.ramp", -2, "config_invalid_value"),
    ("estimands.mid", 0, "config_invalid_value"),
    ("data.freq", "daily", "config_bad_option"),
    ("sampler.backend", "stan", "config_bad_option"),
    ("indicators.consensus", "vote", "config_bad_option"),
    ("indicators.consensus", "coder:", "config_bad_option"),
])
def test_range_and_option_checks(key, value, rule, tmp_path):
    section, k = key.split(".")
    (tmp_path / "c.csv").write_text("unit,indicator,value\n")
    (tmp_path / "cb.yaml").write_text("indicators: {}\n")
    cfg = {"data": {"panel": str(PANEL)},
           "indicators": {"codes": "c.csv", "codebook": "cb.yaml"}}
    cfg.setdefault(section, {})
    cfg[section] = {**cfg[section], k: value}
    assert one(problems_of(cfg, base_dir=tmp_path), key).rule == rule


def test_consensus_rules_accepted(tmp_path):
    (tmp_path / "c.csv").write_text("unit,indicator,value\n")
    (tmp_path / "cb.yaml").write_text("indicators: {}\n")
    for rule in ("majority", "adjudicated", "uncertain", "coder:AB", "coder: Anna K"):
        cfg = load_config({"data": {"panel": str(PANEL)},
                           "indicators": {"codes": "c.csv", "codebook": "cb.yaml",
                                          "consensus": rule}}, base_dir=tmp_path)
        assert cfg.indicators.consensus == rule


def test_codes_options_by_format(tmp_path):
    (tmp_path / "c.csv").write_text("unit,indicator,value\n")
    (tmp_path / "cb.yaml").write_text("indicators: {}\n")
    probs = problems_of({"data": {"panel": str(PANEL)},
                         "indicators": {"codes": [{"path": "c.csv", "wave": "2024-01",
                                                   "case_column": "Case"},
                                                  {"path": "c.csv", "format": "excel"}],
                                        "codebook": "cb.yaml"}}, base_dir=tmp_path)
    assert "classification and matrix" in one(probs, "indicators.codes[0].wave").message
    assert one(probs, "indicators.codes[0].case_column")
    pr = one(probs, "indicators.codes[1].format")
    assert "allowed: long, classification, matrix" in pr.hint


def test_cross_checks_of_levels_thresholds_and_name():
    probs = problems_of({"name": "my run/1",
                         "data": {"panel": str(PANEL), "levels": ["site", "collaborative"],
                                  "columns": {"unitt": "ward"}},
                         "diagnostics": {"rhat_warn": 1.1, "rhat_fail": 1.05,
                                         "ess_warn": 100, "ess_fail": 400}})
    assert "valid run name" in one(probs, "name").message
    assert "first" in one(probs, "data.levels").message
    assert one(probs, "data.columns.unitt").rule == "config_unknown_key"
    assert one(probs, "diagnostics.rhat_fail")
    assert one(probs, "diagnostics.ess_fail")


def test_missing_files_name_key_and_resolved_path(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\n  units: sub/units.csv\n"
              "indicators:\n  codes: [{path: codes.csv}]\n  codebook: cb.yaml\n")
    probs = problems_of(p)
    pr = one(probs, "data.units")
    assert pr.rule == "config_file_missing"
    assert str(tmp_path / "sub" / "units.csv") in pr.message and "(line 3)" in pr.message
    assert str(tmp_path) in pr.hint
    assert one(probs, "indicators.codes[0].path").rule == "config_file_missing"
    assert one(probs, "indicators.codebook").rule == "config_file_missing"
    # without the check the same config loads
    assert load_config(p, check_files=False).data.units == "sub/units.csv"


def test_every_problem_in_one_error(tmp_path):
    p = write(tmp_path, "data:\n  panel: nope.csv\n  family: binomal\nmodel:\n  trend: x\n"
              "sampler:\n  chains: 0\nreprot: {}\n")
    probs = problems_of(p)
    keys = {p.message.split(" ")[0].rstrip(":") for p in probs}
    assert keys == {"data.panel", "data.family", "model.trend", "sampler.chains", "reprot"}


def test_yaml_syntax_error_gives_the_line():
    probs = problems_of(DATA / "bad_syntax.yaml")
    assert len(probs) == 1 and probs[0].rule == "config_yaml_syntax"
    assert "line 5" in probs[0].message


def test_duplicate_keys_are_errors(tmp_path):
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodel:\n  trend: linear\n  trend: rw\n")
    pr = one(problems_of(p), "model.trend")
    assert pr.rule == "config_duplicate_key" and "line 5" in pr.message and "line 4" in pr.message


@pytest.mark.parametrize("text,rule", [("", "config_empty"), ("- a\n- b\n", "config_not_mapping"),
                                       ("just text\n", "config_not_mapping")])
def test_empty_and_non_mapping(tmp_path, text, rule):
    p = write(tmp_path, text)
    assert [x.rule for x in problems_of(p)] == [rule]


def test_config_file_not_found(tmp_path):
    assert [x.rule for x in problems_of(tmp_path / "none.yaml")] == ["config_not_found"]


def test_unsafe_yaml_is_refused(tmp_path):
    p = write(tmp_path, "data:\n  panel: !!python/object/apply:os.getcwd []\n")
    probs = problems_of(p)
    assert [x.rule for x in probs] == ["config_yaml_syntax"]
    assert "tag" in probs[0].message and "line 2" in probs[0].message


def test_config_error_is_printed_by_the_cli(tmp_path, capsys):
    """`qicstats validate CONFIG` goes through load_config; a bad config exits 2, no traceback."""
    p = write(tmp_path, "data:\n  panel: panel.csv\nmodle: {}\n")
    code = main(["validate", str(p)])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in out + err
    assert "modle" in out + err


# ---- JSON schema --------------------------------------------------------------------------
def test_json_schema_describes_every_field():
    schema = AnalysisConfig.model_json_schema()
    assert schema["additionalProperties"] is False and schema["required"] == ["data"]
    defs = schema["$defs"]
    for name, props in [("AnalysisConfig", schema["properties"])] + [
            (k, v["properties"]) for k, v in defs.items()]:
        for key, prop in props.items():
            assert prop.get("description"), f"{name}.{key} has no description"
    for v in defs.values():
        assert v["additionalProperties"] is False
    trend = defs["ModelSection"]["properties"]["trend"]
    assert trend["enum"] == ["auto", "none", "linear", "rw", "spline", "period"]
    assert trend["default"] == "auto"
    effect = defs["ModelSection"]["properties"]["effect"]
    assert effect["enum"] == ["auto", "step", "slope", "curve"] and effect["default"] == "auto"


def test_cli_schema_prints_and_writes(tmp_path, capsys):
    assert main(["schema"]) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out) == AnalysisConfig.model_json_schema()
    target = tmp_path / "sub" / "qicstats.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == AnalysisConfig.model_json_schema()
