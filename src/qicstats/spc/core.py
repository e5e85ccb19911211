"""``qic()``: run and control charts with the Anhøj rules, after the R package qicharts2."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qicstats.errors import ConfigError, Problem, ProblemCollector, QicstatsError
from qicstats.spc.charts import (
    CHART_TYPES,
    DENOMINATOR_CHARTS,
    PartInput,
    part_limits,
)
from qicstats.spc.rules import runs_analysis

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["QicResult", "qic", "SUMMARY_COLUMNS"]

#: columns of :meth:`QicResult.summary` after the facet columns (public contract)
SUMMARY_COLUMNS: tuple[str, ...] = (
    "part", "n_obs", "n_useful", "longest_run", "longest_run_max", "n_crossings",
    "n_crossings_min", "runs_signal", "lcl", "center", "ucl", "sigma_signal",
)
#: per-point columns of :attr:`QicResult.data` after the facet columns
DATA_COLUMNS: tuple[str, ...] = (
    "x", "y", "n", "cl", "lcl", "ucl", "part", "baseline", "include", "sigma_signal",
    "runs_signal", "n_obs", "n_useful", "longest_run", "longest_run_max", "n_crossings",
    "n_crossings_min",
)
_INT_STATS = ("longest_run", "longest_run_max", "n_crossings", "n_crossings_min")
#: charts whose values must not be negative in the input
_NONNEG_INPUT = frozenset({"t", "g", "c", "u", "p", "pp", "up"})


def _config_error(rule: str, message: str, hint: str = "",
                  column: str | None = None) -> ConfigError:
    return ConfigError([Problem(rule, message, column=column, hint=hint)])


def _is_position(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _as_list(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, (str, bytes)) or not isinstance(
            v, Sequence | np.ndarray | pd.Index | pd.Series):
        return [v]
    return list(v)


@dataclass
class QicResult:
    """A computed run or control chart (one series per facet).

    Attributes
    ----------
    data : pandas.DataFrame
        One row per point: the facet columns, then ``x``, ``y`` (charted value, multiplied),
        ``n`` (denominator, or subgroup size for xbar/s charts), ``cl``, ``lcl``, ``ucl``,
        ``part`` (1-based), ``baseline`` (used for centre and limits unless excluded),
        ``include`` (not excluded), ``sigma_signal`` (outside the limits), ``runs_signal`` and
        the Anhøj statistics of the point's part; ``part_label`` when parts come from a column.
    chart : str
        The chart type.
    facets : list of str
        The facet columns (empty without facets).
    x_name, y_name, n_name : str or None
        The source column names.
    multiply : float
        The multiplier applied to y, centre and limits.
    title : str or None
        Title used by :meth:`plot` (a default is made from the chart type and ``y``).
    """

    data: pd.DataFrame
    chart: str
    facets: list[str] = field(default_factory=list)
    x_name: str = "x"
    y_name: str = "y"
    n_name: str | None = None
    multiply: float = 1.0
    title: str | None = None

    def summary(self) -> pd.DataFrame:
        """Return one row per facet and part (qicharts2's ``summary.qic``).

        Returns
        -------
        pandas.DataFrame
            The facet columns, then :data:`SUMMARY_COLUMNS`: ``lcl`` and ``ucl`` are the average
            limits over the part (qicharts2's aLCL/aUCL), ``center`` the centre line and
            ``sigma_signal`` the number of points outside the limits.
        """
        d = self.data
        keys = [*self.facets, "part"]
        rows = []
        for key, g in d.groupby(keys, sort=False, observed=True):
            key = key if isinstance(key, tuple) else (key,)
            first = g.iloc[0]
            row: dict[str, Any] = dict(zip(keys, key))
            for c in ("n_obs", "n_useful", *_INT_STATS, "runs_signal"):
                row[c] = first[c]
            row["lcl"] = _nanmean(g["lcl"])
            row["center"] = _nanmean(g["cl"])
            row["ucl"] = _nanmean(g["ucl"])
            row["sigma_signal"] = int(g["sigma_signal"].sum())
            rows.append(row)
        out = pd.DataFrame(rows, columns=[*self.facets, *SUMMARY_COLUMNS])
        out["part"] = out["part"].astype(int)
        out["n_obs"] = out["n_obs"].astype(int)
        out["n_useful"] = out["n_useful"].astype(int)
        for c in _INT_STATS:
            out[c] = out[c].astype("Int64")
        out["runs_signal"] = out["runs_signal"].astype(bool)
        out["sigma_signal"] = out["sigma_signal"].astype(int)
        return out

    def plot(self, ncol: int | None = None, figsize: tuple[float, float] | None = None,
             title: str | None = None, ylab: str | None = None, xlab: str | None = None) -> Figure:
        """Draw the chart (small multiples when there are facets).

        Parameters
        ----------
        ncol : int, optional
            Columns of the panel grid for one facet column (two facet columns make a grid of
            rows by columns, like ``facets = a ~ b`` in qicharts2).
        figsize : tuple of float, optional
            Figure size in inches.
        title, ylab, xlab : str, optional
            Labels; defaults from the chart type and column names.

        Returns
        -------
        matplotlib.figure.Figure
        """
        from qicstats.spc.plot import plot_qic

        return plot_qic(self, ncol=ncol, figsize=figsize, title=title, ylab=ylab, xlab=xlab)

    def __repr__(self) -> str:
        """The chart type, measure, number of points and number of series (facets)."""
        nfac = self.data.groupby(self.facets).ngroups if self.facets else 1
        return (f"QicResult(chart={self.chart!r}, y={self.y_name!r}, points={len(self.data)}, "
                f"series={nfac})")


def _nanmean(s: pd.Series) -> float:
    a = s.to_numpy(dtype=float)
    a = a[~np.isnan(a)]
    return float(a.mean()) if a.size else float("nan")


def _rowrefs(index: np.ndarray, source: str | None, labels: pd.Index) -> list[Any]:
    """Example references: 1-based file lines (header is line 1) or index labels.

    With a source file, an integer index is taken as the 0-based data-row number (as
    ``qicstats.data.io.read_table`` keeps it, blank rows dropped), else the row position.
    """
    if source is not None:
        if pd.api.types.is_integer_dtype(labels):
            return [int(labels[int(i)]) + 2 for i in index[:5]]
        return [int(i) + 2 for i in index[:5]]
    return [labels[int(i)] for i in index[:5]]


def _validate(data: Any, x: str, y: str, n: str | None, chart: str, facets: list[str],
              multiply: float, source: str | None) -> None:
    """Check the arguments and columns; raise one error listing every problem."""
    if not isinstance(data, pd.DataFrame):
        raise QicstatsError(f"data must be a pandas DataFrame, not {type(data).__name__}")
    if chart not in CHART_TYPES:
        raise _config_error("unknown_chart", f"unknown chart type {chart!r}",
                            hint=f"use one of {', '.join(CHART_TYPES)}")
    if chart in DENOMINATOR_CHARTS and n is None:
        raise _config_error("denominator_required", f"a {chart} chart needs a denominator n",
                            hint="pass n=<column of denominators (cases, patient days, ...)>")
    if chart in ("xbar", "s") and n is not None:
        raise _config_error("denominator_not_used",
                            f"a {chart} chart takes subgroup values, not a denominator",
                            hint="drop n; rows sharing an x value form a subgroup")
    try:
        mult_ok = np.isfinite(float(multiply)) and float(multiply) > 0
    except (TypeError, ValueError):
        mult_ok = False
    if not mult_ok:
        raise _config_error("bad_multiply", f"multiply must be a positive number, not {multiply!r}")
    reserved = set(DATA_COLUMNS) | {"center"}
    clash = [f for f in facets if f in reserved]
    if clash:
        raise _config_error("facet_name_clash",
                            f"facet column(s) {clash} clash with the chart's own column names",
                            hint="rename the facet column(s) before charting")
    pc = ProblemCollector()
    available = ", ".join(map(str, data.columns))
    wanted = [("x", x), ("y", y)] + ([("n", n)] if n is not None else [])
    wanted += [("facet", f) for f in facets]
    for role, col in wanted:
        if col not in data.columns:
            pc.add("missing_column", f"the {role} column {col!r} is not in the data",
                   file=source, column=str(col),
                   hint=f"columns available: {available}")
    pc.raise_if_errors()
    labels = data.index
    if len(data) == 0:
        pc.add("empty_data", "the data have no rows", file=source)
    xmiss = np.flatnonzero(data[x].isna().to_numpy())
    if xmiss.size:
        pc.add("missing_x", "x is missing", file=source, column=x, count=xmiss.size,
               examples=_rowrefs(xmiss, source, labels), hint="fill in or drop these rows")
    for f in facets:
        fm = np.flatnonzero(data[f].isna().to_numpy())
        if fm.size:
            pc.add("missing_facet", "facet value is missing", file=source, column=f,
                   count=fm.size, examples=_rowrefs(fm, source, labels),
                   hint="fill in or drop these rows")
    num: dict[str, pd.Series] = {}
    for role, col in [("y", y)] + ([("n", n)] if n is not None else []):
        raw = data[col]
        if pd.api.types.is_bool_dtype(raw):
            vals = raw.astype(float)
        else:
            vals = pd.to_numeric(raw, errors="coerce")
        bad = np.flatnonzero((vals.isna() & raw.notna()).to_numpy())
        if bad.size:
            pc.add("non_numeric", f"{role} must be numeric", file=source, column=col,
                   count=bad.size, examples=_rowrefs(bad, source, labels),
                   hint="remove text such as units or thousands separators")
        inf = np.flatnonzero(np.isinf(vals.to_numpy(dtype=float)))
        if inf.size:
            pc.add("infinite_value", f"{role} is infinite", file=source, column=col,
                   count=inf.size, examples=_rowrefs(inf, source, labels))
        num[role] = vals.astype(float)
    if chart in _NONNEG_INPUT:
        neg = np.flatnonzero((num["y"] < 0).to_numpy())
        if neg.size:
            pc.add("negative_value", f"a {chart} chart needs y >= 0", file=source, column=y,
                   count=neg.size, examples=_rowrefs(neg, source, labels))
    if n is not None:
        neg = np.flatnonzero((num["n"] < 0).to_numpy())
        if neg.size:
            pc.add("negative_denominator", "n must not be negative", file=source, column=n,
                   count=neg.size, examples=_rowrefs(neg, source, labels))
        if chart in ("p", "pp"):
            over = np.flatnonzero((num["y"] > num["n"]).to_numpy())
            if over.size:
                pc.add("numerator_gt_denominator", "y is larger than n in a proportion chart",
                       file=source, column=y, count=over.size,
                       examples=_rowrefs(over, source, labels),
                       hint="y counts cases with the event, n all cases; check the columns")
    pc.raise_if_errors()


def _x_value(v: Any, xs: pd.Series) -> Any:
    """Convert a user-given x value to the dtype of the x column for comparison."""
    if pd.api.types.is_datetime64_any_dtype(xs):
        try:
            ts = pd.Timestamp(v)
        except (TypeError, ValueError) as err:
            raise _config_error("bad_x_value", f"{v!r} is not a date like the x column") from err
        tz = getattr(xs.dtype, "tz", None)
        if tz is not None and ts.tzinfo is None:
            ts = ts.tz_localize(tz)
        return ts
    return v


def _positions(spec: Any, xs: pd.Series, what: str, how: str) -> np.ndarray:
    """Boolean mask over the sorted points of one series from positions or x values.

    ``how='eq'`` marks points equal to x values; ``how='ge'`` marks the first point >= each x
    value (a part start); integers are always 0-based positions.
    """
    m = len(xs)
    mask = np.zeros(m, dtype=bool)
    xv = xs.to_numpy()
    for v in _as_list(spec):
        if _is_position(v):
            if 0 <= int(v) < m:
                mask[int(v)] = True
            continue
        val = _x_value(v, xs)
        try:
            if how == "eq":
                mask |= (xs == val).to_numpy(dtype=bool)
            else:
                hit = np.flatnonzero((xs >= val).to_numpy(dtype=bool))
                if hit.size:
                    mask[hit[0]] = True
        except TypeError as err:
            raise _config_error(f"bad_{what}", f"{what} value {v!r} cannot be compared with x "
                                f"values such as {xv[0]!r}") from err
    return mask


def _check_int_spec(spec: Any, what: str, lengths: list[int]) -> None:
    """Integers out of range for every series are a mistake (qicharts2 drops them silently)."""
    longest = max(lengths) if lengths else 0
    for v in _as_list(spec):
        if _is_position(v) and not (0 <= int(v) < longest + (what == "freeze")):
            raise _config_error(f"bad_{what}", f"{what} position {v} is outside the series "
                                f"(0 .. {longest - 1 + (what == 'freeze')})",
                                hint="positions are 0-based indices into the series after "
                                     "rows sharing an x value are combined")


def qic(data: pd.DataFrame, x: str, y: str, n: str | None = None, chart: str = "run",
        facet: str | Sequence[str] | None = None, part: Any = None, freeze: Any = None,
        exclude: Any = None, multiply: float = 1, title: str | None = None, *,
        source: str | None = None) -> QicResult:
    """Compute a run or control chart with the Anhøj rules, as qicharts2's ``qic()`` does.

    Parameters
    ----------
    data : pandas.DataFrame
        Long data, one row per observation (never modified).
    x : str
        Column of subgroups (time, or e.g. hospital for a funnel-type chart). Rows sharing an x
        value within a facet are combined: summed when ``n`` is given (y = sum(y) / sum(n)),
        summed for c and g charts, and averaged otherwise (subgroup mean and sd for xbar/s).
    y : str
        Column of values (counts for c/u/p charts, measurements for i/xbar/s, times between
        events for t, opportunities between events for g).
    n : str, optional
        Column of denominators (required for p, pp, u, up; optional for run and i).
    chart : {"run", "i", "mr", "xbar", "s", "t", "g", "c", "u", "p", "pp", "up"}
        Chart type.
    facet : str or list of str, optional
        One column (qicharts2 ``facets = ~ a``) or two (``facets = a ~ b``, rows by columns);
        each facet is a separate series.
    part : int, list, str, optional
        Where the series splits into parts with their own centre and limits: 0-based position(s)
        where a new part starts (``part=24``: points 0-23 form part 1, as qicharts2's
        ``part = 24``), x value(s) where a new part starts (the first point with x >= value),
        or the name of a column whose changes of value start new parts.
    freeze : int or x value, optional
        The baseline used for centre and limits: an integer k uses the first k points of each
        series (qicharts2's ``freeze = k``); an x value uses the points with x <= value. A part
        with no baseline point uses all of its points.
    exclude : int, list, str, optional
        Points left out of the calculation of centre, limits and runs analysis (still drawn):
        0-based positions (qicharts2's 1-based ``exclude = k`` is ``exclude=k - 1``), x values,
        or the name of a boolean column.
    multiply : float
        Multiplier for y, centre and limits (e.g. 10000 for rates per 10,000 days).
    title : str, optional
        Chart title.
    source : str, optional
        File the data came from, named in error messages (examples then give file lines).

    Returns
    -------
    QicResult

    Raises
    ------
    DataValidationError
        Missing columns (naming those available), non-numeric or impossible values.
    ConfigError
        Unknown chart type, missing denominator, bad part/freeze/exclude.
    """
    facets = [str(f) for f in _as_list(facet)]
    _validate(data, x, y, n, chart, facets, multiply, source)
    part_col = part if isinstance(part, str) and part in data.columns else None
    excl_col = exclude if isinstance(exclude, str) and exclude in data.columns else None

    # keep dtypes (categorical order, dates) of x and facets; never touch the caller's frame
    df = pd.DataFrame({f: data[f].reset_index(drop=True) for f in facets},
                      index=pd.RangeIndex(len(data)))
    df["_x"] = data[x].reset_index(drop=True)
    yv = data[y]
    df["_y"] = (yv.astype(float) if pd.api.types.is_bool_dtype(yv)
                else pd.to_numeric(yv, errors="coerce").astype(float)).to_numpy()
    if n is not None:
        df["_n"] = pd.to_numeric(data[n], errors="coerce").astype(float).to_numpy()
        both = df["_y"].notna() & df["_n"].notna()
        df.loc[~both, ["_y", "_n"]] = np.nan
    if part_col is not None:
        df["_part"] = data[part_col].to_numpy()
    if excl_col is not None:
        ex = data[excl_col]
        if not pd.api.types.is_bool_dtype(ex):
            raise _config_error("bad_exclude", f"exclude column {excl_col!r} must be boolean",
                                column=excl_col)
        df["_excl"] = ex.fillna(False).astype(bool).to_numpy()

    keys = [*facets, "_x"]
    grouped = df.groupby(keys, sort=True, observed=True, dropna=False)
    agg = grouped["_y"].agg(y_sum="sum", y_len="count", y_mean="mean", y_sd="std")
    if n is not None:
        agg["n_sum"] = grouped["_n"].sum()
    if part_col is not None:
        nuniq = grouped["_part"].nunique(dropna=False)
        if (nuniq > 1).any():
            bad = nuniq[nuniq > 1].index[:5].tolist()
            raise _config_error("part_not_constant", f"column {part_col!r} takes more than one "
                                f"value within one x value, e.g. at {bad}", column=part_col)
        agg["part_label"] = grouped["_part"].first()
    if excl_col is not None:
        agg["excl"] = grouped["_excl"].any()
    agg = agg.reset_index()

    if n is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            yy = agg["y_sum"] / agg["n_sum"]
        ok = (agg["y_len"] > 0) & (agg["n_sum"] > 0)
        agg["y"] = yy.where(ok)
        agg["n"] = agg["n_sum"]
    else:
        if chart in ("c", "g"):
            agg["y"] = agg["y_sum"].where(agg["y_len"] > 0)
        else:
            agg["y"] = agg["y_mean"]
        agg["n"] = agg["y_len"].astype(float) if chart in ("xbar", "s") else np.nan

    series = [agg] if not facets else [g for _, g in agg.groupby(facets, sort=False, observed=True)]
    lengths = [len(g) for g in series]
    if part_col is None:
        _check_int_spec(part, "part", lengths)
    _check_int_spec(freeze, "freeze", lengths)
    if excl_col is None:
        _check_int_spec(exclude, "exclude", lengths)
    if freeze is not None and len(_as_list(freeze)) != 1:
        raise _config_error("bad_freeze", "freeze takes one position or x value")

    out = []
    for g in series:
        g = g.reset_index(drop=True)
        m = len(g)
        xs = g["_x"]
        pos = np.arange(m)
        # parts
        if part_col is not None:
            lab = g["part_label"]
            change = np.r_[False, (lab.iloc[1:].to_numpy() != lab.iloc[:-1].to_numpy())
                           & ~(lab.iloc[1:].isna().to_numpy() & lab.iloc[:-1].isna().to_numpy())]
        elif part is not None:
            change = _positions(part, xs, "part", "ge")
            change[0] = False
        else:
            change = np.zeros(m, dtype=bool)
        part_no = np.cumsum(change) + 1
        # baseline and exclusions
        if freeze is None:
            baseline = np.ones(m, dtype=bool)
        elif _is_position(_as_list(freeze)[0]):
            baseline = pos < int(_as_list(freeze)[0])
        else:
            fv = _x_value(_as_list(freeze)[0], xs)
            try:
                baseline = (xs <= fv).to_numpy(dtype=bool)
            except TypeError as err:
                raise _config_error("bad_freeze", f"freeze value {fv!r} cannot be compared "
                                    "with the x values") from err
        if excl_col is not None:
            include = ~g["excl"].to_numpy(dtype=bool)
        elif exclude is not None:
            include = ~_positions(exclude, xs, "exclude", "eq")
        else:
            include = np.ones(m, dtype=bool)

        cols: dict[str, np.ndarray] = {k: np.full(m, np.nan) for k in ("y", "cl", "lcl", "ucl")}
        stats_cols: dict[str, list[Any]] = {k: [None] * m for k in
                                            ("n_obs", "n_useful", *_INT_STATS, "runs_signal")}
        for p in np.unique(part_no):
            idx = np.flatnonzero(part_no == p)
            base = baseline[idx] & include[idx]
            if not base.any():
                base = include[idx].copy()
            pin = PartInput(
                y=g["y"].to_numpy(dtype=float)[idx],
                n=g["n"].to_numpy(dtype=float)[idx] if n is not None else np.full(idx.size, np.nan),
                y_sum=g["y_sum"].to_numpy(dtype=float)[idx],
                y_len=g["y_len"].to_numpy(dtype=float)[idx],
                y_sd=g["y_sd"].to_numpy(dtype=float)[idx],
                base=base,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lim = part_limits(chart, pin)
            inc = include[idx]
            ra = runs_analysis(lim.y[inc], lim.cl[inc])
            cols["y"][idx] = lim.y
            cols["cl"][idx] = lim.cl
            cols["lcl"][idx] = lim.lcl
            cols["ucl"][idx] = lim.ucl
            for k, v in ra.as_dict().items():
                for i in idx:
                    stats_cols[k][i] = v
        res = pd.DataFrame({f: g[f] for f in facets}, index=g.index)
        res["x"] = xs
        mult = float(multiply)
        res["y"] = cols["y"] * mult
        res["n"] = g["n"].to_numpy(dtype=float)
        res["cl"] = cols["cl"] * mult
        res["lcl"] = cols["lcl"] * mult
        res["ucl"] = cols["ucl"] * mult
        res["part"] = part_no.astype(int)
        if part_col is not None:
            res["part_label"] = g["part_label"].to_numpy()
        res["baseline"] = baseline
        res["include"] = include
        with np.errstate(invalid="ignore"):
            sig = (res["y"] > res["ucl"]) | (res["y"] < res["lcl"])
        res["sigma_signal"] = sig.fillna(False).astype(bool)
        res["runs_signal"] = np.asarray(stats_cols["runs_signal"], dtype=bool)
        res["n_obs"] = np.asarray(stats_cols["n_obs"], dtype=int)
        res["n_useful"] = np.asarray(stats_cols["n_useful"], dtype=int)
        for k in _INT_STATS:
            res[k] = pd.array(stats_cols[k], dtype="Int64")
        out.append(res)
    result = pd.concat(out, ignore_index=True)
    return QicResult(data=result, chart=chart, facets=facets, x_name=str(x), y_name=str(y),
                     n_name=None if n is None else str(n), multiply=float(multiply), title=title)

