"""Independent float64 NumPy references for the correctness matrix (tests/test_matrix.py).

Every objective is written again here from its literature formula, in NumPy, never by calling
gdkit. Values and gradients come from one forward-mode evaluation (`Ref`: dual numbers with the
textbook derivative of each operation), which also carries a running error bound (Wilkinson's
running error analysis): how far an evaluation of the same formula in a given precision may be
from the exact value, first order in the unit roundoff u of that precision. The matrix accepts
gdkit's float32 / float64 numbers when they are within `TOLERANCE_FACTOR` times that bound,
so the tolerance follows the dtype and the conditioning of each formula at each point instead
of being one number for all.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

# Accepted error = TOLERANCE_FACTOR x the running error bound (the bound is first order, and
# XLA may associate sums and fuse products differently from the formula as written here).
TOLERANCE_FACTOR = 4.0
# Error of one elementary function (exp, sin, arctan, ...) in units of u: XLA's float32
# approximations are accurate to a few ulps.
FUNCTION_ULPS = 4.0


def unit_roundoff(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2.0


class Ref:
    """A value with its gradient and error bounds, for forward-mode reference evaluation.

    `v`: the value (float64, shape S); `g`: its gradient (S + (d,)); `e`: a bound on the error
    of `v` when the formula is evaluated with unit roundoff `u`; `eg`: the same for `g`.
    Shapes broadcast like NumPy's over S; d is the number of parameters.
    """

    __slots__ = ("e", "eg", "g", "u", "v")

    def __init__(self, v, g, e, eg, u: float):
        self.v, self.g, self.e, self.eg, self.u = v, g, e, eg, u

    # -- construction ---------------------------------------------------------------------
    @staticmethod
    def variables(x: np.ndarray, u: float, keepdims: bool = True) -> list[Ref]:
        """The coordinates of points x [N, d] as exact inputs, each of value shape [N, 1]."""
        n, d = x.shape
        out = []
        for i in range(d):
            g = np.zeros((n, 1, d))
            g[:, :, i] = 1.0
            v = x[:, i : i + 1].astype(np.float64)
            out.append(Ref(v, g, np.zeros_like(v), np.zeros_like(g), u))
        return out

    def const(self, c) -> Ref:
        """A constant, rounded to the evaluation precision (error u |c|)."""
        c = np.asarray(c, dtype=np.float64)
        d = self.g.shape[-1]
        zeros = np.zeros((*c.shape, d))
        return Ref(c, zeros, self.u * np.abs(c), zeros, self.u)

    def _lift(self, other) -> Ref:
        return other if isinstance(other, Ref) else self.const(other)

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, other) -> Ref:
        b, u = self._lift(other), self.u
        v, g = self.v + b.v, self.g + b.g
        return Ref(v, g, self.e + b.e + u * np.abs(v), self.eg + b.eg + u * np.abs(g), u)

    __radd__ = __add__

    def __neg__(self) -> Ref:
        return Ref(-self.v, -self.g, self.e, self.eg, self.u)

    def __sub__(self, other) -> Ref:
        return self + (-self._lift(other))

    def __rsub__(self, other) -> Ref:
        return self._lift(other) + (-self)

    def __mul__(self, other) -> Ref:
        a, b, u = self, self._lift(other), self.u
        av, bv, ae, be = a.v[..., None], b.v[..., None], a.e[..., None], b.e[..., None]
        v = a.v * b.v
        g = a.g * bv + av * b.g
        e = np.abs(a.v) * b.e + np.abs(b.v) * a.e + a.e * b.e + u * np.abs(v)
        eg = (
            np.abs(a.g) * be
            + np.abs(bv) * a.eg
            + np.abs(av) * b.eg
            + np.abs(b.g) * ae
            + 2.0 * u * (np.abs(a.g * bv) + np.abs(av * b.g))
        )
        return Ref(v, g, e, eg, u)

    __rmul__ = __mul__

    def __truediv__(self, other) -> Ref:
        a, b, u = self, self._lift(other), self.u
        v = a.v / b.v
        bv, vv = b.v[..., None], v[..., None]
        g = (a.g - vv * b.g) / bv
        e = (a.e + np.abs(v) * b.e) / np.abs(b.v) + u * np.abs(v)
        eg = (
            a.eg + np.abs(vv) * b.eg + e[..., None] * np.abs(b.g) + np.abs(g) * b.e[..., None]
        ) / np.abs(bv) + 3.0 * u * (np.abs(a.g) + np.abs(vv * b.g)) / np.abs(bv)
        return Ref(v, g, e, eg, u)

    def __rtruediv__(self, other) -> Ref:
        return self._lift(other) / self

    def __pow__(self, n: int) -> Ref:
        """Integer powers, as repeated products (as XLA's integer_pow)."""
        assert float(n).is_integer() and n >= 1, n
        out = self
        for _ in range(int(n) - 1):
            out = out * self
        return out

    # -- reductions -----------------------------------------------------------------------
    def sum(self) -> Ref:
        """Sum over the last value axis (in any order: error bound n u sum |terms|)."""
        n, u = self.v.shape[-1], self.u
        v, g = self.v.sum(-1), self.g.sum(-2)
        e = self.e.sum(-1) + n * u * np.abs(self.v).sum(-1)
        eg = self.eg.sum(-2) + n * u * np.abs(self.g).sum(-2)
        return Ref(v, g, e, eg, u)

    def mean(self) -> Ref:
        return self.sum() / self.v.shape[-1]

    # -- elementary functions -------------------------------------------------------------
    def apply(self, f, df, d2f, ulps: float = FUNCTION_ULPS, dmag=None) -> Ref:
        """f(self) for f with derivatives df, d2f (NumPy functions of the value).

        `dmag(x)`: the size of the terms the derivative is computed from, where that formula
        cancels (tanh' = 1 - tanh^2 near |tanh| = 1, say); default |f'(x)|."""
        u, x = self.u, self.v
        v, d1, d2 = f(x), df(x), d2f(x)
        d1_size = np.abs(d1) if dmag is None else dmag(x)
        g = d1[..., None] * self.g
        e = np.abs(d1) * self.e + 0.5 * np.abs(d2) * self.e**2 + ulps * u * np.abs(v)
        eg = (
            (np.abs(d2) * self.e + ulps * u * d1_size)[..., None] * np.abs(self.g)
            + np.abs(d1)[..., None] * self.eg
            + u * np.abs(g)
        )
        return Ref(v, g, e, eg, u)

    def squeeze(self) -> Ref:
        """Value shape [N, 1] -> [N] (a scalar objective's result)."""
        if self.v.ndim == 2 and self.v.shape[-1] == 1:
            return Ref(self.v[:, 0], self.g[:, 0], self.e[:, 0], self.eg[:, 0], self.u)
        return self


def _zero(x):
    return np.zeros_like(x)


# name -> (f, f', f''), the textbook derivatives.
FUNCTIONS: dict[str, tuple[Callable, Callable, Callable]] = {
    "sin": (np.sin, np.cos, lambda x: -np.sin(x)),
    "cos": (np.cos, lambda x: -np.sin(x), lambda x: -np.cos(x)),
    "tan": (np.tan, lambda x: 1.0 / np.cos(x) ** 2, lambda x: 2.0 * np.tan(x) / np.cos(x) ** 2),
    "arcsin": (
        np.arcsin,
        lambda x: 1.0 / np.sqrt(1.0 - x * x),
        lambda x: x / (1.0 - x * x) ** 1.5,
    ),
    "arccos": (
        np.arccos,
        lambda x: -1.0 / np.sqrt(1.0 - x * x),
        lambda x: -x / (1.0 - x * x) ** 1.5,
    ),
    "arctan": (
        np.arctan,
        lambda x: 1.0 / (1.0 + x * x),
        lambda x: -2.0 * x / (1.0 + x * x) ** 2,
    ),
    "sinh": (np.sinh, np.cosh, np.sinh),
    "cosh": (np.cosh, np.sinh, np.cosh),
    "tanh": (
        np.tanh,
        lambda x: 1.0 - np.tanh(x) ** 2,
        lambda x: -2.0 * np.tanh(x) * (1.0 - np.tanh(x) ** 2),
    ),
    "exp": (np.exp, np.exp, np.exp),
    "log": (np.log, lambda x: 1.0 / x, lambda x: -1.0 / (x * x)),
    "log1p": (np.log1p, lambda x: 1.0 / (1.0 + x), lambda x: -1.0 / (1.0 + x) ** 2),
    "sqrt": (np.sqrt, lambda x: 0.5 / np.sqrt(x), lambda x: -0.25 * x**-1.5),
    "abs": (np.abs, np.sign, _zero),
    "sign": (np.sign, _zero, _zero),
}
ULPS = {"abs": 0.0, "sign": 0.0, "sqrt": 1.0}
# XLA's float64 log1p is ~100 ulps off near x = -0.4 (plain jax.jit as much as a sweep; jaxlib
# 0.10.2): not gdkit's to fix, so it is allowed rather than reported.
ULPS_FLOAT64 = {"log1p": 64.0}
# Derivatives that XLA computes from a formula that cancels: the size of its terms.
DERIVATIVE_SIZE = {
    "tanh": lambda x: 1.0 + np.tanh(x) ** 2,  # 1 - tanh^2
    "arcsin": lambda x: (1.0 + x * x) / (1.0 - x * x) ** 1.5,  # (1 - x^2)^-1/2
    "arccos": lambda x: (1.0 + x * x) / (1.0 - x * x) ** 1.5,
}


def fn(name: str, a: Ref) -> Ref:
    """The allow-listed function `name` of `a`."""
    f, df, d2f = FUNCTIONS[name]
    ulps = ULPS.get(name, FUNCTION_ULPS)
    if a.u < 2.0**-40:
        ulps = ULPS_FLOAT64.get(name, ulps)
    return a.apply(f, df, d2f, ulps, DERIVATIVE_SIZE.get(name))


def _sigmoid(z):
    """1 / (1 + e^-z), accurate to the last bits on both tails."""
    t = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + t), t / (1.0 + t))


