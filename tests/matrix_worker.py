"""The correctness matrix, run in a process of its own (tests/test_matrix.py starts it with a
host device count in XLA_FLAGS, since JAX fixes the device count when it starts).

  python tests/matrix_worker.py objectives   # (a) f and grad f of every objective / function
  python tests/matrix_worker.py optimizers [NAME...]  # (b) optimizers against per-lane loops

Prints one JSON object: {"devices": n, "cases": [...], "mismatches": [...]} where each
mismatch names the case, the dtype, how many lanes disagree, and the worst lane with its
numbers. Exit status 0 whether or not there are mismatches (the test judges them). Each case
is announced on stderr before it runs, so a case that hangs can be named.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable

import jax
import numpy as np

import gdkit
from gdkit import objectives
from gdkit.objectives import from_expression

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import matrix_reference as ref

LANES = 2048  # >= 2,048 lanes per sweep, so XLA's vectorized code paths run
SEED = 14


# --------------------------------------------------------------------- (a) objectives


# Distance from the sample box to the edge of the function's domain.
ROOM = {"arcsin": 0.05, "arccos": 0.05, "log": 0.05, "sqrt": 0.05, "log1p": 0.1}

# Explicit quadratic: 1/2 x'Ax - b'x + c with A SPD (not gdkit's generator).
_A = np.array([[3.0, 1.0, 0.5], [1.0, 2.0, -0.25], [0.5, -0.25, 1.5]])
_B = np.array([1.0, -2.0, 0.5])
_C = 0.75
_GEN = ref.quadratic_generated()


def objective_cases() -> list[tuple[str, Callable, Callable]]:
    """(label, build objective, reference formula(coords, objective) -> Ref)."""
    cases = [
        ("rosenbrock", lambda: objectives.get("rosenbrock"), lambda x, o: ref.rosenbrock(x)),
        (
            "rosenbrock(dim=5)",
            lambda: objectives.get("rosenbrock", dim=5),
            lambda x, o: ref.rosenbrock(x),
        ),
        ("peaks", lambda: objectives.get("peaks"), lambda x, o: ref.peaks(x)),
        ("sphere(dim=4)", lambda: objectives.get("sphere", dim=4), lambda x, o: ref.sphere(x)),
        ("himmelblau", lambda: objectives.get("himmelblau"), lambda x, o: ref.himmelblau(x)),
        ("beale", lambda: objectives.get("beale"), lambda x, o: ref.beale(x)),
        ("booth", lambda: objectives.get("booth"), lambda x, o: ref.booth(x)),
        ("rastrigin", lambda: objectives.get("rastrigin"), lambda x, o: ref.rastrigin(x)),
        ("ackley", lambda: objectives.get("ackley"), lambda x, o: ref.ackley(x)),
        ("ackley(dim=5)", lambda: objectives.get("ackley", dim=5), lambda x, o: ref.ackley(x)),
        (
            "styblinski_tang",
            lambda: objectives.get("styblinski_tang"),
            lambda x, o: ref.styblinski_tang(x),
        ),
        (
            "six_hump_camel",
            lambda: objectives.get("six_hump_camel"),
            lambda x, o: ref.six_hump_camel(x),
        ),
        (
            "goldstein_price",
            lambda: objectives.get("goldstein_price"),
            lambda x, o: ref.goldstein_price(x),
        ),
        ("parabola", lambda: objectives.get("parabola"), lambda x, o: ref.parabola(x)),
        ("saddle", lambda: objectives.get("saddle"), lambda x, o: ref.saddle(x)),
        (
            "quadratic",
            lambda: objectives.get("quadratic"),
            lambda x, o: ref.quadratic_centred(x, *_GEN),
        ),
        (
            "quadratic(A, b, c)",
            lambda: objectives.get("quadratic", A=_A, b=_B, c=_C),
            lambda x, o: ref.quadratic_explicit(x, _A, _B, _C),
        ),
        (
            "linear_regression",
            lambda: objectives.get("linear_regression"),
            lambda x, o: ref.linear_regression(x, o.data),
        ),
        (
            "logistic_regression",
            lambda: objectives.get("logistic_regression"),
            lambda x, o: ref.logistic_regression(x, o.data),
        ),
        (
            "curve_fit",
            lambda: objectives.get("curve_fit"),
            lambda x, o: ref.curve_fit(x, o.data),
        ),
        ("mlp", lambda: objectives.get("mlp"), lambda x, o: ref.mlp(x, o.data)),
    ]
    # Every function of the expression allow-list, on a box inside its domain.
    # (ROOM: how far a step may go and stay in the function's domain.)
    domains = {
        "tan": (-1.4, 1.4),
        "arcsin": (-0.95, 0.95),
        "arccos": (-0.95, 0.95),
        "log": (0.05, 5.0),
        "sqrt": (0.05, 5.0),
        "log1p": (-0.9, 5.0),
    }
    for name in from_expression_functions():
        lo, hi = domains.get(name, (-3.0, 3.0))
        expr = f"{name}(x) - 0.5 * y * {name}(y)"

        def formula(v, o, name=name):
            x, y = v
            return ref.fn(name, x) - 0.5 * y * ref.fn(name, y)

        cases.append(
            (
                f"expression {expr!r}",
                lambda expr=expr, lo=lo, hi=hi: from_expression(expr, bounds=[[lo, hi]] * 2),
                formula,
                ROOM.get(name),
            )
        )
    # The operators and constants.
    expr = "(x - pi)**2 / (1 + y**2) + e * x * y - x / 3"
    cases.append(
        (
            f"expression {expr!r}",
            lambda: from_expression(expr, bounds=[[-3.0, 3.0]] * 2),
            lambda v, o: (
                (v[0] - math.pi) ** 2 / (1.0 + v[1] ** 2) + math.e * v[0] * v[1] - v[0] / 3.0
            ),
        )
    )
    return cases


def from_expression_functions() -> list[str]:
    from gdkit.objectives import expression

    return list(expression.FUNCTIONS)


def _points(obj, n: int, rng) -> np.ndarray:
    """n points uniform in the objective's bounds, as float32 values (exact in any dtype)."""
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    return (lo + (hi - lo) * rng.uniform(size=(n, obj.dim))).astype(np.float32)


