"""`lr_sensitivity`: final gap against learning rate, and gradient descent's stability edge."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from gdkit.objectives import Objective
from gdkit.plots import _common as c
from gdkit.result import SweepResult

LR = "learning_rate"


def stability_edge(objective: Objective) -> float | None:
    """2 / L, L the largest eigenvalue of the Hessian at the (global) known minimum: gradient
    descent with a constant learning rate above this diverges on a quadratic, and cannot
    settle into the minimum of any smooth objective (near it, f is that quadratic).
    None when the objective has no known minimum or its Hessian there has no positive
    eigenvalue. Rosenbrock: L = 1001.6, 2/L = 0.0019968.

    Example:
      >>> from gdkit import objectives, plots
      >>> round(plots.stability_edge(objectives.get("quadratic", condition_number=100)), 6)
      0.02
    """
    if not objective.minima:
        return None
    best = min(objective.minima, key=lambda m: m.f)
    # One compiled program: op by op, the Hessian compiled ~50 small ones (4 s on 2 cores).
    with jax.enable_x64(True):  # the known minimum keeps all its digits
        x = jnp.asarray(best.x, jnp.float64)
        hess = np.asarray(jax.jit(jax.hessian(objective.fn))(x))
    eig = np.linalg.eigvalsh(0.5 * (hess + hess.T))
    top = float(eig.max())
    return 2.0 / top if np.isfinite(top) and top > 0 else None


class Curve(NamedTuple):
    """Per learning rate [n]: median, quartiles (min-max below 4 runs) of the final gap over
    starts and seeds (diverged runs left out), and the fractions of runs that diverged,
    converged and ended stationary (|grad f| <= tol where no minimum is known)."""

    learning_rate: np.ndarray
    median: np.ndarray
    low: np.ndarray
    high: np.ndarray
    diverged: np.ndarray
    converged: np.ndarray
    stationary: np.ndarray
    runs: int


def sensitivity_curve(result: SweepResult) -> Curve:
    """The final gap (final loss when f_min is unknown) against learning rate. Other swept
    hyperparameters are set, for each learning rate, to the values where most runs converge
    (ties: lowest median final loss).

    Example:
      >>> import numpy as np
      >>> from gdkit.plots import sensitivity_curve
      >>> from gdkit.engine.sweep import sweep
      >>> r = sweep("sphere", "gd", grid={"learning_rate": [0.1, 0.5, 1.5]}, steps=50,
      ...           tol=1e-6, progress=False)
      >>> sensitivity_curve(r).diverged.tolist()
      [0.0, 0.0, 1.0]
    """
    dims = c.grid_dims(result)
    if LR not in dims:
        raise c.NotApplicable(f"lr_sensitivity: {result.optimizer} does not sweep {LR}")
    k = dims.index(LR)
    n_lr = len(result.axes[LR])

    def by_lr(a):  # [*grid, ...] -> [n_lr, other grid points, ...]
        a = np.moveaxis(np.asarray(a), k, 0)
        return a.reshape(n_lr, -1, *a.shape[len(dims) :])

    values, _ = c.gaps(result, result.final_loss)
    g = by_lr(c.per_point(result, values))  # [n_lr, others, runs]
    status = by_lr(c.per_point(result, result.status))
    conv, med = (by_lr(a) for a in c.run_score(result))  # [n_lr, others]
    g = np.where((status == "diverged") | ~np.isfinite(g), np.nan, g)
    runs = g.shape[-1]
    out = np.full((6, n_lr), np.nan)
    for i in range(n_lr):
        j = np.lexsort((med[i], -conv[i]))[0]
        out[3, i] = np.mean(status[i, j] == "diverged")
        out[4, i] = np.mean(status[i, j] == "converged")
        out[5, i] = np.mean(status[i, j] == "stationary")
        if np.isfinite(med[i, j]):
            q = [25, 75] if runs >= 4 else [0, 100]
            out[0, i] = np.nanmedian(g[i, j])
            out[1, i], out[2, i] = np.nanpercentile(g[i, j], q)
    lr = np.asarray(result.axes[LR], np.float64)
    return Curve(lr, *out[:5], stationary=out[5], runs=runs)


def lr_sensitivity(results: Sequence[SweepResult], objective: Objective | None = None) -> Figure:
    """Final f - f* against learning rate (log-log), one line per optimizer (median over
    starts and seeds, band their quartiles), learning rates where runs diverged marked with x
    at the top; with several runs per learning rate a lower panel shows the fraction that
    converged (where no minimum is known: that ended stationary, |grad f| <= tol); on
    every objective with a known minimum a vertical line at gradient descent's stability edge
    2/L (`stability_edge`).

    Example:
      >>> import numpy as np
      >>> from gdkit import objectives, plots
      >>> from gdkit.engine.sweep import sweep
      >>> q = objectives.get("quadratic", condition_number=100)
      >>> r = sweep(q, "gd", grid={"learning_rate": np.logspace(-3, -1, 9)}, steps=200,
      ...           tol=1e-6, progress=False)
      >>> fig = plots.lr_sensitivity([r], q)
    """
    use = [r for r in results if LR in c.grid_dims(r)]
    if not use:
        raise c.NotApplicable(f"lr_sensitivity: no result sweeps {LR}")
    name = objective.name if objective is not None else use[0].objective
    known = use[0].f_min is not None
    curves = [
        (r, col, sensitivity_curve(r)) for r, col in zip(use, c.colors(len(use)), strict=True)
    ]
    floor = c.positive_floor(*[cv.median for *_, cv in curves], *[cv.low for *_, cv in curves])
    multi = any(cv.runs > 1 for *_, cv in curves)

    if multi:
        fig = c.new_figure(7.2, 5.6)
        ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        fig = c.new_figure(7.2, 4.4)
        ax, ax2 = fig.add_subplot(), None
    top = blended_transform_factory(ax.transData, ax.transAxes)
    handles = []
    any_div = False
    for row, (res, color, cv) in enumerate(curves):
        clip = (lambda a: np.maximum(a, floor)) if known else (lambda a: a)
        if cv.runs > 1 and np.any(np.isfinite(cv.low)):
            c.band(ax, cv.learning_rate, clip(cv.low), clip(cv.high), color)
        ax.plot(cv.learning_rate, clip(cv.median), "-o", color=color, ms=3, lw=1.6)
        some = cv.diverged > 0
        any_div |= bool(some.any())
        if some.any():
            rgba = [(*color[:3], 0.3 + 0.7 * f) for f in cv.diverged[some]]
            ax.scatter(
                cv.learning_rate[some],
                np.full(some.sum(), 0.97 - 0.035 * row),
                marker="x",
                s=28,
                c=rgba,
                transform=top,
                clip_on=False,
                zorder=5,
                linewidths=1.5,
            )
        if ax2 is not None:
            done = cv.converged if known else cv.stationary
            ax2.plot(cv.learning_rate, 100 * done, "-o", color=color, ms=3, lw=1.4)
        handles.append(Line2D([], [], color=color, marker="o", ms=3, lw=1.6, label=res.optimizer))
    edge = stability_edge(objective) if objective is not None else None
    if edge is not None:
        for a in (ax, ax2) if ax2 is not None else (ax,):
            a.axvline(edge, color="crimson", ls="--", lw=1.2)
        where = "" if objective.name.split("(")[0] == "quadratic" else " at the minimum"
        handles.append(
            Line2D(
                [],
                [],
                color="crimson",
                ls="--",
                label=f"GD stability edge{where}: 2/L = {edge:.5g} (L: largest Hessian eigenvalue)",
            )
        )
    if any_div:
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="x",
                color="k",
                mew=1.5,
                label="diverged (faint: some runs, solid: all)",
            )
        )
    if multi:
        runs = max(cv.runs for *_, cv in curves)
        band = "quartiles" if runs >= 4 else "min–max"
        handles.append(Patch(color="0.5", alpha=0.3, label=f"median over {runs} runs, band {band}"))
    if not any(np.isfinite(cv.median).any() for *_, cv in curves):
        ax.text(
            0.5,
            0.5,
            "every run diverged",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.3",
        )
    ax.set_xscale("log")
    lrs = np.concatenate([cv.learning_rate for *_, cv in curves])
    lrs = lrs[lrs > 0]
    if lrs.size:
        ax.set_xlim(lrs.min() / 1.4, lrs.max() * 1.4)
    if known:
        ax.set_yscale("log")
        ax.set_ylabel("final f − f*")
        tol = use[0].tol
        if tol and use[0].tol_metric == "gap":
            ax.axhline(tol, color="0.4", ls=":", lw=1)
            handles.append(Line2D([], [], color="0.4", ls=":", label=f"tol = {tol:.0e}"))
        lo_y, hi_y = ax.get_ylim()
        ax.set_ylim(lo_y, hi_y * 10 ** (0.12 * np.log10(hi_y / lo_y) + 0.3))  # room for x
    else:
        ax.set_ylabel("final f")
    ax.grid(True, which="major", alpha=0.3)
    c.title(ax, f"{name}: sensitivity to the learning rate")
    c.legend_below(fig, handles, ncol=2)
    bottom = ax
    if ax2 is not None:
        ax2.set(ylabel="converged (%)" if known else "stationary (%)", ylim=(-5, 105))
        ax2.grid(True, which="major", alpha=0.3)
        bottom = ax2
    bottom.set_xlabel("learning rate")
    return fig
