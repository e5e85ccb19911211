"""The sampler's hot path: the grid linear predictor, the centring choice and the core count.

The grid form of the linear predictor (:mod:`qicstats.models.grid`) must equal the row-wise
form (:func:`qicstats.models.linpred.linear_predictor`) at every observed row, for every term
that can enter it; the full log density is checked against an independent reference in
``test_model_logp.py``. Nothing here samples.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

from qicstats.errors import QicstatsError
from qicstats.inference import SamplerConfig, fit
from qicstats.inference.fit import available_cores
from qicstats.models import ModelSpec, build
from qicstats.models.grid import grid_applies, grid_linear_predictor
from qicstats.models.linpred import linear_predictor
from qicstats.testing import tiny_indicators, tiny_panel


def _both_forms(qm, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate the grid and the row-wise predictor at a random point of the model."""
    d = qm.design
    rows = d.rows.subset(np.flatnonzero(d.regular))
    assert grid_applies(d, rows)
    p = {n: qm.model[n] for n in qm.param_names}
    outs = qm.model.replace_rvs_by_values([grid_linear_predictor(p, d, rows),
                                           linear_predictor(p, d, rows, pt)])
    with qm.model:
        f = qm.model.compile_fn(outs, inputs=qm.model.value_vars, point_fn=True,
                                on_unused_input="ignore")
    rng = np.random.default_rng(seed)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in qm.model.initial_point().items()}
    g, r = f(point)
    return np.asarray(g), np.asarray(r)


@pytest.mark.parametrize("case", ["indicators", "covariate_gaps", "trends_ar1", "unit_level"])
def test_grid_predictor_equals_rowwise(case: str) -> None:
    if case == "indicators":
        data = tiny_panel("binomial")
        spec = ModelSpec()
        ind = tiny_indicators(data, missing_units=1, uncertain_units=1)
    elif case == "covariate_gaps":
        data = tiny_panel("poisson", covariate=True, drop_rows=17)
        spec = ModelSpec(covariates=("beds",), trend="spline", ramp=2)
        ind = tiny_indicators(data, missing_units=0)
    elif case == "trends_ar1":
        data = tiny_panel("gaussian", drop_rows=5)
        spec = ModelSpec(ar1=True, trend="period",
                         random={"trend": ("collaborative",), "baseline": ("collaborative",)})
        ind = None
    else:
        data = tiny_panel("binomial", sites=False)
        spec = ModelSpec(random={"baseline": ("collaborative", "unit"), "level": ("unit",),
                                 "slope": ("unit",)}, correlated=("unit",), effect="slope")
        ind = None
    qm = build(data, spec, ind)
    g, r = _both_forms(qm)
    assert g.shape == r.shape == (int(qm.design.regular.sum()),)
    np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_grid_falls_back_where_it_does_not_apply() -> None:
    data = tiny_panel("binomial")
    qm = build(data, ModelSpec())
    d = qm.design
    rows = d.rows
    assert grid_applies(d, rows)
    # mostly empty grid: fewer than half of the unit-periods observed
    assert not grid_applies(d, rows.subset(np.arange(0, rows.n, 3)))
    # a unit-period twice
    assert not grid_applies(d, rows.subset(np.r_[np.arange(rows.n), 0]))
    # latent continuous indicator values are gathered row by row
    ind = tiny_indicators(data, continuous=True, missing_units=0)
    qc = build(data, ModelSpec(), ind)
    assert not grid_applies(qc.design, qc.design.rows.subset(np.flatnonzero(qc.design.regular)))
    # and the fallback is the row-wise predictor itself
    p = {n: qc.model[n] for n in qc.param_names}
    reg = qc.design.rows.subset(np.flatnonzero(qc.design.regular))
    outs = qc.model.replace_rvs_by_values([grid_linear_predictor(p, qc.design, reg),
                                           linear_predictor(p, qc.design, reg, pt)])
    with qc.model:
        f = qc.model.compile_fn(outs, inputs=qc.model.value_vars, point_fn=True,
                                on_unused_input="ignore")
    g, r = f(qc.model.initial_point())
    np.testing.assert_array_equal(g, r)


