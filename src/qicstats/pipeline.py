"""Config-driven, reproducible analyses: ``prepare`` -> ``run`` -> a run folder; ``load_run``.

A run folder (a public contract: extend, never rename) holds

=========================  ===========================================================
``config.resolved.yaml``   the config with every default filled in
``manifest.json``          versions, config and data hashes, seed, timings, verdict
``posterior.nc``           the posterior (NetCDF, with provenance attributes)
``summary.csv``            parameter summary (:meth:`FitResult.summary`)
``estimands.csv``          the tidy estimands table (:data:`ESTIMAND_COLUMNS`)
``diagnostics.csv``        the diagnostics gate, one row per check
``identification.csv``     contraction and trend correlation of each effect parameter
``unit_ranks.csv``         rank distributions of unit improvement
``positive_deviance.csv``  units beating / falling short of their collaborative
``residual_signals.csv``   Anhøj rules on each unit's posterior predictive residuals
``frequentist.csv``        frequentist cross-checks (when enabled)
``indicator_agreement.csv`` coder agreement (when codes have several coders)
``sensitivity_by_coder.csv`` indicator estimands refitted per coder (when asked)
``estimands.md/.tex``      the estimands table for papers
``report.html``            the self-contained report
=========================  ===========================================================

The folder is built under a temporary name next to its destination
(``.<name>.partial-<pid>-<random>``, created before anything is read, so an output that
cannot be written fails at once) and renamed into place at the end, so an interrupted run
never leaves a folder that looks complete. Leftovers of runs that were killed are removed
by the next run into the same place (or reported when their process may still be alive).

``overwrite=True`` replaces only a qicstats run folder: one whose ``manifest.json`` says so
and which holds only run files; never a folder holding the config or an input file.
Ctrl-C and SIGTERM stop a run cleanly: nothing is written, and a sampler that returns fewer
draws than asked (nutpie hands back the partial trace on an interrupt) raises
:class:`~qicstats.errors.RunInterrupted` instead of writing a result. The CSV tables are
safe to open in a spreadsheet: a text cell starting with ``=``, ``+``, ``-``, ``@`` (or a
tab or carriage return) gets a leading ``'`` so it is never run as a formula.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
import warnings as _warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qicstats.config import (
    AnalysisConfig,
    config_hash,
    data_file_hashes,
    dump_config,
    load_config,
    model_spec,
)
from qicstats.config.schema import FAST_PRESET
from qicstats.data import validate
from qicstats.data.columns import ColumnMap
from qicstats.data.io import csv_safe
from qicstats.data.panel import PanelData
from qicstats.errors import (
    ConfigError,
    DataValidationError,
    OutputError,
    Problem,
    QicstatsError,
    RunExistsError,
    RunFolderError,
    RunInterrupted,
)
from qicstats.indicators import (
    IndicatorCodes,
    IndicatorMatrix,
    check_indicators,
    encode,
    read_classification_sheet,
    read_coding_matrix,
    read_long,
)
from qicstats.inference import SamplerConfig, fit, package_versions
from qicstats.models import QICModel, build
from qicstats.results import EstimandOptions, FitResult, Thresholds

Progress = Callable[[str], None]

RUN_FILES: tuple[str, ...] = (
    "config.resolved.yaml", "manifest.json", "posterior.nc", "summary.csv", "estimands.csv",
    "diagnostics.csv", "identification.csv", "unit_ranks.csv", "positive_deviance.csv",
    "residual_signals.csv", "frequentist.csv", "indicator_agreement.csv",
    "sensitivity_by_coder.csv", "estimands.md", "estimands.tex", "report.html",
)
#: float format of the CSV tables (stable across runs of the same draws)
CSV_FLOAT = "%.10g"


@dataclass
class Analysis:
    """A prepared, not yet sampled analysis: validated data, encoded indicators, built model."""

    config: AnalysisConfig
    data: PanelData
    codes: IndicatorCodes | None
    indicators: IndicatorMatrix | None
    qmodel: QICModel
    warnings: list[Problem] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """What ``qicstats validate CONFIG`` prints: data counts, model, indicators, warnings."""
        out = dict(self.data.summary())
        d = self.qmodel.design
        out["model"] = {"family": d.family, "trend": self.qmodel.spec.trend,
                        "parameter_blocks": len(self.qmodel.free_parameter_names())}
        if self.indicators is not None:
            out["indicators"] = self.indicators.names
            latent = 0
            if d.mixture is not None:
                assert d.cell_info is not None  # a mixture is built from the cell info
                latent = int((d.cell_info["status"] != "observed").sum())
            out["latent_codes"] = latent
        out["warnings"] = [w.format() for w in self.warnings]
        return out


@dataclass
class RunResult:
    """A finished (or loaded) run."""

    analysis: Analysis
    result: FitResult
    folder: Path | None
    manifest: dict[str, Any]
    sensitivity: pd.DataFrame | None = None

    @property
    def exit_code(self) -> int:
        """0 when the gate passes (or warns, unless strict), 1 otherwise."""
        strict = self.analysis.config.diagnostics.strict
        v = self.result.verdict
        return 1 if (v == "fail" or (strict and v == "warn")) else 0


def _quiet(_: str) -> None:
    return None


def _read_codes(cfg: AnalysisConfig, codebook: Any) -> list[pd.DataFrame]:
    ind = cfg.indicators
    assert ind is not None  # called only for a config with indicators
    cmap = ColumnMap.from_mapping(cfg.data.columns)
    frames = []
    mapping = str(cfg.paths.mapping) if cfg.paths.mapping else None
    for src, path in zip(ind.codes, cfg.paths.codes):
        if src.format == "long":
            frames.append(read_long(path, cmap))
        elif src.format == "classification":
            frames.append(read_classification_sheet(path, codebook, case_column=src.case_column,
                                                    mapping=mapping, wave=src.wave,
                                                    coder=src.coder, sheet=src.sheet))
        else:
            frames.append(read_coding_matrix(path, codebook, mapping=mapping, wave=src.wave,
                                             coder=src.coder, sheet=src.sheet))
    return frames


def prepare(config: AnalysisConfig | str | os.PathLike[str], *,
            consensus: str | None = None, progress: Progress = _quiet) -> Analysis:
    """Load and check everything a run needs, and build the model; nothing is sampled.

    ``qicstats validate CONFIG`` stops here. Data and indicator problems are reported
    together in one :class:`DataValidationError`.
    """
    cfg = config if isinstance(config, AnalysisConfig) else load_config(config)
    t0 = time.perf_counter()
    data = validate(cfg.paths.panel, cfg.paths.units, family=cfg.data.family,
                    columns=cfg.data.columns or None, levels=tuple(cfg.data.levels),
                    covariates=tuple(cfg.data.covariates), min_periods=cfg.data.min_periods,
                    freq=cfg.data.freq)
    progress(f"data valid: {data.n_units} units x {data.periods.T} periods "
             f"({time.perf_counter() - t0:.1f} s)")
    codes = im = None
    warnings = list(data.warnings) + _horizon_problems(cfg, data)
    if cfg.indicators is not None:
        from qicstats.indicators import load_codebook

        codebook_path = cfg.paths.codebook
        assert codebook_path is not None  # resolved whenever there are indicators
        codebook = load_codebook(codebook_path)
        frames = _read_codes(cfg, codebook)
        codes, problems = check_indicators(frames if len(frames) > 1 else frames[0], codebook,
                                           data, ColumnMap.from_mapping(cfg.data.columns))
        errors = [p for p in problems if p.severity == "error"]
        warnings += [p for p in problems if p.severity == "warning"]
        if errors:
            raise DataValidationError(errors, warnings)
        im = encode(codes, data, consensus=consensus or cfg.indicators.consensus,
                    indicators=cfg.indicators.use)
        progress(f"indicators encoded: {', '.join(im.names)} "
                 f"(consensus {consensus or cfg.indicators.consensus})")
    qm = build(data, model_spec(cfg), im)
    progress(f"model built: {len(qm.free_parameter_names())} parameter blocks, family "
             f"{qm.family}, trend {qm.spec.trend}")
    return Analysis(cfg, data, codes, im, qm, warnings)


def _horizon_problems(cfg: AnalysisConfig, data: PanelData) -> list[Problem]:
    """``estimands.horizons`` against the data: a horizon no participating unit reaches
    (join + h beyond the last period) is an error; one only some reach, a warning.
    """
    units = data.units
    part = units["collaborative"].notna().to_numpy()
    join = units["join_t"].to_numpy(dtype=float, na_value=np.nan)
    join = join[part & np.isfinite(join)]
    if not join.size:
        return []
    T = data.periods.T
    fname = str(cfg.source.name) if cfg.source is not None else None
    longest = int(T - 1 - join.min())
    errors, warns = [], []
    for i, h in enumerate(cfg.estimands.horizons):
        reach = int(np.sum(join + h <= T - 1))
        if reach == 0:
            errors.append(Problem(
                "horizon_beyond_data",
                f"estimands.horizons[{i}]: {h} periods after joining is beyond the data "
                f"({data.periods.labels[0]}..{data.periods.labels[-1]}): no participating "
                f"unit is followed that long (the longest follow-up is {longest} periods)",
                file=fname, count=1, examples=(h,),
                hint=f"give horizons between 0 and {longest}, e.g. [{min(12, longest)}]"))
        elif reach < join.size:
            warns.append(Problem(
                "horizon_partly_beyond_data",
                f"estimands.horizons[{i}]: att_horizon_{h} averages over the {reach} of "
                f"{join.size} participating units whose join + {h} periods lies within the "
                f"data", file=fname, count=join.size - reach, examples=(h,),
                hint="legal; units that joined late are not followed that long",
                severity="warning"))
    if errors:
        raise ConfigError(errors, warns)
    return warns


def validate_config(config: AnalysisConfig | str | os.PathLike[str]) -> Analysis:
    """Check a config, its data and its model graph without sampling (``qicstats validate``)."""
    return prepare(config)


def _options(cfg: AnalysisConfig) -> tuple[EstimandOptions, Thresholds, SamplerConfig]:
    e, dg, s = cfg.estimands, cfg.diagnostics, cfg.sampler
    opts = EstimandOptions(interval_prob=e.interval_prob, horizons=tuple(e.horizons), mid=e.mid,
                           direction=e.direction,
                           positive_deviance_prob=e.positive_deviance_prob)
    th = Thresholds(rhat_warn=dg.rhat_warn, rhat_fail=dg.rhat_fail, ess_warn=dg.ess_warn,
                    ess_fail=dg.ess_fail, divergences_fail_share=dg.divergences_fail_share)
    sc = SamplerConfig(backend=s.backend, chains=s.chains, draws=s.draws, tune=s.tune,
                       target_accept=None if s.target_accept == "auto" else s.target_accept,
                       seed=s.seed, progress=s.progress)
    return opts, th, sc


def fit_analysis(an: Analysis, *, progress: Progress = _quiet, sampler: SamplerConfig | None = None
                 ) -> FitResult:
    """Sample a prepared analysis and wrap the posterior in a :class:`FitResult`."""
    opts, th, sc = _options(an.config)
    sc = sampler or sc
    progress(f"sampling: {sc.backend}, {sc.chains} chains x ({sc.tune} tune + {sc.draws} draws), "
             f"seed {sc.seed}")
    prov = {"config_hash": config_hash(an.config), "run_name": an.config.name,
            "data_files": data_file_hashes(an.config), "preset": an.config.sampler.preset}
    idata = fit(an.qmodel, sc, provenance=prov)
    return FitResult(an.qmodel, idata, options=opts, thresholds=th, name=an.config.name)


#: how a run came to use the fast preset (recorded in the manifest)
FastSource = str


def with_preset(cfg: AnalysisConfig, preset: str) -> AnalysisConfig:
    """A copy of ``cfg`` with ``sampler.preset`` set (``"fast"`` shortens the chains, see
    :data:`~qicstats.config.schema.FAST_PRESET`); validated again, paths kept.
    """
    raw = cfg.model_dump(mode="json")
    raw["sampler"]["preset"] = preset
    return AnalysisConfig.model_validate(raw).with_base_dir(cfg.base_dir, cfg.source)


def _fast_config(cfg: AnalysisConfig, fast: bool, progress: Progress
                 ) -> tuple[AnalysisConfig, str | None]:
    """Apply ``--fast`` / the deprecated ``QICSTATS_FAST=1``; (config, how fast came)."""
    if cfg.sampler.preset == "fast":
        return cfg, "config"
    if fast:
        return with_preset(cfg, "fast"), "--fast"
    if os.environ.get("QICSTATS_FAST") == "1":
        msg = ("QICSTATS_FAST=1 is deprecated: use `qicstats run --fast` or sampler.preset: "
               "fast (recorded the same way)")
        _warnings.warn(msg, DeprecationWarning, stacklevel=3)
        progress(msg)
        return with_preset(cfg, "fast"), "QICSTATS_FAST=1 (deprecated)"
    return cfg, None


# ---- interrupts -----------------------------------------------------------------------------
class _Stop:
    """Which signal stopped the run (``None`` while running)."""

    signal: str | None = None


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[_Stop]:
    """SIGINT and SIGTERM raise KeyboardInterrupt (and are remembered) while a run is on.

    nutpie and PyMC catch the KeyboardInterrupt and return the draws made so far; the
    remembered signal lets the run stop there instead of writing a result. Only the main
    thread can install handlers; elsewhere the defaults stay (and the draw count still
    catches a partial trace).
    """
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.signal = signal.Signals(signum).name
        raise KeyboardInterrupt(stop.signal)

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # pragma: no cover - not the main interpreter
            continue
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _check_complete(idata: Any, sc: SamplerConfig, stop: _Stop) -> None:
    """Raise :class:`RunInterrupted` for a partial trace (or a remembered signal)."""
    post = idata.posterior
    chains, draws = int(post.sizes.get("chain", 0)), int(post.sizes.get("draw", 0))
    missing = [v for v in post.data_vars
               if np.asarray(post[v].values).dtype.kind == "f"
               and not np.isfinite(np.asarray(post[v].values)).all()]
    if stop.signal is not None:
        raise RunInterrupted(f"stopped by {stop.signal} while sampling ({draws} of "
                             f"{sc.draws} draws per chain made); nothing was written")
    if chains < sc.chains or draws < sc.draws or missing:
        raise RunInterrupted(
            f"the sampler returned {draws} of {sc.draws} draws per chain ({chains} of "
            f"{sc.chains} chains" + (f"; chains stopped early: missing draws in "
                                     f"{', '.join(missing[:3])}" if missing else "")
            + "): it was interrupted; nothing was written")


# ---- the run ----------------------------------------------------------------------------
def run(config: AnalysisConfig | str | os.PathLike[str], *,
        out: str | os.PathLike[str] | None = None, overwrite: bool = False,
        progress: Progress = _quiet, report: bool = True, fast: bool = False) -> RunResult:
    """Run an analysis end to end and write its run folder.

    Parameters
    ----------
    config : AnalysisConfig or path
    out : path, optional
        The run folder (default ``runs/<name>`` next to the config file).
    overwrite : bool
        Replace an existing run folder (only one written by qicstats; see the module
        docstring); otherwise :class:`RunExistsError`.
    progress : callable, optional
        Receives one line per step (the CLI prints them).
    report : bool
        Render ``report.html``.
    fast : bool
        Use the fast preset (``sampler.preset: fast``: 2 short chains, for trying things
        out); recorded in the resolved config, its hash, the manifest and the report.
        ``QICSTATS_FAST=1`` does the same (deprecated).

    Returns
    -------
    RunResult
        With ``exit_code`` 0 (pass, or warn when not strict) or 1.

    Raises
    ------
    ConfigError, DataValidationError
        Invalid config or data (before anything is sampled).
    RunExistsError, OutputError
        The run folder exists, may not be replaced or cannot be written (checked first).
    RunInterrupted
        The sampler returned fewer draws than asked (an interrupt); nothing was written.
    KeyboardInterrupt
        Ctrl-C or SIGTERM outside the sampler; nothing was written.
    """
    cfg = config if isinstance(config, AnalysisConfig) else load_config(config)
    cfg, fast_source = _fast_config(cfg, fast, progress)
    base = cfg.base_dir
    folder = Path(out) if out is not None else Path(base) / "runs" / cfg.name
    folder = Path(os.path.abspath(folder))
    _check_destination(folder, cfg, overwrite)
    _sweep_leftovers(folder, progress)
    created = _make_parents(folder.parent)
    tmp = folder.parent / f".{folder.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
    except OSError as err:
        _remove_empty(created)
        raise OutputError(f"cannot write the run folder {folder}: {err.strerror or err} "
                          f"(in {folder.parent}); choose a writable --out") from None
    try:
        with _stop_on_signals() as stop:
            timings: dict[str, float] = {}
            t = time.perf_counter()
            an = prepare(cfg, progress=progress)
            timings["prepare_s"] = time.perf_counter() - t
            t = time.perf_counter()
            _, _, sc = _options(cfg)
            result = fit_analysis(an, progress=progress, sampler=sc)
            _check_complete(result.idata, sc, stop)
            timings["sampling_s"] = time.perf_counter() - t
            t = time.perf_counter()
            dg = result.diagnostics()
            progress(dg.headline())
            sens = None
            if cfg.indicators is not None and cfg.indicators.sensitivity_by_coder:
                sens = coder_sensitivity(an, progress=progress, stop=stop)
            manifest = _write_folder(tmp, an, result, sens, timings, report=report,
                                     progress=progress, folder=folder,
                                     fast_source=fast_source)
            timings["outputs_s"] = time.perf_counter() - t
            manifest["timings"] = {k: round(v, 2) for k, v in timings.items()}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True)
                                               + "\n")
            _move_into_place(tmp, folder, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(created)
        raise
    progress(f"run folder written: {folder}")
    return RunResult(an, result, folder, manifest, sens)


def _is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or inside it (symlinks resolved)."""
    try:
        Path(os.path.realpath(path)).relative_to(Path(os.path.realpath(folder)))
    except ValueError:
        return False
    return True


