"""A sweep's arguments checked and resolved into its lanes, programs, lane chunks and the back
end of each program (`backends`)."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdkit import _checks, _memory
from gdkit.engine import backends as _backends
from gdkit.engine import lanes as _lanes
from gdkit.engine import programs as _kernel
from gdkit.engine import resolve as _resolve
from gdkit.engine import runner as _runner
from gdkit.objectives import Objective
from gdkit.objectives._registry import as_objective

DIVERGENCE_THRESHOLD = 1e12
MEMORY_BUDGET = 4 * 2**30  # bytes of device memory a lane chunk may use
MAX_STEPS = int(_kernel.NEVER) - 1  # steps are counted in int32 inside the programs


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep will do, before it runs (`plan`): `gdkit run --dry-run` prints it."""

    lanes: int
    programs: int  # compiled sweeps: one per combination of structural values
    lane_chunks: int  # lane chunks over all programs (each one a call of the programs)
    device_bytes: int  # device memory of the largest lane chunk
    host_bytes: int  # the results in host memory
    backend: str  # the back end that runs the programs ("xla_cpu", "xla_gpu", "fused")
    backend_reason: str  # why (one line)

    def describe_backend(self) -> str:
        """One line: which back end and why (`gdkit run --dry-run` prints it)."""
        return f"back end: {self.backend} ({self.backend_reason})"


