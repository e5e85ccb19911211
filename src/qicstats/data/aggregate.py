"""Aggregating patient-level 0/1 rows to the binomial sufficient statistics of a panel."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qicstats.errors import DataValidationError, Problem

#: above this many unit x period cells, bincount's dense array is replaced by a factorize
_DENSE_LIMIT = 20_000_000


def _binary(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Outcome as float 0/1 and a mask of rows that are missing or not 0/1."""
    s = values
    if s.dtype == bool:
        y = s.to_numpy(dtype=float)
        return y, np.zeros(len(y), dtype=bool)
    if s.dtype.kind in "iuf":
        y = s.to_numpy(dtype=float, na_value=np.nan)
    elif s.dtype.kind == "b" or str(s.dtype) == "boolean":
        y = s.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    else:
        txt = s.astype("string").str.strip().str.lower()
        txt = txt.replace({"true": "1", "false": "0"})
        y = pd.to_numeric(txt, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = ~((y == 0) | (y == 1))
    return y, bad


def cell_sums(ucodes: np.ndarray, pcodes: np.ndarray, y: np.ndarray, n_units: int,
              n_periods: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sum 0/1 outcomes per (unit code, period code) cell.

    Parameters
    ----------
    ucodes, pcodes : ndarray of int
        Per row, the unit in ``0..n_units-1`` and the period in ``0..n_periods-1``.
    y : ndarray of float
        The 0/1 outcome per row.

    Returns
    -------
    tuple of ndarray
        ``(unit code, period code, numerator, denominator)`` of every cell with rows, sorted
        by unit code then period code; counts as int64.
    """
    n_u, n_p = int(n_units), int(n_periods)
    key = ucodes.astype(np.int64, copy=False) * n_p + pcodes.astype(np.int64, copy=False)
    if n_u * n_p <= _DENSE_LIMIT:
        den = np.bincount(key, minlength=n_u * n_p)
        num = np.bincount(key, weights=y, minlength=n_u * n_p)
        cells = np.flatnonzero(den)
        den, num = den[cells], num[cells]
    else:
        kcodes, cells = pd.factorize(key, sort=True)
        cells = np.asarray(cells)
        den = np.bincount(kcodes, minlength=len(cells))
        num = np.bincount(kcodes, weights=y, minlength=len(cells))
    return (cells // n_p, cells % n_p, np.rint(num).astype(np.int64),
            den.astype(np.int64))


def aggregate_patient_rows(df: pd.DataFrame, unit: str, period: str,
                           outcome: str) -> pd.DataFrame:
    """Aggregate one-row-per-patient data to numerator/denominator per unit and period.

    Parameters
    ----------
    df : DataFrame
        Patient-level rows (not modified).
    unit, period : str
        Names of the unit and period columns (any hashable values; missing values are
        not allowed).
    outcome : str
        Name of the 0/1 outcome column (bool, numbers, or the texts ``0``/``1``/``true``/
        ``false``).

    Returns
    -------
    DataFrame
        Columns ``unit``, ``period`` (under the names given), ``numerator`` (sum of the
        outcome, int64) and ``denominator`` (number of rows, int64); one row per unit-period
        present, sorted by unit then period (order of first appearance where the values do
        not sort).

    Raises
    ------
    DataValidationError
        Rule ``outcome_not_binary`` (missing or not 0/1), ``missing_unit`` or
        ``missing_period`` (empty keys), ``missing_columns``.
    """
    missing = [c for c in (unit, period, outcome) if c not in df.columns]
    if missing:
        raise DataValidationError([Problem(
            "missing_columns", f"patient-level data lack column(s) {missing}",
            column=", ".join(missing), count=len(missing), examples=tuple(missing),
            hint=f"present columns: {list(df.columns)}")])
    y, bad = _binary(df[outcome])
    ucodes, uniq_u = pd.factorize(df[unit], use_na_sentinel=True)
    pcodes, uniq_p = pd.factorize(df[period], use_na_sentinel=True)
    problems = []
    for rule, col, mask in (("outcome_not_binary", outcome, bad),
                            ("missing_unit", unit, ucodes < 0),
                            ("missing_period", period, pcodes < 0)):
        if mask.any():
            rows = df.index[mask][:5].tolist()
            problems.append(Problem(
                rule, f"{int(mask.sum())} patient row(s) have a missing or invalid {col!r}",
                column=col, count=int(mask.sum()), examples=tuple(rows),
                hint="the outcome must be 0 or 1 on every row; unit and period must be given"))
    if problems:
        raise DataValidationError(problems)

    ui, pi, num, den = cell_sums(ucodes, pcodes, y, len(uniq_u), len(uniq_p))
    out = pd.DataFrame({
        unit: pd.Index(uniq_u).take(ui),
        period: pd.Index(uniq_p).take(pi),
        "numerator": num,
        "denominator": den,
    })
    try:
        out = out.sort_values([unit, period], kind="stable", ignore_index=True)
    except TypeError:
        out = out.reset_index(drop=True)
    return out


__all__ = ["aggregate_patient_rows", "cell_sums"]
