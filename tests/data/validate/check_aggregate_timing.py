"""Quick timing check (not a test): aggregate 10 million patient rows, and validate them.

Run: ``python tests/data/validate/check_aggregate_timing.py [n_rows]``. The target is under
5 s for :func:`qicstats.data.aggregate_patient_rows` on 10 million rows.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd

from qicstats.data import aggregate_patient_rows, validate


def main(n: int = 10_000_000) -> None:
    rng = np.random.default_rng(1)
    units = np.array([f"unit{i:03d}" for i in range(200)])
    months = np.array([f"{2020 + m // 12}-{m % 12 + 1:02d}" for m in range(36)])
    df = pd.DataFrame({
        "unit": units[rng.integers(0, 200, n)],
        "period": months[rng.integers(0, 36, n)],
        "outcome": rng.integers(0, 2, n),
    })
    t0 = time.perf_counter()
    out = aggregate_patient_rows(df, "unit", "period", "outcome")
    t1 = time.perf_counter()
    assert out["denominator"].sum() == n and out["numerator"].sum() == df["outcome"].sum()
    print(f"aggregate_patient_rows: {n:,} rows -> {len(out):,} cells in {t1 - t0:.2f} s")
    udf = pd.DataFrame({"unit": units, "collaborative": np.where(np.arange(200) < 150,
                                                                 "C" + (np.arange(200) % 5)
                                                                 .astype(str), None),
                        "join_period": np.where(np.arange(200) < 150,
                                                months[6 + np.arange(200) % 20], None)})
    t2 = time.perf_counter()
    pdata = validate(df, udf)
    t3 = time.perf_counter()
    print(f"validate (patient rows): {t3 - t2:.2f} s; {pdata.summary()['n_rows']} panel rows")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000)
