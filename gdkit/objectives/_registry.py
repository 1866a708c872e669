"""Name -> objective factory registry, plus `module:function` import paths."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
from collections.abc import Callable

from gdkit._checks import short
from gdkit.objectives._base import Objective, wrap

Factory = Callable[..., Objective]


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    factory: Factory
    description: str

    @property
    def params(self) -> dict[str, object]:
        """Parameter name -> default (`inspect.Parameter.empty` when required)."""
        sig = inspect.signature(self.factory)
        return {p.name: p.default for p in sig.parameters.values()}


_REGISTRY: dict[str, Entry] = {}
_CACHE: dict[tuple, Objective] = {}


def register(name: str, description: str) -> Callable[[Factory], Factory]:
    """Registers `factory(**params) -> Objective` under `name`."""

    def deco(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ValueError(f"objective {name!r} is already registered")
        _REGISTRY[name] = Entry(name, factory, description)
        return factory

    return deco


def names() -> list[str]:
    """The registered objective names, sorted."""
    return sorted(_REGISTRY)


def entries() -> list[Entry]:
    """Name, description and parameters (with defaults) of every registered objective."""
    return [_REGISTRY[n] for n in names()]


def get(name: str, **params) -> Objective:
    """Returns the objective `name` built with `params`.

    `name` is a registered name (see `names()`) or an import path `package.module:attr` whose
    attribute is an `Objective`, a factory returning one, or a plain function `[d] -> scalar`
    (then `params` are those of `wrap`: dim, x0, bounds, minima). The same name and hashable
    params return the same `Objective` object, so compiled programs are reused.

    Example:
      >>> from gdkit import objectives
      >>> objectives.get("himmelblau").f_min
      0.0
      >>> objectives.get("rosenbrock", dim=4).dim
      4
    """
    if not isinstance(name, str):
        raise TypeError(f"objective name must be a string, got {short(name)}")
    if ":" in name:
        return _from_import_path(name, params)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown objective {short(name)}{_suggest(name, names())}; known: "
            f"{', '.join(names())}, or an import path 'module:function'"
        )
    entry = _REGISTRY[name]
    allowed = entry.params
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"objective {name!r} has no parameter {unknown[0]!r}"
            f"{_suggest(unknown[0], allowed)}; parameters: "
            f"{', '.join(allowed) or '(none)'}"
        )
    key = (name, tuple(sorted(params.items())))
    try:
        return _CACHE[key]
    except TypeError:  # unhashable params (an explicit matrix, say): build a fresh one
        return entry.factory(**params)
    except KeyError:
        obj = _CACHE[key] = entry.factory(**params)
        return obj


def _from_import_path(path: str, params: dict) -> Objective:
    module_name, _, attr = path.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"cannot import objective {path!r}: {e}") from None
    if isinstance(target, Objective):
        if params:
            raise ValueError(f"{path} is an Objective already; it takes no parameters")
        return target
    if not callable(target):
        raise ValueError(f"{path} is neither an Objective nor a callable")
    if set(params) <= {"dim", "x0", "bounds", "minima"} and not _returns_objective(target):
        return wrap(target, name=attr, **params)
    obj = target(**params)
    if not isinstance(obj, Objective):
        raise ValueError(f"{path}(**params) returned {type(obj).__name__}, not an Objective")
    return obj


def _returns_objective(fn: Callable) -> bool:
    ann = inspect.signature(fn).return_annotation
    return ann is Objective or ann == "Objective"


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
