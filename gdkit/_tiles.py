"""Cache-sized lane tiles: a chunk of steps runs one tile of lanes at a time.

A step touches every lane's whole state (x, optimizer moments, bookkeeping) plus the step's
temporaries. Run over all lanes at once (65k lanes: several MB) every step streams that state
through L3 / main memory, and the elementwise kernels are bandwidth bound. A tile of a few
thousand lanes runs all the steps of a chunk while its state stays in L2, then the next tile
runs (a `lax.map`, i.e. a sequential loop over tiles, inside the one compiled chunk program).

Lanes are independent, so tiling changes no lane's arithmetic, only the order in which lanes
are visited: results are bitwise identical for every tile size.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

# Bytes of per-lane carry a tile may hold. The step's temporaries (gradient, updates, masks)
# come on top, roughly doubling it; 256 KiB of carry keeps a tile inside a 1-2 MiB L2.
TILE_BYTES = 256 * 1024
MIN_TILE, MAX_TILE = 256, 16384
# Lanes per device are a multiple of ALIGN: every lane then runs in the SIMD body of XLA's
# loops, never in a scalar remainder loop whose rounding can differ (exp, fused multiply-add),
# so a lane's result does not depend on where it sits, how many lanes run, or on how many
# devices. 32 covers AVX-512 float32 vectors unrolled twice.
ALIGN = 32


def tile_size(carry_bytes_per_lane: int) -> int:
    """The largest power of two of lanes whose carry fits `TILE_BYTES` (clamped)."""
    t = max(1, TILE_BYTES // max(1, carry_bytes_per_lane))
    t = 1 << (t.bit_length() - 1)
    return int(min(MAX_TILE, max(MIN_TILE, t)))


def plan(lanes: int, tile: int) -> tuple[int, int]:
    """-> (tile, padded lane count): lanes split into equal tiles of at most ~`tile` lanes,
    each a multiple of `ALIGN` lanes (so padding is below `ALIGN` lanes per tile)."""
    if lanes <= tile:
        t = -(-lanes // ALIGN) * ALIGN
        return t, t
    n = math.ceil(lanes / tile)
    t = -(-math.ceil(lanes / n) // ALIGN) * ALIGN
    return t, n * t


def tiled(chunk: Callable, carry_axes: dict, tile: int) -> Callable:
    """Wraps `chunk(carry, lane_hp, *rest) -> (carry, history [blocks, L])` to run tile by tile.

    `carry_axes` marks each carry leaf as per-lane (0: lane axis first) or shared (None: the
    same for every lane, e.g. a step count); shared leaves enter every tile unchanged and
    leave identical, so the first tile's copy is kept. The lane count must be a multiple of
    `tile` (see `plan`).
    """

    def run(carry, lane_hp, *rest):
        lanes = jax.tree.leaves(lane_hp)[0].shape[0]
        if lanes <= tile:
            return chunk(carry, lane_hp, *rest)
        if lanes % tile:
            raise ValueError(f"tiled: {lanes} lanes is not a multiple of the tile {tile}")
        n = lanes // tile
        is_none = lambda a: a is None  # noqa: E731
        # Split the carry into per-lane leaves (tiled) and shared leaves (closed over).
        per_lane = jax.tree.map(
            lambda ax, a: None if ax is None else a, carry_axes, carry, is_leaf=is_none
        )
        shared = jax.tree.map(
            lambda ax, a: a if ax is None else None, carry_axes, carry, is_leaf=is_none
        )

        def merge(lane_part, shared_part):
            return jax.tree.map(
                lambda ax, a, s: s if ax is None else a,
                carry_axes,
                lane_part,
                shared_part,
                is_leaf=is_none,
            )

        def split(a):
            return None if a is None else a.reshape(n, tile, *a.shape[1:])

        def one_tile(args):
            lane_part, hp = args
            c, hist = chunk(merge(lane_part, shared), hp, *rest)
            lane_out = jax.tree.map(
                lambda ax, a: None if ax is None else a, carry_axes, c, is_leaf=is_none
            )
            shared_out = jax.tree.map(
                lambda ax, a: a if ax is None else None, carry_axes, c, is_leaf=is_none
            )
            return lane_out, shared_out, hist

        tiles = jax.tree.map(split, per_lane, is_leaf=is_none)
        lane_out, shared_out, hist = jax.lax.map(one_tile, (tiles, jax.tree.map(split, lane_hp)))
        lane_out = jax.tree.map(
            lambda a: None if a is None else a.reshape(lanes, *a.shape[2:]),
            lane_out,
            is_leaf=is_none,
        )
        shared_out = jax.tree.map(
            lambda a: None if a is None else a[0], shared_out, is_leaf=is_none
        )
        hist = jnp.moveaxis(hist, 0, 1).reshape(hist.shape[1], lanes)  # [blocks, L]
        return merge(lane_out, shared_out), hist

    return run
