"""The `Objective` value: a pure JAX function plus what is known about it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from gdkit._checks import integer, is_int, short

Array = jax.Array
MAX_DIM = 10**8  # coordinates: x0 and the bounds alone take 2.4 GB of float64 there
ObjectiveFn = Callable[[Array], Array]
# minibatch(x, key, step, batch_size) -> the loss on the mini-batch that step `step` of a lane
# with PRNG key `key` uses (see `gdkit.objectives.data.batch_indices`).
MinibatchFn = Callable[[Array, Array, Array, int], Array]


@dataclasses.dataclass(frozen=True)
class Minimum:
    """A known global minimum: location `x` (float64, shape [d]) and value `f`."""

    x: np.ndarray
    f: float

    def __post_init__(self):
        x = _floats("minima: x", self.x).reshape(-1)
        f = _floats("minima: f", self.f)
        if f.ndim != 0:
            raise ValueError(f"minima: f must be a finite number, got {short(self.f)}")
        object.__setattr__(self, "x", _readonly(x))
        object.__setattr__(self, "f", float(f))


@dataclasses.dataclass(frozen=True, eq=False)
class Objective:
    """A test function `fn: [d] -> scalar` with its customary start, bounds and known minima.

    `fn` is pure and dtype-preserving: float32 in, float32 out; float64 in (with x64 enabled),
    float64 out. Metadata (`x0`, `bounds`, `minima`) is kept as float64 NumPy arrays so that
    known values keep all their digits whatever precision the computation runs in.

    Data objectives (`gdkit.objectives.data`) also fill in the optional fields:

    - `param_names`: a readable name per coordinate of x (`("w[0]", "w[1]", "b")`); empty means
      `x_0, x_1, ...` (see `names_of_params`).
    - `unravel`: flat x [d] -> the model's parameter pytree (a dict of arrays, x's dtype).
    - `minibatch`: `minibatch(x, key, step, batch_size) -> scalar`, the loss on the mini-batch
      that step `step` of a lane with PRNG key `key` uses; an unbiased estimate of `fn(x)`.
      Stateless, so a compiled loop needs no extra state (`data.batch_indices`).
    - `residual_fn`: x -> residual vector r with `fn(x) == 0.5 * sum(r**2)` (for a mean
      squared error r = sqrt(2/n) (prediction - y)); what least-squares methods use.
    - `data`: the `Dataset` (features, target, names, source), for plots.
    - `predict`: `predict(x, X) -> [m]`, the fitted model's outputs at features X [m, k].

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from gdkit import objectives
      >>> obj = objectives.get("rosenbrock")
      >>> print(obj(jnp.array([-1.2, 1.0])))  # 24.2 in float32
      24.200005
      >>> jax.vmap(obj.fn)(jnp.zeros((5, 2))).shape
      (5,)
    """

    name: str
    fn: ObjectiveFn
    dim: int
    x0: np.ndarray
    bounds: np.ndarray
    minima: tuple[Minimum, ...] = ()
    description: str = ""
    param_names: tuple[str, ...] = ()
    minibatch: MinibatchFn | None = None
    residual_fn: ObjectiveFn | None = None
    data: Any = None
    unravel: Callable[[Array], Any] | None = None
    predict: Callable[[Array, Any], Array] | None = None

    def __post_init__(self):
        if not is_int(self.dim) or self.dim < 1:
            raise ValueError(f"{self.name}: dim must be an integer >= 1, got {short(self.dim)}")
        bounds = _floats(f"{self.name}: bounds", self.bounds)
        x0 = _floats(f"{self.name}: x0", self.x0).reshape(-1)
        if bounds.size % 2:
            raise ValueError(f"{self.name}: bounds must be [dim, 2] rows of (low < high)")
        bounds = bounds.reshape(-1, 2)
        if x0.shape != (self.dim,):
            raise ValueError(f"{self.name}: x0 has {x0.size} entries, expected dim={self.dim}")
        if bounds.shape != (self.dim, 2) or np.any(bounds[:, 0] >= bounds[:, 1]):
            raise ValueError(f"{self.name}: bounds must be [dim, 2] rows of (low < high)")
        object.__setattr__(self, "x0", _readonly(x0))
        object.__setattr__(self, "bounds", _readonly(bounds))
        object.__setattr__(self, "minima", tuple(self.minima))
        names = tuple(str(n) for n in self.param_names)
        if names and len(names) != self.dim:
            raise ValueError(
                f"{self.name}: param_names has {len(names)} names, expected dim={self.dim}"
            )
        object.__setattr__(self, "param_names", names)

    def __call__(self, x: Array) -> Array:
        return self.fn(x)

    @property
    def f_min(self) -> float | None:
        """The global minimum value, or None when there is none (or it is unknown)."""
        return min(m.f for m in self.minima) if self.minima else None

    @property
    def names_of_params(self) -> tuple[str, ...]:
        """`param_names`, or `("x_0", "x_1", ...)` when there are none.

        Example:
          >>> from gdkit import objectives
          >>> objectives.get("rosenbrock").names_of_params
          ('x_0', 'x_1')
          >>> objectives.get("linear_regression").names_of_params
          ('w[0]', 'w[1]', 'b')
        """
        return self.param_names or tuple(f"x_{i}" for i in range(self.dim))

    def __repr__(self) -> str:
        return f"Objective({self.name!r}, dim={self.dim}, minima={len(self.minima)})"


def wrap(
    fn: ObjectiveFn | None = None,
    *,
    dim: int | None = None,
    x0: Sequence[float] | np.ndarray | None = None,
    bounds: Sequence[Sequence[float]] | np.ndarray | None = None,
    minima: Sequence[Minimum | tuple] = (),
    name: str | None = None,
    description: str = "",
    residual_fn: ObjectiveFn | None = None,
    param_names: Sequence[str] = (),
) -> Objective:
    """Wraps any JAX-traceable callable `fn: [d] -> scalar` into an `Objective`.

    The dimension comes from `dim`, `x0` or `bounds` (whichever is given). Without `x0` the
    start is the centre of `bounds`; without `bounds` they are [-5, 5] in every coordinate.
    `minima` holds `Minimum` values or `(x, f)` pairs.

    For least squares give `residual_fn: [d] -> [m]`, the residuals r(x), which
    `gauss_newton` and `levenberg_marquardt` use: the objective is then
    f(x) = 0.5 * sum(r(x)**2), and `fn` may be left out. A `fn` given with it must be that
    function (checked at `x0`). `param_names` names the coordinates in tables.

    Example:
      >>> import jax.numpy as jnp
      >>> from gdkit import objectives
      >>> obj = objectives.wrap(lambda x: jnp.sum((x - 1.0) ** 2), dim=3,
      ...                       minima=[([1.0, 1.0, 1.0], 0.0)])
      >>> obj.dim, obj.f_min
      (3, 0.0)
      >>> t = jnp.array([0.0, 1.0, 2.0]); y = jnp.array([2.0, 2.7, 3.7])
      >>> fit = objectives.wrap(residual_fn=lambda p: p[0] * jnp.exp(p[1] * t) - y, x0=[1.0, 0.1])
      >>> print(fit(jnp.array([1.0, 0.0])))   # 0.5 * (1 + 1.7**2 + 2.7**2)
      5.59
    """
    if residual_fn is not None and not callable(residual_fn):
        raise TypeError(
            f"wrap: residual_fn must be a callable x -> residuals, got {short(residual_fn)}"
        )
    if fn is None:
        if residual_fn is None:
            raise TypeError("wrap: give fn (x -> scalar) or residual_fn (x -> residuals)")
        fn = _half_sum_of_squares(residual_fn)
        name = name or getattr(residual_fn, "__name__", "least_squares")
    elif not callable(fn):
        raise TypeError(f"wrap: fn must be a callable x -> scalar, got {short(fn)}")
    if dim is None:
        if x0 is not None:
            dim = int(np.asarray(x0).size)
        elif bounds is not None:
            dim = int(np.asarray(bounds).reshape(-1, 2).shape[0])
        else:
            raise ValueError("wrap: give dim, x0 or bounds so the dimension is known")
    dim = integer("wrap", "dim", dim, 1, MAX_DIM)
    if bounds is None:
        bounds = np.tile([-5.0, 5.0], (dim, 1))
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    if x0 is None:
        x0 = bounds.mean(axis=1)
    mins = tuple(m if isinstance(m, Minimum) else Minimum(*m) for m in minima)
    obj = Objective(
        name=name or getattr(fn, "__name__", "objective"),
        fn=fn,
        dim=int(dim),
        x0=x0,
        bounds=bounds,
        minima=mins,
        description=description,
        residual_fn=residual_fn,
        param_names=tuple(param_names),
    )
    if residual_fn is not None:
        _check_residuals(obj)
    return obj


def _half_sum_of_squares(residual_fn: ObjectiveFn) -> ObjectiveFn:
    """x -> 0.5 * sum(residual_fn(x)**2), the objective of least squares."""

    def fn(x):
        r = residual_fn(x)
        return 0.5 * jax.numpy.sum(r * r)

    return fn


def _check_residuals(obj: Objective) -> None:
    """Evaluates fn and residual_fn at x0 once: residual_fn must give a vector of finite
    numbers whose half sum of squares is fn (what the least-squares methods assume)."""
    x = jax.numpy.asarray(obj.x0)
    try:
        r = np.asarray(obj.residual_fn(x), dtype=np.float64)
    except Exception as e:
        raise ValueError(f"wrap: residual_fn failed at x0: {type(e).__name__}: {e}") from None
    if r.size == 0:
        raise ValueError("wrap: residual_fn must return residuals, got an empty array")
    want = 0.5 * float(np.sum(r.reshape(-1) ** 2))
    got = float(np.asarray(obj.fn(x)))
    eps = float(np.finfo(np.asarray(obj.residual_fn(x)).dtype).eps)
    if not np.isclose(got, want, rtol=1e3 * eps, atol=1e3 * eps):
        raise ValueError(
            f"wrap: fn must equal 0.5 * sum(residual_fn**2); at x0 fn = {got:.6g}, "
            f"0.5 * sum(residual_fn**2) = {want:.6g}"
        )


def _floats(where: str, value: Any) -> np.ndarray:
    """`value` as a float64 array of finite numbers; ValueError naming `where` otherwise."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{where} must be finite numbers, got {short(value)}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where} must be finite numbers, got {short(value)}")
    return arr


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a
