"""Gauss-Newton and Levenberg-Marquardt against closed forms and scipy.optimize.least_squares."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.optimize import least_squares

from gdkit import objectives, optimizers
from gdkit.optimizers.least_squares import LevenbergMarquardtState as LMState

METHODS = ["gauss_newton", "levenberg_marquardt"]


def run(opt, obj, steps, x0=None, residual_fn=None, fn=None):
    """`steps` updates as one jit(lax.scan) with value_fn and residual_fn, as the engine calls
    them; returns the final x and optimizer state."""
    fn = fn or obj.fn
    residual_fn = residual_fn or obj.residual_fn

    def body(carry, _):
        x, state = carry
        v, g = jax.value_and_grad(fn)(x)
        u, state = opt.update(g, state, x, value=v, grad=g, value_fn=fn, residual_fn=residual_fn)
        return (optax.apply_updates(x, u), state), None

    x0 = jnp.asarray(obj.x0) if x0 is None else x0
    (x, state), _ = jax.jit(lambda x: jax.lax.scan(body, (x, opt.init(x)), None, length=steps))(x0)
    return x, state


@pytest.mark.parametrize("name", METHODS)
def test_linear_regression_matches_lstsq_in_float64(name):
    with jax.enable_x64(True):
        obj = objectives.get("linear_regression", n=200, noise=0.5, seed=3)
        Z = jnp.column_stack([jnp.asarray(obj.data.X), jnp.ones(obj.data.n)])
        expected = jnp.linalg.lstsq(Z, jnp.asarray(obj.data.y))[0]
        x, _ = run(optimizers.get(name), obj, 1 if name == "gauss_newton" else 30)
        assert x.dtype == jnp.float64
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(x, obj.minima[0].x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("noise", [0.0, 0.2])
def test_curve_fit_matches_scipy_least_squares(name, noise):
    obj = objectives.get("curve_fit", noise=noise, seed=1)
    t, y = obj.data.X[:, 0], obj.data.y
    ref = least_squares(
        lambda v: v[0] * np.exp(v[1] * t) - y,
        obj.x0,
        method="lm",
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    with jax.enable_x64(True):
        x, _ = run(optimizers.get(name), obj, 50)
        f = float(obj.fn(x))
    # scipy stops on its step-size test with |grad f| ~ 1e-9; ours ends at rounding level.
    np.testing.assert_allclose(x, ref.x, rtol=0, atol=1e-8)
    assert f == pytest.approx(2.0 * ref.cost / len(y), rel=1e-9, abs=1e-15)  # scipy: 1/2 |r|^2


def test_levenberg_marquardt_fits_the_mlp_far_faster_than_gd():
    obj = objectives.get("mlp")
    x, _ = run(optimizers.levenberg_marquardt(), obj, 100)
    assert float(obj.fn(x)) < 1e-4  # gradient descent needs ~1,500 steps for 1e-2


def _scaled_gauss_newton_step(obj, x0):
    """numpy's lstsq Gauss-Newton step at x0 and its length |D s| in MINPACK's scaling (D =
    the column norms of the Jacobian)."""
    jac = np.asarray(jax.jacfwd(obj.residual_fn)(x0))
    step = -np.linalg.lstsq(jac, np.asarray(obj.residual_fn(x0)), rcond=None)[0]
    return step, float(np.linalg.norm(np.linalg.norm(jac, axis=0) * step))


def test_step_bound_shrinks_after_a_failed_step_and_doubles_after_a_good_one():
    with jax.enable_x64(True):
        obj = objectives.get("curve_fit")
        x0 = jnp.asarray(obj.x0)
        f0 = float(obj.fn(x0))
        # learning_rate 50 overshoots the Gauss-Newton step (inside the first bound 100 |D x0|,
        # so lambda = 0): it is refused, and the bound becomes mu |D s| with mu the minimiser of the
        # quadratic through f(x0), its slope g's and f(x0 + 50 s) (MINPACK's rule).
        step, pnorm = _scaled_gauss_newton_step(obj, x0)
        x, state = run(optimizers.levenberg_marquardt(learning_rate=50.0, step_bound=100.0), obj, 1)
        s1 = LMState(*(optax.tree_utils.tree_get(state, k) for k in LMState._fields))
        np.testing.assert_array_equal(x, x0)
        slope = 50.0 * float(jax.grad(obj.fn)(x0) @ step)
        f1 = float(obj.fn(x0 + 50.0 * step))
        mu = float(np.clip(-0.5 * slope / (f1 - f0 - slope), 0.1, 0.5))
        mu = 0.1 if f1 >= 100 * f0 else mu
        assert float(s1.gain_ratio) < 0 and float(s1.damping) == 0.0
        assert float(s1.step_bound) == pytest.approx(mu * pnorm, rel=1e-9)
        # the plain method near the fit: the Gauss-Newton step is taken, the bound is 2 |D s|
        x0 = jnp.asarray(obj.minima[0].x) + jnp.array([0.1, -0.05])
        step, pnorm = _scaled_gauss_newton_step(obj, x0)
        x, state = run(optimizers.levenberg_marquardt(step_bound=100.0), obj, 1, x0=x0)
        s2 = LMState(*(optax.tree_utils.tree_get(state, k) for k in LMState._fields))
        np.testing.assert_allclose(x, x0 + step, rtol=1e-12)
        assert float(s2.gain_ratio) > 0.75 and float(s2.damping) == 0.0
        assert float(s2.step_bound) == pytest.approx(2.0 * pnorm, rel=1e-9)


@pytest.mark.parametrize("step_bound", [1e-3, 0.1])
def test_a_short_step_bound_gives_the_damped_step_of_that_length(step_bound):
    """With Delta below the Gauss-Newton step, lambda solves |D s(lambda)| = Delta to 10%, and
    s is the damped step (J'J + lambda D'D)^-1 J'r (numpy.linalg.solve)."""
    with jax.enable_x64(True):
        obj = objectives.get("curve_fit")
        x0 = jnp.asarray(obj.x0)
        jac = np.asarray(jax.jacfwd(obj.residual_fn)(x0))
        r0 = np.asarray(obj.residual_fn(x0))
        d = np.linalg.norm(jac, axis=0)
        delta = step_bound * np.linalg.norm(d * np.asarray(x0))
        opt = optimizers.levenberg_marquardt(step_bound=step_bound)
        v, g = jax.value_and_grad(obj.fn)(x0)
        u, state = opt.update(
            g, opt.init(x0), x0, value=v, grad=g, value_fn=obj.fn, residual_fn=obj.residual_fn
        )
        lam = float(state.damping)
        expected = -np.linalg.solve(jac.T @ jac + lam * np.diag(d * d), jac.T @ r0)
        # one Jacobian and one trial f per update, and f at x0 too when `value` is not given
        counts = {k: int(getattr(state.evals, k)) for k in ("f", "jac")}
        assert counts == {"f": 1, "jac": 1}
        _, state = opt.update(g, opt.init(x0), x0, value_fn=obj.fn, residual_fn=obj.residual_fn)
        assert {k: int(getattr(state.evals, k)) for k in ("f", "jac")} == {"f": 2, "jac": 1}
    assert lam > 0
    assert 0.9 * delta <= np.linalg.norm(d * expected) <= 1.1 * delta
    np.testing.assert_allclose(u, expected, rtol=1e-9)


