"""A small fully connected network written from scratch: the classic first neural network."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from gdkit.objectives import datasets
from gdkit.objectives._base import Objective
from gdkit.objectives._registry import register
from gdkit.objectives.data import from_data


def _forward(p, X):
    hidden = jax.nn.sigmoid(X @ p["w1"])
    return jax.nn.sigmoid(hidden @ p["w2"])


@register(
    "mlp",
    "a sigmoid network from scratch (inputs -> hidden -> 1), 1/2 sum of squared errors, on the "
    "shipped XOR toy set (hidden, seed) or csv=",
)
def mlp(
    hidden: int = 4,
    seed: int = 0,
    dataset: str = "xor",
    csv: str | None = None,
    features: Sequence[str] | None = None,
    target: str | None = None,
) -> Objective:
    """E(W1, W2) = 1/2 sum_i (sigmoid(sigmoid(x_i W1) W2) - y_i)^2.

    The network of the classic "build a neural network from scratch" exercise: one sigmoid
    hidden layer of `hidden` units, a sigmoid output, no bias terms (the shipped `xor` set has
    a constant input x3 = 1 that plays the bias), and the halved sum of squared errors, whose
    gradient is exactly the textbook backpropagation update. The start is the exercise's
    uniform(-1, 1) initialisation drawn from `seed` (a symmetric start would never break the
    tie between hidden units).

    The infimum is 0 but it is not attained (sigmoid outputs never reach 0 or 1), so `minima`
    is empty: sweeps test |grad| <= tol, and a run that passes it is `stationary` (the XOR
    plateau at loss 0.25 passes it too), never `converged`. 1,500 steps of gradient
    descent at learning rate 1 take the loss from about 0.5 to under 0.01 on `xor`.

    Example:
      >>> from gdkit import objectives
      >>> obj = objectives.get("mlp")
      >>> obj.dim, obj.param_names[:2], obj.param_names[-1]
      (16, ('w1[0,0]', 'w1[0,1]'), 'w2[3]')
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int | np.integer) or hidden < 1:
        raise ValueError(f"mlp: hidden must be an integer >= 1, got {hidden!r}")
    if csv is None:
        if features is not None or target is not None:
            raise ValueError("features and target go with csv=<path>")
        data = datasets.shipped(dataset)
    else:
        data = datasets.load_csv(csv, features, target)
    k = data.X.shape[1]
    shapes = [("w1", (k, hidden)), ("w2", (hidden,))]
    x0 = np.random.default_rng(seed).uniform(-1.0, 1.0, k * hidden + hidden)
    return from_data(
        "mlp",
        data,
        shapes,
        lambda p, X, y: (_forward(p, X) - y) ** 2,
        reduction="sum",
        scale=0.5,
        residual=lambda p, X, y: _forward(p, X) - y,
        model=_forward,
        x0=x0,
        bounds=np.tile([-5.0, 5.0], (x0.size, 1)),
        description=f"sigmoid network {k}-{hidden}-1, 1/2 sum of squared errors ({data.source})",
    )
