r"""Backtracking (Armijo) line search, gradient descent that uses it, and what line searches
leave for the next step.

The line search runs inside `jax.lax.while_loop`, so it jits, vmaps (each lane stops on its
own) and takes traced hyperparameters.

**Reuse.** A line search ends having evaluated f (the zoom search also grad f) at the point
it accepts, which is where the next step starts. Both line-search states here keep those
values (`cached_value_and_grad` finds them in any optimizer's state), so a caller, the sweep
engine included, can take f and grad f from the state instead of evaluating them again.

**Cost.** Every transformation that evaluates the objective itself keeps cumulative counts
in its state (`Evals`: f, grad f, Hessians, Jacobians of the residuals); `evaluations` sums
them over an optimizer's state.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdkit.optimizers._registry import register

Scalar = float | jax.Array


class Evals(NamedTuple):
    """Evaluations a transformation made itself, cumulative over its updates (int32)."""

    f: jax.Array
    grad: jax.Array
    hess: jax.Array
    jac: jax.Array  # Jacobians of the residuals (least-squares methods)

    @classmethod
    def zero(cls) -> Evals:
        z = jnp.zeros((), jnp.int32)
        return cls(z, z, z, z)

    def add(self, f=0, grad=0, hess=0, jac=0) -> Evals:
        more = (f, grad, hess, jac)
        return Evals(*(a + jnp.asarray(b, jnp.int32) for a, b in zip(self, more, strict=True)))


def _is_evals(node) -> bool:
    return isinstance(node, Evals)


def evaluations(state) -> dict[str, jax.Array] | None:
    """The evaluations an optimizer made itself, summed over every `Evals` in its state
    ({"f", "grad", "hess", "jac"} -> int32), or None when it keeps no counts (first-order
    methods evaluate nothing but the gradient they are given)."""
    found = [n for n in jax.tree.leaves(state, is_leaf=_is_evals) if _is_evals(n)]
    if not found:
        return None
    return {k: functools.reduce(jnp.add, [getattr(e, k) for e in found]) for k in Evals._fields}


def keeps_evaluations(state) -> bool:
    """Whether an optimizer's state (or its shapes) holds `Evals` counts."""
    return any(_is_evals(n) for n in jax.tree.leaves(state, is_leaf=_is_evals))


class ArmijoState(NamedTuple):
    """Diagnostics of the last search (accepted step factor, function evaluations used), f at
    the accepted point (where the next step starts; inf before the first search) and the
    cumulative evaluations."""

    step: jax.Array
    num_evals: jax.Array
    value: jax.Array
    evals: Evals

    def cached(self):
        """(f, None) at the point the last search accepted (it evaluates no gradient)."""
        return self.value, None

    def filled(self, value, grad) -> ArmijoState:
        del grad
        return self._replace(value=jnp.asarray(value, self.value.dtype))


class ZoomState(NamedTuple):
    """optax's zoom line-search state and the cumulative evaluations (f and grad f)."""

    inner: optax.ScaleByZoomLinesearchState
    evals: Evals

    def cached(self):
        """(f, grad f) at the point the last search accepted."""
        return self.inner.value, self.inner.grad

    def filled(self, value, grad) -> ZoomState:
        value = jnp.asarray(value, self.inner.value.dtype)
        return self._replace(inner=self.inner._replace(value=value, grad=grad))


class WolfeState(NamedTuple):
    """`gdkit.optimizers.wolfe`'s state: the accepted step factor (0: no step), the trials of
    the last search, f and grad f at the accepted point, and the cumulative evaluations."""

    step: jax.Array
    num_evals: jax.Array
    value: jax.Array
    grad: optax.Updates
    evals: Evals

    def cached(self):
        """(f, grad f) at the point the last search accepted."""
        return self.value, self.grad

    def filled(self, value, grad) -> WolfeState:
        return self._replace(value=jnp.asarray(value, self.value.dtype), grad=grad)


_CACHES = (ArmijoState, ZoomState, WolfeState)


def _line_search_state(state):
    """The (last) line-search state in an optimizer's state, or None."""
    found = [n for n in jax.tree.leaves(state, is_leaf=_is_cache) if _is_cache(n)]
    return found[-1] if found else None


def _is_cache(node) -> bool:
    return isinstance(node, _CACHES)


def cached_value_and_grad(state):
    """(f, grad f or None) at the point the optimizer's line search accepted last, read from
    its state, or None when the optimizer has no line search. Valid as the values at the
    next params only when the line search is the last transformation of the chain (it is in
    every registered optimizer) and `value_fn` was the objective itself."""
    ls = _line_search_state(state)
    return None if ls is None else ls.cached()


def with_cached_value_and_grad(state, value, grad):
    """`state` with its line search's cached f (and grad f) set, e.g. to f(x0) before the
    first step, so that every step can read them from the state."""
    ls = _line_search_state(state)
    return jax.tree.map(lambda n: n.filled(value, grad) if n is ls else n, state, is_leaf=_is_cache)


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
        inf = jnp.full((), jnp.inf, dtype)
        return ArmijoState(jnp.ones((), dtype), jnp.zeros((), jnp.int32), inf, Evals.zero())

    def update_fn(updates, state, params, *, value=None, grad=None, value_fn=None, **kwargs):
        require_value_fn("the Armijo line search", value_fn)
        own = 0 if value is not None and grad is not None else 1  # evaluated here
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
        take = ok & (slope < 0)
        eta = jnp.where(take, eta, jnp.zeros_like(eta))
        evals = jnp.asarray(evals, jnp.int32)
        new_state = ArmijoState(
            eta,
            evals,
            jnp.where(take, new_value, jnp.asarray(value, dtype)),
            state.evals.add(f=evals + own, grad=own),
        )
        return optax.tree.scale(eta, updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def scale_by_zoom_linesearch(
    max_linesearch_steps: int,
    slope_rtol: Scalar = 1e-4,
    curv_rtol: Scalar = 0.9,
    initial_guess_strategy: str = "one",
) -> optax.GradientTransformationExtraArgs:
    """optax.scale_by_zoom_linesearch (strong Wolfe conditions), its state wrapped in a
    `ZoomState` that also counts its evaluations (one f and one grad f per trial)."""
    inner = optax.scale_by_zoom_linesearch(
        max_linesearch_steps,
        slope_rtol=slope_rtol,
        curv_rtol=curv_rtol,
        initial_guess_strategy=initial_guess_strategy,
    )

    def init_fn(params) -> ZoomState:
        return ZoomState(inner.init(params), Evals.zero())

    def update_fn(updates, state, params, **extra):
        updates, new = inner.update(updates, state.inner, params, **extra)
        n = new.info.num_linesearch_steps
        return updates, ZoomState(new, state.evals.add(f=n, grad=n))

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
