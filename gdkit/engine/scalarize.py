"""Evaluates a one-lane jaxpr with every array element as a value of its own.

The fused kernel (`fused.py`) keeps each coordinate and each optimizer-state element of a
lane as a separate `[block]` vector: Triton wants power-of-two block shapes, and a lane's
2 or 3 coordinates are no such shape, so the kernel must never build an array of them.
`evaluate` runs the jaxpr of the one-lane step (the same `programs._step` the XLA path runs,
traced for a single lane) on NumPy object arrays whose elements are those per-lane vectors
(or scalars shared by all lanes, or constants): elementwise primitives apply element by
element, reductions and dot products become sums of elements in index order, and the
structural primitives (broadcast, reshape, slice, pad, concatenate, ...) only move elements
around. What is left is elementwise arithmetic on `[block]` vectors and scalars, which every
Pallas back end lowers.

A primitive it cannot express this way (a `while` loop of a line search, a linear solve, a
gather with traced indices) raises `Unsupported` naming it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

_NAMES = """abs acos acosh add add_any and asin asinh atan atan2 atanh cbrt ceil clamp clz
    convert_element_type cos cosh digamma div eq erf erf_inv erfc exp exp2 expm1
    floor ge gt igamma integer_pow is_finite le lgamma log log1p logistic lt max min mul ne
    neg nextafter not or population_count pow reduce_precision rem round rsqrt select_n
    shift_left shift_right_arithmetic shift_right_logical sign sin sinh sqrt square sub tan
    tanh xor"""
ELEMENTWISE = frozenset(_NAMES.split())  # primitives that map elements to elements
# Reductions and the binary primitive that folds their elements, in index order.
REDUCTIONS = {
    "reduce_sum": jax.lax.add_p,
    "reduce_max": jax.lax.max_p,
    "reduce_min": jax.lax.min_p,
    "reduce_prod": jax.lax.mul_p,
    "reduce_and": jax.lax.and_p,
    "reduce_or": jax.lax.or_p,
    "reduce_xor": jax.lax.xor_p,
}
# Why a primitive has no element-by-element form, for the one-line reason `fused` gives.
WHY = {
    "while": "uses a line search or another inner loop (while)",
    "scan": "uses an inner loop (scan)",
    "cond": "branches on a computed value (cond)",
    "lu": "solves linear systems (lu)",
    "cholesky": "solves linear systems (cholesky)",
    "triangular_solve": "solves linear systems (triangular_solve)",
    "custom_linear_solve": "solves linear systems (custom_linear_solve)",
    "eigh": "computes eigenvalues (eigh)",
    "gather": "indexes an array with computed indices (gather)",
    "scatter": "writes into an array at computed indices (scatter)",
    "scatter-add": "writes into an array at computed indices (scatter-add)",
    "random_bits": "draws random numbers",
}


class Unsupported(Exception):
    """The jaxpr holds something that has no element-by-element form (message: why)."""


def elements(a) -> np.ndarray:
    """A concrete array -> an object array of its elements (NumPy scalars of its dtype)."""
    a = np.asarray(a)
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = a[idx]
    return out


def _lane(e, lanes: int):
    """Element e as a [lanes] vector (a shared scalar broadcast)."""
    e = jnp.asarray(e)
    return e if e.shape == (lanes,) else jnp.broadcast_to(e, (lanes,))


def _bind(prim, operands: Sequence, params: dict):
    """Binds an elementwise primitive to element values of shape () or [B] (mixed: the scalars
    are broadcast to [B], as the per-lane jaxpr broadcast nothing)."""
    if not any(isinstance(o, jax.core.Tracer) for o in operands):
        # constants in, a constant out (a NumPy scalar): no operation in the kernel, whose
        # back end may not take a literal as an operand (Triton's neg, say)
        with jax.ensure_compile_time_eval():
            return np.asarray(prim.bind(*operands, **params))[()]
    shapes = {np.shape(o) for o in operands} - {()}
    if shapes:
        (shape,) = shapes
        operands = [o if np.shape(o) == shape else _lane(o, shape[0]) for o in operands]
    return prim.bind(*operands, **params)


def _concrete_int(e, what: str) -> int:
    """A structural index that must be known when tracing (dynamic_slice of x[i], say)."""
    if isinstance(e, jax.core.Tracer):
        raise Unsupported(f"{what} with an index computed at run time")
    return int(np.asarray(e))


def check(closed: jex_core.ClosedJaxpr) -> None:
    """Raises `Unsupported` if `evaluate` would meet a primitive it has no rule for; cheap
    (a walk over the equations), so a line search is refused before anything is evaluated.
    Of several such primitives the reason names the one `WHY` explains first."""
    found = _unhandled(closed.jaxpr)
    if found:
        first = min(found, key=lambda n: list(WHY).index(n) if n in WHY else len(WHY))
        raise Unsupported(WHY.get(first, f"uses the primitive {first}"))


def _unhandled(jaxpr) -> set[str]:
    names = set()
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        sub = _sub_jaxpr(eqn.params)
        if name in WHY or (
            sub is None
            and name not in ELEMENTWISE
            and name not in REDUCTIONS
            and name not in _STRUCTURAL
        ):
            names.add(name)
        elif sub is not None:
            names |= _unhandled(sub.jaxpr)
    return names


def evaluate(closed: jex_core.ClosedJaxpr, args: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Runs `closed` on object arrays of elements; returns its outputs as object arrays."""
    env: dict = {}

    def read(v):
        if isinstance(v, jex_core.Literal):
            return elements(np.asarray(v.val, dtype=v.aval.dtype))
        return env[v]

    jaxpr = closed.jaxpr
    for v, c in zip(jaxpr.constvars, closed.consts, strict=True):
        env[v] = elements(np.asarray(c, dtype=v.aval.dtype))
    for v, a in zip(jaxpr.invars, args, strict=True):
        if a.shape != v.aval.shape:
            raise ValueError(f"scalarize: argument of shape {a.shape}, expected {v.aval.shape}")
        env[v] = a
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.invars]
        outs = _equation(eqn, ins)
        for v, o in zip(eqn.outvars, outs, strict=True):
            env[v] = o
    return [read(v) for v in jaxpr.outvars]


