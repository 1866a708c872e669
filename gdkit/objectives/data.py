"""Data objectives: a model's loss over a data set, as an `Objective` on flat parameters.

The engine works on flat parameter vectors x [d], so a data objective's `fn(x)` is the
full-batch loss of the model whose parameter pytree is `unravel(x)`. On top of `fn` it carries
what batching and least squares need (see `Objective`): `minibatch(x, key, step, batch_size)`,
`residual_fn`, `param_names` and `data`.

Mini-batches are sampled without state, so a compiled loop needs nothing but the lane's PRNG
key and the step number: epoch e = step // (n // batch_size) shuffles the samples with a
pseudo-random permutation keyed by `jax.random.fold_in(key, e)`, and the step takes the
batch_size samples at its positions in that epoch (`batch_indices`), so every epoch visits
each sample once. The permutation is computed per position, never as a whole: a keyed
eight-round Feistel network on the next power of 4 >= n, walked along its cycle until it lands
in [0, n) (a bijection of [0, n); a few integer hashes per sample, where shuffling all n
samples every step cost a sort of n). When batch_size does not divide n, the
last n mod batch_size samples of each epoch's permutation are left out of that epoch (as
PyTorch's `drop_last=True`); a different few each epoch. batch_size = 1 is stochastic gradient
descent; full-batch descent uses `fn` itself. Batch size is a shape: each distinct value is its
own compiled program.

  >>> import jax, jax.numpy as jnp
  >>> from gdkit import objectives
  >>> obj = objectives.get("linear_regression", noise=0.0)
  >>> x = jnp.zeros(obj.dim)
  >>> b = obj.minibatch(x, jax.random.key(0), 0, 10)  # loss on the 10 samples of step 0
  >>> obj.unravel(x)["w"].shape, obj.param_names
  ((2,), ('w[0]', 'w[1]', 'b'))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gdkit.objectives._base import Minimum, Objective
from gdkit.objectives.datasets import Dataset

Shapes = Sequence[tuple[str, tuple[int, ...]]]
# per_sample(params, X, y) -> [b] per-sample losses; residual(params, X, y) -> [b] errors.
PerSample = Callable[[dict, jax.Array, jax.Array], jax.Array]


def batch_indices(key: jax.Array, step, n: int, batch_size: int) -> jax.Array:
    """The indices [batch_size] of the samples that step `step` uses (see the module doc).

    `key` is a PRNG key (typed, or raw uint32[2] key data as the engine keeps them); `step`
    may be traced; `n` and `batch_size` are Python ints (shapes).

    Example:
      >>> import jax, numpy as np
      >>> idx = [batch_indices(jax.random.key(0), s, 6, 2) for s in range(3)]  # one epoch
      >>> sorted(np.concatenate(idx).tolist())
      [0, 1, 2, 3, 4, 5]
    """
    batch_size = check_batch_size(batch_size, n)
    per_epoch = n // batch_size
    step = jnp.asarray(step, jnp.int32)
    round_keys = jax.random.bits(jax.random.fold_in(key, step // per_epoch), (ROUNDS,), jnp.uint32)
    positions = (step % per_epoch) * batch_size + jnp.arange(batch_size, dtype=jnp.int32)
    return permuted(positions, n, round_keys)


ROUNDS = 8  # Feistel rounds of `permuted` (4 left the order of small n measurably uneven)


def permuted(positions: jax.Array, n: int, round_keys: jax.Array) -> jax.Array:
    """Where a pseudo-random permutation of [0, n), keyed by `round_keys` (uint32[ROUNDS]),
    sends each of `positions` (int32 in [0, n)).

    A Feistel network on 2h bits (4^h >= n) is a permutation of [0, 4^h) for any round
    function; applying it again until the value falls in [0, n) ("cycle walking") restricts it
    to a permutation of [0, n). Fewer than 4 walks on average (4^h < 4n), at most one cycle's
    length; the loop runs until every value has arrived.
    """
    half = max(1, math.ceil(math.log2(max(n, 2)) / 2))
    mask = jnp.uint32((1 << half) - 1)

    def feistel(v):
        left, right = v >> half, v & mask
        for r in range(ROUNDS):
            left, right = right, left ^ (_mix32(right ^ round_keys[r]) & mask)
        return (left << half) | right

    v = feistel(jnp.asarray(positions).astype(jnp.uint32))
    v = jax.lax.while_loop(lambda v: jnp.any(v >= n), lambda v: jnp.where(v >= n, feistel(v), v), v)
    return v.astype(jnp.int32)


def _mix32(x: jax.Array) -> jax.Array:
    """A 32-bit integer hash (xorshift-multiply; every input bit moves every output bit)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def check_batch_size(batch_size, n: int) -> int:
    """`batch_size` as an int in [1, n]; ValueError otherwise ("full" is `fn`, not a size)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ValueError(f"batch_size must be an integer in [1, {n}], got {batch_size!r}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, n={n}], got {batch_size}")
    return int(batch_size)


def param_names(shapes: Shapes) -> tuple[str, ...]:
    """`[("w", (2,)), ("b", ())]` -> `("w[0]", "w[1]", "b")` (C order, as `unravel`)."""
    out = []
    for name, shape in shapes:
        if not shape:
            out.append(name)
            continue
        for idx in itertools.product(*map(range, shape)):
            out.append(f"{name}[{','.join(map(str, idx))}]")
    return tuple(out)


def make_unravel(shapes: Shapes) -> Callable[[jax.Array], dict]:
    """flat x [..., d] -> {name: array [..., *shape]} in x's own dtype (jax or numpy arrays):
    one point, or a result's points with their leading axes (`SweepResult.final_params`)."""
    sizes = [math.prod(s) for _, s in shapes]
    offsets = np.cumsum([0, *sizes])

    def unravel(x):
        return {
            name: x[..., offsets[i] : offsets[i + 1]].reshape((*x.shape[:-1], *shape))
            for i, (name, shape) in enumerate(shapes)
        }

    return unravel


