"""The compiled lane programs of a sweep: init, a chunk of steps (the last one's outputs are the
sweep's results) and, only when some lane diverged, the replay of those lanes.

Layout: every per-lane array has the lane axis first (x is [L, d], per-lane scalars [L]); the
optimizer step is written for one lane and vmapped. Optimizer-state leaves that do not depend
on the lane (step counts) stay shared scalars. The bookkeeping (divergence, best loss, steps
to tol) is elementwise code on [L] arrays that XLA fuses into the step.

A diverged lane keeps stepping (its numbers go to inf / NaN, harming no other lane); the last
finite point it is frozen at is found at the end by replaying it from its start
(`make_replay`).
Each array a step writes costs XLA:CPU one more pass over the lanes per step (it does not
fuse kernels with several outputs), so a per-step copy of the last good point would cost
~15% of the sweep, while the replay costs nothing for lanes that never diverge and at most
the steps up to the divergence for those that do.

Step t (0-based) evaluates f(x_t) and its gradient, does the bookkeeping for x_t, then
applies the optimizer update to get x_{t+1}. The last chunk's `_outputs` evaluate x_T. So the
losses seen are f(x_0), ..., f(x_T) and steps_to_tol / diverged_step are in [0, T].
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdkit import _cache
from gdkit.objectives import Objective
from gdkit.optimizers import linesearch as _ls

try:  # vmap's "batch an output only where it depends on the lane" (see `_shareable`)
    from jax._src.interpreters.batching import infer as _INFER
except ImportError:  # pragma: no cover - older jax: `_shareable` searches by trial
    _INFER = None

NEVER = np.iinfo(np.int32).max  # "not yet" for steps_to_tol / diverged_step inside programs


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything that shapes the compiled program (the cache key, with the array shapes)."""

    objective: Objective
    make: Callable[..., Any] = dataclasses.field(compare=False)
    optimizer_key: Any
    lane_names: tuple[str, ...]
    fixed_names: tuple[str, ...]
    static: tuple[tuple[str, Any], ...]
    dtype: str
    tol_metric: str | None  # "gap", "grad_norm" or None (no tol)
    noise: bool
    unroll: int
    batch_size: int | None = None  # mini-batches of a data objective; None: the full batch
    residuals: bool = False  # pass the objective's residual_fn (least-squares methods)

    @property
    def keyed(self) -> bool:
        """Whether lanes carry PRNG keys (gradient noise, mini-batch sampling)."""
        return self.noise or self.batch_size is not None


def _optimizer(spec: Spec, hp: dict) -> optax.GradientTransformationExtraArgs:
    opt = spec.make(**dict(spec.static), **hp)
    return optax.with_extra_args_support(opt)


@functools.lru_cache(maxsize=256)
def reuse(spec: Spec, dim: int) -> str | None:
    """What a step takes from the optimizer's state instead of evaluating it: "value_and_grad"
    (a zoom line search left f and grad f at the point it accepted), "value" (a backtracking
    search left f) or None (evaluate f and grad f at every step).

    Only where the line search's function is the objective itself: not with mini-batches
    (the next step's batch differs), gradient noise (the step's gradient is not grad f) or
    weight decay (the search saw the penalized f)."""
    decay = dict(spec.static).get("weight_decay") is not None or "weight_decay" in (
        *spec.lane_names,
        *spec.fixed_names,
    )
    if spec.batch_size is not None or spec.noise or decay:
        return None
    dt = jnp.dtype(spec.dtype)
    hp = {n: jax.ShapeDtypeStruct((), dt) for n in (*spec.lane_names, *spec.fixed_names)}
    state = jax.eval_shape(
        lambda x, h: _optimizer(spec, h).init(x), jax.ShapeDtypeStruct((dim,), dt), hp
    )
    cached = _ls.cached_value_and_grad(state)
    if cached is None:
        return None
    return "value" if cached[1] is None else "value_and_grad"


