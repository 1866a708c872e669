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
    """Step counter; the step bound Delta (the trust-region radius, in the scaled norm
    :math:`\\|D s\\|`); the damping lambda and gain ratio rho (actual / predicted decrease; the
    step was taken when rho > `ACCEPT`) of the last step; the parameter scaling D (the largest
    column norms of J seen so far, as MINPACK's ``lmder``) and the evaluations so far (one
    Jacobian and one trial f per update)."""

    count: jax.Array
    step_bound: jax.Array
    damping: jax.Array
    gain_ratio: jax.Array
    col_scale: jax.Array
    evals: Evals


ACCEPT = 1e-4  # smallest gain ratio of an accepted step (MINPACK's)
# Delta stays within [eps, 1/eps] |D x| (|D x| taken as 1 when x = 0): a shorter step cannot
# change x in floating point, and the floor keeps Delta from underflowing to 0 (then lambda would
# be 0/0) when steps are refused or vanish at the solution.
SECULAR_ITERATIONS = 30  # Newton iterations for lambda at most (MINPACK's lmpar: 10)


def _damping_for_step_bound(
    sv: jax.Array, num: jax.Array, keep: jax.Array, delta: jax.Array
) -> jax.Array:
    r"""The damping :math:`\lambda \ge 0` whose step :math:`w_i = -c_i / (s_i^2 + \lambda)`
    (in the basis of the right singular vectors, so :math:`\|w\| = \|D s\|`) has length within
    10% of `delta`, or 0 when the Gauss-Newton step (:math:`\lambda = 0`) is shorter than
    1.1 `delta`: MINPACK's ``lmpar``, with the SVD in place of the QR factors.

    Newton's method on :math:`1/\|w(\lambda)\| = 1/\Delta` (Moré, 1978), started from 0:
    :math:`1/\|w\|` is concave and increasing in :math:`\lambda`, so its tangents lie above it
    and the iterates rise monotonically to the root without overshooting it, with
    :math:`\|w\|^2 = \sum c_i^2 / (s_i^2 + \lambda)^2` and
    :math:`d\|w\|/d\lambda = -\sum (w_i^2 / (s_i^2 + \lambda)) / \|w\|` in O(n) per iteration.
    Singular values below the rank cut-off (`keep` False) are left out: no step along them.
    """
    s2 = jnp.where(keep, sv * sv, 1.0)
    c = jnp.where(keep, num, 0.0)

    def newton(_, lam):
        w = c / (s2 + lam)
        norm = jnp.sqrt(jnp.sum(w * w))
        slope = jnp.sum(w * w / (s2 + lam))  # -|w| d|w|/dlambda
        ok = slope > 0
        step = (norm - delta) / delta * norm * norm / jnp.where(ok, slope, 1.0)
        done = (jnp.abs(norm - delta) <= 0.1 * delta) | ~ok
        new = jnp.maximum(lam + step, 0.0)
        return jnp.where(done | ~jnp.isfinite(new), lam, new)

    return jax.lax.fori_loop(0, SECULAR_ITERATIONS, newton, jnp.zeros_like(delta))


