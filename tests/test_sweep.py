"""The sweep engine against closed forms and independent single-lane runs."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdkit import objectives, starts
from gdkit.engine import runner as _runner
from gdkit.engine import sweep as sweep_mod
from gdkit.engine import xla_cpu as _tiles
from gdkit.engine.sweep import sweep


def _quadratic(lams):
    return objectives.wrap(
        lambda x: 0.5 * jnp.sum(jnp.asarray(lams, x.dtype) * x**2),
        dim=len(lams),
        x0=np.ones(len(lams)),
        minima=[(np.zeros(len(lams)), 0.0)],
        name="diag_quadratic",
    )


def test_gd_on_a_quadratic_follows_the_closed_form():
    # x_k = (1 - lr*lam)^k x_0 per coordinate, f_k = 1/2 sum lam x_k^2.
    lams = np.array([1.0, 4.0])
    lrs = np.array([0.05, 0.1, 0.2, 0.3])
    with jax.enable_x64(True):
        r = sweep(
            _quadratic(lams),
            "gd",
            grid={"learning_rate": lrs},
            steps=37,
            record_every=5,
            progress=False,
        )
    k = r.history_steps
    np.testing.assert_array_equal(k, [0, 5, 10, 15, 20, 25, 30, 35, 37])
    xk = (1 - lrs[:, None, None] * lams) ** k[None, :, None]  # [lr, record, d]
    fk = 0.5 * np.sum(lams * xk**2, axis=-1)
    np.testing.assert_allclose(r.history[:, 0, :], fk, rtol=1e-12)
    np.testing.assert_allclose(r.final_loss[:, 0], fk[:, -1], rtol=1e-12)
    np.testing.assert_allclose(r.final_x[:, 0], xk[:, -1], rtol=1e-12)
    assert r.dtype == "float64" and r.final_loss.dtype == np.float64


def test_steps_to_tol_is_the_first_step_within_tol():
    # Parabola x^2 - 2x + 3 from x0 = 4: gap_k = 9 (1 - 2 lr)^(2k).
    lrs = np.array([0.005, 0.05, 0.1, 0.2, 0.45])
    tol = 1e-6
    with jax.enable_x64(True):
        r = sweep("parabola", "gd", grid={"learning_rate": lrs}, steps=400, tol=tol, progress=False)
    k = np.arange(401)
    gaps = 9.0 * (1 - 2 * lrs[:, None]) ** (2 * k)
    expected = np.array([k[g <= tol][0] if (g <= tol).any() else -1 for g in gaps])
    assert expected[0] == -1  # lr = 0.005 is too slow for 400 steps
    np.testing.assert_array_equal(r.steps_to_tol[:, 0], expected)
    np.testing.assert_array_equal(r.status[:, 0] == "converged", expected >= 0)
    assert set(r.status[:, 0]) == {"converged", "max_steps"}


def test_gradient_norm_tol_when_the_minimum_is_unknown():
    # f = sum (x - 1)^2 with no known minimum: |grad f|_k = 2 |1 - 2 lr|^k |x0 - 1| sqrt(d).
    obj = objectives.wrap(lambda x: jnp.sum((x - 1.0) ** 2), dim=2, x0=[3.0, 3.0])
    lr, tol = 0.1, 1e-3
    with jax.enable_x64(True):
        r = sweep(obj, "gd", grid={"learning_rate": [lr]}, steps=100, tol=tol, progress=False)
    k = np.arange(101)
    g = 2 * 0.8**k * 2 * np.sqrt(2)
    assert r.tol_metric == "grad_norm"
    assert r.steps_to_tol[0, 0] == k[g <= tol][0]
    assert r.status[0, 0] == "stationary"  # no minimum is known: never "converged"
    np.testing.assert_allclose(r.final_grad_norm[0, 0], g[-1], rtol=1e-6)  # x - 1 cancels


def _optax_loop(obj, opt, x0s, steps):
    """The final x of a plain jitted optax loop from each start (one compile for them all)."""

    @jax.jit
    def step(x, state):
        g = jax.grad(obj.fn)(x)
        u, state = opt.update(g, state, x)
        return optax.apply_updates(x, u), state

    finals = []
    for x0 in x0s:
        x = jnp.asarray(x0)
        state = opt.init(x)
        for _ in range(steps):
            x, state = step(x, state)
        finals.append(np.asarray(x))
    return finals


def test_lanes_equal_independent_optax_runs():
    obj = objectives.get("rosenbrock")
    lrs, b1s = [1e-3, 1e-2, 5e-2], [0.5, 0.9]
    x0 = np.array([[-1.2, 1.0], [0.5, -0.5]])
    with jax.enable_x64(True):
        r = sweep(
            obj,
            optax.adam,
            grid={"learning_rate": lrs, "b1": b1s, "b2": 0.99},
            x0=x0,
            steps=150,
            progress=False,
        )
        assert r.dims == ("learning_rate", "b1", "start") and r.shape == (3, 2, 2)
        for i, lr in enumerate(lrs):
            for j, b1 in enumerate(b1s):
                wants = _optax_loop(obj, optax.adam(lr, b1=b1, b2=0.99), x0, 150)
                for s, want in enumerate(wants):
                    np.testing.assert_allclose(r.final_x[i, j, s], want, rtol=1e-12)
    assert r.fixed == {"b2": 0.99}


def test_stability_edge_of_gradient_descent_on_rosenbrock():
    # At (1, 1) the Hessian of 2-D Rosenbrock is [[802, -400], [-400, 200]]; gradient descent
    # is locally stable iff lr < 2 / lambda_max.
    lam_max = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]])).max()
    edge = 2.0 / lam_max
    assert abs(edge - 0.0019968) < 1e-7
    # (Closer than 1% the unstable mode grows too slowly to show within 20k float32 steps:
    # at 1.001 x edge the float32 iterate stalls at a fixed point of its own rounding.)
    below = edge * np.array([0.6, 0.8, 0.95, 0.99])
    above = edge * np.array([1.01, 1.02, 1.1, 1.5, 3.0, 10.0])
    r = sweep(
        "rosenbrock",
        "gd",
        grid={"learning_rate": np.concatenate([below, above])},
        steps=20_000,
        tol=1e-6,
        progress=False,
    )
    status = r.status[:, 0]
    assert list(status[: len(below)]) == ["converged"] * len(below)
    assert "converged" not in status[len(below) :]
    assert status[-1] == "diverged"
    np.testing.assert_array_equal(r.steps_to_tol[len(below) :, 0], -1)


@pytest.mark.parametrize("lr", [0.01, 0.1, 1.0])
def test_the_saddle_diverges_never_converges(lr):
    r = sweep("saddle", "gd", grid={"learning_rate": [lr]}, steps=6000, tol=1e-6, progress=False)
    assert r.status[0, 0] == "diverged"
    step = r.diverged_step[0, 0]
    assert 0 < step <= 6000
    assert np.all(np.isfinite(r.final_x)) and np.isfinite(r.final_loss[0, 0])
    assert abs(r.final_loss[0, 0]) <= r.divergence_threshold * 1.25  # frozen before the blow-up
    assert np.isfinite(r.best_loss[0, 0]) and r.best_loss[0, 0] <= r.final_loss[0, 0]
    after = r.history_steps >= step
    assert np.all(np.isnan(r.history[0, 0, after])) and np.all(np.isfinite(r.history[0, 0, ~after]))


def test_a_diverging_lane_never_poisons_the_others():
    lrs = [1e-3, 1e-2, 1e-4, 1.0, 1e3]  # the large ones overflow to inf / NaN within steps
    r = sweep("rosenbrock", "gd", grid={"learning_rate": lrs}, steps=300, progress=False)
    assert list(r.status[:, 0]) == ["max_steps", "diverged", "max_steps", "diverged", "diverged"]
    alone = sweep(
        "rosenbrock", "gd", grid={"learning_rate": [1e-3, 1e-4]}, steps=300, progress=False
    )
    np.testing.assert_array_equal(r.final_x[[0, 2]], alone.final_x)
    np.testing.assert_array_equal(r.history[[0, 2]], alone.history)
    # frozen at the last finite point: x0 itself when the very first step overflows
    assert np.all(np.isfinite(r.final_x)) and r.diverged_step[4, 0] >= 1


@pytest.mark.parametrize("noise", [None, 0.5])
def test_a_diverged_lane_ends_at_its_own_last_good_point(noise):
    # The engine keeps no per-step copy of the last good point: it replays diverged lanes
    # from their start at the end. That must land on the very point of the lane's own path,
    # bit for bit, gradient noise included.
    lrs = [1e-3, 8e-3, 0.02, 1.0]
    r = sweep(
        "rosenbrock",
        "gd",
        grid={"learning_rate": lrs},
        steps=200,
        noise=noise,
        seeds=None if noise is None else 2,
        trajectories=list(range(len(lrs) * (1 if noise is None else 2))),
        progress=False,
    )
    div = r.diverged_step.reshape(-1)
    assert np.all(div[len(div) // 4 :] >= 1) and np.all(div[: len(div) // 4] == -1)
    final_x = r.final_x.reshape(-1, 2)
    for k, d in enumerate(div):
        end = r.trajectory_x[k, d - 1] if d >= 1 else r.trajectory_x[k, -1]
        np.testing.assert_array_equal(final_x[k], end)
        assert np.all(np.isfinite(final_x[k]))


@pytest.mark.parametrize("lr", [0.01, 0.1])
def test_a_late_divergence_ends_at_the_closed_form_point(lr):
    # Gradient descent on the saddle x^2 + 3xy + y^2 is linear: x_t = (I - lr H)^t x_0. Its
    # loss passes the divergence threshold after thousands of steps, so the replay is long.
    r = sweep("saddle", "gd", grid={"learning_rate": [lr]}, steps=6000, progress=False)
    d = int(r.diverged_step[0, 0])
    step = np.eye(2) - lr * np.array([[2.0, 3.0], [3.0, 2.0]])
    path = [np.array([1.0, -0.5])]
    for _ in range(d + 1):
        path.append(step @ path[-1])
    path = np.array(path)
    f = path[:, 0] ** 2 + 3 * path[:, 0] * path[:, 1] + path[:, 1] ** 2
    thr = r.divergence_threshold * max(1.0, abs(f[0]))
    first_bad = int(np.argmax(np.abs(f) > thr))
    assert d > 100 and abs(d - first_bad) <= 1  # float32 rounding may move the crossing by one
    np.testing.assert_allclose(r.final_x[0, 0], path[d - 1], rtol=1e-4)


def test_changing_values_never_recompiles():
    obj = objectives.get("himmelblau")
    kw = dict(steps=50, tol=1e-3, progress=False)
    sweep(obj, "adam", grid={"learning_rate": [0.1, 0.2, 0.3], "b1": 0.9}, x0=[1.0, 1.0], **kw)
    before = _runner.compile_count
    r = sweep(
        obj,
        "adam",
        grid={"learning_rate": [0.01, 0.05, 0.9], "b1": 0.5},
        x0=[-3.0, 2.0],
        **{**kw, "tol": 1e-5},
    )
    assert _runner.compile_count == before and r.compile_time == 0.0
    r2 = sweep(obj, "adam", grid={"learning_rate": [0.1, 0.2, 0.3, 0.4]}, **kw)  # new shape
    assert _runner.compile_count > before and r2.compile_time > 0


def test_trajectory_program_compiled_ahead_records_the_lanes_own_path(monkeypatch):
    # Paths too large for the sweep to record itself (here: any) get a program of their own.
    # The representative lane's is compiled on a background thread while the sweep compiles
    # (lane 0 stands in for its shapes); the path it records is still the lane's own.
    monkeypatch.setattr(sweep_mod, "PATH_BYTES", 0)
    before, ahead = _runner.compile_count, _runner.compiled_ahead
    r = sweep(
        "beale",
        "momentum",
        grid={"learning_rate": np.logspace(-4, -2, 5)},
        x0=[[1.0, 1.0], [2.0, -1.0]],
        steps=150,
        trajectories="representative",
        progress=False,
    )
    assert _runner.compiled_ahead == ahead + 1
    assert _runner.compile_count == before + 3  # init, chunk, trajectory (nothing diverged)
    lane = r.trajectory_lanes[0]
    assert lane != 0  # the stand-in lane's values were not the ones recorded
    np.testing.assert_array_equal(r.trajectory_x[0, -1], r.final_x.reshape(-1, 2)[lane])
    np.testing.assert_array_equal(r.trajectory_loss[0, -1], r.final_loss.reshape(-1)[lane])


def test_float64_is_never_silently_downcast():
    with pytest.raises(ValueError, match="x64"):
        sweep(
            "sphere", "gd", grid={"learning_rate": [0.1]}, steps=5, dtype="float64", progress=False
        )
    r = sweep("sphere", "gd", grid={"learning_rate": [0.1]}, steps=5, progress=False)
    assert r.dtype == "float32" and r.final_x.dtype == np.float32


def test_axes_starts_seeds_and_noise():
    obj = objectives.get("sphere")
    x0 = starts.grid(obj, 2)
    grid = {"learning_rate": [0.01, 0.1]}
    r = sweep(obj, "gd", grid=grid, x0=x0, seeds=3, noise=0.5, steps=20, progress=False)
    assert r.dims == ("learning_rate", "start", "seed") and r.shape == (2, 4, 3)
    np.testing.assert_array_equal(r.axes["seed"], [0, 1, 2])
    assert len(np.unique(r.final_loss[0, 0])) == 3  # every seed draws its own noise
    again = sweep(obj, "gd", grid=grid, x0=x0, seeds=[0, 1, 2], noise=0.5, steps=20, progress=False)
    np.testing.assert_array_equal(r.final_x, again.final_x)  # reproducible from the seed
    quiet = sweep(obj, "gd", grid=grid, x0=x0, seeds=3, steps=20, progress=False)
    assert np.all(quiet.final_loss == quiet.final_loss[..., :1])
    with pytest.raises(ValueError, match="seeds"):
        sweep(obj, "gd", grid=grid, noise=0.5, steps=5, progress=False)


def test_structural_axes_run_one_program_each():
    grid = {"learning_rate": [0.001, 0.01], "nesterov": [False, True], "momentum": 0.9}
    r = sweep("rosenbrock", optax.sgd, grid=grid, steps=100, progress=False)
    assert r.shape == (2, 2, 1) and r.fixed == {"momentum": 0.9}
    for j, nest in enumerate([False, True]):
        one = sweep(
            "rosenbrock",
            optax.sgd,
            steps=100,
            progress=False,
            grid={"learning_rate": [0.001, 0.01], "nesterov": nest, "momentum": 0.9},
        )
        np.testing.assert_array_equal(r.final_x[:, j], one.final_x)


def test_chunking_of_steps_and_lanes_changes_nothing():
    grid = {"learning_rate": np.geomspace(1e-4, 1.0, 11)}
    x0 = starts.uniform("rosenbrock", 3, seed=1)
    kw = dict(grid=grid, x0=x0, steps=103, tol=1e-4, record_every=10, progress=False)
    a = sweep("rosenbrock", "adam", **kw)
    b = sweep("rosenbrock", "adam", chunk_steps=30, max_lanes_per_chunk=7, **kw)
    c = sweep("rosenbrock", "adam", memory_budget=5000, **kw)  # tiny budget -> tiny chunks
    for other in (b, c):
        for f in ("final_x", "final_loss", "best_loss", "steps_to_tol", "status", "history"):
            np.testing.assert_array_equal(getattr(a, f), getattr(other, f), err_msg=f)
    np.testing.assert_array_equal(a.history_steps, [*range(0, 101, 10), 103])


def test_lane_tiles_change_nothing(monkeypatch):
    # 300 lanes in tiles of ~64 (5 tiles, padded to 320) against one tile of all the lanes.
    kw = dict(
        grid={"learning_rate": np.geomspace(1e-3, 3.0, 100), "momentum": [0.0, 0.5, 0.9]},
        steps=300,
        tol=1e-6,
        record_every=7,
        progress=False,
    )
    monkeypatch.setattr(_tiles, "tile_size", lambda nbytes: 10**9)
    whole = sweep("sphere", optax.sgd, **kw)
    monkeypatch.setattr(_tiles, "tile_size", lambda nbytes: 64)
    assert _tiles.pad_to_tiles(300, 64) == (64, 320)
    tiled = sweep("sphere", optax.sgd, **kw)
    for f in ("final_x", "final_loss", "best_loss", "steps_to_tol", "status", "history"):
        np.testing.assert_array_equal(getattr(whole, f), getattr(tiled, f), err_msg=f)
    assert set(whole.status.ravel()) == {"converged", "max_steps", "diverged"}


def test_trajectories_of_selected_lanes():
    r = sweep(
        "rosenbrock",
        "adam",
        grid={"learning_rate": [0.01, 0.1, 10.0]},
        steps=60,
        trajectories=[0, 2],
        progress=False,
    )
    assert r.trajectory_x.shape == (2, 61, 2) and r.trajectory_loss.shape == (2, 61)
    np.testing.assert_array_equal(r.trajectory_lanes, [0, 2])
    np.testing.assert_allclose(r.trajectory_x[:, 0], [[-1.2, 1.0]] * 2)
    np.testing.assert_allclose(r.trajectory_x[0, -1], r.final_x[0, 0], rtol=1e-6)
    np.testing.assert_allclose(r.trajectory_loss[0, r.history_steps], r.history[0, 0], rtol=1e-5)
    best = sweep(
        "rosenbrock",
        "adam",
        grid={"learning_rate": [0.01, 0.1]},
        steps=60,
        trajectories="best",
        progress=False,
    )
    assert list(best.trajectory_lanes) == [best.best()["lane"]]


@pytest.mark.parametrize("name", ["newton", "bfgs"])
def test_second_order_optimizers_get_value_fn(name):
    # Newton / BFGS with a backtracking line search solve 2-D Rosenbrock in a few dozen steps.
    r = sweep(
        "rosenbrock", name, grid={"learning_rate": [1.0]}, steps=100, tol=1e-6, progress=False
    )
    assert r.status[0, 0] == "converged" and r.steps_to_tol[0, 0] < 100


def test_bad_arguments_say_what_is_allowed():
    with pytest.raises(ValueError, match="steps"):
        sweep("sphere", "gd", grid={"learning_rate": [0.1]}, steps=0)
    with pytest.raises(ValueError, match=r"x0 must have shape \[S, 2\]"):
        sweep("sphere", "gd", grid={"learning_rate": [0.1]}, steps=5, x0=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="1-D"):
        sweep("sphere", "gd", grid={"learning_rate": [[0.1]]}, steps=5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        sweep("sphere", "no_such_optimizer", grid={"learning_rate": [0.1]}, steps=5)


_SHARDED = """
import numpy as np, jax
from gdkit.engine.sweep import sweep
assert len(jax.devices()) == 4
kw = dict(grid={"learning_rate": np.geomspace(1e-4, 1.0, 9), "b1": [0.8, 0.9]},
          x0=[[-1.2, 1.0], [0.3, 0.3]], steps=200, tol=1e-1, progress=False)
