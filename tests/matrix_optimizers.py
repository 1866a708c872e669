"""Correctness matrix (b): every optimizer through `gdkit.sweep` against a per-lane loop.

Each optimizer runs on two objectives, 64 learning rates x 32 starts = 2,048 lanes, in float32
(the default). The reference is a plain `jax.jit(jax.vmap(loop))` over the same lanes, with
XLA's default compiler options and none of gdkit's engine (no sharding, tiles, chunks or
divergence bookkeeping): for the optimizers gdkit takes from optax, optax's own transformation
built here from the documented hyperparameters; for the others, gdkit's transformation called
directly with `update(g, state, x, value=, grad=, value_fn=[, residual_fn=])`.

Float32 trajectories legitimately differ in their last bits between two compilations, and a
chaotic lane amplifies that (or a line search takes another branch). Each lane's sensitivity
is measured by running the reference again from its start, or with its learning rate, moved
by one ulp either way (the largest of the four changes). A lane is compared when the
reference stays bounded and that sensitivity is small; gdkit must then agree within
`SENSITIVITY_FACTOR` x the sensitivity plus a floor of sqrt(u) relative (where the loss is
flat, as at a minimum, float32 fixes x only to about sqrt(u), and a lane may stop anywhere in
that flat spot). A lane that still disagrees (a few in a thousand, where rounding flips a
line search's decision) passes only if gdkit and the reference agree to 1e-9 when both run in
float64, and at most 1% of the lanes may need that. At least half the lanes of every case
must be compared.
"""

from __future__ import annotations

import sys
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

import gdkit
from gdkit import objectives, optimizers

N_LR, N_STARTS = 64, 32  # 2,048 lanes
SENSITIVITY_FACTOR = 16.0
FLOOR = float(np.sqrt(np.finfo(np.float32).eps / 2))  # always allowed, x (1 + |x|)
CHAOTIC = 1e-2  # lanes whose one-ulp sensitivity exceeds this x (1 + |x|) are not compared
MIN_COMPARED = 0.5
MAX_RECHECKED = 0.01  # lanes off in float32 may be re-checked in float64, up to this fraction
BOUNDED = 1e-3  # a reference lane is bounded if |f| stays below this x gdkit's threshold


def _zoom(hp):
    return optax.scale_by_zoom_linesearch(
        hp["max_linesearch_steps"],
        slope_rtol=hp["slope_rtol"],
        curv_rtol=hp["curv_rtol"],
        initial_guess_strategy="one",
    )


