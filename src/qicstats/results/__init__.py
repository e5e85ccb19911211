"""Results of a fit: diagnostics gate, draw-based estimands, checks, plots, save/load.

The identification diagnostics are :func:`qicstats.results.identification.identification`
(also :meth:`FitResult.identification`); the function is not re-exported here, where its
name would shadow its module.
"""

from qicstats.results.diagnostics import Diagnostics, Thresholds, compute_diagnostics
from qicstats.results.estimands import ESTIMAND_COLUMNS, EstimandOptions
from qicstats.results.fitresult import FitResult
from qicstats.results.identification import IdentificationReport

__all__ = ["Diagnostics", "Thresholds", "compute_diagnostics", "ESTIMAND_COLUMNS",
           "EstimandOptions", "FitResult", "IdentificationReport"]
