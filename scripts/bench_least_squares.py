"""Benchmark: nonlinear least squares on the NIST StRD nonlinear-regression problems.

For each of the 27 data sets (tests/data/nist, with their certified values) and both official
starts, fits in float64 with gdkit's `levenberg_marquardt` and `gauss_newton` (through
`gdkit.sweep`, the two starts as two lanes, a fixed step budget) and with
`scipy.optimize.least_squares(method="lm")` (MINPACK's lmder, tolerances 1e-15), and prints
the LRE of the worst parameter (correct significant digits, capped at 11; 0 = not found) side
by side, with the steps `levenberg_marquardt` took to reach LRE 8 for good (from its full path;
- when it does not).

Usage: python scripts/bench_least_squares.py [--steps N] [--only NAME,NAME] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import numpy as np
import scipy.optimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import nist_strd

import gdkit


def lm_fit(p: nist_strd.Problem, steps: int) -> tuple[list[float], list[int | None]]:
    """LRE of `levenberg_marquardt` from start 1 and start 2 (one float64 sweep of two lanes,
    their full paths recorded), and the first step from which the LRE stays >= 8 (None when
    the last one is below 8)."""
    from gdkit.engine.sweep import sweep

    r = sweep(
        p.objective(1),
        "levenberg_marquardt",
        grid={},
        x0=p.starts,
        steps=steps,
        dtype="float64",
        progress=False,
        trajectories=[0, 1],
    )
    lres, reached = [], []
    for lane in range(2):
        path = np.array([nist_strd.lre(x, p.certified) for x in r.trajectory_x[lane]])
        below = np.flatnonzero(path < 8.0)
        lres.append(nist_strd.lre(np.asarray(r.final_x)[lane], p.certified))
        last_below = below[-1] if below.size else -1
        reached.append(None if last_below == path.size - 1 else int(last_below + 1))
    return lres, reached


def scipy_lm(p: nist_strd.Problem) -> list[float]:
    """LRE from start 1 and start 2 with scipy's MINPACK Levenberg-Marquardt."""
    res = jax.jit(p.residuals)
    jac = jax.jit(jax.jacfwd(p.residuals))
    out = []
    for x0 in p.starts:
        try:
            fit = scipy.optimize.least_squares(
                lambda b: np.asarray(res(b)),
                x0,
                jac=lambda b: np.asarray(jac(b)),
                method="lm",
                xtol=1e-15,
                ftol=1e-15,
                gtol=1e-15,
            )
            out.append(nist_strd.lre(fit.x, p.certified))
        except (ValueError, FloatingPointError):
            out.append(0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000, help="gdkit's step budget (2000)")
    ap.add_argument("--only", default="", help="comma-separated data sets (default: all 27)")
    ap.add_argument("--json", default=None, help="also write the table as JSON to PATH")
    args = ap.parse_args()
    gdkit.enable_x64()
    names = [n for n in args.only.split(",") if n] or list(nist_strd.MODELS)
    rows = []
    head = (
        f"{'data set':9s} {'level':7s} {'start':>5s} {'LM':>6s} {'LM steps':>8s} {'GN':>6s} "
        f"{'scipy lm':>9s}"
    )
    print(f"LRE (worst parameter, capped at 11), float64, gdkit {args.steps} steps")
    print(head)
    print("-" * len(head))
    for name in names:
        p = nist_strd.load(name)
        lres = {"gauss_newton": nist_strd.fitted_lre(p, "gauss_newton", args.steps)}
        lres["levenberg_marquardt"], reached = lm_fit(p, args.steps)
        theirs = scipy_lm(p)
        for s in range(2):
            row = dict(
                data=name,
                level=p.difficulty,
                start=s + 1,
                lm=lres["levenberg_marquardt"][s],
                lm_steps=reached[s],
                gn=lres["gauss_newton"][s],
                scipy_lm=theirs[s],
            )
            rows.append(row)
            print(
                f"{name:9s} {p.difficulty:7s} {s + 1:5d} {row['lm']:6.1f} "
                f"{'-' if reached[s] is None else reached[s]:>8} {row['gn']:6.1f} "
                f"{row['scipy_lm']:9.1f}",
                flush=True,
            )
    lm = np.array([r["lm"] for r in rows])
    gn = np.array([r["gn"] for r in rows])
    sp = np.array([r["scipy_lm"] for r in rows])
    print("-" * len(head))
    print(
        f"runs with LRE >= 8: LM {np.sum(lm >= 8)}/{lm.size}, GN {np.sum(gn >= 8)}/{gn.size}, "
        f"scipy lm {np.sum(sp >= 8)}/{sp.size}; LM within 1 digit of scipy or better: "
        f"{np.sum(lm >= sp - 1)}/{lm.size}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
