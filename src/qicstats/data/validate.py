"""Validation of a QIC panel (and its units table) against the data contract.

:func:`validate` reads the analyst's tables, checks every rule in one pass, and either returns a
:class:`~qicstats.data.panel.PanelData` (with warnings for legal but risky data) or raises one
:class:`~qicstats.errors.DataValidationError` listing every broken rule.

Rule ids (errors)
-----------------
``file_not_found``, ``empty_file``, ``not_tabular``, ``duplicate_columns``, ``unknown_family``,
``missing_columns``, ``missing_unit``, ``missing_period``, ``unparseable_period``,
``mixed_period_frequency``, ``period_range_too_large``, ``count_not_numeric``,
``count_missing``, ``count_negative``, ``count_fractional``, ``numerator_gt_denominator``,
``exposure_not_numeric``, ``exposure_missing``, ``exposure_not_positive``,
``value_not_numeric``, ``value_missing``, ``se_not_positive``, ``weight_not_positive``,
``outcome_not_binary``, ``duplicate_unit_period``, ``duplicate_unit``,
``not_constant_within_unit``, ``groups_not_nested``, ``unit_not_in_units_table``,
``period_freq_mismatch``, ``unparseable_join_period``, ``unparseable_end_period``,
``end_before_join``, ``missing_join_period``, ``comparison_with_join_period``,
``missing_covariate``, ``covariate_not_numeric``, ``not_identified``, ``single_series`` (a
warning); ``unknown_column_role`` and ``unknown_period_freq`` raise
:class:`~qicstats.errors.ConfigError`.

Rule ids (warnings)
-------------------
``unit_without_data``, ``no_pre_periods``, ``no_post_periods``, ``join_outside_window``,
``all_zero_denominator``, ``short_series``, ``single_collaborative``, ``period_gaps``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from qicstats.data.aggregate import cell_sums
from qicstats.data.columns import FAMILIES, FAMILY_COLUMNS, ColumnMap, infer_family
from qicstats.data.io import NA_TOKENS, _read
from qicstats.data.panel import PanelData, PeriodGrid
from qicstats.data.periods import (
    FREQS,
    coarsen,
    make_grid,
    parse_periods,
    period_label,
    to_grid_index,
)
from qicstats.errors import (
    ConfigError,
    DataValidationError,
    Problem,
    ProblemCollector,
    QicstatsError,
)

#: a period grid longer than this is almost surely a typo (e.g. 20204 for 2024)
MAX_PERIODS = 20_000

#: counts (numerators, denominators, events) above this in one unit and period are almost
#: surely an error (a total, a date or an identifier in the wrong column); far below the
#: 2**53 up to which float64 holds whole numbers exactly and int64 never overflows
MAX_COUNT = 10**9
#: exposures and Gaussian values beyond this magnitude overflow the likelihood's arithmetic
MAX_MAGNITUDE = 1e15

#: name given to participating units' collaborative when the data have no collaborative column
SINGLE_COLLABORATIVE = "(collaborative)"

_FAMILY_ALIASES = {
    "binomial": "binomial", "betabinomial": "betabinomial", "poisson": "poisson",
    "negbinomial": "negbinomial", "negativebinomial": "negbinomial", "nb": "negbinomial",
    "gaussian": "gaussian", "normal": "gaussian",
}
_NA_LOWER = frozenset(t.lower() for t in NA_TOKENS)
_FREQ_WORD = {"integer": "period", "day": "day", "week": "week", "month": "month",
              "quarter": "quarter", "year": "year"}


# ---- small helpers -----------------------------------------------------------------------
@dataclass
class _Table:
    df: pd.DataFrame
    name: str
    line_offset: int | None  # None: examples are index labels

    def rows(self, mask: np.ndarray, n: int = 5) -> list[Any]:
        idx = self.df.index[np.asarray(mask, dtype=bool)][:n]
        if self.line_offset is not None:
            return [int(i) + self.line_offset for i in idx]
        return [i.item() if hasattr(i, "item") else i for i in idx]

    @property
    def row_word(self) -> str:
        return "line" if self.line_offset is not None else "row"


def _norm_name(s: str) -> str:
    return re.sub(r"[\s_\-.]+", "", str(s).lower())


def _suggest(wanted: str, present: Sequence[str]) -> str | None:
    """A present column that is probably ``wanted`` (case/space/underscore or close match)."""
    key = _norm_name(wanted)
    for c in present:
        if _norm_name(c) == key:
            return c
    close = difflib.get_close_matches(wanted.lower(), [str(c).lower() for c in present], n=1,
                                      cutoff=0.75)
    if close:
        for c in present:
            if str(c).lower() == close[0]:
                return c
    close = difflib.get_close_matches(key, [_norm_name(c) for c in present], n=1, cutoff=0.75)
    if close:
        for c in present:
            if _norm_name(c) == close[0]:
                return c
    return None


def _key_text(v: Any) -> str | None:
    """Normalise an identifier (unit, collaborative, site): text, or None when empty."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return None
        if float(v).is_integer():
            return str(int(v))
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    s = str(v).strip()
    if s.lower() in _NA_LOWER:
        return None
    return s


