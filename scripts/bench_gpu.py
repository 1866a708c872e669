"""GPU benchmark of gdkit's sweep paths (issue 15, point 4), and the CUDA lowering check of the
fused kernels.

  python scripts/bench_gpu.py --check-lowering
      Exports every fused kernel tests/test_fused.py runs (tests/fused_cases.py) for CUDA on
      this machine, GPU or not (`jax.export` with platforms=["cuda"]): one line per kernel,
      exit status 1 if any fails. CI runs it after the tests.

  python scripts/bench_gpu.py [--lanes 65536 1048576 16777216] [--steps 2000] [--json PATH]
      Adam and GD on 2-D Rosenbrock and MATLAB peaks, float32, 2,000 steps, learning rates
      log-spaced over the lanes, for N = 2^16, 2^20, 2^24 lanes:
        (a) bare: a hand-written jit(vmap(scan)) with one step counter shared by all lanes
            and no bookkeeping, as a careful JAX user writes it
        (b) gdkit.sweep(engine="xla")
        (c) gdkit.sweep(engine="fused")
        (d) PyTorch if installed: the same step batched by hand under torch.compile
      Each method runs in a child process per lane count (so peak device memory is its own)
      and reports trajectory-steps/s (best of 2 timed runs after a warm-up), compile time
      (the warm-up run's extra time), peak device memory, and the fraction of two limits
      this script measures first: the FP32 rate (a long chain of FMAs, flops per step from
      XLA's cost analysis of the bare step) and the rate a per-step loop through device
      memory could reach (bandwidth of a large copy / the state bytes a step reads and writes).
      Prints a table and one JSON line (--json PATH also writes it). On one H200, 2^16 and
      2^20 lanes take under a minute each (PyTorch's compiles another minute), 2^24 lanes more
      than 3.5 minutes; on a CPU pass e.g. `--lanes 256 --steps 50` for a smoke test.

GPU figures: measured on one H200 on 2026-12-04 (README, section GPU): at 2^20 lanes (a)
4.8e10, (b) 3.9e9, (c) 4.2e9 Adam-on-Rosenbrock steps/s. The 2^24 lanes took longer than that
session's GPU time allowed; give each lane count its own run (`--lanes N`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
CASES = [("adam", "rosenbrock"), ("gd", "rosenbrock"), ("adam", "peaks"), ("gd", "peaks")]
METHODS = ("bare", "gdkit_xla", "gdkit_fused", "torch")
LR = {"adam": (1e-4, 1e-1), "gd": (1e-5, 1e-3)}
B1, B2, EPS = 0.9, 0.999, 1e-8
STATE_FLOATS = {"adam": 3, "gd": 1}  # per coordinate: x (+ Adam's two moments)


def check_lowering() -> int:
    """Exports every fused kernel the tests cover for CUDA; prints one line each."""
    sys.path.insert(0, str(ROOT / "tests"))
    import fused_cases

    from gdkit.engine import fused

    failed = 0
    for what, spec in fused_cases.lowering_cases():
        t = time.perf_counter()
        try:
            reason = fused.unsupported(spec)
            if reason is not None:
                raise RuntimeError(f"unsupported: {reason}")
            chunk = fused.make_chunk(spec, 4, 25, interpret=False)
            text = fused.export_for_cuda(chunk, fused_cases.example_args(spec)).mlir_module()
            calls = text.count(f"custom_call @{fused.TRITON_CALL}")
            if calls != 1:
                raise RuntimeError(f"{calls} Triton calls in the chunk program, expected 1")
            print(f"ok    {what}  ({time.perf_counter() - t:.1f} s)", flush=True)
        except Exception as e:
            failed += 1
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"FAIL  {what}: {type(e).__name__}: {first[:300]}", flush=True)
    print(f"{failed} of the fused kernels failed to lower for CUDA" if failed else "all lowered")
    return 1 if failed else 0


# ---------------------------------------------------------------- the child: one method, one N


def _objective_torch(label):
    import torch

    if label == "rosenbrock":
        return lambda x: 100.0 * (x[..., 1] - x[..., 0] ** 2) ** 2 + (1.0 - x[..., 0]) ** 2

    def peaks(z):
        x, y = z[..., 0], z[..., 1]
        return (
            3 * (1 - x) ** 2 * torch.exp(-(x**2) - (y + 1) ** 2)
            - 10 * (x / 5 - x**3 - y**5) * torch.exp(-(x**2) - y**2)
            - torch.exp(-((x + 1) ** 2) - y**2) / 3
        )

    return peaks


def _starts(obj, n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    return rng.uniform(lo, hi, (n, obj.dim)).astype(np.float32)


def _timed(run, repeats=2):
    """(first call seconds, best of `repeats` later calls, the last call's value): the first
    call includes compiling."""
    t = time.perf_counter()
    value = run()
    first = time.perf_counter() - t
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        value = run()
        best = min(best, time.perf_counter() - t)
    return first, best, value


def _bare(opt, obj, x0, lrs, steps):
    """(a): jit(vmap(scan)) by hand, one step counter for all lanes, no bookkeeping."""
    import jax
    import jax.numpy as jnp

    grad = jax.grad(obj.fn)

    def run(x, lr):
        def adam(c, t):
            x, m, v = c
            g = jax.vmap(grad)(x)
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g * g
            tf = (t + 1).astype(x.dtype)
            step = lr[:, None] * (m / (1 - B1**tf)) / (jnp.sqrt(v / (1 - B2**tf)) + EPS)
            return (x - step, m, v), None

        def gd(c, t):
            (x,) = c
            return (x - lr[:, None] * jax.vmap(grad)(x),), None

        init = (x, jnp.zeros_like(x), jnp.zeros_like(x)) if opt == "adam" else (x,)
        body = adam if opt == "adam" else gd
        return jax.lax.scan(body, init, jnp.arange(steps, dtype=jnp.int32))[0][0]

    f = jax.jit(run)
    x, lr = jnp.asarray(x0), jnp.asarray(lrs)
    first, best, _ = _timed(lambda: f(x, lr).block_until_ready())
    return {"seconds": best, "compile": max(0.0, first - best)}


def _gdkit(engine, opt, obj, x0, lrs, steps):
    """(b) / (c): gdkit.sweep with the back end forced."""
    import gdkit

    def run():
        return gdkit.sweep(
            obj,
            opt,
            grid={"learning_rate": lrs},
            x0=x0[:1],
            steps=steps,
            tol=1e-6,
            progress=False,
            engine=engine,
        )

    # x0: one start, the lanes are the learning rates (as in scripts/bench_sweep.py); the
    # starts of the other methods differ per lane, which changes no step's cost
    first, best, r = _timed(run)
    return {
        "seconds": best,
        "compile": max(0.0, first - best),
        "via": f"gdkit.sweep(engine={engine!r})",
        "statuses": {k: int(v) for k, v in r.counts().items()},
    }


def _torch(opt, label, x0, lrs, steps):
    """(d): the same step batched over lanes by hand in PyTorch, under torch.compile."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    f = _objective_torch(label)
    lr = torch.tensor(lrs, device=dev)[:, None]

    def grad(x):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(f(x).sum(), x)
        return g

    def adam_step(x, m, v, t):
        g = grad(x)
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        step = lr * (m / (1 - B1**t)) / (torch.sqrt(v / (1 - B2**t)) + EPS)
        return x - step, m, v

    def gd_step(x, m, v, t):
        return x - lr * grad(x), m, v

    step = adam_step if opt == "adam" else gd_step
    try:
        step = torch.compile(step)
        compiled = True
    except Exception:
        compiled = False

    def run():
        x = torch.tensor(x0, device=dev)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        for t in range(1, steps + 1):
            x, m, v = step(x, m, v, float(t))
        if dev == "cuda":
            torch.cuda.synchronize()

    if dev == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first, best, _ = _timed(run, repeats=1)
    peak = torch.cuda.max_memory_allocated() if dev == "cuda" else None
    return {
        "seconds": best,
        "compile": max(0.0, first - best),
        "peak_bytes": peak,
        "via": "torch.compile" if compiled else "torch eager",
    }


def child(method: str, lanes: int, steps: int) -> list[dict]:
    import numpy as np

    rows = []
    if method == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            return [{"method": method, "lanes": lanes, "skipped": "PyTorch is not installed"}]
    import jax

    from gdkit import objectives

    for opt, label in CASES:
        obj = objectives.get(label)
        lrs = np.geomspace(*LR[opt], lanes).astype(np.float32)
        x0 = _starts(obj, lanes)
        row = {
            "method": method,
            "optimizer": opt,
            "objective": label,
            "lanes": lanes,
            "steps": steps,
        }
        try:
            if method == "bare":
                row.update(_bare(opt, obj, x0, lrs, steps))
            elif method == "gdkit_xla":
                row.update(_gdkit("xla", opt, obj, x0, lrs, steps))
            elif method == "gdkit_fused":
                row.update(_gdkit("fused", opt, obj, x0, lrs, steps))
            else:
                row.update(_torch(opt, label, x0, lrs, steps))
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"
        if "seconds" in row:
            row["steps_per_s"] = lanes * steps / row["seconds"]
        if method != "torch":  # the child's peak so far (the cases before are no larger)
            row["peak_bytes"] = (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- limits of this device


def measure_limits(steps: int) -> dict:
    """FP32 rate (a long FMA chain on many independent values), copy bandwidth, and the flops
    of one lane's bare step per case (XLA's cost analysis)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from gdkit import objectives

    gpu = jax.default_backend() != "cpu"
    n, chain = (1 << 24, 4096) if gpu else (1 << 16, 256)

    def fma(x):
        def body(_, y):
            return y * 0.999 + 0.001

        return jax.lax.fori_loop(0, chain, body, x, unroll=16)

    f = jax.jit(fma)
    x = jnp.ones((n,), jnp.float32)
    f(x).block_until_ready()
    best = _timed(lambda: f(x).block_until_ready(), 3)[1]
    flops = 2 * n * chain / best
    m = (1 << 28) if gpu else (1 << 22)
    y = jnp.ones((m,), jnp.float32)
    copy = jax.jit(lambda a: a + 1.0)
    copy(y).block_until_ready()
    t = _timed(lambda: copy(y).block_until_ready(), 3)[1]
    bandwidth = 2 * 4 * m / t
    per_step = {}
    for opt, label in CASES:
        obj = objectives.get(label)
        x0 = _starts(obj, 1024)
        lrs = np.full(1024, 1e-3, np.float32)
        cost = _step_flops(opt, obj, x0, lrs)
        per_step[f"{opt} {label}"] = cost
    return {
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "fp32_flops": flops,
        "bandwidth": bandwidth,
        "flops_per_lane_step": per_step,
    }


def _step_flops(opt, obj, x0, lrs):
    """XLA's flop count of one bare step, per lane."""
    import jax
    import jax.numpy as jnp

    grad = jax.grad(obj.fn)

    def step(x, m, v, lr):
        g = jax.vmap(grad)(x)
        if opt == "gd":
            return x - lr[:, None] * g, m, v
        m = B1 * m + (1 - B1) * g
        v = B2 * v + (1 - B2) * g * g
        return x - lr[:, None] * (m / 0.5) / (jnp.sqrt(v / 0.5) + EPS), m, v

    x = jnp.asarray(x0)
    cost = jax.jit(step).lower(x, x, x, jnp.asarray(lrs)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return float(cost.get("flops", float("nan"))) / len(x0)


# ---------------------------------------------------------------- the parent


def _spawn(args: list[str], timeout: float) -> dict | list:
    proc = subprocess.run(
        [sys.executable, __file__, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check-lowering", action="store_true")
    ap.add_argument("--lanes", type=int, nargs="+", default=[1 << 16, 1 << 20, 1 << 24])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--json", type=pathlib.Path)
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "LANES"), help=argparse.SUPPRESS)
    ap.add_argument("--limits", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.check_lowering:
        return check_lowering()
    if a.limits:
        print(json.dumps(measure_limits(a.steps)))
        return 0
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]), a.steps)))
        return 0
    t0 = time.perf_counter()
    limits = _spawn(["--limits", "--steps", str(a.steps)], 300)
    rows = []
    for lanes in a.lanes:
        for method in a.methods:
            try:
                rows += _spawn(["--child", method, str(lanes), "--steps", str(a.steps)], 600)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                rows.append({"method": method, "lanes": lanes, "error": str(e)[:200]})
    _annotate(rows, limits)
    out = {"limits": limits, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)}
    _table(out)
    print(json.dumps(out))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


