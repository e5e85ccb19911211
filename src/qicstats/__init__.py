"""qicstats: did the sites of a quality improvement collaborative improve beyond the secular
trend?
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qicstats")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from qicstats.errors import (  # noqa: E402
    ConfigError,
    ConvergenceError,
    DataValidationError,
    QicstatsError,
)

__all__ = ["__version__", "QicstatsError", "DataValidationError", "ConfigError", "ConvergenceError"]
