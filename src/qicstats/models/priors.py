"""Priors as plain, YAML-round-trippable data, and the documented defaults.

A prior is ``{"dist": <PyMC distribution name>, <parameter>: <value>, ...}``, optionally with
``"on": "variance"`` (the distribution is placed on the variance and the model uses its square
root, as the classic ``sigma^2 ~ InvGamma(0.001, 0.001)``) or ``"on": "inverse_sqrt"`` (the
distribution is placed on ``1 / sqrt(x)``: for the overdispersion parameters, whose
``1 / sqrt`` is the coefficient of variation of the extra-binomial / extra-Poisson noise, so a
prior with its mode at 0 lets data with little overdispersion reach the binomial / Poisson
limit). Every default below can be overridden from the config's ``model.priors`` mapping by
the same name.

Defaults (weakly informative on the link scale; ``T`` = number of periods in the grid, ``H`` =
the longest observed time since joining, in periods, at least 1; ``m`` = link of the pooled
outcome, ``s_y`` = sd of a Gaussian outcome; for the Gaussian family every link-scale scale
below is multiplied by ``s_y``):

============================  =================================================
name                          default
============================  =================================================
intercept                     Normal(m, 2.5)   (Gaussian: Normal(mean y, 2.5 s_y))
trend_slope                   Normal(0, 1 / (T - 1))   per period
trend_sd                      HalfNormal(0.5 / sqrt(T))  (random-walk / spline step sd)
period_sd                     HalfNormal(0.5)
season_sd                     HalfNormal(0.3)
level_change                  Normal(0, 1)       (the curve: its value in the join period)
slope_change                  Normal(0, 1 / H)   per period since joining
sd_curve                      HalfNormal(0.5 / sqrt(H))  (random-walk step of the curve;
                              sd_curve_collaborative: of the collaboratives' deviations)
phase_change                  Normal(0, 1)       (sustainability phase)
sd_u_<level>                  HalfNormal(1)
sd_level_<level>              HalfNormal(0.5)
sd_slope_<level>              HalfNormal(0.5 / H)
sd_trend_<level>              HalfNormal(0.5 / (T - 1))
ind_main, ind_level           Normal(0, 1)        (per indicator; highest vs lowest level)
ind_slope                     Normal(0, 1 / H)
mo_<indicator>                Dirichlet(1, ..., 1)  (monotonic steps)
beta                          Normal(0, 1)        (standardised covariates)
phi                           HalfNormal(0.3) on 1 / sqrt(phi)  (beta-binomial concentration)
alpha                         HalfNormal(0.5) on 1 / sqrt(alpha)  (negative-binomial shape)
sigma                         HalfNormal(s_y)     (Gaussian residual sd)
ar_rho                        Uniform(-0.95, 0.95)
ar_sd                         HalfNormal(0.5)
lkj_eta                       LKJ shape 2 (correlated level/slope change)
============================  =================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from qicstats.errors import ModelSpecError

#: distributions a prior may name, with their allowed parameters
ALLOWED_PARAMS: dict[str, tuple[str, ...]] = {
    "Normal": ("mu", "sigma"),
    "StudentT": ("nu", "mu", "sigma"),
    "Cauchy": ("alpha", "beta"),
    "HalfNormal": ("sigma",),
    "HalfCauchy": ("beta",),
    "HalfStudentT": ("nu", "sigma"),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "InverseGamma": ("alpha", "beta"),
    "LogNormal": ("mu", "sigma"),
    "Uniform": ("lower", "upper"),
    "Beta": ("alpha", "beta"),
    "Flat": (),
    "HalfFlat": (),
    "Dirichlet": ("a",),
}
_POSITIVE = {"HalfNormal", "HalfCauchy", "HalfStudentT", "Exponential", "Gamma", "InverseGamma",
             "LogNormal", "HalfFlat"}


@dataclass(frozen=True)
class Prior:
    """A prior distribution by name and parameters
    (e.g. ``Prior("Normal", {"mu": 0, "sigma": 1})``).

    Parameters
    ----------
    dist : str
        A PyMC distribution name from the allowed list.
    params : dict
        Its parameters (numbers or lists).
    on : {"value", "variance", "inverse_sqrt"}
        ``"variance"``: the distribution describes the square of the quantity (for scales);
        ``"inverse_sqrt"``: it describes ``1 / sqrt(quantity)`` (for concentrations and
        shapes: the coefficient of variation of the overdispersion).
    """

    dist: str
    params: dict[str, Any] = field(default_factory=dict)
    on: str = "value"

    def __post_init__(self) -> None:
        """Check the distribution, its parameter names and ``on``.

        Raises :class:`~qicstats.errors.ModelSpecError` on an unknown distribution, a parameter
        it does not take, or an unknown ``on``.
        """
        if self.dist not in ALLOWED_PARAMS:
            raise ModelSpecError(
                f"unknown prior distribution '{self.dist}'; allowed: {sorted(ALLOWED_PARAMS)}")
        bad = set(self.params) - set(ALLOWED_PARAMS[self.dist])
        if bad:
            raise ModelSpecError(
                f"prior {self.dist} does not take {sorted(bad)}; it takes "
                f"{list(ALLOWED_PARAMS[self.dist])}")
        if self.on not in PRIOR_ON:
            raise ModelSpecError("prior 'on' must be 'value', 'variance' or 'inverse_sqrt'")

    # ---- round trip ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict ``{"dist": ..., **params[, "on": "variance"]}`` (YAML/JSON friendly)."""
        d: dict[str, Any] = {"dist": self.dist}
        d.update({k: (list(v) if isinstance(v, (tuple, np.ndarray)) else v)
                  for k, v in self.params.items()})
        if self.on != "value":
            d["on"] = self.on
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Prior) -> Prior:
        """Inverse of :meth:`to_dict`."""
        if isinstance(d, Prior):
            return d
        d = dict(d)
        if "dist" not in d:
            raise ModelSpecError(f"a prior needs a 'dist' key, got {d}")
        dist = d.pop("dist")
        on = d.pop("on", "value")
        return cls(str(dist), {k: (float(v) if isinstance(v, (int, float)) else v)
                               for k, v in d.items()}, on)

    def describe(self) -> str:
        """Human-readable form, e.g. ``Normal(mu=0, sigma=1)``."""
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())
        s = f"{self.dist}({args})"
        if self.on == "variance":
            return s + " on the variance"
        if self.on == "inverse_sqrt":
            return s + " on 1/sqrt"
        return s

    @property
    def positive(self) -> bool:
        """Whether the distribution's support is positive (suitable for scales)."""
        return self.dist in _POSITIVE or (self.dist == "Uniform" and
                                          float(self.params.get("lower", -1)) >= 0)

    # ---- building --------------------------------------------------------------------
    def rms(self) -> float:
        """The root mean square of the quantity this prior describes (for an sd prior: the
        sd at which a normal effect has the prior variance the hierarchical prior gives it,
        ``sqrt(E[sd^2])``), from the distribution's moments; its scale parameter where the
        moment does not exist (HalfCauchy, Student-t with nu <= 2).
        """
        q = {k: float(v) for k, v in self.params.items() if not isinstance(v, (list, tuple))}
        fallback = q.get("sigma", q.get("beta", 1.0))
        dist, on = self.dist, self.on
        m: float | None = None
        if on == "value":   # E[x^2]
            m = {"HalfNormal": lambda: q["sigma"] ** 2,
                 "HalfStudentT": lambda: (q["sigma"] ** 2 * q["nu"] / (q["nu"] - 2)
                                          if q["nu"] > 2 else None),
                 "Exponential": lambda: 2.0 / q["lam"] ** 2,
                 "Gamma": lambda: q["alpha"] * (q["alpha"] + 1) / q["beta"] ** 2,
                 "LogNormal": lambda: float(np.exp(2 * q["mu"] + 2 * q["sigma"] ** 2)),
                 }.get(dist, lambda: None)()
        elif on == "variance":   # E[sd^2] = E[variance]
            m = {"HalfNormal": lambda: q["sigma"] * float(np.sqrt(2 / np.pi)),
                 "Exponential": lambda: 1.0 / q["lam"],
                 "Gamma": lambda: q["alpha"] / q["beta"],
                 "InverseGamma": lambda: (q["beta"] / (q["alpha"] - 1)
                                          if q["alpha"] > 1 else None),
                 "LogNormal": lambda: float(np.exp(q["mu"] + q["sigma"] ** 2 / 2)),
                 }.get(dist, lambda: None)()
        return float(np.sqrt(m)) if m is not None and np.isfinite(m) and m > 0 else fallback

    def create(self, name: str, *, dims: Any = None, shape: Any = None) -> pt.TensorVariable:
        """Create the random variable ``name`` in the current PyMC model context."""
        cls = getattr(pm, self.dist)
        # float64 arrays: PyTensor would turn a Python float that float32 holds exactly
        # (0.5, 2.0) into a float32 constant and compute its log density in float32 (~1e-8)
        kw = {k: (np.asarray(v, dtype=np.float64)
                  if isinstance(v, (int, float, list, tuple)) and not isinstance(v, bool)
                  else v)
              for k, v in self.params.items()}
        if self.on == "variance":
            var = cls(f"{name}_variance", **kw, dims=dims, shape=shape)
            return pm.Deterministic(name, pt.sqrt(var), dims=dims)
        if self.on == "inverse_sqrt":
            inv = cls(f"{name}_inv_sqrt", **kw, dims=dims, shape=shape)
            return pm.Deterministic(name, 1.0 / pt.square(inv), dims=dims)
        return cls(name, **kw, dims=dims, shape=shape)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def default_priors(*, family: str, T: int, H: float, link_mean: float, y_sd: float = 1.0
                   ) -> dict[str, Prior]:
    """The documented default priors for a panel with ``T`` periods and horizon ``H``.

    Parameters
    ----------
    family : str
    T : int
        Periods in the grid.
    H : float
        Longest observed time since joining, in periods (>= 1).
    link_mean : float
        The pooled outcome on the link scale (centre of the intercept prior).
    y_sd : float
        Standard deviation of a Gaussian outcome (scales its priors).

    Returns
    -------
    dict of str to Prior
        Keys are the prior names of the module docstring; level-specific scale priors
        (``sd_u_<level>``, ...) are derived from the generic ``sd_u``, ``sd_level``,
        ``sd_slope`` and ``sd_trend`` entries.
    """
    H = max(float(H), 1.0)
    span = max(T - 1, 1)
    gauss = family == "gaussian"
    s = y_sd if gauss else 1.0
    return {
        "intercept": Prior("Normal", {"mu": float(link_mean), "sigma": 2.5 * s}),
        "trend_slope": Prior("Normal", {"mu": 0.0, "sigma": s / span}),
        "trend_sd": Prior("HalfNormal", {"sigma": 0.5 * s / np.sqrt(max(T, 1))}),
        "period_sd": Prior("HalfNormal", {"sigma": 0.5 * s}),
        "season_sd": Prior("HalfNormal", {"sigma": 0.3 * s}),
        "level_change": Prior("Normal", {"mu": 0.0, "sigma": 1.0 * s}),
        "slope_change": Prior("Normal", {"mu": 0.0, "sigma": s / H}),
        "sd_curve": Prior("HalfNormal", {"sigma": 0.5 * s / np.sqrt(H)}),
        "phase_change": Prior("Normal", {"mu": 0.0, "sigma": 1.0 * s}),
        "sd_u": Prior("HalfNormal", {"sigma": 1.0 * s}),
        "sd_level": Prior("HalfNormal", {"sigma": 0.5 * s}),
        "sd_slope": Prior("HalfNormal", {"sigma": 0.5 * s / H}),
        "sd_trend": Prior("HalfNormal", {"sigma": 0.5 * s / span}),
        "ind_main": Prior("Normal", {"mu": 0.0, "sigma": 1.0 * s}),
        "ind_level": Prior("Normal", {"mu": 0.0, "sigma": 1.0 * s}),
        "ind_slope": Prior("Normal", {"mu": 0.0, "sigma": s / H}),
        "beta": Prior("Normal", {"mu": 0.0, "sigma": 1.0 * s}),
        "phi": Prior("HalfNormal", {"sigma": 0.3}, on="inverse_sqrt"),
        "alpha": Prior("HalfNormal", {"sigma": 0.5}, on="inverse_sqrt"),
        "sigma": Prior("HalfNormal", {"sigma": float(y_sd)}),
        "ar_rho": Prior("Uniform", {"lower": -0.95, "upper": 0.95}),
        "ar_sd": Prior("HalfNormal", {"sigma": 0.5 * s}),
    }


