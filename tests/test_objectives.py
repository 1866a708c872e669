"""Objectives: values at known points, every listed minimum, dtypes, vmap, registry errors."""

import math
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdkit import objectives
from gdkit.objectives.quadratic import quadratic

ALL = objectives.names()
WITH_MINIMA = [n for n in ALL if objectives.get(n).minima]


# Values at points where the formula can be evaluated by hand.
KNOWN_VALUES = [
    ("rosenbrock", {}, [-1.2, 1.0], 24.2),
    ("rosenbrock", {"dim": 3}, [0.0, 0.0, 0.0], 2.0),
    ("rosenbrock", {"a": 2.0, "b": 10.0}, [0.0, 1.0], 10.0 + 4.0),
    ("peaks", {}, [0.0, 0.0], 8.0 / 3.0 * math.exp(-1.0)),
    ("sphere", {"dim": 3}, [1.0, 2.0, 3.0], 14.0),
    ("himmelblau", {}, [0.0, 0.0], 121.0 + 49.0),
    ("beale", {}, [1.0, 1.0], 1.5**2 + 2.25**2 + 2.625**2),
    ("booth", {}, [0.0, 0.0], 49.0 + 25.0),
    ("rastrigin", {}, [0.5, 0.5], 20.0 + 2 * (0.25 + 10.0)),
    ("ackley", {}, [0.0, 0.0], 0.0),
    ("ackley", {"dim": 1}, [1.0], -20.0 * math.exp(-0.2) - math.e + 20.0 + math.e),
    ("styblinski_tang", {}, [1.0, 1.0], -10.0),
    ("six_hump_camel", {}, [1.0, 1.0], (4 - 2.1 + 1 / 3) + 1 + 0),
    ("goldstein_price", {}, [0.0, 0.0], 20.0 * 30.0),
    ("parabola", {}, [1.0], 2.0),
    ("parabola", {}, [0.0], 3.0),
    ("saddle", {}, [1.0, 1.0], 5.0),
    ("saddle", {}, [1.0, -1.0], -1.0),
]


@pytest.mark.parametrize(("name", "params", "x", "expected"), KNOWN_VALUES)
def test_values_at_known_points(name, params, x, expected):
    with jax.enable_x64(True):
        obj = objectives.get(name, **params)
        assert float(obj(jnp.asarray(x))) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_rosenbrock_gradient_at_classic_start():
    obj = objectives.get("rosenbrock")
    g = jax.grad(obj.fn)(jnp.array([-1.2, 1.0]))
    np.testing.assert_allclose(g, [-215.6, -88.0], rtol=1e-6)


@pytest.mark.parametrize("name", WITH_MINIMA)
def test_every_listed_minimum_is_a_strict_local_minimum(name):
    """Stationary (gradient ~ 0) with a positive-definite Hessian, in float64."""
    obj = objectives.get(name)
    with jax.enable_x64(True):
        # jitted: one compile per objective instead of op-by-op dispatch of a Hessian per minimum
        grad, hessian = jax.jit(jax.grad(obj.fn)), jax.jit(jax.hessian(obj.fn))
        for m in obj.minima:
            x = jnp.asarray(m.x)
            assert float(obj(x)) == pytest.approx(m.f, rel=1e-10, abs=1e-10)
            g = np.asarray(grad(x))
            assert np.max(np.abs(g)) < 1e-8, (name, m.x, g)
            h = np.asarray(hessian(x))
            assert np.linalg.eigvalsh(0.5 * (h + h.T)).min() > 0, (name, m.x)


@pytest.mark.parametrize("name", [n for n in WITH_MINIMA if objectives.get(n).dim == 2])
def test_listed_minima_are_global_on_a_dense_grid(name):
    """No point of a 801 x 801 grid over the bounds is lower than the listed global minimum."""
    obj = objectives.get(name)
    with jax.enable_x64(True):
        axes = [np.linspace(lo, hi, 801) for lo, hi in obj.bounds]
        xx = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)
        values = np.asarray(jax.jit(jax.vmap(obj.fn))(jnp.asarray(xx)))
    assert values.min() >= obj.f_min - 1e-12
    # ...and the grid gets close to it, so the value is not merely a lower bound.
    assert values.min() - obj.f_min < 1e-2 * max(1.0, abs(obj.f_min))


def test_himmelblau_has_four_distinct_minima():
    xs = np.array([m.x for m in objectives.get("himmelblau").minima])
    assert len(xs) == 4
    assert min(np.linalg.norm(a - b) for i, a in enumerate(xs) for b in xs[i + 1 :]) > 1.0


def test_styblinski_tang_minimum_solves_its_cubic():
    # d/dx (x^4 - 16x^2 + 5x) = 4x^3 - 32x + 5; the global minimizer is its leftmost root.
    root = np.roots([4.0, 0.0, -32.0, 5.0]).real.min()
    obj = objectives.get("styblinski_tang", dim=5)
    np.testing.assert_allclose(obj.minima[0].x, np.full(5, root), rtol=1e-14)
    assert obj.f_min == pytest.approx(5 * 0.5 * (root**4 - 16 * root**2 + 5 * root), rel=1e-14)


