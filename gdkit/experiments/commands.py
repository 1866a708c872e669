"""The `gdkit run`, `show` and `plot` commands: config -> sweeps -> run directory."""

from __future__ import annotations

import contextlib
import errno
import sys


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


class UserInterrupt(Exception):
    """Ctrl-C: reported as one line (how to resume), exit code 130."""


class ResourceError(Exception):
    """The machine ran out of memory or disk: one line (what ran out, how to resume), exit 1."""


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def exhausted(e: BaseException) -> str | None:
    """What ran out, when `e` says the machine ran out of something (else None)."""
    if isinstance(e, MemoryError):
        return "out of memory"
    if isinstance(e, OSError) and e.errno in DISK_FULL:
        where = f" writing {e.filename}" if e.filename else ""
        return f"{e.strerror or 'no space left on device'}{where}"
    if "RESOURCE_EXHAUSTED" in str(e)[:2000]:  # XLA's allocator (device or host)
        return "out of memory on the device (XLA: RESOURCE_EXHAUSTED)"
    return None


@contextlib.contextmanager
def user_errors():
    """Inside: a ValueError is the user's input being refused (config, names, values, files)."""
    try:
        yield
    except ValueError as e:
        raise UserError(str(e)) from None


def rich_console():
    """A rich console; wide enough for the summary table when stdout is a file or a pipe."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def run(args) -> int:
    import pathlib

    if args.resume is None:
        if args.config is None:
            raise UserError("give a CONFIG file to run, or --resume RUN_DIR")
        with contextlib.ExitStack() as held:
            return _run_command(args, None, held)
    if args.config is not None or args.set:
        raise UserError("--resume takes the run directory alone (its config.yaml is used)")
    resume = pathlib.Path(args.resume)
    if not (resume / "config.yaml").is_file():
        raise UserError(f"--resume: {resume} is not a gdkit run directory (no config.yaml)")
    args.config = resume / "config.yaml"
    with contextlib.ExitStack() as held:
        return _run_command(args, resume, held)


def _run_command(args, resume, held: contextlib.ExitStack) -> int:
    """`gdkit run` of a config, or `--resume` of a run directory; `held` keeps the run
    directory's lock until the command ends."""
    import pathlib

    from gdkit import _cache
    from gdkit.experiments import config as config_mod

    clock = Phases(getattr(args, "started", None))
    with user_errors():
        cfg = config_mod.load(args.config, args.set, check=False, allow_import=args.allow_import)
        if resume is not None:
            _check_resumable(resume, cfg, args, held)
        if args.platform is not None:
            cfg = cfg.model_copy(update={"platform": args.platform})
        if args.distributed and cfg.distributed is None:
            cfg = cfg.model_copy(update={"distributed": config_mod.DistributedSpec()})
        config_mod.check_declared(cfg)  # misspelt names: reported before JAX starts
        # A dry run connects to nothing: the coordinator a config names is only contacted by
        # a real run (the plan is then this process's share of the devices).
        if cfg.distributed is not None and not args.dry_run:
            from gdkit.engine import distributed as _distributed

            try:
                _distributed.initialize(cfg.distributed)
            except (RuntimeError, ValueError) as e:
                raise UserError(f"distributed: cannot start JAX's runtime: {e}") from None
        plotter = None
        if cfg.plots.kinds and cfg.distributed is None and not args.dry_run:
            from gdkit.experiments.plot_worker import Plotter

            # The worker draws an objective's figures while later sweeps run, and shares
            # those left at the end with this process; it starts before JAX is imported
            # here, so its imports overlap ours.
            plotter = Plotter(cfg.plots.kinds, cfg.plots.paths, x64=cfg.dtype == "float64")
            held.callback(plotter.close)
        with clock("import"):
            backend = _select_platform(cfg.platform, cfg.dtype)  # before JAX computes anything
        if not (args.no_cache or _cache.disabled_by_env()):
            # A read-only or full home: the run goes on uncached (meta.json's compile_cache).
            with contextlib.suppress(OSError):
                _cache.enable_compilation_cache()
        config_mod.check_names(cfg)

        from gdkit.experiments import experiment

        jobs = experiment.plan(cfg)
    console = rich_console()
    if args.dry_run:
        print(config_mod.to_yaml(cfg), end="")
        _print_plan(console, cfg, jobs, backend)
        return 0
    if resume is not None:
        from gdkit.experiments import rundir

        rundir.mark_incomplete(resume)  # until finish: a resume may re-run a damaged result
    out = pathlib.Path(args.out)
    return _run(cfg, jobs, out, not args.no_progress, console, backend, clock, plotter, resume)


