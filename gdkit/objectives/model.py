"""Fitting a model formula to a CSV file: ``model: "a * exp(b * x)"``, ``csv:``, ``x:``, ``y:``.

The formula goes through the safe expression parser (`gdkit.objectives.expression`: parsed
against an allow-list, never evaluated by Python). Its names are the model's inputs (the
``x`` columns) and its parameters (every other name, in alphabetical order); the objective
is the mean squared error of ``y``, with the residuals that `gauss_newton` and
`levenberg_marquardt` use.
"""

from __future__ import annotations

import csv as _csv
import os
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from gdkit._checks import short
from gdkit.objectives import datasets, expression
from gdkit.objectives._base import Minimum, Objective
from gdkit.objectives.data import box, from_data


class ModelError(ValueError):
    """A model entry that cannot be built; `key` names the setting at fault (model, csv, x,
    y, x0)."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def from_model(
    model: str,
    csv: str | os.PathLike,
    x: Sequence[str],
    y: str,
    *,
    x0: Sequence[float] | None = None,
    bounds: Sequence[Sequence[float]] | None = None,
    minima: Sequence[Minimum] = (),
    name: str | None = None,
) -> Objective:
    """The least-squares fit of `model` (a formula of the `x` columns and its parameters) to
    column `y` of the CSV file `csv`.

    f(p) = 1/n sum_i (model(p, x_i) - y_i)^2, with `residual_fn` (the least-squares
    methods' residuals) and `predict`. The parameters are the formula's names that are not
    in `x` (alphabetical order; `param_names`); `x0` defaults to 1 for each. A parameter
    name that is also a column of the file is refused (list it in `x`, or rename the
    parameter), and so is a formula without parameters. Errors are `ModelError`s naming
    the setting (model, csv, x, y, x0).

    Example:
      >>> import pathlib, tempfile
      >>> from gdkit.objectives.model import from_model
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
      >>> _ = p.write_text("t,v\\n0,2\\n1,5.4\\n2,14.8\\n")
      >>> obj = from_model("a * exp(b * t)", p, x=["t"], y="v", x0=[1.0, 1.0])
      >>> obj.param_names, obj.dim
      (('a', 'b'), 2)
    """
    if not isinstance(model, str):
        raise ModelError("model", f"expected a formula string, got {short(model)}")
    if isinstance(x, str) or not all(isinstance(c, str) for c in x) or not x:
        raise ModelError("x", f"expected a list of column names, got {short(x)}")
    if not isinstance(y, str):
        raise ModelError("y", f"expected a column name, got {short(y)}")
    try:
        tree = expression._parse(model)
        free = expression._check(tree.body)
        expression._fold(tree.body, model)
    except expression.ExpressionError as e:
        raise ModelError("model", str(e)) from None
    columns = list(dict.fromkeys(x))
    if y in columns:
        raise ModelError("y", f"{y!r} is also listed in x")
    try:
        data = datasets.load_csv(csv, features=columns, target=y)
    except ValueError as e:
        msg = str(e)
        key = "y" if f"no column {y!r}" in msg else "x" if "no column" in msg else "csv"
        raise ModelError(key, msg) from None
    params = sorted(free - set(columns))
    if not params:
        raise ModelError(
            "model", f"{short(model)} has no parameters: every name in it is an x column"
        )
    clash = [p for p in params if p in _header(csv)]
    if clash:
        raise ModelError(
            "model",
            f"{clash[0]!r} is a column of {data.source}, not listed in x; list it in x or "
            "rename the parameter",
        )
    index = {n: i for i, n in enumerate([*params, *columns])}
    body = tree.body

    def predict(p, X):
        values = [p[n] for n in params] + [X[:, j] for j in range(len(columns))]
        out = expression._interpret(body, values, index)
        return jnp.broadcast_to(jnp.asarray(out, X.dtype), X.shape[:1])

    if x0 is None:
        x0 = np.ones(len(params))
    x0 = np.asarray(x0, np.float64).reshape(-1)
    if x0.shape != (len(params),) or not np.all(np.isfinite(x0)):
        raise ModelError(
            "x0", f"expected {len(params)} finite numbers (for {', '.join(params)}), got {x0}"
        )
    if bounds is None:
        bounds = box(x0, *(m.x for m in minima), margin=1.0)
    return from_data(
        name or model.strip(),
        data,
        [(n, ()) for n in params],
        lambda p, X, t: (predict(p, X) - t) ** 2,
        residual=lambda p, X, t: predict(p, X) - t,
        model=predict,
        x0=x0,
        bounds=np.asarray(bounds, np.float64),
        minima=tuple(minima),
        description=f"{y} ~ {model.strip()}, mean squared error ({data.source})",
    )


def _header(path) -> set[str]:
    """The column names of a CSV file that `datasets.load_csv` has read already."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in _csv.reader(f):
            if any(cell.strip() for cell in row):
                return {cell.strip() for cell in row}
    return set()
