"""Regenerate the stored posteriors used by tests that must not sample.

    python tests/data/posteriors/make_posteriors.py

Each file is a short nutpie run (2 chains x 150 draws) of a tiny panel from
``qicstats.testing``; the tests only need draws of the right shape, not converged ones.

``tiny_binomial.nc`` was sampled before unit effects became hierarchically centred; instead of
resampling (which would change every number the report tests pin), the free variable of the
new parameterisation, ``u_unit_nested = u_unit + intercept + u_collaborative + u_site``, was
added from the same draws (an exact reparameterisation) and the stored spec updated (root
attribute ``qicstats_converted`` says so). Its intervention block is pinned to the plain
parameterisation (``decorrelate=False``, added to the stored spec when that option arrived),
so its draws do not depend on the decorrelating basis.
"""

from pathlib import Path

from qicstats.inference import SamplerConfig, fit
from qicstats.models import ModelSpec, build
from qicstats.testing import tiny_indicators, tiny_panel

HERE = Path(__file__).parent


def tiny_binomial_model():
    """The model of ``tiny_binomial.nc`` (tests rebuild it to reuse the stored draws)."""
    data = tiny_panel("binomial")
    im = tiny_indicators(data, missing_units=2, uncertain_units=1)
    # the parameterisation is pinned so that the stored draws outlive changes to "auto"
    # (effect="slope", phases and seasonality off: the stored draws are of a level + slope
    # change model, from before the exposure-time curve became the default)
    spec = ModelSpec(trend="linear", effect="slope", seasonality=False, phases=False,
                     centered={"default": False, "unit": "auto"}, decorrelate=False)
    return data, im, build(data, spec, im)


if __name__ == "__main__":
    data, im, qm = tiny_binomial_model()
    idata = fit(qm, SamplerConfig(chains=2, draws=150, tune=300, seed=11, progress=False))
    idata.to_netcdf(HERE / "tiny_binomial.nc", engine="h5netcdf")
    print("wrote", HERE / "tiny_binomial.nc")
