"""The fused trajectory kernel (gdkit.engine.fused) against the XLA path, on the CPU.

The kernel runs through Pallas' interpreter (`interpret=True`), from the same initial carry
(`programs.make_init`) as `programs.make_chunk`, for two consecutive chunks (the second starts
at t0 > 0, so step counts and schedules continue). Both paths must give identical divergence
steps, steps to tol and final tol hits (hence identical statuses), the same NaN pattern, and
losses, best losses and coordinates equal within float32 rounding: the two programs round
differently only where XLA contracts a * b + c into one FMA or sums in another order, a few
ulps per step, which the loss gap of a lane may amplify over the chunk. `RTOL` bounds that
for these 2 x 30 steps, where the learning rates keep the lanes away from chaos (the range
of the correctness matrix, tests/matrix_optimizers.py, capped where a lane would turn
chaotic); the diverging lanes are compared too (their divergence step and NaN history).

Every fused program must also export for CUDA through Triton without a GPU
(`fused.export_for_cuda`), and `fused.unsupported` must name why a sweep cannot run fused.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdkit import objectives, optimizers
from gdkit.engine import fused, programs
from gdkit.engine import resolve as _resolve

LANES, BLOCKS, RECORD_EVERY = 64, 3, 10  # 30 steps per chunk, two chunks
RTOL = 2e-4  # relative, per value; see the module docstring
# (lowest, highest) learning rate of the lanes, per optimizer: the matrix's range, where 30-60
# steps stay out of chaos, and beyond it for a few lanes that diverge (they must agree too).
LEARNING_RATES = {
    "gd": (1e-4, 5e-3),
    "momentum": (1e-4, 5e-3),
    "nesterov": (1e-4, 5e-3),
    "adagrad": (1e-3, 1.0),
    "rmsprop": (1e-4, 1e-1),
    "adadelta": (1e-2, 10.0),
    **dict.fromkeys(["adam", "adamw", "nadam", "amsgrad", "adamax", "lion"], (1e-4, 1e-1)),
}
FIRST_ORDER = [n for n in optimizers.names() if optimizers.info(n).kind == "first_order"]
OBJECTIVES = {
    "rosenbrock": lambda: objectives.get("rosenbrock"),
    "peaks": lambda: objectives.get("peaks"),
    "quadratic(dim=4)": lambda: objectives.get("quadratic", dim=4, condition_number=20.0, seed=1),
    # a user expression without a known minimum: tol is on the gradient norm
    "expression": lambda: objectives.from_expression(
        "(x - 1)**2 + 2*sin(y)**2 + 0.3*x*y + 0.1*exp(0.5*x)",
        bounds=[(-2.0, 2.0), (-2.0, 2.0)],
    ),
}
# Options every optimizer accepts (static: baked into the program; fixed: traced scalars).
OPTIONS = {
    "plain": ({}, {}),
    "cosine+clip_norm": ({"schedule": "cosine_decay", "decay_steps": 40}, {"clip_norm": 1.0}),
    "warmup+clip+decay": (
        {"schedule": "warmup_cosine", "decay_steps": 50, "warmup_steps": 10},
        {"clip": 0.5, "weight_decay": 0.01},
    ),
    "exponential": ({"schedule": "exponential_decay", "decay_steps": 20}, {"decay_rate": 0.5}),
}


def _spec(obj, name, static=None, fixed=(), lane_names=("learning_rate",), tol_metric=None):
    make, _display, key = _resolve.optimizer(name)
    metric = tol_metric or ("gap" if obj.f_min is not None else "grad_norm")
    return programs.Spec(
        obj,
        make,
        key,
        tuple(lane_names),
        tuple(fixed),
        tuple(sorted((static or {}).items())),
        "float32",
        metric,
        False,
        1,
    )


def _inputs(obj, name, lane_hp_extra=None, fixed=None):
    """Initial carry and the chunk's other arguments, for LANES lanes."""
    rng = np.random.default_rng(15)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    x0 = jnp.asarray(mid + 0.5 * half * rng.uniform(-1, 1, (LANES, obj.dim)), jnp.float32)
    a, b = LEARNING_RATES[name]
    lane_hp = {"learning_rate": jnp.asarray(np.geomspace(a, b, LANES), jnp.float32)}
    for k, v in (lane_hp_extra or {}).items():
        lane_hp[k] = jnp.asarray(v, jnp.float32)
    fixed_hp = {k: jnp.float32(v) for k, v in (fixed or {}).items()}
    consts = {
        "tol": jnp.float32(1e-3),  # replaced in _run_both
        "f_min": jnp.float32(0.0 if obj.f_min is None else obj.f_min),
        "noise": jnp.float32(0.0),
    }
    return x0, lane_hp, fixed_hp, consts


