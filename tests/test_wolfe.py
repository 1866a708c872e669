"""The Moré-Thuente line search (gdkit.optimizers.wolfe): strong Wolfe points, trials against
MINPACK's dcsrch as scipy runs it, f never increasing, and f left at the exact next point."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize._linesearch as scipy_ls

from gdkit import objectives, optimizers
from gdkit.optimizers.wolfe import scale_by_wolfe_linesearch

C1, C2 = 1e-4, 0.1


def _search(fn, x, direction):
    """One search along `direction` from x (float64): (step factor, trials, f there)."""
    opt = scale_by_wolfe_linesearch(30, C1, C2)
    with jax.enable_x64(True):
        x = jnp.asarray(x, jnp.float64)
        v, g = jax.value_and_grad(fn)(x)
        _, s = opt.update(jnp.asarray(direction), opt.init(x), x, value=v, grad=g, value_fn=fn)
        return float(s.step), int(s.num_evals), float(s.value)


@pytest.mark.parametrize("scale", [1e-3, 0.1, 1.0, 30.0, 1e3])
@pytest.mark.parametrize("name", ["rosenbrock", "beale", "himmelblau"])
def test_strong_wolfe_point_in_about_dcsrchs_trials(name, scale):
    obj = objectives.get(name)
    x0 = np.asarray(obj.x0, float)
    with jax.enable_x64(True):
        g0 = np.asarray(jax.grad(obj.fn)(x0))
        f, fg = jax.jit(obj.fn), jax.jit(jax.grad(obj.fn))
    d = -scale * g0 / np.linalg.norm(g0)  # first trial `scale` long
    eta, trials, value = _search(obj.fn, x0, d)
    with jax.enable_x64(True):
        x1 = x0 + eta * d
        slope0, slope1 = g0 @ d, np.asarray(fg(x1)) @ d
        np.testing.assert_allclose(value, float(f(x1)), rtol=1e-14)
        assert value <= float(f(x0)) + C1 * eta * slope0  # sufficient decrease
        assert abs(slope1) <= C2 * abs(slope0)  # curvature (strong Wolfe)
        # scipy's MINPACK-2 dcsrch port with the same constants, counting f evaluations
        ref = scipy_ls.line_search_wolfe1(
            lambda z: float(f(z)), lambda z: np.asarray(fg(z)), x0, d, g0, c1=C1, c2=C2,
            amax=1e10,
        )  # fmt: skip
    assert ref[0] is not None
    assert trials <= ref[1] + 1, (trials, ref[1])


def test_cached_value_is_f_at_the_point_the_caller_moves_to_in_float32():
    # f is evaluated at apply_updates(x, u) as the caller will form it, bit for bit, so a
    # sweep's last recorded loss is its final loss.
    obj, opt = objectives.get("rosenbrock"), optimizers.ncg()
    x0 = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (64, 2)), jnp.float32)

    def lane(x):
        state = opt.init(x)
        for _ in range(3):
            v, g = jax.value_and_grad(obj.fn)(x)
            u, state = opt.update(g, state, x, value=v, grad=g, value_fn=obj.fn)
            x = optax.apply_updates(x, u)
        return x, state[-1].value

    x, cached = jax.jit(jax.vmap(lane))(x0)
    np.testing.assert_array_equal(np.asarray(cached), np.asarray(jax.jit(jax.vmap(obj.fn))(x)))


@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_ncg_never_increases_f(dtype):
    # A search without a sufficient decrease takes no step (optax's zoom took its last trial
    # instead, and ncg's f climbed from 1e-26 back to 1e-15 on 10-d Rosenbrock). Only within
    # f's rounding (64 ulps, see wolfe._NOISE_ULPS) may a step end a hair higher.
    import gdkit

    x0 = gdkit.starts.uniform("rastrigin", 32, seed=1)
    with jax.enable_x64(dtype == "float64"):
        r = gdkit.sweep(
            "rastrigin", "ncg", grid={}, x0=x0, steps=60, record_every=1, progress=False,
            dtype=dtype,
        )  # fmt: skip
    h = r.history
    ulps = 64 * np.finfo(dtype).eps * np.abs(h[..., :-1])
    assert np.all(np.diff(h, axis=-1) <= ulps)
    assert np.array_equal(r.history[..., -1], r.final_loss)
