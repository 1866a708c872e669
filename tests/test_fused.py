"""The fused trajectory kernel (gdkit.engine.fused) against the XLA path, on the CPU or a GPU.

On the CPU the kernel runs through Pallas' interpreter (`interpret=True`); on a GPU the tests
run the compiled Triton kernel itself (`INTERPRET`). The bound below was set on the CPU: on one
H200 (2026-12-04) 2 default and 7 slow cases exceeded it by up to 1.78x; the elementwise
functions agree bit for bit there, so Triton and XLA:GPU must order or contract a step's
operations differently (not pinned down; README, GPU). Either starts from the same initial carry
(`programs.make_init`) as `programs.make_chunk`, for two consecutive chunks (the second starts
at t0 > 0, so step counts and schedules continue). Both paths must give identical statuses
(final tol hits, whether a lane reached tol and whether it diverged), identical steps to tol
and divergence steps except in the lanes where the XLA path's own steps move under a one-ulp
change of its inputs (1 lane of the 3,840 in the slow matrix), the same NaN pattern, and
losses, best losses and coordinates equal within float32 rounding: the two programs round
differently only where XLA contracts a * b + c into one FMA or sums in another order, a few
ulps per step, which a lane may amplify over the chunk. As in the correctness matrix
(tests/matrix_optimizers.py), the bound is a lane's own sensitivity to rounding (the largest
change of a value when the XLA path runs with its learning rate, or its x at the start of any
block, one ulp away, or compiled block by block; x `SENSITIVITY_FACTOR`) plus `RTOL`
relative (final x: the matrix's floor sqrt(u) (1 + |x|)). The learning rates are the
matrix's ranges, beyond them for a few lanes that diverge (their divergence steps and NaN
histories must agree too). Float64 agrees to 1e-12 (a slow test).

Every fused program must also export for CUDA through Triton without a GPU
(`fused.export_for_cuda`), and `fused.unsupported` must name why a sweep cannot run fused.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fused_cases import (
    FIRST_ORDER,
    LEARNING_RATES,
    OBJECTIVES,
    OPTIONS,
    OPTIONS_OPTIMIZERS,
    example_args,
    make_spec,
)

from gdkit import objectives
from gdkit.engine import fused, programs

INTERPRET = jax.default_backend() != "gpu"  # on a GPU: the real kernel, not the interpreter
LANES, BLOCKS, RECORD_EVERY = 64, 3, 10  # 30 steps per chunk, two chunks
RTOL = 1e-4  # relative, per value, plus SENSITIVITY_FACTOR x the lane's own sensitivity
SENSITIVITY_FACTOR = 16.0  # as the correctness matrix (tests/matrix_optimizers.py)
X_FLOOR = float(np.sqrt(np.finfo(np.float32).eps / 2))  # the matrix's floor for final x


def _inputs(obj, name, lane_hp_extra=None, fixed=None, lanes=LANES):
    """x0, lane_hp, fixed_hp and consts of `lanes` lanes."""
    rng = np.random.default_rng(15)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    x0 = jnp.asarray(mid + 0.5 * half * rng.uniform(-1, 1, (lanes, obj.dim)), jnp.float32)
    a, b = LEARNING_RATES[name]
    lane_hp = {"learning_rate": jnp.asarray(np.geomspace(a, b, lanes), jnp.float32)}
    for k, v in (lane_hp_extra or {}).items():
        lane_hp[k] = jnp.asarray(v, jnp.float32)
    fixed_hp = {k: jnp.float32(v) for k, v in (fixed or {}).items()}
    consts = {
        "tol": jnp.float32(1e-3),  # replaced in _run_both
        "f_min": jnp.float32(0.0 if obj.f_min is None else obj.f_min),
        "noise": jnp.float32(0.0),
    }
    return x0, lane_hp, fixed_hp, consts


def _run_both(spec, x0, lane_hp, fixed_hp, consts, block=None):
    """Two chunks of each path from the same carry, [(carry, hist, outputs)] per path, and
    the XLA path's own sensitivity to rounding: per value of every chunk, the largest change
    when the same steps run as another compiled program (block by block), when the learning
    rate moves by one ulp either way, or x does at the start of any block (the correctness
    matrix moves x0 and the learning rate; moving x later too catches lanes that reach a
    minimum and then bounce on rounding noise, as RMSProp does there).

    tol is set between two far-apart final values of the tol metric near the lanes' median
    (measured by a first XLA run; the losses do not depend on tol), so that about half the
    lanes end within tol and steps_to_tol is tested, not only NEVER."""
    init = jax.jit(programs.make_init(spec))
    xla = jax.jit(programs.make_chunk(spec, BLOCKS, RECORD_EVERY))
    fu = jax.jit(fused.make_chunk(spec, BLOCKS, RECORD_EVERY, interpret=INTERPRET, block=block))

    def two_chunks(run, consts):
        c, out = init(x0, lane_hp, fixed_hp, None, jnp.float32(1e12)), []
        for t0 in (0, BLOCKS * RECORD_EVERY):
            c, hist, outputs = run(c, lane_hp, fixed_hp, consts, jnp.int32(t0))
            out.append((c, hist, outputs))
        return jax.tree.map(np.asarray, out)

    one_block = jax.jit(programs.make_chunk(spec, 1, RECORD_EVERY))

    def by_block(consts, lane_hp=lane_hp, nudge=None):
        """Both chunks block by block, x moved one ulp (`nudge` = (block, direction)) at the
        start of a block: [(hist, outputs)] per chunk, as `two_chunks` gives them."""
        c, hist, out = init(x0, lane_hp, fixed_hp, None, jnp.float32(1e12)), [], []
        for j in range(2 * BLOCKS):
            if nudge is not None and nudge[0] == j:
                c = {**c, "x": jnp.asarray(np.nextafter(np.asarray(c["x"]), nudge[1]))}
            c, h, o = one_block(c, lane_hp, fixed_hp, consts, jnp.int32(j * RECORD_EVERY))
            hist.append(np.asarray(h))
            if (j + 1) % BLOCKS == 0:
                out.append((np.concatenate(hist[-BLOCKS:]), jax.tree.map(np.asarray, o)))
        return out

    last = two_chunks(xla, consts)[-1][2]
    if spec.tol_metric == "gap":
        metric = last["final_loss"] - float(consts["f_min"])
    else:
        metric = last["final_grad_norm"]
    m = np.sort(metric[np.isfinite(metric) & (last["diverged_step"] == programs.NEVER)])
    mid = m[len(m) // 4 : 3 * len(m) // 4 + 1]
    i = int(np.argmax(mid[1:] / np.maximum(mid[:-1], 1e-30)))
    consts = {**consts, "tol": jnp.float32(np.sqrt(max(mid[i], 1e-30) * mid[i + 1]))}
    want, got = two_chunks(xla, consts), two_chunks(fu, consts)
    sens = [jax.tree.map(np.zeros_like, (h, o)) for _c, h, o in want]
    lr = np.asarray(lane_hp["learning_rate"])
    probes = [{}]  # the same steps compiled block by block: another rounding
    for way in (np.inf, -np.inf):
        probes.append({"lane_hp": {**lane_hp, "learning_rate": jnp.asarray(np.nextafter(lr, way))}})
        probes += [{"nudge": (j, way)} for j in range(2 * BLOCKS)]
    for probe in probes:
        for k, (h, o) in enumerate(by_block(consts, **probe)):
            sens[k] = jax.tree.map(_change, sens[k], (h, o), (want[k][1], want[k][2]))
    return want, got, sens


def _change(so_far, moved, base):
    """The largest |moved - base| so far; 0 where both are NaN or the same infinity."""
    moved, base = np.asarray(moved, np.float64), np.asarray(base, np.float64)
    with np.errstate(invalid="ignore"):
        d = np.where(moved == base, 0.0, np.abs(moved - base))
    return np.maximum(so_far, np.where(np.isnan(moved) & np.isnan(base), 0.0, d))


def _close(name, got, want, sens):
    """got within rounding of want: `SENSITIVITY_FACTOR` x sens plus RTOL relative."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, name
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN pattern")
    ok = ~np.isnan(want) & (got != want)  # equal values (the same infinity, say) agree
    err = np.abs(got[ok] - want[ok])
    bound = RTOL * np.maximum(np.abs(want[ok]), 1e-6) + SENSITIVITY_FACTOR * sens[ok]
    assert np.all(err <= bound), (
        f"{name}: {np.sum(~(err <= bound))} values differ by more than float32 rounding; "
        f"worst {np.max(err / bound):.3g} x the bound"
    )


