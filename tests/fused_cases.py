"""The fused-kernel cases the tests run and `scripts/bench_gpu.py --check-lowering` exports:
first-order optimizers x objectives (the correctness matrix's first-order rows, on the 2-D
classics, a quadratic and a user expression) and the common options.

The tests import this module from tests/ (pytest puts it on the path); the script adds
tests/ to sys.path.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gdkit import objectives, optimizers
from gdkit.engine import fused, programs
from gdkit.engine import resolve as _resolve

# (lowest, highest) learning rate of the lanes, per optimizer: the matrix's range, where 30-60
# steps stay out of chaos, and beyond it for a few lanes that diverge (they must agree too).
LEARNING_RATES = {
    "gd": (1e-4, 5e-3),
    "momentum": (1e-4, 5e-3),
    "nesterov": (1e-4, 5e-3),
    "adagrad": (1e-3, 1.0),
    "rmsprop": (1e-4, 1e-1),
    "adadelta": (1e-2, 10.0),
    **dict.fromkeys(["adam", "adamw", "nadam", "amsgrad", "adamax", "lion"], (1e-4, 1e-1)),
}
FIRST_ORDER = [n for n in optimizers.names() if optimizers.info(n).kind == "first_order"]
OBJECTIVES = {
    "rosenbrock": lambda: objectives.get("rosenbrock"),
    "peaks": lambda: objectives.get("peaks"),
    "quadratic(dim=4)": lambda: objectives.get("quadratic", dim=4, condition_number=20.0, seed=1),
    # a user expression without a known minimum: tol is on the gradient norm
    "expression": lambda: objectives.from_expression(
        "(x - 1)**2 + 2*sin(y)**2 + 0.3*x*y + 0.1*exp(0.5*x)",
        bounds=[(-2.0, 2.0), (-2.0, 2.0)],
    ),
}
# Options every optimizer accepts (static: baked into the program; fixed: traced scalars),
# tried with these optimizers.
OPTIONS_OPTIMIZERS = ("gd", "adam", "adagrad", "lion")
OPTIONS = {
    "plain": ({}, {}),
    "cosine+clip_norm": ({"schedule": "cosine_decay", "decay_steps": 40}, {"clip_norm": 1.0}),
    "warmup+clip+decay": (
        {"schedule": "warmup_cosine", "decay_steps": 50, "warmup_steps": 10},
        {"clip": 0.5, "weight_decay": 0.01},
    ),
    "exponential": ({"schedule": "exponential_decay", "decay_steps": 20}, {"decay_rate": 0.5}),
}


def make_spec(obj, name, static=None, fixed=(), lane_names=("learning_rate",), tol_metric=None):
    make, _display, key = _resolve.optimizer(name)
    metric = tol_metric or ("gap" if obj.f_min is not None else "grad_norm")
    return programs.Spec(
        obj,
        make,
        key,
        tuple(lane_names),
        tuple(fixed),
        tuple(sorted((static or {}).items())),
        "float32",
        metric,
        False,
        1,
    )


def example_args(spec, lanes=256):
    obj = spec.objective
    x0 = jnp.zeros((lanes, obj.dim), jnp.float32)
    hp = {n: jnp.full((lanes,), 0.01, jnp.float32) for n in spec.lane_names}
    fixed = {n: jnp.float32(0.5) for n in spec.fixed_names}
    carry = jax.eval_shape(programs.make_init(spec), x0, hp, fixed, None, jnp.float32(1e12))
    consts = {k: jnp.float32(0.0) for k in fused.CONSTS}
    return carry, hp, fixed, consts, jnp.int32(0)


def lowering_cases():
    """(description, spec) of every fused kernel tests/test_fused.py runs."""
    for name in FIRST_ORDER:
        for label, make in OBJECTIVES.items():
            yield f"{name} on {label}", make_spec(make(), name)
    rosen = objectives.get("rosenbrock")
    for name in OPTIONS_OPTIMIZERS:
        for label, (static, fixed) in OPTIONS.items():
            if label != "plain":
                yield f"{name} on rosenbrock, {label}", make_spec(rosen, name, static, tuple(fixed))
    yield (
        "amsgrad on rosenbrock, b1 swept, b2 fixed",
        make_spec(rosen, "amsgrad", fixed=("b2",), lane_names=("learning_rate", "b1")),
    )