def _lane_update(spec: Spec, x, opt_state, key, hp, noise, key0=None, t=0):
    """One optimizer step for one lane: returns (v, metric, x_new, state_new, key_new).

    v is always the full objective at x (what the bookkeeping and the history see); with
    mini-batches the gradient, `value` and `value_fn` the optimizer gets are the mini-batch's,
    drawn from the lane's fixed key `key0` and the step `t` (stateless, so resumable). Where
    the optimizer's line search already evaluated f (and grad f) at x (`reuse`), they are
    read from its state, not evaluated again."""
    fn = spec.objective.fn
    mode = reuse(spec, x.shape[-1])
    if mode is not None:
        v, g = _ls.cached_value_and_grad(opt_state)
        g = jax.grad(fn)(x) if g is None else g
        value, value_fn = v, fn
    elif spec.batch_size is None:
        v, g = jax.value_and_grad(fn)(x)
        value, value_fn = v, fn
    else:
        b = spec.batch_size
        value_fn = lambda z: spec.objective.minibatch(z, key0, t, b)  # noqa: E731
        value, g = jax.value_and_grad(value_fn)(x)
        v = fn(x)
    if spec.noise:
        key, sub = jax.random.split(jax.random.wrap_key_data(key))
        g = g + noise * jax.random.normal(sub, g.shape, g.dtype)
        key = jax.random.key_data(key)
    if spec.tol_metric == "grad_norm":  # |grad f|^2 against tol^2, of the full objective
        g_full = g if spec.batch_size is None and not spec.noise else jax.grad(fn)(x)
        metric = jnp.sum(g_full * g_full)
    else:
        metric = v
    opt = _optimizer(spec, hp)
    extra = {"residual_fn": spec.objective.residual_fn} if spec.residuals else {}
    updates, opt_state = opt.update(
        g, opt_state, x, value=value, grad=g, value_fn=value_fn, **extra
    )
    x_new = optax.apply_updates(x, updates)
    return v, metric, x_new, opt_state, key


@functools.lru_cache(maxsize=256)
def state_axes(spec: Spec, dim: int):
    """Which optimizer-state leaves depend on the lane (0) and which don't (None).

    Lane-independent leaves (Adam's step count, say) stay shared by all lanes, so what depends
    only on them (Adam's bias corrections b**t) is computed once per step, not once per lane.
    Only integer leaves (step and evaluation counters) are candidates: a float leaf of a
    lane's state follows its x. The answer is the largest set of them that vmap accepts with
    out_axes None in both init and step (`can_share`), found by `_shareable`. With the
    persistent cache on, it is kept there, keyed by the text of one lane's init and step
    programs (what vmap decides from), so a later process traces nothing for it.
    """
    leaves, tree = jax.tree.flatten(_lane_state(spec, dim))
    candidates = {i for i, s in enumerate(leaves) if jnp.issubdtype(s.dtype, jnp.integer)}
    text = _lane_programs_text(spec, dim) if candidates and _cache.enabled() else None
    kept = None if text is None else _cache.stored("state-axes", text)
    if isinstance(kept, list) and set(kept) <= candidates:
        shared = set(kept)
    else:
        shared = _shareable(spec, dim, candidates)
        if text is not None:
            _cache.store("state-axes", text, sorted(shared))
    return tree.unflatten([None if i in shared else 0 for i in range(len(leaves))])


def _shareable(spec: Spec, dim: int, candidates: set[int]) -> set[int]:
    """The largest subset of the `candidates` leaves that all lanes can share.

    vmap reports which outputs it batched (out_axes `infer`, not public API): a leaf that
    comes out of init, or out of a step whose shared inputs are the current set, per lane
    leaves the set, until none does. Batching only spreads, so this ends at the largest
    set; usually after two traces of the step (each ~0.1 s with a line search's while loops).
    A jax without `infer`, or one where it no longer answers as this expects, tries them by
    `can_share` instead, all at once, then one by one (each kept if the step still traces),
    which finds the same set for every optimizer gdkit has and takes a trace per candidate.
    """
    if _INFER is not None:
        try:
            return _inferred_shareable(spec, dim, candidates)
        except _InferChanged:
            pass
    if can_share(spec, dim, candidates):
        return set(candidates)
    shared: set[int] = set()
    for i in sorted(candidates):
        if can_share(spec, dim, shared | {i}):
            shared.add(i)
    return shared


