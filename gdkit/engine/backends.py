"""The back ends a sweep can run on, and how a plan picks one.

A back end is a small interface: how a chunk program is made (`make_chunk`, with the
signature of `programs.make_chunk`), how a device's lanes are laid out (`layout`) and how
the chunk program and the replay of diverged lanes are wrapped to run a device's lanes
(`chunk_program`, `outputs_program`). Everything else is shared: the lane semantics
(`programs`, `lanes`), sharding and chunking (`runner`), the results (`sweep`).

  xla_cpu  XLA on CPU devices: cache-sized lane tiles, one device per core (`xla_cpu`).
  xla_gpu  XLA on GPUs (any accelerator): a device's lanes as one program (`xla_gpu`).
  fused    a Pallas kernel that runs a whole chunk of steps per block of lanes
           (`gdkit.engine.fused`; on CPU in Pallas's interpret mode, for tests), laid out
           as xla_gpu. Objectives and optimizers it cannot express fall back to XLA.

`sweep(engine=...)` chooses between XLA and the fused kernel ("auto": fused on a GPU where
it applies); which XLA back end runs follows from the devices' platform. The environment
variable `GDKIT_XLA_BACKEND` (`xla_cpu` or `xla_gpu`) forces the XLA back end whatever the
devices are: the tests run the GPU layout on CPU host devices with it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from gdkit import _checks
from gdkit.engine import programs, xla_cpu, xla_gpu

ENGINES = ("auto", "xla", "fused")
FORCE_ENV = "GDKIT_XLA_BACKEND"


@dataclasses.dataclass(frozen=True)
class Backend:
    """How a device runs its lanes. Equal back ends compile the same programs (compile cache
    key): the name and `interpret` say it all; the functions are not compared."""

    name: str
    layout: Callable[..., tuple[int, int]] = dataclasses.field(compare=False)
    """(carry bytes per lane, lanes, most lanes per chunk, devices, tile_lanes or None) ->
    (lanes per program unit on a device, lanes per chunk over all devices)."""
    chunk_program: Callable[..., Callable] = dataclasses.field(compare=False)
    """(chunk, carry_axes, unit) -> a device's chunk program over its lanes."""
    outputs_program: Callable[..., Callable] = dataclasses.field(compare=False)
    """(replay, carry_axes, unit) -> a device's replay program over its lanes."""
    make_chunk: Callable[..., Callable] = dataclasses.field(compare=False)
    """(spec, blocks, record_every) -> chunk(carry, lane_hp, fixed_hp, consts, t0)."""
    interpret: bool = False  # the fused kernel in Pallas's interpret mode (no GPU)

    @property
    def records_paths(self) -> bool:
        """Whether its chunks can record every step's x and loss (`make_chunk(paths=True)`):
        the XLA back ends'; the fused kernel writes only the thinned history."""
        return self.make_chunk is programs.make_chunk


XLA_CPU = Backend(
    "xla_cpu", xla_cpu.layout, xla_cpu.tiled, xla_cpu.tiled_outputs, programs.make_chunk
)
XLA_GPU = Backend(
    "xla_gpu", xla_gpu.layout, xla_gpu.whole_device, xla_gpu.whole_device, programs.make_chunk
)
XLA = {b.name: b for b in (XLA_CPU, XLA_GPU)}


@dataclasses.dataclass(frozen=True)
class Choice:
    """The back end of one program, why (one line), and why engine="fused" was not honoured
    (None when it was, or was not asked for): `sweep` warns with that."""

    backend: Backend
    reason: str
    fallback: str | None = None


def check_engine(engine: Any) -> str:
    """`engine` if it is one of `ENGINES`; a one-line ValueError otherwise."""
    if not isinstance(engine, str) or engine not in ENGINES:
        allowed = ", ".join(repr(e) for e in ENGINES)
        raise ValueError(f"sweep: engine must be one of {allowed}, got {_checks.short(engine)}")
    return engine


def choose(engine: str, devices: Sequence[Any], spec: programs.Spec) -> Choice:
    """The back end that runs `spec`'s program on `devices` under `engine` (see the module)."""
    platform = devices[0].platform
    xla, why = _xla(platform)
    if engine == "xla":
        return Choice(xla, f"engine='xla': {why}")
    if engine == "auto" and platform != "gpu":
        return Choice(xla, why)
    no = _fused_unsupported(spec, platform)
    if no is None:
        interpret = platform != "gpu"
        mode = " in Pallas's interpret mode (no GPU: for tests, slow)" if interpret else ""
        how = "engine='fused'" if engine == "fused" else "auto on a GPU"
        return Choice(_fused(interpret), f"{how}: one Pallas kernel runs each chunk of steps{mode}")
    if engine == "fused":
        return Choice(xla, f"engine='fused' falls back to XLA ({no}); {why}", no)
    return Choice(xla, f"{why}; the fused kernel does not apply ({no})")


def _xla(platform: str) -> tuple[Backend, str]:
    """The XLA back end for `platform` (or the one `GDKIT_XLA_BACKEND` forces), and why."""
    forced = os.environ.get(FORCE_ENV, "")
    if forced:
        if forced not in XLA:
            raise ValueError(
                f"sweep: the environment variable {FORCE_ENV} must be unset or one of "
                f"{', '.join(map(repr, XLA))}, got {_checks.short(forced)}"
            )
        return XLA[forced], f"forced by {FORCE_ENV}={forced} on {platform} devices"
    if platform == "cpu":
        return XLA_CPU, "the devices are CPUs: cache-sized lane tiles, one device per core"
    return XLA_GPU, (
        f"the devices are {platform.upper()}s: each runs its lanes as one program, "
        "chunks of steps stay on the device"
    )


def _fused_unsupported(spec: programs.Spec, platform: str) -> str | None:
    """None when the fused kernel can run `spec` on `platform`, else why not (one line)."""
    if platform not in ("gpu", "cpu"):
        return f"it runs on GPUs (and on CPU in interpret mode), not on {platform}"
    try:
        fused = _fused_module()
    except ImportError as e:  # gdkit without fused.py, or a JAX without what Pallas needs
        return f"cannot import gdkit.engine.fused: {' '.join(str(e).split())}"
    return fused.unsupported(spec)


def _fused_module():
    """`gdkit.engine.fused`, imported on first use (its Pallas imports cost time)."""
    return importlib.import_module("gdkit.engine.fused")


@functools.cache
def _fused(interpret: bool) -> Backend:
    fused = _fused_module()
    return Backend(
        "fused",
        xla_gpu.layout,
        xla_gpu.whole_device,
        xla_gpu.whole_device,
        functools.partial(fused.make_chunk, interpret=interpret),
        interpret=interpret,
    )
