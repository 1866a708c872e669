"""Benchmark: evaluations of f and grad f until |grad f| <= gtol, gdkit against scipy.optimize.

For Rosenbrock in 2, 10 and 50 dimensions from (-1.2, 1, -1.2, 1, ...), float64, runs gdkit's
`bfgs`, `lbfgs` and `ncg` through `gdkit.sweep` (its `evals_to_tol` counts: every line-search
trial is one f and one grad f; the f and grad f the line search leaves at the accepted point
start the next step) and scipy.optimize.minimize's BFGS, L-BFGS-B (memory 10) and CG with
counting wrappers around f and grad f, and prints, side by side, how many of each both made
until the first iterate with |grad f|_2 <= gtol (scipy's own kind of stopping rule; in 10-d
and 50-d the methods may stop at different stationary points, so f there is printed too).

Usage: python scripts/bench_evals.py [--dims 2,10,50] [--gtol 1e-6] [--only bfgs,lbfgs]
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


def scipy_evals(obj, x0, method: str, options: dict, gtol: float) -> tuple[int, int, float]:
    """(f calls, grad calls, f) scipy made until its first iterate with |grad f| <= gtol."""
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
            hit.append((calls["f"], calls["grad"], float(f(xk))))

    scipy.optimize.minimize(
        fun, x0, jac=jac, method=method, options={**options, "maxiter": 20000}, callback=callback
    )
    return hit[0] if hit else (-1, -1, float("nan"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="2,10,50")
    ap.add_argument("--gtol", type=float, default=1e-6)
    ap.add_argument("--only", default=",".join(PAIRS))
    args = ap.parse_args()
    gdkit.enable_x64()
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
            sf, sg, s_at = scipy_evals(obj, x0, method, options, args.gtol)
            ratio = ours["f"] / sf if sf > 0 and ours["f"] > 0 else float("nan")
            print(
                f"{f'rosenbrock {dim}-d':15s} {name:6s} {int(r.steps_to_tol.ravel()[0]):5d} "
                f"{ours['f']:5d} {ours['grad']:5d} {float(r.final_loss.ravel()[0]):8.2g} | "
                f"{method:8s} {sf:5d} {sg:5d} {s_at:8.2g} | {ratio:5.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
