r"""Nonlinear conjugate gradient (Polak-Ribiere+) with restarts and a strong-Wolfe line search."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdkit.optimizers._registry import register
from gdkit.optimizers.wolfe import scale_by_wolfe_linesearch

Scalar = float | jax.Array


class InitialStepState(NamedTuple):
    """Counter, the last value of f and the last decrease of f (0 before the first)."""

    count: jax.Array
    value: jax.Array
    drop: jax.Array


def scale_by_initial_step() -> optax.GradientTransformationExtraArgs:
    r"""Scales the search direction `d` so that the line search's first trial step (factor 1)
    is Nocedal and Wright's initial step (section 3.5, eq. 3.60, with scipy's safeguards).

    .. math:: d_0 \leftarrow \frac{d_0}{\|g_0\|}, \qquad
      d_k \leftarrow \min\left(1, \frac{2.02\, (f_k - f_{k-1})}{g_k^\top d_k}\right) d_k

    The first trial step has length :math:`\|d_0\| / \|g_0\|` (1 along :math:`-g_0`);
    later ones interpolate a quadratic through :math:`f_{k-1}`, :math:`f_k` and the slope
    :math:`g_k^\top d_k`, and never exceed `d` itself. After a step that did not lower f (the
    line search took none: f has reached its rounding) the last decrease stands in for
    :math:`f_{k-1} - f_k`, so the trial keeps the scale of the last steps; without one (or
    with an ascent direction) the first rule applies. `update` needs ``value`` and ``grad``
    (the line search's).
    """

    def init_fn(params) -> InitialStepState:
        dtype = jnp.real(jax.tree.leaves(params)[0]).dtype
        zero = jnp.zeros((), dtype)
        return InitialStepState(jnp.zeros((), jnp.int32), zero, zero)

    def update_fn(updates, state, params=None, *, value=None, grad=None, **extra):
        del params, extra
        if value is None or grad is None:
            raise ValueError("ncg needs value and grad: call opt.update(..., value=, grad=, ...)")
        slope = optax.tree.real(optax.tree.vdot(grad, updates))
        neg = jnp.where(slope < 0, slope, -1.0)
        value = jnp.asarray(value, state.value.dtype)
        drop = jnp.where(state.count > 0, state.value - value, 0.0)
        drop = jnp.where(drop > 0, drop, state.drop)  # no decrease: the last one
        ratio = jnp.minimum(1.01 * 2.0 * drop / -neg, 1.0)
        gnorm = optax.tree.norm(grad)
        first = 1.0 / jnp.where(gnorm > 0, gnorm, 1.0)
        usable = (state.count > 0) & (slope < 0) & (ratio > 0) & jnp.isfinite(ratio)
        scale = jnp.where(usable, ratio, first)
        new_updates = jax.tree.map(lambda u: (scale * u).astype(u.dtype), updates)
        new_state = InitialStepState(state.count + 1, value, drop)
        return new_updates, new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
    "nonlinear conjugate gradient (Polak-Ribiere+, restarts) + More-Thuente line search",
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
    ``curv_rtol`` (0.1: near-exact searches keep the directions conjugate), found by Moré
    and Thuente's search (`gdkit.optimizers.wolfe`; it never increases f). Its first
    trial step is Nocedal and Wright's (see `scale_by_initial_step`): of length
    :math:`\alpha_t` (``learning_rate``) along :math:`-g_0` at the first step, then from a
    quadratic through the last two values of f, at most :math:`\alpha_t p_t`. Needs
    ``value``, ``grad``, ``value_fn`` in `update`.

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
      Nocedal and Wright, `Numerical Optimization`, 2nd ed., 2006 (sections 3.5 and 5.2)
    """
    return optax.chain(
        scale_by_ncg(restart_every),
        optax.scale_by_learning_rate(learning_rate),
        scale_by_initial_step(),
        scale_by_wolfe_linesearch(max_linesearch_steps, slope_rtol, curv_rtol),
    )
