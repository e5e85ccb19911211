"""The stored tiny binomial posterior and its rebuilt model, for tests that must not sample."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import xarray as xr

POSTERIORS = Path(__file__).parent / "data" / "posteriors"


def load_tiny_binomial() -> tuple[Any, Any, Any, xr.DataTree]:
    """``(data, indicators, qmodel, idata)`` of ``tests/data/posteriors/tiny_binomial.nc``."""
    sys.path.insert(0, str(POSTERIORS))
    try:
        from make_posteriors import tiny_binomial_model
    finally:
        sys.path.remove(str(POSTERIORS))
    data, im, qm = tiny_binomial_model()
    idata = xr.open_datatree(POSTERIORS / "tiny_binomial.nc", engine="h5netcdf").load()
    return data, im, qm, idata