def _compare(spec, *inputs, block=None):
    xla, fu, sens = _run_both(spec, *inputs, block=block)
    for k, ((c1, h1, o1), (c2, h2, o2), (sh, so)) in enumerate(zip(xla, fu, sens, strict=True)):
        chunk = f"chunk {k}"
        # steps to tol and divergence steps: identical, except in lanes where a one-ulp
        # change moves the XLA path's own (one lane of the slow matrix: RMSProp bouncing in
        # and out of tol at a minimum, 35 or 49 in the XLA path itself, 49 fused); whether a
        # lane reaches tol or diverges, i.e. its status, is identical in every lane
        never = programs.NEVER
        for key in ("steps_to_tol", "diverged_step"):
            firm = so[key] == 0
            np.testing.assert_array_equal(o2[key][firm], o1[key][firm], err_msg=f"{chunk} {key}")
            np.testing.assert_array_equal(o2[key] == never, o1[key] == never, err_msg=key)
            assert firm.mean() >= 0.9, f"{chunk}: {key} moved by rounding in most lanes"
        np.testing.assert_array_equal(o2["final_hit"], o1["final_hit"], err_msg="final_hit")
        np.testing.assert_array_equal(c2["thr"], c1["thr"])
        np.testing.assert_array_equal(c2["x0"], c1["x0"])
        shared = programs.carry_axes(spec, spec.objective.dim)["opt_state"]
        for ax, s1, s2 in zip(
            jax.tree.leaves(shared, is_leaf=lambda a: a is None),
            jax.tree.leaves(c1["opt_state"]),
            jax.tree.leaves(c2["opt_state"]),
            strict=True,
        ):
            if ax is None:  # shared by all lanes: step counts, exactly
                np.testing.assert_array_equal(s2, s1, err_msg=f"{chunk}: shared state")
        # numbers of lanes whose divergence step is not itself moved by rounding; final
        # loss and x of lanes that never diverged (the others' are placeholders until the
        # runner's replay finds their last finite point)
        firm = so["diverged_step"] == 0
        _close(f"{chunk}: history", h2[:, firm], h1[:, firm], sh[:, firm])
        for key in ("best_loss", "last_record"):
            _close(f"{chunk}: {key}", o2[key][firm], o1[key][firm], so[key][firm])
        alive = o1["diverged_step"] == programs.NEVER
        _close(
            f"{chunk}: final_loss",
            o2["final_loss"][alive],
            o1["final_loss"][alive],
            so["final_loss"][alive],
        )
        # x per lane as the matrix compares it: the largest coordinate error against the
        # largest coordinate sensitivity, with its floor sqrt(u) (1 + |x|) (where the loss is
        # flat, at a minimum, float32 fixes x only to about sqrt(u))
        x1 = o1["final_x"][alive].astype(np.float64)
        err = np.max(np.abs(o2["final_x"][alive] - x1), axis=1)
        bound = X_FLOOR * (1 + np.max(np.abs(x1), axis=1))
        bound += SENSITIVITY_FACTOR * np.max(so["final_x"][alive], axis=1)
        assert np.all(err <= bound), f"{chunk}: final_x off by {np.max(err / bound):.3g} x bound"
    outputs = xla[-1][2]
    within = outputs["steps_to_tol"] != programs.NEVER
    assert 0 < within.sum() < len(within)  # tol splits the lanes: steps_to_tol is compared