a = sweep("rosenbrock", "adam", devices=1, **kw)   # 36 lanes: padded to 36 / 4 ...
b = sweep("rosenbrock", "adam", **kw)
c = sweep("rosenbrock", "adam", max_lanes_per_chunk=10, **kw)  # ... and chunks of 12
from gdkit.engine import xla_cpu as _tiles
tile_size = _tiles.tile_size
_tiles.tile_size = lambda nbytes: 4  # 9 lanes per device in 3 tiles of 16 (padded)
d = sweep("rosenbrock", "adam", **kw)
for other in (b, c, d):
    for f in ("final_x", "final_loss", "best_loss", "steps_to_tol", "status", "history"):
        np.testing.assert_array_equal(getattr(a, f), getattr(other, f), err_msg=f)
# exp in the objective, 5,000 lanes: two tiles on one device, one tile per device on four
# (where XLA fused the end-of-sweep program differently, and rounded exp's FMAs differently)
_tiles.tile_size = tile_size
from gdkit import starts
kw = dict(grid={"learning_rate": np.geomspace(1e-3, 1.0, 100)}, steps=300, tol=1e-6,
          x0=starts.uniform("peaks", 50, seed=0), progress=False)
p1, p4 = sweep("peaks", "adam", devices=1, **kw), sweep("peaks", "adam", **kw)
for f in ("final_x", "final_loss", "best_loss", "steps_to_tol", "status", "history"):
    np.testing.assert_array_equal(getattr(p1, f), getattr(p4, f), err_msg="peaks " + f)
