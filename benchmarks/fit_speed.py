"""Side-by-side speed benchmark: qicstats' default fit against the equivalent Bambi model.

Usage::

    python benchmarks/fit_speed.py --size S --out benchmarks/results/S.json
    python benchmarks/fit_speed.py --size M --tools qicstats,bambi --chains 4 --draws 1000 \
        --seed 20261122 --timeout 900 --out benchmarks/results/M.json
    python benchmarks/fit_speed.py --size L --tools aggregate --rows 10000000 --out agg.json

One run simulates the size once (``qicstats.simulate.simulate(preset=size, seed=seed)``) and
fits the SAME aggregated rows with every tool asked for, each in its own subprocess (so the
peak memory of one tool does not mix with another's and every tool pays its own cold
compile):

``qicstats``
    ``validate`` the panel (levels collaborative and site), ``load_indicators`` + ``encode``
    the codes, ``build`` a :class:`~qicstats.models.ModelSpec` matching the reference model
    (binomial, linear trend, collaborative and site random effects on the baseline, level and
    slope change, both indicators as moderators; package defaults otherwise), then
    ``qicstats.inference.fit`` with the default :class:`~qicstats.inference.fit.SamplerConfig`
    (nutpie; its default warm-up, 500, unless ``--tune`` is given) and the chains/draws/seed
    given here.
``bambi``
    ``p(numerator, denominator) ~ time + D + e + D:<ind> + e:<ind> ... + (1 + D + e |
    collaborative) + (1 + D + e | collaborative:site)`` on the rows of qicstats' own design
    (same centred time, D, e and indicator values), Bambi's default priors, sampler
    (``inference_method="pymc"``: PyMC's NUTS), init, target_accept and warm-up (1000, unless
    ``--tune`` is given), with the same chains/draws/seed.
``aggregate``
    ``qicstats.data.aggregate.aggregate_patient_rows`` on a synthetic patient-level frame of
    ``--rows`` rows (string unit and period columns, as ``read_csv`` gives them).

Minimum ESS and maximum R-hat are taken over the same 14 population-level scalars in both
models (see :data:`PARAMETER_MAP`). The script prints a table and writes one JSON document
(``meta``, ``parameter_map``, ``records``). It is a benchmark script, not part of the package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

SIZES = ("S", "M", "L")
TOOLS = ("qicstats", "bambi", "aggregate")
LEVELS = ("collaborative", "site")

#: ``(canonical name, qicstats variable, qicstats selection, Bambi variable)``; indicator
#: entries are expanded per moderator indicator by :func:`parameter_map`.
_FIXED_MAP: list[tuple[str, str, dict[str, str] | None, str]] = [
    ("intercept", "intercept", None, "Intercept"),
    ("trend_slope", "trend_slope", None, "time"),
    ("level_change", "level_change", None, "D"),
    ("slope_change", "slope_change", None, "e"),
]
_SD_MAP: list[tuple[str, str, dict[str, str] | None, str]] = [
    ("sd_u_collaborative", "sd_u_collaborative", None, "1|collaborative_sigma"),
    ("sd_u_site", "sd_u_site", None, "1|collaborative:site_sigma"),
    ("sd_level_collaborative", "sd_level_collaborative", None, "D|collaborative_sigma"),
    ("sd_level_site", "sd_level_site", None, "D|collaborative:site_sigma"),
    ("sd_slope_collaborative", "sd_slope_collaborative", None, "e|collaborative_sigma"),
    ("sd_slope_site", "sd_slope_site", None, "e|collaborative:site_sigma"),
]


def parameter_map(indicators: list[str]) -> list[dict[str, Any]]:
    """The shared population-level scalars and their names in each model.

    Parameters
    ----------
    indicators : list of str
        Names of the moderator indicators (in model order).

    Returns
    -------
    list of dict
        ``{"parameter", "qicstats", "bambi"}`` per scalar; ``qicstats`` is the posterior
        variable, with ``[dim=label]`` when one element of a vector is meant.
    """
    rows = list(_FIXED_MAP)
    for term, var, bvar in (("ind_level", "ind_level", "D"), ("ind_slope", "ind_slope", "e")):
        for name in indicators:
            rows.append((f"{term}[{name}]", var, {"indicator_moderator": name},
                         f"{bvar}:{name}"))
    rows += _SD_MAP
    out = []
    for canon, var, sel, bvar in rows:
        label = var if sel is None else f"{var}[{next(iter(sel.values()))}]"
        out.append({"parameter": canon, "qicstats": label, "bambi": bvar,
                    "_var": var, "_sel": sel})
    return out


def public_map(pmap: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The mapping without the private selection keys (for JSON)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in pmap]


def model_spec() -> Any:
    """The qicstats :class:`~qicstats.models.ModelSpec` of the reference model."""
    from qicstats.models import ModelSpec

    return ModelSpec(family="binomial", trend="linear",
                     random={"baseline": LEVELS, "level": LEVELS, "slope": LEVELS})


def bambi_formula(indicators: list[str]) -> str:
    """The Bambi formula of the reference model with moderators ``indicators``."""
    mods = " + ".join(f"{x}:{name}" for name in indicators for x in ("D", "e"))
    fixed = "time + D + e" + (f" + {mods}" if mods else "")
    groups = "(1 + D + e | collaborative) + (1 + D + e | collaborative:site)"
    return f"p(numerator, denominator) ~ {fixed} + {groups}"


# ------------------------------------------------------------------------------------------
# machine and versions
# ------------------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU model, core count, RAM, load and package versions of this machine."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    mem_gb = float("nan")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = int(line.split()[1]) / 1024**2
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("qicstats", "pymc", "pytensor", "nutpie", "bambi", "formulae", "arviz",
                "arviz-stats", "numba", "numpy", "pandas", "xarray"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            continue
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem_gb, 1),
            "python": sys.version.split()[0], "platform": platform.platform(),
            "versions": versions}


def _load() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------
# data (parent process)
# ------------------------------------------------------------------------------------------
def prepare_data(size: str, seed: int, workdir: Path) -> dict[str, Any]:
    """Simulate ``size`` once and store the tables and the Bambi rows under ``workdir``.

    The Bambi rows are qicstats' own design rows (same validated panel, same centred time,
    ``D``, ``e`` and indicator values), so both tools fit identical aggregated data.
    """
    import hashlib

    import numpy as np
    import pandas as pd

    from qicstats.data import validate
    from qicstats.indicators import encode, load_indicators
    from qicstats.models import build_design
    from qicstats.simulate import simulate

    t0 = time.perf_counter()
    sim = simulate(preset=size, seed=seed)
    sim_s = time.perf_counter() - t0
    tables = {"panel": sim.panel, "units": sim.units, "indicators": sim.indicators,
              "codebook": sim.codebook}
    with open(workdir / "tables.pkl", "wb") as fh:
        pickle.dump(tables, fh)

    data = validate(sim.panel, sim.units, family="binomial", levels=LEVELS)
    codes = load_indicators(sim.indicators, sim.codebook, data)
    im = encode(codes, data)
    d = build_design(data, model_spec(), im)
    rows = d.rows
    if d.mixture is not None or np.isnan(rows.Z).any():
        raise RuntimeError("the benchmark presets have no missing or uncertain codes; "
                           "this simulation does")
    frame = pd.DataFrame({
        "numerator": d.y["numerator"].astype(np.int64),
        "denominator": d.y["denominator"].astype(np.int64),
        "time": d.tau[rows.t],
        "D": rows.D,
        "e": rows.e,
    })
    moderators = []
    for k, ind in enumerate(d.indicators):
        z = rows.Z[:, k].astype(float)
        if ind.type == "ordinal":
            # Bambi has no monotonic effect: the level index scaled to [0, 1], so the
            # coefficient is "highest vs lowest level" as in qicstats
            z = z / max(ind.n_levels - 1, 1)
        frame[ind.name] = z
        if ind.is_moderator:
            moderators.append(ind.name)
    for lv in LEVELS:
        g = d.base_groups[lv]
        frame[lv] = np.asarray(g.names, dtype=object)[g.of_unit[rows.unit]]
    frame.to_pickle(workdir / "bambi_rows.pkl")
    h = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return {"simulate_s": round(sim_s, 2), "n_obs": int(len(frame)),
            "n_units": int(d.n_units), "n_periods": int(d.T),
            "n_collaboratives": int(sum(1 for n in d.base_groups["collaborative"].names
                                        if not n.startswith("("))),
            "n_sites": int(d.change_groups["site"].n),
            "indicators": [i.name for i in d.indicators],
            "indicator_types": {i.name: i.type for i in d.indicators},
            "moderators": moderators, "rows_sha256": h.hexdigest()}


# ------------------------------------------------------------------------------------------
# workers (one subprocess per tool)
# ------------------------------------------------------------------------------------------
def _scalar_stats(arrays: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean, sd, bulk/tail ESS and R-hat of ``(chain, draw)`` arrays."""
    import arviz as az
    import numpy as np
    import xarray as xr

    ds = xr.Dataset({k: (("chain", "draw"), np.asarray(v, dtype=float))
                     for k, v in arrays.items()})
    eb = az.ess(ds, method="bulk")
    et = az.ess(ds, method="tail")
    rh = az.rhat(ds)
    out = {}
    for k, v in arrays.items():
        out[k] = {"mean": float(np.mean(v)), "sd": float(np.std(v)),
                  "ess_bulk": float(eb[k].values), "ess_tail": float(et[k].values),
                  "r_hat": float(rh[k].values)}
    return out


