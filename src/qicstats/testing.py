"""Small fixtures for tests and for users' own tests: tiny panels and indicator matrices.

Nothing here samples. ``tiny_panel`` builds a :class:`~qicstats.data.panel.PanelData` directly
(no files, no validation pass) so model-graph tests stay fast and independent of the readers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from qicstats.data.panel import PanelData, PeriodGrid
from qicstats.indicators.matrix import EncodedIndicator, IndicatorMatrix


def tiny_panel(family: str = "binomial", *, n_collaboratives: int = 2, units_per_collab: int = 4,
               n_comparison: int = 3, T: int = 12, sites: bool = True, seed: int = 1,
               level_change: float = 0.5, slope_change: float = 0.03,
               covariate: bool = False, drop_rows: int = 0) -> PanelData:
    """A small, valid QIC panel with staggered joins and comparison units.

    Parameters
    ----------
    family : str
        Outcome family of the generated data.
    n_collaboratives, units_per_collab, n_comparison, T : int
        Design size.
    sites : bool
        Add a ``site`` level (two units per site).
    seed : int
        Seed of the generator.
    level_change, slope_change : float
        True changes on the link scale.
    covariate : bool
        Add a unit covariate ``beds``.
    drop_rows : int
        Number of unit-period rows to drop at random (gaps).

    Returns
    -------
    PanelData
    """
    rng = np.random.default_rng(seed)
    recs = []
    for c in range(n_collaboratives):
        start = 3 + 2 * c
        for j in range(units_per_collab):
            recs.append({"unit": f"c{c + 1}u{j + 1}", "collaborative": f"C{c + 1}",
                         "site": f"c{c + 1}s{j // 2 + 1}", "join_t": start + (j % 2)})
    for j in range(n_comparison):
        recs.append({"unit": f"k{j + 1}", "collaborative": pd.NA, "site": f"k{j + 1}",
                     "join_t": pd.NA})
    units = pd.DataFrame(recs)
    units["collaborative"] = units["collaborative"].astype("string")
    units["join_t"] = units["join_t"].astype("Int64")
    labels = tuple(f"{2024 + (m // 12)}-{m % 12 + 1:02d}" for m in range(T))
    units["join_period"] = [labels[int(j)] if pd.notna(j) else pd.NA for j in units["join_t"]]
    units["join_period"] = units["join_period"].astype("string")
    units["end_t"] = pd.array([pd.NA] * len(units), dtype="Int64")
    if covariate:
        units["beds"] = rng.integers(10, 60, size=len(units)).astype(float)
    if not sites:
        units = units.drop(columns="site")
    rows = []
    u_eff = rng.normal(0, 0.3, len(units))
    for i, u in units.iterrows():
        for t in range(T):
            jt = u["join_t"]
            post = pd.notna(jt) and t >= jt
            e = t - jt if post else 0
            eta = -0.5 + 0.04 * (t - T / 2) + u_eff[i] + post * level_change + e * slope_change
            p = 1 / (1 + np.exp(-eta))
            rec = {"unit": u["unit"], "period": labels[t], "t": t}
            if family in ("binomial", "betabinomial"):
                n = int(rng.integers(20, 60))
                rec.update(numerator=int(rng.binomial(n, p)), denominator=n)
            elif family in ("poisson", "negbinomial"):
                ex = float(rng.integers(200, 800))
                rec.update(count=int(rng.poisson(np.exp(eta - 3) * ex / 100)), exposure=ex)
            else:
                rec.update(value=float(eta + rng.normal(0, 0.3)))
            rows.append(rec)
    panel = pd.DataFrame(rows)
    if drop_rows:
        panel = panel.drop(index=rng.choice(len(panel), drop_rows, replace=False))
    panel = panel.sort_values(["unit", "t"]).reset_index(drop=True)
    units = units.sort_values("unit").reset_index(drop=True)
    observed = set(panel["t"])
    grid = PeriodGrid("month", labels, tuple(range(T)),
                      tuple(lab for t, lab in enumerate(labels) if t not in observed))
    levels = ("collaborative", "site") if sites else ("collaborative",)
    return PanelData(panel=panel, units=units, periods=grid, family=family, levels=levels,
                     covariates=("beds",) if covariate else ())


def tiny_indicators(data: PanelData, *, seed: int = 2, missing_units: int = 1,
                    uncertain_units: int = 0, continuous: bool = False) -> IndicatorMatrix:
    """Encoded indicators for :func:`tiny_panel`: a binary and an ordinal (two waves) one.

    ``missing_units`` participating units get no ordinal code (latent); ``uncertain_units``
    get a coder-disagreement probability vector for the binary one.
    """
    rng = np.random.default_rng(seed)
    T = data.periods.T
    inds = [EncodedIndicator("coordinator", "binary", ("no", "yes"), "both", "Coordinator active"),
            EncodedIndicator("support", "ordinal", ("weak", "moderate", "strong"), "moderator",
                             "Management support")]
    # unit, indicator, t_start, t_end, status, value, probs (uncertain cells only), wave
    cells: list[tuple[Any, str, int, int, str, float, tuple[float, ...] | None, Any]] = []
    part = data.units[data.units["join_t"].notna()]["unit"].tolist()
    miss = set(part[:missing_units])
    unc = set(part[missing_units:missing_units + uncertain_units])
    for _, u in data.units.iterrows():
        name = u["unit"]
        if name in unc:
            cells.append((name, "coordinator", 0, T - 1, "uncertain", np.nan, (0.5, 0.5), pd.NA))
        else:
            cells.append((name, "coordinator", 0, T - 1, "observed", float(rng.integers(0, 2)),
                          None, pd.NA))
        if name in miss:
            cells.append((name, "support", 0, T - 1, "missing", np.nan, None, pd.NA))
        else:
            half = T // 2
            cells.append((name, "support", 0, half - 1, "observed", float(rng.integers(0, 3)),
                          None, pd.NA))
            cells.append((name, "support", half, T - 1, "observed", float(rng.integers(0, 3)),
                          None, pd.NA))
    if continuous:
        inds.append(EncodedIndicator("density", "continuous", (), "main", "Coding density",
                                     center=2.0, scale=1.5))
        for j, (_, u) in enumerate(data.units.iterrows()):
            st = "missing" if j == 0 else "observed"
            cells.append((u["unit"], "density", 0, T - 1, st,
                          np.nan if st == "missing" else float(rng.normal(2, 1.5)), None, pd.NA))
    df = pd.DataFrame(cells, columns=["unit", "indicator", "t_start", "t_end", "status", "value",
                                      "probs", "wave"])
    return IndicatorMatrix(tuple(inds), df, T)
