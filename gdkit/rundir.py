"""The run directory: written whole or not at all, and read back by `gdkit show` / `gdkit plot`.

    <name>-<YYYYmmdd-HHMMSS>/
      config.yaml     the resolved config (overrides applied)
      meta.json       versions, backend, devices, dtype, seeds, git commit, times
      runs.csv        one row per lane
      curves.npz      thinned loss histories: loss [runs, R], step [R], run_id [runs]
      summary.md      per objective x optimizer: best hyperparameters, success, gap, divergence
      results/        one SweepResult per job (`SweepResult.load`), for re-plotting
      plots/*.png

Life cycle: `create` makes a fresh directory (never an existing one) holding config.yaml;
each sweep's result is saved to results/ as soon as it is done; at the end the tables, curves,
summary and plots are written, each atomically, and meta.json last: its presence is what marks
the directory complete. An interrupted run leaves config.yaml and the finished sweeps, nothing
that poses as a result, and `gdkit run --resume DIR` runs only the sweeps that are missing.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import pathlib
import re
import subprocess

import numpy as np

from gdkit.result import SweepResult

COMPLETE = "meta.json"


def slug(text: str) -> str:
    """A file-name-safe version of an objective or optimizer label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "x"


def create(out: pathlib.Path, name: str, config_yaml: str, now=None) -> pathlib.Path:
    """A new, empty `<out>/<name>-<YYYYmmdd-HHMMSS>` (`-2`, `-3`, ... if taken) with the
    resolved config.yaml in it."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = f"{name}-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    for i in range(1, 1000):
        path = out / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()  # exclusive: fails if it exists, so nothing is ever overwritten
        except FileExistsError:
            continue
        with _atomic(path / "config.yaml") as tmp:
            tmp.write_text(config_yaml)
        (path / "results").mkdir()
        return path
    raise OSError(f"{out}: too many run directories named {base}")


def result_path(run_dir: pathlib.Path, index: int, objective: str, optimizer: str):
    """Where the `index`-th sweep of a run keeps its SweepResult."""
    name = f"{index:02d}-{slug(objective)}-{slug(optimizer)}.npz"
    return pathlib.Path(run_dir) / "results" / name


def is_complete(run_dir: pathlib.Path) -> bool:
    return (pathlib.Path(run_dir) / COMPLETE).is_file()


def finish(folder: pathlib.Path, pairs: list[tuple[dict, SweepResult]], meta: dict) -> None:
    """Writes runs.csv, curves.npz and summary.md into `folder`, each atomically, and
    meta.json last (its presence marks the directory complete)."""
    from gdkit.summary import markdown

    results = [r for _, r in pairs]
    with _atomic(folder / "runs.csv") as tmp:
        write_runs_csv(tmp, pairs)
    with _atomic(folder / "curves.npz") as tmp:
        write_curves(tmp, results)
    with _atomic(folder / "summary.md") as tmp:
        tmp.write_text(markdown(results, title=meta.get("name")))
    with _atomic(folder / COMPLETE) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=str) + "\n")


@contextlib.contextmanager
def _atomic(path: pathlib.Path):
    """Yields a temporary path next to `path`; renames it into place if the block succeeds."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_runs_csv(path: pathlib.Path, pairs: list[tuple[dict, SweepResult]]) -> None:
    """One row per lane; every hyperparameter (defaults included) has its own column."""
    head = ["run_id", "objective", "optimizer"]
    rows = []
    run_id = 0
    for hparams, result in pairs:
        for row in result.rows():
            lane = row.pop("lane")
            full = {
                "run_id": run_id,
                "objective": result.objective,
                "optimizer": result.optimizer,
                **hparams,
                **row,
                "lane": lane,
            }
            run_id += 1
            rows.append(full)
    columns = list(dict.fromkeys(head + [k for r in rows for k in r]))
    # Hyperparameters first, then the lane's coordinates and outcome, in a fixed order.
    outcome = [c for c in columns if c in _OUTCOME]
    coords = [c for c in columns if re.fullmatch(r"(start|seed|x0_\d+)", c)]
    final_x = [c for c in columns if re.fullmatch(r"final_x_\d+", c)]
    rest = [c for c in columns if c not in {*head, *outcome, *coords, *final_x, "lane"}]
    order = head + rest + coords + [c for c in _OUTCOME if c in outcome] + final_x + ["lane"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=order, restval="")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})


_OUTCOME = [
    "final_loss",
    "best_loss",
    "gap",
    "final_grad_norm",
    "steps_to_tol",
    "status",
    "diverged_step",
]


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # shortest exact round-trip
    return v


def write_curves(path: pathlib.Path, results: list[SweepResult]) -> None:
    """loss [runs, R] and step [R], run_id [runs] as in runs.csv. `step` is the union of the
    steps the sweeps recorded (they differ when objectives run different step counts); a run
    has NaN where it recorded nothing, and from its divergence on."""
    step = np.unique(np.concatenate([r.history_steps for r in results]))
    loss = np.full((sum(r.lanes for r in results), step.size), np.nan)
    row = 0
    for r in results:
        cols = np.searchsorted(step, r.history_steps)
        loss[row : row + r.lanes, cols] = r.history.reshape(r.lanes, -1)
        row += r.lanes
    with open(path, "wb") as f:
        np.savez_compressed(f, loss=loss, step=step, run_id=np.arange(len(loss)))


def load_results(run_dir: pathlib.Path) -> list[SweepResult]:
    """The SweepResults of a finished run directory (ValueError when it is not one)."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"{run_dir}: not a gdkit run directory (no config.yaml)")
    if not is_complete(run_dir):
        done = len(list((run_dir / "results").glob("*.npz")))
        raise ValueError(
            f"{run_dir}: incomplete run ({done} sweep(s) finished); "
            f"resume it with: gdkit run --resume {run_dir}"
        )
    files = sorted((run_dir / "results").glob("*.npz"))
    if not files:
        raise ValueError(f"{run_dir}: holds no results/*.npz")
    return [SweepResult.load(f) for f in files]


def git_commit() -> str | None:
    """The commit of the gdkit source tree, when it is a git checkout."""
    here = pathlib.Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