FAST = [  # (optimizer, objective, options, lanes, lanes per kernel program)
    ("adam", "rosenbrock", "plain", LANES, None),
    ("gd", "peaks", "plain", 50, 16),  # 4 programs, the last padded with 14 copies of a lane
    ("momentum", "quadratic(dim=4)", "cosine+clip_norm", LANES, None),
    ("rmsprop", "expression", "warmup+clip+decay", LANES, None),
]


@pytest.mark.parametrize(("name", "label", "options", "lanes", "block"), FAST)
def test_fused_matches_xla_path(name, label, options, lanes, block):
    obj = OBJECTIVES[label]()
    static, fixed = OPTIONS[options]
    spec = make_spec(obj, name, static, fixed=tuple(fixed))
    _compare(spec, *_inputs(obj, name, fixed=fixed, lanes=lanes), block=block)


def test_fused_with_swept_and_fixed_hyperparameters():
    # b1 swept per lane next to the learning rate, b2 fixed (a traced scalar), amsgrad's state
    obj = objectives.get("rosenbrock")
    spec = make_spec(obj, "amsgrad", fixed=("b2",), lane_names=("learning_rate", "b1"))
    b1 = np.linspace(0.5, 0.95, LANES)
    _compare(spec, *_inputs(obj, "amsgrad", lane_hp_extra={"b1": b1}, fixed={"b2": 0.99}))


