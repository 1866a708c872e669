"""Runs a set of lanes through the compiled programs: sharding, lane chunks, step chunks.

This is what every back end shares (`backends`): lanes split over every device of every
process, in chunks of lanes and chunks of steps; a back end decides how the chunk program is
made and how a device runs its lanes (tiles on CPU, one program on a GPU)."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gdkit._checks import short
from gdkit.engine import programs as _kernel
from gdkit.engine.backends import Backend
from gdkit.engine.lanes import Segment
from gdkit.engine.xla_cpu import ALIGN

_CACHE: collections.OrderedDict = collections.OrderedDict()  # key -> executable or Future
_CACHE_SIZE = 64
_LOCK = threading.Lock()
_AHEAD: list[concurrent.futures.ThreadPoolExecutor] = []  # one background compiler thread
compile_count = 0  # how many programs this module has compiled (tests check reuse)
compiled_ahead = 0  # how many programs `ahead` jobs had ready (or under way) when asked for
_AHEAD_THREAD = "gdkit-compile"
_BY_AHEAD: set = set()  # keys an `ahead` job compiled that nothing else has asked for yet
# Every program compiles with XLA's default options. Options that once bought speed were
# removed: `xla_cpu_prefer_vector_width=512` (+6%) miscompiled `jnp.arctan` with jaxlib 0.10.2
# on AVX-512 CPUs (errors above 1 on arrays of more than ~56 elements, float32 and float64);
# YNNPACK for dot products only reordered small sums (last bits differed from plain
# `jax.jit`); region-analysis copy insertion changed no bit (a test compared
# sweeps bit for bit while it was used) but measured -10% to +8%
# across runs, nothing a benchmark could tell from noise (scripts/bench_sweep.py EXPERIMENTS).


def resolve_devices(devices: Any) -> list:
    """Default: every device of every process (a multi-process run shards over all of them),
    which is every local device in a single process."""
    if devices is None:
        return list(jax.devices())
    local = jax.local_devices()
    if isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if not 1 <= devices <= len(local):
            raise ValueError(
                f"sweep: devices must be a count in [1, {len(local)}] (the local devices), "
                f"got {devices}"
            )
        return list(local[: int(devices)])
    want = "sweep: devices must be None, a count or a list of distinct JAX devices"
    if isinstance(devices, str | bytes) or not hasattr(devices, "__iter__"):
        raise ValueError(f"{want}, got {short(devices)}")
    devices = list(devices)
    if not devices:
        raise ValueError(f"{want}, got an empty list")
    if not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(f"{want}, got {short(devices)}")
    if len(set(devices)) != len(devices):
        raise ValueError(f"{want}; a device is repeated in {short(devices)}")
    return devices


def _lane_sharding(mesh: Mesh, ndim: int, axis: int = 0) -> NamedSharding:
    """Lanes on `axis` split over the mesh; ndim 0: replicated."""
    if ndim == 0:
        return NamedSharding(mesh, PartitionSpec())
    spec = [None] * ndim
    spec[axis] = "lanes"
    return NamedSharding(mesh, PartitionSpec(*spec))


def _put(tree, mesh: Mesh, lanes: bool = True, dtype=None):
    """Host arrays -> global arrays sharded over `mesh`. Every process holds the same host
    arrays and hands each of its devices the slice that device owns, so this is the same code
    in one process and in many."""

    def put(a):
        a = np.asarray(a, dtype=dtype)
        sharding = _lane_sharding(mesh, a.ndim if lanes else 0)
        return jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    return jax.tree.map(put, tree)


def fetch(a) -> np.ndarray:
    """A (possibly multi-process) global array -> the whole of it as a NumPy array, here."""
    if getattr(a, "is_fully_addressable", True):
        return np.asarray(a)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(a, tiled=True))


def _compiled(
    key: tuple,
    build: Callable[[], Any],
    args: tuple,
    donate: bool,
    clock: list,
    out_shardings: Any = None,
):
    """AOT-compiles `build()` for `args` once per key; `clock[0]` accumulates compile time.

    One compile per key even across threads: a program another thread is compiling (an
    `ahead` job) is waited for (the wait counts as compile time); if that compile
    failed, this call compiles it itself, so that an error is raised where it belongs."""
    global compiled_ahead
    t = time.perf_counter()
    with _LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            entry = _CACHE[key] = concurrent.futures.Future()  # ours to fill
            ours = True
            if threading.current_thread().name.startswith(_AHEAD_THREAD):
                _BY_AHEAD.add(key)
        else:
            _CACHE.move_to_end(key)
            ours = False
            if key in _BY_AHEAD and not threading.current_thread().name.startswith(_AHEAD_THREAD):
                _BY_AHEAD.discard(key)
                compiled_ahead += 1
    if not ours:
        if not isinstance(entry, concurrent.futures.Future):
            return entry
        try:
            exe = entry.result()
            clock[0] += time.perf_counter() - t
            return exe
        except Exception:
            entry = None
    try:
        exe = _compile(build, args, donate, out_shardings)
    except BaseException as e:
        if entry is not None:  # the compile it stood for failed: later callers try again
            with _LOCK:
                if _CACHE.get(key) is entry:
                    del _CACHE[key]
                _BY_AHEAD.discard(key)
            entry.set_exception(e)
        raise
    clock[0] += time.perf_counter() - t
    with _LOCK:
        _CACHE[key] = exe
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    if entry is not None:
        entry.set_result(exe)
    return exe


def _compile(build, args, donate: bool, out_shardings: Any = None):
    global compile_count
    kw = {} if out_shardings is None else {"out_shardings": out_shardings}
    fn = jax.jit(build(), donate_argnums=(0,) if donate else (), **kw)
    exe = fn.lower(*args).compile()
    compile_count += 1
    return exe


def ahead(job: Callable[[], Any]) -> concurrent.futures.Future:
    """Runs `job` (compiling programs through `_compiled`) on the background compiler thread.
    XLA's compiler releases the GIL, so its compiles overlap this thread's own work on another
    core; whatever needs one of those programs later waits for it instead of compiling it
    again. Jobs run one at a time, in order."""
    with _LOCK:
        if not _AHEAD:
            _AHEAD.append(concurrent.futures.ThreadPoolExecutor(1, _AHEAD_THREAD))
    return _AHEAD[0].submit(job)


def per_lane_bytes(
    spec: _kernel.Spec, dim: int, lane_hp_names: Sequence[str], seg_blocks: int
) -> int:
    """Device bytes per lane: the carry (in + out + temporaries) and one chunk of history."""
    dtype = jnp.dtype(spec.dtype)
    carry = carry_bytes(spec, dim, lane_hp_names)
    return 4 * carry + (seg_blocks + 2) * dtype.itemsize + 8 * len(lane_hp_names)


@functools.lru_cache(maxsize=256)
def carry_shapes(spec: _kernel.Spec, dim: int, lane_hp_names: tuple[str, ...]):
    """The carry of a single lane, as shapes (tracing `init` takes milliseconds: once)."""
    dtype = jnp.dtype(spec.dtype)
    x = jax.ShapeDtypeStruct((1, dim), dtype)
    hp = {n: jax.ShapeDtypeStruct((1,), dtype) for n in lane_hp_names}
    fixed = {n: jax.ShapeDtypeStruct((), dtype) for n in spec.fixed_names}
    keys = jax.ShapeDtypeStruct((1, 2), jnp.uint32) if spec.keyed else None
    scale = jax.ShapeDtypeStruct((), dtype)
    return jax.eval_shape(_kernel.make_init(spec), x, hp, fixed, keys, scale)


def carry_bytes(spec: _kernel.Spec, dim: int, lane_hp_names: Sequence[str]) -> int:
    """Bytes of one lane's carry (x, optimizer state, bookkeeping)."""
    carry = carry_shapes(spec, dim, tuple(lane_hp_names))
    return sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(carry))


