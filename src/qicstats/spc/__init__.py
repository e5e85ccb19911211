"""Statistical process control: run and control charts with the Anhøj rules (after qicharts2).

``qic()`` computes a chart and returns a :class:`QicResult` with per-point ``.data``, a
``.summary()`` per facet and part, and ``.plot()``. ``residual_signals()`` applies the runs
rules to model residuals; ``small_multiples()`` draws one small chart per unit.
"""

from __future__ import annotations

from qicstats.spc.bridge import RESIDUAL_SIGNAL_COLUMNS, residual_signals, small_multiples
from qicstats.spc.charts import CHART_NAMES, CHART_TYPES, a3, b3, b4, c4
from qicstats.spc.core import DATA_COLUMNS, SUMMARY_COLUMNS, QicResult, qic
from qicstats.spc.rules import RunsResult, longest_run_max, n_crossings_min, runs_analysis

__all__ = [
    "qic",
    "QicResult",
    "SUMMARY_COLUMNS",
    "DATA_COLUMNS",
    "CHART_TYPES",
    "CHART_NAMES",
    "runs_analysis",
    "RunsResult",
    "longest_run_max",
    "n_crossings_min",
    "residual_signals",
    "RESIDUAL_SIGNAL_COLUMNS",
    "small_multiples",
    "a3",
    "b3",
    "b4",
    "c4",
]
