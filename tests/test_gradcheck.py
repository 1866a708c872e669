"""Gradients three ways agree on every objective, at random points inside its bounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gdkit
from gdkit import objectives

UNIT = st.lists(st.floats(0.0, 1.0), min_size=8, max_size=8)


def _inside(obj, u):
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    return lo + np.resize(np.asarray(u), obj.dim) * (hi - lo)  # u repeats past 8 coordinates


@pytest.mark.parametrize("name", objectives.names())
@settings(max_examples=15, deadline=None)
@given(u=UNIT)
def test_three_gradients_agree_float64(name, u):
    obj = objectives.get(name) if name != "rosenbrock" else objectives.get(name, dim=5)
    with jax.enable_x64(True):
        check = gdkit.check_grad(obj, _inside(obj, u))
        assert check.reverse.dtype == np.float64
        assert check.forward_error < 1e-12
        assert check.numeric_error < 1e-6, check


@pytest.mark.parametrize("name", objectives.names())
@settings(max_examples=10, deadline=None)
@given(u=UNIT)
def test_three_gradients_agree_float32(name, u):
    obj = objectives.get(name)
    check = gdkit.check_grad(obj, np.float32(_inside(obj, u)))
    assert check.reverse.dtype == np.float32
    assert check.ok(), check


def test_rosenbrock_closed_form_gradient():
    # d/dx = -400 x (y - x^2) - 2 (1 - x), d/dy = 200 (y - x^2): the symbolic way, by hand.
    x, y = 0.3, -0.4
    with jax.enable_x64(True):
        check = gdkit.check_grad(objectives.get("rosenbrock"), [x, y])
    np.testing.assert_allclose(
        check.reverse, [-400 * x * (y - x**2) - 2 * (1 - x), 200 * (y - x**2)], rtol=1e-14
    )


def test_a_wrong_gradient_is_caught():
    @jax.custom_jvp
    def f(x):
        return jnp.sum(x**2)

    @f.defjvp
    def f_jvp(primals, tangents):  # deliberately wrong by a factor 2
        (x,), (t,) = primals, tangents
        return f(x), jnp.sum(4.0 * x * t)

    with jax.enable_x64(True):
        check = gdkit.check_grad(f, [1.0, -2.0])
    assert not check.ok()
    assert check.numeric_error > 0.4
