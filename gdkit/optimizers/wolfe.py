r"""A strong-Wolfe line search after Moré and Thuente (MINPACK-2's dcsrch / dcstep).

Why not optax.scale_by_zoom_linesearch: its zoom rejects an interpolated step that falls in
the outer 10-20 % of the bracket and bisects instead. Nonlinear CG's first trial is often
20-80x too long (the steps of N&W eq. 3.60 follow the last decrease, not the curvature), so
the minimizer sits near the bracket's end and the zoom spent 3-7 trials per step where a
safeguarded cubic/quadratic step (dcstep) needs one or two, as scipy's CG does.

Each trial costs one f and one grad f; the search ends at a point satisfying

.. math:: f(x + \eta u) \le f(x) + c_1 \eta\, g^\top u, \qquad
  |\nabla f(x + \eta u)^\top u| \le c_2 |g^\top u|

and leaves f and grad f there in its state (`WolfeState`) for the next step. If it stops
without one (trial budget spent, interval below rounding), it takes the best trial with
sufficient decrease, or no step at all: f never increases. The trial point is built exactly
as optax.apply_updates will build the step (`_moved`), so the f it leaves is f at the very
point the caller moves to.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from gdkit.optimizers.linesearch import Evals, WolfeState

Scalar = float | jax.Array
_XTRAP_LOWER, _XTRAP_UPPER = 1.1, 4.0  # extrapolation bounds before a bracket (MINPACK)
# Near a minimum f's changes drown in its rounding (Goldstein-Price at f* = 3: |grad f| = 1e-6
# is 2e-9 from x*, f - f* = 1e-15); a trial there that meets the curvature condition is
# accepted when f is within this many ulps of f(x) (Hager and Zhang's approximate Wolfe
# idea, with a bound tight enough that f cannot drift up).
_NOISE_ULPS = 64


def _scaled(eta, updates):
    """eta * u, leaf by leaf, in u's dtype: the update the line search returns."""
    return jax.tree.map(lambda u: (jnp.asarray(eta, u.dtype) * u).astype(u.dtype), updates)


def _moved(params, eta, updates):
    """params + eta * u exactly as optax.apply_updates(params, _scaled(eta, u)) builds it."""
    return optax.apply_updates(params, _scaled(eta, updates))


def _cubic_min(a, fa, da, b, fb, db, negate_when):
    """(theta, gamma) of the cubic through (a, fa, da), (b, fb, db) as Moré and Thuente write
    its minimizer (gamma negated when `negate_when`), scaled against overflow."""
    theta = 3.0 * (fa - fb) / (b - a) + da + db
    s = jnp.maximum(jnp.maximum(jnp.abs(theta), jnp.abs(da)), jnp.abs(db))
    s = jnp.where(s > 0, s, 1.0)
    gamma = s * jnp.sqrt(jnp.maximum((theta / s) ** 2 - (da / s) * (db / s), 0.0))
    gamma = jnp.where(negate_when, -gamma, gamma)
    return theta, gamma


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax, noise):
    """One safeguarded step of Moré-Thuente (MINPACK-2 dcstep): the next trial and the new
    interval ends (x: best so far, y: other end). Four cases by f and slope at the trial."""
    sgnd = dp * jnp.sign(dx)
    # case 1: higher value: the minimum is bracketed
    theta, gamma = _cubic_min(stx, fx, dx, stp, fp, dp, stp < stx)
    r = ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp)
    c1 = stx + r * (stp - stx)
    q1 = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
    step1 = jnp.where(jnp.abs(c1 - stx) < jnp.abs(q1 - stx), c1, c1 + (q1 - c1) / 2.0)
    # case 2: lower value, slopes of opposite sign: bracketed
    theta, gamma = _cubic_min(stx, fx, dx, stp, fp, dp, stp > stx)
    r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx)
    c2 = stp + r * (stx - stp)
    q2 = stp + (dp / (dp - dx)) * (stx - stp)
    step2 = jnp.where(jnp.abs(c2 - stp) > jnp.abs(q2 - stp), c2, q2)
    # case 3: lower value, same sign, slope decreasing in size
    theta, gamma = _cubic_min(stx, fx, dx, stp, fp, dp, stp > stx)
    r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
    far = jnp.where(stp > stx, stpmax, stpmin)
    c3 = jnp.where((r < 0) & (gamma != 0), stp + r * (stx - stp), far)
    q3 = q2
    in_bracket = jnp.where(jnp.abs(c3 - stp) < jnp.abs(q3 - stp), c3, q3)
    bound = stp + 0.66 * (sty - stp)
    in_bracket = jnp.where(
        stp > stx, jnp.minimum(bound, in_bracket), jnp.maximum(bound, in_bracket)
    )
    outside = jnp.where(jnp.abs(c3 - stp) > jnp.abs(q3 - stp), c3, q3)
    outside = jnp.clip(outside, stpmin, stpmax)
    step3 = jnp.where(brackt, in_bracket, outside)
    # case 4: lower value, same sign, slope not decreasing in size
    theta, gamma = _cubic_min(stp, fp, dp, sty, fy, dy, stp > sty)
    r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dy)
    step4 = jnp.where(brackt, stp + r * (sty - stp), far)

    case1 = fp > fx + noise  # within f's rounding the slopes decide
    case2 = ~case1 & (sgnd < 0)
    case3 = ~case1 & ~case2 & (jnp.abs(dp) < jnp.abs(dx))
    new = jnp.where(case1, step1, jnp.where(case2, step2, jnp.where(case3, step3, step4)))
    brackt = brackt | case1 | case2
    # new interval: y takes the trial when its value is higher, x when lower
    to_y = case1 | (~case1 & (sgnd < 0))
    y_from_trial = case1
    sty, fy, dy = (
        jnp.where(y_from_trial, stp, jnp.where(to_y, stx, sty)),
        jnp.where(y_from_trial, fp, jnp.where(to_y, fx, fy)),
        jnp.where(y_from_trial, dp, jnp.where(to_y, dx, dy)),
    )
    stx, fx, dx = (
        jnp.where(case1, stx, stp),
        jnp.where(case1, fx, fp),
        jnp.where(case1, dx, dp),
    )
    return stx, fx, dx, sty, fy, dy, new, brackt


