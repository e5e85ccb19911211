"""Parsing period values and laying them on a regular grid.

Supported period values (one frequency per dataset):

- integers (``3``, ``"3"``, ``3.0``) -> ``"integer"``
- ISO dates ``YYYY-MM-DD`` (optionally with a time, or day-first ``DD-MM-YYYY`` /
  ``DD.MM.YYYY``), Python/pandas dates and ``datetime64`` columns -> ``"day"``; a date column
  with at most one date per calendar month (e.g. first of month) is monthly, one whose dates
  all fall on 1 January / the first day of a quarter is yearly / quarterly, and one whose dates
  all fall on the same weekday is weekly
- ``YYYY-MM`` (also ``YYYY/MM``) -> ``"month"``
- ``YYYY-Qn`` (also ``YYYYQn``, ``YYYY Qn``, ``Qn YYYY``) -> ``"quarter"``
- ISO weeks ``YYYY-Www`` (also ``YYYYWww``, ``YYYY-Www-d``) -> ``"week"``
- ``pandas.Period`` values / ``period[...]`` dtype -> their frequency

Ordinals are integers such that consecutive periods differ by one: the integer itself; days
since 1970-01-01; ISO weeks since the week of 1970-01-05; ``year * 12 + month - 1``;
``year * 4 + quarter - 1``; the year.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from qicstats.data.panel import PeriodGrid
from qicstats.errors import QicstatsError

FREQS: tuple[str, ...] = ("integer", "day", "week", "month", "quarter", "year")

_EPOCH = _dt.date(1970, 1, 1)
_EPOCH_MONDAY = _dt.date(1970, 1, 5)
_NA_TEXT = frozenset({"", "na", "n/a", "nan", "none", "null", "<na>", "nat", "#n/a", "."})

_RE_INT = re.compile(r"^[+-]?\d+(?:\.0*)?$")
_RE_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_RE_DAY_DMY = re.compile(r"^(\d{1,2})[-.](\d{1,2})[-.](\d{4})$")
_RE_MONTH = re.compile(r"^(\d{4})[-/](\d{1,2})$")
_RE_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)
_RE_QUARTER_QY = re.compile(r"^Q([1-4])\s*[- ]?\s*(\d{4})$", re.IGNORECASE)
_RE_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})(?:-?[1-7])?$", re.IGNORECASE)

_PERIOD_FREQ = {"D": "day", "B": "day", "W": "week", "M": "month", "Q": "quarter",
                "Y": "year", "A": "year"}


@dataclass(frozen=True)
class ParsedPeriods:
    """Period values parsed to ordinals in one frequency.

    Attributes
    ----------
    freq : {"integer", "day", "week", "month", "quarter", "year"}
        The dataset's frequency (the most common one among the parsed values).
    ordinal : ndarray of float
        The ordinal of each value; ``NaN`` where the value is empty, unparseable, or of another
        frequency than ``freq``.
    bad : ndarray of bool
        Non-empty values that could not be parsed.
    freqs_seen : dict
        ``{freq: number of values}`` for every frequency detected; more than one key means
        mixed frequencies.
    other_freq : ndarray of bool
        Values parsed in a frequency other than ``freq`` (mixed frequencies).
    """

    freq: str
    ordinal: np.ndarray
    bad: np.ndarray
    freqs_seen: dict[str, int] = field(default_factory=dict)
    other_freq: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def mixed(self) -> bool:
        """More than one frequency was detected."""
        return len(self.freqs_seen) > 1


# ---- one value ---------------------------------------------------------------------------
def _day_ord(d: _dt.date) -> int:
    return (d - _EPOCH).days


def _week_ord_of_day(day_ord: int) -> int:
    return (day_ord - (_EPOCH_MONDAY - _EPOCH).days) // 7


def _is_missing(v: object) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and np.isnan(v):
        return True
    if isinstance(v, np.floating) and np.isnan(v):
        return True
    return bool(isinstance(v, np.datetime64) and np.isnat(v))


def _parse_one(v: object) -> tuple[str | None, float]:
    """Return (freq, ordinal); freq ``None`` for empty and ``"bad"`` for unparseable."""
    if _is_missing(v):
        return None, np.nan
    if isinstance(v, (bool, np.bool_)):
        return "bad", np.nan
    if isinstance(v, (int, np.integer)):
        return "integer", float(v)
    if isinstance(v, (float, np.floating)):
        if np.isfinite(v) and float(v).is_integer():
            return "integer", float(v)
        return "bad", np.nan
    if isinstance(v, pd.Period):
        base = re.sub(r"[^A-Z]", "", v.freqstr.split("-")[0].upper())[:1]
        fq = _PERIOD_FREQ.get(base)
        if fq is None:
            return "bad", np.nan
        start = v.start_time.date()
        return fq, float(_coarsen_day(_day_ord(start), fq))
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    if isinstance(v, (_dt.datetime, _dt.date)):
        d = v.date() if isinstance(v, _dt.datetime) else v
        return "day", float(_day_ord(d))
    if not isinstance(v, str):
        return "bad", np.nan
    s = v.strip()
    if s.lower() in _NA_TEXT:
        return None, np.nan
    try:
        if _RE_INT.match(s):
            return "integer", float(int(float(s)))
        m = _RE_DAY.match(s)
        if m:
            return "day", float(_day_ord(_dt.date(int(m[1]), int(m[2]), int(m[3]))))
        m = _RE_DAY_DMY.match(s)
        if m:
            return "day", float(_day_ord(_dt.date(int(m[3]), int(m[2]), int(m[1]))))
        m = _RE_MONTH.match(s)
        if m:
            y, mo = int(m[1]), int(m[2])
            if 1 <= mo <= 12:
                return "month", float(y * 12 + mo - 1)
            return "bad", np.nan
        m = _RE_QUARTER.match(s)
        if m:
            return "quarter", float(int(m[1]) * 4 + int(m[2]) - 1)
        m = _RE_QUARTER_QY.match(s)
        if m:
            return "quarter", float(int(m[2]) * 4 + int(m[1]) - 1)
        m = _RE_WEEK.match(s)
        if m:
            monday = _dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
            return "week", float(_week_ord_of_day(_day_ord(monday)))
    except (ValueError, OverflowError):
        return "bad", np.nan
    return "bad", np.nan


def _coarsen_day(day_ord: int, freq: str) -> int:
    """The ordinal, in ``freq``, of the period containing day ``day_ord``."""
    if freq == "day":
        return day_ord
    if freq == "week":
        return _week_ord_of_day(day_ord)
    d = _EPOCH + _dt.timedelta(days=int(day_ord))
    if freq == "month":
        return d.year * 12 + d.month - 1
    if freq == "quarter":
        return d.year * 4 + (d.month - 1) // 3
    if freq == "year":
        return d.year
    raise ValueError(freq)


def _implied_date_freq(days: np.ndarray) -> str:
    """Frequency implied by a set of distinct day ordinals (see module docstring)."""
    days = np.unique(days.astype(np.int64))
    if days.size == 0:
        return "day"
    dates = days.astype("datetime64[D]")
    months = dates.astype("datetime64[M]")
    if np.unique(months).size == days.size:
        month_num = months.astype(np.int64) % 12  # 0 = January
        first = dates == months.astype("datetime64[D]")
        if days.size >= 3 and first.all():
            if (month_num == 0).all():
                return "year"
            if (month_num % 3 == 0).all():
                return "quarter"
        return "month"
    weekday = (days - (_EPOCH_MONDAY - _EPOCH).days) % 7
    if days.size >= 2 and np.unique(weekday).size == 1:
        return "week"
    return "day"


# ---- public API --------------------------------------------------------------------------
def _parse_uniques(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Factorize and parse: (codes, freq per unique (object), ordinal per unique)."""
    s = values
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        s = s.dt.tz_localize(None)
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    uniq_list = list(uniq) if not isinstance(uniq, pd.DatetimeIndex) else list(uniq)
    fq = np.empty(len(uniq_list), dtype=object)
    od = np.full(len(uniq_list), np.nan)
    for i, v in enumerate(uniq_list):
        fq[i], od[i] = _parse_one(v)
    return np.asarray(codes), fq, od


