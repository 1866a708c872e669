"""The NIST StRD nonlinear-regression data sets (tests/data/nist/*.dat, copied unchanged from
https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml via lmfit-py's NIST_STRD folder):
their models, starts, certified values, and the log relative error used to score a fit.

Each file's header states its model, the two official starts and the certified parameters
and residual sum of squares; `load` reads them from there.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from gdkit.objectives import Objective

DATA = Path(__file__).parent / "data" / "nist"
PI = math.pi


def _two_exp_gauss(b, x):
    return (
        b[0] * jnp.exp(-b[1] * x)
        + b[2] * jnp.exp(-((x - b[3]) ** 2) / b[4] ** 2)
        + b[5] * jnp.exp(-((x - b[6]) ** 2) / b[7] ** 2)
    )


def _rational33(b, x):
    return (b[0] + b[1] * x + b[2] * x**2 + b[3] * x**3) / (
        1 + b[4] * x + b[5] * x**2 + b[6] * x**3
    )


def _enso(b, x):
    w = 2 * PI * x
    return (
        b[0]
        + b[1] * jnp.cos(w / 12)
        + b[2] * jnp.sin(w / 12)
        + b[4] * jnp.cos(w / b[3])
        + b[5] * jnp.sin(w / b[3])
        + b[7] * jnp.cos(w / b[6])
        + b[8] * jnp.sin(w / b[6])
    )


def _lanczos(b, x):
    return b[0] * jnp.exp(-b[1] * x) + b[2] * jnp.exp(-b[3] * x) + b[4] * jnp.exp(-b[5] * x)


# name -> (difficulty, model f(b, x)) as the files' "Model:" sections state them. Nelson's
# response is log(y) (its file: log[y] = b1 - b2*x1 * exp[-b3*x2]), with x = (x1, x2).
MODELS = {
    "Misra1a": ("lower", lambda b, x: b[0] * (1 - jnp.exp(-b[1] * x))),
    "Chwirut2": ("lower", lambda b, x: jnp.exp(-b[0] * x) / (b[1] + b[2] * x)),
    "Chwirut1": ("lower", lambda b, x: jnp.exp(-b[0] * x) / (b[1] + b[2] * x)),
    "Lanczos3": ("lower", _lanczos),
    "Gauss1": ("lower", _two_exp_gauss),
    "Gauss2": ("lower", _two_exp_gauss),
    "DanWood": ("lower", lambda b, x: b[0] * x ** b[1]),
    "Misra1b": ("lower", lambda b, x: b[0] * (1 - (1 + b[1] * x / 2) ** (-2))),
    "Kirby2": (
        "average",
        lambda b, x: (b[0] + b[1] * x + b[2] * x**2) / (1 + b[3] * x + b[4] * x**2),
    ),
    "Hahn1": ("average", _rational33),
    "Nelson": ("average", lambda b, x: b[0] - b[1] * x[:, 0] * jnp.exp(-b[2] * x[:, 1])),
    "MGH17": ("average", lambda b, x: b[0] + b[1] * jnp.exp(-x * b[3]) + b[2] * jnp.exp(-x * b[4])),
    "Lanczos1": ("average", _lanczos),
    "Lanczos2": ("average", _lanczos),
    "Gauss3": ("average", _two_exp_gauss),
    "Misra1c": ("average", lambda b, x: b[0] * (1 - (1 + 2 * b[1] * x) ** (-0.5))),
    "Misra1d": ("average", lambda b, x: b[0] * b[1] * x * (1 + b[1] * x) ** (-1)),
    "Roszman1": (
        "average",
        lambda b, x: b[0] - b[1] * x - jnp.arctan(b[2] / (x - b[3])) / PI,
    ),
    "ENSO": ("average", _enso),
    "MGH09": ("higher", lambda b, x: b[0] * (x**2 + x * b[1]) / (x**2 + x * b[2] + b[3])),
    "Thurber": ("higher", _rational33),
    "BoxBOD": ("higher", lambda b, x: b[0] * (1 - jnp.exp(-b[1] * x))),
    "Rat42": ("higher", lambda b, x: b[0] / (1 + jnp.exp(b[1] - b[2] * x))),
    "MGH10": ("higher", lambda b, x: b[0] * jnp.exp(b[1] / (x + b[2]))),
    "Eckerle4": ("higher", lambda b, x: (b[0] / b[1]) * jnp.exp(-0.5 * ((x - b[2]) / b[1]) ** 2)),
    "Rat43": ("higher", lambda b, x: b[0] / (1 + jnp.exp(b[1] - b[2] * x)) ** (1 / b[3])),
    "Bennett5": ("higher", lambda b, x: b[0] * (b[1] + x) ** (-1 / b[2])),
}

_NUMBER = r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One NIST data set: starts [2, p], certified parameters [p] and residual sum of squares,
    data x [n] (or [n, k]) and y [n]."""

    name: str
    difficulty: str
    starts: np.ndarray
    certified: np.ndarray
    certified_rss: float
    x: np.ndarray
    y: np.ndarray

    def residuals(self, b):
        """r_i = y_i - f(x_i; b) (Nelson: log y_i - f)."""
        y = np.log(self.y) if self.name == "Nelson" else self.y
        return jnp.asarray(y) - MODELS[self.name][1](b, jnp.asarray(self.x))

    def objective(self, start: int) -> Objective:
        """f(b) = 1/2 sum r_i^2 with `residual_fn`, from official start 1 or 2."""
        x0 = self.starts[start - 1]
        half = np.abs(x0) + np.abs(self.certified) + 1.0
        return Objective(
            name=f"{self.name}-start{start}",
            fn=lambda b: 0.5 * jnp.sum(self.residuals(b) ** 2),
            dim=x0.size,
            x0=x0,
            bounds=np.column_stack([x0 - half, x0 + half]),
            residual_fn=self.residuals,
        )


