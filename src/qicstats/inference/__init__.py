"""Sampling a built model: backends, seeds, provenance."""

from qicstats.inference.fit import BACKENDS, SamplerConfig, fit, package_versions

__all__ = ["BACKENDS", "SamplerConfig", "fit", "package_versions"]