def _dsigmoid(z):
    return _sigmoid(z) * _sigmoid(-z)  # s (1 - s) without the cancellation of 1 - s


def sigmoid(a: Ref) -> Ref:
    s, ds = _sigmoid, _dsigmoid
    return a.apply(
        s,
        ds,
        lambda z: ds(z) * (s(-z) - s(z)),
        dmag=lambda z: s(z) * (1 + s(z)),  # XLA computes s' = s (1 - s) from s
    )


def softplus(a: Ref) -> Ref:
    """log(1 + e^z), evaluated without overflow."""
    return a.apply(lambda z: np.logaddexp(0.0, z), _sigmoid, _dsigmoid)


# ------------------------------------------------------------------------ the objectives
# Each takes the coordinates (list of Ref, value shape [N, 1]) and, for data objectives, the
# Dataset; returns f with value shape [N]. Formulas as in Surjanovic & Bingham's Virtual
# Library of Simulation Experiments and Jamil & Yang (2013), or the docstring's model.


def rosenbrock(x, a=1.0, b=100.0):
    return sum(b * (x[i + 1] - x[i] ** 2) ** 2 + (a - x[i]) ** 2 for i in range(len(x) - 1))


def peaks(v):
    x, y = v
    return (
        3.0 * (1.0 - x) ** 2 * fn("exp", -(x**2) - (y + 1.0) ** 2)
        - 10.0 * (x / 5.0 - x**3 - y**5) * fn("exp", -(x**2) - y**2)
        - fn("exp", -((x + 1.0) ** 2) - y**2) / 3.0
    )


