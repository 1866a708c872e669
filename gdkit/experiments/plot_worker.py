"""Figures drawn in a second process while the sweeps go on.

`gdkit run` spends about as long drawing its figures (matplotlib's layout and rasterising,
all Python) as compiling its sweeps, and each keeps one core busy. `Plotter` hands each
objective's figures to one worker process as soon as that objective's last sweep is saved,
so they are drawn while the next objective's sweeps compile and run; the worker starts at
once, so its imports overlap the run's own. The worker reads the results from the run
directory (they are saved there anyway), rebuilds the objective from its config entry (an
`Objective` holds JAX functions, which do not pickle) and draws with the same
`gdkit.plots.draw` on JAX's CPU back end at the run's precision: the figures are the ones
the run's own process would draw.

With a single core, or where no worker starts, or when the worker dies, the figures are
drawn in the run's own process instead.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importing them would import JAX, before the run selects its platform
    from gdkit.objectives import Objective
    from gdkit.result import SweepResult


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Plotter:
    """Draws each objective's figures (`add`) in a worker process, or here (`in_process`).

    `finish()` waits until every figure is written, draws here whatever the worker could not,
    and re-raises the first error a drawing raised. `worker_seconds` is the time the worker
    spent drawing (alongside the sweeps); the caller times `finish` itself.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        paths: Sequence[Mapping[str, object]] | None,
        x64: bool,
        in_process: bool = False,
    ):
        self.kinds, self.paths = tuple(kinds), paths
        self.worker_seconds = 0.0
        self._jobs: list[tuple[Future | None, Objective, list[SweepResult], str]] = []
        self._pool: ProcessPoolExecutor | None = None
        if in_process or usable_cores() < 2:
            return
        import multiprocessing

        try:  # spawn: a fork of a process that runs JAX may deadlock
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(1, mp_context=ctx, initializer=_start, initargs=(x64,))
            self._ready = self._pool.submit(_ready)  # starts the worker now
        except (OSError, RuntimeError):
            self._pool = None

    def add(
        self,
        objective: Objective,
        spec: Any,
        results: Sequence[SweepResult],
        files: Sequence[str | os.PathLike],
        out_dir: str | os.PathLike,
    ) -> None:
        """One objective's results, all of its sweeps done, to draw into `out_dir`: `spec`
        is its config entry (the worker builds the objective from it) and `files` its saved
        results, in order."""
        future = None
        if self._pool is not None:
            try:
                args = ([str(f) for f in files], str(out_dir), self.kinds, self.paths)
                future = self._pool.submit(_draw, spec, *args)
            except (BrokenProcessPool, RuntimeError):
                self._pool = None
        self._jobs.append((future, objective, list(results), str(out_dir)))

    def finish(self) -> None:
        """Waits for the worker, then draws here what it did not draw."""
        error = None
        for future, objective, results, out_dir in self._jobs:
            if future is not None:
                try:
                    _written, seconds = future.result()
                    self.worker_seconds += seconds
                    continue
                except BrokenProcessPool:  # the worker died (killed, out of memory): draw here
                    pass
                except Exception as e:
                    error = error or e
                    continue
            try:
                self._draw_here(objective, results, out_dir)
            except Exception as e:
                error = error or e
        self._jobs.clear()
        self.close()
        if error is not None:
            raise error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _draw_here(self, objective: Objective, results: list[SweepResult], out_dir: str) -> None:
        from gdkit import plots

        plots.draw(
            results, {objective.name: objective}, out_dir, kinds=self.kinds, paths=self.paths
        )


def _start(x64: bool) -> None:
    """The worker's set-up: JAX on the CPU (the GPU, if any, is the run's) at the run's
    precision, and the plotting modules imported."""
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax

    jax.config.update("jax_platforms", "cpu")
    if x64:
        jax.config.update("jax_enable_x64", True)
    import gdkit.plots  # noqa: F401


def _ready() -> bool:
    return True


def _draw(spec, files, out_dir, kinds, paths) -> tuple[list[str], float]:
    from gdkit import plots
    from gdkit.experiments import rundir
    from gdkit.experiments.config import build_objective

    t = time.perf_counter()
    objective = build_objective(spec)
    results = [rundir.load_result(pathlib.Path(f)) for f in files]
    written = plots.draw(results, {objective.name: objective}, out_dir, kinds=kinds, paths=paths)
    return [str(p) for p in written], time.perf_counter() - t
