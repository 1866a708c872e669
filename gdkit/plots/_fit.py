"""`fit`: a data objective's fitted line (one feature) or plane (two features) over its data."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gdkit.objectives import Objective
from gdkit.plots import _common as c
from gdkit.result import SweepResult


def fit(results: Sequence[SweepResult], objective: Objective) -> Figure:
    """The data and the model fitted by each optimizer's best run (its `final_x`; the run
    with the lowest final loss), with the known optimum dashed.

    One feature: the data as points and each fit as a line over the feature's range. Two
    features: the data as 3-D points and the best run's fit as a surface (a plane for linear
    regression). Not applicable (NotApplicable) to objectives without `data` and `predict`,
    or with more than two features.

    Example:
      >>> from gdkit import objectives, plots
      >>> from gdkit.engine.sweep import sweep
      >>> obj = objectives.get("curve_fit")
      >>> r = sweep(obj, "adam", grid={"learning_rate": [0.01, 0.1]}, steps=300,
      ...           progress=False)
      >>> fig = plots.fit([r], obj)
    """
    data = getattr(objective, "data", None)
    if data is None or getattr(objective, "predict", None) is None:
        raise c.NotApplicable(f"fit: {objective.name} is not a data objective")
    k = data.X.shape[1]
    if k not in (1, 2):
        raise c.NotApplicable(f"fit: needs 1 or 2 features, {objective.name} has {k}")
    best = []
    for res in results:
        try:
            row = res.best(by="final_loss")
        except ValueError:
            continue  # every lane diverged
        flat = np.unravel_index(int(row["lane"]), res.shape)
        best.append((res, np.asarray(res.final_x[flat], np.float64), row["final_loss"]))
    if not best:
        raise c.NotApplicable("fit: every run diverged")
    names = objective.names_of_params
    fig = c.new_figure(7.2, 4.8 if k == 1 else 5.4)
    if k == 1:
        _line(fig, objective, best, names)
    else:
        _plane(fig, objective, best, names)
    return fig


def _params(x: np.ndarray, names: Sequence[str]) -> str:
    shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(names, x, strict=True))
    return shown if len(x) <= 4 else f"{len(x)} parameters"


def _predict(objective: Objective, x: np.ndarray, X: np.ndarray) -> np.ndarray:
    return np.asarray(objective.predict(np.asarray(x, np.float32), X), np.float64)


def _line(fig, objective, best, names) -> None:
    data = objective.data
    ax = fig.add_subplot()
    xs = data.X[:, 0]
    grid = np.linspace(xs.min(), xs.max(), 200)[:, None]
    ax.scatter(xs, data.y, s=14, color="0.35", alpha=0.8, zorder=3)
    handles = [Line2D([], [], ls="", marker="o", color="0.35", label=f"data (n={data.n})")]
    for (res, x, loss), color in zip(best, c.colors(len(best)), strict=True):
        ax.plot(grid[:, 0], _predict(objective, x, grid), color=color, lw=1.8)
        label = f"{res.optimizer}: {_params(x, names)}, loss {loss:.4g}"
        handles.append(Line2D([], [], color=color, lw=1.8, label=label))
    if objective.minima:
        m = objective.minima[0]
        ax.plot(grid[:, 0], _predict(objective, m.x, grid), color="k", lw=1.2, ls="--")
        label = f"optimum: {_params(m.x, names)}, loss {m.f:.4g}"
        handles.append(Line2D([], [], color="k", lw=1.2, ls="--", label=label))
    ax.set(xlabel=data.feature_names[0], ylabel=data.target_name)
    ax.grid(True, alpha=0.3)
    c.title(ax, f"{objective.name}: fitted model over the data")
    c.legend_below(fig, handles, ncol=1)


def _plane(fig, objective, best, names) -> None:
    data = objective.data
    res, x, loss = min(best, key=lambda b: b[2])
    ax = fig.add_subplot(projection="3d")
    lo, hi = data.X.min(axis=0), data.X.max(axis=0)
    g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 25), np.linspace(lo[1], hi[1], 25))
    Z = _predict(objective, x, np.stack([g0.ravel(), g1.ravel()], axis=1)).reshape(g0.shape)
    ax.plot_surface(g0, g1, Z, color="tab:blue", alpha=0.35, edgecolor="tab:blue", lw=0.2)
    above = data.y >= _predict(objective, x, data.X)
    for mask, color in ((above, "tab:red"), (~above, "0.3")):
        ax.scatter(*data.X[mask].T, data.y[mask], s=10, color=color, depthshade=False)
    ax.view_init(elev=20, azim=-60)
    ax.set(xlabel=data.feature_names[0], ylabel=data.feature_names[1], zlabel=data.target_name)
    handles = [
        Line2D([], [], ls="", marker="o", color="tab:red", label="data above the fit"),
        Line2D([], [], ls="", marker="o", color="0.3", label="data below the fit"),
        Line2D([], [], color="tab:blue", lw=4, alpha=0.5, label=f"{res.optimizer} (best run)"),
    ]
    ax.set_title(
        f"{objective.name}: best fit ({res.optimizer})\n{_params(x, names)}, loss {loss:.4g}",
        fontsize=10,
    )
    c.legend_below(fig, handles, ncol=3)