def sphere(x):
    return sum(xi**2 for xi in x)


def himmelblau(v):
    x, y = v
    return (x**2 + y - 11.0) ** 2 + (x + y**2 - 7.0) ** 2


def beale(v):
    x, y = v
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


def booth(v):
    x, y = v
    return (x + 2.0 * y - 7.0) ** 2 + (2.0 * x + y - 5.0) ** 2


def rastrigin(x):
    return 10.0 * len(x) + sum(xi**2 - 10.0 * fn("cos", 2.0 * math.pi * xi) for xi in x)


def ackley(x, a=20.0, b=0.2, c=2.0 * math.pi):
    d = len(x)
    r = fn("sqrt", sum(xi**2 for xi in x) / d)
    cos_mean = sum(fn("cos", c * xi) for xi in x) / d
    return -a * fn("exp", -b * r) - fn("exp", cos_mean) + a + math.e


def styblinski_tang(x):
    return 0.5 * sum(xi**4 - 16.0 * xi**2 + 5.0 * xi for xi in x)


def six_hump_camel(v):
    x, y = v
    return (4.0 - 2.1 * x**2 + x**4 / 3.0) * x**2 + x * y + (-4.0 + 4.0 * y**2) * y**2


def goldstein_price(v):
    x, y = v
    t1 = 1.0 + (x + y + 1.0) ** 2 * (
        19.0 - 14.0 * x + 3.0 * x**2 - 14.0 * y + 6.0 * x * y + 3.0 * y**2
    )
    t2 = 30.0 + (2.0 * x - 3.0 * y) ** 2 * (
        18.0 - 32.0 * x + 12.0 * x**2 + 48.0 * y - 36.0 * x * y + 27.0 * y**2
    )
    return t1 * t2