def parse_periods(values: pd.Series) -> ParsedPeriods:
    """Parse period values to ordinals of one frequency.

    Parameters
    ----------
    values : Series
        Integers, ISO dates, ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-Www`` strings, or datetime /
        Period dtypes (see the module docstring). Parsed per distinct value, so long
        patient-level columns are cheap.

    Returns
    -------
    ParsedPeriods
        ``freq`` is the most common frequency detected (``"integer"`` when nothing parses);
        values in another frequency get ``NaN`` ordinals and are flagged in ``other_freq``
        and counted in ``freqs_seen``.
    """
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    codes, fq, od = _parse_uniques(values)
    n = len(values)
    # dates aggregate to the frequency their distinct values imply
    is_day = fq == "day"
    if is_day.any():
        implied = _implied_date_freq(od[is_day])
        if implied != "day":
            od[is_day] = [_coarsen_day(int(x), implied) for x in od[is_day]]
            fq[is_day] = implied
    # rows per frequency
    valid_codes = codes >= 0
    counts_per_unique = np.bincount(codes[valid_codes], minlength=len(fq))
    freqs_seen: dict[str, int] = {}
    for f in FREQS:
        c = int(counts_per_unique[fq == f].sum()) if len(fq) else 0
        if c:
            freqs_seen[f] = c
    freq = max(freqs_seen, key=lambda f: (freqs_seen[f], -FREQS.index(f))) if freqs_seen \
        else "integer"
    keep = fq == freq
    od_u = np.where(keep, od, np.nan)
    ordinal = np.full(n, np.nan)
    bad = np.zeros(n, dtype=bool)
    other = np.zeros(n, dtype=bool)
    if len(fq):
        ordinal[valid_codes] = od_u[codes[valid_codes]]
        bad[valid_codes] = (fq == "bad")[codes[valid_codes]]
        is_other = np.array([f not in (None, "bad", freq) for f in fq], dtype=bool)
        other[valid_codes] = is_other[codes[valid_codes]]
    return ParsedPeriods(freq, ordinal, bad, freqs_seen, other)


