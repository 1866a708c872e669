"""SweepResult: named axes, tidy rows, best(), exact save/load; start sets."""

import dataclasses

import numpy as np
import optax
import pytest

from gdkit import objectives, starts
from gdkit.engine.sweep import sweep
from gdkit.result import SweepResult


def _result(**over):
    status = np.array([["converged", "converged"], ["max_steps", "diverged"]])
    base = dict(
        objective="rosenbrock",
        optimizer="adam",
        fixed={"b1": 0.9},
        axes={"learning_rate": np.array([0.1, 0.01]), "start": np.array([0, 1])},
        starts=np.array([[-1.2, 1.0], [0.5, 0.5]]),
        steps=10,
        tol=1e-3,
        tol_metric="gap",
        f_min=0.0,
        dtype="float32",
        divergence_threshold=1e12,
        final_loss=np.array([[1e-4, 1e-4], [0.5, 1e6]], np.float32),
        best_loss=np.array([[1e-4, 1e-4], [0.4, 7.0]], np.float32),
        final_x=np.arange(8, dtype=np.float32).reshape(2, 2, 2),
        final_grad_norm=np.ones((2, 2), np.float32),
        steps_to_tol=np.array([[7, 4], [-1, -1]]),
        status=status,
        diverged_step=np.array([[-1, -1], [-1, 3]]),
        history=np.ones((2, 2, 3), np.float32),
        history_steps=np.array([0, 5, 10]),
    )
    return SweepResult(**{**base, **over})


def test_best_breaks_ties_by_steps_to_tol_and_skips_diverged():
    r = _result()
    best = r.best()
    assert best["learning_rate"] == 0.1 and best["start"] == 1 and best["steps_to_tol"] == 4
    assert r.best(by="best_loss")["lane"] == 1
    only_bad = _result(status=np.full((2, 2), "diverged"))
    with pytest.raises(ValueError, match="no non-diverged lane"):
        only_bad.best()
    with pytest.raises(ValueError, match="no converged lane"):
        _result(status=np.full((2, 2), "max_steps")).best(converged=True)


def test_rows_are_tidy_one_per_lane_in_c_order():
    r = _result()
    rows = r.rows()
    assert len(rows) == r.lanes == 4
    assert [(row["learning_rate"], row["start"]) for row in rows] == [
        (0.1, 0),
        (0.1, 1),
        (0.01, 0),
        (0.01, 1),
    ]
    last = rows[3]
    assert last["status"] == "diverged" and last["diverged_step"] == 3
    assert (last["x0_0"], last["x0_1"]) == (0.5, 0.5)
    assert (last["final_x_0"], last["final_x_1"]) == (6.0, 7.0)
    assert last["gap"] == last["final_loss"] == 1e6
    assert r.counts() == {"converged": 2, "stationary": 0, "max_steps": 1, "diverged": 1}


def test_wall_time_to_tol_is_the_run_time_shared_equally_by_the_steps():
    r = _result(run_time=2.5)  # 10 steps: 0.25 s each
    assert r.seconds_per_step == 0.25
    np.testing.assert_array_equal(r.seconds_to_tol, [[7 * 0.25, 4 * 0.25], [np.nan, np.nan]])
    assert [row["seconds_to_tol"] for row in r.rows()] == [1.75, 1.0, None, None]
    unknown = _result()  # run_time 0: built by hand, nothing measured
    assert unknown.seconds_per_step is None and unknown.seconds_to_tol is None
    assert {row["seconds_to_tol"] for row in unknown.rows()} == {None}
    # a real sweep: its own run time (compiling excluded), per step, times its steps to tol
    s = sweep(
        "parabola",
        "gd",
        grid={"learning_rate": [0.05, 0.5, 1.5]},
        steps=300,
        tol=1e-6,
        progress=False,
    )
    stt = s.steps_to_tol
    assert s.run_time > 0 and (stt >= 0).any() and (stt < 0).any()
    want = np.where(stt >= 0, stt * (s.run_time / s.steps), np.nan)
    np.testing.assert_allclose(s.seconds_to_tol, want, rtol=1e-15)
    assert np.isnan(s.seconds_to_tol[stt < 0]).all()