def _check_resumable(resume, cfg, args, held: contextlib.ExitStack) -> None:
    """Refuses to resume a run directory whose config.yaml was edited, that another process
    is writing (its lock is taken into `held` here), whose data files changed, or that is
    complete and undamaged."""
    from gdkit.experiments import config as config_mod
    from gdkit.experiments import rundir

    def as_now(created: dict) -> dict:
        """A config recorded by an older gdkit, read as this one reads it (keys added since at
        their defaults, old forms in their new shape), so only an edit counts as a change."""
        try:
            then = type(cfg).model_validate(created)
        except ValueError:
            return created
        return then.model_dump(mode="json", exclude_none=True)

    change = rundir.changed(resume, cfg.model_dump(mode="json", exclude_none=True), as_now)
    if change:
        raise UserError(
            f"--resume: {args.config} was edited after the run began ({change}); "
            "resuming would mix old and new settings: undo the edit, or start a new run"
        )
    change = rundir.data_changed(resume, rundir.digests(config_mod.data_files(cfg)))
    if change:
        raise UserError(
            f"--resume: the data file {change} since the run began; resuming would mix "
            "results from two versions of the data: restore it, or start a new run"
        )
    # A multi-process run's processes all resume the same directory: process 0 writes it.
    if cfg.distributed is None and not args.distributed:
        try:
            held.enter_context(rundir.lock(resume))
        except rundir.Busy as e:
            raise UserError(f"--resume: {e}; wait for it to end (or stop it) first") from None
    if rundir.is_complete(resume) and not rundir.damaged(resume):
        raise UserError(f"--resume: {resume} is complete already; nothing to resume")


def _select_platform(platform: str, dtype: str) -> str:
    """Selects JAX's platform and precision; must run before JAX initialises its backends.
    Imports JAX, optax and gdkit's objectives and optimizers (the CLI's parser does not)."""
    import jax

    import gdkit.objectives
    import gdkit.optimizers  # noqa: F401

    if platform == "cpu":
        jax.config.update("jax_platforms", "cpu")
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    if platform == "gpu":
        try:
            jax.devices("gpu")
        except RuntimeError:
            raise UserError(
                "platform: gpu was asked for, but JAX finds no GPU on this machine "
                "(install gdkit[cuda12] on a machine with an NVIDIA GPU, or use platform: cpu)"
            ) from None
    devices = jax.devices("gpu" if platform == "gpu" else None)
    return (
        f"{devices[0].platform} ({len(devices)} device{'s' * (len(devices) > 1)}: "
        f"{', '.join(str(d) for d in devices[:4])}{' ...' * (len(devices) > 4)})"
    )


