"""Model specification and building (no sampling here).

``build(data, spec, indicators)`` returns a :class:`QICModel` wrapping a ``pymc.Model``.
"""

from qicstats.models.build import QICModel, build
from qicstats.models.design import Design, Rows, build_design
from qicstats.models.linpred import inverse_link, linear_predictor
from qicstats.models.priors import Prior, default_priors
from qicstats.models.spec import TRENDS, ModelSpec

__all__ = ["QICModel", "build", "Design", "Rows", "build_design", "inverse_link",
           "linear_predictor", "Prior", "default_priors", "ModelSpec", "TRENDS"]
