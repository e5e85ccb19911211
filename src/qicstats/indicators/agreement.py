"""Agreement between coders on double-coded indicator items.

An *item* is one (unit, indicator, wave); it is double-coded when two or more coders coded it.
Adjudication rows (coder ``adjudicated`` or ``consensus``) and codes without a coder are left
out. The statistics come from statsmodels (Cohen's and Fleiss' kappa) and the ``krippendorff``
package (Krippendorff's alpha); nothing is hand-computed here except percent agreement.
"""

from __future__ import annotations

import warnings
from typing import Any

import krippendorff
import numpy as np
import pandas as pd
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa, to_table

from qicstats.indicators.codebook import IndicatorSpec
from qicstats.indicators.readers import IndicatorCodes, is_adjudicator

#: columns of :func:`agreement_table`, in order
AGREEMENT_COLUMNS: tuple[str, ...] = (
    "indicator", "type", "n_items", "n_double_coded", "n_coders", "percent_agreement",
    "kappa", "kappa_type", "kappa_unweighted", "n_items_kappa", "alpha", "alpha_level",
)


def ratings_matrix(codes: IndicatorCodes, indicator: str) -> pd.DataFrame:
    """Items x coders matrix of one indicator's codes (level index or value; NaN = not coded).

    Rows are (unit, wave) items, columns the coders (adjudication rows and rows without a
    coder left out); when a coder coded an item twice the first code counts.
    """
    t = codes.table
    t = t[(t["indicator"] == indicator) & t["coder"].notna()]
    t = t[~t["coder"].map(is_adjudicator).astype(bool)]
    if t.empty:
        return pd.DataFrame(dtype=float)
    t = t.assign(wave=t["wave"].astype(object).where(t["wave"].notna(), ""),
                 coder=t["coder"].astype(str))
    first = t.groupby(["unit", "wave", "coder"], sort=True)["value"].first()
    return first.unstack("coder").astype(float)


def _quiet(fn: Any, *args: Any, **kw: Any) -> float:
    """Call a statistic, returning NaN instead of warnings/errors on degenerate tables."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return float(fn(*args, **kw))
        except (ValueError, ZeroDivisionError, AssertionError):
            return float("nan")


def cohen(pairs: np.ndarray, n_levels: int, *, weighted: bool) -> float:
    """Cohen's kappa of two coders' level indices (items x 2), via statsmodels.

    ``weighted=True`` gives linear weights (``|i - j| / (k - 1)``, statsmodels ``wt="linear"``).
    """
    table = to_table(np.asarray(pairs, dtype=int), bins=n_levels)[0]
    if weighted:
        return _quiet(cohens_kappa, table, wt="linear", return_results=False)
    return _quiet(cohens_kappa, table, return_results=False)


def fleiss(ratings: np.ndarray, n_levels: int) -> float:
    """Fleiss' kappa of items x raters level indices (same number of raters per item)."""
    counts = aggregate_raters(np.asarray(ratings, dtype=int), n_cat=n_levels)[0]
    return _quiet(fleiss_kappa, counts, method="fleiss")


def kripp_alpha(matrix: np.ndarray, spec: IndicatorSpec) -> float:
    """Krippendorff's alpha (coders x items, NaN = missing) at the indicator's measurement level."""
    kw: dict[str, Any] = {"level_of_measurement": spec.measurement}
    if spec.type != "continuous":
        kw["value_domain"] = np.arange(len(spec.levels))
    return _quiet(krippendorff.alpha, reliability_data=np.asarray(matrix, dtype=float), **kw)


