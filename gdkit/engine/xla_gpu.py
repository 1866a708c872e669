"""The XLA back end for GPUs (and other accelerators): a device's lanes run as one program.

On a GPU every elementwise kernel of a step is one launch over all the lanes it is given, and
a launch costs a few microseconds whatever its size. The CPU back end's cache tiles
(`xla_cpu`) would cut a device's lanes into dozens of tiles run one after another, each
step of each tile its own ~10 launches: thousands of tiny launch-bound kernels. Here each
device runs all of its lanes of a chunk as one vmapped program instead, so a step is ~10
launches over up to millions of lanes, and the memory bandwidth is what bounds it.

What the two back ends share is in `runner` (lanes sharded over every device of every
process, chunks of lanes and of steps): a chunk of steps is a `scan` inside one compiled
program, so the device runs it without a host round trip per step; the host sees the device
once per chunk, to queue the next one and to fetch the thinned history of the last.

The lanes of a device are padded to a multiple of `ALIGN`, as the CPU back end pads its
tiles, so on CPU host devices (where this back end can be forced for tests, see
`backends.FORCE_ENV`) a device's array has the shape of a CPU tile of as many lanes, and the
two back ends compute the same bits wherever their arrays agree (one device, or tiles of a
device's lanes). XLA:CPU rounds the last few lanes of an array differently from the others,
so where the arrays differ (the CPU back end's default tiles on several devices) the last bits
of those lanes may differ too (`tests/test_engine_backends.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from gdkit.engine.xla_cpu import ALIGN


def layout(
    carry_bytes: int, lanes: int, lanes_per_chunk: int, n_devices: int, tile: int | None
) -> tuple[int, int]:
    """-> (lanes per device, lanes per chunk): `lanes` lanes in chunks of at most about
    `lanes_per_chunk`, each device's share padded to a multiple of `ALIGN`. No tiles:
    `carry_bytes` and `tile` (`sweep(tile_lanes=...)`) do not apply here."""
    del carry_bytes, tile
    m = min(lanes_per_chunk, lanes)
    local = math.ceil(math.ceil(m / n_devices) / ALIGN) * ALIGN
    return local, local * n_devices


def whole_device(program: Callable, carry_axes: dict, lanes_per_device: int) -> Callable:
    """A device's program over all of its lanes: `program` itself (one vmapped program)."""
    del carry_axes, lanes_per_device
    return program
