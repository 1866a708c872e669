"""`loss`: the gap to the minimum against step (or evaluations, or wall time) at each
optimizer's best hyperparameters."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gdkit.objectives import Objective
from gdkit.plots import _common as c
from gdkit.result import SweepResult

X_AXES = ("steps", "evals", "time")
_X_LABELS = {
    "steps": "step",
    "evals": "evaluations of f and grad f (exact at steps to tol and at the end)",
    "time": "wall time on this machine, s (each sweep's run time shared equally by its steps)",
}


def loss(
    results: Sequence[SweepResult], objective: Objective | None = None, x_axis: str = "steps"
) -> Figure:
    """f - f* (log y) against step for each optimizer at its best hyperparameters
    (`best_point`), the line the median over starts and seeds, the band their quartiles
    (min-max for fewer than 4 runs).

    Without a known minimum the loss itself is drawn (symlog y when it spans decades). For
    data objectives (`objective.data`) the axes say training loss and its excess over the
    best fit.

    ``x_axis="evals"`` draws against evaluations of f and grad f (their sum) instead, so that
    methods of different price per step compare fairly (see `evals_at`: exact for methods
    of a fixed price per step; for line searches exact at steps to tol and at the end,
    interpolated in between). ``x_axis="time"`` draws against wall time on this machine:
    step k at k x `SweepResult.seconds_per_step`, the sweep's `run_time` (compiling and
    checkpoints excluded) shared equally by its steps, since all lanes of a sweep advance
    together (so a step's time is that of all the sweep's runs, which the legend counts:
    compare sweeps of one size).
    Noisy and machine-dependent, unlike steps and evaluations, but what a user waits for.

    Example:
      >>> import numpy as np
      >>> from gdkit import plots
      >>> from gdkit.engine.sweep import sweep
      >>> r = sweep("rosenbrock", "adam", grid={"learning_rate": np.logspace(-3, -1, 5)},
      ...           steps=200, tol=1e-6, progress=False)
      >>> fig = plots.loss([r])
    """
    if x_axis not in X_AXES:
        raise ValueError(f"loss: x_axis must be one of {', '.join(X_AXES)}, got {x_axis!r}")
    if not results:
        raise c.NotApplicable("loss: no results")
    if x_axis == "evals" and any(r.evals is None for r in results):
        raise c.NotApplicable("loss: a result has no evaluation counts (saved by an old gdkit)")
    if x_axis == "time" and any(r.seconds_per_step is None for r in results):
        raise c.NotApplicable("loss: a result has no measured run time (run_time 0)")
    name = objective.name if objective is not None else results[0].objective
    f_min = results[0].f_min
    fig = c.new_figure(7.2, 4.6)
    ax = fig.add_subplot()
    curves, handles = [], []
    for res, color in zip(results, c.colors(len(results)), strict=True):
        gidx = c.best_point(res)
        if gidx is None:  # every run diverged: show the one that lasted longest
            gidx = c.grid_index(res, int(np.argmax(res.diverged_step.ravel())))
        hist, _ = c.gaps(res, c.per_point(res, res.history)[gidx])  # [runs, R]
        curves.append((res, color, gidx, hist))
    all_h = np.concatenate([h.ravel() for *_, h in curves]) if curves else np.zeros(0)
    floor = c.positive_floor(all_h) if f_min is not None else None

    x_end = 0.0
    for res, color, gidx, hist in curves:
        steps = np.asarray(res.history_steps, np.float64)
        if x_axis == "evals":
            steps, hist = on_evals(res, gidx, hist)
        elif x_axis == "time":
            steps = steps * res.seconds_per_step
        x_end = max(x_end, float(steps[-1]) if steps.size else 0.0)
        h = hist if floor is None else np.where(np.isfinite(hist), np.maximum(hist, floor), np.nan)
        status = c.per_point(res, res.status)[gidx]
        groups = by_minimum(res, gidx, objective)
        for (where, members), ls in zip(groups, _STYLES, strict=False):
            g, st = h[members], status[members]
            runs = g.shape[0]
            with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
                med = np.nanmedian(g, axis=0)
                band = np.nanpercentile(g, [25, 75] if runs >= 4 else [0, 100], axis=0)
            if runs > 1:
                c.band(ax, steps, band[0], band[1], color)
            ax.plot(steps, med, color=color, lw=1.8, ls=ls)
            extra = ""
            if where:
                extra = f" → {where}: {runs}/{status.size}"
            elif runs > 1:
                done = c.reached(res)
                extra = f": {int(np.sum(st == done))}/{runs} runs {done}"
            n_div = int(np.sum(st == "diverged"))
            extra += f", {n_div} diverged" if n_div and where != "diverged" else ""
            if x_axis == "time":  # the step time is that of the whole sweep, all its lanes
                extra += f"; its sweep: {res.lanes:,} runs"
            label = f"{res.optimizer}{c.paren(c.hparam_label(c.hparams(res, gidx)))}{extra}"
            handles.append(Line2D([], [], color=color, lw=1.8, ls=ls, label=label))

    tol = results[0].tol
    data = getattr(objective, "data", None)
    if f_min is not None:
        ax.set_yscale("log")
        if data is None:
            ax.set_ylabel("f − f*  (gap to the known minimum)")
        else:
            ax.set_ylabel("loss − loss*  (excess over the best fit)")
        if tol and results[0].tol_metric == "gap":
            ax.axhline(tol, color="0.4", ls=":", lw=1)
            handles.append(Line2D([], [], color="0.4", ls=":", label=f"tol = {tol:.0e}"))
    else:
        ax.set_ylabel("f" if data is None else "training loss (full batch)")
        finite = np.abs(all_h[np.isfinite(all_h) & (all_h != 0)])
        if finite.size and c.spans_decades(finite):
            ax.set_yscale(
                "symlog", linthresh=float(np.percentile(finite, 5)) if finite.size else 1.0
            )
    if any(h.shape[0] > 1 for *_, h in curves):
        runs = max(h.shape[0] for *_, h in curves)
        band = "quartiles" if runs >= 4 else "min–max"
        handles.append(
            Patch(color="0.5", alpha=0.3, label=f"median over starts/seeds, band {band}")
        )
    ax.set_xlabel(_X_LABELS[x_axis])
    if x_axis == "steps":
        ax.set_xlim(0, max(r.steps for r in results))
    else:
        ax.set_xlim(0, x_end)
    ax.grid(True, which="major", alpha=0.3)
    if data is None:
        c.title(ax, f"{name}: loss at each optimizer's best hyperparameters")
    else:
        c.title(ax, f"{name} ({data.n} samples): training loss, best hyperparameters")
    c.legend_below(fig, handles, ncol=2)
    return fig


_STYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1)), (0, (1, 3)))


def by_minimum(
    result: SweepResult, gidx: tuple[int, ...], objective: Objective | None
) -> list[tuple[str, np.ndarray]]:
    """The runs at grid point `gidx` split by the minimum they end in, as (name, run indices)
    groups, the lowest minimum first: runs in different basins (peaks' global and local
    minima) end at different gaps, and one median and band over them all would describe
    none. A single group named "" where the objective's known minima share one value (or
    there are none): then the gap alone tells the runs apart."""
    runs = np.arange(c.per_point(result, result.status)[gidx].size)
    minima = () if objective is None else objective.minima
    if len({m.f for m in minima}) < 2:
        return [("", runs)]
    from gdkit.plots._basins import DIVERGED, basin_radius, classify

    final = c.per_point(result, result.final_x)[gidx]
    diverged = c.per_point(result, result.status)[gidx] == "diverged"
    labels = classify(final, minima, basin_radius(objective), diverged)
    order = sorted(range(len(minima)), key=lambda k: minima[k].f)
    groups = []
    for k in order:
        m = minima[k]
        kind = "global min" if m.f == objective.f_min else "local min"
        where = f"{kind} {m.f:.3g}"
        groups.append((where, np.flatnonzero(labels == k)))
    groups.append(("elsewhere", np.flatnonzero(labels == -1)))
    groups.append(("diverged", np.flatnonzero(labels == DIVERGED)))
    return [(w, g) for w, g in groups if g.size]


def on_evals(result: SweepResult, gidx, hist: np.ndarray, points: int = 600):
    """The runs' histories [runs, R] at grid point `gidx` against evaluations of f and grad f
    (their sum): (x [points], histories [runs, points]), each run holding its last recorded
    loss until its own evaluations pass x.

    A result keeps no per-step counts, so each run's evaluations by step are piecewise
    linear through (0, 0), (steps to tol, its evaluations to tol) and (last step, all its
    evaluations): exact where it reached tol and at the end, and everywhere for methods of a
    fixed price per step (first-order ones: one f and one grad f per step)."""
    steps = np.asarray(result.history_steps, np.float64)
    total = c.per_point(result, result.evals["f"] + result.evals["grad"])[gidx]
    to_tol = c.per_point(result, result.evals_to_tol["f"] + result.evals_to_tol["grad"])[gidx]
    stt = c.per_point(result, result.steps_to_tol)[gidx]
    xs = []
    for i in range(hist.shape[0]):
        knots, values = [0.0], [0.0]
        if 0 < stt[i] < result.steps:
            knots.append(float(stt[i]))
            values.append(float(to_tol[i]))
        knots.append(float(result.steps))
        values.append(max(float(total[i]), values[-1]))
        xs.append(np.interp(steps, knots, values))
    end = max(float(x[-1]) for x in xs) if xs and steps.size else 0.0
    grid = np.linspace(0.0, end, points)
    out = np.empty((hist.shape[0], points), hist.dtype)
    for i, x in enumerate(xs):
        at = np.clip(np.searchsorted(x, grid, side="right") - 1, 0, len(x) - 1)
        out[i] = hist[i, at]
    return grid, out


def mixed_prices(results: Sequence[SweepResult]) -> bool:
    """Whether some optimizer's runs make other than one f and one grad f per step (a line
    search, a Hessian, a Jacobian): then a plot against evaluations tells more than steps."""
    for r in results:
        if r.evals is None:
            return False
    return any(
        set(r.evals) - {"f", "grad"}
        or np.any(r.evals["f"] != r.steps)
        or np.any(r.evals["grad"] != r.steps)
        for r in results
    )