def test_gauss_newton_needs_one_step_for_a_linear_problem_and_handles_rank_deficiency():
    with jax.enable_x64(True):
        A = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 1.0], [0.0, 0.0, 1.0]])
        y = jnp.array([1.0, 2.0, 2.0, 1.5])
        obj = objectives.wrap(lambda x: 0.5 * jnp.sum((A @ x - y) ** 2), dim=3)
        x, _ = run(optimizers.gauss_newton(), obj, 1, residual_fn=lambda x: A @ x - y)
        np.testing.assert_allclose(x, jnp.linalg.pinv(A) @ y, atol=1e-12)  # minimum norm


def test_levenberg_marquardt_on_a_rank_deficient_problem_reaches_the_minimum_norm_solution():
    """Two equal columns (equal scaling): from 0 the steps stay in the row space, so the fit
    ends at numpy's pinv solution, x1 = x2; the bound starts at `step_bound` (x0 = 0)."""
    with jax.enable_x64(True):
        A = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [2.0, 2.0, 1.0], [0.0, 0.0, 1.0]])
        y = jnp.array([1.0, 2.0, 2.0, 1.5])
        obj = objectives.wrap(lambda x: 0.5 * jnp.sum((A @ x - y) ** 2), dim=3, x0=[0, 0, 0])
        x, _ = run(optimizers.levenberg_marquardt(), obj, 30, residual_fn=lambda x: A @ x - y)
    np.testing.assert_allclose(x, np.linalg.pinv(np.asarray(A)) @ np.asarray(y), atol=1e-12)