@register(
    "levenberg_marquardt",
    "Levenberg-Marquardt for least squares: MINPACK's trust-region form, (J'J + lambda D'D)^-1 "
    "J'r by an SVD of J D^-1; needs residuals",
    kind="second_order",
)
def levenberg_marquardt(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    step_bound: Scalar = 1.0,
) -> optax.GradientTransformationExtraArgs:
    r"""Levenberg-Marquardt in MINPACK's trust-region form (Moré's ``lmder``).

    .. math::
      s_t = -\alpha_t (J_t^\top J_t + \lambda_t D_t^\top D_t)^{-1} g_t, \qquad
      \rho_t = \frac{f(x_t) - f(x_t + s_t)}{-(g_t^\top s_t + \tfrac12 s_t^\top J_t^\top J_t
      s_t)}

    with :math:`g_t = J_t^\top r(x_t)` (the incoming update) and :math:`\alpha_t` =
    ``learning_rate`` (1: the plain method). :math:`D_t` is diagonal, MINPACK's parameter
    scaling: the largest column norms of :math:`J` seen so far. The damping is not updated
    directly: the state carries a step bound :math:`\Delta_t` (a trust-region radius) and
    :math:`\lambda_t` is the one that makes the step :math:`\|D_t s\|` about
    :math:`\Delta_t` (within 10%), or 0 when the Gauss-Newton step is already shorter
    (`_damping_for_step_bound`: Newton iterations on the secular equation, MINPACK's
    ``lmpar``). :math:`\Delta_0` = ``step_bound`` :math:`\|D_0 x_0\|` (MINPACK's ``factor``;
    ``step_bound`` when :math:`x_0 = 0`), cut to the first step's length. MINPACK's default
    factor is 100; 1 here: a first step of 100 |D x0| can jump onto a plateau it never leaves
    (BoxBOD from NIST's start 1 ends at b2 = 111, where the model no longer depends on b2, as
    scipy's ``least_squares(method="lm")`` does; the XOR network saturates its sigmoids), and
    a bound that is too short only costs a few steps, since it doubles after every good one.
    After each trial:

    - :math:`\rho \le 1/4`: :math:`\Delta \leftarrow \mu \min(\Delta, 10 \|D s\|)`, where
      :math:`\mu` is the minimiser of the quadratic through f along the step (1/2 when f did
      not rise), kept within [1/10, 1/2] (1/10 when f rose 100-fold or more);
    - :math:`\rho \ge 3/4` or :math:`\lambda = 0`: :math:`\Delta \leftarrow 2 \|D s\|`;
    - otherwise :math:`\Delta` stays.

    The step is taken when :math:`\rho > 10^{-4}` (or when the predicted decrease is below
    the rounding level of f and f does not measurably rise: at the solution, where
    :math:`\rho` is noise, counted as :math:`\rho = 1`). :math:`\Delta` stays within
    :math:`[\epsilon_{mach}, 1/\epsilon_{mach}] \|D x\|`, so the damping is bounded,
    :math:`0 \le \lambda \le \|D^{-1} g\| / (0.9 \Delta)` (MINPACK's bound), and never
    becomes 0/0 from an underflowed bound.
    :math:`J^\top J` is never formed: the step solves the linear least-squares problem
    :math:`\min \|J s + r\|^2 + \lambda \|D s\|^2` through the SVD of :math:`J D^{-1}`, so the
    condition number of :math:`J` is not squared, every :math:`\lambda` costs O(n), and the
    predicted decrease :math:`\tfrac12 \|J s\|^2 + \lambda \|D s\|^2` (for
    :math:`\alpha_t = 1`) has no cancellation.

    **Rank-deficient problems**: singular values of :math:`J D^{-1}` below
    :math:`\epsilon_{mach} \max(m, n) \max S` are dropped, as in `scale_by_gauss_newton`:
    there is no step along their directions, and the Gauss-Newton step (:math:`\lambda = 0`)
    is the one of least :math:`\|D s\|`, so parameters along a flat direction stay where
    they are. A problem whose Jacobian vanishes (a plateau) takes no steps at all.

    One `update` is one iteration (one Jacobian, one trial evaluation; a refused step costs
    an iteration and leaves x where it was); everything is data in the state, with no Python
    branching. ``step_bound`` and ``learning_rate`` may be traced (swept). :math:`\Delta`
    bounds the Levenberg-Marquardt step before :math:`\alpha_t` scales it. Needs
    ``value_fn`` and ``residual_fn`` in `update` with
    ``value_fn == 0.5 * sum(residual_fn**2)``.

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
      Moré, `The Levenberg-Marquardt algorithm: implementation and theory
      <https://doi.org/10.1007/BFb0067700>`_, 1978; Moré, Garbow and Hillstrom, `User guide
      for MINPACK-1 <https://doi.org/10.2172/6997568>`_, 1980 (``lmder``, ``lmpar``);
      Marquardt, `An algorithm for least-squares estimation of nonlinear parameters
      <https://doi.org/10.1137/0111030>`_, 1963
    """

    def init_fn(params) -> LevenbergMarquardtState:
        dtype = jnp.real(jax.tree.leaves(params)[0]).dtype
        zero = jnp.zeros((), dtype)
        size = ravel_pytree(params)[0].size
        return LevenbergMarquardtState(
            jnp.zeros((), jnp.int32),
            zero,
            zero,
            zero,
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
        dtype = state.step_bound.dtype
        eps, tiny = jnp.finfo(dtype).eps, jnp.finfo(dtype).tiny
        jac, r = _jacobian(residual_fn, unravel, x)
        jac, r = jac.astype(dtype), r.astype(dtype)
        first = state.count == 0
        col = jnp.maximum(state.col_scale, jnp.linalg.norm(jac, axis=0))
        col = jnp.where(col > 0, col, 1.0)

        def bounded(delta):  # Delta within [eps, 1/eps] |D x|
            size = jnp.linalg.norm(col * x.astype(dtype))
            size = jnp.where(size > 0, size, 1.0)
            return jnp.clip(delta, eps * size, size / eps)

        start = step_bound * jnp.linalg.norm(col * x.astype(dtype))
        delta = jnp.where(first, jnp.where(start > 0, start, step_bound), state.step_bound)
        delta = bounded(delta.astype(dtype))
        # (J'J + lambda D'D) s = -g as min |J D^-1 z + r|^2 + lambda |z|^2, z = D s, by the
        # SVD of J D^-1: the condition number of J is never squared.
        u_, sv, vt = _linalg.svd(jac / col)  # one matrix per LAPACK call: see _linalg
        keep = _rank_cutoff(jac, sv)
        num = sv * (u_.T @ r) + vt @ (_extra_rhs(g, jac, r) / col)
        num = jnp.where(keep, num, 0.0)
        lam = _damping_for_step_bound(sv, num, keep, delta)
        w = -num / jnp.where(keep, sv * sv + lam, 1.0)
        w = jnp.where(jnp.isfinite(w), w, 0.0)
        s_lm = (vt.T @ w) / col
        pnorm = jnp.sqrt(jnp.sum(w * w))  # |D s_lm|
        delta = jnp.where(first, jnp.minimum(delta, pnorm), delta)  # lmder's first bound
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        s = (lr * s_lm).astype(g.dtype)
        own = 1 if value is None else 0  # f at params, evaluated here
        if value is None:
            value = value_fn(params, **extra)
        value = jnp.asarray(value, dtype)
        new_value = jnp.asarray(value_fn(unravel(x + s), **extra), dtype)
        # predicted decrease of the model f + g's + s'J'Js/2 for s = lr s_lm, without
        # cancellation: g's_lm = -(|J s_lm|^2 + lambda |D s_lm|^2) for the solved step.
        a = jnp.sum((jac @ s_lm) ** 2)
        slope = -lr * (a + lam * pnorm * pnorm)  # g's, the directional derivative
        predicted = -slope - 0.5 * lr * lr * a
        actual = value - new_value
        rho = jnp.where(predicted > 0, actual / jnp.where(predicted > 0, predicted, 1.0), -1.0)
        # Below rounding level (at the solution) the gain ratio is noise: take the step unless
        # it makes f measurably worse, and count it as a perfect model (rho = 1). f's rounding
        # error is about eps |r| |model|, and |J diag(x)| estimates the model's size.
        size = jnp.linalg.norm(r) * jnp.linalg.norm(jac * x.astype(dtype))
        level = 10.0 * eps * jnp.maximum(jnp.abs(value) + size, tiny)
        rounding = (predicted <= level) & (new_value <= value + level)
        rho = jnp.where(rounding, 1.0, rho)
        finite = jnp.isfinite(new_value)
        rho = jnp.where(finite, rho, -1.0).astype(dtype)
        ok = rho > ACCEPT
        # MINPACK's update of the step bound: shrink by the minimiser of the quadratic
        # through f(x), its slope and f(x + s) (1/2 if f fell), within [1/10, 1/2].
        rise = new_value - value - slope
        mu = jnp.where(actual >= 0, 0.5, -0.5 * slope / jnp.where(rise > 0, rise, 1.0))
        blowup = ~finite | (new_value >= 100.0 * value) | ~(mu >= 0.1)
        mu = jnp.minimum(jnp.where(blowup & (actual < 0), 0.1, mu), 0.5)
        shrunk = mu * jnp.minimum(delta, 10.0 * pnorm)
        grown = 2.0 * pnorm
        new_delta = jnp.where(
            rho <= 0.25, shrunk, jnp.where((lam == 0) | (rho >= 0.75), grown, delta)
        )
        u = jnp.where(ok, s, jnp.zeros_like(s))
        new_state = LevenbergMarquardtState(
            state.count + 1,
            bounded(new_delta).astype(dtype),
            lam.astype(dtype),
            rho,
            col.astype(dtype),
            state.evals.add(f=1 + own, jac=1),
        )
        return unravel(u), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


gauss_newton.needs_residual_fn = True  # type: ignore[attr-defined]
levenberg_marquardt.needs_residual_fn = True  # type: ignore[attr-defined]
