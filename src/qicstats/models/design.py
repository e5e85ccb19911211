"""Numeric design of a QIC panel: index arrays, time since joining, indicator codes, mixtures.

Everything here is plain numpy computed once from a :class:`~qicstats.data.panel.PanelData`
(and an optional :class:`~qicstats.indicators.matrix.IndicatorMatrix`). The same arrays feed
the PyMC graph and the draw-based estimands, through
:func:`qicstats.models.linpred.linear_predictor`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from qicstats.data.panel import COMPARISON, PanelData
from qicstats.errors import ModelSpecError
from qicstats.indicators.matrix import EncodedIndicator, IndicatorMatrix
from qicstats.models.spec import ModelSpec

#: most joint configurations of non-observed codes enumerated for one unit
MAX_COMBOS = 512


@dataclass(frozen=True)
class Groups:
    """One grouping level: its group names and each unit's group index."""

    level: str
    names: tuple[str, ...]
    of_unit: np.ndarray  # int, per unit

    @property
    def n(self) -> int:
        """Number of groups."""
        return len(self.names)


@dataclass(frozen=True)
class Rows:
    """Unit-periods at which the linear predictor is evaluated.

    ``D`` is the (ramped) post-join indicator, ``e`` the periods since joining (0 before),
    ``P`` the sustainability-phase indicator (1 after the unit's end period).
    ``Z`` holds, per indicator, the level index (binary/ordinal) or the standardised value
    (continuous); ``NaN`` where the code is latent. ``Zlat`` holds the index of the latent
    continuous value for such cells (else -1).
    """

    unit: np.ndarray
    t: np.ndarray
    D: np.ndarray
    e: np.ndarray
    Z: np.ndarray
    Zlat: np.ndarray
    X: np.ndarray
    P: np.ndarray | None = None

    def __post_init__(self) -> None:
        """Without ``P``, no row is in the sustainability phase (zeros)."""
        if self.P is None:
            object.__setattr__(self, "P", np.zeros(len(self.unit)))

    @property
    def n(self) -> int:
        """Number of rows."""
        return len(self.unit)

    def subset(self, idx: np.ndarray) -> Rows:
        """Rows ``idx`` of this set."""
        return Rows(*(getattr(self, f)[idx]
                      for f in ("unit", "t", "D", "e", "Z", "Zlat", "X", "P")))

    def with_intervention(self, D: np.ndarray | float, e: np.ndarray | float,
                          P: np.ndarray | float = 0.0) -> Rows:
        """A copy with the intervention terms replaced (``0, 0`` for the counterfactual: no
        change, no phase).
        """
        n = self.n
        return replace(self, D=np.broadcast_to(np.asarray(D, float), (n,)).copy(),
                       e=np.broadcast_to(np.asarray(e, float), (n,)).copy(),
                       P=np.broadcast_to(np.asarray(P, float), (n,)).copy())

    def with_indicator(self, k: int, value: float) -> Rows:
        """A copy with indicator ``k`` set to ``value`` (level index) everywhere."""
        Z = self.Z.copy()
        Z[:, k] = value
        Zlat = self.Zlat.copy()
        Zlat[:, k] = -1
        return replace(self, Z=Z, Zlat=Zlat)


@dataclass(frozen=True)
class Mixture:
    """Enumerated configurations of non-observed discrete codes, per affected unit.

    ``units`` are the affected unit indices (``U_m`` of them); each has ``n_combos[u]`` valid
    configurations out of ``C = max(n_combos)``. ``combos[u][c]`` maps cell id -> level.
    ``prior_*`` arrays give the log prior weight of each (unit, combo) as the sum over its cells
    of either ``log pi_k[level]`` (missing codes; ``prior_ind >= 0``) or a constant from the
    coders' votes (uncertain codes).
    """

    units: np.ndarray
    C: int
    n_combos: np.ndarray
    combos: list[list[dict[int, int]]]
    prior_uc: np.ndarray      # flat (u*C + c) per entry
    prior_ind: np.ndarray     # discrete-indicator index k per entry, -1 for constant
    prior_level: np.ndarray   # level per entry
    prior_const: np.ndarray   # log weight per entry (used when prior_ind < 0)
    pad_mask: np.ndarray      # (U_m * C,) True for padding combos


