"""Benchmark: evaluations of f and grad f until |grad f| <= gtol, gdkit against scipy.optimize.

For Rosenbrock in 2, 10 and 50 dimensions from (-1.2, 1, -1.2, 1, ...), float64, runs gdkit's
`bfgs`, `lbfgs` and `ncg` through `gdkit.sweep` (its `evals_to_tol` counts: every line-search
trial is one f and one grad f; the f and grad f the line search leaves at the accepted point
start the next step) and scipy.optimize.minimize's BFGS, L-BFGS-B (memory 10) and CG with
counting wrappers around f and grad f, and prints, side by side, how many of each both made
until the first iterate with |grad f|_2 <= gtol (scipy's own kind of stopping rule; in 10-d
and 50-d the methods may stop at different stationary points, so f there is printed too).

With --classics it prints instead `ncg` against scipy's CG on the 2-D test functions gdkit
ships with known minima, from each function's customary start (and the usual extra ones):
evaluations until |grad f| <= gtol, and where each method stopped (which known minimum, or
"other": a stationary point that is not one of them, e.g. a local minimum of a multimodal
function; the two methods may stop at different points, which the "same" column says).

Usage: python scripts/bench_evals.py [--dims 2,10,50] [--gtol 1e-6] [--only bfgs,lbfgs]
       python scripts/bench_evals.py --classics [--gtol 1e-6]
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
import scipy.optimize

import gdkit
from gdkit import objectives

PAIRS = {  # gdkit optimizer -> scipy method, options
    "bfgs": ("BFGS", {"gtol": 1e-14}),
    "lbfgs": ("L-BFGS-B", {"ftol": 0.0, "gtol": 1e-14, "maxcor": 10}),
    "ncg": ("CG", {"gtol": 1e-14}),
}


# 2-D functions with known minima -> extra starts beside the customary one (Objective.x0)
CLASSICS = {
    "rosenbrock": [],
    "beale": [(2.0, 2.0)],
    "booth": [],
    "himmelblau": [(1.0, 1.0)],
    "goldstein_price": [(0.5, 0.5)],
    "six_hump_camel": [(1.0, 1.0)],
    "peaks": [],
    "styblinski_tang": [],
    "sphere": [],
    "quadratic": [],
    "ackley": [],
    "rastrigin": [],
}


def scipy_evals(obj, x0, method: str, options: dict, gtol: float):
    """(f calls, grad calls, f, x) scipy made until its first iterate with |grad f| <= gtol."""
    f, g = jax.jit(obj.fn), jax.jit(jax.grad(obj.fn))
    calls = {"f": 0, "grad": 0}
    hit: list[tuple[int, int, float]] = []

    def fun(x):
        calls["f"] += 1
        return float(f(x))

    def jac(x):
        calls["grad"] += 1
        return np.asarray(g(x))

    def callback(xk):
        if not hit and np.linalg.norm(np.asarray(g(xk))) <= gtol:
            hit.append((calls["f"], calls["grad"], float(f(xk)), np.array(xk)))

    scipy.optimize.minimize(
        fun, x0, jac=jac, method=method, options={**options, "maxiter": 20000}, callback=callback
    )
    return hit[0] if hit else (-1, -1, float("nan"), None)


def _which_minimum(obj, x, atol=1e-4) -> str:
    """'min k' for the known minimum k within atol of x, else 'other' ('-' for no x)."""
    if x is None:
        return "-"
    for k, m in enumerate(obj.minima):
        if np.max(np.abs(np.asarray(x) - m.x)) <= atol:
            return f"min {k}"
    return "other"


def classics(gtol: float) -> None:
    """ncg against scipy's CG on the 2-D classics, every start one row."""
    method, options = PAIRS["ncg"]
    head = (
        f"{'function':16s} {'start':>12s} | {'steps':>5s} {'f':>4s} {'grad':>4s} "
        f"{'stopped at':>10s}"
        f" | {'CG f':>4s} {'grad':>4s} {'stopped at':>10s} | {'same':4s} {'ratio':>5s}"
    )
    print(f"ncg vs scipy CG: evaluations until |grad f| <= {gtol:g}, float64 (ratio: f / f)")
    print(head)
    print("-" * len(head))
    ratios = []
    for name, extra in CLASSICS.items():
        obj = objectives.get(name)
        starts = np.array([obj.x0, *extra], dtype=float)
        bare = objectives.wrap(obj.fn, dim=obj.dim, name=name)  # tol on |grad f|
        r = gdkit.sweep(bare, "ncg", grid={}, x0=starts, steps=1000, tol=gtol, progress=False)
        for i, x0 in enumerate(starts):
            steps = int(r.steps_to_tol.ravel()[i])
            ours = {k: int(v.ravel()[i]) for k, v in r.evals_to_tol.items()}
            x = r.final_x.reshape(len(starts), -1)[i] if steps >= 0 else None
            sf, sg, _, sx = scipy_evals(obj, x0, method, options, gtol)
            here, there = _which_minimum(obj, x), _which_minimum(obj, sx)
            same = x is not None and sx is not None and np.allclose(x, sx, atol=1e-4)
            ratio = ours["f"] / sf if sf > 0 and ours["f"] > 0 else float("nan")
            ratios.append(ratio)
            start = f"({x0[0]:g}, {x0[1]:g})"
            print(
                f"{name:16s} {start:>12s} | {steps:5d} {ours['f']:4d} {ours['grad']:4d} "
                f"{here:>10s} | {sf:4d} {sg:4d} {there:>10s} | {'yes' if same else 'NO':4s} "
                f"{ratio:5.2f}",
                flush=True,
            )
    ok = [q for q in ratios if np.isfinite(q)]
    print(f"ratio: median {np.median(ok):.2f}, max {max(ok):.2f} over {len(ok)} of {len(ratios)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="2,10,50")
    ap.add_argument("--gtol", type=float, default=1e-6)
    ap.add_argument("--only", default=",".join(PAIRS))
    ap.add_argument("--classics", action="store_true", help="ncg vs CG on the 2-D classics")
    args = ap.parse_args()
    gdkit.enable_x64()
    if args.classics:
        classics(args.gtol)
        return
    head = (
        f"{'problem':15s} {'gdkit':6s} {'steps':>5s} {'f':>5s} {'grad':>5s} {'f there':>8s} | "
        f"{'scipy':8s} {'f':>5s} {'grad':>5s} {'f there':>8s} | {'ratio':>5s}"
    )
    print(f"evaluations until |grad f| <= {args.gtol:g}, float64 (ratio: gdkit's f / scipy's)")
    print(head)
    print("-" * len(head))
    for dim in (int(d) for d in args.dims.split(",")):
        obj = objectives.get("rosenbrock", dim=dim)
        # the same function without its known minimum: tol is then on |grad f|
        bare = objectives.wrap(obj.fn, dim=dim, name=f"rosenbrock {dim}-d")
        x0 = np.tile([-1.2, 1.0], dim // 2)
        for name in args.only.split(","):
            method, options = PAIRS[name]
            r = gdkit.sweep(
                bare, name, grid={}, x0=x0[None], steps=2000, tol=args.gtol, progress=False
            )
            ours = {k: int(v.ravel()[0]) for k, v in r.evals_to_tol.items()}
            sf, sg, s_at, _ = scipy_evals(obj, x0, method, options, args.gtol)
            ratio = ours["f"] / sf if sf > 0 and ours["f"] > 0 else float("nan")
            print(
                f"{f'rosenbrock {dim}-d':15s} {name:6s} {int(r.steps_to_tol.ravel()[0]):5d} "
                f"{ours['f']:5d} {ours['grad']:5d} {float(r.final_loss.ravel()[0]):8.2g} | "
                f"{method:8s} {sf:5d} {sg:5d} {s_at:8.2g} | {ratio:5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
