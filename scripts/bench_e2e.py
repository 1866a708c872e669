"""End-to-end wall time of `gdkit run` on the shipped configs, cold and warm, phase by phase.

Each run is a fresh process (`python -m gdkit run CONFIG --no-progress`). "cold" starts with
an empty compilation cache (a fresh temporary XDG_CACHE_HOME), "warm" runs the same config
again with the cache the cold run filled. The split comes from the run itself: meta.json's
`timings` (import = JAX, optax and gdkit's registries; compile; run; setup = planning and the
plotted runs' trajectories; write; plots = the wait for figures once the sweeps are done;
other = reading and checking the config), plus `startup` = the process's wall time the run
did not see (Python start-up, importing the CLI, the tables and report written after the
timings, exit), and `+plots||` = the seconds the plot worker process drew while the sweeps
ran (not part of the wall time). The CLI's quick paths (`--help`, `list objectives`, a
config error) are timed too, and so are the quickstart's floors: Python with JAX started, and
its figures drawn alone (`gdkit plot`), which bound how fast any run of it can be.

  python scripts/bench_e2e.py                       # quickstart, then every other config
  python scripts/bench_e2e.py --configs quickstart  # just the quickstart
  python scripts/bench_e2e.py --pythonpath /other/checkout   # the same for another version

Prints a table and, last, one JSON document (`--json FILE` writes it to a file too).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PHASES = ("startup", "import", "compile", "run", "setup", "write", "plots", "other")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--configs",
        default=None,
        help="comma-separated config names or paths (default: quickstart first, then the rest)",
    )
    ap.add_argument("--modes", default="cold,warm", help="cold, warm or both (default both)")
    ap.add_argument("--no-cli", action="store_true", help="skip timing the CLI's quick paths")
    ap.add_argument("--no-floors", action="store_true", help="skip timing the quickstart's floors")
    ap.add_argument(
        "--pythonpath", default=str(ROOT), help="the gdkit checkout to measure (default: this)"
    )
    ap.add_argument("--json", default=None, metavar="FILE", help="also write the JSON here")
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": args.pythonpath}
    env.pop("GDKIT_NO_CACHE", None)
    report = {"pythonpath": args.pythonpath, "cli": {}, "configs": {}}
    if not args.no_cli:
        report["cli"] = time_cli(env)
        for what, t in report["cli"].items():
            print(f"{what:<28} {t['wall']:6.2f} s wall, {t['cpu']:5.2f} s CPU", flush=True)
    modes = args.modes.split(",")
    for config in configs(args.configs):
        with tempfile.TemporaryDirectory(prefix="gdkit-bench-") as tmp:
            cache_env = {**env, "XDG_CACHE_HOME": str(pathlib.Path(tmp) / "cache")}
            rows = {}
            for mode in ("cold", "warm"):
                if mode == "warm" and "cold" not in modes:  # warm needs the cache filled
                    run_config(config, cache_env, pathlib.Path(tmp) / "fill")
                if mode in modes:
                    rows[mode], run_dir = run_config(config, cache_env, pathlib.Path(tmp) / mode)
                    print(row_text(config.stem, mode, rows[mode]), flush=True)
            report["configs"][config.stem] = rows
            if config.stem == "quickstart" and not args.no_floors:
                report["floors"] = time_floors(cache_env, run_dir)
                for what, t in report["floors"].items():
                    print(f"floor: {what:<40} {t['wall']:6.2f} s wall, {t['cpu']:5.2f} s CPU")
    print()
    print(table(report))
    text = json.dumps(report, indent=2)
    if args.json:
        pathlib.Path(args.json).write_text(text + "\n")
    print(text)
    return 0


def configs(spec: str | None) -> list[pathlib.Path]:
    shipped = sorted((ROOT / "configs").glob("*.yaml"), key=lambda p: (p.stem != "quickstart", p))
    if spec is None:
        return shipped
    out = []
    for name in spec.split(","):
        path = pathlib.Path(name)
        out.append(path if path.suffix else ROOT / "configs" / f"{name}.yaml")
    return out


def run_config(config: pathlib.Path, env: dict, out: pathlib.Path) -> tuple[dict, pathlib.Path]:
    """One `gdkit run` in a fresh process: its phases (seconds) and the process's wall time,
    and the run directory it wrote."""
    cmd = [sys.executable, "-m", "gdkit", "run", str(config), "--no-progress", "--out", str(out)]
    cpu0 = _children_cpu()
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=out.parent)
    wall = time.perf_counter() - t
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{config.name}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    run_dir = pathlib.Path(proc.stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    timings = meta.get("timings")
    if timings is None:  # a gdkit that records no phases: only compile and run are known
        timings = {"compile": meta["compile_time"], "run": meta["run_time"], "wall": 0.0}
    row = {k: timings.get(k, 0.0) for k in PHASES if k != "startup"}
    row["plots_alongside"] = timings.get("plots_alongside", 0.0)  # drawn while sweeps ran
    row["startup"] = wall - timings["wall"] if timings["wall"] else 0.0
    if not timings["wall"]:
        row["other"] = wall - row["compile"] - row["run"]
    row["wall"] = wall
    row["cpu"] = cpu  # user + system seconds: less sensitive to other load than wall time
    row["lane_steps"] = sum(s["lanes"] for s in meta["sweeps"]) * max(meta["steps"])
    row["arithmetic_share"] = row["run"] / wall
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, run_dir


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_floors(env: dict, run_dir: pathlib.Path) -> dict:
    """What no run of the quickstart can go below with its dependencies, each in a fresh
    process (best of two): starting Python with JAX and optax imported and the CPU back end up
    (every run pays this before its first sweep), and drawing the quickstart's figures from
    its saved results (`gdkit plot`, which imports JAX and matplotlib as the plot worker does).
    A run's CPU time cannot fall below their sum; its wall time, on two cores, below about
    half of it."""
    cases = {
        "python + import jax, optax + CPU back end": [
            "-c",
            "import jax, optax; jax.devices()",
        ],
        "gdkit plot <the quickstart's figures>": ["-m", "gdkit", "plot", str(run_dir)],
    }
    return {what: _best(argv, env, run_dir.parent, 2) for what, argv in cases.items()}


def _best(argv: list[str], env: dict, cwd: pathlib.Path, tries: int) -> dict:
    """The best wall time and the best CPU time (user + system) of `python ARGV` over tries."""
    best = cpu = float("inf")
    for _ in range(tries):
        cpu0, t = _children_cpu(), time.perf_counter()
        subprocess.run([sys.executable, *argv], env=env, capture_output=True, cwd=cwd)
        best = min(best, time.perf_counter() - t)
        cpu = min(cpu, _children_cpu() - cpu0)
    return {"wall": round(best, 3), "cpu": round(cpu, 3)}


def time_cli(env: dict) -> dict:
    """Wall time of the CLI's quick paths (fresh process each)."""
    with tempfile.TemporaryDirectory() as tmp:
        bad = pathlib.Path(tmp) / "bad.yaml"
        bad.write_text("name: bad\nobjectives: [{name: rosenbrock}]\noptimizers: [{name: adma}]\n")
        cases = {
            "gdkit --help": ["--help"],
            "gdkit list objectives": ["list", "objectives"],
            "gdkit list": ["list"],
            "gdkit run <config error>": ["run", str(bad)],
        }
        # the best of three: wall time, and CPU time (less load-bound)
        return {
            what: _best(["-m", "gdkit", *argv], env, pathlib.Path(tmp), 3)
            for what, argv in cases.items()
        }


def row_text(name: str, mode: str, row: dict) -> str:
    cells = " ".join(f"{row[k]:7.2f}" for k in PHASES)
    beside = f"{row.get('plots_alongside', 0.0):9.2f}"
    return f"{name:<24} {mode:<5} {row['wall']:7.2f} {row['cpu']:7.2f} {cells} {beside}"


def table(report: dict) -> str:
    head = f"{'config':<24} {'mode':<5} {'wall':>7} {'cpu':>7} " + " ".join(
        f"{k:>7}" for k in PHASES
    )
    head += " +plots||"  # plotting done in the worker process while the sweeps ran
    lines = [head]
    for name, rows in report["configs"].items():
        lines += [row_text(name, mode, row) for mode, row in rows.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
