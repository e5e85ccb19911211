"""resolve_structure: the design-aware choices for ``auto`` settings, on zoo designs and hand
panels (no model is compiled, nothing is sampled)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from qicstats.data import validate
from qicstats.errors import ModelSpecError
from qicstats.models import ModelSpec, build_design, resolve_structure
from qicstats.models.structure import exposure_table
from qicstats.simulate import simulate
from qicstats.testing import tiny_panel


def zoo_data(name: str, seed: int = 1, **overrides):
    """A zoo design through the package's own loading path (validate)."""
    sim = simulate(name, seed=seed, **overrides)
    levels = ("collaborative", "site") if "site" in sim.units.columns else ("collaborative",)
    return sim, validate(sim.panel, sim.units, family=sim.truth["family"], levels=levels)


@pytest.fixture(scope="module")
def wedge():
    return zoo_data("stepped_wedge")


@pytest.fixture(scope="module")
def single():
    return zoo_data("single_series")


def test_stepped_wedge_gets_period_effects_and_the_curve(wedge) -> None:
    sim, data = wedge
    st = resolve_structure(data)
    assert (st.trend, st.effect, st.single_series) == ("period", "curve", False)
    # period effects contain the seasons; no end periods in the zoo
    assert st.seasonality is False and st.phases is False
    # every unit eventually starts: exposure times past the last cohort's start minus the
    # first's have no concurrent comparison
    units = data.units
    joins = units["join_t"].dropna().astype(int)
    T = data.periods.T
    last_untreated = int(joins.max()) - 1            # the last period with untreated units
    assert st.identified_max == last_untreated - int(joins.min())
    assert st.identified_max < st.max_exposure
    assert st.max_exposure == int(sim.truth_rows["exposure_time"].max()) <= T - 1
    hz = st.horizons.set_index("exposure_time")
    assert hz["identified"].to_numpy().tolist() == (hz.index <= st.identified_max).tolist()
    assert (hz.loc[hz["identified"], "concurrent_rows"] > 0).all()
    assert (hz.loc[~hz["identified"], "concurrent_rows"] == 0).all()
    assert f"0..{st.identified_max}" in st.reasons["identification"]
    # one programme: the collaborative level has one group and is left out
    assert st.levels == () and "collaborative" in st.reasons["levels"]
    # the curve runs on past the identified horizons (their rows do not distort them)
    assert st.curve_max == st.max_exposure


def test_exposure_table_counts_rows_by_hand(wedge) -> None:
    _, data = wedge
    tab, any_conc = exposure_table(data)
    u = data.unit_index
    t = data.panel["t"].to_numpy(dtype=int)
    join = pd.to_numeric(data.units["join_t"]).to_numpy(dtype=float)[u]
    post = t >= join
    untreated_periods = set(t[~post].tolist())
    h = (t - join)[post].astype(int)
    conc = np.isin(t[post], list(untreated_periods))
    assert any_conc
    for row in tab.itertuples():
        assert row.rows == int((h == row.exposure_time).sum())
        assert row.concurrent_rows == int(((h == row.exposure_time) & conc).sum())
        assert row.units == len(np.unique(u[post][h == row.exposure_time]))
    assert tab["rows"].sum() == int(post.sum())


def test_single_series_gets_linear_trend_slope_and_seasons(single) -> None:
    _, data = single
    assert data.periods.freq == "month" and data.periods.T >= 24
    st = resolve_structure(data)
    assert (st.trend, st.effect, st.single_series) == ("linear", "slope", True)
    assert st.seasonality is True and "two years" in st.reasons["seasonality"]
    assert st.identified_max is None       # identified by extrapolating the linear trend
    assert st.horizons["identified"].all()
    assert "extrapolating the linear trend" in st.reasons["identification"]
    assert "segmented regression" in st.reasons["effect_choice"]
    # fewer than two years of months: no seasons
    _, short = zoo_data("single_series", n_periods=20, cohorts=(12,))
    st_short = resolve_structure(short)
    assert (st_short.trend, st_short.seasonality) == ("linear", False)
    assert "fewer than two years" in st_short.reasons["seasonality"]


@pytest.mark.parametrize("trend", ["period", "rw", "spline"])
def test_flexible_trend_on_a_single_series_is_refused(single, trend: str) -> None:
    _, data = single
    with pytest.raises(ModelSpecError) as info:
        resolve_structure(data, ModelSpec(trend=trend))
    msg = str(info.value)
    assert f"trend '{trend}'" in msg and "single series" in msg
    assert "trend: linear" in msg and "comparison units" in msg   # what to do instead


def test_explicit_settings_on_a_single_series_are_kept(single) -> None:
    _, data = single
    st = resolve_structure(data, ModelSpec(trend="none", effect="step", seasonality=False))
    assert (st.trend, st.effect, st.seasonality) == ("none", "step", False)


def test_short_panel(tmp_path) -> None:
    sim, data = zoo_data("short_panel")
    st = resolve_structure(data)
    # comparison units throughout: every exposure time has concurrent comparisons
    assert (st.trend, st.effect, st.single_series) == ("period", "curve", False)
    assert st.identified_max is None and st.horizons["identified"].all()
    assert st.seasonality is False and "have no season" in st.reasons["seasonality"]
    assert st.max_exposure == int(sim.truth_rows["exposure_time"].max())
    assert st.levels == ("collaborative",)
    # resolve_structure decides from the design only: other outcome values, same choices
    panel = data.panel.assign(value=np.random.default_rng(0).normal(size=len(data.panel)))
    st2 = resolve_structure(replace(data, panel=panel))
    assert (st2.trend, st2.effect, st2.identified_max, st2.max_exposure) == (
        st.trend, st.effect, st.identified_max, st.max_exposure)


def test_phases_auto_follows_end_periods() -> None:
    data = tiny_panel("binomial")
    assert resolve_structure(data).phases is False
    units = data.units.copy()
    units["end_t"] = pd.array([8 if u == "c1u1" else pd.NA for u in units["unit"]],
                              dtype="Int64")
    ended = replace(data, units=units)
    st = resolve_structure(ended)
    assert st.phases is True and "after their unit's end_period" in st.reasons["phases"]
    assert resolve_structure(ended, ModelSpec(phases=False)).phases is False
    # the design's P: 1 after the end period only
    d = build_design(ended, st.apply(ModelSpec()), None, structure=st)
    r = d.rows
    i = list(units["unit"]).index("c1u1")
    np.testing.assert_array_equal(r.P[r.unit == i], (r.t[r.unit == i] > 8).astype(float))
    assert r.P[r.unit != i].sum() == 0


def test_apply_replaces_the_auto_settings(wedge) -> None:
    _, data = wedge
    spec = ModelSpec()
    st = resolve_structure(data, spec)
    out = st.apply(spec)
    assert (out.trend, out.effect, out.seasonality, out.phases) == (
        st.trend, st.effect, st.seasonality, st.phases)
    assert "auto" not in (out.trend, out.effect, out.seasonality, out.phases)
