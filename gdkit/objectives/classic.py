"""The classic optimization test functions, with their customary domains and known minima.

Formulas and domains follow Surjanovic & Bingham's "Virtual Library of Simulation
Experiments" (https://www.sfu.ca/~ssurjano/optimization.html) and Jamil & Yang, "A literature
survey of benchmark functions for global optimization problems" (2013). Every minimum listed here
was re-solved to 40 digits (mpmath `findroot` on the gradient) and is checked for stationarity and
a positive-definite Hessian in float64 by the tests; where the literature's digits disagreed
(MATLAB peaks is usually quoted only to 5 digits), the re-solved value is the one kept.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from gdkit._checks import short
from gdkit.objectives._base import MAX_DIM, Minimum, Objective
from gdkit.objectives._registry import register


def _check_dim(name: str, dim: int, low: int = 1) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < low:
        raise ValueError(f"{name}: dim must be an integer >= {low}, got {short(dim)}")
    if dim > MAX_DIM:
        raise ValueError(f"{name}: dim must be at most {MAX_DIM}, got {short(dim)}")
    return int(dim)


def _box(dim: int, low: float, high: float) -> np.ndarray:
    return np.tile([low, high], (dim, 1))


@register("rosenbrock", "Rosenbrock's banana valley, N-d: sum b(x[i+1]-x[i]^2)^2 + (a-x[i])^2")
def rosenbrock(dim: int = 2, a: float = 1.0, b: float = 100.0) -> Objective:
    dim = _check_dim("rosenbrock", dim, low=2)
    a, b = float(a), float(b)
    if b <= 0:
        raise ValueError(f"rosenbrock: b must be > 0, got {b}")

    def fn(x):
        return jnp.sum(b * (x[1:] - x[:-1] ** 2) ** 2 + (a - x[:-1]) ** 2)

    # Global minimum: (a, a^2) in 2-D; (a, ..., a) in N-d when a^2 == a. Otherwise it has no
    # closed form and is left unknown rather than guessed.
    if dim == 2:
        minima = (Minimum([a, a * a], 0.0),)
    elif a in (0.0, 1.0):
        minima = (Minimum(np.full(dim, a), 0.0),)
    else:
        minima = ()
    x0 = np.resize([-1.2, 1.0], dim)  # Rosenbrock (1960); Moré, Garbow & Hillstrom (1981) in N-d
    bounds = np.resize(np.array([[-2.0, 2.0], [-1.0, 3.0]]), (dim, 2))
    return Objective("rosenbrock", fn, dim, x0, bounds, minima, "Rosenbrock's valley")


@register(
    "peaks", "MATLAB's peaks: three Gaussian bumps, three local minima (one global), three maxima"
)
def peaks() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        return (
            3.0 * (1.0 - x) ** 2 * jnp.exp(-(x**2) - (y + 1.0) ** 2)
            - 10.0 * (x / 5.0 - x**3 - y**5) * jnp.exp(-(x**2) - y**2)
            - jnp.exp(-((x + 1.0) ** 2) - y**2) / 3.0
        )

    # Its three local minima, the global one first (Newton's method in float64 from scipy's
    # BFGS minima over a 41 x 41 grid of starts; both agree to 1e-8).
    minima = (
        Minimum([0.22827892055636910, -1.6255349574999965], -6.5511333328358369),
        Minimum([-1.3473962443682106, 0.20451886609700531], -3.0498494028002603),
        Minimum([0.29644555384683210, 0.32019624766683440], -0.06493586825552672),
    )
    return Objective("peaks", fn, 2, [-0.5, 0.5], _box(2, -3.0, 3.0), minima, "MATLAB peaks")


@register("sphere", "The sphere sum(x^2): convex, isotropic, minimum 0 at the origin")
def sphere(dim: int = 2) -> Objective:
    dim = _check_dim("sphere", dim)
    return Objective(
        "sphere",
        lambda x: jnp.sum(x**2),
        dim,
        np.resize([3.0, 2.0], dim),
        _box(dim, -5.12, 5.12),
        (Minimum(np.zeros(dim), 0.0),),
        "sphere",
    )


@register("himmelblau", "Himmelblau's function: four global minima of value 0")
def himmelblau() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        return (x**2 + y - 11.0) ** 2 + (x + y**2 - 7.0) ** 2

    minima = (
        Minimum([3.0, 2.0], 0.0),
        Minimum([-2.8051180869527449, 3.1313125182505730], 0.0),
        Minimum([-3.7793102533777469, -3.2831859912861694], 0.0),
        Minimum([3.5844283403304917, -1.8481265269644036], 0.0),
    )
    return Objective("himmelblau", fn, 2, [0.0, 0.0], _box(2, -5.0, 5.0), minima, "Himmelblau")


@register("beale", "Beale's function: flat plateaus and steep ridges, minimum 0 at (3, 0.5)")
def beale() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2

    minimum = Minimum([3.0, 0.5], 0.0)
    return Objective("beale", fn, 2, [1.0, 1.0], _box(2, -4.5, 4.5), (minimum,), "Beale")


@register("booth", "Booth's function: a convex quadratic, minimum 0 at (1, 3)")
def booth() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        return (x + 2.0 * y - 7.0) ** 2 + (2.0 * x + y - 5.0) ** 2

    minimum = Minimum([1.0, 3.0], 0.0)
    return Objective("booth", fn, 2, [0.0, 0.0], _box(2, -10.0, 10.0), (minimum,), "Booth")


@register("rastrigin", "Rastrigin's function: a lattice of local minima, global 0 at the origin")
def rastrigin(dim: int = 2) -> Objective:
    dim = _check_dim("rastrigin", dim)

    def fn(x):
        return 10.0 * dim + jnp.sum(x**2 - 10.0 * jnp.cos(2.0 * jnp.pi * x))

    return Objective(
        "rastrigin",
        fn,
        dim,
        np.resize([2.2, -1.8], dim),
        _box(dim, -5.12, 5.12),
        (Minimum(np.zeros(dim), 0.0),),
        "Rastrigin",
    )


@register("ackley", "Ackley's function: a needle in a bumpy plain, global 0 at the origin")
def ackley(dim: int = 2, a: float = 20.0, b: float = 0.2, c: float = 2.0 * math.pi) -> Objective:
    dim = _check_dim("ackley", dim)
    a, b, c = float(a), float(b), float(c)

    def fn(x):
        s = jnp.mean(x**2)
        # sqrt has an infinite derivative at 0; the double `where` keeps the gradient finite
        # (zero, the symmetric subgradient) at the origin instead of 0 * inf = NaN.
        positive = s > 0
        r = jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1.0)), 0.0)
        return -a * jnp.exp(-b * r) - jnp.exp(jnp.mean(jnp.cos(c * x))) + a + math.e

    return Objective(
        "ackley",
        fn,
        dim,
        np.resize([2.5, -1.5], dim),
        _box(dim, -5.0, 5.0),
        (Minimum(np.zeros(dim), 0.0),),
        "Ackley",
    )


# x* solves 4x^3 - 32x + 5 = 0 (the leftmost root), to 17 digits.
_ST_X = -2.9035340277711771
_ST_F = -39.166165703771415  # per dimension


@register("styblinski_tang", "Styblinski-Tang: 0.5 sum(x^4 - 16x^2 + 5x), min -39.166.. d")
def styblinski_tang(dim: int = 2) -> Objective:
    dim = _check_dim("styblinski_tang", dim)

    def fn(x):
        return 0.5 * jnp.sum(x**4 - 16.0 * x**2 + 5.0 * x)

    return Objective(
        "styblinski_tang",
        fn,
        dim,
        np.resize([0.5, 1.0], dim),
        _box(dim, -5.0, 5.0),
        (Minimum(np.full(dim, _ST_X), _ST_F * dim),),
        "Styblinski-Tang",
    )


@register("six_hump_camel", "Six-hump camel: six local minima, two global of value -1.0316..")
def six_hump_camel() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        return (4.0 - 2.1 * x**2 + x**4 / 3.0) * x**2 + x * y + (-4.0 + 4.0 * y**2) * y**2

    xs, ys, f = 0.089842013100318062, -0.71265640302073963, -1.0316284534898774
    minima = (Minimum([xs, ys], f), Minimum([-xs, -ys], f))
    return Objective(
        "six_hump_camel", fn, 2, [-1.5, 1.0], [[-3.0, 3.0], [-2.0, 2.0]], minima, "six-hump camel"
    )


@register("goldstein_price", "Goldstein-Price: values spanning six decades, minimum 3 at (0, -1)")
def goldstein_price() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        t1 = 1.0 + (x + y + 1.0) ** 2 * (
            19.0 - 14.0 * x + 3.0 * x**2 - 14.0 * y + 6.0 * x * y + 3.0 * y**2
        )
        t2 = 30.0 + (2.0 * x - 3.0 * y) ** 2 * (
            18.0 - 32.0 * x + 12.0 * x**2 + 48.0 * y - 36.0 * x * y + 27.0 * y**2
        )
        return t1 * t2

    minimum = Minimum([0.0, -1.0], 3.0)
    return Objective(
        "goldstein_price", fn, 2, [-1.0, 1.0], _box(2, -2.0, 2.0), (minimum,), "Goldstein-Price"
    )


@register("parabola", "The tutorial parabola x^2 - 2x + 3: minimum 2 at x = 1")
def parabola() -> Objective:
    return Objective(
        "parabola",
        lambda x: jnp.sum(x**2 - 2.0 * x + 3.0),
        1,
        [4.0],
        [[-3.0, 5.0]],
        (Minimum([1.0], 2.0),),
        "parabola",
    )


@register("saddle", "The tutorial saddle x^2 + 3xy + y^2: unbounded below, no minimum")
def saddle() -> Objective:
    def fn(v):
        x, y = v[0], v[1]
        return x**2 + 3.0 * x * y + y**2

    # The start is off the saddle's stable manifold (the line y = x), so descent escapes.
    return Objective("saddle", fn, 2, [1.0, -0.5], _box(2, -3.0, 3.0), (), "saddle")
