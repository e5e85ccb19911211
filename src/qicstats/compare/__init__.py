"""Comparisons: across models, units, collaboratives, and with frequentist baselines."""

from qicstats.compare.frequentist import agreement_sentence, frequentist_baselines

__all__ = ["agreement_sentence", "frequentist_baselines"]