def _assert_same(a: SweepResult, b: SweepResult):
    for f in dataclasses.fields(SweepResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, f.name
            np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif f.name in ("axes", "evals", "evals_to_tol") and x is not None:  # name -> array
            assert list(x) == list(y), f.name
            for k in x:
                assert x[k].dtype == y[k].dtype and x[k].shape == y[k].shape, (f.name, k)
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"{f.name}[{k}]")
        else:
            assert x == y, f.name


def test_save_load_round_trips_exactly(tmp_path):
    r = sweep(
        "rosenbrock",
        optax.adam,
        grid={"learning_rate": [1e-3, 0.1, 30.0], "b1": 0.9, "nesterov": True},
        x0=starts.uniform("rosenbrock", 2, seed=3),
        seeds=2,
        steps=40,
        tol=1e-2,
        trajectories=[1],
        progress=False,
    )
    path = tmp_path / "r.npz"
    r.save(path)
    back = SweepResult.load(path)
    _assert_same(r, back)
    assert back.fixed == {"b1": 0.9, "nesterov": True}
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]  # no temp file left behind
    _result().save(path)
    _assert_same(_result(), SweepResult.load(path))


def test_start_sets():
    obj = objectives.get("rosenbrock")
    np.testing.assert_array_equal(starts.default(obj), [[-1.2, 1.0]])
    g = starts.grid(obj, 3)
    np.testing.assert_array_equal(np.unique(g[:, 0]), [-2.0, 0.0, 2.0])
    np.testing.assert_array_equal(np.unique(g[:, 1]), [-1.0, 1.0, 3.0])
    assert g.shape == (9, 2)
    u = starts.uniform("rosenbrock", 1000, seed=0)
    assert np.all(u >= obj.bounds[:, 0]) and np.all(u <= obj.bounds[:, 1])
    np.testing.assert_array_equal(u, starts.uniform(obj, 1000, seed=0))
    with pytest.raises(ValueError, match="n must be"):
        starts.grid(obj, 0)


def test_best_prefers_the_fastest_converged_lane_over_rounding_noise():
    # Both lanes converged; below tol a lower loss is noise, reaching tol sooner is not.
    r = _result(
        final_loss=np.array([[1e-8, 1e-5], [0.5, 1e6]], np.float32),
        steps_to_tol=np.array([[100, 10], [-1, -1]]),
    )
    assert r.best()["lane"] == 1
    assert r.best(by="final_loss")["lane"] == 0
    # With no converged lane the lowest final loss wins.
    none = _result(
        status=np.array([["max_steps", "max_steps"], ["max_steps", "diverged"]]),
        steps_to_tol=np.full((2, 2), -1),
        final_loss=np.array([[3.0, 2.0], [0.5, 1e6]], np.float32),
    )
    assert none.best()["lane"] == 2


def test_representative_is_a_typical_run_at_the_most_reliable_point():
    # lr 0.1: one lucky start converges at once, two never do; lr 0.01: all three converge.
    status = np.array(
        [["converged", "max_steps", "max_steps"], ["converged", "converged", "converged"]]
    )
    r = _result(
        axes={"learning_rate": np.array([0.1, 0.01]), "start": np.arange(3)},
        starts=np.zeros((3, 2)),
        status=status,
        steps_to_tol=np.array([[1, -1, -1], [50, 30, 40]]),
        final_loss=np.full((2, 3), 1e-7, np.float32),
        best_loss=np.full((2, 3), 1e-7, np.float32),
        final_x=np.zeros((2, 3, 2), np.float32),
        final_grad_norm=np.ones((2, 3), np.float32),
        diverged_step=np.full((2, 3), -1),
        history=np.ones((2, 3, 3), np.float32),
    )
    assert r.best()["learning_rate"] == 0.1  # the lucky lane is the fastest
    rep = r.representative()
    assert rep["learning_rate"] == 0.01 and rep["steps_to_tol"] == 40  # the median of 30/40/50
