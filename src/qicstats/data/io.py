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
import stat
from collections.abc import Sequence
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


#: input files larger than this are refused before reading (``QICSTATS_MAX_INPUT_BYTES``
#: raises it): a panel of 10 million patient rows is ~150 MB as CSV
MAX_INPUT_BYTES = 2 * 1024**3

_KIND = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def max_input_bytes() -> int:
    """The input size limit: :data:`MAX_INPUT_BYTES`, or ``QICSTATS_MAX_INPUT_BYTES``."""
    try:
        return int(os.environ.get("QICSTATS_MAX_INPUT_BYTES", MAX_INPUT_BYTES))
    except ValueError:
        return MAX_INPUT_BYTES


def input_file_problem(path: str | os.PathLike[str], *, max_bytes: int | None = None
                       ) -> tuple[str, str, str] | None:
    """Why ``path`` cannot be read as an input file, without opening it; ``None`` if it can.

    Only regular files are read: a named pipe would block forever and ``/dev/zero`` never
    ends, so both are refused from their ``stat`` alone, as are files over ``max_bytes``
    (default :func:`max_input_bytes`).

    Returns
    -------
    tuple or None
        ``(rule, what, hint)``: rule ``file_not_found``, ``not_a_file`` (a folder),
        ``not_regular_file``, ``file_too_large`` or ``file_unreadable``; ``what`` names the
        path and completes a sentence ("... is a named pipe (FIFO), not a regular file").
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return ("file_not_found", f"file not found: {p}", "check the path")
    except OSError as err:
        return ("file_unreadable", f"{p} cannot be read: {err.strerror or err}",
                "check the path and its permissions")
    if stat.S_ISDIR(st.st_mode):
        return ("not_a_file", f"{p} is a folder, not a file", "give the file in the folder")
    if not stat.S_ISREG(st.st_mode):
        kind = next((w for test, w in _KIND if test(st.st_mode)), "not a regular file")
        return ("not_regular_file", f"{p} is {kind}, not a regular file",
                "give a file saved on disk (CSV, Excel or Parquet); pipes and devices are "
                "not read")
    limit = max_input_bytes() if max_bytes is None else max_bytes
    if st.st_size > limit:
        return ("file_too_large", f"{p} is {st.st_size:,} bytes, more than the "
                f"{limit:,} qicstats reads", "aggregate the rows or save the table as "
                "Parquet; QICSTATS_MAX_INPUT_BYTES raises the limit")
    if not os.access(p, os.R_OK):
        return ("file_unreadable", f"{p} cannot be read: permission denied",
                "check the file's permissions")
    return None


def read_text_file(path: str | os.PathLike[str], *, max_bytes: int | None = None
                   ) -> tuple[str, str]:
    """Read a small text file (a codebook, a mapping) as ``(text, encoding)``.

    UTF-8 (with or without BOM) first, then cp1252 and Latin-1, as Danish Excel and older
    editors save them.

    Raises
    ------
    DataValidationError
        Rule ``file_not_found``, ``not_a_file``, ``not_regular_file``, ``file_too_large``
        or ``file_unreadable``.
    """
    bad = input_file_problem(path, max_bytes=max_bytes)
    if bad is not None:
        rule, what, hint = bad
        raise DataValidationError([Problem(rule, what, file=str(path), hint=hint)])
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise DataValidationError([Problem("file_unreadable", f"{path} cannot be read: "
                                           f"{err.strerror or err}", file=str(path))]) from None
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


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
    bad = input_file_problem(p)
    if bad is not None:
        rule, what, hint = bad
        if rule in ("file_not_found", "not_a_file"):
            raise QicstatsError(what)
        raise _fail(rule, p, what, hint)
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


def _check_header(names: Sequence[object], path: Path) -> None:
    """Raise ``duplicate_columns`` when two header cells name the same column.

    pandas would rename the second ``numerator`` to ``numerator.1`` and the first one would
    be used without a word; which of the two holds the data only the analyst knows.
    """
    clean = [_clean_header(c) for c in names]
    where: dict[str, list[int]] = {}
    for i, c in enumerate(clean):
        if c:
            where.setdefault(c, []).append(i + 1)
    dup = {c: pos for c, pos in where.items() if len(pos) > 1}
    if dup:
        def cols(pos: list[int]) -> str:
            return ", ".join(map(str, pos[:-1])) + f" and {pos[-1]}"

        shown = "; ".join(f"{c!r} (columns {cols(pos)})" for c, pos in list(dup.items())[:5])
        raise DataValidationError([Problem(
            "duplicate_columns", f"{path.name} has more than one column named {shown}",
            file=str(path), column=next(iter(dup)), count=len(dup), examples=tuple(dup),
            hint="Rename or delete the extra column(s): qicstats cannot tell which one "
                 "holds the data.")])


def _finish(df: pd.DataFrame, path: Path, blank: np.ndarray | None = None) -> pd.DataFrame:
    """Clean header names, drop blank rows/unnamed blank columns, convert numeric columns.

    ``blank`` (rows whose cells are all missing) may be given when already known.
    """
    _check_header(list(df.columns), path)
    df.columns = [_clean_header(c) for c in df.columns]
    # columns without a header and without data (trailing delimiters in Excel exports)
    drop = [c for c in df.columns
            if (c == "" or c.startswith("Unnamed:")) and _is_blank(df[c]).all()]
    if drop:
        df = df.drop(columns=drop)
        blank = None
    if df.shape[1] == 0:
        raise _fail("empty_file", path, f"{path.name} has no columns",
                    "Export the table with a header row naming its columns.")
    if blank is None:
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
def _decode(raw: bytes, path: Path, *, partial: bool = False) -> tuple[str, str]:
    """Return (text, encoding) or raise ``not_tabular`` for binary content.

    ``partial``: ``raw`` is the start of a longer file (a multi-byte character may be cut
    at its end).
    """
    if raw.startswith(b"\xef\xbb\xbf"):
        enc = "utf-8-sig"
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc = "utf-16"
    else:
        enc = ""
    sample = raw[:_SAMPLE_BYTES]
    # UTF-16 without a BOM, or a binary file, is full of NUL bytes; a stray NUL in a cell
    # is text (shown escaped in the messages about the cell)
    if not enc and sample.count(b"\x00") > max(1, len(sample) // 100):
        raise _fail("not_tabular", path,
                    f"{path.name} looks like a binary file, not a table",
                    "Export the data as CSV (UTF-8), Excel (.xlsx) or Parquet.")
    candidates = [enc] if enc else ["utf-8", "cp1252", "latin-1"]
    for cand in candidates:
        try:
            return raw.decode(cand), cand
        except UnicodeDecodeError as err:
            if partial and err.start >= len(raw) - 4:  # a character cut by the sample
                try:
                    return raw[:err.start].decode(cand), cand
                except UnicodeDecodeError:
                    pass
            continue
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
    except MemoryError:
        raise _fail("file_too_large", path, f"{path.name} does not fit in memory",
                    "Aggregate the rows or save the table as Parquet.") from None
    if not raw[:_SAMPLE_BYTES].strip() and not raw.strip():
        raise _fail("empty_file", path, f"{path.name} is empty",
                    "Check that the export wrote data; the file has no bytes.")
    # encoding, binary check and delimiter from the first 64 KB; the whole file is only
    # decoded when it is not UTF-8 (pyarrow parses UTF-8 bytes directly)
    head_text, enc = _decode(raw[:_SAMPLE_BYTES], path, partial=len(raw) > _SAMPLE_BYTES)
    if _looks_binary(head_text):
        raise _fail("not_tabular", path, f"{path.name} looks like a binary file, not a table",
                    "Export the data as CSV (UTF-8), Excel (.xlsx) or Parquet.")
    if enc in ("utf-8", "utf-8-sig") and not raw.isascii():
        try:
            raw.decode(enc)
        except UnicodeDecodeError:
            enc = "cp1252"
    body: bytes | None
    if enc == "utf-8" or raw.isascii():
        body, text = raw, None
    elif enc == "utf-8-sig":
        body, text = raw[3:], None
    else:
        text = _decode(raw, path)[0]
        body = None
    head_text = head_text.lstrip("\ufeff")
    if not head_text.strip():
        raise _fail("empty_file", path, f"{path.name} is empty",
                    "Check that the export wrote data.")
    delim = _sniff_delimiter(head_text)
    if delim is None:
        first = head_text.strip().splitlines()[0][:60]
        raise _fail("not_tabular", path,
                    f"{path.name} does not look like a table: no column delimiter "
                    f"(comma, semicolon, tab or |) found in its first line ({first!r})",
                    "Save the table as CSV with a header row, or as .xlsx/.parquet.")
    header = _header_cells(head_text, delim)
    _check_header(header, path)
    decimal_comma = delim != ","
    if body is None and text is not None:
        body = text.lstrip("\ufeff").encode("utf-8")
    if body is not None and header and "\n" not in "".join(header):
        fast = _read_csv_arrow(body, delim, len(header), decimal_comma)
        if fast is not None:
            df, blank = fast
            df.columns = header
            df.attrs["qicstats_na_tokens"] = {
                _clean_header(header[i]): t
                for i, t in df.attrs.get("qicstats_na_tokens", {}).items()}
            return _Read(_finish(df, path, blank), 2, "csv")
    # the general reader: ragged rows, blank lines, quoted newlines, odd quoting
    if text is None:
        text = raw.decode(enc)
    text = text.lstrip("\ufeff")
    try:
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, keep_default_na=False,
                         na_filter=False, skip_blank_lines=False, engine="c", header=None,
                         skiprows=1, names=[f"c{i}" for i in range(len(header))])
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
    # strips cells, turns missing tokens into NaN and number columns into numbers
    df = _convert_frame(df, header, decimal_comma=decimal_comma)
    df = _finish(df, path)
    return _Read(df, 2, "csv")


def _header_cells(text: str, delim: str) -> list[str]:
    """The header row's cells, as the csv module reads them."""
    try:
        return next(csv.reader(io.StringIO(text), delimiter=delim))
    except (StopIteration, csv.Error):
        return []


