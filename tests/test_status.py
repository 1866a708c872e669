"""Lane statuses against closed forms: `converged` means the gap to a known minimum fell to tol
and stayed there; `stationary` means only the gradient norm did (no minimum known, so a
plateau or a saddle may be one); the labels shown to users say which."""

import csv
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gdkit import objectives, plots
from gdkit.engine.sweep import sweep
from gdkit.experiments import rundir
from gdkit.experiments.cli import main
from gdkit.result import SweepResult


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


def _saddle(minima=()):
    # f(x, y) = x^2 - y^2: a saddle at the origin, unbounded below (no minimum at all).
    return objectives.wrap(
        lambda z: z[0] ** 2 - z[1] ** 2, dim=2, x0=[1.0, 0.0], minima=minima, name="saddle"
    )


def test_gradient_descent_onto_a_saddle_is_stationary_not_converged():
    # From (1, 0) gradient descent keeps y = 0 exactly: x_k = (1 - 2 lr)^k, |grad f|_k = 2 x_k.
    # With lr = 0.25, |grad f|_k = 2 * 0.5^k <= 1e-3 from k = 11 on.
    with jax.enable_x64(True):
        r = sweep(
            _saddle(), "gd", grid={"learning_rate": [0.25]}, steps=40, tol=1e-3, progress=False
        )
    assert r.tol_metric == "grad_norm"
    assert r.status[0, 0] == "stationary"
    assert r.steps_to_tol[0, 0] == 11
    assert not r.converged.any() and r.stationary.all()
    assert r.counts() == {"converged": 0, "stationary": 1, "max_steps": 0, "diverged": 0}
    np.testing.assert_allclose(r.final_x[0, 0], [0.5**40, 0.0], atol=1e-15)


def test_the_same_descent_to_a_known_minimum_is_converged():
    # f = x^2 + y^2: with its minimum given, reaching it is `converged` (gap 0.25^k <= tol
    # from k = 10 on: 4^-10 = 9.5e-7); without, the same lane is only `stationary`.
    bowl = lambda z: z[0] ** 2 + z[1] ** 2  # noqa: E731
    known = objectives.wrap(bowl, dim=2, x0=[1.0, 0.0], minima=[([0.0, 0.0], 0.0)], name="b")
    unknown = objectives.wrap(bowl, dim=2, x0=[1.0, 0.0], name="b")
    with jax.enable_x64(True):
        a = sweep(known, "gd", grid={"learning_rate": [0.25]}, steps=30, tol=1e-6, progress=False)
        b = sweep(unknown, "gd", grid={"learning_rate": [0.25]}, steps=30, tol=1e-6, progress=False)
    assert (a.status[0, 0], a.steps_to_tol[0, 0]) == ("converged", 10)
    # |grad f|_k = 2 * 0.5^k <= 1e-6 from k = 21 on (2 * 0.5^21 = 9.5e-7).
    assert (b.status[0, 0], b.steps_to_tol[0, 0]) == ("stationary", 21)


def test_the_xor_network_on_its_plateau_is_stationary_and_never_best():
    # mlp.yaml's Adam grid: at lr = 10^(-3 + 3 * 22/23) Adam stalls on the XOR network's
    # plateau at loss 0.25 with |grad| < tol; at lr = 10^(-3 + 3 * 21/23) it fits XOR (loss near
    # the infimum 0). Neither minimum is known, so both are `stationary`; best() is the fit.
    obj = objectives.get("mlp", hidden=4, seed=0)
    lrs = np.logspace(-3, 0, 24)[[21, 22]]
    r = sweep(obj, "adam", grid={"learning_rate": lrs}, steps=1500, tol=1e-4, progress=False)
    assert obj.f_min is None
    assert r.status.ravel().tolist() == ["stationary", "stationary"]
    plateau = r.row(1)
    g = np.linalg.norm(np.asarray(jax.grad(obj.fn)(jnp.asarray(r.final_x[1, 0]))))
    assert g <= 1e-4 and abs(plateau["final_loss"] - 0.25) < 1e-3
    assert r.row(0)["final_loss"] < 1e-3
    assert r.best()["lane"] == 0
    assert r.representative()["lane"] == 0
    with pytest.raises(ValueError, match="no converged lane"):
        r.best(converged=True)


def test_a_format_1_file_loads_with_its_gradient_norm_lanes_stationary(tmp_path):
    # Format 1 (before `stationary`) called a lane within tol on |grad f| "converged".
    r = sweep(
        _saddle(), "gd", grid={"learning_rate": [0.25, 0.01]}, steps=40, tol=1e-3, progress=False
    )
    assert r.status.ravel().tolist() == [
        "stationary",
        "max_steps",
    ]  # lr .01: |grad| = 2 * .98^40 = .89
    r.save(tmp_path / "new.npz")
    with np.load(tmp_path / "new.npz") as z:
        data = {k: z[k] for k in z.files}
    meta = json.loads(str(data["meta"]))
    assert meta["format"] == "gdkit.SweepResult/2"
    meta["format"] = "gdkit.SweepResult/1"
    data["meta"] = np.array(json.dumps(meta))
    data["status"] = np.where(data["status"] == "stationary", "converged", data["status"])
    np.savez(tmp_path / "old.npz", **data)
    old = SweepResult.load(tmp_path / "old.npz")
    assert old.status.ravel().tolist() == ["stationary", "max_steps"]
    assert old.counts() == r.counts()