def chunk_layout(
    spec: _kernel.Spec,
    dim: int,
    lane_hp_names: Sequence[str],
    lanes: int,
    lanes_per_chunk: int,
    n_devices: int,
    tile: int | None,
    backend: Backend,
) -> tuple[int, int]:
    """-> (lanes per program unit on a device (a CPU tile), lanes per chunk) for `lanes`
    lanes in chunks of at most about `lanes_per_chunk`, as `backend` lays them out."""
    carry = carry_bytes(spec, dim, tuple(lane_hp_names))
    return backend.layout(carry, lanes, lanes_per_chunk, n_devices, tile)


def _per_device(fn, spec, dim, mesh, out_specs: Callable[[Any], Any]):
    """`fn(carry, lane_hp, fixed_hp, consts, t)` run by every device on its own lanes
    (shard_map): per-lane carry leaves and `lane_hp` split over the mesh, the rest replicated;
    `out_specs(carry_specs)` gives the partitioning of fn's outputs."""
    lanes, shared = PartitionSpec("lanes"), PartitionSpec()
    carry_specs = jax.tree.map(
        lambda ax: shared if ax is None else lanes,
        _kernel.carry_axes(spec, dim),
        is_leaf=lambda a: a is None,
    )
    return jax.shard_map(
        fn,
        mesh=mesh,
        in_specs=(carry_specs, lanes, shared, shared, shared),
        out_specs=out_specs(carry_specs),
        check_vma=False,
    )


