"""How fast are large patient-level CSVs validated and aggregated? (issue 17, item 7)

Writes a patient-level panel of ``--rows`` rows (``unit``, ``period``, ``outcome`` 0/1; 200
units x 36 months, like an export of every admission of a national collaborative) and a units
table into a scratch folder, then times, each in a fresh process (so that the peak memory is
that step's own):

- ``read``: :func:`qicstats.data.read_table` of the CSV alone;
- ``validate``: :func:`qicstats.data.validate` end to end (read, check every rule, aggregate
  the patient rows to numerator/denominator per unit and month), which is what
  ``qicstats validate`` and ``qicstats run`` do before building the model.

Prints a table and writes the numbers as JSON. Usage::

    python benchmarks/csv_scale.py --rows 10000000 --out csv_scale.json

The target (issue 17) is under 5 s and under 2 GB peak memory for ``validate`` at 10 million
rows on a 2-core machine. Not a timed test: the default test run never executes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_UNITS = 200
N_MONTHS = 36

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
step, panel, units = sys.argv[1], sys.argv[2], sys.argv[3]
import qicstats.data as qd
t_import = time.perf_counter() - t0
t = time.perf_counter()
if step == "read":
    df = qd.read_table(panel)
    rows = len(df)
else:
    pdata = qd.validate(panel, units, family="binomial")
    rows = int(pdata.panel["denominator"].sum())
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"step": step, "seconds": seconds, "import_seconds": t_import,
                  "peak_bytes": peak, "rows": rows}))
"""


def write_data(folder: Path, rows: int, seed: int = 17) -> tuple[Path, Path]:
    """The patient-level panel and the units table (written with pyarrow's CSV writer)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(seed)
    units = np.array([f"U{i:03d}" for i in range(1, N_UNITS + 1)])
    months = np.array([f"{2022 + m // 12}-{m % 12 + 1:02d}" for m in range(N_MONTHS)])
    panel = folder / "patients.csv"
    chunk = 2_000_000
    with pacsv.CSVWriter(panel, pa.schema([("unit", pa.string()), ("period", pa.string()),
                                           ("outcome", pa.int8())]),
                         write_options=pacsv.WriteOptions(quoting_style="none")) as w:
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            u = rng.integers(0, N_UNITS, n)
            m = rng.integers(0, N_MONTHS, n)
            y = (rng.random(n) < 0.3 + 0.002 * m).astype(np.int8)
            w.write_table(pa.table({"unit": units[u], "period": months[m], "outcome": y}))
            done += n
    ut = folder / "units.csv"
    lines = ["unit,collaborative,join_period"]
    for i, name in enumerate(units):
        if i % 4 == 3:
            lines.append(f"{name},,")            # comparison units
        else:
            lines.append(f"{name},C{i % 3 + 1},{months[6 + (i % 18)]}")
    ut.write_text("\n".join(lines) + "\n")
    return panel, ut


def run_step(step: str, panel: Path, units: Path) -> dict:
    """One step in a fresh interpreter; its JSON line."""
    out = subprocess.run([sys.executable, "-c", _CHILD, step, str(panel), str(units)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000, help="patient rows (default 10M)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each step (best is kept)")
    ap.add_argument("--out", default="csv_scale.json", help="JSON file to write")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qicstats-csv-scale-") as tmp:
        t = time.perf_counter()
        panel, units = write_data(Path(tmp), args.rows)
        gen = time.perf_counter() - t
        size = panel.stat().st_size
        results = {}
        for step in ("read", "validate"):
            runs = [run_step(step, panel, units) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            best["all_seconds"] = [round(r["seconds"], 3) for r in runs]
            best["max_peak_bytes"] = max(r["peak_bytes"] for r in runs)
            results[step] = best
    v = results["validate"]
    report = {
        "rows": args.rows, "csv_bytes": size, "generate_seconds": round(gen, 2),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "steps": results,
        "target": {"seconds": 5.0, "peak_bytes": 2 * 1024**3},
        "meets_target": bool(v["seconds"] < 5.0 and v["max_peak_bytes"] < 2 * 1024**3),
    }
    print(f"{args.rows:,} patient rows, CSV {size / 1e6:.0f} MB "
          f"(written in {gen:.1f} s); best of {args.repeat} runs, each in a fresh process")
    print(f"{'step':<10} {'seconds':>8} {'all runs':>24} {'peak memory':>12}")
    for step, r in results.items():
        runs = ", ".join(f"{x:.2f}" for x in r["all_seconds"])
        print(f"{step:<10} {r['seconds']:>8.2f} {runs:>24} "
              f"{r['max_peak_bytes'] / 2**30:>9.2f} GiB")
    print(f"target: validate < 5 s and < 2 GiB: {'met' if report['meets_target'] else 'NOT met'}")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