def _inferred_shareable(spec: Spec, dim: int, candidates: set[int]) -> set[int]:
    """`_shareable` by vmap's `infer`; raises `_InferChanged` where it does not answer."""
    x, hp, fx, key = _input_shapes(spec, dim, (2,))
    init, step = _lane_fns(spec)
    shared = candidates - _batched(init, (0, 0, None), x, hp, fx)
    while True:
        axes, state = _lane_axes(spec, dim, shared)
        kept = shared - _batched(_new_state(step), (0, axes, 0, 0, None), x, state, key, hp, fx)
        if kept == shared:
            return shared
        shared = kept


class _InferChanged(Exception):
    """vmap's `infer` did not answer with a lane axis (an int) or None per output leaf."""


def _new_state(step):
    """`step` returning only the optimizer state it makes."""
    return lambda x, state, key, hp, fx: step(x, state, key, hp, fx)[3]


def _batched(fn, in_axes, *args) -> set[int]:
    """The numbers of `fn`'s output leaves that vmap over `in_axes` makes per lane."""
    seen = []

    def traced(*a):
        out, axes = jax.vmap(fn, in_axes=in_axes, out_axes=_INFER)(*a)
        seen.append(axes)
        return out

    try:
        out = jax.eval_shape(traced, *args)
    except (TypeError, ValueError) as e:
        raise _InferChanged from e
    axes = jax.tree.leaves(seen[0], is_leaf=lambda a: a is None) if seen else None
    if axes is None or len(axes) != len(jax.tree.leaves(out)):
        raise _InferChanged
    if not all(a is None or isinstance(a, int) for a in axes):
        raise _InferChanged
    return {i for i, a in enumerate(axes) if a is not None}


def _input_shapes(spec: Spec, dim: int, lanes: tuple[int, ...]):
    """Shapes of (x, per-lane hyperparameters, shared ones, PRNG key) for `lanes` = () (one
    lane) or (L,) (L lanes)."""
    dt = jnp.dtype(spec.dtype)
    x = jax.ShapeDtypeStruct((*lanes, dim), dt)
    hp = {n: jax.ShapeDtypeStruct(lanes, dt) for n in spec.lane_names}
    fx = {n: jax.ShapeDtypeStruct((), dt) for n in spec.fixed_names}
    key = jax.ShapeDtypeStruct((*lanes, 2), jnp.uint32) if spec.keyed else None
    return x, hp, fx, key


def _lane_fns(spec: Spec):
    """One lane's optimizer init (x, hp, fx) and step (x, state, key, hp, fx)."""

    def init(x, hp, fx):
        return _optimizer(spec, {**hp, **fx}).init(x)

    def step(x, state, key, hp, fx):
        return _lane_update(spec, x, state, key, {**hp, **fx}, 0.0, key)

    return init, step


@functools.lru_cache(maxsize=256)
def _lane_state(spec: Spec, dim: int):
    """One lane's optimizer state, as shapes."""
    x, hp, fx, _key = _input_shapes(spec, dim, ())
    return jax.eval_shape(_lane_fns(spec)[0], x, hp, fx)


def can_share(spec: Spec, dim: int, shared: set[int]) -> bool:
    """Whether all lanes can share the state leaves numbered `shared`: vmap refuses
    out_axes=None for a lane-dependent output, so they can when both init and step accept it
    (traced for two lanes, nothing computed)."""
    x, hp, fx, key = _input_shapes(spec, dim, (2,))
    init, step = _lane_fns(spec)
    axes, state = _lane_axes(spec, dim, shared)
    try:
        jax.eval_shape(jax.vmap(init, in_axes=(0, 0, None), out_axes=axes), x, hp, fx)
        lanes_step = jax.vmap(step, in_axes=(0, axes, 0, 0, None), out_axes=(0, 0, 0, axes, 0))
        jax.eval_shape(lanes_step, x, state, key, hp, fx)
    except ValueError:
        return False
    return True


