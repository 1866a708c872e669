"""Name -> objective factory registry; `package.module:attr` import paths go to `_imported`."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable

from gdkit._checks import short
from gdkit.objectives._base import Objective
from gdkit.objectives._imported import from_import_path

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

    `name` is a registered name (see `names()`) or an import path `package.module:attr`: the
    module is imported, and its attribute must be an `Objective` (then `params` must be empty;
    `@objectives.objective` makes one of a plain function) or a factory marked with
    `@objectives.objective_factory` (then `params` are its declared parameters, nothing else).
    Any other attribute is refused and never called. The same registered name and hashable
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
        return from_import_path(name, params)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown objective {short(name)}{_suggest(name, names())}; known: "
            f"{', '.join(names())}, or an import path 'module:name' of a marked objective"
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


def as_objective(objective: Objective | str, where: str) -> Objective:
    """An `Objective`, or the registered one a name gives; `where` names the caller's argument
    in the error for anything else."""
    if isinstance(objective, str):
        return get(objective)
    if not isinstance(objective, Objective):
        raise TypeError(f"{where} must be an Objective or a name, got {short(objective)}")
    return objective


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