# A double well without its minima given: from (0, 1.5) gradient descent keeps x = 0 and
# y_k = 1.5 (1 - 2 lr)^k, so it ends on the saddle (0, 0), f = 1, with |grad f|_k = 2 |y_k|:
# with lr = 0.1, 3 * 0.8^k <= 1e-4 from k = 47 on; with lr = 0.001, |grad f| = 2.45 at k = 100.
WELL = """
name: well
objectives:
  - {expr: "(x**2 - 1)**2 + y**2", x0: [0, 1.5], bounds: [[-2, 2], [-2, 2]]}
optimizers:
  - {name: gd, learning_rate: [0.1, 0.001]}
starts: {kind: default}
steps: 100
tol: 1.0e-4
record_every: 10
plots: []
"""


def test_runs_csv_and_summary_say_stationary(tmp_path, capsys):
    (tmp_path / "well.yaml").write_text(WELL)
    assert main(["run", str(tmp_path / "well.yaml"), "--out", str(tmp_path), "--no-progress"]) == 0
    run_dir = pathlib.Path(capsys.readouterr().out.strip().splitlines()[-1])
    with open(run_dir / "runs.csv") as f:
        rows = {float(r["learning_rate"]): r for r in csv.DictReader(f)}
    assert (rows[0.1]["status"], rows[0.1]["steps_to_tol"]) == ("stationary", "47")
    assert (rows[0.001]["status"], rows[0.001]["steps_to_tol"]) == ("max_steps", "-1")
    assert rows[0.1]["gap"] == ""  # no minimum known
    assert float(rows[0.1]["final_loss"]) == pytest.approx(1.0, abs=1e-6)
    text = (run_dir / "summary.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| objective"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in text.splitlines() if line.startswith("| (x**2"))
    values = dict(zip(cells, [c.strip() for c in row.strip("|").split("|")], strict=True))
    assert values["steps to tol"] == "47 (stationary)"
    assert (values["converged"], values["stationary"]) == ("0%", "50%")
    (back,) = rundir.load_results(run_dir)
    assert back.counts() == {"converged": 0, "stationary": 1, "max_steps": 1, "diverged": 0}


def test_plot_labels_say_stationary_where_no_minimum_is_known():
    well = objectives.wrap(
        lambda z: (z[0] ** 2 - 1) ** 2 + z[1] ** 2,
        dim=2,
        x0=[0.0, 1.5],
        bounds=[[-2, 2], [-2, 2]],
        name="well",
    )
    r = sweep(
        well,
        "gd",
        grid={"learning_rate": [0.1, 0.001]},
        x0=[[0.0, 1.5], [0.0, -1.5]],
        steps=100,
        tol=1e-4,
        trajectories="representative",
        progress=False,
    )
    legend = [t.get_text() for t in plots.contour([r], well).legends[0].get_texts()]
    assert "gd (lr=0.1): stationary after 47 steps (|∇f| ≤ tol), f = 1" in legend
    assert not any("converged" in t for t in legend)
    legend = [t.get_text() for t in plots.loss([r], well).legends[0].get_texts()]
    assert "gd (lr=0.1): 2/2 runs stationary" in legend
    fig = plots.lr_sensitivity([r], well)
    assert fig.axes[1].get_ylabel() == "stationary (%)"
    np.testing.assert_array_equal(plots.sensitivity_curve(r).stationary, [1.0, 0.0])


def test_the_epochs_legend_counts_stationary_runs_of_a_fit_without_its_minimum():
    # Least squares without its lstsq minimum given: full-batch descent at lr 0.05 is linear
    # convergence on a strongly convex quadratic, so |grad f| is far under 1e-2 by step 400.
    obj = objectives.get("linear_regression", n=40, noise=0.1, seed=0)
    obj = dataclasses.replace(obj, minima=())
    r = sweep(
        obj,
        "gd",
        grid={"learning_rate": [0.05], "batch_size": ["full"]},
        steps=400,
        seeds=2,
        tol=1e-2,
        progress=False,
    )
    legend = [t.get_text() for t in plots.epochs([r], obj).legends[0].get_texts()]
    legend = [t for t in legend if not t.startswith("recorded loss")]  # the markers' key
    assert legend == ["gd, batch (lr=0.05): 2/2 stationary"]