def _row(name: str, spec: IndicatorSpec, wide: pd.DataFrame, n_items: int) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(AGREEMENT_COLUMNS, np.nan)
    out.update(indicator=name, type=spec.type, n_items=n_items, n_double_coded=0, n_coders=0,
               kappa_type=pd.NA, n_items_kappa=0, alpha_level=spec.measurement)
    if wide.empty:
        return out
    multi = wide[wide.notna().sum(axis=1) >= 2]
    multi = multi.loc[:, multi.notna().any(axis=0)]
    out.update(n_double_coded=len(multi), n_coders=multi.shape[1])
    if multi.empty:
        return out
    vals = multi.to_numpy()

    def same(row: np.ndarray) -> bool:
        r = row[~np.isnan(row)]
        return bool(np.allclose(r, r[0]))

    out["percent_agreement"] = 100.0 * float(np.mean([same(r) for r in vals]))
    out["alpha"] = kripp_alpha(vals.T, spec)
    if spec.type == "continuous":
        return out
    k = len(spec.levels)
    if multi.shape[1] == 2:
        pairs = vals[~np.isnan(vals).any(axis=1)]
        out["n_items_kappa"] = len(pairs)
        unweighted = cohen(pairs, k, weighted=False)
        out["kappa_unweighted"] = unweighted
        if spec.type == "ordinal":
            out["kappa"] = cohen(pairs, k, weighted=True)
            out["kappa_type"] = "cohen_weighted_linear"
        else:
            out["kappa"] = unweighted
            out["kappa_type"] = "cohen"
    else:
        n_rated = (~np.isnan(vals)).sum(axis=1)
        m = int(pd.Series(n_rated).mode().max())  # most common number of coders per item
        sub = [r[~np.isnan(r)] for r, n in zip(vals, n_rated) if n == m]
        out["n_items_kappa"] = len(sub)
        out["kappa"] = out["kappa_unweighted"] = fleiss(np.vstack(sub), k)
        out["kappa_type"] = "fleiss"
    return out


def agreement_table(codes: IndicatorCodes) -> pd.DataFrame:
    """Coder agreement per indicator over its double-coded items.

    Parameters
    ----------
    codes : IndicatorCodes

    Returns
    -------
    DataFrame
        One row per indicator with codes (codebook order). Columns:

        - ``indicator``, ``type``
        - ``n_items``: (unit, wave) items with at least one code
        - ``n_double_coded``: items coded by two or more coders
        - ``n_coders``: coders who coded at least one double-coded item
        - ``percent_agreement``: % of double-coded items on which all their coders agree
          (continuous: equal values)
        - ``kappa``, ``kappa_type``: with exactly two coders Cohen's kappa, linearly weighted
          for ordinal indicators (``"cohen_weighted_linear"``) and unweighted for binary ones
          (``"cohen"``), over the items both coded; with more coders Fleiss' kappa
          (``"fleiss"``, unweighted) over the items coded by the most common number of coders
          (``n_items_kappa``); ``NaN`` / ``<NA>`` for continuous indicators
        - ``kappa_unweighted``: unweighted Cohen's (or Fleiss') kappa
        - ``alpha``, ``alpha_level``: Krippendorff's alpha over the double-coded items at the
          codebook's level of measurement (nominal for binary, ordinal, interval for
          continuous)

        Statistics that are undefined (e.g. every code identical, so chance agreement is 1)
        are ``NaN``.
    """
    rows = []
    t = codes.table
    for name in codes.indicators:
        spec = codes.codebook[name]
        sub = t[t["indicator"] == name]
        n_items = len(sub.assign(wave=sub["wave"].astype(object).fillna(""))
                      .drop_duplicates(["unit", "wave"]))
        rows.append(_row(name, spec, ratings_matrix(codes, name), n_items))
    out = pd.DataFrame(rows, columns=list(AGREEMENT_COLUMNS))
    for c in ("n_items", "n_double_coded", "n_coders", "n_items_kappa"):
        out[c] = out[c].astype("int64")
    for c in ("percent_agreement", "kappa", "kappa_unweighted", "alpha"):
        out[c] = out[c].astype(float)
    out["kappa_type"] = out["kappa_type"].astype("string")
    return out


__all__ = ["AGREEMENT_COLUMNS", "agreement_table", "cohen", "fleiss", "kripp_alpha",
           "ratings_matrix"]
