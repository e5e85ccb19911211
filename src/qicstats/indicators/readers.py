"""Readers for coding exports: long tables, case-classification sheets, coding matrices.

Every reader returns the *canonical long codes frame*, one row per code, with columns

- ``unit`` (str): the unit (or, for ``describes: site`` indicators, the site) the code is for,
  after applying the optional case -> unit mapping;
- ``indicator`` (str), ``value`` (object: the raw code as read, e.g. ``"High"``, ``"2"``, or a
  float coding density);
- ``wave`` (str or ``<NA>``: the period label from which the code holds; ``<NA>`` = from the
  start), ``coder`` (str or ``<NA>``);
- ``source`` (str: file name or ``"<table>"``) and ``line`` (1-based line of the file the code
  came from: header is line 1, so data row ``i`` is line ``i + 2``).

Frames from several readers can be concatenated and passed to
:func:`qicstats.indicators.check_indicators`, which normalises the values with the codebook
and checks them against the panel.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from qicstats.data.columns import ColumnMap
from qicstats.data.panel import PanelData, PeriodGrid
from qicstats.data.periods import to_grid_index
from qicstats.errors import DataValidationError, Problem, ProblemCollector, QicstatsError
from qicstats.indicators.codebook import (
    Codebook,
    column_key,
    is_empty,
    load_codebook,
    norm_text,
    parse_codebook,
    parse_number,
)

#: columns of the canonical long codes frame, in order
CODE_COLUMNS: tuple[str, ...] = ("unit", "indicator", "value", "wave", "coder", "source", "line")

#: row / column names of totals in coding matrices (normalised), ignored as codes
TOTAL_NAMES: frozenset[str] = frozenset({
    "total", "totals", "sum", "sums", "σ", "∑", "totaal", "summe", "gesamt", "i alt", "i alt:",
    "total references", "sum of references", "all codes", "number of coded references",
})

_WAVE_NAMES = ("wave", "bølge", "golf", "welle")
_CODER_NAMES = ("coder", "kodare", "koder", "codeur", "rater")

PathLike = str | Path


# ---- low-level file reading --------------------------------------------------------------


def _problem(rule: str, message: str, **kw: Any) -> Problem:
    kw["examples"] = tuple(list(kw.get("examples", ()))[:5])
    return Problem(rule, message, **kw)


def read_raw(path: PathLike, *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/Excel/Parquet export with :func:`qicstats.data.io.read_table`.

    Cells are object-typed (numbers, dates or text), blank cells ``NA``; the index is each
    row's 0-based data-row number (file line = index + 2), as ``read_table`` keeps it.

    Raises
    ------
    DataValidationError
        Rule ``indicator_file_unreadable`` when the file is missing or cannot be opened, and
        ``read_table``'s own rules (``empty_file``, ``not_tabular``).
    """
    from qicstats.data.io import read_table

    try:
        df = read_table(path, sheet=sheet)
    except DataValidationError:
        raise
    except QicstatsError as err:
        raise DataValidationError([_problem(
            "indicator_file_unreadable", str(err), file=str(path),
            hint="check the path (relative paths are read from the working directory) and "
                 "the sheet name")]) from None
    out = df.astype(object)
    out = out.where(~out.map(is_blank), pd.NA)
    out.columns = [str(c).strip() for c in out.columns]
    return out


def _lines(df: pd.DataFrame) -> list[int]:
    """1-based file lines of a frame read by :func:`read_raw` (index + 2)."""
    try:
        return [int(i) + 2 for i in df.index]
    except (TypeError, ValueError):
        return [i + 2 for i in range(len(df))]


def is_blank(x: Any) -> bool:
    """A cell with nothing in it (NA, NaN, empty or whitespace-only text)."""
    if x is None:
        return True
    if isinstance(x, str):
        return x.strip() == ""
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def _text(x: Any) -> Any:
    """Cell -> stripped text (integer-valued floats without ``.0``); NA stays NA."""
    if is_blank(x):
        return pd.NA
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return str(x).strip()


def wave_label(x: Any) -> Any:
    """A wave cell as a period label: dates -> ISO ``YYYY-MM-DD``, ``3.0`` -> ``"3"``."""
    if is_blank(x):
        return pd.NA
    if isinstance(x, (pd.Timestamp, _dt.datetime)):
        return pd.Timestamp(x).strftime("%Y-%m-%d")
    if isinstance(x, _dt.date):
        return x.isoformat()
    return _text(x)


def _empty_codes() -> pd.DataFrame:
    return _finish(pd.DataFrame({c: [] for c in CODE_COLUMNS}))


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "unit": df["unit"].astype("string"),
        "indicator": df["indicator"].astype("string"),
        "value": df["value"].astype(object),
        "wave": df["wave"].map(wave_label).astype("string"),
        "coder": df["coder"].map(_text).astype("string"),
        "source": df["source"].astype("string"),
        "line": pd.array(df["line"], dtype="Int64"),
    })
    return out.reset_index(drop=True)