def plan(
    objective: Objective | str,
    optimizer: str | Callable[..., Any],
    *,
    memory_budget: int = MEMORY_BUDGET,
    max_lanes_per_chunk: int | None = None,
    **kw: Any,
) -> SweepPlan:
    """The lanes, programs, lane chunks, memory and back end of `sweep(objective, optimizer,
    **kw)`, without running it (the same checks: bad arguments raise the same errors).
    Also `gdkit.sweep.plan`."""
    kw = {k: v for k, v in kw.items() if k not in ("progress", "checkpoint", "trajectories")}
    p = resolve(objective, optimizer, **kw)
    memory_budget, max_lanes_per_chunk = check_chunks(p, memory_budget, max_lanes_per_chunk)
    chunks, device = 0, 0
    combos = p.combos()
    names, reasons = {}, {}  # in order, without repeats
    for _ci, static, lanes in combos:
        spec = p.spec(static)
        choice = p.choice(spec)
        names[choice.backend.name] = reasons[choice.reason] = None
        per_lane, _cap, size = chunking(
            p, spec, lanes.size, memory_budget, max_lanes_per_chunk, choice.backend
        )
        chunks += -(-lanes.size // size)
        device = max(device, per_lane * size)  # padded to whole tiles on every device
    records = len(_lanes.record_steps(p.segments, p.steps))
    per_lane = _memory.result_bytes(p.obj.dim, records, jnp.dtype(p.dtype).itemsize)
    return SweepPlan(
        p.n, len(combos), chunks, device, p.n * per_lane, ", ".join(names), "; ".join(reasons)
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """A sweep's arguments, checked and resolved: its lanes and how to build their programs."""

    obj: Objective
    make: Callable[..., Any]
    opt_name: str
    opt_key: Any
    g: _lanes.Grid
    starts: np.ndarray  # [S, d]
    seed_values: np.ndarray | None
    axes: dict[str, np.ndarray]  # grid names..., "start", ["seed"]
    index: np.ndarray  # [axes, L] the multi-index of every lane
    x0_l: np.ndarray  # [L, d]
    keys_l: np.ndarray | None  # [L, 2] uint32
    tol: float | None
    tol_metric: str | None
    noise: float | None
    divergence_threshold: float
    dtype: Any
    residuals: bool
    unroll: int
    tile_lanes: int | None
    steps: int
    record_every: int
    segments: list
    devs: list
    engine: str  # "auto", "xla" or "fused" (`backends.choose`)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    @property
    def consts(self) -> dict[str, float]:
        """The scalars every program gets as arguments (new values never recompile)."""
        return {
            "tol": 0.0 if self.tol is None else self.tol,
            "f_min": 0.0 if self.obj.f_min is None else self.obj.f_min,
            "noise": 0.0 if self.noise is None else float(self.noise),
        }

    def pos(self, axis: str) -> int:
        return list(self.axes).index(axis)

    def static(self, combo) -> dict:
        """The structural values (fixed and swept) at indices `combo` of the swept ones."""
        static = dict(self.g.static)
        for a, i in zip(self.g.static_axes, combo, strict=True):
            static[a] = _py(self.g.axes[a][i])
        return static

    def static_values(self, lane: int) -> dict:
        """The structural values (fixed and swept) of one lane."""
        return self.static([self.index[self.pos(a)][lane] for a in self.g.static_axes])

    def combos(self) -> list[tuple[int, dict, np.ndarray]]:
        """Every combination of the swept structural values: (number, values, its lanes)."""
        out = []
        g = self.g
        values = itertools.product(*(range(len(g.axes[a])) for a in g.static_axes))
        for ci, combo in enumerate(values):
            sel = np.ones(self.n, bool)
            for a, i in zip(g.static_axes, combo, strict=True):
                sel &= self.index[self.pos(a)] == i
            out.append((ci, self.static(combo), np.flatnonzero(sel)))
        return out

    def hp(self, lanes: np.ndarray) -> dict[str, np.ndarray]:
        """The swept float hyperparameters of these lanes."""
        return {a: self.g.axes[a][self.index[self.pos(a)][lanes]] for a in self.g.traced_axes}

    def keys(self, spec: _kernel.Spec, lanes: np.ndarray) -> np.ndarray | None:
        return None if self.keys_l is None or not spec.keyed else self.keys_l[lanes]

    def choice(self, spec: _kernel.Spec) -> _backends.Choice:
        """The back end that runs `spec`'s program on this sweep's devices, and why."""
        return _backends.choose(self.engine, self.devs, spec)

    def spec(self, static: dict) -> _kernel.Spec:
        """The program of one combination of the structural values (batch size included)."""
        static = dict(static)
        batch = _resolve.batch_size(static.pop("batch_size", "full"), self.obj)
        return _kernel.Spec(
            self.obj,
            self.make,
            self.opt_key,
            self.g.traced_axes,
            tuple(self.g.fixed),
            tuple(sorted(static.items(), key=lambda kv: kv[0])),
            jnp.dtype(self.dtype).name,
            self.tol_metric,
            self.noise is not None,
            self.unroll,
            batch_size=batch,
            residuals=self.residuals,
        )


def resolve(
    objective,
    optimizer,
    *,
    steps,
    grid=None,
    x0=None,
    seeds=None,
    tol=None,
    record_every=None,
    noise=None,
    divergence_threshold=DIVERGENCE_THRESHOLD,
    dtype=None,
    devices=None,
    chunk_steps=None,
    unroll=1,
    tile_lanes=None,
    engine="auto",
) -> Plan:
    """Checks and resolves `sweep`'s arguments (see there)."""
    objective, x0 = _resolve.pytree_objective(objective, x0)
    obj = as_objective(objective, "sweep: objective")
    make, opt_name, opt_key = _resolve.optimizer(optimizer)
    steps = _checks.integer("sweep", "steps", steps, 1, MAX_STEPS)
    if tol is not None:
        tol = _checks.real("sweep", "tol", tol, 0.0)
    divergence_threshold = _checks.real(
        "sweep", "divergence_threshold", divergence_threshold, 0.0, lo_open=True, finite=False
    )
    if noise is not None:
        noise = _checks.real("sweep", "noise", noise, 0.0, lo_open=True)
    unroll = _checks.integer("sweep", "unroll", unroll, 1)
    if chunk_steps is not None:
        chunk_steps = _checks.integer("sweep", "chunk_steps", chunk_steps, 1)
    if tile_lanes is not None:
        tile_lanes = _checks.integer("sweep", "tile_lanes", tile_lanes, 1)
    engine = _backends.check_engine(engine)
    if record_every is not None:
        record_every = _checks.integer("sweep", "record_every", record_every, 1, steps)
    dtype = _resolve.dtype(dtype)
    g = _lanes.parse_grid({} if grid is None else grid)
    _resolve.check_hparams(optimizer, make, opt_name, g)
    starts = _lanes.parse_starts(x0, obj.x0, obj.dim)
    n_seeds = _lanes.count_seeds(seeds)
    if noise is not None and n_seeds is None:
        raise ValueError("sweep: noise needs seeds (e.g. seeds=4) to draw gradient noise")
    r = _lanes.default_record_every(steps) if record_every is None else record_every
    _check_segments(steps, r, chunk_steps)
    segments = _lanes.plan_segments(steps, r, chunk_steps)
    _check_host_memory(g, len(starts), n_seeds, obj.dim, dtype, steps // r + 2)
    seed_values = _lanes.parse_seeds(seeds)
    devs = _runner.resolve_devices(devices)

    axes = dict(g.axes)
    axes["start"] = np.arange(len(starts))
    if seed_values is not None:
        axes["seed"] = seed_values
    shape = tuple(len(v) for v in axes.values())
    n = int(np.prod(shape))
    index = np.indices(shape).reshape(len(shape), n)  # [axes, L] multi-index of every lane
    pos = {name: i for i, name in enumerate(axes)}
    batch_sizes = g.axes.get("batch_size", [g.static.get("batch_size", "full")])
    batching = any(str(b) != "full" for b in batch_sizes)
    if batching and seed_values is None:
        raise ValueError(
            "sweep: batch_size needs seeds (e.g. seeds=4): each seed draws its own mini-batches"
        )
    for b in batch_sizes:
        _resolve.batch_size(_py(b), obj)
    residuals = _resolve.needs_residuals(optimizer)
    if residuals and obj.residual_fn is None:
        raise ValueError(
            f"sweep: {opt_name} is a least-squares method and needs the "
            f"objective's residuals; {obj.name} has no residual_fn"
        )
    if residuals and batching:
        raise ValueError(f"sweep: {opt_name} works on the full batch (batch_size: full)")
    keys_l = None
    if noise is not None or batching:
        seed_keys = np.stack(
            [np.asarray(jax.random.key_data(jax.random.key(int(s)))) for s in seed_values]
        )
        keys_l = seed_keys[index[pos["seed"]]].astype(np.uint32)
    return Plan(
        obj=obj,
        make=make,
        opt_name=opt_name,
        opt_key=opt_key,
        g=g,
        starts=starts,
        seed_values=seed_values,
        axes=axes,
        index=index,
        x0_l=starts[index[pos["start"]]],
        keys_l=keys_l,
        tol=None if tol is None else float(tol),
        tol_metric=None if tol is None else ("grad_norm" if obj.f_min is None else "gap"),
        noise=noise,
        divergence_threshold=float(divergence_threshold),
        dtype=dtype,
        residuals=residuals,
        unroll=unroll,
        tile_lanes=tile_lanes,
        steps=steps,
        record_every=r,
        segments=segments,
        devs=devs,
        engine=engine,
    )


def chunking(p: Plan, spec, lanes: int, memory_budget: int, max_lanes_per_chunk, backend) -> tuple:
    """-> (device bytes per lane, the most lanes a chunk may have, the lanes a chunk has
    (padded as `backend` lays lanes out: to whole tiles on every device on CPU)) for a
    program's `lanes` lanes."""
    per_lane = _runner.per_lane_bytes(spec, p.obj.dim, p.g.traced_axes, p.segments[0].blocks)
    cap = max(1, memory_budget // per_lane)
    if max_lanes_per_chunk is not None:
        cap = min(cap, int(max_lanes_per_chunk))
    dim, names = p.obj.dim, p.g.traced_axes
    n_devs = len(p.devs)
    _unit, size = _runner.chunk_layout(spec, dim, names, lanes, cap, n_devs, p.tile_lanes, backend)
    return per_lane, cap, size


def check_chunks(p: Plan, memory_budget: Any, max_lanes_per_chunk: Any) -> tuple[int, int | None]:
    """Checks the lane-chunk arguments, and that one lane of every program fits in
    `memory_budget`, before anything runs; -> (memory_budget, max_lanes_per_chunk)."""
    memory_budget = _checks.integer("sweep", "memory_budget", memory_budget, 1)
    if max_lanes_per_chunk is not None:
        max_lanes_per_chunk = _checks.integer("sweep", "max_lanes_per_chunk", max_lanes_per_chunk)
    for _ci, static, _lanes_of_combo in p.combos():
        spec = p.spec(static)
        need = _runner.per_lane_bytes(spec, p.obj.dim, p.g.traced_axes, p.segments[0].blocks)
        if need > memory_budget:
            raise ValueError(
                f"sweep: one lane of {p.opt_name} on {p.obj.name} needs "
                f"{_memory.describe(need)} of device memory, more than "
                f"memory_budget={memory_budget} bytes"
            )
    return memory_budget, max_lanes_per_chunk


MAX_SEGMENTS = 10**6  # host-side chunks of steps (each one a call of a compiled program)


def _check_segments(steps: int, record_every: int, chunk_steps: int | None) -> None:
    blocks = steps // record_every
    per = max(1, min(blocks, (chunk_steps or steps) // record_every))
    if -(-blocks // per) > MAX_SEGMENTS:
        raise ValueError(
            f"sweep: chunk_steps={chunk_steps} and record_every={record_every} cut {steps} "
            f"steps into more than {MAX_SEGMENTS} chunks; make chunk_steps larger"
        )


def _check_host_memory(g, n_starts: int, n_seeds, dim: int, dtype, records: int) -> None:
    """Refuses a sweep whose lanes' inputs and results would not fit in this machine's memory
    (before any per-lane array is made)."""
    sizes = {
        "grid values": math.prod(len(v) for v in g.axes.values()),
        "starts": n_starts,
        "seeds": n_seeds or 1,
    }
    lanes = math.prod(sizes.values())
    n_axes = len(g.axes) + 1 + (n_seeds is not None)
    # results, and each lane's multi-index, start and PRNG key
    per_lane = _memory.result_bytes(dim, records, np.dtype(dtype).itemsize) + 8 * (n_axes + dim + 1)
    counts = " x ".join(str(v) for v in sizes.values())
    _checks.fits_in_memory(
        "sweep",
        f"{counts} (grid x starts x seeds) = {lanes} lanes",
        lanes * per_lane,
        hint=f"use fewer {max(sizes, key=sizes.get)}",
    )


def _py(v):
    return v.item() if isinstance(v, np.generic) else v
