"""att_exposure and att_phase from a model fitted with PyMC's mock sampler (prior draws; no
MCMC): their groups, row counts, and the identities tying them to the overall ATT."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
import pymc as pm
import pytest

from qicstats.inference import SamplerConfig, fit
from qicstats.models import ModelSpec, build
from qicstats.results import FitResult
from qicstats.testing import tiny_panel

#: draw-by-draw identities between averages of the same rows: rounding only
EXACT = 1e-10


@pytest.fixture(scope="module")
def result() -> FitResult:
    """A stepped-wedge-like panel (no comparison units: joins at 3, 4, 5, 6 of 12 periods, so
    exposure times 0..2 have concurrent comparisons and 3..8 none) with end periods (a
    sustainability phase), the default spec (period effects, the curve, phases)."""
    data = tiny_panel("binomial", n_comparison=0, sites=False, seed=4)
    units = data.units.copy()
    units["end_t"] = pd.array([7 if u in ("c1u1", "c2u2") else pd.NA for u in units["unit"]],
                              dtype="Int64")
    data = replace(data, units=units)
    qm = build(data, ModelSpec())
    assert (qm.spec.trend, qm.spec.effect, qm.spec.phases) == ("period", "curve", True)
    assert qm.structure.identified_max == 2 < qm.structure.max_exposure
    from pymc.testing import mock_sample

    stats_ = {"diverging": lambda size: np.zeros(size, dtype=bool),
              "tree_depth": lambda size: np.full(size, 3)}
    mp = pytest.MonkeyPatch()
    mp.setattr(pm, "sample", partial(mock_sample, sample_stats=stats_))
    try:
        idata = fit(qm, SamplerConfig(backend="pymc", chains=2, draws=20, tune=0, seed=3,
                                      progress=False))
    finally:
        mp.undo()
    return FitResult(qm, idata)


def test_att_exposure_covers_the_identified_horizons_only(result: FitResult) -> None:
    qm = result.qmodel
    d = qm.design
    ed = result.estimand_draws()
    groups = sorted(g for (e, s, g) in ed.draws if e == "att_exposure")
    assert groups == [f"h={h}" for h in range(qm.structure.identified_max + 1)]
    assert all(s == "exposure" for (e, s, _g) in ed.draws if e == "att_exposure")
    post = (d.rows.D > 0)
    h = np.rint(d.rows.e).astype(int)
    for k in range(qm.structure.identified_max + 1):
        assert ed.n_rows[("att_exposure", "exposure", f"h={k}")] == int((post & (h == k)).sum())
    # the ATT averages the identified rows: the row-weighted mean of att_exposure
    n = np.array([ed.n_rows[("att_exposure", "exposure", g)] for g in groups], float)
    assert ed.n_rows[("att", "overall", "all")] == int(n.sum())
    per_h = np.stack([ed.draws[("att_exposure", "exposure", g)] for g in groups], axis=1)
    np.testing.assert_allclose(ed.draws[("att", "overall", "all")], per_h @ n / n.sum(),
                               rtol=EXACT, atol=EXACT)
    table = result.estimands("att_exposure")
    assert list(table["group"]) == groups           # ordered by exposure time
    assert np.isfinite(table["mean"]).all()


def test_att_phase_splits_the_att_rows(result: FitResult) -> None:
    qm = result.qmodel
    d = qm.design
    ed = result.estimand_draws()
    keys = sorted(k for k in ed.draws if k[0] == "att_phase")
    assert [k[2] for k in keys] == ["intervention", "sustainability"]
    assert all(k[1] == "phase" for k in keys)
    rows = (d.rows.D > 0) & d.in_estimand(d.rows.e)
    n_sus = int((rows & (d.rows.P > 0)).sum())
    assert 0 < n_sus < int(rows.sum())
    assert ed.n_rows[("att_phase", "phase", "sustainability")] == n_sus
    assert ed.n_rows[("att_phase", "phase", "intervention")] == int(rows.sum()) - n_sus
    n = np.array([ed.n_rows[k] for k in keys], float)
    both = np.stack([ed.draws[k] for k in keys], axis=1)
    np.testing.assert_allclose(ed.draws[("att", "overall", "all")], both @ n / n.sum(),
                               rtol=EXACT, atol=EXACT)


def test_no_phase_estimand_without_end_periods() -> None:
    """att_phase exists only with a sustainability phase (checked on the design: the
    estimand engine reads ``design.phases``)."""
    qm = build(tiny_panel("binomial", n_comparison=0, sites=False, seed=4), ModelSpec())
    assert qm.spec.phases is False and not qm.design.phases
