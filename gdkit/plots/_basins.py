"""`basins`: which known minimum each start of a multi-start sweep ends in."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from gdkit.objectives import Objective
from gdkit.plots import _common as c
from gdkit.result import SweepResult

ELSEWHERE, DIVERGED = -1, -2


def basin_radius(objective: Objective) -> float:
    """How close a final point must be to a minimum to count as ending in it: 2% of the
    bounds' diagonal, and at most 0.45 x the smallest distance between two known minima."""
    r = 0.02 * float(np.linalg.norm(objective.bounds[:, 1] - objective.bounds[:, 0]))
    xs = np.array([m.x for m in objective.minima])
    if len(xs) > 1:
        d = np.linalg.norm(xs[:, None] - xs[None], axis=-1)
        r = min(r, 0.45 * float(d[np.triu_indices(len(xs), 1)].min()))
    return r


def classify(
    final_x: np.ndarray,
    minima: Sequence[Any],
    radius: float,
    diverged: np.ndarray | None = None,
) -> np.ndarray:
    """The index of the minimum each final point [..., d] ends in: the nearest of `minima`
    (points [d] or `Minimum` values) within `radius`, else ELSEWHERE (-1); DIVERGED (-2)
    where `diverged` is True or the point is not finite.

    Example:
      >>> import numpy as np
      >>> from gdkit.plots import classify
      >>> classify(np.array([[3.0, 2.01], [0.0, 0.0], [-2.8, 3.1]]),
      ...          [[3.0, 2.0], [-2.805, 3.131]], radius=0.1)
      array([ 0, -1,  1])
    """
    x = np.asarray(final_x, np.float64)
    m = np.array([getattr(p, "x", p) for p in minima], np.float64).reshape(len(minima), -1)
    out = np.full(x.shape[:-1], ELSEWHERE, np.int64)
    if len(m):
        d = np.linalg.norm(x[..., None, :] - m, axis=-1)  # [..., M]
        near = np.nanargmin(np.where(np.isnan(d), np.inf, d), axis=-1)
        hit = np.take_along_axis(d, near[..., None], axis=-1)[..., 0] <= radius
        out = np.where(hit, near, ELSEWHERE)
    bad = ~np.all(np.isfinite(x), axis=-1)
    if diverged is not None:
        bad |= np.asarray(diverged, bool)
    return np.where(bad, DIVERGED, out)


def _per_start(result: SweepResult, arr: np.ndarray) -> np.ndarray:
    """[*grid, S, (seed), ...] -> [*grid, S, ...] at the first seed."""
    arr = np.asarray(arr)
    if "seed" in result.dims:
        arr = np.take(arr, 0, axis=result.dims.index("seed"))
    return arr


def _grid_point(result, labels, at: Mapping[str, Any] | None) -> tuple[int, ...]:
    dims = c.grid_dims(result)
    if at is not None:
        idx = []
        for d in dims:
            if d not in at:
                raise ValueError(f"basins: at= must give every swept hyperparameter {dims}")
            vals = result.axes[d]
            hit = [
                i
                for i, v in enumerate(vals)
                if v == at[d]
                or (isinstance(v, float | np.floating) and np.isclose(v, at[d], rtol=1e-9))
            ]
            if not hit:
                raise ValueError(f"basins: at[{d!r}]={at[d]!r} is not one of the swept values")
            idx.append(hit[0])
        return tuple(idx)
    found = (labels >= 0).reshape(*c.grid_shape(result), -1).sum(axis=-1)
    loss = _per_start(result, result.final_loss).reshape(*c.grid_shape(result), -1)
    div = (labels == DIVERGED).reshape(loss.shape)
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
        med = np.nanmedian(np.where(div, np.nan, loss), axis=-1)
    med = np.where(np.isnan(med), np.inf, med)
    order = np.lexsort((med.ravel(), -found.ravel()))
    return tuple(int(i) for i in np.unravel_index(order[0], found.shape))


def _others(x: np.ndarray, labels: np.ndarray, radius: float, max_clusters: int = 4):
    """Clusters of the end points that are in no known minimum (local minima, stalls)."""
    idx = np.flatnonzero(labels == ELSEWHERE)
    centers, members = [], []
    for i in idx:
        d = [np.linalg.norm(x[i] - ctr) for ctr in centers]
        if d and min(d) <= radius:
            members[int(np.argmin(d))].append(i)
        else:
            centers.append(x[i])
            members.append([i])
    need = max(3, int(0.03 * len(labels)))
    big = sorted((m for m in members if len(m) >= need), key=len, reverse=True)
    return [(x[m].mean(axis=0), np.array(m)) for m in big[:max_clusters]]