def _equation(eqn, ins: list[np.ndarray]) -> list[np.ndarray]:
    name, p = eqn.primitive.name, eqn.params
    out_avals = [v.aval for v in eqn.outvars]
    if name in ELEMENTWISE:
        shape = out_avals[0].shape
        ins = [np.broadcast_to(a, shape) for a in ins]
        out = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            out[idx] = _bind(eqn.primitive, [a[idx] for a in ins], p)
        return [out]
    if name in REDUCTIONS:
        return [_reduce(ins[0], tuple(p["axes"]), REDUCTIONS[name])]
    sub = _sub_jaxpr(p)
    if sub is not None and name not in WHY:
        return evaluate(sub, ins)
    if name == "split":
        edges = np.cumsum([0, *p["sizes"]])
        return [
            np.take(ins[0], np.arange(lo, hi), axis=p["axis"])
            for lo, hi in itertools.pairwise(edges)
        ]
    rule = _STRUCTURAL.get(name)
    if rule is None:
        raise Unsupported(WHY.get(name, f"uses the primitive {name}"))
    return [rule(ins, p, out_avals)]


def _sub_jaxpr(params: dict):
    """The body of a call-like primitive (jit, custom_jvp_call, custom_vjp_call, ...)."""
    for key in ("jaxpr", "call_jaxpr", "fun_jaxpr"):
        j = params.get(key)
        if isinstance(j, jex_core.ClosedJaxpr):
            return j
        if isinstance(j, jex_core.Jaxpr):
            return jex_core.ClosedJaxpr(j, ())
    return None


def _reduce(a: np.ndarray, axes: tuple[int, ...], prim) -> np.ndarray:
    keep = [i for i in range(a.ndim) if i not in axes]
    moved = np.transpose(a, keep + list(axes))
    lead = moved.shape[: len(keep)]
    moved = moved.reshape(*lead, -1)
    out = np.empty(lead, dtype=object)
    for idx in np.ndindex(lead):
        terms = list(moved[idx])
        acc = terms[0]
        for term in terms[1:]:
            acc = _bind(prim, [acc, term], {})
        out[idx] = acc
    return out


def _broadcast_in_dim(ins, p, avals):
    (a, *_dyn) = ins
    shape = [1] * len(p["shape"])
    for i, d in enumerate(p["broadcast_dimensions"]):
        shape[d] = a.shape[i]
    return np.broadcast_to(a.reshape(shape), p["shape"]).copy()


def _pad(ins, p, avals):
    a, value = ins
    out = np.empty(avals[0].shape, dtype=object)
    out[...] = value[()]
    for idx in np.ndindex(a.shape):
        pos = tuple(
            lo + i * (interior + 1)
            for i, (lo, _hi, interior) in zip(idx, p["padding_config"], strict=True)
        )
        if all(0 <= q < n for q, n in zip(pos, out.shape, strict=True)):
            out[pos] = a[idx]
    return out