# Optimizers gdkit takes from optax: optax's own construction, from the hyperparameters gdkit
# documents as its defaults (`optimizers.info(name).hparams`).
OPTAX = {
    "gd": lambda lr, hp: optax.sgd(lr),
    "momentum": lambda lr, hp: optax.sgd(lr, momentum=hp["momentum"]),
    "nesterov": lambda lr, hp: optax.sgd(lr, momentum=hp["momentum"], nesterov=True),
    "adagrad": lambda lr, hp: optax.adagrad(lr, hp["initial_accumulator_value"], hp["eps"]),
    "rmsprop": lambda lr, hp: optax.rmsprop(
        lr,
        decay=hp["decay"],
        eps=hp["eps"],
        initial_scale=hp["initial_scale"],
        centered=hp["centered"],
    ),
    "adadelta": lambda lr, hp: optax.adadelta(lr, rho=hp["rho"], eps=hp["eps"]),
    "adam": lambda lr, hp: optax.adam(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
    "adamw": lambda lr, hp: optax.adamw(
        lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"], weight_decay=hp["weight_decay"]
    ),
    "nadam": lambda lr, hp: optax.nadam(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
    "amsgrad": lambda lr, hp: optax.amsgrad(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
    "adamax": lambda lr, hp: optax.adamax(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"]),
    "lion": lambda lr, hp: optax.lion(
        lr, b1=hp["b1"], b2=hp["b2"], weight_decay=hp["weight_decay"]
    ),
    "lbfgs": lambda lr, hp: optax.lbfgs(lr, memory_size=hp["memory_size"], linesearch=_zoom(hp)),
}

# Learning-rate range (log-spaced) and steps per optimizer.
SETTINGS = {
    **dict.fromkeys(["gd", "momentum", "nesterov"], ((1e-4, 1e-2), 50)),
    "adagrad": ((1e-3, 1.0), 50),
    "rmsprop": ((1e-4, 1e-1), 50),
    "adadelta": ((1e-2, 10.0), 50),
    **dict.fromkeys(["adam", "adamw", "nadam", "amsgrad", "adamax", "lion"], ((1e-4, 1e-1), 50)),
    "gd_linesearch": ((1e-2, 10.0), 30),
    **dict.fromkeys(
        ["newton", "bfgs", "lbfgs", "ncg", "gauss_newton", "levenberg_marquardt"],
        ((0.1, 1.0), 15),
    ),
}
# Two objectives each; 2-D or 3-D (newton and levenberg_marquardt stay below 16 parameters).
GENERAL = {
    "rosenbrock": lambda: objectives.get("rosenbrock"),
    "quadratic(dim=4)": lambda: objectives.get("quadratic", dim=4, condition_number=20.0, seed=1),
}
LEAST_SQUARES = {
    "curve_fit": lambda: objectives.get("curve_fit"),
    "linear_regression": lambda: objectives.get("linear_regression"),
}


def _reference_program(name: str, obj, steps: int):
    """jit(vmap(loop)) over lanes (lr [L], x0 [L, d]): final x, every loss finite, max |f|."""
    hp = optimizers.info(name).hparams
    residual = optimizers.needs_residual_fn(name)
    fn = obj.fn
    extra = {"residual_fn": obj.residual_fn} if residual else {}

    def make(lr):
        if name in OPTAX:
            return optax.with_extra_args_support(OPTAX[name](lr, hp))
        return optimizers.get(name, learning_rate=lr)

    def lane(lr, x0):
        opt = make(lr)

        def body(carry, _):
            x, state, finite, fmax = carry
            v, g = jax.value_and_grad(fn)(x)
            u, state = opt.update(g, state, x, value=v, grad=g, value_fn=fn, **extra)
            x = optax.apply_updates(x, u)
            return (x, state, finite & jnp.isfinite(v), jnp.maximum(fmax, jnp.abs(v))), None

        zero = jnp.zeros((), x0.dtype)
        (x, _, finite, fmax), _ = jax.lax.scan(
            body, (x0, opt.init(x0), jnp.bool_(True), zero), None, length=steps
        )
        v = fn(x)
        return x, finite & jnp.isfinite(v), jnp.maximum(fmax, jnp.abs(v))

    return jax.jit(jax.vmap(lane))


def _agree_in_float64(name, obj, lrs, x0s, steps, program) -> np.ndarray:
    """For lanes that disagree in float32: do gdkit and the reference agree in float64? Then
    the float32 difference is rounding (a line search that took the other branch, say)."""
    with jax.enable_x64(True):
        r = gdkit.sweep(
            obj,
            name,
            grid={"learning_rate": lrs.astype(np.float64)},
            x0=x0s.astype(np.float64),
            steps=steps,
            progress=False,
        )
        k = len(lrs)
        got = r.final_x[np.arange(k), np.arange(k)]  # the (lr_i, x0_i) lanes of the grid
        want = np.asarray(program(jnp.asarray(lrs, jnp.float64), jnp.asarray(x0s, jnp.float64))[0])
    scale = 1.0 + np.max(np.abs(want), axis=1)
    return np.max(np.abs(got - want), axis=1) <= 1e-9 * scale


def check_optimizer(name: str, label: str, obj, rng) -> tuple[list[dict], dict]:
    (lo, hi), steps = SETTINGS[name]
    lrs = np.geomspace(lo, hi, N_LR).astype(np.float32)
    lb, ub = obj.bounds[:, 0], obj.bounds[:, 1]
    mid, half = 0.5 * (lb + ub), 0.5 * (ub - lb)
    starts = (mid + 0.5 * half * rng.uniform(-1, 1, (N_STARTS, obj.dim))).astype(np.float32)
    t = time.perf_counter()
    r = gdkit.sweep(obj, name, grid={"learning_rate": lrs}, x0=starts, steps=steps, progress=False)
    seconds = time.perf_counter() - t
    got = r.final_x.reshape(-1, obj.dim).astype(np.float64)
    diverged = r.status.reshape(-1) == "diverged"
    lane_lr = jnp.asarray(np.repeat(lrs, N_STARTS))
    lane_x0 = np.tile(starts, (N_LR, 1))
    program = _reference_program(name, obj, steps)
    want, finite, fmax = (np.asarray(a) for a in program(lane_lr, jnp.asarray(lane_x0)))
    want = want.astype(np.float64)
    sens = np.zeros(len(want))
    up, down = np.float32(np.inf), np.float32(-np.inf)
    for lr_probe, x0_probe in (
        (lane_lr, np.nextafter(lane_x0, up)),
        (lane_lr, np.nextafter(lane_x0, down)),
        (np.nextafter(np.asarray(lane_lr), up), lane_x0),
        (np.nextafter(np.asarray(lane_lr), down), lane_x0),
    ):
        moved = np.asarray(program(jnp.asarray(lr_probe), jnp.asarray(x0_probe))[0], np.float64)
        with np.errstate(invalid="ignore"):  # inf - inf in lanes that blew up
            sens = np.maximum(sens, np.max(np.abs(moved - want), axis=1))
    f0 = np.abs(np.asarray(jax.vmap(obj.fn)(jnp.asarray(lane_x0)), np.float64))
    bounded = finite & (fmax <= BOUNDED * r.divergence_threshold * np.maximum(1.0, f0))
    scale = 1.0 + np.max(np.abs(want), axis=1)
    compared = bounded & (sens <= CHAOTIC * scale)
    err = np.max(np.abs(got - want), axis=1)
    tol = SENSITIVITY_FACTOR * sens + FLOOR * scale
    bad = compared & ~(err <= tol)
    rechecked = 0
    if 0 < bad.sum() <= MAX_RECHECKED * compared.sum():
        ok = _agree_in_float64(name, obj, np.asarray(lane_lr)[bad], lane_x0[bad], steps, program)
        rechecked = int(ok.sum())
        bad[np.flatnonzero(bad)[ok]] = False
    wrongly_diverged = compared & diverged
    found = []
    case = f"{name} on {label}"
    for what, mask in (("final x", bad & ~diverged), ("status diverged", wrongly_diverged)):
        if mask.any():
            lane = int(np.argmax(np.where(mask, err / tol, -1.0)))
            found.append(
                {
                    "case": case,
                    "dtype": "float32",
                    "what": what,
                    "bad_lanes": int(mask.sum()),
                    "lanes": int(mask.size),
                    "worst_lane": lane,
                    "learning_rate": float(lane_lr[lane]),
                    "x0": lane_x0[lane].tolist(),
                    "steps": steps,
                    "gdkit": got[lane].tolist(),
                    "reference": want[lane].tolist(),
                    "error": float(err[lane]),
                    "tolerance": float(tol[lane]),
                }
            )
    if compared.mean() < MIN_COMPARED:
        found.append(
            {
                "case": case,
                "what": "too few lanes compared",
                "compared": int(compared.sum()),
                "bounded": int(bounded.sum()),
                "lanes": int(compared.size),
            }
        )
    stats = {
        "case": case,
        "seconds": round(seconds, 2),
        "compared": int(compared.sum()),
        "rechecked_in_float64": rechecked,
        "max_error_over_tolerance": float(np.max(np.where(compared, err / tol, 0.0))),
    }
    return found, stats


def run_optimizers(names=None) -> dict:
    mismatches, stats = [], []
    for name in names or optimizers.names():
        problems = LEAST_SQUARES if optimizers.needs_residual_fn(name) else GENERAL
        for label, make in problems.items():
            print(f"matrix case: {name} on {label}", file=sys.stderr, flush=True)
            rng = np.random.default_rng([14, zlib.crc32(f"{name} {label}".encode())])
            found, s = check_optimizer(name, label, make(), rng)
            mismatches += found
            stats.append(s)
    return {"cases": stats, "mismatches": mismatches}
