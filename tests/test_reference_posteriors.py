"""Four posteriordb reference posteriors reproduced with the qicstats model builder.

``tests/reference/posteriordb`` (see its README and NOTICE) vendors the data of rats, GLMM1,
surgical and eight schools with reference posterior means and sds computed by quadrature. Each
is expressed here as a hand-made :class:`PanelData` (no validation: one row per observation,
units that never join, so no change terms) and a :class:`ModelSpec` whose prior overrides
reproduce the reference model's priors exactly. The posterior (nutpie, 4 x 1000 draws, fixed
seed) must agree with the reference by the README's rule: for each mean and sd,
|qicstats - reference| <= 4.5 MCSE (many parameters at once) and within the practical margin
0.05 + 0.1 * max(|reference|, reference sd).
"""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from qicstats.data.panel import PanelData
from qicstats.data.periods import make_grid
from qicstats.inference import SamplerConfig, fit
from qicstats.models import ModelSpec, build

pytestmark = pytest.mark.sampling

REF = Path(__file__).parent / "reference" / "posteriordb"
SAMPLER = dict(chains=4, draws=1000, tune=1000, progress=False)
MCSE_K = 4.5


def read(folder: str) -> tuple[dict, pd.DataFrame]:
    data = json.loads((REF / folder / "data.json").read_text())
    ref = pd.read_csv(REF / folder / "reference_quadrature_summary.csv").set_index("parameter")
    return data, ref


def panel_data(unit: list[str], period: list[int], family: str, **outcome: list[float]
               ) -> PanelData:
    """One row per observation; integer periods; every unit a comparison unit."""
    grid = make_grid(np.asarray(period, dtype=float), "integer")
    pos = {int(v): t for t, v in enumerate(grid.values)}
    panel = pd.DataFrame({"unit": pd.array(unit, dtype="string"),
                          "period": [str(p) for p in period],
                          "t": [pos[int(p)] for p in period], **outcome})
    panel = panel.sort_values(["unit", "t"], kind="stable").reset_index(drop=True)
    names = sorted(set(unit))
    n = len(names)
    units = pd.DataFrame({
        "unit": pd.array(names, dtype="string"),
        "join_period": pd.array([pd.NA] * n, dtype="string"),
        "join_t": pd.array([pd.NA] * n, dtype="Int64"),
        "end_t": pd.array([pd.NA] * n, dtype="Int64"),
    })
    return PanelData(panel=panel, units=units, periods=grid, family=family, levels=())


def draws(idata, name: str, idx: int | None = None) -> np.ndarray:
    a = np.asarray(idata.posterior[name].values)
    return a if idx is None else a[..., idx]


def check(got: dict[str, np.ndarray], ref: pd.DataFrame) -> pd.DataFrame:
    """Compare posterior means and sds with the reference (README rule); return the table."""
    recs = []
    for name, x in got.items():
        r = ref.loc[name]
        margin = 0.05 + 0.1 * max(abs(r["mean"]), r["sd"])
        for stat, val, mcse in (("mean", x.mean(), az.mcse(x)),
                                ("sd", x.std(ddof=1), az.mcse(x, method="sd"))):
            diff = abs(val - r[stat])
            recs.append({"parameter": name, "stat": stat, "qicstats": val, "reference": r[stat],
                         "diff": diff, "mcse": mcse, "margin": margin,
                         "ok": diff <= MCSE_K * mcse and diff <= margin})
    table = pd.DataFrame(recs)
    bad = table[~table["ok"]]
    assert bad.empty, "\n" + bad.to_string()
    return table


def sample(data: PanelData, spec: ModelSpec, seed: int):
    qm = build(data, spec)
    idata = fit(qm, SamplerConfig(seed=seed, **SAMPLER))
    div = int(np.asarray(idata.sample_stats["diverging"].values).sum())
    return qm, idata, div


def test_surgical() -> None:
    """r ~ Binomial(n, invlogit(b)), b ~ N(mu, sigma), mu ~ N(0, 1000),
    sigma^2 ~ InvGamma(0.001, 0.001); pop_mean = invlogit(mu)."""
    d, ref = read("surgical_data-surgical_model")
    N = d["N"]
    data = panel_data([f"h{i + 1:02d}" for i in range(N)], [1] * N, "binomial",
                      numerator=d["r"], denominator=d["n"])
    spec = ModelSpec(family="binomial", trend="none", random={"baseline": ("unit",)},
                     priors={"intercept": {"dist": "Normal", "mu": 0, "sigma": 1000},
                             "sd_u_unit": {"dist": "InverseGamma", "alpha": 0.001,
                                           "beta": 0.001, "on": "variance"}})
    qm, idata, div = sample(data, spec, seed=101)
    assert "sd_u_unit_variance" in qm.free_parameter_names()
    mu = draws(idata, "intercept")
    got = {"mu": mu, "sigma": draws(idata, "sd_u_unit"),
           "sigmasq": draws(idata, "sd_u_unit_variance"), "pop_mean": expit(mu)}
    check(got, ref)
    assert div <= 0.005 * mu.size


