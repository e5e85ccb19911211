"""Seeded synthetic QIC data with every parameter known.

Two generators share one entry point, :func:`simulate`:

- the model's own generator (:mod:`qicstats.simulate.core`; presets ``demo``, ``small``,
  ``S``, ``M``, ``L``): data drawn from qicstats' model, for tests of exactness and the speed
  benchmark;
- the **design zoo** (:mod:`qicstats.simulate.zoo`; presets ``stepped_wedge``,
  ``short_panel``, ``single_series``, ``collaborative``, ``collaborative_200``, ``large``,
  ``few_collaboratives``, ``counts``): shapes of real evaluations whose data-generating
  processes lie outside the model (other trend shapes, effects that ramp and fade,
  heavy-tailed units, coder errors, unbalanced cohorts), for judging defaults.
"""

from __future__ import annotations

from typing import Any

from qicstats.simulate.core import (
    DEFAULT_SEED,
    FILE_NAMES,
    PRESETS,
    TRUTH_ROWS_FILE,
    SimulatedQIC,
    resolve_settings,
    simulate_patient_rows,
)
from qicstats.simulate.core import simulate as _simulate_model
from qicstats.simulate.zoo import (
    ZOO,
    ZooDesign,
    design_names,
    simulate_design,
    true_att,
)

__all__ = [
    "ALL_PRESETS",
    "DEFAULT_SEED",
    "FILE_NAMES",
    "PRESETS",
    "TRUTH_ROWS_FILE",
    "ZOO",
    "SimulatedQIC",
    "ZooDesign",
    "design_names",
    "resolve_settings",
    "simulate",
    "simulate_design",
    "simulate_patient_rows",
    "true_att",
]

#: every preset :func:`simulate` knows: the model's own, then the zoo's designs
ALL_PRESETS: tuple[str, ...] = tuple(PRESETS) + tuple(ZOO)


def simulate(preset: str = "demo", *, seed: int = DEFAULT_SEED, **overrides: Any
             ) -> SimulatedQIC:
    """Simulate a QIC dataset with every parameter known.

    Parameters
    ----------
    preset : str
        One of :data:`ALL_PRESETS`: a preset of the model's own generator (``demo``,
        ``small``, ``S``, ``M``, ``L``; see :func:`qicstats.simulate.core.simulate` for its
        settings) or a design of the zoo (see :mod:`qicstats.simulate.zoo`; its settings are
        the fields of :class:`ZooDesign`).
    seed : int
        Everything is drawn from one ``numpy.random.default_rng(seed)``.
    **overrides
        Settings of the preset.

    Returns
    -------
    SimulatedQIC
    """
    if preset in ZOO:
        from qicstats.simulate.core import _is_num

        if not (_is_num(seed) and float(seed).is_integer() and seed >= 0):
            from qicstats.errors import ConfigError, Problem

            raise ConfigError([Problem("bad_seed", "seed must be a non-negative integer",
                                       count=1, examples=(repr(seed),))])
        return simulate_design(preset, seed=int(seed), **overrides)
    return _simulate_model(preset, seed=seed, **overrides)


simulate.__doc__ = (simulate.__doc__ or "") + "\n\nModel generator:\n" + (
    _simulate_model.__doc__ or "")
