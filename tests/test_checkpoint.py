"""A sweep interrupted after any checkpoint resumes to the same numbers, bit for bit."""

import json
import time

import numpy as np
import optax
import pytest

from gdkit import Checkpoint
from gdkit.engine.sweep import sweep

# Two programs (nesterov False/True), two lane chunks each, eight chunks of steps each: 32 saves.
KW = dict(
    grid={
        "learning_rate": np.geomspace(1e-4, 1.0, 50),
        "momentum": [0.0, 0.9],
        "nesterov": [False, True],
    },
    steps=400,
    chunk_steps=50,
    tol=1e-6,
    max_lanes_per_chunk=40,
    devices=1,  # the save count above, whether or not an earlier test gave JAX more devices
    progress=False,
)
FIELDS = (
    "final_x",
    "final_loss",
    "best_loss",
    "steps_to_tol",
    "status",
    "diverged_step",
    "history",
)


class Interrupted(Exception):
    pass


class InterruptAfter(Checkpoint):
    """A checkpoint whose k-th save is the last thing the sweep does."""

    def __init__(self, path, k):
        super().__init__(path, every=0.0)
        self.k = k

    def save(self, *args):
        super().save(*args)
        self.k -= 1
        if self.k == 0:
            raise Interrupted


@pytest.fixture(scope="module")
def uninterrupted():
    return sweep("rosenbrock", optax.sgd, **KW)


@pytest.mark.parametrize("k", [1, 2, 8, 9, 16, 17, 31])
def test_resume_after_the_kth_checkpoint(tmp_path, uninterrupted, k):
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        sweep("rosenbrock", optax.sgd, checkpoint=InterruptAfter(path, k), **KW)
    assert path.is_file()
    resumed = sweep("rosenbrock", optax.sgd, checkpoint=Checkpoint(path, every=0.0), **KW)
    for f in FIELDS:
        a, b = getattr(uninterrupted, f), getattr(resumed, f)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f
    assert not path.exists()  # a finished sweep removes its checkpoint


def test_another_sweeps_checkpoint_is_ignored(tmp_path, uninterrupted):
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        sweep("rosenbrock", optax.sgd, checkpoint=InterruptAfter(path, 5), **KW)
    other = {**KW, "steps": 350}
    r = sweep("rosenbrock", optax.sgd, checkpoint=Checkpoint(path, every=0.0), **other)
    fresh = sweep("rosenbrock", optax.sgd, **other)
    np.testing.assert_array_equal(r.final_x, fresh.final_x)


def test_stochastic_gradient_descent_resumes_to_the_same_numbers(tmp_path):
    """Mini-batches are drawn from (seed, step) alone, so a resumed SGD sweep draws the same."""
    from gdkit import objectives

    obj = objectives.get("linear_regression", n=50, noise=0.1, seed=0)
    kw = dict(
        grid={"learning_rate": np.geomspace(1e-3, 1e-1, 4), "batch_size": 1},
        seeds=3,
        steps=120,
        chunk_steps=30,
        tol=1e-6,
        devices=1,
        progress=False,
    )
    whole = sweep(obj, "gd", **kw)
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        sweep(obj, "gd", checkpoint=InterruptAfter(path, 2), **kw)
    resumed = sweep(obj, "gd", checkpoint=Checkpoint(path, every=0.0), **kw)
    for f in FIELDS:
        a, b = getattr(whole, f), getattr(resumed, f)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f
    seed = whole.dims.index("seed")  # each seed shuffles its own way
    assert not np.array_equal(np.take(whole.final_x, 0, seed), np.take(whole.final_x, 1, seed))


# -- run time: what stepping the lanes took, whatever the checkpoint did ---------------------

SMALL = dict(
    grid={"learning_rate": np.geomspace(1e-4, 1e-2, 8)},
    steps=200,
    chunk_steps=20,
    devices=1,
    progress=False,
)


class SlowSave(Checkpoint):
    """A checkpoint whose every save takes `pause` seconds longer."""

    def __init__(self, path, pause):
        super().__init__(path, every=0.0)
        self.pause, self.saves = pause, 0

    def save(self, *args):
        time.sleep(self.pause)
        super().save(*args)
        self.saves += 1


def test_run_time_leaves_out_checkpoint_writes(tmp_path):
    ck = SlowSave(tmp_path / "ck.npz", pause=0.1)
    t = time.perf_counter()
    r = sweep("rosenbrock", "gd", checkpoint=ck, **SMALL)
    total = time.perf_counter() - t
    assert ck.saves == 9  # after each of 10 chunks of steps but the last
    assert 0 < r.run_time <= total - r.compile_time - ck.saves * ck.pause


def test_a_resumed_sweep_counts_the_run_time_before_the_interruption(tmp_path):
    path = tmp_path / "ck.npz"
    with pytest.raises(Interrupted):
        sweep("rosenbrock", "gd", checkpoint=InterruptAfter(path, 4), **SMALL)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["__meta__"]))
    assert meta["run_time"] > 0  # what the interrupted sweep ran, up to its last snapshot
    meta["run_time"] = before = 1000.0  # as if the first part had taken that long
    arrays["__meta__"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    t = time.perf_counter()
    r = sweep("rosenbrock", "gd", checkpoint=Checkpoint(path, every=0.0), **SMALL)
    total = time.perf_counter() - t
    assert before < r.run_time <= before + total - r.compile_time
