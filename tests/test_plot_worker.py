"""Figures drawn in a worker process (`gdkit.experiments.plot_worker`): byte for byte the
figures drawn in-process, a dead worker's figures drawn here, a drawing's error raised."""

import os
import pathlib
import signal

import pytest

from gdkit import plots
from gdkit.experiments import config, experiment, rundir
from gdkit.experiments.commands import Phases
from gdkit.experiments.plot_worker import Plotter, usable_cores

CONFIG = {
    "name": "two",
    "objectives": [{"name": "himmelblau"}, {"name": "quadratic", "dim": 3}],
    "optimizers": [
        {"name": "gd", "learning_rate": [0.003, 0.01]},
        {"name": "adam", "learning_rate": [0.05, 0.1]},
    ],
    "starts": {"kind": "uniform", "n": 2, "seed": 3},
    "steps": 60,
    "tol": 1e-4,
    "record_every": 5,
    "plots": ["contour", "loss", "lr_sensitivity", "surface"],
}

needs_cores = pytest.mark.skipif(usable_cores() < 2, reason="the worker needs two cores")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The config's jobs, their results, and the files they are saved in."""
    tmp = tmp_path_factory.mktemp("worker")
    cfg = config.validate(CONFIG)
    jobs = experiment.plan(cfg)
    pairs = experiment.run(cfg, progress=False, jobs=jobs)
    (tmp / "results").mkdir()
    files = []
    for i, (job, result) in enumerate(pairs):
        files.append(rundir.result_path(tmp, i, job.objective.name, job.optimizer))
        result.save(files[-1])
    return cfg, pairs, files


@pytest.fixture(scope="module")
def here(saved, tmp_path_factory):
    """The figures `plots.draw` draws in this process."""
    cfg, pairs, _files = saved
    out = tmp_path_factory.mktemp("here")
    objectives = {job.objective.name: job.objective for job, _ in pairs}
    results = [r for _, r in pairs]
    drawn = plots.draw(results, objectives, out, kinds=cfg.plots.kinds, paths=cfg.plots.paths)
    assert {p.name for p in drawn} >= {"contour-himmelblau.png", "loss-quadratic_dim=3.png"}
    return out


def _add_all(plotter, cfg, pairs, files, out, unswept=False):
    """Every objective's results, as `gdkit run` hands them over; `unswept`: each objective
    first alone, before its sweeps (`add_unswept`), as `gdkit run` does too."""
    per = len(cfg.optimizers)
    if unswept:
        for k in range(0, len(pairs), per):
            job = pairs[k][0]
            plotter.add_unswept(job.objective, job.spec, out)
    for k in range(0, len(pairs), per):
        group = pairs[k : k + per]
        job = group[0][0]
        plotter.add(job.objective, job.spec, [r for _, r in group], files[k : k + per], out)


def _same_pngs(a: pathlib.Path, b: pathlib.Path) -> list[str]:
    names = sorted(p.name for p in a.glob("*.png"))
    assert names == sorted(p.name for p in b.glob("*.png"))
    assert names, "no figure was drawn"
    return [n for n in names if (a / n).read_bytes() != (b / n).read_bytes()]


@needs_cores
@pytest.mark.parametrize("unswept", [False, True], ids=["after-sweeps", "surface-first"])
def test_worker_draws_the_in_process_figures_byte_for_byte(saved, here, tmp_path, unswept):
    cfg, pairs, files = saved
    plotter = Plotter(cfg.plots.kinds, cfg.plots.paths, x64=False)
    assert plotter._pool is not None  # a worker was started
    plotter._ready.result(timeout=120)  # and is up
    _add_all(plotter, cfg, pairs, files, tmp_path / "worker", unswept)
    assert len(plotter._jobs) == 8  # 4 kinds x 2 objectives, the surfaces queued once
    if unswept:  # queued before the sweeps' results, so the worker draws them first
        assert [task for *_, task in plotter._jobs[:2]] == [("surface",)] * 2
    plotter.finish()
    # seven figures (the 3-D quadratic has no surface), queued at once: the worker draws
    # from the first on, this process from the last, each one that the other has not begun
    assert plotter.worker_seconds > 0 and plotter.drawn_here > 0
    assert _same_pngs(here, tmp_path / "worker") == []


def test_in_process_plotter_draws_the_same(saved, here, tmp_path):
    cfg, pairs, files = saved
    plotter = Plotter(cfg.plots.kinds, cfg.plots.paths, x64=False, in_process=True)
    assert plotter._pool is None
    _add_all(plotter, cfg, pairs, files, tmp_path / "also")
    plotter.finish()
    assert plotter.worker_seconds == 0 and plotter.drawn_here == 8
    assert _same_pngs(here, tmp_path / "also") == []


@needs_cores
def test_a_dead_workers_figures_are_drawn_here(saved, here, tmp_path):
    cfg, pairs, files = saved
    plotter = Plotter(cfg.plots.kinds, cfg.plots.paths, x64=False)
    plotter._ready.result(timeout=120)  # the worker is up ...
    for pid in list(plotter._pool._processes):
        os.kill(pid, signal.SIGKILL)  # ... and killed before it draws anything
    _add_all(plotter, cfg, pairs, files, tmp_path / "after")
    plotter.finish()
    assert _same_pngs(here, tmp_path / "after") == []


@pytest.mark.parametrize("in_process", [False, True])
def test_a_drawing_error_is_raised_by_finish(saved, tmp_path, in_process):
    cfg, pairs, files = saved
    blocked = tmp_path / "plots"
    blocked.write_text("a file where the figures' folder would be")
    plotter = Plotter(cfg.plots.kinds, cfg.plots.paths, x64=False, in_process=in_process)
    _add_all(plotter, cfg, pairs, files, blocked)
    with pytest.raises(OSError):
        plotter.finish()
    assert blocked.read_text().startswith("a file")  # nothing the user had is lost


def test_phases_line_shows_time_spent_alongside():
    clock = Phases(started=0.0)
    clock.add("compile", 2.0)
    clock.add("plots", 0.25)
    clock.alongside["plots"] = 3.5
    rec = clock.record()
    assert rec["plots_alongside"] == 3.5
    assert rec["other"] == pytest.approx(rec["wall"] - 2.25, abs=1e-3)  # alongside not in wall
    line = clock.line()
    assert "plots 0.25 s (+3.50 s alongside)" in line
    assert "plots_alongside" not in line
