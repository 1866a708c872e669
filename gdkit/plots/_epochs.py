"""`epochs`: batch, stochastic and mini-batch descent on one figure, loss against epoch."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from gdkit.objectives import Objective
from gdkit.plots import _common as c
from gdkit.result import SweepResult


def epochs(results: Sequence[SweepResult], objective: Objective) -> Figure:
    """Loss (gap to the best fit, log y) against epoch, one line per optimizer x batch size,
    each at the learning rate where most of its runs converge: the median over seeds, the band
    their quartiles. An epoch is n / batch_size steps (one step for the full batch), so the
    lines compare the work done in passes over the data.

    Needs a data objective and a sweep with a `batch_size` axis.
    """
    with_batches = [r for r in results if "batch_size" in r.axes]
    data = getattr(objective, "data", None)
    if not with_batches or data is None:
        raise c.NotApplicable("epochs: needs a data objective swept over batch_size")
    n = data.n
    lines = [(r, j) for r in with_batches for j in range(len(r.axes["batch_size"]))]
    fig = c.new_figure(7.2, 4.6)
    ax = fig.add_subplot()
    picked = []
    for r, j in lines:
        axis = c.grid_dims(r).index("batch_size")
        conv, med = c.run_score(r)
        sub_conv, sub_med = np.take(conv, j, axis=axis), np.take(med, j, axis=axis)
        k = np.lexsort((sub_med.ravel(), -sub_conv.ravel()))[0]
        gidx = list(np.unravel_index(k, sub_conv.shape))
        gidx.insert(axis, j)
        hist, _ = c.gaps(r, c.per_point(r, r.history)[tuple(gidx)])  # [runs, R]
        picked.append((r, j, gidx, hist))
    # One floor for every line (the smallest positive gap of any): a floor taken from one line
    # would cut the others off above where they really went.
    floor = c.positive_floor(*[hist for *_, hist in picked])
    for (r, j, gidx, hist), color in zip(picked, c.colors(len(lines)), strict=True):
        h = np.where(np.isfinite(hist), np.maximum(hist, floor), np.nan) if r.f_min else hist
        b = str(r.axes["batch_size"][j])
        size = n if b == "full" else int(b)
        x = np.asarray(r.history_steps) * size / n
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            mid = np.nanmedian(h, axis=0)
            lo, hi = np.nanpercentile(h, [25, 75] if len(h) >= 4 else [0, 100], axis=0)
        if len(h) > 1:
            c.band(ax, x, lo, hi, color)
        kind = {"full": "batch", "1": "stochastic"}.get(b, f"mini-batch {b}")
        hp = {k: v for k, v in c.hparams(r, gidx).items() if k != "batch_size"}
        word = c.reached(r)
        done = int(np.sum(c.per_point(r, r.status)[tuple(gidx)] == word))
        label = f"{r.optimizer}, {kind}{c.paren(c.hparam_label(hp))}: {done}/{len(h)} {word}"
        # Records further apart than an epoch (the full batch: one record per record_every
        # epochs) are marked, so that a straight segment between them is not read as data.
        sparse = len(x) > 1 and np.min(np.diff(x)) > 1.0
        ax.plot(
            x,
            mid,
            color=color,
            lw=1.8,
            label=label,
            marker="o" if sparse else None,
            ms=3,
            markevery=0.01,  # every record where they are apart, thinned where they crowd
        )
    if with_batches[0].f_min is not None:
        ax.set_yscale("log")
        ax.set_ylabel("loss − loss*  (excess over the best fit)")
    else:
        ax.set_ylabel("training loss (full batch)")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel(f"epoch  (passes over the {n} samples)")
    c.title(ax, f"{objective.name}: loss by batch size")
    ax.grid(True, which="major", alpha=0.3)
    handles, _ = ax.get_legend_handles_labels()
    if any(h.get_marker() not in (None, "None", "") for h in handles):
        from matplotlib.lines import Line2D

        handles.append(
            Line2D([], [], ls="", marker="o", ms=3, color="0.4", label="recorded loss (sparse)")
        )
    c.legend_below(fig, handles, ncol=1)
    return fig
