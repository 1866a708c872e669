"""Figures: each kind writes a real PNG where it applies and is skipped where it does not;
the basin classification and the stability edge are checked against known answers."""

import dataclasses
import struct

import numpy as np
import pytest

from gdkit import objectives, plots, starts
from gdkit.engine.sweep import sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    return struct.unpack(">II", data[16:24])


def assert_plausible_png(path):
    assert path.stat().st_size > 15_000, f"{path.name} is suspiciously small"
    w, h = png_size(path)
    assert 500 <= w <= 1500 and 400 <= h <= 1500, (path.name, w, h)


@pytest.fixture(scope="module")
def himmelblau_runs():
    grid = {"learning_rate": np.array([1e-3, 3e-3, 1e-2, 3e-2])}
    x0 = starts.grid("himmelblau", 6)
    return [
        sweep(
            "himmelblau",
            opt,
            grid=grid,
            x0=x0,
            steps=200,
            tol=1e-6,
            trajectories="best",
            progress=False,
        )
        for opt in ("gd", "adam")
    ]


def test_draw_writes_every_kind_that_applies(himmelblau_runs, tmp_path):
    obj = objectives.get("himmelblau")
    paths = plots.draw(himmelblau_runs, {"himmelblau": obj}, tmp_path)
    assert sorted(p.name for p in paths) == [
        "basins-himmelblau-adam.png",
        "basins-himmelblau-gd.png",
        "contour-himmelblau.png",
        "loss-himmelblau.png",
        "lr_sensitivity-himmelblau.png",
        "surface-himmelblau.png",
    ]
    for p in paths:
        assert p.parent == tmp_path
        assert_plausible_png(p)
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically, no leftovers


def test_draw_only_the_kinds_asked_for(himmelblau_runs, tmp_path):
    obj = objectives.get("himmelblau")
    paths = plots.draw(himmelblau_runs, {"himmelblau": obj}, tmp_path, kinds=["loss"])
    assert [p.name for p in paths] == ["loss-himmelblau.png"]
    with pytest.raises(ValueError, match="unknown plot kind"):
        plots.draw(himmelblau_runs, {"himmelblau": obj}, tmp_path, kinds=["histogram"])
    with pytest.raises(ValueError, match="no Objective"):
        plots.draw(himmelblau_runs, {}, tmp_path)


def test_an_objective_without_results_gets_the_figures_that_need_none(himmelblau_runs, tmp_path):
    """`gdkit run` draws the surface before the sweeps end: from the objective alone, the
    same bytes as drawn with the results."""
    obj, quad = objectives.get("himmelblau"), objectives.get("quadratic", dim=3)
    both = {"himmelblau": obj, quad.name: quad}
    alone = plots.draw([], both, tmp_path / "alone")  # the 3-D quadratic has no surface
    assert [p.name for p in alone] == ["surface-himmelblau.png"]
    with_runs = plots.draw(himmelblau_runs, {"himmelblau": obj}, tmp_path / "runs")
    assert (tmp_path / "runs" / "surface-himmelblau.png") in with_runs
    assert alone[0].read_bytes() == (tmp_path / "runs" / "surface-himmelblau.png").read_bytes()
    assert plots.RESULT_FREE == ("surface",)


def test_inapplicable_kinds_are_skipped(tmp_path):
    # 3-D objective: no contour, surface or basins; one start: no basins; fixed lr: no
    # lr_sensitivity.
    rosen3 = objectives.get("rosenbrock", dim=3)
    r3 = sweep(rosen3, "adam", grid={"learning_rate": [1e-2, 1e-1]}, steps=50, progress=False)
    paths = plots.draw([r3], {r3.objective: rosen3}, tmp_path / "a")
    assert sorted(p.name for p in paths) == ["loss-rosenbrock.png", "lr_sensitivity-rosenbrock.png"]

    rosen = objectives.get("rosenbrock")
    r = sweep(
        rosen,
        "momentum",
        grid={"learning_rate": 1e-3, "momentum": [0.5, 0.9]},
        steps=50,
        progress=False,
    )
    paths = plots.draw([r], {"rosenbrock": rosen}, tmp_path / "b")
    assert sorted(p.name for p in paths) == [
        "contour-rosenbrock.png",
        "loss-rosenbrock.png",
        "surface-rosenbrock.png",
    ]
    for p in paths:
        assert_plausible_png(p)

    with pytest.raises(plots.NotApplicable, match="2-D"):
        plots.contour([r3], rosen3)
    with pytest.raises(plots.NotApplicable, match="learning_rate"):
        plots.lr_sensitivity([r], rosen)
    with pytest.raises(plots.NotApplicable, match="2-D"):
        plots.surface(rosen3)
    with pytest.raises(plots.NotApplicable, match="starts"):
        plots.basins(r, rosen)


