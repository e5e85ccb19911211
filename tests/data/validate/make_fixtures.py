"""Writes the small fixtures of the data-layer tests (run from anywhere; output next to it).

The files are committed; this script documents exactly how each was made (bytes, encodings,
delimiters) and regenerates them: ``python tests/data/validate/make_fixtures.py``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

UNITS = [  # unit, collaborative, join_period, site
    ("U1", "A", "2023-04", "North"),
    ("U2", "A", "2023-06", "North"),
    ("U3", "B", "2023-05", "South"),
    ("U4", "B", "2023-07", ""),
    ("U5", "", "", "North"),
    ("U6", "", "", "East"),
]


def panel_rows() -> list[tuple[str, str, int, int]]:
    rows = []
    for i, (u, *_rest) in enumerate(UNITS):
        for m in range(1, 13):
            den = 20 + i
            num = (3 * m + 2 * i) % den
            rows.append((u, f"2023-{m:02d}", num, den))
    return rows


def main() -> None:
    # valid binomial panel + units table, plain UTF-8, comma, LF
    lines = ["unit,period,numerator,denominator"]
    lines += [f"{u},{p},{n},{d}" for u, p, n, d in panel_rows()]
    (HERE / "panel.csv").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    ulines = ["unit,collaborative,join_period,site"]
    ulines += [",".join(r) for r in UNITS]
    (HERE / "units.csv").write_bytes(("\n".join(ulines) + "\n").encode("utf-8"))

    # Danish Excel: cp1252, semicolon, decimal comma, CRLF, header with spaces
    dk = ["afdeling ; periode;antal;rate", "Kirurgi Ø;2023-01;3;0,25",
          "Kirurgi Ø;2023-02;4;1.234,5", "Medicin Å;2023-01;5;0,5"]
    (HERE / "danish_cp1252.csv").write_bytes(("\r\n".join(dk) + "\r\n").encode("cp1252"))

    # UTF-8 with BOM and CRLF, tab-delimited
    tab = ["unit\tperiod\tvalue", "a\t2023-Q1\t1.5", "b\t2023-Q2\t2"]
    (HERE / "bom_crlf_tab.tsv").write_bytes(
        b"\xef\xbb\xbf" + ("\r\n".join(tab) + "\r\n").encode("utf-8"))

    # pipe-delimited with blank line and leading-zero ids
    pipe = ["id|period|count", "007|1|3", "", "010|2|4"]
    (HERE / "pipe_leading_zero.txt").write_bytes(("\n".join(pipe) + "\n").encode("utf-8"))

    # broken files
    (HERE / "empty.csv").write_bytes(b"")
    (HERE / "header_only.csv").write_bytes(b"unit,period,numerator,denominator\n")
    (HERE / "garbage.csv").write_bytes(bytes(range(256)) * 8)
    (HERE / "prose.csv").write_bytes(
        b"This file is a note about the data and not a table at all\n"
        b"It has two lines of prose\n")
    (HERE / "ragged.csv").write_bytes(b"unit,period,numerator\nA,1,2\nA,2,3,4,5\n")


if __name__ == "__main__":
    main()