def _sharded_chunk(spec, seg, dim, mesh, tile, backend: Backend, paths: bool):
    """The chunk program: each device runs its own lanes as `backend` lays them out (with
    `paths`, recording every step's x and loss: `programs.make_chunk`)."""
    axes = _kernel.carry_axes(spec, dim)
    kw = {"paths": True} if paths else {}  # only XLA's chunks record paths (`records_paths`)
    chunk = backend.make_chunk(spec, seg.blocks, seg.record_every, **kw)
    chunk = backend.chunk_program(chunk, axes, tile)
    lanes = PartitionSpec("lanes")
    return _per_device(chunk, spec, dim, mesh, lambda c: (c, PartitionSpec(None, "lanes"), lanes))


def _sharded_replay(spec, dim, mesh, tile, backend: Backend):
    """The replay of diverged lanes (always XLA): per device, laid out like the chunks."""
    fn = backend.outputs_program(_kernel.make_replay(spec), _kernel.carry_axes(spec, dim), tile)
    return _per_device(fn, spec, dim, mesh, lambda c: PartitionSpec("lanes"))


@dataclasses.dataclass(frozen=True)
class _Layout:
    """How `run_lanes` lays lanes out on the devices, and the programs it compiles for them
    (the same for every lane chunk)."""

    spec: _kernel.Spec
    dim: int
    n: int
    mesh: Mesh
    tile: int | None
    size: int  # lanes per chunk
    backend: Backend
    fixed: Any  # the fixed hyperparameters, the constants and the threshold scale, on devices
    cst: Any
    scale: Any
    carry_sh: Any
    chunk_sh: Any

    @classmethod
    def of(
        cls, spec, x0, lane_hp, fixed_hp, consts, thr_scale, devices, lanes_per_chunk, tile, backend
    ):
        """The layout of the lanes x0 [L, d] (the arguments of `run_lanes`)."""
        n, dim = x0.shape
        dtype = jnp.dtype(spec.dtype)
        mesh = Mesh(np.array(devices), ("lanes",))
        names = tuple(lane_hp)
        tile, size = chunk_layout(spec, dim, names, n, lanes_per_chunk, len(devices), tile, backend)
        carry_sh = jax.tree.map(
            lambda ax, a: _lane_sharding(mesh, 0 if ax is None else a.ndim),
            _kernel.carry_axes(spec, dim),
            carry_shapes(spec, dim, names),
            is_leaf=lambda ax: ax is None,
        )
        return cls(
            spec,
            dim,
            n,
            mesh,
            tile,
            size,
            backend,
            _put(dict(fixed_hp), mesh, lanes=False, dtype=dtype),
            _put(dict(consts), mesh, lanes=False, dtype=dtype),
            _put(thr_scale, mesh, lanes=False, dtype=dtype),
            carry_sh,
            (carry_sh, _lane_sharding(mesh, 2, axis=1), _lane_sharding(mesh, 1)),
        )

    @property
    def base(self) -> tuple:
        """What every program's cache key starts with."""
        return (
            self.spec,
            self.size,
            self.dim,
            tuple(self.mesh.devices.flat),
            self.tile,
            self.backend,
        )

    def lane_args(self, x0, lane_hp, keys, lo: int) -> tuple:
        """The init program's arguments for the lane chunk from lane `lo` (padded with copies
        of its first lane)."""
        dtype = jnp.dtype(self.spec.dtype)
        idx = np.arange(lo, lo + self.size)
        idx = np.where(idx < self.n, idx, lo)
        return (
            _put(x0[idx], self.mesh, dtype=dtype),
            _put({k: v[idx] for k, v in lane_hp.items()}, self.mesh, dtype=dtype),
            self.fixed,
            None if keys is None else _put(keys[idx], self.mesh),
            self.scale,
        )

    def init_program(self, args, clock):
        init = _kernel.make_init(self.spec)
        return _compiled((*self.base, "init"), lambda: init, args, False, clock, self.carry_sh)

    def chunk_program(self, seg: Segment, args, clock, paths: bool = False):
        """The chunk program of `seg` (with `paths`: recording every step's x and loss)."""
        return _compiled(
            (*self.base, "chunk", seg.blocks, seg.record_every, paths),
            lambda: _sharded_chunk(
                self.spec, seg, self.dim, self.mesh, self.tile, self.backend, paths
            ),
            args,
            True,
            clock,
            self.chunk_sh,
        )


