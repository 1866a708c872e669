"""Benchmark: a 10-million-lane sweep through `gdkit run`, on this machine.

Adam on 2-D Rosenbrock, 10,000,000 learning rates log-spaced in [1e-4, 1], float32, from the
classic start. Runs `gdkit run` in a child process (a real run: config, lane chunks under one
progress bar, runs.csv with 10 million rows, summary) and prints its wall time, peak memory
(the child's maximum resident set) and the size of what it wrote, as a table and as JSON.

  python scripts/bench_large.py               # 10,000,000 lanes x 500 steps
  python scripts/bench_large.py --lanes 1e6   # smaller
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

CONFIG = """
name: large
objectives: [{{name: rosenbrock}}]
optimizers: [{{name: adam, learning_rate: {{logspace: [-4, 0, {lanes}]}}}}]
starts: {{kind: default}}
steps: {steps}
tol: 1.0e-6
record_every: {record_every}
plots: []
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lanes", type=float, default=1e7)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--record-every", type=int, default=100)
    p.add_argument("--out", default=None, help="where the run directory goes (default: tmp)")
    args = p.parse_args()
    lanes = int(args.lanes)
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(args.out or tmp)
        cfg = pathlib.Path(tmp) / "large.yaml"
        cfg.write_text(CONFIG.format(lanes=lanes, steps=args.steps, record_every=args.record_every))
        dry = subprocess.run(
            [sys.executable, "-m", "gdkit", "run", str(cfg), "--dry-run"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        t = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "gdkit",
                "run",
                str(cfg),
                "--out",
                str(out),
                "--no-progress",
            ],
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        run_dir = pathlib.Path(proc.stdout.strip().splitlines()[-1])
        meta = json.loads((run_dir / "meta.json").read_text())
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # MiB
        with open(run_dir / "runs.csv") as f:
            rows = sum(1 for _ in f) - 1
        report = {
            "lanes": lanes,
            "steps": args.steps,
            "trajectory_steps": lanes * args.steps,
            "wall_s": round(wall, 1),
            "compile_s": round(meta["compile_time"], 2),
            "sweep_run_s": round(meta["run_time"], 1),
            "trajectory_steps_per_s": round(lanes * args.steps / meta["run_time"]),
            "peak_rss_mib": round(peak),
            "devices": meta["devices"],
            "runs_csv_rows": rows,
            "runs_csv_mib": round((run_dir / "runs.csv").stat().st_size / 2**20),
            "results_mib": round(
                sum(f.stat().st_size for f in (run_dir / "results").iterdir()) / 2**20
            ),
        }
    print(dry.strip().splitlines()[-1])
    for k, v in report.items():
        print(f"{k:24s} {v}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