def _worst(label, dtype, what, got, want, tol, x0) -> dict | None:
    err = np.abs(got - want)
    bad = ~(err <= tol)  # NaN counts as bad
    if not bad.any():
        return None
    ratio = np.where(np.isfinite(err), err / np.maximum(tol, 1e-300), np.inf)
    idx = np.unravel_index(np.argmax(np.where(bad, ratio, -1.0)), err.shape)
    lane = int(idx[0])
    return {
        "case": label,
        "dtype": dtype,
        "what": what,
        "bad_lanes": int(bad.reshape(len(bad), -1).any(axis=1).sum()),
        "lanes": len(bad),
        "worst_lane": lane,
        "x0": x0[lane].tolist(),
        "index": [int(i) for i in idx[1:]],
        "gdkit": float(got[idx]),
        "reference": float(want[idx]),
        "error": float(err[idx]),
        "tolerance": float(tol[idx]),
    }


def check_objective(label, make, formula, room, dtype, rng) -> tuple[list[dict], dict]:
    """f(x0) and grad f(x0) from a one-step gradient-descent sweep against the reference.

    f(x0) is the loss history's step-0 record. The gradient is read from the step: with a
    power-of-two learning rate lr, x1 = x0 - lr g exactly up to the rounding of x1, so
    g = (x0 - x1) / lr within u |x1| / lr, which the tolerance adds."""
    obj = make()
    x0 = _points(obj, LANES, rng)
    f_ref, g_ref, ef, eg = ref.evaluate(lambda v: formula(v, obj), x0, dtype)
    room = room or float(np.min(obj.bounds[:, 1] - obj.bounds[:, 0]))
    gmax = float(np.max(np.abs(g_ref)))
    lr = 2.0 ** math.floor(math.log2(room / gmax)) if gmax > 0 else 1.0
    t = time.perf_counter()
    with jax.enable_x64(dtype == "float64"):
        r = gdkit.sweep(
            obj,
            "gd",
            grid={"learning_rate": [lr]},
            x0=x0,
            steps=1,
            dtype=dtype,
            divergence_threshold=1e30,
            progress=False,
        )
    assert r.dtype == dtype, (r.dtype, dtype)
    seconds = time.perf_counter() - t
    f = r.history[0, :, 0].astype(np.float64)
    x1 = r.final_x[0].astype(np.float64)
    g = (x0.astype(np.float64) - x1) / lr
    u = ref.unit_roundoff(np.dtype(dtype))
    k = ref.TOLERANCE_FACTOR
    tol_f = k * ef
    tol_g = k * (eg + u * np.abs(x1) / lr)
    found = [
        m
        for m in (
            _worst(label, dtype, "f(x0)", f, f_ref, tol_f, x0),
            _worst(label, dtype, "grad f(x0)", g, g_ref, tol_g, x0),
        )
        if m
    ]
    diverged = r.status[0] == "diverged"
    if diverged.any():
        lane = int(np.argmax(diverged))
        found.append(
            {
                "case": label,
                "dtype": dtype,
                "what": "status of a one-step sweep inside the box",
                "bad_lanes": int(diverged.sum()),
                "lanes": LANES,
                "worst_lane": lane,
                "x0": x0[lane].tolist(),
                "gdkit": "diverged",
                "reference": f"f(x1) = {f_ref[lane]:.6g} at x0, a step of {lr:g} x grad",
            }
        )
    stats = {
        "case": label,
        "dtype": dtype,
        "seconds": round(seconds, 2),
        "max_error_over_bound_f": float(np.nanmax(np.abs(f - f_ref) / np.maximum(ef, 1e-300))),
        "max_error_over_bound_g": float(
            np.nanmax(np.abs(g - g_ref) / np.maximum(eg + u * np.abs(x1) / lr, 1e-300))
        ),
    }
    return found, stats


def run_objectives() -> dict:
    rng = np.random.default_rng(SEED)
    cases = objective_cases()
    labels = {c[0].split("(")[0] for c in cases}
    missing = sorted(set(objectives.names()) - labels)
    mismatches, stats = [], []
    if missing:
        mismatches.append({"case": "coverage", "missing_objectives": missing})
    for label, make, formula, *room in cases:
        for dtype in ("float32", "float64"):
            announce(f"{label} {dtype}")
            found, s = check_objective(label, make, formula, *(room or [None]), dtype, rng)
            mismatches += found
            stats.append(s)
    return {"cases": stats, "mismatches": mismatches}


def announce(case: str) -> None:
    print(f"matrix case: {case}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> None:
    part = argv[0]
    t = time.perf_counter()
    if part == "objectives":
        out = run_objectives()
    elif part == "optimizers":
        from matrix_optimizers import run_optimizers

        out = run_optimizers(argv[1:] or None)
    else:
        raise SystemExit(f"unknown part {part!r}: objectives or optimizers")
    out["devices"] = len(jax.devices())
    out["seconds"] = round(time.perf_counter() - t, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
