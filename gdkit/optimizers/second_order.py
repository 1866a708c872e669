r"""Newton's method and the quasi-Newton methods BFGS and L-BFGS.

Each is a chain of optax transformations: a direction (here), ``scale_by_learning_rate``,
and a line search, called with ``update(updates, state, params, value=, grad=, value_fn=)``.
Dense methods work on the flattened parameters (`jax.flatten_util.ravel_pytree`), so any
pytree of arrays works; the Hessian / inverse-Hessian costs O(n^2) memory.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from gdkit.optimizers import _linalg
from gdkit.optimizers._registry import register
from gdkit.optimizers.linesearch import (
    Evals,
    require_value_fn,
    scale_by_armijo_backtracking,
    scale_by_zoom_linesearch,
)

Scalar = float | jax.Array


class ScaleByNewtonState(NamedTuple):
    """The smallest eigenvalue of the Hessian at the last step (negative: not convex there),
    and the Hessians evaluated so far."""

    min_eigenvalue: jax.Array
    evals: Evals


def scale_by_newton(damping: Scalar = 0.0) -> optax.GradientTransformationExtraArgs:
    r"""Maps the update `g` to :math:`\tilde H^{-1} g` with :math:`H = \nabla^2 f(x)`.

    With :math:`H = Q \Lambda Q^\top`, :math:`\tilde H = Q (\max(|\Lambda|, \delta) +
    \lambda) Q^\top`: the Hessian itself (plus Levenberg damping :math:`\lambda`) where it
    is positive definite, and its absolute value where it is not, so the step stays a descent
    direction (saddle-free Newton); :math:`\delta = \sqrt{\epsilon_{mach}} \max|\Lambda|`
    bounds the step. A non-finite result falls back to `g`. Needs ``value_fn`` in `update`.
    """

    def init_fn(params) -> ScaleByNewtonState:
        dtype = jnp.real(jax.tree.leaves(params)[0]).dtype
        return ScaleByNewtonState(jnp.zeros((), dtype), Evals.zero())

    def update_fn(updates, state, params, *, value_fn=None, **kwargs):
        require_value_fn("newton", value_fn)
        kwargs = {k: v for k, v in kwargs.items() if k not in ("value", "grad")}
        x, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(updates)
        hess = jax.hessian(lambda z: value_fn(unravel(z), **kwargs))(x)
        hess = 0.5 * (hess + hess.T)
        lam, q = _linalg.eigh(hess)  # one matrix per LAPACK call: see _linalg
        floor = jnp.sqrt(jnp.finfo(x.dtype).eps) * jnp.maximum(jnp.max(jnp.abs(lam)), 1e-30)
        lam_mod = jnp.maximum(jnp.abs(lam), floor) + damping
        d = q @ ((q.T @ g) / lam_mod)
        d = jnp.where(jnp.all(jnp.isfinite(d)), d, g)
        new_state = ScaleByNewtonState(jnp.min(lam).astype(x.dtype), state.evals.add(hess=1))
        return unravel(d.astype(g.dtype)), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@register(
    "newton",
    "damped Newton: Hessian solve + backtracking; a quadratic in one step",
    kind="second_order",
)
def newton(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    damping: Scalar = 0.0,
    slope_rtol: Scalar = 1e-4,
    decrease_factor: Scalar = 0.5,
    max_linesearch_steps: int = 30,
) -> optax.GradientTransformationExtraArgs:
    r"""Damped Newton's method with the exact Hessian of ``value_fn``.

    .. math:: u_t = -\eta_t \alpha_t (\tilde H_t + \lambda I)^{-1} g_t

    where :math:`\tilde H_t` is the Hessian made positive definite (see `scale_by_newton`),
    :math:`\lambda` = ``damping`` and :math:`\eta_t \le 1` is found by Armijo backtracking
    (see `scale_by_armijo_backtracking`). With the defaults the full Newton step is tried
    first, so a convex quadratic is solved in one step.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2
      >>> opt = optimizers.newton()
      >>> x = jnp.zeros(2); state = opt.init(x)
      >>> v, g = jax.value_and_grad(f)(x)
      >>> u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
      >>> print(optax.apply_updates(x, u))
      [ 1. -2.]

    References:
      Nocedal and Wright, `Numerical Optimization`, 2nd ed., 2006 (sections 3.3-3.4);
      Dauphin et al., `Identifying and attacking the saddle point problem
      <https://arxiv.org/abs/1406.2572>`_, 2014
    """
    return optax.chain(
        scale_by_newton(damping),
        optax.scale_by_learning_rate(learning_rate),
        scale_by_armijo_backtracking(max_linesearch_steps, slope_rtol, decrease_factor),
    )


class ScaleByBFGSState(NamedTuple):
    """Counter, last (flat) params and updates, and the inverse-Hessian estimate."""

    count: jax.Array
    params: jax.Array
    updates: jax.Array
    inv_hessian: jax.Array


def scale_by_bfgs(scale_init_precond: bool = True) -> optax.GradientTransformation:
    r"""Maps the update `g` to :math:`H_t g`, the dense BFGS inverse-Hessian estimate.

    .. math::
      s = x_t - x_{t-1},\ y = g_t - g_{t-1},\ \rho = 1 / y^\top s, \qquad
      H_t = (I - \rho s y^\top) H_{t-1} (I - \rho y s^\top) + \rho s s^\top

    skipped when :math:`y^\top s \le 0` (curvature condition fails). With
    ``scale_init_precond`` the first step is :math:`g / \|g\|` (as optax.lbfgs) and
    :math:`H_0 = (y^\top s / y^\top y) I` before the first update (Nocedal & Wright, eq. 6.20).
    """

    def init_fn(params) -> ScaleByBFGSState:
        x, _ = ravel_pytree(params)
        return ScaleByBFGSState(
            jnp.zeros((), jnp.int32),
            jnp.zeros_like(x),
            jnp.zeros_like(x),
            jnp.eye(x.size, dtype=x.dtype),
        )

    def update_fn(updates, state, params):
        x, _ = ravel_pytree(params)
        g, unravel = ravel_pytree(updates)
        s, y = x - state.params, g - state.updates
        sy, yy = s @ y, y @ y
        eye = jnp.eye(x.size, dtype=x.dtype)
        valid = (state.count > 0) & (sy > jnp.finfo(x.dtype).eps * jnp.sqrt((s @ s) * yy))
        valid &= jnp.isfinite(sy) & jnp.isfinite(yy)
        h = state.inv_hessian
        if scale_init_precond:
            h = jnp.where(valid & (state.count == 1), (sy / jnp.where(valid, yy, 1.0)) * eye, h)
        rho = 1.0 / jnp.where(valid, sy, 1.0)
        hy = h @ y
        h_new = h - rho * (jnp.outer(s, hy) + jnp.outer(hy, s))
        h_new += (rho * rho * (y @ hy) + rho) * jnp.outer(s, s)
        h = jnp.where(valid, h_new, h)
        d = h @ g
        if scale_init_precond:
            first = g / jnp.maximum(jnp.linalg.norm(g), jnp.finfo(x.dtype).tiny)
            d = jnp.where(state.count == 0, first, d)
        new_state = ScaleByBFGSState(state.count + 1, x, g, h)
        return unravel(d), new_state

    return optax.GradientTransformation(init_fn, update_fn)


def _zoom(max_linesearch_steps, slope_rtol, curv_rtol, initial_guess_strategy="one"):
    return scale_by_zoom_linesearch(
        max_linesearch_steps, slope_rtol, curv_rtol, initial_guess_strategy
    )


@register(
    "bfgs",
    "BFGS: dense inverse-Hessian estimate + strong-Wolfe (zoom) line search",
    kind="second_order",
)
def bfgs(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    slope_rtol: Scalar = 1e-4,
    curv_rtol: Scalar = 0.9,
    max_linesearch_steps: int = 20,
) -> optax.GradientTransformationExtraArgs:
    r"""BFGS with a dense inverse-Hessian estimate (see `scale_by_bfgs`).

    .. math:: u_t = -\eta_t \alpha_t H_t g_t

    where :math:`\eta_t` satisfies the strong Wolfe conditions with constants ``slope_rtol``
    and ``curv_rtol`` (optax.scale_by_zoom_linesearch, first guess :math:`\eta = 1`).
    Needs ``value``, ``grad``, ``value_fn`` in `update`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2
      >>> opt = optimizers.bfgs()
      >>> x = jnp.zeros(2); state = opt.init(x)
      >>> @jax.jit
      ... def step(x, state):
      ...   v, g = jax.value_and_grad(f)(x)
      ...   u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
      ...   return optax.apply_updates(x, u), state
      >>> for _ in range(10):
      ...   x, state = step(x, state)
      >>> print(jnp.round(x, 4))
      [ 1. -2.]

    References:
      Nocedal and Wright, `Numerical Optimization`, 2nd ed., 2006 (Algorithm 6.1)
    """
    return optax.chain(
        scale_by_bfgs(),
        optax.scale_by_learning_rate(learning_rate),
        _zoom(max_linesearch_steps, slope_rtol, curv_rtol),
    )


@register(
    "lbfgs", "L-BFGS (optax.lbfgs): limited-memory BFGS + zoom line search", kind="second_order"
)
def lbfgs(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    memory_size: int = 10,
    slope_rtol: Scalar = 1e-4,
    curv_rtol: Scalar = 0.9,
    max_linesearch_steps: int = 20,
) -> optax.GradientTransformationExtraArgs:
    r"""L-BFGS: optax.lbfgs with its zoom line search (defaults equal optax's).

    .. math:: u_t = -\eta_t \alpha_t P_t g_t

    with :math:`P_t` the inverse-Hessian estimate from the last ``memory_size`` pairs
    :math:`(s, y)` (two-loop recursion) and :math:`\eta_t` from the strong Wolfe line search.
    Needs ``value``, ``grad``, ``value_fn`` in `update`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2
      >>> opt = optimizers.lbfgs(memory_size=5)
      >>> x = jnp.zeros(2); state = opt.init(x)
      >>> @jax.jit
      ... def step(x, state):
      ...   v, g = jax.value_and_grad(f)(x)
      ...   u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
      ...   return optax.apply_updates(x, u), state
      >>> for _ in range(10):
      ...   x, state = step(x, state)
      >>> print(jnp.round(x, 4))
      [ 1. -2.]

    References:
      Liu and Nocedal, `On the limited memory BFGS method for large scale optimization
      <https://doi.org/10.1007/BF01589116>`_, 1989
    """
    return optax.lbfgs(
        learning_rate,
        memory_size=memory_size,
        linesearch=_zoom(max_linesearch_steps, slope_rtol, curv_rtol),
    )