def _sampler_stats(idata: Any) -> dict[str, Any]:
    import numpy as np

    ss = idata.sample_stats
    div = int(np.asarray(ss["diverging"].values).sum()) if "diverging" in ss else None
    steps = None
    for key in ("n_steps", "tree_size"):
        if key in ss:
            steps = float(np.asarray(ss[key].values).mean())
            break
    step_size = None
    if "step_size" in ss:
        step_size = float(np.asarray(ss["step_size"].values).mean())
    return {"divergences": div, "mean_leapfrog_steps": steps, "mean_step_size": step_size}


def _summarise(stats: dict[str, dict[str, float]]) -> dict[str, Any]:
    eb = {k: v["ess_bulk"] for k, v in stats.items()}
    et = {k: v["ess_tail"] for k, v in stats.items()}
    rh = {k: v["r_hat"] for k, v in stats.items()}
    worst_b = min(eb, key=eb.get)
    worst_r = max(rh, key=rh.get)
    return {"min_ess_bulk": eb[worst_b], "min_ess_bulk_at": worst_b,
            "min_ess_tail": min(et.values()), "min_ess_tail_at": min(et, key=et.get),
            "max_rhat": rh[worst_r], "max_rhat_at": worst_r}


def worker_qicstats(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Validate, encode, build and fit with qicstats' default sampler (timed)."""
    t_imp = time.perf_counter()
    from qicstats.data import validate
    from qicstats.indicators import encode, load_indicators
    from qicstats.inference.fit import SamplerConfig, available_cores, fit
    from qicstats.models import build
    import_s = time.perf_counter() - t_imp

    with open(workdir / "tables.pkl", "rb") as fh:
        tab = pickle.load(fh)
    t0 = time.perf_counter()
    data = validate(tab["panel"], tab["units"], family="binomial", levels=LEVELS)
    codes = load_indicators(tab["indicators"], tab["codebook"], data)
    im = encode(codes, data)
    t1 = time.perf_counter()
    qm = build(data, model_spec(), im)
    t2 = time.perf_counter()
    tune = SamplerConfig.tune if args.tune is None else args.tune
    sc = SamplerConfig(chains=args.chains, draws=args.draws, tune=tune, seed=args.seed,
                       progress=False, fastmath=bool(getattr(args, "fastmath", False)))
    idata = fit(qm, sc)
    t3 = time.perf_counter()
    sampling_s = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    fit_s = t3 - t2
    total_s = t3 - t0

    moderators = list(qm.design.indicators[k].name for k in range(qm.design.K)
                      if qm.design.indicators[k].is_moderator)
    arrays = {}
    for r in parameter_map(moderators):
        da = idata.posterior[r["_var"]]
        if r["_sel"]:
            da = da.sel(r["_sel"])
        arrays[r["parameter"]] = da.values
    stats = _scalar_stats(arrays)
    rec = {
        "tool": "qicstats", "backend": sc.backend, "tune": sc.tune,
        "target_accept": json.loads(idata.attrs["qicstats_sampler"])["target_accept"],
        "cores": min(sc.chains, sc.cores or available_cores()),
        "n_obs": int(qm.design.rows.n),
        "n_free_parameters": int(sum(v.size for v in qm.model.initial_point().values())),
        "import_s": import_s, "prepare_s": t1 - t0, "build_s": t2 - t1,
        "compile_s": (t2 - t0) + (fit_s - sampling_s), "sampling_s": sampling_s,
        "total_s": total_s, **_summarise(stats), **_sampler_stats(idata),
        "parameters": stats,
    }
    # qicstats' own gate over every free parameter (not timed)
    try:
        from qicstats.results import FitResult

        dg = FitResult(qm, idata).diagnostics()
        rec["gate"] = {"verdict": dg.verdict, "max_rhat": dg.max_rhat,
                       "min_ess_bulk": dg.min_ess_bulk, "min_ess_tail": dg.min_ess_tail,
                       "divergences": dg.divergences, "reasons": list(dg.reasons)}
    except Exception as exc:  # the benchmark must not fail on a results-layer problem
        rec["gate"] = {"error": f"{type(exc).__name__}: {exc}"}
    return rec


def worker_bambi(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Build and fit the equivalent Bambi model with Bambi's defaults (timed)."""
    import pandas as pd

    t_imp = time.perf_counter()
    import bambi as bmb

    from qicstats.inference.fit import available_cores
    import_s = time.perf_counter() - t_imp

    frame = pd.read_pickle(workdir / "bambi_rows.pkl")
    meta = json.loads((workdir / "data.json").read_text())
    moderators = meta["moderators"]
    formula = bambi_formula(moderators)
    t0 = time.perf_counter()
    model = bmb.Model(formula, frame, family="binomial")
    model.build()
    t1 = time.perf_counter()
    # the same number of parallel chains as qicstats gets: PyMC's own default guesses half the
    # CPUs (it assumes hyper-threading), which would leave a core idle on these machines
    cores = min(args.chains, available_cores())
    tune = {} if args.tune is None else {"tune": args.tune}   # else Bambi's default, 1000
    idata = model.fit(draws=args.draws, chains=args.chains, random_seed=args.seed,
                      progressbar=False, cores=cores, **tune)
    t2 = time.perf_counter()
    sampling_s = float(idata.posterior.attrs.get("sampling_time", float("nan")))
    fit_s = t2 - t1
    arrays = {r["parameter"]: idata.posterior[r["bambi"]].values
              for r in parameter_map(moderators)}
    stats = _scalar_stats(arrays)
    return {
        "tool": "bambi", "backend": "pymc (Bambi default inference_method)", "cores": cores,
        "target_accept": 0.8, "formula": formula, "n_obs": int(len(frame)),
        "tune": int(idata.posterior.attrs.get("tuning_steps", args.tune or 1000)),
        "n_free_parameters": int(sum(v.size for v in
                                     model.backend.model.initial_point().values())),
        "import_s": import_s, "prepare_s": 0.0, "build_s": t1 - t0,
        "compile_s": (t1 - t0) + (fit_s - sampling_s), "sampling_s": sampling_s,
        "total_s": t2 - t0, **_summarise(stats), **_sampler_stats(idata),
        "parameters": stats,
    }


def worker_aggregate(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Time ``aggregate_patient_rows`` on a synthetic patient-level frame of ``--rows``."""
    import numpy as np
    import pandas as pd

    from qicstats.data.aggregate import aggregate_patient_rows

    n = int(args.rows)
    rng = np.random.default_rng(args.seed)
    n_units, n_periods = 1000, 48
    unit_names = np.array([f"U{i:04d}" for i in range(n_units)], dtype=object)
    period_names = np.array([f"{2022 + m // 12}-{m % 12 + 1:02d}" for m in range(n_periods)],
                            dtype=object)
    t_gen = time.perf_counter()
    # sorted by unit and period, as exports usually are; string columns as read_csv gives them
    cell = np.sort(rng.integers(0, n_units * n_periods, n))
    df = pd.DataFrame({
        "unit": pd.array(unit_names[cell // n_periods], dtype="string"),
        "period": pd.array(period_names[cell % n_periods], dtype="string"),
        "outcome": (rng.random(n) < 0.4).astype(np.int64),
    })
    gen_s = time.perf_counter() - t_gen
    times = []
    out = None
    for _ in range(max(1, args.repeat)):
        t0 = time.perf_counter()
        out = aggregate_patient_rows(df, "unit", "period", "outcome")
        times.append(time.perf_counter() - t0)
    assert out is not None and int(out["denominator"].sum()) == n
    return {"tool": "aggregate", "n_rows": n, "n_cells": int(len(out)),
            "generate_s": gen_s, "aggregate_s_each": times, "total_s": min(times),
            "dtypes": {c: str(t) for c, t in df.dtypes.items()}}


WORKERS = {"qicstats": worker_qicstats, "bambi": worker_bambi, "aggregate": worker_aggregate}


# ------------------------------------------------------------------------------------------
# parent: run each tool in its own process, with a time limit
# ------------------------------------------------------------------------------------------
def run_tool(tool: str, workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one tool's worker in a subprocess; return its record with time-out, RSS and load."""
    out_path = workdir / f"{tool}.json"
    log_path = workdir / f"{tool}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", tool,
           "--workdir", str(workdir), "--size", args.size, "--chains", str(args.chains),
           "--draws", str(args.draws), "--seed", str(args.seed),
           "--rows", str(args.rows), "--repeat", str(args.repeat)]
    if args.tune is not None:
        cmd += ["--tune", str(args.tune)]
    if getattr(args, "fastmath", False):
        cmd.append("--fastmath")
    loads = [_load()]
    t0 = time.perf_counter()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        status, ru, timed_out = None, None, False
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > args.timeout:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.5)
            if int(time.perf_counter() - t0) % 10 == 0:
                loads.append(_load())
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    loads.append(_load())
    rec: dict[str, Any] = {"tool": tool, "size": args.size}
    if timed_out:
        rec.update(status="timeout", total_s=None, min_ess_bulk=None, min_ess_tail=None,
                   ess_per_s=None, max_rhat=None, divergences=None)
    elif proc.returncode != 0 or not out_path.exists():
        tail = log_path.read_text(errors="replace")[-3000:]
        rec.update(status="error", error=tail)
    else:
        rec.update(json.loads(out_path.read_text()))
        rec["status"] = "ok"
        if rec.get("min_ess_bulk") is not None and rec.get("total_s"):
            rec["ess_per_s"] = rec["min_ess_bulk"] / rec["total_s"]
    # ru_maxrss: the largest resident set of the tool's process or any process it waited for
    rec["peak_rss_mb"] = ru.ru_maxrss / 1024 if ru is not None else None
    rec["cpu_s"] = (ru.ru_utime + ru.ru_stime) if ru is not None else None
    rec["process_wall_s"] = wall
    rec["load_1min"] = {"start": loads[0], "end": loads[-1], "max": max(loads),
                        "mean": sum(loads) / len(loads)}
    if tool != "aggregate":
        rec.update(chains=args.chains, draws=args.draws, seed=args.seed)
    return rec


def _fmt(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


COLUMNS = [("tool", 0), ("size", 0), ("status", 0), ("n_obs", 0), ("compile_s", 1),
           ("sampling_s", 1), ("total_s", 1), ("min_ess_bulk", 0), ("min_ess_tail", 0),
           ("ess_per_s", 2), ("divergences", 0), ("max_rhat", 3), ("peak_rss_mb", 0)]


def format_table(records: list[dict[str, Any]]) -> str:
    """A plain-text table of the fit records (and the aggregation timing if present)."""
    lines = []
    fits = [r for r in records if r["tool"] != "aggregate"]
    if fits:
        head = [c for c, _ in COLUMNS]
        body = [[_fmt(r.get(c), nd) for c, nd in COLUMNS] for r in fits]
        w = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
        lines.append("  ".join(h.rjust(w[i]) for i, h in enumerate(head)))
        lines += ["  ".join(b[i].rjust(w[i]) for i in range(len(head))) for b in body]
        by = {r["tool"]: r for r in fits}
        q, b = by.get("qicstats", {}), by.get("bambi", {})
        if q.get("ess_per_s") and b.get("ess_per_s"):
            lines.append(f"qicstats / bambi ESS per second: {q['ess_per_s'] / b['ess_per_s']:.1f}x")
    for r in records:
        if r["tool"] == "aggregate":
            lines.append(f"aggregate_patient_rows: {r.get('n_rows')} rows -> {r.get('n_cells')} "
                         f"cells in {_fmt(r.get('total_s'), 2)} s (best of "
                         f"{len(r.get('aggregate_s_each', []))}), peak RSS "
                         f"{_fmt(r.get('peak_rss_mb'), 0)} MB, status {r.get('status')}")
    return "\n".join(lines)


def _clean(obj: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    p = argparse.ArgumentParser(
        description="Fit speed of qicstats' default model against the equivalent Bambi model "
                    "on the same simulated QIC panel.")
    p.add_argument("--size", choices=SIZES, required=True,
                   help="simulation preset: S 40x24, M 200x36, L 1000x48")
    p.add_argument("--tools", default="qicstats,bambi",
                   help="comma-separated subset of qicstats,bambi,aggregate (in run order)")
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=None,
                   help="warm-up iterations per chain for every tool (default: each tool's "
                   "own default, qicstats 500 and Bambi 1000)")
    p.add_argument("--seed", type=int, default=20261122,
                   help="simulation seed and sampler seed of every tool")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds per tool run (default 900); a tool that runs out is "
                        "recorded with status 'timeout'")
    p.add_argument("--rows", type=int, default=10_000_000,
                   help="patient-level rows for the 'aggregate' tool")
    p.add_argument("--repeat", type=int, default=3, help="repeats of the aggregation timing")
    p.add_argument("--note", default="", help="free text stored in meta (e.g. machine load)")
    p.add_argument("--fastmath", action="store_true",
                   help="qicstats with SamplerConfig(fastmath=True) (faster; draws then depend "
                   "on the compile-cache state)")
    p.add_argument("--out", help="JSON file to write (required unless --worker)")
    p.add_argument("--worker", choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad:
        p.error(f"unknown tool(s) {bad}; choose from {list(TOOLS)}")
    args.tool_list = tools
    if not args.worker and not args.out:
        p.error("--out is required")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with the hidden ``--worker``, one tool's fit)."""
    args = parse_args(argv)
    if args.worker:
        workdir = Path(args.workdir)
        rec = WORKERS[args.worker](workdir, args)
        (workdir / f"{args.worker}.json").write_text(json.dumps(_clean(rec)))
        return 0

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="qicstats-bench-") as tmp:
        workdir = Path(tmp)
        data_meta: dict[str, Any] = {}
        if any(t in ("qicstats", "bambi") for t in args.tool_list):
            data_meta = prepare_data(args.size, args.seed, workdir)
            (workdir / "data.json").write_text(json.dumps(data_meta))
        records = []
        for tool in args.tool_list:
            print(f"[{time.strftime('%H:%M:%S')}] {tool} on {args.size} ...", file=sys.stderr,
                  flush=True)
            rec = run_tool(tool, workdir, args)
            if tool != "aggregate":
                rec.setdefault("n_obs", data_meta.get("n_obs"))
            records.append(rec)
            print(f"[{time.strftime('%H:%M:%S')}] {tool}: {rec['status']}, "
                  f"{_fmt(rec.get('total_s'))} s", file=sys.stderr, flush=True)
    # keep RUSAGE_CHILDREN as a cross-check: the maximum over every tool run
    children_max = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    doc = {
        "meta": {"started": started, "size": args.size, "seed": args.seed,
                 "chains": args.chains, "draws": args.draws, "tune": args.tune,
                 "timeout_s": args.timeout, "note": args.note, "machine": machine_info(),
                 "data": data_meta, "children_max_rss_mb": children_max,
                 "qicstats_spec": model_spec().to_dict() if data_meta else None,
                 "bambi_formula": bambi_formula(data_meta["moderators"]) if data_meta else None},
        "parameter_map": public_map(parameter_map(data_meta["moderators"])) if data_meta else [],
        "records": records,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(doc), indent=2) + "\n")
    print(format_table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
