"""The run directory: written whole or not at all, and read back by `gdkit show` / `gdkit plot`.

    <name>-<YYYYmmdd-HHMMSS>/
      config.yaml     the resolved config (overrides applied)
      meta.json       versions, backend, devices, dtype, seeds, git commit, times
      runs.csv        one row per lane
      curves.npz      thinned loss histories: loss [runs, R], step [R], run_id [runs]
      summary.md      per objective x optimizer: best hyperparameters, success, gap, divergence
      results/        one SweepResult per job (`SweepResult.load`), for re-plotting
      plots/*.png

Everything is written into a hidden `.<name>-<stamp>.partial` directory first and renamed into
place at the end, so an interrupted run never leaves files that pose as results, and an
existing directory is never touched.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import json
import os
import pathlib
import re
import shutil
import subprocess

import numpy as np

from gdkit.result import SweepResult

COMPLETE = "meta.json"


def slug(text: str) -> str:
    """A file-name-safe version of an objective or optimizer label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "x"


@contextlib.contextmanager
def staging(out: pathlib.Path, name: str, now: datetime.datetime | None = None):
    """Yields a fresh hidden directory; on success renames it to `<out>/<name>-<stamp>`.

    On any exception (KeyboardInterrupt included) the partial directory is removed. The final
    name gets a `-2`, `-3`, ... suffix rather than reuse an existing directory.
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
    base = f"{name}-{stamp}"
    tmp = out / f".{base}.{os.getpid()}.partial"
    tmp.mkdir()
    box: dict[str, pathlib.Path] = {}
    try:
        yield tmp, box
        for i in range(1, 1000):
            final = out / (base if i == 1 else f"{base}-{i}")
            if not final.exists():
                os.rename(tmp, final)  # atomic
                box["path"] = final
                break
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write(
    folder: pathlib.Path,
    config_yaml: str,
    pairs: list[tuple[dict, SweepResult]],
    meta: dict,
) -> None:
    """Writes config.yaml, results/, runs.csv, curves.npz and summary.md into `folder`, and
    meta.json last (its presence marks the directory complete)."""
    (folder / "config.yaml").write_text(config_yaml)
    (folder / "results").mkdir()
    for i, (_, result) in enumerate(pairs):
        result.save(
            folder / "results" / f"{i:02d}-{slug(result.objective)}-{slug(result.optimizer)}.npz"
        )
    write_runs_csv(folder / "runs.csv", pairs)
    write_curves(folder / "curves.npz", [r for _, r in pairs])
    from gdkit.summary import markdown

    (folder / "summary.md").write_text(markdown([r for _, r in pairs], title=meta.get("name")))
    (folder / COMPLETE).write_text(json.dumps(meta, indent=2, default=str) + "\n")


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
    """loss [runs, R] (NaN after divergence), step [R], run_id [runs], as in runs.csv."""
    steps = [r.history_steps for r in results]
    longest = max(steps, key=len)
    losses = []
    for r in results:
        h = r.history.reshape(r.lanes, -1).astype(np.float64)
        if not np.array_equal(r.history_steps, longest[: len(r.history_steps)]):
            raise ValueError("curves: the sweeps recorded different steps")
        pad = np.full((r.lanes, len(longest) - h.shape[1]), np.nan)
        losses.append(np.concatenate([h, pad], axis=1))
    loss = np.concatenate(losses)
    np.savez_compressed(path, loss=loss, step=np.asarray(longest), run_id=np.arange(len(loss)))


def load_results(run_dir: pathlib.Path) -> list[SweepResult]:
    """The SweepResults of a finished run directory (ValueError when it is not one)."""
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: no such run directory")
    if not (run_dir / COMPLETE).exists():
        raise ValueError(f"{run_dir}: not a complete gdkit run directory (no {COMPLETE})")
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
