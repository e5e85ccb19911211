"""Tests of the frequentist cross-checks (no MCMC): simulated panels with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qicstats.compare import agreement_sentence, frequentist, frequentist_baselines
from qicstats.compare.frequentist import BASELINE_COLUMNS, METHODS
from qicstats.data.panel import PanelData, PeriodGrid

LEVEL, SLOPE = 0.4, 0.02


def _labels(T: int) -> tuple[str, ...]:
    return tuple(f"{2020 + k // 12}-{k % 12 + 1:02d}" for k in range(T))


def simulate(family: str = "binomial", *, n_units: int = 120, T: int = 30,
             n_comparison: int = 30, same_join: int | None = None, seed: int = 20261122,
             drop_frac: float = 0.0) -> PanelData:
    """A QIC panel with known level change 0.4 and slope change 0.02 on the link scale.

    Unit intercepts N(0, 0.5), a linear secular trend, staggered joins between periods 6 and
    T - 9, ``n_comparison`` comparison units; ``drop_frac`` of the rows removed at random
    (unbalanced panel).
    """
    rng = np.random.default_rng(seed)
    labels = _labels(T)
    units = [f"u{i:03d}" for i in range(n_units)]
    part = np.arange(n_units) >= n_comparison
    join = np.where(part, rng.integers(6, T - 8, size=n_units), -1)
    if same_join is not None:
        join[part] = same_join
    a = rng.normal(0.0, 0.5, size=n_units)
    ui = np.repeat(np.arange(n_units), T)
    t = np.tile(np.arange(T), n_units)
    D = (part[ui] & (t >= join[ui])).astype(float)
    e = (t - join[ui]) * D
    base = {"unit": np.array(units)[ui], "period": np.array(labels)[t], "t": t}
    if family == "binomial":
        eta = -0.5 + a[ui] + 0.01 * t + LEVEL * D + SLOPE * e
        n = 50 + rng.poisson(50, size=len(t))
        y = rng.binomial(n, 1.0 / (1.0 + np.exp(-eta)))
        panel = pd.DataFrame({**base, "numerator": y, "denominator": n})
    elif family == "poisson":
        eta = np.log(0.02) + a[ui] + 0.01 * t + LEVEL * D + SLOPE * e
        expo = rng.uniform(500, 1500, size=len(t))
        panel = pd.DataFrame({**base, "count": rng.poisson(expo * np.exp(eta)),
                              "exposure": expo})
    elif family == "gaussian":
        val = 10 + a[ui] + 0.05 * t + LEVEL * D + SLOPE * e + rng.normal(0, 1, size=len(t))
        panel = pd.DataFrame({**base, "value": val})
    else:  # pragma: no cover - test helper misuse
        raise ValueError(family)
    if drop_frac:
        panel = panel.loc[rng.random(len(panel)) >= drop_frac].reset_index(drop=True)
    unit_table = pd.DataFrame({
        "unit": units,
        "collaborative": pd.array([("C1" if i % 2 else "C2") if part[i] else pd.NA
                                   for i in range(n_units)], dtype="string"),
        "join_period": pd.array([labels[join[i]] if part[i] else pd.NA
                                 for i in range(n_units)], dtype="string"),
        "join_t": pd.array([int(join[i]) if part[i] else pd.NA for i in range(n_units)],
                           dtype="Int64"),
        "end_t": pd.array([pd.NA] * n_units, dtype="Int64"),
    })
    return PanelData(panel=panel, units=unit_table,
                     periods=PeriodGrid(freq="month", labels=labels, values=tuple(range(T))),
                     family=family, levels=("collaborative",))


def _get(out: pd.DataFrame, method: str, term: str) -> pd.Series:
    row = out[(out["method"] == method) & (out["term"] == term)]
    assert len(row) == 1
    return row.iloc[0]


@pytest.fixture(scope="module")
def binomial_data() -> PanelData:
    return simulate("binomial")


@pytest.fixture(scope="module")
def binomial_out(binomial_data: PanelData) -> pd.DataFrame:
    return frequentist_baselines(binomial_data)


# --------------------------------------------------------------------------------------
# shape of the output
# --------------------------------------------------------------------------------------
def test_columns_rows_and_scales(binomial_out: pd.DataFrame) -> None:
    out = binomial_out
    assert tuple(out.columns) == BASELINE_COLUMNS == (
        "method", "term", "scale", "estimate", "se", "lower", "upper", "p_value", "n_obs",
        "n_clusters", "seconds", "note", "status")
    expected = [(m, t) for m, terms in METHODS.items() for t in terms]
    assert list(zip(out["method"], out["term"])) == expected == [
        ("glm_fe", "level_change"), ("glm_fe", "slope_change"), ("twfe_did", "did"),
        ("twfe_did_trend", "level_change"), ("twfe_did_trend", "slope_change"),
        ("mixedlm", "level_change"), ("mixedlm", "slope_change")]
    assert out["scale"].tolist() == ["logit", "logit", "probability", "probability",
                                     "probability", "logit", "logit"]
    assert (out["status"] == "ok").all(), out["status"].tolist()
    assert (out["n_obs"] == 120 * 30).all()
    assert (out["n_clusters"] == 120).all()
    assert (out["seconds"] > 0).all()
    assert (out["lower"] < out["estimate"]).all() and (out["estimate"] < out["upper"]).all()
    assert ((out["p_value"] >= 0) & (out["p_value"] <= 1)).all()
    assert out["note"].str.len().gt(40).all()
    assert "mixes the level change with the slope change" in _get(out, "twfe_did", "did")["note"]


def test_intervals_match_the_requested_probability(binomial_out: pd.DataFrame) -> None:
    small = frequentist_baselines(simulate("binomial", n_units=40, T=16, n_comparison=10),
                                  interval_prob=0.80)
    for z, out in ((1.959964, binomial_out), (1.281552, small)):
        half = (out["upper"] - out["lower"]) / 2
        np.testing.assert_allclose((out["upper"] + out["lower"]) / 2, out["estimate"],
                                   rtol=1e-9, atol=1e-12)
        # statsmodels: normal intervals; linearmodels: t intervals with many df
        sm_rows = out["method"].isin(["glm_fe", "mixedlm"])
        np.testing.assert_allclose(half[sm_rows], z * out.loc[sm_rows, "se"], rtol=1e-5)
        np.testing.assert_allclose(half[~sm_rows], z * out.loc[~sm_rows, "se"], rtol=2e-3)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1])
def test_interval_prob_out_of_range_raises(binomial_data: PanelData, bad: float) -> None:
    with pytest.raises(ValueError, match="interval_prob"):
        frequentist_baselines(binomial_data, interval_prob=bad)


# --------------------------------------------------------------------------------------
# recovery of the truth
# --------------------------------------------------------------------------------------
def test_glm_fe_recovers_binomial_truth_within_3_se(binomial_out: pd.DataFrame) -> None:
    lev = _get(binomial_out, "glm_fe", "level_change")
    slo = _get(binomial_out, "glm_fe", "slope_change")
    assert abs(lev["estimate"] - LEVEL) < 3 * lev["se"]
    assert abs(slo["estimate"] - SLOPE) < 3 * slo["se"]
    # and the SEs are small enough for that to mean something
    assert lev["se"] < 0.03 and slo["se"] < 0.003


def test_mixedlm_on_empirical_logit_recovers_binomial_truth(binomial_out: pd.DataFrame) -> None:
    lev = _get(binomial_out, "mixedlm", "level_change")
    slo = _get(binomial_out, "mixedlm", "slope_change")
    assert abs(lev["estimate"] - LEVEL) < 3 * lev["se"]
    assert abs(slo["estimate"] - SLOPE) < 3 * slo["se"]
    # the simulated level change does not vary by unit: the random D slope sits on the
    # boundary, and the fallback to a random intercept is said in the note
    assert "random intercept only" in lev["note"]


def test_mixedlm_keeps_random_d_slope_when_level_change_varies_by_unit() -> None:
    data = simulate("gaussian", n_units=60, T=20, n_comparison=15)
    rng = np.random.default_rng(7)
    part = data.units["join_t"].notna().to_numpy()
    bonus = pd.Series(np.where(part, rng.normal(0.0, 1.0, len(part)), 0.0),
                      index=data.units["unit"].to_numpy())
    join = pd.Series(data.units["join_t"].astype("float64").fillna(np.inf).to_numpy(),
                     index=data.units["unit"].to_numpy())
    panel = data.panel.copy()
    D = (panel["t"].to_numpy() >= join.loc[panel["unit"]].to_numpy()).astype(float)
    panel["value"] = panel["value"] + D * bonus.loc[panel["unit"]].to_numpy()
    out = frequentist_baselines(PanelData(panel=panel, units=data.units,
                                          periods=data.periods, family="gaussian"))
    lev = _get(out, "mixedlm", "level_change")
    assert lev["status"] == "ok"
    assert "random intercept only" not in lev["note"]
    # the average level change of these units is 0.4 plus their mean random deviation
    assert abs(lev["estimate"] - (LEVEL + bonus[part].mean())) < 3 * lev["se"]


def test_twfe_single_dummy_mixes_level_and_slope(binomial_out: pd.DataFrame) -> None:
    did = _get(binomial_out, "twfe_did", "did")["estimate"]
    lev = _get(binomial_out, "twfe_did_trend", "level_change")["estimate"]
    slo = _get(binomial_out, "twfe_did_trend", "slope_change")["estimate"]
    # probability scale: about p(1 - p) * 0.4 ~ 0.09 at joining, plus growth afterwards
    assert 0.06 < lev < 0.12
    assert 0.002 < slo < 0.008
    # a positive slope change is folded into the single post dummy
    assert did > lev


def test_poisson_unbalanced_panel() -> None:
    data = simulate("poisson", n_units=80, T=24, n_comparison=20, drop_frac=0.1)
    out = frequentist_baselines(data)
    assert (out["status"] == "ok").all(), out["status"].tolist()
    assert out["scale"].tolist() == ["log", "log", "identity", "identity", "identity",
                                     "log", "log"]
    assert (out["n_obs"] == len(data.panel)).all()
    lev = _get(out, "glm_fe", "level_change")
    slo = _get(out, "glm_fe", "slope_change")
    assert abs(lev["estimate"] - LEVEL) < 3 * lev["se"]
    assert abs(slo["estimate"] - SLOPE) < 3 * slo["se"]
    assert "offset log(exposure)" in lev["note"]
    assert "count/exposure" in _get(out, "twfe_did", "did")["note"]


def test_gaussian_glm_fe_equals_twfe_with_trend() -> None:
    data = simulate("gaussian", n_units=80, T=24, n_comparison=20)
    out = frequentist_baselines(data)
    assert (out["status"] == "ok").all(), out["status"].tolist()
    assert set(out["scale"]) == {"identity"}
    lev = _get(out, "glm_fe", "level_change")
    slo = _get(out, "glm_fe", "slope_change")
    assert abs(lev["estimate"] - LEVEL) < 3 * lev["se"]
    assert abs(slo["estimate"] - SLOPE) < 3 * slo["se"]
    # OLS with unit and period dummies is the two-way within estimator (Frisch-Waugh-Lovell)
    for term in ("level_change", "slope_change"):
        assert _get(out, "twfe_did_trend", term)["estimate"] == pytest.approx(
            _get(out, "glm_fe", term)["estimate"], rel=1e-8, abs=1e-10)


# --------------------------------------------------------------------------------------
# failures are rows, not exceptions
# --------------------------------------------------------------------------------------
def test_degenerate_all_join_at_once_without_comparison_units() -> None:
    data = simulate("binomial", n_units=30, T=20, n_comparison=0, same_join=10)
    out = frequentist_baselines(data)
    assert tuple(out.columns) == BASELINE_COLUMNS
    assert len(out) == 7
    assert out["status"].str.startswith("failed: ").all()
    assert out["status"].str.contains("level change \\(D\\) is not identified").all()
    assert out["estimate"].isna().all() and out["se"].isna().all()
    assert out["n_obs"].isna().all()


def test_missing_outcome_column_fails_every_method() -> None:
    data = simulate("binomial", n_units=20, T=16, n_comparison=5)
    broken = PanelData(panel=data.panel.drop(columns=["denominator"]), units=data.units,
                       periods=data.periods, family="binomial")
    out = frequentist_baselines(broken)
    assert len(out) == 7
    assert (out["status"] == "failed: the panel has no ['denominator'] column(s) for family "
                              "'binomial'").all()


def test_one_failing_baseline_does_not_break_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(prep: object, interval_prob: float) -> list:
        raise RuntimeError("singular matrix\nin the optimiser")

    monkeypatch.setattr(frequentist, "_mixedlm", boom)
    out = frequentist_baselines(simulate("binomial", n_units=40, T=16, n_comparison=10))
    mixed = out[out["method"] == "mixedlm"]
    assert (mixed["status"] == "failed: RuntimeError: singular matrix in the optimiser").all()
    assert mixed["estimate"].isna().all()
    assert (out.loc[out["method"] != "mixedlm", "status"] == "ok").all()


def test_single_unit_fails_cleanly() -> None:
    data = simulate("gaussian", n_units=1, T=16, n_comparison=0)
    out = frequentist_baselines(data)
    assert (out["status"] == "failed: only 1 unit(s) with usable rows; clustering by unit "
                             "needs at least two").all()


# --------------------------------------------------------------------------------------
# data handling
# --------------------------------------------------------------------------------------
def test_zero_denominator_rows_are_dropped_and_said() -> None:
    data = simulate("binomial", n_units=40, T=16, n_comparison=10)
    panel = data.panel.copy()
    panel.loc[[3, 100, 200], ["numerator", "denominator"]] = 0
    data0 = PanelData(panel=panel, units=data.units, periods=data.periods, family="binomial")
    out = frequentist_baselines(data0)
    assert (out["status"] == "ok").all()
    assert (out["n_obs"] == 40 * 16 - 3).all()
    assert out["note"].str.contains("Dropped 3 row\\(s\\) with a zero denominator").all()
    # without them, no note
    clean = frequentist_baselines(data)
    assert not clean["note"].str.contains("Dropped").any()


def test_units_whose_outcome_never_varies_are_dropped_from_glm_fe() -> None:
    data = simulate("binomial", n_units=40, T=16, n_comparison=10)
    panel = data.panel.copy()
    panel.loc[panel["unit"] == "u000", "numerator"] = 0
    out = frequentist_baselines(PanelData(panel=panel, units=data.units,
                                          periods=data.periods, family="binomial"))
    glm = out[out["method"] == "glm_fe"]
    assert (glm["status"] == "ok").all()
    assert (glm["n_clusters"] == 39).all() and (glm["n_obs"] == 39 * 16).all()
    assert glm["note"].str.contains("Dropped 1 unit\\(s\\) whose outcome never varies").all()
    assert (out.loc[out["method"] != "glm_fe", "n_clusters"] == 40).all()


def test_inputs_untouched_and_results_deterministic() -> None:
    data = simulate("binomial", n_units=40, T=16, n_comparison=10)
    panel_before = data.panel.copy(deep=True)
    units_before = data.units.copy(deep=True)
    first = frequentist_baselines(data)
    again = frequentist_baselines(data)
    pd.testing.assert_frame_equal(data.panel, panel_before)
    pd.testing.assert_frame_equal(data.units, units_before)
    cols = [c for c in BASELINE_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(again[cols], first[cols])


# --------------------------------------------------------------------------------------
# agreement sentence
# --------------------------------------------------------------------------------------
def _baselines(rows: list[tuple[str, str, str, float, float, float, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["method", "term", "scale", "estimate", "lower",
                                       "upper", "status"])


def test_agreement_all_within() -> None:
    b = _baselines([("glm_fe", "level_change", "logit", 0.40, 0.37, 0.43, "ok"),
                    ("mixedlm", "level_change", "logit", 0.38, 0.35, 0.41, "ok"),
                    ("twfe_did_trend", "level_change", "probability", 0.09, 0.08, 0.1, "ok")])
    assert agreement_sentence(0.41, 0.30, 0.52, b) == (
        "The Bayesian level change on the logit scale is 0.41 (interval 0.3 to 0.52); "
        "both frequentist estimates lie within it: glm_fe (0.4) and mixedlm (0.38).")


def test_agreement_mixed_outcomes() -> None:
    b = _baselines([("glm_fe", "level_change", "logit", 0.40, 0.37, 0.43, "ok"),
                    ("mixedlm", "level_change", "logit", 0.60, 0.50, 0.70, "ok"),
                    ("other", "level_change", "logit", 0.90, 0.80, 1.00, "ok"),
                    ("broken", "level_change", "logit", np.nan, np.nan, np.nan,
                     "failed: x")])
    assert agreement_sentence(0.41, 0.30, 0.52, b) == (
        "The Bayesian level change on the logit scale is 0.41 (interval 0.3 to 0.52); "
        "glm_fe (0.4) lies within it, mixedlm (0.6, interval 0.5 to 0.7) lies outside it but "
        "its interval overlaps it, while other (0.9, interval 0.8 to 1) lies outside it and "
        "its interval does not overlap it.")


def test_agreement_single_and_none() -> None:
    b = _baselines([("twfe_did_trend", "slope_change", "probability", 0.005, 0.004, 0.006,
                     "ok")])
    assert agreement_sentence(0.0052, 0.0041, 0.0063, b, term="slope_change",
                              scale="probability") == (
        "The Bayesian slope change on the probability scale is 0.0052 (interval 0.0041 to "
        "0.0063); twfe_did_trend (0.005) lies within it.")
    assert agreement_sentence(0.41, 0.30, 0.52, b) == (
        "The Bayesian level change on the logit scale is 0.41 (interval 0.3 to 0.52); no "
        "frequentist baseline estimated the level change on the logit scale, so it could not "
        "be cross-checked.")


def test_agreement_on_real_baselines(binomial_out: pd.DataFrame) -> None:
    text = agreement_sentence(0.40, 0.37, 0.43, binomial_out)
    assert text.startswith("The Bayesian level change on the logit scale is 0.4 (interval "
                           "0.37 to 0.43); both frequentist estimates lie within it: glm_fe (")
    assert text.count(".") >= 1 and text.endswith(").")


def test_agreement_rejects_bad_input() -> None:
    b = _baselines([])
    with pytest.raises(ValueError, match="above"):
        agreement_sentence(0.4, 0.5, 0.3, b)
    with pytest.raises(ValueError, match="finite"):
        agreement_sentence(float("nan"), 0.3, 0.5, b)
    with pytest.raises(ValueError, match="lacks column"):
        agreement_sentence(0.4, 0.3, 0.5, b.drop(columns=["status"]))