def _annotate(rows, limits):
    """Each rate as a fraction of the FP32 limit and of the memory-bound per-step rate."""
    for row in rows:
        rate = row.get("steps_per_s")
        if not rate:
            continue
        flops = limits["flops_per_lane_step"].get(f"{row['optimizer']} {row['objective']}")
        if flops:
            row["fraction_fp32"] = rate * flops / limits["fp32_flops"]
        # a step that goes through memory reads and writes the lane's state (float32, 2-D)
        state = 2 * 4 * 2 * STATE_FLOATS[row["optimizer"]]
        row["fraction_memory_bound_rate"] = rate / (limits["bandwidth"] / state)


def _table(out):
    lim = out["limits"]
    print(
        f"device {lim['device']} ({lim['backend']}): FP32 {lim['fp32_flops'] / 1e12:.2f} TFLOP/s "
        f"measured, copy bandwidth {lim['bandwidth'] / 1e9:.0f} GB/s"
    )
    head = ("method", "case", "lanes", "steps/s", "compile s", "peak MB", "of FP32", "of mem")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in out["rows"]:
        case = f"{r.get('optimizer', '')} {r.get('objective', '')}".strip()
        if "steps_per_s" not in r:
            why = r.get("error") or r.get("skipped", "")
            print(f"| {r['method']} | {case} | {r['lanes']} | {why} | | | | |")
            continue
        peak = r.get("peak_bytes")
        cells = (
            r["method"] + (f" ({r['via']})" if r.get("via") else ""),
            case,
            str(r["lanes"]),
            f"{r['steps_per_s']:.3g}",
            f"{r['compile']:.2f}",
            "-" if peak is None else f"{peak / 2**20:.0f}",
            f"{r.get('fraction_fp32', float('nan')):.3f}",
            f"{r['fraction_memory_bound_rate']:.3f}",
        )
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
