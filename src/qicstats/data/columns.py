"""Default column names of the QIC data contract and their mapping.

These names are a public contract (analysts' scripts depend on them): extend, never rename.

panel       unit, period, and the outcome of the family:
            numerator/denominator (binomial, beta-binomial), count/exposure (Poisson,
            negative binomial), value [+ se, weight] (Gaussian); or patient-level rows with
            ``outcome`` (0/1), aggregated to numerator/denominator.
units       unit, collaborative (empty = comparison unit), join_period (empty for comparison
            units), optional end_period, optional nested grouping columns (site, team, ...)
            and unit covariates.
indicators  unit, indicator, value, optional wave, optional coder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Literal

Family = Literal["binomial", "betabinomial", "poisson", "negbinomial", "gaussian"]
FAMILIES: tuple[str, ...] = ("binomial", "betabinomial", "poisson", "negbinomial", "gaussian")

#: outcome columns (logical names) each family needs, and the optional ones
FAMILY_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "binomial": (("numerator", "denominator"), ()),
    "betabinomial": (("numerator", "denominator"), ()),
    "poisson": (("count",), ("exposure",)),
    "negbinomial": (("count",), ("exposure",)),
    "gaussian": (("value",), ("se", "weight")),
}


@dataclass(frozen=True)
class ColumnMap:
    """Names of the columns in the analyst's files for each logical role.

    Every attribute defaults to the contract's name; set only those that differ, e.g.
    ``ColumnMap(unit="afdeling", numerator="events", denominator="patients")``.
    """

    # panel
    unit: str = "unit"
    period: str = "period"
    numerator: str = "numerator"
    denominator: str = "denominator"
    count: str = "count"
    exposure: str = "exposure"
    value: str = "value"
    se: str = "se"
    weight: str = "weight"
    outcome: str = "outcome"
    # units
    collaborative: str = "collaborative"
    join_period: str = "join_period"
    end_period: str = "end_period"
    # indicators
    indicator: str = "indicator"
    indicator_value: str = "value"
    wave: str = "wave"
    coder: str = "coder"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str] | None) -> ColumnMap:
        """Build from ``{logical_name: file_column}``; unknown logical names raise ``KeyError``."""
        if not mapping:
            return cls()
        names = {f.name for f in fields(cls)}
        bad = sorted(set(mapping) - names)
        if bad:
            raise KeyError(f"unknown column role(s) {bad}; known roles: {sorted(names)}")
        return replace(cls(), **dict(mapping))

    def as_dict(self) -> dict[str, str]:
        """Return ``{logical_name: file_column}`` for every role."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def infer_family(columns: list[str] | tuple[str, ...], cmap: ColumnMap | None = None) -> str | None:
    """Guess the family from the outcome columns present (``None`` when ambiguous/absent)."""
    cmap = cmap or ColumnMap()
    cols = set(columns)
    if cmap.numerator in cols and cmap.denominator in cols:
        return "binomial"
    if cmap.outcome in cols:
        return "binomial"
    if cmap.count in cols:
        return "poisson"
    if cmap.value in cols:
        return "gaussian"
    return None


__all__ = ["ColumnMap", "FAMILIES", "FAMILY_COLUMNS", "Family", "infer_family", "field"]
