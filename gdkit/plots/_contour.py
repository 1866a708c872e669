"""`contour`: the best run of each optimizer drawn over the objective's contours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

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


MAX_PANEL_PATHS = 6  # more paths than this: one panel per path (small multiples)


class Path(NamedTuple):
    """One path to draw: whose (result, lane), its points [T, 2], whether they are the full
    recorded trajectory (else start -> end), and its colour."""

    result: SweepResult
    lane: int | None
    points: np.ndarray | None
    full: bool
    color: Any


def lane_at(result: SweepResult, at: Mapping[str, Any]) -> int | None:
    """The lane to draw for grid point `at` (swept hyperparameter -> value): one whose
    trajectory was recorded there, else the point's first start and seed. None when `at` does
    not name exactly this result's swept hyperparameters or a value was not swept."""
    dims = c.grid_dims(result)
    if sorted(at) != sorted(dims):
        return None
    gidx = []
    for d in dims:
        hit = [i for i, v in enumerate(result.axes[d]) if _same(v, at[d])]
        if not hit:
            return None
        gidx.append(hit[0])
    lanes = np.arange(result.lanes).reshape(result.shape)[tuple(gidx)].ravel()
    if result.trajectory_lanes is not None and result.trajectory_x is not None:
        kept = [int(lane) for lane in result.trajectory_lanes if lane in lanes]
        if kept:
            return kept[0]
    return int(lanes[0])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | np.floating) or isinstance(b, float | np.floating):
        try:
            return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0))
        except (TypeError, ValueError):
            return False
    return str(a) == str(b)


def requested_paths(
    results: Sequence[SweepResult], paths: Sequence[Mapping[str, Any]] | None = None
) -> list[tuple[SweepResult, int | None]]:
    """(result, lane) of every path the contour draws: for each result, the grid points of
    `paths` it sweeps (in order), or its `path_lane` when `paths` names none of them."""
    out = []
    for res in results:
        lanes = [lane_at(res, at) for at in paths or ()]
        lanes = list(dict.fromkeys(lane for lane in lanes if lane is not None))
        out += [(res, lane) for lane in lanes] if lanes else [(res, path_lane(res))]
    return out


