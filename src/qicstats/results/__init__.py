"""Results of a fit: diagnostics gate, draw-based estimands, checks, plots, save/load."""

from qicstats.results.diagnostics import Diagnostics, Thresholds, compute_diagnostics
from qicstats.results.estimands import ESTIMAND_COLUMNS, EstimandOptions
from qicstats.results.fitresult import FitResult

__all__ = ["Diagnostics", "Thresholds", "compute_diagnostics", "ESTIMAND_COLUMNS",
           "EstimandOptions", "FitResult"]
