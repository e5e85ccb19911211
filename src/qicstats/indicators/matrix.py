"""The encoded indicators that models consume: one value (or uncertainty) per unit-period.

Produced by :func:`qicstats.indicators.encode`; consumed by :mod:`qicstats.models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

IndicatorType = Literal["binary", "ordinal", "continuous"]
Role = Literal["main", "moderator", "both"]


@dataclass(frozen=True)
class EncodedIndicator:
    """One indicator as the model sees it.

    Attributes
    ----------
    name : str
    type : {"binary", "ordinal", "continuous"}
    levels : tuple of str
        Ordered levels, lowest (reference) first; empty for continuous indicators.
    role : {"main", "moderator", "both"}
        Main effect on the outcome, moderator of the level and slope change, or both.
    label : str
        Human-readable name for reports.
    center : float
        For continuous indicators, the value subtracted before modelling (observed mean).
    scale : float
        For continuous indicators, the divisor used before modelling (observed sd).
    """

    name: str
    type: str
    levels: tuple[str, ...] = ()
    role: str = "moderator"
    label: str = ""
    center: float = 0.0
    scale: float = 1.0

    @property
    def n_levels(self) -> int:
        """Number of levels (0 for continuous)."""
        return len(self.levels)

    @property
    def is_main(self) -> bool:
        """Enters as a main effect."""
        return self.role in ("main", "both")

    @property
    def is_moderator(self) -> bool:
        """Moderates the level and slope change."""
        return self.role in ("moderator", "both")


@dataclass(frozen=True)
class IndicatorMatrix:
    """Indicator values as *cells*: spans of a unit's timeline where one code holds.

    For every indicator and every unit of the panel the cells partition the grid ``0..T-1``
    (a step function from each wave). ``cells`` columns:

    - ``unit`` (str), ``indicator`` (str)
    - ``t_start``, ``t_end`` (int, inclusive grid indices)
    - ``status``: ``"observed"`` (one agreed value), ``"missing"`` (no code: the model
      treats the value as latent with a prior learned from the observed codes), or
      ``"uncertain"`` (coders disagree and the consensus rule keeps the disagreement: the
      model marginalises over ``probs``)
    - ``value`` (float): the level index (0-based, binary/ordinal) or the raw value
      (continuous); ``NaN`` unless ``status == "observed"``
    - ``probs`` (object): for ``"uncertain"`` cells a tuple of level probabilities, else
      ``None``
    - ``wave`` (str or NA): the wave label the cell's code came from

    Attributes
    ----------
    indicators : tuple of EncodedIndicator
    cells : DataFrame
    n_periods : int
        ``T`` of the panel's grid.
    agreement : DataFrame or None
        The coder-agreement table (``indicator_agreement.csv``) when codes had coders.
    consensus : str
        The consensus rule used (``"adjudicated"``, ``"majority"``, ``"uncertain"``,
        ``"coder:<name>"``).
    """

    indicators: tuple[EncodedIndicator, ...]
    cells: pd.DataFrame
    n_periods: int
    agreement: pd.DataFrame | None = None
    consensus: str = "majority"

    def get(self, name: str) -> EncodedIndicator:
        """The indicator called ``name``."""
        for ind in self.indicators:
            if ind.name == name:
                return ind
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        """Indicator names in model order."""
        return [i.name for i in self.indicators]

    def n_imputed(self) -> pd.Series:
        """Number of missing (latent) cells per indicator."""
        c = self.cells
        return (c[c["status"] == "missing"].groupby("indicator").size()
                .reindex(self.names, fill_value=0))

    def unit_period_frame(self, units: list[str] | None = None) -> pd.DataFrame:
        """Long-to-wide view for analysts: one row per unit and grid period ``t``.

        Columns: ``unit``, ``t``, then one column per indicator holding the level label
        (binary/ordinal) or value (continuous); missing cells are ``<NA>`` and uncertain cells
        hold the most probable level. A ``<name>_status`` column tells which.
        """
        rows = []
        for rec in self.cells.itertuples(index=False):
            ind = self.get(rec.indicator)
            if rec.status == "observed":
                val = ind.levels[int(rec.value)] if ind.levels else float(rec.value)
            elif rec.status == "uncertain" and rec.probs is not None:
                val = ind.levels[int(np.argmax(rec.probs))]
            else:
                val = pd.NA
            for t in range(int(rec.t_start), int(rec.t_end) + 1):
                rows.append((rec.unit, t, rec.indicator, val, rec.status))
        long = pd.DataFrame(rows, columns=["unit", "t", "indicator", "val", "status"])
        if units is not None:
            long = long[long["unit"].isin(units)]
        wide = long.pivot(index=["unit", "t"], columns="indicator", values="val")
        status = long.pivot(index=["unit", "t"], columns="indicator", values="status")
        status.columns = [f"{c}_status" for c in status.columns]
        out = wide.join(status).reset_index()
        out.columns.name = None
        return out
