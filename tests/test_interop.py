"""gdkit optimizers in the optax ecosystem: `optax.inject_hyperparams` and optax-native state.

Every registered optimizer runs under `optax.inject_hyperparams` with the same numbers as
without it, and a learning rate changed in the injected state at run time takes effect exactly
as if the optimizer had been rebuilt with it. Where gdkit's optimizer is optax's alias without
options, its state is optax's own, so states move between the two.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdkit import optimizers


def residuals(x):
    """Rosenbrock's residuals in 3-d: f = 1/2 |r|^2 has its minimum 0 at (1, 1, 1)."""
    return jnp.concatenate([1.0 - x[:-1], 10.0 * (x[1:] - x[:-1] ** 2)])


def loss(x):
    return 0.5 * jnp.sum(residuals(x) ** 2)


X0 = np.array([-1.2, 1.0, 0.5])


def _stepper(opt, needs_r=False):
    extra = {"residual_fn": residuals} if needs_r else {}

    @jax.jit
    def step(x, state):
        v, g = jax.value_and_grad(loss)(x)
        u, state = opt.update(g, state, x, value=v, grad=g, value_fn=loss, **extra)
        return optax.apply_updates(x, u), state

    return opt, step


def _trajectory(stepper, steps, x=X0, state=None, change_at=None, new_lr=None):
    """x_0..x_steps and the states of `stepper` on `loss`; at step `change_at` the injected
    state's learning rate is set to `new_lr`."""
    opt, step = stepper
    x = jnp.asarray(x)
    state = opt.init(x) if state is None else state
    xs, states = [x], [state]
    for t in range(steps):
        if t == change_at:
            state.hyperparams["learning_rate"] = jnp.asarray(new_lr, x.dtype)
        x, state = step(x, state)
        xs.append(x)
        states.append(state)
    return np.stack(xs), states


def _same(a, b):
    """Equal up to a few roundings: XLA folds a Python-number hyperparameter into the plain
    program's arithmetic (x * 1.0, + 0.0, fused multiply-adds) but not an injected array."""
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)


# compiling their line searches three times takes 5-20 s each
_SLOW = {"bfgs", "lbfgs", "ncg", "newton", "levenberg_marquardt"}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow if n in _SLOW else ()) for n in optimizers.names()],
)
def test_inject_hyperparams_matches_and_changes_at_run_time(name):
    factory = getattr(optimizers, name)
    needs_r = optimizers.needs_residual_fn(name)
    lr = optimizers.info(name).hparams["learning_rate"]
    lr2 = 0.3 * lr
    with jax.enable_x64(True):
        injected = _stepper(optax.inject_hyperparams(factory)(learning_rate=lr), needs_r)
        # the numeric hyperparameters are injectable, the options and structural ints are not
        numeric = {k for k, v in optimizers.info(name).hparams.items() if isinstance(v, float)}
        assert set(injected[0].init(jnp.asarray(X0)).hyperparams) == numeric

        plain, states = _trajectory(_stepper(factory(learning_rate=lr), needs_r), 8)
        same, _ = _trajectory(injected, 8)
        _same(same, plain)

        # lr changed in the state after 4 steps == 4 steps at lr, then a rebuilt optimizer at lr2
        changed, _ = _trajectory(injected, 8, change_at=4, new_lr=lr2)
        rebuilt = _stepper(factory(learning_rate=lr2), needs_r)
        tail, _ = _trajectory(rebuilt, 4, x=plain[4], state=states[4])
        _same(changed, np.concatenate([plain[:5], tail[1:]]))
        if name != "ncg":  # ncg's trial steps after the first come from f's last two values
            assert not np.array_equal(changed[5:], plain[5:])  # the new rate did something


