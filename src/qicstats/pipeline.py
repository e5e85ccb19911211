"""Config-driven, reproducible analyses: ``prepare`` -> ``run`` -> a run folder; ``load_run``.

A run folder (a public contract: extend, never rename) holds

=========================  ===========================================================
``config.resolved.yaml``   the config with every default filled in
``manifest.json``          versions, config and data hashes, seed, timings, verdict
``posterior.nc``           the posterior (NetCDF, with provenance attributes)
``summary.csv``            parameter summary (:meth:`FitResult.summary`)
``estimands.csv``          the tidy estimands table (:data:`ESTIMAND_COLUMNS`)
``diagnostics.csv``        the diagnostics gate, one row per check
``unit_ranks.csv``         rank distributions of unit improvement
``positive_deviance.csv``  units beating / falling short of their collaborative
``residual_signals.csv``   Anhøj rules on each unit's posterior predictive residuals
``frequentist.csv``        frequentist cross-checks (when enabled)
``indicator_agreement.csv`` coder agreement (when codes have several coders)
``sensitivity_by_coder.csv`` indicator estimands refitted per coder (when asked)
``estimands.md/.tex``      the estimands table for papers
``report.html``            the self-contained report
=========================  ===========================================================

The folder is built under a temporary name next to its destination and renamed into place
at the end, so an interrupted run never leaves a folder that looks complete, and an existing
folder is only replaced with ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from qicstats.config import (
    AnalysisConfig,
    config_hash,
    data_file_hashes,
    dump_config,
    load_config,
    model_spec,
)
from qicstats.data import validate
from qicstats.data.columns import ColumnMap
from qicstats.data.panel import PanelData
from qicstats.errors import DataValidationError, Problem, RunExistsError
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
    "diagnostics.csv", "unit_ranks.csv", "positive_deviance.csv", "residual_signals.csv",
    "frequentist.csv", "indicator_agreement.csv", "sensitivity_by_coder.csv", "estimands.md",
    "estimands.tex", "report.html",
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
            out["latent_codes"] = 0 if d.mixture is None else int(
                (d.cell_info["status"] != "observed").sum())
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
    warnings = list(data.warnings)
    if cfg.indicators is not None:
        from qicstats.indicators import load_codebook

        codebook = load_codebook(cfg.paths.codebook)
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
            "data_files": data_file_hashes(an.config)}
    idata = fit(an.qmodel, sc, provenance=prov)
    return FitResult(an.qmodel, idata, options=opts, thresholds=th, name=an.config.name)


def _fast_sampler(sc: SamplerConfig) -> SamplerConfig:
    """Honour ``QICSTATS_FAST=1`` (documented: notebooks and CI use short chains)."""
    if os.environ.get("QICSTATS_FAST") == "1":
        from dataclasses import replace

        return replace(sc, chains=2, draws=min(sc.draws, 150), tune=min(sc.tune, 200))
    return sc


def run(config: AnalysisConfig | str | os.PathLike[str], *, out: str | os.PathLike[str] | None = None,
        overwrite: bool = False, progress: Progress = _quiet, report: bool = True) -> RunResult:
    """Run an analysis end to end and write its run folder.

    Parameters
    ----------
    config : AnalysisConfig or path
    out : path, optional
        The run folder (default ``runs/<name>`` next to the config file).
    overwrite : bool
        Replace an existing folder; otherwise :class:`RunExistsError`.
    progress : callable, optional
        Receives one line per step (the CLI prints them).
    report : bool
        Render ``report.html``.

    Returns
    -------
    RunResult
        With ``exit_code`` 0 (pass, or warn when not strict) or 1.
    """
    cfg = config if isinstance(config, AnalysisConfig) else load_config(config)
    base = cfg.base_dir
    folder = Path(out) if out is not None else Path(base) / "runs" / cfg.name
    folder = folder.resolve()
    _check_destination(folder, cfg, overwrite)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    an = prepare(cfg, progress=progress)
    timings["prepare_s"] = time.perf_counter() - t
    t = time.perf_counter()
    _, _, sc = _options(cfg)
    result = fit_analysis(an, progress=progress, sampler=_fast_sampler(sc))
    timings["sampling_s"] = time.perf_counter() - t
    t = time.perf_counter()
    dg = result.diagnostics()
    progress(dg.headline())
    sens = None
    if cfg.indicators is not None and cfg.indicators.sensitivity_by_coder:
        sens = coder_sensitivity(an, progress=progress)
    tmp = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        manifest = _write_folder(tmp, an, result, sens, timings, report=report, progress=progress)
        timings["outputs_s"] = time.perf_counter() - t
        manifest["timings"] = {k: round(v, 2) for k, v in timings.items()}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _move_into_place(tmp, folder, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    progress(f"run folder written: {folder}")
    return RunResult(an, result, folder, manifest, sens)


def _check_destination(folder: Path, cfg: AnalysisConfig, overwrite: bool) -> None:
    inputs = [p for _, p in cfg.paths.items()]
    for p in inputs:
        try:
            Path(p).resolve().relative_to(folder)
        except ValueError:
            continue
        raise RunExistsError(f"the run folder {folder} contains input file {p}; choose another --out")
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        raise RunExistsError(f"run folder {folder} already exists; use --overwrite to replace it "
                             "or --out to write elsewhere")


def _move_into_place(tmp: Path, folder: Path, overwrite: bool) -> None:
    old = None
    if folder.exists():
        if not overwrite and any(folder.iterdir()):
            raise RunExistsError(f"run folder {folder} appeared while running; not replaced")
        old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
        folder.rename(old)
    tmp.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False, float_format=CSV_FLOAT, lineterminator="\n")


def _write_folder(tmp: Path, an: Analysis, result: FitResult, sens: pd.DataFrame | None,
                  timings: dict[str, float], *, report: bool, progress: Progress) -> dict[str, Any]:
    cfg = an.config
    (tmp / "config.resolved.yaml").write_text(dump_config(cfg))
    result.save(tmp / "posterior.nc")
    _csv(result.summary(), tmp / "summary.csv")
    est = result.estimands()
    _csv(est, tmp / "estimands.csv")
    dg = result.diagnostics()
    _csv(dg.to_frame(), tmp / "diagnostics.csv")
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
        "config_base_dir": str(cfg.base_dir),
        "seed": cfg.sampler.seed,
        "sampler": cfg.sampler.model_dump(mode="json"),
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


def coder_sensitivity(an: Analysis, *, progress: Progress = _quiet) -> pd.DataFrame:
    """Refit with each coder's codes alone (``consensus="coder:<name>"``).

    Returns the indicator estimands (contrasts and ``att``) of every refit, with a ``coder``
    column; the main run's consensus is included as ``coder = "(consensus)"``.
    """
    from qicstats.indicators import coders

    names = [c for c in coders(an.codes) if c.lower() not in ("adjudicated", "consensus")]
    opts, th, sc = _options(an.config)
    frames = []
    for name in names:
        progress(f"sensitivity: refitting with coder {name}'s codes")
        im = encode(an.codes, an.data, consensus=f"coder:{name}", indicators=an.config.indicators.use)
        qm = build(an.data, an.qmodel.spec, im)
        idata = fit(qm, _fast_sampler(sc))
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
    manifest = json.loads((folder / "manifest.json").read_text())
    cfg_path = folder / "config.resolved.yaml"
    original = manifest.get("config_base_dir")
    cfg = load_config(cfg_path, base_dir=original) if original else load_config(cfg_path)
    an = prepare(cfg)
    result = FitResult.load(folder / "posterior.nc", an.qmodel)
    sens = None
    if (folder / "sensitivity_by_coder.csv").exists():
        sens = pd.read_csv(folder / "sensitivity_by_coder.csv")
    return RunResult(an, result, folder, manifest, sens)


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
