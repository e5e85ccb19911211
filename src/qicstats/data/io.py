"""Reading analysts' tables: CSV in any common dialect, Parquet and Excel.

:func:`read_table` sniffs the delimiter (``,`` ``;`` tab ``|``) and the encoding (UTF-8, UTF-8
with BOM, UTF-16 with BOM, cp1252/Latin-1 as Danish Excel writes them), reads every cell as
text and then turns columns that are numbers throughout into numbers (with a decimal comma where
the delimiter is not a comma).  Columns holding identifiers with leading zeros (``"007"``) stay
text.  Blank rows are dropped but the frame keeps the original 0-based data-row index, so data
row ``i`` is file line ``i + 2`` (the header is line 1) in messages.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qicstats.errors import DataValidationError, Problem, QicstatsError

#: cell texts read as missing (pandas' defaults plus SAS/SPSS's ".")
NA_TOKENS: frozenset[str] = frozenset({
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", ".", "#NV",
})

DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 64 * 1024
_LEADING_ZERO = re.compile(r"^[+-]?0\d")
_EXCEL_SUFFIXES = {".xlsx", ".xlsm", ".xls"}
_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}


@dataclass(frozen=True)
class _Read:
    """A table as read, with how its rows map to file lines."""

    frame: pd.DataFrame
    #: add to the 0-based row index to get the 1-based file line (None: no lines, e.g. Parquet)
    line_offset: int | None
    kind: str  # "csv", "excel", "parquet"


def _fail(rule: str, path: Path, message: str, hint: str) -> DataValidationError:
    return DataValidationError([Problem(rule, message, file=str(path), hint=hint)])


def read_table(path: str | os.PathLike[str], *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a CSV, Parquet or Excel table robustly, keeping the values as written.

    Parameters
    ----------
    path : str or path-like
        ``.csv``/``.tsv``/``.txt`` (any of ``,`` ``;`` tab ``|`` as delimiter; UTF-8 with or
        without BOM, UTF-16 with BOM, or cp1252/Latin-1; ``;``-delimited files may use a decimal
        comma), ``.parquet``, or ``.xlsx``. The format is recognised from the file's first bytes,
        so a mislabelled file is still read.
    sheet : str or int, optional
        Excel sheet name or 0-based position (default: the first sheet).

    Returns
    -------
    DataFrame
        Header names stripped of BOM and surrounding whitespace; cells stripped of surrounding
        whitespace; columns that are numbers throughout converted to ``int64``/``float64``;
        everything else text (``str``) with missing cells as ``NaN``. Blank rows are dropped and
        the index keeps each row's 0-based data-row number (file line = index + 2).

    Raises
    ------
    QicstatsError
        The file does not exist or cannot be opened.
    DataValidationError
        Rule ``empty_file`` (no bytes, only a header, or only blank rows) or ``not_tabular``
        (binary content, no delimiter, ragged rows, unreadable Excel/Parquet).
    """
    return _read(path, sheet=sheet).frame


# ------------------------------------------------------------------------------------------
def _read(path: str | os.PathLike[str], *, sheet: str | int | None = None) -> _Read:
    p = Path(path)
    if not p.exists():
        raise QicstatsError(f"file not found: {p}")
    if p.is_dir():
        raise QicstatsError(f"{p} is a folder, not a file")
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        raise QicstatsError(f"cannot open {p}: {err.strerror or err}") from None

    suffix = p.suffix.lower()
    if head.startswith(b"PAR1") or (suffix in _PARQUET_SUFFIXES and head):
        return _read_parquet(p)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"\xd0\xcf\x11\xe0") or (
            suffix in _EXCEL_SUFFIXES and head):
        return _read_excel(p, sheet)
    return _read_csv(p)


