"""Gradients three ways: reverse mode, forward mode, and central finite differences."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gdkit import objectives
from gdkit._checks import real, short
from gdkit.objectives import Objective


@dataclasses.dataclass(frozen=True)
class GradCheck:
    """The three gradients at `x` and their relative disagreements.

    Errors are max_i |g_i - g_rev_i| / max(1, max_j |g_rev_j|), so they read as relative errors
    for large gradients and absolute ones near a stationary point.
    """

    x: np.ndarray
    reverse: np.ndarray
    forward: np.ndarray
    numeric: np.ndarray
    step: float
    forward_error: float
    numeric_error: float

    def ok(self, rtol: float | None = None) -> bool:
        """Whether all three agree: forward to rounding, differences to their truncation error."""
        eps = float(np.finfo(self.x.dtype).eps)
        rtol = rtol if rtol is not None else eps ** (1 / 3) * 10
        return self.forward_error <= 100 * eps and self.numeric_error <= rtol


def check_grad(objective: Objective | str, x, *, step: float | None = None) -> GradCheck:
    """Compares `jax.grad`, `jax.jacfwd` and central differences of `objective` at `x`.

    The difference step defaults to eps^(1/3) * max(1, |x_i|) for the dtype of `x` (the step
    that balances the O(h^2) truncation error against rounding), and x is used in its own dtype:
    float32 by default, float64 under `gdkit.enable_x64()`. `objective` is an `Objective`, a
    registered name or a function; `x` a finite point of its dimension; `step` a number > 0.

    Example:
      >>> import gdkit
      >>> c = gdkit.check_grad(gdkit.objectives.get("rosenbrock"), [-1.2, 1.0])
      >>> print(c.reverse, c.ok())
      [-215.60005  -88.00002] True
    """
    fn, dim = _function(objective)
    x = _point(x, dim)
    eps = float(jnp.finfo(x.dtype).eps)
    h = eps ** (1 / 3) if step is None else real("check_grad", "step", step, 0.0, lo_open=True)
    hs = h * jnp.maximum(1.0, jnp.abs(x))
    reverse, forward, numeric = _three_gradients(fn)(x, hs)
    scale = max(1.0, float(jnp.max(jnp.abs(reverse))))

    def err(g):
        return float(jnp.max(jnp.abs(g - reverse))) / scale

    return GradCheck(
        x=np.asarray(x),
        reverse=np.asarray(reverse),
        forward=np.asarray(forward),
        numeric=np.asarray(numeric),
        step=h,
        forward_error=err(forward),
        numeric_error=err(numeric),
    )


def _function(objective) -> tuple:
    """(fn, dim or None) of an Objective, a registered name or a plain function."""
    if isinstance(objective, str):
        objective = objectives.get(objective)
    if isinstance(objective, Objective):
        return objective.fn, objective.dim
    if not callable(objective):
        raise TypeError(
            "check_grad: objective must be an Objective, a name or a function, "
            f"got {short(objective)}"
        )
    return objective, None


def _point(x, dim: int | None) -> jax.Array:
    """`x` as a finite 1-D float array of `dim` coordinates, in its own float dtype."""
    want = f"check_grad: x must be finite numbers of shape [{dim if dim else 'd'}]"
    try:
        arr = np.asarray(x)
        if arr.dtype.kind not in "iuf" or arr.ndim != 1 or arr.size == 0:
            raise ValueError
        if dim is not None and arr.size != dim:
            raise ValueError
        if not np.all(np.isfinite(arr)):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{want}, got {short(x)}") from None
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    return x


@functools.lru_cache(maxsize=64)
def _three_gradients(fn):
    """One compiled program per objective function (cached, so repeated checks are cheap)."""

    @jax.jit
    def three(x, hs):
        basis = jnp.eye(x.shape[0], dtype=x.dtype) * hs[:, None]
        numeric = (jax.vmap(fn)(x + basis) - jax.vmap(fn)(x - basis)) / (2.0 * hs)
        return jax.grad(fn)(x), jax.jacfwd(fn)(x), numeric

    return three
