"""Convex quadratics f(x) = 1/2 x^T A x - b^T x + c, the model problem of optimization theory."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from gdkit._checks import fits_in_memory, short
from gdkit.objectives._base import Minimum, Objective
from gdkit.objectives._registry import register


@register(
    "quadratic",
    "1/2 x'Ax - b'x + c: explicit A, b, or dim + condition_number + seed (rotated SPD, f* = 0)",
)
def quadratic(
    A=None,
    b=None,
    c: float = 0.0,
    dim: int = 2,
    condition_number: float = 10.0,
    seed: int = 0,
) -> Objective:
    """Either the explicit quadratic (A symmetric positive definite, b, c), or a generated one.

    Generated: A = Q diag(lambda) Q^T with Q a Haar-random rotation and lambda log-spaced from 1
    to `condition_number` (so lambda_min = 1 and lambda_max = L = condition_number exactly, and
    plain gradient descent is stable for learning rates below 2 / L); the minimizer x* is drawn
    from N(0, I) and b, c are set so that f(x) = 1/2 (x - x*)^T A (x - x*), minimum 0 at x*.
    The start is the origin. Everything is derived from `seed`.
    """
    generated = A is None
    if generated:
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or dim < 1:
            raise ValueError(f"quadratic: dim must be an integer >= 1, got {short(dim)}")
        # a dense dim x dim matrix and the temporaries of its QR decomposition
        fits_in_memory("quadratic", f"dim {dim}", 32 * dim * dim, "make dim smaller")
        if not condition_number >= 1.0:
            raise ValueError(f"quadratic: condition_number must be >= 1, got {condition_number}")
        if b is not None:
            raise ValueError("quadratic: give b only together with an explicit A")
        rng = np.random.default_rng(seed)
        q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q = q * np.sign(np.diag(r))  # Haar-distributed rotation
        eig = np.geomspace(1.0, float(condition_number), dim) if dim > 1 else np.ones(1)
        A = (q * eig) @ q.T
        A = 0.5 * (A + A.T)
        x_drawn = rng.standard_normal(dim)
        b = A @ x_drawn
        c = 0.5 * x_drawn @ A @ x_drawn
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or not np.allclose(A, A.T):
        raise ValueError(f"quadratic: A must be a symmetric square matrix, got shape {A.shape}")
    n = A.shape[0]
    if np.linalg.eigvalsh(A).min() <= 0:
        raise ValueError("quadratic: A must be positive definite (it has no minimum otherwise)")
    b = np.zeros(n) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)
    if b.shape != (n,):
        raise ValueError(f"quadratic: b must have {n} entries, got {b.size}")
    c = float(c)
    if generated:
        x_star, f_star = x_drawn, 0.0
    else:
        x_star = np.linalg.solve(A, b)
        f_star = c - 0.5 * float(b @ x_star)

    # Evaluated in the centred form 1/2 (x - x*)'A(x - x*) + f*: the same function, but without
    # the cancellation of 1/2 x'Ax - b'x + c, so the gap to f* stays resolvable in float32.
    def fn(x):
        d = x - jnp.asarray(x_star, x.dtype)
        return 0.5 * d @ (jnp.asarray(A, x.dtype) @ d) + f_star

    half = max(3.0, float(np.abs(x_star).max()) + 2.0)
    return Objective(
        "quadratic",
        fn,
        n,
        np.zeros(n),
        np.tile([-half, half], (n, 1)),
        (Minimum(x_star, f_star),),
        "convex quadratic",
    )