def _finish(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Clean header names, drop blank rows/unnamed blank columns, convert numeric columns."""
    df.columns = [_clean_header(c) for c in df.columns]
    # columns without a header and without data (trailing delimiters in Excel exports)
    drop = [c for c in df.columns
            if (c == "" or c.startswith("Unnamed:")) and _is_blank(df[c]).all()]
    if drop:
        df = df.drop(columns=drop)
    if df.shape[1] == 0:
        raise _fail("empty_file", path, f"{path.name} has no columns",
                    "Export the table with a header row naming its columns.")
    blank = np.logical_and.reduce([_is_blank(df[c]).to_numpy() for c in df.columns])
    if blank.all():
        raise _fail("empty_file", path,
                    f"{path.name} has a header but no data rows",
                    "Check that the right file (or sheet) was exported.")
    if blank.any():
        df = df.loc[~blank]
    return df


def _clean_header(c: object) -> str:
    s = "" if c is None else str(c)
    return s.replace("\ufeff", "").strip()


def _is_blank(s: pd.Series) -> pd.Series:
    if s.dtype.kind in "biufcmM":
        return s.isna()
    codes, uniq = pd.factorize(s, use_na_sentinel=True)
    blank_u = np.append([_key_blank(v) for v in uniq], True)
    return pd.Series(blank_u[np.asarray(codes)], index=s.index)


def _key_blank(v: object) -> bool:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return True
    return isinstance(v, str) and v.strip() in NA_TOKENS


# ---- CSV ---------------------------------------------------------------------------------
def _decode(raw: bytes, path: Path) -> tuple[str, str]:
    """Return (text, encoding) or raise ``not_tabular`` for binary content."""
    if raw.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc = "utf-16"
    else:
        enc = ""
    if not enc and b"\x00" in raw[:_SAMPLE_BYTES]:
        raise _fail("not_tabular", path,
                    f"{path.name} looks like a binary file, not a table",
                    "Export the data as CSV (UTF-8), Excel (.xlsx) or Parquet.")
    candidates = [enc] if enc else ["utf-8", "cp1252", "latin-1"]
    for cand in candidates:
        try:
            text = raw.decode(cand)
        except UnicodeDecodeError:
            continue
        return text, cand
    raise _fail("not_tabular", path, f"{path.name} could not be decoded as text",
                "Save the file as CSV UTF-8.")


def _field_counts(sample_lines: list[str], delim: str) -> list[int]:
    try:
        return [len(r) for r in csv.reader(sample_lines, delimiter=delim) if r]
    except csv.Error:
        return []


def _score(sample_lines: list[str], delim: str) -> tuple[float, int]:
    """(share of sample rows with the header's field count, field count)."""
    counts = _field_counts(sample_lines, delim)
    if not counts or counts[0] < 2:
        return (0.0, 0)
    same = sum(c == counts[0] for c in counts) / len(counts)
    return (same, counts[0])


def _sniff_delimiter(text: str) -> str | None:
    """csv.Sniffer on a sample, checked against row-length consistency; then a scored fallback."""
    lines = [ln for ln in text[:_SAMPLE_BYTES].splitlines() if ln.strip()]
    if len(text) > _SAMPLE_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last sampled line may be cut
    lines = lines[:200]
    if not lines:
        return None
    sniffed: str | None = None
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines), delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = None
    scores = {d: _score(lines, d) for d in DELIMITERS}
    if sniffed in scores and scores[sniffed][0] >= 0.9 and scores[sniffed][1] >= 2:
        return sniffed
    # fallback: the delimiter giving the most consistent rows, then the most fields, then the
    # usual order , ; tab |
    best = max(DELIMITERS, key=lambda d: (scores[d][0] >= 0.9, scores[d][1] >= 2,
                                          scores[d][0], scores[d][1], -DELIMITERS.index(d)))
    return best if scores[best][1] >= 2 else None


def _looks_binary(text: str) -> bool:
    sample = text[:_SAMPLE_BYTES]
    if not sample:
        return False
    ctrl = sum(1 for ch in sample if (ord(ch) < 32 and ch not in "\t\r\n") or ch == "\x7f")
    return ctrl / len(sample) > 0.01


def _read_csv(path: Path) -> _Read:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise QicstatsError(f"cannot read {path}: {err.strerror or err}") from None
    if not raw.strip():
        raise _fail("empty_file", path, f"{path.name} is empty",
                    "Check that the export wrote data; the file has no bytes.")
    text, _enc = _decode(raw, path)
    if _looks_binary(text):
        raise _fail("not_tabular", path, f"{path.name} looks like a binary file, not a table",
                    "Export the data as CSV (UTF-8), Excel (.xlsx) or Parquet.")
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise _fail("empty_file", path, f"{path.name} is empty",
                    "Check that the export wrote data.")
    delim = _sniff_delimiter(text)
    if delim is None:
        first = text.strip().splitlines()[0][:60]
        raise _fail("not_tabular", path,
                    f"{path.name} does not look like a table: no column delimiter "
                    f"(comma, semicolon, tab or |) found in its first line ({first!r})",
                    "Save the table as CSV with a header row, or as .xlsx/.parquet.")
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, keep_default_na=False,
                         na_filter=False, skip_blank_lines=False, engine="c")
    except (pd.errors.ParserError, csv.Error, ValueError) as err:
        msg = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise _fail("not_tabular", path,
                    f"{path.name} could not be read as a '{_delim_name(delim)}'-delimited "
                    f"table: {msg}",
                    "Every row must have the same number of fields as the header; quote "
                    "values that contain the delimiter.") from None
    except pd.errors.EmptyDataError:
        raise _fail("empty_file", path, f"{path.name} is empty", "") from None
    if df.shape[0] == 0:
        raise _fail("empty_file", path, f"{path.name} has a header but no data rows",
                    "Check that the export wrote the data rows.")
    decimal_comma = delim != ","
    # strips cells, turns missing tokens into NaN and number columns into numbers
    df = df.apply(lambda s: convert_numeric(s, decimal_comma=decimal_comma))
    df = _finish(df, path)
    return _Read(df, 2, "csv")