def compile_lanes_ahead(
    spec,
    x0,
    lane_hp,
    fixed_hp,
    keys,
    consts,
    thr_scale,
    segments,
    devices,
    lanes_per_chunk,
    backend,
    tile=None,
    paths=False,
):
    """Starts compiling, on the background compiler thread (`ahead`), the init program and
    the first chunk program `run_lanes` with the same arguments will run first: a later
    sweep's programs compile while this thread runs the current one. The chunk program is
    compiled for the shapes and shardings the init program's outputs will have (nothing is
    run). Not in a multi-process run (whose processes must compile in step)."""
    if jax.process_count() > 1:
        return None

    def job():
        lay = _Layout.of(
            spec, x0, lane_hp, fixed_hp, consts, thr_scale, devices, lanes_per_chunk, tile, backend
        )
        args = lay.lane_args(x0, lane_hp, keys, 0)
        carry = jax.tree.map(
            lambda o: jax.ShapeDtypeStruct(o.shape, o.dtype, sharding=o.sharding),
            lay.init_program(args, [0.0]).out_info,
        )
        t0 = _put(np.int32(0), lay.mesh, lanes=False)
        lay.chunk_program(segments[0], (carry, args[1], lay.fixed, lay.cst, t0), [0.0], paths)

    return ahead(job)


