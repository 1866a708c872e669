"""`loss`: the gap to the minimum against step at each optimizer's best hyperparameters."""

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


def loss(results: Sequence[SweepResult], objective: Objective | None = None) -> Figure:
    """f - f* (log y) against step for each optimizer at its best hyperparameters
    (`best_point`), the line the median over starts and seeds, the band their quartiles
    (min-max for fewer than 4 runs).

    Without a known minimum the loss itself is drawn (symlog y when it spans decades). For
    data objectives (`objective.data`) the axes say training loss and its excess over the
    best fit.

    Example:
      >>> import numpy as np
      >>> from gdkit import plots
      >>> from gdkit.engine.sweep import sweep
      >>> r = sweep("rosenbrock", "adam", grid={"learning_rate": np.logspace(-3, -1, 5)},
      ...           steps=200, tol=1e-6, progress=False)
      >>> fig = plots.loss([r])
    """
    if not results:
        raise c.NotApplicable("loss: no results")
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

    for res, color, gidx, hist in curves:
        steps = np.asarray(res.history_steps)
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
    ax.set_xlabel("step")
    ax.set_xlim(0, max(r.steps for r in results))
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
