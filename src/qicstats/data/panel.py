"""Typed, validated containers for QIC panels (the output of :func:`qicstats.data.validate`).

Downstream layers (indicators, models, results) consume only these objects, never raw files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qicstats.errors import Problem

#: name given to the pseudo-collaborative of comparison units in random-effect indexing
COMPARISON = "(comparison)"


@dataclass(frozen=True)
class PeriodGrid:
    """The regular grid of periods spanned by the data.

    ``labels[t]`` is the canonical label of grid index ``t`` (``0..T-1``) in the dataset's
    frequency; the grid runs from the first to the last observed period with no holes, so
    missing periods ("gaps") are grid points without rows.

    Attributes
    ----------
    freq : {"integer", "day", "week", "month", "quarter", "year"}
    labels : tuple of str
        Canonical labels: ``"3"`` (integer), ``"2024-01-15"`` (day), ``"2024-W03"`` (week),
        ``"2024-01"`` (month), ``"2024-Q1"`` (quarter), ``"2024"`` (year).
    values : tuple of int
        The ordinal of each label (integer periods: the integer itself; dates: an ordinal
        such that consecutive periods differ by one).
    gaps : tuple of str
        Labels of grid periods with no data at all.
    """

    freq: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    gaps: tuple[str, ...] = ()

    @property
    def T(self) -> int:
        """Number of periods in the grid."""
        return len(self.labels)

    def index_of(self, label: str) -> int:
        """Grid index of a canonical label (``KeyError`` if absent)."""
        return self.labels.index(label)

    @property
    def months_per_period(self) -> float | None:
        """Length of one period in months where defined (seasonality), else ``None``."""
        return {"month": 1.0, "quarter": 3.0, "year": 12.0}.get(self.freq)

    def season_index(self) -> np.ndarray | None:
        """Season of each grid period (month 0..11 or quarter 0..3), or ``None``."""
        if self.freq == "month":
            return np.array([int(lab[5:7]) - 1 for lab in self.labels])
        if self.freq == "quarter":
            return np.array([int(lab[-1]) - 1 for lab in self.labels])
        return None


@dataclass(frozen=True)
class PanelData:
    """A validated QIC panel.

    Attributes
    ----------
    panel : DataFrame
        One row per observed unit-period (aggregated to sufficient statistics), sorted by unit
        then ``t``. Columns: ``unit`` (str), ``period`` (canonical label), ``t`` (int grid
        index), the family's outcome columns under their *logical* names (``numerator``,
        ``denominator`` | ``count``, ``exposure`` | ``value``, optional ``se``, ``weight``),
        and panel covariates.
    units : DataFrame
        One row per unit, indexed 0..N-1 in the order used by models. Columns: ``unit``,
        ``collaborative`` (str, ``<NA>`` for comparison units), ``join_period`` (label or
        ``<NA>``), ``join_t`` (``Int64`` grid index or ``<NA>``; may lie outside ``0..T-1``
        when the unit joined before the data start or after they end), ``end_t`` (``Int64``),
        each declared grouping level column (str; filled for every unit), and unit
        covariates.
    periods : PeriodGrid
    family : str
    levels : tuple of str
        Declared grouping columns above the unit, outermost first, e.g.
        ``("collaborative", "site")``. The unit itself is always the innermost level.
    covariates : tuple of str
        Unit or panel covariate columns to adjust for.
    sources : dict
        Paths (or names) the tables came from.
    warnings : tuple of Problem
        Legal but risky patterns found during validation.
    """

    panel: pd.DataFrame
    units: pd.DataFrame
    periods: PeriodGrid
    family: str
    levels: tuple[str, ...] = ("collaborative",)
    covariates: tuple[str, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()

    # ---- convenient views ------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units."""
        return len(self.units)

    @property
    def unit_index(self) -> np.ndarray:
        """For each panel row, the 0-based unit index into :attr:`units`."""
        pos = pd.Series(np.arange(len(self.units)), index=self.units["unit"].to_numpy())
        return pos.loc[self.panel["unit"].to_numpy()].to_numpy()

    @property
    def participating(self) -> np.ndarray:
        """Boolean per unit: does it belong to a collaborative (has a join period)?"""
        return self.units["join_t"].notna().to_numpy()

    def collaboratives(self) -> list[str]:
        """Sorted names of the collaboratives (comparison units excluded)."""
        return sorted(self.units["collaborative"].dropna().unique().tolist())

    def data_hash(self) -> str:
        """SHA-256 of the canonical modelling frame (panel + units), stable across runs."""
        h = hashlib.sha256()
        for df in (self.panel, self.units):
            canon = df.reset_index(drop=True)
            canon = canon[sorted(canon.columns)]
            h.update(canon.to_csv(index=False, lineterminator="\n").encode("utf-8"))
        h.update(repr((self.periods.freq, self.periods.labels, self.family, self.levels,
                       self.covariates)).encode())
        return h.hexdigest()

    def summary(self) -> dict[str, Any]:
        """Counts an analyst checks first (units, collaboratives, periods, rows, gaps)."""
        part = self.participating
        return {
            "family": self.family,
            "n_rows": int(len(self.panel)),
            "n_units": int(self.n_units),
            "n_participating": int(part.sum()),
            "n_comparison": int((~part).sum()),
            "n_collaboratives": len(self.collaboratives()),
            "n_periods": int(self.periods.T),
            "first_period": self.periods.labels[0],
            "last_period": self.periods.labels[-1],
            "freq": self.periods.freq,
            "gaps": list(self.periods.gaps),
            "levels": list(self.levels),
        }
