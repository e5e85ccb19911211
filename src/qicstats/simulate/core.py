"""Seeded synthetic QIC panels with every parameter known.

:func:`simulate` draws a hierarchical controlled interrupted time series from the model of
``MODEL.md``: units (teams) nested in sites nested in collaboratives, staggered joins,
comparison units that never join, a non-linear secular trend, random effects at every level on
the baseline, the level change and the slope change, coded qualitative indicators (with waves,
several coders, coder error and missing codes) acting as main effects and moderators, and
overdispersion. It returns the tables an analyst would have (panel, units, indicators,
codebook) together with the truth (every parameter, every random effect and the true
estimands on the response scale), and :meth:`SimulatedQIC.write` stores them as files.

The data-generating model, for unit ``i`` in grid period ``t = 0..T-1`` with join index
``T_i`` (comparison units: never), ``D_it = 1[t >= T_i]`` (or ``min(1, (t - T_i + 1) / r)``
with a ramp of ``r`` periods) and ``e_it = (t - T_i) * 1[t >= T_i]``::

    eta_it = intercept + f(t)
           + u_collaborative[c(i)] + u_site[s(i)] + u_unit[i]
           + D_it * (level_change + v_level_collaborative[c] + v_level_site[s] + v_level_unit[i]
                     + sum_k ind_level[k] * z_ik(t))
           + e_it * (slope_change + v_slope_collaborative[c] + v_slope_site[s] + v_slope_unit[i]
                     + sum_k ind_slope[k] * z_ik(t))
           + sum_k ind_main[k] * z_ik(t)

    f(t) = trend_linear * t / (T - 1) + trend_amplitude * sin(2 * pi * t / (T - 1))

with a logit link (binomial, beta-binomial), a log link and ``log(exposure)`` offset (Poisson,
negative binomial) or the identity (Gaussian). ``z_ik(t)`` is the *true* indicator value as
the model uses it: binary 0/1; ordinal the monotonic effect ``mo(level)`` in [0, 1]
(``mo(0) = 0``, ``mo(l) = sum_{j<l} zeta_j``, ``zeta`` a simplex); continuous the
(standardised) value. Codes are step functions from each wave; before the first wave the
first wave's value holds when the codebook says ``carry_back`` (else the lowest level / 0).
Comparison units have no codes and ``z = 0``.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from qicstats.data.columns import FAMILIES
from qicstats.data.panel import COMPARISON
from qicstats.errors import ConfigError, Problem, ProblemCollector, QicstatsError, RunExistsError

__all__ = [
    "DEFAULT_SEED",
    "FILE_NAMES",
    "PRESETS",
    "TRUTH_ROWS_FILE",
    "SimulatedQIC",
    "resolve_settings",
    "simulate",
    "simulate_patient_rows",
]

DEFAULT_SEED = 20261122

#: files :meth:`SimulatedQIC.write` produces (key -> file name)
FILE_NAMES: dict[str, str] = {
    "panel": "panel.csv",
    "units": "units.csv",
    "indicators": "indicators.csv",
    "codebook": "codebook.yaml",
    "truth": "truth.json",
    "readme": "README.md",
}
#: written too when a simulation has per-row truth (the design zoo)
TRUTH_ROWS_FILE = "truth_rows.csv"

_BINOMIAL = ("binomial", "betabinomial")
_COUNTS = ("poisson", "negbinomial")
_ADJUDICATED = "adjudicated"

# ---------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------

_MANAGEMENT = {
    "name": "management_support",
    "label": "Management support",
    "type": "ordinal",
    "levels": ["weak", "moderate", "strong"],
    "role": "moderator",
    "describes": "unit",
    "carry_back": True,
    "waves": [0, 12],
    "wave_anchor": "start",
    "level_probs": [0.3, 0.45, 0.25],
    "change_prob": 0.3,
}

_COORDINATOR = {
    "name": "coordinator_active",
    "label": "Local coordinator active",
    "type": "binary",
    "levels": ["no", "yes"],
    "role": "both",
    "describes": "unit",
    "carry_back": True,
    "waves": [0],
    "wave_anchor": "join",
    "level_probs": [0.35, 0.65],
    "change_prob": 0.0,
}

_BASE: dict[str, Any] = {
    "family": "betabinomial",
    "n_units": 100,
    "n_comparison": 25,
    "n_periods": 36,
    "n_collaboratives": 4,
    "sites_per_collaborative": 5,
    "comparison_sites": None,
    "start_period": "2022-01",
    "min_pre_periods": 6,
    "join_spread": 2,
    "ramp": 0,
    "intercept": -0.4,
    "trend_linear": 0.6,
    "trend_amplitude": 0.09,
    "level_change": 0.15,
    "slope_change": 0.01,
    "sd_u_collaborative": 0.3,
    "sd_u_site": 0.2,
    "sd_u_unit": 0.25,
    "sd_level_collaborative": 0.15,
    "sd_level_site": 0.1,
    "sd_level_unit": 0.1,
    "sd_slope_collaborative": 0.01,
    "sd_slope_site": 0.005,
    "sd_slope_unit": 0.005,
    "phi": 150.0,
    "alpha": 20.0,
    "sigma": 0.25,
    "denominator_mean": 40.0,
    "denominator_min": 5,
    "size_sd": 0.35,
    "exposure_min": 300.0,
    "exposure_max": 1500.0,
    "row_drop_share": 0.02,
    "indicators": [_MANAGEMENT, _COORDINATOR],
    "ind_level": {"management_support": 0.35, "coordinator_active": 0.25},
    "ind_slope": {"management_support": 0.01, "coordinator_active": 0.0},
    "ind_main": {"management_support": 0.0, "coordinator_active": 0.1},
    "mo_simplex": {"management_support": [0.6, 0.4]},
    "missing_code_share": {"management_support": 0.10, "coordinator_active": 0.0},
    "coders": ["A", "B"],
    "double_code_share": 0.4,
    "coder_accuracy": 0.88,
    "horizons": [12],
}


def _preset(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(_BASE)
    out.update(copy.deepcopy(changes))
    return out


_BENCH_INDICATORS = [
    dict(_MANAGEMENT),
    dict(_COORDINATOR, role="moderator"),
]
_BENCH = {
    "family": "binomial",
    "indicators": _BENCH_INDICATORS,
    "ind_main": {"management_support": 0.0, "coordinator_active": 0.0},
    "sd_level_unit": 0.0,
    "sd_slope_unit": 0.0,
    "missing_code_share": {"management_support": 0.0, "coordinator_active": 0.0},
    "coders": ["A"],
    "double_code_share": 0.0,
    "coder_accuracy": 1.0,
}

#: named settings; every key can be overridden (see :func:`simulate`)
PRESETS: dict[str, dict[str, Any]] = {
    "demo": _preset(),
    "small": _preset(n_units=24, n_comparison=6, n_periods=18, n_collaboratives=2,
                     sites_per_collaborative=3, family="binomial", horizons=[6]),
    "S": _preset(n_units=40, n_comparison=8, n_periods=24, n_collaboratives=4,
                 sites_per_collaborative=4, **_BENCH),
    "M": _preset(n_units=200, n_comparison=40, n_periods=36, n_collaboratives=10,
                 sites_per_collaborative=8, **_BENCH),
    "L": _preset(n_units=1000, n_comparison=200, n_periods=48, n_collaboratives=20,
                 sites_per_collaborative=20, **_BENCH),
}

#: settings whose sign is flipped when a binomial-type preset is simulated as counts
#: (for events per bed-day, improvement means fewer events)
_SIGNED = ("trend_linear", "level_change", "slope_change")
_SIGNED_DICTS = ("ind_level", "ind_slope", "ind_main")
_COUNT_INTERCEPT = -5.0
_GAUSSIAN_INTERCEPT = 0.0

_DICT_KEYS = ("ind_level", "ind_slope", "ind_main", "mo_simplex", "missing_code_share")


# ---------------------------------------------------------------------------------------
# settings
# ---------------------------------------------------------------------------------------

def resolve_settings(preset: str = "demo", overrides: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Return the full, checked settings of a preset with ``overrides`` applied.

    Dict-valued settings (``ind_level``, ``ind_slope``, ``ind_main``, ``mo_simplex``,
    ``missing_code_share``) are merged key by key; every other override replaces the preset's
    value. When ``family`` is changed from a binomial preset to a count family, the preset's
    default intercept becomes -5.0 (about 7 events per 1,000 bed-days) and the trend, change
    and indicator effects change sign (improvement means fewer events) unless they are
    overridden too; for ``gaussian`` the default intercept becomes 0.

    Raises
    ------
    ConfigError
        Unknown preset, unknown setting, or a value of the wrong type or out of range (all
        problems at once).
    """
    col = ProblemCollector()
    overrides = dict(overrides or {})
    if preset not in PRESETS:
        col.add("unknown_preset", f"unknown simulation preset {preset!r}",
                examples=[preset], count=1,
                hint=f"use one of {sorted(PRESETS)} or a design-zoo preset (stepped_wedge, "
                "short_panel, single_series, collaborative, collaborative_200, large, "
                "few_collaboratives, counts)")
        col.raise_if_errors(ConfigError)
    cfg = copy.deepcopy(PRESETS[preset])
    unknown = sorted(set(overrides) - set(cfg))
    if unknown:
        col.add("unknown_setting", "unknown simulation setting(s)", count=len(unknown),
                examples=unknown, hint=f"settings are: {', '.join(sorted(cfg))}")
    overrides = {k: v for k, v in overrides.items() if k in cfg}
    user_keys = {k: set(v) for k, v in overrides.items()
                 if k in _DICT_KEYS and isinstance(v, Mapping)}

    family = overrides.get("family", cfg["family"])
    if family in FAMILIES and family != cfg["family"]:
        if family in _COUNTS and cfg["family"] not in _COUNTS:
            cfg["intercept"] = _COUNT_INTERCEPT
            for key in _SIGNED:
                cfg[key] = -cfg[key]
            for key in _SIGNED_DICTS:
                cfg[key] = {k: -v for k, v in cfg[key].items()}
        elif family == "gaussian":
            cfg["intercept"] = _GAUSSIAN_INTERCEPT

    for key, value in overrides.items():
        if key in _DICT_KEYS:
            if not isinstance(value, Mapping):
                col.add("bad_setting", f"setting {key!r} must be a mapping indicator -> value",
                        column=key, count=1, examples=[repr(value)],
                        hint=f"e.g. --set {key}.management_support=0.3")
                continue
            merged = dict(cfg[key])
            merged.update(copy.deepcopy(dict(value)))
            cfg[key] = merged
        else:
            cfg[key] = copy.deepcopy(value)
    _check_settings(cfg, col, user_keys)
    col.raise_if_errors(ConfigError)
    # fill defaults of indicators not named in the effect dicts
    for ind in cfg["indicators"]:
        name = ind["name"]
        for key in ("ind_level", "ind_slope", "ind_main", "missing_code_share"):
            cfg[key].setdefault(name, 0.0)
        if ind["type"] == "ordinal" and name not in cfg["mo_simplex"]:
            k = len(ind["levels"]) - 1
            cfg["mo_simplex"][name] = [1.0 / k] * k
        ind.setdefault("label", name)
        ind.setdefault("role", "moderator")
        ind.setdefault("describes", "unit")
        ind.setdefault("carry_back", True)
        ind.setdefault("waves", [0])
        ind.setdefault("wave_anchor", "join")
        ind.setdefault("change_prob", 0.0)
        if ind["type"] != "continuous":
            ind.setdefault("level_probs", [1.0 / len(ind["levels"])] * len(ind["levels"]))
    return cfg


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) \
        and math.isfinite(float(v))


