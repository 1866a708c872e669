"""Objectives: pure JAX test functions with their known minima, and user-written ones.

A user's function becomes an objective with `wrap`, or with the `objective` /
`objective_factory` marks that also let configs and `get` name it by import path
(`my_module:my_objective`; a config needs `gdkit run --allow-import`).

>>> from gdkit import objectives
>>> obj = objectives.get("rosenbrock")
>>> obj.x0, obj.minima[0].x
(array([-1.2,  1. ]), array([1., 1.]))
"""

from gdkit.objectives import classic as _classic  # noqa: F401  (registers the functions)
from gdkit.objectives import mlp as _mlp  # noqa: F401
from gdkit.objectives import quadratic as _quadratic  # noqa: F401
from gdkit.objectives import regression as _regression  # noqa: F401
from gdkit.objectives._base import Minimum, Objective, wrap
from gdkit.objectives._imported import ObjectiveFactory, objective, objective_factory
from gdkit.objectives._registry import entries, get, names, register
from gdkit.objectives.data import batch_indices
from gdkit.objectives.datasets import Dataset, load_csv
from gdkit.objectives.expression import ExpressionError, from_expression

__all__ = [
    "Dataset",
    "ExpressionError",
    "Minimum",
    "Objective",
    "ObjectiveFactory",
    "batch_indices",
    "entries",
    "from_expression",
    "get",
    "load_csv",
    "names",
    "objective",
    "objective_factory",
    "register",
    "wrap",
]