def parabola(v):
    return v[0] ** 2 - 2.0 * v[0] + 3.0


def saddle(v):
    x, y = v
    return x**2 + 3.0 * x * y + y**2


def quadratic_explicit(x, A, b, c):
    """1/2 x'Ax - b'x + c, written out term by term."""
    n = len(x)
    quad = sum(0.5 * A[i, j] * x[i] * x[j] for i in range(n) for j in range(n))
    return quad - sum(b[i] * x[i] for i in range(n)) + c


def quadratic_generated(dim=2, condition_number=10.0, seed=0):
    """The documented construction of the registered `quadratic`: A = Q diag(lambda) Q^T with
    Q Haar-random (QR of a Gaussian matrix, signs fixed), lambda log-spaced in [1, kappa],
    x* ~ N(0, I), f = 1/2 (x - x*)'A(x - x*). Returns (A, x*)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    q = q * np.sign(np.diag(r))
    lam = np.geomspace(1.0, condition_number, dim) if dim > 1 else np.ones(1)
    A = (q * lam) @ q.T
    return 0.5 * (A + A.T), rng.standard_normal(dim)


def quadratic_centred(x, A, x_star):
    d = [xi - s for xi, s in zip(x, x_star, strict=True)]
    n = len(x)
    return sum(0.5 * A[i, j] * d[i] * d[j] for i in range(n) for j in range(n))


def linear_regression(p, data):
    """mean_i (x_i . w + b - y_i)^2, parameters (w..., b)."""
    X, y = data.X, data.y
    *w, b = p
    pred = sum(wi * X[:, i] for i, wi in enumerate(w)) + b
    return ((pred - y) ** 2).mean()


def logistic_regression(p, data):
    """mean_i softplus(z_i) - y_i z_i with z_i = x_i . w + b."""
    X, y = data.X, data.y
    *w, b = p
    z = sum(wi * X[:, i] for i, wi in enumerate(w)) + b
    return (softplus(z) - z * y).mean()


def curve_fit(p, data):
    """mean_i (a exp(b t_i) - y_i)^2."""
    a, b = p
    t, y = data.X[:, 0], data.y
    return ((a * fn("exp", b * t) - y) ** 2).mean()


def mlp(p, data, hidden=4):
    """1/2 sum_i (sigmoid(sigmoid(x_i W1) W2) - y_i)^2, parameters W1 [k, hidden] (row-major)
    then W2 [hidden]; no biases."""
    X, y = data.X, data.y
    k = X.shape[1]
    w1 = [[p[i * hidden + j] for j in range(hidden)] for i in range(k)]
    w2 = p[k * hidden :]
    h = [sigmoid(sum(w1[i][j] * X[:, i] for i in range(k))) for j in range(hidden)]
    out = sigmoid(sum(h[j] * w2[j] for j in range(hidden)))
    return 0.5 * ((out - y) ** 2).sum()


def evaluate(formula: Callable[[list[Ref]], Ref], x: np.ndarray, dtype) -> tuple:
    """f, grad f (float64) at points x [N, d], and error bounds for an evaluation in `dtype`
    (plus the float64 reference's own rounding): (f [N], g [N, d], ef [N], eg [N, d])."""
    out = []
    for u in (unit_roundoff(dtype), unit_roundoff(np.float64)):
        r = formula(Ref.variables(np.asarray(x, np.float64), u)).squeeze()
        out.append(r)
    r, r64 = out
    return r.v, r.g, r.e + r64.e, r.eg + r64.eg
