"""The fused trajectory kernel: a block of lanes runs a whole chunk of steps in one Pallas kernel.

On a GPU the XLA path runs every step as a handful of kernels over all lanes, each reading
and writing the lanes' state through device memory; a 2-D Adam step is ~40 flops per lane
against ~100 bytes of traffic, so it is bound by memory bandwidth and kernel launches. Here one
kernel (`pl.pallas_call`, lowered through Triton) gives each program a block of lanes whose
coordinates, optimizer state and bookkeeping stay in registers for all the steps of a chunk,
and touches memory only to load the carry, store it, and write the thinned history.

The kernel body is not written by hand: it is the XLA path's own one-lane step
(`programs._step`, i.e. `Objective.fn`, the optax update and the bookkeeping) and its recorded
loss (`programs._recorded_loss`), traced for a single lane and evaluated element by element
(`scalarize.evaluate`), so that every coordinate and state element is a `[block]` vector and
everything shared by all lanes (step counts, fixed hyperparameters, tol) a scalar. Triton needs
power-of-two block shapes, so only the lane axis is blocked (lanes are padded to the block).
The per-lane results of a chunk (`programs._outputs`) are computed after the kernel by the same
XLA code as on the XLA path: one evaluation per lane per chunk.

`unsupported(spec)` says in one line why a sweep cannot run fused (the caller falls back to
the XLA path); `make_chunk` is a drop-in replacement for `programs.make_chunk`. On a machine
without a GPU the kernel runs with `interpret=True` (tests) and exports for CUDA
(`export_for_cuda`, what `scripts/bench_gpu.py --check-lowering` checks in CI).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from gdkit.engine import programs
from gdkit.engine import scalarize as _scalarize

BLOCK = 128  # lanes per kernel program (a power of two; one lane per thread with 4 warps)
MAX_DIM = 16  # coordinates per lane: each is a register per lane, with its optimizer state
MAX_OPERATIONS = 4096  # about how many scalar operations one step of one lane may take
# (a 2-D Adam step: ~100; a 16-d quadratic: ~1,000; a 3-parameter logistic regression on its
# 200-row data set: ~10,000, which would compile into a very large kernel)
TRITON_CALL = "__gpu$xla.gpu.triton"  # the custom-call target of a Triton Pallas kernel
CONSTS = ("f_min", "noise", "tol")  # the sweep constants the step reads (`Plan.consts`)


def unsupported(spec: programs.Spec) -> str | None:
    """None when the fused kernel can run `spec`, else a one-line reason (to fall back)."""
    obj, opt = spec.objective, _optimizer_name(spec)
    if spec.batch_size is not None:
        return f"data objectives with minibatches ({obj.name}, batch_size {spec.batch_size})"
    if spec.noise:
        return "gradient noise draws random numbers every step (the fused kernel draws none)"
    if spec.residuals:
        return f"optimizer {opt} uses the objective's residuals (least squares)"
    if obj.dim > MAX_DIM:
        return f"objective {obj.name} has {obj.dim} coordinates (fused kernel: <= {MAX_DIM})"
    return _traced_reason(spec)


@functools.lru_cache(maxsize=256)
def _traced_reason(spec: programs.Spec) -> str | None:
    """Traces the objective alone, the optimizer's update alone, then the whole step as the
    kernel runs it: the first part that has no element-by-element form, is too large, or
    has no Triton lowering gives the reason."""
    obj, opt = spec.objective, _optimizer_name(spec)
    dt = jnp.dtype(spec.dtype)
    x = jax.ShapeDtypeStruct((obj.dim,), dt)
    hp = {n: jax.ShapeDtypeStruct((), dt) for n in (*spec.lane_names, *spec.fixed_names)}

    def update(x, hp):  # one lane's optimizer step alone: quick to trace, even for L-BFGS
        state = programs._optimizer(spec, hp).init(x)
        return programs._lane_update(spec, x, state, None, hp, 0.0, None, 0)[2:4]

    # the cheapest first; the last is what the kernel runs. Scalarized (to find what Triton
    # cannot lower): the objective alone, so the reason names it, and the whole step.
    parts = (
        (f"objective {obj.name}", lambda: jax.make_jaxpr(jax.value_and_grad(obj.fn))(x), True),
        (f"optimizer {opt}", lambda: jax.make_jaxpr(update)(x, hp), False),
        (f"optimizer {opt}", lambda: _one_lane(spec, CONSTS).step, True),
    )
    for who, trace, scalarized in parts:
        closed = trace()
        try:
            _scalarize.check(closed)
        except _scalarize.Unsupported as e:
            return f"{who} {e}"
        n = _scalarize.cost(closed)
        if n > MAX_OPERATIONS:
            return (
                f"the step of {opt} on {obj.name} is about {n:,} scalar operations per lane "
                f"(fused kernel: <= {MAX_OPERATIONS:,})"
            )
        if not scalarized:
            continue
        try:
            body = jax.make_jaxpr(functools.partial(_evaluate_lanes, closed))(*_lane_inputs(closed))
        except _scalarize.Unsupported as e:
            return f"{who} {e}"
        missing = _scalarize.primitives(body) - _triton_primitives()
        if missing:
            return f"{who} uses {', '.join(sorted(missing))}, which Triton cannot lower"
    return None


def _optimizer_name(spec: programs.Spec) -> str:
    key = spec.optimizer_key
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], str):
        return key[1]
    return getattr(key, "__name__", type(key).__name__)


def _triton_primitives() -> set[str]:
    """The primitives Pallas' Triton back end lowers (its rule table; empty set of checks if
    this JAX keeps it elsewhere, then `export_for_cuda` is the check)."""
    try:
        from jax._src.pallas.triton import lowering
    except ImportError:  # pragma: no cover - a JAX without the Triton back end
        return set()
    return {p.name for p in lowering.triton_lowering_rules}


def _lane_inputs(closed) -> list[jax.ShapeDtypeStruct]:
    """One [BLOCK] input per element of each jaxpr input (for tracing a kernel body)."""
    return [
        jax.ShapeDtypeStruct((BLOCK,), v.aval.dtype)
        for v in closed.jaxpr.invars
        for _ in range(math.prod(v.aval.shape))
    ]


def _evaluate_lanes(closed, *flat):
    """A kernel body made of `closed` on per-element [BLOCK] vectors (unsupported()'s check)."""
    args, it = [], iter(flat)
    for v in closed.jaxpr.invars:
        a = np.empty(v.aval.shape, dtype=object)
        for idx in np.ndindex(a.shape):
            a[idx] = next(it)
        args.append(a)
    outs = _scalarize.evaluate(closed, args)
    return [e for o in outs for e in o.reshape(-1)]


class _OneLane:
    """The XLA path's step and recorded loss traced for a single lane, and the carry's layout:
    which leaves are per lane (given to the kernel as one [lanes] array per element) and which
    are shared by all lanes (one scalar per element)."""

    def __init__(self, spec: programs.Spec, const_names: tuple[str, ...]):
        dim, dt = spec.objective.dim, jnp.dtype(spec.dtype)
        one = {n: jax.ShapeDtypeStruct((1,), dt) for n in spec.lane_names}
        fixed = {n: jax.ShapeDtypeStruct((), dt) for n in spec.fixed_names}
        consts = {n: jax.ShapeDtypeStruct((), dt) for n in const_names}
        keys = jax.ShapeDtypeStruct((1, 2), jnp.uint32) if spec.keyed else None
        carry = jax.eval_shape(
            programs.make_init(spec),
            jax.ShapeDtypeStruct((1, dim), dt),
            one,
            fixed,
            keys,
            jax.ShapeDtypeStruct((), dt),
        )
        axes = programs.carry_axes(spec, dim)
        leaves, self.tree = jax.tree.flatten(carry)
        self.lane = [ax == 0 for ax in self.tree.flatten_up_to(axes)]
        # element shape of each leaf: without the lane axis for per-lane leaves
        self.shapes = [
            a.shape[1:] if lane else a.shape for a, lane in zip(leaves, self.lane, strict=True)
        ]
        self.dtypes = [a.dtype for a in leaves]
        # in the order the jaxprs take them: JAX flattens a dict by its sorted keys
        self.lane_names, self.fixed_names = sorted(spec.lane_names), sorted(spec.fixed_names)
        self.const_names = sorted(const_names)
        t = jax.ShapeDtypeStruct((), jnp.int32)

        def step(carry, lane_hp, fixed_hp, consts, t):
            return programs._step(spec, carry, t, lane_hp, fixed_hp, consts)[0]

        self.step = jax.make_jaxpr(step)(carry, one, fixed, consts, t)
        self.record = jax.make_jaxpr(functools.partial(programs._recorded_loss, spec))(carry)

    def objects(self, values: list) -> list[np.ndarray]:
        """Flat element values (in leaf order) -> one object array per carry leaf, in the
        shapes the one-lane jaxprs take (a per-lane leaf keeps its lane axis of size 1)."""
        out, it = [], iter(values)
        for shape, lane in zip(self.shapes, self.lane, strict=True):
            a = np.empty(shape, dtype=object)
            for idx in np.ndindex(shape):
                a[idx] = next(it)
            out.append(a[None] if lane else a)
        return out

    def values(self, objects: list[np.ndarray], block: int) -> list:
        """The inverse of `objects`; per-lane elements are made [block] vectors."""
        flat = []
        for a, lane, dt in zip(objects, self.lane, self.dtypes, strict=True):
            for e in a.reshape(-1):  # a per-lane leaf's lane axis has size 1
                e = jnp.asarray(e, dt)
                if lane:
                    e = jnp.broadcast_to(e, (block,))
                elif e.shape != ():
                    raise AssertionError("a shared carry leaf came out per lane")
                flat.append(e)
        return flat


@functools.lru_cache(maxsize=256)
def _one_lane(spec: programs.Spec, const_names: tuple[str, ...]) -> _OneLane:
    return _OneLane(spec, const_names)


def _scalar_object(value) -> np.ndarray:
    a = np.empty((), dtype=object)
    a[()] = value
    return a


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def make_chunk(
    spec: programs.Spec,
    blocks: int,
    record_every: int,
    *,
    interpret: bool,
    block: int | None = None,
):
    """(carry, lane_hp, fixed_hp, consts, t0) -> (carry, history [blocks, L], outputs), exactly
    as `programs.make_chunk(spec, blocks, record_every)`, with the steps in one Pallas kernel.

    `interpret=True` runs the kernel through Pallas' interpreter (any device, e.g. the CPU);
    otherwise it is lowered through Triton (CUDA GPUs). `block`: lanes per kernel program
    (a power of two; default `BLOCK`, or fewer when there are fewer lanes).
    """
    reason = unsupported(spec)
    if reason is not None:
        raise ValueError(f"fused kernel: {reason}")
    if block is not None and (block < 1 or block & (block - 1)):
        raise ValueError(f"fused kernel: block must be a power of two, got {block}")
    r = int(record_every)

    def chunk(carry, lane_hp, fixed_hp, consts, t0):
        one = _one_lane(spec, tuple(sorted(consts)))
        n = carry["x"].shape[0]
        b = block or min(BLOCK, _next_pow2(n))
        padded = -(-n // b) * b
        leaves = jax.tree.leaves(carry)

        def column(a):  # [n] -> [padded], padded with copies of the last lane
            return jnp.pad(a, (0, padded - n), mode="edge")

        lane_in, shared_in = [], []
        carry_in = []
        for a, lane, shape in zip(leaves, one.lane, one.shapes, strict=True):
            for idx in np.ndindex(shape):
                carry_in.append(column(a[(slice(None), *idx)]) if lane else a[idx].reshape(1))
        lane_in = [column(jnp.asarray(lane_hp[k])) for k in one.lane_names]
        shared_in = [jnp.asarray(fixed_hp[k]).reshape(1) for k in one.fixed_names]
        shared_in += [jnp.asarray(consts[k]).reshape(1) for k in one.const_names]
        shared_in.append(jnp.asarray(t0, jnp.int32).reshape(1))
        ins = [*carry_in, *lane_in, *shared_in]
        kernel = _kernel(one, blocks, r, b)
        lane_spec = pl.BlockSpec((b,), lambda i: (i,))
        scalar_spec = pl.BlockSpec((1,), lambda i: (0,))
        in_specs = [lane_spec if a.shape == (padded,) else scalar_spec for a in ins]
        rows = _next_pow2(blocks)
        out_shape = [jax.ShapeDtypeStruct((padded,), a.dtype) for a in carry_in]
        out_shape.append(jax.ShapeDtypeStruct((rows, padded), jnp.dtype(spec.dtype)))
        out_specs = [lane_spec] * len(carry_in) + [pl.BlockSpec((rows, b), lambda i: (0, i))]
        outs = pl.pallas_call(
            kernel,
            grid=(padded // b,),
            in_specs=in_specs,
            out_specs=out_specs,
            out_shape=out_shape,
            interpret=interpret,
            compiler_params=pltriton.CompilerParams(num_warps=max(1, min(8, b // 32))),
            name=f"gdkit_fused_{_optimizer_name(spec)}_{spec.objective.name}",
        )(*ins)
        *cols, hist = outs
        new, it = [], iter(cols)
        for a, lane, shape in zip(leaves, one.lane, one.shapes, strict=True):
            els = [next(it) for _ in np.ndindex(shape)]
            if lane:
                stacked = jnp.stack([e[:n] for e in els], axis=1) if els else a
                new.append(stacked.reshape(a.shape).astype(a.dtype))
            else:
                new.append(jnp.stack([e[0] for e in els]).reshape(a.shape) if els else a)
        carry = jax.tree.unflatten(one.tree, new)
        t_end = jnp.asarray(t0, jnp.int32) + blocks * r
        return carry, hist[:blocks, :n], programs._outputs(spec, carry, consts, t_end)

    return chunk


def _kernel(one: _OneLane, blocks: int, r: int, b: int):
    """The kernel of one block of b lanes: `blocks` x (record the loss, run r steps)."""
    n_carry = sum(math.prod(s) for s in one.shapes)
    n_lane, n_fixed = len(one.lane_names), len(one.fixed_names)
    n_const = len(one.const_names)

    def kernel(*refs):
        carry_refs = refs[:n_carry]
        rest = refs[n_carry:]
        hp_refs, rest = rest[:n_lane], rest[n_lane:]
        fixed_refs, rest = rest[:n_fixed], rest[n_fixed:]
        const_refs, rest = rest[:n_const], rest[n_const:]
        t0_ref, rest = rest[0], rest[1:]
        out_refs, hist_ref = rest[:n_carry], rest[n_carry]
        lane_flags = [
            lane for lane, s in zip(one.lane, one.shapes, strict=True) for _ in np.ndindex(s)
        ]
        vals = [
            ref[...] if lane else ref[0] for ref, lane in zip(carry_refs, lane_flags, strict=True)
        ]
        hp = [_lane_object(ref[...]) for ref in hp_refs]
        fixed = [_scalar_object(ref[0]) for ref in fixed_refs]
        consts = [_scalar_object(ref[0]) for ref in const_refs]
        t0 = t0_ref[0]

        def block(k, vals):
            (v,) = _scalarize.evaluate(one.record, one.objects(vals))
            hist_ref[k, :] = jnp.broadcast_to(jnp.asarray(v[0], hist_ref.dtype), (b,))

            def step(i, vals):
                t = _scalar_object(t0 + k * r + i)
                args = [*one.objects(vals), *hp, *fixed, *consts, t]
                return one.values(_scalarize.evaluate(one.step, args), b)

            return jax.lax.fori_loop(jnp.int32(0), jnp.int32(r), step, vals)

        vals = jax.lax.fori_loop(jnp.int32(0), jnp.int32(blocks), block, vals)
        for ref, v in zip(out_refs, vals, strict=True):
            ref[...] = jnp.broadcast_to(v, (b,)).astype(ref.dtype)

    return kernel


def _lane_object(vector) -> np.ndarray:
    a = np.empty((1,), dtype=object)
    a[0] = vector
    return a


def export_for_cuda(chunk, args: Any) -> jax.export.Exported:
    """Exports `jax.jit(chunk)` for CUDA (works without a GPU): the check that a fused program
    lowers through Triton. `args`: example arguments (arrays or ShapeDtypeStructs)."""
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), args)
    return jax.export.export(
        jax.jit(chunk),
        platforms=["cuda"],
        disabled_checks=[jax.export.DisabledSafetyCheck.custom_call(TRITON_CALL)],
    )(*shapes)