#: which frequencies each frequency can be coarsened to
COARSER: dict[str, tuple[str, ...]] = {
    "day": ("week", "month", "quarter", "year"),
    "month": ("quarter", "year"),
    "quarter": ("year",),
}


def coarsen(ordinal: np.ndarray, from_freq: str, to_freq: str) -> np.ndarray:
    """Map ordinals of ``from_freq`` to the ordinals of the ``to_freq`` periods containing them.

    Days go to weeks, months, quarters or years; months to quarters or years; quarters to
    years. ``NaN`` stays ``NaN``. Raises ``ValueError`` for any other pair.
    """
    o = np.asarray(ordinal, dtype=float)
    if from_freq == to_freq:
        return o.copy()
    if to_freq not in COARSER.get(from_freq, ()):
        raise ValueError(f"cannot turn {from_freq} periods into {to_freq} periods")
    out = np.full(o.shape, np.nan)
    ok = np.isfinite(o)
    x = o[ok].astype(np.int64)
    if from_freq == "day":
        if to_freq == "week":
            out[ok] = (x - (_EPOCH_MONDAY - _EPOCH).days) // 7
            return out
        x = x.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + 1970 * 12
        from_freq = "month"
    if from_freq == "month":
        out[ok] = {"month": x, "quarter": x // 3, "year": x // 12}[to_freq]
    else:  # quarter -> year
        out[ok] = x // 4
    return out


def period_label(ordinal: int, freq: str) -> str:
    """Canonical label of one ordinal in ``freq`` (see :class:`PeriodGrid`)."""
    o = int(ordinal)
    if freq == "integer":
        return str(o)
    if freq == "day":
        return (_EPOCH + _dt.timedelta(days=o)).isoformat()
    if freq == "week":
        monday = _EPOCH_MONDAY + _dt.timedelta(weeks=o)
        y, w, _ = monday.isocalendar()
        return f"{y:04d}-W{w:02d}"
    if freq == "month":
        return f"{o // 12:04d}-{o % 12 + 1:02d}"
    if freq == "quarter":
        return f"{o // 4:04d}-Q{o % 4 + 1}"
    if freq == "year":
        return f"{o:04d}"
    raise ValueError(f"unknown period frequency {freq!r}; expected one of {FREQS}")


def make_grid(ordinal: np.ndarray, freq: str, observed: np.ndarray | None = None) -> PeriodGrid:
    """Build the regular grid spanning the ordinals.

    Parameters
    ----------
    ordinal : array of float
        Period ordinals (``NaN`` ignored) in ``freq``.
    freq : str
        One of ``integer, day, week, month, quarter, year``.
    observed : array of float, optional
        Ordinals that have data (default: ``ordinal``); grid points not among them are gaps.

    Returns
    -------
    PeriodGrid
        Labels for every ordinal from the minimum to the maximum, values, and gaps.
    """
    if freq not in FREQS:
        raise QicstatsError(f"unknown period frequency {freq!r}; expected one of {FREQS}")
    o = np.asarray(ordinal, dtype=float)
    o = o[np.isfinite(o)]
    if o.size == 0:
        raise QicstatsError("no valid periods: cannot build a period grid")
    lo, hi = int(o.min()), int(o.max())
    values = tuple(range(lo, hi + 1))
    labels = tuple(period_label(v, freq) for v in values)
    obs = o if observed is None else np.asarray(observed, dtype=float)
    obs_set = set(pd.unique(obs[np.isfinite(obs)]).astype(np.int64).tolist())
    gaps = tuple(lab for v, lab in zip(values, labels) if v not in obs_set)
    return PeriodGrid(freq=freq, labels=labels, values=values, gaps=gaps)


def to_grid_index(values: pd.Series, grid: PeriodGrid) -> tuple[np.ndarray, np.ndarray]:
    """Parse period labels (join/end periods, indicator waves) to grid indices.

    Parameters
    ----------
    values : Series
        Period values in the grid's frequency. Dates are accepted for any date-based grid and
        map to the period containing them (a join on 2024-03-15 in a monthly grid is
        ``2024-03``); an integer is accepted for a yearly grid as the year.
    grid : PeriodGrid

    Returns
    -------
    index : ndarray of float
        ``ordinal - grid.values[0]``; ``NaN`` for empty or invalid values. May lie outside
        ``0..T-1`` (a join before the data start is legal).
    bad : ndarray of bool
        Non-empty values that are unparseable or of another frequency.
    """
    values = pd.Series(values) if not isinstance(values, pd.Series) else values
    codes, fq, od = _parse_uniques(values)
    g = grid.freq
    res = np.full(len(fq), np.nan)
    bad_u = np.zeros(len(fq), dtype=bool)
    for i, (f, o) in enumerate(zip(fq, od)):
        if f is None:
            continue
        if f == g:
            res[i] = o
        elif f == "day" and g in ("week", "month", "quarter", "year"):
            res[i] = _coarsen_day(int(o), g)
        elif f == "integer" and g == "year":
            res[i] = o
        else:
            bad_u[i] = True
    start = grid.values[0] if grid.values else 0
    idx = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    ok = codes >= 0
    if len(fq):
        idx[ok] = res[codes[ok]] - start
        bad[ok] = bad_u[codes[ok]]
    return idx, bad


__all__ = ["FREQS", "ParsedPeriods", "parse_periods", "make_grid", "to_grid_index",
           "period_label", "coarsen"]