def test_saddle_has_no_minimum_and_its_start_escapes():
    obj = objectives.get("saddle")
    assert obj.minima == () and obj.f_min is None
    # The start must not lie on the stable manifold y = x, where descent would stall at 0.
    h = np.array([[2.0, 3.0], [3.0, 2.0]])
    w, v = np.linalg.eigh(h)
    assert w[0] < 0 and abs(obj.x0 @ v[:, 0]) > 0.1


def test_ackley_gradient_is_finite_at_the_origin():
    obj = objectives.get("ackley", dim=3)
    for dtype_x64 in (False, True):
        with jax.enable_x64(dtype_x64):
            g = jax.grad(obj.fn)(jnp.zeros(3))
            assert np.all(np.isfinite(g)) and np.all(np.asarray(g) == 0.0)


@pytest.mark.parametrize("kappa", [1.0, 10.0, 1e4])
def test_generated_quadratic_has_exactly_the_requested_spectrum(kappa):
    obj = objectives.get("quadratic", dim=6, condition_number=kappa, seed=3)
    with jax.enable_x64(True):
        h = np.asarray(jax.hessian(obj.fn)(jnp.zeros(6)))
        x_star = obj.minima[0].x
        np.testing.assert_allclose(np.linalg.eigvalsh(h), np.geomspace(1.0, kappa, 6), rtol=1e-10)
        # The minimum is the exact solution of A x = b, value 0 by construction.
        assert np.abs(np.asarray(jax.grad(obj.fn)(jnp.asarray(x_star)))).max() < 1e-10
        assert obj.f_min == pytest.approx(0.0, abs=1e-12)
        assert float(obj(jnp.asarray(x_star))) == pytest.approx(0.0, abs=1e-12)


def test_generated_quadratic_depends_only_on_its_seed():
    a = objectives.get("quadratic", dim=4, condition_number=50.0, seed=1)
    b = quadratic(dim=4, condition_number=50.0, seed=1)  # built afresh, not from the cache
    c = objectives.get("quadratic", dim=4, condition_number=50.0, seed=2)
    np.testing.assert_array_equal(a.minima[0].x, b.minima[0].x)
    assert not np.allclose(a.minima[0].x, c.minima[0].x)


def test_explicit_quadratic_is_solved_exactly():
    A = [[4.0, 1.0], [1.0, 3.0]]
    b = [1.0, 2.0]
    obj = objectives.get("quadratic", A=A, b=b, c=0.5)
    x_star = np.linalg.solve(A, b)
    np.testing.assert_allclose(obj.minima[0].x, x_star, rtol=1e-15)
    assert obj.f_min == pytest.approx(0.5 - 0.5 * np.dot(b, x_star), rel=1e-15)


@pytest.mark.parametrize("name", ALL)
def test_vmap_over_points_matches_single_evaluations(name):
    obj = objectives.get(name)
    rng = np.random.default_rng(0)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    xs = jnp.asarray(lo + rng.random((7, obj.dim)) * (hi - lo), dtype=jnp.float32)
    batched = jax.vmap(obj.fn)(xs)
    single = jnp.stack([obj(x) for x in xs])
    assert batched.shape == (7,)
    np.testing.assert_allclose(batched, single, rtol=1e-6)


@pytest.mark.parametrize("name", ALL)
def test_dtypes_are_preserved_never_downcast(name):
    obj = objectives.get(name)
    assert obj(jnp.asarray(obj.x0, jnp.float32)).dtype == jnp.float32
    with jax.enable_x64(True):
        assert obj(jnp.asarray(obj.x0)).dtype == jnp.float64
        assert jax.grad(obj.fn)(jnp.asarray(obj.x0)).dtype == jnp.float64
        assert obj(jnp.asarray(obj.x0, jnp.float32)).dtype == jnp.float32


def test_float64_resolves_what_float32_cannot():
    # Near Rosenbrock's minimum f is ~1e-12: below float32's resolution of x (eps ~ 1.2e-7).
    obj = objectives.get("rosenbrock")
    x = np.array([1.0 + 1e-6, 1.0 + 2e-6])
    exact = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
    with jax.enable_x64(True):
        assert float(obj(jnp.asarray(x))) == pytest.approx(exact, rel=1e-6)
    assert float(obj(jnp.asarray(x, jnp.float32))) != pytest.approx(exact, rel=1e-2)


@pytest.mark.parametrize("name", ALL)
def test_metadata_is_consistent(name):
    obj = objectives.get(name)
    assert obj.x0.shape == (obj.dim,) and obj.bounds.shape == (obj.dim, 2)
    assert np.all(obj.bounds[:, 0] <= obj.x0) and np.all(obj.x0 <= obj.bounds[:, 1])
    for m in obj.minima:
        assert np.all(obj.bounds[:, 0] <= m.x) and np.all(m.x <= obj.bounds[:, 1])
    with pytest.raises(ValueError):
        obj.x0[0] = 1.0  # read-only: an Objective is an immutable value


