"""One agreed code per (unit, indicator, wave) from several coders' codes.

Rules (the ``rule`` argument of :func:`consensus`):

``"majority"``
    The most frequent level among the coders. A tie is broken towards the **lower** level
    (the more conservative code: e.g. ``moderate`` over ``strong``, ``no`` over ``yes``) and
    flagged in the ``tie`` column. Continuous indicators: the mean of the coders' values.
``"adjudicated"``
    The code of the adjudication pseudo-coder (``adjudicated`` or ``consensus``) where there
    is one, else the majority.
``"uncertain"``
    Keep the disagreement: where coders disagree the item is ``"uncertain"`` with a
    probability vector over the levels from the coders' votes (2 of 3 say ``strong`` ->
    ``(0, 1/3, 2/3)``); unanimous items are observed. Continuous indicators: the mean.
``"coder:NAME"``
    Coder NAME's code where NAME coded the item, else the majority of the other coders (for
    per-coder sensitivity analyses: refit once per name in :func:`coders`).

Except under ``"adjudicated"`` and ``"coder:..."`` adjudication rows only count for items that
no coder coded. Codes without a coder name count as one vote each.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qicstats.errors import ConfigError, Problem
from qicstats.indicators.readers import IndicatorCodes, _suggest, is_adjudicator

RULES: tuple[str, ...] = ("majority", "adjudicated", "uncertain", "coder:<name>")

#: columns of :func:`consensus`, in order
CONSENSUS_COLUMNS: tuple[str, ...] = (
    "unit", "indicator", "wave", "wave_t", "status", "level", "value", "probs", "n_coders",
    "tie", "basis",
)


def coders(codes: IndicatorCodes) -> list[str]:
    """The coders' names, sorted, without the adjudication pseudo-coders.

    Parameters
    ----------
    codes : IndicatorCodes

    Returns
    -------
    list of str
        Use ``[f"coder:{name}" for name in coders(codes)]`` as consensus rules for the
        per-coder sensitivity analysis.
    """
    return codes.coders()


def parse_rule(rule: str, codes: IndicatorCodes) -> tuple[str, str | None]:
    """Split and check a consensus rule; ``("coder", name)`` for ``"coder:NAME"``.

    Raises
    ------
    ConfigError
        Unknown rule, or a coder name that does not occur in the codes.
    """
    text = str(rule).strip()
    if text in ("majority", "adjudicated", "uncertain"):
        return text, None
    if text.startswith("coder:"):
        name = text[len("coder:"):].strip()
        known = codes.coders()
        if name in known:
            return "coder", name
        raise ConfigError([Problem(
            "indicator_consensus_invalid", f"coder '{name}' does not occur in the indicator codes"
            + _suggest(name, known), column="coder", count=1, examples=(f"coders: {known}",),
            hint="write `coder:<name>` with one of the coders' names")])
    raise ConfigError([Problem(
        "indicator_consensus_invalid", f"unknown consensus rule '{rule}'", count=1,
        examples=(str(rule),), hint=f"use one of {', '.join(RULES)}")])


def _vote(values: np.ndarray, n_levels: int) -> tuple[np.ndarray, int, bool]:
    counts = np.bincount(values.astype(int), minlength=n_levels).astype(float)
    winners = np.flatnonzero(counts == counts.max())
    return counts, int(winners[0]), len(winners) > 1


def _decide(rows: pd.DataFrame, levels: tuple[str, ...], continuous: bool, kind: str,
            name: str | None) -> dict[str, Any]:
    adj_mask = rows["coder"].map(is_adjudicator).to_numpy(dtype=bool)
    adj, votes = rows[adj_mask], rows[~adj_mask]
    if kind == "adjudicated" and len(adj):
        return _single(adj.iloc[0], levels, continuous, "adjudicated", len(votes))
    if kind == "coder":
        mine = rows[(rows["coder"] == name).fillna(False).to_numpy(dtype=bool)]
        if len(mine):
            return _single(mine.iloc[0], levels, continuous, "coder", len(votes))
        others = votes
        basis_prefix = "fallback_"
    else:
        others = votes
        basis_prefix = ""
    if others.empty:
        return _single(adj.iloc[0], levels, continuous, "adjudicated", 0)
    vals = others["value"].to_numpy(dtype=float)
    n = len(vals)
    if continuous:
        return dict(status="observed", level=pd.NA, value=float(vals.mean()), probs=None,
                    n_coders=n, tie=False,
                    basis=basis_prefix + ("single" if n == 1 else "mean"))
    counts, winner, tie = _vote(vals, len(levels))
    unanimous = counts.max() == n
    basis = "single" if n == 1 else "unanimous" if unanimous else "tie" if tie else "majority"
    if kind == "uncertain" and not unanimous:
        return dict(status="uncertain", level=pd.NA, value=np.nan,
                    probs=tuple(float(x) for x in counts / n), n_coders=n, tie=tie,
                    basis="votes")
    return dict(status="observed", level=levels[winner], value=float(winner), probs=None,
                n_coders=n, tie=tie, basis=basis_prefix + basis)


def _single(rec: pd.Series, levels: tuple[str, ...], continuous: bool, basis: str,
            n_votes: int) -> dict[str, Any]:
    v = float(rec["value"])
    return dict(status="observed", level=pd.NA if continuous else levels[int(v)], value=v,
                probs=None, n_coders=n_votes, tie=False, basis=basis)


def consensus(codes: IndicatorCodes, rule: str = "majority") -> pd.DataFrame:
    """One code per (unit, indicator, wave) under a consensus rule (see the module docstring).

    Parameters
    ----------
    codes : IndicatorCodes
    rule : {"majority", "adjudicated", "uncertain"} or "coder:NAME"

    Returns
    -------
    DataFrame
        Columns ``unit``, ``indicator``, ``wave``, ``wave_t``; ``status`` (``"observed"`` or
        ``"uncertain"``); ``level`` (agreed level label; ``<NA>`` for continuous or uncertain
        items); ``value`` (level index or continuous value; ``NaN`` when uncertain);
        ``probs`` (tuple of level probabilities for uncertain items, else ``None``);
        ``n_coders`` (votes counted); ``tie`` (majority tie broken towards the lower level);
        ``basis`` (``single``, ``unanimous``, ``majority``, ``tie``, ``mean``, ``votes``,
        ``adjudicated``, ``coder``, or ``fallback_<...>`` when ``coder:NAME`` had no code).
        Sorted by indicator (codebook order), unit and wave.

    Raises
    ------
    ConfigError
        Unknown rule or coder name.
    """
    kind, name = parse_rule(rule, codes)
    t = codes.table
    out = []
    for ind in codes.indicators:
        spec = codes.codebook[ind]
        sub = t[t["indicator"] == ind]
        sub = sub.assign(_w=sub["wave"].astype(object).where(sub["wave"].notna(), ""))
        for (unit, _), rows in sub.groupby(["unit", "_w"], sort=False):
            rec = _decide(rows, spec.levels, spec.type == "continuous", kind, name)
            out.append(dict(unit=unit, indicator=ind, wave=rows["wave"].iloc[0],
                            wave_t=float(rows["wave_t"].iloc[0]), **rec))
    df = pd.DataFrame(out, columns=list(CONSENSUS_COLUMNS))
    if df.empty:
        return df
    order = {n: i for i, n in enumerate(codes.codebook.names)}
    df = (df.assign(_o=df["indicator"].map(order), _t=df["wave_t"].fillna(-np.inf))
          .sort_values(["_o", "unit", "_t"], kind="stable").drop(columns=["_o", "_t"])
          .reset_index(drop=True))
    df["wave"] = df["wave"].astype("string")
    df["level"] = df["level"].astype("string")
    df["value"] = df["value"].astype(float)
    df["n_coders"] = df["n_coders"].astype("int64")
    df["tie"] = df["tie"].astype(bool)
    return df


__all__ = ["CONSENSUS_COLUMNS", "RULES", "coders", "consensus", "parse_rule"]
