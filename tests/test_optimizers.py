"""Optimizer tests, table-driven like optax's alias_test.py.

Every optimizer x (parabola, Rosenbrock, conditioned quadratic) x (float32, float64) must reach
the known minimum within the step budget of `SETTINGS`. Optimizers that share optax's names must
reproduce optax's trajectories; hyperparameters must be traceable (vmap equals single runs, new
values do not retrace); and each one must work in a plain optax loop, inside `optax.chain` and
with pytree parameters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdkit import objectives, optimizers

PROBLEMS = {
    "parabola": objectives.get("parabola"),
    "rosenbrock": objectives.get("rosenbrock"),  # from (-1.2, 1)
    # 5-d, eigenvalues 1..50 (L = 50), minimum 0 at a random x*, start at the origin.
    "quadratic": objectives.get("quadratic", dim=5, condition_number=50.0, seed=0),
}


# Constant-step adaptive methods (RMSProp, the Adam family, Lion) hover at a distance ~ lr
# from the minimum, so they run with a cosine decay of the learning rate to 0 over the budget.
def _cos(steps: int, **hp) -> tuple[int, dict]:
    return steps, dict(hp, schedule="cosine_decay", decay_steps=steps)


_ADAM = {
    "parabola": _cos(1000, learning_rate=0.1),
    "rosenbrock": _cos(10_000, learning_rate=0.02),
    "quadratic": _cos(2000, learning_rate=0.05),
}
_QUASI_NEWTON = {"parabola": (5, {}), "rosenbrock": (100, {}), "quadratic": (20, {})}

# name -> problem -> (step budget, hyperparameters). Defaults where none are given.
SETTINGS: dict[str, dict[str, tuple[int, dict]]] = {
    "gd": {
        "parabola": (100, dict(learning_rate=0.1)),
        "rosenbrock": (50_000, dict(learning_rate=1.5e-3)),  # < 2 / lambda_max(H(1, 1))
        "quadratic": (1000, dict(learning_rate=1 / 50)),  # 1 / L
    },
    "momentum": {
        "parabola": (100, dict(learning_rate=0.1, momentum=0.5)),
        "rosenbrock": (5000, dict(learning_rate=1e-3, momentum=0.9)),
        "quadratic": (500, dict(learning_rate=1 / 50, momentum=0.8)),
    },
    "adagrad": {
        "parabola": (500, dict(learning_rate=1.0)),
        "rosenbrock": (20_000, dict(learning_rate=1.0)),
        "quadratic": (2000, dict(learning_rate=0.5)),
    },
    "rmsprop": {
        "parabola": _cos(1000, learning_rate=0.01),
        "rosenbrock": _cos(10_000, learning_rate=5e-3),
        "quadratic": _cos(2000, learning_rate=0.01),
    },
    "adadelta": {
        "parabola": (1000, dict(learning_rate=1.0)),
        "rosenbrock": _cos(20_000, learning_rate=0.3, rho=0.95),
        "quadratic": _cos(5000, learning_rate=0.3),
    },
    "adam": _ADAM,
    "adamw": {k: (n, dict(hp, weight_decay=0.0)) for k, (n, hp) in _ADAM.items()},
    "nadam": _ADAM,
    "amsgrad": {
        "parabola": _cos(1000, learning_rate=0.1),
        # AMSGrad keeps the largest second moment seen (from |g| ~ 200 at the start).
        "rosenbrock": _cos(20_000, learning_rate=1.0),
        "quadratic": _cos(2000, learning_rate=0.2),
    },
    "adamax": {
        "parabola": _cos(1000, learning_rate=0.1),
        "rosenbrock": _cos(10_000, learning_rate=0.05),
        "quadratic": _cos(2000, learning_rate=0.05),
    },
    "lion": {
        "parabola": _cos(2000, learning_rate=0.01, weight_decay=0.0),
        "rosenbrock": _cos(5000, learning_rate=2e-3, weight_decay=0.0),
        "quadratic": _cos(2000, learning_rate=0.01, weight_decay=0.0),
    },
    "gd_linesearch": {"parabola": (20, {}), "rosenbrock": (20_000, {}), "quadratic": (500, {})},
    "newton": {"parabola": (1, {}), "rosenbrock": (50, {}), "quadratic": (1, {})},
    "bfgs": _QUASI_NEWTON,
    "lbfgs": _QUASI_NEWTON,
    "ncg": {"parabola": (5, {}), "rosenbrock": (100, {}), "quadratic": (40, {})},
}
SETTINGS["nesterov"] = SETTINGS["momentum"]
# The least-squares methods need residuals, which these problems do not come with; they are
# tested on residual objectives in test_least_squares.py.
GENERAL = [n for n in optimizers.names() if not optimizers.needs_residual_fn(n)]

# Allowed max-norm distance to the minimizer.
TOL = {"float32": 1e-3, "float64": 1e-3}
TOL_SECOND_ORDER = {"float32": 1e-3, "float64": 1e-7}

# optax's own construction of the optimizers that share its names (same hyperparameters).
OPTAX_TWINS = {
    "gd": (dict(learning_rate=0.01), lambda: optax.sgd(0.01)),
    "momentum": (dict(learning_rate=1e-3), lambda: optax.sgd(1e-3, momentum=0.9)),
    "nesterov": (dict(learning_rate=1e-3), lambda: optax.sgd(1e-3, momentum=0.9, nesterov=True)),
    "adagrad": (dict(learning_rate=0.3), lambda: optax.adagrad(0.3)),
    "rmsprop": (
        dict(learning_rate=0.01, centered=True),
        lambda: optax.rmsprop(0.01, centered=True),
    ),
    "adadelta": (dict(learning_rate=0.5), lambda: optax.adadelta(0.5)),
    "adam": (dict(learning_rate=0.05), lambda: optax.adam(0.05)),
    "adamw": (
        dict(learning_rate=0.05, weight_decay=0.1),
        lambda: optax.adamw(0.05, weight_decay=0.1),
    ),
    "nadam": (dict(learning_rate=0.05), lambda: optax.nadam(0.05)),
    "amsgrad": (dict(learning_rate=0.05), lambda: optax.amsgrad(0.05)),
    "adamax": (dict(learning_rate=0.05), lambda: optax.adamax(0.05)),
    "lion": (dict(learning_rate=0.01), lambda: optax.lion(0.01)),
    "lbfgs": (dict(), lambda: optax.lbfgs()),
}


def run(opt, fn, x0, steps: int, extra_args: bool = True):
    """`steps` optimizer steps as one `lax.scan`; returns the trajectory [steps + 1, ...]."""

    def body(carry, _):
        x, state = carry
        value, grad = jax.value_and_grad(fn)(x)
        if extra_args:
            updates, state = opt.update(grad, state, x, value=value, grad=grad, value_fn=fn)
        else:
            updates, state = opt.update(grad, state, x)
        x = optax.apply_updates(x, updates)
        return (x, state), x

    _, xs = jax.lax.scan(body, (x0, opt.init(x0)), None, length=steps)
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), x0, xs)


def test_settings_cover_every_optimizer():
    assert sorted(SETTINGS) == sorted(GENERAL)
    assert all(sorted(v) == sorted(PROBLEMS) for v in SETTINGS.values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("name", GENERAL)
def test_converges_to_known_minimum(name, problem, dtype):
    obj = PROBLEMS[problem]
    steps, hparams = SETTINGS[name][problem]
    with jax.enable_x64(dtype == "float64"):
        opt = optimizers.get(name, **hparams)
        x0 = jnp.asarray(obj.x0, dtype)
        x = jax.jit(lambda x0: run(opt, obj.fn, x0, steps)[-1])(x0)
        assert x.dtype == jnp.dtype(dtype)
        f = float(obj.fn(x))
    x_star = obj.minima[0].x
    tol = (TOL_SECOND_ORDER if optimizers.info(name).kind == "second_order" else TOL)[dtype]
    np.testing.assert_allclose(np.asarray(x, np.float64), x_star, rtol=0, atol=tol)
    assert f - obj.f_min <= 1e3 * tol**2 + 1e-6 * abs(obj.f_min)


@pytest.mark.parametrize("name", list(OPTAX_TWINS))
def test_trajectory_equals_optax(name):
    hparams, make_optax = OPTAX_TWINS[name]
    obj = PROBLEMS["rosenbrock"]
    x0 = jnp.asarray(obj.x0, jnp.float32)
    ours = jax.jit(lambda x: run(optimizers.get(name, **hparams), obj.fn, x, 30))(x0)
    theirs = jax.jit(lambda x: run(make_optax(), obj.fn, x, 30))(x0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def _numeric_hparams(name: str, problem: str) -> tuple[dict, dict]:
    """(real-valued hyperparameters, the rest) of `SETTINGS[name][problem]` over the defaults."""
    hp = {**optimizers.info(name).hparams, **SETTINGS[name][problem][1]}
    numeric = {k: v for k, v in hp.items() if isinstance(v, float)}
    rest = {k: v for k, v in SETTINGS[name][problem][1].items() if k not in numeric}
    return numeric, rest


@pytest.mark.parametrize("name", GENERAL)
def test_hyperparameters_are_data(name):
    """As the sweep engine does: jit(vmap(run)) over 8 learning rates and starts, with every
    real hyperparameter a traced array, equals the 8 single runs, which compile only once."""
    obj = PROBLEMS["rosenbrock"]
    numeric, rest = _numeric_hparams(name, "rosenbrock")
    lrs = numeric["learning_rate"] * np.geomspace(0.1, 1.0, 8)
    with jax.enable_x64(True):
        grid = {k: jnp.full(8, v) for k, v in numeric.items()} | {"learning_rate": jnp.asarray(lrs)}
        x0s = jnp.asarray(obj.x0) + jnp.linspace(-0.2, 0.2, 8)[:, None]
        traces = []

        def one(hp, x0):
            traces.append(1)  # runs once per trace
            return run(optimizers.get(name, **rest, **hp), obj.fn, x0, 10)

        batched = jax.jit(jax.vmap(one))(grid, x0s)
        single = jax.jit(one)
        for i in range(8):
            x = single({k: v[i] for k, v in grid.items()}, x0s[i])
            np.testing.assert_allclose(batched[i], x, rtol=1e-9, atol=1e-12)
    assert len(traces) == 2  # one for the batch, one for all 8 single runs
    assert np.all(np.isfinite(batched))
    assert not np.allclose(batched[0, 1] - x0s[0], batched[-1, 1] - x0s[-1])  # steps differ


def test_options_are_traceable_and_do_not_recompile():
    obj = PROBLEMS["rosenbrock"]
    x0 = jnp.asarray(obj.x0, jnp.float32)
    traces = []

    @jax.jit
    def final(hp):
        traces.append(1)
        opt = optimizers.adam(schedule="exponential_decay", decay_steps=10, **hp)
        return run(opt, obj.fn, x0, 20)[-1]

    names = ("learning_rate", "decay_rate", "clip", "clip_norm", "weight_decay")
    grid = {k: jnp.asarray([0.1, 0.5], jnp.float32) for k in names}
    batched = jax.vmap(final)(grid)
    for i in range(2):
        single = final({k: v[i] for k, v in grid.items()})
        np.testing.assert_allclose(batched[i], single, rtol=1e-5)
    assert len(traces) <= 2  # at most one for vmap, one for the single runs


FIRST_ORDER = [n for n in optimizers.names() if optimizers.info(n).kind == "first_order"]
NEEDS_FN = [n for n in optimizers.names() if n not in FIRST_ORDER]


@pytest.mark.parametrize("name", FIRST_ORDER)
def test_first_order_ignore_extra_args(name):
    obj = PROBLEMS["rosenbrock"]
    x0 = jnp.asarray(obj.x0, jnp.float32)
    opt = optimizers.get(name, learning_rate=1e-3)
    with_extra = jax.jit(lambda x: run(opt, obj.fn, x, 10))(x0)
    without = jax.jit(lambda x: run(opt, obj.fn, x, 10, extra_args=False))(x0)
    np.testing.assert_array_equal(with_extra, without)


@pytest.mark.parametrize("name", NEEDS_FN)
def test_line_search_and_second_order_need_value_fn(name):
    opt = optimizers.get(name)
    x = jnp.array([-1.2, 1.0])
    with pytest.raises(ValueError, match="value_fn"):
        opt.update(x, opt.init(x), x)


@pytest.mark.parametrize("name", GENERAL)
def test_inside_optax_chain_with_clipping(name):
    obj = PROBLEMS["rosenbrock"]
    steps, hparams = SETTINGS[name]["rosenbrock"]
    opt = optax.chain(optax.clip_by_global_norm(10.0), optimizers.get(name, **hparams))
    x0 = jnp.asarray(obj.x0, jnp.float32)
    xs = jax.jit(lambda x: run(opt, obj.fn, x, min(steps, 200)))(x0)
    fs = jax.vmap(obj.fn)(xs)
    assert np.all(np.isfinite(xs))
    assert fs[-1] < 0.5 * fs[0]


@pytest.mark.parametrize("name", GENERAL)
def test_pytree_params(name):
    obj = PROBLEMS["quadratic"]
    steps, hparams = SETTINGS[name]["quadratic"]

    def tree_fn(p):
        return obj.fn(jnp.concatenate([p["w"], p["b"].reshape(-1)]))

    with jax.enable_x64(True):
        tree0 = {"w": jnp.zeros(3), "b": jnp.zeros((1, 2))}
        opt = optimizers.get(name, **hparams)
        tree = jax.jit(lambda p: run(opt, tree_fn, p, steps))(tree0)
    x = np.concatenate([tree["w"][-1], tree["b"][-1].reshape(-1)])
    np.testing.assert_allclose(x, obj.minima[0].x, rtol=0, atol=TOL["float64"])


# ----------------------------------------------------------------------------- options


def _gd_vs_optax(ours, theirs, steps=40):
    obj = PROBLEMS["rosenbrock"]
    x0 = jnp.asarray(obj.x0, jnp.float32)
    a = jax.jit(lambda x: run(ours, obj.fn, x, steps))(x0)
    b = jax.jit(lambda x: run(theirs, obj.fn, x, steps))(x0)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "options, schedule",
    [
        (
            dict(schedule="exponential_decay", decay_steps=10, decay_rate=0.5),
            optax.exponential_decay(1e-3, 10, 0.5),
        ),
        (
            dict(schedule="cosine_decay", decay_steps=30, alpha=0.1),
            optax.cosine_decay_schedule(1e-3, 30, alpha=0.1),
        ),
        (
            dict(schedule="warmup_cosine", warmup_steps=5, decay_steps=30, alpha=0.1),
            optax.warmup_cosine_decay_schedule(0.0, 1e-3, 5, 30, end_value=1e-4),
        ),
    ],
)
def test_schedules_equal_optax(options, schedule):
    _gd_vs_optax(optimizers.gd(learning_rate=1e-3, **options), optax.sgd(schedule))


def test_clipping_and_weight_decay_equal_optax_chains():
    _gd_vs_optax(
        optimizers.gd(learning_rate=1e-3, clip=0.5), optax.chain(optax.clip(0.5), optax.sgd(1e-3))
    )
    _gd_vs_optax(
        optimizers.gd(learning_rate=1e-3, clip_norm=2.0),
        optax.chain(optax.clip_by_global_norm(2.0), optax.sgd(1e-3)),
    )
    _gd_vs_optax(
        optimizers.momentum(learning_rate=1e-3, weight_decay=0.1),
        optax.chain(optax.add_decayed_weights(0.1), optax.sgd(1e-3, momentum=0.9)),
    )


@pytest.mark.parametrize("name, steps", [("newton", 1), ("lbfgs", 30), ("gd_linesearch", 100)])
def test_weight_decay_penalizes_the_objective(name, steps):
    # min 1/2 x'Ax - b'x + wd/2 |x|^2 is x = (A + wd I)^{-1} b; Newton gets there in one step.
    obj = PROBLEMS["quadratic"]
    with jax.enable_x64(True):
        a = jax.hessian(obj.fn)(jnp.zeros(5))
        b = -jax.grad(obj.fn)(jnp.zeros(5))
        opt = optimizers.get(name, weight_decay=3.0)
        x = jax.jit(lambda x0: run(opt, obj.fn, x0, steps)[-1])(jnp.zeros(5))
        np.testing.assert_allclose(x, jnp.linalg.solve(a + 3.0 * jnp.eye(5), b), atol=1e-7)


# ------------------------------------------------------------------- registry, errors


def test_registry_lists_every_optimizer_with_hparams_and_description():
    assert len(optimizers.names()) == 19
    for entry in optimizers.entries():
        assert entry.description and entry.kind in ("first_order", "line_search", "second_order")
        assert "learning_rate" in entry.hparams
        assert {"schedule", "clip", "clip_norm"} <= set(entry.options)
        assert getattr(optimizers, entry.name) is entry.factory
        assert isinstance(optimizers.get(entry.name), optax.GradientTransformationExtraArgs)
    assert "weight_decay" in optimizers.info("adamw").hparams
    assert "weight_decay" not in optimizers.info("adamw").options
    assert optimizers.info("adam").hparams == {
        "learning_rate": 1e-3,
        "b1": 0.9,
        "b2": 0.999,
        "eps": 1e-8,
    }


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: optimizers.get("nesterv"), r"'nesterv' \(did you mean 'nesterov'\?\); known: "),
        (lambda: optimizers.get("adam", lr=0.1), r"no hyperparameter 'lr'.*learning_rate"),
        (lambda: optimizers.adam(bta1=0.1), r"did you mean 'b1'"),
        (lambda: optimizers.adam(learning_rate=-0.1), r"learning_rate must be .* \(0, inf\)"),
        (lambda: optimizers.adam(learning_rate=float("nan")), r"finite"),
        (lambda: optimizers.adam(b1=1.0), r"b1 must be .* \[0, 1\)"),
        (lambda: optimizers.adam(eps="small"), r"eps must be a number"),
        (lambda: optimizers.gd(learning_rate=np.array([0.1, -1.0])), r"learning_rate"),
        (lambda: optimizers.lbfgs(memory_size=0), r"memory_size must be >= 1"),
        (lambda: optimizers.lbfgs(memory_size=2.5), r"memory_size must be a Python int"),
        (lambda: optimizers.rmsprop(centered=1), r"centered must be True or False"),
        (lambda: optimizers.gd(0.1, learning_rate=0.2), r"both positionally and by keyword"),
        (lambda: optimizers.gd(schedule="linear"), r"unknown schedule 'linear'"),
        (lambda: optimizers.gd(schedule="cosine_decay"), r"needs decay_steps"),
        (lambda: optimizers.gd(decay_rate=0.5), r"decay_rate.*exponential_decay"),
        (
            lambda: optimizers.gd(schedule="warmup_cosine", decay_steps=5, warmup_steps=5),
            r"warmup_steps \(5\) must be < decay_steps",
        ),
        (lambda: optimizers.gd(clip=0.0), r"clip must be"),
        (
            lambda: optimizers.gd(
                learning_rate=optax.constant_schedule(0.1), schedule="cosine_decay", decay_steps=9
            ),
            r"learning_rate is a schedule already",
        ),
    ],
)
def test_invalid_input_raises_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_arrays_are_data_and_never_checked():
    # A negative learning rate given as an array is the caller's business (it may be traced).
    opt = optimizers.gd(learning_rate=jnp.asarray(-0.1))
    x = jnp.array([1.0])
    updates, _ = opt.update(x, opt.init(x), x)
    np.testing.assert_allclose(updates, [0.1])
    # positional hyperparameters and numpy scalars work like keywords and floats
    assert optimizers.momentum(np.float32(0.1), 0.5) is not None
