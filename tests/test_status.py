"""Lane statuses against closed forms: `converged` means the gap to a known minimum fell to tol
and stayed there; `stationary` means only the gradient norm did (no minimum known, so a
plateau or a saddle may be one); the labels shown to users say which."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdkit import objectives
from gdkit.sweep import sweep


def _kicked_gd(learning_rate, kick_at=5):
    """Gradient descent that adds +1 to x once, in the update of step `kick_at`."""

    def init(params):
        del params
        return jnp.zeros([], jnp.int32)

    def update(grads, count, params=None):
        del params
        kick = jnp.where(count == kick_at, 1.0, 0.0).astype(grads.dtype)
        return -learning_rate * grads + kick, count + 1

    return optax.GradientTransformation(init, update)


def test_a_lane_that_leaves_tol_and_returns_converges_when_it_is_back_for_good():
    # f = x^2 / 2 from x0 = 1 with lr = 1: x_1 = 0 (within tol from step 1), the kick in step
    # 5's update puts x_6 = 1 (f = 0.5, outside), and x_7 = 0 again until the end. The lane
    # reached tol to stay at step 7, not step 1.
    obj = objectives.wrap(
        lambda x: 0.5 * jnp.sum(x**2), dim=1, x0=[1.0], minima=[([0.0], 0.0)], name="half_sq"
    )
    with jax.enable_x64(True):
        r = sweep(
            obj, _kicked_gd, grid={"learning_rate": [1.0]}, steps=20, tol=1e-6, progress=False
        )
    assert r.status[0, 0] == "converged"
    assert r.steps_to_tol[0, 0] == 7


def test_a_lane_kicked_out_of_tol_at_the_end_does_not_converge():
    # The kick in the last step's update leaves x_T = 1: f - f* = 0.5 > tol at the end.
    obj = objectives.wrap(
        lambda x: 0.5 * jnp.sum(x**2), dim=1, x0=[1.0], minima=[([0.0], 0.0)], name="half_sq"
    )
    kicked = lambda learning_rate: _kicked_gd(learning_rate, kick_at=19)  # noqa: E731
    with jax.enable_x64(True):
        r = sweep(obj, kicked, grid={"learning_rate": [1.0]}, steps=20, tol=1e-6, progress=False)
    assert r.status[0, 0] == "max_steps"
    assert r.steps_to_tol[0, 0] == -1


def test_the_gallery_label_agrees_with_the_curve_drawn():
    # The optimizer gallery's Adam run on Rosenbrock (lr = 10^(-4 + 5 * 44/63) from the
    # gallery's 64-point grid) falls under tol near step 674, climbs back to a gap of ~20
    # around step 1450 and returns under tol. Its full trajectory (the curve drawn) must stay
    # within tol from the steps_to_tol its label reports.
    lr = float(np.logspace(-4, 1, 64)[44])
    r = sweep(
        "rosenbrock",
        "adam",
        grid={"learning_rate": [lr]},
        steps=2000,
        tol=1e-6,
        record_every=10,
        trajectories=[0],
        progress=False,
    )
    gap = r.trajectory_loss[0].astype(np.float64)  # f* = 0
    assert r.status[0, 0] == "converged"
    outside = np.flatnonzero(gap > 1e-6)
    assert outside.size and outside[0] < 674 < outside[-1]  # the dip and the climb happen
    assert r.steps_to_tol[0, 0] == outside[-1] + 1