def test_inject_hyperparams_keeps_options_static():
    """Options given to the injected factory stay Python values (schedule, clipping); a
    structural int given there must be named in static_args, and the error says so."""
    with jax.enable_x64(True):
        x = jnp.asarray(X0)
        kw = dict(learning_rate=0.1, schedule="cosine_decay", decay_steps=20, clip_norm=1.0)
        opt = optax.inject_hyperparams(optimizers.adam, static_args=("decay_steps",))(**kw)
        assert set(opt.init(x).hyperparams) == {"learning_rate", "b1", "b2", "eps", "clip_norm"}
        ref, _ = _trajectory(_stepper(optimizers.adam(**kw)), 6)
        got, _ = _trajectory(_stepper(opt), 6)
        _same(got, ref)
        with pytest.raises(ValueError, match=r"decay_steps must be a Python int.*static_args"):
            optax.inject_hyperparams(optimizers.adam)(**kw).init(x)


OPTAX_TWINS = {
    "gd": lambda: optax.sgd(0.1),
    "momentum": lambda: optax.sgd(0.1, momentum=0.9),
    "nesterov": lambda: optax.sgd(0.1, momentum=0.9, nesterov=True),
    "adagrad": lambda: optax.adagrad(0.1, 0.1, 1e-7),
    "rmsprop": lambda: optax.rmsprop(0.1),
    "adadelta": lambda: optax.adadelta(0.1),
    "adam": lambda: optax.adam(0.1),
    "adamw": lambda: optax.adamw(0.1),
    "nadam": lambda: optax.nadam(0.1),
    "amsgrad": lambda: optax.amsgrad(0.1),
    "adamax": lambda: optax.adamax(0.1),
    "lion": lambda: optax.lion(0.1),
}


@pytest.mark.parametrize("name", sorted(OPTAX_TWINS))
def test_state_round_trips_with_optax(name):
    """A state saved from optax's optimizer continues in gdkit's, and back, with the same
    tree structure and the same updates."""
    theirs, ours = OPTAX_TWINS[name](), getattr(optimizers, name)(learning_rate=0.1)
    params = {"w": jnp.array([[0.5, -1.0], [2.0, 0.3]]), "b": jnp.array([0.1, -0.2])}
    grads = jax.tree.map(lambda p: 0.3 * p - 0.1, params)
    s_theirs, s_ours = theirs.init(params), ours.init(params)
    assert jax.tree.structure(s_ours) == jax.tree.structure(s_theirs)
    for _ in range(3):  # advance optax's state, then step both from it
        _, s_theirs = theirs.update(grads, s_theirs, params)
    u_theirs, next_theirs = theirs.update(grads, s_theirs, params)
    u_ours, next_ours = ours.update(grads, s_theirs, params)  # optax's state into gdkit's
    jax.tree.map(np.testing.assert_array_equal, u_ours, u_theirs)
    jax.tree.map(np.testing.assert_array_equal, next_ours, next_theirs)
    u_back, _ = theirs.update(grads, next_ours, params)  # and gdkit's back into optax's
    u_fwd, _ = ours.update(grads, next_ours, params)
    jax.tree.map(np.testing.assert_array_equal, u_back, u_fwd)


# -- pytree parameters ---------------------------------------------------------------------

_X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(6, 2)
_Y = np.sin(3 * _X[:, :1]) + _X[:, 1:]


def mlp_loss(params):
    """A 2-2(tanh)-1 network's mean squared error, written over a dict of arrays."""
    h = jnp.tanh(_X @ params["w1"] + params["b1"])
    return jnp.mean((h @ params["w2"] + params["b2"] - _Y) ** 2)


def mlp_loss_flat(x):
    """The same loss written by hand over the flat vector, in JAX's order of the dict's
    leaves (keys sorted: b1 [2], b2 [1], w1 [2, 2], w2 [2, 1])."""
    b1, b2, w1, w2 = x[0:2], x[2:3], x[3:7].reshape(2, 2), x[7:9].reshape(2, 1)
    h = jnp.tanh(_X @ w1 + b1)
    return jnp.mean((h @ w2 + b2 - _Y) ** 2)


PARAMS = {
    "w1": np.array([[0.3, -0.2], [0.1, 0.4]], np.float32),
    "b1": np.array([0.0, 0.1], np.float32),
    "w2": np.array([[0.5], [-0.3]], np.float32),
    "b2": np.array([0.05], np.float32),
}