# ---- case -> unit mapping ----------------------------------------------------------------


def read_mapping(path: PathLike) -> dict[str, str]:
    """Read a case -> unit mapping file (CSV or Excel with columns ``case`` and ``unit``).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of str to str
        ``{case name: unit}``.

    Raises
    ------
    DataValidationError
        Missing columns, empty cells, or one case mapped to two different units.
    """
    fname = str(path)
    df = read_raw(path)
    cols = {norm_text(c): c for c in df.columns}
    missing = [c for c in ("case", "unit") if c not in cols]
    if missing:
        raise DataValidationError([_problem(
            "indicator_columns_missing", f"the case mapping lacks column(s) {missing}",
            file=fname, column=", ".join(missing), count=len(missing),
            examples=[f"found: {list(df.columns)}"],
            hint="the mapping file needs a header `case,unit` and one row per case name")])
    case = df[cols["case"]].map(_text).astype(object)
    unit = df[cols["unit"]].map(_text).astype(object)
    lines = _lines(df)
    col = ProblemCollector()
    blank = [lines[i] for i in range(len(df))
             if is_blank(case.iloc[i]) != is_blank(unit.iloc[i])]
    if blank:
        col.add("indicator_mapping_invalid", "rows with a case but no unit (or the reverse)",
                file=fname, count=len(blank), examples=[f"line {n}" for n in blank],
                hint="fill both the case and the unit, or delete the row")
    out: dict[str, str] = {}
    clash: list[str] = []
    for i, (c, u) in enumerate(zip(case, unit)):
        if is_blank(c) or is_blank(u):
            continue
        if c in out and out[c] != u:
            clash.append(f"line {lines[i]}: '{c}' -> '{u}' (before: '{out[c]}')")
        out.setdefault(c, u)
    if clash:
        col.add("indicator_mapping_invalid", "a case is mapped to more than one unit",
                file=fname, column=cols["case"], count=len(clash), examples=clash,
                hint="map every case name to exactly one unit")
    col.raise_if_errors()
    return out


def _mapping(mapping: Mapping[str, str] | PathLike | None) -> dict[str, str]:
    if mapping is None:
        return {}
    if isinstance(mapping, Mapping):
        return {str(k).strip(): str(v).strip() for k, v in mapping.items()}
    return read_mapping(mapping)


def map_case(name: str, mapping: Mapping[str, str]) -> str:
    r"""The unit a case name stands for.

    Looks the stripped name up in ``mapping``, then its last hierarchy component (NVivo and
    MAXQDA write ``Cases\Site A\Ward 1``), then case-insensitively; unmapped names are
    returned unchanged (they may be unit names already).
    """
    name = str(name).strip()
    if not mapping:
        return name
    if name in mapping:
        return mapping[name]
    last = name.replace("/", "\\").rsplit("\\", 1)[-1].strip()
    if last in mapping:
        return mapping[last]
    folded = {norm_text(k): v for k, v in mapping.items()}
    return folded.get(norm_text(name), folded.get(norm_text(last), name))


# ---- long tables --------------------------------------------------------------------------


def _cmap(columns: ColumnMap | Mapping[str, str] | None) -> ColumnMap:
    if isinstance(columns, ColumnMap):
        return columns
    try:
        return ColumnMap.from_mapping(columns)
    except KeyError as err:
        raise DataValidationError([_problem(
            "indicator_columns_missing", f"invalid column mapping: {err.args[0]}",
            hint="map the roles unit, indicator, indicator_value, wave, coder")]) from None


