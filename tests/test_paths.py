"""Trajectories recorded by the sweep itself (`programs.make_chunk(paths=True)`).

A small sweep asked for trajectories records every lane's whole path in its own chunk
programs instead of compiling a trajectory program afterwards (`sweep._recording`). Recording
must change none of the sweep's numbers, and the paths must be bit for bit the ones a
trajectory program records (`programs.make_trajectory`), diverged lanes held at their last
finite point included.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gdkit.engine import backends, programs, xla_cpu
from gdkit.engine import plan as plan_mod
from gdkit.engine import runner as _runner
from gdkit.engine import sweep as sweep_mod
from gdkit.engine.sweep import sweep

FIELDS = ("final_loss", "best_loss", "final_x", "history", "steps_to_tol", "diverged_step")


def _slow(*names):
    return [pytest.param(name, marks=pytest.mark.slow) for name in names]


def _sweep(optimizer, which, objective="rosenbrock", **kw):
    return sweep(
        objective,
        optimizer,
        grid={"learning_rate": np.geomspace(1e-4, 0.9, 40)},
        x0=[[-1.2, 1.0], [0.5, -0.5]],
        steps=300,
        tol=1e-4,
        progress=False,
        trajectories=which,
        engine="xla",  # on a GPU too: the fused kernel records no paths
        **kw,
    )


def _no_program(*_a, **_k):
    raise AssertionError("a trajectory program ran: the sweep should have recorded the path")


@pytest.mark.parametrize("optimizer", ["gd", "adam", "bfgs", *_slow("momentum", "newton")])
@pytest.mark.parametrize("which", ["representative", "best", [0, 5, 33, 79]])
def test_recorded_paths_are_the_trajectory_programs_bits(monkeypatch, optimizer, which):
    # gd and momentum: about half of the 80 lanes diverge (their paths are held)
    with monkeypatch.context() as m:
        m.setattr(_runner, "run_trajectories", _no_program)
        recorded = _sweep(optimizer, which)
    monkeypatch.setattr(sweep_mod, "PATH_BYTES", 0)  # too large to record: programs
    programmed = _sweep(optimizer, which)
    for name in ("trajectory_lanes", "trajectory_x", "trajectory_loss", *FIELDS):
        np.testing.assert_array_equal(
            getattr(recorded, name), getattr(programmed, name), err_msg=name
        )
    if optimizer in ("gd", "momentum"):
        assert (recorded.status == "diverged").any()


def test_a_recorded_sweep_compiles_no_trajectory_program():
    before = _runner.compile_count
    r = _sweep("adam", "representative", objective="beale")
    assert _runner.compile_count == before + 2  # init and chunk (nothing diverged)
    lane = r.trajectory_lanes[0]
    start = r.starts[r.coords(lane)["start"]].astype(np.float32)
    np.testing.assert_array_equal(r.trajectory_x[0, 0], start)
    np.testing.assert_array_equal(r.trajectory_x[0, -1], r.final_x.reshape(-1, 2)[lane])
    np.testing.assert_array_equal(r.trajectory_loss[0, -1], r.final_loss.reshape(-1)[lane])


@pytest.mark.parametrize(
    "optimizer",
    [
        "gd",
        "adam",
        "lion",
        *_slow("bfgs", "newton", "rmsprop", "nadam", "lbfgs", "ncg", "gd_linesearch"),
    ],
)
def test_recording_changes_no_step(optimizer):
    # the chunk program with and without paths, tiled as on the CPU: the same bits
    p = plan_mod.resolve("peaks", optimizer, grid={"learning_rate": [0.1]}, steps=30, tol=1e-3)
    spec = p.spec({})
    lanes = 256
    x0 = jnp.asarray(np.random.default_rng(0).uniform(-3, 3, (lanes, 2)), jnp.float32)
    hp = {"learning_rate": jnp.asarray(np.geomspace(1e-4, 3.0, lanes), jnp.float32)}
    carry = jax.jit(programs.make_init(spec))(x0, hp, {}, None, jnp.float32(1e3))
    consts = {k: jnp.float32(v) for k, v in {"tol": 1e-3, "f_min": p.obj.f_min, "noise": 0}.items()}
    axes = programs.carry_axes(spec, 2)
    plain, recording = (
        jax.jit(xla_cpu.tiled(programs.make_chunk(spec, 3, 10, paths=paths), axes, 128))(
            carry, hp, {}, consts, jnp.int32(0)
        )
        for paths in (False, True)
    )
    carry_p, hist_p, out_p = plain
    carry_r, (hist_r, xs, losses), out_r = recording
    for a, b in zip(
        jax.tree.leaves((carry_p, hist_p, out_p)),
        jax.tree.leaves((carry_r, hist_r, out_r)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert xs.shape == (30, lanes, 2) and losses.shape == (30, lanes)
    np.testing.assert_array_equal(np.asarray(xs[0]), np.asarray(x0))


def test_which_sweeps_record_their_paths(monkeypatch):
    kw = dict(grid={"learning_rate": [0.1, 0.2], "clip": [0.5, None]}, steps=100, tol=1e-3)
    fused = plan_mod.resolve("rosenbrock", "gd", engine="fused", **kw)
    assert sweep_mod._recording(fused, "best") == set()  # the kernel writes only the history
    p = plan_mod.resolve("rosenbrock", "gd", engine="xla", **kw)
    combos = {p.spec(static): lanes for _ci, static, lanes in p.combos()}
    assert len(combos) == 2  # clip is structural: two programs
    assert sweep_mod._recording(p, None) == set()
    assert sweep_mod._recording(p, "best") == set(combos)
    one = next(iter(combos))
    assert sweep_mod._recording(p, combos[one][:1]) == {one}  # only the program holding it
    size = 4 * 101 * 3  # float32, steps + 1 points, x and the loss
    monkeypatch.setattr(sweep_mod, "PATH_BYTES", 2 * size - 1)
    assert sweep_mod._recording(p, "best") == set()  # 2 lanes each: one byte too many
    monkeypatch.setattr(sweep_mod, "PATH_BYTES", 2 * size)
    assert sweep_mod._recording(p, "best") == set(combos)
    assert backends.XLA_CPU.records_paths and backends.XLA_GPU.records_paths
    assert not backends._fused(True).records_paths  # the kernel writes only the history
