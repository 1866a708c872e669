"""The `gdkit` command line. Exit codes: 0 ok, 2 bad input, 1 internal error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gdkit import __version__


class UserError(Exception):
    """Bad input from the user: reported as one line, exit code 2, no traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(_glue_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.handler(args) or 0
    except (UserError, ValueError, OSError) as e:
        print(f"gdkit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gdkit {args.command}: interrupted", file=sys.stderr)
        return 130


_VALUE_OPTIONS = ("--at", "--set")


def _glue_values(argv: list[str]) -> list[str]:
    """`--at -1.2,1` -> `--at=-1.2,1`: argparse takes a value starting with '-' for an option."""
    out = []
    it = iter(argv)
    for token in it:
        if token in _VALUE_OPTIONS:
            value = next(it, None)
            out.append(token if value is None else f"{token}={value}")
        else:
            out.append(token)
    return out


def _console():
    """A rich console; wide enough for the summary table when stdout is a file or a pipe."""
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gdkit",
        description="Sweep optimizers over learning rates, start points and seeds as one "
        "compiled JAX program.",
    )
    parser.add_argument("--version", action="version", version=f"gdkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "run",
        help="run an experiment config and write a run directory",
        description="Run every (objective, optimizer) pair of CONFIG as one compiled sweep each "
        "and write <out>/<name>-<YYYYmmdd-HHMMSS>/ (config.yaml, meta.json, runs.csv, "
        "curves.npz, summary.md, plots/). The run directory's path is the last line printed.",
    )
    p.add_argument("config", help="a YAML experiment config, e.g. configs/quickstart.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value by dotted key, list items by index "
        "(--set steps=500 --set optimizers.0.name=rmsprop); repeatable",
    )
    p.add_argument(
        "--out", default="runs", metavar="DIR", help="where run directories go (default: runs/)"
    )
    p.add_argument(
        "--platform",
        choices=["auto", "cpu", "gpu"],
        default=None,
        help="override the config's platform",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved config and the planned work, run nothing",
    )
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "show",
        help="print a run directory's summary table again",
        description="Print the summary table of a finished run directory.",
    )
    p.add_argument("run_dir", help="a directory written by `gdkit run`")
    p.set_defaults(handler=_cmd_show)

    p = sub.add_parser(
        "plot",
        help="re-draw a run directory's plots",
        description="Re-draw the plots of a finished run directory into its "
        "plots/ folder (or --kinds a subset).",
    )
    p.add_argument("run_dir", help="a directory written by `gdkit run`")
    p.add_argument(
        "--kinds", default=None, metavar="K1,K2", help="which plots (default: the config's)"
    )
    p.set_defaults(handler=_cmd_plot)

    p = sub.add_parser(
        "list",
        help="list objectives (and their parameters)",
        description="List what gdkit knows, with one-line descriptions, parameters and defaults.",
    )
    p.add_argument(
        "what",
        nargs="?",
        choices=["objectives", "optimizers"],
        default=None,
        help="what to list (default: everything)",
    )
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser(
        "check-grad",
        help="compare reverse-mode, forward-mode and finite-difference gradients of an objective",
        description="Gradients three ways: jax.grad, jax.jacfwd and central "
        "differences, at the objective's start or at --at.",
    )
    p.add_argument("objective", help="an objective name (see `gdkit list objectives`)")
    p.add_argument("--at", metavar="X,Y,...", help="the point (default: the objective's x0)")
    p.add_argument("--x64", action="store_true", help="check in float64")
    p.set_defaults(handler=_cmd_check_grad)
    return parser


def _cmd_run(args) -> int:
    import pathlib

    from gdkit import config as config_mod

    cfg = config_mod.load(args.config, args.set, check=False)
    if args.platform is not None:
        cfg = cfg.model_copy(update={"platform": args.platform})
    backend = _select_platform(cfg.platform, cfg.dtype)  # before JAX computes anything
    config_mod.check_names(cfg)

    from gdkit import experiment

    jobs = experiment.plan(cfg)
    console = _console()
    if args.dry_run:
        print(config_mod.to_yaml(cfg), end="")
        _print_plan(console, cfg, jobs, backend)
        return 0
    return _run(cfg, jobs, pathlib.Path(args.out), not args.no_progress, console, backend)