print("OK", a.counts(), p1.counts())
"""


def test_sharded_over_four_devices_equals_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_SHARDED)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")


@pytest.mark.slow
def test_a_million_lanes_by_two_thousand_steps():
    lrs = np.geomspace(1e-4, 1.0, 1_000_000)
    r = sweep(
        "rosenbrock", "adam", grid={"learning_rate": lrs}, steps=2000, tol=1e-4, progress=False
    )
    assert r.shape == (1_000_000, 1) and r.history.shape[-1] == len(r.history_steps)
    counts = r.counts()
    assert sum(counts.values()) == 1_000_000 and counts["converged"] > 0


_ALL_CORES = """
import json
import os
from gdkit.engine.devices import cpu_cores, use_all_cpu_cores
took = use_all_cpu_cores()
import jax
assert took == (cpu_cores() > 1) and len(jax.devices()) == cpu_cores(), (took, jax.devices())
assert not use_all_cpu_cores()  # the backend has started: nothing more to do
print("OK")
"""


def test_use_all_cpu_cores_gives_one_device_per_core():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_ALL_CORES)],
        env={**env, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("OK")


_LAYOUT_SCRIPT = """
import json, sys
import numpy as np
from gdkit.engine.sweep import sweep
out = []
for name, opt, tile in [("rosenbrock", "gd", None), ("peaks", "adam", None), ("peaks", "adam", 64)]:
    r = sweep(name, opt, grid={"learning_rate": np.geomspace(1e-4, 1e-2, 300)}, steps=150,
              record_every=5, progress=False, tile_lanes=tile)
    out.append([r.final_loss.tolist(), r.final_x.tolist(), r.history.tolist()])
