"""The options every optimizer accepts: a learning-rate schedule, clipping and weight decay.

One mechanism for all optimizers: `schedule(...)` turns `learning_rate` plus the schedule
options into what optax calls a `ScalarOrSchedule`, and `wrap(...)` composes the clipping and
weight-decay transforms around the optimizer's own transformation with `optax.chain`.
Numeric option values may be JAX arrays (sweepable); step counts are Python integers.
"""

from __future__ import annotations

import functools
from typing import Any

import optax

Schedule = str
SCHEDULES = ("constant", "exponential_decay", "cosine_decay", "warmup_cosine")
SCHEDULE_KEYS = ("schedule", "decay_steps", "decay_rate", "alpha", "warmup_steps")
SCHEDULE_ONLY = ("decay_rate", "alpha")  # numbers that mean something only to some schedules

# Option name -> default. `None` means "off".
OPTIONS: dict[str, Any] = {
    "schedule": "constant",
    "decay_steps": None,
    "decay_rate": 0.1,
    "alpha": 0.0,
    "warmup_steps": 0,
    "clip": None,
    "clip_norm": None,
    "weight_decay": None,
}

OPTION_DOCS: dict[str, str] = {
    "schedule": f"learning-rate schedule, one of {', '.join(SCHEDULES)}",
    "decay_steps": "schedule length in steps (needed by every schedule but constant)",
    "decay_rate": "exponential_decay: factor applied per decay_steps",
    "alpha": "cosine_decay / warmup_cosine: final learning rate as a fraction of the peak",
    "warmup_steps": "warmup_cosine: steps of linear warmup from 0 to learning_rate",
    "clip": "clip each update coordinate to [-clip, clip] (optax.clip)",
    "clip_norm": "rescale updates to global norm <= clip_norm (optax.clip_by_global_norm)",
    "weight_decay": "L2 penalty weight_decay/2 ||x||^2 added to the objective (coupled)",
}

_USES = {
    "exponential_decay": {"decay_steps", "decay_rate"},
    "cosine_decay": {"decay_steps", "alpha"},
    "warmup_cosine": {"decay_steps", "alpha", "warmup_steps"},
    "constant": set(),
}


def check_schedule(name: str, options: dict[str, Any]) -> None:
    """Raises ValueError when the schedule options given do not fit `schedule=`."""
    schedule = options.get("schedule", "constant")
    if not isinstance(schedule, str) or schedule not in SCHEDULES:
        raise ValueError(
            f"{name}: unknown schedule {schedule!r}; schedules: {', '.join(SCHEDULES)}"
        )
    for key in ("decay_steps", "decay_rate", "alpha", "warmup_steps"):
        if key in options and key not in _USES[schedule]:
            raise ValueError(
                f"{name}: option {key!r} does not apply to schedule={schedule!r}; "
                f"it applies to schedule={_first_user(key)!r}"
            )
    if schedule != "constant" and options.get("decay_steps") is None:
        raise ValueError(f"{name}: schedule={schedule!r} needs decay_steps (a positive int)")
    warmup, steps = options.get("warmup_steps", 0), options.get("decay_steps")
    if schedule == "warmup_cosine" and not warmup < steps:
        raise ValueError(f"{name}: warmup_steps ({warmup}) must be < decay_steps ({steps})")


def _first_user(key: str) -> str:
    return next(s for s in SCHEDULES if key in _USES[s])


def schedule(
    learning_rate: Any,
    schedule: Schedule = "constant",
    decay_steps: int | None = None,
    decay_rate: Any = 0.1,
    alpha: Any = 0.0,
    warmup_steps: int = 0,
) -> optax.ScalarOrSchedule:
    """Returns `learning_rate` (constant) or an optax schedule starting from / peaking at it.

    Every value but the step counts may be a traced array; only Python integers are branched on.
    """
    if schedule == "constant" or callable(learning_rate):
        return learning_rate
    if schedule == "exponential_decay":
        # optax.exponential_decay branches on `decay_rate == 0` in Python, so it cannot take
        # a traced rate; the formula is the same: init * rate ** (count / transition_steps).
        return lambda count: learning_rate * decay_rate ** (count / decay_steps)
    if schedule == "cosine_decay":
        return optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=alpha)
    # warmup_cosine: a unit-peak optax schedule scaled by the (maybe traced) peak, because
    # optax.warmup_cosine_decay_schedule branches on `peak_value == 0` in Python.
    unit = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps, decay_steps, alpha)
    return lambda count: learning_rate * unit(count)


def wrap(
    inner: optax.GradientTransformation,
    clip: Any = None,
    clip_norm: Any = None,
    weight_decay: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Chains clipping (by value, then by global norm) and an L2 penalty before `inner`."""
    if weight_decay is not None:
        inner = add_l2_penalty(inner, weight_decay)
    parts = []
    if clip is not None:
        parts.append(optax.clip(clip))
    if clip_norm is not None:
        parts.append(optax.clip_by_global_norm(clip_norm))
    if not parts:  # no chain of one: the state keeps `inner`'s own structure (optax's)
        return optax.with_extra_args_support(inner)
    return optax.chain(*parts, inner)


def add_l2_penalty(
    inner: optax.GradientTransformation, weight_decay: Any
) -> optax.GradientTransformationExtraArgs:
    """Runs `inner` on the objective f(x) + weight_decay/2 ||x||^2.

    Adds `weight_decay * params` to the updates and to `grad`, and the penalty to `value` and
    `value_fn`, so line-search and second-order methods see the same penalized objective that
    first-order ones follow. Equals `optax.add_decayed_weights` chained before `inner`.
    """
    inner = optax.with_extra_args_support(inner)

    def penalty(params):
        return 0.5 * weight_decay * optax.tree.norm(params, squared=True)

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("weight_decay needs params: call update(updates, state, params)")
        updates = optax.tree.add_scale(updates, weight_decay, params)
        if extra.get("grad") is not None:
            extra["grad"] = optax.tree.add_scale(extra["grad"], weight_decay, params)
        if extra.get("value") is not None:
            extra["value"] = extra["value"] + penalty(params)
        if extra.get("value_fn") is not None:
            fn = extra["value_fn"]

            @functools.wraps(fn)
            def penalized(x, *args, **kwargs):
                return fn(x, *args, **kwargs) + penalty(x)

            extra["value_fn"] = penalized
        return inner.update(updates, state, params, **extra)

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)