def _run_both(spec, x0, lane_hp, fixed_hp, consts):
    """Two chunks of each path from the same carry: [(carry, hist, outputs)] per path.

    tol is set between two far-apart final values of the tol metric near the lanes' median
    (measured by a first XLA run; the losses do not depend on tol), so that about half the
    lanes end within tol and steps_to_tol is tested, not only NEVER."""
    carry = jax.jit(programs.make_init(spec))(x0, lane_hp, fixed_hp, None, jnp.float32(1e12))
    runs = [
        jax.jit(programs.make_chunk(spec, BLOCKS, RECORD_EVERY)),
        jax.jit(fused.make_chunk(spec, BLOCKS, RECORD_EVERY, interpret=True)),
    ]

    def two_chunks(run, consts):
        c, out = carry, []
        for t0 in (0, BLOCKS * RECORD_EVERY):
            c, hist, outputs = run(c, lane_hp, fixed_hp, consts, jnp.int32(t0))
            out.append((c, hist, outputs))
        return jax.tree.map(np.asarray, out)

    last = two_chunks(runs[0], consts)[-1][2]
    if spec.tol_metric == "gap":
        metric = last["final_loss"] - float(consts["f_min"])
    else:
        metric = last["final_grad_norm"]
    m = np.sort(metric[np.isfinite(metric) & (last["diverged_step"] == programs.NEVER)])
    mid = m[len(m) // 4 : 3 * len(m) // 4 + 1]
    i = int(np.argmax(mid[1:] / np.maximum(mid[:-1], 1e-30)))
    consts = {**consts, "tol": jnp.float32(np.sqrt(max(mid[i], 1e-30) * mid[i + 1]))}
    return [two_chunks(run, consts) for run in runs]


def _close(name, got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, name
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN pattern")
    ok = ~np.isnan(want)
    err = np.abs(got[ok] - want[ok])
    bound = RTOL * np.maximum(np.abs(want[ok]), 1e-6)
    assert np.all(err <= bound), (
        f"{name}: {np.sum(err > bound)} values differ by more than {RTOL:g} relative; worst "
        f"{np.max(err / bound) * RTOL:.3g}"
    )


def _compare(spec, *inputs):
    xla, fu = _run_both(spec, *inputs)
    for k, ((c1, h1, o1), (c2, h2, o2)) in enumerate(zip(xla, fu, strict=True)):
        chunk = f"chunk {k}"
        for key in ("diverged_step", "steps_to_tol", "final_hit"):
            np.testing.assert_array_equal(o2[key], o1[key], err_msg=f"{chunk}: {key}")
        for key in ("div", "stt", "thr", "x0"):
            np.testing.assert_array_equal(c2[key], c1[key], err_msg=f"{chunk}: carry {key}")
        shared = programs.carry_axes(spec, spec.objective.dim)["opt_state"]
        for ax, s1, s2 in zip(
            jax.tree.leaves(shared, is_leaf=lambda a: a is None),
            jax.tree.leaves(c1["opt_state"]),
            jax.tree.leaves(c2["opt_state"]),
            strict=True,
        ):
            if ax is None:  # shared by all lanes: step counts, exactly
                np.testing.assert_array_equal(s2, s1, err_msg=f"{chunk}: shared state")
        _close(f"{chunk}: history", h2, h1)
        for key in ("best_loss", "final_loss", "last_record"):
            _close(f"{chunk}: {key}", o2[key], o1[key])
        alive = o1["diverged_step"] == programs.NEVER
        _close(f"{chunk}: final_x", o2["final_x"][alive], o1["final_x"][alive])
    outputs = xla[-1][2]
    within = outputs["steps_to_tol"] != programs.NEVER
    assert 0 < within.sum() < len(within)  # tol splits the lanes: steps_to_tol is compared
    return int(np.sum(outputs["diverged_step"] != programs.NEVER))


FAST = [
    ("adam", "rosenbrock", "plain"),
    ("gd", "peaks", "plain"),
    ("momentum", "quadratic(dim=4)", "cosine+clip_norm"),
    ("rmsprop", "expression", "warmup+clip+decay"),
]


@pytest.mark.parametrize(("name", "label", "options"), FAST)
def test_fused_matches_xla_path(name, label, options):
    obj = OBJECTIVES[label]()
    static, fixed = OPTIONS[options]
    spec = _spec(obj, name, static, fixed=tuple(fixed))
    _compare(spec, *_inputs(obj, name, fixed=fixed))


def test_fused_with_swept_and_fixed_hyperparameters():
    # b1 swept per lane next to the learning rate, b2 fixed (a traced scalar), amsgrad's state
    obj = objectives.get("rosenbrock")
    spec = _spec(obj, "amsgrad", fixed=("b2",), lane_names=("learning_rate", "b1"))
    b1 = np.linspace(0.5, 0.95, LANES)
    _compare(spec, *_inputs(obj, "amsgrad", lane_hp_extra={"b1": b1}, fixed={"b2": 0.99}))


def test_fused_lanes_not_a_multiple_of_the_block():
    # 64 lanes in blocks of 16 lanes, then 50 lanes (padded to 64): the same lanes' numbers
    obj = objectives.get("peaks")
    spec = _spec(obj, "nesterov")
    x0, hp, fx, cst = _inputs(obj, "nesterov")
    carry = jax.jit(programs.make_init(spec))(x0, hp, fx, None, jnp.float32(1e12))
    whole = jax.jit(fused.make_chunk(spec, 2, 5, interpret=True, block=16))
    _, hist, out = whole(carry, hp, fx, cst, jnp.int32(0))
    part = jax.tree.map(lambda a: a[:50] if a.ndim and a.shape[0] == LANES else a, carry)
    _, hist50, out50 = jax.jit(fused.make_chunk(spec, 2, 5, interpret=True))(
        part, {k: v[:50] for k, v in hp.items()}, fx, cst, jnp.int32(0)
    )
    assert hist50.shape == (2, 50)
    np.testing.assert_array_equal(np.asarray(hist50), np.asarray(hist)[:, :50])
    np.testing.assert_array_equal(np.asarray(out50["final_x"]), np.asarray(out["final_x"])[:50])


@pytest.mark.slow  # ~6 s a case on 2 busy cores
@pytest.mark.parametrize("label", list(OBJECTIVES))
@pytest.mark.parametrize("name", FIRST_ORDER)
def test_fused_matrix_first_order(name, label):
    obj = OBJECTIVES[label]()
    spec = _spec(obj, name)
    _compare(spec, *_inputs(obj, name))


@pytest.mark.slow
@pytest.mark.parametrize("options", [o for o in OPTIONS if o != "plain"])
@pytest.mark.parametrize("name", ["gd", "adam", "adagrad", "lion"])
def test_fused_matrix_options(name, options):
    obj = objectives.get("rosenbrock")
    static, fixed = OPTIONS[options]
    spec = _spec(obj, name, static, fixed=tuple(fixed))
    _compare(spec, *_inputs(obj, name, fixed=fixed))


def test_unsupported_names_the_reason():
    rosen = objectives.get("rosenbrock")
    assert fused.unsupported(_spec(rosen, "adam")) is None
    assert "line search" in fused.unsupported(_spec(rosen, "bfgs"))
    assert "line search" in fused.unsupported(_spec(rosen, "gd_linesearch"))
    big = objectives.get("quadratic", dim=40)
    assert fused.unsupported(_spec(big, "adam")) == (
        f"objective {big.name} has 40 coordinates (fused kernel: <= {fused.MAX_DIM})"
    )
    data = objectives.get("logistic_regression")
    assert "scalar operations per lane" in fused.unsupported(_spec(data, "gd"))
    minibatch = programs.Spec(**{**_spec(data, "gd").__dict__, "batch_size": 8})
    assert fused.unsupported(minibatch).startswith("data objectives with minibatches")
    noisy = programs.Spec(**{**_spec(rosen, "gd").__dict__, "noise": True})
    assert "random numbers" in fused.unsupported(noisy)
    with pytest.raises(ValueError, match="fused kernel: optimizer bfgs uses a line search"):
        fused.make_chunk(_spec(rosen, "bfgs"), 1, 1, interpret=True)


def _example(spec, lanes=256):
    obj = spec.objective
    x0 = jnp.zeros((lanes, obj.dim), jnp.float32)
    hp = {n: jnp.full((lanes,), 0.01, jnp.float32) for n in spec.lane_names}
    fixed = {n: jnp.float32(0.5) for n in spec.fixed_names}
    carry = jax.eval_shape(programs.make_init(spec), x0, hp, fixed, None, jnp.float32(1e12))
    consts = {k: jnp.float32(0.0) for k in fused.CONSTS}
    return carry, hp, fixed, consts, jnp.int32(0)


@pytest.mark.parametrize(
    ("name", "label"), [("adam", "rosenbrock"), ("gd", "peaks"), ("rmsprop", "expression")]
)
def test_fused_program_exports_for_cuda(name, label):
    spec = _spec(OBJECTIVES[label](), name)
    chunk = fused.make_chunk(spec, 4, 25, interpret=False)
    exported = fused.export_for_cuda(chunk, _example(spec))
    text = exported.mlir_module()
    assert exported.platforms == ("cuda",)
    assert text.count(f"custom_call @{fused.TRITON_CALL}") == 1  # the whole chunk: one kernel
