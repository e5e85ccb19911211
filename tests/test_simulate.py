"""Tests of the synthetic QIC generator (`qicstats.simulate`) and `qicstats simulate`.

Fast: no sampling. The true estimands are recomputed here, independently of the generator's
code, from the written files and the parameters in truth.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from qicstats.cli import main
from qicstats.errors import ConfigError, QicstatsError, RunExistsError
from qicstats.simulate import (
    FILE_NAMES,
    PRESETS,
    SimulatedQIC,
    simulate,
    simulate_patient_rows,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "data" / "synthetic"


@pytest.fixture(scope="module")
def demo() -> SimulatedQIC:
    return simulate("demo")


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory, demo) -> Path:
    out = tmp_path_factory.mktemp("sim") / "demo"
    demo.write(out)
    return out


def _read(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict, dict]:
    panel = pd.read_csv(folder / "panel.csv", dtype={"unit": str, "period": str})
    units = pd.read_csv(folder / "units.csv", dtype=str, keep_default_na=False,
                        na_values=[""])
    ind = pd.read_csv(folder / "indicators.csv", dtype=str, keep_default_na=False)
    truth = json.loads((folder / "truth.json").read_text())
    codebook = yaml.safe_load((folder / "codebook.yaml").read_text())
    return panel, units, ind, truth, codebook


def _month(label: str) -> int:
    y, m = label.split("-")
    return int(y) * 12 + int(m) - 1


# ---------------------------------------------------------------------------------------
# independent recomputation of the truth
# ---------------------------------------------------------------------------------------

def _recompute(folder: Path) -> dict[tuple[str, str, str], float]:
    """Recompute every estimand from the files + truth parameters (not generator code)."""
    panel, units, _ind, truth, codebook = _read(folder)
    par, eff = truth["parameters"], truth["effects"]
    T = truth["n_periods"]
    t0 = _month(truth["periods"]["first"])
    t = np.arange(T)
    f = par["trend_linear"] * t / (T - 1) + par["trend_amplitude"] * np.sin(2 * np.pi * t / (T - 1))
    np.testing.assert_allclose(f, truth["trend"]["values"], atol=1e-12)
    link_inv = {"logit": lambda x: 1 / (1 + np.exp(-x)), "log": np.exp,
                "identity": lambda x: x}[truth["link"]]

    # true z(t) per unit and indicator
    z: dict[str, dict[str, np.ndarray]] = {}
    by = {}
    for rec in truth["true_indicator_levels"]:
        by.setdefault((rec["unit"], rec["indicator"]), []).append(rec)
    for (unit, name), recs in by.items():
        spec = codebook["indicators"][name]
        levels = [str(x) for x in spec["levels"]]
        if spec["type"] == "ordinal":
            mo = np.concatenate([[0.0], np.cumsum(par["mo_simplex"][name])])
        else:
            mo = np.array([0.0, 1.0])
        recs = sorted(recs, key=lambda r: r["wave"])
        vals = [mo[levels.index(r["value"])] for r in recs]
        arr = np.full(T, vals[0] if spec["carry_back"] else 0.0)
        for r, v in zip(recs, vals):
            arr[_month(r["wave"]) - t0:] = v
        z.setdefault(unit, {})[name] = arr

    rows = {}
    for u in units.itertuples(index=False):
        coll = u.collaborative if isinstance(u.collaborative, str) else "(comparison)"
        base = (par["intercept"] + f + eff["u_collaborative"][coll] + eff["u_site"][u.site]
                + eff["u_unit"][u.unit])
        zs = z.get(u.unit, {})
        main = sum((par["ind_main"][k] * v for k, v in zs.items()), np.zeros(T))
        eta_cf = base + main
        if isinstance(u.join_period, str):
            J = _month(u.join_period) - t0
            post = t >= J
            e = np.where(post, t - J, 0)
            D = post * (np.minimum(1, (t - J + 1) / par["ramp"]) if par["ramp"] else 1.0)
            lvl = (par["level_change"] + eff["v_level_collaborative"][coll]
                   + eff["v_level_site"][u.site] + eff["v_level_unit"][u.unit]
                   + sum((par["ind_level"][k] * v for k, v in zs.items()), np.zeros(T)))
            slp = (par["slope_change"] + eff["v_slope_collaborative"][coll]
                   + eff["v_slope_site"][u.site] + eff["v_slope_unit"][u.unit]
                   + sum((par["ind_slope"][k] * v for k, v in zs.items()), np.zeros(T)))
            eta = eta_cf + D * lvl + e * slp
        else:
            J, eta = None, eta_cf
        rows[u.unit] = (coll, J, link_inv(eta), link_inv(eta_cf))

    obs = panel.assign(t=panel["period"].map(_month) - t0)
    recs = []
    for r in obs.itertuples(index=False):
        coll, J, p, pcf = rows[r.unit]
        if J is not None and r.t >= J:
            recs.append((r.unit, coll, p[r.t] - pcf[r.t], pcf[r.t] - pcf[J]))
    df = pd.DataFrame(recs, columns=["unit", "coll", "att", "tc"])
    out = {}
    for name, col in (("att", "att"), ("trend_change", "tc")):
        out[(name, "overall", "all")] = df[col].mean()
        for g, v in df.groupby("coll")[col].mean().items():
            out[(name, "collaborative", g)] = v
        for g, v in df.groupby("unit")[col].mean().items():
            out[(name, "unit", g)] = v
    for h in truth["settings"]["horizons"]:
        hz = [(u, coll, p[J + h] - pcf[J + h]) for u, (coll, J, p, pcf) in rows.items()
              if J is not None and J + h <= T - 1]
        if hz:
            hdf = pd.DataFrame(hz, columns=["unit", "coll", "d"])
            out[(f"att_horizon_{h}", "overall", "all")] = hdf["d"].mean()
            for g, v in hdf.groupby("coll")["d"].mean().items():
                out[(f"att_horizon_{h}", "collaborative", g)] = v
    return out


@pytest.mark.parametrize("preset, overrides", [
    ("demo", {}),
    ("small", {"family": "poisson", "ramp": 3}),
    ("small", {"family": "gaussian", "horizons": [3, 6]}),
])
def test_truth_estimands_recomputed_from_files(tmp_path, preset, overrides):
    folder = tmp_path / "d"
    simulate(preset, seed=7, **overrides).write(folder)
    mine = _recompute(folder)
    truth = json.loads((folder / "truth.json").read_text())
    stored = {(e["estimand"], e["scope"], e["group"]): e["value"] for e in truth["estimands"]}
    assert mine.keys() <= stored.keys()
    assert ("att", "overall", "all") in mine and ("trend_change", "overall", "all") in mine
    for key, val in mine.items():
        assert stored[key] == pytest.approx(val, rel=1e-9, abs=1e-12), key
    # every participating unit has its own att
    n_part = int(pd.read_csv(folder / "units.csv")["collaborative"].notna().sum())
    assert sum(1 for k in stored if k[:2] == ("att", "unit")) == n_part


def test_demo_truth_is_a_clear_improvement(demo):
    est = {(e["estimand"], e["scope"]): e["value"] for e in demo.truth["estimands"]}
    assert est[("att", "overall")] > 0.05
    assert est[("trend_change", "overall")] > 0  # what happens anyway
    assert est[("att_horizon_12", "overall")] > 0
    assert demo.truth["parameters"]["phi"] == 150.0
    assert demo.truth["family"] == "betabinomial"


# ---------------------------------------------------------------------------------------
# determinism and files
# ---------------------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    paths = simulate("demo", seed=11).write(a)
    simulate("demo", seed=11).write(b)
    assert set(paths) == set(FILE_NAMES)
    for name in FILE_NAMES.values():
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = tmp_path / "c"
    simulate("demo", seed=12).write(c)
    assert (a / "panel.csv").read_bytes() != (c / "panel.csv").read_bytes()


def test_does_not_overwrite_without_permission_and_keeps_other_files(tmp_path):
    out = tmp_path / "x"
    simulate("small").write(out)
    (out / "analysis.yaml").write_text("keep me\n")
    with pytest.raises(RunExistsError):
        simulate("small", seed=3).write(out)
    before = (out / "panel.csv").read_bytes()
    simulate("small", seed=3).write(out, overwrite=True)
    assert (out / "panel.csv").read_bytes() != before
    assert (out / "analysis.yaml").read_text() == "keep me\n"
    # no temporary siblings left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    # an existing empty folder is fine
    (tmp_path / "empty").mkdir()
    simulate("small").write(tmp_path / "empty")


def _assert_same_json(a, b, where) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            _assert_same_json(a[k], b[k], (*where, k))
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_json(x, y, (*where, i))
    elif isinstance(a, float) and not isinstance(b, bool) and isinstance(b, int | float):
        assert b == pytest.approx(a, rel=1e-12, abs=1e-15), where
    else:
        assert a == b, where


def test_shipped_datasets_regenerate_byte_for_byte(tmp_path):
    for preset in ("demo", "small"):
        shipped = SHIPPED / preset
        assert shipped.is_dir(), shipped
        fresh = tmp_path / preset
        simulate(preset, seed=20261122).write(fresh)
        for name in FILE_NAMES.values():
            if name.endswith(".json"):
                # the truth's floats are written with repr: their last digit follows the
                # machine's floating point (CPU, numpy build), so compare them to 1e-12
                _assert_same_json(json.loads((shipped / name).read_text()),
                                  json.loads((fresh / name).read_text()), (preset, name))
                continue
            assert (shipped / name).read_bytes() == (fresh / name).read_bytes(), (preset, name)
        size = sum(p.stat().st_size for p in shipped.rglob("*") if p.is_file())
        assert size < 1_000_000
    text = (SHIPPED / "README.md").read_text()
    assert "qicstats simulate --preset demo --seed 20261122 -o data/synthetic/demo" in text
    assert "qicstats simulate --preset small --seed 20261122 -o data/synthetic/small" in text


def test_written_tables_match_the_object(demo, demo_dir):
    panel, units, ind, truth, codebook = _read(demo_dir)
    assert list(panel.columns) == ["unit", "period", "numerator", "denominator"]
    assert list(units.columns) == ["unit", "collaborative", "site", "join_period", "end_period"]
    assert list(ind.columns) == ["unit", "indicator", "value", "wave", "coder"]
    pd.testing.assert_frame_equal(panel, demo.panel.astype({"unit": object, "period": object}),
                                  check_dtype=False)
    assert codebook == demo.codebook
    assert codebook["indicators"]["coordinator_active"]["levels"] == ["no", "yes"]
    assert codebook["indicators"]["management_support"] == {
        "label": "Management support", "type": "ordinal",
        "levels": ["weak", "moderate", "strong"], "role": "moderator", "describes": "unit",
        "carry_back": True}
    assert truth["seed"] == 20261122 and truth["preset"] == "demo"
    for key in ("preset", "seed", "family", "n_units", "n_periods", "trend", "parameters",
                "effects", "estimands", "true_indicator_levels"):
        assert key in truth
    p = truth["parameters"]
    for key in ("intercept", "level_change", "slope_change", "sd_u_collaborative", "sd_u_site",
                "sd_u_unit", "sd_level_collaborative", "sd_level_site", "sd_level_unit",
                "sd_slope_collaborative", "sd_slope_site", "sd_slope_unit", "ind_level",
                "ind_slope", "ind_main", "mo_simplex", "phi"):
        assert key in p
    assert p["ind_level"] == {"management_support": 0.35, "coordinator_active": 0.25}
    assert p["ind_main"]["coordinator_active"] == 0.1
    assert sum(p["mo_simplex"]["management_support"]) == pytest.approx(1.0)
    assert "sin(2*pi*t/(T-1))" in truth["trend"]["formula"]
    assert "qicstats simulate --preset demo --seed 20261122" in (demo_dir / "README.md").read_text()


# ---------------------------------------------------------------------------------------
# structure
# ---------------------------------------------------------------------------------------

def test_structure_of_demo(demo):
    units, panel, ind = demo.units, demo.panel, demo.indicators
    assert len(units) == 100
    comp = units["collaborative"].isna()
    assert comp.sum() == 25
    assert units.loc[comp, "join_period"].isna().all()
    assert units.loc[~comp, "join_period"].notna().all()
    assert units["end_period"].isna().all()
    assert units["unit"].is_unique
    assert units["collaborative"].dropna().nunique() == 4
    # sites nest in collaboratives
    assert (units.dropna(subset=["collaborative"]).groupby("site")["collaborative"].nunique()
            == 1).all()
    # comparison units: no indicator rows
    assert not set(ind["unit"]) & set(units.loc[comp, "unit"])
    # staggered joins, >= 6 pre months, joins at start + 0..2
    first = _month("2022-01")
    jt = units.loc[~comp, "join_period"].map(_month) - first
    assert jt.min() >= 6
    assert jt.nunique() >= 6
    starts = {c: _month(s) - first for c, s in demo.truth["collaborative_start"].items()}
    off = jt.to_numpy() - units.loc[~comp, "collaborative"].map(starts).to_numpy()
    assert set(off) <= {0, 1, 2} and len(set(off)) > 1
    assert len(set(starts.values())) == 4
    # periods: YYYY-MM from 2022-01, 36 months, gaps within units (about 2 %)
    assert sorted(panel["period"].unique())[0] == "2022-01"
    assert panel["period"].nunique() == 36
    missing = 1 - len(panel) / (100 * 36)
    assert 0.005 < missing < 0.04
    per_unit = panel.groupby("unit").size()
    assert (per_unit < 36).sum() > 10
    assert set(per_unit.index) == set(units["unit"])  # units with gaps keep their rows
    assert not panel.duplicated(["unit", "period"]).any()


def test_missing_management_codes_keep_outcome_rows(demo):
    units, ind = demo.units, demo.indicators
    part = set(units.loc[units["collaborative"].notna(), "unit"])
    coded = set(ind.loc[ind["indicator"] == "management_support", "unit"])
    no_codes = part - coded
    assert len(no_codes) == round(0.10 * len(part))  # 8 of 75
    assert no_codes <= set(demo.panel["unit"])
    # but they have coordinator codes, and their truth is recorded as not coded
    assert no_codes <= set(ind.loc[ind["indicator"] == "coordinator_active", "unit"])
    uncoded = {r["unit"] for r in demo.truth["true_indicator_levels"]
               if r["indicator"] == "management_support" and not r["coded"]}
    assert uncoded == no_codes


def test_waves_and_level_changes(demo):
    ind = demo.indicators
    ms = ind[(ind["indicator"] == "management_support") & (ind["coder"] == "A")]
    waves = ms.groupby("unit")["wave"].apply(lambda s: sorted(set(s)))
    assert (waves.map(len) == 2).all()
    assert all(_month(w[1]) - _month(w[0]) == 12 for w in waves)
    # wave 1 is the collaborative's start month
    coll = demo.units.set_index("unit")["collaborative"]
    start = demo.truth["collaborative_start"]
    assert all(w[0] == start[coll[u]] for u, w in waves.items())
    true = pd.DataFrame(demo.truth["true_indicator_levels"])
    tm = true[true["indicator"] == "management_support"].sort_values(["unit", "wave"])
    changed = tm.groupby("unit")["value"].nunique() > 1
    assert 0.1 < changed.mean() < 0.6
    # coordinator: one wave, at the unit's join
    ca = ind[(ind["indicator"] == "coordinator_active") & (ind["coder"] == "A")]
    joins = demo.units.set_index("unit")["join_period"]
    assert (ca["wave"].to_numpy() == joins.loc[ca["unit"]].to_numpy()).all()
    assert ca.groupby("unit").size().max() == 1


def test_coders_disagree_at_the_configured_rate():
    acc = 0.88
    sim = simulate("demo", seed=5, n_units=500, n_comparison=50)
    ind, true = sim.indicators, pd.DataFrame(sim.truth["true_indicator_levels"])
    key = ["unit", "indicator", "wave"]
    wide = ind.pivot_table(index=key, columns="coder", values="value", aggfunc="first")
    items = true[true["coded"]].set_index(key)["value"]
    assert len(wide) == len(items)
    assert wide["A"].notna().all()  # coder A codes every item
    double = wide["B"].notna()
    assert 0.35 < double.mean() < 0.45
    # adjudicated rows exactly on the double-coded items, holding the true value
    assert (wide["adjudicated"].notna() == double).all()
    assert (wide.loc[double, "adjudicated"] == items.loc[wide.index[double]]).all()
    # each coder records the true level with probability ~0.88
    err_a = (wide["A"] != items.loc[wide.index]).mean()
    assert abs(err_a - (1 - acc)) < 0.03
    err_b = (wide.loc[double, "B"] != items.loc[wide.index[double]]).mean()
    assert abs(err_b - (1 - acc)) < 0.04
    # A and B disagree at about 1 - acc^2 - (both wrong the same way)
    disagree = (wide.loc[double, "A"] != wide.loc[double, "B"]).mean()
    assert 0.16 < disagree < 0.26
    # wrong codes are adjacent levels
    order = {"weak": 0, "moderate": 1, "strong": 2}
    ms = wide.loc[wide.index.get_level_values("indicator") == "management_support", "A"]
    gap = (ms.map(order) - items.loc[ms.index].map(order)).abs()
    assert gap.max() == 1


def test_perfect_coders_and_no_missing_codes():
    sim = simulate("small", coder_accuracy=1.0, double_code_share=1.0,
                   missing_code_share={"management_support": 0.0})
    wide = sim.indicators.pivot_table(index=["unit", "indicator", "wave"], columns="coder",
                                      values="value", aggfunc="first")
    assert wide.notna().all().all()
    assert (wide["A"] == wide["B"]).all() and (wide["A"] == wide["adjudicated"]).all()


# ---------------------------------------------------------------------------------------
# families and presets
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["binomial", "betabinomial", "poisson", "negbinomial",
                                    "gaussian"])
def test_every_family_gives_valid_data(family):
    sim = simulate("small", family=family, seed=3)
    p = sim.panel
    assert sim.truth["family"] == family
    if family in ("binomial", "betabinomial"):
        assert list(p.columns) == ["unit", "period", "numerator", "denominator"]
        assert pd.api.types.is_integer_dtype(p["numerator"])
        assert pd.api.types.is_integer_dtype(p["denominator"])
        assert (p["numerator"] >= 0).all() and (p["numerator"] <= p["denominator"]).all()
        assert (p["denominator"] >= 5).all()
        assert sim.truth["response_scale"] == "probability"
    elif family in ("poisson", "negbinomial"):
        assert list(p.columns) == ["unit", "period", "count", "exposure"]
        assert pd.api.types.is_integer_dtype(p["count"])
        assert pd.api.types.is_integer_dtype(p["exposure"])
        assert (p["count"] >= 0).all() and (p["exposure"] > 0).all()
        assert 200 < p["exposure"].mean() < 1600
        # improvement means fewer events
        att = [e["value"] for e in sim.truth["estimands"]
               if e["estimand"] == "att" and e["scope"] == "overall"][0]
        assert att < 0
        assert sim.truth["parameters"]["level_change"] < 0
    else:
        assert list(p.columns) == ["unit", "period", "value"]
        assert np.isfinite(p["value"]).all()
        assert sim.truth["parameters"]["sigma"] == 0.25
    assert not p.isna().any().any()


def test_negbinomial_is_overdispersed_relative_to_poisson():
    common = dict(seed=9, sd_u_unit=0.0, sd_u_site=0.0, sd_u_collaborative=0.0, indicators=[],
                  n_units=200, n_comparison=200 - 6, sites_per_collaborative=3,
                  exposure_min=1000.0, exposure_max=1000.0)
    ratios = {}
    for fam in ("poisson", "negbinomial"):
        p = simulate("small", family=fam, alpha=5.0, **common).panel
        cmp_rows = p[p["unit"].str.startswith("CMP")]
        rate = cmp_rows["count"] / cmp_rows["exposure"]
        # variance / mean of counts within a period (same mean for comparison units)
        g = cmp_rows.assign(r=rate).groupby("period")["count"]
        ratios[fam] = float((g.var() / g.mean()).mean())
    assert 0.7 < ratios["poisson"] < 1.3
    assert ratios["negbinomial"] > 1.5


@pytest.mark.parametrize("name, n_units, T, C", [("small", 24, 18, 2), ("S", 40, 24, 4),
                                                  ("M", 200, 36, 10)])
def test_presets_sizes(name, n_units, T, C):
    sim = simulate(name)
    assert len(sim.units) == n_units
    assert sim.panel["period"].nunique() == T
    assert sim.units["collaborative"].dropna().nunique() == C
    if name in ("S", "M"):
        assert sim.truth["family"] == "binomial"
        assert set(sim.indicators["coder"]) == {"A"}
        assert {s["role"] for s in sim.truth["settings"]["indicators"]} == {"moderator"}
        par = sim.truth["parameters"]
        assert par["sd_level_site"] > 0 and par["sd_slope_collaborative"] > 0
        assert par["sd_level_unit"] == 0 and par["sd_slope_unit"] == 0


def test_L_preset_is_declared():
    assert PRESETS["L"]["n_units"] == 1000 and PRESETS["L"]["n_periods"] == 48
    assert PRESETS["L"]["n_collaboratives"] == 20


def test_no_indicators_and_continuous_indicator():
    sim = simulate("small", indicators=[])
    assert sim.indicators.empty
    assert list(sim.indicators.columns) == ["unit", "indicator", "value", "wave", "coder"]
    assert sim.codebook == {"indicators": {}}
    cont = {"name": "climate", "type": "continuous", "role": "main", "waves": [0]}
    sim = simulate("small", indicators=[cont], ind_main={"climate": 0.2})
    assert sim.codebook["indicators"]["climate"]["type"] == "continuous"
    assert "levels" not in sim.codebook["indicators"]["climate"]
    vals = sim.indicators["value"].astype(float)
    assert np.isfinite(vals).all()


def test_ramp_phases_the_change_in():
    step = simulate("small", seed=4)
    ramp = simulate("small", seed=4, ramp=6)
    att = {k: [e["value"] for e in s.truth["estimands"]
               if e["estimand"] == "att" and e["scope"] == "overall"][0]
           for k, s in (("step", step), ("ramp", ramp))}
    assert 0 < att["ramp"] < att["step"]


def test_patient_rows_aggregate_back_to_the_panel():
    sim = simulate("small")
    rows = simulate_patient_rows(sim)
    assert list(rows.columns) == ["unit", "period", "outcome"]
    assert set(rows["outcome"].unique()) <= {0, 1}
    agg = (rows.groupby(["unit", "period"], sort=True)["outcome"].agg(["sum", "size"])
           .reset_index())
    panel = sim.panel.sort_values(["unit", "period"]).reset_index(drop=True)
    assert (agg["sum"].to_numpy() == panel["numerator"].to_numpy()).all()
    assert (agg["size"].to_numpy() == panel["denominator"].to_numpy()).all()
    again = simulate_patient_rows(sim)
    pd.testing.assert_frame_equal(rows, again)
    with pytest.raises(QicstatsError):
        simulate_patient_rows(simulate("small", family="poisson"))


def test_inputs_are_not_modified():
    before = json.dumps(PRESETS, sort_keys=True, default=str)
    ind = [{"name": "climate", "type": "continuous", "role": "main"}]
    snapshot = json.dumps(ind)
    simulate("small", family="poisson", indicators=ind, ind_main={"climate": 0.2})
    assert json.dumps(PRESETS, sort_keys=True, default=str) == before
    assert json.dumps(ind) == snapshot


# ---------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------

def test_bad_settings_are_all_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        simulate("small", n_periodz=3, coder_accuracy=1.5, family="weibull",
                 ind_level={"nonexistent": 0.3}, n_comparison=23)
    rules = [(p.rule, p.column) for p in exc.value.problems]
    assert ("unknown_setting", None) in rules
    assert ("bad_setting", "coder_accuracy") in rules
    assert ("bad_setting", "family") in rules
    assert ("bad_setting", "ind_level") in rules
    assert ("bad_setting", "n_units") in rules
    with pytest.raises(ConfigError):
        simulate("XL")
    with pytest.raises(ConfigError):
        simulate("small", seed=-1)


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------

def test_cli_writes_and_refuses_existing_folder(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["simulate", "--preset", "small", "--seed", "5", "--set", "n_units=30",
               "--set", "ind_level.management_support=0.5", "-o", str(out)])
    assert rc == 0
    assert "Wrote 6 files" in capsys.readouterr().out
    direct = tmp_path / "direct"
    simulate("small", seed=5, n_units=30, ind_level={"management_support": 0.5}).write(direct)
    for name in FILE_NAMES.values():
        assert (out / name).read_bytes() == (direct / name).read_bytes(), name
    truth = json.loads((out / "truth.json").read_text())
    assert truth["parameters"]["ind_level"]["management_support"] == 0.5
    assert truth["parameters"]["ind_level"]["coordinator_active"] == 0.25
    readme = (out / "README.md").read_text()
    assert "--set 'n_units=30'" in readme
    # refuses a non-empty folder without --overwrite
    rc = main(["simulate", "--preset", "small", "-o", str(out)])
    assert rc == 2
    assert "not empty" in capsys.readouterr().err
    rc = main(["simulate", "--preset", "small", "--family", "negbinomial", "-o", str(out),
               "--overwrite"])
    assert rc == 0
    assert "count" in (out / "panel.csv").read_text().splitlines()[0]


def test_cli_bad_input_exits_2(tmp_path, capsys):
    rc = main(["simulate", "--preset", "small", "--set", "nokey", "-o", str(tmp_path / "z")])
    assert rc == 2
    rc = main(["simulate", "--preset", "small", "--set", "n_units=lots", "-o",
               str(tmp_path / "z")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "n_units" in err and "Traceback" not in err
    assert not (tmp_path / "z").exists()


# ---------------------------------------------------------------------------------------
# the shipped demo validates
# ---------------------------------------------------------------------------------------

def _validator():
    from qicstats.data import validate

    return validate


@pytest.mark.parametrize("preset, family", [("demo", "betabinomial"), ("small", "binomial")])
def test_shipped_data_validate_without_errors_or_warnings(preset, family):
    validate = _validator()
    folder = SHIPPED / preset
    result = validate(folder / "panel.csv", units=folder / "units.csv", family=family,
                      levels=("collaborative", "site"))
    summary = result.summary()
    truth = json.loads((folder / "truth.json").read_text())
    assert summary["n_units"] == truth["n_units"]
    assert summary["n_periods"] == truth["n_periods"]
    assert summary["n_comparison"] == truth["settings"]["n_comparison"]
    assert summary["levels"] == ["collaborative", "site"]
    assert list(result.warnings) == []


@pytest.mark.parametrize("family", ["poisson", "negbinomial", "gaussian"])
def test_other_families_validate(family):
    validate = _validator()
    sim = simulate("small", family=family)
    result = validate(sim.panel, units=sim.units, family=family,
                      levels=("collaborative", "site"))
    assert result.family == family and len(result.panel) == len(sim.panel)


def test_shipped_demo_indicators_encode():
    validate = _validator()
    from qicstats.indicators import encode, load_codebook, load_indicators

    folder = SHIPPED / "demo"
    data = validate(folder / "panel.csv", units=folder / "units.csv", family="betabinomial",
                    levels=("collaborative", "site"))
    codes = load_indicators(folder / "indicators.csv", load_codebook(folder / "codebook.yaml"),
                            data)
    matrix = encode(codes, data, consensus="adjudicated")
    assert matrix.names == ["management_support", "coordinator_active"]
    # missing cells: the 25 comparison units, plus the 8 uncoded units for management support
    assert matrix.n_imputed().to_dict() == {"management_support": 33, "coordinator_active": 25}