def test_all_diverged_and_unknown_minimum_still_draw(tmp_path):
    # The saddle x^2 + 3xy + y^2 has no minimum: gradient descent must diverge on it.
    saddle = objectives.get("saddle")
    r = sweep(saddle, "gd", grid={"learning_rate": [0.05, 0.1]}, steps=300, progress=False)
    assert r.counts()["diverged"] == 2
    paths = plots.draw([r], {"saddle": saddle}, tmp_path)
    assert {p.name for p in paths} >= {"contour-saddle.png", "loss-saddle.png"}
    for p in paths:
        assert_plausible_png(p)


def test_classify_synthetic_points():
    mins = objectives.get("himmelblau").minima
    radius = 0.1
    x = np.array(
        [
            [3.0, 2.05],  # near minimum 0
            [-2.80, 3.13],  # near minimum 1
            [-3.78, -3.28],  # near minimum 2
            [3.58, -1.85],  # near minimum 3
            [0.0, 0.0],  # nowhere
            [3.0, 2.2],  # near minimum 0 but outside the radius
            [np.nan, 1.0],  # not finite
            [3.0, 2.0],  # at minimum 0 but flagged diverged
        ]
    )
    diverged = np.array([False] * 7 + [True])
    got = plots.classify(x, mins, radius, diverged)
    assert got.tolist() == [
        0,
        1,
        2,
        3,
        plots.ELSEWHERE,
        plots.ELSEWHERE,
        plots.DIVERGED,
        plots.DIVERGED,
    ]
    # Shape is kept: [..., d] -> [...].
    assert plots.classify(x[:4].reshape(2, 2, 2), mins, radius).tolist() == [[0, 1], [2, 3]]
    # The radius never lets two minima claim the same point.
    r = plots.basin_radius(objectives.get("himmelblau"))
    xs = np.array([m.x for m in mins])
    assert 2 * r < min(np.linalg.norm(a - b) for i, a in enumerate(xs) for b in xs[i + 1 :])


def test_gd_ends_in_the_minimum_it_starts_next_to(tmp_path):
    obj = objectives.get("himmelblau")
    x0 = np.array([m.x for m in obj.minima]) + np.array([0.3, -0.25])
    r = sweep(obj, "gd", grid={"learning_rate": [0.01]}, x0=x0, steps=300, tol=1e-6, progress=False)
    labels = plots.classify(
        r.final_x[0], obj.minima, plots.basin_radius(obj), r.status[0] == "diverged"
    )
    assert labels.tolist() == [0, 1, 2, 3]
    assert_plausible_png(plots._common.save(plots.basins(r, obj), tmp_path / "b.png"))


def test_basins_on_peaks_finds_the_global_minimum_basin(tmp_path):
    obj = objectives.get("peaks")
    r = sweep(
        obj,
        "gd",
        grid={"learning_rate": [0.03, 0.1]},
        x0=starts.grid(obj, 7),
        steps=300,
        tol=1e-6,
        progress=False,
    )
    fig = plots.basins(r, obj)
    assert "peaks" in fig.axes[0].get_title()
    # The start nearest the global minimum (0.228, -1.626) ends in it.
    i = int(np.argmin(np.linalg.norm(r.starts - obj.minima[0].x, axis=1)))
    labels = plots.classify(r.final_x[:, i], obj.minima, plots.basin_radius(obj))
    assert (labels == 0).all()


@pytest.mark.parametrize("dim,kappa", [(2, 100.0), (5, 37.0)])
def test_stability_edge_is_two_over_the_largest_eigenvalue(dim, kappa):
    # The generated quadratic's Hessian eigenvalues are geomspace(1, kappa): L = kappa.
    q = objectives.get("quadratic", dim=dim, condition_number=kappa, seed=3)
    assert plots.stability_edge(q) == pytest.approx(2.0 / kappa, rel=1e-5)


