"""What `sweep` resolves its arguments to: optimizer factories, dtypes, batch sizes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

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


def needs_residuals(optimizer) -> bool:
    from gdkit.optimizers import needs_residual_fn

    return needs_residual_fn(optimizer)


def optimizer(optimizer) -> tuple[Callable[..., Any], str, Any]:
    """-> (factory(**hparams), display name, cache key)."""
    if callable(optimizer) and not isinstance(optimizer, str):
        return optimizer, getattr(optimizer, "__name__", type(optimizer).__name__), optimizer
    if not isinstance(optimizer, str):
        raise TypeError(f"sweep: optimizer must be a name or a factory, got {optimizer!r}")
    try:
        from gdkit import optimizers as _optimizers

        known = optimizer in _optimizers.names()
    except (ImportError, AttributeError):
        known = False
    if known:
        return _factory_from_registry(optimizer), optimizer, ("gdkit", optimizer)
    name = _OPTAX_ALIASES.get(optimizer, optimizer)
    fn = getattr(optax, name, None)
    if not callable(fn):
        raise ValueError(f"sweep: unknown optimizer {optimizer!r} (not an optax alias)")
    return fn, optimizer, ("optax", name)


@functools.cache
def _factory_from_registry(name):
    from gdkit import optimizers as _optimizers

    return functools.partial(_optimizers.get, name)


def dtype(dtype) -> np.dtype:
    x64 = jax.config.jax_enable_x64
    if dtype is None:
        return np.dtype(np.float64 if x64 else np.float32)
    dt = np.dtype(dtype)
    if dt.kind != "f" or dt.itemsize not in (4, 8):
        raise ValueError(f"sweep: dtype must be float32 or float64, got {dt}")
    if dt == np.float64 and not x64:
        raise ValueError(
            "sweep: dtype=float64 needs JAX's x64 mode (gdkit.enable_x64() or "
            "`with jax.enable_x64(True):`); refusing to downcast to float32"
        )
    return dt