def run_lanes(
    spec: _kernel.Spec,
    x0: np.ndarray,  # [L, d] float64
    lane_hp: dict[str, np.ndarray],  # name -> [L]
    fixed_hp: dict[str, float],
    keys: np.ndarray | None,  # [L, 2] uint32
    consts: dict[str, float],
    thr_scale: float,
    segments: Sequence[Segment],
    steps: int,
    devices: list,
    lanes_per_chunk: int,
    advance: Callable[[int], None],
    clock: list,
    backend: Backend,
    tile: int | None = None,
    resume: dict | None = None,
    on_segment: Callable[[int, int, Callable[[], dict]], None] | None = None,
    paths: bool = False,
) -> dict[str, np.ndarray]:
    """Runs all lanes on `backend`; returns flat per-lane outputs and history [L, R] as NumPy
    arrays (of the lanes from `resume["lo"]` on when resuming). `tile`: `sweep(tile_lanes=)`.

    `paths` (not when resuming; XLA back ends only): the outputs also hold every lane's whole
    path as its steps took it, "path_x" [L, T+1, d] (x_0 ... x_T) and "path_loss" [L, T+1]
    (the loss each step records: NaN from the lane's divergence on).

    Lanes run in chunks of `size` lanes and each chunk in segments of steps. After every
    segment but a lane chunk's last, `on_segment(lo, next_segment, state)` may take a
    snapshot: `state()` fetches the chunk's carry and history so far to the host. `resume`
    (such a snapshot, plus `lo` and `seg`) restarts there: earlier lane chunks are skipped
    (their outputs are the caller's), and the chunk `lo` continues from its saved carry at
    segment `seg`, bit for bit.
    """
    dtype = jnp.dtype(spec.dtype)
    n, dim = x0.shape
    paths = paths and resume is None
    lay = _Layout.of(
        spec, x0, lane_hp, fixed_hp, consts, thr_scale, devices, lanes_per_chunk, tile, backend
    )
    mesh, size, fixed, cst = lay.mesh, lay.size, lay.fixed, lay.cst
    tile, base = lay.tile, lay.base
    start = 0 if resume is None else resume["lo"]  # the caller holds the lanes before it
    records = sum(s.blocks for s in segments) + 1  # + the loss of x_T
    # every output is written in place, lane chunk by lane chunk (lane lo - start on); the
    # history record by record as the device makes it ([R, L]), returned as an [L, R] view
    outs: dict[str, np.ndarray] = {}
    history = np.empty((records, n - start), dtype)
    path = {}  # with `paths` (never when resuming, so start is 0): each lane's x_0..x_T, losses
    if paths:
        path = {
            "path_x": np.empty((n, steps + 1, dim), dtype),
            "path_loss": np.empty((n, steps + 1), dtype),
        }
    for lo in range(start, n, size):
        args = lay.lane_args(x0, lane_hp, keys, lo)
        carry = lay.init_program(args, clock)(*args)
        keep, first, t0, col = min(size, n - lo), 0, 0, 0
        rows = slice(lo - start, lo - start + keep)
        hist = history[:, rows]  # [records, keep], a view
        if resume is not None and lo == resume["lo"]:
            first = resume["seg"]
            fresh, tree = jax.tree.flatten(carry)  # same layout and shardings, saved values
            carry = tree.unflatten(
                [
                    jax.make_array_from_callback(a.shape, f.sharding, lambda i, a=a: a[i])
                    for a, f in zip(resume["carry"], fresh, strict=True)
                ]
            )
            for h in resume["hist"]:
                hist[col : col + len(h)] = h
                col += len(h)
            t0 = sum(s.steps for s in segments[:first])
            advance(t0 * keep)

        # A segment's history is fetched once the next segment is queued, so the device
        # does not wait for the host; with snapshots (which need the carry before the next
        # segment takes it over) every segment is fetched right away.
        pending: list = []

        def flush(pending=pending, hist=hist, keep=keep, rows=rows):
            for h, c, seg, t in pending:
                if path:  # (history, x_t [steps, L, d], its loss [steps, L])
                    h, xs, losses = h
                    path["path_x"][rows, t : t + seg.steps] = fetch(xs)[:, :keep].swapaxes(0, 1)
                    path["path_loss"][rows, t : t + seg.steps] = fetch(losses)[:, :keep].T
                hist[c : c + seg.blocks] = fetch(h)[:, :keep]
                advance(seg.steps * keep)
            pending.clear()

        for j, seg in enumerate(segments):
            if j < first:
                continue
            a = (carry, args[1], fixed, cst, _put(np.int32(t0), mesh, lanes=False))
            carry, h, out = lay.chunk_program(seg, a, clock, paths)(*a)
            flush()
            pending.append((h, col, seg, t0))
            t0, col = t0 + seg.steps, col + seg.blocks
            # no snapshot after the last segment: a resumed lane chunk always has a segment
            # left to run, whose outputs are the lane chunk's results
            if on_segment is not None and j + 1 < len(segments):
                flush()
                on_segment(
                    lo,
                    j + 1,
                    lambda c=carry, col=col, hist=hist, done=lo - start: {
                        "carry": [fetch(x) for x in jax.tree.leaves(c)],
                        "hist": [hist[:col].copy()],
                        "outs": _results(outs, history, done) if done else {},
                    },
                )
        flush()
        res = {k: fetch(v)[:keep] for k, v in out.items()}
        if path:  # x_T and its loss: the last point of each path
            path["path_x"][rows, steps] = fetch(carry["x"])[:keep]
            path["path_loss"][rows, steps] = res["last_record"]
        if _kernel.needs_replay(res["diverged_step"]):
            a = (
                {**carry, "div": out["diverged_step"]},
                args[1],
                fixed,
                cst,
                _put(np.int32(steps), mesh, lanes=False),
            )
            build = functools.partial(_sharded_replay, spec, dim, mesh, tile, backend)
            out = _compiled((*base, "replay"), build, a, False, clock)(*a)
            res.update({k: fetch(v)[:keep] for k, v in out.items()})
        hist[-1] = res.pop("last_record")
        for k, v in res.items():
            if k not in outs:
                outs[k] = np.empty((n - start, *v.shape[1:]), v.dtype)
            outs[k][rows] = v
    return {**_results(outs, history), **path}