def test_lr_sensitivity_draws_the_edge_and_marks_divergence_beyond_it():
    kappa = 50.0
    q = objectives.get("quadratic", condition_number=kappa)
    edge = 2.0 / kappa
    lrs = edge * np.array([0.1, 0.5, 0.9, 1.1, 1.5, 3.0])
    r = sweep(
        q,
        "gd",
        grid={"learning_rate": lrs},
        x0=starts.uniform(q, 3),
        steps=300,
        tol=1e-6,
        progress=False,
    )
    curve = plots.sensitivity_curve(r)
    # Gradient descent on a quadratic diverges exactly above 2/L.
    assert curve.diverged.tolist() == [0, 0, 0, 1, 1, 1]
    fig = plots.lr_sensitivity([r], q)
    ax = fig.axes[0]
    vlines = [ln for ln in ax.get_lines() if ln.get_color() == "crimson"]
    assert len(vlines) == 1
    assert vlines[0].get_xdata()[0] == pytest.approx(edge, rel=1e-5)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    # Not a quadratic, but a known minimum: the edge at the minimum is drawn too.
    rosen = objectives.get("rosenbrock")
    r2 = sweep(rosen, "gd", grid={"learning_rate": [1e-4, 1e-3]}, steps=20, progress=False)
    edges = [
        ln
        for ln in plots.lr_sensitivity([r2], rosen).axes[0].get_lines()
        if ln.get_color() == "crimson"
    ]
    assert len(edges) == 1
    assert edges[0].get_xdata()[0] == pytest.approx(plots.stability_edge(rosen), rel=1e-12)
    # No known minimum: no edge.
    mlp = objectives.get("mlp")
    r3 = sweep(mlp, "gd", grid={"learning_rate": [0.1, 1.0]}, steps=20, progress=False)
    assert not [
        ln
        for ln in plots.lr_sensitivity([r3], mlp).axes[0].get_lines()
        if ln.get_color() == "crimson"
    ]


def test_stability_edge_of_rosenbrock_matches_the_closed_form():
    # Hessian at (1, 1): [[802, -400], [-400, 200]]; largest eigenvalue 501 + sqrt(301^2 + 400^2).
    top = 501.0 + np.sqrt(301.0**2 + 400.0**2)
    assert top == pytest.approx(1001.6007, abs=1e-4)
    edge = plots.stability_edge(objectives.get("rosenbrock"))
    assert edge == pytest.approx(2.0 / top, rel=1e-12)
    assert round(edge, 7) == 0.0019968


def test_contour_uses_the_recorded_trajectory(himmelblau_runs):
    obj = objectives.get("himmelblau")
    fig = plots.contour(himmelblau_runs, obj)
    ax = fig.axes[0]
    lengths = sorted(len(ln.get_xdata()) for ln in ax.get_lines())
    assert lengths[-1] > 2  # a full path, not just start -> end
    # Without trajectories: start -> end only.
    r = himmelblau_runs[0]
    bare = type(r)(
        **{**vars(r), "trajectory_lanes": None, "trajectory_x": None, "trajectory_loss": None}
    )
    assert max(len(ln.get_xdata()) for ln in plots.contour([bare], obj).axes[0].get_lines()) == 2


def test_slug_makes_safe_file_names():
    assert plots.slug("x**2 + 3*x*y") == "x_2_3_x_y"
    assert plots.slug("rosenbrock") == "rosenbrock"