def test_binomial_likelihood_equals_pymc_binomial() -> None:
    """The lean binomial log density equals PyMC's Binomial(n, logit_p), value and gradient,
    including at eta = 0 (where |eta| has a kink that must not show in the derivative)."""
    data = tiny_panel("binomial", sites=False)
    qm = build(data, ModelSpec(random={"baseline": (), "level": (), "slope": ()}))
    y_rv = qm.model["y"]
    eta = y_rv.owner.inputs[-1]
    n = qm.design.y["denominator"].astype(float)
    obs = qm.design.y["numerator"].astype(float)
    ours = qm.model.logp(vars=[y_rv], sum=True)
    ref = qm.model.replace_rvs_by_values(
        [pm.logp(pm.Binomial.dist(n=n, logit_p=eta), obs).sum()])[0]
    grads = pt.grad(ours, qm.model.value_vars), pt.grad(ref, qm.model.value_vars)
    with qm.model:
        f = qm.model.compile_fn([ours, ref, *grads[0], *grads[1]], inputs=qm.model.value_vars,
                                point_fn=True, on_unused_input="ignore")
    ip = qm.model.initial_point()
    for shift in (0.0, 0.7, -2.5):
        pt_ = dict(ip)
        # intercept such that eta = 0 at rows where the other terms vanish
        pt_["intercept"] = np.asarray(shift)
        out = f(pt_)
        k = len(qm.model.value_vars)
        np.testing.assert_allclose(out[0], out[1], rtol=1e-12)
        for a, b in zip(out[2:2 + k], out[2 + k:]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def _free_names(qm) -> set[str]:
    return {v.name for v in qm.model.free_RVs}


def _with_collaborative_offsets(data, sd: float, seed: int = 0):
    """``data`` with the numerators redrawn around collaborative offsets ``N(0, sd)`` on the
    logit scale (tiny_panel's outcomes have unit effects only)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    names = sorted(data.units["collaborative"].dropna().unique())
    off = dict(zip(names, rng.normal(0, sd, len(names))))
    coll = data.panel["unit"].map(data.units.set_index("unit")["collaborative"])
    panel = data.panel.copy()
    n, y = panel["denominator"].to_numpy(), panel["numerator"].to_numpy()
    q = (y + 0.5) / (n + 1.0)
    eta = np.log(q / (1 - q)) + coll.map(off).astype(float).fillna(0.0).to_numpy()
    panel["numerator"] = rng.binomial(n, 1 / (1 + np.exp(-eta)))
    return replace(data, panel=panel)


def test_auto_centring_follows_the_data() -> None:
    # 2 collaboratives of 4 units, spreads learned (spread_min_groups=2): few groups ->
    # non-centred collaborative effects
    few = build(tiny_panel("binomial"), ModelSpec(spread_min_groups=2))
    assert {"u_collaborative_z", "v_level_collaborative_z"} <= _free_names(few)
    # by default the spreads of 2 collaboratives are fixed at the prior's rms: no funnel, and
    # the weight is kappa at that fixed sd, which 4 units x 12 periods of binomial data exceed
    fixed = build(tiny_panel("binomial"), ModelSpec())
    assert {"sd_u_collaborative", "sd_level_collaborative"} <= set(fixed.fixed_spreads)
    assert fixed.centring["baseline.collaborative"] == 1.0
    assert {"u_collaborative", "v_level_collaborative"} <= _free_names(fixed)
    assert "sd_u_collaborative" not in _free_names(fixed)
    # 10 collaboratives of 16 units, but tiny_panel's data have no spread between
    # collaboratives: the pilot fit finds little, so the effects stay (nearly) non-centred
    big = tiny_panel("binomial", n_collaboratives=10, units_per_collab=16, T=24)
    flat = build(big, ModelSpec())
    assert flat.centring["baseline.collaborative"] < 0.5
    # the same design with collaborative offsets of sd 1: (nearly) centred, i.e. the weight
    # tau^2 / (tau^2 + se^2) follows the spread the data show
    spread = build(_with_collaborative_offsets(big, 1.0), ModelSpec())
    names = _free_names(spread)
    assert spread.centring["baseline.collaborative"] >= 0.5
    assert "u_collaborative_z" not in names
    assert {"u_collaborative", "u_collaborative_pc"} & names
    # change effects are centred only where the data pin a group down to a twentieth of the
    # sd's prior scale: not in a panel this small
    assert "v_level_collaborative_z" in names
    # explicit choices win over "auto" in both directions
    forced = build(tiny_panel("binomial"), ModelSpec(centered={"collaborative": True}))
    assert "u_collaborative" in _free_names(forced)
    off = build(tiny_panel("binomial", n_collaboratives=10, units_per_collab=16, T=24),
                ModelSpec(centered={"default": False}))
    assert "u_collaborative_z" in _free_names(off) and "u_site_z" in _free_names(off)


def test_centred_zero_sum_effects_sum_to_zero() -> None:
    qm = build(tiny_panel("binomial"), ModelSpec(centered={"collaborative": True}))
    rv = qm.model["u_collaborative"]
    assert rv.owner.op.__class__.__name__.startswith("ZeroSumNormal")
    draws = pm.draw(rv, draws=4000, random_seed=1)
    np.testing.assert_allclose(draws.sum(axis=-1), 0.0, atol=1e-9)


def test_sampler_uses_every_available_core(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def fake_sample(**kw):
        seen.update(kw)
        raise RuntimeError("stop")

    monkeypatch.setattr(pm, "sample", fake_sample)
    qm = build(tiny_panel("binomial", sites=False), ModelSpec())
    with pytest.raises(RuntimeError):
        fit(qm, SamplerConfig(progress=False))
    assert seen["cores"] == min(4, available_cores())
    with pytest.raises(RuntimeError):
        fit(qm, SamplerConfig(progress=False, cores=1, chains=2))
    assert seen["cores"] == 1
    with pytest.raises(QicstatsError):
        SamplerConfig(cores=0)
    assert replace(SamplerConfig(), cores=3).cores == 3


def test_model_suggests_target_accept_from_its_geometry(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2 collaboratives with non-centred effects: a weakly identified sd -> small steps
    few = build(tiny_panel("binomial"), ModelSpec())
    assert few.target_accept == 0.9
    many = build(tiny_panel("binomial", n_collaboratives=10, units_per_collab=16, T=24),
                 ModelSpec())
    assert many.target_accept == 0.8
    # the sampler takes the model's suggestion unless the config sets one, and records it
    seen = {}

    def fake_sample(**kw):
        seen.update(kw)
        raise RuntimeError("stop")

    monkeypatch.setattr(pm, "sample", fake_sample)
    for qm, cfg, want in ((few, SamplerConfig(), 0.9), (many, SamplerConfig(), 0.8),
                          (many, SamplerConfig(target_accept=0.95), 0.95)):
        with pytest.raises(RuntimeError):
            fit(qm, replace(cfg, progress=False))
        assert seen["target_accept"] == want