@pytest.mark.parametrize("name", METHODS)
def test_hyperparameters_are_data(name):
    """jit(vmap) over traced learning rates and damping / step bounds equals single runs (one
    trace each)."""
    obj = objectives.get("curve_fit")
    other = (
        ("damping", [1e-3, 1e-2, 1.0]) if name == "gauss_newton" else ("step_bound", [0.1, 1, 100])
    )
    hp = {"learning_rate": jnp.array([0.3, 0.6, 1.0]), other[0]: jnp.array(other[1])}
    traces = []

    def one(h):
        traces.append(1)
        return run(optimizers.get(name, **h), obj, 5)[0]

    batched = jax.jit(jax.vmap(one))(hp)
    single = jax.jit(one)
    for i in range(3):
        np.testing.assert_allclose(batched[i], single({k: v[i] for k, v in hp.items()}), rtol=1e-5)
    assert len(traces) == 2
    assert not np.allclose(batched[0], batched[2])


@pytest.mark.parametrize("name", METHODS)
def test_pytree_params_clipping_and_weight_decay(name):
    obj = objectives.get("linear_regression", noise=0.3)
    X, y = jnp.asarray(obj.data.X), jnp.asarray(obj.data.y)
    n = obj.data.n

    def residual(p):
        return jnp.sqrt(2.0 / n) * (X @ p["w"] + p["b"] - y)

    def loss(p):
        return 0.5 * jnp.sum(residual(p) ** 2)

    tree0 = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    opt = optax.chain(optax.clip_by_global_norm(100.0), optimizers.get(name))
    p, _ = run(opt, obj, 30, x0=tree0, residual_fn=residual, fn=loss)
    np.testing.assert_allclose([*p["w"], p["b"]], obj.minima[0].x, atol=1e-4)
    # weight decay: the minimum of f + wd/2 |x|^2 (ridge regression, intercept included)
    with jax.enable_x64(True):
        Z = np.column_stack([obj.data.X, np.ones(n)])
        ridge = np.linalg.solve(2.0 / n * Z.T @ Z + 0.5 * np.eye(3), 2.0 / n * Z.T @ obj.data.y)
        x, _ = run(optimizers.get(name, weight_decay=0.5), obj, 100)
    np.testing.assert_allclose(x, ridge, atol=1e-8)


@pytest.mark.parametrize("name", METHODS)
def test_without_residuals_the_error_says_what_to_pass(name):
    opt = optimizers.get(name)
    obj = objectives.get("rosenbrock")
    x = jnp.asarray(obj.x0)
    v, g = jax.value_and_grad(obj.fn)(x)
    with pytest.raises(ValueError, match=r"needs the residuals.*residual_fn="):
        opt.update(g, opt.init(x), x, value=v, grad=g, value_fn=obj.fn)
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(g, opt.init(x), x)


def test_registry_and_needs_residual_fn():
    for name in METHODS:
        info = optimizers.info(name)
        assert info.kind == "second_order" and "learning_rate" in info.hparams
        assert optimizers.needs_residual_fn(name)
        assert optimizers.needs_residual_fn(getattr(optimizers, name))
    assert not any(optimizers.needs_residual_fn(n) for n in ("gd", "newton", "lbfgs"))
    assert not optimizers.needs_residual_fn(optax.sgd)
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.levenberg_marquardt(learning_rate=0.0)
