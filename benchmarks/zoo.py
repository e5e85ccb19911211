"""Design zoo benchmark: does the default ``init`` + ``run`` hold on designs it was not tuned to?

Usage::

    python benchmarks/zoo.py --out benchmarks/results/zoo.json
    python benchmarks/zoo.py --designs stepped_wedge,single_series --seeds 1,2,3 \
        --bambi collaborative_200 --out zoo.json

For every design of :data:`qicstats.simulate.ZOO` and every seed, one subprocess simulates the
design (``qicstats.simulate.simulate(name, seed=seed)``), writes its files as an analyst would
have them, runs ``qicstats init`` on them (:func:`qicstats.config.init.write_init_config`,
nothing edited) and fits the written config with the package's own path
(:func:`qicstats.pipeline.prepare`, :func:`qicstats.pipeline.fit_analysis`: the config's
sampler settings, no per-design tuning). It records, **gate verdict first**:

- the gate's verdict and reasons, max R-hat, min bulk and tail ESS over every checked
  parameter, divergences;
- wall time (prepare + compile + sampling, in this process) and min bulk ESS per second;
- the ATT over the identified horizons with its 95 % interval, the truth
  (:func:`qicstats.simulate.true_att` over the same horizons) and whether it covers; the same
  per collaborative.

``--bambi`` names designs (binomial ones) that are also fitted with Bambi in the same run, on
the same aggregated rows, in their own subprocess: the closest GLMM Bambi writes in one
formula, ``p(numerator, denominator) ~ 0 + C(period) + C(exposure) + (1 | collaborative) +
(1 | unit)`` (period fixed effects, one effect per exposure time, random collaborative and
unit intercepts; binomial, Bambi's default priors, PyMC's NUTS, its default warm-up 1000,
4 chains x 1000 draws). The two models are not identical (qicstats adds overdispersion,
partial pooling of the exposure-time effects and random changes), so the ratio compares the
cost of a usable posterior of a comparable model: min bulk ESS over each tool's own
population-level parameters, divided by each tool's wall time including compilation.

The script prints a table and writes one JSON document (``meta``, ``records``). It is a
benchmark script, not part of the package.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _worker_qicstats(design: str, seed: int, workdir: Path) -> dict[str, Any]:
    import numpy as np

    from qicstats.config import load_config
    from qicstats.config.init import write_init_config
    from qicstats.pipeline import fit_analysis, prepare
    from qicstats.simulate import simulate, true_att

    sim = simulate(design, seed=seed)
    data = workdir / "data"
    sim.write(data)
    kw: dict[str, Any] = {"units": data / "units.csv"}
    if len(sim.indicators):
        kw.update(indicators=data / "indicators.csv", codebook=data / "codebook.yaml")
    t0 = time.perf_counter()
    write_init_config(data / "panel.csv", workdir / "analysis.yaml", **kw)
    cfg = load_config(workdir / "analysis.yaml")
    an = prepare(cfg)
    t1 = time.perf_counter()
    fr = fit_analysis(an)
    t2 = time.perf_counter()
    dg = fr.diagnostics()
    est = fr.estimands()
    qm = an.qmodel
    mx = qm.design.identified_max
    att = est[(est.estimand == "att") & (est.scope == "overall")].iloc[0]
    truth = true_att(sim, max_exposure=mx)
    col = est[(est.estimand == "att") & (est.scope == "collaborative")]
    per = []
    for r in col.itertuples():
        tr = true_att(sim, collaborative=r.group, max_exposure=mx)
        per.append({"group": r.group, "mean": float(r.mean), "lower": float(r.lower),
                    "upper": float(r.upper), "truth": float(tr),
                    "covers": bool(r.lower <= tr <= r.upper)})
    d = dg.to_dict()
    ess = float(d.get("min_ess_bulk", float("nan")))
    wall = t2 - t0
    post = fr.idata.posterior
    n_free = int(sum(post[v].size // (post.sizes["chain"] * post.sizes["draw"])
                     for v in post.data_vars))
    return {
        "tool": "qicstats", "design": design, "seed": seed,
        "verdict": dg.verdict, "fail_reasons": dg.fail_reasons, "warn_reasons": dg.warn_reasons,
        "max_rhat": float(d.get("max_rhat", float("nan"))), "min_ess_bulk": ess,
        "min_ess_tail": float(d.get("min_ess_tail", float("nan"))),
        "divergences": int(d.get("divergences", -1)),
        "prepare_s": t1 - t0, "fit_s": t2 - t1, "wall_s": wall,
        "ess_per_s": ess / wall if wall > 0 else float("nan"),
        "model": {k: v for k, v in cfg.model.model_dump().items()
                  if k in ("trend", "effect", "seasonality", "phases")},
        "family": qm.family, "levels": list(cfg.data.levels or []),
        "identified_max": mx, "max_exposure": int(qm.structure.max_exposure)
        if qm.structure is not None else None,
        "att": {"mean": float(att["mean"]), "lower": float(att["lower"]),
                "upper": float(att["upper"]), "truth": float(truth),
                "covers": bool(att["lower"] <= truth <= att["upper"])},
        "collaboratives": per,
        "collaborative_coverage": (float(np.mean([p["covers"] for p in per]))
                                   if per else None),
        "n_rows": int(qm.design.n_obs) if hasattr(qm.design, "n_obs") else None,
        "n_posterior_scalars": n_free,
    }


def _identified_max(sim: Any, workdir: Path) -> int | None:
    """The largest exposure time the default qicstats config averages (no fit)."""
    from qicstats.config import load_config
    from qicstats.config.init import write_init_config
    from qicstats.pipeline import prepare

    data = workdir / "data-peer"
    sim.write(data)
    kw: dict[str, Any] = {"units": data / "units.csv"}
    if len(sim.indicators):
        kw.update(indicators=data / "indicators.csv", codebook=data / "codebook.yaml")
    write_init_config(data / "panel.csv", workdir / "peer.yaml", **kw)
    return prepare(load_config(workdir / "peer.yaml")).qmodel.design.identified_max


def _worker_bambi(design: str, seed: int, workdir: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from qicstats.inference.fit import available_cores
    from qicstats.simulate import simulate, true_att

    sim = simulate(design, seed=seed)
    rows = sim.truth_rows[["unit", "period", "exposure_time"]].merge(
        sim.panel, on=["unit", "period"])
    if "denominator" not in rows:
        raise SystemExit(f"bambi peer: {design} is not a binomial design")
    units = sim.units.set_index("unit")
    rows["collaborative"] = rows["unit"].map(units["collaborative"]).fillna("none").astype(str)
    rows["exposure"] = np.where(rows["exposure_time"] >= 0,
                                "h" + rows["exposure_time"].astype(str), "pre")
    rows = pd.DataFrame({k: (rows[k].astype(str) if rows[k].dtype.kind not in "iuf" else
                             rows[k]) for k in rows.columns})
    import bambi as bmb

    # the peer's model: period effects, one effect per exposure time (as qicstats' curve), unit
    # intercepts and, where there is more than one, collaborative intercepts (a one-level
    # random intercept is a pure funnel and would handicap the peer)
    several = rows["collaborative"].nunique() > 1
    formula = ("p(numerator, denominator) ~ 0 + C(period) + C(exposure, Treatment('pre'))"
               + (" + (1 | collaborative)" if several else "") + " + (1 | unit)")
    t0 = time.perf_counter()
    model = bmb.Model(formula, rows, family="binomial")
    model.build()
    chains = 4
    idata = model.fit(draws=1000, chains=chains, random_seed=seed, progressbar=False,
                      cores=min(chains, available_cores()))
    wall = time.perf_counter() - t0
    import arviz as az

    post = idata.posterior.to_dataset()
    names = [v for v in post.data_vars if not v.startswith("1|unit") and "_offset" not in v
             and v != "p"]
    ess = az.ess(post[names])
    rhat = az.rhat(post[names])
    min_ess = float(min(float(ess[v].min()) for v in names))
    max_rhat = float(max(float(rhat[v].max()) for v in names))
    div = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata else -1
    # the same gate as qicstats' default thresholds
    verdict = ("fail" if (div > 0.01 * chains * 1000 or max_rhat > 1.05 or min_ess < 100
                          or not np.isfinite(max_rhat)) else
               "warn" if (div > 0 or max_rhat > 1.01 or min_ess < 400) else "pass")
    # its ATT: the mean over the post-join rows of p(observed) - p(exposure set to 'pre')
    # over the rows qicstats' ATT averages (exposure times with a concurrent comparison)
    mx = _identified_max(sim, workdir)
    keep = (rows["exposure_time"] >= 0) & (rows["exposure_time"] <= (1e9 if mx is None else mx))
    post_rows = rows[keep].reset_index(drop=True)
    cf = post_rows.assign(exposure="pre")
    p1 = model.predict(idata, data=post_rows, kind="response_params", inplace=False)
    p0 = model.predict(idata, data=cf, kind="response_params", inplace=False)
    var = "p"
    d1 = p1.posterior.to_dataset()[var].values
    d0 = p0.posterior.to_dataset()[var].values
    att_draws = (d1 - d0).mean(axis=-1).ravel()
    truth = float(true_att(sim, max_exposure=mx))
    lo, hi = np.quantile(att_draws, [0.025, 0.975])
    return {"tool": "bambi", "design": design, "seed": seed, "formula": formula,
            "verdict": verdict, "min_ess_bulk": min_ess, "max_rhat": max_rhat,
            "divergences": div, "wall_s": wall, "ess_per_s": min_ess / wall,
            "parameters": names,
            "att": {"mean": float(att_draws.mean()), "lower": float(lo), "upper": float(hi),
                    "truth": truth, "covers": bool(lo <= truth <= hi)}}


def _run(tool: str, design: str, seed: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"zoo-{design}-{seed}-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, __file__, "--worker", tool, "--designs", design, "--seeds",
               str(seed), "--out", str(out), "--workdir", tmp]
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"tool": tool, "design": design, "seed": seed, "verdict": "timeout",
                    "wall_s": time.perf_counter() - t0}
        if p.returncode != 0 or not out.exists():
            return {"tool": tool, "design": design, "seed": seed, "verdict": "error",
                    "error": (p.stderr or p.stdout)[-3000:], "wall_s": time.perf_counter() - t0}
        return json.loads(out.read_text())


def _fmt(x: Any, spec: str) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def table(records: list[dict[str, Any]]) -> str:
    """The zoo table (Markdown), the gate verdict first."""
    head = ("| design | seed | verdict | max R-hat | min bulk ESS | div. | wall s | ESS/s | "
            "Bambi ESS/s | ratio | ATT [95 % CI] | truth | covers | collab. covered |")
    lines = [head, "|" + "---|" * 14]
    bam = {(r["design"], r["seed"]): r for r in records if r["tool"] == "bambi"}
    for r in records:
        if r["tool"] != "qicstats":
            continue
        b = bam.get((r["design"], r["seed"]))
        a = r.get("att") or {}
        ratio = (r["ess_per_s"] / b["ess_per_s"]
                 if b and b.get("ess_per_s") and r.get("ess_per_s") else None)
        per = r.get("collaboratives") or []
        lines.append(
            f"| {r['design']} | {r['seed']} | {r.get('verdict')} | {_fmt(r.get('max_rhat'), '.3f')}"
            f" | {_fmt(r.get('min_ess_bulk'), '.0f')} | {r.get('divergences', '-')}"
            f" | {_fmt(r.get('wall_s'), '.0f')} | {_fmt(r.get('ess_per_s'), '.1f')}"
            f" | {_fmt(b.get('ess_per_s') if b else None, '.2f')} | {_fmt(ratio, '.0f')}"
            f" | {_fmt(a.get('mean'), '.4g')} [{_fmt(a.get('lower'), '.4g')}, "
            f"{_fmt(a.get('upper'), '.4g')}] | {_fmt(a.get('truth'), '.4g')}"
            f" | {a.get('covers', '-')} | {sum(p['covers'] for p in per)}/{len(per)} |")
    return "\n".join(lines)


def summary(records: list[dict[str, Any]]) -> str:
    """One line per design over its seeds (Markdown): verdicts, coverage and the Bambi ratio."""
    head = ("| design | verdicts (pass/warn/fail) | ATT covered | collab. ATTs covered | "
            "median ESS/s | Bambi verdicts | median ESS/s ratio to Bambi |")
    lines = [head, "|" + "---|" * 7]
    designs = list(dict.fromkeys(r["design"] for r in records))
    for dsg in designs:
        q = [r for r in records if r["design"] == dsg and r["tool"] == "qicstats"]
        b = {r["seed"]: r for r in records if r["design"] == dsg and r["tool"] == "bambi"}
        if not q:
            continue
        v = [r.get("verdict") for r in q]
        cov = [bool((r.get("att") or {}).get("covers")) for r in q]
        per = [p["covers"] for r in q for p in (r.get("collaboratives") or [])]
        eps = sorted(r["ess_per_s"] for r in q if r.get("ess_per_s") is not None)
        ratios = sorted(r["ess_per_s"] / b[r["seed"]]["ess_per_s"] for r in q
                        if r["seed"] in b and b[r["seed"]].get("ess_per_s")
                        and r.get("ess_per_s"))
        bv = [b[s].get("verdict") for s in sorted(b)]

        def med(xs):
            return (xs[len(xs) // 2] if len(xs) % 2 else
                    0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) if xs else None)

        lines.append(
            f"| {dsg} | {v.count('pass')}/{v.count('warn')}/{v.count('fail')}"
            + (f" ({len(v) - v.count('pass') - v.count('warn') - v.count('fail')} other)"
               if len(v) != v.count('pass') + v.count('warn') + v.count('fail') else "")
            + f" | {sum(cov)}/{len(cov)} | {sum(per)}/{len(per)} | {_fmt(med(eps), '.1f')}"
            f" | {', '.join(str(x) for x in bv) if bv else '-'} | {_fmt(med(ratios), '.0f')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--designs", default="")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--bambi", default="", help="designs also fitted with Bambi")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per fit")
    ap.add_argument("--out", default="benchmarks/results/zoo.json")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        fn = _worker_qicstats if a.worker == "qicstats" else _worker_bambi
        res = fn(a.designs, int(a.seeds), Path(a.workdir))
        Path(a.out).write_text(json.dumps(res, indent=1, default=str))
        return 0
    from qicstats.simulate import ZOO

    designs = [d for d in a.designs.split(",") if d] or list(ZOO)
    seeds = [int(s) for s in a.seeds.split(",") if s]
    bambi = {d for d in a.bambi.split(",") if d}
    out = Path(a.out)
    records: list[dict[str, Any]] = []
    if out.exists():   # resume: keep what an earlier, interrupted run measured
        records = [r for r in json.loads(out.read_text()).get("records", [])
                   if r.get("verdict") not in ("error", "timeout")]
    done = {(r["tool"], r["design"], r["seed"]) for r in records}
    meta = {"machine": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "designs": designs, "seeds": seeds, "bambi": sorted(bambi)}
    for design in designs:
        for seed in seeds:
            for tool in ("qicstats", "bambi"):
                if (tool == "bambi" and design not in bambi) or (tool, design, seed) in done:
                    continue
                rec = _run(tool, design, seed, a.timeout)
                records.append(rec)
                print(f"{tool:8s} {design:20s} seed {seed}: {rec.get('verdict', '')} "
                      f"ESS {_fmt(rec.get('min_ess_bulk'), '.0f')} "
                      f"R-hat {_fmt(rec.get('max_rhat'), '.3f')} "
                      f"wall {_fmt(rec.get('wall_s'), '.0f')} s", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".tmp")
                tmp.write_text(json.dumps({"meta": meta, "records": records}, indent=1,
                                          default=str))
                tmp.replace(out)
    print(summary(records))
    print()
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