def _print_plan(console, cfg, jobs, backend) -> None:
    """The planned work: per sweep its lanes, lane chunks and memory (`gdkit.sweep.plan`:
    the numbers the engine itself would use)."""
    from rich.table import Table

    from gdkit.engine.sweep import plan
    from gdkit.experiments import experiment

    cols = (
        "objective",
        "optimizer",
        "swept",
        "starts",
        "lanes",
        "steps",
        "lane chunks",
        "device memory / chunk",
        "host memory",
    )
    table = Table(title=f"plan: {cfg.name}  [{backend}, {cfg.dtype}]")
    for col in cols:
        table.add_column(col, justify="left" if col in cols[:3] else "right")
    plans = [plan(**experiment.sweep_arguments(cfg, job)) for job in jobs]
    for job, p in zip(jobs, plans, strict=True):
        swept = ", ".join(f"{k}[{len(v)}]" for k, v in job.grid.items()) or "-"
        table.add_row(
            job.objective.name,
            job.optimizer,
            swept,
            str(len(job.x0)),
            f"{p.lanes:,}",
            str(job.steps),
            str(p.lane_chunks),
            _bytes(p.device_bytes),
            _bytes(p.host_bytes),
        )
    console.print(table)
    for line in dict.fromkeys(p.describe_backend() for p in plans):  # one line per back end
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(
        f"{len(jobs)} compiled sweeps, {sum(p.lanes for p in plans):,} "
        f"lanes, {sum(p.lanes * j.steps for j, p in zip(jobs, plans, strict=True)):,} "
        "trajectory-steps"
    )


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _note(command: str):
    """A one-line note on stderr (`gdkit run: ...`) while a command goes on."""

    def note(message: str) -> None:
        print(f"gdkit {command}: {message}", file=sys.stderr, flush=True)

    return note


def _finished_in(run_dir):
    """`finished(i, job)` for `experiment.run`: the sweeps a run directory holds already (a
    damaged result is reported, deleted and its sweep runs again)."""
    from gdkit.experiments import rundir

    def finished(i, job):
        if run_dir is None:
            return None
        path = rundir.result_path(run_dir, i, job.objective.name, job.optimizer)
        if not path.is_file():
            return None
        try:
            return rundir.load_result(path)
        except ValueError as e:
            _note("run")(f"{e}; discarded, the sweep runs again")
            path.unlink(missing_ok=True)
            return None

    return finished


def _checkpoints_in(run_dir, cfg):
    """`checkpoint(i, job)` for `experiment.run`: each sweep's progress file in the run
    directory (checkpoints/NN.npz), saved every `checkpoint_every` seconds at most."""
    from gdkit import Checkpoint

    if run_dir is None or cfg.distributed is not None:
        # Multi-process runs resume per finished sweep: a mid-sweep snapshot gathers lanes
        # from every process, and the processes would have to agree on when to take one.
        return None

    def checkpoint(i, job):
        path = run_dir / "checkpoints" / f"{i:02d}.npz"
        checkpoint.made[i] = Checkpoint(path, every=cfg.checkpoint_every, report=_note("run"))
        return checkpoint.made[i]

    checkpoint.made = {}  # job index -> its Checkpoint
    return checkpoint


class Phases:
    """Where a command's wall time goes: seconds per phase (`with phases("plots"): ...`),
    counted from `started` (a `time.perf_counter()` taken when the command line was read)."""

    def __init__(self, started: float | None = None):
        import time

        self.started = time.perf_counter() if started is None else started
        self.seconds: dict[str, float] = {}
        self.alongside: dict[str, float] = {}  # another process's seconds, while ours ran

    @contextlib.contextmanager
    def __call__(self, phase: str):
        import time

        t = time.perf_counter()
        try:
            yield
        finally:
            self.add(phase, time.perf_counter() - t)

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds

    def record(self) -> dict[str, float]:
        """Seconds per phase, `other` (what no phase claims) and `wall` (since `started`),
        then `<phase>_alongside`: seconds of that phase another process spent while this
        one did other work (not part of `wall`)."""
        import time

        wall = time.perf_counter() - self.started
        out = {k: round(v, 4) for k, v in self.seconds.items()}
        out["other"] = round(max(0.0, wall - sum(self.seconds.values())), 4)
        out["wall"] = round(wall, 4)
        out.update({f"{k}_alongside": round(v, 4) for k, v in self.alongside.items()})
        return out

    def line(self) -> str:
        """One line for the end of a run: `time 9.8 s: import 1.9 s, compile 2.1 s, ...,
        plots 0.40 s (+4.10 s alongside)`."""
        rec = self.record()
        parts = [
            f"{k} {v:.2f} s"
            + (f" (+{self.alongside[k]:.2f} s alongside)" if k in self.alongside else "")
            for k, v in rec.items()
            if k in self.seconds or k == "other"
            if v >= 0.005 or k in self.alongside
        ]
        return f"time {rec['wall']:.1f} s: " + ", ".join(parts)