def _lane_axes(spec: Spec, dim: int, shared: set[int]):
    """The state's lane axes with the leaves numbered `shared` shared, and its shapes for two
    lanes so laid out."""
    leaves, tree = jax.tree.flatten(_lane_state(spec, dim))
    axes = tree.unflatten([None if i in shared else 0 for i in range(len(leaves))])
    state = [
        s if i in shared else jax.ShapeDtypeStruct((2, *s.shape), s.dtype)
        for i, s in enumerate(leaves)
    ]
    return axes, tree.unflatten(state)


def _lane_programs_text(spec: Spec, dim: int) -> str:
    """The text of one lane's init and step (jaxprs: every primitive, shape and dtype), and
    which of their inputs are per lane: what vmap's decisions follow from."""
    x, hp, fx, key = _input_shapes(spec, dim, ())
    init, step = _lane_fns(spec)
    state = _lane_state(spec, dim)
    init_text = jax.make_jaxpr(init)(x, hp, fx)
    step_text = jax.make_jaxpr(step)(x, state, key, hp, fx)
    which = f"per lane {spec.lane_names}, shared {spec.fixed_names}, keyed {spec.keyed}"
    tree = jax.tree.structure(state)
    return f"state-axes 1\ndim {dim}\n{which}\n{tree}\n{init_text}\n{step_text}"


def carry_axes(spec: Spec, dim: int) -> dict:
    """The lane axis (0) or None (shared) of every carry leaf, matching `make_init`."""
    return {
        "x": 0,
        "opt_state": state_axes(spec, dim),
        "key": 0 if spec.keyed else None,
        "x0": 0,
        "key0": 0 if spec.keyed else None,
        "thr": 0,
        "best": 0,
        "stt": 0,
        "div": 0,
        **({"evals_tol": dict.fromkeys(EVALS, 0)} if counts_evals(spec, dim) else {}),
    }


EVALS = _ls.Evals._fields  # f, grad, hess, jac


@functools.lru_cache(maxsize=256)
def counts_evals(spec: Spec, dim: int) -> bool:
    """Whether the optimizer counts evaluations in its state (line searches, Hessians,
    Jacobians). Those lanes carry the counts at steps_to_tol (`evals_tol`); the others use
    the closed form (one f and one grad f per step) and need no carry for it."""
    dt = jnp.dtype(spec.dtype)
    hp = {n: jax.ShapeDtypeStruct((), dt) for n in (*spec.lane_names, *spec.fixed_names)}
    state = jax.eval_shape(
        lambda x, h: _optimizer(spec, h).init(x), jax.ShapeDtypeStruct((dim,), dt), hp
    )
    return _ls.keeps_evaluations(state)


def _state_evals(spec: Spec, opt_state, dim: int, lanes: int) -> dict:
    """The evaluations the optimizers made themselves, per lane ([L] int32 each)."""
    axes = state_axes(spec, dim)
    counts = jax.vmap(_ls.evaluations, in_axes=(axes,))(opt_state)
    return {k: jnp.broadcast_to(counts[k], (lanes,)).astype(jnp.int32) for k in EVALS}


def _evals(spec: Spec, dim: int, n, state_counts: dict | None) -> dict:
    """Evaluations made to reach x_n (n steps, [L] int32): the step's own evaluations of f and
    grad f (one each per step; only f(x0) and grad f(x0) where the line search's are reused,
    see `reuse`) plus what the optimizer counted itself. With reuse the count includes f and
    grad f at x_n (the search's last trial); without, it is x_0 .. x_{n-1} (step n evaluates
    x_n): one fewer than the evaluations that show x_n within tol."""
    mode = reuse(spec, dim)
    one = jnp.ones_like(n)
    own = {
        "f": n if mode is None else one,
        "grad": one if mode == "value_and_grad" else n,
        "hess": jnp.zeros_like(n),
        "jac": jnp.zeros_like(n),
    }
    if state_counts is None:
        return own
    return {k: own[k] + state_counts[k] for k in EVALS}


def _snapshot_evals(spec: Spec, c: dict, opt_state, t) -> dict:
    """`evals_tol` updated for lanes whose current run within tol starts at step t."""
    x = c["x"]
    now = _state_evals(spec, opt_state, x.shape[1], x.shape[0])
    fresh = c["stt"] == t
    return {k: jnp.where(fresh, now[k], c["evals_tol"][k]) for k in EVALS}


