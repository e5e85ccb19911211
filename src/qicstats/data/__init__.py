"""The data layer: reading analysts' files, parsing periods, validating the QIC data contract.

The entry point is :func:`validate`, which turns a panel (and optional units table) into a
:class:`PanelData` or raises one :class:`~qicstats.errors.DataValidationError` listing every
broken rule.
"""

from __future__ import annotations

from qicstats.data.aggregate import aggregate_patient_rows
from qicstats.data.columns import ColumnMap
from qicstats.data.io import read_table
from qicstats.data.panel import PanelData, PeriodGrid
from qicstats.data.periods import ParsedPeriods, make_grid, parse_periods, to_grid_index
from qicstats.data.validate import validate

__all__ = [
    "read_table",
    "validate",
    "aggregate_patient_rows",
    "parse_periods",
    "make_grid",
    "to_grid_index",
    "ParsedPeriods",
    "PanelData",
    "PeriodGrid",
    "ColumnMap",
]
