"""Same model + same seed on the same machine -> the same draws (real sampling, tiny model)."""

from __future__ import annotations

import numpy as np
import pytest

from qicstats.inference import SamplerConfig, fit
from qicstats.models import ModelSpec, build
from qicstats.testing import tiny_panel


@pytest.mark.sampling
def test_nutpie_draws_repeat_with_the_seed():
    qm = build(tiny_panel("binomial", sites=False), ModelSpec(random={"slope": ("collaborative",)}))
    cfg = SamplerConfig(chains=2, draws=50, tune=50, seed=123, progress=False)
    a = fit(qm, cfg)
    b = fit(qm, cfg)
    for name in ("level_change", "u_unit", "secular"):
        np.testing.assert_array_equal(a.posterior[name].values, b.posterior[name].values)
    # the two chains start from different seeds derived from the one seed
    lc = a.posterior["level_change"].values
    assert not np.array_equal(lc[0], lc[1])
    assert a.attrs["qicstats_seed"] == 123 and a.attrs["qicstats_data_hash"] == qm.data_hash