def basins(
    result: SweepResult, objective: Objective, at: Mapping[str, Any] | None = None
) -> Figure:
    """For each start of a multi-start sweep of a 2-D objective, the known minimum its run
    ends in (`classify`, radius `basin_radius`), one colour per minimum; runs that end
    elsewhere are light grey (large clusters of them, like a stall on a plateau, get their
    own colour), diverged runs dark grey. Drawn at `at` (swept hyperparameter -> value), by
    default at the grid point where the most runs end in a known minimum.

    Example:
      >>> import numpy as np
      >>> from gdkit import objectives, plots, starts
      >>> from gdkit.engine.sweep import sweep
      >>> r = sweep("himmelblau", "gd", grid={"learning_rate": [0.003, 0.01]},
      ...           x0=starts.grid("himmelblau", 9), steps=300, tol=1e-6, progress=False)
      >>> fig = plots.basins(r, objectives.get("himmelblau"))
    """
    c.require_2d(objective, "basins")
    if not objective.minima:
        raise c.NotApplicable(f"basins: {objective.name} has no known minima")
    if len(result.starts) < 4:
        raise c.NotApplicable(f"basins: needs a set of starts, the sweep has {len(result.starts)}")
    radius = basin_radius(objective)
    fx = _per_start(result, result.final_x)
    labels = classify(fx, objective.minima, radius, _per_start(result, result.status) == "diverged")
    gidx = _grid_point(result, labels, at)
    lab, x = labels[gidx].copy(), fx[gidx]
    starts = np.asarray(result.starts, np.float64)
    n_min = len(objective.minima)
    others = _others(x, lab, radius)
    for k, (_, members) in enumerate(others):
        lab[members] = n_min + k
    palette = c.colors(n_min + len(others))
    cats = [("0.25", DIVERGED), ("0.88", ELSEWHERE)] + [
        (palette[k], k) for k in range(n_min + len(others))
    ]
    code = {v: i for i, (_, v) in enumerate(cats)}
    value = np.vectorize(code.get)(lab)
    cmap = ListedColormap([col for col, _ in cats])
    norm = BoundaryNorm(np.arange(len(cats) + 1) - 0.5, len(cats))

    fig = c.new_figure(7.0, 6.4)
    ax = fig.add_subplot()
    xlim, ylim = c.view_box(objective)
    gx, gy = _as_grid(starts)
    if gx is not None:
        V = value.reshape(len(gx), len(gy)).T  # C order: x varies slowest
        ax.pcolormesh(_edges(gx), _edges(gy), V, cmap=cmap, norm=norm, shading="flat")
        xlim = (min(xlim[0], _edges(gx)[0]), max(xlim[1], _edges(gx)[-1]))
        ylim = (min(ylim[0], _edges(gy)[0]), max(ylim[1], _edges(gy)[-1]))
    else:
        ax.scatter(
            starts[:, 0],
            starts[:, 1],
            c=value,
            cmap=cmap,
            norm=norm,
            s=30,
            edgecolors="k",
            linewidths=0.3,
        )
    X, Y, Z = c.evaluate(objective, xlim, ylim, n=160)
    zmin = np.nanmin(Z)
    if c.spans_decades(Z - zmin):
        ax.contour(
            X,
            Y,
            Z - zmin,
            levels=c.log_levels(Z - zmin, 14),
            colors="k",
            linewidths=0.4,
            alpha=0.45,
        )
    else:
        ax.contour(X, Y, Z, levels=14, colors="k", linewidths=0.4, alpha=0.45, linestyles="solid")

    counts = {v: int(np.sum(lab == v)) for _, v in cats}
    handles = []
    for k, m in enumerate(objective.minima):
        ax.plot(*m.x, "*", ms=17, color="gold", mec="k", mew=1.0, zorder=5)
        handles.append(
            Patch(
                color=palette[k],
                label=f"{_kind(objective, m)} ({m.x[0]:.3g}, {m.x[1]:.3g}), f = {m.f:.3g}: "
                f"{counts[k]} starts",
            )
        )
    for k, (ctr, _) in enumerate(others):
        ax.plot(*ctr, "*", ms=15, color="white", mec="k", mew=1.0, zorder=5)
        handles.append(
            Patch(
                color=palette[n_min + k],
                label=f"other end point ({ctr[0]:.3g}, {ctr[1]:.3g}): {counts[n_min + k]} starts",
            )
        )
    handles.append(
        Patch(
            color="0.88",
            label=f"elsewhere (over {radius:.2g} from every minimum): {counts[ELSEWHERE]} starts",
        )
    )
    handles.append(Patch(color="0.25", label=f"diverged: {counts[DIVERGED]} starts"))
    star = dict(ls="", marker="*", ms=12, mec="k")
    handles.append(Line2D([], [], color="gold", label="known minimum", **star))
    if others:
        handles.append(Line2D([], [], color="white", label="other end point (mean)", **star))
    xname, yname = c.axis_names(objective)
    ax.set(xlim=xlim, ylim=ylim, xlabel=f"{xname} (start)", ylabel=f"{yname} (start)")
    ax.set_aspect("equal" if 0.5 < np.ptp(ylim) / np.ptp(xlim) < 2 else "auto")
    hp = c.hparam_label(c.hparams(result, gidx))
    hp = ", ".join(t for t in (hp, "seed 0" if "seed" in result.dims else "") if t)
    ax.set_title(
        f"{objective.name}: where {result.optimizer}{c.paren(hp)} ends from each start\n"
        f"{len(starts)} starts, {result.steps} steps; a run ends in a minimum when its "
        f"final point is within {radius:.2g} of it",
        fontsize=10,
    )
    c.legend_below(fig, handles, ncol=1)
    return fig


def _kind(objective: Objective, m) -> str:
    """'global minimum' or 'local minimum' where the objective lists minima of several values,
    else 'minimum'."""
    if len({mm.f for mm in objective.minima}) == 1:
        return "minimum"
    return "global minimum" if m.f == objective.f_min else "local minimum"


def _as_grid(starts: np.ndarray):
    """The axis values (gx, gy) if `starts` is a C-order n_x x n_y grid, else (None, None)."""
    if starts.shape[1] != 2:
        return None, None
    gx, gy = np.unique(starts[:, 0]), np.unique(starts[:, 1])
    if len(gx) * len(gy) != len(starts) or len(gx) < 2 or len(gy) < 2:
        return None, None
    mesh = np.stack([a.ravel() for a in np.meshgrid(gx, gy, indexing="ij")], axis=1)
    return (gx, gy) if np.allclose(mesh, starts) else (None, None)


def _edges(v: np.ndarray) -> np.ndarray:
    mid = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mid[0] - v[0])], mid, [v[-1] + (v[-1] - mid[-1])]])