def resolve_prior(name: str, priors: Mapping[str, Prior], overrides: Mapping[str, Any]) -> Prior:
    """The prior for parameter ``name``: an override by exact name, else the generic default.

    ``sd_u_site`` falls back to ``sd_u``; ``ind_level_management_support`` to ``ind_level``.
    """
    if name in overrides:
        return Prior.from_dict(overrides[name])
    if name in priors:
        return priors[name]
    for generic in ("sd_u", "sd_level", "sd_slope", "sd_trend", "sd_curve", "ind_main",
                    "ind_level",
                    "ind_slope"):
        if name.startswith(generic + "_"):
            if generic in overrides:
                return Prior.from_dict(overrides[generic])
            return priors[generic]
    raise ModelSpecError(f"no prior for parameter '{name}'")


#: names an override may use (besides level- or indicator-specific forms of the generic ones)
PRIOR_NAMES: tuple[str, ...] = (
    "intercept", "trend_slope", "trend_sd", "period_sd", "season_sd", "level_change",
    "slope_change", "sd_curve", "phase_change", "sd_u", "sd_level", "sd_slope", "sd_trend",
    "ind_main", "ind_level", "ind_slope", "beta", "phi", "alpha", "sigma", "ar_rho", "ar_sd",
)
#: what a prior's distribution may describe (``Prior.on``)
PRIOR_ON: tuple[str, ...] = ("value", "variance", "inverse_sqrt")