def long_frame(df: pd.DataFrame, columns: ColumnMap | Mapping[str, str] | None = None,
               source: str | None = None, lines: list[int] | None = None
               ) -> tuple[pd.DataFrame | None, list[Problem]]:
    """Turn a long indicator table into the canonical frame without raising.

    Columns are found under the names of ``columns`` (roles ``unit``, ``indicator``,
    ``indicator_value``, ``wave``, ``coder``), falling back to the contract's names. Frames that
    already carry ``source`` / ``line`` (reader output) keep them; otherwise ``lines`` gives
    each row's file line (default: position + 2).

    Returns
    -------
    frame : DataFrame or None
        ``None`` when required columns are missing.
    problems : list of Problem
    """
    cmap = _cmap(columns)
    default = ColumnMap()
    src = source or "<table>"
    present = {str(c) for c in df.columns}
    stripped = {str(c).strip(): c for c in df.columns}

    def find(role: str, logical: str) -> Any:
        for cand in (getattr(cmap, role), getattr(default, role), logical):
            if cand in present:
                return cand
            if cand in stripped:
                return stripped[cand]
        return None

    roles = {"unit": "unit", "indicator": "indicator", "value": "indicator_value",
             "wave": "wave", "coder": "coder"}
    found = {k: find(role, k) for k, role in roles.items()}
    missing = [k for k in ("unit", "indicator", "value") if found[k] is None]
    if missing:
        names = [getattr(cmap, roles[k]) for k in missing]
        return None, [_problem(
            "indicator_columns_missing",
            f"the indicator table lacks required column(s) {names}", file=src,
            column=", ".join(names), count=len(names), examples=[f"found: {sorted(present)}"],
            hint="the indicator table needs columns unit, indicator, value (optional wave, "
                 "coder); map other names with the config's `columns:` section")]
    n = len(df)
    out = pd.DataFrame({
        "unit": df[found["unit"]].map(_text).to_numpy(dtype=object),
        "indicator": df[found["indicator"]].map(_text).to_numpy(dtype=object),
        "value": df[found["value"]].astype(object).to_numpy(dtype=object),
        "wave": (df[found["wave"]].astype(object).to_numpy(dtype=object)
                 if found["wave"] is not None else np.full(n, pd.NA, dtype=object)),
        "coder": (df[found["coder"]].astype(object).to_numpy(dtype=object)
                  if found["coder"] is not None else np.full(n, pd.NA, dtype=object)),
        "source": (df["source"].astype(object).fillna(src).to_numpy(dtype=object)
                   if "source" in present and "line" in present else np.full(n, src, dtype=object)),
        "line": (pd.to_numeric(df["line"], errors="coerce").to_numpy(dtype=object)
                 if "source" in present and "line" in present
                 else np.asarray(lines if lines is not None else np.arange(n) + 2)),
    })
    out["value"] = out["value"].map(lambda x: pd.NA if is_blank(x) else x).astype(object)
    return _finish(out), []


