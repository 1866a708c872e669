"""Figures of sweep results (matplotlib, Agg; nothing is ever shown on screen).

`draw` writes every figure that applies to an experiment's results as PNGs; each kind is also
a function returning a `matplotlib.figure.Figure` (no pyplot state, nothing to close):

- `contour(results, objective, paths=None)`: the best run of each optimizer, or the runs at
  chosen grid points, over the contours (2-D); every path stays visible.
- `loss(results, objective, x_axis="steps")`: f - f* against step (or "evals": evaluations
  of f and grad f; "time": wall time, each sweep's run time shared equally by its steps) at
  each optimizer's best hyperparameters (one band per minimum reached where the minima
  differ in value).
- `epochs(results, objective)`: loss against passes over the data, one line per batch size.
- `lr_sensitivity(results, objective)`: final f - f* against learning rate, and gradient
  descent's stability edge 2/L where a minimum is known.
- `surface(objective)`: the objective as a 3-D surface (2-D).
- `basins(result, objective)`: which known minimum each start ends in (2-D, many starts).
- `fit(results, objective)`: the fitted line / plane over the data (data objectives with one
  or two features).

  >>> import numpy as np
  >>> from gdkit import objectives, plots, starts
  >>> from gdkit.engine.sweep import sweep
  >>> rs = [sweep("himmelblau", opt, grid={"learning_rate": np.logspace(-3, -1, 5)},
  ...             x0=starts.grid("himmelblau", 5), steps=200, tol=1e-6,
  ...             trajectories="best", progress=False) for opt in ("gd", "adam")]
  >>> import tempfile
  >>> paths = plots.draw(rs, {"himmelblau": objectives.get("himmelblau")}, tempfile.mkdtemp())
  >>> sorted(p.name for p in paths)[:3]
  ['basins-himmelblau-adam.png', 'basins-himmelblau-gd.png', 'contour-himmelblau.png']
"""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Mapping, Sequence

from gdkit.experiments.rundir import slug
from gdkit.objectives import Objective
from gdkit.plots._basins import DIVERGED, ELSEWHERE, basin_radius, basins, classify
from gdkit.plots._common import NotApplicable, save
from gdkit.plots._contour import contour
from gdkit.plots._epochs import epochs
from gdkit.plots._fit import fit
from gdkit.plots._loss import loss, mixed_prices
from gdkit.plots._sensitivity import lr_sensitivity, sensitivity_curve, stability_edge
from gdkit.plots._surface import surface
from gdkit.result import SweepResult

KINDS = ("contour", "loss", "loss_time", "epochs", "lr_sensitivity", "surface", "basins", "fit")
# Drawn unless asked otherwise: all but loss_time, whose wall times differ from machine to
# machine and run to run (every other figure is the same numbers for the same config).
DEFAULT_KINDS = tuple(k for k in KINDS if k != "loss_time")

# Figures a kind draws besides its own ("loss" draws the epochs figure where it applies).
_ALSO = {"loss": ("epochs",)}
# Kinds drawn from the objective alone: `gdkit run` draws them before its sweeps end.
RESULT_FREE = ("surface",)

_log = logging.getLogger(__name__)


def tasks(kinds: Sequence[str]) -> list[tuple[str, ...]]:
    """`kinds` in groups that `draw` can draw independently (in separate processes) without
    drawing a figure twice: a kind another listed kind draws too joins that kind's group.

      >>> tasks(["contour", "loss", "epochs", "fit"])
      [('contour',), ('loss', 'epochs'), ('fit',)]
    """
    joined = {k for kind in kinds for k in _ALSO.get(kind, ()) if k in kinds}
    return [
        (kind, *(k for k in _ALSO.get(kind, ()) if k in kinds))
        for kind in kinds
        if kind not in joined
    ]