def _delim_name(d: str) -> str:
    return {"\t": "tab"}.get(d, d)


def convert_numeric(s: pd.Series, *, decimal_comma: bool = False) -> pd.Series:
    """Return ``s`` as numbers if every non-missing cell is a number, else ``s`` as text.

    Missing tokens (``""``, ``NA``, ...) become ``NaN``. Columns where a value has a leading
    zero (``"007"``) are identifiers and stay text. With ``decimal_comma`` a value such as
    ``"1,5"`` or ``"1.234,5"`` is read as 1.5 / 1234.5. Whole numbers without missing cells
    become ``int64``; others ``float64``.
    """
    if s.dtype.kind in "biufcmM":
        return s
    codes, uniq = pd.factorize(s, use_na_sentinel=True)  # work on distinct values only
    codes = np.asarray(codes)
    u = pd.Series(np.asarray(uniq, dtype=object), dtype="str").str.strip()
    miss_u = np.append((u.isna() | u.isin(list(NA_TOKENS))).to_numpy(dtype=bool), True)
    miss_rows = miss_u[codes]  # code -1 (NaN) indexes the trailing True

    def as_text() -> pd.Series:
        clean = u.mask(miss_u[:-1])
        take = np.where(miss_rows, -1, codes)
        return pd.Series(clean.array.take(take, allow_fill=True), index=s.index, name=s.name)

    present = u[~miss_u[:-1]]
    if present.empty or present.str.match(_LEADING_ZERO).fillna(False).any():
        return as_text()
    # cheap rejection of text columns before converting every distinct value
    if pd.to_numeric(present.iloc[:50], errors="coerce").isna().any() and not decimal_comma:
        return as_text()
    num = pd.to_numeric(present, errors="coerce")
    if num.isna().any() and decimal_comma:
        # "1,5" -> 1.5 and "1.234,5" -> 1234.5; values without a comma are read as written
        mask = present.str.contains(",", regex=False).fillna(False)
        fixed = present.where(~mask, present.str.replace(".", "", regex=False)
                              .str.replace(",", ".", regex=False))
        num = pd.to_numeric(fixed, errors="coerce")
    if num.isna().any():
        return as_text()
    vals_present = num.to_numpy(dtype="float64")
    if not np.isfinite(vals_present).all():
        return as_text()
    vals_u = np.full(len(u) + 1, np.nan)
    vals_u[np.flatnonzero(~miss_u[:-1])] = vals_present
    arr = vals_u[codes]
    if (not miss_rows.any() and np.all(vals_present == np.round(vals_present))
            and np.abs(vals_present).max() < 2**53):
        return pd.Series(arr.astype(np.int64), index=s.index, name=s.name)
    return pd.Series(arr, index=s.index, name=s.name)