def is_run_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a ``manifest.json`` written by ``qicstats run``."""
    try:
        m = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(m, dict) and "qicstats_run" in m


def _check_destination(folder: Path, cfg: AnalysisConfig, overwrite: bool) -> None:
    """Every reason not to write ``folder``, before anything is read or sampled."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"the run folder {folder} exists and is not a folder (a file or a "
                          "device); give --out a folder")
    protected = [("config", cfg.source)] if cfg.source is not None else []
    protected += [(f"input ({key})", p) for key, p in cfg.paths.items()]
    for what, p in protected:
        if p is not None and _is_within(Path(p), folder):
            raise OutputError(f"the run folder {folder} contains the {what} file {p}; a run "
                              "folder is replaced as a whole, so choose another --out (e.g. "
                              f"{folder / 'runs' / cfg.name})")
    if not folder.is_dir():
        return
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return
    if not overwrite:
        raise RunExistsError(f"run folder {folder} already exists; use --overwrite to replace "
                             "it or --out to write elsewhere")
    if not is_run_folder(folder):
        raise OutputError(f"--overwrite replaces only a qicstats run folder, and {folder} is "
                          "not one (no manifest.json written by qicstats run); nothing was "
                          "deleted: choose another --out, or empty the folder yourself")
    foreign = [e for e in entries if e not in RUN_FILES]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more"
                                          if len(foreign) > 5 else "")
        raise OutputError(f"--overwrite would delete files that qicstats did not write in "
                          f"{folder}: {shown}; move them out, or choose another --out")


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|old)-(?:(?P<pid>\d+)-)?[0-9a-f]{8}$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def leftovers(folder: str | os.PathLike[str]) -> list[tuple[Path, bool]]:
    """Hidden leftovers of interrupted runs into ``folder`` (``.<name>.partial-*`` being
    built, ``.<name>.old-*`` being replaced): ``[(path, removable)]``, removable when the
    process that made it is gone.
    """
    folder = Path(folder)
    out: list[tuple[Path, bool]] = []
    try:
        siblings = list(folder.parent.iterdir())
    except OSError:
        return out
    for p in siblings:
        m = _LEFTOVER.match(p.name)
        if not m or m["name"] != folder.name or not p.is_dir():
            continue
        pid = int(m["pid"]) if m["pid"] else None
        out.append((p, pid is not None and pid != os.getpid() and not _pid_alive(pid)))
    return sorted(out)