def _dot_general(ins, p, avals):
    lhs, rhs = ins
    (lc, rc), (lb, rb) = p["dimension_numbers"]
    lf = [i for i in range(lhs.ndim) if i not in (*lc, *lb)]
    rf = [i for i in range(rhs.ndim) if i not in (*rc, *rb)]
    lhs = np.transpose(lhs, [*lb, *lf, *lc])
    rhs = np.transpose(rhs, [*rb, *rf, *rc])
    nb, nlf = len(lb), len(lf)
    out = np.empty(avals[0].shape, dtype=object)
    dtype = avals[0].dtype
    mul, add = jax.lax.mul_p, jax.lax.add_p
    for idx in np.ndindex(out.shape):
        b, i, j = idx[:nb], idx[nb : nb + nlf], idx[nb + nlf :]
        left = lhs[(*b, *i, Ellipsis)].reshape(-1)  # Ellipsis: an object array, even 0-d
        right = rhs[(*b, *j, Ellipsis)].reshape(-1)
        acc = None
        for u, w in zip(left, right, strict=True):
            term = _bind(mul, [_cast(u, dtype), _cast(w, dtype)], {})
            acc = term if acc is None else _bind(add, [acc, term], {})
        out[idx] = acc if acc is not None else np.zeros((), dtype)[()]
    return out


def _cast(e, dtype):
    if jnp.result_type(e) == dtype:
        return e
    return jax.lax.convert_element_type(e, dtype)


def _dynamic_slice(ins, p, avals):
    a, *idx = ins
    start = [_concrete_int(i[()], "dynamic_slice") for i in idx]
    start = [
        min(max(s, 0), n - k) for s, n, k in zip(start, a.shape, p["slice_sizes"], strict=True)
    ]
    return a[tuple(slice(s, s + k) for s, k in zip(start, p["slice_sizes"], strict=True))].copy()


def _dynamic_update_slice(ins, p, avals):
    a, update, *idx = ins
    start = [_concrete_int(i[()], "dynamic_update_slice") for i in idx]
    start = [min(max(s, 0), n - k) for s, n, k in zip(start, a.shape, update.shape, strict=True)]
    out = a.copy()
    out[tuple(slice(s, s + k) for s, k in zip(start, update.shape, strict=True))] = update
    return out


def _iota(ins, p, avals):
    shape, dim = p["shape"], p["dimension"]
    idx = np.arange(shape[dim], dtype=p["dtype"])
    view = [1] * len(shape)
    view[dim] = shape[dim]
    return elements(np.broadcast_to(idx.reshape(view), shape))


_STRUCTURAL = {
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": lambda ins, p, avals: ins[0].reshape(avals[0].shape),
    "squeeze": lambda ins, p, avals: ins[0].reshape(avals[0].shape),
    "expand_dims": lambda ins, p, avals: ins[0].reshape(avals[0].shape),
    "transpose": lambda ins, p, avals: np.transpose(ins[0], p["permutation"]).copy(),
    "rev": lambda ins, p, avals: np.flip(ins[0], axis=tuple(p["dimensions"])).copy(),
    "concatenate": lambda ins, p, avals: np.concatenate(ins, axis=p["dimension"]),
    "slice": lambda ins, p, avals: ins[0][
        tuple(
            slice(s, e, st)
            for s, e, st in zip(
                p["start_indices"],
                p["limit_indices"],
                p["strides"] or (1,) * ins[0].ndim,
                strict=True,
            )
        )
    ].copy(),
    "pad": _pad,
    "dot_general": _dot_general,
    "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
    "iota": _iota,
    "stop_gradient": lambda ins, p, avals: ins[0],
    "copy": lambda ins, p, avals: ins[0],  # values are immutable: a copy is the value
    "copy_p": lambda ins, p, avals: ins[0],
    "split": None,  # several outputs: in `_equation`
}


def cost(closed: jex_core.ClosedJaxpr) -> int:
    """About how many scalar operations `evaluate` makes of a jaxpr (elements of every
    result, times the terms summed in a dot product); cheap, before evaluating anything."""
    total = 0
    for eqn in closed.jaxpr.eqns:
        sub = _sub_jaxpr(eqn.params)
        if sub is not None:
            total += cost(sub)
            continue
        n = sum(math.prod(v.aval.shape) for v in eqn.outvars)
        if eqn.primitive.name == "dot_general":
            (lc, _rc), _ = eqn.params["dimension_numbers"]
            n *= math.prod(eqn.invars[0].aval.shape[i] for i in lc)
        elif eqn.primitive.name in REDUCTIONS:
            n = math.prod(eqn.invars[0].aval.shape)
        total += n
    return total


def count_operations(closed: jex_core.ClosedJaxpr) -> int:
    """Equations in a jaxpr, sub-jaxprs included (the size of a scalarized kernel body)."""
    total = 0
    for eqn in closed.jaxpr.eqns:
        total += 1
        for sub in jex_core.jaxprs_in_params(eqn.params):
            total += count_operations(jex_core.ClosedJaxpr(sub, ()))
    return total


def primitives(closed: jex_core.ClosedJaxpr) -> set[str]:
    """The names of every primitive in a jaxpr, sub-jaxprs included."""
    names = set()
    for eqn in closed.jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jex_core.jaxprs_in_params(eqn.params):
            names |= primitives(jex_core.ClosedJaxpr(sub, ()))
    return names
