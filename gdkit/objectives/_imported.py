"""Objectives named by import path (`package.module:attr`), and the marks that allow them.

An import path reaches any attribute of any module, so it is honoured only for what its author
marked as an objective: an `Objective` value (`@objective(...)` makes one from a plain function)
or a factory marked with `@objective_factory`, which is called with its declared parameters
and nothing else. Any other callable is refused, never called: `shutil:rmtree` is not an
objective, whatever keyword arguments come with it.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from gdkit.objectives._base import Minimum, Objective, ObjectiveFn, wrap


class ImportPathError(ValueError):
    """An import path that names no objective: malformed, not importable, or not marked."""


_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
_MARKS = "@gdkit.objectives.objective or @gdkit.objectives.objective_factory"


def objective(
    fn: ObjectiveFn | None = None,
    *,
    dim: int | None = None,
    x0: Sequence[float] | np.ndarray | None = None,
    bounds: Sequence[Sequence[float]] | np.ndarray | None = None,
    minima: Sequence[Minimum | tuple] = (),
    name: str | None = None,
    description: str = "",
) -> Any:
    """Marks `fn: [d] -> scalar` as an objective: the decorated name is an `Objective`.

    The decorator form of `wrap` (same arguments), for a function that configs and
    `objectives.get` may name by import path (`my_module:bowl`). Its fixed `dim` comes from
    `dim`, `x0` or `bounds`; for a parameterised family, mark a factory with
    `objective_factory` instead.

    Example:
      >>> import jax.numpy as jnp
      >>> from gdkit import objectives
      >>> @objectives.objective(dim=2, minima=[([1.0, 1.0], 0.0)])
      ... def bowl(x):
      ...     return jnp.sum((x - 1.0) ** 2)
      >>> bowl
      Objective('bowl', dim=2, minima=1)
      >>> float(bowl(jnp.zeros(2)))
      2.0
    """
    kwargs = dict(dim=dim, x0=x0, bounds=bounds, minima=minima, description=description)

    def mark(f: ObjectiveFn) -> Objective:
        if not callable(f) or isinstance(f, Objective):
            raise TypeError(f"objective: expected a function [d] -> scalar, got {f!r}")
        return wrap(f, name=name or getattr(f, "__name__", None), **kwargs)

    return mark if fn is None else mark(fn)


class ObjectiveFactory:
    """A function `fn(**params) -> Objective` marked with `objective_factory`.

    Calling it binds only the parameters `fn` declares (`params`: name -> default,
    `inspect.Parameter.empty` when required) and checks that the result is an `Objective`.
    """

    def __init__(self, fn: Callable[..., Objective]):
        if not callable(fn) or isinstance(fn, ObjectiveFactory | Objective):
            raise TypeError(f"objective_factory: expected a function, got {fn!r}")
        label = getattr(fn, "__qualname__", repr(fn))
        self.signature = inspect.signature(fn)
        for p in self.signature.parameters.values():
            star = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind)
            if star or p.kind is p.POSITIONAL_ONLY:
                raise TypeError(
                    f"objective_factory: {label} takes {star or ''}{p.name}"
                    f"{' (positional only)' * (not star)}; a marked factory declares each "
                    "parameter by name, so a config passes only those"
                )
        self.fn = fn
        self.params = {p.name: p.default for p in self.signature.parameters.values()}
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **params: Any) -> Objective:
        label = f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', '?')}"
        return self.build(label, *args, **params)

    def build(self, label: str, *args: Any, **params: Any) -> Objective:
        """`fn(*args, **params)` after checking the names; `label` names it in errors."""
        unknown = [k for k in params if k not in self.params]
        if unknown:
            raise ValueError(_no_parameter(label, unknown[0], self.params))
        try:
            bound = self.signature.bind(*args, **params)
        except TypeError as e:
            raise ValueError(f"objective {label!r}: {e}") from None
        obj = self.fn(*bound.args, **bound.kwargs)
        if not isinstance(obj, Objective):
            raise ValueError(f"{label}(...) returned {type(obj).__name__}, not an Objective")
        return obj

    def __repr__(self) -> str:
        return f"objective_factory({getattr(self.fn, '__qualname__', self.fn)!r})"


def objective_factory(fn: Callable[..., Objective]) -> ObjectiveFactory:
    """Marks `fn(**params) -> Objective` as an objective factory that import paths may call.

    A config (or `objectives.get`) that names it passes only the parameters `fn` declares by
    name; any other key is refused, naming it. `fn` may not take `*args` or `**kwargs`.

    Example:
      >>> import jax.numpy as jnp
      >>> from gdkit import objectives
      >>> @objectives.objective_factory
      ... def shifted_bowl(shift: float = 1.0, dim: int = 2) -> objectives.Objective:
      ...     return objectives.wrap(lambda x: jnp.sum((x - shift) ** 2), dim=dim,
      ...                            minima=[([shift] * dim, 0.0)])
      >>> shifted_bowl(shift=3.0, dim=3).minima[0].x
      array([3., 3., 3.])
      >>> shifted_bowl(path="/")
      Traceback (most recent call last):
      ...
      ValueError: objective '...:shifted_bowl' has no parameter 'path'; parameters: shift, dim
    """
    return ObjectiveFactory(fn)


def from_import_path(path: str, params: dict[str, Any]) -> Objective:
    """The objective at `package.module:attr` (which is imported): an `Objective` (taking no
    `params`) or an `objective_factory` (taking its declared ones). Anything else is refused
    without being called."""
    if not _PATH.match(path):
        raise ImportPathError(f"{path!r} is not an import path 'package.module:name'")
    module_name, _, attr = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ImportPathError(f"cannot import objective {path!r}: {e}") from None
    if isinstance(target, Objective):
        if params:
            raise ValueError(_no_parameter(path, next(iter(params)), {}, " (an Objective)"))
        return target
    if isinstance(target, ObjectiveFactory):
        return target.build(path, **params)
    raise ImportPathError(
        f"{path!r} is {_kind(target)}, not an Objective or a function marked with {_MARKS}; "
        "it is not called"
    )


def _no_parameter(label: str, key: str, allowed: dict, what: str = "") -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    did = f" (did you mean {close[0]!r}?)" if close else ""
    return (
        f"objective {label!r}{what} has no parameter {key!r}{did}; "
        f"parameters: {', '.join(allowed) or '(none)'}"
    )


def _kind(x: Any) -> str:
    if inspect.isclass(x):
        return "a class"
    if inspect.isroutine(x):
        return "a function"
    if inspect.ismodule(x):
        return "a module"
    return f"a {type(x).__name__}"
