"""The XLA back end for CPUs: cache-sized lane tiles, one device per core.

XLA:CPU runs a program's loops on one thread per device, so gdkit shards the lanes over one
host device per core (`use_all_cpu_cores`), and within a device runs them in tiles.

A step touches every lane's whole state (x, optimizer moments, bookkeeping) plus the step's
temporaries. Run over all lanes at once (65k lanes: several MB) every step streams that state
through L3 / main memory, and the elementwise kernels are bandwidth bound. A tile of a few
thousand lanes runs all the steps of a chunk while its state stays in L2, then the next tile
runs (a `lax.map`, i.e. a sequential loop over tiles, inside the one compiled chunk program).

Lanes are independent, so tiling changes no lane's arithmetic, only the order in which lanes
are visited. Yet XLA:CPU's default fusion emitters round the last few lanes of an array
differently from the others (2-D Rosenbrock with gradient descent shows it in the last bits
of ~7 lanes a tile), so the tile size can change the last bits of those lanes. The tile shape
therefore follows from the lane count alone, never from the device count (`layout`): a
lane's numbers are the same on any number of devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.extend.core import jaxpr_as_fun

# Bytes of per-lane carry a tile may hold. The step's temporaries (gradient, updates, masks)
# come on top, roughly doubling it; 256 KiB of carry keeps a tile inside a 1-2 MiB L2.
TILE_BYTES = 256 * 1024
MIN_TILE, MAX_TILE = 256, 16384
ALIGN = 32  # tiles are a multiple of this many lanes (AVX-512 float32 vectors, unrolled)


def tile_size(carry_bytes_per_lane: int) -> int:
    """The largest power of two of lanes whose carry fits `TILE_BYTES` (clamped)."""
    t = max(1, TILE_BYTES // max(1, carry_bytes_per_lane))
    t = 1 << (t.bit_length() - 1)
    return int(min(MAX_TILE, max(MIN_TILE, t)))


def pad_to_tiles(lanes: int, tile: int) -> tuple[int, int]:
    """-> (tile, padded lane count): a device's lanes in equal tiles of at most ~`tile` lanes,
    each a multiple of `ALIGN` lanes (so every lane runs in the SIMD body of XLA's loops,
    never in a scalar remainder loop that rounds differently)."""
    n = max(1, math.ceil(lanes / max(tile, ALIGN)))
    t = math.ceil(math.ceil(lanes / n) / ALIGN) * ALIGN
    return t, n * t


def layout(
    carry_bytes: int, lanes: int, lanes_per_chunk: int, n_devices: int, tile: int | None
) -> tuple[int, int]:
    """-> (lanes per tile, lanes per chunk) for `lanes` lanes in chunks of at most about
    `lanes_per_chunk` (rounded up to whole tiles on every device); `tile` None: sized so that
    a tile's carry (`carry_bytes` per lane) stays in L2 (`tile_size`).

    The tile shape follows from the lane count alone, never from the device count, and each
    device runs whole tiles: lane i sits at position i % tile of a tile of the same shape
    however many devices share the work, so it computes the same numbers on any of them."""
    m = min(lanes_per_chunk, lanes)
    if tile is None:
        tile = tile_size(carry_bytes)
    tile, _ = pad_to_tiles(m, tile)
    local = math.ceil(math.ceil(m / tile) / n_devices) * tile  # whole tiles per device
    return tile, local * n_devices


def map_tiles(f: Callable, xs, tile: int, out_axes):
    """Applies `f` to consecutive tiles of `tile` lanes of `xs` (per-lane arrays, lane axis
    first) and stitches the outputs back along their lane axis (`out_axes`, a pytree prefix of
    f's outputs: 0, 1, ... or None for an output that is the same for every tile, taken from
    the last one).

    A `while` loop whose trip count XLA cannot see (an optimization barrier): with a visible
    count of 1 XLA inlines the body and fuses it differently, so one tile and many would round
    differently. For the same reason `f` neither reads a slice of `xs` nor writes into the
    stitched outputs: XLA would fuse that slicing and writing into f's kernels when a device
    has several tiles but not when its one tile is all of it, and fuse the rest differently
    around them (XLA:CPU contracts a * b + c into one FMA only within a kernel, so kernel
    boundaries change the last bits). Tiles and f's outputs travel as loop state instead:
    iteration i runs f on tile i, takes tile i + 1 and stores the outputs of tile i - 1. This
    way the tile body is one and the same compiled code in every run.

    `f` is traced once: the loop body evaluates that trace (a jaxpr) again, which gives the
    same program as tracing `f` there; tracing a chunk twice, for its output shapes and for
    the loop, was ~40% of the time it takes to lower a chunk program.
    """
    lanes = jax.tree.leaves(xs)[0].shape[0]
    if lanes % tile:
        raise ValueError(f"map_tiles: {lanes} lanes is not a multiple of the tile {tile}")
    n = lanes // tile
    shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct((tile, *a.shape[1:]), a.dtype), xs)
    traced, one = jax.make_jaxpr(f, return_shape=True)(shapes)
    out_tree = jax.tree.structure(one)

    def f_traced(part):
        return jax.tree.unflatten(out_tree, jaxpr_as_fun(traced)(*jax.tree.leaves(part)))

    axes = _broadcast_prefix(out_axes, one)

    def alloc(o, ax):
        shape = list(o.shape)
        if ax is not None:
            shape[ax] *= n
        return jnp.zeros(shape, o.dtype)

    outs = jax.tree.map(alloc, one, axes)

    def take(i):  # tile i; past the end the last one again (dynamic slices clamp)
        return jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, i * tile, tile, 0), xs)

    def store(outs, new, i):  # at i = -1 (nothing computed yet) it writes tile 0, later rewritten
        return jax.tree.map(
            lambda buf, v, ax: (
                v if ax is None else jax.lax.dynamic_update_slice_in_dim(buf, v, i * tile, ax)
            ),
            outs,
            new,
            axes,
        )

    def body(i, state):
        outs, part, prev = state
        return store(outs, prev, i - 1), take(i + 1), f_traced(part)

    count = jax.lax.optimization_barrier(jnp.asarray(n, jnp.int32))
    blank = jax.tree.map(lambda o: jnp.zeros(o.shape, o.dtype), one)
    outs, _part, last = jax.lax.fori_loop(0, count, body, (outs, take(0), blank))
    return store(outs, last, count - 1)


def _broadcast_prefix(prefix, tree):
    """A full pytree of `tree`'s structure from a prefix of it (an int/None applies below)."""
    if prefix is None or isinstance(prefix, int):
        return jax.tree.map(lambda _: prefix, tree)
    return jax.tree.map(
        lambda p, sub: jax.tree.map(lambda _: p, sub),
        prefix,
        tree,
        is_leaf=lambda a: a is None or isinstance(a, int),
    )