def read_long(path_or_df: PathLike | pd.DataFrame,
              columns: ColumnMap | Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a long indicator table (``unit, indicator, value[, wave][, coder]``).

    Parameters
    ----------
    path_or_df : str, Path or DataFrame
        A CSV/Excel file or a DataFrame (not modified).
    columns : ColumnMap or dict, optional
        Names of the columns in the file for the roles ``unit``, ``indicator``,
        ``indicator_value``, ``wave``, ``coder``.

    Returns
    -------
    DataFrame
        The canonical long codes frame (see the module docstring).

    Raises
    ------
    DataValidationError
        The file cannot be read or lacks a required column.
    """
    if isinstance(path_or_df, pd.DataFrame):
        df, source = path_or_df, None
    else:
        df, source = read_raw(path_or_df), str(path_or_df)
    frame, problems = long_frame(df, columns, source, lines=None if source is None
                                 else _lines(df))
    if frame is None:
        raise DataValidationError(problems)
    return frame


# ---- classification sheets ---------------------------------------------------------------


def _load_codebook(codebook: Codebook | PathLike | Mapping[str, Any]) -> Codebook:
    """The codebook, raising ``ConfigError`` (as :func:`load_codebook`) when it is malformed."""
    return load_codebook(codebook)


def _find_named(columns: list[str], names: tuple[str, ...]) -> str | None:
    for c in columns:
        if norm_text(c) in names:
            return c
    return None


def read_classification_sheet(path: PathLike, codebook: Codebook | PathLike | Mapping[str, Any],
                              *, case_column: str | None = None,
                              mapping: Mapping[str, str] | PathLike | None = None,
                              wave: str | None = None, coder: str | None = None,
                              sheet: str | int | None = None) -> pd.DataFrame:
    """Read a case-classification sheet (NVivo / ATLAS.ti / MAXQDA export).

    One row per case; the first column (or ``case_column``) is the case name, every other
    column an attribute. Attributes matching an indicator's ``source``, its name or its
    codebook ``label`` (in that order of precedence; matching ignores case, spaces and
    underscores) become codes; others are ignored, with a warning, and listed in
    ``frame.attrs["ignored_columns"]``. Empty and ``Unassigned`` / ``Not Applicable`` cells
    are not codes. Columns named ``wave`` or ``coder`` give each row's wave and coder.

    Parameters
    ----------
    path : str or Path
        CSV or Excel file.
    codebook : Codebook, path or dict
    case_column : str, optional
        The column of case names (default: the first column).
    mapping : dict or path, optional
        Case name -> unit (see :func:`read_mapping`); unmapped names are kept as they are.
    wave : str, optional
        The wave of every row (a sheet exported per wave); a wave column's non-empty cells win.
    coder : str, optional
        The coder of every row; a coder column's non-empty cells win.
    sheet : str or int, optional
        Excel sheet name or 0-based position (default: the first).

    Returns
    -------
    DataFrame
        The canonical long codes frame.

    Raises
    ------
    DataValidationError
        The file cannot be read, the case column is absent, no column matches the codebook,
        or rows have codes but no case name.
    ConfigError
        The codebook is malformed.

    Warns
    -----
    UserWarning
        Some attribute columns match no indicator (a misspelt column silently loses its
        codes otherwise); the message names the file, the columns and the fix.
    """
    cb = _load_codebook(codebook)
    fname = str(path)
    df = read_raw(path, sheet=sheet)
    lines = _lines(df)
    cols = list(df.columns)
    if not cols:
        raise DataValidationError([_problem("indicator_columns_missing", "the sheet has no columns",
                                            file=fname, hint="export the classification sheet "
                                            "with a header row")])
    if case_column is None:
        case_col = cols[0]
    elif case_column in cols:
        case_col = case_column
    else:
        raise DataValidationError([_problem(
            "indicator_columns_missing", f"the case column '{case_column}' is not in the sheet",
            file=fname, column=case_column, count=1, examples=[f"found: {cols}"],
            hint="give the name of the column holding the case names")])
    rest = [c for c in cols if c != case_col]
    wave_col = _find_named(rest, _WAVE_NAMES)
    coder_col = _find_named(rest, _CODER_NAMES)
    lookup = cb.by_column()
    for spec in cb.indicators.values():  # the label last: a source or name wins over it
        if spec.label:
            lookup.setdefault(column_key(spec.label), spec.name)
    matched = {c: lookup[column_key(c)] for c in rest
               if c not in (wave_col, coder_col) and column_key(c) in lookup}
    ignored = [c for c in rest if c not in matched and c not in (wave_col, coder_col)]
    if not matched:
        raise DataValidationError([_problem(
            "indicator_columns_missing", "no column of the sheet matches an indicator of the "
            "codebook", file=fname, count=len(cb.indicators),
            examples=[f"expected one of {[s.column for s in cb.indicators.values()]}",
                      f"or a label: {[s.label for s in cb.indicators.values() if s.label]}",
                      f"found {rest}"],
            hint="name the codebook indicators like the sheet's attribute columns, or set "
                 "their `source:` to the column name")])
    maps = _mapping(mapping)
    col = ProblemCollector()
    no_case: list[int] = []
    rows: list[tuple[Any, ...]] = []
    for i in range(len(df)):
        rec = df.iloc[i]
        case = _text(rec[case_col])
        values = {c: rec[c] for c in matched if not is_empty(rec[c])}
        if is_blank(case) or norm_text(case) in TOTAL_NAMES:
            if values and is_blank(case):
                no_case.append(lines[i])
            continue
        w = wave_label(rec[wave_col]) if wave_col else pd.NA
        w = wave if is_blank(w) and wave is not None else w
        k = _text(rec[coder_col]) if coder_col else pd.NA
        k = coder if is_blank(k) and coder is not None else k
        unit = map_case(case, maps)
        for c, v in values.items():
            rows.append((unit, matched[c], v, w, k, fname, lines[i]))
    if no_case:
        col.add("indicator_case_missing", "rows with attribute values but no case name",
                file=fname, column=case_col, count=len(no_case),
                examples=[f"line {n}" for n in no_case],
                hint="fill in the case name or delete the row")
    col.raise_if_errors()
    out = (_finish(pd.DataFrame(rows, columns=list(CODE_COLUMNS))) if rows else _empty_codes())
    out.attrs["ignored_columns"] = ignored
    if ignored:
        warnings.warn(
            f"{fname}: {len(ignored)} column(s) of the classification sheet match no indicator "
            f"of the codebook and were ignored: {', '.join(repr(str(c)) for c in ignored)}. "
            "If one holds an indicator's codes, set that indicator's `source:` in the codebook "
            "to the column name, or rename the column to the indicator's name or label.",
            UserWarning, stacklevel=2)
    return out


# ---- coding matrices -------------------------------------------------------------------------


def read_coding_matrix(path: PathLike, codebook: Codebook | PathLike | Mapping[str, Any], *,
                       mapping: Mapping[str, str] | PathLike | None = None,
                       wave: str | None = None, coder: str | None = None,
                       sheet: str | int | None = None) -> pd.DataFrame:
    r"""Read a cases x codes matrix of coded-reference counts (MAXQDA / NVivo matrix export).

    Rows are cases (first column: the case name), columns are codes. A matrix exported the
    other way round (codes in rows, as MAXQDA's Code Matrix Browser does) is detected and
    transposed. Rows and columns named ``Total`` / ``Sum`` / ``Σ`` are not codes. Code names
    match an indicator's ``source`` (or name), ignoring case and spaces, and else by their last
    hierarchy component (``Parent\Child``). Empty cells count 0.

    Each matched code becomes, per case:

    - binary indicators: the second level (present) when ``count >= threshold``, else the
      first;
    - continuous indicators: the coding density ``count / total``, with ``total`` the case's
      total-column value if the matrix has one, else the sum over all code columns;
    - ordinal indicators: the count itself as text (map counts to levels with ``aliases``).

    Cases with no coded reference at all (total 0) get no codes (they were not coded); they
    are listed in ``frame.attrs["uncoded_cases"]``.

    Parameters
    ----------
    path : str or Path
    codebook : Codebook, path or dict
    mapping : dict or path, optional
        Case name -> unit.
    wave, coder : str, optional
        The wave and coder of every code in the file.
    sheet : str or int, optional
        Excel sheet name or 0-based position (default: the first).

    Returns
    -------
    DataFrame
        The canonical long codes frame; ``value`` holds level labels (binary), count text
        (ordinal) or floats (continuous).

    Raises
    ------
    DataValidationError
        Unreadable file, no code matching the codebook, or non-numeric counts.
    ConfigError
        The codebook is malformed.
    """
    cb = _load_codebook(codebook)
    fname = str(path)
    raw = read_raw(path, sheet=sheet)
    lines = _lines(raw)
    if raw.shape[1] < 2:
        raise DataValidationError([_problem(
            "indicator_columns_missing", "a coding matrix needs a case column and code columns",
            file=fname, hint="export the matrix with cases in rows and codes in columns")])
    lookup = cb.by_column()

    def match(name: Any) -> str | None:
        if is_blank(name):
            return None
        t = column_key(name)
        if t in lookup:
            return lookup[t]
        return lookup.get(column_key(str(name).replace("/", "\\").rsplit("\\", 1)[-1]))

    header = list(raw.columns[1:])
    first = [x for x in raw.iloc[:, 0].tolist() if not is_blank(x)]
    n_head = sum(match(c) is not None for c in header)
    n_first = sum(match(c) is not None for c in first)
    transposed = n_first > n_head
    # cells[r][c] with line numbers of the case (normal) or the code (transposed)
    case_lines: Sequence[int | None]
    code_lines: Sequence[int | None]
    if transposed:
        case_names = [str(c) for c in header]
        code_names = [_text(x) for x in raw.iloc[:, 0].tolist()]
        grid = raw.iloc[:, 1:].T.to_numpy(dtype=object)  # cases x codes
        case_lines = [None] * len(case_names)
        code_lines = lines
    else:
        case_names = [_text(x) for x in raw.iloc[:, 0].tolist()]
        code_names = [str(c) for c in header]
        grid = raw.iloc[:, 1:].to_numpy(dtype=object)
        case_lines = lines
        code_lines = [None] * len(code_names)

    is_total_code = [not is_blank(c) and norm_text(c) in TOTAL_NAMES for c in code_names]
    keep_case = [not is_blank(c) and norm_text(c) not in TOTAL_NAMES for c in case_names]
    # match(c) is not None for the codes kept, so the values are indicator names
    matched = cast(dict[int, str], {j: match(c) for j, c in enumerate(code_names)
                                    if not is_blank(c) and not is_total_code[j]
                                    and match(c) is not None})
    if not matched:
        raise DataValidationError([_problem(
            "indicator_columns_missing", "no code of the matrix matches an indicator of the "
            "codebook", file=fname, count=len(cb.indicators),
            examples=[f"expected one of {[s.column for s in cb.indicators.values()]}",
                      f"found {[c for c in code_names if not is_blank(c)][:10]}"],
            hint="set each indicator's `source:` to its code name in the matrix")])

    col = ProblemCollector()
    bad: dict[str, list[str]] = {}
    counts = np.full(grid.shape, np.nan)
    for r in range(grid.shape[0]):
        if not keep_case[r]:
            continue
        for j in range(grid.shape[1]):
            x = grid[r, j]
            if is_blank(x):
                counts[r, j] = 0.0
                continue
            v = parse_number(x)
            if v is None:
                if j in matched or is_total_code[j]:
                    line = case_lines[r] or code_lines[j]
                    bad.setdefault(str(code_names[j]), []).append(
                        f"line {line} ({case_names[r]}): {x!r}")
                continue
            counts[r, j] = v
    for code, ex in bad.items():
        col.add("indicator_value_not_numeric", "coding-matrix cells must be counts of coded "
                "references", file=fname, column=code, count=len(ex), examples=ex,
                hint="export the matrix with numbers of coded references (not text or %)")
    col.raise_if_errors()

    maps = _mapping(mapping)
    total_j = [j for j, t in enumerate(is_total_code) if t]
    code_j = [j for j in range(len(code_names))
              if not is_total_code[j] and not is_blank(code_names[j])]
    rows: list[tuple[Any, ...]] = []
    uncoded: list[str] = []
    for r, case in enumerate(case_names):
        if not keep_case[r]:
            continue
        total = (counts[r, total_j[0]] if total_j and not np.isnan(counts[r, total_j[0]])
                 else np.nansum(counts[r, code_j]))
        if not total > 0:
            uncoded.append(str(case))
            continue
        unit = map_case(case, maps)
        for j, ind in matched.items():
            spec = cb[ind]
            n = counts[r, j]
            if np.isnan(n):
                continue
            if spec.type == "binary":
                value: Any = spec.levels[1] if n >= spec.threshold else spec.levels[0]
            elif spec.type == "continuous":
                value = float(n / total)
            else:
                value = str(int(n)) if float(n).is_integer() else str(n)
            line = case_lines[r] or code_lines[j]
            rows.append((unit, ind, value, wave, coder, fname, line))
    out = (_finish(pd.DataFrame(rows, columns=list(CODE_COLUMNS))) if rows else _empty_codes())
    out.attrs["uncoded_cases"] = uncoded
    out.attrs["transposed"] = transposed
    return out



# ---- checking codes against the codebook and the panel ---------------------------------------

#: coder names that mark adjudicated (agreed after discussion) codes, normalised
ADJUDICATORS: frozenset[str] = frozenset({"adjudicated", "consensus"})

#: columns of :attr:`IndicatorCodes.table`
TABLE_COLUMNS: tuple[str, ...] = (
    "unit", "indicator", "level", "value", "wave", "wave_t", "coder", "source", "line",
)


def is_adjudicator(coder: Any) -> bool:
    """True for the coder names ``adjudicated`` / ``consensus`` (any case)."""
    return not is_blank(coder) and norm_text(coder) in ADJUDICATORS


@dataclass(frozen=True)
class IndicatorCodes:
    """Checked, normalised indicator codes (the output of :func:`check_indicators`).

    Attributes
    ----------
    table : DataFrame
        One row per code, columns ``unit`` (the unit, or the site for ``describes: site``
        indicators), ``indicator``, ``level`` (canonical level label; ``<NA>`` for continuous
        indicators), ``value`` (float: 0-based level index, or the continuous value), ``wave``
        (canonical period label, ``<NA>`` = from the start), ``wave_t`` (float grid index of the
        wave, may lie outside ``0..T-1``; ``NaN`` = from the start), ``coder`` (``<NA>`` when
        the codes name no coder), ``source`` and ``line`` (where the code was read).
        Rows that broke a rule are left out.
    codebook : Codebook
    periods : PeriodGrid
        The grid ``wave_t`` refers to.
    site_column : str
        The units-table column naming each unit's site (``describes: site`` indicators).
    """

    table: pd.DataFrame
    codebook: Codebook
    periods: PeriodGrid
    site_column: str = "site"

    @property
    def indicators(self) -> list[str]:
        """Codebook indicators that have at least one code, in codebook order."""
        present = set(self.table["indicator"].dropna().astype(str))
        return [n for n in self.codebook.names if n in present]

    def coders(self) -> list[str]:
        """Sorted names of the coders (adjudication pseudo-coders left out)."""
        names = self.table["coder"].dropna().astype(str).unique().tolist()
        return sorted(n for n in names if not is_adjudicator(n))


def _grid_index(values: pd.Series, grid: PeriodGrid) -> tuple[np.ndarray, np.ndarray]:
    """Float grid index (NaN for empty) and an 'unparseable / other frequency' mask."""
    idx, bad = to_grid_index(values, grid)
    return np.asarray(idx, dtype=float), np.asarray(bad, dtype=bool)


def _suggest(name: str, candidates: list[str]) -> str:
    folded = [c for c in candidates if norm_text(c) == norm_text(name)]
    close = folded + [c for c in difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
                      if c not in folded]
    return f" (did you mean {' or '.join(repr(c) for c in close[:3])}?)" if close else ""


def _line(rec: Any) -> str:
    return f"line {rec.line}" if not pd.isna(rec.line) else "row ?"


def _emit(col: ProblemCollector, rule: str, message: str, rows: pd.DataFrame, *,
          column: str | None, hint: str, example: Any, severity: str = "error") -> None:
    """One problem per source file for the offending ``rows`` (line-numbered examples)."""
    for src, grp in rows.groupby("source", sort=False, dropna=False):
        col.add(rule, message, file=None if pd.isna(src) else str(src), column=column,
                count=len(grp), examples=[example(r) for r in grp.head(5).itertuples()],
                hint=hint, severity=severity)  # type: ignore[arg-type]


def _codes_frame(codes: Any, columns: Any, col: ProblemCollector) -> pd.DataFrame | None:
    items = list(codes) if isinstance(codes, (list, tuple)) else [codes]
    frames = []
    for item in items:
        try:
            if isinstance(item, pd.DataFrame):
                frame, probs = long_frame(item, columns)
            else:
                raw = read_raw(item)
                frame, probs = long_frame(raw, columns, str(item), lines=_lines(raw))
        except DataValidationError as err:
            col.problems.extend(err.problems + err.warnings)
            continue
        col.problems.extend(probs)
        if frame is not None:
            frames.append(frame)
    if not frames:
        return None
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def check_indicators(codes: Any, codebook: Codebook | str | os.PathLike[str] | Mapping[str, Any],
                     panel: PanelData, columns: ColumnMap | Mapping[str, str] | None = None,
                     *, site_column: str = "site") -> tuple[IndicatorCodes, list[Problem]]:
    """Check indicator codes against the codebook and the panel, collecting every problem.

    Parameters
    ----------
    codes : path, DataFrame, or list of them
        Long indicator tables (files, or frames such as the readers' output).
    codebook : Codebook, path or dict
    panel : PanelData
        Units and period grid the codes must refer to.
    columns : ColumnMap or dict, optional
        Column names of the long tables (roles unit, indicator, indicator_value, wave, coder).
    site_column : str
        The units-table column holding sites (``describes: site`` indicators).

    Returns
    -------
    codes : IndicatorCodes
        The rows that passed every rule, normalised (see :class:`IndicatorCodes`).
    problems : list of Problem
        Errors and warnings; this function never raises for bad input. Rules:
        ``malformed_codebook``, ``indicator_columns_missing``, ``indicator_key_missing``,
        ``indicator_not_in_codebook``, ``indicator_value_invalid``,
        ``indicator_value_not_numeric``, ``indicator_unknown_unit``,
        ``indicator_site_column_missing``, ``indicator_wave_invalid``,
        ``indicator_conflicting_codes``; warnings ``indicator_value_empty``,
        ``indicator_wave_outside_grid``, ``indicator_duplicate_codes``.
    """
    col = ProblemCollector()
    cb, cb_problems, malformed = parse_codebook(codebook)
    col.problems.extend(cb_problems)
    cb = cb or Codebook({})
    grid = panel.periods
    empty = IndicatorCodes(pd.DataFrame({c: [] for c in TABLE_COLUMNS}), cb, grid, site_column)
    frame = _codes_frame(codes, columns, col)
    if frame is None:
        return empty, list(col.problems)
    df = frame.copy()

    # rows without a unit or an indicator name
    nokey = df["unit"].isna() | df["indicator"].isna()
    if nokey.any():
        _emit(col, "indicator_key_missing", "rows without a unit or indicator name",
              df[nokey], column="unit, indicator", hint="fill in unit and indicator, or delete "
              "the rows", example=_line)
    df = df[~nokey]
    # empty values: not coded
    novalue = df["value"].map(is_empty).astype(bool)
    if novalue.any():
        _emit(col, "indicator_value_empty", "rows with an empty value are not codes and were "
              "left out", df[novalue], column="value", severity="warning",
              hint="fill in the value, or delete the rows if the indicator was not coded",
              example=lambda r: f"{_line(r)}: {r.unit} / {r.indicator}")
    df = df[~novalue]
    # indicators the codebook does not declare
    known = df["indicator"].isin(list(cb.indicators))
    skip = df["indicator"].isin(list(malformed))
    unknown = df[~known & ~skip]
    for name, grp in unknown.groupby("indicator", sort=False):
        _emit(col, "indicator_not_in_codebook", f"indicator '{name}' is not in the codebook"
              + _suggest(str(name), cb.names), grp, column="indicator",
              hint="declare it under `indicators:` in the codebook (or fix its spelling)",
              example=_line)
    df = df[known].copy()

    # values
    level = pd.Series(pd.NA, index=df.index, dtype="object")
    value = pd.Series(np.nan, index=df.index, dtype=float)
    ok = pd.Series(True, index=df.index)
    for name, grp in df.groupby("indicator", sort=False):
        spec = cb[str(name)]
        norm = grp["value"].map(spec.normalize)
        bad = norm.isna()
        if bad.any():
            rule = ("indicator_value_not_numeric" if spec.type == "continuous"
                    else "indicator_value_invalid")
            msg = (f"indicator '{name}' is continuous but has non-numeric values"
                   if spec.type == "continuous" else
                   f"values of indicator '{name}' are not among its levels; allowed: "
                   f"{spec.allowed_text()}")
            hint = ("write numbers (decimal point or comma)" if spec.type == "continuous" else
                    "use one of the levels, or add the spelling under `aliases:` in the codebook")
            _emit(col, rule, msg, grp[bad], column="value", hint=hint,
                  example=lambda r: f"{_line(r)}: {r.value!r}")
            ok[grp.index[bad]] = False
        good = norm[~bad]
        if spec.type == "continuous":
            value[good.index] = good.astype(float)
        else:
            level[good.index] = good
            value[good.index] = good.map(spec.level_index).astype(float)
    df["level"] = level.astype("string")
    df["value"] = value

    # units (or sites)
    units = panel.units["unit"].astype(str).tolist()
    unit_set = set(units)
    describes = df["indicator"].map(lambda n: cb[str(n)].describes)
    site_rows = describes == "site"
    if site_rows.any():
        if site_column not in panel.units.columns:
            _emit(col, "indicator_site_column_missing",
                  f"indicators describing sites need the units table's '{site_column}' column",
                  df[site_rows], column=site_column,
                  hint=f"add a '{site_column}' column to the units table or set `describes: unit`",
                  example=lambda r: f"{_line(r)}: {r.indicator}")
            ok[site_rows[site_rows].index] = False
        else:
            sites = sorted(set(panel.units[site_column].dropna().astype(str)))
            bad = site_rows & ~df["unit"].isin(sites)
            if bad.any():
                _emit(col, "indicator_unknown_unit", "codes for sites that are not in the "
                      "units table", df[bad], column="unit",
                      hint="fix the site names, or map case names with a case,unit mapping file",
                      example=lambda r: f"{_line(r)}: {r.unit!r}{_suggest(str(r.unit), sites)}")
                ok[bad[bad].index] = False
    bad = ~site_rows & ~df["unit"].isin(unit_set)
    if bad.any():
        _emit(col, "indicator_unknown_unit", "codes for units that are not in the panel",
              df[bad], column="unit",
              hint="fix the unit names, or map case names to units with a case,unit mapping file",
              example=lambda r: f"{_line(r)}: {r.unit!r}{_suggest(str(r.unit), units)}")
        ok[bad[bad].index] = False

    # waves
    uniq = pd.Series(df["wave"].dropna().unique(), dtype=object)
    idx_map: dict[str, float] = {}
    bad_waves: set[str] = set()
    if len(uniq):
        try:
            idx, badm = _grid_index(uniq, grid)
        except QicstatsError:
            idx, badm = np.full(len(uniq), np.nan), np.ones(len(uniq), dtype=bool)
        for w, i, b in zip(uniq.tolist(), idx.tolist(), badm.tolist()):
            if b or (np.isfinite(i) and not float(i).is_integer()):
                bad_waves.add(w)
            else:
                idx_map[w] = i
    wbad = df["wave"].isin(list(bad_waves))
    if wbad.any():
        _emit(col, "indicator_wave_invalid", f"waves that are not periods of the panel's "
              f"frequency ({grid.freq}, e.g. '{grid.labels[0] if grid.labels else ''}')",
              df[wbad], column="wave",
              hint="write each wave as a period label like the panel's periods, or leave it "
                   "empty for 'from the start'",
              example=lambda r: f"{_line(r)}: {r.wave!r}")
        ok[wbad[wbad].index] = False
    df["wave_t"] = df["wave"].map(lambda w: idx_map.get(w, np.nan) if not pd.isna(w) else np.nan
                                  ).astype(float)
    labels = grid.labels
    df["wave"] = [
        (labels[int(t)] if np.isfinite(t) and 0 <= t < len(labels) else w)
        for w, t in zip(df["wave"].tolist(), df["wave_t"].tolist())
    ]
    df["wave"] = df["wave"].astype("string")
    outside = ok & df["wave_t"].notna() & ((df["wave_t"] < 0) | (df["wave_t"] > len(labels) - 1))
    if outside.any():
        _emit(col, "indicator_wave_outside_grid", "waves outside the panel's periods (the "
              "code is applied from the nearest period inside the data)", df[outside],
              column="wave", severity="warning", hint="check the wave labels",
              example=lambda r: f"{_line(r)}: {r.wave!r}")

    df = df[ok].copy()
    # duplicates and conflicts from one coder
    key = ["unit", "indicator", "wave", "coder"]
    keyed = df.assign(**{k: df[k].astype(object).where(df[k].notna(), "\x00") for k in
                         ("wave", "coder")})
    nvals = keyed.groupby(key, sort=False, dropna=False)["value"].transform("nunique")
    conflict = nvals > 1
    if conflict.any():
        _emit(col, "indicator_conflicting_codes", "one coder gave different values for the same "
              "unit, indicator and wave", df[conflict], column="value",
              hint="keep one code per coder, unit, indicator and wave (adjudicated codes go "
                   "under coder 'adjudicated')",
              example=lambda r: f"{_line(r)}: {r.unit} / {r.indicator} / wave "
                                f"{r.wave if not pd.isna(r.wave) else '(start)'} / coder "
                                f"{r.coder if not pd.isna(r.coder) else '(none)'} = "
                                f"{r.level if not pd.isna(r.level) else r.value}")
    dup = keyed.duplicated(key + ["value"], keep="first")
    if dup.any():
        _emit(col, "indicator_duplicate_codes", "identical codes given more than once; the "
              "repeats were left out", df[dup], column=None, severity="warning",
              hint="delete the repeated rows", example=_line)
    df = df[~dup]
    table = df[list(TABLE_COLUMNS)].reset_index(drop=True)
    table["line"] = table["line"].astype("Int64")
    return IndicatorCodes(table, cb, grid, site_column), list(col.problems)


def load_indicators(codes: Any, codebook: Codebook | PathLike | Mapping[str, Any],
                    panel: PanelData, columns: ColumnMap | Mapping[str, str] | None = None,
                    *, site_column: str = "site") -> IndicatorCodes:
    """:func:`check_indicators`, raising when any rule is broken.

    Raises
    ------
    DataValidationError
        With every error (and the warnings) found.
    """
    result, problems = check_indicators(codes, codebook, panel, columns,
                                        site_column=site_column)
    ProblemCollector(list(problems)).raise_if_errors()
    return result


__all__ = [
    "ADJUDICATORS", "CODE_COLUMNS", "IndicatorCodes", "check_indicators", "is_adjudicator",
    "load_indicators", "long_frame", "map_case", "read_classification_sheet",
    "read_coding_matrix", "read_long", "read_mapping", "read_raw", "wave_label",
]
