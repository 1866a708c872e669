"""Shared helpers for the figures: lane selection, labels, grids of function values, saving."""

from __future__ import annotations

import os
import pathlib
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from gdkit.objectives import Objective
from gdkit.result import SweepResult

DPI = 120
LANE_AXES = ("start", "seed")
_SHORT = {"learning_rate": "lr", "momentum": "mom", "weight_decay": "wd"}


class NotApplicable(ValueError):
    """This kind of figure does not apply to the given results or objective (`draw` skips it)."""


def new_figure(width: float = 7.2, height: float = 5.6) -> Figure:
    """A pyplot-free figure (no global state, nothing to close) with constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig: Figure, path: str | os.PathLike) -> pathlib.Path:
    """Writes `fig` as a PNG atomically (temp file + rename) and returns its path."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        fig.savefig(tmp, dpi=DPI, format="png")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def colors(n: int) -> list:
    """`n` distinct line colours (tab10, then tab20)."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def band(ax, x, low, high, color) -> None:
    """A light band between `low` and `high` with thin edges (overlapping bands stay legible)."""
    ax.fill_between(x, low, high, color=color, alpha=0.1, lw=0)
    for edge in (low, high):
        ax.plot(x, edge, color=color, lw=0.7, alpha=0.6)


def require_2d(objective: Objective, kind: str) -> None:
    if objective.dim != 2:
        raise NotApplicable(
            f"{kind}: needs a 2-D objective, {objective.name} has dim {objective.dim}"
        )


# -- lanes and grid points ---------------------------------------------------------------


def grid_dims(result: SweepResult) -> list[str]:
    """The swept hyperparameter axes (everything but start and seed)."""
    return [d for d in result.dims if d not in LANE_AXES]


def grid_shape(result: SweepResult) -> tuple[int, ...]:
    return tuple(len(result.axes[d]) for d in grid_dims(result))


def per_point(result: SweepResult, arr: np.ndarray) -> np.ndarray:
    """A per-lane array [*grid, S, (seed), ...] as [*grid, runs, ...] (runs = starts x seeds)."""
    g = grid_shape(result)
    trailing = arr.shape[len(result.shape) :]
    return np.asarray(arr).reshape(*g, -1, *trailing)


def reached(result: SweepResult) -> str:
    """The status of a lane that reached tol in this sweep: "converged" (to the known
    minimum), or "stationary" where no minimum is known (|grad f| <= tol)."""
    return "stationary" if result.tol_metric == "grad_norm" else "converged"


def run_score(result: SweepResult) -> tuple[np.ndarray, np.ndarray]:
    """Per grid point [*grid]: converged runs, and the median final loss of the runs that did
    not diverge (inf when all did): how good a grid point is across starts and seeds."""
    conv = (per_point(result, result.status) == "converged").sum(axis=-1)
    div = per_point(result, result.status) == "diverged"
    loss = np.where(div, np.nan, per_point(result, result.final_loss).astype(np.float64))
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        med = np.nanmedian(loss, axis=-1)
    return conv, np.where(np.isnan(med), np.inf, med)


def best_point(result: SweepResult) -> tuple[int, ...] | None:
    """The grid point of the best hyperparameters: that of `result.representative()` (the
    summary's choice too). None when every lane diverged."""
    try:
        lane = int(result.representative()["lane"])
    except ValueError:
        return None
    return grid_index(result, lane)


def grid_index(result: SweepResult, lane: int) -> tuple[int, ...]:
    """The grid-point part of a lane's multi-index."""
    return tuple(int(i) for i in np.unravel_index(lane, result.shape)[: len(grid_dims(result))])


def hparams(result: SweepResult, gidx: Sequence[int]) -> dict[str, Any]:
    """Swept hyperparameter name -> value at grid point `gidx`."""
    return {
        d: result.axes[d][i].item() if hasattr(result.axes[d][i], "item") else result.axes[d][i]
        for d, i in zip(grid_dims(result), gidx, strict=True)
    }


def fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):.3g}"
    return str(v)


def hparam_label(hp: dict[str, Any]) -> str:
    """`{'learning_rate': 0.0123}` -> 'lr=0.0123'."""
    return ", ".join(f"{_SHORT.get(k, k)}={fmt(v)}" for k, v in hp.items())


def paren(text: str) -> str:
    """' (text)', or '' for empty text."""
    return f" ({text})" if text else ""


