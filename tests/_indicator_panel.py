"""A tiny three-ward panel shared by the indicator tests (no outcome rows needed there)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qicstats.data.panel import PanelData
from qicstats.data.periods import make_grid

JAN_2024 = 2024 * 12


def make_panel(n_periods: int = 6) -> PanelData:
    """Three wards (sites North, North, South), monthly from 2024-01."""
    grid = make_grid(np.arange(JAN_2024, JAN_2024 + n_periods), "month")
    units = pd.DataFrame({
        "unit": ["Ward 1", "Ward 2", "Ward 3"],
        "collaborative": ["QIC", "QIC", pd.NA],
        "join_period": ["2024-03", "2024-03", pd.NA],
        "join_t": pd.array([2, 2, None], dtype="Int64"),
        "end_t": pd.array([None, None, None], dtype="Int64"),
        "site": ["North", "North", "South"],
    })
    panel = pd.DataFrame({"unit": ["Ward 1"], "period": ["2024-01"], "t": [0],
                          "numerator": [1], "denominator": [2]})
    return PanelData(panel, units, grid, "binomial", levels=("collaborative", "site"))
