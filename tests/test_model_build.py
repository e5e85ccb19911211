"""Model graphs without sampling: variables and dims per spec, spec errors, prior overrides,
the numeric design, the estimands engine on a stored posterior, save/load, and ``fit`` end
to end with PyMC's mock sampler.

Nothing here runs MCMC. The stored posterior ``tests/data/posteriors/tiny_binomial.nc`` is
rebuilt into its model by ``make_posteriors.tiny_binomial_model``.
"""

from __future__ import annotations

import importlib.util
import json
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytest
import xarray as xr
from scipy import stats

from qicstats.data.panel import PanelData
from qicstats.data.periods import make_grid
from qicstats.errors import IdentityError, ModelSpecError, QicstatsError
from qicstats.inference import SamplerConfig, fit
from qicstats.models import ModelSpec, Prior, build, build_design
from qicstats.results import FitResult
from qicstats.results.draws import Predictor, param_chunks
from qicstats.testing import tiny_indicators, tiny_panel

HERE = Path(__file__).parent
POSTERIORS = HERE / "data" / "posteriors"
NO_CENTRE = {"default": False}  # fixed parameterisation: the free-variable names are known
#: the level + slope change (segmented regression) with a linear trend: the model of the tests
#: below that are about terms, priors and the block rather than the design-aware defaults
#: (``trend``/``effect`` "auto" give period effects and the exposure-time curve on a panel
#: with comparison units: see test_default_spec_on_a_controlled_panel and test_structure.py)
SLOPE = {"trend": "linear", "effect": "slope"}