def test_get_returns_the_same_object_for_the_same_parameters():
    assert objectives.get("rosenbrock", dim=3) is objectives.get("rosenbrock", dim=3)
    assert objectives.get("rosenbrock", dim=3) is not objectives.get("rosenbrock", dim=4)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: objectives.get("rosenbrok"), "did you mean 'rosenbrock'"),
        (lambda: objectives.get("rosenbrock", dims=3), "did you mean 'dim'"),
        (lambda: objectives.get("rosenbrock", dim=1), "dim must be an integer >= 2"),
        (lambda: objectives.get("sphere", dim=2.5), "dim must be an integer"),
        (lambda: objectives.get("quadratic", condition_number=0.5), "condition_number"),
        (lambda: objectives.get("quadratic", A=[[1.0, 2.0], [2.0, 1.0]]), "positive definite"),
        (lambda: objectives.get("quadratic", A=[[1.0, 0.0], [0.0, 1.0]], b=[1.0]), "b must"),
        (lambda: objectives.get("nosuchmodule_xyz:f"), "cannot import"),
    ],
)
def test_bad_input_gets_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_user_callable_wraps_into_an_objective():
    obj = objectives.wrap(lambda x: jnp.sum((x - 2.0) ** 2), dim=3, minima=[([2.0] * 3, 0.0)])
    assert obj.dim == 3 and obj.f_min == 0.0
    np.testing.assert_array_equal(obj.bounds, [[-5.0, 5.0]] * 3)
    np.testing.assert_array_equal(obj.x0, [0.0, 0.0, 0.0])
    assert float(obj(jnp.full(3, 2.0))) == 0.0
    with pytest.raises(ValueError, match="x0 has 2 entries"):
        objectives.wrap(lambda x: x[0], dim=3, x0=[1.0, 2.0])


def test_import_path_objectives(tmp_path, monkeypatch):
    (tmp_path / "my_objectives.py").write_text(
        textwrap.dedent(
            """
            import jax.numpy as jnp
            from gdkit import objectives

            @objectives.objective(dim=4, minima=[([1.0] * 4, 0.0)])
            def bowl(x):
                return jnp.sum((x - 1.0) ** 2)

            @objectives.objective_factory
            def shifted(shift: float = 1.0) -> objectives.Objective:
                return objectives.wrap(lambda x: jnp.sum((x - shift) ** 2), dim=2,
                                       minima=[([shift, shift], 0.0)])

            def unmarked(x):
                return jnp.sum(x ** 2)

            READY = objectives.wrap(unmarked, dim=2, name="ready")
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "my_objectives", raising=False)
    bowl = objectives.get("my_objectives:bowl")
    assert bowl.dim == 4 and float(bowl(jnp.ones(4))) == 0.0 and bowl.f_min == 0.0
    assert objectives.get("my_objectives:shifted", shift=3.0).minima[0].x.tolist() == [3.0, 3.0]
    assert objectives.get("my_objectives:READY").name == "ready"
    with pytest.raises(ValueError, match="has no parameter 'dim'"):
        objectives.get("my_objectives:READY", dim=3)
    with pytest.raises(ValueError, match="has no parameter 'dim'; parameters: shift"):
        objectives.get("my_objectives:shifted", dim=3)
    with pytest.raises(ValueError, match="is a function, not an Objective"):
        objectives.get("my_objectives:unmarked", dim=2)
    with pytest.raises(ValueError, match="cannot import objective"):
        objectives.get("my_objectives:missing")
    with pytest.raises(ValueError, match="is not an import path"):
        objectives.get(":bowl")
    monkeypatch.delitem(sys.modules, "my_objectives")


def test_peaks_lists_every_local_minimum_scipy_finds():
    """An independent search: scipy's BFGS in float64 from a 21 x 21 grid of starts over the
    bounds finds exactly three local minima inside them, the ones peaks lists (global first)."""
    from scipy.optimize import minimize

    def f(v):
        x, y = v
        return (
            3 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
            - 10 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
            - np.exp(-((x + 1) ** 2) - y**2) / 3
        )

    obj = objectives.get("peaks")
    found = []
    for x0 in np.stack(np.meshgrid(*[np.linspace(-3, 3, 21)] * 2), -1).reshape(-1, 2):
        r = minimize(f, x0, method="BFGS", options={"gtol": 1e-10})
        inside = np.all(np.abs(r.x) <= 3)
        if (
            inside
            and np.linalg.norm(r.jac) < 1e-6
            and all(np.linalg.norm(r.x - p) > 1e-4 for p, _ in found)
        ):
            found.append((r.x, r.fun))
    found.sort(key=lambda pf: pf[1])
    assert len(found) == len(obj.minima) == 3
    for (x, fx), m in zip(found, obj.minima, strict=True):
        np.testing.assert_allclose(x, m.x, atol=1e-6)
        assert fx == pytest.approx(m.f, abs=1e-10)
    assert obj.f_min == obj.minima[0].f == min(m.f for m in obj.minima)
