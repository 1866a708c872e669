r"""Plain and accelerated gradient methods: thin, validated wrappers of optax's aliases.

Each function returns exactly optax's transformation for the same hyperparameters (so the
trajectories are optax's own), composed with the common options (schedule, clipping, weight
decay; see `gdkit.optimizers.OPTIONS`). Notation: :math:`g_t` gradient, :math:`\alpha_t`
learning rate (constant or scheduled), :math:`u_t` update, :math:`x_{t+1} = x_t + u_t`.
"""

from __future__ import annotations

import jax
import optax

from gdkit.optimizers._registry import register

Scalar = float | jax.Array


@register("gd", "plain gradient descent: x -= lr * g")
def gd(learning_rate: optax.ScalarOrSchedule = 0.01) -> optax.GradientTransformation:
    r"""Gradient descent (optax.sgd without momentum).

    .. math:: u_t = -\alpha_t g_t

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.gd(learning_rate=0.1)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(50):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.1e}")
      1.0e-09

    References:
      Cauchy, `Methode generale pour la resolution des systemes d'equations simultanees`, 1847
    """
    return optax.sgd(learning_rate)


@register("momentum", "heavy-ball momentum: m = mu m + g; x -= lr * m")
def momentum(
    learning_rate: optax.ScalarOrSchedule = 0.01, momentum: Scalar = 0.9
) -> optax.GradientTransformation:
    r"""Polyak's heavy ball (optax.sgd with momentum).

    .. math:: m_t = \mu m_{t-1} + g_t, \qquad u_t = -\alpha_t m_t

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.momentum(learning_rate=0.1, momentum=0.5)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(50):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.2f}")
      0.00

    References:
      Polyak, `Some methods of speeding up the convergence of iteration methods
      <https://doi.org/10.1016/0041-5553(64)90137-5>`_, 1964
    """
    return optax.sgd(learning_rate, momentum=momentum)


@register("nesterov", "Nesterov momentum: heavy ball with a look-ahead gradient")
def nesterov(
    learning_rate: optax.ScalarOrSchedule = 0.01, momentum: Scalar = 0.9
) -> optax.GradientTransformation:
    r"""Nesterov's accelerated gradient (optax.sgd with ``nesterov=True``).

    .. math:: m_t = \mu m_{t-1} + g_t, \qquad u_t = -\alpha_t (g_t + \mu m_t)

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.nesterov(learning_rate=0.1, momentum=0.5)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(50):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.2f}")
      0.00

    References:
      Sutskever et al., `On the importance of initialization and momentum in deep learning
      <http://proceedings.mlr.press/v28/sutskever13.pdf>`_, 2013
    """
    return optax.sgd(learning_rate, momentum=momentum, nesterov=True)


@register("adagrad", "AdaGrad: per-coordinate steps lr / sqrt(sum of squared gradients)")
def adagrad(
    learning_rate: optax.ScalarOrSchedule = 0.1,
    initial_accumulator_value: Scalar = 0.1,
    eps: Scalar = 1e-7,
) -> optax.GradientTransformation:
    r"""AdaGrad (optax.adagrad).

    .. math:: G_t = G_{t-1} + g_t^2, \qquad u_t = -\alpha_t\, g_t / \sqrt{G_t + \epsilon}

    with :math:`G_0` = ``initial_accumulator_value``.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.adagrad(learning_rate=1.0)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(100):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.2f}")
      0.00

    References:
      Duchi et al., `Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization <https://jmlr.org/papers/v12/duchi11a.html>`_, 2011
    """
    return optax.adagrad(learning_rate, initial_accumulator_value, eps)


@register("rmsprop", "RMSProp: steps scaled by a running RMS of the gradients")
def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    decay: Scalar = 0.9,
    eps: Scalar = 1e-8,
    initial_scale: Scalar = 0.0,
    centered: bool = False,
) -> optax.GradientTransformation:
    r"""RMSProp (optax.rmsprop).

    .. math:: v_t = \rho v_{t-1} + (1-\rho) g_t^2, \qquad
              u_t = -\alpha_t\, g_t / \sqrt{v_t + \epsilon}

    with :math:`\rho` = ``decay`` and :math:`v_0` = ``initial_scale``; ``centered`` subtracts
    the squared running mean of :math:`g` from :math:`v_t`.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.rmsprop(learning_rate=0.01)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(300):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.2f}")
      0.00

    References:
      Hinton, `Lecture 6.5, Neural Networks for Machine Learning
      <www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf>`_, 2012
    """
    return optax.rmsprop(
        learning_rate, decay=decay, eps=eps, initial_scale=initial_scale, centered=centered
    )


@register("adadelta", "AdaDelta: RMSProp with units corrected by a running RMS of the steps")
def adadelta(
    learning_rate: optax.ScalarOrSchedule = 1.0, rho: Scalar = 0.9, eps: Scalar = 1e-6
) -> optax.GradientTransformation:
    r"""AdaDelta (optax.adadelta).

    .. math::
      v_t = \rho v_{t-1} + (1-\rho) g_t^2, \quad
      \delta_t = \frac{\sqrt{d_{t-1} + \epsilon}}{\sqrt{v_t + \epsilon}} g_t, \quad
      d_t = \rho d_{t-1} + (1-\rho) \delta_t^2, \quad u_t = -\alpha_t \delta_t

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from gdkit import optimizers
      >>> f = lambda x: jnp.sum(x**2)
      >>> opt = optimizers.adadelta(learning_rate=1.0, eps=1e-3)
      >>> x = jnp.array([1.0, 2.0]); state = opt.init(x)
      >>> for _ in range(300):
      ...   u, state = opt.update(jax.grad(f)(x), state, x)
      ...   x = optax.apply_updates(x, u)
      >>> print(f"{f(x):.2f}")
      0.00

    References:
      Zeiler, `ADADELTA: An Adaptive Learning Rate Method
      <https://arxiv.org/abs/1212.5701>`_, 2012
    """
    return optax.adadelta(learning_rate, rho=rho, eps=eps)