def test_fit_draws_the_fitted_line_or_plane_of_regression_objectives(tmp_path):
    curve = objectives.get("curve_fit")
    rc = [
        sweep(curve, opt, grid={"learning_rate": [0.01, 0.05]}, steps=300, progress=False)
        for opt in ("gd", "adam")
    ]
    linear = objectives.get("linear_regression")
    rl = sweep(linear, "gd", grid={"learning_rate": [0.1, 0.3]}, steps=100, progress=False)
    paths = plots.draw(rc, {"curve_fit": curve}, tmp_path / "c", kinds=["fit", "loss"])
    paths += plots.draw([rl], {"linear_regression": linear}, tmp_path / "l", kinds=["fit"])
    assert [p.name for p in paths] == [
        "fit-curve_fit.png",
        "loss-curve_fit.png",
        "fit-linear_regression.png",
    ]
    for p in paths:
        assert_plausible_png(p)
    fig = plots.fit(rc, curve)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # the legend sits below
    assert labels[0] == "data (n=40)" and labels[-1].startswith("optimum: a=1.479, b=0.8096")
    loss_fig = plots.loss([rl], linear)
    assert "best fit" in loss_fig.axes[0].get_ylabel()
    # no data, or more than two features: skipped
    mlp = objectives.get("mlp")
    rm = sweep(mlp, "gd", grid={"learning_rate": [1.0, 2.0]}, steps=10, progress=False)
    assert plots.draw([rm], {"mlp": mlp}, tmp_path / "m", kinds=["fit"]) == []
    with pytest.raises(plots.NotApplicable, match="features"):
        plots.fit([rm], mlp)
    r = sweep("booth", "gd", grid={"learning_rate": [0.01, 0.02]}, steps=10, progress=False)
    with pytest.raises(plots.NotApplicable, match="not a data objective"):
        plots.fit([r], objectives.get("booth"))


# -- figures that never mislead (the mechanical checks of scripts/check_figures.py) --------


