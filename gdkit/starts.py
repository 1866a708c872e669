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

from gdkit.objectives import Objective
from gdkit.objectives import get as _get_objective


def _objective(objective: Objective | str) -> Objective:
    return _get_objective(objective) if isinstance(objective, str) else objective


def default(objective: Objective | str) -> np.ndarray:
    """The objective's customary start, as a one-row start set [1, d]."""
    return np.array(_objective(objective).x0, dtype=np.float64)[None, :]


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
    obj = _objective(objective)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"starts.grid: n must be an integer >= 1, got {n!r}")
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
    obj = _objective(objective)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"starts.uniform: n must be an integer >= 1, got {n!r}")
    rng = np.random.default_rng(seed)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    return lo + (hi - lo) * rng.random((int(n), obj.dim))


__all__ = ["default", "grid", "uniform"]
