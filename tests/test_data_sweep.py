"""Data objectives through the sweep engine: batch / stochastic / mini-batch descent and least
squares, against the closed-form least-squares fit."""

import jax
import numpy as np

from gdkit import objectives, plots
from gdkit.engine.sweep import sweep

TRUE = np.array([2.0, 1.0, 3.0])  # y = 2 x1 + x2 + 3


def test_batch_gd_recovers_the_noise_free_line():
    obj = objectives.get("linear_regression", n=100, noise=0.0, seed=0)
    r = sweep(obj, "gd", grid={"learning_rate": [0.1, 0.2]}, steps=1000, tol=1e-8, progress=False)
    np.testing.assert_allclose(r.final_x[:, 0], np.tile(TRUE, (2, 1)), atol=1e-2)
    assert set(r.status.ravel()) == {"converged"}


def test_stochastic_and_mini_batch_get_within_the_noise():
    obj = objectives.get("linear_regression", n=100, noise=0.1, seed=0)
    best = obj.minima[0].x  # numpy.linalg.lstsq on the same data
    r = sweep(
        obj,
        "gd",
        grid={"learning_rate": [0.01], "batch_size": ["full", 1, 10]},
        steps=3000,
        seeds=3,
        progress=False,
    )
    assert r.dims == ("learning_rate", "batch_size", "start", "seed")
    final = r.final_x[0, :, 0]  # [batch sizes, seeds, 3]
    # Within the noise level (0.1) of the least-squares fit, every seed and batch size.
    assert np.abs(final - best).max() < 0.1
    # Full batch is deterministic across seeds; mini-batches are not.
    assert np.ptp(final[0], axis=0).max() == 0.0
    assert np.ptp(final[1], axis=0).max() > 0.0


def test_runs_are_reproducible_from_their_seed():
    obj = objectives.get("linear_regression", n=60, noise=0.1, seed=1)
    kw = dict(grid={"learning_rate": [0.02], "batch_size": [5]}, steps=300, progress=False)
    a = sweep(obj, "gd", seeds=[0, 1], **kw)
    b = sweep(obj, "gd", seeds=[1, 0], **kw)
    np.testing.assert_array_equal(a.final_x[..., 0, :], b.final_x[..., 1, :])
    assert not np.array_equal(a.final_x[..., 0, :], a.final_x[..., 1, :])


def test_levenberg_marquardt_through_the_engine_matches_lstsq():
    with jax.enable_x64(True):
        obj = objectives.get("linear_regression", n=80, noise=0.2, seed=3)
        r = sweep(
            obj,
            "levenberg_marquardt",
            grid={"learning_rate": [1.0]},
            steps=20,
            progress=False,
            dtype="float64",
        )
        X = np.column_stack([obj.data.X, np.ones(obj.data.n)])
        exact = np.linalg.lstsq(X, obj.data.y, rcond=None)[0]
        np.testing.assert_allclose(r.final_x[0, 0], exact, atol=1e-6)


def test_the_epochs_plot_draws_one_line_per_batch_size(tmp_path):
    obj = objectives.get("linear_regression", n=40, noise=0.1, seed=0)
    r = sweep(
        obj,
        "gd",
        grid={"learning_rate": [0.01, 0.05], "batch_size": ["full", 4]},
        steps=200,
        seeds=2,
        tol=1e-6,
        progress=False,
    )
    fig = plots.epochs([r], obj)
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert [t.split(" (")[0] for t in texts if not t.startswith("recorded loss")] == [
        "gd, batch",
        "gd, mini-batch 4",
    ]
    written = plots.draw([r], {obj.name: obj}, tmp_path, kinds=["loss"])
    assert {p.name.split("-")[0] for p in written} == {"loss", "epochs"}
