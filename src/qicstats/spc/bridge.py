"""The bridge from fitted models to the practitioner's view: runs rules on residuals, and one
small run/control chart per unit for reports. No dependency on the model code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicstats.errors import ProblemCollector, QicstatsError
from qicstats.spc.rules import runs_analysis

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["residual_signals", "small_multiples", "RESIDUAL_SIGNAL_COLUMNS"]

#: columns of :func:`residual_signals` after the group column(s)
RESIDUAL_SIGNAL_COLUMNS: tuple[str, ...] = (
    "n_obs", "n_useful", "longest_run", "longest_run_max", "n_crossings", "n_crossings_min",
    "runs_signal", "sigma_signal",
)


def residual_signals(df: pd.DataFrame, group: str | Sequence[str] | None = "unit", x: str = "t",
                     y: str = "residual", center: float = 0.0,
                     sigma_limit: float = 3.0) -> pd.DataFrame:
    """Apply the Anhøj runs rules to residual series, one row per group.

    Meant for standardized residuals of a fitted model (e.g. posterior predictive residuals,
    whose centre is 0): a runs signal says the unit's residuals are not random around the
    centre (an unmodelled shift or trend), a sigma signal counts residuals beyond
    ``sigma_limit`` (3 for standardized residuals).

    Parameters
    ----------
    df : pandas.DataFrame
        Long table of residuals (not modified).
    group : str or list of str or None
        Column(s) identifying a series (``None``: the whole table is one series).
    x : str
        Time column; each series is sorted by it.
    y : str
        Residual column; missing values are skipped.
    center : float
        The fixed centre line (0 for standardized residuals).
    sigma_limit : float
        Distance from the centre beyond which a point is a sigma signal.

    Returns
    -------
    pandas.DataFrame
        The group column(s) then ``n_obs``, ``n_useful`` (not exactly on the centre),
        ``longest_run``, ``longest_run_max``, ``n_crossings``, ``n_crossings_min``,
        ``runs_signal`` and ``sigma_signal`` (count of ``|y - center| > sigma_limit``).
    """
    if not isinstance(df, pd.DataFrame):
        raise QicstatsError(f"df must be a pandas DataFrame, not {type(df).__name__}")
    groups = [] if group is None else ([group] if isinstance(group, str) else list(group))
    pc = ProblemCollector()
    available = ", ".join(map(str, df.columns))
    for role, col in [("group", g) for g in groups] + [("x", x), ("y", y)]:
        if col not in df.columns:
            pc.add("missing_column", f"the {role} column {col!r} is not in the data",
                   column=str(col), hint=f"columns available: {available}")
    pc.raise_if_errors()
    yv = pd.to_numeric(df[y], errors="coerce")
    bad = np.flatnonzero((yv.isna() & df[y].notna()).to_numpy())
    if bad.size:
        pc.add("non_numeric", "residuals must be numeric", column=y, count=bad.size,
               examples=[df.index[i] for i in bad[:5]])
    pc.raise_if_errors()
    work = pd.DataFrame({g: df[g].to_numpy() for g in groups})
    work["_x"] = df[x].to_numpy()
    work["_y"] = yv.astype(float).to_numpy()
    parts = [((), work)] if not groups else work.groupby(groups, sort=True, observed=True)
    rows = []
    for key, g in parts:
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values("_x", kind="stable")
        yy = g["_y"].to_numpy(dtype=float)
        ra = runs_analysis(yy, center)
        row: dict[str, Any] = dict(zip(groups, key))
        row.update(ra.as_dict())
        with np.errstate(invalid="ignore"):
            row["sigma_signal"] = int((np.abs(yy - center) > sigma_limit).sum())
        rows.append(row)
    out = pd.DataFrame(rows, columns=[*groups, *RESIDUAL_SIGNAL_COLUMNS])
    for c in ("longest_run", "longest_run_max", "n_crossings", "n_crossings_min"):
        out[c] = out[c].astype("Int64")
    out["runs_signal"] = out["runs_signal"].astype(bool)
    return out


def small_multiples(df: pd.DataFrame, group: str | Sequence[str], x: str, y: str,
                    n: str | None = None, chart: str = "run", ncol: int | None = None,
                    title: str | None = None, **kwargs: Any) -> Figure:
    """One small run or control chart per unit, for reports.

    A thin wrapper: ``qic(df, x, y, n, chart=chart, facet=group, **kwargs).plot(ncol=ncol)``.

    Parameters
    ----------
    df : pandas.DataFrame
        Long data (not modified).
    group : str or list of str
        Unit column(s); one panel per unit.
    x, y, n : str
        Columns as in :func:`qicstats.spc.qic`.
    chart : str
        Chart type (default ``"run"``).
    ncol : int, optional
        Number of panel columns.
    title : str, optional
        Figure title.
    **kwargs
        Passed to :func:`qicstats.spc.qic` (``part``, ``freeze``, ``exclude``, ``multiply``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from qicstats.spc.core import qic

    groups = [group] if isinstance(group, str) else list(group)
    res = qic(df, x, y, n, chart=chart, facet=groups, title=title, **kwargs)
    return res.plot(ncol=ncol)
