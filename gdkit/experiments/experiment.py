"""An experiment: every (objective, optimizer) pair of a config as one compiled sweep each.

`plan` says what a config will run; `run` runs it and returns the `SweepResult`s. Writing the
run directory is `gdkit.rundir`'s job: this module knows nothing of files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from gdkit import optimizers, starts
from gdkit.experiments.config import ExperimentConfig, ObjectiveSpec, build_objective
from gdkit.objectives import Objective
from gdkit.result import SweepResult


@dataclasses.dataclass(frozen=True)
class Job:
    """One compiled sweep: an objective, an optimizer, its grid and its starts."""

    objective: Objective
    optimizer: str
    grid: dict[str, np.ndarray]  # swept hyperparameters, in config order
    fixed: dict[str, object]
    x0: np.ndarray  # [S, d]
    seeds: int | None
    steps: int
    spec: ObjectiveSpec | None = None  # the config entry the objective was built from

    @property
    def lanes(self) -> int:
        n = int(np.prod([len(v) for v in self.grid.values()])) * len(self.x0)
        return n * (self.seeds or 1)


def start_set(config: ExperimentConfig, objective: Objective) -> np.ndarray:
    """The [S, d] starts the config asks for, for this objective."""
    s = config.starts
    if s.kind == "default":
        return starts.default(objective)
    if s.kind == "grid":
        return starts.grid(objective, s.n)
    if s.kind == "uniform":
        return starts.uniform(objective, s.n, seed=s.seed)
    points = np.asarray(s.points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != objective.dim:
        raise ValueError(
            f"starts.points: {objective.name} needs points of {objective.dim} "
            f"coordinates, got shape {points.shape}"
        )
    return points


def plan(config: ExperimentConfig) -> list[Job]:
    """The jobs of a config, in config order (objectives outer, optimizers inner)."""
    jobs = []
    for obj_spec in config.objectives:
        objective = build_objective(obj_spec)
        x0 = start_set(config, objective)
        for opt in config.optimizers:
            steps = obj_spec.steps or config.steps
            jobs.append(
                Job(
                    objective,
                    opt.name,
                    opt.swept(),
                    opt.fixed(),
                    x0,
                    config.seeds,
                    steps,
                    obj_spec,
                )
            )
    return jobs


def hparams_of(job: Job) -> dict[str, object]:
    """Every hyperparameter of the job's optimizer: defaults, then fixed values given."""
    return {**optimizers.info(job.optimizer).hparams, **job.fixed}


def sweep_arguments(config: ExperimentConfig, job: Job) -> dict[str, object]:
    """The arguments of `gdkit.sweep` (and `gdkit.sweep.plan`) for one job."""
    return {
        "objective": job.objective,
        "optimizer": job.optimizer,
        "grid": {**job.grid, **job.fixed},
        "x0": job.x0,
        "steps": job.steps,
        "seeds": job.seeds,
        "tol": config.tol,
        "record_every": config.record_every,
        "dtype": config.dtype,
        "noise": config.noise,
        "engine": config.engine,
    }


def path_lanes(config: ExperimentConfig, job: Job) -> list[int]:
    """The lanes whose trajectories the contour plot needs for `plots.paths`: at each listed
    grid point this job sweeps, its first start and seed (flat C-order indices over the
    result's axes: the swept hyperparameters in config order, start, seed)."""
    shape = [len(v) for v in job.grid.values()] + [len(job.x0)] + ([job.seeds] if job.seeds else [])
    lanes = []
    for at in config.plots.paths:
        if sorted(at) != sorted(job.grid):
            continue
        idx = []
        for name, values in job.grid.items():
            hit = [i for i, v in enumerate(values) if _same(v, at[name])]
            if not hit:
                break
            idx.append(hit[0])
        else:
            lanes.append(int(np.ravel_multi_index([*idx] + [0] * (len(shape) - len(idx)), shape)))
    return list(dict.fromkeys(lanes))


def paths_of(config: ExperimentConfig, job: Job) -> list[int] | str | None:
    """The lanes whose full trajectories a job records for the contour plot: `path_lanes`,
    else the representative lane; none where there is no contour to draw them on (an
    objective of other than 2 coordinates)."""
    if job.objective.dim != 2:
        return None
    return path_lanes(config, job) or "representative"


def _same(value, wanted) -> bool:
    if isinstance(value, str) or isinstance(wanted, str):
        return str(value) == str(wanted)
    return bool(np.isclose(float(value), float(wanted), rtol=1e-9, atol=0.0))


def run(
    config: ExperimentConfig,
    *,
    progress: bool = True,
    finished: Callable[[int, Job], SweepResult | None] | None = None,
    on_result: Callable[[int, Job, SweepResult], None] | None = None,
    checkpoint: Callable[[int, Job], object] | None = None,
    done: Callable[[int, Job, SweepResult], None] | None = None,
    jobs: list[Job] | None = None,
) -> list[tuple[Job, SweepResult]]:
    """Runs every job; the representative lane of each 2-D job (`SweepResult.representative`),
    or the lanes `plots.paths` asks for (`path_lanes`), get their full trajectories recorded
    (for the contour plot: `paths_of`).

    `finished(i, job)` may return the result of a job done before (a resumed run), which is
    then not run again; `on_result(i, job, result)` sees each new result as soon as it exists;
    `checkpoint(i, job)` gives the `gdkit.Checkpoint` a job saves its progress to;
    `done(i, job, result)` sees every job's result, resumed or new, once it is final. `jobs`:
    `plan(config)`, when the caller has it already.
    """
    from gdkit.engine.sweep import compile_ahead, sweep

    out = []
    jobs = plan(config) if jobs is None else jobs
    results = [None if finished is None else finished(i, job) for i, job in enumerate(jobs)]
    todo = [i for i, r in enumerate(results) if r is None]
    for i, job in enumerate(jobs):
        result = results[i]
        if result is None:
            later = [k for k in todo if k > i]
            if later:  # the next sweep's programs compile while this one compiles and runs
                nxt = jobs[later[0]]
                compile_ahead(**sweep_arguments(config, nxt), trajectories=paths_of(config, nxt))
            label = f"{i + 1}/{len(jobs)} {job.objective.name} / {job.optimizer}"
            result = sweep(
                **sweep_arguments(config, job),
                progress=label if progress else False,
                trajectories=paths_of(config, job),
                checkpoint=None if checkpoint is None else checkpoint(i, job),
            )
            if on_result is not None:
                on_result(i, job, result)
        if done is not None:
            done(i, job, result)
        out.append((job, result))
    return out
