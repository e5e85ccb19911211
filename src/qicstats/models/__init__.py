"""Model specification and building (no sampling here).

``build(data, spec, indicators)`` returns a :class:`QICModel` wrapping a ``pymc.Model``.
"""

from qicstats.models.build import QICModel, build
from qicstats.models.design import Design, Rows, build_design
from qicstats.models.linpred import inverse_link, linear_predictor
from qicstats.models.priors import Prior, default_priors
from qicstats.models.spec import EFFECTS, TRENDS, ModelSpec
from qicstats.models.structure import Structure, resolve_structure

__all__ = [
           "EFFECTS",
           "TRENDS",
           "Design",
           "ModelSpec",
           "Prior",
           "QICModel",
           "Rows",
           "Structure",
           "build",
           "build_design",
           "default_priors",
           "inverse_link",
           "linear_predictor",
           "resolve_structure",
]