def _check_settings(cfg: dict[str, Any], col: ProblemCollector,
                    user_keys: Mapping[str, set] | None = None) -> None:
    """Collect every out-of-range or mistyped setting."""

    def num(key: str, lo: float | None = None, hi: float | None = None, *, integer: bool = False,
            lo_open: bool = False, hi_open: bool = False, allow_none: bool = False) -> bool:
        v = cfg[key]
        if v is None and allow_none:
            return True
        ok = _is_num(v) and (not integer or float(v).is_integer())
        if ok and lo is not None:
            ok = v > lo if lo_open else v >= lo
        if ok and hi is not None:
            ok = v < hi if hi_open else v <= hi
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, " \
                  f"{hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
            col.add("bad_setting", f"setting {key!r} must be "
                    f"{'an integer' if integer else 'a number'} in {rng}", column=key,
                    count=1, examples=[repr(v)], hint=f"e.g. --set {key}=<value in {rng}>")
            return False
        if integer:
            cfg[key] = int(v)
        return True

    ok_sizes = all([
        num("n_units", 2, integer=True), num("n_comparison", 0, integer=True),
        num("n_periods", 4, integer=True), num("n_collaboratives", 1, integer=True),
        num("sites_per_collaborative", 1, integer=True),
        num("min_pre_periods", 1, integer=True), num("join_spread", 0, integer=True),
        num("comparison_sites", 1, integer=True, allow_none=True),
    ])
    num("ramp", 0, integer=True)
    for key in ("intercept", "trend_linear", "trend_amplitude", "level_change",
                "slope_change"):
        num(key)
    for key in [k for k in cfg if k.startswith("sd_")]:
        num(key, 0)
    for key in ("phi", "alpha", "sigma", "denominator_mean", "exposure_min"):
        num(key, 0, lo_open=True)
    num("exposure_max", 0, lo_open=True)
    num("denominator_min", 0, integer=True)
    num("size_sd", 0)
    num("row_drop_share", 0, 0.5)
    num("double_code_share", 0, 1)
    num("coder_accuracy", 0, 1, lo_open=True)
    if ok_sizes:
        n_part = cfg["n_units"] - cfg["n_comparison"]
        n_sites = cfg["n_collaboratives"] * cfg["sites_per_collaborative"]
        if n_part < n_sites:
            col.add("bad_setting", f"{n_part} participating units cannot fill {n_sites} sites "
                    "(n_collaboratives x sites_per_collaborative)", column="n_units", count=1,
                    examples=[f"n_units={cfg['n_units']}", f"n_comparison={cfg['n_comparison']}"],
                    hint="raise n_units or lower n_comparison / sites_per_collaborative")
        need = cfg["min_pre_periods"] + cfg["join_spread"] + 2
        if cfg["n_periods"] < need:
            col.add("bad_setting", f"n_periods={cfg['n_periods']} leaves no post-join periods",
                    column="n_periods", count=1, examples=[cfg["n_periods"]],
                    hint=f"use n_periods >= {need} (min_pre_periods + join_spread + 2)")
        if cfg["comparison_sites"] is not None and cfg["n_comparison"] \
                and cfg["comparison_sites"] > cfg["n_comparison"]:
            col.add("bad_setting", "more comparison sites than comparison units",
                    column="comparison_sites", count=1, examples=[cfg["comparison_sites"]],
                    hint="lower comparison_sites")
    if _is_num(cfg["exposure_min"]) and _is_num(cfg["exposure_max"]) \
            and cfg["exposure_max"] < cfg["exposure_min"]:
        col.add("bad_setting", "exposure_max is below exposure_min", column="exposure_max",
                count=1, examples=[cfg["exposure_max"]], hint="swap the two")
    if cfg["family"] not in FAMILIES:
        col.add("bad_setting", f"unknown family {cfg['family']!r}", column="family", count=1,
                examples=[cfg["family"]], hint=f"use one of {list(FAMILIES)}")
    try:
        _period_ordinal(str(cfg["start_period"]))
    except ValueError:
        col.add("bad_setting", "start_period must be a month 'YYYY-MM'", column="start_period",
                count=1, examples=[cfg["start_period"]], hint="e.g. --set start_period=2022-01")
    hz = cfg["horizons"]
    if not isinstance(hz, list) or not all(_is_num(h) and float(h).is_integer() and h >= 0
                                           for h in hz):
        col.add("bad_setting", "horizons must be a list of non-negative integers",
                column="horizons", count=1, examples=[repr(hz)], hint="e.g. --set horizons=[6,12]")
    else:
        cfg["horizons"] = [int(h) for h in hz]
    coders = cfg["coders"]
    if not isinstance(coders, list) or not coders or \
            not all(isinstance(c, str) and c and c != _ADJUDICATED for c in coders) or \
            len(set(coders)) != len(coders):
        col.add("bad_setting", "coders must be a list of distinct, non-empty names "
                f"(not {_ADJUDICATED!r})", column="coders", count=1, examples=[repr(coders)],
                hint="e.g. --set coders=[A,B]")
    _check_indicators(cfg, col, user_keys or {})


def _check_indicators(cfg: dict[str, Any], col: ProblemCollector,
                      user_keys: Mapping[str, set]) -> None:
    specs = cfg["indicators"]
    if not isinstance(specs, list) or not all(isinstance(s, Mapping) for s in specs):
        col.add("bad_setting", "indicators must be a list of indicator specifications",
                column="indicators", count=1, examples=[repr(specs)[:60]],
                hint="e.g. --set indicators=[] for none")
        return
    cfg["indicators"] = specs = [dict(s) for s in specs]
    names = []
    for spec in specs:
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            col.add("bad_indicator", "an indicator has no name", column="indicators", count=1,
                    examples=[repr(spec)[:60]], hint="give each indicator a 'name'")
            continue
        names.append(name)
        typ = spec.get("type")
        if typ not in ("binary", "ordinal", "continuous"):
            col.add("bad_indicator", f"indicator {name!r} has unknown type {typ!r}",
                    column="indicators", count=1, examples=[name],
                    hint="type is binary, ordinal or continuous")
            continue
        levels = spec.get("levels", [])
        if typ == "binary" and (not isinstance(levels, list) or len(levels) != 2):
            col.add("bad_indicator", f"binary indicator {name!r} needs exactly two levels",
                    column="indicators", count=1, examples=[name], hint='levels: ["no", "yes"]')
        if typ == "ordinal" and (not isinstance(levels, list) or len(levels) < 2):
            col.add("bad_indicator", f"ordinal indicator {name!r} needs >= 2 ordered levels",
                    column="indicators", count=1, examples=[name],
                    hint="levels: [weak, moderate, strong]")
        if spec.get("role", "moderator") not in ("main", "moderator", "both"):
            col.add("bad_indicator", f"indicator {name!r}: role must be main, moderator or both",
                    column="indicators", count=1, examples=[spec.get("role")], hint="")
        if spec.get("wave_anchor", "join") not in ("start", "join"):
            col.add("bad_indicator", f"indicator {name!r}: wave_anchor must be start or join",
                    column="indicators", count=1, examples=[spec.get("wave_anchor")],
                    hint="start: the collaborative's start month; join: the unit's join month")
        waves = spec.get("waves", [0])
        if not isinstance(waves, list) or not waves or not all(
                _is_num(w) and float(w).is_integer() and w >= 0 for w in waves):
            col.add("bad_indicator", f"indicator {name!r}: waves must be a non-empty list of "
                    "month offsets >= 0", column="indicators", count=1, examples=[repr(waves)],
                    hint="e.g. waves: [0, 12]")
        probs = spec.get("level_probs")
        if (typ != "continuous" and probs is not None and isinstance(levels, list)
                and (not isinstance(probs, list) or len(probs) != len(levels)
                     or not all(_is_num(p) and p >= 0 for p in probs)
                     or not math.isclose(sum(probs), 1.0, abs_tol=1e-6))):
            col.add("bad_indicator", f"indicator {name!r}: level_probs must be "
                    f"{len(levels)} probabilities summing to 1", column="indicators",
                    count=1, examples=[repr(probs)], hint="e.g. level_probs: [0.3, 0.7]")
        cp = spec.get("change_prob", 0.0)
        if not (_is_num(cp) and 0 <= cp <= 1):
            col.add("bad_indicator", f"indicator {name!r}: change_prob must be in [0, 1]",
                    column="indicators", count=1, examples=[repr(cp)], hint="")
    if len(set(names)) != len(names):
        col.add("bad_indicator", "indicator names repeat", column="indicators", count=1,
                examples=names, hint="give each indicator a distinct name")
    by_name = {s.get("name"): s for s in specs}
    for key in _DICT_KEYS:
        d = cfg[key]
        stray = sorted(set(d) - set(names))
        bad = [k for k in stray if k in user_keys.get(key, set())]
        if bad:
            col.add("bad_setting", f"{key} names indicator(s) the simulation does not have",
                    column=key, count=len(bad), examples=bad,
                    hint=f"indicators are: {', '.join(map(str, names)) or '(none)'}")
        for k in stray:  # effects of indicators an `indicators` override removed
            d.pop(k)
        for k, v in d.items():
            if key == "mo_simplex":
                spec = by_name[k]
                kk = len(spec.get("levels", [])) - 1
                if spec.get("type") != "ordinal":
                    col.add("bad_setting", f"mo_simplex given for non-ordinal indicator {k!r}",
                            column=key, count=1, examples=[k], hint="drop it")
                elif not isinstance(v, list) or len(v) != kk or not all(
                        _is_num(x) and x >= 0 for x in v) or not math.isclose(sum(v), 1.0,
                                                                          abs_tol=1e-6):
                    col.add("bad_setting", f"mo_simplex[{k!r}] must be {kk} non-negative "
                            "numbers summing to 1", column=key, count=1, examples=[repr(v)],
                            hint="e.g. [0.6, 0.4]")
            elif key == "missing_code_share":
                if not (_is_num(v) and 0 <= v <= 1):
                    col.add("bad_setting", f"{key}[{k!r}] must be a share in [0, 1]",
                            column=key, count=1, examples=[repr(v)], hint="e.g. 0.1")
            elif not _is_num(v):
                col.add("bad_setting", f"{key}[{k!r}] must be a number", column=key, count=1,
                        examples=[repr(v)], hint="e.g. 0.25")


# ---------------------------------------------------------------------------------------
# the result object
# ---------------------------------------------------------------------------------------

@dataclass
class SimulatedQIC:
    """A simulated QIC dataset and its truth.

    Attributes
    ----------
    panel : DataFrame
        ``unit``, ``period`` (``YYYY-MM``) and the family's outcome: ``numerator`` and
        ``denominator`` (binomial, betabinomial), ``count`` and ``exposure`` (poisson,
        negbinomial) or ``value`` (gaussian). About ``row_drop_share`` of the unit-periods
        are missing (gaps in the series).
    units : DataFrame
        ``unit``, ``collaborative`` (``<NA>`` for comparison units), ``site``,
        ``join_period`` (``YYYY-MM``, ``<NA>`` for comparison units), ``end_period`` (all
        ``<NA>``).
    indicators : DataFrame
        ``unit``, ``indicator``, ``value`` (level label, or the number as text for continuous
        indicators), ``wave`` (``YYYY-MM``), ``coder``; one row per coder and item, plus an
        ``adjudicated`` row for every double-coded item. Empty (with these columns) when the
        simulation has no indicators.
    codebook : dict
        ``{"indicators": {name: {label, type, levels, role, describes, carry_back}}}``.
    truth : dict
        Settings, parameters, every random effect, the true indicator levels and the true
        estimands (see :func:`simulate`).
    truth_rows : DataFrame or None
        Designs of the zoo (:mod:`qicstats.simulate.zoo`): per panel row, the true mean as
        observed and without the intervention and the periods since joining
        (``truth_rows.csv``).
    readme : str or None
        The ``README.md`` text (``None``: written from :attr:`truth`).
    """

    panel: pd.DataFrame
    units: pd.DataFrame
    indicators: pd.DataFrame
    codebook: dict
    truth: dict
    truth_rows: pd.DataFrame | None = None
    readme: str | None = None

    def write(self, directory: str | Path, *, overwrite: bool = False) -> dict[str, Path]:
        """Write the dataset as files into ``directory``, atomically.

        Files: ``panel.csv``, ``units.csv``, ``indicators.csv``, ``codebook.yaml``,
        ``truth.json`` and ``README.md`` (how the data were made). The files are written into
        a temporary sibling folder which is then renamed, so a reader never sees half a
        dataset. With ``overwrite=True`` an existing folder is replaced; files in it that the
        simulator does not write (e.g. an ``analysis.yaml``) are kept.

        Parameters
        ----------
        directory : str or Path
        overwrite : bool, default False
            Replace an existing, non-empty folder.

        Returns
        -------
        dict of str to Path
            ``{"panel", "units", "indicators", "codebook", "truth", "readme"}`` -> final path.

        Raises
        ------
        RunExistsError
            ``directory`` exists, is not empty and ``overwrite`` is False (or is a file).
        QicstatsError
            The folder cannot be written.
        """
        target = Path(directory)
        if target.exists():
            if not target.is_dir():
                raise RunExistsError(f"{target} exists and is not a folder")
            if any(target.iterdir()) and not overwrite:
                raise RunExistsError(
                    f"{target} exists and is not empty; choose another folder or pass "
                    "overwrite=True (--overwrite)")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        except OSError as err:
            raise QicstatsError(f"cannot create {target}: {err}") from err
        try:
            self._write_files(tmp)
            if target.exists():
                for entry in sorted(target.iterdir()):
                    if entry.name in FILE_NAMES.values() or entry.name == TRUTH_ROWS_FILE:
                        continue
                    if entry.is_dir():
                        shutil.copytree(entry, tmp / entry.name)
                    else:
                        shutil.copy2(entry, tmp / entry.name)
                backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-",
                                               dir=target.parent))
                backup.rmdir()
                target.rename(backup)
                try:
                    tmp.rename(target)
                except OSError:
                    backup.rename(target)
                    raise
                shutil.rmtree(backup, ignore_errors=True)
            else:
                tmp.rename(target)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise QicstatsError(f"cannot write {target}: {err}") from err
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        out = {key: target / name for key, name in FILE_NAMES.items()}
        if self.truth_rows is not None:
            out["truth_rows"] = target / TRUTH_ROWS_FILE
        return out

    def _write_files(self, folder: Path) -> None:
        def csv(df: pd.DataFrame, name: str) -> None:
            df.to_csv(folder / name, index=False, lineterminator="\n")

        csv(self.panel, FILE_NAMES["panel"])
        csv(self.units, FILE_NAMES["units"])
        csv(self.indicators, FILE_NAMES["indicators"])
        with open(folder / FILE_NAMES["codebook"], "w", encoding="utf-8", newline="\n") as fh:
            yaml.safe_dump(self.codebook, fh, sort_keys=False, allow_unicode=True,
                           default_flow_style=None, width=100)
        with open(folder / FILE_NAMES["truth"], "w", encoding="utf-8", newline="\n") as fh:
            json.dump(self.truth, fh, indent=1, allow_nan=False)
            fh.write("\n")
        with open(folder / FILE_NAMES["readme"], "w", encoding="utf-8", newline="\n") as fh:
            fh.write(self.readme if self.readme is not None else _readme(self))
        if self.truth_rows is not None:
            csv(self.truth_rows, TRUTH_ROWS_FILE)

    def estimands(self) -> pd.DataFrame:
        """The true estimands of :attr:`truth` as a tidy DataFrame."""
        return pd.DataFrame(self.truth["estimands"])