def _sweep_leftovers(folder: Path, progress: Progress) -> None:
    for p, removable in leftovers(folder):
        if removable:
            shutil.rmtree(p, ignore_errors=True)
            progress(f"removed {p.name}, left by an interrupted run")
        else:
            progress(f"note: {p} looks like the leftover of an interrupted run (its process "
                     "may still be running); delete it if no qicstats run is writing there")


def _make_parents(parent: Path) -> list[Path]:
    """Create ``parent`` and its missing ancestors; the ones created, deepest first."""
    created: list[Path] = []
    p = parent
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_empty(created)
        raise OutputError(f"cannot create the folder {parent}: {err.strerror or err}; "
                          "choose a writable --out") from None
    return created


def _remove_empty(dirs: list[Path]) -> None:
    for d in dirs:  # deepest first
        try:
            d.rmdir()
        except OSError:
            break


def _move_into_place(tmp: Path, folder: Path, overwrite: bool) -> None:
    old = None
    if folder.exists():
        if not overwrite and any(folder.iterdir()):
            raise RunExistsError(f"run folder {folder} appeared while running; not replaced")
        if any(folder.iterdir()) and not is_run_folder(folder):
            raise OutputError(f"{folder} changed while running and is no longer a run "
                              "folder; not replaced")
        old = folder.parent / f".{folder.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        folder.rename(old)
    tmp.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _csv(df: pd.DataFrame, path: Path) -> None:
    csv_safe(df).to_csv(path, index=False, float_format=CSV_FLOAT, lineterminator="\n")


