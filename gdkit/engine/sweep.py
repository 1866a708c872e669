"""The sweep engine: a whole hyperparameter grid x starts x seeds as one compiled program.

>>> from gdkit.engine.sweep import sweep
>>> r = sweep("rosenbrock", "adam", grid={"learning_rate": [1e-3, 1e-2, 1e-1]},
...           steps=2000, tol=1e-6, progress=False)
>>> r.shape, r.counts()["diverged"]
((3, 1), 0)
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdkit import _checks
from gdkit.engine import checkpoint as _checkpoint
from gdkit.engine import lanes as _lanes
from gdkit.engine import programs as _kernel
from gdkit.engine import runner as _runner
from gdkit.engine.plan import (
    DIVERGENCE_THRESHOLD,
    MEMORY_BUDGET,
    Plan,
    SweepPlan,
    check_chunks,
    chunking,
    plan,
    resolve,
)
from gdkit.objectives import Objective
from gdkit.result import SweepResult

__all__ = ["DIVERGENCE_THRESHOLD", "MEMORY_BUDGET", "SweepPlan", "plan", "sweep"]


def sweep(
    objective: Objective | str,
    optimizer: str | Callable[..., Any],
    *,
    steps: int,
    grid: Mapping[str, Any] | None = None,
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
    engine: str = "auto",
    progress: bool | str = True,
    checkpoint: _checkpoint.Checkpoint | None = None,
) -> SweepResult:
    """Runs `optimizer` on `objective` for every grid point x start x seed, as one program.

    Args:
      objective: an `Objective` or a registered name (`gdkit.objectives.names()`); with a
        pytree `x0`, a function `fn(params) -> scalar` of that pytree.
      optimizer: a name (`gdkit.optimizers`, else an optax alias; "gd" is `optax.sgd`) or a
        factory `(**hparams) -> optax.GradientTransformation`.
      grid: hyperparameter -> 1-D values (swept; outer product in the order given) or a
        scalar (fixed). Float values are array arguments: new values never recompile. Other
        values (bool, int, str) are structural: one program per swept value. None (the
        default): nothing swept, one lane per start (and seed).
      steps: optimizer steps per lane.
      x0: starts [S, d] or one start [d]; default the objective's customary start. See
        `gdkit.starts` for grids and random start sets. Or a parameter pytree (a dict of
        arrays, ...), or a list of them: flattened at this boundary (coordinates named by tree
        paths, `w1[0,3]`; `SweepResult.final_params` gives pytrees back).
      seeds: N (seeds 0..N-1) or a list of seeds: adds a `seed` axis with a PRNG key per lane,
        used by stochastic parts (`noise`).
      tol: a lane is "converged" when f - f_min falls to tol and stays there; when f_min is
        unknown, "stationary" when |grad f| does (a plateau or a saddle may be one). None:
        no test (every surviving lane ends "max_steps").
      record_every: loss history thinning (default: about 100 records).
      noise: standard deviation of Gaussian noise added to every gradient (needs `seeds`).
      divergence_threshold: a lane diverges at the first step whose loss is NaN/inf or has
        |f| > divergence_threshold * max(1, |f(x0)|); it is frozen at its last finite point.
      trajectories: flat lane indices (C order over the result's axes), "best" or
        "representative" (see `SweepResult`), whose full paths (every step) are recorded:
        by the sweep's own programs where all of its lanes' paths take at most `PATH_BYTES`
        (32 MiB) on the XLA back ends, else by re-running just those lanes (a program of
        their own). Both give the same bits.
      dtype: float32 by default, float64 when JAX x64 is enabled; asking for float64 without
        x64 is an error (nothing is silently downcast).
      devices: devices to shard the lanes over (default: all local devices), or a count.
      chunk_steps: steps per host-side chunk (the progress bar advances per chunk).
      max_lanes_per_chunk, memory_budget: lanes run in chunks of at most this many lanes /
        this many bytes of device memory.
      unroll: scan unroll factor of the step loop.
      tile_lanes: lanes per cache tile: each device runs a chunk of steps one tile of lanes
        at a time, so the tile's state stays in cache (default: sized for a ~1 MiB L2).
        It changes at most the last bits of a few lanes (those at the end of a tile, which
        XLA:CPU rounds differently). CPU devices only (a GPU runs a device's lanes at once).
      engine: "auto" (default), "xla" or "fused". "xla" runs the XLA programs, laid out for
        the devices' platform: on CPUs in cache-sized tiles with one device per core
        (`xla_cpu`), on GPUs each device's lanes as one program whose chunks of steps stay
        on the device (`xla_gpu`). "fused" runs each chunk of steps as one Pallas kernel
        (on CPU in Pallas's interpret mode, for tests); a sweep the kernel cannot express
        runs on XLA, with a warning saying why. "auto": fused on a GPU where it applies,
        else XLA. `sweep.plan(...)` says which back end runs and why. For tests, the
        environment variable GDKIT_XLA_BACKEND=xla_gpu (or xla_cpu) forces that XLA
        layout whatever the devices are, e.g. the GPU layout on CPU host devices.
      progress: show a progress bar (rich): it shows compiling, with the time elapsed, until
        the first chunk of steps ends, then the trajectory-steps done, their rate and the time
        left. A string is the bar's label (default: objective / optimizer).
      checkpoint: a `gdkit.Checkpoint`, or a path (a Checkpoint there, with its defaults):
        after a chunk of steps (at most every few seconds) the whole state of the sweep is
        saved there; a later call with the same arguments and the same checkpoint resumes
        from it and returns the same numbers, bit for bit.
        The file is removed when the sweep completes.

    Returns:
      A `SweepResult` with axes (grid names..., "start", ["seed"]).
    """
    p = resolve(
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
        engine=engine,
    )
    memory_budget, max_lanes_per_chunk = check_chunks(p, memory_budget, max_lanes_per_chunk)
    lanes = None if trajectories is None else _trajectory_lanes(trajectories, p.n)
    label = f"{p.obj.name} / {p.opt_name}"
    if isinstance(progress, str):
        label, progress = progress, True
    if not isinstance(progress, bool | np.bool_):
        raise ValueError(
            "sweep: progress must be True, False or a label (a string), "
            f"got {_checks.short(progress)}"
        )
    progress = bool(progress) and label
    checkpoint = _checkpoint.as_checkpoint(checkpoint)
    _warn_fallbacks(p)
    which = trajectories if isinstance(trajectories, str) else lanes
    recorded = _recording(p, which)
    if trajectories is not None:
        _trajectories_ahead(which, p, recorded)
    clock = _Clock()
    out, paths = _run(p, clock, memory_budget, max_lanes_per_chunk, progress, checkpoint, recorded)
    result = _result(p, out, compile_time=clock.compile[0], run_time=clock.run_time())
    if trajectories is not None:
        _add_trajectories(result, which, p, paths)
    return result


class _Clock:
    """A sweep's seconds, split so that `run_time` is what stepping the lanes took: from the
    start, less compiling (`compile[0]`, which the runner adds to), less reading and writing
    the checkpoint (`io`), plus the run time before the interruption when resuming (what the
    snapshot recorded)."""

    def __init__(self):
        self.start = time.perf_counter()
        self.compile = [0.0]
        self.io = 0.0
        self.before = 0.0

    def run_time(self) -> float:
        elapsed = time.perf_counter() - self.start
        return self.before + elapsed - self.compile[0] - self.io

    def snapshot(self, *args, **kwargs) -> None:
        """`_checkpoint.snapshot`, recording the run time so far, its own time not counted."""
        t = time.perf_counter()
        _checkpoint.snapshot(*args, **kwargs, run_time=self.run_time())
        self.io += time.perf_counter() - t


def _run(
    p: Plan, clock: _Clock, memory_budget, max_lanes_per_chunk, progress, checkpoint, recorded
) -> tuple[dict, dict]:
    """Runs every program's lanes (resuming from `checkpoint`): flat per-lane outputs, and
    the paths the programs in `recorded` (`_recording`) recorded: {"path_x", "path_loss",
    "have": which lanes have theirs} (none for a lane chunk resumed mid-way, nor saved in
    checkpoints: those lanes' trajectories get a program of their own)."""
    out = {}
    paths = {"have": np.zeros(p.n, bool)}
    key = saved = None
    if checkpoint is not None:
        t = time.perf_counter()
        key = _checkpoint.fingerprint(
            _checkpoint.FORMAT,
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
            [_backend_key(p.choice(p.spec(s)).backend) for _, s, _ in p.combos()],
        )
        saved = checkpoint.load(key)
        clock.io += time.perf_counter() - t
    start_combo, inner = 0, None
    if saved is not None:
        meta, arrays = saved
        start_combo = meta["combo"]
        clock.before = checkpoint.resumed_run_time
        out = {k[4:]: v for k, v in arrays.items() if k.startswith("out_")}
        inner = {
            "lo": meta["lo"],
            "seg": meta["seg"],
            "carry": [arrays[f"carry_{i}"] for i in range(meta["n_carry"])],
            "hist": [arrays[f"hist_{i}"] for i in range(meta["n_hist"])],
        }
    with _progress(bool(progress), p.steps * p.n, progress or "") as advance:
        for ci, static, lanes in p.combos():
            if ci < start_combo:  # finished before an interruption: its outputs are in `out`
                advance(p.steps * lanes.size)
                continue
            resume = inner if ci == start_combo else None
            first = 0 if resume is None else resume["lo"]
            spec = p.spec(static)
            backend = p.choice(spec).backend
            cap = chunking(p, spec, lanes.size, memory_budget, max_lanes_per_chunk, backend)[1]
            res = _runner.run_lanes(
                *_lane_inputs(p, spec, lanes),
                p.segments,
                p.steps,
                p.devs,
                cap,
                advance,
                clock.compile,
                backend,
                p.tile_lanes,
                resume,
                None
                if checkpoint is None
                else functools.partial(
                    clock.snapshot, checkpoint, key, out, p.n, ci, lanes[first:]
                ),
                spec in recorded,
            )
            if "path_x" in res:
                got = {k: res.pop(k) for k in ("path_x", "path_loss")}
                _checkpoint.merge(paths, p.n, lanes, got)
                paths["have"][lanes] = True
            _checkpoint.merge(out, p.n, lanes[first:], res)
    if checkpoint is not None:
        checkpoint.clear()
    return out, paths


def _backend_key(backend) -> tuple:
    """What of a back end shapes a checkpoint's arrays (its lane layout)."""
    return backend.name, backend.interpret


def _warn_fallbacks(p: Plan) -> None:
    """One warning line per reason why engine="fused" runs (some of) the sweep on XLA."""
    reasons = {p.choice(p.spec(static)).fallback: None for _ci, static, _lanes in p.combos()}
    for reason in reasons:
        if reason is not None:
            warnings.warn(f"sweep: engine='fused' runs on XLA instead: {reason}", stacklevel=3)


def _result(p: Plan, out: dict, **times) -> SweepResult:
    """The per-lane outputs as a SweepResult: statuses, and arrays shaped by the axes."""
    shape = p.shape
    stt = out["steps_to_tol"].astype(np.int64)
    div = out["diverged_step"].astype(np.int64)
    diverged = div != _kernel.NEVER
    # Converged: within tol from step steps_to_tol to the end, never diverged (a lane that
    # only passed through tol, as gradient descent just above its stability edge does, is not;
    # one that dipped under tol, climbed out and came back reached tol when it came back).
    # Without a known minimum, tol is on |grad f|: a lane within it reached a stationary point
    # (a plateau or a saddle may be one), reported `stationary`, never `converged`.
    reached = (stt != _kernel.NEVER) & ~diverged & out["final_hit"]
    stt = np.where(reached, stt, -1)
    done = "stationary" if p.tol_metric == "grad_norm" else "converged"
    status = np.where(diverged, "diverged", np.where(reached, done, "max_steps"))
    noise = {"noise": p.noise} if p.noise is not None else {}
    # f and grad always; Hessians and Jacobians where the optimizer made any
    kinds = ["f", "grad"] + [k for k in ("hess", "jac") if np.any(out[f"evals_{k}"] > 0)]
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
        status=status.astype("<U10").reshape(shape),
        diverged_step=np.where(diverged, div, -1).reshape(shape),
        history=out["history"].reshape(*shape, -1),
        history_steps=_lanes.record_steps(p.segments, p.steps),
        param_names=p.obj.param_names,
        unravel=p.obj.unravel,
        evals=_evals(out, "evals_", shape, kinds),
        evals_to_tol=_evals(out, "evals_tol_", shape, kinds, reached),
        **times,
    )


def _evals(out: dict, prefix: str, shape, kinds, reached=None) -> dict[str, np.ndarray]:
    """The evaluation counts of `out` of each kind, shaped by the axes; -1 where not
    `reached` (where steps_to_tol is -1)."""
    counts = {k: out[prefix + k].astype(np.int64) for k in kinds}
    if reached is not None:
        counts = {k: np.where(reached, v, -1) for k, v in counts.items()}
    return {k: v.reshape(shape) for k, v in counts.items()}


def _trajectory_lanes(which: Any, n: int) -> np.ndarray | None:
    """Checks `trajectories` before the sweep runs: its lane indices (None for a name)."""
    if isinstance(which, str):
        if which not in ("best", "representative"):
            raise ValueError(
                "sweep: trajectories must be lane indices, 'best' or 'representative', "
                f"got {_checks.short(which)}"
            )
        return None
    try:
        arr = np.asarray(which).reshape(-1) if not isinstance(which, bytes | Mapping) else None
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(
            "sweep: trajectories must be a 1-D list of lane indices, 'best' or "
            f"'representative', got {_checks.short(which)}"
        )
    lanes = arr.astype(np.int64)
    if lanes.size and (lanes.min() < 0 or lanes.max() >= n):
        raise ValueError(
            f"sweep: trajectories lane indices must be in [0, {n}), got {_checks.short(which)}"
        )
    return lanes


def compile_ahead(
    objective: Objective | str,
    optimizer: str | Callable[..., Any],
    *,
    memory_budget: int = MEMORY_BUDGET,
    max_lanes_per_chunk: int | None = None,
    **kw: Any,
) -> None:
    """Starts compiling, on a background thread, the first programs `sweep(objective,
    optimizer, **kw)` will run (the init and chunk programs of its first lane chunk), and
    returns at once: an experiment calls it for its next sweep before running the current
    one, so that XLA (which releases the GIL) compiles on another core meanwhile. The sweep
    then finds them compiled, or waits for them. Nothing is run and nothing changes in what
    the sweep computes. Also `gdkit.sweep.compile_ahead`. Arguments as for `sweep`; errors in
    them are left for the sweep itself to raise. With `trajectories`, their programs are
    compiled next (as the sweep would start them: for named lanes, the program of one lane
    where all lanes share one)."""
    trajectories = kw.pop("trajectories", None)
    kw = {k: v for k, v in kw.items() if k not in ("progress", "checkpoint")}

    def job():
        p = resolve(objective, optimizer, **kw)
        budget, cap = check_chunks(p, memory_budget, max_lanes_per_chunk)
        _ci, static, lanes = p.combos()[0]
        spec = p.spec(static)
        backend = p.choice(spec).backend
        cap = chunking(p, spec, lanes.size, budget, cap, backend)[1]
        which = trajectories
        if trajectories is not None and not isinstance(trajectories, str):
            which = _trajectory_lanes(trajectories, p.n)
        recorded = _recording(p, which)
        _runner.compile_lanes_ahead(
            *_lane_inputs(p, spec, lanes),
            p.segments,
            p.devs,
            cap,
            backend,
            p.tile_lanes,
            spec in recorded,
        )
        if which is not None:  # queued behind the init and chunk programs
            _trajectories_ahead(which, p, recorded)

    _runner.ahead(job)


def _lane_inputs(p: Plan, spec, lanes: np.ndarray) -> tuple:
    """What every lane program of `spec` gets for these lanes: (spec, x0, lane
    hyperparameters, fixed ones, PRNG keys, constants, divergence threshold scale)."""
    return (
        spec,
        p.x0_l[lanes],
        p.hp(lanes),
        p.g.fixed,
        p.keys(spec, lanes),
        p.consts,
        p.divergence_threshold,
    )


def _trajectory_groups(p: Plan, lanes: np.ndarray) -> dict:
    """The lanes (positions in `lanes`) of each compiled program (their static values): each
    group's paths are recorded together."""
    groups: dict = {}
    for j, lane in enumerate(lanes):
        groups.setdefault(p.spec(p.static_values(lane)), []).append(j)
    return groups


PATH_BYTES = 32 << 20
"""A sweep records the whole paths of its lanes in its own chunk programs (`_recording`)
where they take at most this many bytes on the host."""


def _recording(p: Plan, which) -> set:
    """The programs (specs) whose sweeps record every lane's path as they run, so that the
    trajectories asked for (`which`: lane indices or a name; None: none) need no program of
    their own: those that hold one of them (any, for a name) and whose paths are small
    (`PATH_BYTES`), on an XLA back end, in a single process. Recording changes no step's
    arithmetic (tests/test_paths.py); it saves compiling a trajectory program per sweep."""
    if which is None or jax.process_count() > 1:
        return set()
    size = jnp.dtype(p.dtype).itemsize * (p.steps + 1) * (p.obj.dim + 1)
    out = set()
    for _ci, static, lanes in p.combos():
        spec = p.spec(static)
        wanted = isinstance(which, str) or np.isin(lanes, which).any()
        if wanted and lanes.size * size <= PATH_BYTES and p.choice(spec).backend.records_paths:
            out.add(spec)
    return out


def _trajectories_ahead(which, p: Plan, recorded: set) -> None:
    """Starts compiling the trajectory programs the sweep will need, to overlap its own
    compiling: for named lanes ("best", ...) known only after the sweep, the program of one
    lane, where every lane has the same one (lane 0 stands in for the shapes). None for
    the programs that record their paths themselves (`recorded`)."""
    if isinstance(which, str):
        if p.g.static_axes:  # several programs: which one is not known yet
            return
        which = np.array([0])
    for spec, js in _trajectory_groups(p, which).items():
        if spec not in recorded:
            sel = which[js]
            _runner.compile_trajectories_ahead(*_lane_inputs(p, spec, sel), p.steps)


def _held(x: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Paths x [K, T+1, d] held at their last finite point once their lane diverged (where
    `loss` [K, T+1] turns NaN), as `programs.make_trajectory` holds them."""
    alive = ~np.isnan(loss)
    last = np.maximum.accumulate(np.where(alive, np.arange(loss.shape[1]), 0), axis=1)
    return np.take_along_axis(x, last[..., None], axis=1)


def _add_trajectories(result: SweepResult, which, p: Plan, paths: dict) -> None:
    if isinstance(which, str):
        diverged_all = result.diverged.all()  # no such lane: record nothing
        pick = result.best if which == "best" else result.representative
        lanes = np.array([], np.int64) if diverged_all else np.array([pick()["lane"]])
    else:
        lanes = which
    xs = np.empty((lanes.size, result.steps + 1, p.obj.dim), p.dtype)
    vs = np.empty((lanes.size, result.steps + 1), p.dtype)
    for spec, js in _trajectory_groups(p, lanes).items():
        sel = lanes[js]
        if paths["have"][sel].all():  # the sweep recorded them
            xs[js] = _held(paths["path_x"][sel], paths["path_loss"][sel])
            vs[js] = paths["path_loss"][sel]
        else:
            xs[js], vs[js] = _runner.run_trajectories(*_lane_inputs(p, spec, sel), result.steps)
    result.trajectory_lanes, result.trajectory_x, result.trajectory_loss = lanes, xs, vs


sweep.plan = plan  # `gdkit.sweep.plan(...)`: what `gdkit.sweep(...)` would run, without running
sweep.compile_ahead = compile_ahead  # `gdkit.sweep.compile_ahead(...)`: its programs, compiled


class _progress:
    """A rich progress bar over trajectory-steps; a no-op when disabled.

    Until the first steps are done (the programs compile) it reads "compiling" with the time
    elapsed and a moving bar, never a still 0%; then steps done, their rate and the time left.
    Only on a terminal (or in Jupyter): a pipe or a CI log gets no control codes and no blank
    lines. The bar is gone when done.
    """

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled, total, label

    def __enter__(self):
        if self.enabled:
            from rich.console import Console

            console = Console()  # a pipe or CI log: no bar, so no blank line left behind
            self.enabled = console.is_terminal or console.is_jupyter
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
            TextColumn("{task.fields[done]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self.bar.start()
        # total=None: rich animates the bar (work without a measure) instead of showing 0%.
        task = self.bar.add_task(f"{self.label}: compiling", total=None, done="")
        started = [False]

        def advance(k: int) -> None:
            if not started[0]:
                started[0] = True
                self.bar.reset(task, total=self.total, description=f"{self.label}: steps")
            self.bar.advance(task, k)
            t = self.bar.tasks[0]
            rate = t.speed or (t.completed / t.elapsed if t.elapsed else 0.0)
            done = f"{t.completed / self.total:4.0%} {_per_second(rate)} steps/s"
            self.bar.update(task, done=done)

        return advance

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.stop()


def _per_second(rate: float) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.1f} {unit}"
    return f"{rate:.0f}"
