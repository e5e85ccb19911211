"""Shared pieces of the hostile-input suite (``tests/test_hostile_*.py``,
``tests/test_reliability_*.py``; issue 17).

- :func:`project` lays out a scratch analysis (the 6-unit fixture panel of
  ``tests/data/validate`` and an ``analysis.yaml``) that tests may break in any way;
- :class:`Untouched` records the bytes of every file under a folder and asserts afterwards
  that none changed, appeared or disappeared (the "inputs are byte-identical" promise);
- :func:`mock_sampler` replaces ``pm.sample`` by prior draws (no MCMC), optionally cut short
  the way nutpie returns a trace on Ctrl-C;
- :func:`rule_of` / :func:`rules_of` read the rule ids out of a qicstats error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "data" / "validate"

#: a config of the fixture panel that builds a model in a second (no indicators, no report
#: extras, the mock-friendly PyMC backend)
BASE_CONFIG: dict[str, Any] = {
    "name": "hostile",
    "data": {"panel": "data/panel.csv", "units": "data/units.csv", "family": "binomial",
             "levels": ["collaborative", "site"]},
    "model": {"trend": "linear"},
    "estimands": {"horizons": [3]},
    "sampler": {"backend": "pymc", "chains": 2, "draws": 20, "tune": 5, "seed": 3,
                "progress": False},
    "report": {"frequentist": False},
}


def project(tmp_path: Path, config: dict[str, Any] | None = None, *,
            name: str = "analysis.yaml") -> Path:
    """A scratch analysis folder: ``data/panel.csv``, ``data/units.csv`` and the config."""
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    for f in ("panel.csv", "units.csv"):
        shutil.copy(FIXTURES / f, data / f)
    cfg = config if config is not None else BASE_CONFIG
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


class Untouched:
    """Snapshot of every file (bytes) under ``folder``; :meth:`check` asserts it is unchanged.

    Folders listed in ``ignore`` (e.g. a run folder the test expects to be written) are left
    out of the comparison.
    """

    def __init__(self, folder: Path, ignore: tuple[str, ...] = ()):
        self.folder = Path(folder)
        self.ignore = ignore
        self.before = self._snap()

    def _snap(self) -> dict[str, bytes]:
        out = {}
        for p in sorted(self.folder.rglob("*")):
            rel = p.relative_to(self.folder).as_posix()
            if any(rel == i or rel.startswith(i + "/") for i in self.ignore):
                continue
            if p.is_file() and not p.is_symlink():
                out[rel] = p.read_bytes()
        return out

    def check(self) -> None:
        after = self._snap()
        assert sorted(after) == sorted(self.before), "files appeared or disappeared: " + \
            str(sorted(set(after) ^ set(self.before)))
        changed = [k for k in after if after[k] != self.before[k]]
        assert not changed, f"input files changed: {changed}"


def _stats(size: Any) -> np.ndarray:
    return np.zeros(size, dtype=bool)


def _energy(size: Any) -> np.ndarray:
    return np.random.default_rng(0).normal(size=size)


def mock_sampler(monkeypatch: Any, *, cut_to: int | None = None, nan_chain: bool = False,
                 before: Callable[[], None] | None = None) -> list[dict[str, Any]]:
    """Replace ``pm.sample`` by seeded prior draws (PyMC's ``mock_sample``), no MCMC.

    ``cut_to``: keep only this many draws per chain (an interrupted sampler's partial
    trace); ``nan_chain``: pad the second chain's last half with NaN, as nutpie does for a
    chain that stopped early; ``before``: called first (e.g. to send a signal), and a
    KeyboardInterrupt it raises is caught as nutpie catches it, returning the partial trace.
    Returns the list of keyword dicts of the calls.
    """
    import pymc as pm
    import pytensor
    from pymc.testing import mock_sample

    fake = partial(mock_sample, sample_stats={"diverging": _stats, "energy": _energy})
    calls: list[dict[str, Any]] = []

    def sample(**kw: Any) -> Any:
        calls.append(kw)
        interrupted = False
        if before is not None:
            try:
                before()
            except KeyboardInterrupt:
                interrupted = True
        with pytensor.config.change_flags(mode="FAST_COMPILE"):
            idata = fake(**kw)
        keep = cut_to if cut_to is not None else (max(1, kw["draws"] // 3) if interrupted
                                                   else None)
        if keep is not None:
            idata = idata.isel(draw=slice(0, keep))
        if nan_chain:
            post = idata.posterior.to_dataset()
            half = post.sizes["draw"] // 2
            for v in post.data_vars:
                if post[v].dtype.kind == "f":
                    arr = post[v].values.copy()
                    arr[1, half:] = np.nan
                    post[v] = (post[v].dims, arr)
            idata["posterior"] = post
        return idata

    monkeypatch.setattr(pm, "sample", sample)
    return calls


def rules_of(err: BaseException) -> list[str]:
    """The rule ids of a qicstats problems error (errors, then warnings)."""
    return [p.rule for p in getattr(err, "problems", [])] + \
        [p.rule for p in getattr(err, "warnings", [])]


def rule_of(err: BaseException) -> str:
    """The rule id of an error that carries exactly one problem."""
    probs = getattr(err, "problems", [])
    assert len(probs) == 1, [p.format() for p in probs]
    return probs[0].rule