def _split_carry(carry, carry_axes):
    """-> (per-lane leaves, shared leaves), each the carry's structure with None elsewhere."""
    is_none = lambda a: a is None  # noqa: E731
    per_lane = jax.tree.map(
        lambda ax, a: None if ax is None else a, carry_axes, carry, is_leaf=is_none
    )
    shared = jax.tree.map(
        lambda ax, a: a if ax is None else None, carry_axes, carry, is_leaf=is_none
    )
    return per_lane, shared


def _merge(carry_axes, per_lane, shared):
    return jax.tree.map(
        lambda ax, a, s: s if ax is None else a,
        carry_axes,
        per_lane,
        shared,
        is_leaf=lambda a: a is None,
    )


def tiled(chunk: Callable, carry_axes: dict, tile: int) -> Callable:
    """Wraps `chunk(carry, lane_hp, *rest) -> (carry, history [blocks, L], {name: [L, ...]})`
    to run tile by tile (`map_tiles`). `carry_axes` marks each carry leaf as per-lane (0) or
    shared (None: the same for every lane, e.g. a step count); shared leaves enter every tile
    unchanged and leave identical. The lane count must be a multiple of `tile`
    (`pad_to_tiles`)."""

    def run(carry, lane_hp, *rest):
        per_lane, shared = _split_carry(carry, carry_axes)

        def one_tile(args):
            part, hp = args
            c, hist, outs = chunk(_merge(carry_axes, part, shared), hp, *rest)
            lane_out, shared_out = _split_carry(c, carry_axes)
            return lane_out, shared_out, hist, outs

        lane_out, shared_out, hist, outs = map_tiles(
            one_tile, (per_lane, lane_hp), tile, (0, None, 1, 0)
        )
        return _merge(carry_axes, lane_out, shared_out), hist, outs

    return run


def tiled_outputs(fn: Callable, carry_axes: dict, tile: int) -> Callable:
    """Like `tiled`, for `fn(carry, lane_hp, *rest) -> {name: [L, ...]}` (per-lane outputs,
    no carry): the replay of diverged lanes runs in the same tiles as the steps."""

    def run(carry, lane_hp, *rest):
        per_lane, shared = _split_carry(carry, carry_axes)

        def one_tile(args):
            part, hp = args
            return fn(_merge(carry_axes, part, shared), hp, *rest)

        return map_tiles(one_tile, (per_lane, lane_hp), tile, 0)

    return run
