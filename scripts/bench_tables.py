"""Benchmark: writing the run table, runs.parquet (pyarrow) against runs.csv (gdkit's own
columnar CSV writer), for N rows.

The rows are one synthetic sweep shaped like a large learning-rate sweep (Adam on a 2-D
objective, float32: N/8 learning rates x 8 starts, a realistic mix of statuses, steps_to_tol
missing for the runs that did not converge), built directly as a `SweepResult` so that only
the writers are timed. Each writer runs `--repeat` times; the best time counts. Prints both
times, the ratio and the file sizes, as a table and as JSON.

  python scripts/bench_tables.py                    # 1,000,000 rows
  python scripts/bench_tables.py --rows 1e7         # 10 million (the CSV takes ~1.5 min)
  python scripts/bench_tables.py --rows 1e7 --skip-csv
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import numpy as np

from gdkit.experiments import rundir
from gdkit.result import SweepResult


def synthetic(rows: int, dim: int = 2, seed: int = 0) -> SweepResult:
    """A SweepResult of `rows` lanes: rows/8 learning rates x 8 starts, float32 outcomes."""
    starts = 8
    rng = np.random.default_rng(seed)
    shape = (rows // starts, starts)
    n = shape[0] * starts
    u = rng.random(n)
    status = np.where(u < 0.6, "converged", np.where(u < 0.9, "max_steps", "diverged"))
    stt = np.where(status == "converged", rng.integers(10, 2000, n), -1)
    div = np.where(status == "diverged", rng.integers(1, 500, n), -1)
    loss = (rng.random(n) * 1e-3).astype(np.float32)
    return SweepResult(
        objective="rosenbrock",
        optimizer="adam",
        fixed={},
        axes={"learning_rate": np.geomspace(1e-4, 1.0, shape[0]), "start": np.arange(starts)},
        starts=rng.normal(size=(starts, dim)),
        steps=2000,
        tol=1e-6,
        tol_metric="gap",
        f_min=0.0,
        dtype="float32",
        divergence_threshold=1e12,
        final_loss=loss.reshape(shape),
        best_loss=(loss * 0.9).reshape(shape),
        final_x=rng.normal(size=(*shape, dim)).astype(np.float32),
        final_grad_norm=(rng.random(n) * 1e-2).astype(np.float32).reshape(shape),
        steps_to_tol=stt.reshape(shape),
        status=status.astype("<U10").reshape(shape),
        diverged_step=div.reshape(shape),
        history=np.zeros((*shape, 1), np.float32),
        history_steps=np.array([0]),
    )


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=float, default=1e6)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--skip-csv", action="store_true", help="time runs.parquet only")
    args = p.parse_args()
    result = synthetic(int(args.rows))
    hparams = {"b1": 0.9, "b2": 0.999, "eps": 1e-8}
    pairs = [(hparams, result)]
    out = {"rows": result.lanes}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        out["parquet_s"] = best_of(
            args.repeat, lambda: rundir.write_runs_parquet(tmp / "runs.parquet", pairs)
        )
        out["parquet_mb"] = (tmp / "runs.parquet").stat().st_size / 1e6
        if not args.skip_csv:
            out["csv_s"] = best_of(
                args.repeat, lambda: rundir.write_runs_csv(tmp / "runs.csv", pairs)
            )
            out["csv_mb"] = (tmp / "runs.csv").stat().st_size / 1e6
            out["csv_over_parquet"] = out["csv_s"] / out["parquet_s"]
    print(f"{'writer':<14}{'seconds':>10}{'MB':>10}")
    print(f"{'runs.parquet':<14}{out['parquet_s']:>10.2f}{out['parquet_mb']:>10.1f}")
    if "csv_s" in out:
        print(f"{'runs.csv':<14}{out['csv_s']:>10.2f}{out['csv_mb']:>10.1f}")
        print(f"runs.csv takes {out['csv_over_parquet']:.1f}x as long as runs.parquet")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
