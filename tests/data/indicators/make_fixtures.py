"""Regenerate the Excel fixtures of the indicator tests (run from any folder).

- ``nvivo_classification.xlsx``: an NVivo-style case-classification sheet export: first
  column ``Name`` with the case names, one column per attribute (some not in the codebook),
  ``Unassigned`` for attributes without a value, a ``Wave`` column of Excel dates and a
  ``Coder`` column.
- ``maxqda_matrix.xlsx``: a cases x codes matrix of coded-reference counts as MAXQDA / NVivo
  matrix-coding queries export them, with hierarchical code names (``Parent\\Child``), an
  empty cell (0 references), a ``Total`` column and a ``Total`` row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Write both workbooks next to this script."""
    sheet = pd.DataFrame({
        "Name": ["W1 (interview 2024)", "W2 (interview 2024)", "W3 (interview 2024)",
                 "W1 (interview 2024)"],
        "Management support": ["High", "Unassigned", 2, "low"],
        "Interviewee role": ["Ward manager", "Nurse", "Ward manager", "Ward manager"],
        "Coordinator active": ["Yes", "No", "Unassigned", "Yes"],
        "Wave": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1),
                 dt.datetime(2024, 4, 1)],
        "Coder": ["AB", "AB", "CD", "AB"],
    })
    sheet.to_excel(HERE / "nvivo_classification.xlsx", sheet_name="Person", index=False)

    matrix = pd.DataFrame({
        "Case": ["W1 (interview 2024)", "W2 (interview 2024)", "W3 (interview 2024)", "Total"],
        "Implementation\\Coordinator active": [3, 1, None, 4],
        "Leadership": [2, 0, 5, 7],
        "Management support": [1, 3, 2, 6],
        "Barriers\\Staffing": [4, 6, 3, 13],
        "Total": [10, 10, 10, 30],
    })
    matrix.to_excel(HERE / "maxqda_matrix.xlsx", sheet_name="Code Matrix", index=False)


if __name__ == "__main__":
    main()