def _results(outs: dict, history: np.ndarray, lanes: int | None = None) -> dict:
    """The outputs of the first `lanes` lanes (None: all), the history as [L, R] (views)."""
    return {k: v[:lanes] for k, v in {**outs, "history": history.T}.items()}


def _trajectory_program(spec, x0, lane_hp, fixed_hp, keys, consts, thr_scale, steps):
    """(cache key, build, arguments) of the trajectory program of these lanes; the K lanes
    are padded to `ALIGN` like a sweep's, so each path is the one its lane took in the (XLA)
    sweep, except where XLA:CPU rounds the lane's place in the sweep's tile differently from
    its place here (the last few lanes of an array, see `xla_cpu`). Small sweeps record their
    paths themselves instead (`make_chunk(paths=True)`), exact by construction."""
    dtype = jnp.dtype(spec.dtype)
    k, dim = x0.shape
    pad = np.arange(-(-k // ALIGN) * ALIGN) % k
    args = (
        jnp.asarray(x0[pad], dtype),
        {name: jnp.asarray(v[pad], dtype) for name, v in lane_hp.items()},
        {name: jnp.asarray(v, dtype) for name, v in fixed_hp.items()},
        None if keys is None else jnp.asarray(keys[pad]),
        jnp.asarray(thr_scale, dtype),
        {name: jnp.asarray(v, dtype) for name, v in consts.items()},
    )
    key = (spec, pad.size, dim, "trajectory", steps)
    return key, functools.partial(_kernel.make_trajectory, spec, steps), args


def compile_trajectories_ahead(spec, x0, lane_hp, fixed_hp, keys, consts, thr_scale, steps):
    """Starts compiling `run_trajectories`'s program for as many lanes as `x0` has (their
    values do not matter) while the sweep itself compiles and runs."""
    key, build, args = _trajectory_program(
        spec, x0, lane_hp, fixed_hp, keys, consts, thr_scale, steps
    )
    ahead(lambda: _compiled(key, build, args, False, [0.0]))


def run_trajectories(spec, x0, lane_hp, fixed_hp, keys, consts, thr_scale, steps):
    """Full paths of a few lanes on one device: x [K, T+1, d], loss [K, T+1]. The program is
    compiled once per (spec, padded K, steps)."""
    key, build, args = _trajectory_program(
        spec, x0, lane_hp, fixed_hp, keys, consts, thr_scale, steps
    )
    xs, vs = _compiled(key, build, args, False, [0.0])(*args)
    k = x0.shape[0]
    xs, vs = np.asarray(xs)[:, :k], np.asarray(vs)[:, :k]
    return np.transpose(xs, (1, 0, 2)), vs.T