def from_data(
    name: str,
    data: Dataset,
    shapes: Shapes,
    per_sample: PerSample,
    *,
    reduction: str = "mean",
    scale: float = 1.0,
    residual: PerSample | None = None,
    model: Callable[[dict, jax.Array], jax.Array] | None = None,
    x0: np.ndarray,
    bounds: np.ndarray,
    minima: Sequence[Minimum] = (),
    description: str = "",
) -> Objective:
    """A data objective: fn(x) = scale * reduce_i per_sample(unravel(x), X, y)_i.

    `reduction` is "mean" (the mini-batch loss is the batch mean) or "sum" (the batch sum
    times n / batch_size), so `minibatch` is an unbiased estimate of `fn` either way.
    `residual(params, X, y)` gives the per-sample errors e (for a squared-error loss,
    per_sample = e**2): then `residual_fn(x) = sqrt(2 * scale / n) * e` for "mean" and
    `sqrt(2 * scale) * e` for "sum", so that fn(x) == 0.5 * sum(residual_fn(x)**2).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    unravel = make_unravel(shapes)
    n = data.n
    X_np, y_np = data.X, data.y

    def arrays(dtype):
        return jnp.asarray(X_np, dtype), jnp.asarray(y_np, dtype)

    def fn(x):
        X, y = arrays(x.dtype)
        losses = per_sample(unravel(x), X, y)
        return scale * (jnp.mean(losses) if reduction == "mean" else jnp.sum(losses))

    def minibatch(x, key, step, batch_size):
        idx = batch_indices(key, step, n, batch_size)
        X, y = arrays(x.dtype)
        losses = per_sample(unravel(x), X[idx], y[idx])
        if reduction == "mean":
            return scale * jnp.mean(losses)
        return scale * (n / batch_size) * jnp.sum(losses)

    residual_fn = None
    if residual is not None:
        factor = math.sqrt(2.0 * scale / n) if reduction == "mean" else math.sqrt(2.0 * scale)

        def residual_fn(x):
            X, y = arrays(x.dtype)
            return factor * residual(unravel(x), X, y)

    predict = None
    if model is not None:

        def predict(x, X):
            x = jnp.asarray(x)
            return model(unravel(x), jnp.asarray(X, x.dtype))

    return Objective(
        name=name,
        fn=fn,
        dim=sum(math.prod(s) for _, s in shapes),
        x0=x0,
        bounds=bounds,
        minima=tuple(minima),
        description=description,
        param_names=param_names(shapes),
        minibatch=minibatch,
        residual_fn=residual_fn,
        data=data,
        unravel=unravel,
        predict=predict,
    )


def box(x0: np.ndarray, *points: np.ndarray, margin: float = 2.0) -> np.ndarray:
    """Bounds [d, 2] that hold `x0` and `points` with `margin` (at least) on each side."""
    pts = np.stack([np.asarray(x0, np.float64), *map(np.asarray, points)])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = np.maximum(margin, 0.5 * (hi - lo))
    return np.stack([lo - pad, hi + pad], axis=1)
