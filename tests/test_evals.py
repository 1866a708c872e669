"""Cost accounting: the evaluations each lane made, and the line searches' f and grad f reused.

Counts are checked against closed forms (first-order methods: one f and one grad f per step;
Levenberg-Marquardt: one Jacobian and one trial f per step), against the evaluations a
counting objective actually saw in a plain loop of the same optimizer, and against scipy's
BFGS and L-BFGS-B on Rosenbrock (issue 17: within 1.3x).
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gdkit
from gdkit import objectives, optimizers
from gdkit.optimizers import linesearch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

ROSENBROCK = objectives.get("rosenbrock")
STARTS = np.array([[-1.2, 1.0], [2.0, -1.0], [0.0, 0.0]])


def test_first_order_counts_one_f_and_one_grad_per_step():
    obj = objectives.get("quadratic", dim=3, condition_number=10.0, seed=0)
    r = gdkit.sweep(
        obj, "gd", grid={"learning_rate": [0.01, 0.1]}, steps=120, tol=1e-6, progress=False
    )
    assert set(r.evals) == {"f", "grad"} and set(r.evals_to_tol) == {"f", "grad"}
    for k in ("f", "grad"):
        np.testing.assert_array_equal(r.evals[k], np.full(r.shape, 120))
        np.testing.assert_array_equal(r.evals_to_tol[k], r.steps_to_tol)  # -1 where not reached
    assert (r.steps_to_tol >= 0).any() and (r.steps_to_tol < 0).any()


def _counting(fn, calls: dict):
    """fn whose every evaluation of f, and of grad f, adds one to calls["f"] / calls["grad"]
    (at run time, inside jit, while loops and scans)."""

    def bump(key):
        def inc():
            calls[key] += 1

        jax.debug.callback(inc)

    @jax.custom_vjp
    def counted(x):
        bump("f")
        return fn(x)

    def fwd(x):
        bump("f")
        v, pullback = jax.vjp(fn, x)
        return v, pullback

    def bwd(pullback, ct):
        bump("grad")
        return pullback(ct)

    counted.defvjp(fwd, bwd)
    return counted


def _plain_loop(name: str, x0, steps: int, reuse: bool, calls: dict | None = None):
    """x after `steps` steps of a plain loop of the optimizer (no engine): f and grad f
    evaluated at every step, or (reuse) read from the line search's state as the engine does.
    With `calls`, every evaluation is counted as scipy counts `fun` and `jac` calls: a
    gradient the loop itself takes is one grad (not also an f)."""
    fn = ROSENBROCK.fn if calls is None else _counting(ROSENBROCK.fn, calls)
    opt = optimizers.get(name)

    def grad_only(x):
        if calls is not None:
            jax.debug.callback(lambda: calls.__setitem__("grad", calls["grad"] + 1))
        return jax.grad(ROSENBROCK.fn)(x)

    def body(carry, _):
        x, state = carry
        if reuse:
            v, g = linesearch.cached_value_and_grad(state)
            g = grad_only(x) if g is None else g
        else:
            v, g = jax.value_and_grad(fn)(x)
        u, state = opt.update(g, state, x, value=v, grad=g, value_fn=fn)
        return (optax.apply_updates(x, u), state), None

    def run(x):
        state = opt.init(x)
        if reuse and linesearch.cached_value_and_grad(state)[1] is None:
            state = linesearch.with_cached_value_and_grad(state, fn(x), None)
        elif reuse:
            state = linesearch.with_cached_value_and_grad(state, *jax.value_and_grad(fn)(x))
        return jax.lax.scan(body, (x, state), None, length=steps)[0][0]

    with jax.enable_x64(True):
        return np.asarray(jax.jit(run)(jnp.asarray(x0, jnp.float64)))


@pytest.mark.parametrize(
    ("name", "steps"), [("bfgs", 25), ("lbfgs", 25), ("gd_linesearch", 40), ("newton", 12)]
)
def test_reused_values_keep_the_trajectory(name, steps):
    # f and grad f from the line search's state: the same path as evaluating them again
    fresh = _plain_loop(name, STARTS[0], steps, reuse=False)
    reused = _plain_loop(name, STARTS[0], steps, reuse=True)
    np.testing.assert_allclose(reused, fresh, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["bfgs", "lbfgs", "gd_linesearch"])
def test_sweep_counts_the_evaluations_a_plain_loop_makes(name):
    steps = 30
    with jax.enable_x64(True):
        r = gdkit.sweep(ROSENBROCK, name, grid={}, x0=STARTS, steps=steps, progress=False)
    for i, x0 in enumerate(STARTS):
        calls = {"f": 0, "grad": 0}
        x = _plain_loop(name, x0, steps, reuse=True, calls=calls)
        np.testing.assert_allclose(r.final_x[i], x, rtol=1e-9, atol=1e-12)
        assert {k: int(r.evals[k][i]) for k in ("f", "grad")} == calls, (x0, calls)
    if name == "gd_linesearch":  # f from the search, grad f at every step
        np.testing.assert_array_equal(r.evals["grad"], steps)
    else:  # both from the search: one of each per trial
        np.testing.assert_array_equal(r.evals["f"], r.evals["grad"])


def test_newton_counts_one_hessian_per_step_and_its_trials():
    steps = 30
    with jax.enable_x64(True):
        r = gdkit.sweep(
            ROSENBROCK, "newton", grid={}, x0=STARTS, steps=steps, tol=1e-12, progress=False
        )
    np.testing.assert_array_equal(r.evals["hess"], steps)
    np.testing.assert_array_equal(r.evals["grad"], steps)
    assert np.all(r.evals["f"] >= steps + 1)  # f(x0), then at least one trial per step
    reached = r.steps_to_tol >= 0
    assert reached.all()
    np.testing.assert_array_equal(r.evals_to_tol["hess"], r.steps_to_tol)


def test_levenberg_marquardt_counts_a_jacobian_and_a_trial_per_step():
    obj = objectives.get("curve_fit")
    steps = 20
    with jax.enable_x64(True):
        r = gdkit.sweep(obj, "levenberg_marquardt", grid={}, steps=steps, progress=False)
    # f and grad f at every step (the engine's), plus one trial f and one Jacobian
    assert {k: int(v.ravel()[0]) for k, v in r.evals.items()} == {
        "f": 2 * steps,
        "grad": steps,
        "jac": steps,
    }


def test_weight_decay_turns_reuse_off_and_counts_every_step():
    # the line search sees the penalized f, so the engine evaluates f and grad f itself
    with jax.enable_x64(True):
        r = gdkit.sweep(
            ROSENBROCK,
            "bfgs",
            grid={"weight_decay": [1e-3]},
            x0=STARTS[:1],
            steps=20,
            progress=False,
        )
        plain = gdkit.sweep(ROSENBROCK, "bfgs", grid={}, x0=STARTS[:1], steps=20, progress=False)
    extra = r.evals["f"].ravel()[0] - plain.evals["f"].ravel()[0]
    assert r.evals["f"].ravel()[0] >= 20 + 20  # a value_and_grad per step + >= 1 trial
    assert extra > 0


def test_evals_survive_save_and_load(tmp_path):
    with jax.enable_x64(True):
        r = gdkit.sweep(ROSENBROCK, "bfgs", grid={}, x0=STARTS, steps=30, tol=1e-8, progress=False)
    r.save(tmp_path / "r.npz")
    back = gdkit.SweepResult.load(tmp_path / "r.npz")
    for a, b in ((r.evals, back.evals), (r.evals_to_tol, back.evals_to_tol)):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    row = back.row(0)
    assert row["evals_f"] == int(r.evals["f"].ravel()[0])
    assert row["evals_grad_to_tol"] == int(r.evals_to_tol["grad"].ravel()[0])


@pytest.mark.parametrize(
    "dim", [2, pytest.param(10, marks=pytest.mark.slow), pytest.param(50, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("name", ["bfgs", "lbfgs", "ncg"])
def test_evaluations_within_1_3x_of_scipy(name, dim):
    import bench_evals

    method, options = bench_evals.PAIRS[name]
    obj = objectives.get("rosenbrock", dim=dim)
    x0 = np.tile([-1.2, 1.0], dim // 2)
    bare = objectives.wrap(obj.fn, dim=dim)  # no known minimum: tol is on |grad f|
    with jax.enable_x64(True):
        r = gdkit.sweep(bare, name, grid={}, x0=x0[None], steps=2000, tol=1e-6, progress=False)
        theirs_f, theirs_grad, *_ = bench_evals.scipy_evals(obj, x0, method, options, 1e-6)
    ours = {k: int(v.ravel()[0]) for k, v in r.evals_to_tol.items()}
    assert ours["f"] > 0 and theirs_f > 0
    assert ours["f"] <= 1.3 * theirs_f and ours["grad"] <= 1.3 * theirs_grad, (ours, theirs_f)


def test_loss_plot_against_evaluations_puts_each_run_at_its_counts():
    from gdkit import plots
    from gdkit.plots._loss import mixed_prices, on_evals

    with jax.enable_x64(True):
        gd = gdkit.sweep(
            ROSENBROCK,
            "gd",
            grid={"learning_rate": [1e-3]},
            x0=STARTS,
            steps=50,
            record_every=1,
            progress=False,
        )
        bfgs = gdkit.sweep(
            ROSENBROCK,
            "bfgs",
            grid={},
            x0=STARTS,
            steps=60,
            tol=1e-8,
            record_every=1,
            progress=False,
        )
    assert not mixed_prices([gd]) and mixed_prices([gd, bfgs])
    # first order: 2 evaluations (one f, one grad f) per step, exactly
    x, h = on_evals(gd, (0,), gd.history.reshape(len(STARTS), -1), points=101)
    np.testing.assert_allclose(x, np.linspace(0, 100, 101))
    np.testing.assert_array_equal(h[:, ::2], gd.history.reshape(len(STARTS), -1))
    # a line search: each run's loss falls within tol exactly at its evaluations to tol
    runs = bfgs.history.reshape(len(STARTS), -1)
    x, h = on_evals(bfgs, (), runs, points=4001)
    for i in range(len(STARTS)):
        stt = int(bfgs.steps_to_tol.ravel()[i])
        cost = int(bfgs.evals_to_tol["f"].ravel()[i] + bfgs.evals_to_tol["grad"].ravel()[i])
        first = x[np.argmax(h[i] == runs[i, stt])]
        assert abs(first - cost) <= x[1], (i, first, cost)
    fig = plots.loss([gd, bfgs], ROSENBROCK, x_axis="evals")
    assert "evaluations" in fig.axes[0].get_xlabel()
    with pytest.raises(ValueError, match="x_axis must be one of steps, evals"):
        plots.loss([gd], ROSENBROCK, x_axis="wall")


def test_counts_resume_from_a_checkpoint_bit_for_bit(tmp_path):
    # the counts at steps_to_tol are carried between chunks of steps: a resumed sweep has them
    from test_checkpoint import InterruptAfter, Interrupted

    kw = dict(
        grid={"learning_rate": [0.5, 1.0]},
        x0=STARTS,
        steps=60,
        chunk_steps=10,
        tol=1e-8,
        max_lanes_per_chunk=3,
        devices=1,
        progress=False,
    )
    with jax.enable_x64(True):
        whole = gdkit.sweep(ROSENBROCK, "bfgs", **kw)
        path = tmp_path / "ck.npz"
        with pytest.raises(Interrupted):
            gdkit.sweep(ROSENBROCK, "bfgs", checkpoint=InterruptAfter(path, 4), **kw)
        resumed = gdkit.sweep(
            ROSENBROCK, "bfgs", checkpoint=gdkit.Checkpoint(path, every=0.0), **kw
        )
    assert (whole.steps_to_tol > 0).any()
    np.testing.assert_array_equal(resumed.final_x, whole.final_x)
    for a, b in ((whole.evals, resumed.evals), (whole.evals_to_tol, resumed.evals_to_tol)):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
