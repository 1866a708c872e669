"""Benchmark: Adam on 2-D Rosenbrock from (-1.2, 1), float32, N learning rates log-spaced in
[1e-4, 1], measured side by side in one process.

  (a) a plain-Python loop per learning rate (a subset, reported per lane), two ways: as
      tutorials write it (small NumPy arrays) and the fastest Python (scalar floats)
  (b) NumPy vectorized over the learning rates, hand-written gradient
  (c) an optax step under jax.jit called from a Python loop per learning rate (a subset)
  (d) torch.optim.Adam per learning rate (only if torch is installed; a subset)
  (e) a minimal hand-written jit(vmap(scan)) Adam: the bare-JAX floor (JAX's defaults)
  (f) gdkit.sweep, default bookkeeping on (status, best loss, steps to tol, thinned history),
      on one device and on all cores (one XLA host device per core, `use_all_cpu_cores`)
  (g) scripts/adam_reference.c, the same workload and bookkeeping hand-written in C, built
      with the system compiler (skipped without one): what this CPU does when a compiler sees
      the whole step at once; on one thread and on all cores

(e) stays the naive floor the issue defines: one device, no tiling. XLA:CPU splits the large
kernels of (e) over its thread pool, so (e) on "one device" keeps ~1.9 cores busy while (f)
on one device uses one: the table reports the cores each keeps busy, and a child process
pinned to a single core measures (e) against (f) there. Timings of (e) and (f) are
interleaved (e, f1, fN, e, f1, fN, ...) and the best of the repeats is kept, since other
processes may share the cores.

Prints a table and a JSON line. Usage: python scripts/bench_sweep.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from gdkit.engine.devices import cpu_cores, use_all_cpu_cores

if "--one-core" in sys.argv:  # the pinned child: one core, so one device and one XLA thread
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
ALL_CORES = use_all_cpu_cores()  # before JAX starts its backend: one device per core

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from gdkit.engine.sweep import sweep  # noqa: E402

B1, B2, EPS = 0.9, 0.999, 1e-8
X0 = (-1.2, 1.0)


# What was tried to bring (f) to the floor and beyond (N=65,536, 2,000 steps, one device,
# ratio to the floor measured side by side; the machine was shared, load 2-5).
EXPERIMENTS = [
    {"what": "baseline before this round: scan(steps) over vmap(all lanes)", "f_over_e": 0.55},
    {
        "what": "cache-sized lane tiles (lax.map over tiles of 4096 lanes inside the chunk)",
        "f_over_e": "loaded machine (load 4-5): 0.58 untiled -> 0.88-1.15 tiled; quiet machine "
        "(load <2, floor 351-373 M/s): 0.52 untiled -> 0.56-0.60 tiled. Tiles mostly buy "
        "immunity to memory contention; at quiet times the step is bound by its ~10 "
        "elementwise loops per step (the floor has 6), not by memory",
    },
    {
        "what": "all cores (2 host devices via use_all_cpu_cores, lanes sharded)",
        "f_over_e": "quiet: 0.95-1.03 (1.7-1.8x the 1-device rate); loaded: 0.70",
    },
    {
        "what": "tile size 1024 / 2048 / 4096 / 8192 / 16384",
        "f_over_e": "0.80-0.97 / 0.94-1.11 / 0.87-1.15 / 0.87-0.95 / 0.75: 2048-4096 best; "
        "smaller tiles pay the ~10 kernel launches per step, larger ones leave L2",
    },
    {
        "what": "scan unroll 2 and 4 with tiles",
        "f_over_e": "unroll 2: 0.82-0.90 (no gain); unroll 4 with tile 2048: 0.53; compile +40%",
    },
    {
        "what": "one copy of the step per chunk (history read off by evaluating f at block "
        "starts, not by a separately traced first step)",
        "f_over_e": "speed unchanged; chunk compile 0.98 s -> 0.61 s under load",
    },
    {
        "what": "XLA flag --xla_cpu_use_thunk_runtime=false",
        "f_over_e": "no gain (0.38 at N=4096, within noise of the default)",
    },
    {
        "what": "XLA's classic CPU emitters (compile option xla_cpu_use_fusion_emitters=False), "
        "which make a lane's float32 result independent of its position in a batch",
        "f_over_e": "N=65536, 1 device, quiet: 99 M/s vs 206 M/s with the default emitters "
        "(floor 372 M/s): half the speed, so not used; lane-position independence comes "
        "from the tile layout instead (tile shape from the grid's lane count, whole tiles "
        "per device: bit-identical results on 2, 3 and 4 devices)",
    },
    {
        "what": "where the time goes (1 device, quiet, N=65536): optax.adam in a plain "
        "jit(vmap(scan)) 370-380 M/s (the hand-written floor 370-410): the optimizer is not "
        "the gap; the engine with its per-step bookkeeping removed 311 M/s; without only the "
        "last-finite-point select 221 M/s; as shipped 203 M/s; bookkeeping computed inside "
        "the per-lane function instead of on [L] arrays: 208 M/s (no gain)",
        "f_over_e": "bookkeeping ~35% of the step; the rest of the gap (0.8x) is the engine's "
        "step structure",
    },
    {
        "what": "bookkeeping packed into one [L, d+3] array (last good x, best, divergence "
        "and tol steps as floats) instead of four arrays",
        "f_over_e": "79 M/s vs 204 M/s: the concatenate breaks XLA's fusion; not used",
    },
    # second round (1 device, N=65,536, rates in M traj-steps/s; the floor ran at 351-388)
    {
        "what": "no per-step copy of the last good point: diverged lanes are replayed from "
        "their start at the end, up to their divergence step (bit-identical to their path)",
        "f_over_e": "197-209 -> 236-246 M/s (+18%); the replay costs nothing when no lane "
        "diverges, at most the steps up to the latest divergence of a tile otherwise",
    },
    {
        "what": "compile options for gdkit's programs: region-analysis copy insertion (drops "
        "a per-step copy of x), then 512-bit vectors (A/B interleaved in one process)",
        "f_over_e": "238 -> 257 -> 273 M/s (+8%, +6%). The 512-bit vectors were dropped "
        "later: with jaxlib 0.10.2 on AVX-512 they miscompiled jnp.arctan on arrays of more "
        "than ~56 elements (errors above 1). Region analysis changed no bit (tested) and, "
        "remeasured against XLA's defaults on this round's machine, gave 253 vs 282 and 320 vs "
        "307 M/s (quiet) and 242 vs 230 (busy): noise, so it was dropped too; gdkit compiles "
        "with XLA's defaults",
    },
    {
        "what": "the replay of diverged lanes inside the finish program (a second copy of "
        "the step) vs a program of its own, compiled only when some lane diverged",
        "f_over_e": "compile 1.19-1.26 s vs 0.79-0.85 s for this benchmark (no lane diverges)",
    },
    {
        "what": "a lane's carry shapes traced once per program instead of three times a sweep",
        "f_over_e": "fixed cost: a 4096-lane x 500-step sweep ran in 44 ms, now 16 ms",
    },
    {
        "what": "the cost of each bookkeeping pass (hand-written harness, optax.adam, tile "
        "2048): none / best loss only / best + steps-to-tol + divergence step / those packed "
        "into one [L,2] int32 array / steps-to-tol and divergence in one event array / the "
        "per-step loss written to a [k,L] buffer and reduced every k steps",
        "f_over_e": "383 / 323 / 287 / 287 / 274 / 270-285 M/s: every extra pass over the "
        "lanes that re-evaluates f costs ~15% of the step, packed or not; XLA:CPU fuses no "
        "kernels with several outputs, so at least one such pass stays per step",
    },
    {
        "what": "XLA:CPU multi-output fusion (xla_backend_extra_options="
        "xla_cpu_use_multi_output_fusion=true; only settable process-wide, via XLA_FLAGS)",
        "f_over_e": "floor 351 -> 536 M/s, gdkit 246 -> 286 M/s: the floor gains more, and "
        "the flag would change every other program of the user's process; not used",
    },
    {
        "what": "structure-of-arrays lanes (a tuple of coordinates, each an [L] array) and "
        "coordinate-major [d,L] arrays instead of [L,d]",
        "f_over_e": "hand-written Adam on coordinate tuples: 478 vs 359 (floor); through "
        "optax with x stacked for the objective: 270; [d,L]: 288-299 vs 375-390 for [L,d]. "
        "Not used",
    },
    # third round: the same questions on ONE core (taskset -c 0 / the pinned child), because
    # the floor's "one device" turned out to keep ~1.9 cores busy; rates in M traj-steps/s
    {
        "what": "cores kept busy (process CPU time / wall): the floor on one device, gdkit on "
        "one device, gdkit on all cores; then both pinned to a single core",
        "f_over_e": "1.91 / 1.03 / 1.80 cores: XLA:CPU splits the floor's 65,536-lane kernels "
        "over its thread pool, gdkit's tile-sized ones run on one thread per device. Pinned: "
        "floor 290, gdkit 289 (1.00x). The earlier 0.71-0.76x compared one core to two",
    },
    {
        "what": "hand-written C (scripts/adam_reference.c, gcc -O3 -march=native, the same "
        "workload, tiles of 2048 structure-of-arrays lanes): no bookkeeping / gdkit's "
        "bookkeeping / that on 2 threads",
        "f_over_e": "889-993 / 843-985 / 1,383-1,457: the hardware does 10x NumPy with the "
        "bookkeeping. This replaces the sqrt+divide probe of the second round, which timed "
        "XLA's own loop over 1,024 lanes (kernel overheads included), not the divider: its "
        "'~750 M/s per core ceiling' was wrong",
    },
    {
        "what": "layouts on one core, tiles of 4096, no bookkeeping: the floor (no tiles) / "
        "optax.adam vmapped over [L,d] / over [d,L] / over per-coordinate leaves with "
        "jnp.stack for the objective / hand-written Adam on one packed [6,L] array / on six "
        "[L] arrays",
        "f_over_e": "284-302 / 429-438 / 339 / 315 / 481 / 553. XLA's best version of the bare "
        "step (per-coordinate arrays, written by hand) is 0.56-0.62x the C code; through optax "
        "and an objective of a [d] vector, 0.44-0.49x",
    },
    {
        "what": "bookkeeping passes on one core (optax.adam, [L,d], tiles of 4096): none / "
        "best loss and divergence in one array (NaN once diverged) / plus steps-to-tol / "
        "best, steps-to-tol and divergence step as three arrays (gdkit's)",
        "f_over_e": "438 / 358 / 351 / 333: the first pass costs 18%, each further one 2-4%; "
        "a one-array encoding would gain ~7% at the price of replaying every diverged lane "
        "for its divergence step: not done",
    },
    {
        "what": "thinned history and host chunks (gdkit on one core): record_every 20 (the "
        "default, 100 records) / 100 / 2,000; one host chunk instead of ten",
        "f_over_e": "299-316 / 325-348 / 348-357; one chunk +3% (within noise; the host's "
        "own time per chunk is ~0.2 ms)",
    },
    {
        "what": "more XLA:CPU options as compile options: fast math / the classic emitters / "
        "multi-output fusion / small-while-loop threshold",
        "f_over_e": "381 vs 379 / 169 (half) / and the last two are not compile options "
        "(backend extras via XLA_FLAGS only; multi-output fusion process-wide: floor 363 -> "
        "623, gdkit on one device 256 -> 319)",
    },
    {
        "what": "no end-of-sweep program: every chunk also returns the per-lane results as if "
        "the sweep ended there (two programs to compile, not three)",
        "f_over_e": "compile 1.33 s -> 0.70 s (after JAX's warm-up); speed unchanged",
    },
    {
        "what": "host side of the chunks: each segment's history written into one "
        "preallocated record-major array once the next segment is queued (before: fetched "
        "at once, then concatenated, transposed and copied per lane chunk and combination)",
        "f_over_e": "one core: 287-299 -> 319 M/s; 10 host chunks cost ~2% against one (was "
        "8-10%); 1,000,000 lanes x 2,000 steps 9.4 s / 1.8 GB -> 6.8 s / 1.1 GB",
    },
    {
        "what": "YNNPACK only for dot products (xla_cpu_experimental_ynn_fusion_type), not for "
        "XLA:CPU's default of small reductions too, on one core, Adam, M lane-steps/s: "
        "Rosenbrock / quadratic / peaks / linear regression / logistic regression / MLP",
        "f_over_e": "222 / 76 / 165 / 4.1 / 0.8 / 5.6 -> 222 / 135-138 / 162-164 / 6.2-6.6 / "
        "0.9 / 5.8-6.1 (no YNNPACK at all: linear regression 3.2-3.7; eltwise too: 10x slower). "
        "Dropped later: it changes the order of those sums, so last bits against plain jax.jit",
    },
    {
        "what": "an optimization barrier between the loss and the bookkeeping, so that f is "
        "computed once per step instead of once per bookkeeping pass",
        "f_over_e": "within noise (Rosenbrock 317 vs 316, peaks +7% once, quadratic +0-20%): "
        "not used",
    },
]


def rosenbrock(x):
    return (1.0 - x[0]) ** 2 + 100.0 * (x[1] - x[0] ** 2) ** 2


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(fn):
    """-> (fn's result, wall seconds, cores it kept busy: process CPU time / wall time)."""
    c, t = cpu_seconds(), time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t
    return out, wall, (cpu_seconds() - c) / wall


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


# (a) ---------------------------------------------------------------------------------------
def tutorial_loop(lr, steps):
    """As GD tutorials write it: small NumPy arrays, a grad function, one lr at a time."""

    def grad(p):
        x, y = p
        return np.array([-2.0 * (1.0 - x) - 400.0 * x * (y - x * x), 200.0 * (y - x * x)])

    p = np.array(X0)
    m, v = np.zeros(2), np.zeros(2)
    for t in range(1, steps + 1):
        g = grad(p)
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        p = p - lr * (m / (1 - B1**t)) / (np.sqrt(v / (1 - B2**t)) + EPS)
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def python_loop(lr, steps):
    """The fastest plain Python: scalar floats and the math module."""
    x, y = X0
    mx = my = vx = vy = 0.0
    for t in range(1, steps + 1):
        gx = -2.0 * (1.0 - x) - 400.0 * x * (y - x * x)
        gy = 200.0 * (y - x * x)
        mx = B1 * mx + (1 - B1) * gx
        my = B1 * my + (1 - B1) * gy
        vx = B2 * vx + (1 - B2) * gx * gx
        vy = B2 * vy + (1 - B2) * gy * gy
        c1, c2 = 1 - B1**t, 1 - B2**t
        x -= lr * (mx / c1) / (math.sqrt(vx / c2) + EPS)
        y -= lr * (my / c1) / (math.sqrt(vy / c2) + EPS)
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


# (b) ---------------------------------------------------------------------------------------
def numpy_vectorized(lrs, steps):
    lrs = lrs.astype(np.float32)
    x = np.full_like(lrs, X0[0])
    y = np.full_like(lrs, X0[1])
    mx, my, vx, vy = (np.zeros_like(lrs) for _ in range(4))
    b1, b2 = np.float32(B1), np.float32(B2)
    for t in range(1, steps + 1):
        r = y - x * x
        gx = -2.0 * (1.0 - x) - 400.0 * x * r
        gy = 200.0 * r
        mx = b1 * mx + (1 - b1) * gx
        my = b1 * my + (1 - b1) * gy
        vx = b2 * vx + (1 - b2) * gx * gx
        vy = b2 * vy + (1 - b2) * gy * gy
        c1, c2 = np.float32(1 - B1**t), np.float32(1 - B2**t)
        x = x - lrs * (mx / c1) / (np.sqrt(vx / c2) + np.float32(EPS))
        y = y - lrs * (my / c1) / (np.sqrt(vy / c2) + np.float32(EPS))
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


# (c) ---------------------------------------------------------------------------------------
@jax.jit
def _optax_step(x, state, lr):
    # compiled once; the learning rate is an argument (kinder to (c) than a jit per lr)
    g = jax.grad(rosenbrock)(x)
    u, state = optax.adam(lr).update(g, state, x)
    return optax.apply_updates(x, u), state


def optax_jit_loop(lr, steps):
    x = jnp.array(X0, jnp.float32)
    state = optax.adam(lr).init(x)
    lr = jnp.float32(lr)
    for _ in range(steps):
        x, state = _optax_step(x, state, lr)
    return float(rosenbrock(jax.block_until_ready(x)))


# (d) ---------------------------------------------------------------------------------------
def torch_loop(lr, steps):
    import torch

    x = torch.tensor(X0, dtype=torch.float32, requires_grad=True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        opt.step()
    return float(loss)


# (e) ---------------------------------------------------------------------------------------
def floor_program(steps):
    def run(lr):
        def step(c, _):
            x, m, v, t = c
            g = jax.grad(rosenbrock)(x)
            t = t + 1.0
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g * g
            x = x - lr * (m / (1 - B1**t)) / (jnp.sqrt(v / (1 - B2**t)) + EPS)
            return (x, m, v, t), None

        z = jnp.zeros(2, jnp.float32)
        init = (jnp.array(X0, jnp.float32), z, z, jnp.float32(0))
        (x, _, _, _), _ = jax.lax.scan(step, init, None, length=steps)
        return rosenbrock(x)

    return jax.jit(jax.vmap(run))


# (g) ---------------------------------------------------------------------------------------
REFERENCE_C = pathlib.Path(__file__).with_name("adam_reference.c")


def c_reference(n, steps, repeats):
    """(g): ({label: the fastest of `repeats` runs (rate, status counts)}, its final losses),
    or (None, why not) when no C compiler with OpenMP is at hand."""
    cc = next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None:
        return None, "no C compiler"
    with tempfile.TemporaryDirectory() as d:
        exe, losses = os.path.join(d, "adam_reference"), os.path.join(d, "final_loss.f32")
        flags = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp"]
        cmd = [cc, *flags, str(REFERENCE_C), "-o", exe, "-lm"]
        built = subprocess.run(cmd, capture_output=True)
        if built.returncode:
            return None, f"{cc} failed: {built.stderr.decode().strip()[:200]}"
        out = {}
        for label, threads, book in (
            ("1 thread, no bookkeeping", 1, 0),
            ("1 thread", 1, 1),
            (f"{cpu_cores()} threads", cpu_cores(), 1),
        ):
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OMP_PROC_BIND": "true"}
            runs = [
                json.loads(
                    subprocess.run(
                        [exe, str(n), str(steps), str(book), losses],
                        capture_output=True,
                        text=True,
                        env=env,
                        check=True,
                    ).stdout
                )
                for _ in range(repeats)
            ]
            out[label] = max(runs, key=lambda r: r["steps_per_s"])
        return out, np.fromfile(losses, np.float32)


# -------------------------------------------------------------------------------------------
def gdkit_run(lrs, steps, **kw):
    return sweep(
        "rosenbrock",
        "adam",
        grid={"learning_rate": lrs},
        steps=steps,
        tol=1e-6,
        progress=False,
        **kw,
    )


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(n, steps):
    """One gdkit sweep in a fresh process: wall time, compile time and the process's peak RSS."""
    lrs = np.geomspace(1e-4, 1.0, n).astype(np.float32)
    t = time.perf_counter()
    r = gdkit_run(lrs, steps)
    wall = time.perf_counter() - t
    print(
        json.dumps(
            {
                "n": n,
                "steps": steps,
                "wall_s": wall,
                "run_s": r.run_time,
                "compile_s": r.compile_time,
                "peak_rss_mb": peak_rss_mb(),
                "counts": r.counts(),
            }
        )
    )


def one_core(n, steps, repeats):
    """(e) against (f) in this process, which runs on a single core: rates, interleaved."""
    lrs = np.geomspace(1e-4, 1.0, n).astype(np.float32)
    x = jnp.asarray(lrs)
    floor = floor_program(steps).lower(x).compile()
    jax.block_until_ready(floor(x))
    gdkit_run(lrs, steps)
    t_e, t_f = [], []
    for _ in range(repeats):
        t_e.append(timed(lambda: jax.block_until_ready(floor(x)))[1])
        t_f.append(gdkit_run(lrs, steps).run_time)
    print(json.dumps({"e_floor": n * steps / min(t_e), "f_gdkit": n * steps / min(t_f)}))


def in_child(n, steps, *more, pin=False):
    """Runs `--child` (or, with `pin`, `--one-core`, which pins itself) in a fresh process."""
    mode = "--one-core" if pin else "--child"
    out = subprocess.run(
        [sys.executable, __file__, mode, *(str(a) for a in (n, steps, *more))],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--json", help="also write the JSON here")
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--one-core", nargs=3, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(*args.child)
    if args.one_core:
        return one_core(*args.one_core)

    quick = args.quick
    n = 4096 if quick else 65_536
    steps = 500 if quick else 2000
    reps = 1 if quick else 3
    lrs = np.geomspace(1e-4, 1.0, n).astype(np.float32)
    sub = lrs[:: max(1, n // (2 if quick else 8))]
    res: dict = {
        "n": n,
        "steps": steps,
        "devices": len(jax.devices()),
        "backend": jax.default_backend(),
    }
    rate = {}  # trajectory-steps per second

    t = best_of(lambda: [tutorial_loop(float(lr), steps) for lr in sub], 1)
    rate["a_python_numpy_arrays"] = len(sub) * steps / t
    t = best_of(lambda: [python_loop(float(lr), steps) for lr in sub], 1)
    rate["a_python_scalars"] = len(sub) * steps / t
    t = best_of(lambda: numpy_vectorized(lrs, steps), 1 if quick else 2)
    rate["b_numpy"] = n * steps / t
    csub = sub[:2]
    optax_jit_loop(float(csub[0]), 5)  # compile once
    t = best_of(lambda: [optax_jit_loop(float(lr), steps) for lr in csub], 1)
    rate["c_optax_jit_loop"] = len(csub) * steps / t
    try:
        import torch  # noqa: F401

        t = best_of(lambda: [torch_loop(float(lr), steps) for lr in csub], 1)
        rate["d_torch"] = len(csub) * steps / t
    except ImportError:
        rate["d_torch"] = None

    floor = floor_program(steps)
    x = jnp.asarray(lrs)
    t0 = time.perf_counter()
    floor_exe = floor.lower(x).compile()
    res["floor_compile_s"] = time.perf_counter() - t0
    jax.block_until_ready(floor_exe(x))

    first = gdkit_run(lrs, steps, devices=1)
    res["gdkit_compile_s"] = first.compile_time
    res["gdkit_first_call_s"] = first.compile_time + first.run_time
    res["gdkit_all_cores_compile_s"] = gdkit_run(lrs, steps).compile_time
    t_e, t_1, t_n, runs = [], [], [], []
    cores = {"e_floor": [], "f_gdkit": [], "f_gdkit_all_cores": []}
    for _ in range(reps):  # interleaved: e, f (1 device), f (all cores), ...
        _, t, c = timed(lambda: jax.block_until_ready(floor_exe(x)))
        t_e.append(t)
        cores["e_floor"].append(c)
        r, _, c = timed(lambda: gdkit_run(lrs, steps, devices=1))
        runs.append(r)
        t_1.append(r.run_time)
        cores["f_gdkit"].append(c)
        r, _, c = timed(lambda: gdkit_run(lrs, steps))
        t_n.append(r.run_time)
        cores["f_gdkit_all_cores"].append(c)
    rate["e_floor"] = n * steps / min(t_e)
    rate["f_gdkit"] = n * steps / min(t_1)
    rate["f_gdkit_all_cores"] = n * steps / min(t_n)
    res["cores_busy"] = {k: float(np.median(v)) for k, v in cores.items()}
    res["gdkit_counts"] = runs[0].counts()
    check = np.asarray(floor_exe(x))
    rel = np.abs(runs[0].final_loss[:, 0] - check) / np.maximum(1e-30, np.abs(check))
    res["gdkit_vs_floor_final_loss_agree_1e-3"] = float(np.mean(rel <= 1e-3))

    # (e) and (f) on one core, in a child process pinned to it
    pinned = in_child(n, steps, reps, pin=True)
    rate["e_floor_one_core"], rate["f_gdkit_one_core"] = pinned["e_floor"], pinned["f_gdkit"]

    # (g) the hand-written C reference, and how its final losses agree with gdkit's
    ref, losses = c_reference(n, steps, reps)  # without a compiler: (None, why)
    res["c_reference"] = ref if ref is not None else {"skipped": losses}
    if ref is not None:
        for label, r in ref.items():
            rate[f"g_c {label}"] = r["steps_per_s"]
        rel = np.abs(runs[0].final_loss[:, 0] - losses) / np.maximum(1e-30, np.abs(losses))
        res["gdkit_vs_c_final_loss_agree_1e-3"] = float(np.mean(rel <= 1e-3))
    res["rates"] = rate
    fs = ("f_gdkit", "f_gdkit_all_cores", "f_gdkit_one_core")
    res["ratios_f_over"] = {k: (rate["f_gdkit"] / v if v else None) for k, v in rate.items()}
    res["ratios_f_all_cores_over"] = {
        k: (rate["f_gdkit_all_cores"] / v if v else None) for k, v in rate.items()
    }

    # what-ifs beyond the default, each interleaved with the floor (ratio to the floor)
    extra = {}
    variants = [
        ("no tiles (all lanes per step)", {"tile_lanes": n}),
        ("tile 1024", {"tile_lanes": 1024}),
        ("tile 2048", {"tile_lanes": 2048}),
        ("tile 8192", {"tile_lanes": 8192}),
        ("unroll=2", {"unroll": 2}),
        ("no tol, 1 record", {"tol": None, "record_every": steps}),
    ]
    for label, kw in variants[:2] if quick else variants:

        def f(kw=kw):
            opts = {"tol": 1e-6, "progress": False, "devices": 1, **kw}
            return sweep("rosenbrock", "adam", grid={"learning_rate": lrs}, steps=steps, **opts)

        f()
        te, tf = [], []
        for _ in range(reps):
            te.append(best_of(lambda: jax.block_until_ready(floor_exe(x)), 1))
            tf.append(f().run_time)
        extra[label] = {"rate": n * steps / min(tf), "ratio_to_floor": min(te) / min(tf)}
    res["variants_1_device"] = extra
    res["experiments"] = EXPERIMENTS

    # scaling with N and with steps (fresh processes: compile + run, and peak RSS)
    ns = [16, 1024, 65_536] if quick else [16, 256, 4096, 65_536, 262_144, 1_000_000]
    res["scaling_n"] = [in_child(k, steps) for k in ns]
    ss = [250, 500, 1000] if quick else [500, 1000, 2000, 4000]
    res["scaling_steps"] = [in_child(n, s) for s in ss]
    res["scaling_devices"] = len(jax.devices())
    res["peak_rss_mb_this_process"] = peak_rss_mb()

    print(f"\nAdam on 2-D Rosenbrock, float32, N={n} learning rates, {steps} steps")
    print(f"{'method':<30}{'traj-steps/s':>16}{'(f) 1 dev / this':>18}{'(f) all cores / this':>22}")
    for k, v in rate.items():
        r1, rn = res["ratios_f_over"].get(k), res["ratios_f_all_cores_over"].get(k)
        cells = [f"{r:,.2f}x" if r and k not in fs else "-" for r in (r1, rn)]
        print(f"{k:<30}{(f'{v:,.0f}' if v else 'n/a'):>16}{cells[0]:>18}{cells[1]:>22}")
    for k, v in extra.items():
        print(f"{'f ' + k:<36}{v['rate']:>16,.0f}{v['ratio_to_floor']:>9.2f}x floor")
    print(
        "cores kept busy: "
        + ", ".join(f"{k} {v:.2f}" for k, v in res["cores_busy"].items())
        + f"; on one core (f) is {rate['f_gdkit_one_core'] / rate['e_floor_one_core']:.2f}x (e)"
    )
    if ref is not None:
        print(
            f"(g) converged / diverged lanes: {ref['1 thread']['converged']} / "
            f"{ref['1 thread']['diverged']}, gdkit {res['gdkit_counts']}"
            f"; final losses within 1e-3: {res['gdkit_vs_c_final_loss_agree_1e-3']:.1%} "
            f"(gdkit vs the floor: {res['gdkit_vs_floor_final_loss_agree_1e-3']:.1%})"
        )
    print(
        f"compile: gdkit {res['gdkit_compile_s']:.2f} s (1 device), "
        f"{res['gdkit_all_cores_compile_s']:.2f} s (all cores), "
        f"floor {res['floor_compile_s']:.2f} s"
    )
    print(
        "scaling with N   :",
        ", ".join(
            f"{d['n']}: {d['wall_s']:.2f}s ({d['peak_rss_mb']:.0f} MB)" for d in res["scaling_n"]
        ),
    )
    print(
        "scaling with steps:",
        ", ".join(f"{d['steps']}: {d['wall_s']:.2f}s" for d in res["scaling_steps"]),
    )
    text = json.dumps(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
