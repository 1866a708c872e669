"""Name -> optimizer registry; validation of hyperparameters at the API boundary.

`register` turns a plain builder `build(**hparams) -> optax transformation` into the public
factory: it checks names and Python-number values (never JAX arrays, which must stay
traceable), resolves the learning-rate schedule and composes the common options
(see `_options.py`) around the transformation.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from gdkit._checks import is_real, short
from gdkit.optimizers import _options

Factory = Callable[..., optax.GradientTransformationExtraArgs]
KINDS = ("first_order", "line_search", "second_order")

# Allowed ranges of real hyperparameters, by name: (low, high, low_inclusive, high_inclusive).
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "learning_rate": (0.0, math.inf, False, False),
    "clip": (0.0, math.inf, False, False),
    "clip_norm": (0.0, math.inf, False, False),
    "decay_rate": (0.0, math.inf, False, False),
    "step_bound": (0.0, math.inf, False, False),
    "alpha": (0.0, 1.0, True, True),
    "slope_rtol": (0.0, 1.0, False, False),
    "curv_rtol": (0.0, 1.0, False, False),
    "decrease_factor": (0.0, 1.0, False, False),
    **dict.fromkeys(("b1", "b2", "momentum", "decay", "rho"), (0.0, 1.0, True, False)),
    **dict.fromkeys(
        (
            "eps",
            "eps_root",
            "initial_accumulator_value",
            "initial_scale",
            "damping",
            "weight_decay",
        ),
        (0.0, math.inf, True, False),
    ),
}
# Integer (structural) hyperparameters: name -> smallest allowed value.
_INTS: dict[str, int] = {
    "decay_steps": 1,
    "warmup_steps": 0,
    "memory_size": 1,
    "max_linesearch_steps": 1,
    "restart_every": 1,
}


@dataclasses.dataclass(frozen=True)
class OptimizerInfo:
    """What the CLI shows: name, one-line description, kind, hyperparameters with defaults.

    `options` are the settings every optimizer accepts on top of its own `hparams`
    (schedule, clipping, weight decay); see `gdkit.optimizers.OPTIONS`.
    """

    name: str
    description: str
    kind: str
    hparams: dict[str, Any]
    options: dict[str, Any]
    factory: Factory = dataclasses.field(repr=False, compare=False)


_REGISTRY: dict[str, OptimizerInfo] = {}


def register(name: str, description: str, kind: str = "first_order") -> Callable:
    """Registers `build` under `name` and returns the validated public factory."""
    assert kind in KINDS, kind

    def deco(build: Callable[..., optax.GradientTransformation]) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"optimizer {name!r} is already registered")
        sig = inspect.signature(build)
        hparams = {p.name: p.default for p in sig.parameters.values()}
        options = {k: v for k, v in _options.OPTIONS.items() if k not in hparams}

        defaults = {**hparams, **options}

        @functools.wraps(build)
        def factory(*args, **kwargs) -> optax.GradientTransformationExtraArgs:
            given = _bind(name, hparams, options, args, kwargs)
            # None where the signature shows None means "the default" (see `_published`)
            given = {
                k: v
                for k, v in given.items()
                if v is not None or _published(k, defaults[k]) is not None
            }
            for key, value in given.items():
                _check_value(name, key, value, defaults[key])
            opts = {k: given.pop(k) for k in list(given) if k in options}
            _options.check_schedule(name, opts)
            sched = {k: opts.pop(k) for k in list(opts) if k in _options.SCHEDULE_KEYS}
            hp = {**hparams, **given}
            if callable(hp["learning_rate"]) and sched.get("schedule", "constant") != "constant":
                raise ValueError(f"{name}: learning_rate is a schedule already; drop schedule=")
            hp["learning_rate"] = _options.schedule(hp["learning_rate"], **sched)
            opt = _options.wrap(build(**hp), **opts)
            return opt if kind == "first_order" else _needs_value_fn(name, opt)

        own = [p.replace(default=_published(p.name, p.default)) for p in sig.parameters.values()]
        extra = [
            inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=_published(k, v))
            for k, v in options.items()
        ]
        factory.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[*own, *extra],
            return_annotation=optax.GradientTransformationExtraArgs,
        )
        _REGISTRY[name] = OptimizerInfo(name, description, kind, hparams, options, factory)
        return factory

    return deco


def _published(key: str, default: Any) -> Any:
    """The default the public factory's signature shows for `key`: None ("the default") for the
    structural integers and the schedule-only numbers, the true default otherwise.

    `optax.inject_hyperparams(factory)` binds the factory's signature with its defaults and
    turns every int or float argument into an array in its state (traced under `jit`), passing
    None, strings and bools through as static values. So what must stay a Python int (a shape,
    a loop length, a schedule's length) or applies only to a schedule that is not chosen
    shows None there, and the factory reads None as "the default"; the numeric hyperparameters
    keep their numbers and become injectable.
    """
    return None if key in _INTS or key in _options.SCHEDULE_ONLY else default


def names() -> list[str]:
    """The registered optimizer names: first order, line search, second order; each sorted."""
    return sorted(_REGISTRY, key=lambda n: (KINDS.index(_REGISTRY[n].kind), n))


def entries() -> list[OptimizerInfo]:
    """Name, description, kind, hyperparameters and options of every optimizer."""
    return [_REGISTRY[n] for n in names()]


def info(name: str) -> OptimizerInfo:
    """The `OptimizerInfo` of `name`; ValueError listing the known names if there is none.

    Example:
      >>> from gdkit import optimizers
      >>> optimizers.info("adam").hparams
      {'learning_rate': 0.001, 'b1': 0.9, 'b2': 0.999, 'eps': 1e-08}
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string, got {short(name)}")
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown optimizer {short(name)}{_suggest(name, _REGISTRY)}; "
            f"known: {', '.join(names())}"
        )
    return _REGISTRY[name]