def _first_order_matrix():
    """Every first-order optimizer x every objective; CI's slow pass runs a diagonal of it (each
    optimizer once, the objectives in turn: every optimizer and every objective is checked),
    the rest of the cross product is very_slow (pytest -m very_slow)."""
    labels = list(OBJECTIVES)
    return [
        pytest.param(
            name,
            label,
            id=f"{name}-{label}",
            marks=() if label == labels[i % len(labels)] else pytest.mark.very_slow,
        )
        for i, name in enumerate(FIRST_ORDER)
        for label in labels
    ]


@pytest.mark.slow  # ~6 s a case on 2 busy cores
@pytest.mark.parametrize(("name", "label"), _first_order_matrix())
def test_fused_matrix_first_order(name, label):
    obj = OBJECTIVES[label]()
    spec = make_spec(obj, name)
    _compare(spec, *_inputs(obj, name))


@pytest.mark.slow
@pytest.mark.parametrize("options", [o for o in OPTIONS if o != "plain"])
@pytest.mark.parametrize("name", OPTIONS_OPTIMIZERS)
def test_fused_matrix_options(name, options):
    obj = objectives.get("rosenbrock")
    static, fixed = OPTIONS[options]
    spec = make_spec(obj, name, static, fixed=tuple(fixed))
    _compare(spec, *_inputs(obj, name, fixed=fixed))


def test_unsupported_names_the_reason():
    rosen = objectives.get("rosenbrock")
    assert fused.unsupported(make_spec(rosen, "adam")) is None
    assert "line search" in fused.unsupported(make_spec(rosen, "bfgs"))
    assert "line search" in fused.unsupported(make_spec(rosen, "gd_linesearch"))
    big = objectives.get("quadratic", dim=40)
    assert fused.unsupported(make_spec(big, "adam")) == (
        f"objective {big.name} has 40 coordinates (fused kernel: <= {fused.MAX_DIM})"
    )
    data = objectives.get("logistic_regression")
    assert "scalar operations per lane" in fused.unsupported(make_spec(data, "gd"))
    minibatch = programs.Spec(**{**make_spec(data, "gd").__dict__, "batch_size": 8})
    assert fused.unsupported(minibatch).startswith("data objectives with minibatches")
    noisy = programs.Spec(**{**make_spec(rosen, "gd").__dict__, "noise": True})
    assert "random numbers" in fused.unsupported(noisy)
    with pytest.raises(ValueError, match="fused kernel: optimizer bfgs uses a line search"):
        fused.make_chunk(make_spec(rosen, "bfgs"), 1, 1, interpret=True)


