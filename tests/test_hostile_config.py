"""Hostile configs (issue 17): resource limits, files that are not files, priors outside their
domain, absurd sampler settings, horizons beyond the data, the fast preset.

Each case asserts the exact rule id and that every input file is byte-identical afterwards;
none samples.
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import pytest
import yaml
from _hostile import BASE_CONFIG, Untouched, project, rule_of, rules_of

from qicstats.config import config_hash, dump_config, load_config
from qicstats.errors import ConfigError

BOMB = "\n".join(
    ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    + [f"{b}: &{b} [{', '.join(['*' + a] * 9)}]" for a, b in zip("abcde", "bcdef")]
    + ["data: {panel: data/panel.csv}"]) + "\n"


def cfg(**sections) -> dict:
    out = copy.deepcopy(BASE_CONFIG)
    for k, v in sections.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


def load_error(tmp_path: Path, config: dict | None = None, text: str | None = None
               ) -> ConfigError:
    path = project(tmp_path, config)
    if text is not None:
        path.write_text(text, encoding="utf-8")
    guard = Untouched(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    guard.check()
    return info.value


# ---- YAML resource limits -----------------------------------------------------------------
def test_alias_bomb_is_refused_quickly(tmp_path):
    t = time.perf_counter()
    err = load_error(tmp_path, text=BOMB)
    assert rule_of(err) == "config_too_large"
    assert "alias" in str(err)
    assert time.perf_counter() - t < 10


def test_many_aliases_are_refused(tmp_path):
    text = "x: &x 1\nl: [" + ", ".join(["*x"] * 1500) + "]\ndata: {panel: data/panel.csv}\n"
    assert rule_of(load_error(tmp_path, text=text)) == "config_too_many_aliases"


@pytest.mark.parametrize("text", [
    "data: " + "[" * 10000 + "]" * 10000,
    "data:\n  " + "- " * 10000 + "x\n",
    "data: " + "{a: " * 3000 + "1" + "}" * 3000,
], ids=["flow-list", "block-list", "flow-map"])
def test_deep_nesting_is_refused_without_recursion(tmp_path, text):
    err = load_error(tmp_path, text=text)
    assert rule_of(err) == "config_too_deep"
    assert "64 levels" in str(err)


def test_oversized_config_is_refused(tmp_path):
    text = "description: '" + "x" * (1 << 20) + "'\ndata: {panel: data/panel.csv}\n"
    err = load_error(tmp_path, text=text)
    assert rule_of(err) == "config_file_too_large"


def test_aliases_are_checked_once_for_duplicate_keys(tmp_path):
    # a shared mapping reached through aliases: the duplicate-key scan must not revisit it
    text = ("p: &p {dist: Normal, mu: 0, sigma: 1}\n"
            "data: {panel: data/panel.csv, units: data/units.csv}\n"
            "model: {trend: linear, priors: {level_change: *p}}\n")
    path = project(tmp_path)
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as err:  # the stray top-level key p is reported, nothing else
        assert set(rules_of(err)) == {"config_unknown_key"}


# ---- files that are not files -------------------------------------------------------------
def test_config_fifo_is_refused_without_blocking(tmp_path):
    project(tmp_path)
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError) as info:
        load_config(fifo)
    assert rule_of(info.value) == "config_not_regular_file"
    assert "named pipe" in str(info.value)


@pytest.mark.parametrize("dev", ["/dev/zero", "/dev/null"])
def test_config_device_is_not_reported_as_missing(dev):
    if not os.path.exists(dev):
        pytest.skip(f"no {dev}")
    with pytest.raises(ConfigError) as info:
        load_config(dev)
    assert rule_of(info.value) == "config_not_regular_file"
    assert "not found" not in str(info.value)


def test_config_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert rule_of(info.value) == "config_not_a_file"
    assert "is a folder" in str(info.value)


def test_data_file_fifo(tmp_path):
    path = project(tmp_path, cfg(data={"panel": "data/pipe.csv"}))
    os.mkfifo(tmp_path / "data" / "pipe.csv")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert rule_of(info.value) == "config_not_regular_file"
    assert "data.panel" in str(info.value)


def test_data_file_device(tmp_path):
    err = load_error(tmp_path, cfg(data={"units": "/dev/zero"}))
    assert rule_of(err) == "config_not_regular_file"
    assert "data.units" in str(err) and "character device" in str(err)


def test_data_file_is_a_folder(tmp_path):
    err = load_error(tmp_path, cfg(data={"panel": "data"}))
    assert rule_of(err) == "config_file_missing"
    assert "folder" in str(err)


def test_config_in_latin1_is_reported_not_crashed(tmp_path):
    path = project(tmp_path)
    path.write_bytes(path.read_bytes() + "description: 'Århus'\n".encode("latin-1"))
    guard = Untouched(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    guard.check()
    assert rule_of(info.value) == "config_unreadable"


# ---- priors outside their domain ----------------------------------------------------------
@pytest.mark.parametrize("prior, key", [
    ({"dist": "Normal", "mu": 0, "sigma": -1}, "sigma"),
    ({"dist": "Normal", "mu": 0, "sigma": 0}, "sigma"),
    ({"dist": "HalfNormal", "sigma": -0.5}, "sigma"),
    ({"dist": "StudentT", "nu": -3, "mu": 0, "sigma": 1}, "nu"),
    ({"dist": "Gamma", "alpha": 2, "beta": -0.1}, "beta"),
    ({"dist": "Exponential", "lam": 0}, "lam"),
    ({"dist": "LogNormal", "mu": 0, "sigma": -2}, "sigma"),
    ({"dist": "Normal", "mu": float("inf"), "sigma": 1}, "mu"),
])
def test_prior_parameter_outside_its_domain(tmp_path, prior, key):
    err = load_error(tmp_path, cfg(model={"trend": "linear", "priors": {"level_change": prior}}))
    assert rule_of(err) == "config_invalid_prior"
    msg = str(err)
    assert f"model.priors.level_change.{key}" in msg


def test_uniform_prior_needs_lower_below_upper(tmp_path):
    err = load_error(tmp_path, cfg(model={"trend": "linear", "priors": {
        "ar_rho": {"dist": "Uniform", "lower": 0.9, "upper": -0.9}}}))
    assert rule_of(err) == "config_invalid_prior"
    assert "lower < upper" in str(err)


# ---- absurd sampler settings --------------------------------------------------------------
@pytest.mark.parametrize("sampler, key", [
    ({"draws": 10**12}, "sampler.draws"),
    ({"draws": "1e12"}, "sampler.draws"),
    ({"chains": 1000}, "sampler.chains"),
    ({"tune": 10**7}, "sampler.tune"),
    ({"chains": 64, "draws": 100_000}, "sampler.draws"),
    ({"draws": 0}, "sampler.draws"),
    ({"preset": "turbo"}, "sampler.preset"),
])
def test_sampler_settings_have_sane_bounds(tmp_path, sampler, key):
    err = load_error(tmp_path, cfg(sampler=sampler))
    assert len(err.problems) == 1
    assert err.problems[0].message.startswith(key)


# ---- the fast preset ----------------------------------------------------------------------
def test_fast_preset_is_in_the_resolved_config_and_the_hash(tmp_path):
    path = project(tmp_path, cfg(sampler={"draws": 1000, "tune": 500, "chains": 4}))
    slow = load_config(path)
    fast_path = project(tmp_path, cfg(sampler={"preset": "fast", "draws": 1000, "tune": 500,
                                               "chains": 4}), name="fast.yaml")
    fast = load_config(fast_path)
    assert (fast.sampler.chains, fast.sampler.draws, fast.sampler.tune) == (2, 150, 200)
    assert config_hash(fast) != config_hash(slow)
    text = dump_config(fast)
    assert "preset: fast" in text and "draws: 150" in text
    # the resolved config loads back to the same config (the preset is idempotent)
    again = tmp_path / "again.yaml"
    again.write_text(text, encoding="utf-8")
    assert config_hash(load_config(again)) == config_hash(fast)


def test_fast_preset_never_lengthens_a_short_run(tmp_path):
    c = load_config(project(tmp_path, cfg(sampler={"preset": "fast", "draws": 40, "tune": 10})))
    assert (c.sampler.draws, c.sampler.tune) == (40, 10)


# ---- horizons beyond the data (checked with the data, before the model is built) ----------
def test_horizon_beyond_the_data_is_an_error(tmp_path):
    from qicstats.pipeline import prepare

    path = project(tmp_path, cfg(estimands={"horizons": [3, 1000]}))
    guard = Untouched(tmp_path)
    with pytest.raises(ConfigError) as info:
        prepare(path)
    guard.check()
    assert rule_of(info.value) == "horizon_beyond_data"
    msg = str(info.value)
    assert "estimands.horizons[1]" in msg and "1000" in msg and "longest follow-up" in msg


def test_horizon_reached_by_some_units_only_warns(tmp_path):
    from qicstats.data import validate
    from qicstats.pipeline import _horizon_problems

    path = project(tmp_path, cfg(estimands={"horizons": [7]}))
    c = load_config(path)
    data = validate(c.paths.panel, c.paths.units, family="binomial",
                    levels=("collaborative", "site"))
    warns = _horizon_problems(c, data)
    assert [w.rule for w in warns] == ["horizon_partly_beyond_data"]
    assert warns[0].severity == "warning"


def test_yaml_text_with_a_python_tag_is_not_executed(tmp_path):
    text = ("data: {panel: data/panel.csv}\n"
            "description: !!python/object/apply:os.system ['touch hacked']\n")
    err = load_error(tmp_path, text=text)
    assert rule_of(err) == "config_yaml_syntax"
    assert not (tmp_path / "hacked").exists()


def test_config_that_is_a_list_is_reported(tmp_path):
    err = load_error(tmp_path, text=yaml.safe_dump([1, 2, 3]))
    assert rule_of(err) == "config_not_mapping"