def test_glmm1() -> None:
    """obs ~ Poisson(exp(alpha[site])), alpha ~ N(mu_alpha, sd_alpha), mu_alpha ~ N(0, 10),
    sd_alpha ~ Uniform(0, 5); the 43 missing site-years are simply absent."""
    d, ref = read("GLMM_data-GLMM1_model")
    assert len(d["obs"]) == d["nobs"] == 2072
    data = panel_data([f"s{s:03d}" for s in d["obssite"]], d["obsyear"], "poisson",
                      count=d["obs"])
    assert data.periods.T == d["nyear"] and len(data.units) == d["nsite"]
    assert "exposure" not in data.panel  # exposure 1: no offset
    spec = ModelSpec(trend="none", random={"baseline": ("unit",)},
                     priors={"intercept": {"dist": "Normal", "mu": 0, "sigma": 10},
                             "sd_u_unit": {"dist": "Uniform", "lower": 0, "upper": 5}})
    qm, idata, div = sample(data, spec, seed=202)
    got = {"mu_alpha": draws(idata, "intercept"), "sd_alpha": draws(idata, "sd_u_unit")}
    check(got, ref)
    assert div <= 0.005 * got["mu_alpha"].size


def test_eight_schools() -> None:
    """y ~ N(theta, sigma) with known sigma; theta = mu + tau * theta_trs;
    mu ~ N(0, 5); tau ~ HalfCauchy(0, 5)."""
    d, ref = read("eight_schools-eight_schools_noncentered")
    J = d["J"]
    data = panel_data([f"school{j + 1}" for j in range(J)], [1] * J, "gaussian",
                      value=d["y"], se=d["sigma"])
    spec = ModelSpec(trend="none", random={"baseline": ("unit",)}, centered={"unit": False},
                     priors={"intercept": {"dist": "Normal", "mu": 0, "sigma": 5},
                             "sd_u_unit": {"dist": "HalfCauchy", "beta": 5}})
    qm, idata, div = sample(data, spec, seed=303)
    assert "sigma" not in qm.free_parameter_names()  # known standard errors
    mu = draws(idata, "intercept")
    u = draws(idata, "u_unit")
    got = {"mu": mu, "tau": draws(idata, "sd_u_unit")}
    got.update({f"theta[{j + 1}]": mu + u[..., j] for j in range(J)})
    check(got, ref)
    # a handful of divergences are usual for eight schools at target_accept 0.9
    assert div <= 0.005 * mu.size


def test_rats() -> None:
    """y ~ N(alpha[rat] + beta[rat] * (x - xbar), sigma_y); alpha ~ N(mu_alpha, sigma_alpha);
    beta ~ N(mu_beta, sigma_beta); mu_alpha, mu_beta ~ N(0, 100); flat sds on (0, inf).

    Periods are the days 8..36 (a grid with gaps); the linear trend's tau is the day centred at
    the midpoint of the period range, which is xbar = 22.
    """
    d, ref = read("rats_data-rats_model")
    assert d["xbar"] == 22 and len(d["y"]) == d["Npts"] == 150  # long: one row per point
    days = np.asarray(d["x"], dtype=float)
    data = panel_data([f"rat{r:02d}" for r in d["rat"]], [int(v) for v in days], "gaussian",
                      value=[float(v) for v in d["y"]])
    assert (data.periods.values[0], data.periods.values[-1]) == (8, 36)
    flat = {"dist": "HalfFlat"}
    spec = ModelSpec(trend="linear", random={"baseline": ("unit",), "trend": ("unit",)},
                     priors={"intercept": {"dist": "Normal", "mu": 0, "sigma": 100},
                             "trend_slope": {"dist": "Normal", "mu": 0, "sigma": 100},
                             "sd_u_unit": flat, "sd_trend_unit": flat, "sigma": flat})
    qm, idata, div = sample(data, spec, seed=404)
    order = np.lexsort((days, np.asarray(d["rat"])))  # the panel is sorted by unit, then t
    np.testing.assert_array_equal(qm.design.tau[qm.design.rows.t], days[order] - d["xbar"])
    mu_a = draws(idata, "intercept")
    mu_b = draws(idata, "trend_slope")
    got = {"mu_alpha": mu_a, "mu_beta": mu_b, "alpha0": mu_a - d["xbar"] * mu_b,
           "sigma_y": draws(idata, "sigma"), "sigma_alpha": draws(idata, "sd_u_unit"),
           "sigma_beta": draws(idata, "sd_trend_unit")}
    check(got, ref)
    assert div <= 0.005 * mu_a.size