def _start(spec: Spec, x0, lane_hp, fixed_hp, keys, thr) -> dict:
    """The carry before step 0 (also where `make_replay` replays diverged lanes from)."""

    def lane(x, hp_l):
        state = _optimizer(spec, {**hp_l, **fixed_hp}).init(x)
        mode = reuse(spec, x.shape[-1])
        fn = spec.objective.fn
        if mode == "value_and_grad":  # f, grad f at x0 where step 0 reads them
            state = _ls.with_cached_value_and_grad(state, *jax.value_and_grad(fn)(x))
        elif mode == "value":  # step 0 evaluates grad f(x0) itself
            state = _ls.with_cached_value_and_grad(state, fn(x), None)
        return state

    opt_state = jax.vmap(lane, out_axes=state_axes(spec, x0.shape[1]))(x0, lane_hp)
    L = x0.shape[0]
    return {
        "x": x0,
        "opt_state": opt_state,
        "key": keys,  # advanced by every step (gradient noise)
        "x0": x0,
        "key0": keys,  # fixed: mini-batches are drawn from it and step t
        "thr": thr,
        "best": jnp.full((L,), jnp.inf, x0.dtype),
        "stt": jnp.full((L,), NEVER, jnp.int32),
        "div": jnp.full((L,), NEVER, jnp.int32),
        **(
            {"evals_tol": {k: jnp.zeros((L,), jnp.int32) for k in EVALS}}
            if counts_evals(spec, x0.shape[1])
            else {}
        ),
    }


def make_init(spec: Spec):
    """(x0 [L,d], lane_hp, fixed_hp, keys [L,2] | None, thr_scale) -> carry."""

    def init(x0, lane_hp, fixed_hp, keys, thr_scale):
        f0 = jax.vmap(spec.objective.fn)(x0)
        thr = thr_scale * jnp.maximum(1.0, jnp.abs(f0))
        thr = jnp.where(jnp.isfinite(thr), thr, jnp.inf).astype(x0.dtype)
        return _start(spec, x0, lane_hp, fixed_hp, keys, thr)

    return init


def _step(spec: Spec, carry, t, lane_hp, fixed_hp, consts):
    """One step of every lane, bookkeeping included.

    Returns (carry, loss of x_t or NaN once diverged, whether x_t is within tol)."""

    def lane(x, s, k, bk, hp_l):
        return _lane_update(spec, x, s, k, {**hp_l, **fixed_hp}, consts["noise"], bk, t)

    axes = state_axes(spec, carry["x"].shape[1])
    v, metric, x_new, opt_state, key = jax.vmap(
        lane, in_axes=(0, axes, 0, 0, 0), out_axes=(0, 0, 0, axes, 0)
    )(carry["x"], carry["opt_state"], carry["key"], carry["key0"], lane_hp)
    c, recorded, hit = _bookkeeping(spec, carry, v, metric, t, consts)
    if "evals_tol" in carry:
        c["evals_tol"] = _snapshot_evals(spec, c, carry["opt_state"], t)
    c["x"], c["opt_state"], c["key"] = x_new, opt_state, key
    return c, recorded, hit


def _bookkeeping(spec: Spec, carry, v, metric, t, consts):
    """Divergence, best loss and steps to tol, given the loss v of x_t and its tol metric.

    steps_to_tol ("stt") is the step from which the lane has been within tol ever since; any
    step outside tol resets it (NEVER): a lane that dips under tol and climbs back out has
    not reached it. After the last step it is the step from which the lane stayed within tol.

    Returns (carry, loss of x_t or NaN once diverged, whether x_t is within tol)."""
    c = dict(carry)
    ok = jnp.abs(v) <= carry["thr"]  # False for NaN / inf
    div = jnp.minimum(carry["div"], jnp.where(ok, NEVER, t))
    alive = div == NEVER
    c["div"] = div
    c["best"] = jnp.minimum(carry["best"], jnp.where(alive, v, jnp.inf))
    if spec.tol_metric == "gap":
        hit = metric - consts["f_min"] <= consts["tol"]
    elif spec.tol_metric == "grad_norm":
        hit = metric <= consts["tol"] * consts["tol"]
    else:
        hit = jnp.zeros_like(alive)
    if spec.tol_metric is not None:  # the first step of the current run of steps within tol
        c["stt"] = jnp.where(hit, jnp.minimum(carry["stt"], t), NEVER)
    return c, jnp.where(alive, v, jnp.nan), hit


