"""The design zoo (qicstats.simulate.zoo): every preset simulates, its truth is internally
consistent, its data-generating process lies outside the model where the docs say so, and a
seed fixes everything. Nothing is fitted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from qicstats.data import validate
from qicstats.simulate import ALL_PRESETS, PRESETS, TRUTH_ROWS_FILE, ZOO, simulate, true_att

#: presets small enough to simulate in well under a second each at their own size
FAST = [n for n in ZOO if n != "large"]
#: exact identities between floats computed the same way: rounding only
EXACT = 1e-10


@pytest.fixture(scope="module")
def sims():
    return {name: simulate(name, seed=3) for name in FAST}


def test_presets_are_listed() -> None:
    assert set(ZOO) == {"stepped_wedge", "short_panel", "single_series", "collaborative",
                        "collaborative_200", "large", "few_collaboratives", "counts"}
    assert ALL_PRESETS == tuple(PRESETS) + tuple(ZOO)


@pytest.mark.parametrize("name", list(ZOO))
def test_every_preset_simulates_and_validates(name: str) -> None:
    # "large" at a tenth of its units: the same code path, a fraction of the time
    kw = {"n_units": 100} if name == "large" else {}
    sim = simulate(name, seed=2, **kw)
    d = ZOO[name]
    assert sim.truth["design"] == name and sim.truth["family"] == d.family
    tr = sim.truth_rows
    assert len(tr) == len(sim.panel)
    pd.testing.assert_frame_equal(tr[["unit", "period"]].reset_index(drop=True),
                                  sim.panel[["unit", "period"]].reset_index(drop=True))
    levels = ("collaborative", "site") if "site" in sim.units.columns else ("collaborative",)
    data = validate(sim.panel, sim.units, family=d.family, levels=levels)
    assert data.n_units == (kw.get("n_units") or d.n_units)
    assert data.periods.T == d.n_periods


@pytest.mark.parametrize("name", FAST)
def test_truth_rows_are_consistent(sims, name: str) -> None:
    sim = sims[name]
    tr = sim.truth_rows
    # the effect is the observed mean minus the counterfactual mean, row by row
    np.testing.assert_allclose(tr["effect"], tr["mean_observed"] - tr["mean_counterfactual"],
                               rtol=0, atol=EXACT)
    # no effect before joining (nor for comparison units)
    pre = tr["exposure_time"] < 0
    np.testing.assert_allclose(tr.loc[pre, "effect"], 0.0, atol=EXACT)
    # exposure time = periods since the unit's join
    join = sim.units.set_index("unit")["join_period"]
    jt = tr["unit"].map(join)
    labels = list(dict.fromkeys(sorted(sim.panel["period"].astype(str))))
    pos = {lab: i for i, lab in enumerate(labels)}
    has = jt.notna()
    h = tr.loc[has, "period"].astype(str).map(pos) - jt[has].astype(str).map(pos)
    want = np.where(h >= 0, h, -1)
    np.testing.assert_array_equal(tr.loc[has, "exposure_time"].to_numpy(), want)
    assert (tr.loc[~has, "exposure_time"] == -1).all()
    # the means live on the response scale of the family
    if ZOO[name].family in ("binomial", "betabinomial"):
        assert ((tr["mean_observed"] > 0) & (tr["mean_observed"] < 1)).all()
    elif ZOO[name].family in ("poisson", "negbinomial"):
        assert (tr["mean_counterfactual"] > 0).all()


@pytest.mark.parametrize("name", FAST)
def test_true_att_is_the_mean_effect_over_post_rows(sims, name: str) -> None:
    sim = sims[name]
    tr = sim.truth_rows
    post = tr["exposure_time"] >= 0
    assert true_att(sim) == pytest.approx(tr.loc[post, "effect"].mean(), rel=EXACT)
    est = sim.estimands()
    overall = est[(est["estimand"] == "att") & (est["scope"] == "overall")]
    assert overall["value"].iloc[0] == pytest.approx(true_att(sim), rel=EXACT)
    assert overall["n"].iloc[0] == int(post.sum())
    # per exposure time, and up to a horizon: averages of the same rows
    hmax = int(tr.loc[post, "exposure_time"].median())
    m = post & (tr["exposure_time"] <= hmax)
    assert true_att(sim, max_exposure=hmax) == pytest.approx(tr.loc[m, "effect"].mean(),
                                                             rel=EXACT)
    per_h = est[est["estimand"] == "att_exposure"].set_index("group")
    for hz in sorted(tr.loc[post, "exposure_time"].unique())[:5]:
        at = post & (tr["exposure_time"] == hz)
        assert per_h.loc[f"h={hz}", "value"] == pytest.approx(tr.loc[at, "effect"].mean(),
                                                              rel=EXACT)
    # a subset of rows and a collaborative
    rows = tr.loc[post, ["unit", "period"]].iloc[::3]
    sub = tr.set_index(["unit", "period"]).loc[pd.MultiIndex.from_frame(rows), "effect"]
    assert true_att(sim, rows) == pytest.approx(sub.mean(), rel=EXACT)
    coll = sim.units.dropna(subset=["collaborative"])["collaborative"].iloc[0]
    units = set(sim.units.loc[sim.units["collaborative"] == coll, "unit"])
    mc = post & tr["unit"].isin(units)
    assert true_att(sim, collaborative=coll) == pytest.approx(tr.loc[mc, "effect"].mean(),
                                                              rel=EXACT)


def test_write_includes_truth_rows(sims, tmp_path) -> None:
    sim = sims["counts"]
    paths = sim.write(tmp_path / "counts")
    assert paths["truth_rows"] == tmp_path / "counts" / TRUTH_ROWS_FILE
    assert paths["truth_rows"].exists()
    back = pd.read_csv(paths["truth_rows"])
    np.testing.assert_allclose(back["effect"], sim.truth_rows["effect"], rtol=1e-12)
    assert list(back.columns) == ["unit", "period", "t", "exposure_time", "mean_observed",
                                  "mean_counterfactual", "effect"]
    truth = json.loads(paths["truth"].read_text())
    assert truth["design"] == "counts"
    assert "truth_rows.csv" in paths["readme"].read_text()
    # the coded indicators' codebook keeps its descriptive keys
    import yaml

    cb = yaml.safe_load(paths["codebook"].read_text())
    assert "description" in cb["indicators"]["coordinator_active"]
    assert "definition" in cb["indicators"]["management_support"]


def test_dgp_lies_outside_the_model_family(sims) -> None:
    # heavy-tailed unit baselines: Student-t with 3 df in the stepped wedge (scaled to sd
    # 2.3). With 220 units the sample kurtosis of a normal is 3 +- 0.33; t(3) is far above
    sw = sims["stepped_wedge"]
    u = np.array(list(sw.truth["effects"]["u_unit"].values()))
    z = (u - u.mean()) / u.std()
    assert np.mean(z**4) > 4.5
    assert ZOO["stepped_wedge"].unit_df == 3.0
    # an effect that ramps and fades: not a step, not a line in the time since joining
    shape = np.array(sw.truth["effect_shape"]["values"])
    peak = int(np.argmax(shape))
    assert 0 < peak < len(shape) - 1 and shape[-1] < shape[peak]
    assert np.all(np.diff(shape[:peak + 1]) > 0) and np.all(np.diff(shape[peak:]) < 0)
    # heterogeneity multiplies the effect: the per-unit effect at the peak divided by the
    # shape is positive for every unit (log-normal sizes), and varies between units
    tr = sw.truth_rows
    # (on the probability scale the logit effect is not recoverable row by row, so check the
    # truth's random effects: log-normal multipliers exp(v) are all positive by construction)
    v = np.array(list(sw.truth["effects"]["v_unit"].values()))
    assert v.std() > 0.1
    assert (tr.loc[tr["exposure_time"] == peak, "effect"] > 0).mean() > 0.9
    # a secular trend the model's trend terms do not contain: logistic, not linear
    f = np.array(sw.truth["trend"]["values"])
    assert sw.truth["trend"]["shape"] == "sigmoid" and len(f) == ZOO["stepped_wedge"].n_periods
    # Gaussian residuals are Student-t in the short panel
    assert np.isfinite(ZOO["short_panel"].noise_df) and ZOO["short_panel"].noise_df <= 5
    # coded indicators with two coders (errors) and missing codes
    col = sims["collaborative"]
    codes = col.indicators
    assert set(codes["coder"]) == {"A", "B"}
    true = pd.DataFrame(col.truth["true_indicator_levels"])
    assert (~true["coded"]).any()
    a = codes[codes["coder"] == "A"].merge(
        true, on=["unit", "indicator", "wave"], suffixes=("", "_true"))
    assert 0 < (a["value"] != a["value_true"]).mean() < 0.3   # coder errors exist


def test_a_seed_fixes_everything() -> None:
    a, b = simulate("few_collaboratives", seed=11), simulate("few_collaboratives", seed=11)
    pd.testing.assert_frame_equal(a.panel, b.panel)
    pd.testing.assert_frame_equal(a.units, b.units)
    pd.testing.assert_frame_equal(a.indicators, b.indicators)
    pd.testing.assert_frame_equal(a.truth_rows, b.truth_rows)
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    c = simulate("few_collaboratives", seed=12)
    assert not a.panel.equals(c.panel)


def test_single_series_is_one_unit_without_comparison(sims) -> None:
    sim = sims["single_series"]
    assert sim.units["unit"].tolist() == ["region"]
    assert sim.units["join_period"].notna().all()
    assert sim.panel["unit"].nunique() == 1


def test_bad_settings_are_refused() -> None:
    from qicstats.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown setting"):
        simulate("counts", seed=1, n_unit=3)
    with pytest.raises(ConfigError, match="out of range"):
        simulate("counts", seed=1, comparison_share=1.5)
    with pytest.raises(ConfigError):
        simulate("counts", seed=-1)
