"""`contour`: the best run of each optimizer drawn over the objective's contours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullLocator

from gdkit.objectives import Objective
from gdkit.plots import _common as c
from gdkit.result import SweepResult

_CMAP = ListedColormap(colormaps["Greys_r"](np.linspace(0.3, 0.97, 256)), "gdkit_greys")


def path_lane(result: SweepResult) -> int | None:
    """The lane the contour draws: the run whose trajectory the sweep recorded (`gdkit run`
    records `SweepResult.representative()`), else the lowest final loss (then fewest steps)
    among all, leaving out
    runs that started already within tol (0 steps) unless nothing else is left. When every
    lane diverged, the one that lasted longest."""
    ok = ~result.diverged.ravel()
    moved = ok & (result.steps_to_tol.ravel() != 0)
    recorded = np.zeros_like(ok)
    if result.trajectory_lanes is not None and result.trajectory_x is not None:
        recorded[np.asarray(result.trajectory_lanes, np.int64)] = True
    loss = result.final_loss.ravel().astype(np.float64)
    stt = result.steps_to_tol.ravel().astype(np.float64)
    stt = np.where(stt < 0, np.inf, stt)
    for pool in (recorded & moved, moved, recorded & ok, ok):
        if pool.any():
            lanes = np.flatnonzero(pool)
            return int(lanes[np.lexsort((stt[lanes], loss[lanes]))[0]])
    lanes = np.flatnonzero(recorded) if recorded.any() else np.arange(ok.size)
    return int(lanes[np.argmax(result.diverged_step.ravel()[lanes])])  # lasted longest


def best_path(result: SweepResult, lane: int) -> tuple[np.ndarray, bool]:
    """The path [T, 2] of `lane`: its recorded trajectory when the sweep kept it (True), else
    just start -> final point (False)."""
    if result.trajectory_lanes is not None and result.trajectory_x is not None:
        hit = np.flatnonzero(np.asarray(result.trajectory_lanes) == lane)
        if hit.size:
            path = np.asarray(result.trajectory_x[hit[0]], np.float64)
            return path[np.all(np.isfinite(path), axis=1)], True
    idx = np.unravel_index(lane, result.shape)
    start = result.starts[result.coords(lane)["start"]]
    return np.stack([start, result.final_x[idx]]).astype(np.float64), False


def contour(results: Sequence[SweepResult], objective: Objective) -> Figure:
    """The best run of each optimizer (`path_lane`) over the contours of a 2-D
    objective, with its start, end and the known minima marked.

    Paths are the recorded trajectories (`sweep(..., trajectories="best")`); without one a
    dashed line joins start and final point. Levels are log-spaced in f - min f when the
    function spans decades over the view (Rosenbrock), linear otherwise (peaks).

    Example:
      >>> import numpy as np
      >>> from gdkit import objectives, plots
      >>> from gdkit.engine.sweep import sweep
      >>> r = sweep("himmelblau", "adam", grid={"learning_rate": np.logspace(-2, 0, 5)},
      ...           steps=300, tol=1e-6, trajectories="best", progress=False)
      >>> fig = plots.contour([r], objectives.get("himmelblau"))
    """
    c.require_2d(objective, "contour")
    if not results:
        raise c.NotApplicable("contour: no results")
    runs = []
    for res, color in zip(results, c.colors(len(results)), strict=True):
        lane = path_lane(res)
        if lane is None:
            runs.append((res, color, None, None, False))
            continue
        path, full = best_path(res, lane)
        runs.append((res, color, lane, path, full))
    pts = [r[3] for r in runs if r[3] is not None] + [m.x[None] for m in objective.minima]
    xlim, ylim = c.view_box(objective, np.concatenate(pts) if pts else None)

    fig = c.new_figure(7.2, 6.6)
    ax = fig.add_subplot()
    X, Y, Z = c.evaluate(objective, xlim, ylim)
    zmin = np.nanmin(Z) if objective.f_min is None else min(np.nanmin(Z), objective.f_min)
    gap = Z - zmin
    if c.spans_decades(gap):
        levels = c.log_levels(gap)
        filled = ax.contourf(
            X,
            Y,
            np.clip(gap, levels[0], None),
            levels=levels,
            norm=LogNorm(),
            cmap=_CMAP,
            alpha=0.85,
            extend="both",
        )
        ax.contour(X, Y, gap, levels=levels[::2], colors="k", linewidths=0.3, alpha=0.4)
        label = "f − f*  (log levels)" if objective.f_min is not None else "f − min f (log)"
    else:
        filled = ax.contourf(X, Y, Z, levels=24, cmap=_CMAP, alpha=0.85)
        ax.contour(X, Y, Z, levels=12, colors="k", linewidths=0.3, alpha=0.4)
        label = "f"
    cb = fig.colorbar(filled, ax=ax, label=label, shrink=0.9, pad=0.02)
    if isinstance(filled.norm, LogNorm):
        cb.ax.yaxis.set_major_locator(LogLocator())
        cb.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        cb.ax.yaxis.set_minor_locator(NullLocator())

    handles = []
    for res, color, lane, path, full in runs:
        if lane is None:
            handles.append(
                Line2D([], [], color=color, lw=2, label=f"{res.optimizer}: every run diverged")
            )
            continue
        row = res.row(lane)
        style = dict(ls="-", lw=1.6) if full else dict(ls="--", lw=1.2)
        ax.plot(path[:, 0], path[:, 1], color=color, alpha=0.95, zorder=3, **style)
        ax.plot(*path[0], "o", ms=7, mfc="white", mec=color, mew=2, zorder=4)
        if row["status"] == "diverged":
            ax.plot(*path[-1], "X", ms=8, color=color, mec="k", mew=0.6, zorder=5)
        else:
            ax.plot(*path[-1], "o", ms=5, color=color, mec="k", mew=0.6, zorder=5)
        handles.append(Line2D([], [], color=color, label=_label(res, lane, row, full), **style))
    for m in objective.minima:
        ax.plot(*m.x, "*", ms=15, color="gold", mec="k", mew=0.8, zorder=6)
    handles += [
        Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="0.3", mew=2, label="start"),
    ]
    if any(lane is not None and r.row(lane)["status"] != "diverged" for r, _, lane, *_ in runs):
        handles.append(Line2D([], [], ls="", marker="o", ms=5, color="0.3", mec="k", label="end"))
    if any(r.row(lane)["status"] == "diverged" for r, _, lane, *_ in runs):
        handles.append(
            Line2D([], [], ls="", marker="X", ms=8, color="0.3", mec="k", label="last finite point")
        )
    if objective.minima:
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="*",
                ms=12,
                color="gold",
                mec="k",
                label="known minimum" if len(objective.minima) == 1 else "known minima",
            )
        )
    ax.set(
        xlim=xlim,
        ylim=ylim,
        xlabel="x₀",
        ylabel="x₁",
        title=f"{objective.name}: best run of each optimizer",
    )
    ax.set_aspect("auto")
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    return fig


def _label(res: SweepResult, lane: int, row: dict, full: bool) -> str:
    hp = c.hparam_label(c.hparams(res, c.grid_index(res, lane)))
    if row["status"] == "diverged":
        how = f"diverged at step {row['diverged_step']}"
    elif row["status"] == "converged":
        how = f"converged in {row['steps_to_tol']} steps"
    elif row["status"] == "stationary":  # |grad f| <= tol, and no minimum is known
        n, f = row["steps_to_tol"], row["final_loss"]
        how = f"stationary after {n} steps (|∇f| ≤ tol), f = {f:.2g}"
    else:
        gap = row["gap"] if row["gap"] is not None else row["final_loss"]
        how = f"{'f − f*' if row['gap'] is not None else 'f'} = {gap:.2g} after {res.steps} steps"
    return f"{res.optimizer}{c.paren(hp)}: {how}" + ("" if full else " [start → end only]")