def _recorded_loss(spec: Spec, carry):
    """The loss of x_t as step t records it (NaN once the lane has diverged), without a step.

    The same operations on the same values as in `_step`, so the same bits; evaluating f once
    more per block is cheaper than a per-step history write, and keeps a single copy of the
    step in the compiled chunk (half the compile time of a separately recorded first step).
    """
    x = carry["x"]
    if reuse(spec, x.shape[1]) is None:
        v = jax.vmap(spec.objective.fn)(x)
    else:  # the value the step reads
        axes = state_axes(spec, x.shape[1])
        v = jax.vmap(lambda s: _ls.cached_value_and_grad(s)[0], in_axes=(axes,))(carry["opt_state"])
    alive = (carry["div"] == NEVER) & (jnp.abs(v) <= carry["thr"])
    return jnp.where(alive, v, jnp.nan)


def make_chunk(spec: Spec, blocks: int, record_every: int, paths: bool = False):
    """(carry, lane_hp, fixed_hp, consts, t0) -> (carry, history [blocks, L], outputs).

    Runs blocks * record_every steps starting at step t0; records the loss at the first step
    of every block (steps t0, t0 + r, ...), read off before the block's scan of r steps.
    `outputs` are the per-lane results as if the sweep ended with this chunk (`_outputs`):
    the last chunk's are the sweep's. Every chunk computes them (one evaluation of f and its
    gradient per lane, against the chunk's hundreds of steps) so that no separate end-of-sweep
    program has to be compiled.

    `paths`: the history is (history, x_t [steps, L, d], loss [steps, L]): every step's x_t
    and the loss the step records for it (NaN once the lane has diverged), i.e. the lanes'
    whole trajectories, recorded by the sweep itself instead of a `make_trajectory` program
    of their own (for small sweeps; the steps' arithmetic is the same either way).
    """
    r = record_every

    def chunk(carry, lane_hp, fixed_hp, consts, t0):
        def step(c, t):
            c2, recorded, _hit = _step(spec, c, t, lane_hp, fixed_hp, consts)
            return c2, (c["x"], recorded) if paths else None

        def block(c, k):
            t = t0 + k * r
            v = _recorded_loss(spec, c)
            c, path = jax.lax.scan(
                step, c, t + jnp.arange(r, dtype=jnp.int32), unroll=min(spec.unroll, r)
            )
            return c, (v, path)

        carry, (hist, path) = jax.lax.scan(block, carry, jnp.arange(blocks, dtype=jnp.int32))
        if paths:  # [blocks, r, L, ...] -> [steps, L, ...]: lanes on axis 1, as in hist
            hist = (hist, *(a.reshape(blocks * r, *a.shape[2:]) for a in path))
        return carry, hist, _outputs(spec, carry, consts, t0 + blocks * r)

    return chunk


def _outputs(spec: Spec, carry, consts, t_end):
    """The per-lane results after step t_end - 1: the bookkeeping of x_T without a step.

    A lane that diverged at a step d >= 1 gets x_T as a placeholder for its last good point
    x_{d-1}: `make_replay` finds that one, in a program of its own that is compiled only for
    sweeps in which a lane diverged."""
    v, metric = jax.vmap(functools.partial(_measure, spec))(carry["x"])
    c, v, hit = _bookkeeping(spec, carry, v, metric, t_end, consts)
    L, dim = carry["x"].shape
    n = jnp.full((L,), t_end, jnp.int32)
    state, at_tol = None, None
    if "evals_tol" in carry:
        state = _state_evals(spec, carry["opt_state"], dim, L)
        at_tol = _snapshot_evals(spec, c, carry["opt_state"], t_end)
    reached = c["stt"] != NEVER
    total = _evals(spec, dim, n, state)
    to_tol = _evals(spec, dim, jnp.where(reached, c["stt"], 0), at_tol)
    return {
        **{f"evals_{k}": total[k] for k in EVALS},
        **{f"evals_tol_{k}": jnp.where(reached, to_tol[k], -1) for k in EVALS},
        **_at(spec, _unless_replayed(c["div"], c["x0"], carry["x"])),
        "best_loss": c["best"],
        "steps_to_tol": c["stt"],
        "diverged_step": c["div"],
        "final_hit": hit,
        "last_record": v,
    }


