r"""Nonlinear conjugate gradient (Polak-Ribiere+) with restarts and a strong-Wolfe line search."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdkit.optimizers._registry import register
from gdkit.optimizers.second_order import _zoom

Scalar = float | jax.Array


class ScaleByNCGState(NamedTuple):
    """Counter, last updates (gradient) and last search direction (gradient convention)."""

    count: jax.Array
    updates: optax.Updates
    direction: optax.Updates


def scale_by_ncg(restart_every: int | None = None) -> optax.GradientTransformation:
    r"""Maps the update `g` to the conjugate direction :math:`p_t = g_t + \beta_t p_{t-1}`.

    .. math:: \beta_t = \max\left(0, \frac{g_t^\top (g_t - g_{t-1})}{\|g_{t-1}\|^2}\right)

    (Polak-Ribiere+). It restarts (:math:`\beta_t = 0`) every ``restart_every`` steps (the
    number of parameters when None) and whenever :math:`p_t` is not a descent direction
    (:math:`g_t^\top p_t \le 0`). The step is :math:`-p_t` times what follows in the chain.
    """

    def init_fn(params) -> ScaleByNCGState:
        zeros = optax.tree.zeros_like(params)
        return ScaleByNCGState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        n = restart_every or sum(math.prod(jnp.shape(u)) for u in jax.tree.leaves(updates))
        g, g_prev = updates, state.updates
        gg_prev = optax.tree.real(optax.tree.vdot(g_prev, g_prev))
        num = optax.tree.real(optax.tree.vdot(g, optax.tree.sub(g, g_prev)))
        beta = jnp.maximum(num / jnp.where(gg_prev > 0, gg_prev, 1.0), 0.0)
        restart = (state.count % n == 0) | ~(gg_prev > 0) | ~jnp.isfinite(beta)
        beta = jnp.where(restart, 0.0, beta)
        p = optax.tree.add_scale(g, beta, state.direction)
        descent = optax.tree.real(optax.tree.vdot(g, p)) > 0
        p = jax.tree.map(lambda pi, gi: jnp.where(descent, pi, gi), p, g)
        return p, ScaleByNCGState(state.count + 1, g, p)

    return optax.GradientTransformation(init_fn, update_fn)


@register(
    "ncg",
    "nonlinear conjugate gradient (Polak-Ribiere+, restarts) + zoom line search",
    kind="second_order",
)
def ncg(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    slope_rtol: Scalar = 1e-4,
    curv_rtol: Scalar = 0.1,
    max_linesearch_steps: int = 30,
    restart_every: int | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Nonlinear conjugate gradient, Polak-Ribiere+ (see `scale_by_ncg`).

    .. math:: u_t = -\eta_t \alpha_t p_t, \qquad p_t = g_t + \beta_t p_{t-1}

    :math:`\eta_t` satisfies the strong Wolfe conditions with ``slope_rtol`` and
    ``curv_rtol`` (0.1, as usual for CG) found by optax.scale_by_zoom_linesearch, whose first
    guess is the previous step. Needs ``value``, ``grad``, ``value_fn`` in `update`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: (x[0] - 1.0) ** 2 + 10.0 * (x[1] + 2.0) ** 2
      >>> opt = optimizers.ncg()
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
      Polak and Ribiere, `Note sur la convergence de methodes de directions conjuguees`, 1969;
      Nocedal and Wright, `Numerical Optimization`, 2nd ed., 2006 (section 5.2)
    """
    return optax.chain(
        scale_by_ncg(restart_every),
        optax.scale_by_learning_rate(learning_rate),
        _zoom(max_linesearch_steps, slope_rtol, curv_rtol, initial_guess_strategy="keep"),
    )