def _select_platform(platform: str, dtype: str) -> str:
    """Selects JAX's platform and precision; must run before JAX initialises its backends."""
    import jax

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
    from rich.table import Table

    table = Table(title=f"plan: {cfg.name}  [{backend}, {cfg.dtype}]")
    for col in ("objective", "optimizer", "swept", "starts", "lanes", "steps", "est. memory"):
        table.add_column(
            col, justify="left" if col in ("objective", "optimizer", "swept") else "right"
        )
    total = 0
    for job in jobs:
        records = job.steps // (cfg.record_every or max(1, job.steps // 100))
        # per lane: x, optimizer state (~4 copies of x), bookkeeping, the thinned history
        per_lane = (6 * job.objective.dim + 8 + records) * (8 if cfg.dtype == "float64" else 4)
        mem = job.lanes * per_lane
        total += job.lanes
        swept = ", ".join(f"{k}[{len(v)}]" for k, v in job.grid.items()) or "-"
        table.add_row(
            job.objective.name,
            job.optimizer,
            swept,
            str(len(job.x0)),
            f"{job.lanes:,}",
            str(job.steps),
            _bytes(mem),
        )
    console.print(table)
    console.print(
        f"{len(jobs)} compiled sweeps, {total:,} lanes, "
        f"{sum(j.lanes * j.steps for j in jobs):,} trajectory-steps"
    )


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _run(cfg, jobs, out, progress, console, backend) -> int:
    import platform as _platform
    import time

    import jax
    import optax

    from gdkit import __version__, experiment, rundir
    from gdkit import config as config_mod
    from gdkit.summary import rich_table

    console.print(
        f"gdkit {__version__}: {cfg.name}: {len(jobs)} sweeps on {backend}, {cfg.dtype}",
        highlight=False,
    )
    t0 = time.perf_counter()
    with rundir.staging(out, cfg.name) as (tmp, box):
        pairs = experiment.run(cfg, progress=progress)
        results = [r for _, r in pairs]
        if cfg.plots:
            from gdkit import plots

            objectives = {job.objective.name: job.objective for job, _ in pairs}
            plots.draw(results, objectives, tmp / "plots", kinds=tuple(cfg.plots))
        meta = {
            "name": cfg.name,
            "gdkit": __version__,
            "jax": jax.__version__,
            "optax": optax.__version__,
            "python": _platform.python_version(),
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "dtype": cfg.dtype,
            "seeds": cfg.seeds,
            "steps": sorted({job.steps for job, _ in pairs}),
            "lanes": sum(r.lanes for r in results),
            "git_commit": rundir.git_commit(),
            "compile_time": sum(r.compile_time for r in results),
            "run_time": sum(r.run_time for r in results),
            "wall_time": time.perf_counter() - t0,
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
        rundir.write(tmp, config_mod.to_yaml(cfg), list(zip(hparams, results, strict=True)), meta)
    console.print(rich_table(results))
    console.print(
        f"compile {meta['compile_time']:.2f} s, run {meta['run_time']:.2f} s, "
        f"{meta['lanes']:,} lanes",
        highlight=False,
    )
    print(box["path"])
    return 0


def _cmd_show(args) -> int:
    import pathlib

    from gdkit import rundir
    from gdkit.summary import rich_table

    results = rundir.load_results(pathlib.Path(args.run_dir))
    _console().print(rich_table(results))
    return 0


def _cmd_plot(args) -> int:
    import pathlib

    from gdkit import config as config_mod
    from gdkit import plots, rundir

    run_dir = pathlib.Path(args.run_dir)
    results = rundir.load_results(run_dir)
    cfg = config_mod.load(run_dir / "config.yaml", check=False)
    kinds = tuple(cfg.plots) if args.kinds is None else tuple(args.kinds.split(","))
    unknown = sorted(set(kinds) - set(config_mod.PLOTS))
    if unknown:
        raise UserError(
            f"--kinds: unknown plot {unknown[0]!r}; allowed: {', '.join(config_mod.PLOTS)}"
        )
    _select_platform("cpu", cfg.dtype)
    from gdkit import experiment

    objectives = {job.objective.name: job.objective for job in experiment.plan(cfg)}
    for path in plots.draw(results, objectives, run_dir / "plots", kinds=kinds):
        print(path)
    return 0


def _cmd_list(args) -> int:
    from rich.table import Table

    from gdkit import objectives

    console = _console()
    if args.what in (None, "objectives"):
        table = Table(title="objectives", show_lines=False)
        for col in ("name", "description", "parameters"):
            table.add_column(col)
        for e in objectives.entries():
            params = ", ".join(f"{k}={v!r}" for k, v in e.params.items())
            table.add_row(e.name, e.description, params)
        console.print(table)
    if args.what in (None, "optimizers"):
        from gdkit import optimizers

        table = Table(title="optimizers")
        for col in ("name", "description", "hyperparameters"):
            table.add_column(col)
        for e in optimizers.entries():
            params = ", ".join(f"{k}={v!r}" for k, v in e.hparams.items())
            table.add_row(e.name, e.description, params)
        console.print(table)
        console.print(
            "every optimizer also takes: "
            + ", ".join(f"{k}={v!r}" for k, v in optimizers.entries()[0].options.items())
        )
    return 0


def _cmd_check_grad(args) -> int:
    import jax
    import numpy as np

    from gdkit import check_grad, objectives

    obj = objectives.get(args.objective)
    if args.at is None:
        x = obj.x0
    else:
        try:
            x = np.array([float(v) for v in args.at.split(",")])
        except ValueError:
            raise UserError(f"--at: expected comma-separated numbers, got {args.at!r}") from None
        if x.size != obj.dim:
            raise UserError(f"--at: {obj.name} takes {obj.dim} coordinates, got {x.size}")
    with jax.enable_x64(args.x64):
        c = check_grad(obj, x.astype(np.float64 if args.x64 else np.float32))
    np.set_printoptions(precision=8, suppress=False)
    print(f"objective    {obj.name} (dim {obj.dim}) at x = {c.x}  [{c.x.dtype}]")
    print(f"reverse      {c.reverse}    (jax.grad)")
    print(f"forward      {c.forward}    (jax.jacfwd)  max rel. error {c.forward_error:.2e}")
    print(
        f"numeric      {c.numeric}    (central differences, h = {c.step:.1e})  "
        f"max rel. error {c.numeric_error:.2e}"
    )
    print("agree" if c.ok() else "DISAGREE")
    return 0 if c.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