def _measure(spec: Spec, x):
    """The loss of one lane's x and its tol metric, as `_lane_update` measures them."""
    fn = spec.objective.fn
    if spec.tol_metric == "grad_norm":
        v, g = jax.value_and_grad(fn)(x)
        return v, jnp.sum(g * g)
    v = fn(x)
    return v, v


def _at(spec: Spec, x):
    """The per-lane outputs at the final points x [L, d]."""
    f, g = jax.vmap(jax.value_and_grad(spec.objective.fn))(x)
    return {"final_x": x, "final_loss": f, "final_grad_norm": jnp.sqrt(jnp.sum(g * g, axis=1))}


def _replayed(div):
    """Which lanes diverged after their start (their last good point needs `make_replay`)."""
    return (div != NEVER) & (div > 0)


def _unless_replayed(div, x0, x_end):
    """The last good point of lanes that need no replay: x_T (never diverged) or x_0 (bad from
    the start); the replayed ones keep x_T as a placeholder."""
    return jnp.where((div == 0)[:, None], x0, x_end)


def needs_replay(diverged_step: np.ndarray) -> bool:
    """Whether some lane needs `make_replay`."""
    return bool(np.any(_replayed(diverged_step)))


def make_replay(spec: Spec):
    """(carry, lane_hp, fixed_hp, consts, T) -> final_x, final_loss, final_grad_norm, with
    the final divergence steps in carry["div"] and x_T in carry["x"].

    Lanes that diverged at a step d >= 1 are replayed from their start with the same step
    up to x_{d-1}: as many steps as the latest such divergence among them. The others keep
    x_T (never diverged) or x_0 (diverged at their start)."""

    def replay(carry, lane_hp, fixed_hp, consts, t_end):
        div = carry["div"]
        x_good = _unless_replayed(div, carry["x0"], carry["x"])
        target = jnp.where(_replayed(div), div - 1, -1)  # replay up to x_target
        start = _start(spec, carry["x0"], lane_hp, fixed_hp, carry["key0"], carry["thr"])

        def body(s):
            r, t, xg = s
            xg = jnp.where((t == target)[:, None], r["x"], xg)
            return _step(spec, r, t, lane_hp, fixed_hp, consts)[0], t + 1, xg

        n = jnp.max(target, initial=-1) + 1
        x_good = jax.lax.while_loop(lambda s: s[1] < n, body, (start, jnp.int32(0), x_good))[2]
        return _at(spec, x_good)

    return replay


def make_trajectory(spec: Spec, steps: int):
    """(x0 [K,d], lane_hp, fixed_hp, keys, thr_scale, consts) -> x path [T+1, K, d], loss
    path [T+1, K].

    Full recording for a few lanes (for plots): `make_init`'s start and the same step as the
    sweep, held at the last finite point once a lane diverges; one program (init included).
    """
    init = make_init(spec)

    def run(x0, lane_hp, fixed_hp, keys, thr_scale, consts):
        carry = init(x0, lane_hp, fixed_hp, keys, thr_scale)

        def body(s, t):
            c, x_good = s
            c2, v, _ = _step(spec, c, t, lane_hp, fixed_hp, consts)
            x_good = jnp.where((c2["div"] == NEVER)[:, None], c["x"], x_good)
            return (c2, x_good), (x_good, v)

        ts = jnp.arange(steps + 1, dtype=jnp.int32)
        _s, (xs, vs) = jax.lax.scan(body, (carry, carry["x"]), ts)
        return xs, vs

    return run