def draw(
    results: Sequence[SweepResult],
    objectives: Mapping[str, Objective],
    out_dir: str | os.PathLike,
    kinds: Sequence[str] = DEFAULT_KINDS,
    paths: Sequence[Mapping[str, object]] | None = None,
) -> list[pathlib.Path]:
    """Writes the figures of `kinds` that apply to `results` into `out_dir` as PNGs.

    Per objective (results grouped by `SweepResult.objective`, each drawn against
    `objectives[name]`): `contour-<objective>.png`, `loss-<objective>.png`,
    `loss_time-<objective>.png` (the loss against wall time; not drawn by default),
    `epochs-<objective>.png`, `lr_sensitivity-<objective>.png`, `surface-<objective>.png`,
    `fit-<objective>.png`, and
    per optimizer `basins-<objective>-<optimizer>.png`. Kinds that do not apply (contour,
    surface and basins need a 2-D objective; basins a set of starts and known minima;
    lr_sensitivity a swept learning_rate; fit a data objective with one or two features;
    epochs a data objective swept over batch_size) are skipped. "loss" draws the epochs
    figure too where it applies, and `loss_evals-<objective>.png` (against evaluations) where
    optimizers of different price per step share the objective. An objective of `objectives`
    with no results gets the kinds that need none (`RESULT_FREE`: the surface). `paths`: the
    grid points whose paths the contour plot draws (see `contour`).

    Returns:
      The paths written, in order.
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"draw: unknown plot kind(s) {unknown}; allowed: {list(KINDS)}")
    out = pathlib.Path(out_dir)
    groups: dict[str, list[SweepResult]] = {}
    for r in results:
        groups.setdefault(r.objective, []).append(r)
    missing = [name for name in groups if name not in objectives]
    if missing:
        raise ValueError(f"draw: no Objective given for {missing}")
    for name in objectives:
        groups.setdefault(name, [])
    written: list[pathlib.Path] = []

    def attempt(name: str, make) -> None:
        if out / name in written:
            return
        try:
            fig = make()
        except NotApplicable as e:
            _log.debug("skipping %s: %s", name, e)
            return
        written.append(save(fig, out / name))

    for obj_name, rs in groups.items():
        obj = objectives[obj_name]
        s = slug(obj_name)
        for kind in kinds if rs else [k for k in kinds if k in RESULT_FREE]:
            if kind == "contour":
                attempt(f"contour-{s}.png", lambda rs=rs, obj=obj: contour(rs, obj, paths))
            elif kind == "loss":
                attempt(f"loss-{s}.png", lambda rs=rs, obj=obj: loss(rs, obj))
                if mixed_prices(rs):  # optimizers of different price per step
                    attempt(
                        f"loss_evals-{s}.png",
                        lambda rs=rs, obj=obj: loss(rs, obj, x_axis="evals"),
                    )
                attempt(f"epochs-{s}.png", lambda rs=rs, obj=obj: epochs(rs, obj))
            elif kind == "loss_time":
                attempt(f"loss_time-{s}.png", lambda rs=rs, obj=obj: loss(rs, obj, x_axis="time"))
            elif kind == "epochs":
                attempt(f"epochs-{s}.png", lambda rs=rs, obj=obj: epochs(rs, obj))
            elif kind == "lr_sensitivity":
                attempt(f"lr_sensitivity-{s}.png", lambda rs=rs, obj=obj: lr_sensitivity(rs, obj))
            elif kind == "surface":
                attempt(f"surface-{s}.png", lambda obj=obj: surface(obj))
            elif kind == "fit":
                attempt(f"fit-{s}.png", lambda rs=rs, obj=obj: fit(rs, obj))
            elif kind == "basins":
                for r in rs:
                    attempt(
                        f"basins-{s}-{slug(r.optimizer)}.png", lambda r=r, obj=obj: basins(r, obj)
                    )
    return written


__all__ = [
    "DEFAULT_KINDS",
    "DIVERGED",
    "ELSEWHERE",
    "KINDS",
    "RESULT_FREE",
    "NotApplicable",
    "basin_radius",
    "basins",
    "classify",
    "contour",
    "draw",
    "epochs",
    "fit",
    "loss",
    "lr_sensitivity",
    "sensitivity_curve",
    "slug",
    "stability_edge",
    "surface",
    "tasks",
]
