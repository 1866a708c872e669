"""Regression objectives: linear least squares, logistic regression, an exponential curve fit.

Each is a data objective (`gdkit.objectives.data`) on a generated data set (from `seed`) or a
user's CSV file (`csv=`, `features=`, `target=`; the synthetic parameters are then unused).
Known minimizers are computed in float64 NumPy at construction: linear least squares with
`numpy.linalg.lstsq`, the others with Newton / Gauss-Newton iterations run to a gradient at
rounding level (and left out, `minima=()`, if they do not get there: separable classes, say).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdkit.objectives import datasets
from gdkit.objectives._base import Minimum, Objective
from gdkit.objectives._registry import register
from gdkit.objectives.data import box, from_data


def _dataset(csv, features, target, synthetic) -> datasets.Dataset:
    if csv is None:
        if features is not None or target is not None:
            raise ValueError("features and target go with csv=<path>")
        return synthetic()
    return datasets.load_csv(csv, features, target)


def _affine(p, X):
    return X @ p["w"] + p["b"]


@register(
    "linear_regression",
    "mean squared error of y ~ X w + b: synthetic y = 2 x1 + x2 + 3 + noise (n, noise, seed) "
    "or csv=, features=, target=",
)
def linear_regression(
    n: int = 100,
    noise: float = 0.1,
    seed: int = 0,
    csv: str | None = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
) -> Objective:
    """f(w, b) = 1/n sum_i (x_i . w + b - y_i)^2; the minimum is the least-squares solution.

    Synthetic data: x1, x2 ~ N(0, 1), y = 2 x1 + x2 + 3 + noise N(0, 1), so the fitted
    (w[0], w[1], b) is (2, 1, 3) up to the noise. Parameters are x = (w[0], ..., w[k-1], b),
    the start is 0.

    Example:
      >>> from gdkit import objectives
      >>> obj = objectives.get("linear_regression", noise=0.0)
      >>> obj.minima[0].x.round(12).tolist(), obj.param_names
      ([2.0, 1.0, 3.0], ('w[0]', 'w[1]', 'b'))
    """
    data = _dataset(csv, features, target, lambda: datasets.linear(n, noise, seed))
    Z = np.column_stack([data.X, np.ones(data.n)])
    sol = np.linalg.lstsq(Z, data.y, rcond=None)[0]
    f_star = float(np.mean((Z @ sol - data.y) ** 2))
    k = data.X.shape[1]
    full_rank = np.linalg.matrix_rank(Z) == k + 1
    x0 = np.zeros(k + 1)
    return from_data(
        "linear_regression",
        data,
        [("w", (k,)), ("b", ())],
        lambda p, X, y: (_affine(p, X) - y) ** 2,
        residual=lambda p, X, y: _affine(p, X) - y,
        model=_affine,
        x0=x0,
        bounds=box(x0, sol, margin=3.0),
        minima=(Minimum(sol, f_star),) if full_rank else (),
        description=f"linear regression, mean squared error ({data.source})",
    )


@register(
    "logistic_regression",
    "mean log-loss of P(y=1) = sigmoid(X w + b): two overlapping synthetic classes "
    "(n, separation, seed) or csv=, features=, target= (labels 0/1)",
)
def logistic_regression(
    n: int = 200,
    separation: float = 1.0,
    seed: int = 0,
    csv: str | None = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
) -> Objective:
    """f(w, b) = 1/n sum_i softplus(z_i) - y_i z_i with z_i = x_i . w + b (the mean negative
    log-likelihood, computed without overflow). The minimum is found by Newton's method in
    float64; on separable data there is none (the weights grow without bound) and `minima` is
    empty.

    Example:
      >>> from gdkit import objectives
      >>> obj = objectives.get("logistic_regression")
      >>> obj.dim, len(obj.minima)
      (3, 1)
    """
    data = _dataset(csv, features, target, lambda: datasets.two_class(n, separation, seed))
    if not np.all((data.y == 0) | (data.y == 1)):
        raise ValueError(f"{data.source}: logistic_regression needs target labels 0 or 1")
    k = data.X.shape[1]
    x0 = np.zeros(k + 1)
    minimum = _logistic_minimum(np.column_stack([data.X, np.ones(data.n)]), data.y)
    return from_data(
        "logistic_regression",
        data,
        [("w", (k,)), ("b", ())],
        lambda p, X, y: jax.nn.softplus(_affine(p, X)) - y * _affine(p, X),
        model=lambda p, X: jax.nn.sigmoid(_affine(p, X)),
        x0=x0,
        bounds=box(x0, *([minimum.x] if minimum else []), margin=3.0),
        minima=(minimum,) if minimum else (),
        description=f"logistic regression, mean log-loss ({data.source})",
    )


def _logistic_minimum(Z: np.ndarray, y: np.ndarray) -> Minimum | None:
    def loss(v):
        z = Z @ v
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    v = np.zeros(Z.shape[1])
    for _ in range(100):
        p = 0.5 * (1.0 + np.tanh(0.5 * (Z @ v)))  # sigmoid without overflow
        g = Z.T @ (p - y) / len(y)
        if np.max(np.abs(g)) < 1e-14:
            break
        h = (Z * (p * (1.0 - p))[:, None]).T @ Z / len(y)
        step = np.linalg.lstsq(h, g, rcond=None)[0]
        t, f0 = 1.0, loss(v)
        while loss(v - t * step) > f0 and t > 1e-10:
            t *= 0.5
        v = v - t * step
    if np.all((Z @ v) * (2.0 * y - 1.0) > 0):
        return None  # a separating hyperplane: the loss falls forever along it, no minimizer
    if not np.max(np.abs(g)) < 1e-10:
        return None  # not converged: leave it unknown rather than guess
    return Minimum(v, loss(v))


@register(
    "curve_fit",
    "mean squared error of y ~ a exp(b x): synthetic (n, a, b, noise, seed) or csv= with one "
    "feature",
)
def curve_fit(
    n: int = 40,
    a: float = 1.5,
    b: float = 0.8,
    noise: float = 0.1,
    seed: int = 0,
    csv: str | None = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
) -> Objective:
    """f(a, b) = 1/n sum_i (a exp(b x_i) - y_i)^2: a nonlinear least-squares problem.

    Synthetic data: x = linspace(0, 2, n), y = a exp(b x) + noise N(0, 1). The start is
    (a, b) = (1, 0); the listed minimum is solved by Gauss-Newton in float64 from the fit of
    log y (where y > 0).

    Example:
      >>> from gdkit import objectives
      >>> obj = objectives.get("curve_fit", noise=0.0)
      >>> obj.minima[0].x.round(10).tolist(), obj.param_names
      ([1.5, 0.8], ('a', 'b'))
    """
    data = _dataset(csv, features, target, lambda: datasets.exponential(n, a, b, noise, seed))
    if data.X.shape[1] != 1:
        raise ValueError(f"{data.source}: curve_fit needs exactly one feature column")
    x, y = data.X[:, 0], data.y
    minimum = _curve_minimum(x, y)
    x0 = np.array([1.0, 0.0])

    def model(p, X):
        return p["a"] * jnp.exp(p["b"] * X[:, 0])

    return from_data(
        "curve_fit",
        data,
        [("a", ()), ("b", ())],
        lambda p, X, y: (model(p, X) - y) ** 2,
        residual=lambda p, X, y: model(p, X) - y,
        model=model,
        x0=x0,
        bounds=box(x0, *([minimum.x] if minimum else []), margin=1.0),
        minima=(minimum,) if minimum else (),
        description=f"exponential curve fit, mean squared error ({data.source})",
    )


def _curve_minimum(x: np.ndarray, y: np.ndarray) -> Minimum | None:
    def residual(v):
        return v[0] * np.exp(v[1] * x) - y

    def loss(v):
        return float(np.mean(residual(v) ** 2))

    pos = y > 0
    if pos.sum() >= 2:
        slope, icept = np.polyfit(x[pos], np.log(y[pos]), 1)
        v = np.array([np.exp(icept), slope])
    else:
        v = np.array([1.0, 0.0])
    for _ in range(200):
        e = np.exp(v[1] * x)
        J = np.column_stack([e, v[0] * x * e])
        r = residual(v)
        g = 2.0 * J.T @ r / len(y)
        if np.max(np.abs(g)) < 1e-14:
            break
        step = np.linalg.lstsq(J, r, rcond=None)[0]
        t, f0 = 1.0, loss(v)
        while loss(v - t * step) > f0 and t > 1e-10:
            t *= 0.5
        v = v - t * step
    if not np.max(np.abs(g)) < 1e-10:
        return None
    return Minimum(v, loss(v))
