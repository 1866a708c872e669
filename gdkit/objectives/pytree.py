"""Objectives of a parameter pytree (a dict of arrays, as models are written), flattened once.

The engine works on flat parameter vectors x [d]: lanes are rows of [L, d] arrays. A model's
loss `fn(params) -> scalar` over a pytree `params` becomes an `Objective` of x through
`unravel`, which puts the slices of x back into the tree's shape (keeping x's dtype, so a
float64 sweep of float32 starting values stays float64). Coordinates are named by their tree
paths: `w1[0,3]` is row 0, column 3 of `params["w1"]`, `b2[1]` entry 1 of `params["b2"]`,
`layer.w[0]` a nested dict, `0.b` an item of a list or tuple.

>>> import jax.numpy as jnp, numpy as np
>>> from gdkit.objectives import pytree
>>> params = {"w": np.zeros((2, 2)), "b": np.zeros(2)}
>>> obj, starts = pytree.from_pytree(lambda p: jnp.sum((p["w"] @ p["b"] - 1) ** 2), params)
>>> obj.dim, obj.param_names[:3], starts.shape
(6, ('b[0]', 'b[1]', 'w[0,0]'), (1, 6))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from gdkit._checks import short
from gdkit.objectives._base import Objective, wrap


def is_point(value: Any) -> bool:
    """Whether `value` is one parameter pytree (a dict, a namedtuple, a registered node...)
    rather than the flat form (a number, an array, or a plain list / tuple of those)."""
    if type(value) in (list, tuple) or isinstance(value, np.ndarray | jax.Array):
        return False
    return not jax.tree_util.treedef_is_leaf(jax.tree.structure(value))


def is_points(value: Any) -> bool:
    """One pytree point, or a non-empty list / tuple of them (several starts)."""
    if is_point(value):
        return True
    return type(value) in (list, tuple) and len(value) > 0 and all(map(is_point, value))


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where each leaf of a pytree sits in the flat vector: the tree's structure, the leaves'
    shapes, and a name per coordinate."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    names: tuple[str, ...]

    @property
    def dim(self) -> int:
        return sum(math.prod(s) for s in self.shapes)

    def unravel(self, x: Any) -> Any:
        """x [..., d] -> the pytree whose leaves are [..., *shape] (x's dtype and kind: a JAX
        array gives JAX leaves, a NumPy array NumPy leaves)."""
        leaves, lo = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            leaves.append(x[..., lo : lo + n].reshape((*x.shape[:-1], *shape)))
            lo += n
        return jax.tree.unflatten(self.treedef, leaves)

    __call__ = unravel  # a Layout is the objective's (and the result's) `unravel`

    def spec(self) -> Any:
        """The tree as JSON (nests of dicts with string keys, lists and tuples, leaves as
        their shapes), so a saved result can rebuild it (`from_spec`); None for trees with
        other nodes (namedtuples, registered classes), which are not saved."""
        marks = jax.tree.unflatten(self.treedef, [_Leaf(s) for s in self.shapes])
        try:
            return _encode(marks)
        except TypeError:
            return None

    @classmethod
    def from_spec(cls, spec: Any) -> Layout:
        return layout(_decode(spec))

    def ravel(self, tree: Any, where: str = "x0") -> np.ndarray:
        """The pytree `tree` (same structure and shapes) as a float64 vector [d]."""
        leaves, treedef = jax.tree.flatten(tree)
        if treedef != self.treedef:
            raise ValueError(f"{where}: every start must have the same pytree structure")
        shapes = tuple(np.shape(leaf) for leaf in leaves)
        if shapes != self.shapes:
            raise ValueError(f"{where}: leaf shapes {shapes} differ from the first {self.shapes}")
        try:
            flat = [np.asarray(leaf, dtype=np.float64).reshape(-1) for leaf in leaves]
        except (TypeError, ValueError):
            raise ValueError(f"{where}: every leaf must be an array of numbers") from None
        return np.concatenate(flat) if flat else np.zeros(0)


@dataclasses.dataclass(frozen=True)
class _Leaf:
    shape: tuple[int, ...]


def _encode(node: Any) -> Any:
    if isinstance(node, _Leaf):
        return {"leaf": list(node.shape)}
    if type(node) is dict and all(isinstance(k, str) for k in node):
        return {"dict": [[k, _encode(v)] for k, v in node.items()]}
    if type(node) in (list, tuple):
        return {type(node).__name__: [_encode(v) for v in node]}
    if node is None:
        return {"none": None}
    raise TypeError(f"cannot save a pytree node of type {type(node).__name__}")


def _decode(spec: Any) -> Any:
    ((kind, value),) = spec.items()
    if kind == "leaf":
        return np.zeros(tuple(value))
    if kind == "dict":
        return {k: _decode(v) for k, v in value}
    if kind in ("list", "tuple"):
        items = [_decode(v) for v in value]
        return items if kind == "list" else tuple(items)
    if kind == "none":
        return None
    raise ValueError(f"unknown pytree node {kind!r}")


def layout(tree: Any) -> Layout:
    """The `Layout` of `tree`: leaves in JAX's order (dict keys sorted), C order within."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    shapes, names = [], []
    for path, leaf in with_path:
        shape = tuple(int(n) for n in np.shape(leaf))
        prefix = ".".join(_key(k) for k in path)
        shapes.append(shape)
        if not shape:
            names.append(prefix)
        else:
            names.extend(f"{prefix}[{','.join(map(str, idx))}]" for idx in np.ndindex(*shape))
    return Layout(treedef, tuple(shapes), tuple(names))


def _key(k: Any) -> str:
    for attr in ("key", "name", "idx"):  # DictKey, GetAttrKey, SequenceKey / FlattenedIndexKey
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def from_pytree(
    fn: Callable[[Any], Any], x0: Any, name: str | None = None
) -> tuple[Objective, np.ndarray]:
    """-> (the `Objective` x -> fn(unravel(x)), the starts [S, d] as float64).

    `x0` is one parameter pytree or a list of them (same structure and shapes). The objective
    carries `param_names` (tree paths) and `unravel`; it has no known minimum.
    """
    if not callable(fn):
        raise TypeError(f"sweep: objective of a pytree x0 must be a function, got {short(fn)}")
    points = list(x0) if type(x0) in (list, tuple) else [x0]
    lay = layout(points[0])
    if lay.dim == 0:
        raise ValueError("sweep: x0 is a pytree without array leaves")
    starts = np.stack([lay.ravel(p, f"sweep: x0[{i}]") for i, p in enumerate(points)])

    def flat_fn(x):
        return fn(lay.unravel(x))

    obj = wrap(flat_fn, x0=starts[0], name=name or getattr(fn, "__name__", "objective"))
    obj = dataclasses.replace(obj, param_names=lay.names, unravel=lay)
    return obj, starts