# ---- Excel and Parquet -------------------------------------------------------------------
def _read_excel(path: Path, sheet: str | int | None) -> _Read:
    try:
        book = pd.ExcelFile(path)
    except Exception as err:  # noqa: BLE001 - openpyxl/xlrd raise many types for bad files
        raise _fail("not_tabular", path,
                    f"{path.name} could not be opened as an Excel workbook "
                    f"({type(err).__name__}: {str(err)[:120]})",
                    "Save the workbook as .xlsx (or export the sheet as CSV).") from None
    with book:
        names = book.sheet_names
        if sheet is None:
            sheet_name: str | int = 0
        elif isinstance(sheet, int):
            if not 0 <= sheet < len(names):
                raise QicstatsError(f"{path.name} has {len(names)} sheet(s) {names}; "
                                    f"sheet {sheet} does not exist")
            sheet_name = sheet
        else:
            if sheet not in names:
                raise QicstatsError(f"{path.name} has no sheet {sheet!r}; its sheets are "
                                    f"{names}")
            sheet_name = sheet
        try:
            df = pd.read_excel(book, sheet_name=sheet_name, dtype=object)
        except Exception as err:  # noqa: BLE001
            raise _fail("not_tabular", path,
                        f"sheet {sheet_name!r} of {path.name} could not be read "
                        f"({type(err).__name__}: {str(err)[:120]})",
                        "Keep one table per sheet with a header row in row 1.") from None
    if df.shape[1] == 0 or df.shape[0] == 0:
        if df.shape[1] == 0:
            raise _fail("empty_file", path, f"sheet {sheet_name!r} of {path.name} is empty",
                        "Choose the sheet with the data (option `sheet`).")
        raise _fail("empty_file", path,
                    f"sheet {sheet_name!r} of {path.name} has a header but no data rows",
                    "Choose the sheet with the data (option `sheet`).")
    df = df.apply(_excel_column)
    df = _finish(df, path)
    return _Read(df, 2, "excel")


def _excel_column(s: pd.Series) -> pd.Series:
    """Excel cells arrive as objects: give dates, numbers and text their natural dtypes."""
    vals = s.dropna()
    if vals.empty:
        return s.astype("float64")
    if all(isinstance(v, (pd.Timestamp, np.datetime64)) or hasattr(v, "isoformat")
           and not isinstance(v, str) for v in vals):
        try:
            return pd.to_datetime(s)
        except (ValueError, TypeError):
            pass
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
           for v in vals):
        return convert_numeric(s.map(lambda v: "" if pd.isna(v) else repr(v)))
    txt = s.map(lambda v: v if pd.isna(v) else str(v).strip())
    return convert_numeric(txt.astype("str"))


def _read_parquet(path: Path) -> _Read:
    try:
        df = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - pyarrow raises many types for bad files
        raise _fail("not_tabular", path,
                    f"{path.name} could not be read as Parquet "
                    f"({type(err).__name__}: {str(err)[:120]})",
                    "Write the file with pandas.DataFrame.to_parquet or export it as CSV.") \
            from None
    if df.shape[1] == 0:
        raise _fail("empty_file", path, f"{path.name} has no columns", "")
    if df.shape[0] == 0:
        raise _fail("empty_file", path, f"{path.name} has columns but no rows",
                    "Check that the right data were written.")
    df = df.reset_index(drop=not _named_index(df))
    df.index = pd.RangeIndex(len(df))
    df = _finish(df, path)
    return _Read(df, None, "parquet")


def _named_index(df: pd.DataFrame) -> bool:
    return any(n is not None for n in df.index.names)


__all__ = ["read_table", "convert_numeric", "NA_TOKENS"]
