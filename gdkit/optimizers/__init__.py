"""Optimizers: optax `GradientTransformationExtraArgs` with sweepable hyperparameters.

Every optimizer is a function (`adam(learning_rate=..., b1=...)`) and a registry name
(`get("adam", ...)`). All accept the common `OPTIONS` (schedule, clip, clip_norm,
weight_decay) and take JAX arrays for numeric hyperparameters, so `jax.vmap` batches a grid of
them into one compiled program. Call `update(updates, state, params, value=, grad=,
value_fn=)`: first-order methods ignore the extra arguments, line-search and second-order
methods need them. The least-squares methods (`gauss_newton`, `levenberg_marquardt`) also need
`residual_fn=` (see `needs_residual_fn`).

  >>> from gdkit import optimizers
  >>> optimizers.names()[:4]
  ['adadelta', 'adagrad', 'adam', 'adamax']
  >>> opt = optimizers.get("adam", learning_rate=0.1, schedule="cosine_decay", decay_steps=100)
"""

from gdkit.optimizers._options import OPTION_DOCS, OPTIONS, SCHEDULES
from gdkit.optimizers._registry import (
    OptimizerInfo,
    check_hparams,
    check_range,
    entries,
    get,
    info,
    names,
)
from gdkit.optimizers.adaptive import adam, adamax, adamw, amsgrad, lion, nadam
from gdkit.optimizers.first_order import adadelta, adagrad, gd, momentum, nesterov, rmsprop
from gdkit.optimizers.least_squares import (
    gauss_newton,
    levenberg_marquardt,
    needs_residual_fn,
    scale_by_gauss_newton,
)
from gdkit.optimizers.linesearch import gd_linesearch, scale_by_armijo_backtracking
from gdkit.optimizers.ncg import ncg, scale_by_ncg
from gdkit.optimizers.second_order import bfgs, lbfgs, newton, scale_by_bfgs, scale_by_newton
from gdkit.optimizers.wolfe import scale_by_wolfe_linesearch

__all__ = [
    "OPTIONS",
    "OPTION_DOCS",
    "SCHEDULES",
    "OptimizerInfo",
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "bfgs",
    "check_hparams",
    "check_range",
    "entries",
    "gauss_newton",
    "gd",
    "gd_linesearch",
    "get",
    "info",
    "lbfgs",
    "levenberg_marquardt",
    "lion",
    "momentum",
    "nadam",
    "names",
    "ncg",
    "needs_residual_fn",
    "nesterov",
    "newton",
    "rmsprop",
    "scale_by_armijo_backtracking",
    "scale_by_bfgs",
    "scale_by_gauss_newton",
    "scale_by_ncg",
    "scale_by_newton",
    "scale_by_wolfe_linesearch",
]
