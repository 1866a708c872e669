r"""The Adam family and Lion: thin, validated wrappers of optax's aliases.

Each function returns exactly optax's transformation for the same hyperparameters, composed
with the common options (see `gdkit.optimizers.OPTIONS`). Notation: :math:`g_t` gradient,
:math:`\alpha_t` learning rate, :math:`u_t` update,
:math:`m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t`, :math:`v_t = \beta_2 v_{t-1} + (1-\beta_2)
g_t^2`, and hats for the bias-corrected :math:`\hat m_t = m_t / (1-\beta_1^t)`,
:math:`\hat v_t = v_t / (1-\beta_2^t)`.
"""

from __future__ import annotations

import jax
import optax

from gdkit.optimizers._registry import register

Scalar = float | jax.Array

_EXAMPLE = """
    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.{call}
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(200):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{{f(x):.2f}}")
      0.00
"""


def _doc(call: str):
    def deco(fn):
        fn.__doc__ = fn.__doc__.replace("    Example: (below)\n", _EXAMPLE.format(call=call)[1:])
        return fn

    return deco


@register("adam", "Adam: bias-corrected first and second moment estimates")
@_doc("adam(learning_rate=0.05)")
def adam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
) -> optax.GradientTransformation:
    r"""Adam (optax.adam).

    .. math:: u_t = -\alpha_t\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    Example: (below)

    References:
      Kingma and Ba, `Adam: A Method for Stochastic Optimization
      <https://arxiv.org/abs/1412.6980>`_, 2014
    """
    return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


@register("adamw", "AdamW: Adam with decoupled weight decay")
@_doc("adamw(learning_rate=0.05, weight_decay=1e-4)")
def adamw(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
    weight_decay: Scalar = 1e-4,
) -> optax.GradientTransformation:
    r"""AdamW (optax.adamw): decoupled weight decay :math:`\lambda` = ``weight_decay``.

    .. math:: u_t = -\alpha_t \left(\hat m_t / (\sqrt{\hat v_t} + \epsilon) + \lambda x_t\right)

    Example: (below)

    References:
      Loshchilov and Hutter, `Decoupled Weight Decay Regularization
      <https://arxiv.org/abs/1711.05101>`_, 2019
    """
    return optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)


@register("nadam", "NAdam: Adam with a Nesterov look-ahead on the first moment")
@_doc("nadam(learning_rate=0.05)")
def nadam(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
) -> optax.GradientTransformation:
    r"""NAdam (optax.nadam).

    .. math:: u_t = -\alpha_t \left(\frac{\beta_1 m_t}{1-\beta_1^{t+1}}
              + \frac{(1-\beta_1) g_t}{1-\beta_1^t}\right) / (\sqrt{\hat v_t} + \epsilon)

    Example: (below)

    References:
      Dozat, `Incorporating Nesterov Momentum into Adam
      <https://openreview.net/pdf?id=OM0jvwB8jIp57ZJjtNEZ>`_, 2016
    """
    return optax.nadam(learning_rate, b1=b1, b2=b2, eps=eps)


@register("amsgrad", "AMSGrad: Adam with a non-decreasing second moment")
@_doc("amsgrad(learning_rate=0.05)")
def amsgrad(
    learning_rate: optax.ScalarOrSchedule = 1e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
) -> optax.GradientTransformation:
    r"""AMSGrad (optax.amsgrad).

    .. math:: \tilde v_t = \max(\tilde v_{t-1}, \hat v_t), \qquad
              u_t = -\alpha_t\, \hat m_t / (\sqrt{\tilde v_t} + \epsilon)

    Example: (below)

    References:
      Reddi et al., `On the Convergence of Adam and Beyond
      <https://openreview.net/forum?id=ryQu7f-RZ>`_, 2018
    """
    return optax.amsgrad(learning_rate, b1=b1, b2=b2, eps=eps)


@register("adamax", "AdaMax: Adam with an infinity-norm second moment")
@_doc("adamax(learning_rate=0.05)")
def adamax(
    learning_rate: optax.ScalarOrSchedule = 2e-3,
    b1: Scalar = 0.9,
    b2: Scalar = 0.999,
    eps: Scalar = 1e-8,
) -> optax.GradientTransformation:
    r"""AdaMax (optax.adamax).

    .. math:: w_t = \max(\beta_2 w_{t-1}, |g_t|), \qquad
              u_t = -\alpha_t\, \hat m_t / (w_t + \epsilon)

    Example: (below)

    References:
      Kingma and Ba, `Adam: A Method for Stochastic Optimization
      <https://arxiv.org/abs/1412.6980>`_, 2014 (section 7)
    """
    return optax.adamax(learning_rate, b1=b1, b2=b2, eps=eps)


@register("lion", "Lion: sign of an interpolated momentum, with decoupled weight decay")
@_doc("lion(learning_rate=0.01, weight_decay=0.0)")
def lion(
    learning_rate: optax.ScalarOrSchedule = 1e-4,
    b1: Scalar = 0.9,
    b2: Scalar = 0.99,
    weight_decay: Scalar = 1e-3,
) -> optax.GradientTransformation:
    r"""Lion (optax.lion): every coordinate moves by exactly :math:`\alpha_t` (plus decay).

    .. math::
      u_t = -\alpha_t \left(\mathrm{sign}(\beta_1 m_{t-1} + (1-\beta_1) g_t) + \lambda x_t\right),
      \qquad m_t = \beta_2 m_{t-1} + (1-\beta_2) g_t

    Example: (below)

    References:
      Chen et al., `Symbolic Discovery of Optimization Algorithms
      <https://arxiv.org/abs/2302.06675>`_, 2023
    """
    return optax.lion(learning_rate, b1=b1, b2=b2, weight_decay=weight_decay)