def contour(
    results: Sequence[SweepResult],
    objective: Objective,
    paths: Sequence[Mapping[str, Any]] | None = None,
) -> Figure:
    """The best run of each optimizer (`path_lane`), or the runs at the grid points `paths`
    asks for (`{"learning_rate": 0.1}`, ...), over the contours of a 2-D objective, with
    start, end and the known minima marked.

    Every path stays visible: paths are drawn widest first and narrower on top (a path that
    runs under another shows as a coloured edge), short paths get a marker at every iterate,
    and more than `MAX_PANEL_PATHS` paths get one panel each. Paths are the recorded
    trajectories (`sweep(..., trajectories=...)`); without one a dashed line joins start
    and final point. Levels are log-spaced in f - min f when the function spans decades over
    the view (Rosenbrock), linear otherwise (peaks).

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
    chosen = requested_paths(results, paths)
    drawn = []
    for (res, lane), color in zip(chosen, c.colors(len(chosen)), strict=True):
        pts, full = best_path(res, lane) if lane is not None else (None, False)
        drawn.append(Path(res, lane, pts, full, color))
    # A wandering path (Rastrigin's Nesterov run) would stretch the view over its whole
    # excursion: only its start and end count for the view, and it is drawn thin and light.
    pts = [
        p.points[[0, -1]] if wanders(p.points, objective) else p.points
        for p in drawn
        if p.points is not None
    ] + [m.x[None] for m in objective.minima]
    xlim, ylim = c.view_box(objective, np.concatenate(pts) if pts else None)
    X, Y, Z = c.evaluate(objective, xlim, ylim)

    panels = len(drawn) > MAX_PANEL_PATHS or _overlapping(drawn, xlim, ylim)
    if panels:
        ncol = len(drawn) if len(drawn) <= 4 else int(np.ceil(np.sqrt(len(drawn))))
        nrow = int(np.ceil(len(drawn) / ncol))
        fig = c.new_figure(2.6 * ncol + 1.2, 2.5 * nrow + 1.4)
        grid = fig.subplots(nrow, ncol, sharex=True, sharey=True, squeeze=False)
        axes = list(grid.ravel())
        for ax in axes[len(drawn) :]:
            ax.set_visible(False)
        groups = [[p] for p in drawn]
    else:
        fig = c.new_figure(7.2, 6.0)
        axes = [fig.add_subplot()]
        groups = [drawn]
    filled = None
    for k, (ax, group) in enumerate(zip(axes, groups, strict=False)):
        filled = _background(ax, objective, X, Y, Z)
        _draw_paths(ax, group, small=panels, objective=objective, first=k)
        for m in objective.minima:
            ax.plot(
                *m.x, "*", ms=15 if not panels else 10, color="gold", mec="k", mew=0.8, zorder=50
            )
        ax.set(xlim=xlim, ylim=ylim)
        ax.set_aspect("auto")
        if panels:
            p = group[0]
            ax.set_title(_label(p, short=True), fontsize=7)
    xname, yname = c.axis_names(objective)
    chose = bool(paths) and any(lane_at(r, at) is not None for r in results for at in paths)
    what = "chosen runs" if chose else "best run of each optimizer"
    if panels:
        for ax in grid[-1]:
            ax.set_xlabel(xname)
        for ax in grid[:, 0]:
            ax.set_ylabel(yname)
        c.title(fig, f"{objective.name}: {what}, one panel each", width=90)
    else:
        ax = axes[0]
        ax.set(xlabel=xname, ylabel=yname)
        c.title(ax, f"{objective.name}: {what}")
    label = "f − f*  (log levels)" if objective.f_min is not None else "f − min f (log)"
    if not isinstance(filled.norm, LogNorm):
        label = "f"
    cb = fig.colorbar(filled, ax=axes, label=label, shrink=0.9, pad=0.02)
    if isinstance(filled.norm, LogNorm):
        cb.ax.yaxis.set_major_locator(LogLocator())
        cb.ax.yaxis.set_major_formatter(LogFormatterSciNotation())
        cb.ax.yaxis.set_minor_locator(NullLocator())
    handles = [] if panels else [_handle(p) for p in drawn]
    handles += _marker_handles(objective, drawn)
    c.legend_below(fig, handles, ncol=2 if not panels else 4)
    return fig


def _background(ax, objective: Objective, X, Y, Z):
    """Filled contours of f (log levels of f - min f when it spans decades) with thin lines."""
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
    else:
        filled = ax.contourf(X, Y, Z, levels=24, cmap=_CMAP, alpha=0.85)
        ax.contour(X, Y, Z, levels=12, colors="k", linewidths=0.3, alpha=0.4)
    return filled


def _resample(points: np.ndarray, n: int = 300) -> np.ndarray:
    """`n` points evenly spaced along the polyline `points` [T, 2]."""
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    at = np.concatenate([[0.0], np.cumsum(seg)])
    if at[-1] <= 0:
        return points[:1]
    t = np.linspace(0.0, at[-1], n)
    return np.stack([np.interp(t, at, points[:, k]) for k in range(2)], axis=1)


def _near(points: np.ndarray, line: np.ndarray, tol: float) -> np.ndarray:
    """Which of `points` [P, 2] lie within `tol` of the polyline `line` [T, 2]."""
    a, b = line[:-1], line[1:]
    if len(a) == 0:
        return np.linalg.norm(points - line[0], axis=1) <= tol
    ab = b - a
    t = np.einsum("pk,sk->ps", points, ab) - np.einsum("sk,sk->s", a, ab)
    t = np.clip(t / np.maximum(np.einsum("sk,sk->s", ab, ab), 1e-300), 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    return np.min(np.linalg.norm(points[:, None] - closest, axis=-1), axis=1) <= tol


def _overlapping(drawn: Sequence[Path], xlim, ylim, share: float = 0.5) -> bool:
    """True when one path runs along another for over `share` of its length (within 1% of
    the view): collinear paths (one learning rate's steps on another's line) that no drawing
    order keeps apart on one panel."""
    scale = np.array([np.ptp(xlim), np.ptp(ylim)])
    lines = [
        _resample(_iterates(p.points) / scale)
        for p in drawn
        if p.points is not None and len(p.points) > 1
    ]
    for i, a in enumerate(lines):
        for j, b in enumerate(lines):
            if (
                i != j
                and len(b) > 1
                and np.mean(_near(a, b[:: max(1, len(b) // 150)], 0.01)) > share
            ):
                return True
    return False


MARK_ITERATES = 80  # paths of at most this many points get a marker at every iterate


def _iterates(points: np.ndarray) -> np.ndarray:
    """The points up to where the path has arrived (within 0.1% of its extent of its final
    point from then on): where markers show each iterate. A path that creeps on to its last
    step keeps every point (too many to mark)."""
    extent = max(float(np.linalg.norm(np.ptp(points, axis=0))), 1e-300)
    far = np.flatnonzero(np.linalg.norm(points - points[-1], axis=1) > 1e-3 * extent)
    return points[: (far[-1] + 2) if far.size else 1]


def _extent(p: Path) -> float:
    if p.points is None or len(p.points) < 2:
        return 0.0
    return float(np.linalg.norm(np.ptp(p.points, axis=0)))


WANDERS = 40.0  # a path longer than this many diagonals of the bounds wanders


def wanders(points: np.ndarray | None, objective: Objective) -> bool:
    """True when the path's length exceeds `WANDERS` diagonals of the objective's bounds (a
    run that keeps jumping across the domain rather than descending)."""
    if points is None or len(points) < 2:
        return False
    diag = float(np.linalg.norm(objective.bounds[:, 1] - objective.bounds[:, 0]))
    length = float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1)))
    return length > WANDERS * diag


def _draw_paths(
    ax, group: Sequence[Path], small: bool, objective: Objective, first: int = 0
) -> None:
    """Draws `group`'s paths so that none hides another: wandering paths first, thin and
    light; then the widest extent first, each later (smaller) one narrower and above, so a
    path under another shows as its coloured edges. Each path line carries gid "path:<k>",
    k = `first` + its index in `group` (for checks: scripts/check_figures.py)."""
    wandering = [wanders(p.points, objective) for p in group]
    order = sorted(range(len(group)), key=lambda i: (not wandering[i], -_extent(group[i])))
    n = len(order)
    for rank, i in enumerate(order):
        p = group[i]
        if p.points is None:
            continue
        lw = (1.0 if small else 1.4) + 1.3 * (n - 1 - rank)
        alpha = 0.95
        if wandering[i]:
            lw, alpha = 0.6, 0.45
        style = dict(ls="-") if p.full else dict(ls="--")
        z = 10 + 3 * rank
        pts = p.points
        ax.plot(
            pts[:, 0],
            pts[:, 1],
            color=p.color,
            lw=lw,
            alpha=alpha,
            zorder=z,
            solid_capstyle="round",
            gid=f"path:{first + i}",
            **style,
        )
        wider = n - 1 - rank  # earlier paths get wider lines and larger markers
        its = _iterates(pts)
        if p.full and len(its) <= MARK_ITERATES and not wandering[i]:
            ax.plot(
                its[:, 0],
                its[:, 1],
                ls="",
                marker="o",
                ms=2.5 + 0.8 * wider,
                color=p.color,
                mec="k",
                mew=0.3,
                zorder=z + 1,
            )
        ax.plot(*pts[0], "o", ms=7 + 3 * wider, mfc="white", mec=p.color, mew=2, zorder=40 + rank)
        diverged = p.result.row(p.lane)["status"] == "diverged"
        ax.plot(
            *pts[-1],
            "X" if diverged else "o",
            ms=(8 if diverged else 5) + 2 * wider,
            color=p.color,
            mec="k",
            mew=0.6,
            zorder=41 + rank,
        )


def _handle(p: Path) -> Line2D:
    if p.lane is None:
        return Line2D(
            [], [], color=p.color, lw=2, label=f"{p.result.optimizer}: every run diverged"
        )
    return Line2D([], [], color=p.color, ls="-" if p.full else "--", lw=1.6, label=_label(p))


def _marker_handles(objective: Objective, drawn: Sequence[Path]) -> list:
    handles = [
        Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec="0.3", mew=2, label="start"),
    ]
    status = [p.result.row(p.lane)["status"] for p in drawn if p.lane is not None]
    if any(s != "diverged" for s in status):
        handles.append(Line2D([], [], ls="", marker="o", ms=5, color="0.3", mec="k", label="end"))
    if "diverged" in status:
        handles.append(
            Line2D([], [], ls="", marker="X", ms=8, color="0.3", mec="k", label="last finite point")
        )
    if any(
        p.full
        and p.points is not None
        and len(_iterates(p.points)) <= MARK_ITERATES
        and not wanders(p.points, objective)
        for p in drawn
    ):
        handles.append(
            Line2D([], [], ls="", marker="o", ms=3, color="0.5", mec="k", mew=0.3, label="iterate")
        )
    if objective.minima:
        one = len(objective.minima) == 1
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="*",
                ms=12,
                color="gold",
                mec="k",
                label="known minimum" if one else "known minima",
            )
        )
    return handles


def _label(p: Path, short: bool = False) -> str:
    res, lane = p.result, p.lane
    if lane is None:
        return f"{res.optimizer}: every run diverged"
    row = res.row(lane)
    hp = c.hparam_label(c.hparams(res, c.grid_index(res, lane)))
    if row["status"] == "diverged":
        how = f"diverged at step {row['diverged_step']}"
    elif row["status"] == "converged":
        how = f"converged in {row['steps_to_tol']} steps"
    elif row["status"] == "stationary":  # |grad f| <= tol, and no minimum is known
        n, f = row["steps_to_tol"], row["final_loss"]
        how = f"stationary after {n} steps" + ("" if short else f" (|∇f| ≤ tol), f = {f:.2g}")
    else:
        gap = row["gap"] if row["gap"] is not None else row["final_loss"]
        how = f"{'f − f*' if row['gap'] is not None else 'f'} = {gap:.2g} after {res.steps} steps"
    if short:
        return f"{res.optimizer}{c.paren(hp)}\n{how}"
    return f"{res.optimizer}{c.paren(hp)}: {how}" + ("" if p.full else " [start → end only]")