def get(name: str, **hparams) -> optax.GradientTransformationExtraArgs:
    """Builds optimizer `name` with `hparams` (its own hyperparameters and the common options).

    Numeric hyperparameters may be JAX arrays, also tracers inside `jax.vmap`/`jax.jit`, so a
    sweep over them compiles once. Python numbers are validated here; errors name the
    optimizer, the argument, and what is allowed.

    Example:
      >>> import jax.numpy as jnp
      >>> from gdkit import optimizers
      >>> opt = optimizers.get("adam", learning_rate=0.1, clip_norm=1.0)
      >>> state = opt.init(jnp.zeros(3))
      >>> optimizers.get("nesterv")
      Traceback (most recent call last):
      ...
      ValueError: unknown optimizer 'nesterv' (did you mean 'nesterov'?); known: adadelta, ...
    """
    return info(name).factory(**hparams)


def _needs_value_fn(
    name: str, opt: optax.GradientTransformationExtraArgs
) -> optax.GradientTransformationExtraArgs:
    """Fails early, with a usable message, when `update` lacks the objective."""

    def update_fn(updates, state, params=None, **extra):
        if extra.get("value_fn") is None or params is None:
            raise ValueError(
                f"{name} needs the objective: call opt.update(grad, state, params, "
                "value=f(params), grad=grad, value_fn=f)"
            )
        return opt.update(updates, state, params, **extra)

    return optax.GradientTransformationExtraArgs(opt.init, update_fn)


def _bind(name, hparams, options, args, kwargs) -> dict[str, Any]:
    if len(args) > len(hparams):
        raise ValueError(
            f"{name} takes at most {len(hparams)} positional arguments "
            f"({', '.join(hparams)}), got {len(args)}"
        )
    given = dict(zip(hparams, args, strict=False))
    for key, value in kwargs.items():
        if key in given:
            raise ValueError(f"{name}: {key!r} given both positionally and by keyword")
        if key not in hparams and key not in options:
            raise ValueError(
                f"{name} has no hyperparameter {key!r}{_suggest(key, [*hparams, *options])}; "
                f"hyperparameters: {', '.join(hparams)}; options: {', '.join(options)}"
            )
        given[key] = value
    return given


def _check_value(name: str, key: str, value: Any, default: Any) -> None:
    where = f"{name}: {key}"
    if value is None and default is None:
        return
    if key == "schedule":
        return  # checked with the other schedule options
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be True or False, got {short(value)}")
        return
    if key in _INTS:
        if isinstance(value, jax.Array):
            raise ValueError(
                f"{where} must be a Python int (it fixes a shape, a loop length or a schedule), "
                f"got a JAX array; under optax.inject_hyperparams name it in static_args"
            )
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{where} must be a Python int, got {short(value)}")
        if value < _INTS[key]:
            raise ValueError(f"{where} must be >= {_INTS[key]}, got {value}")
        return
    if isinstance(value, jax.Array) or (key == "learning_rate" and callable(value)):
        return  # data (maybe traced) or an optax schedule: never branched on
    if isinstance(value, bool | str) or not isinstance(value, int | float | np.number | np.ndarray):
        raise ValueError(f"{where} must be a number or a JAX array, got {short(value)}")
    check_range(name, key, value)


def check_range(name: str, key: str, value: Any) -> None:
    """Refuses a concrete number (or NumPy array) outside the range of hyperparameter `key`
    (learning_rate > 0, b1, b2, momentum in [0, 1), eps >= 0, ...); names it knows nothing of
    need only be finite. JAX arrays, which may be traced, are never looked at."""
    if isinstance(value, jax.Array | bool) or not is_real_array(value):
        return
    low, high, low_in, high_in = _RANGES.get(key, (-math.inf, math.inf, False, False))
    try:
        arr = np.asarray(value, dtype=np.float64)
    except OverflowError:  # an int too large for a float
        arr = np.asarray(math.inf)
    ok = np.isfinite(arr) & (arr >= low if low_in else arr > low)
    ok &= arr <= high if high_in else arr < high
    if not np.all(ok):
        interval = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        got = short(value) if arr.ndim == 0 else f"{float(arr[~ok].flat[0])!r} in {short(value)}"
        raise ValueError(f"{name}: {key} must be finite and in {interval}, got {got}")


def is_real_array(value: Any) -> bool:
    """A Python/NumPy number or a NumPy array of numbers (bools excluded)."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind in "iuf"
    return is_real(value)


def check_hparams(name: str, fixed: dict[str, Any], swept: dict[str, Any]) -> None:
    """Builds optimizer `name` with the `fixed` values and every value of each `swept`
    hyperparameter (name -> 1-D values), so that a bad one raises the factory's own error
    (naming the optimizer, the hyperparameter and what is allowed) before anything is traced.
    A float axis is built at once, as an array; its values one by one only to name a bad one.

    Example:
      >>> from gdkit import optimizers
      >>> optimizers.check_hparams("adam", {"b1": 0.9}, {"learning_rate": [0.1, -1.0]})
      Traceback (most recent call last):
      ...
      ValueError: adam: learning_rate must be finite and in (0, inf), got -1.0
    """
    swept = {k: np.asarray(v) if not isinstance(v, np.ndarray) else v for k, v in swept.items()}
    first = {k: _py(v[0]) for k, v in swept.items()}
    get(name, **fixed, **first)
    for k, values in swept.items():
        if values.dtype.kind == "f":
            try:
                get(name, **{**fixed, **first, k: values})
                continue
            except (ValueError, TypeError):
                pass
        for v in values:
            get(name, **{**fixed, **first, k: _py(v)})


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