def _checks():
    """scripts/check_figures.py as a module (scripts/ is not a package)."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "check_figures.py"
    spec = importlib.util.spec_from_file_location("check_figures", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_path_check_sees_a_hidden_path():
    from gdkit.plots._common import new_figure

    checks = _checks()
    fig = new_figure()
    ax = fig.add_subplot()
    xy = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.5]])
    ax.plot(*xy.T, lw=2, zorder=3, gid="path:0")
    ax.plot(*xy.T, lw=2, zorder=4, gid="path:1")  # the same path, on top, as wide
    shares = checks.exposed_shares(ax)
    assert shares["path:0"] == 0.0 and shares["path:1"] == 1.0
    assert any("path:0" in p for p in checks.check_figure(fig, "contour-x.png"))
    ax.lines[0].set_linewidth(4)  # wider underneath: its edges show on both sides
    assert checks.exposed_shares(ax)["path:0"] == 1.0


def test_contour_keeps_paths_from_one_start_visible():
    """peaks from its default start: every optimizer's path begins at the same point (the
    quickstart's gd path used to vanish under momentum's)."""
    obj = objectives.get("peaks")
    rs = [
        sweep(
            obj,
            opt,
            grid={"learning_rate": lrs},
            steps=300,
            tol=1e-6,
            trajectories="best",
            progress=False,
        )
        for opt, lrs in (("gd", [0.03, 0.05]), ("momentum", [0.01, 0.03]), ("adam", [0.03]))
    ]
    fig = plots.contour(rs, obj)
    checks = _checks()
    shares = {}
    for ax in fig.axes:
        shares.update(checks.exposed_shares(ax))
    assert sorted(shares) == ["path:0", "path:1", "path:2"]  # one line per optimizer
    assert min(shares.values()) >= checks.MIN_EXPOSED, shares
    assert checks.check_figure(fig, "contour-peaks.png", obj) == []


def test_contour_draws_the_chosen_grid_points_side_by_side():
    obj = objectives.get("sphere")
    r = sweep(
        obj,
        "gd",
        grid={"learning_rate": [0.4, 0.1, 0.01]},
        steps=50,
        tol=1e-6,
        trajectories=[0, 1, 2],
        progress=False,
    )
    paths = [{"learning_rate": 0.4}, {"learning_rate": 0.1}, {"learning_rate": 0.01}]
    fig = plots.contour([r], obj, paths=paths)
    drawn = [ln for ax in fig.axes for ln in ax.get_lines() if str(ln.get_gid()).startswith("path")]
    assert len(drawn) == 3
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]
    # The three runs lie on one line (x0 -> 0): one panel each, titled by learning rate.
    assert [t.split("\n")[0] for t in titles] == ["gd (lr=0.4)", "gd (lr=0.1)", "gd (lr=0.01)"]
    assert _checks().check_figure(fig, "contour-sphere.png", obj) == []
    # A grid point this sweep does not have falls back to the best run.
    fig = plots.contour([r], obj, paths=[{"learning_rate": 0.5}])
    assert "best run" in fig.axes[0].get_title()


def test_loss_splits_runs_by_the_minimum_they_end_in():
    obj = objectives.get("peaks")
    r = sweep(
        obj,
        "gd",
        grid={"learning_rate": [0.03]},
        x0=starts.grid(obj, 9),
        steps=600,
        tol=1e-6,
        progress=False,
    )
    from gdkit.plots._loss import by_minimum

    groups = by_minimum(r, (0,), obj)
    names = [g for g, _ in groups]
    assert names[:3] == ["global min -6.55", "local min -3.05", "local min -0.0649"]
    gaps = r.final_loss[0].astype(np.float64) - obj.f_min
    for (_, members), m in zip(groups[:3], sorted(obj.minima, key=lambda m: m.f), strict=True):
        # Each group's runs end at its own minimum's gap: one band per basin, not one for all.
        np.testing.assert_allclose(gaps[members], m.f - obj.f_min, atol=1e-4)
    fig = plots.loss([r], obj)
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    assert sum("→" in t for t in labels) == len(groups)
    assert _checks().check_figure(fig, "loss-peaks.png", obj) == []


def test_legends_and_titles_stay_clear_of_the_data(himmelblau_runs):
    obj = objectives.get("himmelblau")
    checks = _checks()
    for make in (plots.loss, plots.lr_sensitivity, plots.contour):
        fig = make(himmelblau_runs, obj)
        assert checks.check_figure(fig, f"{make.__name__}-himmelblau.png", obj) == []
    long = objectives.get("curve_fit", n=40, a=1.5, b=0.8, noise=0.1, seed=0)
    fig = plots.surface(long)
    assert checks.check_figure(fig, "surface-curve_fit.png", long) == []


def test_surface_draws_the_minimum_above_the_surface():
    obj = objectives.get("curve_fit")
    fig = plots.surface(obj)
    ax = fig.axes[0]
    assert ax.computed_zorder is False  # zorder, not depth, decides: the star stays on top
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")


def test_basins_say_what_the_radius_means():
    obj = objectives.get("himmelblau")
    r = sweep(
        obj, "gd", grid={"learning_rate": [0.01]}, x0=starts.grid(obj, 4), steps=50, progress=False
    )
    title = plots.basins(r, obj).axes[0].get_title()
    assert f"within {plots.basin_radius(obj):.2g} of it" in title


def test_loss_against_wall_time_shares_each_sweeps_run_time_equally_by_its_steps(
    himmelblau_runs, tmp_path
):
    obj = objectives.get("himmelblau")
    fig = plots.loss(himmelblau_runs, obj, x_axis="time")
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("wall time on this machine, s")
    # himmelblau's minima share one value: one median line (the wide one) per optimizer
    medians = [line for line in ax.lines if line.get_linewidth() == 1.8]
    for line, r in zip(medians, himmelblau_runs, strict=True):
        assert r.run_time > 0
        want = r.history_steps * (r.run_time / r.steps)  # step k at k x run_time / steps
        np.testing.assert_allclose(line.get_xdata(), want, rtol=1e-15)
    assert ax.get_xlim() == pytest.approx((0, max(r.run_time for r in himmelblau_runs)))
    labels = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    for r in himmelblau_runs:  # a step's time is that of all the sweep's 4 x 36 runs
        assert sum(t.startswith(r.optimizer) and "its sweep: 144 runs" in t for t in labels) == 1
    assert _checks().check_figure(fig, "loss_time-himmelblau.png", obj) == []
    # opt-in in draw (wall times differ run to run); the config knows the same kinds
    from gdkit.experiments import config

    assert (config.PLOTS, config.DEFAULT_PLOTS) == (plots.KINDS, plots.DEFAULT_KINDS)
    assert "loss_time" not in plots.DEFAULT_KINDS
    paths = plots.draw(himmelblau_runs, {"himmelblau": obj}, tmp_path, kinds=["loss_time"])
    assert [p.name for p in paths] == ["loss_time-himmelblau.png"]
    assert_plausible_png(paths[0])
    with pytest.raises(ValueError, match="x_axis must be one of steps, evals, time, got 'wall'"):
        plots.loss(himmelblau_runs, obj, x_axis="wall")
    unmeasured = [dataclasses.replace(r, run_time=0.0) for r in himmelblau_runs]
    with pytest.raises(plots.NotApplicable, match="no measured run time"):
        plots.loss(unmeasured, obj, x_axis="time")
