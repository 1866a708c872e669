r"""Least-squares methods: Gauss-Newton and Levenberg-Marquardt.

They minimise :math:`f(x) = \tfrac12 \|r(x)\|^2` using the Jacobian :math:`J` of the residual
:math:`r`, which they get as an extra keyword of `update`:

  ``update(updates, state, params, value=, grad=, value_fn=f, residual_fn=r)``

with ``value_fn(params) == 0.5 * sum(residual_fn(params) ** 2)``, the convention of
`Objective.residual_fn` (so `value_fn` is the objective they accept or reject steps by). Only
these optimizers take ``residual_fn``; `needs_residual_fn` tells a caller (the sweep engine)
when to pass it. The incoming `updates` (the gradient, with any weight-decay term or gradient
noise) are the right-hand side, so :math:`J^\top J` only replaces the Hessian, as in Newton.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

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
)

Scalar = float | jax.Array
RESIDUAL_OPTIMIZERS = ("gauss_newton", "levenberg_marquardt")


def needs_residual_fn(optimizer: Any) -> bool:
    """Whether `optimizer` (a registered name, or a factory) needs ``residual_fn`` in `update`.

    Example:
      >>> from gdkit import optimizers
      >>> optimizers.needs_residual_fn("levenberg_marquardt"), optimizers.needs_residual_fn("gd")
      (True, False)
    """
    if isinstance(optimizer, str):
        return optimizer in RESIDUAL_OPTIMIZERS
    return bool(getattr(optimizer, "needs_residual_fn", False))


def require_residual_fn(name: str, residual_fn: Callable | None) -> None:
    """Raises a ValueError explaining the residual `name` needs."""
    if residual_fn is None:
        raise ValueError(
            f"{name} needs the residuals: call opt.update(grad, state, params, value=f(params), "
            "grad=grad, value_fn=f, residual_fn=r) with f(x) = 0.5 * sum(r(x)**2), e.g. "
            "r = objective.residual_fn of a data objective (linear_regression, curve_fit, mlp)"
        )


def _jacobian(residual_fn, unravel, x):
    """(J = dr/dx [m, d], r [m]), forward mode when m >= d (tall), reverse mode otherwise."""

    def fn(z):
        r = jnp.ravel(residual_fn(unravel(z)))
        return r, r

    m = jax.eval_shape(fn, x)[0].size
    return (jax.jacfwd if m >= x.size else jax.jacrev)(fn, has_aux=True)(x)


def _rank_cutoff(jac: jax.Array, s: jax.Array) -> jax.Array:
    """Singular values kept by a least-squares solve: s > eps max(m, n) max(s) (LAPACK's and
    numpy.linalg.lstsq's default cut-off)."""
    return s > jnp.finfo(s.dtype).eps * max(jac.shape) * jnp.max(s)


def _extra_rhs(updates: jax.Array, jac: jax.Array, r: jax.Array) -> jax.Array:
    """`updates` - J^T r: the part of the right-hand side that is not the least-squares gradient
    (a weight-decay term, gradient noise, clipping), or exactly 0 when it is within the
    rounding error of J^T r (`updates` is the gradient): the solves divide it by the squared
    singular values, which would blow rounding noise up by cond(J)^2."""
    extra = updates - jac.T @ r
    eps = jnp.finfo(r.dtype).eps
    noise = 16.0 * eps * max(jac.shape) * jnp.linalg.norm(jac) * jnp.linalg.norm(r)
    return jnp.where(jnp.linalg.norm(extra) > noise, extra, 0.0)


def scale_by_gauss_newton(damping: Scalar = 0.0) -> optax.GradientTransformationExtraArgs:
    r"""Maps the update `g` to the Gauss-Newton direction, a least-squares solve of
    :math:`J d = r` (:math:`d = J^{+} r` when ``damping`` is 0).

    From the SVD :math:`J = U S V^\top`,

    .. math:: d = V \frac{S}{S^2 + \lambda} U^\top r + V \frac{1}{S^2 + \lambda} V^\top
      (g - J^\top r)

    keeping only singular values above :math:`\epsilon_{mach} \max(m, n) \max S` (the
    cut-off of LAPACK's and numpy's ``lstsq``). The residuals enter directly, so the
    condition number of :math:`J` is not squared; the second term (0 unless `g` differs from
    :math:`J^\top r` by more than rounding: a weight-decay term, gradient noise) keeps `g` the
    right-hand side, as in Newton (see `_extra_rhs`).

    **Rank-deficient problems**: directions whose singular values are dropped get no step,
    so `d` is the minimum-norm step in the retained subspace (the pseudo-inverse solution),
    and parameters along a flat direction stay where they are. A non-finite result falls
    back to `g`. Needs ``residual_fn`` in `update`.
    """

    def init_fn(params) -> Evals:
        del params
        return Evals.zero()  # the Jacobians evaluated so far

    def update_fn(updates, state, params, *, residual_fn=None, **extra):
        del extra
        require_residual_fn("gauss_newton", residual_fn)
        x, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(updates)
        jac, r = _jacobian(residual_fn, unravel, x)
        u, s, vt = _linalg.svd(jac)  # one matrix per LAPACK call: see _linalg
        keep = _rank_cutoff(jac, s)
        den = jnp.where(keep, s * s + damping, 1.0)
        d = vt.T @ (jnp.where(keep, s / den, 0.0) * (u.T @ r))
        d = d + vt.T @ (jnp.where(keep, 1.0 / den, 0.0) * (vt @ _extra_rhs(g, jac, r)))
        d = jnp.where(jnp.all(jnp.isfinite(d)), d, g)
        return unravel(d.astype(g.dtype)), state.add(jac=1)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _without_residual(inner: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """`inner` with ``residual_fn`` dropped from its extra arguments (a line search passes the
    others on to ``value_fn``, which does not take it)."""
    inner = optax.with_extra_args_support(inner)

    def update_fn(updates, state, params=None, *, residual_fn=None, **extra):
        del residual_fn
        return inner.update(updates, state, params, **extra)

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


@register(
    "gauss_newton",
    "Gauss-Newton for least squares: (J'J)^+ J'r + backtracking; needs residuals",
    kind="second_order",
)
def gauss_newton(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    damping: Scalar = 0.0,
    slope_rtol: Scalar = 1e-4,
    decrease_factor: Scalar = 0.5,
    max_linesearch_steps: int = 30,
) -> optax.GradientTransformationExtraArgs:
    r"""Damped Gauss-Newton: the Newton step with :math:`J^\top J` for the Hessian.

    .. math:: u_t = -\eta_t \alpha_t (J_t^\top J_t + \lambda I)^{+} g_t, \qquad
      g_t = J_t^\top r(x_t)

    with :math:`\lambda` = ``damping`` (0: pure Gauss-Newton) and :math:`\eta_t \le 1` from
    Armijo backtracking (see `scale_by_armijo_backtracking`): a full step that does not
    decrease f enough is halved (``decrease_factor``) up to ``max_linesearch_steps`` times, and
    no step is taken when none lowers f. The direction is a least-squares solve with the
    residuals (`scale_by_gauss_newton`: eps max(m, n) rank cut-off, minimum-norm step on
    rank-deficient problems). A linear least-squares problem is solved in one step.
    Needs ``value_fn`` and ``residual_fn`` in `update`, with
    ``value_fn == 0.5 * sum(residual_fn ** 2)``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> A, y = jnp.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), jnp.array([1.0, 3.0, 5.0])
      >>> r = lambda x: A @ x - y
      >>> f = lambda x: 0.5 * jnp.sum(r(x) ** 2)
      >>> opt = optimizers.gauss_newton()
      >>> x = jnp.zeros(2); state = opt.init(x)
      >>> v, g = jax.value_and_grad(f)(x)
      >>> u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f, residual_fn=r)
      >>> print(jnp.round(optax.apply_updates(x, u), 5))
      [1. 2.]

    References:
      Nocedal and Wright, `Numerical Optimization`, 2nd ed., 2006 (section 10.3)
    """
    return optax.chain(
        scale_by_gauss_newton(damping),
        optax.scale_by_learning_rate(learning_rate),
        _without_residual(
            scale_by_armijo_backtracking(max_linesearch_steps, slope_rtol, decrease_factor)
        ),
    )


class LevenbergMarquardtState(NamedTuple):
    """Step counter, the damping lambda, its growth factor nu, the last gain ratio rho
    (actual / predicted decrease; the step was taken when rho > `ACCEPT`), the parameter
    scaling D (the largest column norms of J seen so far, as MINPACK's ``lmder``) and the
    evaluations so far (one Jacobian and one trial f per update)."""

    count: jax.Array
    damping: jax.Array
    nu: jax.Array
    gain_ratio: jax.Array
    col_scale: jax.Array
    evals: Evals


ACCEPT = 1e-4  # smallest gain ratio of an accepted step
DAMPING_BOUNDS = (1e-16, 1e12)  # lambda, relative to the largest squared column norm of J


@register(
    "levenberg_marquardt",
    "Levenberg-Marquardt for least squares: (J'J + lambda D'D)^-1 J'r by an SVD, adaptive "
    "lambda; "
    "needs residuals",
    kind="second_order",
)
def levenberg_marquardt(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    damping: Scalar = 1e-3,
) -> optax.GradientTransformationExtraArgs:
    r"""Levenberg-Marquardt with Nielsen's damping update.

    .. math::
      s_t = -\alpha_t (J_t^\top J_t + \lambda_t D_t^\top D_t)^{-1} g_t, \qquad
      \rho_t = \frac{f(x_t) - f(x_t + s_t)}{-(g_t^\top s_t + \tfrac12 s_t^\top J_t^\top J_t
      s_t)}

    The step is taken when the gain ratio :math:`\rho_t > 10^{-4}` (or when the predicted
    decrease is below the rounding level of :math:`f` and :math:`f` does not measurably
    rise: at the solution, where :math:`\rho` is noise); then the damping shrinks,
    :math:`\lambda \leftarrow \lambda \max(1/3, 1 - (2\rho - 1)^3)`, :math:`\nu \leftarrow 2`.
    Otherwise no step is taken and it grows: :math:`\lambda \leftarrow \nu \lambda`,
    :math:`\nu \leftarrow 2 \nu`. The first damping is ``damping`` times the largest
    diagonal entry of :math:`J^\top J`; it stays within `DAMPING_BOUNDS` (1e-16 to 1e12)
    times the largest squared column norm of :math:`J`. :math:`D_t` is diagonal: MINPACK's
    parameter scaling, the largest column norms of :math:`J` seen so far, over their
    maximum (:math:`D = I` at the first step, for which the first damping is made).
    :math:`J^\top J` is never formed: the step solves the linear least-squares
    problem :math:`\min \|J s + r\|^2 + \lambda \|D s\|^2` through the SVD of
    :math:`J D^{-1}` (the augmented system :math:`[J; \sqrt\lambda D]`), so the condition
    number of :math:`J` is not squared, and the predicted decrease
    :math:`\tfrac12 \|J s\|^2 + \lambda \|D s\|^2` (for :math:`\alpha_t = 1`) has no
    cancellation. :math:`\alpha_t` = ``learning_rate`` (1: the plain
    method). One `update` is one iteration (one Jacobian, one trial evaluation); the state
    carries :math:`\lambda`, so everything is data and there is no Python branching. Needs
    ``value_fn`` and ``residual_fn`` in `update` with ``value_fn == 0.5 * sum(residual_fn**2)``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> t = jnp.linspace(0.0, 1.0, 5)
      >>> r = lambda x: x[0] * jnp.exp(x[1] * t) - 2.0 * jnp.exp(-t)
      >>> f = lambda x: 0.5 * jnp.sum(r(x) ** 2)
      >>> opt = optimizers.levenberg_marquardt()
      >>> @jax.jit
      ... def step(x, state):
      ...   v, g = jax.value_and_grad(f)(x)
      ...   u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f, residual_fn=r)
      ...   return optax.apply_updates(x, u), state
      >>> x = jnp.array([1.0, 0.0]); state = opt.init(x)
      >>> for _ in range(20):
      ...   x, state = step(x, state)
      >>> print(jnp.round(x, 4))
      [ 2. -1.]

    References:
      Madsen, Nielsen and Tingleff, `Methods for non-linear least squares problems
      <https://www2.imm.dtu.dk/pubdb/pubs/3215-full.html>`_, 2004 (Algorithm 3.16);
      Marquardt, `An algorithm for least-squares estimation of nonlinear parameters
      <https://doi.org/10.1137/0111030>`_, 1963
    """

    def init_fn(params) -> LevenbergMarquardtState:
        dtype = jnp.real(jax.tree.leaves(params)[0]).dtype
        one = jnp.ones((), dtype)
        size = ravel_pytree(params)[0].size
        return LevenbergMarquardtState(
            jnp.zeros((), jnp.int32),
            one,
            2.0 * one,
            0.0 * one,
            jnp.zeros((size,), dtype),
            Evals.zero(),
        )

    def update_fn(updates, state, params, *, value=None, grad=None, value_fn=None, **extra):
        residual_fn = extra.pop("residual_fn", None)
        require_value_fn("levenberg_marquardt", value_fn)
        require_residual_fn("levenberg_marquardt", residual_fn)
        del grad
        x, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(updates)
        dtype = state.damping.dtype
        tiny = jnp.finfo(dtype).tiny
        jac, r = _jacobian(residual_fn, unravel, x)
        jac, r = jac.astype(dtype), r.astype(dtype)
        # D: running maximum of the column norms (MINPACK), over its largest entry, so that
        # lambda is in the units of J'J. Solve (J'J + lambda D'D) s = -g as the linear least
        # squares problem [J D^-1; sqrt(lambda) I] z = -[r; 0], z = D s, by the SVD of J D^-1:
        # the condition number of J is never squared.
        col = jnp.maximum(state.col_scale, jnp.linalg.norm(jac, axis=0))
        col = jnp.where(col > 0, col, 1.0)
        top = jnp.max(col)
        # the first step is unscaled (D = I): lambda_0 = damping max diag(J'J) is Nielsen's
        # start for that; with D, a random start's first steps are refused more often.
        dvec = jnp.where(state.count == 0, 1.0, col / top)
        u_, sv, vt = _linalg.svd(jac / dvec)  # one matrix per LAPACK call: see _linalg
        keep = _rank_cutoff(jac, sv)
        lo, hi = DAMPING_BOUNDS
        lam0 = damping * jnp.maximum(jnp.max(jnp.sum(jac * jac, axis=0)), tiny)
        lam = jnp.where(state.count == 0, lam0, state.damping).astype(dtype)
        lam = jnp.clip(lam, lo * top * top, hi * top * top)
        den = jnp.where(keep, sv * sv + lam, 1.0)
        extra_rhs = vt @ (_extra_rhs(g, jac, r) / dvec)
        z = -(vt.T @ (jnp.where(keep, (sv * (u_.T @ r) + extra_rhs) / den, 0.0)))
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        s_lm = jnp.where(jnp.isfinite(z), z, 0.0) / dvec
        s = (lr * s_lm).astype(g.dtype)
        own = 1 if value is None else 0  # f at params, evaluated here
        if value is None:
            value = value_fn(params, **extra)
        new_value = value_fn(unravel(x + s), **extra)
        # predicted decrease of the model f + g's + s'J'Js/2 for s = lr s_lm, without
        # cancellation: g's_lm = -(|J s_lm|^2 + lambda |D s_lm|^2) for the solved step.
        a = jnp.sum((jac @ s_lm) ** 2)
        b = jnp.sum((dvec * s_lm) ** 2)
        predicted = lr * (a + lam * b) - 0.5 * lr * lr * a
        actual = value - new_value
        rho = jnp.where(predicted > 0, actual / jnp.where(predicted > 0, predicted, 1.0), -1.0)
        # Below rounding level (at the solution) the gain ratio is noise: take the step unless
        # it makes f measurably worse, and count it as a perfect model (rho = 1). f's rounding
        # error is about eps |r| |model|, and |J diag(x)| estimates the model's size.
        size = jnp.linalg.norm(r) * jnp.linalg.norm(jac * x.astype(dtype))
        level = 10.0 * jnp.finfo(dtype).eps * jnp.maximum(jnp.abs(value) + size, tiny)
        rounding = (predicted <= level) & (new_value <= value + level)
        rho = jnp.where(rounding, 1.0, rho)
        rho = jnp.where(jnp.isfinite(new_value), rho, -1.0).astype(dtype)
        ok = rho > ACCEPT
        shrink = jnp.maximum(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
        new_lam = jnp.where(ok, lam * shrink, lam * state.nu)
        new_lam = jnp.clip(new_lam, lo * top * top, hi * top * top)
        nu = jnp.where(ok, 2.0, jnp.minimum(2.0 * state.nu, 2.0**30)).astype(dtype)
        u = jnp.where(ok, s, jnp.zeros_like(s))
        new_state = LevenbergMarquardtState(
            state.count + 1,
            new_lam.astype(dtype),
            nu,
            rho.astype(dtype),
            col.astype(dtype),
            state.evals.add(f=1 + own, jac=1),
        )
        return unravel(u), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


gauss_newton.needs_residual_fn = True  # type: ignore[attr-defined]
levenberg_marquardt.needs_residual_fn = True  # type: ignore[attr-defined]
