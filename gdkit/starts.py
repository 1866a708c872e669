"""Start sets for a sweep: arrays of shape [S, d] to pass as `sweep(..., x0=...)`.

>>> from gdkit import objectives, starts
>>> obj = objectives.get("rosenbrock")
>>> starts.default(obj)
array([[-1.2,  1. ]])
>>> starts.grid(obj, 3).shape
(9, 2)
"""

from __future__ import annotations

import numpy as np

from gdkit._checks import fits_in_memory, integer, short
from gdkit.objectives import Objective
from gdkit.objectives._registry import as_objective


def _count(where: str, n: int, dim: int, per_axis: bool = False) -> int:
    """`n` checked: an integer >= 1 whose start set (n or, per axis, n**dim starts of dim
    coordinates) fits in memory."""
    n = integer(f"starts.{where}", "n", n, 1)
    points = n**dim if per_axis else n
    fits_in_memory(
        f"starts.{where}", f"n={n} ({short(points)} starts)", 8 * points * dim, "use a smaller n"
    )
    return n


def default(objective: Objective | str) -> np.ndarray:
    """The objective's customary start, as a one-row start set [1, d]."""
    return np.array(as_objective(objective, "starts.default: objective").x0, dtype=np.float64)[
        None, :
    ]


def grid(objective: Objective | str, n: int) -> np.ndarray:
    """A regular grid over the objective's bounds: `n` points per axis, ends included.

    Returns [n**d, d] starts in C order (the last coordinate varies fastest).

    Example:
      >>> from gdkit import starts
      >>> starts.grid("booth", 2)
      array([[-10., -10.],
             [-10.,  10.],
             [ 10., -10.],
             [ 10.,  10.]])
    """
    obj = as_objective(objective, "starts.grid: objective")
    n = _count("grid", n, obj.dim, per_axis=True)
    if n == 1:
        axes = [np.array([lo + hi]) / 2.0 for lo, hi in obj.bounds]
    else:
        axes = [np.linspace(lo, hi, int(n)) for lo, hi in obj.bounds]
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.reshape(-1) for m in mesh], axis=1)


def uniform(objective: Objective | str, n: int, seed: int = 0) -> np.ndarray:
    """`n` starts drawn uniformly within the objective's bounds (NumPy generator `seed`).

    Example:
      >>> from gdkit import starts
      >>> starts.uniform("himmelblau", 5, seed=0).shape
      (5, 2)
    """
    obj = as_objective(objective, "starts.uniform: objective")
    n = _count("uniform", n, obj.dim)
    seed = integer("starts.uniform", "seed", seed, 0)
    rng = np.random.default_rng(seed)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    return lo + (hi - lo) * rng.random((int(n), obj.dim))


__all__ = ["default", "grid", "uniform"]