@dataclass(frozen=True)
class Design:
    """Everything numeric the model needs; see the module docstring."""

    family: str
    T: int
    tau: np.ndarray                       # centred time per grid period
    unit_names: tuple[str, ...]
    period_labels: tuple[str, ...]
    join_t: np.ndarray                    # float per unit, NaN for comparison units
    participating: np.ndarray             # bool per unit
    collaborative: tuple[str | None, ...]  # per unit
    levels: tuple[str, ...]               # data levels above unit
    base_groups: dict[str, Groups]
    change_groups: dict[str, Groups]
    rows: Rows
    y: dict[str, np.ndarray]
    H: float
    ramp: int
    link_mean: float
    y_sd: float
    season: np.ndarray | None
    spline_basis: np.ndarray | None
    covariate_names: tuple[str, ...]
    covariate_center: np.ndarray
    covariate_scale: np.ndarray
    unit_covariates: np.ndarray           # (N, P) standardised, for queries at unobserved periods
    indicators: tuple[EncodedIndicator, ...] = ()
    cells: pd.DataFrame | None = None
    # (k, unit) -> cell id per t
    cell_of: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    cell_info: pd.DataFrame | None = None  # per cell id: indicator k, unit, status, value, probs
    n_latent: dict[int, int] = field(default_factory=dict)  # continuous k -> number of latent cells
    latent_cont: dict[int, np.ndarray] = field(default_factory=dict)  # k -> cell ids (latent order)
    mixture: Mixture | None = None
    regular: np.ndarray | None = None     # bool per observed row: unit not in the mixture
    effect: str = "slope"                 # the effect's shape (ModelSpec.effect)
    end_t: np.ndarray | None = None       # float per unit, NaN without an end period
    phases: bool = False                  # a sustainability phase after end_t
    curve_max: int = 0                    # last exposure time with its own curve effect
    identified_max: int | None = None     # largest identified exposure time (None: all)
    structure: Any = None                 # the resolved Structure (models.structure)

    # ---------------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units."""
        return len(self.unit_names)

    @property
    def K(self) -> int:
        """Number of indicators."""
        return len(self.indicators)

    def code_status_counts(self) -> pd.DataFrame:
        """Per indicator: code cells that are observed, latent (missing, imputed in the model),
        uncertain (coders disagree), and uncoded comparison-unit placeholders.
        """
        cols = ["indicator", "observed", "imputed", "uncertain", "comparison_reference"]
        if self.cell_info is None:
            return pd.DataFrame(columns=cols)
        info = self.cell_info
        comp = info.get("uncoded_comparison", pd.Series(False, index=info.index)).astype(bool)
        recs = []
        for k, ind in enumerate(self.indicators):
            c = info[info["k"] == k]
            cc = comp[c.index]
            recs.append((ind.name, int(((c["status"] == "observed") & ~cc).sum()),
                         int((c["status"] == "missing").sum()),
                         int((c["status"] == "uncertain").sum()), int(cc.sum())))
        return pd.DataFrame(recs, columns=cols)

    @property
    def n_curve(self) -> int:
        """Number of exposure-time effects in the curve (``effect="curve"``)."""
        return self.curve_max + 1

    def curve_slot(self, e: np.ndarray) -> np.ndarray:
        """The curve element of each row's exposure time ``e`` (0 before joining; at most
        :attr:`curve_max`).
        """
        h = np.rint(np.asarray(e, dtype=float)).astype(int)
        return np.clip(h, 0, self.curve_max)

    def phase(self, unit: np.ndarray, t: np.ndarray) -> np.ndarray:
        """``P``: 1 in the periods after the unit's end period (sustainability phase)."""
        if not self.phases or self.end_t is None:
            return np.zeros(len(unit))
        et = self.end_t[unit]
        return (np.isfinite(et) & (t > np.nan_to_num(et, nan=np.inf))).astype(float)

    def in_estimand(self, e: np.ndarray) -> np.ndarray:
        """Whether post-join rows at exposure times ``e`` are averaged by the ATT (identified
        horizons only).
        """
        if self.identified_max is None:
            return np.ones(len(e), bool)
        return np.asarray(e, dtype=float) <= self.identified_max + 1e-9

    def intervention(self, unit: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``D`` (ramped) and ``e`` (periods since joining) for unit-periods."""
        jt = self.join_t[unit]
        post = ~np.isnan(jt) & (t >= np.nan_to_num(jt, nan=np.inf))
        e = np.where(post, t - np.nan_to_num(jt), 0.0)
        if self.ramp > 0:
            D = np.where(post, np.minimum(1.0, (e + 1.0) / self.ramp), 0.0)
        else:
            D = post.astype(float)
        return D, e

    def codes_at(self, unit: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Indicator matrix ``Z`` (NaN where latent) and ``Zlat`` for unit-periods."""
        n = len(unit)
        Z = np.full((n, self.K), np.nan)
        Zlat = np.full((n, self.K), -1, dtype=int)
        if not self.K:
            return Z, Zlat
        info = self.cell_info
        assert info is not None  # attached with the indicators (K > 0)
        for k in range(self.K):
            cid = np.empty(n, dtype=int)
            for u in np.unique(unit):
                m = unit == u
                cid[m] = self.cell_of[(k, int(u))][t[m]]
            status = info["status"].to_numpy()[cid]
            obs = status == "observed"
            Z[obs, k] = info["zvalue"].to_numpy()[cid[obs]]
            if k in self.latent_cont:
                lat_pos = info["latent_pos"].to_numpy()[cid]
                lat = (status != "observed")
                Zlat[lat, k] = lat_pos[lat]
        return Z, Zlat

    def query_rows(self, unit: np.ndarray, t: np.ndarray, X: np.ndarray | None = None) -> Rows:
        """Rows for arbitrary unit-periods (intervention and codes as they were/would be)."""
        unit = np.asarray(unit, dtype=int)
        t = np.asarray(t, dtype=int)
        D, e = self.intervention(unit, t)
        Z, Zlat = self.codes_at(unit, t)
        if X is None:
            X = (self.unit_covariates[unit] if self.unit_covariates.size
                 else np.zeros((len(unit), 0)))
        return Rows(unit, t, D, e, Z, Zlat, X, self.phase(unit, t))

    def expand(self, rows: Rows) -> tuple[Rows, np.ndarray, np.ndarray]:
        """Expand rows of mixture units into one row per code configuration.

        Returns
        -------
        expanded : Rows
            Rows of non-mixture units are kept once; each row of a mixture unit appears once
            per valid configuration with its latent codes filled in.
        source : ndarray of int
            For each expanded row, its index in ``rows``.
        uc : ndarray of int
            For each expanded row, the flat (mixture unit, combo) index, or -1 for rows of
            non-mixture units.
        """
        mix = self.mixture
        if mix is None:
            return rows, np.arange(rows.n), np.full(rows.n, -1)
        pos = {int(u): i for i, u in enumerate(mix.units)}
        keep_src, keep_uc, Zs, Zls = [], [], [], []
        in_mix = np.array([int(u) in pos for u in rows.unit])
        plain = np.flatnonzero(~in_mix)
        keep_src.append(plain)
        keep_uc.append(np.full(len(plain), -1))
        Zs.append(rows.Z[plain])
        Zls.append(rows.Zlat[plain])
        disc = [k for k, ind in enumerate(self.indicators) if ind.type != "continuous"]
        info = self.cell_info
        assert info is not None  # a mixture is built from the cell info
        for r in np.flatnonzero(in_mix):
            u = int(rows.unit[r])
            um = pos[u]
            t = int(rows.t[r])
            # which latent cell governs each discrete indicator at this row
            gov = {}
            for k in disc:
                cid = int(self.cell_of[(k, u)][t])
                if info["status"].iat[cid] != "observed" and np.isnan(rows.Z[r, k]):
                    gov[k] = cid
            for c, combo in enumerate(mix.combos[um]):
                z = rows.Z[r].copy()
                for k, cid in gov.items():
                    z[k] = combo[cid]
                keep_src.append(np.array([r]))
                keep_uc.append(np.array([um * mix.C + c]))
                Zs.append(z[None, :])
                Zls.append(rows.Zlat[r][None, :])
        src = np.concatenate(keep_src)
        uc = np.concatenate(keep_uc)
        ex = rows.subset(src)
        ex = replace(ex, Z=np.concatenate(Zs) if Zs else ex.Z,
                     Zlat=np.concatenate(Zls) if Zls else ex.Zlat)
        order = np.argsort(src, kind="stable")
        return ex.subset(order), src[order], uc[order]


# -------------------------------------------------------------------------------------------
def _link_mean(family: str, y: dict[str, np.ndarray]) -> tuple[float, float]:
    if family in ("binomial", "betabinomial"):
        num, den = y["numerator"].sum(), y["denominator"].sum()
        p = (num + 0.5) / (den + 1.0)
        return float(np.log(p / (1 - p))), 1.0
    if family in ("poisson", "negbinomial"):
        rate = (y["count"].sum() + 0.5) / max(float(np.exp(y["log_exposure"]).sum()), 1e-9)
        return float(np.log(rate)), 1.0
    v = y["value"]
    return float(np.mean(v)), float(np.std(v)) if len(v) > 1 and np.std(v) > 0 else 1.0


def _bspline_basis(T: int, n_knots: int) -> np.ndarray:
    from scipy.interpolate import BSpline

    k = 3
    inner = np.linspace(0, T - 1, n_knots + 2)
    knots = np.concatenate([[inner[0]] * k, inner, [inner[-1]] * k])
    n_basis = len(knots) - k - 1
    x = np.arange(T, dtype=float)
    B = np.column_stack([BSpline(knots, np.eye(n_basis)[j], k, extrapolate=False)(x)
                         for j in range(n_basis)])
    return np.nan_to_num(B)


def _groups(units: pd.DataFrame, level: str, mask: np.ndarray | None = None) -> Groups:
    """Index units by a level; with ``mask``, only the masked units form groups (others get 0)."""
    if level == "unit":
        col = units["unit"].astype(str).to_numpy(dtype=object)
    else:
        col = units[level].astype("string").fillna(COMPARISON).to_numpy(dtype=object)
    if mask is not None:
        col = np.where(mask, col, None)
    valid = [c for c in col if c is not None]
    names = tuple(sorted(set(valid)))
    pos = {n: i for i, n in enumerate(names)}
    of_unit = np.array([pos[c] if c is not None else 0 for c in col], dtype=int)
    return Groups(level, names, of_unit)


def build_design(data: PanelData, spec: ModelSpec, indicators: IndicatorMatrix | None = None,
                 structure: Any = None) -> Design:
    """Compute the :class:`Design` of ``data`` under ``spec``.

    Parameters
    ----------
    data : PanelData
    spec : ModelSpec
        With ``auto`` settings resolved (:meth:`qicstats.models.structure.Structure.apply`);
        resolved here when ``structure`` is not given.
    indicators : IndicatorMatrix, optional
    structure : Structure, optional
        :func:`qicstats.models.structure.resolve_structure` of ``data`` and ``spec``.

    Raises
    ------
    ModelSpecError
        When the spec asks for something the data cannot support (unknown covariates or
        indicators, too many latent code configurations for a unit, a flexible trend for a
        single series).
    """
    if structure is None:
        from qicstats.models.structure import resolve_structure

        structure = resolve_structure(data, spec)
        spec = structure.apply(spec)
    family = spec.family or data.family
    units = data.units.reset_index(drop=True)
    panel = data.panel
    T = data.periods.T
    N = len(units)
    unit_idx = data.unit_index
    t = panel["t"].to_numpy(dtype=int)

    join_t = pd.to_numeric(units["join_t"], errors="coerce").to_numpy(dtype=float)
    participating = ~np.isnan(join_t)
    vals = np.asarray(data.periods.values, dtype=float)
    tau = (vals - (vals.min() + vals.max()) / 2.0) if T else vals
    tau = tau - vals.min() * 0  # grid values are consecutive; centred at the midpoint

    # grouping levels (outermost first); the unit is always the innermost
    levels = tuple(lv for lv in structure.levels if lv in units.columns)
    base_groups = {lv: _groups(units, lv) for lv in levels}
    base_groups["unit"] = _groups(units, "unit")
    change_groups = {lv: _groups(units, lv, participating) for lv in levels}
    change_groups["unit"] = _groups(units, "unit", participating)

    # outcome
    y: dict[str, np.ndarray] = {}
    if family in ("binomial", "betabinomial"):
        y["numerator"] = panel["numerator"].to_numpy(dtype=float)
        y["denominator"] = panel["denominator"].to_numpy(dtype=float)
    elif family in ("poisson", "negbinomial"):
        y["count"] = panel["count"].to_numpy(dtype=float)
        expo = (panel["exposure"].to_numpy(dtype=float) if "exposure" in panel.columns
                else np.ones(len(panel)))
        y["exposure"] = expo
        y["log_exposure"] = np.log(expo)
    elif family == "gaussian":
        y["value"] = panel["value"].to_numpy(dtype=float)
        if "se" in panel.columns and panel["se"].notna().all():
            y["se"] = panel["se"].to_numpy(dtype=float)
        if "weight" in panel.columns and panel["weight"].notna().all():
            y["weight"] = panel["weight"].to_numpy(dtype=float)
    else:
        raise ModelSpecError(f"unknown family '{family}'")
    link_mean, y_sd = _link_mean(family, y)

    # covariates: unit-level or panel-level, standardised
    covs = tuple(spec.covariates)
    Xcols, centers, scales, unitX = [], [], [], []
    for c in covs:
        if c in panel.columns:
            x = pd.to_numeric(panel[c], errors="coerce").to_numpy(dtype=float)
            per_unit = pd.Series(x).groupby(unit_idx).mean().reindex(range(N)).to_numpy()
        elif c in units.columns:
            per_unit = pd.to_numeric(units[c], errors="coerce").to_numpy(dtype=float)
            x = per_unit[unit_idx]
        else:
            raise ModelSpecError(f"covariate '{c}' is neither a panel nor a units column")
        if np.isnan(x).any():
            raise ModelSpecError(f"covariate '{c}' has missing or non-numeric values")
        mu, sd = float(np.mean(x)), float(np.std(x)) or 1.0
        Xcols.append((x - mu) / sd)
        unitX.append((per_unit - mu) / sd)
        centers.append(mu)
        scales.append(sd)
    X = np.column_stack(Xcols) if Xcols else np.zeros((len(panel), 0))
    UX = np.column_stack(unitX) if unitX else np.zeros((N, 0))

    season = data.periods.season_index() if spec.seasonality else None
    if spec.seasonality and season is None:
        raise ModelSpecError("seasonality needs monthly or quarterly periods")
    basis = None
    if spec.trend == "spline":
        nk = spec.spline_knots or max(2, min(12, T // 6))
        basis = _bspline_basis(T, nk)

    post_e = np.where(participating[unit_idx] & (t >= np.nan_to_num(join_t[unit_idx], nan=np.inf)),
                      t - np.nan_to_num(join_t[unit_idx]), 0.0)
    H = float(max(1.0, post_e.max() if len(post_e) else 1.0))

    design = Design(
        family=family, T=T, tau=tau.astype(float), unit_names=tuple(units["unit"].astype(str)),
        period_labels=tuple(data.periods.labels), join_t=join_t, participating=participating,
        collaborative=tuple(None if pd.isna(c) else str(c) for c in units["collaborative"])
        if "collaborative" in units.columns else tuple([None] * N),
        levels=levels, base_groups=base_groups, change_groups=change_groups,
        rows=Rows(unit_idx, t, np.zeros(len(t)), np.zeros(len(t)), np.zeros((len(t), 0)),
                  np.zeros((len(t), 0), dtype=int), X),
        y=y, H=H, ramp=int(spec.ramp), link_mean=link_mean, y_sd=y_sd, season=season,
        spline_basis=basis, covariate_names=covs, covariate_center=np.array(centers),
        covariate_scale=np.array(scales), unit_covariates=UX,
        effect=spec.effect, phases=bool(spec.phases),
        end_t=(pd.to_numeric(units["end_t"], errors="coerce").to_numpy(dtype=float)
               if "end_t" in units.columns else np.full(N, np.nan)),
        curve_max=int(structure.curve_max),
        identified_max=structure.identified_max, structure=structure,
    )
    if indicators is not None and len(indicators.indicators):
        design = _attach_indicators(design, indicators, spec)
    D, e = design.intervention(unit_idx, t)
    Z, Zlat = design.codes_at(unit_idx, t)
    rows = Rows(unit_idx, t, D, e, Z, Zlat, X, design.phase(unit_idx, t))
    regular = np.ones(len(t), dtype=bool)
    if design.mixture is not None:
        regular = ~np.isin(unit_idx, design.mixture.units)
    return replace(design, rows=rows, regular=regular)


def _attach_indicators(design: Design, im: IndicatorMatrix, spec: ModelSpec) -> Design:
    names = list(spec.indicators) if spec.indicators is not None else im.names
    unknown = [n for n in names if n not in im.names]
    if unknown:
        raise ModelSpecError(f"indicator(s) {unknown} not in the encoded indicators {im.names}")
    inds = tuple(im.get(n) for n in names)
    unit_pos = {u: i for i, u in enumerate(design.unit_names)}
    cells = im.cells[im.cells["indicator"].isin(names)].copy()
    cells = cells[cells["unit"].astype(str).isin(unit_pos)].reset_index(drop=True)
    k_of = {n: k for k, n in enumerate(names)}
    cells["k"] = cells["indicator"].map(k_of).astype(int)
    cells["u"] = cells["unit"].astype(str).map(unit_pos).astype(int)
    # comparison units take no part in the collaborative: uncoded, they sit at the reference
    # level (standardised 0 for continuous indicators) rather than being imputed
    comp = ~design.participating[cells["u"].to_numpy()] & (cells["status"] != "observed").to_numpy()
    # placeholders, not codes: the priors of latent codes must not learn from them
    cells["uncoded_comparison"] = comp
    if comp.any():
        cells.loc[comp, "value"] = [inds[k].center if inds[k].type == "continuous" else 0.0
                                    for k in cells.loc[comp, "k"]]
        cells.loc[comp, "status"] = "observed"
        cells.loc[comp, "probs"] = None
    # the value the linear predictor uses: level index, or the standardised continuous value
    zvalue = np.full(len(cells), np.nan)
    latent_pos = np.full(len(cells), -1, dtype=int)
    latent_cont: dict[int, list[int]] = {}
    for i, rec in enumerate(cells.itertuples(index=False)):
        ind = inds[rec.k]
        if rec.status == "observed":
            if ind.type == "continuous":
                zvalue[i] = (float(rec.value) - ind.center) / (ind.scale or 1.0)
            else:
                zvalue[i] = float(rec.value)
        elif ind.type == "continuous":
            lst = latent_cont.setdefault(rec.k, [])
            latent_pos[i] = len(lst)
            lst.append(i)
    cells["zvalue"] = zvalue
    cells["latent_pos"] = latent_pos
    cell_of: dict[tuple[int, int], np.ndarray] = {}
    for i, rec in enumerate(cells.itertuples(index=False)):
        arr = cell_of.setdefault((rec.k, rec.u), np.full(design.T, -1, dtype=int))
        lo, hi = max(int(rec.t_start), 0), min(int(rec.t_end), design.T - 1)
        arr[lo:hi + 1] = i
    missing_units = [design.unit_names[u] for u in range(design.n_units)
                     for k in range(len(inds)) if (k, u) not in cell_of
                     or (cell_of[(k, u)] < 0).any()]
    if missing_units:
        raise ModelSpecError(
            f"indicator cells do not cover every unit-period (e.g. units {missing_units[:5]}); "
            "encode indicators against the same panel")
    design = replace(design, indicators=inds, cells=im.cells, cell_of=cell_of, cell_info=cells,
                     n_latent={k: len(v) for k, v in latent_cont.items()},
                     latent_cont={k: np.array(v) for k, v in latent_cont.items()})
    return replace(design, mixture=_build_mixture(design))


def _build_mixture(d: Design) -> Mixture | None:
    info = d.cell_info
    assert info is not None  # called once the cells are attached
    disc = {k for k, ind in enumerate(d.indicators) if ind.type != "continuous"}
    latent = info[(info["status"] != "observed") & info["k"].isin(disc)]
    if latent.empty:
        return None
    units = np.array(sorted(latent["u"].unique()), dtype=int)
    combos_all: list[list[dict[int, int]]] = []
    entries_uc, entries_k, entries_l, entries_c = [], [], [], []
    for u in units:
        cl = latent[latent["u"] == u]
        ids = [int(i) for i in cl.index]
        choices = [range(d.indicators[int(info.at[i, "k"])].n_levels) for i in ids]
        n = int(np.prod([len(c) for c in choices]))
        if n > MAX_COMBOS:
            raise ModelSpecError(
                f"unit '{d.unit_names[u]}' has {len(ids)} latent indicator codes ({n} joint "
                f"configurations > {MAX_COMBOS}); use a consensus rule other than 'uncertain' or "
                "fewer time-varying indicators")
        combos_all.append([dict(zip(ids, levels)) for levels in itertools.product(*choices)])
    C = max(len(c) for c in combos_all)
    for um, combos in enumerate(combos_all):
        for c, combo in enumerate(combos):
            for cid, lev in combo.items():
                st = info.at[cid, "status"]
                entries_uc.append(um * C + c)
                entries_l.append(lev)
                if st == "missing":
                    entries_k.append(int(info.at[cid, "k"]))
                    entries_c.append(0.0)
                else:  # uncertain: coders' votes
                    probs = np.asarray(info.at[cid, "probs"], dtype=float)
                    entries_k.append(-1)
                    entries_c.append(float(np.log(max(probs[lev], 1e-12))))
    n_combos = np.array([len(c) for c in combos_all])
    pad = np.ones(len(units) * C, dtype=bool)
    for um, n in enumerate(n_combos):
        pad[um * C: um * C + n] = False
    return Mixture(units=units, C=C, n_combos=n_combos, combos=combos_all,
                   prior_uc=np.array(entries_uc, dtype=int),
                   prior_ind=np.array(entries_k, dtype=int),
                   prior_level=np.array(entries_l, dtype=int),
                   prior_const=np.array(entries_c, dtype=float), pad_mask=pad)