def _run(cfg, jobs, out, progress, console, backend, clock, plotter, resume=None) -> int:
    import time

    import jax

    from gdkit import __version__
    from gdkit.experiments import config as config_mod
    from gdkit.experiments import experiment, rundir

    console.print(
        f"gdkit {__version__}: {cfg.name}: {len(jobs)} sweeps on {backend}, {cfg.dtype}",
        highlight=False,
    )
    t0 = time.perf_counter()
    writer = cfg.distributed is None or jax.process_index() == 0
    if not writer:  # another process of a distributed run: compute, let process 0 write
        pairs = experiment.run(
            cfg,
            progress=False,
            finished=_finished_in(resume),
            checkpoint=None,
        )
        console.print(f"process {jax.process_index()}: {len(pairs)} sweeps done")
        return 0
    if resume is not None:
        return _write(cfg, jobs, resume, progress, console, t0, clock, plotter, resume=True)
    try:
        run_dir = rundir.create(
            out,
            cfg.name,
            config_mod.to_yaml(cfg),
            resolved=cfg.model_dump(mode="json", exclude_none=True),
            data=rundir.digests(config_mod.data_files(cfg)),
        )
    except OSError as e:
        if e.errno in DISK_FULL:
            raise ResourceError(f"{exhausted(e)}: cannot make a run directory in {out}") from e
        raise UserError(f"--out: cannot make a run directory in {out}: {e.strerror or e}") from None
    with rundir.lock(run_dir):
        return _write(cfg, jobs, run_dir, progress, console, t0, clock, plotter, resume=False)


def _write(cfg, jobs, run_dir, progress, console, t0, clock, plotter, resume: bool) -> int:
    """Runs the sweeps a run directory lacks and writes it whole (the caller holds its lock)."""
    from gdkit.experiments.summary import print_summary

    console.print(f"run directory: {run_dir}", highlight=False)
    try:
        results, meta = _compute(cfg, jobs, run_dir, progress, t0, clock, plotter, resume)
    except KeyboardInterrupt:
        raise UserInterrupt(f"interrupted; resume with: gdkit run --resume {run_dir}") from None
    except Exception as e:
        what = exhausted(e)
        if what is None:
            raise
        raise ResourceError(
            f"{what}; {run_dir} is left incomplete: once there is room, resume it with: "
            f"gdkit run --resume {run_dir}"
        ) from e
    print_summary(console, results)
    console.print(f"{meta['lanes']:,} lanes; {clock.line()}", highlight=False)
    print(run_dir)
    return 0