json.dump(out, sys.stdout)
"""


def test_same_numbers_on_two_and_three_devices():
    """The tile shape depends on the grid alone and devices run whole tiles, so each lane
    computes exactly the same on any number of devices (300 lanes: 150 or 100 per device)."""
    runs = []
    for n in (2, 3):
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
        proc = subprocess.run(
            [sys.executable, "-c", _LAYOUT_SCRIPT],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        runs.append(json.loads(proc.stdout))
    assert runs[0] == runs[1]


def test_plan_tells_the_lanes_programs_and_chunks_a_sweep_runs(monkeypatch):
    from gdkit.engine.sweep import plan

    kw = dict(
        grid={
            "learning_rate": np.geomspace(1e-3, 0.1, 250),
            "nesterov": [False, True],
            "momentum": 0.9,
        },
        x0=[[-1.2, 1.0], [0.0, 0.0]],
        steps=20,
        max_lanes_per_chunk=300,
        devices=jax.devices()[:1],  # the padding below is one device's, whatever XLA_FLAGS say
    )
    p = plan("rosenbrock", optax.sgd, **kw)
    assert (p.lanes, p.programs) == (1000, 2)  # nesterov is structural: two programs
    inits = []  # the init program runs once per lane chunk
    compiled = _runner._compiled

    def counting(key, *a, **k):
        inits.extend(key[-1:] if key[-1] == "init" else [])
        return compiled(key, *a, **k)

    monkeypatch.setattr(_runner, "_compiled", counting)
    r = sweep("rosenbrock", optax.sgd, progress=False, **kw)
    assert r.lanes == p.lanes and len(inits) == p.lane_chunks  # one init per lane chunk
    assert p.lane_chunks >= 2 * -(-500 // 300)
    per_lane = p.device_bytes / 320  # 300 lanes, padded to whole tiles of 32 lanes
    assert 50 < per_lane < 1000 and p.host_bytes > 1000 * (2 * 4 + 8)
    with pytest.raises(ValueError, match="steps"):
        plan("rosenbrock", "gd", grid={"learning_rate": [0.1]}, steps=0)