def _read_csv_arrow(body: bytes, delim: str, n_cols: int, decimal_comma: bool
                    ) -> tuple[pd.DataFrame, np.ndarray] | None:
    """The fast path: pyarrow's multi-threaded CSV reader, every cell dictionary-encoded as
    text, then the same conversions as :func:`convert_numeric` on the distinct values only.

    Returns ``(frame, blank rows)``, or ``None`` when the file needs the general reader
    (rows with another number of fields than the header, blank lines), which then reports
    any problem exactly as before. 10 million rows take about a second.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(n_cols)]
    dict_type = pa.dictionary(pa.int32(), pa.string())
    try:
        tbl = pacsv.read_csv(
            pa.BufferReader(body),
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1,
                                           block_size=8 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delim, ignore_empty_lines=False,
                                              newlines_in_values=b'"' in body),
            convert_options=pacsv.ConvertOptions(
                column_types={n: dict_type for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False))
        tbl = tbl.unify_dictionaries()
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError,
            pa.ArrowCapacityError, ValueError):
        return None
    if tbl.num_rows == 0:
        return None
    cols: dict[int, pd.Series] = {}
    tokens: dict[int, list[str]] = {}
    blank = np.ones(tbl.num_rows, dtype=bool)
    index = pd.RangeIndex(tbl.num_rows)
    for i, name in enumerate(names):
        col = tbl.column(name)
        chunks = [c for c in col.chunks if len(c)]
        dictionary = chunks[0].dictionary if chunks else pa.array([], pa.string())
        codes = np.concatenate([c.indices.to_numpy(zero_copy_only=False) for c in chunks]) \
            if chunks else np.zeros(0, dtype=np.int32)
        uniq = pd.Series(dictionary.to_pylist(), dtype=object)
        series, missing, tok = _from_codes(codes, uniq, index, None,
                                           decimal_comma=decimal_comma, arrow=True)
        cols[i] = series
        if tok:
            tokens[i] = tok
        blank &= missing
    out = pd.DataFrame(cols, index=index)
    out.attrs["qicstats_na_tokens"] = tokens  # by position; named by the caller
    return out, blank


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
    return _from_codes(np.asarray(codes), pd.Series(np.asarray(uniq, dtype=object)), s.index,
                       s.name, decimal_comma=decimal_comma)[0]


def _convert_frame(df: pd.DataFrame, header: list[str], *, decimal_comma: bool
                   ) -> pd.DataFrame:
    """Every column of a text frame through :func:`convert_numeric`; the missing-value
    codes seen per column go to ``attrs["qicstats_na_tokens"]`` (for messages).
    """
    cols, tokens = {}, {}
    for i in range(df.shape[1]):
        s = df.iloc[:, i]
        codes, uniq = pd.factorize(s, use_na_sentinel=True)
        cols[i], _m, tok = _from_codes(np.asarray(codes), pd.Series(np.asarray(uniq,
                                       dtype=object)), s.index, None,
                                       decimal_comma=decimal_comma)
        if tok:
            tokens[_clean_header(header[i])] = tok
    out = pd.DataFrame(cols, index=df.index)
    out.columns = header
    out.attrs["qicstats_na_tokens"] = tokens
    return out


def _from_codes(codes: np.ndarray, uniq: pd.Series, index: pd.Index, name: object, *,
                decimal_comma: bool, arrow: bool = False
                ) -> tuple[pd.Series, np.ndarray, list[str]]:
    """:func:`convert_numeric` on a factorised column: ``codes`` index ``uniq`` (-1:
    missing). Returns the column, its missing-cell mask and the missing-value codes that
    occur in it (``"n/a"``, ``"NA"``, ...; empty cells not listed). ``arrow``: build text
    columns with pyarrow's dictionary decoding (several times faster on millions of rows).
    """
    u = pd.Series(np.asarray(uniq, dtype=object), dtype="str").str.strip()
    miss_u = np.append((u.isna() | u.isin(list(NA_TOKENS))).to_numpy(dtype=bool), True)
    miss_rows = miss_u[codes]  # code -1 (NaN) indexes the trailing True
    tokens = sorted({t for t in u[miss_u[:-1]].dropna().tolist() if t})
    s_out, m_out = _convert(u, miss_u, miss_rows, codes, index, name,
                            decimal_comma=decimal_comma, arrow=arrow)
    return s_out, m_out, tokens


def _convert(u: pd.Series, miss_u: np.ndarray, miss_rows: np.ndarray, codes: np.ndarray,
             index: pd.Index, name: object, *, decimal_comma: bool, arrow: bool
             ) -> tuple[pd.Series, np.ndarray]:

    def as_text() -> pd.Series:
        clean = u.mask(miss_u[:-1])
        if arrow:
            import pyarrow as pa

            values = pa.array(clean.to_numpy(dtype=object, na_value=None), pa.string())
            idx = pa.array(codes.astype(np.int32, copy=False),
                           mask=miss_rows if miss_rows.any() else None)
            decoded = pa.DictionaryArray.from_arrays(idx, values).dictionary_decode()
            return pd.Series(decoded, dtype="str", index=index, name=name)
        take = np.where(miss_rows, -1, codes)
        return pd.Series(clean.array.take(take, allow_fill=True), index=index, name=name)

    present = u[~miss_u[:-1]]
    if present.empty or present.str.match(_LEADING_ZERO).fillna(False).any():
        return as_text(), miss_rows
    # cheap rejection of text columns before converting every distinct value
    if pd.to_numeric(present.iloc[:50], errors="coerce").isna().any() and not decimal_comma:
        return as_text(), miss_rows
    num = pd.to_numeric(present, errors="coerce")
    if num.isna().any() and decimal_comma:
        # "1,5" -> 1.5 and "1.234,5" -> 1234.5; values without a comma are read as written
        mask = present.str.contains(",", regex=False).fillna(False)
        fixed = present.where(~mask, present.str.replace(".", "", regex=False)
                              .str.replace(",", ".", regex=False))
        num = pd.to_numeric(fixed, errors="coerce")
    if num.isna().any():
        return as_text(), miss_rows
    vals_present = num.to_numpy(dtype="float64")
    if not np.isfinite(vals_present).all():
        return as_text(), miss_rows
    vals_u = np.full(len(u) + 1, np.nan)
    vals_u[np.flatnonzero(~miss_u[:-1])] = vals_present
    arr = vals_u[codes]
    if (not miss_rows.any() and np.all(vals_present == np.round(vals_present))
            and np.abs(vals_present).max() < 2**53):
        return pd.Series(arr.astype(np.int64), index=index, name=name), miss_rows
    return pd.Series(arr, index=index, name=name), miss_rows


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
            first = pd.read_excel(book, sheet_name=sheet_name, header=None, nrows=1,
                                  dtype=object)
            if first.shape[0]:
                _check_header([c for c in first.iloc[0].tolist() if not pd.isna(c)], path)
            df = pd.read_excel(book, sheet_name=sheet_name, dtype=object)
        except DataValidationError:
            raise
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


# ---- writing -------------------------------------------------------------------------------
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell that a spreadsheet would run as a formula neutralised.

    A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    (e.g. a unit named ``=cmd|' /C calc'!A0``) gets a leading ``'`` (OWASP's advice on CSV
    injection). Numbers, and text that is a plain number such as ``-0.5``, are left as they
    are, as are column names that are safe; ``df`` is not modified.
    """
    out = None

    def fix(v: object) -> object:
        if isinstance(v, str) and v.startswith(_FORMULA_START) and not _NUMBER.match(v):
            return "'" + v
        return v

    for c in df.columns:
        s = df[c]
        if s.dtype.kind in "biufcmM":
            continue
        vals = s.astype(object)
        fixed = vals.map(fix)
        if not fixed.equals(vals):
            if out is None:
                out = df.copy()
            out[c] = fixed if str(s.dtype) in ("object", "category") else fixed.astype(s.dtype)
    cols = [fix(str(c)) if isinstance(c, str) else c for c in df.columns]
    if cols != list(df.columns):
        out = (out if out is not None else df.copy())
        out.columns = cols
    return df if out is None else out


__all__ = ["read_table", "read_text_file", "input_file_problem", "csv_safe", "convert_numeric",
           "NA_TOKENS", "MAX_INPUT_BYTES"]
