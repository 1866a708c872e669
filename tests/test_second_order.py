"""Newton, BFGS, L-BFGS and nonlinear CG: known minima, closed forms, and scipy.optimize.

On Rosenbrock (float64) each method is run from several starts as one vmapped program and
compared with an independent implementation, scipy.optimize.minimize, from the same starts:
the minimizer found, and the number of iterations until f < 1e-12.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

from gdkit import objectives, optimizers

ROSENBROCK = objectives.get("rosenbrock")
# The classic start (-1.2, 1) (Rosenbrock 1960; More, Garbow & Hillstrom 1981) and four more.
STARTS = np.array([[-1.2, 1.0], [2.0, -1.0], [-1.5, 2.0], [0.0, 0.0], [1.5, 1.5]])
F_TOL = 1e-12
MAX_STEPS = 300

# ours -> scipy method with the same idea (scipy's tolerances set so it does not stop early).
SCIPY = {
    "bfgs": ("BFGS", dict(gtol=1e-12)),
    "lbfgs": ("L-BFGS-B", dict(ftol=0.0, gtol=1e-14)),
    "ncg": ("CG", dict(gtol=1e-12)),
    "newton": ("trust-exact", dict(gtol=1e-14)),  # exact-Hessian Newton (trust region)
}


def _first_below(fs, tol=F_TOL) -> int | None:
    """1-based iteration at which f first drops below tol (None if never)."""
    idx = np.nonzero(np.asarray(fs) < tol)[0]
    return int(idx[0]) + 1 if idx.size else None


@functools.cache
def _ours(name: str):
    """Final points [starts, 2] and f after every step [starts, MAX_STEPS] (float64)."""
    fn = ROSENBROCK.fn

    def one(x0):
        opt = optimizers.get(name)

        def body(carry, _):
            x, state = carry
            value, grad = jax.value_and_grad(fn)(x)
            u, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fn)
            x = optax.apply_updates(x, u)
            return (x, state), fn(x)

        (x, _), fs = jax.lax.scan(body, (x0, opt.init(x0)), None, length=MAX_STEPS)
        return x, fs

    with jax.enable_x64(True):
        xs, fs = jax.jit(jax.vmap(one))(jnp.asarray(STARTS))
        return np.asarray(xs), np.asarray(fs)


def _scipy(method: str, options: dict, x0: np.ndarray):
    """(iterations until f < F_TOL, minimizer) of scipy.optimize.minimize."""
    with jax.enable_x64(True):
        f = jax.jit(ROSENBROCK.fn)
        g = jax.jit(jax.grad(ROSENBROCK.fn))
        h = jax.jit(jax.hessian(ROSENBROCK.fn))
        fs = []
        needs_hess = method in ("Newton-CG", "trust-exact")
        res = scipy.optimize.minimize(
            lambda x: float(f(x)),
            x0,
            jac=lambda x: np.asarray(g(x)),
            hess=(lambda x: np.asarray(h(x))) if needs_hess else None,
            method=method,
            options=options,
            callback=lambda xk: fs.append(float(f(xk))),
        )
    return _first_below(fs), res.x


@pytest.mark.parametrize("name", list(SCIPY))
def test_rosenbrock_float64_reaches_1e_12(name):
    xs, fs = _ours(name)
    for i in range(len(STARTS)):
        iters = _first_below(fs[i])
        assert iters is not None and iters <= MAX_STEPS, (STARTS[i], fs[i, -1])
        np.testing.assert_allclose(xs[i], ROSENBROCK.minima[0].x, atol=1e-6)


@pytest.mark.parametrize("name", list(SCIPY))
def test_rosenbrock_against_scipy(name):
    method, options = SCIPY[name]
    xs, fs = _ours(name)
    for i, x0 in enumerate(STARTS):
        theirs, x_scipy = _scipy(method, options, x0)
        ours = _first_below(fs[i])
        np.testing.assert_allclose(xs[i], x_scipy, atol=1e-6)
        # the same algorithm family takes about as many iterations (different line searches)
        assert theirs / 2 <= ours <= 2 * theirs, (x0, ours, theirs)


def test_newton_needs_no_more_iterations_than_scipy_newton_cg():
    xs, fs = _ours("newton")
    for i, x0 in enumerate(STARTS):
        theirs, x_scipy = _scipy("Newton-CG", dict(xtol=1e-14), x0)
        np.testing.assert_allclose(xs[i], x_scipy, atol=1e-5)
        assert _first_below(fs[i]) <= theirs


def _step(opt, fn, x, state=None):
    state = opt.init(x) if state is None else state
    value, grad = jax.value_and_grad(fn)(x)
    u, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fn)
    return optax.apply_updates(x, u), state


def _one_step(opt, fn, x0):
    return jax.jit(lambda x: _step(opt, fn, x)[0])(x0)


def test_newton_solves_a_quadratic_in_one_step():
    obj = objectives.get("quadratic", dim=6, condition_number=1e4, seed=3)
    with jax.enable_x64(True):
        x = _one_step(optimizers.newton(), obj.fn, jnp.asarray(obj.x0))
    np.testing.assert_allclose(x, obj.minima[0].x, atol=1e-9)


def test_newton_damping_is_a_levenberg_step():
    # one step from x0 is x0 - (A + damping I)^{-1} grad, the closed form
    obj = objectives.get("quadratic", dim=4, condition_number=10.0, seed=1)
    with jax.enable_x64(True):
        x0 = jnp.asarray(obj.x0)
        a, g = jax.hessian(obj.fn)(x0), jax.grad(obj.fn)(x0)
        x = _one_step(optimizers.newton(damping=2.0), obj.fn, x0)
        np.testing.assert_allclose(x, x0 - jnp.linalg.solve(a + 2.0 * jnp.eye(4), g), atol=1e-12)


def test_newton_descends_where_the_hessian_is_negative_definite():
    # Himmelblau at (0, 0): Hessian diag(-42, -26); a plain Newton step heads for the maximum.
    obj = objectives.get("himmelblau")
    opt = optimizers.newton()

    def body(carry, _):
        x, state = _step(opt, obj.fn, *carry)
        return (x, state), obj.fn(x)

    with jax.enable_x64(True):
        x0 = jnp.asarray(obj.x0)
        assert np.all(np.linalg.eigvalsh(jax.hessian(obj.fn)(x0)) < 0)
        (x, _), fs = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, 30))(x0)
        fs = np.concatenate([[obj.fn(x0)], fs])
    assert np.all(np.diff(fs) <= 0)
    assert min(np.abs(np.asarray(x) - m.x).max() for m in obj.minima) < 1e-8


def test_gd_linesearch_never_increases_f_even_with_a_huge_learning_rate():
    opt = optimizers.gd_linesearch(learning_rate=1e6, max_linesearch_steps=60)

    def body(carry, _):
        x, state = _step(opt, ROSENBROCK.fn, *carry)
        return (x, state), ROSENBROCK.fn(x)

    with jax.enable_x64(True):
        x0 = jnp.asarray(ROSENBROCK.x0)
        _, fs = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, 200))(x0)
        fs = np.concatenate([[ROSENBROCK.fn(x0)], fs])
    assert np.all(np.diff(fs) <= 0) and fs[-1] < 0.1 * fs[0]
