"""The sweep engine: a whole hyperparameter grid x starts x seeds as one compiled program.

>>> from gdkit.sweep import sweep
>>> r = sweep("rosenbrock", "adam", grid={"learning_rate": [1e-3, 1e-2, 1e-1]},
...           steps=2000, tol=1e-6, progress=False)
>>> r.shape, r.counts()["diverged"]
((3, 1), 0)
"""

from __future__ import annotations

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
    x0_l = starts[index[pos["start"]]]
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
    tol_metric = None if tol is None else ("grad_norm" if obj.f_min is None else "gap")
    consts = {
        "tol": 0.0 if tol is None else float(tol),
        "f_min": 0.0 if obj.f_min is None else obj.f_min,
        "noise": 0.0 if noise is None else float(noise),
    }

    def make_spec(static: dict) -> _kernel.Spec:
        """The program of one combination of the structural values (batch size included)."""
        static = dict(static)
        batch = _resolve.batch_size(static.pop("batch_size", "full"), obj)
        return _kernel.Spec(
            obj,
            make,
            opt_key,
            g.traced_axes,
            tuple(g.fixed),
            tuple(sorted(static.items(), key=lambda kv: kv[0])),
            jnp.dtype(dtype).name,
            tol_metric,
            noise is not None,
            unroll,
            batch_size=batch,
            residuals=residuals,
        )

    out = {}
    clock = [0.0]
    t_start = time.perf_counter()
    combos = list(itertools.product(*(range(len(g.axes[a])) for a in g.static_axes)))
    key = saved = None
    if checkpoint is not None:
        key = _checkpoint.fingerprint(
            obj.name,
            opt_key,
            {k: np.asarray(v) for k, v in g.axes.items()},
            g.fixed,
            g.static,
            starts,
            seed_values,
            steps,
            tol,
            r,
            jnp.dtype(dtype).name,
            noise,
            divergence_threshold,
            len(devs),
            tile_lanes,
            memory_budget,
            max_lanes_per_chunk,
            chunk_steps,
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
    with _progress(progress, steps * n, f"{obj.name} / {opt_name}") as advance:
        for ci, combo in enumerate(combos):
            static = dict(g.static)
            sel = np.ones(n, bool)
            for a, i in zip(g.static_axes, combo, strict=False):
                static[a] = _py(g.axes[a][i])
                sel &= index[pos[a]] == i
            lanes = np.flatnonzero(sel)
            if ci < start_combo:  # finished before an interruption: its outputs are in `out`
                advance(steps * lanes.size)
                continue
            resume = inner if ci == start_combo else None
            first = 0 if resume is None else resume["lo"]
            spec = make_spec(static)
            hp_l = {a: g.axes[a][index[pos[a]][lanes]] for a in g.traced_axes}
            per_lane = _runner.per_lane_bytes(spec, obj.dim, g.traced_axes, segments[0].blocks)
            cap = max(1, memory_budget // per_lane)
            if max_lanes_per_chunk is not None:
                cap = min(cap, int(max_lanes_per_chunk))
            res = _runner.run_lanes(
                spec,
                x0_l[lanes],
                hp_l,
                g.fixed,
                None if keys_l is None or not spec.keyed else keys_l[lanes],
                consts,
                divergence_threshold,
                segments,
                steps,
                devs,
                cap,
                advance,
                clock,
                tile_lanes,
                resume,
                None
                if checkpoint is None
                else functools.partial(
                    _checkpoint.snapshot, checkpoint, key, out, n, ci, lanes[first:]
                ),
            )
            _checkpoint.merge(out, n, lanes[first:], res)
    if checkpoint is not None:
        checkpoint.clear()
    total = time.perf_counter() - t_start

    stt = out["steps_to_tol"].astype(np.int64)
    div = out["diverged_step"].astype(np.int64)
    diverged = div != _kernel.NEVER
    # Converged: reached tol, never diverged, and still within tol at the end (a lane that
    # only passed through tol, as gradient descent just above its stability edge does, is not).
    converged = (stt != _kernel.NEVER) & ~diverged & out["final_hit"]
    stt = np.where(converged, stt, -1)
    status = np.where(diverged, "diverged", np.where(converged, "converged", "max_steps"))
    result = SweepResult(
        objective=obj.name,
        optimizer=opt_name,
        fixed={**g.fixed, **g.static, **({"noise": noise} if noise is not None else {})},
        axes=axes,
        starts=starts,
        steps=steps,
        tol=None if tol is None else float(tol),
        tol_metric="none" if tol_metric is None else tol_metric,
        f_min=obj.f_min,
        dtype=jnp.dtype(dtype).name,
        divergence_threshold=float(divergence_threshold),
        final_loss=out["final_loss"].reshape(shape),
        best_loss=out["best_loss"].reshape(shape),
        final_x=out["final_x"].reshape(*shape, obj.dim),
        final_grad_norm=out["final_grad_norm"].reshape(shape),
        steps_to_tol=stt.reshape(shape),
        status=status.astype("<U9").reshape(shape),
        diverged_step=np.where(diverged, div, -1).reshape(shape),
        history=out["history"].reshape(*shape, -1),
        history_steps=_lanes.record_steps(segments, steps),
        compile_time=clock[0],
        run_time=total - clock[0],
    )
    if trajectories is not None:
        _add_trajectories(
            result,
            trajectories,
            obj,
            make_spec,
            g,
            index,
            pos,
            x0_l,
            keys_l,
            consts,
            divergence_threshold,
            dtype,
        )
    return result


def _add_trajectories(
    result, which, obj, make_spec, g, index, pos, x0_l, keys_l, consts, thr, dtype
):
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
    xs = np.empty((lanes.size, result.steps + 1, obj.dim), dtype)
    vs = np.empty((lanes.size, result.steps + 1), dtype)
    for j, lane in enumerate(lanes):
        static = dict(g.static)
        for a in g.static_axes:
            static[a] = _py(g.axes[a][index[pos[a]][lane]])
        spec = make_spec(static)
        hp = {a: g.axes[a][index[pos[a]][[lane]]] for a in g.traced_axes}
        keys = None if keys_l is None or not spec.keyed else keys_l[[lane]]
        x, v = _runner.run_trajectories(
            spec, x0_l[[lane]], hp, g.fixed, keys, consts, thr, result.steps
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