def load(name: str) -> Problem:
    """Reads `name`.dat: the header's starts and certified values, then the data block."""
    lines = (DATA / f"{name}.dat").read_text().splitlines()
    params = []
    for line in lines:
        m = re.match(rf"\s*b\d+\s*=\s*({_NUMBER})\s+({_NUMBER})\s+({_NUMBER})\s+{_NUMBER}", line)
        if m:
            params.append([float(v) for v in m.groups()])
    params = np.array(params)
    rss = next(
        float(re.findall(_NUMBER, ln.split(":")[1])[0])
        for ln in lines
        if ln.startswith("Residual Sum of Squares")
    )
    start = next(i for i, ln in enumerate(lines) if re.match(r"Data:\s+y\s", ln)) + 1
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[start:] if ln.strip()])
    x = rows[:, 1] if rows.shape[1] == 2 else rows[:, 1:]
    return Problem(name, MODELS[name][0], params[:, :2].T, params[:, 2], rss, x, rows[:, 0])


def lre(b, certified) -> float:
    """Log relative error of the worst parameter: min_j -log10(|b_j - c_j| / |c_j|), capped at
    11 (NIST's and McCullough's score of correct significant digits); 0 if not finite."""
    b, c = np.asarray(b, np.float64), np.asarray(certified, np.float64)
    if not np.all(np.isfinite(b)):
        return 0.0
    with np.errstate(divide="ignore"):
        digits = -np.log10(np.abs(b - c) / np.abs(c))
    return float(np.clip(np.min(digits), 0.0, 11.0))


def fitted_lre(p: Problem, optimizer: str, steps: int) -> list[float]:
    """LRE of `optimizer`'s fit from start 1 and start 2: one float64 `gdkit.sweep` of two
    lanes (the caller enables float64)."""
    from gdkit.engine.sweep import sweep

    r = sweep(
        p.objective(1),
        optimizer,
        grid={},
        x0=p.starts,
        steps=steps,
        dtype="float64",
        progress=False,
    )
    return [lre(x, p.certified) for x in np.asarray(r.final_x).reshape(2, -1)]