def _load_make_posteriors():
    spec = importlib.util.spec_from_file_location("make_posteriors",
                                                  POSTERIORS / "make_posteriors.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def free_dims(qm) -> dict[str, tuple]:
    m = qm.model
    return {rv.name: tuple(m.named_vars_to_dims.get(rv.name, ()) or ()) for rv in m.free_RVs}


def logp_at(rv, value: float) -> float:
    """Log density of a (scalar) RV at ``value`` (a small graph, Python linker)."""
    return float(pm.logp(rv, value).eval(mode="FAST_COMPILE"))


# =========================================================================================
# free variables and dims
# =========================================================================================

def test_slope_spec_variables_and_dims() -> None:
    data = tiny_panel("binomial")
    # spread_min_groups=2: the learned spreads even of the tiny panel's two collaboratives
    qm = build(data, ModelSpec(centered=NO_CENTRE, spread_min_groups=2, **SLOPE))
    dims = free_dims(qm)
    assert set(dims) == {
        "intercept", "intervention_xi",
        "sd_u_collaborative", "u_collaborative_z", "sd_u_site", "u_site_z", "sd_u_unit",
        "u_unit_z",
        "sd_level_collaborative", "v_level_collaborative_z",
        "sd_slope_collaborative", "v_slope_collaborative_z",
        "sd_level_site", "v_level_site_z", "sd_slope_site", "v_slope_site_z",
        "sd_level_unit", "v_level_unit_z", "sd_slope_unit", "v_slope_unit_z"}
    assert dims["u_unit_z"] == ("unit",)
    assert dims["u_collaborative_z"] == ("collaborative",)
    assert dims["v_level_unit_z"] == ("unit_joined",)
    assert dims["v_slope_site_z"] == ("site_joined",)
    c = qm.model.coords
    # comparison units form the "(comparison)" collaborative for the baseline only
    assert list(c["collaborative"]) == ["(comparison)", "C1", "C2"]
    assert list(c["collaborative_joined"]) == ["C1", "C2"]
    assert list(c["unit_joined"]) == [f"c{i}u{j}" for i in (1, 2) for j in (1, 2, 3, 4)]
    assert len(c["unit"]) == 11 and len(c["site"]) == 7 and len(c["site_joined"]) == 4
    # baseline collaborative effects are zero-sum (spec.zero_sum)
    zs = qm.model["u_collaborative_z"]
    assert type(qm.model.rvs_to_transforms[zs]).__name__ == "ZeroSumTransform"
    assert qm.model.observed_RVs[0].name == "y"
    assert qm.param_names[:4] == ["intercept", "trend_slope", "level_change", "slope_change"]
    assert "secular" in qm.param_names
    # the intervention block is sampled decorrelated; its named parameters are deterministics
    assert dims["intervention_xi"] == ("intervention_param",)
    assert list(c["intervention_param"]) == ["trend_slope", "level_change", "slope_change"]
    assert {"trend_slope", "level_change", "slope_change"} <= {
        v.name for v in qm.model.deterministics}


def test_default_spec_on_a_controlled_panel() -> None:
    """The defaults read the design: comparison units observed throughout -> free period
    effects and the exposure-time curve (one value per exposure time 0..max), collaborative
    curve deviations, no slope terms, no seasons (contained in the period effects); the
    period effects are a line (trend_slope) plus T - 2 deviations orthogonal to it."""
    data = tiny_panel("binomial")
    qm = build(data, ModelSpec(spread_min_groups=2))
    assert (qm.spec.trend, qm.spec.effect, qm.spec.seasonality, qm.spec.phases) == (
        "period", "curve", False, False)
    names = {rv.name for rv in qm.model.free_RVs} | set(qm.model.named_vars)
    assert {"period_sd", "sd_curve", "effect_curve", "v_curve_collaborative",
            "sd_curve_collaborative", "trend_slope", "period_effect"} <= names
    assert not {"level_change", "slope_change"} & names
    assert not any(n.startswith(("v_slope", "sd_slope")) for n in names)
    H = qm.structure.max_exposure
    assert list(qm.model.coords["exposure_time"]) == [str(h) for h in range(H + 1)]
    assert qm.model.named_vars_to_dims["v_curve_collaborative"] == (
        "collaborative_joined", "exposure_time")
    # the period effects and the curve join the decorrelated block when centred
    blk = build(data, ModelSpec(centered={"period": True, "curve": True})).intervention
    assert (blk.names, blk.n_period, blk.n_curve) == (("trend_slope",), data.periods.T - 2,
                                                      H + 1)


def test_initial_point_logp_is_finite() -> None:
    qm = build(tiny_panel("poisson", sites=False),
               ModelSpec(trend="none", effect="slope",
                         random={"baseline": ("unit",), "level": (), "slope": ()}))
    ip_logp, grad = qm.initial_point_logp()
    assert np.isfinite(ip_logp)
    assert grad.shape == (qm.model.initial_point()["u_unit_z"].size + 4,)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("spec, expected", [
    (ModelSpec(trend="none", effect="slope",
               random={"baseline": ("unit",), "level": (), "slope": ()}, centered=NO_CENTRE),
     {"intercept", "sd_u_unit", "u_unit_z", "intervention_xi"}),
    (ModelSpec(trend="rw", effect="slope", random={"baseline": (), "level": (), "slope": ()}),
     {"intercept", "trend_sd", "trend_rw_z", "intervention_xi"}),
    (ModelSpec(trend="period", effect="slope", seasonality=True,
               centered={"period": False}, random={"baseline": (), "level": (), "slope": ()}),
     {"intercept", "period_sd", "period_z", "season_sd", "season_z", "intervention_xi"}),
    (ModelSpec(trend="spline", effect="slope", spline_knots=2, ar1=True,
               random={"baseline": (), "level": (), "slope": ()}),
     {"intercept", "trend_sd", "trend_spline_z", "ar_rho", "ar_sd", "ar_z",
      "intervention_xi"}),
    (ModelSpec(trend="linear", effect="slope", correlated=("unit",), centered=NO_CENTRE,
               random={"baseline": (), "level": ("unit",), "slope": ("unit",),
                       "trend": ("site",)}),
     {"intercept", "trend_slope", "sd_trend_site", "w_trend_site_z", "intervention_xi",
      "chol_unit", "v_change_unit_z"}),
])
def test_free_variables_per_spec(spec: ModelSpec, expected: set[str]) -> None:
    data = tiny_panel("binomial", T=12)
    qm = build(data, spec)
    assert set(free_dims(qm)) == expected
    m = qm.model
    if "trend_rw_z" in expected:
        assert tuple(m["trend_rw_z"].shape.eval()) == (11,)  # T - 1 steps
    if "period_z" in expected:
        assert tuple(m["period_z"].shape.eval()) == (10,)  # T - 2 deviations from a line
        assert m.named_vars_to_dims["period_effect"] == ("period",)
    if "ar_z" in expected:
        assert tuple(m["ar_z"].shape.eval()) == (11, 12)  # units x grid periods
    if "chol_unit" in expected:
        assert tuple(m["v_change_unit_z"].shape.eval()) == (8, 2)
        assert {"sd_level_unit", "sd_slope_unit", "corr_level_slope_unit"} <= set(m.named_vars)


def test_family_parameters_and_indicator_variables() -> None:
    # the overdispersion priors are on 1 / sqrt(phi) and 1 / sqrt(alpha): those are free
    for fam, extra in [("betabinomial", {"phi_inv_sqrt"}), ("negbinomial", {"alpha_inv_sqrt"}),
                       ("gaussian", {"sigma"}), ("poisson", set()), ("binomial", set())]:
        qm = build(tiny_panel(fam), ModelSpec(trend="none", effect="slope",
                                              random={"baseline": (), "level": (), "slope": ()}))
        assert set(free_dims(qm)) == {"intercept", "intervention_xi"} | extra, fam
    data = tiny_panel("binomial")
    im = tiny_indicators(data, missing_units=1, uncertain_units=1, continuous=True)
    qm = build(data, ModelSpec(trend="none", effect="slope",
                               random={"baseline": (), "level": (), "slope": ()}), im)
    dims = free_dims(qm)
    assert dims["ind_main"] == ("indicator_main",)
    assert qm.model.named_vars_to_dims["ind_level"] == ("indicator_moderator",)
    assert list(qm.model.coords["intervention_param"]) == [
        "level_change", "slope_change", "ind_level_coordinator", "ind_level_support",
        "ind_slope_coordinator", "ind_slope_support"]
    assert list(qm.model.coords["indicator_main"]) == ["coordinator", "density"]
    assert list(qm.model.coords["indicator_moderator"]) == ["coordinator", "support"]
    assert {"mo_support", "pi_support", "latent_density", "latent_density_mu",
            "latent_density_sd"} <= set(dims)
    assert "pi_coordinator" not in dims  # uncertain codes have fixed vote-share priors
    assert [p.name for p in qm.model.potentials] == ["mixture_loglik"]
    # the units with latent discrete codes leave the plain likelihood
    d = qm.design
    assert qm.model.named_vars_to_dims["y"] == ("obs",)
    assert len(qm.model.coords["obs"]) == int(d.regular.sum()) == len(d.rows.unit) - 2 * 12
    assert list(d.mixture.units) == [0, 1]  # c1u1 (missing support), c1u2 (uncertain)
    assert list(d.mixture.n_combos) == [3, 2]


# =========================================================================================
# spec errors
# =========================================================================================

@pytest.mark.parametrize("kwargs, match", [
    ({"trend": "quadratic"}, "trend must be one of"),
    ({"random": {"intercept": ("unit",)}}, "random effects terms"),
    ({"ramp": -1}, "ramp must be"),
])
def test_bad_spec_raises(kwargs: dict, match: str) -> None:
    with pytest.raises(ModelSpecError, match=match):
        ModelSpec(**kwargs)


@pytest.mark.parametrize("spec, match", [
    (ModelSpec(priors={"sd_u_ward": {"dist": "HalfNormal", "sigma": 1}}), "unknown prior name"),
    (ModelSpec(priors={"intercept": {"dist": "Normall", "mu": 0}}), "unknown prior distribution"),
    (ModelSpec(priors={"intercept": {"dist": "Normal", "scale": 1}}), "does not take"),
    (ModelSpec(priors={"intercept": {"mu": 0}}), "needs a 'dist'"),
    (ModelSpec(priors={"sd_u": {"dist": "HalfNormal", "sigma": 1, "on": "log"}}), "'on'"),
    (ModelSpec(random={"baseline": ("ward",)}), "unknown level"),
    (ModelSpec(covariates=("beds",)), "covariate 'beds'"),
    (ModelSpec(correlated=("unit",), effect="slope",
               priors={"sd_level_unit": {"dist": "Exponential",
                                                                 "lam": 1.0}}),
     "HalfNormal"),
    (ModelSpec(family="ordinal"), "unknown family"),
])
def test_bad_spec_for_data_raises(spec: ModelSpec, match: str) -> None:
    with pytest.raises(ModelSpecError, match=match):
        build(tiny_panel("binomial"), spec)


def test_spec_errors_that_need_the_data() -> None:
    data = hand_panel([3], T=6)  # integer periods: no seasons
    with pytest.raises(ModelSpecError, match="seasonality"):
        build(data, ModelSpec(seasonality=True))
    tp = tiny_panel("binomial")
    with pytest.raises(ModelSpecError, match="not in the encoded indicators"):
        build(tp, ModelSpec(indicators=("nope",)), tiny_indicators(tp))
    assert issubclass(ModelSpecError, QicstatsError)


# =========================================================================================
# priors
# =========================================================================================

@pytest.mark.parametrize("d", [
    {"dist": "Normal", "mu": 0.0, "sigma": 2.5},
    {"dist": "HalfCauchy", "beta": 5.0},
    {"dist": "InverseGamma", "alpha": 0.001, "beta": 0.001, "on": "variance"},
    {"dist": "Uniform", "lower": 0.0, "upper": 5.0},
    {"dist": "Dirichlet", "a": [1.0, 2.0, 3.0]},
    {"dist": "HalfFlat"},
])
def test_prior_round_trip(d: dict) -> None:
    p = Prior.from_dict(d)
    assert p.to_dict() == d
    assert Prior.from_dict(p.to_dict()) == p
    assert Prior.from_dict(p) is p
    json.dumps(p.to_dict())  # plain data


def test_prior_describe_and_positive() -> None:
    assert Prior("Normal", {"mu": 0.0, "sigma": 1.0}).describe() == "Normal(mu=0, sigma=1)"
    ig = Prior.from_dict({"dist": "InverseGamma", "alpha": 0.001, "beta": 0.001,
                          "on": "variance"})
    assert ig.describe() == "InverseGamma(alpha=0.001, beta=0.001) on the variance"
    assert ig.positive and Prior("Uniform", {"lower": 0, "upper": 5}).positive
    assert not Prior("Uniform", {"lower": -1, "upper": 1}).positive
    assert not Prior("Normal", {"mu": 0, "sigma": 1}).positive


def test_prior_overrides_change_the_distribution() -> None:
    data = tiny_panel("binomial")
    spec = ModelSpec(
        centered=NO_CENTRE, spread_min_groups=2, **SLOPE,
        priors={"sd_u_unit": {"dist": "HalfCauchy", "beta": 5.0},
                "sd_u": {"dist": "Exponential", "lam": 3.0},          # generic: other levels
                "sd_level_site": {"dist": "InverseGamma", "alpha": 2.0, "beta": 0.5,
                                  "on": "variance"},
                "intercept": {"dist": "StudentT", "nu": 3.0, "mu": -1.0, "sigma": 2.0},
                "level_change": {"dist": "Normal", "mu": 0.2, "sigma": 0.1}},
        decorrelate=False)   # level_change a free variable (the decorrelated block: below)
    qm = build(data, spec)
    m = qm.model
    assert logp_at(m["sd_u_unit"], 1.3) == pytest.approx(stats.halfcauchy.logpdf(1.3, scale=5))
    assert logp_at(m["sd_u_site"], 1.3) == pytest.approx(stats.expon.logpdf(1.3, scale=1 / 3))
    assert logp_at(m["intercept"], 0.4) == pytest.approx(stats.t.logpdf(0.4, 3, -1, 2))
    assert logp_at(m["level_change"], 0.3) == pytest.approx(stats.norm.logpdf(0.3, 0.2, 0.1))
    # on the variance: the free variable is the variance, the sd a deterministic sqrt
    assert "sd_level_site_variance" in {rv.name for rv in m.free_RVs}
    assert "sd_level_site" in {v.name for v in m.deterministics}
    assert logp_at(m["sd_level_site_variance"], 0.7) == pytest.approx(
        stats.invgamma.logpdf(0.7, 2.0, scale=0.5))
    # the prior table the builder records (methods text)
    assert qm.priors["sd_u_unit"] == Prior("HalfCauchy", {"beta": 5.0})
    assert qm.priors["sd_u_collaborative"] == Prior("Exponential", {"lam": 3.0})
    assert qm.priors["sd_level_collaborative"] == Prior("HalfNormal", {"sigma": 0.5})
    # and a default prior is untouched
    default = build(data, ModelSpec(centered=NO_CENTRE, **SLOPE))
    assert logp_at(default.model["sd_u_unit"], 1.3) == pytest.approx(
        stats.halfnorm.logpdf(1.3, scale=1.0))


def test_indicator_specific_prior_splits_the_coefficients() -> None:
    data = tiny_panel("binomial")
    im = tiny_indicators(data, missing_units=0)
    priors = {"ind_level_support": {"dist": "Normal", "mu": 0.0, "sigma": 0.25}}
    qm = build(data, ModelSpec(priors=priors, decorrelate=False, **SLOPE), im)
    free = {rv.name for rv in qm.model.free_RVs}
    assert {"ind_level_coordinator", "ind_level_support", "ind_slope"} <= free
    assert "ind_level" in {v.name for v in qm.model.deterministics}
    assert logp_at(qm.model["ind_level_support"], 0.1) == pytest.approx(
        stats.norm.logpdf(0.1, 0, 0.25))
    # decorrelated (the default): the same prior, as the block's implied covariance
    blk = build(data, ModelSpec(priors=priors, **SLOPE), im).intervention
    j = blk.names.index("ind_level_support")
    cov = block_prior_cov(build(data, ModelSpec(priors=priors, **SLOPE), im))
    assert cov[j, j] == pytest.approx(0.25**2)


def block_prior_cov(qm) -> np.ndarray:
    """The prior covariance of the block's named parameters implied by ``intervention_xi``'s
    prior, after checking that prior's log density is ``MvNormal(0, B^-1 S B^-T)``'s (SciPy):
    then ``B cov(xi) B'``."""
    from scipy.stats import multivariate_normal

    blk = qm.intervention
    sd = np.array([qm.priors[n].params["sigma"] for n in blk.names])
    Binv = np.linalg.inv(blk.B)
    cov_xi = Binv @ np.diag(sd**2) @ Binv.T
    xi = qm.model["intervention_xi"]
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = rng.normal(0, 1, len(blk.names)) * np.sqrt(np.diag(cov_xi))
        assert float(pm.logp(xi, x).eval(mode="FAST_COMPILE")) == pytest.approx(
            multivariate_normal(np.zeros(len(x)), cov_xi).logpdf(x), rel=1e-9)
    return blk.B @ cov_xi @ blk.B.T


def test_decorrelated_block_is_the_same_model() -> None:
    """``theta = mu + B xi`` with ``xi ~ MvNormal(0, B^-1 S B^-T)`` is the independent normal
    prior ``theta ~ N(mu, S)``; ``B`` is the Cholesky factor of ``(X' W X + S^-1)^-1``
    computed here from the panel by hand; the deterministics are ``mu + B xi``."""

    data = tiny_panel("binomial", T=12)
    im = tiny_indicators(data, missing_units=0)
    spec = ModelSpec(priors={"level_change": {"dist": "Normal", "mu": 0.2, "sigma": 0.7}},
                     **SLOPE)
    qm = build(data, spec, im)
    blk = qm.intervention
    assert blk.names == ("trend_slope", "level_change", "slope_change",
                         "ind_level_coordinator", "ind_level_support",
                         "ind_slope_coordinator", "ind_slope_support")
    sd = np.array([qm.priors[n].params["sigma"] for n in blk.names])
    np.testing.assert_allclose(blk.mu, [0, 0.2, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(block_prior_cov(qm), np.diag(sd**2), rtol=1e-10, atol=1e-14)
    # prior draws (prior predictive checks use them): theta's sds are the priors' (20,000
    # draws: the sd estimate's relative Monte Carlo error is 0.5 %, tolerance 5 of those)
    draws = pm.draw(qm.model["intervention_xi"], 20_000, random_seed=1)
    theta = blk.mu + draws @ blk.B.T
    np.testing.assert_allclose(theta.std(axis=0), sd, rtol=0.025)
    assert np.all(np.abs(theta.mean(axis=0) - blk.mu) < 5 * sd / np.sqrt(20_000))
    # B from the design, by hand: rows' step D, time since joining e, the moderators z
    d = qm.design
    r = d.rows
    y, n = d.y["numerator"], d.y["denominator"]
    pbar = (y.sum() + 0.5) / (n.sum() + 1.0)
    # Fisher weights at the pooled mean, divided by the pilot fit's overdispersion (>= 1)
    w = n * pbar * (1 - pbar) / max(qm.pilot.dispersion, 1.0)
    z = []
    for k in range(len(d.indicators)):
        ind = d.indicators[k]
        zk = np.nan_to_num(r.Z[:, k])
        z.append(zk / (ind.n_levels - 1) if ind.type == "ordinal" else zk)
    X = np.column_stack([d.tau[r.t], r.D, r.e] + [r.D * zk for zk in z] + [r.e * zk for zk in z])
    H = X.T @ (w[:, None] * X) + np.diag(1 / sd**2)
    np.testing.assert_allclose(blk.B, np.linalg.cholesky(np.linalg.inv(H)), rtol=1e-10)
    assert np.allclose(blk.B, np.tril(blk.B)) and (np.diag(blk.B) > 0).all()
    # the deterministics at a point
    xi = np.linspace(-1, 1, len(blk.names))
    f = pytensor.function([qm.model["intervention_xi"]],
                          [qm.model[k] for k in ("trend_slope", "level_change", "ind_slope")],
                          mode="FAST_COMPILE")
    theta = blk.mu + blk.B @ xi
    got = f(xi)
    assert got[0] == pytest.approx(theta[0]) and got[1] == pytest.approx(theta[1])
    np.testing.assert_allclose(got[2], theta[5:])


def test_block_falls_back_to_plain_priors_when_not_normal() -> None:
    data = tiny_panel("binomial")
    qm = build(data, ModelSpec(priors={"slope_change": {"dist": "StudentT", "nu": 4.0,
                                                         "mu": 0.0, "sigma": 0.1}}, **SLOPE))
    free = {rv.name for rv in qm.model.free_RVs}
    assert qm.intervention is None and "intervention_xi" not in free
    assert {"level_change", "slope_change", "trend_slope"} <= free
    # hierarchically centred level effects take level_change as their location: plain too
    # (only effects that are not zero-sum are centred around it; with zero_sum every level's
    # change effects are zero-sum, and the block stays decorrelated)
    qm = build(data, ModelSpec(centered={"site": True}, zero_sum=False, **SLOPE))
    assert qm.intervention is None
    assert "v_level_site_nested" in {rv.name for rv in qm.model.free_RVs}
    zs = build(data, ModelSpec(centered={"site": True}, **SLOPE))
    assert zs.intervention is not None
    assert "v_level_site" in {rv.name for rv in zs.model.free_RVs}


# =========================================================================================
# the numeric design
# =========================================================================================

def hand_panel(join_ts: list[float | None], T: int = 8, family: str = "binomial",
               values: list[int] | None = None) -> PanelData:
    """One unit per entry of ``join_ts`` (grid index, may lie outside the grid; None =
    comparison), observed at every grid period; integer periods ``values`` (default 0..T-1)."""
    vals = np.arange(T) if values is None else np.asarray(values)
    grid = make_grid(vals.astype(float), "integer")
    n = len(join_ts)
    units = pd.DataFrame({
        "unit": [f"u{i}" for i in range(n)],
        "collaborative": pd.array(["Q" if j is not None else pd.NA for j in join_ts],
                                  dtype="string"),
        "join_period": pd.array([pd.NA] * n, dtype="string"),
        "join_t": pd.array([j for j in join_ts], dtype="Int64"),
        "end_t": pd.array([pd.NA] * n, dtype="Int64"),
    })
    t_obs = [grid.index_of(str(v)) for v in vals]
    rows = [{"unit": f"u{i}", "period": grid.labels[t], "t": t, "numerator": 3 + t,
             "denominator": 20} for i in range(n) for t in t_obs]
    return PanelData(pd.DataFrame(rows), units, grid, family, levels=("collaborative",))


def test_design_intervention_terms_by_hand() -> None:
    # u0 joins at 3; u1 before the data (-2); u2 after the data (10); u3 comparison
    data = hand_panel([3, -2, 10, None], T=8)
    d = build_design(data, ModelSpec())
    r = d.rows
    D = r.D.reshape(4, 8)
    e = r.e.reshape(4, 8)
    np.testing.assert_array_equal(D[0], [0, 0, 0, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(e[0], [0, 0, 0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(D[1], np.ones(8))
    np.testing.assert_array_equal(e[1], np.arange(8) + 2)
    np.testing.assert_array_equal(D[2], np.zeros(8))
    np.testing.assert_array_equal(D[3], np.zeros(8))
    np.testing.assert_array_equal(e[3], np.zeros(8))
    assert d.H == 9.0  # u1 at t = 7: 9 periods since joining
    np.testing.assert_array_equal(d.tau, np.arange(8) - 3.5)
    np.testing.assert_array_equal(d.participating, [True, True, True, False])
    # a ramp of 3 periods: 1/3, 2/3, 1 from the join on
    dr = build_design(data, ModelSpec(ramp=3))
    np.testing.assert_allclose(dr.rows.D.reshape(4, 8)[0], [0, 0, 0, 1 / 3, 2 / 3, 1, 1, 1])
    np.testing.assert_array_equal(dr.rows.e, r.e)  # e is unaffected by the ramp
    # counterfactual rows
    cf = r.with_intervention(0.0, 0.0)
    assert not cf.D.any() and not cf.e.any() and r.D.any()


def test_design_tau_with_gaps_is_centred_at_the_midpoint() -> None:
    data = hand_panel([None, None], values=[8, 15, 22, 29, 36])  # rats: days
    d = build_design(data, ModelSpec())
    assert d.T == 29 and len(data.periods.gaps) == 24
    np.testing.assert_array_equal(d.tau[d.rows.t], np.tile([-14, -7, 0, 7, 14], 2))


def test_design_groups_and_link_mean() -> None:
    data = tiny_panel("binomial")
    d = build_design(data, ModelSpec())
    coll = d.base_groups["collaborative"]
    assert coll.names == ("(comparison)", "C1", "C2")
    assert [coll.names[g] for g in coll.of_unit] == ["C1"] * 4 + ["C2"] * 4 + ["(comparison)"] * 3
    ch = d.change_groups["collaborative"]
    assert ch.names == ("C1", "C2")
    y = data.panel
    p = (y["numerator"].sum() + 0.5) / (y["denominator"].sum() + 1)
    assert d.link_mean == pytest.approx(np.log(p / (1 - p)))


def test_codes_expansion_row_counts() -> None:
    mp = _load_make_posteriors()
    data, im, qm = mp.tiny_binomial_model()
    d = qm.design
    mix = d.mixture
    rows = d.rows
    ex, src, uc = d.expand(rows)
    per_unit = np.bincount(rows.unit, minlength=d.n_units)
    combos = dict(zip(mix.units.tolist(), mix.n_combos.tolist()))
    expected = sum(per_unit[u] * combos.get(u, 1) for u in range(d.n_units))
    assert ex.n == expected == len(src) == len(uc)
    # two units with a missing ordinal code (3 levels), one with an uncertain binary (2)
    assert sorted(mix.n_combos.tolist()) == [2, 3, 3]
    assert np.all(np.diff(src) >= 0)                      # grouped by source row
    np.testing.assert_array_equal(np.bincount(src, minlength=rows.n),
                                  [combos.get(u, 1) for u in rows.unit])
    assert (uc[~np.isin(rows.unit[src], mix.units)] == -1).all()
    # every expanded row of a mixture unit has its discrete codes filled in
    in_mix = np.isin(ex.unit, mix.units)
    disc = [k for k, ind in enumerate(d.indicators) if ind.type != "continuous"]
    assert not np.isnan(ex.Z[in_mix][:, disc]).any()
    assert np.isnan(rows.Z[np.isin(rows.unit, mix.units)][:, disc]).any()
    # for one source row: the configurations run over every level of the latent code
    r0 = np.flatnonzero(np.isin(rows.unit, mix.units))[0]
    filled = ex.Z[src == r0]
    assert len({tuple(z) for z in filled}) == combos[int(rows.unit[r0])]


# =========================================================================================
# estimands on the stored posterior
# =========================================================================================

@pytest.fixture(scope="module")
def stored():
    mp = _load_make_posteriors()
    data, im, qm = mp.tiny_binomial_model()
    idata = xr.open_datatree(POSTERIORS / "tiny_binomial.nc", engine="h5netcdf").load()
    # the stored file was written before the spec had ``effect`` and ``phases``: its draws are
    # of the model make_posteriors rebuilds (effect="slope", phases off), whose resolved spec
    # is recorded here so that the identity checks compare like with like
    idata.attrs["qicstats_spec"] = json.dumps(qm.spec.to_dict(), sort_keys=True, default=str)
    return data, im, qm, idata


@pytest.fixture(scope="module")
def stored_result(stored) -> FitResult:
    _, _, qm, idata = stored
    return FitResult(qm, idata)


def test_stored_posterior_matches_its_model(stored) -> None:
    _, _, qm, idata = stored
    assert idata.attrs["qicstats_data_hash"] == qm.data_hash
    assert set(qm.param_names) <= set(idata.posterior.data_vars)


def test_att_overall_is_row_weighted_mean_of_unit_att(stored_result: FitResult) -> None:
    est = stored_result.estimands("att")
    overall = est[est["scope"] == "overall"].iloc[0]
    units = est[est["scope"] == "unit"]
    assert units["n_rows"].sum() == overall["n_rows"]
    w = units["n_rows"].to_numpy(dtype=float)
    assert overall["mean"] == pytest.approx(np.sum(w * units["mean"]) / w.sum(), rel=1e-12)
    # the same draw by draw, and for collaboratives
    ed = stored_result.estimand_draws()
    unit_draws = np.stack([ed.draws[("att", "unit", u)] for u in units["group"]], axis=1)
    np.testing.assert_allclose(ed.draws[("att", "overall", "all")],
                               unit_draws @ w / w.sum(), rtol=1e-12)
    coll = est[est["scope"] == "collaborative"]
    assert overall["mean"] == pytest.approx(
        np.sum(coll["n_rows"] * coll["mean"]) / coll["n_rows"].sum(), rel=1e-12)


def test_counterfactual_equals_fit_where_D_is_zero(stored) -> None:
    _, _, qm, idata = stored
    d = qm.design
    pre = d.rows.subset(np.flatnonzero(d.rows.D == 0))  # pre-join and comparison rows
    assert pre.n > 0 and (pre.e == 0).all()
    pred = Predictor(qm, pre)
    for _, p in param_chunks(qm, idata):
        np.testing.assert_array_equal(pred.mean(p), pred.mean(p, counterfactual=True))
    # and where D = 1 they differ (the change is not zero in any draw)
    post = Predictor(qm, d.rows.subset(np.flatnonzero(d.rows.D > 0)))
    _, p = next(param_chunks(qm, idata))
    assert np.all(post.mean(p) != post.mean(p, counterfactual=True))


def test_trend_change_plus_att_is_the_fitted_change(stored, stored_result: FitResult) -> None:
    """mean_P [p_obs(i,t) - p_cf(i,T_i)] = att + trend_change, draw by draw."""
    _, _, qm, idata = stored
    d = qm.design
    R = d.rows.subset(np.flatnonzero(d.rows.D > 0))
    part = np.flatnonzero(d.participating)
    join = Predictor(qm, d.query_rows(part, d.join_t[part].astype(int)))
    fitted = Predictor(qm, R)
    col = np.searchsorted(part, R.unit)
    change = np.concatenate([(fitted.mean(p) - join.mean(p, counterfactual=True)[:, col])
                             .mean(axis=1) for _, p in param_chunks(qm, idata)])
    ed = stored_result.estimand_draws()
    np.testing.assert_allclose(ed.draws[("att", "overall", "all")]
                               + ed.draws[("trend_change", "overall", "all")], change,
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ed.draws[("fitted_mean", "overall", "all")],
                               np.concatenate([fitted.mean(p).mean(axis=1)
                                               for _, p in param_chunks(qm, idata)]),
                               rtol=1e-12)
    est = stored_result.estimands(scope="overall").set_index("estimand")
    assert est.loc["att", "mean"] == pytest.approx(
        est.loc["fitted_mean", "mean"] - est.loc["counterfactual_mean", "mean"], rel=1e-10)


def test_save_load_round_trip_and_identity(stored, stored_result: FitResult, tmp_path: Path
                                           ) -> None:
    data, im, qm, _ = stored
    path = stored_result.save(tmp_path / "fit.nc")
    assert path.exists() and not (tmp_path / "fit.nc.partial").exists()
    back = FitResult.load(path, qm)
    pd.testing.assert_frame_equal(back.estimands(), stored_result.estimands())
    assert back.options == stored_result.options and back.name == stored_result.name
    # other data -> refused
    other = tiny_panel("binomial", seed=2)
    # (the stored model's resolved spec: only the data differ)
    qm_other = build(other, qm.spec, tiny_indicators(other, missing_units=2, uncertain_units=1))
    with pytest.raises(IdentityError, match="other data"):
        FitResult.load(path, qm_other)
    # same data, other indicators -> other data hash too
    qm_ind = build(data, qm.spec, tiny_indicators(data, missing_units=1))
    with pytest.raises(IdentityError):
        FitResult.load(path, qm_ind)
    # same data, another spec -> refused
    qm_spec = build(data, ModelSpec(trend="rw"), im)
    with pytest.raises(IdentityError, match="specification"):
        FitResult.load(path, qm_spec)


# =========================================================================================
# fit end to end with PyMC's mock sampler (draws from the prior; no MCMC)
# =========================================================================================

def test_fit_pipeline_with_mock_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    from pymc.testing import mock_sample

    stats_ = {"diverging": lambda size: np.zeros(size, dtype=bool),
              "tree_depth": lambda size: np.full(size, 3)}
    monkeypatch.setattr(pm, "sample", partial(mock_sample, sample_stats=stats_))
    data = tiny_panel("binomial", sites=False)
    qm = build(data, ModelSpec(trend="linear", effect="slope",
                               random={"baseline": ("unit",), "level": (), "slope": ()}))
    cfg = SamplerConfig(backend="pymc", chains=2, draws=40, tune=0, seed=5, progress=False)
    idata = fit(qm, cfg, provenance={"config_hash": "abc", "extra": {"a": 1}})
    post = idata.posterior
    assert (post.sizes["chain"], post.sizes["draw"]) == (2, 40)
    assert set(qm.param_names) <= set(post.data_vars)
    a = idata.attrs
    assert a["qicstats_data_hash"] == qm.data_hash
    assert json.loads(a["qicstats_spec"]) == json.loads(json.dumps(qm.spec.to_dict()))
    assert json.loads(a["qicstats_sampler"])["backend"] == "pymc"
    assert a["qicstats_seed"] == 5 and a["qicstats_config_hash"] == "abc"
    assert json.loads(a["qicstats_extra"]) == {"a": 1}
    assert "pymc" in json.loads(a["qicstats_versions"])
    res = FitResult(qm, idata)
    est = res.estimands()
    assert {"att", "trend_change", "att_ratio"} <= set(est["estimand"])
    assert np.isfinite(est["mean"]).all()
    assert res.verdict in ("pass", "warn", "fail")
    summ = res.summary()
    assert {"intercept", "level_change"} <= set(summ["parameter"])


def test_sampler_config_checks() -> None:
    with pytest.raises(QicstatsError, match="backend"):
        SamplerConfig(backend="stan")
    with pytest.raises(QicstatsError):
        SamplerConfig(chains=0)
    with pytest.raises(QicstatsError, match="target_accept"):
        SamplerConfig(target_accept=0.3)


# =========================================================================================
# spreads from few values; curve deviations over the observed collaboratives
# =========================================================================================

def test_spreads_of_few_groups_are_fixed_at_the_prior_rms() -> None:
    """Two collaboratives and two sites per collaborative (fewer than spread_min_groups=5):
    their sds are constants at the prior's root mean square (HalfNormal(s): s), not free
    variables; the units' spreads (eight units) are still learned; the choice is recorded."""
    data = tiny_panel("binomial")
    qm = build(data, ModelSpec(centered=NO_CENTRE, **SLOPE,
                               priors={"sd_level_collaborative": {"dist": "HalfNormal",
                                                                  "sigma": 0.3}}))
    free = {rv.name for rv in qm.model.free_RVs}
    d = qm.design
    for name, groups in (("sd_u", d.base_groups), ("sd_level", d.change_groups),
                         ("sd_slope", d.change_groups)):
        for lv, g in groups.items():
            assert (f"{name}_{lv}" in free) == (g.n >= 5), (name, lv, g.n)
    assert d.change_groups["collaborative"].n == 2
    assert {"sd_u_unit", "sd_level_unit", "v_level_collaborative_z",
            "u_collaborative_z"} <= free
    assert qm.fixed_spreads["sd_level_collaborative"] == pytest.approx(0.3)
    assert qm.fixed_spreads["sd_u_collaborative"] == pytest.approx(1.0)   # HalfNormal(1)
    assert "sd_u_unit" not in qm.fixed_spreads
    # the same effects with the learned spread (spread_min_groups=2) differ only by the sd
    qm2 = build(data, ModelSpec(centered=NO_CENTRE, spread_min_groups=2, **SLOPE))
    assert "sd_level_collaborative" in {rv.name for rv in qm2.model.free_RVs}
    assert qm2.fixed_spreads == {}
    with pytest.raises(ModelSpecError, match="spread_min_groups"):
        ModelSpec(spread_min_groups=1)


def test_prior_rms_from_the_moments() -> None:
    assert Prior("HalfNormal", {"sigma": 0.5}).rms() == pytest.approx(0.5)
    assert Prior("Exponential", {"lam": 2.0}).rms() == pytest.approx(np.sqrt(2) / 2)
    assert Prior("HalfStudentT", {"nu": 4.0, "sigma": 1.0}).rms() == pytest.approx(np.sqrt(2))
    assert Prior("HalfCauchy", {"beta": 0.7}).rms() == pytest.approx(0.7)   # no moment: scale
    # on the variance: E[sd^2] = E[variance]
    assert Prior("Exponential", {"lam": 4.0}, on="variance").rms() == pytest.approx(0.5)


def test_curve_deviations_only_where_collaboratives_are_observed() -> None:
    """Free coordinates sum_h (n_h - 1) over the collaboratives observed at each exposure
    step; the deviations are centred over the observed collaboratives at every exposure
    time (the common curve is their average); with every collaborative observed everywhere,
    the zero-sum random walk."""
    from qicstats.models.effects import curve_deviation_map, curve_deviations

    obs = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=bool)
    basis, index, K = curve_deviation_map(obs)
    assert K == 1   # step 1: two observed collaboratives, one contrast; later steps: none
    with pm.Model(coords={"collaborative_joined": ["a", "b", "c"],
                          "exposure_time": ["0", "1", "2", "3"]}):
        v = curve_deviations("v_curve_collaborative", 0.5, obs, "collaborative_joined")
        fn = pytensor.function([pm.modelcontext(None)["v_curve_collaborative_z"]], v)
    out = fn(np.array([1.3]))                  # (groups, exposure times)
    assert out[:, 0] == pytest.approx(0.0)
    assert out[0, 1] == pytest.approx(-out[1, 1]) and abs(out[0, 1]) == pytest.approx(
        0.5 * 1.3 / np.sqrt(2))
    assert out[0, 2] == pytest.approx(0.0) and out[0, 3] == pytest.approx(0.0)  # alone: 0
    # every cell observed: zero-sum at each exposure time, (m - 1)(n - 1) coordinates
    full = np.ones((4, 3), bool)
    _, _, K2 = curve_deviation_map(full)
    assert K2 == 3 * 2
    with pm.Model(coords={"g": ["a", "b", "c"], "exposure_time": ["0", "1", "2", "3"]}):
        v = curve_deviations("v", 1.0, full, "g")
        fn = pytensor.function([pm.modelcontext(None)["v_z"]], v)
    z = np.random.default_rng(1).normal(size=K2)
    out = fn(z)
    np.testing.assert_allclose(out.sum(axis=0), 0.0, atol=1e-12)
    steps = np.diff(out, axis=1)               # orthonormal basis: |steps| = |z| per step
    np.testing.assert_allclose((steps**2).sum(axis=0), (z.reshape(3, 2) ** 2).sum(axis=1))


def test_the_level_above_centred_units_is_integrated_out() -> None:
    """With every unit's baseline centred and the sites' centring ``auto``, the site effects
    leave the graph (their spread stays) and the unit totals' prior is the compound-symmetry
    normal of each site, checked against SciPy's multivariate normal at a random point and
    by prior draws (the sites' shared part shows as the within-site correlation); an
    explicit setting for the sites keeps them."""
    from qicstats.models.effects import nested_totals_marginal

    data = tiny_panel("binomial")
    qm = build(data, ModelSpec(trend="linear", effect="step",
                               centered={"baseline.unit": True}))
    free = {rv.name for rv in qm.model.free_RVs}
    assert qm.marginalised == ("baseline.site",)
    assert "sd_u_site" in free and "u_unit_nested" in free
    assert not {"u_site", "u_site_z", "u_site_pc", "u_site_nested"} & free
    kept = build(data, ModelSpec(trend="linear", effect="step",
                                 centered={"baseline.unit": True, "site": False}))
    assert kept.marginalised == () and "u_site_z" in {rv.name for rv in kept.model.free_RVs}

    parent = np.array([0, 0, 0, 1, 1, 2])
    loc = np.linspace(-0.5, 0.5, 6)
    with pm.Model(coords={"g": list("abcdef")}) as m:
        s = pm.HalfNormal("s", 1.0)
        sp = pm.HalfNormal("sp", 1.0)
        nested_totals_marginal("u", loc, s, sp, parent, 3, "g")
    x = np.random.default_rng(3).normal(size=6)
    lp = m.compile_logp(vars=[m["u_nested"]], jacobian=False)
    cov = 0.6**2 * np.eye(6) + 0.8**2 * (parent[:, None] == parent[None, :])
    assert lp({"s_log__": np.log(0.6), "sp_log__": np.log(0.8), "u_nested": x}) == \
        pytest.approx(stats.multivariate_normal(loc, cov).logpdf(x), rel=1e-10)
    with pm.Model(coords={"g": list("abcdef")}):
        nested_totals_marginal("u", loc, 0.6, 0.8, parent, 3, "g")
        draws = pm.sample_prior_predictive(draws=4000, random_seed=5).prior["u_nested"]
    t = draws.values.reshape(-1, 6)
    # 4000 draws: the sample correlation's sd is about (1 - r^2) / sqrt(4000) < 0.016
    r_within = 0.64 / (0.36 + 0.64)
    assert np.corrcoef(t[:, 0], t[:, 1])[0, 1] == pytest.approx(r_within, abs=0.05)
    assert abs(np.corrcoef(t[:, 0], t[:, 3])[0, 1]) < 0.05