def _factor_keys(s: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Per-row codes into a list of normalised key texts (-1 where empty)."""
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    texts = [_key_text(v) for v in uniq]
    names: list[str] = []
    pos: dict[str, int] = {}
    remap = np.full(len(texts) + 1, -1, dtype=np.int64)
    for i, t in enumerate(texts):
        if t is None:
            continue
        if t not in pos:
            pos[t] = len(names)
            names.append(t)
        remap[i] = pos[t]
    codes = np.asarray(codes, dtype=np.int64)
    return remap[codes], names  # codes -1 index the trailing -1


def _keys(s: pd.Series) -> np.ndarray:
    """Per-row normalised key texts as an object array (None where empty)."""
    codes, names = _factor_keys(s)
    arr = np.array(names + [None], dtype=object)
    return arr[codes]


def _natural_key(s: str) -> tuple:
    parts = re.split(r"(\d+)", s)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts if p) \
        + ((2, 0, s),)


def _to_float(v: Any) -> tuple[float, str]:
    """(value, status) with status 'ok', 'missing' or 'bad'."""
    if v is None or v is pd.NA or v is pd.NaT:
        return np.nan, "missing"
    if isinstance(v, (bool, np.bool_)):
        return float(v), "ok"
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        if np.isnan(f):
            return np.nan, "missing"
        return (f, "ok") if np.isfinite(f) else (np.nan, "bad")
    s = str(v).strip()
    if s.lower() in _NA_LOWER:
        return np.nan, "missing"
    for cand in (s, s.replace(".", "").replace(",", ".") if "," in s else None):
        if cand is None:
            continue
        try:
            f = float(cand)
        except ValueError:
            continue
        return (f, "ok") if np.isfinite(f) else (np.nan, "bad")
    return np.nan, "bad"


def _numeric(s: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, non-numeric mask, missing mask); values NaN where not ok."""
    if s.dtype.kind in "iuf":
        v = s.to_numpy(dtype=float, na_value=np.nan).copy()
        missing = np.isnan(v)
        bad = np.isinf(v)
        v[bad] = np.nan
        return v, bad, missing
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    vals = np.empty(len(uniq) + 1)
    status = np.empty(len(uniq) + 1, dtype=object)
    for i, u in enumerate(uniq):
        vals[i], status[i] = _to_float(u)
    vals[-1], status[-1] = np.nan, "missing"
    codes = np.asarray(codes)
    return vals[codes], status[codes] == "bad", status[codes] == "missing"


_PLAIN = re.compile(r"^[\w.+/:-]+$")


def _cell(v: Any) -> str:
    """A cell for a message: plain names bare, other text quoted (invisible characters
    escaped), missing cells as ``(empty)``, whole floats without ``.0``.
    """
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return "(empty)"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return str(int(f)) if f.is_integer() and abs(f) < 1e16 else f"{f:g}"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    t = str(v)
    return t if _PLAIN.match(t) else repr(t)


def _invisible(name: str) -> bool:
    """Whether a name holds characters that do not show (zero-width, NUL, bidi marks)."""
    return not name.replace(" ", "").isprintable()


def _strip_invisible(name: str) -> str:
    return "".join(ch for ch in name if ch == " " or ch.isprintable())


def _show(values: Iterable[Any], n: int = 3) -> str:
    seen: list[str] = []
    for v in values:
        r = repr(v) if isinstance(v, str) else str(v)
        if r not in seen:
            seen.append(r)
        if len(seen) >= n:
            break
    return ", ".join(seen)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


_SINGULAR = {"have": "has", "are": "is", "appear": "appears", "share": "shares",
             "belong": "belongs", "contain": "contains"}
_RE_ONE = re.compile(r"^(1 [\w ]+?(?: \([^)]*\))?) (have|are|appear|share|belong|contain)\b")


def _grammar(p: Problem) -> Problem:
    """'1 units have' -> '1 unit has' in messages built for the plural."""
    m = _RE_ONE.match(p.message)
    if not m:
        return p
    msg = f"{m[1]} {_SINGULAR[m[2]]}" + p.message[m.end():]
    msg = msg.replace(" their ", " its ", 1) if m[2] == "share" else msg
    return Problem(p.rule, msg, p.file, p.column, p.count, p.examples, p.hint, p.severity)


# ---- the validator -----------------------------------------------------------------------
class _Validator:
    def __init__(self, panel: Any, units: Any, family: str | None, columns: Any,
                 levels: Sequence[str], covariates: Sequence[str], min_periods: int,
                 source_names: Mapping[str, str] | None, freq: str | None = None):
        self.pc = ProblemCollector()
        self.freq = freq
        self.source_names = dict(source_names or {})
        self.cmap = self._column_map(columns)
        self.family_arg = family
        self.levels_arg = tuple(levels or ())
        self.covariates = tuple(dict.fromkeys(covariates or ()))
        self.min_periods = int(min_periods)
        self.panel_in = panel
        self.units_in = units
        self.sources: dict[str, str] = {}

    # -- setup ------------------------------------------------------------------------------
    @staticmethod
    def _column_map(columns: Any) -> ColumnMap:
        if columns is None:
            return ColumnMap()
        if isinstance(columns, ColumnMap):
            return columns
        try:
            return ColumnMap.from_mapping(dict(columns))
        except (KeyError, TypeError, ValueError) as err:
            known = sorted(ColumnMap().as_dict())
            raise ConfigError([Problem(
                "unknown_column_role", f"invalid column mapping: {err}", count=1,
                hint=f"map logical roles to file columns, e.g. {{'unit': 'afdeling'}}; known "
                     f"roles: {', '.join(known)}")]) from None

    def _load(self, obj: Any, role: str) -> _Table | None:
        if obj is None:
            return None
        if isinstance(obj, pd.DataFrame):
            name = self.source_names.get(role, role)
            self.sources[role] = name
            df = obj
            # unit/period held in a (Multi)Index after a groupby: bring them back as columns
            if any(n is not None for n in df.index.names) and not isinstance(
                    df.index, pd.RangeIndex):
                wanted = {self.cmap.unit, self.cmap.period}
                if wanted & {str(n) for n in df.index.names if n is not None}:
                    df = df.reset_index()
            cols = [str(c).replace("\ufeff", "").strip() for c in df.columns]
            if cols != list(df.columns):
                df = df.set_axis(cols, axis=1)
            dup = sorted({c for c in cols if cols.count(c) > 1})
            if dup:
                self.pc.add("duplicate_columns",
                            f"{name} has more than one column named {_show(dup)}",
                            file=name, column=dup[0], count=len(dup), examples=dup,
                            hint="Give every column a unique name.")
                df = df.loc[:, ~pd.Index(cols).duplicated()]
            return _Table(df, name, None)
        if isinstance(obj, (str, os.PathLike)):
            name = self.source_names.get(role, str(obj))
            self.sources[role] = str(obj)
            try:
                r = _read(obj)
            except DataValidationError as err:
                for p in err.problems + err.warnings:
                    self.pc.problems.append(p)
                return None
            except QicstatsError as err:
                self.pc.add("file_not_found", str(err), file=str(obj), count=1,
                            hint=f"Check the path of the {role} table.")
                return None
            return _Table(r.frame, name, r.line_offset)
        raise QicstatsError(f"the {role} table must be a file path or a pandas DataFrame, "
                            f"not {type(obj).__name__}")

    def _family(self, cols: list[str]) -> tuple[str | None, bool]:
        """(family, patient_level)."""
        cm = self.cmap
        fam = self.family_arg
        if fam is not None:
            key = re.sub(r"[\s_\-]+", "", str(fam).lower())
            if key not in _FAMILY_ALIASES:
                self.pc.add("unknown_family", f"unknown outcome family {fam!r}", count=1,
                            hint=f"use one of {', '.join(FAMILIES)}")
                return None, False
            fam = _FAMILY_ALIASES[key]
        else:
            fam = infer_family(cols, cm)
        if fam is None:
            return None, False
        patient = (fam in ("binomial", "betabinomial") and cm.outcome in cols
                   and not (cm.numerator in cols and cm.denominator in cols))
        return fam, patient

    # -- messages ---------------------------------------------------------------------------
    def _missing_columns(self, table: _Table, missing: list[str], logical: Sequence[str | None],
                         context: str, expected: Sequence[str] = ()) -> None:
        present = [str(c) for c in table.df.columns]
        hints = []
        for actual, role in zip(missing, logical):
            sug = _suggest(actual, present)
            if sug is not None:
                if role is not None:
                    hints.append(f"column {sug!r} looks like {actual!r}: rename it or map it "
                                 f"(--map {role}={sug!r} / columns={{'{role}': {sug!r}}})")
                else:
                    hints.append(f"column {sug!r} looks like {actual!r}: rename it")
        exp = f"; expected {', '.join(expected)}" if expected else ""
        shown = present if len(present) <= 20 else present[:20] + ["..."]
        msg = (f"{table.name} lacks column(s) {', '.join(repr(m) for m in missing)} {context}"
               f"{exp}; present: {', '.join(shown)}")
        hint = "; ".join(hints) if hints else (
            "add the column, or map your column names to the roles (--map role=column)")
        self.pc.add("missing_columns", msg, file=table.name, column=", ".join(missing),
                    count=len(missing), examples=missing, hint=hint)

    def _row_detail(self, table: _Table, mask: np.ndarray, column: str,
                    detail: Any = None, n: int = 2) -> str:
        """``line 7: unit A1, period 2022-07, numerator 45`` for the first ``n`` rows."""
        df, cm = table.df, self.cmap
        out = []
        for i in np.flatnonzero(np.asarray(mask, dtype=bool))[:n]:
            lab = df.index[i]
            where = (f"line {int(lab) + table.line_offset}" if table.line_offset is not None
                     else f"row {lab}")
            bits = []
            for col, word in ((cm.unit, "unit"), (cm.period, "period")):
                if col in df.columns and col != column:
                    bits.append(f"{word} {_cell(df[col].iat[i])}")
            if detail is not None:
                bits.append(detail(i))
            elif column in df.columns:
                bits.append(f"{column} {_cell(df[column].iat[i])}")
            out.append(f"{where}: {', '.join(bits)}")
        return "; ".join(out)

    def _roles_share_a_column(self, pt: _Table, roles: list[tuple[str, str]]) -> None:
        """Two roles read from one column (``columns: {numerator: denominator}`` leaves the
        denominator role on its default column ``denominator`` too): the model would see
        the same numbers twice, so it is an error.
        """
        used = dict(roles)
        for lg in ("collaborative", "join_period", "end_period"):
            used.setdefault(lg, getattr(self.cmap, lg))
        by_col: dict[str, list[str]] = {}
        for lg, col in used.items():
            by_col.setdefault(col, []).append(lg)
        for col, lgs in by_col.items():
            if len(lgs) < 2:
                continue
            self.pc.add(
                "column_mapped_twice",
                f"the roles {' and '.join(repr(r) for r in lgs)} would both read column "
                f"{col!r} of {pt.name}", file=pt.name, column=col, count=len(lgs),
                examples=lgs,
                hint="map each role to its own column, e.g. columns: {numerator: events, "
                     "denominator: patients}; a role you do not map reads the column of its "
                     "own name")

    def _invisible_names(self, names: list[str], table: _Table, column: str,
                         what: str) -> None:
        """Names with zero-width, NUL or other invisible characters: an error when two
        names differ by them only (one unit would become two), else a warning.
        """
        odd = [n for n in names if _invisible(n)]
        if not odd:
            return
        plain: dict[str, list[str]] = {}
        for n in names:
            plain.setdefault(_strip_invisible(n), []).append(n)
        clash = [v for v in plain.values() if len(v) > 1]
        if clash:
            first = clash[0]
            self.pc.add("names_differ_by_invisible_characters",
                        f"{_plural(len(clash), what)} appear under names that differ only by "
                        f"invisible characters ({' and '.join(repr(x) for x in first)}), so "
                        f"one {what} would be counted as two", file=table.name, column=column,
                        count=len(clash), examples=[repr(x) for v in clash for x in v],
                        hint="Remove the invisible characters (zero-width spaces, NUL, "
                             "direction marks: often pasted from web pages or Word).")
            return
        self.pc.warn("invisible_characters",
                     f"{_plural(len(odd), what + ' name')} contain invisible or control "
                     f"characters ({', '.join(repr(x) for x in odd[:3])})", file=table.name,
                     column=column, count=len(odd), examples=[repr(x) for x in odd],
                     hint="Remove them (often pasted from web pages or Word): names that "
                          "look the same then differ, e.g. between the panel and the units "
                          "table.")

    def _rowwise(self, rule: str, table: _Table, column: str, mask: np.ndarray, what: str,
                 hint: str, raw: pd.Series | None = None, severity: str = "error",
                 detail: Any = None) -> None:
        n = int(np.count_nonzero(mask))
        if not n:
            return
        vals = f" (e.g. {_show(raw[mask].tolist()[:50])})" if raw is not None else ""
        where = ("examples are file line numbers" if table.line_offset is not None
                 else "examples are row labels")
        rows = self._row_detail(table, mask, column, detail)
        self.pc.add(rule, f"{_plural(n, 'row')} {what}{vals} [{rows}]; {where}",
                    file=table.name, column=column, count=n, examples=table.rows(mask),
                    hint=hint, severity=severity)  # type: ignore[arg-type]

    # -- main -------------------------------------------------------------------------------
    def run(self) -> PanelData:
        pc, cm = self.pc, self.cmap
        pt = self._load(self.panel_in, "panel")
        ut = self._load(self.units_in, "units")
        units_given = self.units_in is not None
        if pt is None:
            pc.problems[:] = [_grammar(p) for p in pc.problems]
            pc.raise_if_errors()
            raise QicstatsError("no panel data given")  # pragma: no cover
        pdf = pt.df
        pcols = [str(c) for c in pdf.columns]

        # ---- family and required panel columns ------------------------------------------
        family, patient = self._family(pcols)
        need: list[tuple[str, str]] = [("unit", cm.unit), ("period", cm.period)]
        optional: list[tuple[str, str]] = []
        if family is not None:
            if patient:
                need.append(("outcome", cm.outcome))
            else:
                req, opt = FAMILY_COLUMNS[family]
                need += [(r, getattr(cm, r)) for r in req]
                optional += [(o, getattr(cm, o)) for o in opt]
        miss = [(lg, a) for lg, a in need if a not in pcols]
        if family is None and "unknown_family" not in {p.rule for p in pc.problems}:
            # columns that are probably the outcome under another spelling?
            guess = None
            for fam, roles in (("binomial", ("numerator", "denominator")),
                               ("poisson", ("count",)), ("gaussian", ("value",)),
                               ("binomial", ("outcome",))):
                if all(_suggest(getattr(cm, r), pcols) for r in roles):
                    guess = (fam, roles)
                    break
            if guess is not None:
                fam, roles = guess
                names = [a for _, a in miss] + [getattr(cm, r) for r in roles]
                self._missing_columns(
                    pt, names, [lg for lg, _ in miss] + list(roles),
                    f"(needed for family {fam}; the family could not be inferred)",
                    expected=[cm.unit, cm.period] + [getattr(cm, r) for r in roles])
            else:
                self._missing_columns(
                    pt, [a for _, a in miss] + ["<outcome>"], [lg for lg, _ in miss] + [None],
                    "(no outcome columns found, so the family cannot be inferred)",
                    expected=["numerator + denominator (binomial)",
                              "count [+ exposure] (poisson)", "value [+ se, weight] (gaussian)",
                              "outcome 0/1 (patient rows)"])
        elif miss:
            exp = [a for _, a in need] + [f"optional {a}" for _, a in optional]
            ctx = "(patient-level rows)" if patient else f"(needed for family {family})"
            self._missing_columns(pt, [a for _, a in miss], [lg for lg, _ in miss], ctx, exp)
        have = {lg for lg, a in need + optional if a in pcols}
        self._roles_share_a_column(pt, need + optional)

        # ---- panel keys and periods ------------------------------------------------------
        n_rows = len(pdf)
        if "unit" in have:
            ucodes, unames = _factor_keys(pdf[cm.unit])
            self._rowwise("missing_unit", pt, cm.unit, ucodes < 0, "have no unit",
                          "Fill in the unit of every row (or delete empty rows).")
            self._invisible_names(unames, pt, cm.unit, "unit")
        else:
            ucodes, unames = np.full(n_rows, -1, dtype=np.int64), []
        grid: PeriodGrid | None = None
        t_ord = np.full(n_rows, np.nan)
        if "period" in have:
            pp = parse_periods(pdf[cm.period])
            raw_p = pdf[cm.period]
            if self.freq is not None and self.freq != pp.freq and pp.freqs_seen:
                try:
                    pp = replace(pp, freq=self.freq,
                                 ordinal=coarsen(pp.ordinal, pp.freq, self.freq))
                except ValueError:
                    pc.add("period_freq_mismatch",
                           f"the periods are {pp.freq} periods, which cannot be turned into "
                           f"the requested {self.freq} periods", file=pt.name,
                           column=cm.period, count=1,
                           hint="Dates aggregate to weeks, months, quarters or years; months "
                                "to quarters or years; quarters to years.")
            empty = np.isnan(pp.ordinal) & ~pp.bad & ~pp.other_freq
            self._rowwise("missing_period", pt, cm.period, empty, "have no period",
                          "Fill in the period of every row.")
            self._rowwise("unparseable_period", pt, cm.period, pp.bad,
                          "have a period that cannot be read",
                          "Write periods as integers, YYYY-MM-DD, YYYY-MM, YYYY-Qn or "
                          "YYYY-Www (one format for the whole file).", raw=raw_p)
            if pp.mixed:
                seen = ", ".join(f"{k}: {v}" for k, v in pp.freqs_seen.items())
                self._rowwise("mixed_period_frequency", pt, cm.period, pp.other_freq,
                              f"have a period in another frequency than the file's "
                              f"{pp.freq} periods (rows per frequency: {seen})",
                              "Use one period format and frequency for the whole dataset.",
                              raw=raw_p)
            t_ord = pp.ordinal
            fin = np.isfinite(t_ord)
            if fin.any():
                span = int(np.nanmax(t_ord) - np.nanmin(t_ord)) + 1
                if span > MAX_PERIODS:
                    lo, hi = np.nanargmin(t_ord), np.nanargmax(t_ord)
                    pc.add("period_range_too_large",
                           f"the periods span {span} {pp.freq} periods (from "
                           f"{period_label(t_ord[lo], pp.freq)} to "
                           f"{period_label(t_ord[hi], pp.freq)}); this is almost surely a typo",
                           file=pt.name, column=cm.period, count=2,
                           examples=pt.rows(np.isin(np.arange(n_rows), [lo, hi])),
                           hint="Check the smallest and largest period values.")
                else:
                    grid = make_grid(t_ord, pp.freq, observed=t_ord[fin & (ucodes >= 0)])
        row_ok = (ucodes >= 0) & np.isfinite(t_ord)

        # ---- outcomes --------------------------------------------------------------------
        out_cols: dict[str, np.ndarray] = {}
        if family is not None and patient and "outcome" in have:
            y, nonnum, missing = _numeric(pdf[cm.outcome])
            notbin = nonnum | missing | ~np.isin(np.nan_to_num(y, nan=-1.0), (0.0, 1.0))
            self._rowwise("outcome_not_binary", pt, cm.outcome, notbin,
                          "have a patient-level outcome that is missing or not 0/1",
                          "Code the outcome 1 (event / recommended care given) or 0; drop "
                          "patients whose outcome is unknown.", raw=pdf[cm.outcome])
            row_ok &= ~notbin
            out_cols["outcome"] = y
        elif family is not None and not patient:
            out_cols = self._check_outcomes(pt, family, have)

        # ---- duplicates (aggregated panels) ---------------------------------------------
        if family is not None and not patient and row_ok.any():
            key = pd.DataFrame({"u": ucodes[row_ok], "t": t_ord[row_ok]})
            dupmask_ok = key.duplicated(keep=False).to_numpy()
            if dupmask_ok.any():
                dmask = np.zeros(n_rows, dtype=bool)
                dmask[np.flatnonzero(row_ok)[dupmask_ok]] = True
                first = np.flatnonzero(dmask)[0]
                same = dmask & (ucodes == ucodes[first]) & (t_ord == t_ord[first])
                word = _FREQ_WORD.get(grid.freq if grid else "integer", "period")
                lab = period_label(t_ord[first], grid.freq) if grid else str(t_ord[first])
                pc.add("duplicate_unit_period",
                       f"{_plural(int(dmask.sum()), 'row')} share their unit and period with "
                       f"another row (e.g. unit {unames[ucodes[first]]!r}, period {lab} on "
                       f"{pt.row_word}s {', '.join(map(str, pt.rows(same, 3)))}); examples "
                       f"are {'file line numbers' if pt.line_offset is not None else 'row labels'}",
                       file=pt.name, column=cm.period, count=int(dmask.sum()),
                       examples=pt.rows(dmask),
                       hint=f"Aggregate them first (one row per unit and {word}, summing "
                            f"numerators and denominators), or the file has two rows for "
                            f"the same {word} by mistake.")

        # ---- unit-level information -----------------------------------------------------
        unit_info = self._unit_level(pt, ut, units_given, ucodes, unames, grid, row_ok)

        # ---- build the panel -------------------------------------------------------------
        panel_df, panel_covs = self._build_panel(pt, family, patient, ucodes, unames, t_ord,
                                                 row_ok, out_cols, unit_info, grid)

        # ---- cross-table warnings and identification --------------------------------------
        if grid is not None and unit_info is not None and panel_df is not None:
            assert family is not None  # _build_panel gives a panel only for a known family
            self._design_checks(panel_df, unit_info, grid, family)
        pc.problems[:] = [_grammar(p) for p in pc.problems]
        pc.raise_if_errors()
        assert grid is not None and unit_info is not None and panel_df is not None
        assert family is not None
        units_df = unit_info["frame"]
        covs = tuple(c for c in self.covariates)
        return PanelData(panel=panel_df, units=units_df, periods=grid, family=family,
                         levels=unit_info["levels"], covariates=covs,
                         sources=dict(self.sources), warnings=tuple(pc.warnings))

    # ---- outcome checks (aggregated panels) ----------------------------------------------
    def _check_outcomes(self, pt: _Table, family: str, have: set[str]) -> dict[str, np.ndarray]:
        cm, pdf = self.cmap, pt.df
        out: dict[str, np.ndarray] = {}
        count_roles = {"binomial": ("numerator", "denominator"),
                       "betabinomial": ("numerator", "denominator"),
                       "poisson": ("count",), "negbinomial": ("count",), "gaussian": ()}[family]
        for role in count_roles:
            if role not in have:
                continue
            col = getattr(cm, role)
            v, bad, miss = _numeric(pdf[col])
            raw = pdf[col]
            self._rowwise("count_not_numeric", pt, col, bad, f"have a non-numeric {role}",
                          "Counts must be whole numbers (no text, units or percent signs).",
                          raw=raw)
            tokens = (pdf.attrs.get("qicstats_na_tokens") or {}).get(col, [])
            shown = (f" (empty, or {' / '.join(repr(t) for t in tokens[:4])}, which is read "
                     f"as missing)") if tokens else ""
            self._rowwise("count_missing", pt, col, miss, f"have no {role}{shown}",
                          "Fill in the count, or drop the row if the period was not measured "
                          "(gaps are allowed)"
                          + (f"; {tokens[0]!r} means 'not available' to qicstats, so a row "
                             f"with it has no {role}" if tokens else "") + ".")
            neg = np.nan_to_num(v, nan=0.0) < 0
            self._rowwise("count_negative", pt, col, neg, f"have a negative {role}",
                          "Counts cannot be negative.", raw=raw)
            big = np.isfinite(v) & (np.abs(v) > MAX_COUNT)
            self._rowwise("count_too_large", pt, col, big,
                          f"have a {role} above {MAX_COUNT:,} in one unit and period",
                          "Such counts are almost surely a mistake (a total over all units, a "
                          "date or an identifier in the count column); give the count of "
                          "each unit and period.", raw=raw)
            frac = np.isfinite(v) & (np.abs(v - np.round(v)) > 1e-9) & ~big
            self._rowwise("count_fractional", pt, col, frac, f"have a fractional {role}",
                          "Counts must be whole numbers; for rates or percentages give the "
                          "numerator and denominator, or use the gaussian family.", raw=raw)
            v = np.where(big, np.nan, v)
            out[role] = v
        if "numerator" in out and "denominator" in out:
            gt = np.nan_to_num(out["numerator"], nan=-1) > np.nan_to_num(out["denominator"],
                                                                         nan=np.inf)
            num_v, den_v = out["numerator"], out["denominator"]
            self._rowwise("numerator_gt_denominator", pt, cm.numerator, gt,
                          "have a numerator larger than the denominator",
                          "Check whether numerator and denominator are swapped, or the "
                          "denominator counts a different population.",
                          detail=lambda i: f"{cm.numerator} {_cell(num_v[i])} > "
                                           f"{cm.denominator} {_cell(den_v[i])}")
        if family in ("poisson", "negbinomial"):
            if "exposure" in have:
                col = cm.exposure
                v, bad, miss = _numeric(pdf[col])
                self._rowwise("exposure_not_numeric", pt, col, bad, "have a non-numeric exposure",
                              "Exposure (e.g. bed-days) must be a positive number.",
                              raw=pdf[col])
                self._rowwise("exposure_missing", pt, col, miss, "have no exposure",
                              "Fill in the exposure (e.g. bed-days) of every row.")
                nonpos = np.isfinite(v) & (v <= 0)
                self._rowwise("exposure_not_positive", pt, col, nonpos,
                              "have an exposure of zero or less",
                              "Exposure must be > 0; drop periods without exposure.",
                              raw=pdf[col])
                big = np.isfinite(v) & (np.abs(v) > MAX_MAGNITUDE)
                self._rowwise("exposure_too_large", pt, col, big,
                              f"have an exposure above {MAX_MAGNITUDE:g}",
                              "Give the exposure in a unit that keeps it moderate (e.g. "
                              "bed-days, not seconds).", raw=pdf[col])
                out["exposure"] = np.where(big, np.nan, v)
            else:
                out["exposure"] = np.ones(len(pdf))
        if family == "gaussian":
            for role in ("value", "se", "weight"):
                if role not in have:
                    continue
                col = getattr(cm, role)
                v, bad, miss = _numeric(pdf[col])
                self._rowwise("value_not_numeric", pt, col, bad, f"have a non-numeric {role}",
                              "Values must be numbers.", raw=pdf[col])
                self._rowwise("value_missing", pt, col, miss, f"have no {role}",
                              "Fill in the value, or drop rows for periods not measured.")
                big = np.isfinite(v) & (np.abs(v) > MAX_MAGNITUDE)
                self._rowwise("value_too_large", pt, col, big,
                              f"have a {role} beyond +-{MAX_MAGNITUDE:g}",
                              "Rescale the outcome (e.g. thousands instead of units): values "
                              "this large overflow the model's arithmetic.", raw=pdf[col])
                v = np.where(big, np.nan, v)
                if role in ("se", "weight"):
                    nonpos = np.isfinite(v) & (v <= 0)
                    self._rowwise(f"{role}_not_positive", pt, col, nonpos,
                                  f"have a {role} of zero or less",
                                  f"The {'standard error' if role == 'se' else 'weight'} "
                                  f"must be > 0.", raw=pdf[col])
                out[role] = v
        return out

    # ---- unit-level columns --------------------------------------------------------------
    def _unit_level(self, pt: _Table, ut: _Table | None, units_given: bool, ucodes: np.ndarray,
                    unames: list[str], grid: PeriodGrid | None,
                    row_ok: np.ndarray) -> dict[str, Any] | None:
        pc, cm = self.pc, self.cmap
        pdf = pt.df
        pcols = set(map(str, pdf.columns))
        udf = ut.df if ut is not None else None
        ucols = set(map(str, udf.columns)) if udf is not None else set()
        if units_given and ut is None:
            return None  # the units file could not be read; already reported
        if ut is not None and cm.unit not in ucols:
            self._missing_columns(ut, [cm.unit], ["unit"], "(the units table needs it)",
                                  [cm.unit, cm.collaborative, cm.join_period,
                                   f"optional {cm.end_period}"])
            return None

        def where(col: str) -> str | None:
            if col in ucols:
                return "units"
            if col in pcols:
                return "panel"
            return None

        # levels: collaborative first when that column exists
        has_collab = where(cm.collaborative) is not None
        levels = [lv for lv in self.levels_arg if lv != "collaborative"]
        if has_collab:
            levels = ["collaborative"] + levels
        elif "collaborative" in self.levels_arg:
            tbl = ut if ut is not None else pt
            sug = _suggest(cm.collaborative, list(tbl.df.columns))
            if sug is not None:
                self._missing_columns(tbl, [cm.collaborative], ["collaborative"],
                                      "(declared as a level)")
            else:
                pc.warn("no_collaborative_column",
                        f"{tbl.name} has no {cm.collaborative!r} column: every unit with a "
                        f"join period is taken to be in one collaborative, "
                        f"{SINGLE_COLLABORATIVE!r}", file=tbl.name, column=cm.collaborative,
                        count=1, examples=[cm.collaborative],
                        hint="Add a collaborative column (empty for comparison units) when "
                             "the units joined more than one collaborative, or map yours "
                             "(--map collaborative=COLUMN).")
        other_levels = [lv for lv in levels if lv != "collaborative"]
        unit_cols: dict[str, str] = {}  # logical -> actual
        if has_collab:
            unit_cols["collaborative"] = cm.collaborative
        unit_cols["join_period"] = cm.join_period
        if where(cm.end_period) is not None:
            unit_cols["end_period"] = cm.end_period
        for lv in other_levels:
            unit_cols[lv] = lv
        unit_covs = [c for c in self.covariates if c in ucols]
        for c in unit_covs:
            unit_cols.setdefault(c, c)

        missing_cols = [(lg, a) for lg, a in unit_cols.items() if where(a) is None]
        missing_cov = [c for c in self.covariates if where(c) is None]
        if missing_cols or missing_cov:
            tbl = ut if ut is not None else pt
            names = [a for _, a in missing_cols] + missing_cov
            roles = [lg if lg in ("join_period", "collaborative") else None
                     for lg, _ in missing_cols] + [None] * len(missing_cov)
            ctx = ("(unit-level: give a units table or put it on the panel, constant within "
                   "unit)" if ut is None else "(unit-level column, needed in the units table)")
            self._missing_columns(tbl, names, roles, ctx)
            if ut is None and any(lg == "join_period" for lg, _ in missing_cols) and not \
                    _suggest(cm.join_period, list(pdf.columns)):
                last = pc.problems[-1]
                pc.problems[-1] = Problem(
                    last.rule, last.message, last.file, last.column, last.count, last.examples,
                    "give a units table (--units / units=) with columns unit, collaborative "
                    "(empty for comparison units) and join_period, or put these columns on the "
                    "panel", last.severity)
        for lg, _a in missing_cols:
            unit_cols.pop(lg)

        # values per unit from the panel (must be constant within unit)
        from_panel = {lg: a for lg, a in unit_cols.items() if where(a) == "panel"}
        per_unit: dict[str, dict[str, Any]] = {}
        src_name: dict[str, str] = {}
        valid_u = ucodes >= 0
        first_row = np.full(len(unames), -1, dtype=np.int64)
        if len(unames):
            order = np.flatnonzero(valid_u)
            uc = ucodes[order]
            firsts = np.flatnonzero(~pd.Series(uc).duplicated().to_numpy())  # hash, no sort
            first_row[uc[firsts]] = order[firsts]
        for lg, a in from_panel.items():
            src_name[lg] = pt.name
            vcodes, vnames = _factor_keys(pdf[a]) if lg != "join_period" and lg != \
                "end_period" else pd.factorize(pdf[a], use_na_sentinel=True)
            vcodes = np.asarray(vcodes)
            pairs = pd.DataFrame({"u": ucodes[valid_u], "v": vcodes[valid_u]}).drop_duplicates()
            nvals = pairs.groupby("u").size()
            bad_units = nvals.index[nvals.to_numpy() > 1].to_numpy()
            if bad_units.size:
                bu = np.array(sorted(bad_units.tolist(), key=lambda i: _natural_key(unames[i])))
                names = [unames[i] for i in bu]
                vals = pairs[pairs["u"] == bu[0]]["v"].to_numpy()
                shown = ", ".join("(empty)" if c < 0 else repr(str(vnames[c])) for c in vals[:4])
                what = ("are in more than one collaborative" if lg == "collaborative"
                        else f"have more than one value of {a!r}")
                pc.add("not_constant_within_unit",
                       f"{_plural(len(names), 'unit')} {what} on the panel (unit {names[0]!r}: "
                       f"{shown})", file=pt.name, column=a, count=len(names), examples=names,
                       hint="A unit-level column must have the same value on every row of a "
                            "unit; a unit cannot belong to two collaboratives (split it into "
                            "two units or correct the rows).")
            vals_first = {}
            for i, r in enumerate(first_row):
                if r < 0:
                    continue
                c = vcodes[r]
                val = None if c < 0 else vnames[c]
                vals_first[unames[i]] = None if _key_text(val) is None else val
            per_unit[lg] = vals_first

        # the units table
        table_units: list[str] | None = None
        if ut is not None:
            assert udf is not None
            tk = _keys(udf[cm.unit])
            self._rowwise("missing_unit", ut, cm.unit, np.array([k is None for k in tk]),
                          "have no unit", "Fill in the unit of every row of the units table.")
            keyser = pd.Series(tk, dtype=object)
            dup = keyser.notna().to_numpy() & keyser.duplicated(keep=False).to_numpy()
            if dup.any():
                dnames = sorted(set(keyser[dup]), key=_natural_key)
                detail = ""
                if cm.collaborative in ucols:
                    ckeys = _keys(udf[cm.collaborative])
                    def line_of(r: int) -> Any:
                        one = np.zeros(len(udf), dtype=bool)
                        one[r] = True
                        return ut.rows(one, 1)[0]

                    for name in dnames:
                        rows = np.flatnonzero(keyser.to_numpy() == name)
                        first_in: dict[Any, int] = {}
                        for r in rows:
                            first_in.setdefault(ckeys[r], int(r))
                        if len(first_in) > 1:
                            places = ", ".join(
                                f"{'(none: comparison)' if c is None else repr(c)} "
                                f"({ut.row_word} {line_of(r)})" for c, r in first_in.items())
                            detail = (f"; unit {name!r} is listed in more than one "
                                      f"collaborative: {places}")
                            break
                pc.add("duplicate_unit",
                       f"{_plural(len(dnames), 'unit')} appear more than once in the units "
                       f"table{detail}", file=ut.name, column=cm.unit, count=len(dnames),
                       examples=dnames,
                       hint="List each unit once; a unit in two collaboratives must be split "
                            "into two units.")
            keep = keyser.notna().to_numpy() & ~keyser.duplicated(keep="first").to_numpy()
            table_units = [k for k in tk[keep]]
            for lg, a in unit_cols.items():
                if where(a) != "units":
                    continue
                src_name[lg] = ut.name
                col = udf[a]
                if lg in ("join_period", "end_period"):
                    vals = col.to_numpy(dtype=object)[keep]
                    vals = [None if _key_text(v) is None else v for v in vals]
                else:
                    vals = _keys(col)[keep]
                per_unit[lg] = dict(zip(table_units, vals))

        # the units universe
        panel_units = sorted({unames[i] for i in np.unique(ucodes[valid_u])}, key=_natural_key)
        if table_units is not None:
            tset = set(table_units)
            not_in = [u for u in panel_units if u not in tset]
            if not_in:
                assert ut is not None
                pc.add("unit_not_in_units_table",
                       f"{_plural(len(not_in), 'panel unit')} are missing from the units table "
                       f"{ut.name}", file=pt.name, column=cm.unit, count=len(not_in),
                       examples=not_in,
                       hint="Add them to the units table (with an empty collaborative and "
                            "join period for comparison units), or check the spelling.")
            pset = set(panel_units)
            no_data = sorted([u for u in table_units if u not in pset], key=_natural_key)
            if no_data:
                assert ut is not None
                pc.warn("unit_without_data",
                        f"{_plural(len(no_data), 'unit')} of the units table have no panel "
                        f"rows and are left out", file=ut.name, column=cm.unit,
                        count=len(no_data), examples=no_data,
                        hint="Check the spelling of unit names in both tables.")
            final_units = [u for u in panel_units if u in tset]
        else:
            final_units = panel_units

        return self._unit_frame(final_units, per_unit, src_name, unit_cols, levels,
                                other_levels, unit_covs, has_collab, grid)

    def _unit_frame(self, final_units: list[str], per_unit: dict[str, dict[str, Any]],
                    src_name: dict[str, str], unit_cols: dict[str, str], levels: list[str],
                    other_levels: list[str], unit_covs: list[str], has_collab: bool,
                    grid: PeriodGrid | None) -> dict[str, Any]:
        pc, cm = self.pc, self.cmap
        n = len(final_units)

        def col(lg: str) -> list[Any]:
            d = per_unit.get(lg, {})
            return [d.get(u) for u in final_units]

        units_arr = np.array(final_units, dtype=object)
        join_raw = col("join_period")
        end_raw = col("end_period")
        join_given = np.array([v is not None for v in join_raw], dtype=bool)

        # collaborative / participation
        if has_collab:
            collab = np.array(col("collaborative"), dtype=object)
            part = np.array([c is not None for c in collab], dtype=bool)
            src = src_name.get("collaborative", "")
            m = part & ~join_given
            if m.any():
                pc.add("missing_join_period",
                       f"{_plural(int(m.sum()), 'participating unit')} (with a collaborative) "
                       f"have no join period", file=src_name.get("join_period", src),
                       column=cm.join_period, count=int(m.sum()),
                       examples=units_arr[m].tolist(),
                       hint="Give the period each unit joined its collaborative; units that "
                            "never joined are comparison units: leave their collaborative "
                            "empty.")
            m = ~part & join_given
            if m.any():
                pc.add("comparison_with_join_period",
                       f"{_plural(int(m.sum()), 'comparison unit')} (no collaborative) have a "
                       f"join period", file=src_name.get("join_period", src),
                       column=cm.join_period, count=int(m.sum()),
                       examples=units_arr[m].tolist(),
                       hint="Fill in the collaborative of units that joined one, or clear the "
                            "join period of comparison units.")
        else:
            part = join_given.copy()
            collab = np.array([SINGLE_COLLABORATIVE if p else None for p in part], dtype=object)

        # join and end periods on the grid
        join_t = np.full(n, np.nan)
        end_t = np.full(n, np.nan)
        join_lab: list[str | None] = [None] * n
        end_lab: list[str | None] = [None] * n
        bad_join = np.zeros(n, dtype=bool)
        if grid is not None:
            for lg, raw, rule in (("join_period", join_raw, "unparseable_join_period"),
                                  ("end_period", end_raw, "unparseable_end_period")):
                if lg not in unit_cols or n == 0:
                    continue
                idx, bad = to_grid_index(pd.Series(raw, dtype=object), grid)
                if bad.any():
                    word = "join" if lg == "join_period" else "end"
                    shown = _show([raw[i] for i in np.flatnonzero(bad)])
                    pc.add(rule,
                           f"{_plural(int(bad.sum()), 'unit')} have a {word} period that is not "
                           f"a {grid.freq} period like the panel's ({shown})",
                           file=src_name.get(lg), column=unit_cols[lg], count=int(bad.sum()),
                           examples=units_arr[bad].tolist(),
                           hint=f"Write {word} periods in the panel's format, e.g. "
                                f"{grid.labels[0]!r}.")
                if lg == "join_period":
                    join_t, bad_join = idx, bad
                else:
                    end_t = idx
            for i in range(n):
                if np.isfinite(join_t[i]):
                    join_lab[i] = period_label(join_t[i] + grid.values[0], grid.freq)
                if np.isfinite(end_t[i]):
                    end_lab[i] = period_label(end_t[i] + grid.values[0], grid.freq)
            m = np.isfinite(join_t) & np.isfinite(end_t) & (end_t < join_t)
            if m.any():
                pc.add("end_before_join",
                       f"{_plural(int(m.sum()), 'unit')} have an end period before their join "
                       f"period", file=src_name.get("end_period"), column=cm.end_period,
                       count=int(m.sum()), examples=units_arr[m].tolist(),
                       hint="Check that join and end periods are not swapped.")

        # grouping levels: fill empty intermediate levels with the unit name, check nesting
        level_vals: dict[str, np.ndarray] = {}
        for lv in other_levels:
            if lv not in unit_cols:
                continue
            vals = np.array(col(lv), dtype=object)
            empty = np.array([v is None for v in vals], dtype=bool)
            vals[empty] = units_arr[empty]
            level_vals[lv] = vals
        chain = [("collaborative", collab)] if has_collab else []
        chain += [(lv, level_vals[lv]) for lv in other_levels if lv in level_vals]
        for (outer, ov), (inner, iv) in zip(chain, chain[1:]):
            groups: dict[str, set[str]] = {}
            for o, i in zip(ov, iv):
                if o is not None:
                    groups.setdefault(i, set()).add(o)
            bad_inner = sorted([k for k, s in groups.items() if len(s) > 1], key=_natural_key)
            if bad_inner:
                first = bad_inner[0]
                pc.add("groups_not_nested",
                       f"{_plural(len(bad_inner), inner)} belong to more than one {outer} "
                       f"({inner} {first!r} is in "
                       f"{', '.join(repr(x) for x in sorted(groups[first], key=_natural_key))})",
                       file=src_name.get(inner), column=inner, count=len(bad_inner),
                       examples=bad_inner,
                       hint=f"Levels must nest: each {inner} in one {outer}. If these are "
                            f"different {inner}s with the same name, give them unique names "
                            f"(e.g. prefixed with the {outer}).")

        # unit covariates
        cov_vals: dict[str, pd.Series] = {}
        for c in unit_covs:
            raw = pd.Series(col(c), dtype=object)
            v, bad, miss = _numeric(raw)
            if miss.any():
                pc.add("missing_covariate",
                       f"{_plural(int(miss.sum()), 'unit')} have no value of covariate {c!r}",
                       file=src_name.get(c), column=c, count=int(miss.sum()),
                       examples=units_arr[miss].tolist(),
                       hint="Fill in the covariate for every unit, or leave it out of the "
                            "analysis.")
            if bad.any():
                cov_vals[c] = pd.Series([None if x is None else str(x) for x in raw],
                                        dtype="string")
            else:
                cov_vals[c] = pd.Series(v, dtype="float64")

        frame = pd.DataFrame({
            "unit": pd.Series(final_units, dtype="string"),
            "collaborative": pd.Series(list(collab), dtype="string"),
            "join_period": pd.Series(join_lab, dtype="string"),
            "join_t": pd.array([None if not np.isfinite(x) else int(x) for x in join_t],
                               dtype="Int64"),
            "end_period": pd.Series(end_lab, dtype="string"),
            "end_t": pd.array([None if not np.isfinite(x) else int(x) for x in end_t],
                              dtype="Int64"),
        })
        for lv in other_levels:
            if lv in level_vals:
                frame[lv] = pd.Series(list(level_vals[lv]), dtype="string")
        for c in unit_covs:
            frame[c] = cov_vals[c].array
        return {"frame": frame, "levels": tuple(levels), "participating": part,
                "has_join": "join_period" in unit_cols,
                "has_collab": has_collab, "bad_join": bad_join, "join_given": join_given}

    # ---- panel frame ---------------------------------------------------------------------
    def _build_panel(self, pt: _Table, family: str | None, patient: bool, ucodes: np.ndarray,
                     unames: list[str], t_ord: np.ndarray, row_ok: np.ndarray,
                     out_cols: dict[str, np.ndarray], unit_info: dict[str, Any] | None,
                     grid: PeriodGrid | None) -> tuple[pd.DataFrame | None, list[str]]:
        if family is None or grid is None or unit_info is None:
            return None, []
        pdf = pt.df
        ucols = set(unit_info["frame"].columns)
        panel_covs = [c for c in self.covariates if c not in ucols and c in pdf.columns]
        final = unit_info["frame"]["unit"].to_numpy(dtype=object)
        upos = {u: i for i, u in enumerate(final)}
        code_to_pos = np.array([upos.get(u, -1) for u in unames] + [-1], dtype=np.int64)
        pos = code_to_pos[ucodes]
        keep = row_ok & (pos >= 0)
        t = (t_ord - grid.values[0])

        cov_data: dict[str, np.ndarray] = {}
        cov_text: set[str] = set()
        for c in panel_covs:
            v, bad, miss = _numeric(pdf[c])
            self._rowwise("missing_covariate", pt, c, miss, f"have no value of covariate {c!r}",
                          "Fill in the covariate on every row, or leave it out of the analysis.")
            if bad.any():
                if patient:
                    self._rowwise("covariate_not_numeric", pt, c, bad,
                                  f"have a non-numeric patient-level covariate {c!r}",
                                  "Patient-level covariates are averaged per unit and period "
                                  "and must be numbers (code categories as 0/1).",
                                  raw=pdf[c])
                cov_text.add(c)
                cov_data[c] = _keys(pdf[c])
            else:
                cov_data[c] = v

        if patient:
            # unit positions and grid indices are codes already: sum straight into cells
            # (10 million rows in a fraction of a second; no frame, no factorisation)
            au, at, anum, aden = cell_sums(pos[keep], t[keep].astype(np.int64),
                                           out_cols["outcome"][keep], len(final), grid.T)
            data = {"u": au, "t": at, "numerator": anum, "denominator": aden}
            if panel_covs:
                cov_frame = pd.DataFrame({"unit": pos[keep], "t": t[keep].astype(np.int64)})
                for c in panel_covs:
                    if c not in cov_text:
                        cov_frame[c] = cov_data[c][keep]
                means = cov_frame.groupby(["unit", "t"], sort=True).mean()
                idx = pd.MultiIndex.from_arrays([data["u"], data["t"]])
                for c in panel_covs:
                    if c not in cov_text:
                        data[c] = means[c].reindex(idx).to_numpy()
            df = pd.DataFrame(data)
        else:
            data = {"u": pos[keep], "t": t[keep].astype(np.int64)}
            for role, v in out_cols.items():
                data[role] = v[keep]
            for c in panel_covs:
                data[c] = cov_data[c][keep]
            df = pd.DataFrame(data)
        df = df.sort_values(["u", "t"], kind="stable", ignore_index=True)
        out = pd.DataFrame({
            "unit": pd.Series(final[df["u"].to_numpy()] if len(df) else [], dtype="string"),
            "period": pd.Series([grid.labels[i] for i in df["t"].to_numpy()], dtype="string"),
            "t": df["t"].to_numpy(np.int64),
        })
        int_roles = {"numerator", "denominator", "count"}
        for role in ("numerator", "denominator", "count", "exposure", "value", "se", "weight"):
            if role in df.columns:
                v = df[role].to_numpy(dtype=float)
                if role in int_roles and np.isfinite(v).all():
                    out[role] = np.rint(v).astype(np.int64)
                else:
                    out[role] = v
        for c in panel_covs:
            if c not in df.columns:
                continue  # non-numeric patient-level covariate: reported above
            if c in cov_text:
                out[c] = pd.Series(df[c].to_numpy(dtype=object), dtype="string")
            else:
                out[c] = df[c].to_numpy(dtype=float)
        return out, panel_covs

    # ---- design-level checks -------------------------------------------------------------
    def _design_checks(self, panel: pd.DataFrame, info: dict[str, Any], grid: PeriodGrid,
                       family: str) -> None:
        pc = self.pc
        units = info["frame"]
        names = units["unit"].to_numpy(dtype=object)
        ufile = self.sources.get("units", self.sources.get("panel"))
        g = panel.groupby("unit", sort=False)["t"]
        first = g.min().reindex(names).to_numpy(dtype=float)
        last = g.max().reindex(names).to_numpy(dtype=float)
        nobs = g.nunique().reindex(names).fillna(0).to_numpy(dtype=int)
        join = units["join_t"].to_numpy(dtype=float, na_value=np.nan)
        part = info["participating"]
        has_join = np.isfinite(join)

        m = part & has_join & (join <= first)
        if m.any():
            pc.warn("no_pre_periods",
                    f"{_plural(int(m.sum()), 'participating unit')} have no periods before "
                    f"joining (joined at or before their first observed period)", file=ufile,
                    column=self.cmap.join_period, count=int(m.sum()),
                    examples=names[m].tolist(),
                    hint="Their baseline is learned only from other units; check the join "
                         "periods.")
        m = part & has_join & (join > last)
        if m.any():
            pc.warn("no_post_periods",
                    f"{_plural(int(m.sum()), 'participating unit')} have no periods after "
                    f"joining (joined after their last observed period)", file=ufile,
                    column=self.cmap.join_period, count=int(m.sum()),
                    examples=names[m].tolist(),
                    hint="They contribute nothing to the effect estimate; check the join "
                         "periods.")
        m = has_join & ((join < 0) | (join > grid.T - 1))
        if m.any():
            pc.warn("join_outside_window",
                    f"{_plural(int(m.sum()), 'unit')} joined outside the data window "
                    f"{grid.labels[0]}..{grid.labels[-1]}", file=ufile,
                    column=self.cmap.join_period, count=int(m.sum()),
                    examples=names[m].tolist(),
                    hint="Legal (join before the data start / after the end), but check it.")
        if family in ("binomial", "betabinomial") and "denominator" in panel.columns:
            tot = panel.groupby("unit", sort=False)["denominator"].sum().reindex(names)
            m = (tot.to_numpy(dtype=float) == 0)
            if m.any():
                pc.warn("all_zero_denominator",
                        f"{_plural(int(m.sum()), 'unit')} have a denominator of zero in every "
                        f"period", file=self.sources.get("panel"), column=self.cmap.denominator,
                        count=int(m.sum()), examples=names[m].tolist(),
                        hint="These units carry no information about the outcome.")
        m = nobs < self.min_periods
        if m.any():
            pc.warn("short_series",
                    f"{_plural(int(m.sum()), 'unit')} have fewer than {self.min_periods} "
                    f"observed periods", file=self.sources.get("panel"), column=self.cmap.period,
                    count=int(m.sum()), examples=names[m].tolist(),
                    hint="Short series inform the trend and change estimates little.")
        if info["has_collab"]:
            collabs = sorted(units["collaborative"].dropna().unique().tolist())
            if len(collabs) == 1:
                pc.warn("single_collaborative",
                        f"the data have a single collaborative ({collabs[0]!r}): its variation "
                        f"between collaboratives cannot be estimated", file=ufile,
                        column=self.cmap.collaborative, count=1, examples=collabs,
                        hint="Drop 'collaborative' from the model's levels or fix its SD.")
        if grid.gaps:
            shown = ", ".join(grid.gaps[:24]) + (" ..." if len(grid.gaps) > 24 else "")
            pc.warn("period_gaps",
                    f"{_plural(len(grid.gaps), 'period')} of the grid {grid.labels[0]}.."
                    f"{grid.labels[-1]} have no data: {shown}", file=self.sources.get("panel"),
                    column=self.cmap.period, count=len(grid.gaps), examples=list(grid.gaps),
                    hint="Gaps are allowed; check that no export step dropped them.")
        # identification: needs comparison units or staggered joins
        join_errors = {"missing_join_period", "comparison_with_join_period",
                       "unparseable_join_period"} & {p.rule for p in pc.errors}
        self._information_checks(panel, names, part, join, family, ufile, bool(join_errors),
                                 grid)
        if not join_errors and info["has_join"]:
            n_comp = int((~part).sum())
            joins = np.unique(join[part & has_join])
            if not part.any():
                pc.add("not_identified",
                       "no unit has joined a collaborative (every unit is a comparison unit), "
                       "so there is no improvement to estimate",
                       file=ufile, column=self.cmap.join_period, count=len(names),
                       hint="Give participating units a collaborative and a join period.")
            elif n_comp == 0 and joins.size == 1:
                lab = period_label(joins[0] + grid.values[0], grid.freq)
                pc.warn("single_series",
                        f"there are no comparison units and every unit joins at the same "
                        f"period ({lab}): a single-series interrupted time series, in which "
                        f"the effect is separated from the secular trend only by "
                        f"extrapolating a parametric trend fitted to the periods before "
                        f"{lab}", file=ufile, column=self.cmap.join_period,
                        count=int(part.sum()), examples=names[part].tolist(),
                        hint="model.trend: linear (the default `auto` chooses it, with "
                             "seasonality for monthly or quarterly data); comparison units "
                             "(units that never joined) would make the estimate far less "
                             "dependent on that assumption.")

    def _information_checks(self, panel: pd.DataFrame, names: np.ndarray, part: np.ndarray,
                            join: np.ndarray, family: str, ufile: str | None,
                            join_errors: bool, grid: PeriodGrid) -> None:
        """Data that would leave the result to the prior: every denominator 0, or no
        participating unit observed after joining (every join after its data end).
        """
        pc, cm = self.pc, self.cmap
        if any(p.rule.startswith(("count_", "exposure_", "value_", "outcome_"))
               for p in pc.errors):
            return  # unusable outcome values are reported already
        binom = family in ("binomial", "betabinomial") and "denominator" in panel.columns
        if binom and len(panel) and float(panel["denominator"].sum()) == 0:
            pc.add("no_information",
                   f"every denominator is 0 ({_plural(len(panel), 'row')}): the data say "
                   f"nothing about the outcome, so any result would be the prior",
                   file=self.sources.get("panel"), column=cm.denominator, count=len(panel),
                   hint="Check the denominator column (is it the right one? was it exported "
                        "as 0 instead of the number of patients?).")
            return
        if join_errors or not part.any():
            return
        jmap = pd.Series(join, index=pd.Index(names, dtype=object))
        pj = jmap.reindex(panel["unit"].astype(object).to_numpy()).to_numpy(dtype=float)
        pp = pd.Series(part, index=pd.Index(names, dtype=object)).reindex(
            panel["unit"].astype(object).to_numpy()).fillna(False).to_numpy(dtype=bool)
        post = pp & np.isfinite(pj) & (panel["t"].to_numpy() >= pj)
        informative = post & (panel["denominator"].to_numpy(dtype=float) > 0) if binom \
            else post
        if informative.any():
            return
        fin = part & np.isfinite(join)
        if not fin.any():
            return
        last = panel.groupby("unit", sort=False)["t"].max().reindex(names).to_numpy(dtype=float)
        i = int(np.flatnonzero(fin)[0])
        jl = period_label(join[i] + grid.values[0], grid.freq)
        ll = grid.labels[int(last[i])] if np.isfinite(last[i]) else "(none)"
        why = ("their periods after joining all have a denominator of 0" if post.any()
               else "every participating unit joins after its last observed period")
        pc.add("no_post_join_data",
               f"no participating unit has data after joining ({why}; e.g. unit "
               f"{names[i]!r} joins {jl}, last observed {ll}): there is no improvement to "
               f"estimate", file=ufile, column=cm.join_period, count=int(fin.sum()),
               examples=names[fin].tolist(),
               hint="Check the join periods (a wrong year?) and that the panel includes the "
                    "periods after joining.")


def validate(panel: Any, units: Any = None, *, family: str | None = None,
             columns: ColumnMap | Mapping[str, str] | None = None,
             levels: Sequence[str] = ("collaborative",), covariates: Sequence[str] = (),
             min_periods: int = 6,
             source_names: Mapping[str, str] | None = None,
             freq: str | None = None) -> PanelData:
    """Validate a QIC panel (and units table) and return it as :class:`PanelData`.

    Parameters
    ----------
    panel : path or DataFrame
        One row per unit and period (or one 0/1 ``outcome`` row per patient, aggregated to
        numerator/denominator). Unit-level columns (collaborative, join_period, grouping
        levels, unit covariates) may be given here when constant within unit. Never modified.
    units : path or DataFrame, optional
        One row per unit: ``unit``, ``collaborative`` (empty = comparison unit),
        ``join_period`` (empty for comparison units), optional ``end_period``, grouping level
        columns, unit covariates. Never modified.
    family : str, optional
        ``binomial``, ``betabinomial``, ``poisson``, ``negbinomial`` or ``gaussian``; inferred
        from the outcome columns when omitted.
    columns : ColumnMap or dict, optional
        File column names per logical role (``{"unit": "afdeling"}``).
    levels : sequence of str
        Grouping columns above the unit, outermost first. ``"collaborative"`` is put first
        whenever the data have a collaborative column, and dropped when they have none (then
        participating units are those with a join period, under the collaborative name
        ``"(collaborative)"``).
    covariates : sequence of str
        Covariate columns: unit covariates when in the units table, else panel covariates
        (averaged per unit-period for patient-level rows).
    min_periods : int
        Units with fewer observed periods are warned about (``short_series``).
    source_names : dict, optional
        Display names ``{"panel": ..., "units": ...}`` for messages (defaults: the file path,
        or ``"panel"`` / ``"units"`` for DataFrames).
    freq : {"week", "month", "quarter", "year"}, optional
        Aggregate the periods to this frequency (e.g. patient admission dates to months);
        default: the frequency the period values imply.

    Returns
    -------
    PanelData
        Panel sorted by unit then ``t`` with logical column names and canonical period labels;
        units table with ``join_t``/``end_t`` grid indices and every level filled; warnings
        attached.

    Raises
    ------
    DataValidationError
        Listing every broken rule (see the module docstring for rule ids).
    ConfigError
        An invalid ``columns`` mapping.
    """
    if freq is not None and freq not in FREQS:
        raise ConfigError([Problem("unknown_period_freq", f"unknown period frequency {freq!r}",
                                   count=1, hint=f"use one of {', '.join(FREQS)}")])
    v = _Validator(panel, units, family, columns, levels, covariates, min_periods, source_names,
                   freq)
    return v.run()


__all__ = ["MAX_PERIODS", "SINGLE_COLLABORATIVE", "validate"]
