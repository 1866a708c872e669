"""Data objectives: batch / stochastic / mini-batch descent, the sampler, CSV files, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gdkit
from gdkit import objectives
from gdkit.objectives import batch_indices
from gdkit.objectives.mlp import mlp

DATA = ["linear_regression", "logistic_regression", "curve_fit", "mlp"]
TRUE = np.array([2.0, 1.0, 3.0])  # y = 2 x1 + x2 + 3


def descend(obj, lr, steps, batch_size=None, seed=0, x0=None):
    """`steps` of plain gradient descent as one jit(lax.scan): full batch (`fn`) when
    batch_size is None, else `obj.minibatch` with the PRNG key of `seed` (as the engine will)."""
    key = jax.random.key_data(jax.random.key(seed))

    def loss(x, t):
        return obj.fn(x) if batch_size is None else obj.minibatch(x, key, t, batch_size)

    def body(x, t):
        return x - lr * jax.grad(loss)(x, t), None

    x0 = jnp.asarray(obj.x0 if x0 is None else x0)
    run = jax.jit(lambda x: jax.lax.scan(body, x, jnp.arange(steps, dtype=jnp.int32))[0])
    return np.asarray(run(x0))


# ------------------------------------------------------------------ batch, SGD, mini-batch


def test_batch_gd_recovers_the_true_coefficients_on_noise_free_data():
    with jax.enable_x64(True):
        obj = objectives.get("linear_regression", noise=0.0)
        x = descend(obj, lr=0.2, steps=300)
    np.testing.assert_allclose(x, TRUE, atol=1e-2)
    np.testing.assert_allclose(obj.minima[0].x, TRUE, atol=1e-12)  # lstsq: exact, f* = 0
    assert obj.f_min < 1e-25


@pytest.mark.parametrize(("batch_size", "lr", "epochs"), [(1, 0.02, 20), (10, 0.1, 100)])
def test_sgd_and_minibatch_get_within_the_noise_level(batch_size, lr, epochs):
    noise = 0.1
    obj = objectives.get("linear_regression", n=100, noise=noise, seed=1)
    x = descend(obj, lr=lr, steps=epochs * 100 // batch_size, batch_size=batch_size)
    assert np.max(np.abs(x - TRUE)) < noise, x
    assert np.max(np.abs(x - obj.minima[0].x)) < noise, x  # ... of the least-squares fit


def test_mlp_reaches_its_target_loss_in_1500_gd_steps():
    """The classic exercise: 1,500 steps at learning rate 1 from the uniform(-1, 1) start."""
    for seed in range(3):
        obj = objectives.get("mlp", seed=seed)
        assert 0.3 < float(obj.fn(jnp.asarray(obj.x0, jnp.float32))) < 1.0
        x = descend(obj, lr=1.0, steps=1500)
        assert float(obj.fn(jnp.asarray(x))) < 1e-2
        out = np.asarray(obj.predict(x, obj.data.X))
        np.testing.assert_array_equal(out.round(), [0.0, 1.0, 1.0, 0.0])  # XOR learned


def test_runs_are_reproducible_from_their_seed():
    a = objectives.get("linear_regression", n=50, noise=0.3, seed=7)
    b = objectives.get("linear_regression", n=50, noise=0.3, seed=7, features=None)  # new build
    c = objectives.get("linear_regression", n=50, noise=0.3, seed=8)
    assert a is not b
    np.testing.assert_array_equal(a.data.y, b.data.y)
    assert not np.array_equal(a.data.y, c.data.y)
    np.testing.assert_array_equal(mlp(seed=3).x0, mlp(seed=3).x0)
    assert not np.array_equal(mlp(seed=3).x0, mlp(seed=4).x0)
    run = lambda seed: descend(a, 0.05, 300, batch_size=5, seed=seed)  # noqa: E731
    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


# ------------------------------------------------------------------------- the sampler


def test_every_epoch_is_a_permutation_and_epochs_reshuffle():
    n, b = 12, 3
    key = jax.random.key(0)
    steps = jnp.arange(3 * n // b)
    idx = np.asarray(jax.jit(jax.vmap(lambda s: batch_indices(key, s, n, b)))(steps))
    epochs = idx.reshape(3, n)  # 4 steps per epoch
    for e in epochs:
        np.testing.assert_array_equal(np.sort(e), np.arange(n))
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    other = np.asarray(batch_indices(jax.random.key(1), 0, n, b))
    assert not np.array_equal(other, idx[0])  # seeds give independent runs
    raw = np.asarray(batch_indices(jax.random.key_data(key), 0, n, b))
    np.testing.assert_array_equal(raw, idx[0])  # raw uint32[2] key data works the same


@pytest.mark.parametrize("n, b", [(1, 1), (2, 1), (5, 1), (200, 1), (200, 10), (257, 3), (1000, 7)])
def test_each_lane_visits_every_sample_once_per_epoch(n, b):
    """As the engine calls it: vmapped over lanes (their own keys), compiled, three epochs."""
    per_epoch = n // b
    keys = jax.random.split(jax.random.key(3), 8)
    steps = jnp.arange(3 * per_epoch)
    f = jax.jit(jax.vmap(jax.vmap(lambda k, s: batch_indices(k, s, n, b), (None, 0)), (0, None)))
    idx = np.asarray(f(keys, steps)).reshape(8, 3, per_epoch * b)  # [lane, epoch, samples]
    for lane in idx:
        for epoch in lane:
            assert len(set(epoch.tolist())) == per_epoch * b  # no sample twice in an epoch
            assert epoch.min() >= 0 and epoch.max() < n
            if n % b == 0:
                np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    if n >= 10:  # seeds and epochs shuffle their own way (n! orders: no collisions)
        assert len({lane[0].tobytes() for lane in idx}) == 8
        assert len({e.tobytes() for e in idx[0]}) == 3


@pytest.mark.parametrize("n", [7, 10])
def test_the_shuffle_is_uniform_over_seeds(n):
    """Which sample comes first, which last, and which (first, second) pair, over 4,000
    seeds: chi-square statistics near their degrees of freedom (a 4-round network, or any
    structured shuffle, lands at 3-8x them)."""
    seeds = 4000
    keys = jax.random.split(jax.random.key(0), seeds)
    idx = np.asarray(jax.jit(jax.vmap(lambda k: batch_indices(k, 0, n, n)))(keys))

    def chi2(counts, expected):
        return float(((counts - expected) ** 2 / expected).sum())

    first = chi2(np.bincount(idx[:, 0], minlength=n), seeds / n)
    last = chi2(np.bincount(idx[:, -1], minlength=n), seeds / n)
    pairs = np.zeros((n, n))
    np.add.at(pairs, (idx[:, 0], idx[:, 1]), 1)
    assert np.all(np.diag(pairs) == 0)
    pair = chi2(pairs[~np.eye(n, dtype=bool)], seeds / (n * (n - 1)))
    dof, pair_dof = n - 1, n * (n - 1) - 1
    assert first < 3 * dof and last < 3 * dof and pair < 1.6 * pair_dof, (first, last, pair)


def test_batch_size_that_does_not_divide_n_drops_a_few_per_epoch():
    n, b = 10, 3  # 3 steps per epoch, one sample left out
    key = jax.random.key(2)
    epoch = np.concatenate([np.asarray(batch_indices(key, s, n, b)) for s in range(3)])
    assert len(set(epoch.tolist())) == 9
    nxt = np.asarray(batch_indices(key, 3, n, b))
    assert nxt.tolist() != epoch[:3].tolist()


@pytest.mark.parametrize("name", DATA)
def test_minibatch_losses_average_to_the_full_loss_over_an_epoch(name):
    with jax.enable_x64(True):
        obj = objectives.get(name)
        n = obj.data.n
        b = 2 if n % 2 == 0 else 1
        x = jnp.asarray(obj.x0) + 0.1
        key = jax.random.key(5)
        batches = jax.vmap(lambda s: obj.minibatch(x, key, s, b))(jnp.arange(n // b))
        assert float(jnp.mean(batches)) == pytest.approx(float(obj.fn(x)), rel=1e-12)
        assert float(obj.minibatch(x, key, 0, n)) == pytest.approx(float(obj.fn(x)), rel=1e-12)


@pytest.mark.parametrize("bad", [0, 101, 2.5, "full", True])
def test_bad_batch_size_is_refused(bad):
    obj = objectives.get("linear_regression")
    with pytest.raises(ValueError, match="batch_size"):
        obj.minibatch(jnp.zeros(3), jax.random.key(0), 0, bad)


# ---------------------------------------------------------------------- metadata, gradients


def test_parameters_have_readable_names_and_unravel():
    obj = objectives.get("linear_regression")
    assert obj.param_names == ("w[0]", "w[1]", "b")
    p = obj.unravel(np.array([1.0, 2.0, 3.0]))
    assert p["w"].tolist() == [1.0, 2.0] and float(p["b"]) == 3.0
    assert objectives.get("curve_fit").param_names == ("a", "b")
    assert objectives.get("rosenbrock").names_of_params == ("x_0", "x_1")
    mlp = objectives.get("mlp", hidden=2)
    assert mlp.dim == 3 * 2 + 2 and mlp.param_names[:3] == ("w1[0,0]", "w1[0,1]", "w1[1,0]")


@pytest.mark.parametrize("name", ["linear_regression", "curve_fit", "mlp"])
def test_loss_is_half_the_squared_residual_norm(name):
    with jax.enable_x64(True):
        obj = objectives.get(name)
        for x in (obj.x0, obj.x0 + 0.37):
            r = obj.residual_fn(jnp.asarray(x))
            assert float(0.5 * r @ r) == pytest.approx(float(obj.fn(jnp.asarray(x))), rel=1e-13)
    assert objectives.get("logistic_regression").residual_fn is None


@pytest.mark.parametrize("name", DATA)
def test_gradients_pass_check_grad_in_float64(name):
    obj = objectives.get(name)
    rng = np.random.default_rng(0)
    lo, hi = obj.bounds[:, 0], obj.bounds[:, 1]
    with jax.enable_x64(True):
        for x in [obj.x0, *(lo + rng.random((3, obj.dim)) * (hi - lo))]:
            check = gdkit.check_grad(obj, x)
            assert check.forward_error < 1e-12 and check.numeric_error < 1e-6, check


def test_logistic_minimum_matches_scipy_and_separable_data_has_none(tmp_path):
    from scipy.optimize import minimize

    obj = objectives.get("logistic_regression")
    with jax.enable_x64(True):
        fg = jax.jit(jax.value_and_grad(obj.fn))
        res = minimize(lambda x: tuple(map(np.asarray, fg(x))), obj.x0, jac=True, tol=1e-14)
    np.testing.assert_allclose(obj.minima[0].x, res.x, atol=1e-6)
    path = tmp_path / "sep.csv"
    path.write_text("x,label\n-2,0\n-1,0\n1,1\n2,1\n")
    assert objectives.get("logistic_regression", csv=str(path)).minima == ()


# ------------------------------------------------------------------------------ CSV files


def test_csv_data_gives_the_least_squares_fit(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2))
    y = X @ [0.5, -1.5] + 4.0
    path = tmp_path / "house.csv"
    rows = [
        f"{i},{a:.17g},{b:.17g},{t:.17g}" for i, ((a, b), t) in enumerate(zip(X, y, strict=True))
    ]
    path.write_text("id,area,rooms,price\n" + "\n".join(rows) + "\n")
    obj = objectives.get(
        "linear_regression", csv=str(path), features=["area", "rooms"], target="price"
    )
    assert obj.data.feature_names == ("area", "rooms") and obj.data.source == str(path)
    np.testing.assert_allclose(obj.minima[0].x, [0.5, -1.5, 4.0], atol=1e-12)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,y\n1,2,3\n", r":1: no column 'c'.*header has: a, b, y"),
        ("a,c,y\n1,2,3\n4,oops,6\n", r":3: column 'c': 'oops' is not a number"),
        ("a,c,y\n1,2,3\n4,,6\n", r":3: column 'c': an empty cell is not a number"),
        ("a,c,y\n1,2,3\n4,nan,6\n", r":3: column 'c': 'nan' is not finite"),
        ("", r": empty file"),
        ("\n  \n", r": empty file"),
        ("a,c,y\n", r":2: no data rows"),
        ("a,c,y\n1,2,3\n4,5\n", r":3: 2 cells, but the header has 3 columns"),
    ],
)
def test_bad_data_files_name_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad\.csv{message}"):
        objectives.get("linear_regression", csv=str(path), features=["a", "c"], target="y")


def test_missing_file_and_misplaced_columns_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"nope\.csv: cannot read"):
        objectives.get("linear_regression", csv=str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match="features and target go with csv"):
        objectives.get("linear_regression", target="y")
    path = tmp_path / "l.csv"
    path.write_text("x,label\n1,0\n2,3\n")
    with pytest.raises(ValueError, match="labels 0 or 1"):
        objectives.get("logistic_regression", csv=str(path))


# ---------------------------------------------------------------------------- the engine


def test_full_batch_sweep_reaches_the_least_squares_fit():
    """Through the engine as it is today (full batch): the best lane's final_x is the fit."""
    from gdkit.engine.sweep import sweep

    obj = objectives.get("linear_regression", noise=0.1)
    r = sweep(
        obj, "gd", grid={"learning_rate": [0.05, 0.2, 0.5]}, steps=200, tol=1e-6, progress=False
    )
    best = r.best()
    np.testing.assert_allclose(r.final_x.reshape(-1, 3)[best["lane"]], obj.minima[0].x, atol=1e-3)