def _relative_base(base: Path, folder: Path) -> str | None:
    """The config's folder relative to the run folder (no absolute paths in run folders)."""
    try:
        return Path(os.path.relpath(os.path.abspath(base), os.path.abspath(folder))).as_posix()
    except ValueError:  # another drive (Windows): the run cannot point back to its data
        return None


def _write_folder(tmp: Path, an: Analysis, result: FitResult, sens: pd.DataFrame | None,
                  timings: dict[str, float], *, report: bool, progress: Progress,
                  folder: Path | None = None, fast_source: str | None = None
                  ) -> dict[str, Any]:
    cfg = an.config
    (tmp / "config.resolved.yaml").write_text(dump_config(cfg))
    result.save(tmp / "posterior.nc")
    _csv(result.summary(), tmp / "summary.csv")
    est = result.estimands()
    _csv(est, tmp / "estimands.csv")
    dg = result.diagnostics()
    _csv(dg.to_frame(), tmp / "diagnostics.csv")
    try:
        ident = result.identification().table
    except Exception:  # noqa: BLE001 - the gate already warns that it could not be computed
        from qicstats.results.identification import IDENTIFICATION_COLUMNS

        ident = pd.DataFrame(columns=list(IDENTIFICATION_COLUMNS))
    _csv(ident, tmp / "identification.csv")
    _csv(result.unit_ranks(), tmp / "unit_ranks.csv")
    _csv(result.positive_deviance(), tmp / "positive_deviance.csv")
    signals = result.residual_signals()
    _csv(signals, tmp / "residual_signals.csv")
    baselines = None
    if cfg.report.frequentist:
        from qicstats.compare.frequentist import frequentist_baselines

        progress("frequentist cross-checks")
        baselines = frequentist_baselines(an.data, interval_prob=cfg.estimands.interval_prob)
        _csv(baselines.drop(columns=["seconds"], errors="ignore"), tmp / "frequentist.csv")
    if an.indicators is not None and an.indicators.agreement is not None:
        _csv(an.indicators.agreement, tmp / "indicator_agreement.csv")
    if sens is not None:
        _csv(sens, tmp / "sensitivity_by_coder.csv")
    manifest = {
        "qicstats_run": 1,
        "name": cfg.name,
        "versions": package_versions(),
        "python": sys.version.split()[0],
        "config_hash": config_hash(cfg),
        "data_hash": an.qmodel.data_hash,
        "data_files": data_file_hashes(cfg),
        "config_base_dir": _relative_base(cfg.base_dir, folder if folder is not None
                                          else tmp),
        "seed": cfg.sampler.seed,
        "sampler": cfg.sampler.model_dump(mode="json"),
        "fast": {"preset": cfg.sampler.preset == "fast", "source": fast_source,
                 "settings": dict(FAST_PRESET)} if cfg.sampler.preset == "fast"
        else {"preset": False, "source": None},
        "diagnostics": dg.to_dict(),
        "verdict": dg.verdict,
        "strict": cfg.diagnostics.strict,
        "headline": result.headline(),
        "n_units": an.data.n_units,
        "n_periods": an.data.periods.T,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if report:
        progress("rendering report")
        from qicstats.report import render_run_report, write_tables

        write_tables(result, tmp)
        html = render_run_report(result, data=an.data, indicators=an.indicators,
                                 baselines=baselines, title=cfg.report.title,
                                 sections=list(cfg.report.sections),
                                 provenance={k: manifest[k] for k in
                                             ("config_hash", "data_hash", "seed", "versions",
                                              "created", "name")},
                                 config_text=dump_config(cfg))
        (tmp / "report.html").write_text(html, encoding="utf-8")
    manifest["files"] = sorted(p.name for p in tmp.iterdir())
    return manifest


def coder_sensitivity(an: Analysis, *, progress: Progress = _quiet,
                      stop: _Stop | None = None) -> pd.DataFrame:
    """Refit with each coder's codes alone (``consensus="coder:<name>"``).

    Returns the indicator estimands (contrasts and ``att``) of every refit, with a ``coder``
    column; the main run's consensus is included as ``coder = "(consensus)"``.
    """
    from qicstats.indicators import coders

    # a run with indicators: prepare() read their codes
    assert an.codes is not None and an.config.indicators is not None
    names = [c for c in coders(an.codes) if c.lower() not in ("adjudicated", "consensus")]
    opts, th, sc = _options(an.config)
    frames = []
    for name in names:
        progress(f"sensitivity: refitting with coder {name}'s codes")
        im = encode(an.codes, an.data, consensus=f"coder:{name}",
                    indicators=an.config.indicators.use)
        qm = build(an.data, an.qmodel.spec, im)
        idata = fit(qm, sc, provenance={"preset": an.config.sampler.preset})
        _check_complete(idata, sc, stop or _Stop())
        fr = FitResult(qm, idata, options=opts, thresholds=th, name=f"coder:{name}")
        e = fr.estimands()
        e = e[e["scope"].isin(["overall", "indicator"])].copy()
        e.insert(0, "coder", name)
        e.insert(1, "verdict", fr.verdict)
        frames.append(e)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_run(folder: str | os.PathLike[str]) -> RunResult:
    """Load a run folder back: re-reads the data the config names, checks they are the data
    the run was fitted to (hash), rebuilds the model and attaches the stored posterior.

    Raises
    ------
    IdentityError
        When the data files changed since the run.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    cfg_path = folder / "config.resolved.yaml"
    for name in ("config.resolved.yaml", "posterior.nc"):
        if not (folder / name).is_file():
            raise RunFolderError(f"{folder} is an incomplete run folder: {name} is missing; "
                                 "run the analysis again (qicstats run CONFIG --out "
                                 f"{folder} --overwrite)")
    original = manifest.get("config_base_dir")
    if isinstance(original, str) and original and not os.path.isabs(original):
        original = os.path.normpath(os.path.join(os.path.abspath(folder), original))
    cfg = load_config(cfg_path, base_dir=original) if original else load_config(cfg_path)
    an = prepare(cfg)
    try:
        result = FitResult.load(folder / "posterior.nc", an.qmodel)
    except (QicstatsError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - a truncated or damaged NetCDF file
        raise RunFolderError(f"{folder / 'posterior.nc'} cannot be read ({type(err).__name__}: "
                             f"{str(err)[:160]}): the run folder is damaged or was truncated; "
                             "run the analysis again") from None
    sens = None
    if (folder / "sensitivity_by_coder.csv").exists():
        sens = pd.read_csv(folder / "sensitivity_by_coder.csv")
    return RunResult(an, result, folder, manifest, sens)


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a run folder, or :class:`RunFolderError` saying what is wrong."""
    if not folder.exists():
        raise RunFolderError(f"run folder not found: {folder}")
    if not folder.is_dir():
        raise RunFolderError(f"{folder} is a file, not a run folder; give the folder "
                             "`qicstats run` wrote")
    path = folder / "manifest.json"
    if not path.is_file():
        raise RunFolderError(f"{folder} is not a qicstats run folder (it has no "
                             "manifest.json); give a folder written by `qicstats run`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise RunFolderError(f"{path} cannot be read ({err}): the run folder is damaged or "
                             "was truncated; run the analysis again") from None
    if not isinstance(manifest, dict) or "qicstats_run" not in manifest:
        raise RunFolderError(f"{path} was not written by `qicstats run`; give a run folder")
    return manifest


def render_runs_report(runs: list[RunResult], *, title: str | None = None) -> str:
    """The run report of one run, or the comparison report of several."""
    import yaml

    from qicstats.report import RunView, render_comparison_report, render_run_report

    if len(runs) == 1:
        r = runs[0]
        baselines = None
        if r.folder is not None and (r.folder / "frequentist.csv").exists():
            baselines = pd.read_csv(r.folder / "frequentist.csv")
        return render_run_report(r.result, data=r.analysis.data, indicators=r.analysis.indicators,
                                 baselines=baselines, title=title or r.analysis.config.report.title,
                                 sections=list(r.analysis.config.report.sections),
                                 provenance={k: r.manifest.get(k) for k in
                                             ("config_hash", "data_hash", "seed", "versions",
                                              "created", "name")},
                                 config_text=dump_config(r.analysis.config))
    views = [RunView(r.analysis.config.name if r.folder is None else r.folder.name, r.result,
                     yaml.safe_load(dump_config(r.analysis.config))) for r in runs]
    return render_comparison_report(views, title=title)
