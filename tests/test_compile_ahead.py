"""Programs compiled ahead on the background thread (`gdkit.sweep.compile_ahead`, trajectory
programs): used by the sweeps that need them, the same numbers bit for bit, and a failed
ahead compile redone in place."""

import threading

import numpy as np
import pytest

from gdkit.engine import runner as _runner
from gdkit.engine import sweep as _sweep
from gdkit.experiments import config, experiment

CONFIG = {
    "name": "ahead",
    "objectives": [{"name": "rosenbrock"}, {"name": "himmelblau"}],
    "optimizers": [
        {"name": "gd", "learning_rate": {"logspace": [-4, 0, 6]}},
        {"name": "adam", "learning_rate": [0.01, 0.1]},
    ],
    "starts": {"kind": "uniform", "n": 3, "seed": 2},
    "steps": 120,
    "tol": 1e-4,
    "record_every": 10,
    "engine": "xla",  # on a GPU too (the fused kernel records no paths: other programs)
}
FIELDS = ("final_x", "final_loss", "best_loss", "history", "steps_to_tol", "diverged_step")


def _run():
    _runner._CACHE.clear()  # every program compiled again, ahead or in place
    return [r for _, r in experiment.run(config.validate(CONFIG), progress=False)]


def _assert_same(a, b):
    for ra, rb in zip(a, b, strict=True):
        for name in (*FIELDS, "trajectory_x", "trajectory_loss"):
            np.testing.assert_array_equal(getattr(ra, name), getattr(rb, name), err_msg=name)
        assert (ra.status == rb.status).all()


@pytest.fixture(scope="module")
def in_place():
    """The experiment with nothing compiled ahead."""
    mp = pytest.MonkeyPatch()
    mp.setattr(_sweep, "compile_ahead", lambda *a, **k: None)
    mp.setattr(_runner, "compile_trajectories_ahead", lambda *a, **k: None)
    try:
        before = _runner.compiled_ahead
        results = _run()
        assert _runner.compiled_ahead == before
        return results
    finally:
        mp.undo()


@pytest.mark.parametrize("recorded", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_programs_compiled_ahead_are_used_and_compute_the_same_bits(
    in_place, recorded, monkeypatch
):
    # recorded: the sweeps record their paths themselves (small sweeps, the default); else
    # each compiles a trajectory program (as larger sweeps do)
    if not recorded:
        monkeypatch.setattr(_sweep, "PATH_BYTES", 0)
    run_sweep = _sweep.sweep

    def after_the_queue(*args, **kwargs):  # what was queued ahead is compiled by now
        _runner.ahead(lambda: None).result()
        return run_sweep(*args, **kwargs)

    monkeypatch.setattr(_sweep, "sweep", after_the_queue)
    before, compiles = _runner.compiled_ahead, _runner.compile_count
    results = _run()
    # sweeps 2-4: init and chunk ahead (6); the trajectory programs too, unless the sweep
    # asked for one before the background thread had started it
    assert _runner.compiled_ahead - before >= 6
    programs = 2 if recorded else 3  # init, chunk (+ trajectory)
    assert _runner.compile_count - compiles == len(results) * programs + sum(
        bool((r.diverged_step >= 1).any()) for r in results
    )  # (+ replay): nothing compiled twice
    assert any(r.diverged.any() for r in results)  # the replay path was taken
    _assert_same(results, in_place)


def test_a_failed_ahead_compile_is_redone_in_place(in_place, monkeypatch):
    compile_here = _runner._compile
    failed = []

    def flaky(*args, **kwargs):
        if threading.current_thread().name.startswith(_runner._AHEAD_THREAD):
            failed.append(1)
            raise RuntimeError("an ahead compile failed")
        return compile_here(*args, **kwargs)

    monkeypatch.setattr(_runner, "_compile", flaky)
    results = _run()
    assert failed  # the background thread tried, failed, and the sweeps compiled in place
    _assert_same(results, in_place)


def test_compile_ahead_is_sweep_attribute_and_leaves_bad_arguments_to_the_sweep():
    import gdkit

    assert gdkit.sweep.compile_ahead is _sweep.compile_ahead
    # a bad argument: the background job fails quietly; the sweep raises its own error
    gdkit.sweep.compile_ahead("rosenbrock", "adam", grid={"learning_rate": [0.1]}, steps=-3)
    with pytest.raises(ValueError, match="steps"):
        gdkit.sweep("rosenbrock", "adam", grid={"learning_rate": [0.1]}, steps=-3, progress=False)
