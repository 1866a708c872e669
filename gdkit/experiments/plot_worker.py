"""Figures drawn in a second process while the sweeps go on.

`gdkit run` spends about as long drawing its figures (matplotlib's layout and rasterising,
all Python) as compiling its sweeps, and each keeps one core busy. `Plotter` hands each
objective's figures to one worker process as soon as that objective's last sweep is saved,
so they are drawn while the next objective's sweeps compile and run; the figures that need
no results (the surface) go before any sweep, so the worker draws them while the first ones
compile. The worker starts at once, so its imports overlap the run's own. It reads the
results from the run directory (they are saved there anyway), rebuilds the objective from its
config entry (an `Objective` holds JAX functions, which do not pickle) and draws with the same
`gdkit.plots.draw` on JAX's CPU back end at the run's precision: the figures are the ones
the run's own process would draw.

Each kind of figure of an objective is a task of its own (`gdkit.plots.tasks`: a kind that
another draws too goes with it), drawn by whichever process claims it first (an exclusively
created file per task). Once the sweeps are done, `finish` claims the tasks the worker has
not begun, last first, and draws them in the run's own process while the worker draws the
rest: the two cores share the figures that are left (a config with one objective has all of
them left). With a single core, or where no worker starts, or when the worker dies, the
figures are drawn in the run's own process.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
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

    `finish()` draws here the tasks the worker has not begun and whatever it could not, waits
    until every figure is written, and re-raises the first error a drawing raised.
    `worker_seconds` is the time the worker spent drawing, `drawn_here` the tasks drawn in
    this process; the caller times `finish` itself.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        paths: Sequence[Mapping[str, object]] | None,
        x64: bool,
        in_process: bool = False,
    ):
        self.kinds, self.paths = tuple(kinds), paths
        self.worker_seconds, self.drawn_here = 0.0, 0
        self._unswept: set[str] = set()  # objectives whose result-free figures are queued
        self._claims: str | None = None  # the folder of the tasks' claim files
        self._jobs: list[
            tuple[Future | None, Objective, list[SweepResult], str, tuple[str, ...]]
        ] = []
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

    def add_unswept(self, objective: Objective, spec: Any, out_dir: str | os.PathLike) -> None:
        """Before its sweeps: the figures of `objective` that need no results
        (`plots.RESULT_FREE`, the surface), so that the worker draws them while the sweeps
        compile; `add` leaves them out then. `spec` is its config entry."""
        from gdkit import plots

        for task in plots.tasks(self.kinds):
            if _result_free(task):
                self._submit(objective, spec, [], [], out_dir, task)
        self._unswept.add(objective.name)

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
        results, in order. One worker task per kind of figure (`plots.tasks`)."""
        from gdkit import plots

        for task in plots.tasks(self.kinds):
            if not (_result_free(task) and objective.name in self._unswept):
                self._submit(objective, spec, results, files, out_dir, task)

    def _submit(self, objective, spec, results, files, out_dir, task) -> None:
        """One task: to the worker (if there is one), and on the list `finish` works from."""
        future = None
        if self._pool is not None:
            try:
                claim = self._claim(len(self._jobs))
                names = [str(f) for f in files]
                future = self._pool.submit(
                    _draw, spec, names, str(out_dir), task, self.paths, claim
                )
            except (BrokenProcessPool, RuntimeError, OSError):  # no worker, no temp folder
                self._pool = None
        self._jobs.append((future, objective, list(results), str(out_dir), task))

    def _claim(self, task: int) -> str:
        """The file whose creation claims task number `task` for one process."""
        if self._claims is None:
            self._claims = tempfile.mkdtemp(prefix="gdkit-plots-")
        return os.path.join(self._claims, str(task))

    def finish(self) -> None:
        """Draws here, last first, the tasks the worker has not begun, then waits for the
        worker's and draws here what it could not draw."""
        error = None
        todo = list(self._jobs)
        while todo and (todo[-1][0] is None or _claimed(self._claim(len(todo) - 1))):
            _future, objective, results, out_dir, task = todo.pop()
            error = self._here(objective, results, out_dir, task, error)
        for future, objective, results, out_dir, task in todo:
            try:
                _written, seconds = future.result()
                self.worker_seconds += seconds
                continue
            except BrokenProcessPool:  # the worker died (killed, out of memory): draw here
                pass
            except Exception as e:
                error = error or e
                continue
            error = self._here(objective, results, out_dir, task, error)
        self._jobs.clear()
        self.close()
        if error is not None:
            raise error

    def _here(self, objective, results, out_dir, task, error):
        """Draws one task's kinds in this process; -> the first error so far."""
        from gdkit import plots

        try:
            plots.draw(results, {objective.name: objective}, out_dir, kinds=task, paths=self.paths)
        except Exception as e:
            return error or e
        self.drawn_here += 1
        return error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._claims is not None:
            shutil.rmtree(self._claims, ignore_errors=True)
            self._claims = None


def _result_free(task: tuple[str, ...]) -> bool:
    """Whether a task's kinds are all drawn from the objective alone (`add_unswept`'s)."""
    from gdkit import plots

    return all(kind in plots.RESULT_FREE for kind in task)


def _claimed(path: str) -> bool:
    """Claims a task for this process: True if no other process claimed it before."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


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


def _draw(spec, files, out_dir, kinds, paths, claim) -> tuple[list[str], float]:
    from gdkit import plots
    from gdkit.experiments import rundir
    from gdkit.experiments.config import build_objective

    t = time.perf_counter()
    if not _claimed(claim):  # the run's own process took it
        return [], 0.0
    objective = build_objective(spec)
    results = [rundir.load_result(pathlib.Path(f)) for f in files]
    written = plots.draw(results, {objective.name: objective}, out_dir, kinds=kinds, paths=paths)
    return [str(p) for p in written], time.perf_counter() - t