def test_sweep_of_a_pytree_equals_the_hand_flattened_sweep():
    from gdkit import objectives
    from gdkit.engine.sweep import sweep

    lrs = {"learning_rate": [0.01, 0.1]}
    second = {k: v * 0.5 for k, v in PARAMS.items()}
    tree = sweep(mlp_loss, "adam", grid=lrs, x0=[PARAMS, second], steps=60, progress=False)
    flat_x0 = np.stack(
        [np.concatenate([p[k].ravel() for k in ("b1", "b2", "w1", "w2")]) for p in (PARAMS, second)]
    )
    flat = sweep(
        objectives.wrap(mlp_loss_flat, dim=9),
        "adam",
        grid=lrs,
        x0=flat_x0,
        steps=60,
        progress=False,
    )
    np.testing.assert_array_equal(tree.starts, flat.starts)
    np.testing.assert_array_equal(tree.final_x, flat.final_x)
    np.testing.assert_array_equal(tree.final_loss, flat.final_loss)
    assert tree.param_names[:4] == ("b1[0]", "b1[1]", "b2[0]", "w1[0,0]")
    assert tree.param_names[-2:] == ("w2[0,0]", "w2[1,0]")
    row = tree.row(3)  # learning_rate 0.1, second start
    assert row["x0_w1[1,1]"] == pytest.approx(0.2) and "final_x_b2[0]" in row
    # pytrees back: one lane, and every lane with the sweep's axes in front
    one = tree.final_params(3)
    np.testing.assert_array_equal(one["w2"], flat.final_x[1, 1, 7:9].reshape(2, 1))
    every = tree.final_params()
    assert every["w1"].shape == (2, 2, 2, 2) and every["b2"].shape == (2, 2, 1)
    np.testing.assert_array_equal(every["w1"][1, 1], one["w1"])
    assert float(mlp_loss(one)) == pytest.approx(float(tree.final_loss[1, 1]), rel=1e-5)


def test_pytree_x0_errors_name_the_argument():
    from gdkit.engine.sweep import sweep

    with pytest.raises(TypeError, match=r"sweep: a pytree x0 needs the objective as a function"):
        sweep("rosenbrock", "adam", x0=PARAMS, steps=5, progress=False)
    bad = {**PARAMS, "b2": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match=r"x0\[1\]: leaf shapes"):
        sweep(mlp_loss, "adam", x0=[PARAMS, bad], steps=5, progress=False)


def test_grid_is_optional():
    """Without a grid nothing is swept: one lane per start and seed, and the numbers are those
    of a one-point grid."""
    from gdkit import starts
    from gdkit.engine.sweep import sweep

    x0 = starts.uniform("rosenbrock", 3, seed=0)
    none = sweep("rosenbrock", "adam", x0=x0, steps=50, seeds=2, progress=False)
    one = sweep(
        "rosenbrock",
        "adam",
        grid={"learning_rate": [1e-3]},
        x0=x0,
        steps=50,
        seeds=2,
        progress=False,
    )
    assert none.dims == ("start", "seed") and none.shape == (3, 2)
    np.testing.assert_array_equal(none.final_x, one.final_x[0])


def test_pytree_result_saves_and_loads_its_tree(tmp_path):
    from gdkit.engine.sweep import sweep
    from gdkit.result import SweepResult

    nested = {"layer": [PARAMS["w1"], PARAMS["b1"]], "out": (PARAMS["w2"], PARAMS["b2"])}

    def loss(p):
        (w1, b1), (w2, b2) = p["layer"], p["out"]
        return mlp_loss({"w1": w1, "b1": b1, "w2": w2, "b2": b2})

    r = sweep(loss, "gd", x0=nested, steps=3, progress=False)
    assert r.param_names[:2] == ("layer.0[0,0]", "layer.0[0,1]")
    r.save(tmp_path / "r.npz")
    back = SweepResult.load(tmp_path / "r.npz")
    assert back.param_names == r.param_names
    got, want = back.final_params(0), r.final_params(0)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    jax.tree.map(np.testing.assert_array_equal, got, want)
