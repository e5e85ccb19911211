"""Qualitative indicators: from interview/observation coding to model predictors.

The path from coding exports to the model::

    codebook = load_codebook("codebook.yaml")
    frames = [read_long("codes.csv"),
              read_classification_sheet("nvivo_cases.xlsx", codebook, mapping="cases.csv",
                                        wave="2024-03", coder="AB"),
              read_coding_matrix("maxqda_matrix.xlsx", codebook, coder="CD")]
    codes = load_indicators(frames, codebook, panel)      # or check_indicators(...) -> problems
    agreement_table(codes)                                 # kappa / alpha per indicator
    matrix = encode(codes, panel, consensus="majority")    # IndicatorMatrix for the models
"""

from __future__ import annotations

from qicstats.indicators.agreement import agreement_table, ratings_matrix
from qicstats.indicators.codebook import (
    Codebook,
    IndicatorSpec,
    load_codebook,
    parse_codebook,
)
from qicstats.indicators.consensus import coders, consensus
from qicstats.indicators.encode import encode, unit_cells
from qicstats.indicators.matrix import EncodedIndicator, IndicatorMatrix
from qicstats.indicators.readers import (
    ADJUDICATORS,
    CODE_COLUMNS,
    IndicatorCodes,
    check_indicators,
    load_indicators,
    read_classification_sheet,
    read_coding_matrix,
    read_long,
    read_mapping,
)

__all__ = [
    "ADJUDICATORS",
    "CODE_COLUMNS",
    "Codebook",
    "EncodedIndicator",
    "IndicatorCodes",
    "IndicatorMatrix",
    "IndicatorSpec",
    "agreement_table",
    "check_indicators",
    "coders",
    "consensus",
    "encode",
    "load_codebook",
    "load_indicators",
    "parse_codebook",
    "ratings_matrix",
    "read_classification_sheet",
    "read_coding_matrix",
    "read_long",
    "read_mapping",
    "unit_cells",
]