@pytest.mark.parametrize(
    ("name", "label"), [("adam", "rosenbrock"), ("gd", "peaks"), ("rmsprop", "expression")]
)
def test_fused_program_exports_for_cuda(name, label):
    spec = make_spec(OBJECTIVES[label](), name)
    chunk = fused.make_chunk(spec, 4, 25, interpret=False)
    exported = fused.export_for_cuda(chunk, example_args(spec))
    text = exported.mlir_module()
    assert exported.platforms == ("cuda",)
    assert text.count(f"custom_call @{fused.TRITON_CALL}") == 1  # the whole chunk: one kernel


A3 = np.array([[2.0, 0.5, -1.0], [0.5, 3.0, 0.25], [-1.0, 0.25, 1.5]], np.float32)
SCALARIZED = {
    "quadratic form (dot_general)": lambda x: x @ jnp.asarray(A3) @ x,
    "batched dot": lambda x: jnp.einsum("bi,bj->b", jnp.outer(x, x), jnp.outer(x, x)).sum(),
    "reverse, concatenate, split": lambda x: jnp.sum(
        jnp.concatenate(jnp.split(x[::-1], [1])) * jnp.arange(3.0)
    ),
    "norm, max, transpose": lambda x: jnp.linalg.norm(x) + jnp.max(jnp.outer(x, x).T[0]),
    "indexing, where, pad": lambda x: jnp.where(x[1] > 0, jnp.sum(jnp.pad(x, 2) ** 2), x[2]),
}


@pytest.mark.parametrize("what", list(SCALARIZED))
def test_scalarize_evaluates_like_jax(what):
    # element by element on constants, the one-lane jaxpr gives what JAX gives (value and grad)
    from gdkit.engine import scalarize

    fn = jax.value_and_grad(SCALARIZED[what])
    x = np.array([0.7, -1.3, 2.1], np.float32)
    closed = jax.make_jaxpr(fn)(x)
    v, g = scalarize.evaluate(closed, [scalarize.elements(x)])
    want_v, want_g = fn(jnp.asarray(x))
    np.testing.assert_allclose(float(v[()]), float(want_v), rtol=1e-6)
    np.testing.assert_allclose(np.array(list(g), np.float32), np.asarray(want_g), rtol=1e-6)


def test_scalarize_refuses_what_has_no_elementwise_form():
    from gdkit.engine import scalarize

    closed = jax.make_jaxpr(lambda x: jnp.cumsum(x)[-1] + jnp.sort(x)[0])(jnp.ones(3))
    with pytest.raises(scalarize.Unsupported, match=r"cumsum|sort"):
        scalarize.check(closed)


@pytest.mark.slow
def test_fused_in_float64():
    import dataclasses

    with jax.enable_x64(True):
        obj = objectives.get("rosenbrock")
        sp = dataclasses.replace(make_spec(obj, "adam"), dtype="float64")
        x0 = jnp.asarray(np.random.default_rng(0).uniform(-2, 2, (32, 2)))
        hp = {"learning_rate": jnp.geomspace(1e-3, 1e-1, 32)}
        carry = programs.make_init(sp)(x0, hp, {}, None, jnp.float64(1e12))
        consts = {"tol": jnp.float64(1e-2), "f_min": jnp.float64(0), "noise": jnp.float64(0)}
        args = (carry, hp, {}, consts, jnp.int32(0))
        want = jax.jit(programs.make_chunk(sp, 2, 10))(*args)
        got = jax.jit(fused.make_chunk(sp, 2, 10, interpret=INTERPRET))(*args)
        for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
            assert w.dtype == g.dtype
        np.testing.assert_allclose(np.asarray(got[1]), np.asarray(want[1]), rtol=1e-12)
        np.testing.assert_array_equal(got[2]["steps_to_tol"], want[2]["steps_to_tol"])
