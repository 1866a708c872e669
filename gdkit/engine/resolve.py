"""What `sweep` resolves its arguments to: optimizer factories, dtypes, batch sizes."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from gdkit import _checks
from gdkit.objectives import Objective

_OPTAX_ALIASES = {"gd": "sgd", "gradient_descent": "sgd"}


def batch_size(value, obj: Objective) -> int | None:
    """`batch_size` grid value -> None (the full batch) or a mini-batch size in [1, n]."""
    if str(value) == "full":
        return None
    if obj.minibatch is None or obj.data is None:
        raise ValueError(
            f"sweep: batch_size {value!r} needs a data objective; {obj.name} has no mini-batches"
        )
    from gdkit.objectives.data import check_batch_size

    try:
        size = int(value) if isinstance(value, str) and value.isdigit() else value
        return check_batch_size(size, obj.data.n)
    except ValueError as e:
        raise ValueError(f"sweep: {e}") from None


def pytree_objective(objective, x0) -> tuple[Any, Any]:
    """(objective, x0), flattened when x0 is a parameter pytree (or a list of them): then
    `objective` is the user's `fn(params) -> scalar` and becomes an `Objective` of the flat
    vector, named coordinates and `unravel` included, and x0 its flat starts [S, d]."""
    from gdkit.objectives import pytree

    if not pytree.is_points(x0):
        return objective, x0
    if isinstance(objective, Objective | str) or not callable(objective):
        raise TypeError(
            "sweep: a pytree x0 needs the objective as a function of that pytree "
            f"(fn(params) -> scalar), got {_checks.short(objective)}"
        )
    return pytree.from_pytree(objective, x0)


def needs_residuals(optimizer) -> bool:
    from gdkit.optimizers import needs_residual_fn

    return needs_residual_fn(optimizer)


def optimizer(optimizer) -> tuple[Callable[..., Any], str, Any]:
    """-> (factory(**hparams), display name, cache key)."""
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer, getattr(optimizer, "__name__", type(optimizer).__name__), optimizer
    if not isinstance(optimizer, str):
        raise TypeError(
            f"sweep: optimizer must be a name or a factory, got {_checks.short(optimizer)}"
        )
    try:
        from gdkit import optimizers as _optimizers

        known = optimizer in _optimizers.names()
    except (ImportError, AttributeError):
        known = False
    if known:
        return _factory_from_registry(optimizer), optimizer, ("gdkit", optimizer)
    name = _OPTAX_ALIASES.get(optimizer, optimizer)
    fn = None if name.startswith("_") else getattr(optax, name, None)
    if not callable(fn):
        raise ValueError(
            f"sweep: unknown optimizer {_checks.short(optimizer)} (neither a gdkit optimizer "
            "nor an optax alias; see gdkit.optimizers.names())"
        )
    return fn, optimizer, ("optax", name)


@functools.cache
def _factory_from_registry(name):
    from gdkit import optimizers as _optimizers

    return functools.partial(_optimizers.get, name)


def dtype(dtype) -> np.dtype:
    x64 = jax.config.jax_enable_x64
    if dtype is None:
        return np.dtype(np.float64 if x64 else np.float32)
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"sweep: dtype must be float32 or float64, got {_checks.short(dtype)}"
        ) from None
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise ValueError(f"sweep: dtype must be float32 or float64, got {dt}")
    if dt == np.float64 and not x64:
        raise ValueError(
            "sweep: dtype=float64 needs JAX's x64 mode (gdkit.enable_x64() or "
            "`with jax.enable_x64(True):`); refusing to downcast to float32"
        )
    return dt


def check_hparams(optimizer: Any, make: Callable[..., Any], name: str, g: Any) -> None:
    """The grid's hyperparameters, checked before anything is traced: a gdkit optimizer is
    built with every value (`gdkit.optimizers.check_hparams`, the rule the config layer uses);
    an optax alias or a factory of one's own gets its names checked against its signature, its
    numbers checked to be finite, and (optax) the usual ranges of the usual names."""
    from gdkit import optimizers as _optimizers

    fixed = {k: v for k, v in {**g.fixed, **g.static}.items() if k != "batch_size"}
    swept = {k: v for k, v in g.axes.items() if k != "batch_size"}
    try:
        if isinstance(optimizer, str) and optimizer in _optimizers.names():
            _optimizers.check_hparams(optimizer, fixed, swept)
            return
        _check_names(make, name, [*fixed, *swept])
        for key, values in [*((k, [v]) for k, v in fixed.items()), *swept.items()]:
            for v in values:
                v = v.item() if isinstance(v, np.generic) else v
                if isinstance(v, float) and not np.isfinite(v):
                    raise ValueError(f"{name}: {key} must be finite, got {v!r}")
                if not callable(optimizer):  # an optax alias: optax's names mean the usual
                    _optimizers.check_range(name, key, v)
    except (ValueError, TypeError) as e:
        raise type(e)(f"sweep: grid: {e}") from None


def _check_names(make: Callable[..., Any], name: str, keys: list[str]) -> None:
    try:
        params = inspect.signature(make).parameters.values()
    except (TypeError, ValueError):  # no signature to check against
        return
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return
    known = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key in keys:
        if key not in known:
            raise ValueError(
                f"{name} has no hyperparameter {key!r}; hyperparameters: {', '.join(known)}"
            )
    missing = [
        p.name for p in params if p.name in known and p.default is p.empty and p.name not in keys
    ]
    if missing:
        raise ValueError(f"{name} needs {missing[0]} (give it a value in the grid)")
