r"""Backtracking (Armijo) line search, and gradient descent that uses it.

The line search runs inside `jax.lax.while_loop`, so it jits, vmaps (each lane stops on its
own) and takes traced hyperparameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdkit.optimizers._registry import register

Scalar = float | jax.Array


class ArmijoState(NamedTuple):
    """Diagnostics of the last search: accepted step factor, function evaluations used."""

    step: jax.Array
    num_evals: jax.Array


def require_value_fn(name: str, value_fn: Callable | None) -> None:
    """Raises a ValueError explaining the extra arguments `name` needs."""
    if value_fn is None:
        raise ValueError(
            f"{name} needs the objective: call opt.update(grad, state, params, value=f(params), "
            "grad=grad, value_fn=f)"
        )


def value_and_grad_or_given(value_fn, params, value, grad, **fn_kwargs):
    """`(value, grad)` as given, computing whichever is missing with `value_fn`."""
    if value is None or grad is None:
        v, g = jax.value_and_grad(value_fn)(params, **fn_kwargs)
        value = v if value is None else value
        grad = g if grad is None else grad
    return value, grad


def scale_by_armijo_backtracking(
    max_linesearch_steps: int = 30,
    slope_rtol: Scalar = 1e-4,
    decrease_factor: Scalar = 0.5,
) -> optax.GradientTransformationExtraArgs:
    r"""Scales the update `u` by the first :math:`\eta \in \{1, \tau, \tau^2, \dots\}` with

    .. math:: f(x + \eta u) \le f(x) + c\, \eta \langle \nabla f(x), u \rangle

    (Armijo's sufficient decrease; :math:`c` = ``slope_rtol``, :math:`\tau` =
    ``decrease_factor``). Every search starts again from :math:`\eta = 1`, so the incoming
    update (e.g. :math:`-\alpha g` or a Newton step) is the largest step tried. If no factor
    passes within ``max_linesearch_steps`` evaluations, the last one is kept when it lowers
    `f`, and no step is taken otherwise.

    `update` needs ``value_fn`` (and uses ``value``/``grad`` when given); other keyword
    arguments are passed on to ``value_fn``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit.optimizers import scale_by_armijo_backtracking
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optax.chain(optax.sgd(10.0), scale_by_armijo_backtracking())
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> v, g = jax.value_and_grad(f)(x)
      >>> u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
      >>> print(f(x + u) < f(x))
      True

    References:
      Armijo, `Minimization of functions having Lipschitz continuous first partial derivatives
      <https://doi.org/10.2140/pjm.1966.16.1>`_, 1966
    """

    def init_fn(params) -> ArmijoState:
        dtype = jnp.real(jax.tree.leaves(params)[0]).dtype
        return ArmijoState(jnp.ones((), dtype), jnp.zeros((), jnp.int32))

    def update_fn(updates, state, params, *, value=None, grad=None, value_fn=None, **kwargs):
        require_value_fn("the Armijo line search", value_fn)
        value, grad = value_and_grad_or_given(value_fn, params, value, grad, **kwargs)
        dtype = state.step.dtype
        slope = optax.tree.real(optax.tree.vdot(updates, grad))

        def trial(eta):
            return value_fn(optax.tree.add_scale(params, eta, updates), **kwargs).astype(dtype)

        def armijo(eta, new_value):
            return new_value <= value + slope_rtol * eta * slope

        def cond(carry):
            eta, new_value, i = carry
            return ~armijo(eta, new_value) & (i < max_linesearch_steps)

        def body(carry):
            eta, _, i = carry
            eta = (eta * decrease_factor).astype(dtype)
            return eta, trial(eta), i + 1

        one = jnp.ones((), dtype)
        eta, new_value, evals = jax.lax.while_loop(cond, body, (one, trial(one), 1))
        ok = (armijo(eta, new_value) | (new_value < value)) & jnp.isfinite(new_value)
        eta = jnp.where(ok & (slope < 0), eta, jnp.zeros_like(eta))
        return optax.tree.scale(eta, updates), ArmijoState(eta, jnp.asarray(evals, jnp.int32))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@register(
    "gd_linesearch", "gradient descent with backtracking (Armijo) line search", kind="line_search"
)
def gd_linesearch(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    slope_rtol: Scalar = 1e-4,
    decrease_factor: Scalar = 0.5,
    max_linesearch_steps: int = 30,
) -> optax.GradientTransformationExtraArgs:
    r"""Gradient descent whose step is found by backtracking from ``learning_rate``.

    .. math::
      u_t = -\eta_t \alpha_t g_t, \quad \eta_t = \max\{\tau^k :
      f(x_t - \tau^k \alpha_t g_t) \le f(x_t) - c\, \tau^k \alpha_t \|g_t\|^2\}

    with :math:`c` = ``slope_rtol`` and :math:`\tau` = ``decrease_factor`` (see
    `scale_by_armijo_backtracking`). Needs ``value_fn`` (and ``value``, ``grad``) in `update`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.gd_linesearch(learning_rate=1.0)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(3):
      ...   v, g = jax.value_and_grad(f)(x)
      ...   u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.2f}")
      0.00

    References:
      Nocedal and Wright, `Numerical Optimization`, 2nd ed., Springer, 2006 (Algorithm 3.1)
    """
    return optax.chain(
        optax.scale_by_learning_rate(learning_rate),
        scale_by_armijo_backtracking(max_linesearch_steps, slope_rtol, decrease_factor),
    )
