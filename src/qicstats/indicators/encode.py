"""Encode checked indicator codes as model predictors: cells of a step function per unit.

For each indicator and each unit of the panel the cells partition the grid ``0..T-1``:

- every (agreed) code holds from its wave up to the period before the unit's next wave
  (a code without a wave holds from the start);
- before the first wave: the first wave's code if the codebook says ``carry_back: true``,
  else a ``"missing"`` cell;
- a unit with no code at all: one ``"missing"`` cell over ``0..T-1``;
- waves before the first period count from period 0; codes whose wave lies after the last
  period hold nowhere inside the data (but can still be carried back);
- ``describes: site`` codes hold for every unit of the site (units-table column
  ``site_column``).

No unit is ever dropped: the model treats missing cells as latent values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from qicstats.data.panel import PanelData
from qicstats.errors import ConfigError, DataValidationError, ModelSpecError, Problem
from qicstats.indicators.agreement import agreement_table
from qicstats.indicators.consensus import consensus as _consensus
from qicstats.indicators.matrix import EncodedIndicator, IndicatorMatrix
from qicstats.indicators.readers import IndicatorCodes, _suggest

#: columns of :attr:`IndicatorMatrix.cells` as produced here (``tie`` is extra)
CELL_COLUMNS: tuple[str, ...] = (
    "unit", "indicator", "t_start", "t_end", "status", "value", "probs", "wave", "tie",
)


def _missing(unit: str, name: str, t0: int, t1: int) -> dict[str, Any]:
    return dict(unit=unit, indicator=name, t_start=t0, t_end=t1, status="missing",
                value=np.nan, probs=None, wave=pd.NA, tie=False)


def _cell(unit: str, name: str, t0: int, t1: int, item: Any) -> dict[str, Any]:
    return dict(unit=unit, indicator=name, t_start=t0, t_end=t1, status=item.status,
                value=float(item.value) if item.status == "observed" else np.nan,
                probs=item.probs if item.status == "uncertain" else None,
                wave=item.wave, tie=bool(item.tie))


def unit_cells(unit: str, name: str, items: Sequence[Any], T: int, carry_back: bool
               ) -> list[dict[str, Any]]:
    """Cells of one unit and indicator from its agreed codes (records with ``wave_t``...).

    Parameters
    ----------
    unit, name : str
    items : sequence of records
        Consensus rows of the unit (``wave_t`` NaN = from the start), any order.
    T : int
        Number of grid periods.
    carry_back : bool

    Returns
    -------
    list of dict
        Cells covering ``0..T-1`` exactly once, in time order.
    """
    if not items:
        return [_missing(unit, name, 0, T - 1)]
    items = sorted(items, key=lambda r: -np.inf if np.isnan(r.wave_t) else r.wave_t)
    starts = [-np.inf if np.isnan(r.wave_t) else float(r.wave_t) for r in items]
    cells: list[dict[str, Any]] = []
    for k, item in enumerate(items):
        end = starts[k + 1] - 1 if k + 1 < len(items) else np.inf
        t0, t1 = max(starts[k], 0.0), min(end, T - 1.0)
        if t0 <= t1:
            cells.append(_cell(unit, name, int(t0), int(t1), item))
    if starts[0] > 0:  # the codes start after the first period
        if carry_back:
            if cells and cells[0]["t_start"] == int(starts[0]):
                cells[0]["t_start"] = 0
            else:  # the first code's wave lies after the data: it holds throughout
                cells = [_cell(unit, name, 0, T - 1, items[0])]
        else:
            gap_end = int(min(starts[0] - 1, T - 1))
            cells = [_missing(unit, name, 0, gap_end)] + cells
    return cells


def _center_scale(values: list[float]) -> tuple[float, float]:
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return 0.0, 1.0
    center = float(x.mean())
    sd = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return center, (sd if sd > 0 and np.isfinite(sd) else 1.0)


def encode(codes: IndicatorCodes, panel: PanelData, *, consensus: str = "majority",
           indicators: Sequence[str] | None = None, site_column: str = "site"
           ) -> IndicatorMatrix:
    """Turn checked codes into the :class:`~qicstats.indicators.matrix.IndicatorMatrix`.

    Parameters
    ----------
    codes : IndicatorCodes
        From :func:`~qicstats.indicators.load_indicators` (against the same panel).
    panel : PanelData
        Every unit of ``panel.units`` gets cells for every indicator.
    consensus : str
        Consensus rule for items with several coders: ``"majority"``, ``"adjudicated"``,
        ``"uncertain"`` or ``"coder:NAME"`` (see :mod:`qicstats.indicators.consensus`).
    indicators : sequence of str, optional
        Indicators to encode, in model order; default: every codebook indicator that has
        codes, in codebook order.
    site_column : str
        The units-table column naming each unit's site, for ``describes: site`` indicators.

    Returns
    -------
    IndicatorMatrix
        Cells as documented there (plus a ``tie`` column: majority tie broken towards the
        lower level), the encoded indicators (continuous ones with ``center``/``scale`` = mean
        and sd of the observed cells' values; sd 1 when undefined), and the agreement table
        when the codes have two or more coders.

    Raises
    ------
    ConfigError
        An unknown indicator name or consensus rule.
    ModelSpecError
        A requested indicator has no codes.
    DataValidationError
        The codes were checked against another period grid, or a site indicator is used but
        the units table has no ``site_column``.
    """
    grid = panel.periods
    if tuple(codes.periods.labels) != tuple(grid.labels):
        raise DataValidationError([Problem(
            "indicator_grid_mismatch", "the indicator codes were checked against a different "
            "period grid than this panel's", hint="load the indicators against the same panel")])
    cb = codes.codebook
    if indicators is None:
        names = codes.indicators
    else:
        names = [str(n) for n in indicators]
        unknown = [n for n in names if n not in cb]
        if unknown:
            raise ConfigError([Problem(
                "indicator_not_in_codebook", f"indicator '{n}' is not in the codebook"
                + _suggest(n, cb.names), column="indicators", count=1, examples=(n,),
                hint="use the codebook's indicator names") for n in unknown])
        empty = [n for n in names if n not in codes.indicators]
        if empty:
            raise ModelSpecError(f"indicator(s) {empty} have no codes at all; drop them from "
                                 "the model or add their codes")
    T = grid.T
    units = panel.units["unit"].astype(str).tolist()
    needs_site = any(cb[n].describes == "site" for n in names)
    if needs_site and site_column not in panel.units.columns:
        raise DataValidationError([Problem(
            "indicator_site_column_missing", f"indicators describing sites need the units "
            f"table's '{site_column}' column", column=site_column,
            hint=f"add a '{site_column}' column to the units table or set `describes: unit`")])
    site_of = (panel.units[site_column].astype("string").tolist() if needs_site else [])

    agreed = _consensus(codes, consensus)
    by_key: dict[tuple[str, str], list[Any]] = {}
    if not agreed.empty:
        for rec in agreed.itertuples(index=False):
            by_key.setdefault((rec.indicator, str(rec.unit)), []).append(rec)

    rows: list[dict[str, Any]] = []
    encoded: list[EncodedIndicator] = []
    for name in names:
        spec = cb[name]
        ind_rows: list[dict[str, Any]] = []
        for i, unit in enumerate(units):
            target = unit
            if spec.describes == "site":
                target = site_of[i]
            items = by_key.get((name, str(target)), []) if not pd.isna(target) else []
            ind_rows += unit_cells(unit, name, items, T, spec.carry_back)
        center, scale = 0.0, 1.0
        if spec.type == "continuous":
            center, scale = _center_scale(
                [r["value"] for r in ind_rows if r["status"] == "observed"])
        encoded.append(EncodedIndicator(
            name=name, type=spec.type, levels=tuple(spec.levels), role=spec.role,
            label=spec.label or name, center=center, scale=scale))
        rows += ind_rows

    cells = pd.DataFrame(rows, columns=list(CELL_COLUMNS))
    cells = cells.astype({"unit": "string", "indicator": "string", "t_start": "int64",
                          "t_end": "int64", "status": "string", "value": "float64",
                          "wave": "string", "tie": "bool"})
    cells["probs"] = cells["probs"].astype(object)
    agreement = None
    if len(codes.coders()) >= 2:
        table = agreement_table(codes)
        agreement = table[table["indicator"].isin(names)].reset_index(drop=True)
    return IndicatorMatrix(indicators=tuple(encoded), cells=cells, n_periods=T,
                           agreement=agreement, consensus=str(consensus).strip())


__all__ = ["CELL_COLUMNS", "encode", "unit_cells"]