def gaps(result: SweepResult, values: np.ndarray) -> tuple[np.ndarray, str]:
    """`values - f_min` and the axis label, or the values themselves when f_min is unknown."""
    if result.f_min is None:
        return np.asarray(values, np.float64), "f"
    return np.asarray(values, np.float64) - result.f_min, "f − f*"


def positive_floor(*arrays: np.ndarray, default: float = 1e-16) -> float:
    """The smallest positive finite value in `arrays` (the bottom of a log axis)."""
    vals = [a[np.isfinite(a) & (a > 0)] for a in map(np.asarray, arrays)]
    vals = [v for v in vals if v.size]
    return float(min(v.min() for v in vals)) if vals else default


# -- the function on a grid -----------------------------------------------------------------


def evaluate(objective: Objective, xlim, ylim, n: int = 200):
    """X, Y, Z [n, n] with Z = f(X, Y) (float64, NaN where f is not finite)."""
    xs = np.linspace(*xlim, n)
    ys = np.linspace(*ylim, n)
    X, Y = np.meshgrid(xs, ys)
    pts = jnp.asarray(np.stack([X.ravel(), Y.ravel()], axis=1), jnp.float32)
    Z = np.asarray(jax.jit(jax.vmap(objective.fn))(pts), np.float64).reshape(X.shape)
    Z[~np.isfinite(Z)] = np.nan
    return X, Y, Z


def view_box(objective: Objective, points: np.ndarray | None = None):
    """Axis limits: the objective's bounds, widened (at most one width each side) to show
    `points` [N, 2]."""
    lo, hi = objective.bounds[:, 0].copy(), objective.bounds[:, 1].copy()
    p = np.zeros((0, 2)) if points is None else np.asarray(points, np.float64).reshape(-1, 2)
    p = p[np.all(np.isfinite(p), axis=1)]
    if len(p):
        w = hi - lo
        lo = np.maximum(np.minimum(lo, p.min(axis=0) - 0.03 * w), lo - w)
        hi = np.minimum(np.maximum(hi, p.max(axis=0) + 0.03 * w), hi + w)
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


def spans_decades(gap: np.ndarray, ratio: float = 50.0) -> bool:
    """True when the gap f - min f over the view spans decades: its max is over `ratio` times
    its 5th percentile (Rosenbrock, Himmelblau, ill-conditioned quadratics; not peaks)."""
    g = gap[np.isfinite(gap)]
    if g.size == 0:
        return False
    hi, lo = g.max(), np.percentile(g, 5)
    return bool(hi > 0 and hi > ratio * max(lo, hi * 1e-12))


def log_levels(gap: np.ndarray, n: int = 24) -> np.ndarray:
    """Geometrically spaced levels from about the 0.5th percentile of `gap` to its max."""
    g = gap[np.isfinite(gap)]
    hi = g.max()
    lo = max(np.percentile(g[g > 0], 0.5) if np.any(g > 0) else hi * 1e-6, hi * 1e-8)
    return np.geomspace(lo, hi, n)


def shorten(title: str, width: int = 70) -> str:
    """A figure title that fits: long objective labels are cut with an ellipsis."""
    return title if len(title) <= width else title[: width - 1] + "…"


def title(target, text: str, width: int = 64, **kwargs) -> None:
    """Sets the title of an axes (or a figure's suptitle) wrapped at `width` characters (an
    objective named with its parameters, `curve_fit(n=40, a=1.5, ...)`, would otherwise run
    past the figure's edge)."""
    import textwrap

    lines = [w for line in text.split("\n") for w in textwrap.wrap(line, width) or [""]]
    setter = target.set_title if hasattr(target, "set_title") else target.suptitle
    setter("\n".join(lines), **kwargs)


def axis_names(objective: Objective) -> tuple[str, str]:
    """The two coordinates' names for axis labels: the objective's own parameter names
    (curve_fit's a and b) or x₀, x₁."""
    if objective.param_names:
        return objective.param_names[0], objective.param_names[1]
    return "x₀", "x₁"


def legend_below(fig: Figure, handles: list, ncol: int = 2) -> None:
    """The legend outside the axes, under them, so that it never hides data (the figure grows
    by its height); in fewer than
    `ncol` columns where its longest entry would not fit the figure's width (8 pt text is
    about 4.6 pt a character; a handle and the gap take about 8 characters)."""
    longest = max((len(h.get_label()) for h in handles), default=0)
    fits = int(fig.get_figwidth() * 72 / 4.6) // (longest + 8)
    ncol = max(1, min(ncol, fits))
    rows = -(-len(handles) // ncol)
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + 0.16 * rows)  # the legend's rows come on top of the plot's height
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