def _compute(cfg, jobs, run_dir, progress, t0, clock, plotter, resume: bool):
    """The sweeps, the plots and the tables of a run directory: (results, meta). `plotter`
    (a `plot_worker.Plotter`, None without plots) draws each objective's figures as soon as
    its sweeps are done."""
    import platform as _platform
    import time

    import jax
    import optax

    from gdkit import __version__
    from gdkit.experiments import experiment, rundir

    checkpoints = _checkpoints_in(run_dir, cfg)

    def save(i, job, result):
        clock.add("compile", result.compile_time)
        # this process's share: a sweep resumed mid-way also counts the run time before
        ck = None if checkpoints is None else checkpoints.made.get(i)
        clock.add("run", result.run_time - (0.0 if ck is None else ck.resumed_run_time))
        with clock("write"):
            result.save(rundir.result_path(run_dir, i, job.objective.name, job.optimizer))

    last = {job.objective.name: i for i, job in enumerate(jobs)}
    groups: dict[str, list] = {}

    def done(i, job, result):
        """Hands an objective's figures to the plotter once its last sweep is saved."""
        group = groups.setdefault(job.objective.name, [])
        group.append((rundir.result_path(run_dir, i, job.objective.name, job.optimizer), result))
        if plotter is not None and last[job.objective.name] == i:
            files, results = zip(*group, strict=True)
            plotter.add(job.objective, job.spec, results, files, run_dir / "plots")

    if plotter is not None:  # the figures that need no results, while the sweeps compile
        for job in {job.objective.name: job for job in jobs}.values():
            plotter.add_unswept(job.objective, job.spec, run_dir / "plots")
    t, claimed = time.perf_counter(), sum(clock.seconds.values())
    pairs = experiment.run(
        cfg,
        progress=progress,
        finished=_finished_in(run_dir),
        on_result=save,
        checkpoint=checkpoints,
        done=done,
        jobs=jobs,
    )
    # The rest of the sweeps' time: planning, reading and writing checkpoints, and compiling
    # and running the plotted runs' trajectories (outside a sweep's compile and run times).
    clock.add("setup", time.perf_counter() - t - (sum(clock.seconds.values()) - claimed))
    results = [r for _, r in pairs]
    if plotter is not None:
        with clock("plots"):  # what is left to draw once the sweeps are done
            plotter.finish()
        if plotter.worker_seconds:
            clock.alongside["plots"] = plotter.worker_seconds
    meta = {
        "name": cfg.name,
        "gdkit": __version__,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "python": _platform.python_version(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "processes": jax.process_count(),
        "dtype": cfg.dtype,
        "seeds": cfg.seeds,
        "steps": sorted({job.steps for job, _ in pairs}),
        "lanes": sum(r.lanes for r in results),
        "git_commit": rundir.git_commit(),
        "compile_time": sum(r.compile_time for r in results),
        "run_time": sum(r.run_time for r in results),
        "wall_time": time.perf_counter() - t0,
        "compile_cache": jax.config.jax_compilation_cache_dir,  # None: off
        "resumed": resume,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sweeps": [
            {
                "objective": r.objective,
                "optimizer": r.optimizer,
                "lanes": r.lanes,
                "compile_time": r.compile_time,
                "run_time": r.run_time,
            }
            for r in results
        ],
    }
    hparams = [experiment.hparams_of(job) for job, _ in pairs]
    names = [job.objective.param_names for job, _ in pairs]
    with clock("write"):  # meta.json (written last) holds the phases up to here
        meta["timings"] = clock.record()
        notes = rundir.finish(run_dir, list(zip(hparams, results, strict=True)), meta, names)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return results, meta


def show(args) -> int:
    import pathlib

    from gdkit.experiments import report, rundir
    from gdkit.experiments.summary import print_summary

    run_dir = pathlib.Path(args.run_dir)
    with user_errors():
        results = rundir.load_results(run_dir)
    print_summary(rich_console(), results)
    if getattr(args, "open", False):
        import webbrowser

        path = run_dir / report.REPORT
        if not path.is_file():  # a run directory from before report.html
            path = report.write(run_dir, results)
        print(path)
        webbrowser.open(path.resolve().as_uri())
    return 0


def plot(args) -> int:
    import pathlib

    from gdkit import plots
    from gdkit.experiments import config as config_mod
    from gdkit.experiments import rundir

    run_dir = pathlib.Path(args.run_dir)
    with user_errors():
        results = rundir.load_results(run_dir)
        cfg = config_mod.load(run_dir / "config.yaml", check=False, allow_import=args.allow_import)
    kinds = tuple(cfg.plots.kinds) if args.kinds is None else tuple(args.kinds.split(","))
    unknown = sorted(set(kinds) - set(config_mod.PLOTS))
    if unknown:
        raise UserError(
            f"--kinds: unknown plot {unknown[0]!r}; allowed: {', '.join(config_mod.PLOTS)}"
        )
    _select_platform("cpu", cfg.dtype)
    from gdkit.experiments import experiment

    with user_errors():  # an import path (--allow-import) that names no objective here, say
        config_mod.check_names(cfg)
    objectives = {job.objective.name: job.objective for job in experiment.plan(cfg)}
    drawn = plots.draw(results, objectives, run_dir / "plots", kinds=kinds, paths=cfg.plots.paths)
    for path in drawn:
        print(path)
    if rundir.is_complete(run_dir):  # the report embeds the figures: keep it in step
        from gdkit.experiments import report

        report.write(run_dir, results)
    return 0