class _Search(NamedTuple):
    """The search's carry: the current trial, the interval (x: best point so far, with its
    gradient; y: the other end), the stage, the bounds for the next trial and the outcome."""

    stp: jax.Array  # the trial just evaluated (or to evaluate)
    f: jax.Array
    d: jax.Array  # slope at stp
    g: optax.Updates
    stx: jax.Array
    fx: jax.Array
    dx: jax.Array
    gx: optax.Updates  # grad f at stx
    sty: jax.Array
    fy: jax.Array
    dy: jax.Array
    brackt: jax.Array
    stage1: jax.Array
    stmin: jax.Array
    stmax: jax.Array
    width: jax.Array
    width1: jax.Array
    trials: jax.Array
    done: jax.Array  # strong Wolfe met at stp
    stop: jax.Array  # give up (rounding, budget)


def scale_by_wolfe_linesearch(
    max_linesearch_steps: int = 30,
    slope_rtol: Scalar = 1e-4,
    curv_rtol: Scalar = 0.4,
    max_stepsize: Scalar = 1e10,
) -> optax.GradientTransformationExtraArgs:
    r"""Scales the update `u` by :math:`\eta` satisfying the strong Wolfe conditions with
    :math:`c_1` = ``slope_rtol``, :math:`c_2` = ``curv_rtol``, found by Moré and Thuente's
    safeguarded cubic/quadratic search, first trial :math:`\eta = 1` (so the incoming `u` is
    the first step tried). At most ``max_linesearch_steps`` trials of f and grad f; without
    a strong-Wolfe point by then it takes the best trial with sufficient decrease, or no
    step. `update` needs ``value``, ``grad`` and ``value_fn``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit.optimizers.wolfe import scale_by_wolfe_linesearch
      >>> f = lambda x: jnp.sum((x - 3.0) ** 2)
      >>> opt = optax.chain(optax.sgd(1.0), scale_by_wolfe_linesearch(curv_rtol=0.1))
      >>> x = jnp.zeros(2); state = opt.init(x)  # first trial: x = (6, 6), too far
      >>> v, g = jax.value_and_grad(f)(x)
      >>> u, state = opt.update(g, state, x, value=v, grad=g, value_fn=f)
      >>> x = optax.apply_updates(x, u)
      >>> ls = state[-1]  # the WolfeState: trials made, f at the accepted point
      >>> print(jnp.round(x, 2), int(ls.num_evals), bool(ls.value == f(x)))
      [3. 3.] 2 True

    References:
      Moré and Thuente, `Line search algorithms with guaranteed sufficient decrease
      <https://doi.org/10.1145/192115.192132>`_, ACM TOMS 20, 1994
    """

    def init_fn(params) -> WolfeState:
        dtype = jnp.real(jax.tree.leaves(params)[0]).dtype
        return WolfeState(
            jnp.ones((), dtype),
            jnp.zeros((), jnp.int32),
            jnp.full((), jnp.inf, dtype),
            optax.tree.zeros_like(params),
            Evals.zero(),
        )

    def update_fn(updates, state, params, *, value=None, grad=None, value_fn=None, **kwargs):
        if value is None or grad is None or value_fn is None:
            raise ValueError(
                "the Wolfe line search needs value=, grad= and value_fn= in opt.update(...)"
            )
        dtype = state.step.dtype
        f0 = jnp.asarray(value, dtype)
        d0 = optax.tree.real(optax.tree.vdot(grad, updates)).astype(dtype)
        gtest = slope_rtol * d0
        xtol = jnp.finfo(dtype).eps
        noise = _NOISE_ULPS * xtol * jnp.abs(f0)
        stpmax = jnp.asarray(max_stepsize, dtype)

        def evaluate(stp):
            v, g = jax.value_and_grad(value_fn)(_moved(params, stp, updates), **kwargs)
            return v.astype(dtype), g, optax.tree.real(optax.tree.vdot(g, updates)).astype(dtype)

        def judge(s: _Search) -> _Search:
            """After evaluating f, grad f at s.stp: stop, or choose the next trial."""
            ftest = f0 + s.stp * gtest
            stage1 = s.stage1 & ~((s.f <= ftest) & (s.d >= 0))
            low = (s.f <= ftest) | (s.f <= f0 + noise)  # sufficient decrease, or within noise
            done = low & (jnp.abs(s.d) <= curv_rtol * (-d0)) & jnp.isfinite(s.f)
            stop = s.brackt & ((s.stp <= s.stmin) | (s.stp >= s.stmax))
            stop |= s.brackt & (s.stmax - s.stmin <= xtol * s.stmax)
            stop |= (s.stp >= stpmax) & (s.f <= ftest) & (s.d <= gtest)
            stop |= s.trials >= max_linesearch_steps
            # modified function (psi) while in stage 1 and the value is not low enough
            mod = stage1 & (s.f <= s.fx) & (s.f > ftest)
            shift = jnp.where(mod, gtest, 0.0)
            stx, fx, dx, sty, fy, dy, stp, brackt = _dcstep(
                s.stx,
                s.fx - s.stx * shift,
                s.dx - shift,
                s.sty,
                s.fy - s.sty * shift,
                s.dy - shift,
                s.stp,
                s.f - s.stp * shift,
                s.d - shift,
                s.brackt,
                s.stmin,
                s.stmax,
                noise,
            )
            fx, fy, dx, dy = fx + stx * shift, fy + sty * shift, dx + shift, dy + shift
            moved_x = stx == s.stp
            gx = jax.tree.map(lambda a, b: jnp.where(moved_x, a, b), s.g, s.gx)
            bisect = brackt & (jnp.abs(sty - stx) >= 0.66 * s.width1)
            stp = jnp.where(bisect, stx + 0.5 * (sty - stx), stp)
            width1 = jnp.where(brackt, s.width, s.width1)
            width = jnp.where(brackt, jnp.abs(sty - stx), s.width)
            stmin = jnp.where(brackt, jnp.minimum(stx, sty), stp + _XTRAP_LOWER * (stp - stx))
            stmax = jnp.where(brackt, jnp.maximum(stx, sty), stp + _XTRAP_UPPER * (stp - stx))
            stp = jnp.clip(stp, 0.0, stpmax)
            stuck = brackt & ((stp <= stmin) | (stp >= stmax) | (stmax - stmin <= xtol * stmax))
            stp = jnp.where(stuck, stx, stp)
            stp = jnp.where(jnp.isfinite(stp), stp, 0.5 * (stx + s.stp))
            return s._replace(
                stx=stx, fx=fx, dx=dx, gx=gx, sty=sty, fy=fy, dy=dy, brackt=brackt,
                stage1=stage1, stmin=stmin, stmax=stmax, width=width, width1=width1,
                stp=jnp.where(done | stop, s.stp, stp), done=done, stop=stop & ~done,
            )  # fmt: skip

        def cond(s: _Search):
            return ~(s.done | s.stop)

        def body(s: _Search) -> _Search:
            f, g, d = evaluate(s.stp)
            f = jnp.where(jnp.isfinite(f), f, jnp.inf)
            return judge(s._replace(f=f, g=g, d=d, trials=s.trials + 1))

        # the first trial cannot lower f by even one ulp to first order: nothing to search for
        # (at a minimum in f's rounding, the gradient's noise would cost the whole budget)
        flat = -d0 <= xtol * jnp.abs(f0)
        one = jnp.ones((), dtype)
        zero = jnp.zeros((), dtype)
        width = stpmax
        start = _Search(
            stp=one, f=f0, d=d0, g=grad, stx=zero, fx=f0, dx=d0, gx=grad,
            sty=zero, fy=f0, dy=d0, brackt=jnp.asarray(False), stage1=jnp.asarray(True),
            stmin=zero, stmax=one + _XTRAP_UPPER * one, width=width, width1=2.0 * width,
            trials=jnp.zeros((), jnp.int32), done=~(d0 < 0), stop=flat,
        )  # fmt: skip
        s = jax.lax.while_loop(cond, body, start)
        # accepted: the Wolfe point, else the best sufficient-decrease trial (stx), else none
        ok_x = (s.stx > 0) & (s.fx <= f0 + s.stx * gtest) & (s.fx < f0)
        eta = jnp.where(s.done & (d0 < 0), s.stp, jnp.where(ok_x, s.stx, 0.0))
        at_stp = s.done & (d0 < 0)
        new_value = jnp.where(at_stp, s.f, jnp.where(ok_x, s.fx, f0))
        pick = lambda a, b, c: jnp.where(at_stp, a, jnp.where(ok_x, b, c))  # noqa: E731
        new_grad = jax.tree.map(pick, s.g, s.gx, grad)
        n = s.trials
        new_state = WolfeState(eta, n, new_value, new_grad, state.evals.add(f=n, grad=n))
        return _scaled(eta, updates), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
