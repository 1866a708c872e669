"""The sweep engine: a whole hyperparameter grid x starts x seeds as one compiled program.

>>> from gdkit.sweep import sweep
>>> r = sweep("rosenbrock", "adam", grid={"learning_rate": [1e-3, 1e-2, 1e-1]},
...           steps=2000, tol=1e-6, progress=False)
>>> r.shape, r.counts()["diverged"]
((3, 1), 0)
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdkit import _checkpoint, _kernel, _lanes, _resolve, _runner
from gdkit.objectives import Objective
from gdkit.objectives import get as _get_objective
from gdkit.result import SweepResult

DIVERGENCE_THRESHOLD = 1e12
MEMORY_BUDGET = 4 * 2**30  # bytes of device memory a lane chunk may use


def sweep(
    objective: Objective | str,
    optimizer: str | Callable[..., Any],
    *,
    grid: Mapping[str, Any],
    steps: int,
    x0: Any = None,
    seeds: int | Sequence[int] | None = None,
    tol: float | None = None,
    record_every: int | None = None,
    noise: float | None = None,
    divergence_threshold: float = DIVERGENCE_THRESHOLD,
    trajectories: Sequence[int] | str | None = None,
    dtype: Any = None,
    devices: Any = None,
    chunk_steps: int | None = None,
    max_lanes_per_chunk: int | None = None,
    memory_budget: int = MEMORY_BUDGET,
    unroll: int = 1,
    tile_lanes: int | None = None,
    progress: bool = True,
    checkpoint: _checkpoint.Checkpoint | None = None,
) -> SweepResult:
    """Runs `optimizer` on `objective` for every grid point x start x seed, as one program.

    Args:
      objective: an `Objective` or a registered name (`gdkit.objectives.names()`).
      optimizer: a name (`gdkit.optimizers`, else an optax alias; "gd" is `optax.sgd`) or a
        factory `(**hparams) -> optax.GradientTransformation`.
      grid: hyperparameter -> 1-D values (swept; outer product in the order given) or a
        scalar (fixed). Float values are array arguments: new values never recompile. Other
        values (bool, int, str) are structural: one program per swept value.
      steps: optimizer steps per lane.
      x0: starts [S, d] or one start [d]; default the objective's customary start. See
        `gdkit.starts` for grids and random start sets.
      seeds: N (seeds 0..N-1) or a list of seeds: adds a `seed` axis with a PRNG key per lane,
        used by stochastic parts (`noise`).
      tol: a lane converges when f - f_min <= tol (|grad f| <= tol if f_min is unknown).
        None: no convergence test (every surviving lane ends "max_steps").
      record_every: loss history thinning (default: about 100 records).
      noise: standard deviation of Gaussian noise added to every gradient (needs `seeds`).
      divergence_threshold: a lane diverges at the first step whose loss is NaN/inf or has
        |f| > divergence_threshold * max(1, |f(x0)|); it is frozen at its last finite point.
      trajectories: flat lane indices (C order over the result's axes), "best" or
        "representative" (see `SweepResult`), whose full paths (every step) are recorded by
        re-running just those lanes.
      dtype: float32 by default, float64 when JAX x64 is enabled; asking for float64 without
        x64 is an error (nothing is silently downcast).
      devices: devices to shard the lanes over (default: all local devices), or a count.
      chunk_steps: steps per host-side chunk (the progress bar advances per chunk).
      max_lanes_per_chunk, memory_budget: lanes run in chunks of at most this many lanes /
        this many bytes of device memory.
      unroll: scan unroll factor of the step loop.
      tile_lanes: lanes per cache tile: each device runs a chunk of steps one tile of lanes
        at a time, so the tile's state stays in cache (default: sized for a ~1 MiB L2).
        Results do not depend on it.
      progress: show a progress bar (rich).
      checkpoint: a `gdkit.Checkpoint`: after a chunk of steps (at most every few seconds)
        the whole state of the sweep is saved there; a later call with the same arguments
        and the same checkpoint resumes from it and returns the same numbers, bit for bit.
        The file is removed when the sweep completes.

    Returns:
      A `SweepResult` with axes (grid names..., "start", ["seed"]).
    """
    p = _plan(
        objective,
        optimizer,
        grid=grid,
        steps=steps,
        x0=x0,
        seeds=seeds,
        tol=tol,
        record_every=record_every,
        noise=noise,
        divergence_threshold=divergence_threshold,
        dtype=dtype,
        devices=devices,
        chunk_steps=chunk_steps,
        unroll=unroll,
        tile_lanes=tile_lanes,
    )
    clock = [0.0]
    t_start = time.perf_counter()
    out = _run(p, clock, memory_budget, max_lanes_per_chunk, progress, checkpoint)
    total = time.perf_counter() - t_start
    result = _result(p, out, compile_time=clock[0], run_time=total - clock[0])
    if trajectories is not None:
        _add_trajectories(result, trajectories, p)
    return result


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """What a sweep will do, before it runs (`plan`): `gdkit run --dry-run` prints it."""

    lanes: int
    programs: int  # compiled sweeps: one per combination of structural values
    lane_chunks: int  # lane chunks over all programs (each one a call of the programs)
    device_bytes: int  # device memory of the largest lane chunk
    host_bytes: int  # the results in host memory


def plan(
    objective: Objective | str,
    optimizer: str | Callable[..., Any],
    *,
    memory_budget: int = MEMORY_BUDGET,
    max_lanes_per_chunk: int | None = None,
    **kw: Any,
) -> SweepPlan:
    """The lanes, programs, lane chunks and memory of `sweep(objective, optimizer, **kw)`,
    without running it (the same checks: bad arguments raise the same errors)."""
    kw = {k: v for k, v in kw.items() if k not in ("progress", "checkpoint", "trajectories")}
    p = _plan(objective, optimizer, **kw)
    chunks, device = 0, 0
    for _ci, static, lanes in p.combos():
        spec = p.spec(static)
        per_lane, _cap, size = _chunking(p, spec, lanes.size, memory_budget, max_lanes_per_chunk)
        chunks += -(-lanes.size // size)
        device = max(device, per_lane * size)  # padded to whole tiles on every device
    size = jnp.dtype(p.dtype).itemsize
    records = len(_lanes.record_steps(p.segments, p.steps))
    # final_x, final/best loss, grad norm; steps to tol, divergence step; status; history
    per_lane = (p.obj.dim + 3) * size + 16 + 36 + records * size
    return SweepPlan(p.n, len(p.combos()), chunks, device, p.n * per_lane)


@dataclasses.dataclass(frozen=True)
class _Plan:
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
    consts: dict[str, float]
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

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.axes.values())

    @property
    def n(self) -> int:
        return int(np.prod(self.shape))

    def pos(self, axis: str) -> int:
        return list(self.axes).index(axis)

    def static_values(self, lane: int) -> dict:
        """The structural values (fixed and swept) of one lane."""
        static = dict(self.g.static)
        for a in self.g.static_axes:
            static[a] = _py(self.g.axes[a][self.index[self.pos(a)][lane]])
        return static

    def combos(self) -> list[tuple[int, dict, np.ndarray]]:
        """Every combination of the swept structural values: (number, values, its lanes)."""
        out = []
        g = self.g
        values = itertools.product(*(range(len(g.axes[a])) for a in g.static_axes))
        for ci, combo in enumerate(values):
            static = dict(g.static)
            sel = np.ones(self.n, bool)
            for a, i in zip(g.static_axes, combo, strict=False):
                static[a] = _py(g.axes[a][i])
                sel &= self.index[self.pos(a)] == i
            out.append((ci, static, np.flatnonzero(sel)))
        return out

    def hp(self, lanes: np.ndarray) -> dict[str, np.ndarray]:
        """The swept float hyperparameters of these lanes."""
        return {a: self.g.axes[a][self.index[self.pos(a)][lanes]] for a in self.g.traced_axes}

    def keys(self, spec: _kernel.Spec, lanes: np.ndarray) -> np.ndarray | None:
        return None if self.keys_l is None or not spec.keyed else self.keys_l[lanes]

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


def _plan(
    objective,
    optimizer,
    *,
    grid,
    steps,
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
) -> _Plan:
    """Checks and resolves `sweep`'s arguments (see there)."""
    obj = _get_objective(objective) if isinstance(objective, str) else objective
    if not isinstance(obj, Objective):
        raise TypeError(f"sweep: objective must be an Objective or a name, got {objective!r}")
    make, opt_name, opt_key = _resolve.optimizer(optimizer)
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise ValueError(f"sweep: steps must be an integer >= 1, got {steps!r}")
    steps = int(steps)
    if tol is not None and not (np.isfinite(tol) and tol >= 0):
        raise ValueError(f"sweep: tol must be a finite number >= 0 or None, got {tol!r}")
    if not divergence_threshold > 0:
        raise ValueError(f"sweep: divergence_threshold must be > 0, got {divergence_threshold}")
    dtype = _resolve.dtype(dtype)
    g = _lanes.parse_grid(grid)
    starts = _lanes.parse_starts(x0, obj.x0, obj.dim)
    seed_values = _lanes.parse_seeds(seeds)
    if noise is not None and seed_values is None:
        raise ValueError("sweep: noise needs seeds (e.g. seeds=4) to draw gradient noise")
    r = _lanes.default_record_every(steps) if record_every is None else int(record_every)
    if tile_lanes is not None and not (isinstance(tile_lanes, int) and tile_lanes >= 1):
        raise ValueError(f"sweep: tile_lanes must be an integer >= 1 or None, got {tile_lanes!r}")
    if not 1 <= r <= steps:
        raise ValueError(f"sweep: record_every must be in [1, steps={steps}], got {record_every}")
    segments = _lanes.plan_segments(steps, r, chunk_steps)
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
    return _Plan(
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
        consts={
            "tol": 0.0 if tol is None else float(tol),
            "f_min": 0.0 if obj.f_min is None else obj.f_min,
            "noise": 0.0 if noise is None else float(noise),
        },
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
    )


def _chunking(p: _Plan, spec, lanes: int, memory_budget: int, max_lanes_per_chunk) -> tuple:
    """-> (device bytes per lane, the most lanes a chunk may have, the lanes a chunk has
    (padded to whole tiles on every device)) for a program's `lanes` lanes."""
    per_lane = _runner.per_lane_bytes(spec, p.obj.dim, p.g.traced_axes, p.segments[0].blocks)
    cap = max(1, memory_budget // per_lane)
    if max_lanes_per_chunk is not None:
        cap = min(cap, int(max_lanes_per_chunk))
    dim, names = p.obj.dim, p.g.traced_axes
    _tile, size = _runner.chunk_layout(spec, dim, names, lanes, cap, len(p.devs), p.tile_lanes)
    return per_lane, cap, size


def _run(p: _Plan, clock, memory_budget, max_lanes_per_chunk, progress, checkpoint) -> dict:
    """Runs every program's lanes (resuming from `checkpoint`): flat per-lane outputs."""
    out = {}
    key = saved = None
    if checkpoint is not None:
        key = _checkpoint.fingerprint(
            p.obj.name,
            p.opt_key,
            {k: np.asarray(v) for k, v in p.g.axes.items()},
            p.g.fixed,
            p.g.static,
            p.starts,
            p.seed_values,
            p.steps,
            p.tol,
            p.record_every,
            jnp.dtype(p.dtype).name,
            p.noise,
            p.divergence_threshold,
            len(p.devs),
            p.tile_lanes,
            memory_budget,
            max_lanes_per_chunk,
            [s.steps for s in p.segments],
        )
        saved = checkpoint.load(key)
    start_combo, inner = 0, None
    if saved is not None:
        meta, arrays = saved
        start_combo = meta["combo"]
        out = {k[4:]: v for k, v in arrays.items() if k.startswith("out_")}
        inner = {
            "lo": meta["lo"],
            "seg": meta["seg"],
            "carry": [arrays[f"carry_{i}"] for i in range(meta["n_carry"])],
            "hist": [arrays[f"hist_{i}"] for i in range(meta["n_hist"])],
        }
    with _progress(progress, p.steps * p.n, f"{p.obj.name} / {p.opt_name}") as advance:
        for ci, static, lanes in p.combos():
            if ci < start_combo:  # finished before an interruption: its outputs are in `out`
                advance(p.steps * lanes.size)
                continue
            resume = inner if ci == start_combo else None
            first = 0 if resume is None else resume["lo"]
            spec = p.spec(static)
            cap = _chunking(p, spec, lanes.size, memory_budget, max_lanes_per_chunk)[1]
            res = _runner.run_lanes(
                spec,
                p.x0_l[lanes],
                p.hp(lanes),
                p.g.fixed,
                p.keys(spec, lanes),
                p.consts,
                p.divergence_threshold,
                p.segments,
                p.steps,
                p.devs,
                cap,
                advance,
                clock,
                p.tile_lanes,
                resume,
                None
                if checkpoint is None
                else functools.partial(
                    _checkpoint.snapshot, checkpoint, key, out, p.n, ci, lanes[first:]
                ),
            )
            _checkpoint.merge(out, p.n, lanes[first:], res)
    if checkpoint is not None:
        checkpoint.clear()
    return out


def _result(p: _Plan, out: dict, **times) -> SweepResult:
    """The per-lane outputs as a SweepResult: statuses, and arrays shaped by the axes."""
    shape = p.shape
    stt = out["steps_to_tol"].astype(np.int64)
    div = out["diverged_step"].astype(np.int64)
    diverged = div != _kernel.NEVER
    # Converged: reached tol, never diverged, and still within tol at the end (a lane that
    # only passed through tol, as gradient descent just above its stability edge does, is not).
    converged = (stt != _kernel.NEVER) & ~diverged & out["final_hit"]
    stt = np.where(converged, stt, -1)
    status = np.where(diverged, "diverged", np.where(converged, "converged", "max_steps"))
    noise = {"noise": p.noise} if p.noise is not None else {}
    return SweepResult(
        objective=p.obj.name,
        optimizer=p.opt_name,
        fixed={**p.g.fixed, **p.g.static, **noise},
        axes=p.axes,
        starts=p.starts,
        steps=p.steps,
        tol=p.tol,
        tol_metric="none" if p.tol_metric is None else p.tol_metric,
        f_min=p.obj.f_min,
        dtype=jnp.dtype(p.dtype).name,
        divergence_threshold=p.divergence_threshold,
        final_loss=out["final_loss"].reshape(shape),
        best_loss=out["best_loss"].reshape(shape),
        final_x=out["final_x"].reshape(*shape, p.obj.dim),
        final_grad_norm=out["final_grad_norm"].reshape(shape),
        steps_to_tol=stt.reshape(shape),
        status=status.astype("<U9").reshape(shape),
        diverged_step=np.where(diverged, div, -1).reshape(shape),
        history=out["history"].reshape(*shape, -1),
        history_steps=_lanes.record_steps(p.segments, p.steps),
        **times,
    )


def _add_trajectories(result: SweepResult, which, p: _Plan) -> None:
    if isinstance(which, str):
        if which not in ("best", "representative"):
            raise ValueError(
                "sweep: trajectories must be lane indices, 'best' or 'representative', "
                f"got {which!r}"
            )
        diverged_all = result.diverged.all()  # no such lane: record nothing
        pick = result.best if which == "best" else result.representative
        lanes = np.array([], np.int64) if diverged_all else np.array([pick()["lane"]])
    else:
        lanes = np.asarray(which, dtype=np.int64).reshape(-1)
        if lanes.size and (lanes.min() < 0 or lanes.max() >= result.lanes):
            raise ValueError(f"sweep: trajectories lane indices must be in [0, {result.lanes})")
    xs = np.empty((lanes.size, result.steps + 1, p.obj.dim), p.dtype)
    vs = np.empty((lanes.size, result.steps + 1), p.dtype)
    for j, lane in enumerate(lanes):
        spec = p.spec(p.static_values(lane))
        one = lanes[j : j + 1]
        x, v = _runner.run_trajectories(
            spec,
            p.x0_l[one],
            p.hp(one),
            p.g.fixed,
            p.keys(spec, one),
            p.consts,
            p.divergence_threshold,
            result.steps,
        )
        xs[j], vs[j] = x[0], v[0]
    result.trajectory_lanes, result.trajectory_x, result.trajectory_loss = lanes, xs, vs


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


class _progress:
    """A rich progress bar over trajectory-steps; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self):
        if not self.enabled:
            return lambda k: None
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self.bar.start()
        task = self.bar.add_task(self.label, total=self.total)
        return lambda k: self.bar.advance(task, k)

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()