# ---------------------------------------------------------------------------------------
# simulation
# ---------------------------------------------------------------------------------------

def _period_ordinal(label: str) -> int:
    year, month = label.split("-")
    if len(year) != 4 or len(month) != 2 or not (1 <= int(month) <= 12):
        raise ValueError(label)
    return int(year) * 12 + int(month) - 1


def _period_labels(start: str, n: int) -> list[str]:
    o = _period_ordinal(start)
    return [f"{(o + t) // 12:04d}-{(o + t) % 12 + 1:02d}" for t in range(n)]


def _invlogit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _response(family: str) -> Callable[[np.ndarray], np.ndarray]:
    if family in _BINOMIAL:
        return _invlogit
    if family in _COUNTS:
        return np.exp
    return lambda x: np.asarray(x, dtype=float)


def panel_rows(keep: np.ndarray, unit_names: Sequence[str], labels: Sequence[str],
               cols: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The panel table of the kept cells of unit x period arrays.

    Parameters
    ----------
    keep : ndarray of bool, shape (units, periods)
    unit_names, labels : sequences of str
        Unit names and period labels.
    cols : mapping of str to ndarray of shape (units, periods)
        The outcome columns.

    Returns
    -------
    DataFrame
        ``unit``, ``period`` and ``cols``, sorted by unit, then period.
    """
    ii, tt = np.nonzero(keep)  # row-major: sorted by unit, then period
    panel = pd.DataFrame({"unit": pd.array([unit_names[i] for i in ii], dtype="string"),
                          "period": pd.array([labels[t] for t in tt], dtype="string")})
    for col, arr in cols.items():
        panel[col] = arr[ii, tt]
    return panel


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def simulate(preset: str = "demo", *, seed: int = DEFAULT_SEED, **overrides: Any
             ) -> SimulatedQIC:
    """Simulate a QIC dataset with every parameter known.

    Everything is drawn from one ``numpy.random.default_rng(seed)``: the same preset, seed and
    overrides give identical tables and, once written, byte-identical files.

    Parameters
    ----------
    preset : {"demo", "small", "S", "M", "L"}
        ``demo``: 100 units (25 comparison) x 36 months, 4 collaboratives of 5 sites,
        beta-binomial, two indicators (``management_support`` ordinal moderator with two
        waves, ``coordinator_active`` binary main effect and moderator), coders A and B.
        ``small``: 24 units (6 comparison) x 18 months, 2 collaboratives of 3 sites,
        binomial, the same two indicators and coders (fast tests). ``S`` (40 x 24, 4
        collaboratives), ``M`` (200 x 36, 10), ``L`` (1000 x 48, 20): the benchmark of
        PERFORMANCE-NOTES: binomial, collaborative and site effects on the baseline, level
        and slope change (unit effects on the baseline only), both indicators as moderators,
        coded once without error and without missing codes.
    seed : int, default 20261122
    **overrides
        Any setting of the preset (:data:`PRESETS`), checked by :func:`resolve_settings`:

        - ``family``: ``binomial``, ``betabinomial``, ``poisson``, ``negbinomial``,
          ``gaussian``.
        - ``n_units`` (all units, comparison included), ``n_comparison``, ``n_periods``,
          ``n_collaboratives``, ``sites_per_collaborative``, ``comparison_sites`` (default:
          as many as the participating units' mean site size implies), ``start_period``
          (``YYYY-MM`` of grid index 0).
        - ``min_pre_periods`` (the earliest collaborative start; starts are spread evenly
          from there to about the middle of the window), ``join_spread`` (units join at their
          collaborative's start + 0..join_spread months), ``ramp`` (periods over which the
          change phases in; 0 = a step).
        - ``intercept``, ``trend_linear``, ``trend_amplitude`` (``f(t)`` above),
          ``level_change``, ``slope_change`` (per period).
        - ``sd_u_collaborative``, ``sd_u_site``, ``sd_u_unit`` (baseline),
          ``sd_level_collaborative``, ``sd_level_site``, ``sd_level_unit``,
          ``sd_slope_collaborative``, ``sd_slope_site``, ``sd_slope_unit``.
        - ``phi`` (beta-binomial concentration: ``p_it ~ Beta(p phi, (1 - p) phi)``),
          ``alpha`` (negative binomial as in PyMC: variance ``mu + mu^2 / alpha``),
          ``sigma`` (Gaussian residual sd).
        - ``denominator_mean``, ``denominator_min``, ``size_sd`` (denominators are
          ``Poisson(denominator_mean * m_i) + denominator_min`` with unit size multipliers
          ``m_i = exp(N(0, size_sd))``); ``exposure_min``, ``exposure_max`` (each unit's mean
          bed-days per month is uniform between them; monthly exposure is Poisson around it).
        - ``row_drop_share``: share of unit-periods dropped at random (gaps).
        - ``indicators``: list of indicator specifications (``name``, ``label``, ``type``,
          ``levels``, ``role``, ``describes``, ``carry_back``, ``waves`` as month offsets,
          ``wave_anchor`` ``"start"`` (collaborative start) or ``"join"`` (unit join),
          ``level_probs`` of the first wave, ``change_prob`` of a one-step change at each
          later wave); ``[]`` for none.
        - ``ind_level``, ``ind_slope``, ``ind_main`` (effects per indicator: highest vs lowest
          level for ordinal, yes vs no for binary, per sd for continuous), ``mo_simplex``
          (ordinal step shares), ``missing_code_share`` (share of participating units with no
          codes of that indicator): dicts merged into the preset's.
        - ``coders`` (coder names; the first codes every item), ``double_code_share`` (each
          item is also coded by every other coder with this probability, and gets an
          ``adjudicated`` row with the true value), ``coder_accuracy`` (probability a coder
          records the true level; otherwise an adjacent level).
        - ``horizons``: periods after joining of the ``att_horizon_<h>`` estimands.

    Returns
    -------
    SimulatedQIC
        ``truth`` holds ``preset``, ``seed``, ``family``, ``n_units``, ``n_periods``, the
        ``trend`` (formula and values), the ``parameters``, the ``effects`` (every random
        effect by level and name), ``collaborative_start``, ``true_indicator_levels``, the
        ``settings`` and the ``estimands`` on the response scale (probability for binomial
        families, rate per exposure unit for counts, value for gaussian), computed from the
        true parameters and true indicator values:

        - ``att``: mean over observed post-join rows of participating units of
          ``p(D, e as observed) - p(D = 0, e = 0)``; overall, per collaborative, per unit.
        - ``trend_change``: mean over the same rows of ``p_cf(i, t) - p_cf(i, T_i)``.
        - ``att_horizon_<h>``: mean over participating units with ``T_i + h <= T - 1`` of
          ``p(i, T_i + h) - p_cf(i, T_i + h)`` (all grid periods, observed or not).

        Each estimand record is ``{"estimand", "scope", "group", "value", "n"}`` with ``n``
        the number of unit-periods (or units, for horizons) averaged.

    Raises
    ------
    ConfigError
        Unknown preset or settings, or values out of range.
    """
    if not (_is_num(seed) and float(seed).is_integer() and seed >= 0):
        raise ConfigError([_problem("bad_seed", "seed must be a non-negative integer", seed)])
    seed = int(seed)
    cfg = resolve_settings(preset, overrides)
    rng = np.random.default_rng(seed)
    family = cfg["family"]
    T = cfg["n_periods"]
    labels = _period_labels(str(cfg["start_period"]), T)
    t_grid = np.arange(T)

    # ---- structure: collaboratives, sites, units -----------------------------------------
    C = cfg["n_collaboratives"]
    spc = cfg["sites_per_collaborative"]
    n_comp = cfg["n_comparison"]
    n_part = cfg["n_units"] - n_comp
    cw = max(1, len(str(C)))
    collabs = [f"C{c + 1:0{cw}d}" for c in range(C)]
    site_names: list[str] = []
    site_collab: list[str] = []
    for c in collabs:
        sw = max(2, len(str(spc)))
        for s in range(spc):
            site_names.append(f"{c}-S{s + 1:0{sw}d}")
            site_collab.append(c)
    n_sites = len(site_names)
    # participating units round-robin over sites (sizes differ by at most one)
    part_site_idx = np.arange(n_part) % n_sites
    if n_comp:
        n_comp_sites = cfg["comparison_sites"] or max(
            1, min(n_comp, _round_half_up(n_comp * n_sites / n_part)))
    else:
        n_comp_sites = 0
    comp_sites = [f"CMP-S{s + 1:0{max(2, len(str(n_comp_sites)))}d}"
                  for s in range(n_comp_sites)]
    comp_site_idx = np.arange(n_comp) % max(n_comp_sites, 1)

    # (unit, collaborative or None, site); Any: the collaborative is looked up only for
    # participating units, which have one
    unit_rows: list[tuple[str, Any, str]] = []
    for s_i, site in enumerate(site_names):
        members = np.flatnonzero(part_site_idx == s_i)
        uw = max(1, len(str(len(members))))
        for k in range(len(members)):
            unit_rows.append((f"{site}-T{k + 1:0{uw}d}", site_collab[s_i], site))
    for s_i, site in enumerate(comp_sites):
        members = np.flatnonzero(comp_site_idx == s_i)
        uw = max(1, len(str(len(members))))
        for k in range(len(members)):
            unit_rows.append((f"{site}-T{k + 1:0{uw}d}", None, site))
    N = len(unit_rows)
    unit_names = [r[0] for r in unit_rows]
    unit_collab = [r[1] for r in unit_rows]
    unit_site = [r[2] for r in unit_rows]
    is_part = np.array([c is not None for c in unit_collab])
    all_sites = site_names + comp_sites

    # ---- staggered starts and joins ------------------------------------------------------
    lo = cfg["min_pre_periods"]
    hi = max(lo, min(T - 1 - cfg["join_spread"] - 6, _round_half_up(T / 2)))
    starts = {c: int(s) for c, s in zip(collabs, np.rint(np.linspace(lo, hi, C)).astype(int))}
    join_offset = rng.integers(0, cfg["join_spread"] + 1, size=N)
    join_t = np.full(N, -1, dtype=int)
    for i in range(N):
        if is_part[i]:
            join_t[i] = min(T - 1, starts[unit_collab[i]] + int(join_offset[i]))

    # ---- random effects ------------------------------------------------------------------
    coll_all = collabs + ([COMPARISON] if n_comp else [])
    u_coll = dict(zip(coll_all, rng.normal(0, cfg["sd_u_collaborative"], len(coll_all))))
    u_site = dict(zip(all_sites, rng.normal(0, cfg["sd_u_site"], len(all_sites))))
    u_unit = dict(zip(unit_names, rng.normal(0, cfg["sd_u_unit"], N)))
    part_units = [u for u, p in zip(unit_names, is_part) if p]
    vl_coll = dict(zip(collabs, rng.normal(0, cfg["sd_level_collaborative"], C)))
    vl_site = dict(zip(site_names, rng.normal(0, cfg["sd_level_site"], n_sites)))
    vl_unit = dict(zip(part_units, rng.normal(0, cfg["sd_level_unit"], n_part)))
    vs_coll = dict(zip(collabs, rng.normal(0, cfg["sd_slope_collaborative"], C)))
    vs_site = dict(zip(site_names, rng.normal(0, cfg["sd_slope_site"], n_sites)))
    vs_unit = dict(zip(part_units, rng.normal(0, cfg["sd_slope_unit"], n_part)))

    # ---- indicators: true values, z(t), codes --------------------------------------------
    specs = cfg["indicators"]
    z = {}  # name -> (N, T) array
    true_rows: list[dict[str, Any]] = []
    code_rows: list[tuple[str, str, str, str, str]] = []
    coders = list(cfg["coders"])
    acc = float(cfg["coder_accuracy"])
    for spec in specs:
        name, typ = spec["name"], spec["type"]
        levels = list(spec.get("levels", []))
        K = len(levels)
        if typ == "ordinal":
            zeta = np.asarray(cfg["mo_simplex"][name], dtype=float)
            mo = np.concatenate([[0.0], np.cumsum(zeta)])
            mo[-1] = 1.0
        elif typ == "binary":
            mo = np.array([0.0, 1.0])
        zk = np.zeros((N, T))
        share = float(cfg["missing_code_share"].get(name, 0.0))
        n_missing = _round_half_up(share * n_part)
        missing = set(rng.choice(n_part, size=n_missing, replace=False).tolist()) \
            if n_missing else set()
        for p_i, u_i in enumerate(np.flatnonzero(is_part)):
            anchor = starts[unit_collab[u_i]] if spec["wave_anchor"] == "start" else join_t[u_i]
            wave_t = sorted({anchor + int(w) for w in spec["waves"]})
            wave_t = [w for w in wave_t if w < T] or [min(anchor, T - 1)]
            values: list[Any] = []
            for w_j, _ in enumerate(wave_t):
                if typ == "continuous":
                    if w_j == 0 or rng.random() < spec["change_prob"]:
                        v = round(float(rng.normal()), 3)
                    else:
                        v = values[-1]
                else:
                    if w_j == 0:
                        v = int(rng.choice(K, p=np.asarray(spec["level_probs"], float)))
                    else:
                        v = values[-1]
                        if rng.random() < spec["change_prob"]:
                            step = 1 if rng.random() < 0.7 else -1
                            if not 0 <= v + step < K:
                                step = -step
                            v = v + step
                values.append(v)
            num = [v if typ == "continuous" else float(mo[v]) for v in values]
            first = num[0] if spec["carry_back"] else 0.0
            zk[u_i, :] = first
            for w, val in zip(wave_t, num):
                zk[u_i, w:] = val
            coded = p_i not in missing
            for w, v in zip(wave_t, values):
                label = _format_value(v, typ, levels)
                true_rows.append({"unit": unit_names[u_i], "indicator": name,
                                  "wave": labels[w], "value": label, "coded": coded})
                if not coded:
                    continue
                double = len(coders) > 1 and rng.random() < cfg["double_code_share"]
                for coder in (coders if double else coders[:1]):
                    rec = _code(rng, v, typ, K, acc)
                    code_rows.append((unit_names[u_i], name, _format_value(rec, typ, levels),
                                      labels[w], coder))
                if double:
                    code_rows.append((unit_names[u_i], name, label, labels[w], _ADJUDICATED))
        z[name] = zk

    # ---- linear predictor ----------------------------------------------------------------
    trend = cfg["trend_linear"] * t_grid / (T - 1) \
        + cfg["trend_amplitude"] * np.sin(2 * np.pi * t_grid / (T - 1))
    base = np.array([u_coll[c if c is not None else COMPARISON] + u_site[s] + u_unit[u]
                     for u, c, s in zip(unit_names, unit_collab, unit_site)])
    lvl = np.array([cfg["level_change"] + vl_coll[c] + vl_site[s] + vl_unit[u]
                    if c is not None else 0.0
                    for u, c, s in zip(unit_names, unit_collab, unit_site)])
    slp = np.array([cfg["slope_change"] + vs_coll[c] + vs_site[s] + vs_unit[u]
                    if c is not None else 0.0
                    for u, c, s in zip(unit_names, unit_collab, unit_site)])
    post = is_part[:, None] & (t_grid[None, :] >= join_t[:, None])
    since = np.where(post, t_grid[None, :] - join_t[:, None], 0)
    r = cfg["ramp"]
    D = np.where(post, np.minimum(1.0, (since + 1) / r) if r > 0 else 1.0, 0.0)
    e = since.astype(float)
    main = np.zeros((N, T))
    mod_l = np.zeros((N, T))
    mod_s = np.zeros((N, T))
    for spec in specs:
        name = spec["name"]
        main += cfg["ind_main"][name] * z[name]
        mod_l += cfg["ind_level"][name] * z[name]
        mod_s += cfg["ind_slope"][name] * z[name]
    eta_cf = cfg["intercept"] + trend[None, :] + base[:, None] + main
    eta = eta_cf + D * (lvl[:, None] + mod_l) + e * (slp[:, None] + mod_s)

    # ---- outcomes on the full grid, then gaps --------------------------------------------
    out_cols: dict[str, np.ndarray] = {}
    size_mult = np.exp(rng.normal(0, cfg["size_sd"], N))
    if family in _BINOMIAL:
        n = rng.poisson(cfg["denominator_mean"] * size_mult[:, None], size=(N, T)) \
            + cfg["denominator_min"]
        p = _invlogit(eta)
        if family == "betabinomial":
            p = rng.beta(p * cfg["phi"], (1 - p) * cfg["phi"])
        y = rng.binomial(n, p)
        out_cols = {"numerator": y, "denominator": n}
    elif family in _COUNTS:
        mean_exp = rng.uniform(cfg["exposure_min"], cfg["exposure_max"], N)
        expo = np.maximum(1, rng.poisson(mean_exp[:, None], size=(N, T)))
        mu = expo * np.exp(eta)
        if family == "negbinomial":
            mu = rng.gamma(cfg["alpha"], mu / cfg["alpha"])
        out_cols = {"count": rng.poisson(mu), "exposure": expo}
    else:
        out_cols = {"value": np.round(eta + rng.normal(0, cfg["sigma"], (N, T)), 6)}
    keep = rng.random((N, T)) >= cfg["row_drop_share"]
    for t in np.flatnonzero(~keep.any(axis=0)):  # every period keeps at least one row
        keep[0, t] = True

    panel = panel_rows(keep, unit_names, labels, out_cols)

    units = pd.DataFrame({
        "unit": pd.array(unit_names, dtype="string"),
        "collaborative": pd.array(unit_collab, dtype="string"),
        "site": pd.array(unit_site, dtype="string"),
        "join_period": pd.array([labels[j] if j >= 0 else None for j in join_t],
                                dtype="string"),
        "end_period": pd.array([None] * N, dtype="string"),
    })
    indicators = pd.DataFrame(code_rows, columns=["unit", "indicator", "value", "wave", "coder"])
    indicators = indicators.astype("string")
    order = {c: k for k, c in enumerate(coders + [_ADJUDICATED])}
    if len(indicators):
        indicators = (indicators.assign(_c=indicators["coder"].map(order))
                      .sort_values(["unit", "indicator", "wave", "_c"], kind="stable")
                      .drop(columns="_c").reset_index(drop=True))

    codebook = {"indicators": {
        s["name"]: {k: v for k, v in (("label", s["label"]), ("type", s["type"]),
                                      ("levels", list(s.get("levels", []))),
                                      ("role", s["role"]), ("describes", s["describes"]),
                                      ("carry_back", bool(s["carry_back"])))
                    if not (k == "levels" and s["type"] == "continuous")}
        for s in specs}}

    # ---- truth ---------------------------------------------------------------------------
    h = _response(family)
    p_obs, p_cf = h(eta), h(eta_cf)
    estimands = _estimands(p_obs, p_cf, keep, is_part, join_t, unit_names, unit_collab,
                           collabs, cfg["horizons"], T)
    formula = (f"f(t) = {_num(cfg['trend_linear'])} * t/(T-1) + "
               f"{_num(cfg['trend_amplitude'])} * sin(2*pi*t/(T-1)), t = 0..T-1, T = {T}")
    params = {
        "intercept": _num(cfg["intercept"]),
        "level_change": _num(cfg["level_change"]),
        "slope_change": _num(cfg["slope_change"]),
        **{k: _num(cfg[k]) for k in (
            "sd_u_collaborative", "sd_u_site", "sd_u_unit",
            "sd_level_collaborative", "sd_level_site", "sd_level_unit",
            "sd_slope_collaborative", "sd_slope_site", "sd_slope_unit")},
        "ind_level": {s["name"]: _num(cfg["ind_level"][s["name"]]) for s in specs},
        "ind_slope": {s["name"]: _num(cfg["ind_slope"][s["name"]]) for s in specs},
        "ind_main": {s["name"]: _num(cfg["ind_main"][s["name"]]) for s in specs},
        "mo_simplex": {s["name"]: [_num(x) for x in cfg["mo_simplex"][s["name"]]]
                       for s in specs if s["type"] == "ordinal"},
        "phi": _num(cfg["phi"]) if family == "betabinomial" else None,
        "alpha": _num(cfg["alpha"]) if family == "negbinomial" else None,
        "sigma": _num(cfg["sigma"]) if family == "gaussian" else None,
        "ramp": int(cfg["ramp"]),
        "trend_linear": _num(cfg["trend_linear"]),
        "trend_amplitude": _num(cfg["trend_amplitude"]),
    }
    effects = {
        "u_collaborative": _fdict(u_coll), "u_site": _fdict(u_site), "u_unit": _fdict(u_unit),
        "v_level_collaborative": _fdict(vl_coll), "v_level_site": _fdict(vl_site),
        "v_level_unit": _fdict(vl_unit),
        "v_slope_collaborative": _fdict(vs_coll), "v_slope_site": _fdict(vs_site),
        "v_slope_unit": _fdict(vs_unit),
        "size_multiplier": _fdict(dict(zip(unit_names, size_mult))),
    }
    truth = {
        "preset": preset,
        "seed": seed,
        "family": family,
        "n_units": N,
        "n_periods": T,
        "link": {"binomial": "logit", "betabinomial": "logit", "poisson": "log",
                 "negbinomial": "log", "gaussian": "identity"}[family],
        "response_scale": ("probability" if family in _BINOMIAL else
                           "rate per exposure unit" if family in _COUNTS else "value"),
        "periods": {"first": labels[0], "last": labels[-1], "freq": "month"},
        "trend": {"formula": formula, "values": [_num(v) for v in trend]},
        "parameters": params,
        "parameterisation": _PARAMETERISATION,
        "effects": effects,
        "collaborative_start": {c: labels[s] for c, s in starts.items()},
        "true_indicator_levels": true_rows,
        "estimands": estimands,
        "overrides": _jsonable(dict(overrides)),
        "settings": _jsonable(cfg),
    }
    return SimulatedQIC(panel=panel, units=units, indicators=indicators, codebook=codebook,
                        truth=truth)


_PARAMETERISATION = {
    "eta": "intercept + f(t) + u_collaborative[c] + u_site[s] + u_unit[i] + D*(level_change + "
           "v_level_collaborative[c] + v_level_site[s] + v_level_unit[i] + sum_k ind_level[k]*"
           "z_k) + e*(slope_change + v_slope_collaborative[c] + v_slope_site[s] + "
           "v_slope_unit[i] + sum_k ind_slope[k]*z_k) + sum_k ind_main[k]*z_k",
    "D": "1[t >= T_i]; with ramp r > 0: min(1, (t - T_i + 1)/r) for t >= T_i; 0 for comparison "
         "units",
    "e": "(t - T_i) * 1[t >= T_i]: periods since joining, 0 in the join month",
    "z": "true indicator value: binary 0/1, ordinal mo(level) = sum of mo_simplex[:level], "
         "continuous the value; a step function from each wave; before the first wave the "
         "first wave's value if carry_back else 0; 0 for comparison units",
    "u_collaborative": f"comparison units use u_collaborative['{COMPARISON}']",
    "betabinomial": "p_it ~ Beta(p*phi, (1-p)*phi), p = invlogit(eta); numerator ~ "
                    "Binomial(denominator, p_it)",
    "negbinomial": "count ~ Poisson(lambda), lambda ~ Gamma(shape=alpha, scale=mu/alpha), "
                   "mu = exposure*exp(eta): variance mu + mu^2/alpha (PyMC's alpha)",
    "poisson": "count ~ Poisson(exposure*exp(eta))",
    "gaussian": "value ~ Normal(eta, sigma), rounded to 6 decimals",
    "denominator": "Poisson(denominator_mean * size_multiplier[i]) + denominator_min",
    "exposure": "Poisson(m_i), m_i ~ Uniform(exposure_min, exposure_max) per unit",
}


def _problem(rule: str, message: str, value: Any) -> Problem:
    return Problem(rule, message, count=1, examples=(repr(value),))


def _format_value(v: Any, typ: str, levels: list[str]) -> str:
    if typ == "continuous":
        return f"{float(v):.3f}"
    return str(levels[int(v)])


def _code(rng: np.random.Generator, v: Any, typ: str, K: int, acc: float) -> Any:
    """What one coder records for a true value ``v``."""
    if rng.random() < acc:
        return v
    if typ == "continuous":
        return round(float(v) + float(rng.normal(0, 0.5)), 3)
    if typ == "binary" or K == 2:
        return 1 - v
    if v == 0:
        return 1
    if v == K - 1:
        return K - 2
    return v + (1 if rng.random() < 0.5 else -1)


def _num(x: Any) -> float:
    return float(x)


def _fdict(d: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in d.items()}


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    return x


def _estimands(p_obs: np.ndarray, p_cf: np.ndarray, keep: np.ndarray, is_part: np.ndarray,
               join_t: np.ndarray, unit_names: list[str], unit_collab: list[Any],
               collabs: list[str], horizons: list[int], T: int) -> list[dict[str, Any]]:
    """True estimands (see :func:`simulate`) as a list of records."""
    N = len(unit_names)
    t_grid = np.arange(T)
    post = is_part[:, None] & (t_grid[None, :] >= join_t[:, None]) & keep
    att = p_obs - p_cf
    jt = np.clip(join_t, 0, T - 1)
    tc = p_cf - p_cf[np.arange(N), jt][:, None]
    groups: list[tuple[str, str, np.ndarray]] = [("overall", "all", is_part.copy())]
    for c in collabs:
        groups.append(("collaborative", c, np.array([uc == c for uc in unit_collab])))
    for i in np.flatnonzero(is_part):
        m = np.zeros(N, dtype=bool)
        m[i] = True
        groups.append(("unit", unit_names[i], m))
    out: list[dict[str, Any]] = []
    for name, vals in (("att", att), ("trend_change", tc)):
        for scope, group, m in groups:
            rows = post & m[:, None]
            if rows.sum():
                out.append({"estimand": name, "scope": scope, "group": group,
                            "value": float(vals[rows].mean()), "n": int(rows.sum())})
    for hz in horizons:
        ok = is_part & (join_t + hz <= T - 1)
        th = np.where(ok, join_t + hz, 0)
        diff = att[np.arange(N), th]
        for scope, group, m in groups:
            sel = ok & m
            if sel.sum():
                out.append({"estimand": f"att_horizon_{hz}", "scope": scope, "group": group,
                            "value": float(diff[sel].mean()), "n": int(sel.sum())})
    return out


def simulate_patient_rows(sim: SimulatedQIC, *, seed: int | None = None) -> pd.DataFrame:
    """Expand a binomial panel into one 0/1 row per patient.

    Parameters
    ----------
    sim : SimulatedQIC
        A binomial or beta-binomial simulation.
    seed : int, optional
        Seed of the order of patients within each unit-period (default: the simulation's
        seed). The totals always equal the panel's numerator and denominator.

    Returns
    -------
    DataFrame
        ``unit``, ``period``, ``outcome`` (0/1), sorted by unit and period; aggregating it
        gives back ``sim.panel``.

    Raises
    ------
    QicstatsError
        The simulation has no numerator/denominator (count or Gaussian family).
    """
    panel = sim.panel
    if not {"numerator", "denominator"} <= set(panel.columns):
        raise QicstatsError("patient rows need a binomial or beta-binomial simulation "
                            f"(this one is {sim.truth.get('family')!r})")
    rng = np.random.default_rng(sim.truth.get("seed", DEFAULT_SEED) if seed is None else seed)
    n = panel["denominator"].to_numpy(dtype=np.int64)
    y = panel["numerator"].to_numpy(dtype=np.int64)
    row = np.repeat(np.arange(len(panel)), n)
    # within each unit-period: y ones then n - y zeros, shuffled
    pos = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    outcome = (pos < np.repeat(y, n)).astype(np.int64)
    key = row + rng.random(len(row))  # shuffle within a row, keep rows in order
    perm = np.argsort(key, kind="stable")
    return pd.DataFrame({
        "unit": panel["unit"].to_numpy()[row],
        "period": panel["period"].to_numpy()[row],
        "outcome": outcome[perm],
    }).astype({"unit": "string", "period": "string"})


def _readme(sim: SimulatedQIC) -> str:
    t = sim.truth
    settings = t["settings"]
    overrides = dict(t.get("overrides", {}))
    family = overrides.pop("family", None)
    cmd = f"qicstats simulate --preset {t['preset']} --seed {t['seed']}"
    call = f"qicstats.simulate.simulate({t['preset']!r}, seed={t['seed']}"
    if family is not None:
        cmd += f" --family {family}"
        call += f", family={family!r}"
    for k, v in overrides.items():
        cmd += f" --set '{k}={json.dumps(v)}'"
        call += f", {k}={v!r}"
    cmd += " -o DIR"
    call += ").write(DIR)"
    part = sim.units["collaborative"].notna()
    outcome = {"binomial": "numerator, denominator", "betabinomial": "numerator, denominator",
               "poisson": "count, exposure", "negbinomial": "count, exposure",
               "gaussian": "value"}[t["family"]]
    est = {(e["estimand"], e["scope"]): e["value"] for e in t["estimands"]
           if e["scope"] == "overall"}
    lines = [
        f"# Synthetic QIC data: preset `{t['preset']}`, seed {t['seed']}",
        "",
        "Simulated by `qicstats.simulate` with every parameter known; nothing here is real.",
        "",
        "Made with:",
        "",
        "```",
        cmd,
        "```",
        "",
        f"or, in Python, `{call}`.",
        "",
        "## Files",
        "",
        f"- `panel.csv`: unit, period (YYYY-MM), {outcome}; {len(sim.panel)} rows, "
        f"{t['family']} family; about {settings['row_drop_share']:.0%} of unit-months are "
        "missing at random (gaps).",
        f"- `units.csv`: unit, collaborative (empty for the {int((~part).sum())} comparison "
        f"units), site, join_period, end_period; {int(part.sum())} participating units in "
        f"{settings['n_collaboratives']} collaboratives with staggered joins.",
        f"- `indicators.csv`: unit, indicator, value, wave, coder; {len(sim.indicators)} rows "
        "of coded qualitative indicators (coder "
        f"{settings['coders'][0]} codes every item"
        + (f"; about {settings['double_code_share']:.0%} of items are also coded by "
           f"{', '.join(settings['coders'][1:])}, and `adjudicated` rows hold the true "
           "level of every double-coded item" if len(settings['coders']) > 1 else "")
        + f"; coders record the true level with probability {settings['coder_accuracy']}).",
        "- `codebook.yaml`: the indicators' types, levels and roles.",
        "- `truth.json`: the true parameters, every random effect, the true indicator levels "
        "and the true estimands (response scale).",
        "",
        "## Model",
        "",
        "```",
        "eta_it = " + t["parameterisation"]["eta"],
        t["trend"]["formula"],
        "D: " + t["parameterisation"]["D"],
        "e: " + t["parameterisation"]["e"],
        "z: " + t["parameterisation"]["z"],
        "```",
        "",
        f"Link: {t['link']}. Response scale of the estimands: {t['response_scale']}.",
        "",
        "## True estimands (overall)",
        "",
    ]
    for (name, _), val in est.items():
        lines.append(f"- `{name}`: {val:.4g}")
    lines.append("")
    return "\n".join(lines)
